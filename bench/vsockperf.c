/* vsockperf: throughput and connection rate over vsock, for bench/vsock.
 * One standalone program (libc and pthreads only), both ends:
 *
 *   vsockperf server PORT
 *       in the guest: listens on AF_VSOCK (any CID) PORT, a thread per
 *       connection.
 *   vsockperf client (--vsock CID | --uds PATH) --port P
 *                    --test to-guest|from-guest|connrate
 *                    [--streams N] [--seconds S] [--timeout T]
 *       on the host: --vsock connects with AF_VSOCK (QEMU's vhost-vsock);
 *       --uds connects to a hybrid-vsock Unix socket (vmlet --vsock
 *       cid=N,uds=PATH, as Firecracker's) and first does its handshake:
 *       "CONNECT <port>\n" out, "OK <host_port>\n" back.
 *   vsockperf server --uds PATH PORT
 *       a test aid: the same server on a Unix socket at PATH, playing
 *       vmlet's side of the handshake (only CONNECT PORT is accepted), so
 *       that the client can be checked without a VM (bench/vsockperf-test).
 *
 * The protocol: the client's first byte picks the test.
 *   'S' sink    the server reads to EOF, then writes the number of bytes
 *               it read (8 bytes, little-endian) and closes.
 *   'R' source  the client sends a count (8 bytes, little-endian; 0 means
 *               no limit); the server writes that many bytes, or until it
 *               sees the client's EOF (shutdown(SHUT_WR)), and closes.
 *   'E' echo    the server reads a byte and writes it back, until EOF.
 *
 * Client tests (one line "RESULT key=value ..." at the end, MB = 10^6
 * bytes, client_cpu_s this process's CPU time; exit status 1 with a
 * one-line error on any failure):
 *   to-guest    N streams write for S seconds, shut down their write side
 *               and wait for the server's count, which must equal what they
 *               sent; throughput over the time until the last count came.
 *   from-guest  N streams each ask for an unlimited source, read for S
 *               seconds, shut down their write side and read the rest to
 *               EOF; throughput over the time until the last EOF.
 *   connrate    one after another for S seconds: connect (with the
 *               handshake for --uds), a 1-byte echo, close.
 * Every socket has a send and receive timeout (--timeout, default 30 s), so
 * a guest that stops moving data makes the test fail rather than hang.
 * --buffer-size (--vsock only) sets the AF_VSOCK socket's buffer, which the
 * host kernel advertises to the guest as this end's receive window
 * (buf_alloc; Linux's default is 256 KiB, vmlet's Unix-socket side always
 * advertises 64 KiB): for comparing the two with equal windows. */
#include <errno.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TEST_SINK   'S'
#define TEST_SOURCE 'R'
#define TEST_ECHO   'E'

#define BUF_SIZE    (64 * 1024)
#define MAX_STREAMS 64
#define HS_LINE_MAX 64 /* the handshake's lines */
#define FAKE_PORT   1073741824u

static const char *prog = "vsockperf";

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", prog, line);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: error: %s\n", prog, line);
    exit(1);
}

static double now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die("clock_gettime: %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What went wrong with a socket call, in words: a timeout says so. */
static const char *sock_error(int err, char *buf, size_t len)
{
    if (err == EAGAIN || err == EWOULDBLOCK)
        snprintf(buf, len, "timed out (the other side stopped moving data)");
    else
        snprintf(buf, len, "%s", strerror(err));
    return buf;
}

/* Writes all of buf; 0, or -1 with errno set. */
static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads exactly len bytes: 1, 0 on EOF first (errno 0), -1 on error. */
static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = 0;
            return 0;
        }
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A decimal number in [min, max], the whole string; false otherwise. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- server ------------------------------------------------------- */

struct server {
    bool fake_uds; /* play vmlet's handshake first */
    uint32_t port; /* the one port CONNECT may name (fake_uds) */
    int listen_fd;
};

static struct server srv;

/* The fake hybrid-vsock handshake: "CONNECT <port>\n" in, "OK <n>\n" out.
 * A wrong line or port closes the connection, as vmlet does. */
