/* The vsock guest's echo server (tests/lab/vsock.sh, port 6003) and its
 * guest-to-host sender (port 6002), built static by scripts/lab-images:
 *   vsockecho PORT     listens on AF_VSOCK PORT; a process per connection
 *                      writes back every byte it reads and closes once
 *                      the peer has half-closed.
 *   vsockecho --send CID PORT
 *                      connects to CID:PORT with a 60 s connect timeout,
 *                      copies stdin to it, half-closes and waits for the
 *                      peer to close; prints how long connect() took.
 * Why --send and not socat's VSOCK-CONNECT: socat cannot set the connect
 * timeout before connecting, and Linux's default, 2 s, was seen to run
 * out in the lab while the host pushed 64 MiB the other way (connect took
 * 0.75 s under that load in a calm lab; L1 shares 2 host cores with other
 * work). The transfer is what the test checks, not connect's latency.
 * Why not socat's PIPE address: socat moves a whole block (8 KiB) into its
 * own pipe with a blocking write once poll says the pipe has any room, so
 * when the other way is held up (no vsock credit) and the pipe fills, that
 * write waits for a reader that is socat itself. It was seen stuck in
 * anon_pipe_write with a Unix socket too, no VM involved. Here the one
 * write that can wait is to the socket, and the peer's reading frees it. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copies from one descriptor to another until EOF: 0, or 1 on an error. */
static int copy(int from, int to)
{
    static char buf[65536];
    for (;;) {
        ssize_t r = read(from, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "vsockecho: read: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0)
            return 0;
        if (write_all(to, buf, (size_t)r) < 0) {
            fprintf(stderr, "vsockecho: write: %s\n", strerror(errno));
            return 1;
        }
    }
}

static int echo(int fd)
{
    int rc = copy(fd, fd);
    close(fd); /* after the data: the peer reads it all, then EOF */
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int send_stdin(const char *cid, const char *port)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct timeval tv = { .tv_sec = 60 };
    struct sockaddr_vm addr = { .svm_family = AF_VSOCK,
                                .svm_cid = (unsigned)strtoul(cid, NULL, 10),
                                .svm_port = (unsigned)strtoul(port, NULL, 10) };
    if (fd < 0 || setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof tv) < 0) {
        fprintf(stderr, "vsockecho: socket: %s\n", strerror(errno));
        return 1;
    }
    double t0 = now_s();
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "vsockecho: connect to %s:%s after %.3f s: %s\n", cid, port, now_s() - t0,
                strerror(errno));
        return 1;
    }
    fprintf(stderr, "vsockecho: connected in %.3f s\n", now_s() - t0);
    if (copy(0, fd))
        return 1;
    shutdown(fd, SHUT_WR);
    char c;
    while (read(fd, &c, 1) > 0) {
    } /* until the peer closes: it has everything */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--send") == 0)
        return send_stdin(argv[2], argv[3]);
    if (argc != 2) {
        fprintf(stderr, "usage: vsockecho PORT | vsockecho --send CID PORT <data\n");
        return 2;
    }
    signal(SIGCHLD, SIG_IGN); /* children reap themselves */
    int lfd = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm addr = { .svm_family = AF_VSOCK,
                                .svm_cid = VMADDR_CID_ANY,
                                .svm_port = (unsigned)strtoul(argv[1], NULL, 10) };
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0) {
        fprintf(stderr, "vsockecho: listening on port %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "vsockecho: accept: %s\n", strerror(errno));
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            _exit(echo(fd));
        }
        if (pid < 0)
            fprintf(stderr, "vsockecho: fork: %s\n", strerror(errno));
        close(fd);
    }
}
