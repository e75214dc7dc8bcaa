/* Raw disk images: open and lock (flock(2)), size (fstat or BLKGETSIZE64),
 * and I/O through io_uring (liburing): readv, writev (optionally
 * RWF_DSYNC), fsync(DATASYNC) and fallocate for discard / write-zeroes,
 * with the same operations available synchronously for tests.
 *
 * Not thread-safe: one thread (the device thread) drives a disk. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "backend/disk.h"
#include "error.h"

/* Submission ring size; the completion ring is twice as large (the
 * kernel's default), which is DISK_QUEUE_DEPTH. */
#define DISK_SQ_ENTRIES (DISK_QUEUE_DEPTH / 2)

struct disk {
    int fd;
    bool read_only;
    bool no_zero_range; /* fallocate(ZERO_RANGE) said EOPNOTSUPP */
    bool no_punch_hole; /* fallocate(PUNCH_HOLE) said EOPNOTSUPP */
    uint64_t size;
    dev_t dev; /* the image's identity (a block device's too) */
    ino_t ino;
    char *path;
    int efd;
    struct io_uring ring;
    unsigned in_flight;
    unsigned cancels; /* cancel requests not yet reaped */
    bool cancelling;  /* disk_cancel_all() called, requests still in flight */
};

/* user_data of the cancel requests themselves: bit 0 set like a
 * falloc_op's, but no falloc_op lives at address 0. */
#define CANCEL_DATA ((uint64_t)1)

/* fallocate requests carry this instead of the caller's cookie, so a
 * completion with EOPNOTSUPP can be retried with the fallback mode.
 * user_data has bit 0 set to tell them apart from plain cookies. */
struct falloc_op {
    void *cookie;
    enum disk_op op;
    bool unmap;
    bool exhausted; /* no mode left: queued as a no-op */
    int mode;       /* the mode in flight */
    uint64_t offset, length;
};

/* ---- opening ---------------------------------------------------------- */

/* The same file as (dev, ino): a disk re-opening its own image. */
static bool same_file(const struct stat *st, const struct disk *current)
{
    return current && current->dev == st->st_dev && current->ino == st->st_ino;
}

int disk_file_open(struct disk_file *out, const char *path, bool read_only,
                   const struct disk *current, vmlet_error *err)
{
    *out = (struct disk_file){ .fd = -1 };
    /* A block device opened for writing is also opened O_EXCL, so the
     * kernel refuses one that is mounted on the host; not when it is the
     * device this disk already holds (that claim is ours). */
    struct stat pre;
    bool exists = stat(path, &pre) == 0;
    bool ours = exists && same_file(&pre, current);
    bool excl = !read_only && exists && S_ISBLK(pre.st_mode) && !ours;
    int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | (excl ? O_EXCL : 0) | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (excl && e == EBUSY)
            return set_error(err, VMLET_ERR_FILE,
                             "disk '%s' is a block device in use on the host (mounted?); "
                             "unmount it or attach it read-only",
                             path);
        if (e == ENOENT)
            return set_error(err, VMLET_ERR_FILE, "disk '%s' does not exist; check the path", path);
        if (e == EISDIR)
            return set_error(err, VMLET_ERR_FILE,
                             "disk '%s' is not a regular file or block device; give a raw disk "
                             "image",
                             path);
        if (!read_only && (e == EACCES || e == EROFS || e == EPERM))
            return set_error(err, VMLET_ERR_FILE,
                             "disk '%s' cannot be opened for writing (%s); fix its permissions or "
                             "attach it read-only",
                             path, strerror(e));
        return set_error(err, VMLET_ERR_FILE, "disk '%s' cannot be opened: %s", path, strerror(e));
    }

    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return set_error(err, VMLET_ERR_FILE, "disk '%s' cannot be examined: %s", path,
                         strerror(e));
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        close(fd);
        return set_error(err, VMLET_ERR_FILE,
                         "disk '%s' is not a regular file or block device; give a raw disk image",
                         path);
    }
    /* Locked before anything else is read, so the message a user sees
     * when the image is busy is about that. The disk's own file is
     * locked already, by its open file description. */
    if (!same_file(&st, current) && flock(fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return set_error(
                err, VMLET_ERR_FILE,
                "disk '%s' is in use by another process (locked); stop the other VM or use a copy",
                path);
        return set_error(err, VMLET_ERR_FILE, "disk '%s' cannot be locked: %s", path, strerror(e));
    }

    uint64_t size = (uint64_t)st.st_size;
    if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0) {
        int e = errno;
        close(fd);
        return set_error(err, VMLET_ERR_FILE, "disk '%s': cannot read the block device size: %s",
                         path, strerror(e));
    }
    *out = (struct disk_file){ .fd = fd, .size = size, .dev = st.st_dev, .ino = st.st_ino };
    return 0;
}

