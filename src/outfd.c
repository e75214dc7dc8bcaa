/* Non-blocking console output (outfd.h). */
#include "outfd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void out_fd_open(struct out_fd *o, int fd)
{
    *o = (struct out_fd){ .fd = fd, .wr_fd = fd, .kind = OUT_NONE };
    if (fd < 0)
        return;
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fstat(fd, &st) < 0 || fl < 0) {
        o->kind = OUT_DIRECT; /* writes will report the error */
        return;
    }
    o->sigpipe = S_ISFIFO(st.st_mode);
    if (S_ISSOCK(st.st_mode)) {
        o->kind = OUT_SOCKET;
        return;
    }
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || (fl & O_NONBLOCK)) {
        o->kind = OUT_DIRECT;
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int nb = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (nb >= 0) {
        o->wr_fd = nb;
        o->kind = OUT_REOPEN;
        return;
    }
    /* No /proc, a FIFO whose reader is already gone (ENXIO: writes will
     * say EPIPE), or a terminal in exclusive mode. */
    o->kind = OUT_POLLED;
    o->polled_max = S_ISFIFO(st.st_mode) ? PIPE_BUF : 1;
}

void out_fd_close(struct out_fd *o)
{
    if (o->kind == OUT_REOPEN && o->wr_fd >= 0)
        close(o->wr_fd);
    *o = (struct out_fd){ .fd = -1, .wr_fd = -1, .kind = OUT_NONE };
}

/* iov cut to at most max bytes, into dst (same count or fewer). */
static int iov_cut(const struct iovec *iov, int n, size_t max, struct iovec *dst)
{
    int k = 0;
    for (int i = 0; i < n && max; i++) {
        if (!iov[i].iov_len)
            continue;
        size_t l = iov[i].iov_len < max ? iov[i].iov_len : max;
        dst[k++] = (struct iovec){ .iov_base = iov[i].iov_base, .iov_len = l };
        max -= l;
    }
    return k;
}

static ssize_t write_once(struct out_fd *o, const struct iovec *iov, int iovcnt)
{
    switch (o->kind) {
    case OUT_SOCKET: {
        struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
        return sendmsg(o->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    case OUT_POLLED: {
        struct pollfd p = { .fd = o->fd, .events = POLLOUT };
        int r = poll(&p, 1, 0);
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = EAGAIN;
            return -1;
        }
        if (p.revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
        /* POLLOUT, POLLERR or POLLHUP: a write this small does not wait
         * (or returns the error). */
        struct iovec cut[16];
        int k = iov_cut(iov, iovcnt < 16 ? iovcnt : 16, o->polled_max, cut);
        return k ? writev(o->wr_fd, cut, k) : 0;
    }
    default: return writev(o->wr_fd, iov, iovcnt);
    }
}

ssize_t out_fd_writev(struct out_fd *o, const struct iovec *iov, int iovcnt)
{
    if (o->kind == OUT_NONE) {
        errno = EBADF;
        return -1;
    }
    /* A pipe whose reader closed raises SIGPIPE at the writing thread:
     * block it around the write and take one this write caused. */
    sigset_t pipe_set, old_set, pend;
    bool was_pending = false;
    if (o->sigpipe) {
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
        if (sigpending(&pend) == 0)
            was_pending = sigismember(&pend, SIGPIPE) == 1;
    }
    ssize_t n;
    do {
        n = write_once(o, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    int saved = errno;
    if (o->sigpipe) {
        if (n < 0 && errno == EPIPE && !was_pending) {
            static const struct timespec zero = { 0, 0 };
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
        pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    }
    if (n < 0 && saved == EWOULDBLOCK)
        saved = EAGAIN;
    if (n == 0) /* nothing taken from a non-empty write: treat as full */
        saved = EAGAIN, n = -1;
    errno = saved;
    return n;
}
