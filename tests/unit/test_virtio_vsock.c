/* Unit tests for virtio-vsock (src/virtio/vsock.c, virtio 1.2 section
 * 5.10), driven through its virtio_device_ops as a transport would: this
 * file is the guest's driver (hand-built rx, tx and event rings in a
 * malloc'd guest memory, fake_guest.h) and the host programs (Unix
 * sockets in a fresh directory). Every wait has a deadline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/virtio.h"
#include "virtio/vsock.h"

#include "fake_transport.h"
#include "metric_names.h"
#include "fake_guest.h"

#define RAM_SIZE  (16u << 20)
#define QSIZE     256
#define GUEST_CID 3
#define HDR       VSOCK_HDR_SIZE
#define RX_BUF    (HDR + 4096)
#define RX_BASE   0x100000ULL /* rx buffers: RX_BUF bytes a descriptor index */
#define TX_BASE   0x800000ULL /* tx packets: 0x11000 bytes each, round-robin */

enum { REQUEST = 1, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST };

struct pkt {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
};

struct fixture {
    struct guest_memory mem;
    struct virtio_transport t;
    struct ring rx, tx, ev;
    struct virtio_vsock *vs;
    const struct virtio_device_ops *ops;
    char dir[64], uds[96];
    unsigned tx_slot;
};

static uint8_t *hva(struct fixture *f, uint64_t gpa)
{
    return f->mem.host + gpa;
}

static void pkt_put(uint8_t *b, const struct pkt *p)
{
    put_le64(b, p->src_cid);
    put_le64(b + 8, p->dst_cid);
    put_le32(b + 16, p->src_port);
    put_le32(b + 20, p->dst_port);
    put_le32(b + 24, p->len);
    put_le16(b + 28, p->type);
    put_le16(b + 30, p->op);
    put_le32(b + 32, p->flags);
    put_le32(b + 36, p->buf_alloc);
    put_le32(b + 40, p->fwd_cnt);
}

static uint64_t get_le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void pkt_get(const uint8_t *b, struct pkt *p)
{
    p->src_cid = get_le(b, 8);
    p->dst_cid = get_le(b + 8, 8);
    p->src_port = (uint32_t)get_le(b + 16, 4);
    p->dst_port = (uint32_t)get_le(b + 20, 4);
    p->len = (uint32_t)get_le(b + 24, 4);
    p->type = (uint16_t)get_le(b + 28, 2);
    p->op = (uint16_t)get_le(b + 30, 2);
    p->flags = (uint32_t)get_le(b + 32, 4);
    p->buf_alloc = (uint32_t)get_le(b + 36, 4);
    p->fwd_cnt = (uint32_t)get_le(b + 40, 4);
}

/* A guest packet as the guest's own CID to the host. */
static struct pkt gp(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t len)
{
    return (struct pkt){ .src_cid = GUEST_CID,
                         .dst_cid = VSOCK_HOST_CID,
                         .src_port = src_port,
                         .dst_port = dst_port,
                         .len = len,
                         .type = 1,
                         .op = op,
                         .buf_alloc = 1 << 20 };
}

/* Sends a packet on tx (header, then payload in a second descriptor of
 * chain_payload bytes) and waits until the device took it. */
static void send_raw(struct fixture *f, const struct pkt *p, const void *data,
                     uint32_t chain_payload)
{
    uint64_t gpa = TX_BASE + (uint64_t)(f->tx_slot++ % 64) * 0x11000;
    pkt_put(hva(f, gpa), p);
    if (data)
        memcpy(hva(f, gpa + HDR), data, chain_payload);
    struct buf b[2] = { { gpa, HDR, false }, { gpa + HDR, chain_payload, false } };
    uint16_t head = post(&f->tx, b, chain_payload ? 2 : 1);
    expect_used(&f->tx, head, 0);
}

static void send_pkt(struct fixture *f, struct pkt p, const void *data)
{
    send_raw(f, &p, data, p.len);
}

/* Gives the device n rx buffers of RX_BUF bytes. */
static void post_rx(struct fixture *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = f->rx.next_desc;
        post_nokick(&f->rx, &(struct buf){ RX_BASE + (uint64_t)d * RX_BUF, RX_BUF, true }, 1);
    }
    kick(&f->rx);
}

/* The next packet the device gives the guest; payload copied to data. */
static struct pkt recv_pkt(struct fixture *f, void *data)
{
    uint16_t id = 0;
    uint32_t len = 0;
    assert_true(wait_used(&f->rx, &id, &len, WAIT_MS));
    struct pkt p;
    pkt_get(hva(f, RX_BASE + (uint64_t)id * RX_BUF), &p);
    assert_int_equal(len, HDR + p.len);
    assert_int_equal(p.src_cid, VSOCK_HOST_CID);
    assert_int_equal(p.dst_cid, GUEST_CID);
    assert_int_equal(p.type, 1);
    if (data)
        memcpy(data, hva(f, RX_BASE + (uint64_t)id * RX_BUF + HDR), p.len);
    return p;
}