void disk_file_close(struct disk_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

int disk_open(struct disk **out, const char *path, bool read_only, vmlet_error *err)
{
    *out = NULL;
    struct disk_file f = { .fd = -1 };
    if (disk_file_open(&f, path, read_only, NULL, err) < 0 || f.fd < 0)
        return -1;
    int fd = f.fd;
    uint64_t size = f.size;

    struct disk *d = calloc(1, sizeof *d);
    char *p = strdup(path);
    if (!d || !p) {
        free(d);
        free(p);
        close(fd);
        return set_error(err, VMLET_ERR_NOMEM, "disk '%s': out of memory", path);
    }
    d->fd = fd;
    d->read_only = read_only;
    d->size = size;
    d->dev = f.dev;
    d->ino = f.ino;
    d->path = p;

    int r = io_uring_queue_init(DISK_SQ_ENTRIES, &d->ring, 0);
    if (r < 0) {
        free(d->path);
        free(d);
        close(fd);
        return set_error(
            err, VMLET_ERR_HOST,
            "disk '%s': cannot set up io_uring (%s); vmlet needs Linux 5.6 or later with "
            "io_uring allowed (see /proc/sys/kernel/io_uring_disabled and seccomp policy)",
            path, strerror(-r));
    }
    /* Check the opcodes we use exist (FALLOCATE is the newest, 5.6). */
    struct io_uring_probe *probe = io_uring_get_probe_ring(&d->ring);
    bool ok = probe && io_uring_opcode_supported(probe, IORING_OP_READV) &&
              io_uring_opcode_supported(probe, IORING_OP_WRITEV) &&
              io_uring_opcode_supported(probe, IORING_OP_FSYNC) &&
              io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
    if (probe)
        io_uring_free_probe(probe);
    d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!ok || d->efd < 0 || io_uring_register_eventfd(&d->ring, d->efd) < 0) {
        int e = errno;
        if (d->efd >= 0)
            close(d->efd);
        io_uring_queue_exit(&d->ring);
        free(d->path);
        free(d);
        close(fd);
        if (!ok)
            return set_error(
                err, VMLET_ERR_HOST,
                "disk '%s': this kernel's io_uring lacks readv/writev/fsync/fallocate; "
                "vmlet needs Linux 5.6 or later",
                path);
        return set_error(err, VMLET_ERR_HOST, "disk '%s': cannot set up the completion eventfd: %s",
                         path, strerror(e));
    }
    *out = d;
    return 0;
}

void disk_close(struct disk *d)
{
    if (!d)
        return;
    /* The kernel may still be writing into caller buffers: stop what can
     * be stopped, wait for the rest. */
    disk_cancel_all(d);
    struct disk_completion c[32];
    while (disk_in_flight(d)) {
        disk_wait(d);
        disk_reap(d, c, 32);
    }
    io_uring_queue_exit(&d->ring);
    close(d->efd);
    close(d->fd); /* also drops the flock */
    free(d->path);
    free(d);
}

uint64_t disk_size(const struct disk *d)
{
    return d->size;
}
bool disk_read_only(const struct disk *d)
{
    return d->read_only;
}
const char *disk_path(const struct disk *d)
{
    return d->path;
}
int disk_event_fd(const struct disk *d)
{
    return d->efd;
}
unsigned disk_in_flight(const struct disk *d)
{
    /* A cancel counts until reaped, so none can outlive a stop and hit
     * the requests of the next activation. */
    return d->in_flight + d->cancels;
}

void disk_replace_fd(struct disk *d, int fd)
{
    close(d->fd);
    d->fd = fd;
}

int disk_swap_file(struct disk *d, struct disk_file *f, const char *path)
{
    if (d->in_flight || d->cancels)
        return -EBUSY;
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    if (same_file(&(struct stat){ .st_dev = f->dev, .st_ino = f->ino }, d)) {
        /* The same image again (its size may have changed): the
         * descriptor that holds the lock stays. */
        disk_file_close(f);
    } else {
        close(d->fd); /* and its lock */
        d->fd = f->fd;
        d->dev = f->dev;
        d->ino = f->ino;
        /* Another file system may take what this one refused. */
        d->no_zero_range = d->no_punch_hole = false;
    }
    f->fd = -1;
    d->size = f->size;
    free(d->path);
    d->path = p;
    return 0;
}

