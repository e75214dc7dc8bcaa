/* virtio-fs, virtio 1.2 section 5.11: device id 26, the hiprio queue and
 * one request queue (5.11.2), no feature bits (no notification queue:
 * 5.11.3), the mount tag and num_request_queues in the configuration
 * space (5.11.4). Each request is a FUSE message (5.11.6): the readable
 * part is the request, the writable part the reply; src/fs/fuse_server.c
 * answers it straight from and into guest memory.
 *
 * Decisions:
 * - One thread serves both queues. The hiprio queue (FORGET and
 *   BATCH_FORGET, which take no reply) is drained before every batch of
 *   requests, so forgets are never stuck behind a long run of I/O.
 * - While requests come, the hiprio queue is quiet: its notifications
 *   off and its completions told 32 at a time, so the FORGET the guest
 *   sends after each unlink (or at every inode it drops) costs it no exit
 *   and no interrupt; the forgets ride along with the next request's
 *   wake-up. 20 ms without a request end the quiet: whatever is there is
 *   answered and told, and notifications go back on. A FORGET only frees
 *   a host descriptor, so a late one changes nothing the guest can see
 *   (a LOOKUP meanwhile adds to the same inode's count).
 * - At most REQ_BUDGET requests between looks at the stop descriptor and
 *   the hiprio queue.
 * - A reply longer than the writable part cannot happen: the server
 *   writes only into out[] and returns what it wrote. A request with no
 *   room even for a reply header gets used length 0.
 * - A chain the queue code rejects (VIRTQ_BROKEN) sets NEEDS_RESET; a
 *   device reset ends the driver's session: every inode and open file the
 *   server holds for it is dropped (fuse_server_reset).
 * - Snapshots (docs/shared-directories.md): only the FUSE session's
 *   state is saved; after a restore the share holds its root alone and
 *   the guest's old nodeids and open files fail cleanly
 *   (fuse_server_load).
 * - The thread's sandbox (src/sandbox.h) allows the file system calls the
 *   server makes, and Landlock only beneath the shared directory (read
 *   and list only for a read-only share). */
#include "virtio/device.h"
#include "virtio/fs.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include "error.h"
#include "fs/fuse_server.h"

#define FS_QUEUE_MAX      256
#define Q_HIPRIO          0
#define Q_REQUEST         1
#define NUM_QUEUES        2
#define REQ_BUDGET        64
/* While requests come, FORGETs ride along (serve_hiprio): at most this
 * long after the last request they are picked up and told anyway... */
#define FORGET_WAIT_MS    20
/* ...and the guest hears of this many completed ones at once. */
#define FORGET_SIGNAL_MAX 32

struct virtio_fs {
    struct virtio_device vdev;
    struct fuse_server *server;
    char tag[VIRTIO_FS_TAG_MAX];
    struct sandbox_rules rules; /* this share's: its Landlock directory */

    /* Owned by the device thread while it runs. */
    struct virtq *q[NUM_QUEUES];
    int kick[NUM_QUEUES];
    bool broken;
    bool hiprio_quiet;      /* hiprio notifications off (serve_hiprio) */
    unsigned hiprio_untold; /* hiprio completions the guest was not told of */
    int forget_wait_ms;     /* FORGET_WAIT_MS; tests may change it */
    struct virtq_chain chain;
};
_Static_assert(offsetof(struct virtio_fs, vdev) == 0, "the device is its virtio_device");

/* Answers the chain just popped from q and puts it in the used ring. */
static void answer(struct virtio_fs *fs, struct virtq *q)
{
    struct virtq_chain *ch = &fs->chain;
    size_t n = fuse_server_handle(fs->server, ch->iov, ch->n_out, ch->iov + ch->n_out, ch->n_in);
    virtq_push(q, ch->head, (uint32_t)n);
}

/* Serves up to budget chains of the request queue; *served counts them.
 * Returns true if it stopped with chains left. */
static bool serve_requests(struct virtio_fs *fs, unsigned budget, unsigned *served)
{
    struct virtq *q = fs->q[Q_REQUEST];
    *served = 0;
    if (!q || fs->broken)
        return false;
    bool more = false;
    virtq_disable_notify(q);
    for (;;) {
        if (*served >= budget ||
            atomic_load_explicit(&fs->vdev.thread.stopping, memory_order_relaxed)) {
            more = true;
            break;
        }
        if (virtio_device_pop(&fs->vdev, q, &fs->chain, &fs->broken) != VIRTQ_CHAIN)
            break;
        answer(fs, q);
        (*served)++;
    }
    if (*served && virtq_should_notify(q))
        virtio_notify_queue(fs->vdev.transport, Q_REQUEST);
    return more;
}