static void activate(struct fixture *f)
{
    ring_setup(&f->rx, &f->mem, 0x10000, QSIZE, false);
    ring_setup(&f->tx, &f->mem, 0x20000, QSIZE, false);
    ring_setup(&f->ev, &f->mem, 0x30000, QSIZE, false);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 3,
        .q = { &f->rx.q, &f->tx.q, &f->ev.q },
        .kick_fd = { f->rx.kick, f->tx.kick, f->ev.kick },
    };
    assert_int_equal(f->ops->activate(f->vs, &qs), 0);
}

static int setup_mode(void **state, bool sandboxed)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mem.host = aligned_alloc(4096, RAM_SIZE);
    assert_non_null(f->mem.host);
    memset(f->mem.host, 0, RAM_SIZE);
    f->mem.size = f->mem.low_size = RAM_SIZE;
    f->rx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->tx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->ev.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    strcpy(f->dir, "/tmp/vmlet-vsock-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->uds, sizeof f->uds, "%s/v.sock", f->dir);
    vmlet_error err;
    f->vs = virtio_vsock_new(GUEST_CID, f->uds, &err);
    assert_non_null(f->vs);
    f->ops = &virtio_vsock_device(f->vs)->ops;
    /* As vm.c does: the worker made first, under the device's allowlist
     * (a call outside it kills this test with SIGSYS). */
    if (sandboxed)
        assert_int_equal(virtio_device_spawn(virtio_vsock_device(f->vs), VMLET_SECCOMP_ON, &err),
                         0);
    activate(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_mode(state, false);
}

static int setup_sandboxed(void **state)
{
    return setup_mode(state, true);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    f->ops->free(f->vs);
    close(f->rx.kick);
    close(f->tx.kick);
    close(f->ev.kick);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f->mem.host);
    free(f);
    return 0;
}

/* ---- host helpers --------------------------------------------------------- */

static int host_listen_backlog(struct fixture *f, uint32_t port, int backlog)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s_%u", f->uds, port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, backlog), 0);
    return fd;
}

static int host_listen(struct fixture *f, uint32_t port)
{
    return host_listen_backlog(f, port, 8);
}

