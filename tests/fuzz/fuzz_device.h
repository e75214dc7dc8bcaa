/* What the fuzz targets of the threaded virtio devices share (fuzz_virtio_net,
 * fuzz_virtio_console, fuzz_virtio_rng, fuzz_blk_async): a guest whose
 * memory and rings come from the input, a transport that only counts, and
 * the device's own thread run to idle, deterministically, then reset.
 *
 * Input layout (the first FZ_HEADER bytes; the target says what follows):
 *   0..3    the target's own parameters (fz_param())
 *   4..15   per queue i (up to 3): byte 4+4i: queue size 1 << (bits 0-3,
 *           at most the device's), bit 4 EVENT_IDX, bit 5 INDIRECT_DESC;
 *           bytes 5+4i..6+4i: the starting ring index (to reach the 16-bit
 *           wrap); byte 7+4i: how many of the chains made available are
 *           held back until the device is idle, then published with a kick
 *   16..    guest memory from gpa 0 (FZ_RAM_SIZE bytes, allocated to exactly
 *           that size so ASan sees any access outside it). Queue i's rings
 *           are at FZ_RING(i): descriptors, then the available ring at +4 KiB
 *           (its idx from the input), then the used ring at +5 KiB.
 *
 * Running to idle: the device thread waits in poll() or epoll_wait()
 * (linked with --wrap, see fz_run); a wait without a timeout that has
 * nothing to wake it yet means the thread has done all it can with what
 * the guest and the host gave it, so the target may act (publish held
 * chains, feed input, drain output) or reset. A thread that never gets
 * there within FZ_IDLE_MS is a hang and aborts.
 *
 * Checks done here for every device: each chain virtq_pop() gives has its
 * iovecs inside guest RAM; each virtq_push() returns a chain that was
 * popped and not yet returned, with a used length no larger than its
 * writable bytes; at most as many chains are used as were popped; after
 * the reset the device pushes nothing more. */
#ifndef VMLET_FUZZ_DEVICE_H
#define VMLET_FUZZ_DEVICE_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/virtio.h"

#define FZ_HEADER   16
#define FZ_RAM_SIZE 0x10000u
#define FZ_NQ       3
#define FZ_RING(i)  ((uint64_t)(i)*0x2000u)
#define FZ_IDLE_MS  10000
#define FZ_MAX_POPS 4096 /* chains recorded per input; more is not checked */

static void fz_check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
    }
}

/* ---- the transport: counts only ----------------------------------------- */

struct virtio_transport {
    atomic_uint notify, config, needs_reset;
};

void virtio_notify_queue(struct virtio_transport *t, unsigned queue)
{
    fz_check(queue < FZ_NQ, "notify for a queue the device does not have");
    atomic_fetch_add(&t->notify, 1);
}

void virtio_notify_queues(struct virtio_transport *t, uint32_t mask)
{
    fz_check(mask && mask < 1u << FZ_NQ, "notify for a queue the device does not have");
    atomic_fetch_add(&t->notify, 1);
}

void virtio_notify_config(struct virtio_transport *t)
{
    atomic_fetch_add(&t->config, 1);
}

void virtio_set_needs_reset(struct virtio_transport *t)
{
    atomic_fetch_add(&t->needs_reset, 1);
}

/* ---- the guest ------------------------------------------------------------ */

struct fz_popped {
    const struct virtq *q;
    uint16_t head;
    bool returned;
    uint64_t in_len;
    const uint8_t *last_byte; /* the last writable byte, or NULL */
};