/* Drains the hiprio queue (FORGET, BATCH_FORGET: no reply awaited).
 * Quiet (the request queue is busy): its notifications stay off, so a
 * FORGET costs the guest no exit, and its completions are told to the
 * guest only FORGET_SIGNAL_MAX at a time; the next wake-up for a request
 * picks the forgets up, and FORGET_WAIT_MS without one ends the quiet
 * (fs_thread). Not quiet: everything is told and notifications go on. */
static void serve_hiprio(struct virtio_fs *fs, bool quiet)
{
    struct virtq *q = fs->q[Q_HIPRIO];
    if (!q || fs->broken)
        return;
    if (quiet)
        virtq_quiet_notify(q);
    else
        virtq_disable_notify(q);
    for (unsigned done = 0; done < FS_QUEUE_MAX; done++) {
        enum virtq_pop_result res;
        if (quiet) {
            res = virtq_pop(q, &fs->chain);
            if (res == VIRTQ_BROKEN) {
                fs->broken = true;
                virtio_set_needs_reset(fs->vdev.transport);
            }
        } else {
            res = virtio_device_pop(&fs->vdev, q, &fs->chain, &fs->broken);
        }
        if (res != VIRTQ_CHAIN)
            break;
        answer(fs, q);
        fs->hiprio_untold++;
    }
    if (fs->hiprio_untold && (!quiet || fs->hiprio_untold >= FORGET_SIGNAL_MAX)) {
        fs->hiprio_untold = 0;
        if (virtq_should_notify(q))
            virtio_notify_queue(fs->vdev.transport, Q_HIPRIO);
    }
}

static void *fs_thread(void *arg)
{
    struct virtio_fs *fs = arg;
    pthread_setname_np(pthread_self(), "virtio-fs");
    while (!atomic_load(&fs->vdev.thread.stopping)) {
        serve_hiprio(fs, fs->hiprio_quiet);
        unsigned served;
        bool more = serve_requests(fs, REQ_BUDGET, &served);
        if (served && !fs->hiprio_quiet && fs->q[Q_HIPRIO] && !fs->broken) {
            fs->hiprio_quiet = true;
            virtq_quiet_notify(fs->q[Q_HIPRIO]);
        }
        if (atomic_load(&fs->vdev.thread.stopping))
            break;
        struct pollfd pfd[1 + NUM_QUEUES];
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = fs->vdev.thread.stop_fd, .events = POLLIN };
        for (int i = 0; i < NUM_QUEUES; i++)
            if (fs->kick[i] >= 0 && !fs->broken)
                pfd[n++] = (struct pollfd){ .fd = fs->kick[i], .events = POLLIN };
        int timeout = more ? 0 : fs->hiprio_quiet ? fs->forget_wait_ms : -1;
        int res = poll(pfd, n, timeout);
        if (res < 0) {
            if (errno != EINTR)
                thread_wait_failed();
            continue;
        }
        if (res == 0 && !more)
            fs->hiprio_quiet = false; /* idle: the next drain tells all, notifications on */
        if (pfd[0].revents)
            break;
        for (nfds_t k = 1; k < n; k++) {
            for (int i = 0; i < NUM_QUEUES; i++) {
                if (pfd[k].revents && pfd[k].fd == fs->kick[i]) {
                    virtio_take_kick(&fs->kick[i], pfd[k].revents);
                    break;
                }
            }
        }
    }
    return NULL;
}

/* ---- virtio_device_ops ---------------------------------------------------- */

/* struct virtio_fs_config: tag[36], le32 num_request_queues. */
static void fs_config_read(void *dev, size_t offset, uint8_t *data, size_t len)
{
    struct virtio_fs *fs = dev;
    uint8_t image[VIRTIO_FS_TAG_MAX + 4];
    memcpy(image, fs->tag, VIRTIO_FS_TAG_MAX);
    put_le32(image + VIRTIO_FS_TAG_MAX, NUM_QUEUES - 1);
    config_copy_out(image, sizeof image, offset, data, len, 0);
}

static void fs_config_write(void *dev, size_t offset, const uint8_t *data, size_t len)
{
    (void)dev; /* read-only (5.11.4) */
    (void)offset;
    (void)data;
    (void)len;
}

static int fs_take_queues(void *dev, const struct virtio_queues *qs)
{
    struct virtio_fs *fs = dev;
    for (unsigned i = 0; i < NUM_QUEUES; i++) {
        fs->q[i] = i < qs->count ? qs->q[i] : NULL;
        fs->kick[i] = fs->q[i] ? qs->kick_fd[i] : -1;
    }
    fs->broken = false;
    fs->hiprio_quiet = false;
    fs->hiprio_untold = 0;
    return 0;
}

