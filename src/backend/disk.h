/* A raw disk image (regular file or block device) with asynchronous I/O
 * through io_uring.
 *
 * Usage: disk_open(); then, from one thread at a time, queue requests with
 * disk_submit() (each carries a caller cookie), start them with
 * disk_kick(), and when disk_event_fd() is readable collect results with
 * disk_reap(). disk_execute() does the same work synchronously (for tests
 * and the fuzzer). To stop, disk_cancel_all() and then disk_wait() and
 * disk_reap() until disk_in_flight() is 0; disk_close() does that itself
 * for anything still in flight.
 *
 * The image is locked with flock(): exclusively when opened read-write,
 * shared when read-only, so two VMs never write the same image. */
#ifndef VMLET_BACKEND_DISK_H
#define VMLET_BACKEND_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "vmlet.h"

struct disk;

/* Requests that may be in flight at once (the completion ring's size, so
 * completions never overflow); disk_submit() refuses more with -EBUSY. */
#define DISK_QUEUE_DEPTH 512

enum disk_op {
    DISK_READ,         /* readv iov at offset */
    DISK_WRITE,        /* writev iov at offset; .sync makes it durable */
    DISK_FLUSH,        /* fdatasync */
    DISK_DISCARD,      /* deallocate [offset, offset+length); best effort */
    DISK_WRITE_ZEROES, /* [offset, offset+length) reads as zeroes after;
                            .unmap allows deallocating it */
};

struct disk_request {
    enum disk_op op;
    const struct iovec *iov; /* READ/WRITE: must stay valid until reaped */
    unsigned iovcnt;
    uint64_t offset;
    uint64_t length; /* DISCARD/WRITE_ZEROES */
    bool sync;       /* WRITE: RWF_DSYNC (write-through) */
    bool unmap;      /* WRITE_ZEROES: may punch a hole */
    void *cookie;    /* returned by disk_reap; bit 0 must be 0
                                  (any pointer to an object is fine) */
};

struct disk_completion {
    void *cookie;
    int64_t result; /* bytes transferred (READ/WRITE; may be
                                  short), 0, or -errno */
};

/* Opens and locks the image, of any size: the guest sees its whole
 * 512-byte sectors (none for an empty file: a placeholder). On failure fills err with one
 * line naming the file and what to do, and returns -1. */
int disk_open(struct disk **out, const char *path, bool read_only, vmlet_error *err);

/* An image opened, locked and sized, not yet serving a disk: the part of
 * disk_open that touches the file system, for a caller that swaps a
 * disk's image (disk_swap_file) and must open it in its own thread. */
struct disk_file {
    int fd; /* -1: none */
    uint64_t size;
    dev_t dev;
    ino_t ino;
};
/* Opens path as disk_open does (same checks and messages). current: the
 * disk whose image this replaces, or NULL; when path is that disk's own
 * image, it is neither locked nor claimed again (its lock is held). */
int disk_file_open(struct disk_file *out, const char *path, bool read_only,
                   const struct disk *current, vmlet_error *err);
void disk_file_close(struct disk_file *f);
/* Serves d from f (taken: f->fd becomes -1) under the name path from now
 * on; the old image is closed and unlocked, unless f is that same image,
 * whose descriptor then stays and whose size is updated. Only while
 * nothing is in flight: -EBUSY otherwise, -ENOMEM; 0 on success. */
int disk_swap_file(struct disk *d, struct disk_file *f, const char *path);
/* Waits for in-flight requests, then releases the lock and the file. */
void disk_close(struct disk *d);

uint64_t disk_size(const struct disk *d); /* bytes */
bool disk_read_only(const struct disk *d);
const char *disk_path(const struct disk *d);

/* Readable (EFD_NONBLOCK eventfd) when completions may be waiting; the
 * caller reads it to clear it before calling disk_reap(). */
int disk_event_fd(const struct disk *d);

/* Queues one request; nothing reaches the kernel until disk_kick(),
 * except when the submission ring fills up. Returns 0 or -errno (then no
 * completion will be delivered for this cookie). */
int disk_submit(struct disk *d, const struct disk_request *req);
/* Hands everything queued to the kernel. Returns 0 or -errno. */
int disk_kick(struct disk *d);
/* Collects up to max finished requests without blocking; returns how many. */
unsigned disk_reap(struct disk *d, struct disk_completion *out, unsigned max);
/* Blocks until at least one completion is ready (or nothing is in flight). */
void disk_wait(struct disk *d);
/* Requests submitted and not yet reaped, disk_cancel_all()'s included. */
unsigned disk_in_flight(const struct disk *d);
/* Asks the kernel to cancel every request in flight (io_uring
 * ASYNC_CANCEL with CANCEL_ANY, Linux 5.19 or later; on older kernels
 * nothing is cancelled and requests just finish). Each request is still
 * reaped as usual, with -ECANCELED if it was cancelled, or its own result
 * if it had already finished or could not be stopped (a read or write
 * already under way in the kernel); the caller must keep its buffers
 * until then. Until nothing is in flight, no request is retried or
 * followed up (no fallocate fallback). Returns 0 or -errno. */
int disk_cancel_all(struct disk *d);

/* For tests: serves I/O from fd (which the disk now owns) instead of the
 * image, e.g. a pipe, whose reads wait until something is written. The
 * image's descriptor is closed. Only while nothing is in flight. */
void disk_replace_fd(struct disk *d, int fd);

/* Does one request synchronously (same semantics and fallbacks as the
 * asynchronous path, full transfer or error); returns like result above. */
int64_t disk_execute(struct disk *d, const struct disk_request *req);

#endif