static struct {
    uint8_t *ram;
    struct guest_memory mem;
    struct virtq q[FZ_NQ];
    unsigned nq;
    int kick[FZ_NQ];
    uint16_t start[FZ_NQ], avail_idx[FZ_NQ], hold[FZ_NQ];
    struct virtio_transport transport;
    const uint8_t *params;
    bool after_reset;
    /* What the device popped and pushed (device thread; read after join). */
    struct fz_popped pops[FZ_MAX_POPS];
    unsigned npops, npushes;
    bool pops_overflow;
    const struct virtq_chain *last_chain; /* the last chain popped */
    bool wrote_rings;                     /* a writable buffer overlaps a used ring */
    /* Idle detection: the device thread bumps gen when it is about to wait
     * with nothing to wake it. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned gen;
    struct pollfd watch[16]; /* what the idle wait watches (poll only) */
    unsigned nwatch;
    bool watch_all;           /* an epoll wait: assume every fd is watched */
    bool (*idle_extra)(void); /* more the device must have finished, or NULL */
    /* The target's own look at each virtq_push (device thread), or NULL;
     * pushed is what virtq_pop gave for that chain (NULL if not known). */
    void (*on_push)(const struct virtq *q, uint16_t head, uint32_t len,
                    const struct fz_popped *pushed);
} fz = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static uint8_t fz_param(unsigned i)
{
    return fz.params[i];
}

static uint16_t fz_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static bool fz_in_ram(const void *p, size_t len)
{
    const uint8_t *b = p;
    return b >= fz.ram && b <= fz.ram + FZ_RAM_SIZE && len <= (size_t)(fz.ram + FZ_RAM_SIZE - b);
}

/* Once per process: guest memory of exactly FZ_RAM_SIZE bytes, kick fds. */
static void fz_init(void)
{
    if (fz.ram)
        return;
    fz.ram = aligned_alloc(4096, FZ_RAM_SIZE);
    fz_check(fz.ram != NULL, "out of memory");
    fz.mem = (struct guest_memory){
        .host = fz.ram, .size = FZ_RAM_SIZE, .low_size = FZ_RAM_SIZE, .high_size = 0
    };
    for (unsigned i = 0; i < FZ_NQ; i++) {
        fz.kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        fz_check(fz.kick[i] >= 0, "eventfd");
    }
}

/* Lays the input out as guest memory and nq queues of at most max_size
 * entries; returns false if the input is too short to be a guest. The
 * held chains are taken out of the available index until fz_publish(). */
static bool fz_setup(const uint8_t *data, size_t size, unsigned nq, uint16_t max_size,
                     struct virtio_queues *qs, uint64_t features)
{
    if (size < FZ_HEADER)
        return false;
    fz.params = data;
    memset(fz.ram, 0, FZ_RAM_SIZE);
    size_t n = size - FZ_HEADER < FZ_RAM_SIZE ? size - FZ_HEADER : FZ_RAM_SIZE;
    memcpy(fz.ram, data + FZ_HEADER, n);
    fz.npops = fz.npushes = 0;
    fz.pops_overflow = fz.wrote_rings = false;
    fz.nq = nq;
    fz.after_reset = false;
    memset(&fz.transport, 0, sizeof fz.transport);

    unsigned max_log = 0;
    while ((2u << max_log) <= max_size)
        max_log++;
    *qs = (struct virtio_queues){ .transport = &fz.transport, .count = nq, .features = features };
    for (unsigned i = 0; i < nq; i++) {
        const uint8_t *p = data + 4 + 4 * i;
        struct virtq *q = &fz.q[i];
        *q = (struct virtq){ .mem = &fz.mem,
                             .size = (uint16_t)(1u << ((p[0] & 15) % (max_log + 1))),
                             .desc_gpa = FZ_RING(i),
                             .avail_gpa = FZ_RING(i) + 0x1000,
                             .used_gpa = FZ_RING(i) + 0x1400,
                             .ready = true,
                             .event_idx = p[0] & 16,
                             .indirect = p[0] & 32 };
        virtq_reset(q);
        fz.start[i] = q->last_avail = q->used_idx = fz_get16(p + 1);
        /* Hold back some of what the input made available. */
        uint8_t *avail_idx = fz.ram + q->avail_gpa + 2;
        fz.avail_idx[i] = fz_get16(avail_idx);
        uint16_t ahead = (uint16_t)(fz.avail_idx[i] - fz.start[i]);
        fz.hold[i] = p[3] < ahead ? p[3] : ahead;
        uint16_t now = (uint16_t)(fz.avail_idx[i] - fz.hold[i]);
        memcpy(avail_idx, &now, 2);
        eventfd_drain(fz.kick[i]);
        qs->q[i] = q;
        qs->kick_fd[i] = fz.kick[i];
    }
    return true;
}