static int host_connect(struct fixture *f)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", f->uds);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Reads exactly len bytes within the deadline. */
static void host_read(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = { fd, POLLIN, 0 };
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        ssize_t n = read(fd, (char *)buf + got, len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

/* The host sees end of file within the deadline. */
static void host_expect_eof(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    char c;
    ssize_t n = read(fd, &c, 1);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

static void host_write(int fd, const void *buf, size_t len)
{
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

static struct virtio_vsock_stats stats(struct fixture *f)
{
    struct virtio_vsock_stats s;
    virtio_vsock_get_stats(f->vs, &s);
    return s;
}

/* The guest connects to host port 5000 from port 1234; returns the host's
 * accepted socket. */
static int guest_connects(struct fixture *f, int lfd, uint32_t gport)
{
    send_pkt(f, gp(gport, 5000, REQUEST, 0), NULL);
    struct pkt r = recv_pkt(f, NULL);
    assert_int_equal(r.op, RESPONSE);
    assert_int_equal(r.src_port, 5000);
    assert_int_equal(r.dst_port, gport);
    assert_int_equal(r.buf_alloc, VSOCK_CONN_BUF);
    int c = accept(lfd, NULL, NULL);
    assert_true(c >= 0);
    return c;
}

/* The host side of a host-initiated connection, in its three steps. */

/* A host program connects to the socket and writes "CONNECT port\n" and
 * then extra, in one write; returns its socket. */
static int host_asks(struct fixture *f, uint32_t port, const char *extra)
{
    int fd = host_connect(f);
    char line[64];
    int n = snprintf(line, sizeof line, "CONNECT %u\n%s", port, extra);
    assert_true(n > 0 && (size_t)n < sizeof line);
    host_write(fd, line, (size_t)n);
    return fd;
}

/* The guest hears the host's REQUEST for its port, from a host port. */
static struct pkt guest_gets_request(struct fixture *f, uint32_t port)
{
    struct pkt r = recv_pkt(f, NULL);
    assert_int_equal(r.op, REQUEST);
    assert_int_equal(r.dst_port, port);
    assert_true(r.src_port >= 0x40000000u);
    return r;
}

/* The guest answers the REQUEST r with RESPONSE; the host program reads
 * "OK <host port>\n" on fd. */
static void guest_accepts(struct fixture *f, int fd, struct pkt r)
{
    send_pkt(f, gp(r.dst_port, r.src_port, RESPONSE, 0), NULL);
    char want[32], got[32] = { 0 };
    int n = snprintf(want, sizeof want, "OK %u\n", r.src_port);
    host_read(fd, got, (size_t)n);
    assert_string_equal(got, want);
}

/* A host program connects to guest port, with extra written right after
 * its CONNECT line; returns its socket after OK (extra, not yet read by
 * the guest, follows), and the host port the guest sees in *hport. */
static int host_connects(struct fixture *f, uint32_t port, const char *extra, uint32_t *hport)
{
    int fd = host_asks(f, port, extra);
    struct pkt r = guest_gets_request(f, port);
    guest_accepts(f, fd, r);
    *hport = r.src_port;
    return fd;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_ops(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(f->ops->name, "vsock");
    assert_int_equal(f->ops->device_id, 19);
    assert_int_equal(f->ops->num_queues, 3);
    assert_int_equal(f->ops->config_size, 8);
    uint8_t cfg[8];
    f->ops->config_read(f->vs, 0, cfg, 8);
    assert_int_equal(get_le(cfg, 8), GUEST_CID);
    struct stat st;
    assert_int_equal(lstat(f->uds, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    struct metric_names m = { "", { 0 }, 0 };
    f->ops->metrics(f->vs, collect_metric, &m);
    assert_string_equal(m.text,
                        "conns_opened conns_refused conns_reset line_timeouts answer_timeouts "
                        "answer_ms_max bytes_to_host "
                        "bytes_to_guest pkts_dropped pkts_malformed");
}

/* A live socket at the path, or another kind of file, is refused; a
 * stale one is replaced. */
static void test_socket_file(void **state)
{
    struct fixture *f = *state;
    vmlet_error err;
    assert_null(virtio_vsock_new(GUEST_CID, f->uds, &err));
    assert_non_null(strstr(err.message, "another process"));
    char path[128];
    snprintf(path, sizeof path, "%s/file", f->dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_null(virtio_vsock_new(GUEST_CID, path, &err));
    assert_non_null(strstr(err.message, "not a socket"));
    /* Stale: bound, then closed without unlinking. */
    snprintf(path, sizeof path, "%s/stale", f->dir);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    struct virtio_vsock *v = virtio_vsock_new(GUEST_CID, path, &err);
    assert_non_null(v);
    virtio_vsock_free(v);
    assert_int_equal(access(path, F_OK), -1); /* removed at free */
}

static void test_guest_to_host(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    send_pkt(f, gp(1234, 5000, RW, 5), "hello");
    char buf[16] = { 0 };
    host_read(c, buf, 5);
    assert_string_equal(buf, "hello");
    host_write(c, "world!", 6);
    struct pkt r = recv_pkt(f, buf);
    assert_int_equal(r.op, RW);
    assert_int_equal(r.len, 6);
    assert_memory_equal(buf, "world!", 6);
    assert_int_equal(r.fwd_cnt, 5); /* the 5 bytes reached the host */
    struct virtio_vsock_stats s = stats(f);
    assert_int_equal(s.conns_opened, 1);
    assert_int_equal(s.bytes_to_host, 5);
    assert_int_equal(s.bytes_to_guest, 6);
    assert_int_equal(s.pkts_malformed, 0);
    close(c);
    close(lfd);
}

static void test_guest_refused(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 4);
    send_pkt(f, gp(1234, 6000, REQUEST, 0), NULL);
    struct pkt r = recv_pkt(f, NULL);
    assert_int_equal(r.op, RST);
    assert_int_equal(r.src_port, 6000);
    assert_int_equal(r.dst_port, 1234);
    assert_int_equal(stats(f).conns_refused, 1);
}

static void test_host_to_guest(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    uint32_t hport;
    int fd = host_connects(f, 52, "", &hport);
    host_write(fd, "ping", 4);
    char buf[16] = { 0 };
    struct pkt r = recv_pkt(f, buf);
    assert_int_equal(r.op, RW);
    assert_int_equal(r.src_port, hport);
    assert_int_equal(r.dst_port, 52);
    assert_memory_equal(buf, "ping", 4);
    send_pkt(f, gp(52, hport, RW, 4), "pong");
    host_read(fd, buf, 4);
    assert_memory_equal(buf, "pong", 4);
    assert_int_equal(stats(f).conns_opened, 1);
    close(fd);
}

/* Bytes the host writes right after its CONNECT line wait for the OK and
 * then go to the guest, none lost to the line reader. */
static void test_host_data_after_connect(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    uint32_t hport;
    int fd = host_connects(f, 52, "early", &hport);
    char buf[32] = { 0 };
    struct pkt d = recv_pkt(f, buf);
    assert_int_equal(d.op, RW);
    assert_int_equal(d.src_port, hport);
    assert_int_equal(d.len, 5);
    assert_memory_equal(buf, "early", 5);
    close(fd);
}

/* The CONNECT line in pieces, data right behind its end: the line is
 * put together, nothing after it is taken for it. */
static void test_host_line_in_pieces(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int fd = host_connect(f);
    host_write(fd, "CONN", 4);
    usleep(20000);
    host_write(fd, "ECT 5", 5);
    usleep(20000);
    host_write(fd, "2\nrest", 6);
    struct pkt r = guest_gets_request(f, 52);
    guest_accepts(f, fd, r);
    char buf[32] = { 0 };
    struct pkt d = recv_pkt(f, buf);
    assert_int_equal(d.op, RW);
    assert_int_equal(d.len, 4);
    assert_memory_equal(buf, "rest", 4);
    close(fd);
}

/* No listener in the guest: it answers RST, and the host program's
 * connection is closed without OK. */
static void test_host_refused(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 4);
    int fd = host_asks(f, 99, "");
    struct pkt r = guest_gets_request(f, 99);
    send_pkt(f, gp(99, r.src_port, RST, 0), NULL);
    host_expect_eof(fd);
    assert_int_equal(stats(f).conns_refused, 1);
    close(fd);
}

/* A bad CONNECT line: the connection is closed, the guest hears nothing. */
static void test_host_bad_line(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 4);
    const char *lines[] = { "CONNECT\n", "CONNECT x\n", "connect 5\n", "CONNECT 99999999999\n",
                            "CONNECT 1234567890123456789012345678\n" };
    for (unsigned i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int fd = host_connect(f);
        host_write(fd, lines[i], strlen(lines[i]));
        host_expect_eof(fd);
        close(fd);
    }
    expect_no_used(&f->rx, 50);
    assert_int_equal(stats(f).conns_refused, 5);
}

/* Host to guest: never more than the guest's credit; more after its
 * CREDIT_UPDATE. */
static void test_credit_to_guest(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    send_pkt(f,
             (struct pkt){ .src_cid = GUEST_CID,
                           .dst_cid = 2,
                           .src_port = 7,
                           .dst_port = 5000,
                           .type = 1,
                           .op = REQUEST,
                           .buf_alloc = 100 },
             NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RESPONSE);
    int c = accept(lfd, NULL, NULL);
    char data[300];
    for (int i = 0; i < 300; i++)
        data[i] = (char)i;
    host_write(c, data, 300);
    char got[300];
    uint32_t total = 0;
    while (total < 100) {
        struct pkt r = recv_pkt(f, got + total);
        assert_int_equal(r.op, RW);
        total += r.len;
    }
    assert_int_equal(total, 100);
    expect_no_used(&f->rx, 100); /* credit exhausted */
    struct pkt u = gp(7, 5000, CREDIT_UPDATE, 0);
    u.buf_alloc = 100;
    u.fwd_cnt = 100;
    send_pkt(f, u, NULL);
    while (total < 200) {
        struct pkt r = recv_pkt(f, got + total);
        assert_int_equal(r.op, RW);
        total += r.len;
    }
    assert_int_equal(total, 200);
    assert_memory_equal(got, data, 200);
    expect_no_used(&f->rx, 100);
    /* A lying fwd_cnt (ahead of what was sent) gives no credit. */
    u.fwd_cnt = 5000;
    send_pkt(f, u, NULL);
    expect_no_used(&f->rx, 100);
    close(c);
    close(lfd);
}

/* Guest to host: vmlet holds at most its advertised buffer for a host
 * that does not read; a guest that sends past it is reset; once the host
 * reads, the guest gets a CREDIT_UPDATE. */
static void test_credit_from_guest(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 32);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    int sz = 4096;
    assert_int_equal(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
    static char chunk[0x10000];
    memset(chunk, 'a', sizeof chunk);
    uint32_t sent = 0;
    for (int i = 0; i < VSOCK_CONN_BUF / 4096; i++) { /* all the credit */
        send_pkt(f, gp(1234, 5000, RW, 4096), chunk);
        sent += 4096;
    }
    /* Now read everything: the guest hears of the progress. */
    size_t got = 0;
    char buf[8192];
    while (got < sent) {
        struct pollfd p = { c, POLLIN, 0 };
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        ssize_t n = read(c, buf, sizeof buf);
        assert_true(n > 0);
        got += (size_t)n;
    }
    struct pkt r = recv_pkt(f, NULL);
    assert_int_equal(r.op, CREDIT_UPDATE);
    assert_true(r.fwd_cnt >= VSOCK_CONN_BUF / 2);
    assert_int_equal(r.buf_alloc, VSOCK_CONN_BUF);
    /* The device counts a write once it returns; the host may read first. */
    for (int ms = 0; stats(f).bytes_to_host != sent && ms < WAIT_MS; ms++)
        usleep(1000);
    assert_int_equal(stats(f).bytes_to_host, sent);
    close(c);
    close(lfd);
}

static void test_credit_overrun(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 32);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    int sz = 4096;
    assert_int_equal(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
    static char chunk[0x10000];
    /* The host never reads: the socket fills, then vmlet's window, then
     * the guest oversteps its credit and is reset. */
    struct pkt r = { 0 };
    uint32_t sent = 0, told = 0;
    for (int i = 0; i < 200 && r.op != RST; i++) {
        send_pkt(f, gp(1234, 5000, RW, 4096), chunk);
        sent += 4096;
        while (used_idx(&f->rx) != f->rx.last_used && r.op != RST) {
            r = recv_pkt(f, NULL);
            if (r.op == CREDIT_UPDATE)
                told = r.fwd_cnt; /* what the host socket took */
        }
    }
    assert_int_equal(r.op, RST);
    /* Reset only once the guest went past its credit: more than a window
     * beyond what vmlet had passed on and said so. */
    assert_true(sent - told > VSOCK_CONN_BUF);
    assert_int_equal(stats(f).pkts_malformed, 1);
    assert_int_equal(stats(f).conns_reset, 1);
    /* What the socket held, then the end. */
    char buf[4096];
    ssize_t n;
    do {
        struct pollfd pl = { c, POLLIN, 0 };
        assert_int_equal(poll(&pl, 1, WAIT_MS), 1);
        n = read(c, buf, sizeof buf);
    } while (n > 0);
    assert_int_equal(n, 0);
    close(c);
    close(lfd);
}

/* Host half-closes: the guest gets SHUTDOWN SEND after the data; the
 * guest can still send. Guest half-closes: the host reads EOF and can
 * still send. Both: RST closes it. */
static void test_half_close(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    host_write(c, "bye", 3);
    shutdown(c, SHUT_WR);
    char buf[16];
    struct pkt r = recv_pkt(f, buf);
    assert_int_equal(r.op, RW);
    assert_memory_equal(buf, "bye", 3);
    r = recv_pkt(f, NULL);
    assert_int_equal(r.op, SHUTDOWN);
    assert_int_equal(r.flags, 2);
    send_pkt(f, gp(1234, 5000, RW, 3), "ack");
    host_read(c, buf, 3);
    assert_memory_equal(buf, "ack", 3);
    struct pkt s = gp(1234, 5000, SHUTDOWN, 0);
    s.flags = 3;
    send_pkt(f, s, NULL);
    r = recv_pkt(f, NULL);
    assert_int_equal(r.op, RST);
    host_expect_eof(c);
    close(c);

    /* Guest SEND only: the host sees EOF, its own bytes still go. */
    c = guest_connects(f, lfd, 1235);
    s = gp(1235, 5000, SHUTDOWN, 0);
    s.flags = 2;
    send_pkt(f, s, NULL);
    host_expect_eof(c);
    host_write(c, "late", 4);
    r = recv_pkt(f, buf);
    assert_int_equal(r.op, RW);
    assert_memory_equal(buf, "late", 4);
    close(c);
    close(lfd);
}

/* The host program closes (not a half-close) while the guest neither
 * sends nor closes: the guest gets its data, then RST, and the slot is
 * free; a host half-close leaves the connection open (test_half_close). */
static void test_host_closes(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    host_write(c, "last", 4);
    close(c);
    char buf[16];
    struct pkt r = recv_pkt(f, buf);
    assert_int_equal(r.op, RW);
    assert_memory_equal(buf, "last", 4);
    r = recv_pkt(f, NULL);
    if (r.op == SHUTDOWN) /* the EOF may go out before the hang-up is seen */
        r = recv_pkt(f, NULL);
    assert_int_equal(r.op, RST);
    assert_int_equal(r.dst_port, 1234);
    /* The connection is gone: the guest's next packet for it gets RST. */
    send_pkt(f, gp(1234, 5000, RW, 2), "hi");
    r = recv_pkt(f, NULL);
    assert_int_equal(r.op, RST);
    assert_int_equal(stats(f).conns_reset, 0);
    close(lfd);
}

/* The guest resets an open connection: the host's socket closes. */
static void test_guest_rst(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    send_pkt(f, gp(1234, 5000, RST, 0), NULL);
    host_expect_eof(c);
    assert_int_equal(stats(f).conns_reset, 1);
    close(c);
    close(lfd);
}

/* Every kind of bad packet is counted and dropped (RST where it names a
 * connection); a good connection alongside keeps working. */
static void test_hostile(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 64);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);

    struct pkt p = gp(1, 5000, REQUEST, 0);
    p.src_cid = 4; /* speaking as another guest */
    send_pkt(f, p, NULL);
    p = gp(1, 5000, REQUEST, 0);
    p.src_cid = 2;
    send_pkt(f, p, NULL);
    p = gp(1, 5000, REQUEST, 0);
    p.dst_cid = 5; /* to another guest */
    send_pkt(f, p, NULL);
    p.dst_cid = 0xffffffffffffffffull;
    send_pkt(f, p, NULL);
    expect_no_used(&f->rx, 50); /* none of these is answered */
    assert_int_equal(stats(f).pkts_malformed, 4);

    /* A header cut short. */
    uint64_t gpa = TX_BASE + 0x100000;
    expect_used(&f->tx, post(&f->tx, &(struct buf){ gpa, HDR - 1, false }, 1), 0);
    /* A header in a writable descriptor only. */
    expect_used(&f->tx, post(&f->tx, &(struct buf){ gpa, HDR, true }, 1), 0);
    assert_int_equal(stats(f).pkts_malformed, 6);

    /* Bad type, bad op, len past the chain, len past the maximum: for an
     * unknown connection, RST. */
    p = gp(2, 5000, REQUEST, 0);
    p.type = 2;
    send_pkt(f, p, NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    p = gp(3, 5000, 0, 0);
    send_pkt(f, p, NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    p = gp(4, 5000, 99, 0);
    send_pkt(f, p, NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    p = gp(5, 5000, RW, 100);
    send_raw(f, &p, NULL, 10);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    p = gp(6, 5000, RW, VSOCK_MAX_PKT + 1);
    send_raw(f, &p, NULL, 0x10001 - 1);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    assert_int_equal(stats(f).pkts_malformed, 11);

    /* Packets for connections that do not exist: RST, no reply to RST. */
    const uint16_t ops[] = { RESPONSE, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST };
    for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        send_pkt(f, gp(777, 5000, ops[i], ops[i] == RW ? 3 : 0), "abc");
        struct pkt r = recv_pkt(f, NULL);
        assert_int_equal(r.op, RST);
        assert_int_equal(r.dst_port, 777);
    }
    send_pkt(f, gp(777, 5000, RST, 0), NULL);
    expect_no_used(&f->rx, 50);

    /* The good connection still works. */
    send_pkt(f, gp(1234, 5000, RW, 2), "ok");
    char buf[4];
    host_read(c, buf, 2);
    assert_memory_equal(buf, "ok", 2);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
    close(c);
    close(lfd);
}

/* A REQUEST for a connection that exists, a RESPONSE to nothing asked:
 * that connection is reset. */
static void test_bad_sequence(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    send_pkt(f, gp(1234, 5000, RESPONSE, 0), NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    host_expect_eof(c);
    close(c);
    c = guest_connects(f, lfd, 1235);
    send_pkt(f, gp(1235, 5000, REQUEST, 0), NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    host_expect_eof(c);
    close(c);
    close(lfd);
}

/* A flood of REQUESTs to a closed port: each gets its RST as rx buffers
 * allow, none is kept; the device answers the rest once buffers come. */
static void test_request_flood(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 8);
    for (uint32_t i = 0; i < 8; i++)
        send_pkt(f, gp(10000 + i, 6000, REQUEST, 0), NULL);
    for (int i = 0; i < 8; i++)
        assert_int_equal(recv_pkt(f, NULL).op, RST);
    /* No rx buffers: the RST queue fills, then tx waits. */
    uint64_t gpa = TX_BASE;
    for (uint32_t i = 0; i < 100; i++) {
        pkt_put(hva(f, gpa + i * 64), &(struct pkt){ .src_cid = GUEST_CID,
                                                     .dst_cid = 2,
                                                     .src_port = 20000 + i,
                                                     .dst_port = 6000,
                                                     .type = 1,
                                                     .op = REQUEST });
        post_nokick(&f->tx, &(struct buf){ gpa + i * 64, HDR, false }, 1);
    }
    kick(&f->tx);
    sleep_ms(100);
    uint16_t taken = used_idx(&f->tx) - f->tx.last_used;
    assert_true(taken < 100); /* held back, not buffered without end */
    post_rx(f, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(recv_pkt(f, NULL).op, RST);
    assert_int_equal(used_idx(&f->tx), f->tx.avail_idx); /* every chain taken */
    f->tx.last_used = used_idx(&f->tx);
    assert_int_equal(stats(f).conns_refused, 108);
}

/* Under the seccomp sandbox: both directions, data, refusal, half-close
 * and reset use only calls on the device's list. */
static void test_sandboxed(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 32);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    send_pkt(f, gp(1234, 5000, RW, 3), "abc");
    char buf[8];
    host_read(c, buf, 3);
    assert_memory_equal(buf, "abc", 3);
    host_write(c, "xyz", 3);
    assert_int_equal(recv_pkt(f, buf).op, RW);
    assert_memory_equal(buf, "xyz", 3);
    struct pkt s = gp(1234, 5000, SHUTDOWN, 0);
    s.flags = 3;
    send_pkt(f, s, NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    host_expect_eof(c);
    close(c);
    send_pkt(f, gp(1, 6000, REQUEST, 0), NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    uint32_t hport;
    int h = host_connects(f, 52, "", &hport);
    host_write(h, "ping", 4);
    assert_int_equal(recv_pkt(f, buf).op, RW);
    assert_memory_equal(buf, "ping", 4);
    close(h);
    assert_int_equal(recv_pkt(f, NULL).op, SHUTDOWN); /* the host's EOF */
    close(lfd);
}

/* Several guest connections at once, each sending full 64 KiB packets as
 * far as its credit goes, to a host that reads in small bites: vmlet's
 * buffers fill and drain many times over, under the sandbox. */
static void test_sandboxed_streams(void **state)
{
    struct fixture *f = *state;
    enum { STREAMS = 8, PKT = 0x10000, TOTAL = 4 * 1024 * 1024 };
    post_rx(f, 64);
    int lfd = host_listen_backlog(f, 5000, STREAMS);
    int host[STREAMS];
    uint32_t sent[STREAMS] = { 0 }, told[STREAMS] = { 0 }, got[STREAMS] = { 0 };
    for (int i = 0; i < STREAMS; i++) {
        host[i] = guest_connects(f, lfd, 2000 + (uint32_t)i);
        post_rx(f, 1);
        assert_int_equal(fcntl(host[i], F_SETFL, O_NONBLOCK), 0);
    }
    static uint8_t chunk[PKT];
    for (size_t k = 0; k < sizeof chunk; k++)
        chunk[k] = (uint8_t)(k * 7 + 1);
    unsigned done = 0;
    for (unsigned round = 0; done < STREAMS; round++) {
        assert_true(round < 1000000);
        for (int i = 0; i < STREAMS; i++) {
            if (sent[i] < TOTAL && VSOCK_CONN_BUF - (sent[i] - told[i]) >= PKT) {
                send_pkt(f, gp(2000 + (uint32_t)i, 5000, RW, PKT), chunk);
                sent[i] += PKT;
            }
            uint8_t buf[3000];
            ssize_t n = read(host[i], buf, 1 + (round * 131 + (unsigned)i * 977) % sizeof buf);
            if (n > 0) {
                for (ssize_t k = 0; k < n; k++)
                    assert_int_equal(buf[k], (uint8_t)(((got[i] + (uint32_t)k) % PKT) * 7 + 1));
                got[i] += (uint32_t)n;
                if (got[i] == TOTAL)
                    done++;
            }
        }
        while (used_idx(&f->rx) != f->rx.last_used) {
            struct pkt r = recv_pkt(f, NULL);
            post_rx(f, 1);
            assert_int_equal(r.op, CREDIT_UPDATE);
            assert_true(r.dst_port >= 2000 && r.dst_port < 2000 + STREAMS);
            told[r.dst_port - 2000] = r.fwd_cnt;
        }
    }
    assert_int_equal(stats(f).pkts_malformed, 0);
    assert_int_equal(stats(f).conns_reset, 0);
    for (int i = 0; i < STREAMS; i++)
        close(host[i]);
    close(lfd);
}

/* VSOCK_MAX_CONNS connections, then the next is refused either way; one
 * closed makes room again. Windows: VSOCK_WIDE_CONNS wide, then narrow. */
static void test_conn_cap(void **state)
{
    struct fixture *f = *state;
    int lfd = host_listen_backlog(f, 5000, 2 * VSOCK_MAX_CONNS);
    for (uint32_t i = 0; i < VSOCK_MAX_CONNS; i++) {
        post_rx(f, 1);
        send_pkt(f, gp(10000 + i, 5000, REQUEST, 0), NULL);
        struct pkt a = recv_pkt(f, NULL);
        assert_int_equal(a.op, RESPONSE);
        /* The first connections get the wide window, the rest the narrow. */
        assert_int_equal(a.buf_alloc, i < VSOCK_WIDE_CONNS ? VSOCK_CONN_BUF : VSOCK_CONN_BUF_MIN);
    }
    post_rx(f, 4);
    send_pkt(f, gp(9999, 5000, REQUEST, 0), NULL);
    struct pkt r = recv_pkt(f, NULL);
    assert_int_equal(r.op, RST);
    assert_int_equal(r.dst_port, 9999);
    int h = host_connect(f);
    host_expect_eof(h); /* over the cap: closed at once, the guest asked nothing */
    close(h);
    assert_int_equal(stats(f).conns_opened, VSOCK_MAX_CONNS);
    assert_int_equal(stats(f).conns_refused, 2);
    send_pkt(f, gp(10000, 5000, RST, 0), NULL);
    send_pkt(f, gp(9999, 5000, REQUEST, 0), NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RESPONSE);
    close(lfd);
}

/* A host program that never sends its CONNECT line, and a guest that
 * never answers the request, are given up on after the time limit. */
static void test_handshake_timeout(void **state)
{
    struct fixture *f = *state;
    virtio_vsock_set_timeout(f->vs, 200);
    f->ops->reset(f->vs);
    activate(f);
    post_rx(f, 4);
    uint64_t t0 = now_ms();
    int h = host_connect(f);
    host_expect_eof(h);
    assert_true(now_ms() - t0 >= 150);
    close(h);
    h = host_asks(f, 52, "");
    struct pkt r = guest_gets_request(f, 52);
    host_expect_eof(h); /* no OK */
    struct pkt rst = recv_pkt(f, NULL);
    assert_int_equal(rst.op, RST);
    assert_int_equal(rst.src_port, r.src_port);
    assert_int_equal(rst.dst_port, 52);
    assert_int_equal(stats(f).conns_refused, 2);
    assert_int_equal(stats(f).line_timeouts, 1);
    assert_int_equal(stats(f).answer_timeouts, 1);
    close(h);
}

/* The wait for the guest's answer starts when the REQUEST is in one of
 * its rx buffers: a guest slow to give buffers (under load) still gets
 * the connection once it does. */
static void test_request_waits_for_rx(void **state)
{
    struct fixture *f = *state;
    virtio_vsock_set_timeout(f->vs, 200);
    f->ops->reset(f->vs);
    activate(f); /* no rx buffers yet */
    int h = host_asks(f, 52, "");
    usleep(500 * 1000); /* past the timeout, with nowhere to put the REQUEST */
    uint64_t t0 = now_ms();
    post_rx(f, 4);
    guest_accepts(f, h, guest_gets_request(f, 52));
    assert_int_equal(stats(f).answer_timeouts, 0);
    /* Its answer time counts from the REQUEST's delivery, not the connect. */
    assert_true(stats(f).answer_ms_max <= now_ms() - t0);
    close(h);
}

/* A guest that keeps sending (its answer queues behind its data, as in
 * Linux) is not cut off while it does, however long that is; one that
 * sends nothing is, a timeout after the REQUEST. */
static void test_busy_guest_answers_late(void **state)
{
    struct fixture *f = *state;
    virtio_vsock_set_timeout(f->vs, 1000);
    f->ops->reset(f->vs);
    activate(f);
    post_rx(f, 8);
    int lfd = host_listen(f, 5000);
    int a = guest_connects(f, lfd, 1234);
    int h = host_asks(f, 52, "");
    struct pkt r = guest_gets_request(f, 52);
    for (int i = 0; i < 40; i++) { /* 2 s of data on the other connection */
        send_pkt(f, gp(1234, 5000, RW, 1), "x");
        usleep(50 * 1000);
    }
    struct pollfd p = { h, POLLIN, 0 };
    assert_int_equal(poll(&p, 1, 0), 0); /* neither OK nor closed */
    guest_accepts(f, h, r);
    char got[40];
    host_read(a, got, 40);
    assert_int_equal(stats(f).answer_timeouts, 0);

    int h2 = host_asks(f, 53, "");
    guest_gets_request(f, 53);
    host_expect_eof(h2); /* a quiet guest: cut off after the timeout */
    assert_int_equal(recv_pkt(f, NULL).op, RST);
    assert_int_equal(stats(f).answer_timeouts, 1);
    close(h2);
    close(h);
    close(a);
    close(lfd);
}

/* A queued transport reset event goes into the first event buffer that
 * holds it after the next activation: id 0, 4 bytes; only once. */
static void test_transport_reset_event(void **state)
{
    struct fixture *f = *state;
    virtio_vsock_queue_transport_reset(f->vs);
    f->ops->reset(f->vs);
    activate(f);
    memset(hva(f, 0x900000), 0xaa, 8);
    uint16_t small = post(&f->ev, &(struct buf){ 0x900200, 2, true }, 1);
    expect_used(&f->ev, small, 0); /* too short: given back, the event kept */
    uint16_t head = post(&f->ev, &(struct buf){ 0x900000, 8, true }, 1);
    expect_used(&f->ev, head, 4);
    assert_int_equal(get_le(hva(f, 0x900000), 4), 0);
    assert_int_equal(hva(f, 0x900000)[4], 0xaa);
    assert_true(atomic_load(&f->t.notify[2]) >= 1);
    post(&f->ev, &(struct buf){ 0x900100, 8, true }, 1);
    expect_no_used(&f->ev, 50);
    /* The device works on as before. */
    post_rx(f, 2);
    send_pkt(f, gp(1, 6000, REQUEST, 0), NULL);
    assert_int_equal(recv_pkt(f, NULL).op, RST);
}

/* The same rings again after a stop, as a restore or the VM that goes
 * on after a save hands them over: positions kept. */
static void resume(struct fixture *f)
{
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 3,
        .q = { &f->rx.q, &f->tx.q, &f->ev.q },
        .kick_fd = { f->rx.kick, f->tx.kick, f->ev.kick },
        .resume = true,
    };
    assert_int_equal(f->ops->activate(f->vs, &qs), 0);
}

/* A stop for a snapshot keeps the connections for the VM that goes on
 * and gives the rx buffer it held back to the ring: after the queues are
 * taken again, host data reaches the guest on the same connection. */
static void test_stop_keeps_connections(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    f->ops->stop(f->vs);
    resume(f);
    host_write(c, "after", 5);
    char data[8];
    struct pkt r = recv_pkt(f, data);
    assert_int_equal(r.op, RW);
    assert_int_equal(r.len, 5);
    assert_memory_equal(data, "after", 5);
    send_pkt(f, gp(1234, 5000, RW, 4), "back");
    char got[4];
    host_read(c, got, sizeof got);
    assert_memory_equal(got, "back", 4);
    close(c);
    close(lfd);
}

/* Nothing of a vsock device is saved; one made from a snapshot tells the
 * driver with a transport reset event once it runs. State that is not
 * empty is refused. */
static void test_restored_sends_reset_event(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[8] = { 0 };
    char why[128];
    assert_int_equal(f->ops->save(f->vs, buf, sizeof buf), 0);
    assert_int_equal(f->ops->load(f->vs, buf, 4, why, sizeof why), -1);
    assert_non_null(strstr(why, "4 bytes"));
    expect_no_used(&f->ev, 50);
    assert_int_equal(f->ops->load(f->vs, buf, 0, why, sizeof why), 0);
    f->ops->stop(f->vs);
    resume(f);
    uint16_t head = post(&f->ev, &(struct buf){ 0x900000, 8, true }, 1);
    expect_used(&f->ev, head, 4);
    assert_int_equal(get_le(hva(f, 0x900000), 4), 0);
}

/* A device reset closes every connection. */
static void test_reset_closes(void **state)
{
    struct fixture *f = *state;
    post_rx(f, 16);
    int lfd = host_listen(f, 5000);
    int c = guest_connects(f, lfd, 1234);
    f->ops->reset(f->vs);
    host_expect_eof(c);
    close(c);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_to_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_to_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_data_after_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_bad_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_line_in_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit_to_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit_from_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit_overrun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_rst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_waits_for_rx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_guest_answers_late, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_reset_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_keeps_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restored_sends_reset_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandboxed, setup_sandboxed, teardown),
        cmocka_unit_test_setup_teardown(test_sandboxed_streams, setup_sandboxed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
