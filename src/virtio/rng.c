/* virtio-rng, virtio 1.2 section 5.4: device id 4 (5.4.1), one queue,
 * requestq (5.4.2), no feature bits and no configuration space (5.4.3,
 * 5.4.4), and the request handling of 5.4.6: each device-writable buffer
 * is filled with random bytes and the used length is the number written.
 *
 * Decisions where the spec leaves room or the driver misbehaves:
 * - A request's device-readable descriptors are ignored (the driver
 *   should not send any); a request with no writable byte is returned at
 *   once with used length 0.
 * - At most VIRTIO_RNG_MAX_REQUEST bytes (and at most the burst) go into
 *   one request; only bytes getrandom really produced are counted, always
 *   from the start of the writable part, so the used length never covers
 *   bytes that were not filled.
 * - A token bucket caps the rate (rng.h); while it is empty, the request
 *   at the head is held back and the thread sleeps in poll().
 * - While the host's random pool is not initialised yet (early boot),
 *   getrandom(GRND_NONBLOCK) fails with EAGAIN: the request is held back
 *   the same way and tried again every RNG_NOT_READY_MS. A blocking
 *   getrandom() would be simpler but cannot be interrupted, so a reset or
 *   the VM's exit would wait for the pool.
 * - A chain the queue code rejects (VIRTQ_BROKEN) makes the device set
 *   NEEDS_RESET (2.1.2) and stop using the queue until the driver resets.
 */
#include "virtio/device.h"
#include "virtio/rng.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "error.h"

#define RNG_QUEUE_MAX    64
#define CHAIN_BUDGET     RNG_QUEUE_MAX /* requests between looks at stop */
#define NSEC_PER_SEC     1000000000ULL
#define RNG_NOT_READY_MS 100 /* retry interval while the pool is not ready */

struct virtio_rng {
    struct virtio_device vdev;    /* its lock also guards cfg_rate/cfg_burst */
    uint64_t cfg_rate, cfg_burst; /* from virtio_rng_set_rate */

    /* Owned by the device thread while it runs; set up by activate(). */
    struct virtq *q;
    int kick;
    bool broken;
    bool have;            /* chain is held, waiting for tokens */
    uint64_t rate, burst; /* rate 0: no cap */
    uint64_t tokens;      /* bytes that may be produced now */
    uint64_t last_ns;     /* when tokens were last brought up to date */
    struct virtq_chain chain;

    uint64_t requests, bytes; /* relaxed atomics: chains answered, bytes given */
};
_Static_assert(offsetof(struct virtio_rng, vdev) == 0, "the device is its virtio_device");

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Adds the bytes earned since last_ns. last_ns only moves by the time the
 * whole bytes added stand for, so no fraction is lost between calls. */
static void bucket_refill(struct virtio_rng *r)
{
    uint64_t now = now_ns();
    if (r->tokens >= r->burst) {
        r->last_ns = now;
        return;
    }
    uint64_t dt = now - r->last_ns;
    unsigned __int128 add = (unsigned __int128)dt * r->rate / NSEC_PER_SEC;
    if (add >= r->burst - r->tokens) {
        r->tokens = r->burst;
        r->last_ns = now;
    } else if (add > 0) {
        r->tokens += (uint64_t)add;
        r->last_ns += (uint64_t)(add * NSEC_PER_SEC / r->rate);
    }
}

/* Milliseconds until want bytes are due (at least 1, at most a second:
 * the caller just looks again). */
static int bucket_wait_ms(const struct virtio_rng *r, uint64_t want)
{
    uint64_t deficit = want - r->tokens;
    uint64_t ms = deficit * 1000 / r->rate + 1;
    return ms > 1000 ? 1000 : (int)ms;
}

/* Fills up to want bytes of the chain's writable part, in order, and
 * returns how many were filled; *not_ready says the host's pool is not
 * initialised yet (nothing more can be had without blocking). */