/* ---- the device thread's waits and queue calls (linked with --wrap) ------- */

static unsigned fz_idle_gen(void)
{
    pthread_mutex_lock(&fz.lock);
    unsigned g = fz.gen;
    pthread_mutex_unlock(&fz.lock);
    return g;
}

/* fds: the wait's set, or NULL for an epoll wait. */
static void fz_went_idle(const struct pollfd *fds, nfds_t n)
{
    if (fz.idle_extra && !fz.idle_extra())
        return;
    pthread_mutex_lock(&fz.lock);
    fz.watch_all = !fds;
    fz.nwatch = 0;
    for (nfds_t i = 0; fds && i < n && fz.nwatch < 16; i++)
        fz.watch[fz.nwatch++] = fds[i];
    fz.gen++;
    pthread_cond_broadcast(&fz.cond);
    pthread_mutex_unlock(&fz.lock);
}

int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (timeout >= 0)
        return __real_poll(fds, n, timeout);
    int r = __real_poll(fds, n, 0);
    if (r != 0)
        return r;
    fz_went_idle(fds, n);
    return __real_poll(fds, n, timeout);
}

/* What poll() becomes under _FORTIFY_SOURCE when the array's size is known. */
int __real___poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __wrap___poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (timeout >= 0)
        return __real___poll_chk(fds, n, timeout, fdslen);
    int r = __real___poll_chk(fds, n, 0, fdslen);
    if (r != 0)
        return r;
    fz_went_idle(fds, n);
    return __real___poll_chk(fds, n, timeout, fdslen);
}

int __real_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout);
int __wrap_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    if (timeout >= 0)
        return __real_epoll_wait(epfd, ev, max, timeout);
    int r = __real_epoll_wait(epfd, ev, max, 0);
    if (r != 0)
        return r;
    fz_went_idle(NULL, 0);
    return __real_epoll_wait(epfd, ev, max, timeout);
}

enum virtq_pop_result __real_virtq_pop(struct virtq *q, struct virtq_chain *chain);
enum virtq_pop_result __wrap_virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
    fz_check(!fz.after_reset, "pop after the reset");
    enum virtq_pop_result r = __real_virtq_pop(q, chain);
    if (r != VIRTQ_CHAIN)
        return r;
    uint64_t out = 0, in = 0;
    for (unsigned k = 0; k < chain->n_out + chain->n_in; k++) {
        const struct iovec *v = &chain->iov[k];
        fz_check(fz_in_ram(v->iov_base, v->iov_len), "iovec outside guest RAM");
        *(k < chain->n_out ? &out : &in) += v->iov_len;
        uint64_t gpa = (uint64_t)((uint8_t *)v->iov_base - fz.ram);
        for (unsigned i = 0; k >= chain->n_out && i < fz.nq; i++)
            if (gpa < fz.q[i].used_gpa + 6 + 8 * (uint64_t)fz.q[i].size &&
                fz.q[i].used_gpa < gpa + v->iov_len)
                fz.wrote_rings = true;
    }
    fz.last_chain = chain;
    fz_check(out == chain->out_len && in == chain->in_len, "chain lengths do not add up");
    const uint8_t *last = NULL;
    for (unsigned k = chain->n_out + chain->n_in; k > chain->n_out && !last; k--)
        if (chain->iov[k - 1].iov_len)
            last = (const uint8_t *)chain->iov[k - 1].iov_base + chain->iov[k - 1].iov_len - 1;
    if (fz.npops < FZ_MAX_POPS)
        fz.pops[fz.npops++] = (struct fz_popped){ q, chain->head, false, chain->in_len, last };
    else
        fz.pops_overflow = true;
    return r;
}