static bool fake_handshake(int fd)
{
    char line[HS_LINE_MAX];
    size_t n = 0;
    uint64_t port;
    char ok[32];

    for (;;) {
        int r = read_full(fd, &line[n], 1);
        if (r <= 0) {
            if (r < 0)
                msg("server: reading the CONNECT line: %s", strerror(errno));
            return false;
        }
        if (line[n] == '\n')
            break;
        if (++n == sizeof(line) - 1) {
            msg("server: CONNECT line too long");
            return false;
        }
    }
    line[n] = '\0';
    if (strncmp(line, "CONNECT ", 8) != 0 || !parse_u64(line + 8, 0, UINT32_MAX, &port) ||
        port != srv.port)
        return false; /* refused: closed without an answer */
    snprintf(ok, sizeof(ok), "OK %u\n", FAKE_PORT);
    if (write_full(fd, ok, strlen(ok)) != 0) {
        msg("server: writing OK: %s", strerror(errno));
        return false;
    }
    return true;
}

static void serve_sink(int fd)
{
    char buf[BUF_SIZE];
    unsigned char reply[8];
    uint64_t total = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            msg("server: sink: read: %s", strerror(errno));
            return;
        }
        total += (uint64_t)n;
    }
    put_le64(reply, total);
    if (write_full(fd, reply, sizeof(reply)) != 0)
        msg("server: sink: writing the count: %s", strerror(errno));
}

static void serve_source(int fd)
{
    char buf[BUF_SIZE];
    unsigned char req[8];
    uint64_t left, sent = 0;
    bool unlimited;
    int r;

    r = read_full(fd, req, sizeof(req));
    if (r <= 0) {
        msg("server: source: reading the count: %s", r < 0 ? strerror(errno) : "EOF");
        return;
    }
    left = get_le64(req);
    unlimited = left == 0;
    memset(buf, 0x5a, sizeof(buf));
    while (unlimited || left > 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            msg("server: source: poll: %s", strerror(errno));
            return;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            /* Only the client's EOF may come: the end of the test. */
            char c;
            ssize_t n = read(fd, &c, 1);
            if (n == 0)
                return;
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                msg("server: source: read: %s (after %" PRIu64 " bytes)", strerror(errno), sent);
                return;
            }
            msg("server: source: unexpected data from the client");
            return;
        }
        if (p.revents & POLLOUT) {
            size_t len = unlimited || left > sizeof(buf) ? sizeof(buf) : (size_t)left;
            ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                    continue;
                msg("server: source: write: %s (after %" PRIu64 " bytes)", strerror(errno), sent);
                return;
            }
            sent += (uint64_t)n;
            if (!unlimited)
                left -= (uint64_t)n;
        }
    }
}

static void serve_echo(int fd)
{
    char c;
    int r;

    while ((r = read_full(fd, &c, 1)) == 1) {
        if (write_full(fd, &c, 1) != 0) {
            msg("server: echo: write: %s", strerror(errno));
            return;
        }
    }
    if (r < 0)
        msg("server: echo: read: %s", strerror(errno));
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char test;
    int r;

    if (srv.fake_uds && !fake_handshake(fd))
        goto out;
    r = read_full(fd, &test, 1);
    if (r <= 0) {
        if (r < 0)
            msg("server: reading the test byte: %s", strerror(errno));
        goto out;
    }
    switch (test) {
    case TEST_SINK: serve_sink(fd); break;
    case TEST_SOURCE: serve_source(fd); break;
    case TEST_ECHO: serve_echo(fd); break;
    default: msg("server: unknown test byte 0x%02x", test); break;
    }
out:
    if (close(fd) != 0)
        msg("server: close: %s", strerror(errno));
    return NULL;
}