/* ---- fallocate modes and their fallbacks ------------------------------ */

/* The fallocate mode to try for a discard / write-zeroes, or -1 when
 * nothing is left. Write-zeroes prefers ZERO_RANGE (keeps the blocks
 * allocated) unless unmap allows a hole; either way the other mode is
 * the fallback, since both make the range read as zeroes. Discard only
 * ever punches holes. A mode the file system refused once is not tried
 * again. */
static int falloc_mode(const struct disk *d, enum disk_op op, bool unmap)
{
    const int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    const int zero = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    if (op == DISK_DISCARD)
        return d->no_punch_hole ? -1 : punch;
    if (unmap && !d->no_punch_hole)
        return punch;
    if (!d->no_zero_range)
        return zero;
    return d->no_punch_hole ? -1 : punch;
}

static void note_unsupported(struct disk *d, int mode)
{
    if (mode & FALLOC_FL_ZERO_RANGE)
        d->no_zero_range = true;
    else
        d->no_punch_hole = true;
}

/* Final result of a fallocate request that has no mode left. Discard is
 * only a hint (virtio 1.2 section 5.2.6.2: the device MAY deallocate), so
 * "unsupported" is success; write-zeroes must really zero, so it fails. */
static int64_t falloc_exhausted(enum disk_op op)
{
    return op == DISK_DISCARD ? 0 : -EOPNOTSUPP;
}

/* ---- asynchronous path ------------------------------------------------ */

static struct io_uring_sqe *get_sqe(struct disk *d)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
    if (!sqe) {
        /* Ring full: hand what is queued to the kernel to make room. */
        io_uring_submit(&d->ring);
        sqe = io_uring_get_sqe(&d->ring);
    }
    return sqe;
}

/* Queues a fallocate, or a no-op when no mode is left so the caller
 * still gets its completion through disk_reap(). */
static int queue_falloc(struct disk *d, struct falloc_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(d);
    if (!sqe)
        return -EBUSY;
    op->mode = falloc_mode(d, op->op, op->unmap);
    if (op->mode < 0) {
        op->exhausted = true;
        io_uring_prep_nop(sqe);
    } else {
        io_uring_prep_fallocate(sqe, d->fd, op->mode, (off_t)op->offset, (off_t)op->length);
    }
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | 1);
    return 0;
}

static bool op_writes(enum disk_op op)
{
    return op == DISK_WRITE || op == DISK_DISCARD || op == DISK_WRITE_ZEROES;
}

int disk_submit(struct disk *d, const struct disk_request *req)
{
    if ((uintptr_t)req->cookie & 1 || req->op > DISK_WRITE_ZEROES)
        return -EINVAL;
    if (d->in_flight >= DISK_QUEUE_DEPTH)
        return -EBUSY;
    if (op_writes(req->op) && d->read_only)
        return -EROFS;

    if (req->op == DISK_DISCARD || req->op == DISK_WRITE_ZEROES) {
        struct falloc_op *op = malloc(sizeof *op);
        if (!op)
            return -ENOMEM;
        *op = (struct falloc_op){ .cookie = req->cookie,
                                  .op = req->op,
                                  .unmap = req->unmap,
                                  .offset = req->offset,
                                  .length = req->length };
        int r = queue_falloc(d, op);
        if (r < 0) {
            free(op);
            return r;
        }
        d->in_flight++;
        return 0;
    }

    struct io_uring_sqe *sqe = get_sqe(d);
    if (!sqe)
        return -EBUSY;
    if (req->op == DISK_READ)
        io_uring_prep_readv(sqe, d->fd, req->iov, req->iovcnt, req->offset);
    else if (req->op == DISK_WRITE)
        io_uring_prep_writev2(sqe, d->fd, req->iov, req->iovcnt, req->offset,
                              req->sync ? RWF_DSYNC : 0);
    else
        io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data(sqe, req->cookie);
    d->in_flight++;
    return 0;
}

int disk_cancel_all(struct disk *d)
{
    if (!d->in_flight)
        return 0;
    d->cancelling = true;
    struct io_uring_sqe *sqe = get_sqe(d);
    if (!sqe)
        return -EBUSY;
    /* One request that matches every other one. Requests still queued
     * (not kicked) are submitted just before it, so it covers them too. */
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, CANCEL_DATA);
    d->cancels++;
    int r = io_uring_submit(&d->ring);
    return r < 0 ? r : 0;
}