void __real_virtq_push(struct virtq *q, uint16_t head, uint32_t len);
void __wrap_virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
    fz_check(!fz.after_reset, "push after the reset");
    fz.npushes++;
    struct fz_popped *first = NULL;
    if (!fz.pops_overflow) {
        /* The oldest chain with this head that is still out; a driver may
         * have made one head available twice, so bound by the largest. */
        uint64_t cap = 0;
        for (unsigned i = 0; i < fz.npops; i++) {
            struct fz_popped *p = &fz.pops[i];
            if (p->q != q || p->head != head || p->returned)
                continue;
            if (!first)
                first = p;
            if (p->in_len > cap)
                cap = p->in_len;
        }
        fz_check(first != NULL, "pushed a chain that was not popped");
        fz_check(len <= cap, "used length larger than the chain's writable bytes");
        first->returned = true;
    }
    if (fz.on_push)
        fz.on_push(q, head, len, first);
    __real_virtq_push(q, head, len);
}

/* ---- running the device --------------------------------------------------- */

/* Waits until the device thread went idle after generation since. */
static void fz_wait_idle(unsigned since)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += FZ_IDLE_MS / 1000;
    pthread_mutex_lock(&fz.lock);
    while (fz.gen == since) {
        int e = pthread_cond_timedwait(&fz.cond, &fz.lock, &end);
        fz_check(e != ETIMEDOUT, "the device thread did not go idle (hang)");
    }
    pthread_mutex_unlock(&fz.lock);
}

/* Whether the idle device thread waits for events on fd (so that an event
 * there is sure to wake it). Only while it is idle. */
static bool fz_watched(int fd, short events)
{
    pthread_mutex_lock(&fz.lock);
    bool w = fz.watch_all;
    for (unsigned i = 0; i < fz.nwatch && !w; i++)
        w = fz.watch[i].fd == fd && (fz.watch[i].events & events);
    pthread_mutex_unlock(&fz.lock);
    return w;
}

/* Publishes the held chains (the driver adding buffers) and kicks, while
 * the device is idle; returns true if a kick will wake the device (a
 * queue it no longer serves, broken, is not watched). */
static bool fz_publish(unsigned nq)
{
    bool wake = false, kick[FZ_NQ] = { false };
    for (unsigned i = 0; i < nq; i++) {
        if (!fz.hold[i])
            continue;
        __atomic_store_n((uint16_t *)(fz.ram + fz.q[i].avail_gpa + 2), fz.avail_idx[i],
                         __ATOMIC_RELEASE);
        fz.hold[i] = 0;
        kick[i] = true;
        wake |= fz_watched(fz.kick[i], POLLIN); /* before the first kick changes it */
    }
    for (unsigned i = 0; i < nq; i++)
        if (kick[i])
            eventfd_kick(fz.kick[i]);
    return wake;
}

/* After the reset: nothing more is pushed (the thread is gone), and no
 * more chains came back than went out. A chain returned by a grouped
 * used-ring update (not through virtq_push) counts too. */
static void fz_after_reset(unsigned nq)
{
    fz.after_reset = true;
    unsigned used = 0;
    for (unsigned i = 0; i < nq; i++)
        used += (uint16_t)(fz.q[i].used_idx - fz.start[i]);
    fz_check(used <= fz.npops || fz.pops_overflow, "more chains used than popped");
    fz_check(fz.npushes <= used, "pushes not counted in the used index");
    if (getenv("FUZZ_VERBOSE")) /* what a seed reached, for writing seeds */
        fprintf(stderr, "fuzz: %u popped, %u used, %u needs_reset, %u notify\n", fz.npops, used,
                atomic_load(&fz.transport.needs_reset), atomic_load(&fz.transport.notify));
}

#endif