static int server_main(int argc, char **argv)
{
    const char *uds = NULL;
    uint64_t port;
    pthread_attr_t attr;
    int err;

    if (argc == 4 && strcmp(argv[1], "--uds") == 0) {
        uds = argv[2];
        argc -= 2;
        argv += 2;
    }
    if (argc != 2 || !parse_u64(argv[1], 1, UINT32_MAX - 1, &port))
        die("usage: vsockperf server [--uds PATH] PORT (a port 1..4294967294)");
    srv.port = (uint32_t)port;
    srv.fake_uds = uds != NULL;

    if (uds) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        if (strlen(uds) >= sizeof(a.sun_path))
            die("--uds %s: the path is too long for a Unix socket", uds);
        strcpy(a.sun_path, uds);
        srv.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (srv.listen_fd < 0)
            die("socket(AF_UNIX): %s", strerror(errno));
        if (unlink(uds) != 0 && errno != ENOENT)
            die("unlink %s: %s", uds, strerror(errno));
        if (bind(srv.listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            die("bind %s: %s", uds, strerror(errno));
    } else {
        struct sockaddr_vm a = { .svm_family = AF_VSOCK,
                                 .svm_cid = VMADDR_CID_ANY,
                                 .svm_port = srv.port };
        srv.listen_fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (srv.listen_fd < 0)
            die("socket(AF_VSOCK): %s (is the vsock transport module loaded?)", strerror(errno));
        if (bind(srv.listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            die("bind vsock port %u: %s", srv.port, strerror(errno));
    }
    if (listen(srv.listen_fd, 128) != 0)
        die("listen: %s", strerror(errno));
    if ((err = pthread_attr_init(&attr)) != 0 ||
        (err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) != 0)
        die("pthread attributes: %s", strerror(err));
    if (uds)
        msg("server: listening on the Unix socket %s (CONNECT %u)", uds, srv.port);
    else
        msg("server: listening on vsock port %u", srv.port);

    for (;;) {
        pthread_t t;
        int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                /* Out of something for now: connections in flight end. */
                msg("server: accept: %s; retrying in 0.1 s", strerror(errno));
                usleep(100000);
                continue;
            }
            die("accept: %s", strerror(errno));
        }
        err = pthread_create(&t, &attr, serve, (void *)(intptr_t)fd);
        if (err != 0) {
            msg("server: pthread_create: %s; dropping the connection", strerror(err));
            if (close(fd) != 0)
                msg("server: close: %s", strerror(errno));
        }
    }
}

/* ---- client ------------------------------------------------------- */

enum test { TO_GUEST, FROM_GUEST, CONNRATE };

struct client {
    const char *uds; /* --uds PATH, or NULL for --vsock */
    uint32_t cid;    /* --vsock CID */
    uint32_t port;   /* --port */
    enum test test;
    unsigned streams; /* --streams */
    double seconds;   /* --seconds */
    unsigned timeout; /* --timeout, per socket operation */
    uint64_t bufsize; /* --buffer-size, AF_VSOCK only; 0: the kernel's */
};

static struct client cl;

/* A connected socket to the server, after the handshake for --uds; -1
 * with an error in err. */
static int client_connect(char *err, size_t errlen)
{
    struct timeval tv = { .tv_sec = cl.timeout };
    char e[128];
    int fd;

    fd = socket(cl.uds ? AF_UNIX : AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(%s): %s", cl.uds ? "AF_UNIX" : "AF_VSOCK", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        snprintf(err, errlen, "setsockopt(SO_RCVTIMEO/SO_SNDTIMEO): %s", strerror(errno));
        goto fail;
    }
    if (cl.uds) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        char line[HS_LINE_MAX];
        size_t n = 0;
        uint64_t hp;
        int r;

        strcpy(a.sun_path, cl.uds); /* length checked in client_main */
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            snprintf(err, errlen, "connect to %s: %s", cl.uds, strerror(errno));
            goto fail;
        }
        snprintf(line, sizeof(line), "CONNECT %u\n", cl.port);
        if (write_full(fd, line, strlen(line)) != 0) {
            snprintf(err, errlen, "writing CONNECT %u to %s: %s", cl.port, cl.uds,
                     sock_error(errno, e, sizeof(e)));
            goto fail;
        }
        /* Byte by byte: what follows the line is the guest's. */
        for (;;) {
            r = read_full(fd, &line[n], 1);
            if (r < 0) {
                snprintf(err, errlen, "reading the answer to CONNECT %u: %s", cl.port,
                         sock_error(errno, e, sizeof(e)));
                goto fail;
            }
            if (r == 0) {
                snprintf(err, errlen,
                         "%s closed the connection after CONNECT %u (nothing listens on "
                         "that port in the guest?)",
                         cl.uds, cl.port);
                goto fail;
            }
            if (line[n] == '\n')
                break;
            if (++n == sizeof(line) - 1) {
                snprintf(err, errlen, "the answer to CONNECT %u is too long", cl.port);
                goto fail;
            }
        }
        line[n] = '\0';
        if (strncmp(line, "OK ", 3) != 0 || !parse_u64(line + 3, 0, UINT32_MAX, &hp)) {
            snprintf(err, errlen, "CONNECT %u was answered '%s', not 'OK <port>'", cl.port, line);
            goto fail;
        }
    } else {
        struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = cl.cid, .svm_port = cl.port };
        /* The receive buffer, which this side advertises to the guest as
         * its window (buf_alloc); the maximum first, so the size fits. */
        if (cl.bufsize && (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &cl.bufsize,
                                      sizeof(cl.bufsize)) != 0 ||
                           setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &cl.bufsize,
                                      sizeof(cl.bufsize)) != 0)) {
            snprintf(err, errlen, "setsockopt(SO_VM_SOCKETS_BUFFER_SIZE %" PRIu64 "): %s",
                     cl.bufsize, strerror(errno));
            goto fail;
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            snprintf(err, errlen, "connect to vsock %u:%u: %s", cl.cid, cl.port, strerror(errno));
            goto fail;
        }
    }
    return fd;