int disk_kick(struct disk *d)
{
    if (!io_uring_sq_ready(&d->ring))
        return 0;
    int r = io_uring_submit(&d->ring);
    return r < 0 ? r : 0;
}

void disk_wait(struct disk *d)
{
    if (!disk_in_flight(d))
        return;
    /* Submits anything still queued (so we never wait for a request the
     * kernel has not seen) and sleeps until a completion is posted. */
    io_uring_submit_and_wait(&d->ring, 1);
}

unsigned disk_reap(struct disk *d, struct disk_completion *out, unsigned max)
{
    unsigned n = 0;
    bool requeued = false;
    struct io_uring_cqe *cqe;
    while (n < max && io_uring_peek_cqe(&d->ring, &cqe) == 0) {
        uint64_t data = io_uring_cqe_get_data64(cqe);
        int64_t res = cqe->res;
        io_uring_cqe_seen(&d->ring, cqe);
        if (data == CANCEL_DATA) {
            d->cancels--; /* its result (how many it cancelled) is not needed */
            continue;
        }
        if (!(data & 1)) {
            out[n++] = (struct disk_completion){ (void *)(uintptr_t)data, res };
            d->in_flight--;
            continue;
        }
        struct falloc_op *op = (struct falloc_op *)(uintptr_t)(data & ~(uint64_t)1);
        if (op->exhausted) {
            res = falloc_exhausted(op->op);
        } else if (res == -EOPNOTSUPP && d->cancelling) {
            res = -ECANCELED; /* stopping: no fallback */
        } else if (res == -EOPNOTSUPP) {
            note_unsupported(d, op->mode);
            int r = queue_falloc(d, op); /* the fallback, or a no-op */
            if (r == 0) {
                requeued = true;
                continue;
            }
            res = r;
        }
        out[n++] = (struct disk_completion){ op->cookie, res };
        d->in_flight--;
        free(op);
    }
    if (requeued)
        disk_kick(d);
    if (!d->in_flight && !d->cancels)
        d->cancelling = false;
    return n;
}

/* ---- synchronous path ------------------------------------------------- */

/* preadv/pwritev until done: the kernel may transfer less than asked
 * (e.g. more than 2 GiB at once). Works on a private copy of the iovecs. */
static int64_t rw_full(struct disk *d, const struct disk_request *req)
{
    if (req->iovcnt > IOV_MAX)
        return -EINVAL;
    struct iovec iov[IOV_MAX];
    memcpy(iov, req->iov, req->iovcnt * sizeof *iov);
    unsigned first = 0, n = req->iovcnt;
    uint64_t total = 0, off = req->offset;
    for (;;) {
        while (first < n && iov[first].iov_len == 0)
            first++;
        if (first == n)
            return (int64_t)total;
        ssize_t r = req->op == DISK_READ ? preadv(d->fd, iov + first, (int)(n - first), (off_t)off)
                                         : pwritev2(d->fd, iov + first, (int)(n - first),
                                                    (off_t)off, req->sync ? RWF_DSYNC : 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* end of file: the image shrank under us */
        total += (uint64_t)r;
        off += (uint64_t)r;
        size_t left = (size_t)r;
        while (left) {
            size_t step = left < iov[first].iov_len ? left : iov[first].iov_len;
            iov[first].iov_base = (uint8_t *)iov[first].iov_base + step;
            iov[first].iov_len -= step;
            left -= step;
            if (!iov[first].iov_len)
                first++;
        }
    }
}

int64_t disk_execute(struct disk *d, const struct disk_request *req)
{
    if (op_writes(req->op) && d->read_only)
        return -EROFS;
    switch (req->op) {
    case DISK_READ:
    case DISK_WRITE: return rw_full(d, req);
    case DISK_FLUSH: return fdatasync(d->fd) < 0 ? -errno : 0;
    case DISK_DISCARD:
    case DISK_WRITE_ZEROES:
        for (;;) {
            int mode = falloc_mode(d, req->op, req->unmap);
            if (mode < 0)
                return falloc_exhausted(req->op);
            if (fallocate(d->fd, mode, (off_t)req->offset, (off_t)req->length) == 0)
                return 0;
            if (errno != EOPNOTSUPP)
                return -errno;
            note_unsupported(d, mode);
        }
    }
    return -EINVAL;
}
