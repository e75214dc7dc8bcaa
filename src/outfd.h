/* Writing console output without ever blocking the writer: the serial
 * port writes from a vCPU thread and virtio-console from its device
 * thread, and a stalled reader (a pager, a terminal stopped with Ctrl-S,
 * a full pipe) must not be able to hold either. The descriptor belongs to
 * the caller and may be blocking; its flags are never changed, since the
 * description is shared with the application (often its stdout). */
#ifndef VMLET_OUTFD_H
#define VMLET_OUTFD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

enum out_fd_kind {
    OUT_NONE,   /* fd < 0: everything is discarded */
    OUT_DIRECT, /* regular file, block device, or already O_NONBLOCK */
    OUT_SOCKET, /* send() with MSG_DONTWAIT | MSG_NOSIGNAL */
    OUT_REOPEN, /* pipe, FIFO, terminal: a second O_NONBLOCK description */
    OUT_POLLED, /* reopening failed: poll() first, then a write that fits */
};

struct out_fd {
    int fd;    /* the caller's: polled for POLLOUT */
    int wr_fd; /* what is written: fd, or the O_NONBLOCK reopening */
    enum out_fd_kind kind;
    bool sigpipe;      /* writes can raise SIGPIPE (a pipe or FIFO) */
    size_t polled_max; /* OUT_POLLED: most bytes one write may carry */
};

/* Picks how to write fd without blocking. Reopening goes through
 * /proc/self/fd/N with O_NONBLOCK | O_NOCTTY: a new open file description
 * of the same pipe or terminal, so O_NONBLOCK there does not touch the
 * caller's. Regular files are written as they are (a new description
 * would have its own offset) and never wait for a reader. Never fails:
 * without /proc the fallback is OUT_POLLED, where a write follows a
 * POLLOUT and carries at most PIPE_BUF bytes to a pipe (which then cannot
 * block) and 1 byte to a terminal (whose poll said there is room). */
void out_fd_open(struct out_fd *o, int fd);
void out_fd_close(struct out_fd *o);

/* Writes as much of iov as the descriptor takes now. Returns the bytes
 * written (> 0), or -1 with errno: EAGAIN when it is full (wait for
 * POLLOUT on o->fd), anything else when it failed for good (EPIPE: the
 * reader is gone). A SIGPIPE this write raised is consumed, never
 * delivered. Thread-safe as far as the descriptor is. */
ssize_t out_fd_writev(struct out_fd *o, const struct iovec *iov, int iovcnt);

#endif