fail:
    if (close(fd) != 0)
        msg("close: %s", strerror(errno));
    return -1;
}

struct stream {
    pthread_t thread;
    unsigned index;
    int fd;
    uint64_t bytes; /* moved during the test */
    double end;     /* when the stream finished */
    bool failed;
    char err[256];
};

static pthread_barrier_t start_barrier;
static atomic_bool stop_flag;
static atomic_bool any_failed;

static void stream_fail(struct stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void stream_fail(struct stream *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    s->failed = true;
    atomic_store(&any_failed, true);
}

static void to_guest(struct stream *s)
{
    char buf[BUF_SIZE];
    unsigned char reply[8];
    char e[128];
    uint64_t got;
    int r;

    memset(buf, 0xa5, sizeof(buf));
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        ssize_t n = send(s->fd, buf, sizeof(buf), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            stream_fail(s, "write after %" PRIu64 " bytes: %s", s->bytes,
                        sock_error(errno, e, sizeof(e)));
            return;
        }
        s->bytes += (uint64_t)n;
    }
    if (shutdown(s->fd, SHUT_WR) != 0) {
        stream_fail(s, "shutdown: %s", strerror(errno));
        return;
    }
    r = read_full(s->fd, reply, sizeof(reply));
    if (r <= 0) {
        stream_fail(s, "reading the server's count: %s",
                    r < 0 ? sock_error(errno, e, sizeof(e)) : "EOF (the server failed?)");
        return;
    }
    s->end = now();
    got = get_le64(reply);
    if (got != s->bytes)
        stream_fail(s, "the server received %" PRIu64 " bytes, %" PRIu64 " were sent", got,
                    s->bytes);
}

static void from_guest(struct stream *s)
{
    char buf[BUF_SIZE];
    unsigned char req[9];
    char e[128];
    bool shut = false;

    /* The request goes out only now, so no data moved before the start. */
    req[0] = TEST_SOURCE;
    put_le64(req + 1, 0); /* no limit: until this side's EOF */
    if (write_full(s->fd, req, sizeof(req)) != 0) {
        stream_fail(s, "writing the request: %s", sock_error(errno, e, sizeof(e)));
        return;
    }
    for (;;) {
        ssize_t n;

        if (!shut && atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
            /* Time is up: the server stops at this EOF, the rest drains. */
            if (shutdown(s->fd, SHUT_WR) != 0) {
                stream_fail(s, "shutdown: %s", strerror(errno));
                return;
            }
            shut = true;
        }
        n = read(s->fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            stream_fail(s, "read after %" PRIu64 " bytes: %s", s->bytes,
                        sock_error(errno, e, sizeof(e)));
            return;
        }
        if (n == 0)
            break;
        s->bytes += (uint64_t)n;
    }
    s->end = now();
    if (!shut)
        stream_fail(s, "the server closed the stream early, after %" PRIu64 " bytes", s->bytes);
}

static void *stream_run(void *arg)
{
    struct stream *s = arg;
    int r;

    s->fd = client_connect(s->err, sizeof(s->err));
    if (s->fd < 0) {
        s->failed = true;
        atomic_store(&any_failed, true);
    } else if (cl.test == TO_GUEST) {
        char t = TEST_SINK;
        if (write_full(s->fd, &t, 1) != 0)
            stream_fail(s, "writing the test byte: %s", strerror(errno));
    }
    /* Every stream connected (or failed) before the clock starts. */
    r = pthread_barrier_wait(&start_barrier);
    if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
        stream_fail(s, "pthread_barrier_wait: %s", strerror(r));
    if (!s->failed && !atomic_load(&any_failed)) {
        if (cl.test == TO_GUEST)
            to_guest(s);
        else
            from_guest(s);
    }
    if (s->fd >= 0 && close(s->fd) != 0 && !s->failed)
        stream_fail(s, "close: %s", strerror(errno));
    return NULL;
}