/* The driver's session is over (reset, or its module went away): what the
 * server held for it is dropped; the next driver starts with INIT. A stop
 * for a snapshot ends no session: the VM goes on with it afterwards.
 * Nothing is held: each request was answered before the next was taken. */
static void fs_release_queues(void *dev)
{
    struct virtio_fs *fs = dev;
    for (unsigned i = 0; i < NUM_QUEUES; i++) {
        fs->q[i] = NULL;
        fs->kick[i] = -1;
    }
    if (!fs->vdev.quiescing)
        fuse_server_reset(fs->server);
}

/* Snapshots: the FUSE session's state (fuse_server_save); the share
 * itself (path, tag, ro, cache) is the device's record. */
static int fs_save(void *dev, uint8_t *buf, size_t cap)
{
    struct virtio_fs *fs = dev;
    return fuse_server_save(fs->server, buf, cap);
}

static int fs_load(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    struct virtio_fs *fs = dev;
    return fuse_server_load(fs->server, buf, len, why, whylen);
}

static void fs_metrics(void *dev, virtio_metric_fn fn, void *opaque)
{
    struct virtio_fs *fs = dev;
    struct fuse_server_stats s;
    fuse_server_get_stats(fs->server, &s);
    fn(opaque, "requests", s.requests);
    fn(opaque, "errors", s.errors);
    fn(opaque, "malformed", s.malformed);
    fn(opaque, "bytes_read", s.bytes_read);
    fn(opaque, "bytes_written", s.bytes_written);
    fn(opaque, "open_files", s.open_handles);
    fn(opaque, "inodes", s.inodes);
    char name[32];
    for (unsigned op = 0; op < sizeof s.by_opcode / sizeof s.by_opcode[0]; op++) {
        const char *opname = fuse_opcode_name(op);
        if (!opname)
            continue;
        snprintf(name, sizeof name, "op_%s", opname);
        fn(opaque, name, s.by_opcode[op]);
    }
}

static void fs_free_op(void *dev)
{
    virtio_fs_free(dev);
}

static const struct virtio_device_ops fs_ops = {
    .name = "fs",
    .device_id = VIRTIO_ID_FS,
    .num_queues = NUM_QUEUES,
    .queue_max_size = FS_QUEUE_MAX,
    .features = 0,
    .config_size = VIRTIO_FS_TAG_MAX + 4,
    .config_read = fs_config_read,
    .config_write = fs_config_write,
    .metrics = fs_metrics,
    .free = fs_free_op,
    .save = fs_save,
    .load = fs_load,
};

static const struct virtio_device_hooks fs_hooks = {
    .thread_fn = fs_thread,
    .take_queues = fs_take_queues,
    .release_queues = fs_release_queues,
};

/* ---- life cycle ----------------------------------------------------------- */

struct virtio_fs *virtio_fs_new(const char *host_path, const char *tag, bool read_only,
                                vmlet_error *err)
{
    size_t tag_len = strlen(tag);
    if (tag_len == 0 || tag_len > VIRTIO_FS_TAG_MAX) {
        set_error(err, VMLET_ERR_INVALID, "share '%s': the tag must be 1 to %d bytes", host_path,
                  VIRTIO_FS_TAG_MAX);
        return NULL;
    }
    struct virtio_fs *fs = virtio_device_new(sizeof *fs, &fs_ops, &fs_hooks, err);
    if (!fs)
        return NULL;
    fs->kick[0] = fs->kick[1] = -1;
    fs->forget_wait_ms = FORGET_WAIT_MS;
    memcpy(fs->tag, tag, tag_len); /* zero-padded, not terminated at 36 (5.11.4) */
    fs->server = fuse_server_new(host_path, read_only, err);
    if (!fs->server) {
        virtio_device_free(fs);
        return NULL;
    }
    fs->rules = fuse_server_sandbox_rules(fs->server);
    fs->vdev.sandbox = &fs->rules;
    return fs;
}

void virtio_fs_set_cache_always(struct virtio_fs *fs, bool always)
{
    fuse_server_set_cache_always(fs->server, always);
}

void virtio_fs_free(struct virtio_fs *fs)
{
    if (!fs)
        return;
    virtio_device_destroy(&fs->vdev);
    fuse_server_free(fs->server);
    free(fs);
}

#ifdef VMLET_UNIT_TEST
/* How long the hiprio queue stays quiet after a request; before activate
 * (declared in the test, not in the header). */
void virtio_fs_test_forget_wait(struct virtio_fs *fs, int ms);
void virtio_fs_test_forget_wait(struct virtio_fs *fs, int ms)
{
    fs->forget_wait_ms = ms;
}
#endif

struct virtio_device *virtio_fs_device(struct virtio_fs *fs)
{
    return fs ? &fs->vdev : NULL;
}