static size_t fill_random(const struct virtq_chain *ch, size_t want, bool *not_ready)
{
    *not_ready = false;
    size_t done = 0;
    for (unsigned i = ch->n_out; i < ch->n_out + ch->n_in && done < want; i++) {
        uint8_t *p = ch->iov[i].iov_base;
        size_t len = ch->iov[i].iov_len;
        if (len > want - done)
            len = want - done;
        size_t off = 0;
        while (off < len) {
            ssize_t n = getrandom(p + off, len - off, GRND_NONBLOCK);
            if (n < 0 && errno == EAGAIN) {
                *not_ready = true; /* the caller waits, interruptibly */
                return done + off;
            }
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            return done + off; /* cannot fill: report what we have */
        }
        done += len;
    }
    return done;
}

/* Serves requests until the queue is empty, the bucket is, or the budget
 * is used up. Returns the poll timeout: -1 (wait for a kick), 0 (more to
 * do) or the milliseconds until the bucket has enough. */
static int serve(struct virtio_rng *r)
{
    struct virtq *q = r->q;
    if (!q || r->broken)
        return -1;

    int timeout = -1;
    unsigned done = 0;
    bool pushed = false;
    virtq_disable_notify(q);
    while (!atomic_load_explicit(&r->vdev.thread.stopping, memory_order_relaxed)) {
        if (!r->have) {
            if (done >= CHAIN_BUDGET) {
                timeout = 0;
                break;
            }
            if (virtio_device_pop(&r->vdev, q, &r->chain, &r->broken) != VIRTQ_CHAIN)
                break;
            r->have = true;
        }

        uint64_t want = r->chain.in_len;
        if (want > VIRTIO_RNG_MAX_REQUEST)
            want = VIRTIO_RNG_MAX_REQUEST;
        if (r->rate && want > r->burst)
            want = r->burst;
        if (want && r->rate) {
            bucket_refill(r);
            if (r->tokens < want) {
                timeout = bucket_wait_ms(r, want);
                break;
            }
        }
        bool not_ready;
        size_t got = fill_random(&r->chain, (size_t)want, &not_ready);
        if (not_ready && got == 0) {
            /* Keep the request and look again later; the wait also
             * watches the stop fd, so a reset is not held up. */
            timeout = RNG_NOT_READY_MS;
            break;
        }
        if (r->rate)
            r->tokens -= got < r->tokens ? got : r->tokens;
        virtq_push(q, r->chain.head, (uint32_t)got);
        __atomic_fetch_add(&r->requests, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&r->bytes, (uint64_t)got, __ATOMIC_RELAXED);
        r->have = false;
        pushed = true;
        done++;
    }
    if (pushed && virtq_should_notify(q))
        virtio_notify_queue(r->vdev.transport, 0);
    return timeout;
}

static void *rng_thread(void *arg)
{
    struct virtio_rng *r = arg;
    pthread_setname_np(pthread_self(), "virtio-rng");

    while (!atomic_load(&r->vdev.thread.stopping)) {
        int timeout = serve(r);
        if (atomic_load(&r->vdev.thread.stopping))
            break;

        struct pollfd p[2] = { { .fd = r->vdev.thread.stop_fd, .events = POLLIN } };
        nfds_t n = 1;
        if (r->q && !r->broken && r->kick >= 0)
            p[n++] = (struct pollfd){ .fd = r->kick, .events = POLLIN };
        int res = poll(p, n, timeout);
        if (res < 0) {
            if (errno != EINTR)
                thread_wait_failed();
            continue;
        }
        if (p[0].revents)
            break;
        if (n > 1 && p[1].revents)
            virtio_take_kick(&r->kick, p[1].revents);
    }
    return NULL;
}

/* ---- virtio_device_ops ------------------------------------------------ */

/* No configuration space (5.4.4): everything reads as all-ones. */
static void rng_config_read(void *dev, size_t offset, uint8_t *data, size_t len)
{
    (void)dev;
    (void)offset;
    memset(data, 0xff, len);
}