static void sleep_until(double t)
{
    for (;;) {
        double left = t - now();
        struct timespec ts;
        if (left <= 0)
            return;
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            die("nanosleep: %s", strerror(errno));
    }
}

/* This process's CPU time so far (user + system), in seconds. */
static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        die("getrusage: %s", strerror(errno));
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char *test_name(enum test t)
{
    switch (t) {
    case TO_GUEST: return "to-guest";
    case FROM_GUEST: return "from-guest";
    case CONNRATE: return "connrate";
    }
    return "?";
}

static int throughput(void)
{
    struct stream *s;
    double t0, end;
    uint64_t total = 0;
    unsigned failed = 0;
    int err;

    s = calloc(cl.streams, sizeof(*s));
    if (!s)
        die("out of memory");
    if ((err = pthread_barrier_init(&start_barrier, NULL, cl.streams + 1)) != 0)
        die("pthread_barrier_init: %s", strerror(err));
    for (unsigned i = 0; i < cl.streams; i++) {
        s[i].index = i;
        s[i].fd = -1;
        if ((err = pthread_create(&s[i].thread, NULL, stream_run, &s[i])) != 0)
            die("pthread_create: %s", strerror(err));
    }
    err = pthread_barrier_wait(&start_barrier);
    if (err != 0 && err != PTHREAD_BARRIER_SERIAL_THREAD)
        die("pthread_barrier_wait: %s", strerror(err));
    t0 = now();
    /* In steps, so that a stream that failed ends the test early. */
    for (double t = now(); !atomic_load(&any_failed) && t < t0 + cl.seconds; t = now())
        sleep_until(t + 0.1 < t0 + cl.seconds ? t + 0.1 : t0 + cl.seconds);
    atomic_store(&stop_flag, true);
    end = t0;
    for (unsigned i = 0; i < cl.streams; i++) {
        if ((err = pthread_join(s[i].thread, NULL)) != 0)
            die("pthread_join: %s", strerror(err));
        if (s[i].failed) {
            msg("stream %u: %s", i, s[i].err);
            failed++;
            continue;
        }
        total += s[i].bytes;
        if (s[i].end > end)
            end = s[i].end;
    }
    if (failed)
        die("%s: %u of %u streams failed", test_name(cl.test), failed, cl.streams);
    if (end <= t0)
        die("%s: no time passed", test_name(cl.test));
    printf("%s over %s: %u stream(s), %.2f s, %" PRIu64 " bytes, %.2f MB/s%s\n", test_name(cl.test),
           cl.uds ? "a hybrid-vsock Unix socket" : "AF_VSOCK", cl.streams, end - t0, total,
           (double)total / (end - t0) / 1e6,
           cl.test == TO_GUEST ? " (the server's counts match)" : "");
    printf("RESULT test=%s transport=%s streams=%u seconds=%.3f bytes=%" PRIu64
           " mb_per_s=%.3f%s client_cpu_s=%.2f\n",
           test_name(cl.test), cl.uds ? "uds" : "vsock", cl.streams, end - t0, total,
           (double)total / (end - t0) / 1e6, cl.test == TO_GUEST ? " verified=yes" : "",
           cpu_seconds());
    free(s);
    return 0;
}

static int connrate(void)
{
    char err[256], e[128];
    unsigned char out[2] = { TEST_ECHO, 'x' }, in;
    uint64_t conns = 0;
    double t0 = now(), deadline = t0 + cl.seconds, end;
    int fd, r;

    do {
        fd = client_connect(err, sizeof(err));
        if (fd < 0)
            die("connrate: connection %" PRIu64 ": %s", conns + 1, err);
        if (write_full(fd, out, sizeof(out)) != 0)
            die("connrate: connection %" PRIu64 ": write: %s", conns + 1,
                sock_error(errno, e, sizeof(e)));
        r = read_full(fd, &in, 1);
        if (r <= 0)
            die("connrate: connection %" PRIu64 ": reading the echo: %s", conns + 1,
                r < 0 ? sock_error(errno, e, sizeof(e)) : "EOF");
        if (in != out[1])
            die("connrate: connection %" PRIu64 ": echoed 0x%02x, sent 0x%02x", conns + 1, in,
                out[1]);
        if (close(fd) != 0)
            die("connrate: connection %" PRIu64 ": close: %s", conns + 1, strerror(errno));
        conns++;
        end = now();
    } while (end < deadline);
    printf("connrate over %s: %" PRIu64 " connections in %.2f s, %.1f per second, %.0f us each\n",
           cl.uds ? "a hybrid-vsock Unix socket" : "AF_VSOCK", conns, end - t0,
           (double)conns / (end - t0), (end - t0) * 1e6 / (double)conns);
    printf("RESULT test=connrate transport=%s conns=%" PRIu64 " seconds=%.3f per_s=%.2f "
           "us_per_conn=%.1f client_cpu_s=%.2f\n",
           cl.uds ? "uds" : "vsock", conns, end - t0, (double)conns / (end - t0),
           (end - t0) * 1e6 / (double)conns, cpu_seconds());
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: vsockperf server PORT\n"
                    "       vsockperf client (--vsock CID | --uds PATH) --port P\n"
                    "                        --test to-guest|from-guest|connrate\n"
                    "                        [--streams N] [--seconds S] [--timeout T]\n"
                    "                        [--buffer-size BYTES]   (--vsock only)\n"
                    "(see the comment at the top of bench/vsockperf.c)\n");
}

