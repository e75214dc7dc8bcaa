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
 * - At most REQ_BUDGET requests between looks at the stop descriptor and
 *   the hiprio queue.
 * - A reply longer than the writable part cannot happen: the server
 *   writes only into out[] and returns what it wrote. A request with no
 *   room even for a reply header gets used length 0.
 * - A chain the queue code rejects (VIRTQ_BROKEN) sets NEEDS_RESET; a
 *   device reset ends the driver's session: every inode and open file the
 *   server holds for it is dropped (fuse_server_reset).
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

#define FS_QUEUE_MAX 256
#define Q_HIPRIO     0
#define Q_REQUEST    1
#define NUM_QUEUES   2
#define REQ_BUDGET   64

struct virtio_fs {
    struct virtio_device vdev;
    struct fuse_server *server;
    char tag[VIRTIO_FS_TAG_MAX];
    struct sandbox_rules rules; /* this share's: its Landlock directory */

    /* Owned by the device thread while it runs. */
    struct virtq *q[NUM_QUEUES];
    int kick[NUM_QUEUES];
    bool broken;
    struct virtq_chain chain;
};
_Static_assert(offsetof(struct virtio_fs, vdev) == 0, "the device is its virtio_device");

/* Serves up to budget chains of queue qi. Returns true if it stopped
 * with chains left. */
static bool serve(struct virtio_fs *fs, int qi, unsigned budget)
{
    struct virtq *q = fs->q[qi];
    if (!q || fs->broken)
        return false;
    bool pushed = false, more = false;
    unsigned done = 0;
    virtq_disable_notify(q);
    for (;;) {
        if (done >= budget ||
            atomic_load_explicit(&fs->vdev.thread.stopping, memory_order_relaxed)) {
            more = true;
            break;
        }
        if (virtio_device_pop(&fs->vdev, q, &fs->chain, &fs->broken) != VIRTQ_CHAIN)
            break;
        struct virtq_chain *ch = &fs->chain;
        size_t n = fuse_server_handle(fs->server, ch->iov, ch->n_out, ch->iov + ch->n_out,
                                      ch->n_in);
        virtq_push(q, ch->head, (uint32_t)n);
        pushed = true;
        done++;
    }
    if (pushed && virtq_should_notify(q))
        virtio_notify_queue(fs->vdev.transport, (unsigned)qi);
    return more;
}

static void *fs_thread(void *arg)
{
    struct virtio_fs *fs = arg;
    pthread_setname_np(pthread_self(), "virtio-fs");
    while (!atomic_load(&fs->vdev.thread.stopping)) {
        serve(fs, Q_HIPRIO, FS_QUEUE_MAX);
        bool more = serve(fs, Q_REQUEST, REQ_BUDGET);
        if (atomic_load(&fs->vdev.thread.stopping))
            break;
        struct pollfd pfd[1 + NUM_QUEUES];
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = fs->vdev.thread.stop_fd, .events = POLLIN };
        for (int i = 0; i < NUM_QUEUES; i++)
            if (fs->kick[i] >= 0 && !fs->broken)
                pfd[n++] = (struct pollfd){ .fd = fs->kick[i], .events = POLLIN };
        int res = poll(pfd, n, more ? 0 : -1);
        if (res < 0) {
            if (errno != EINTR)
                thread_wait_failed();
            continue;
        }
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
    return 0;
}

/* The driver's session is over (reset, or its module went away): what the
 * server held for it is dropped; the next driver starts with INIT. */
static void fs_release_queues(void *dev)
{
    struct virtio_fs *fs = dev;
    for (unsigned i = 0; i < NUM_QUEUES; i++) {
        fs->q[i] = NULL;
        fs->kick[i] = -1;
    }
    fuse_server_reset(fs->server);
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

void virtio_fs_free(struct virtio_fs *fs)
{
    if (!fs)
        return;
    virtio_device_destroy(&fs->vdev);
    fuse_server_free(fs->server);
    free(fs);
}

struct virtio_device *virtio_fs_device(struct virtio_fs *fs)
{
    return fs ? &fs->vdev : NULL;
}