static void rng_config_write(void *dev, size_t offset, const uint8_t *data, size_t len)
{
    (void)dev;
    (void)offset;
    (void)data;
    (void)len;
}

/* Activation (lock held, thread not running): takes the queue and, if
 * the rate cap changed, a full bucket at the new rate. */
static int rng_take_queues(void *dev, const struct virtio_queues *qs)
{
    struct virtio_rng *r = dev;
    r->q = qs->count > 0 ? qs->q[0] : NULL;
    r->kick = r->q ? qs->kick_fd[0] : -1;
    r->broken = false;
    r->have = false;
    if (r->rate != r->cfg_rate || r->burst != r->cfg_burst) {
        r->rate = r->cfg_rate;
        r->burst = r->cfg_burst;
        r->tokens = r->burst;
        r->last_ns = now_ns();
    }
    return 0;
}

/* The thread is gone: a held request belongs to the driver again. It
 * is always the last one popped, so it goes back to the ring, and the
 * next run (after a snapshot) takes it again. */
static void rng_release_queues(void *dev)
{
    struct virtio_rng *r = dev;
    if (r->have && r->q)
        virtq_unpop(r->q, 1);
    r->have = false;
}

static void rng_metrics(void *dev, virtio_metric_fn fn, void *opaque)
{
    uint64_t requests, bytes;
    virtio_rng_get_stats(dev, &requests, &bytes);
    fn(opaque, "requests", requests);
    fn(opaque, "bytes", bytes);
}

static const struct virtio_device_ops rng_ops = {
    .name = "rng",
    .device_id = VIRTIO_ID_RNG,
    .num_queues = 1,
    .queue_max_size = RNG_QUEUE_MAX,
    .features = 0,
    .config_size = 0,
    .config_read = rng_config_read,
    .config_write = rng_config_write,
    .metrics = rng_metrics,
    /* Nothing of its own: the queue's positions are the whole state. */
    .save = virtio_device_save_none,
    .load = virtio_device_load_none,
};

/* The entropy thread: getrandom (common to every thread) and poll. */
static const struct sandbox_rules rng_rules = { .kind = "virtio-rng" };

static const struct virtio_device_hooks rng_hooks = {
    .sandbox = &rng_rules,
    .thread_fn = rng_thread,
    .take_queues = rng_take_queues,
    .release_queues = rng_release_queues,
};

/* ---- life cycle ------------------------------------------------------- */

struct virtio_rng *virtio_rng_new(vmlet_error *err)
{
    struct virtio_rng *r = virtio_device_new(sizeof *r, &rng_ops, &rng_hooks, err);
    if (!r)
        return NULL;
    r->kick = -1;
    r->cfg_rate = r->rate = VIRTIO_RNG_DEFAULT_RATE;
    r->cfg_burst = r->burst = VIRTIO_RNG_DEFAULT_BURST;
    r->tokens = r->burst;
    r->last_ns = now_ns();
    return r;
}

void virtio_rng_free(struct virtio_rng *r)
{
    virtio_device_free(r);
}

struct virtio_device *virtio_rng_device(struct virtio_rng *r)
{
    return r ? &r->vdev : NULL;
}

void virtio_rng_set_rate(struct virtio_rng *r, uint64_t bytes_per_sec, uint64_t burst)
{
    pthread_mutex_lock(&r->vdev.lock);
    r->cfg_rate = bytes_per_sec;
    r->cfg_burst = burst ? burst : 1;
    pthread_mutex_unlock(&r->vdev.lock);
}

void virtio_rng_get_stats(const struct virtio_rng *r, uint64_t *requests, uint64_t *bytes)
{
    *requests = __atomic_load_n(&r->requests, __ATOMIC_RELAXED);
    *bytes = __atomic_load_n(&r->bytes, __ATOMIC_RELAXED);
}