static int client_main(int argc, char **argv)
{
    bool have_port = false, have_test = false, have_cid = false;
    uint64_t v;

    cl.streams = 1;
    cl.seconds = 10;
    cl.timeout = 30;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage();
            exit(0);
        }
        if (!a)
            die("%s needs a value (see --help)", o);
        i++;
        if (strcmp(o, "--vsock") == 0) {
            if (!parse_u64(a, 0, UINT32_MAX, &v))
                die("--vsock %s: not a CID (0..4294967295)", a);
            cl.cid = (uint32_t)v;
            have_cid = true;
        } else if (strcmp(o, "--uds") == 0) {
            if (strlen(a) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                die("--uds %s: the path is too long for a Unix socket", a);
            cl.uds = a;
        } else if (strcmp(o, "--port") == 0) {
            if (!parse_u64(a, 0, UINT32_MAX, &v))
                die("--port %s: not a port (0..4294967295)", a);
            cl.port = (uint32_t)v;
            have_port = true;
        } else if (strcmp(o, "--test") == 0) {
            if (strcmp(a, "to-guest") == 0)
                cl.test = TO_GUEST;
            else if (strcmp(a, "from-guest") == 0)
                cl.test = FROM_GUEST;
            else if (strcmp(a, "connrate") == 0)
                cl.test = CONNRATE;
            else
                die("--test %s: not to-guest, from-guest or connrate", a);
            have_test = true;
        } else if (strcmp(o, "--streams") == 0) {
            if (!parse_u64(a, 1, MAX_STREAMS, &v))
                die("--streams %s: not a number from 1 to %d", a, MAX_STREAMS);
            cl.streams = (unsigned)v;
        } else if (strcmp(o, "--seconds") == 0) {
            char *end;
            errno = 0;
            cl.seconds = strtod(a, &end);
            if (errno != 0 || end == a || *end != '\0' || !(cl.seconds > 0) || cl.seconds > 86400)
                die("--seconds %s: not a time from 0 to 86400 s", a);
        } else if (strcmp(o, "--buffer-size") == 0) {
            if (!parse_u64(a, 4096, 64u << 20, &v))
                die("--buffer-size %s: not a number of bytes from 4096 to 67108864", a);
            cl.bufsize = v;
        } else if (strcmp(o, "--timeout") == 0) {
            if (!parse_u64(a, 1, 3600, &v))
                die("--timeout %s: not a number of seconds from 1 to 3600", a);
            cl.timeout = (unsigned)v;
        } else {
            die("unknown option %s (see --help)", o);
        }
    }
    if (have_cid == (cl.uds != NULL))
        die("give one of --vsock CID and --uds PATH (see --help)");
    if (cl.bufsize && cl.uds)
        die("--buffer-size is for --vsock (vmlet's window is its own)");
    if (!have_port)
        die("--port is missing (see --help)");
    if (!have_test)
        die("--test is missing (see --help)");
    if (cl.test == CONNRATE && cl.streams != 1)
        die("--streams: connrate connects one at a time");
    return cl.test == CONNRATE ? connrate() : throughput();
}

int main(int argc, char **argv)
{
    /* Writes to a closed connection fail with EPIPE instead (send() has
     * MSG_NOSIGNAL too). */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal(SIGPIPE): %s", strerror(errno));
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "server") == 0)
        return server_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return client_main(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage();
        return 0;
    }
    usage();
    return 2;
}
