/* virtio-vsock, virtio 1.2 section 5.10: device id 19, three queues (rx,
 * tx, event: 5.10.2), no feature bits (stream sockets only: 5.10.3), the
 * guest's CID in the configuration space (5.10.4), and the packet
 * protocol of 5.10.6 between the guest and host programs on Unix sockets.
 *
 * Host side (docs/vsock.md): a program connects to uds_path and writes
 * "CONNECT <port>\n"; vmlet sends the guest a REQUEST, and on RESPONSE
 * writes "OK <host_port>\n" (on RST it closes the Unix connection). A
 * guest REQUEST to CID 2 port P connects to "<uds_path>_<P>"; if nothing
 * listens there the guest gets RST.
 *
 * Bounds and decisions:
 * - Guest to host: payload is written straight to the host socket; what
 *   the socket does not take is kept, at most the connection's window
 *   (VSOCK_CONN_BUF, or VSOCK_CONN_BUF_MIN past VSOCK_WIDE_CONNS open
 *   connections), which is the buf_alloc vmlet advertises. A guest that
 *   sends past that credit has its connection reset (and the packet
 *   counted as malformed).
 *   fwd_cnt counts bytes the host socket took; a CREDIT_UPDATE goes out
 *   once half the window has been passed on since the guest last heard.
 * - Host to guest: a host socket is read only into a guest rx buffer and
 *   only as far as the guest's credit (buf_alloc - (tx_cnt - fwd_cnt),
 *   taken as 0 when the guest's numbers do not add up): vmlet holds no
 *   host-to-guest data, and a guest that stops reading stops the host
 *   writer through the socket's own buffer.
 * - Every header field is checked: src_cid must be the guest's, dst_cid 2,
 *   len within the chain and VSOCK_MAX_PKT, type stream, op known.
 *   Packets that fail are counted and dropped (with RST where the
 *   connection can be named); a packet for an unknown connection gets RST.
 * - Host handshakes have VSOCK_HANDSHAKE_MS for the CONNECT line and as
 *   long again for the guest's answer once the REQUEST is in its rx
 *   buffers, or after the last packet the guest sent if that is later
 *   (answer_due), so neither a silent host program nor a guest that never
 *   answers holds a connection slot for ever.
 * - At most VSOCK_MAX_CONNS connections; RSTs for unknown connections wait
 *   in a small queue, and while it is full the tx queue is not read (a
 *   REQUEST flood is slowed by the guest's own rx buffers, not buffered).
 * - A broken ring (VIRTQ_BROKEN) sets NEEDS_RESET; a device reset closes
 *   every connection. The event queue carries only the transport reset
 *   event, sent at activation when one was queued (snapshots: a restore). */
#include "virtio/device.h"
#include "virtio/vsock.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include "error.h"
#include "uds.h"

#define VSOCK_QUEUE_MAX 256
#define Q_RX            0
#define Q_TX            1
#define Q_EVENT         2

#define TYPE_STREAM 1
enum {
    OP_REQUEST = 1,
    OP_RESPONSE = 2,
    OP_RST = 3,
    OP_SHUTDOWN = 4,
    OP_RW = 5,
    OP_CREDIT_UPDATE = 6,
    OP_CREDIT_REQUEST = 7,
};
#define SHUT_F_RCV  1 /* the sender will receive no more */
#define SHUT_F_SEND 2 /* the sender will send no more */

#define TX_BUDGET     256         /* tx packets between looks at everything else */
#define RST_QUEUE     64          /* RSTs for unknown connections awaiting rx buffers */
#define LINE_MAX_LEN  32          /* "CONNECT 4294967295\n" fits */
#define HOST_PORT_MIN 0x40000000u /* host ports for host-initiated connections */

struct vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
};

enum conn_state {
    C_HOST_HS,  /* host connected, reading its CONNECT line */
    C_REQ_SENT, /* REQUEST to the guest, waiting for RESPONSE */
    C_OPEN,
    C_CLOSING, /* host side closed; an RST (if due) still to send */
};

struct conn {
    enum conn_state state;
    int fd;
    uint32_t guest_port, host_port;
    /* Control packets due to the guest. */
    bool send_request, send_response, send_credit, send_shutdown, send_rst;
    /* Guest to host: a ring of window bytes (the buf_alloc the guest was
     * given, fixed for the connection), allocated when needed. fwd_cnt:
     * bytes the host socket took. */
    uint32_t window;
    uint8_t *buf;
    uint32_t head, len;
    uint32_t fwd_cnt, fwd_told; /* fwd_told: what the guest last heard */
    /* Host to guest. */
    uint32_t tx_cnt; /* bytes given to the guest */
    uint32_t peer_buf_alloc, peer_fwd_cnt;
    bool readable;           /* poll said so; cleared on EAGAIN */
    bool host_eof;           /* the host will send no more */
    bool guest_no_send;      /* SHUTDOWN F_SEND from the guest */
    bool guest_no_recv;      /* SHUTDOWN F_RCV from the guest */
    bool shut_wr_done;       /* shutdown(SHUT_WR) done on the host socket */
    uint64_t deadline;       /* ms: a host handshake ends by then; 0: none */
    uint64_t asked_ms;       /* when the REQUEST reached the guest's rx queue */
    char line[LINE_MAX_LEN]; /* the CONNECT line so far */
    unsigned line_len;
};

struct rst_entry {
    uint32_t host_port, guest_port;
};

struct virtio_vsock {
    struct virtio_device vdev;
    uint64_t guest_cid;
    char path[sizeof((struct sockaddr_un *)0)->sun_path];
    int listen_fd;
    dev_t dev;
    ino_t ino;

    /* Owned by the device thread while it runs. */
    struct virtq *q[3];
    int kick[3];
    bool broken;
    bool rx_have, rx_starved;
    bool rx_pushed, tx_pushed;
    bool tx_blocked; /* tx waits for room in the RST queue */
    struct virtq_chain rx_chain, tx_chain, ev_chain;
    struct iovec slice[VIRTQ_MAX_CHAIN];
    struct conn *conns[VSOCK_MAX_CONNS];
    unsigned nconns;
    unsigned nwide; /* connections with a VSOCK_CONN_BUF window */
    struct rst_entry rst[RST_QUEUE];
    unsigned nrst;
    uint32_t next_host_port;
    uint64_t tx_moved_ms;    /* when the guest's last packet was taken */
    unsigned timeout_ms;     /* for a host handshake; 0: none */
    unsigned cfg_timeout_ms; /* virtio_vsock_set_timeout's, taken at activation */
    bool cfg_reset_event;    /* virtio_vsock_queue_transport_reset's, likewise */
    bool reset_event;        /* a transport reset event still to send */
    struct pollfd pfd[5 + VSOCK_MAX_CONNS];
    struct conn *pconn[5 + VSOCK_MAX_CONNS];

    struct virtio_vsock_stats stats; /* relaxed atomics */
};
_Static_assert(offsetof(struct virtio_vsock, vdev) == 0, "the device is its virtio_device");

#define COUNT(v, field, n) __atomic_fetch_add(&(v)->stats.field, (n), __ATOMIC_RELAXED)

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void hdr_parse(const uint8_t *b, struct vsock_hdr *h)
{
    h->src_cid = le64(b);
    h->dst_cid = le64(b + 8);
    h->src_port = le32(b + 16);
    h->dst_port = le32(b + 20);
    h->len = le32(b + 24);
    h->type = le16(b + 28);
    h->op = le16(b + 30);
    h->flags = le32(b + 32);
    h->buf_alloc = le32(b + 36);
    h->fwd_cnt = le32(b + 40);
}

/* A header from the host to the guest (c NULL: no connection). */
static void hdr_build(uint8_t *b, const struct virtio_vsock *v, uint32_t host_port,
                      uint32_t guest_port, uint16_t op, uint32_t len, uint32_t flags,
                      const struct conn *c)
{
    put_le64(b, VSOCK_HOST_CID);
    put_le64(b + 8, v->guest_cid);
    put_le32(b + 16, host_port);
    put_le32(b + 20, guest_port);
    put_le32(b + 24, len);
    put_le16(b + 28, TYPE_STREAM);
    put_le16(b + 30, op);
    put_le32(b + 32, flags);
    put_le32(b + 36, c ? c->window : 0);
    put_le32(b + 40, c ? c->fwd_cnt : 0);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t deadline(const struct virtio_vsock *v)
{
    return v->timeout_ms ? now_ms() + v->timeout_ms : 0;
}

/* What the guest lets us send: 0 when its numbers do not add up (a
 * fwd_cnt ahead of what we sent, a buf_alloc below what is in flight). */
static uint32_t peer_credit(const struct conn *c)
{
    uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
    if (in_flight > c->peer_buf_alloc)
        return 0;
    return c->peer_buf_alloc - in_flight;
}

/* ---- connections -------------------------------------------------------- */

static struct conn *conn_find(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
    for (unsigned i = 0; i < v->nconns; i++) {
        struct conn *c = v->conns[i];
        if (c->host_port == host_port && c->guest_port == guest_port && c->state != C_HOST_HS &&
            c->state != C_CLOSING)
            return c;
    }
    return NULL;
}

static struct conn *conn_add(struct virtio_vsock *v, int fd, enum conn_state state)
{
    if (v->nconns >= VSOCK_MAX_CONNS)
        return NULL;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->state = state;
    c->window = v->nwide < VSOCK_WIDE_CONNS ? VSOCK_CONN_BUF : VSOCK_CONN_BUF_MIN;
    if (c->window == VSOCK_CONN_BUF)
        v->nwide++;
    v->conns[v->nconns++] = c;
    return c;
}

static void conn_close_fd(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = 0;
}

/* Ends the connection on the host side; the guest is told with RST if
 * it knows of it. Freed once nothing is left to send (conn_reap). */
static void conn_end(struct virtio_vsock *v, struct conn *c, bool counted)
{
    bool guest_knows = c->state == C_OPEN || (c->state == C_REQ_SENT && !c->send_request);
    if (c->state == C_OPEN && counted)
        COUNT(v, conns_reset, 1);
    conn_close_fd(c);
    c->state = C_CLOSING;
    c->send_request = c->send_response = c->send_credit = c->send_shutdown = false;
    c->send_rst = guest_knows;
}

static void conn_reset(struct virtio_vsock *v, struct conn *c)
{
    conn_end(v, c, true);
}

/* The guest reset it or it was never known to the guest: gone at once. */
static void conn_drop(struct conn *c)
{
    conn_close_fd(c);
    c->state = C_CLOSING;
    c->send_request = c->send_response = c->send_credit = c->send_shutdown = false;
    c->send_rst = false;
}

static void conn_reap(struct virtio_vsock *v)
{
    for (unsigned i = 0; i < v->nconns;) {
        struct conn *c = v->conns[i];
        if (c->state == C_CLOSING && !c->send_rst) {
            if (c->window == VSOCK_CONN_BUF)
                v->nwide--;
            free(c);
            v->conns[i] = v->conns[--v->nconns];
        } else {
            i++;
        }
    }
}

static void close_all(struct virtio_vsock *v)
{
    for (unsigned i = 0; i < v->nconns; i++) {
        conn_close_fd(v->conns[i]);
        free(v->conns[i]);
    }
    v->nconns = 0;
    v->nwide = 0;
    v->nrst = 0;
}

static void rst_queue(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
    if (v->nrst >= RST_QUEUE) {
        COUNT(v, pkts_dropped, 1);
        return;
    }
    v->rst[v->nrst++] = (struct rst_entry){ host_port, guest_port };
}

/* sendmsg without SIGPIPE; returns bytes taken, 0 for "would block", -1
 * for a dead socket. */
static ssize_t host_send(int fd, const struct iovec *iov, unsigned n)
{
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
    ssize_t r;
    do {
        r = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    return r;
}

static void passed_on(struct virtio_vsock *v, struct conn *c, uint32_t n)
{
    c->fwd_cnt += n;
    COUNT(v, bytes_to_host, n);
    if (c->fwd_cnt - c->fwd_told >= c->window / 2)
        c->send_credit = true;
}

/* After the guest's last byte reached the host: pass its half-close on,
 * or end a connection both sides are done with. */
static void conn_after_flush(struct virtio_vsock *v, struct conn *c)
{
    if (c->state != C_OPEN || c->len > 0)
        return;
    if (c->guest_no_send && c->guest_no_recv) {
        conn_end(v, c, false); /* the guest closed: RST is what Linux waits for */
        return;
    }
    if (c->guest_no_send && !c->shut_wr_done) {
        shutdown(c->fd, SHUT_WR);
        c->shut_wr_done = true;
    }
}

/* Writes what is buffered for the host. */
static void conn_flush(struct virtio_vsock *v, struct conn *c)
{
    while (c->state == C_OPEN && c->len > 0) {
        uint32_t first = c->len;
        if (first > c->window - c->head)
            first = c->window - c->head;
        struct iovec iov[2] = { { c->buf + c->head, first }, { c->buf, c->len - first } };
        ssize_t n = host_send(c->fd, iov, c->len > first ? 2 : 1);
        if (n < 0) {
            conn_reset(v, c);
            return;
        }
        if (n == 0)
            return;
        c->head = (uint32_t)((c->head + (uint32_t)n) % c->window);
        c->len -= (uint32_t)n;
        passed_on(v, c, (uint32_t)n);
    }
    if (c->state == C_OPEN && c->len == 0) {
        free(c->buf); /* an idle connection holds no buffer */
        c->buf = NULL;
        c->head = 0;
    }
    conn_after_flush(v, c);
}

/* ---- guest to host: the tx queue ----------------------------------------- */

/* Payload bytes [HDR, HDR + len) of the tx chain as iovecs in v->slice. */
static unsigned tx_payload(struct virtio_vsock *v, uint32_t len)
{
    return iov_slice(v->tx_chain.iov, v->tx_chain.n_out, VSOCK_HDR_SIZE, len, v->slice,
                     VIRTQ_MAX_CHAIN);
}

static void guest_rw(struct virtio_vsock *v, struct conn *c, uint32_t len)
{
    if (len == 0)
        return;
    if (c->guest_no_send) { /* data after it said it would send none */
        COUNT(v, pkts_malformed, 1);
        conn_reset(v, c);
        return;
    }
    unsigned n = tx_payload(v, len);
    uint32_t off = 0;
    if (c->len == 0) {
        ssize_t w = host_send(c->fd, v->slice, n);
        if (w < 0) {
            conn_reset(v, c);
            return;
        }
        off = (uint32_t)w;
        passed_on(v, c, off);
    }
    uint32_t rest = len - off;
    if (rest == 0)
        return;
    if (rest > c->window - c->len) { /* past the credit we gave */
        COUNT(v, pkts_malformed, 1);
        conn_reset(v, c);
        return;
    }
    if (!c->buf) {
        c->buf = malloc(c->window);
        if (!c->buf) {
            COUNT(v, pkts_dropped, 1);
            conn_reset(v, c);
            return;
        }
        c->head = 0;
    }
    /* Copy the rest in at the ring's tail, in up to two pieces. */
    uint32_t tail = (c->head + c->len) % c->window;
    uint32_t first = rest < c->window - tail ? rest : c->window - tail;
    iov_to_buf(v->slice, n, off, c->buf + tail, first);
    iov_to_buf(v->slice, n, off + first, c->buf, rest - first);
    c->len += rest;
}

/* The guest connects to CID 2 port: "<uds>_<port>", or RST. */
static void guest_request(struct virtio_vsock *v, const struct vsock_hdr *h)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int len = snprintf(addr.sun_path, sizeof addr.sun_path, "%s_%" PRIu32, v->path, h->dst_port);
    int fd = -1;
    if (v->nconns < VSOCK_MAX_CONNS && len > 0 && (size_t)len < sizeof addr.sun_path)
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd); /* nobody there, or its backlog is full */
        fd = -1;
    }
    struct conn *c = fd >= 0 ? conn_add(v, fd, C_OPEN) : NULL;
    if (!c) {
        if (fd >= 0)
            close(fd);
        COUNT(v, conns_refused, 1);
        rst_queue(v, h->dst_port, h->src_port);
        return;
    }
    c->host_port = h->dst_port;
    c->guest_port = h->src_port;
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    c->send_response = true;
    COUNT(v, conns_opened, 1);
}

/* "OK <host_port>\n" to the host program that asked for this connection. */
static void host_established(struct virtio_vsock *v, struct conn *c)
{
    char line[LINE_MAX_LEN];
    int n = snprintf(line, sizeof line, "OK %" PRIu32 "\n", c->host_port);
    struct iovec iov = { line, (size_t)n };
    /* A fresh socket's buffer holds a short line: not all of it means
     * the host program is not reading, or gone. */
    if (host_send(c->fd, &iov, 1) != n) {
        conn_reset(v, c);
        return;
    }
    c->state = C_OPEN;
    c->deadline = 0;
    COUNT(v, conns_opened, 1);
    /* The slowest answer so far: how close a loaded guest comes to the
     * handshake deadline. Only this thread writes it. */
    uint64_t took = now_ms() - c->asked_ms;
    if (took > __atomic_load_n(&v->stats.answer_ms_max, __ATOMIC_RELAXED))
        __atomic_store_n(&v->stats.answer_ms_max, took, __ATOMIC_RELAXED);
}

static void handle_tx(struct virtio_vsock *v)
{
    struct virtq_chain *ch = &v->tx_chain;
    uint8_t raw[VSOCK_HDR_SIZE];
    if (ch->out_len < VSOCK_HDR_SIZE ||
        iov_to_buf(ch->iov, ch->n_out, 0, raw, sizeof raw) != sizeof raw) {
        COUNT(v, pkts_malformed, 1);
        return;
    }
    struct vsock_hdr h;
    hdr_parse(raw, &h);
    /* A guest speaks only as itself, only to the host. */
    if (h.src_cid != v->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
        COUNT(v, pkts_malformed, 1);
        return;
    }
    struct conn *c = conn_find(v, h.dst_port, h.src_port);
    bool len_ok = h.len <= VSOCK_MAX_PKT && h.len <= ch->out_len - VSOCK_HDR_SIZE;
    if (!len_ok || h.type != TYPE_STREAM || h.op < OP_REQUEST || h.op > OP_CREDIT_REQUEST) {
        COUNT(v, pkts_malformed, 1);
        if (c)
            conn_reset(v, c); /* its stream can no longer be trusted */
        else if (h.op != OP_RST)
            rst_queue(v, h.dst_port, h.src_port);
        return;
    }
    if (!c) {
        if (h.op == OP_REQUEST)
            guest_request(v, &h);
        else if (h.op != OP_RST)
            rst_queue(v, h.dst_port, h.src_port);
        return;
    }

    c->peer_buf_alloc = h.buf_alloc;
    c->peer_fwd_cnt = h.fwd_cnt;
    switch (h.op) {
    case OP_REQUEST: /* for a connection that exists */
        COUNT(v, pkts_malformed, 1);
        conn_reset(v, c);
        break;
    case OP_RESPONSE:
        if (c->state == C_REQ_SENT && !c->send_request) {
            host_established(v, c);
        } else {
            COUNT(v, pkts_malformed, 1);
            conn_reset(v, c);
        }
        break;
    case OP_RST:
        if (c->state == C_REQ_SENT)
            COUNT(v, conns_refused, 1);
        else
            COUNT(v, conns_reset, 1);
        conn_drop(c);
        break;
    case OP_SHUTDOWN:
        if (c->state != C_OPEN) {
            COUNT(v, pkts_malformed, 1);
            conn_reset(v, c);
            break;
        }
        if (h.flags & SHUT_F_RCV)
            c->guest_no_recv = true;
        if (h.flags & SHUT_F_SEND)
            c->guest_no_send = true;
        conn_after_flush(v, c);
        break;
    case OP_RW:
        if (c->state != C_OPEN) {
            COUNT(v, pkts_malformed, 1);
            conn_reset(v, c);
            break;
        }
        guest_rw(v, c, h.len);
        break;
    case OP_CREDIT_UPDATE: break; /* taken above */
    case OP_CREDIT_REQUEST: c->send_credit = true; break;
    default: break;
    }
}

/* Reads tx packets until the queue is empty or the budget is spent.
 * Returns true if there is more to do now. */
static bool serve_tx(struct virtio_vsock *v)
{
    struct virtq *q = v->q[Q_TX];
    if (!q)
        return false;
    virtq_disable_notify(q);
    unsigned done = 0;
    bool more = false;
    for (;; done++) {
        if (done == TX_BUDGET) {
            more = true;
            break;
        }
        if (v->nrst >= RST_QUEUE) {
            v->tx_blocked = true; /* until rx buffers carry the RSTs */
            break;
        }
        if (virtio_device_pop(&v->vdev, q, &v->tx_chain, &v->broken) != VIRTQ_CHAIN)
            break; /* empty with notifications on, or broken */
        handle_tx(v);
        virtq_push(q, v->tx_chain.head, 0);
        v->tx_pushed = true;
    }
    /* Linux queues its answers to REQUESTs behind the data it sends: while
     * its packets keep coming, an answer may be on its way (answer_due). */
    if (done)
        v->tx_moved_ms = now_ms();
    return more;
}

/* ---- host to guest: the rx queue ----------------------------------------- */

/* Holds an rx chain with room for a header, or says there is none. */
static bool rx_get(struct virtio_vsock *v)
{
    struct virtq *q = v->q[Q_RX];
    if (v->rx_have)
        return true;
    if (!q || v->broken)
        return false;
    for (;;) {
        enum virtq_pop_result res = virtio_device_pop(&v->vdev, q, &v->rx_chain, &v->broken);
        if (res == VIRTQ_EMPTY)
            v->rx_starved = true; /* its kick brings us back */
        if (res != VIRTQ_CHAIN)
            return false;
        if (v->rx_chain.in_len < VSOCK_HDR_SIZE) {
            COUNT(v, pkts_dropped, 1); /* no room for a header: given back unused */
            virtq_push(q, v->rx_chain.head, 0);
            v->rx_pushed = true;
            continue;
        }
        virtq_disable_notify(q);
        v->rx_have = true;
        return true;
    }
}

/* Sends the held rx chain with its header written and payload bytes. */
static void rx_put(struct virtio_vsock *v, const uint8_t *hdr, uint32_t payload)
{
    struct virtq_chain *ch = &v->rx_chain;
    iov_from_buf(ch->iov + ch->n_out, ch->n_in, 0, hdr, VSOCK_HDR_SIZE);
    virtq_push(v->q[Q_RX], ch->head, VSOCK_HDR_SIZE + payload);
    v->rx_pushed = true;
    v->rx_have = false;
}

static bool rx_control(struct virtio_vsock *v, struct conn *c, uint16_t op, uint32_t flags)
{
    if (!rx_get(v))
        return false;
    uint8_t hdr[VSOCK_HDR_SIZE];
    hdr_build(hdr, v, c->host_port, c->guest_port, op, 0, flags, op == OP_RST ? NULL : c);
    c->fwd_told = c->fwd_cnt;
    rx_put(v, hdr, 0);
    return true;
}

/* One packet of host data for c, as much as credit and the buffer allow.
 * Returns false when no rx buffer is left. */
static bool rx_data(struct virtio_vsock *v, struct conn *c)
{
    uint32_t credit = peer_credit(c);
    if (credit == 0)
        return true;
    if (!rx_get(v))
        return false;
    struct virtq_chain *ch = &v->rx_chain;
    uint64_t room = ch->in_len - VSOCK_HDR_SIZE;
    uint32_t want = credit < VSOCK_MAX_PKT ? credit : VSOCK_MAX_PKT;
    if (room < want)
        want = (uint32_t)room;
    if (want == 0) { /* a header-only buffer: useless for data */
        COUNT(v, pkts_dropped, 1);
        virtq_push(v->q[Q_RX], ch->head, 0);
        v->rx_pushed = true;
        v->rx_have = false;
        return true;
    }
    unsigned n = iov_slice(ch->iov + ch->n_out, ch->n_in, VSOCK_HDR_SIZE, want, v->slice,
                           VIRTQ_MAX_CHAIN);
    ssize_t r;
    do {
        r = readv(c->fd, v->slice, (int)n);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            c->readable = false;
        else
            conn_reset(v, c);
        return true;
    }
    if (r == 0) { /* the host will send no more: tell the guest */
        c->host_eof = true;
        c->readable = false;
        c->send_shutdown = true;
        return true;
    }
    uint8_t hdr[VSOCK_HDR_SIZE];
    hdr_build(hdr, v, c->host_port, c->guest_port, OP_RW, (uint32_t)r, 0, c);
    c->fwd_told = c->fwd_cnt;
    c->tx_cnt += (uint32_t)r;
    COUNT(v, bytes_to_guest, (uint64_t)r);
    rx_put(v, hdr, (uint32_t)r);
    if ((uint32_t)r < want)
        c->readable = false; /* the socket had no more for now */
    return true;
}

static bool wants_read(const struct conn *c)
{
    return c->state == C_OPEN && !c->host_eof && !c->guest_no_recv && peer_credit(c) > 0;
}

/* Control packets first (they free guest and host state), then data. */
static void serve_rx(struct virtio_vsock *v)
{
    while (v->nrst > 0) {
        if (!rx_get(v))
            return;
        uint8_t hdr[VSOCK_HDR_SIZE];
        struct rst_entry e = v->rst[--v->nrst];
        hdr_build(hdr, v, e.host_port, e.guest_port, OP_RST, 0, 0, NULL);
        rx_put(v, hdr, 0);
    }
    for (unsigned i = 0; i < v->nconns; i++) {
        struct conn *c = v->conns[i];
        if (c->send_rst) {
            if (!rx_control(v, c, OP_RST, 0))
                return;
            c->send_rst = false;
        }
        if (c->send_request) {
            if (!rx_control(v, c, OP_REQUEST, 0))
                return;
            c->send_request = false;
            c->asked_ms = now_ms();
            c->deadline = v->timeout_ms ? c->asked_ms + v->timeout_ms : 0;
        }
        if (c->send_response) {
            if (!rx_control(v, c, OP_RESPONSE, 0))
                return;
            c->send_response = false;
        }
        if (c->send_credit) {
            if (!rx_control(v, c, OP_CREDIT_UPDATE, 0))
                return;
            c->send_credit = false;
        }
    }
    /* Data, one packet per connection a pass, so none starves another. */
    bool progress = true;
    while (progress) {
        progress = false;
        for (unsigned i = 0; i < v->nconns; i++) {
            struct conn *c = v->conns[i];
            if (!c->readable || !wants_read(c))
                continue;
            uint32_t before = c->tx_cnt;
            if (!rx_data(v, c))
                return;
            progress |= c->tx_cnt != before;
        }
    }
    /* A host EOF goes after its data. */
    for (unsigned i = 0; i < v->nconns; i++) {
        struct conn *c = v->conns[i];
        if (c->send_shutdown && c->state == C_OPEN) {
            if (!rx_control(v, c, OP_SHUTDOWN, SHUT_F_SEND))
                return;
            c->send_shutdown = false;
        }
    }
}

/* ---- host connections ----------------------------------------------------- */

/* Parses "CONNECT <port>\n" (decimal, no sign, no leading spaces). */
static bool parse_connect(const char *line, unsigned len, uint32_t *port)
{
    static const char verb[] = "CONNECT ";
    size_t vl = sizeof verb - 1;
    if (len < vl + 2 || memcmp(line, verb, vl) != 0 || line[len - 1] != '\n')
        return false;
    uint64_t p = 0;
    for (size_t i = vl; i < len - 1; i++) {
        if (line[i] < '0' || line[i] > '9')
            return false;
        p = p * 10 + (uint64_t)(line[i] - '0');
        if (p > UINT32_MAX)
            return false;
    }
    *port = (uint32_t)p;
    return true;
}

/* A host port for a host-initiated connection, unused with guest_port. */
static uint32_t host_port_for(struct virtio_vsock *v, uint32_t guest_port)
{
    for (;;) {
        uint32_t p = v->next_host_port++;
        if (v->next_host_port < HOST_PORT_MIN)
            v->next_host_port = HOST_PORT_MIN;
        if (!conn_find(v, p, guest_port))
            return p;
    }
}

/* When a host handshake ends unanswered. The guest's time to answer a
 * REQUEST runs from its delivery, and again from the last packet the guest
 * sent: Linux sends its RESPONSE only after all the data queued before it,
 * so a guest busy sending on other connections is slow to answer, not
 * silent. A guest that sends nothing for the whole time is cut off. */
static uint64_t answer_due(const struct virtio_vsock *v, const struct conn *c)
{
    if (c->state != C_REQ_SENT || !c->deadline)
        return c->deadline;
    uint64_t moved = v->tx_moved_ms + v->timeout_ms;
    return moved > c->deadline ? moved : c->deadline;
}

/* Ends host handshakes past their deadline (no CONNECT line, or no answer
 * from the guest); returns the poll timeout until the next one, -1 for
 * none, 0 if it ended one (its RST is due). */
static int expire_handshakes(struct virtio_vsock *v)
{
    uint64_t now = now_ms(), next = 0;
    bool expired = false;
    for (unsigned i = 0; i < v->nconns; i++) {
        struct conn *c = v->conns[i];
        if (!c->deadline || (c->state != C_HOST_HS && c->state != C_REQ_SENT))
            continue;
        uint64_t due = answer_due(v, c);
        if (due <= now) {
            COUNT(v, conns_refused, 1);
            if (c->state == C_HOST_HS)
                COUNT(v, line_timeouts, 1);
            else
                COUNT(v, answer_timeouts, 1);
            conn_reset(v, c); /* RST if the guest was asked */
            expired = true;
        } else if (!next || due < next) {
            next = due;
        }
    }
    if (expired)
        return 0; /* once more round the loop: its RST goes out */
    if (!next)
        return -1;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

/* Reads the CONNECT line and not a byte more, so what follows it stays
 * in the socket for the guest. */
static void host_handshake(struct virtio_vsock *v, struct conn *c)
{
    while (c->line_len < LINE_MAX_LEN) {
        /* A peek, then a read of the line's bytes only: two calls, not
         * one a byte. */
        char *at = c->line + c->line_len;
        ssize_t r = recv(c->fd, at, LINE_MAX_LEN - c->line_len, MSG_PEEK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0)
            break;
        const char *nl = memchr(at, '\n', (size_t)r);
        size_t take = nl ? (size_t)(nl - at) + 1 : (size_t)r;
        ssize_t got;
        do {
            got = read(c->fd, at, take);
        } while (got < 0 && errno == EINTR);
        if (got != (ssize_t)take)
            break; /* what we just saw is there: anything else is an error */
        c->line_len += (unsigned)take;
        if (!nl)
            continue; /* more to come, or too long (the loop's end) */
        uint32_t port;
        if (!parse_connect(c->line, c->line_len, &port))
            break;
        c->guest_port = port;
        c->host_port = host_port_for(v, port);
        c->state = C_REQ_SENT;
        /* The wait for the guest's answer starts once the REQUEST is in
         * one of its rx buffers (serve_rx): until then only the guest's
         * own lack of buffers holds it up, and the cap bounds that. */
        c->deadline = 0;
        c->send_request = true;
        return;
    }
    COUNT(v, conns_refused, 1);
    conn_drop(c);
}

static void host_accept(struct virtio_vsock *v)
{
    for (;;) {
        int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = conn_add(v, fd, C_HOST_HS);
        if (c) {
            c->deadline = deadline(v);
        } else {
            COUNT(v, conns_refused, 1);
            close(fd);
        }
    }
}

static void host_event(struct virtio_vsock *v, struct conn *c, short re)
{
    if (c->state == C_CLOSING || c->fd < 0)
        return;
    if (re & POLLNVAL) {
        conn_reset(v, c);
        return;
    }
    if (c->state == C_HOST_HS) {
        host_handshake(v, c);
        return;
    }
    if (c->state == C_REQ_SENT) { /* the host program gave up waiting */
        if (re & (POLLHUP | POLLERR))
            conn_reset(v, c);
        return;
    }
    if (re & POLLERR) {
        conn_reset(v, c);
        return;
    }
    if ((re & POLLHUP) && c->host_eof && c->len == 0) {
        /* On a Unix socket HUP after EOF means the host program closed
         * (or both sides shut their sending half): nothing can pass any
         * more, so the guest gets RST rather than a connection that
         * lingers until its program closes. Host data was all delivered
         * before the EOF; the guest can still read it. */
        conn_end(v, c, false);
        return;
    }
    if (re & (POLLIN | POLLHUP))
        c->readable = true;
    if ((re & (POLLOUT | POLLHUP)) && c->len > 0)
        conn_flush(v, c); /* a hung-up peer: EPIPE, and RST */
}

/* The poll set: stop, kicks, the listening socket, connections (only
 * for what can be done: POLLIN with credit and rx buffers, POLLOUT with
 * bytes to write; a hung-up socket only then, as poll reports HUP
 * always). */
static nfds_t poll_set(struct virtio_vsock *v)
{
    nfds_t n = 0;
    v->pfd[n] = (struct pollfd){ .fd = v->vdev.thread.stop_fd, .events = POLLIN };
    v->pconn[n++] = NULL;
    for (int i = 0; i < 3; i++) {
        if (v->q[i] && !v->broken && v->kick[i] >= 0) {
            v->pfd[n] = (struct pollfd){ .fd = v->kick[i], .events = POLLIN };
            v->pconn[n++] = NULL;
        }
    }
    if (v->listen_fd >= 0) {
        v->pfd[n] = (struct pollfd){ .fd = v->listen_fd, .events = POLLIN };
        v->pconn[n++] = NULL;
    }
    for (unsigned i = 0; i < v->nconns; i++) {
        struct conn *c = v->conns[i];
        short ev = 0;
        if (c->state == C_HOST_HS)
            ev = POLLIN;
        else if (c->state == C_OPEN) {
            if (wants_read(c) && !c->readable && !v->rx_starved)
                ev |= POLLIN;
            if (c->len > 0)
                ev |= POLLOUT;
            /* With nothing to do, only a host that read EOF is watched:
             * its POLLHUP ends the connection (host_event); otherwise
             * POLLHUP would only spin. */
            if (ev == 0 && !c->host_eof)
                continue;
        } /* C_REQ_SENT: 0, for POLLHUP/POLLERR alone */
        if (c->fd < 0)
            continue;
        v->pfd[n] = (struct pollfd){ .fd = c->fd, .events = ev };
        v->pconn[n++] = c;
    }
    return n;
}

/* VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (5.10.6.6): the driver drops its
 * connections and reads guest_cid again. Waits for an event buffer. */
static void send_reset_event(struct virtio_vsock *v)
{
    struct virtq *q = v->q[Q_EVENT];
    if (!q) {
        v->reset_event = false;
        return;
    }
    /* At most the queue's size of buffers too short for it. */
    for (unsigned tries = 0; tries <= q->size; tries++) {
        enum virtq_pop_result res = virtio_device_pop(&v->vdev, q, &v->ev_chain, &v->broken);
        if (res == VIRTQ_EMPTY)
            return; /* its kick brings us back */
        if (res == VIRTQ_BROKEN) {
            v->reset_event = false;
            return;
        }
        struct virtq_chain *ch = &v->ev_chain;
        bool fits = ch->in_len >= 4;
        if (fits) {
            uint8_t ev[4];
            put_le32(ev, 0); /* the id; no other field */
            iov_from_buf(ch->iov + ch->n_out, ch->n_in, 0, ev, sizeof ev);
        } else {
            COUNT(v, pkts_dropped, 1);
        }
        virtq_push(q, ch->head, fits ? 4 : 0);
        if (virtq_should_notify(q))
            virtio_notify_queue(v->vdev.transport, Q_EVENT);
        if (fits) {
            v->reset_event = false;
            return;
        }
    }
}

static void *vsock_thread(void *arg)
{
    struct virtio_vsock *v = arg;
    pthread_setname_np(pthread_self(), "virtio-vsock");

    while (!atomic_load(&v->vdev.thread.stopping)) {
        bool more = false;
        if (v->reset_event && !v->broken)
            send_reset_event(v); /* first: it ends the driver's connections */
        if (!v->broken) {
            v->tx_blocked = false;
            more = serve_tx(v);
        }
        /* After serve_tx, which takes the answers already given (the
         * thread may have been away a while), and before serve_rx, which
         * sends the RSTs. */
        expire_handshakes(v);
        if (!v->broken) {
            serve_rx(v);
            more |= v->tx_blocked && v->nrst < RST_QUEUE;
        }
        conn_reap(v);
        /* After serve_rx: a REQUEST it delivered starts its deadline. */
        int timeout = expire_handshakes(v);
        uint32_t notify = 0; /* one interrupt for both: they share a vector */
        if (v->tx_pushed && virtq_should_notify(v->q[Q_TX]))
            notify |= 1u << Q_TX;
        if (v->rx_pushed && virtq_should_notify(v->q[Q_RX]))
            notify |= 1u << Q_RX;
        if (notify)
            virtio_notify_queues(v->vdev.transport, notify);
        v->tx_pushed = v->rx_pushed = false;
        if (atomic_load(&v->vdev.thread.stopping))
            break;

        nfds_t n = poll_set(v);
        int res = poll(v->pfd, n, more ? 0 : timeout);
        if (res < 0) {
            if (errno != EINTR)
                thread_wait_failed();
            continue;
        }
        if (v->pfd[0].revents)
            break;
        for (nfds_t i = 1; i < n; i++) {
            short re = v->pfd[i].revents;
            if (!re)
                continue;
            struct conn *c = v->pconn[i];
            if (c) {
                host_event(v, c, re);
            } else if (v->pfd[i].fd == v->listen_fd) {
                host_accept(v);
            } else {
                for (int k = 0; k < 3; k++) {
                    if (v->pfd[i].fd == v->kick[k]) {
                        virtio_take_kick(&v->kick[k], re);
                        if (k == Q_RX)
                            v->rx_starved = false;
                    }
                }
            }
        }
    }
    return NULL;
}

/* ---- virtio_device_ops ---------------------------------------------------- */

static void vsock_config_read(void *dev, size_t offset, uint8_t *data, size_t len)
{
    struct virtio_vsock *v = dev;
    uint8_t image[8];
    put_le64(image, v->guest_cid);
    config_copy_out(image, sizeof image, offset, data, len, 0);
}

static void vsock_config_write(void *dev, size_t offset, const uint8_t *data, size_t len)
{
    (void)dev; /* guest_cid is read-only */
    (void)offset;
    (void)data;
    (void)len;
}

static int vsock_take_queues(void *dev, const struct virtio_queues *qs)
{
    struct virtio_vsock *v = dev;
    for (unsigned i = 0; i < 3; i++) {
        v->q[i] = i < qs->count ? qs->q[i] : NULL;
        v->kick[i] = v->q[i] ? qs->kick_fd[i] : -1;
    }
    v->timeout_ms = v->cfg_timeout_ms;
    v->tx_moved_ms = 0;
    v->reset_event = v->cfg_reset_event;
    v->cfg_reset_event = false;
    v->broken = false;
    v->rx_have = v->rx_starved = false;
    v->tx_pushed = v->rx_pushed = false;
    return 0;
}

/* A reset forgets every connection (the guest's sockets are gone too).
 * A stop for a snapshot keeps them for the VM that goes on: the rx chain
 * held (always the last one popped) goes back to the ring, and a reset
 * event not yet sent is sent when the queues are taken again. */
static void vsock_release_queues(void *dev)
{
    struct virtio_vsock *v = dev;
    if (v->vdev.quiescing) {
        if (v->rx_have && v->q[Q_RX])
            virtq_unpop(v->q[Q_RX], 1);
        v->rx_have = false;
        v->cfg_reset_event |= v->reset_event;
        return;
    }
    v->rx_have = false;
    close_all(v);
}

/* Snapshots: the connections are host sockets and cannot be carried.
 * Nothing is saved; a restored device starts with none and tells the
 * driver with a transport reset event (5.10.6.6), as a migrated VM's
 * device would: the guest resets its connected sockets (listening ones
 * stay, so the host can CONNECT again) and reads guest_cid again, which a
 * restore may have changed. */
static int vsock_load(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    if (virtio_device_load_none(dev, buf, len, why, whylen) < 0)
        return -1;
    virtio_vsock_queue_transport_reset(dev);
    return 0;
}

static void vsock_metrics(void *dev, virtio_metric_fn fn, void *opaque)
{
    struct virtio_vsock_stats s;
    virtio_vsock_get_stats(dev, &s);
    fn(opaque, "conns_opened", s.conns_opened);
    fn(opaque, "conns_refused", s.conns_refused);
    fn(opaque, "conns_reset", s.conns_reset);
    fn(opaque, "line_timeouts", s.line_timeouts);
    fn(opaque, "answer_timeouts", s.answer_timeouts);
    fn(opaque, "answer_ms_max", s.answer_ms_max);
    fn(opaque, "bytes_to_host", s.bytes_to_host);
    fn(opaque, "bytes_to_guest", s.bytes_to_guest);
    fn(opaque, "pkts_dropped", s.pkts_dropped);
    fn(opaque, "pkts_malformed", s.pkts_malformed);
}

static void vsock_free_op(void *dev);

static const struct virtio_device_ops vsock_ops = {
    .name = "vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .num_queues = 3,
    .queue_max_size = VSOCK_QUEUE_MAX,
    .features = 0,
    /* One vector for the three queues: a round trip usually completes a
     * transmit and fills a receive buffer together, and two vectors then
     * cost two interrupts, the second arriving in the first's handler
     * (an interrupt-window exit, and no PV EOI: a real EOI exit each). */
    .msix_vectors = 2,
    .config_size = 8,
    .config_read = vsock_config_read,
    .config_write = vsock_config_write,
    .metrics = vsock_metrics,
    .free = vsock_free_op,
    .save = virtio_device_save_none,
    .load = vsock_load,
};

/* Accepting host connections, connecting to "<uds>_<port>", moving bytes
 * (sendmsg without SIGPIPE, readv, read; recv to peek at a CONNECT line),
 * half-closing. */
static const int vsock_syscalls[] = {
    __NR_accept4, __NR_connect, __NR_recvfrom, __NR_sendmsg, __NR_shutdown,
};
static const struct sandbox_rules vsock_rules = {
    .kind = "virtio-vsock",
    .syscalls = vsock_syscalls,
    .nsyscalls = sizeof vsock_syscalls / sizeof vsock_syscalls[0],
    .unix_sockets = true,
};

static const struct virtio_device_hooks vsock_hooks = {
    .sandbox = &vsock_rules,
    .thread_fn = vsock_thread,
    .take_queues = vsock_take_queues,
    .release_queues = vsock_release_queues,
};

/* ---- life cycle ----------------------------------------------------------- */

struct virtio_vsock *virtio_vsock_new(uint64_t guest_cid, const char *uds_path, vmlet_error *err)
{
    struct virtio_vsock *v = virtio_device_new(sizeof *v, &vsock_ops, &vsock_hooks, err);
    if (!v)
        return NULL;
    v->guest_cid = guest_cid;
    v->next_host_port = HOST_PORT_MIN;
    v->timeout_ms = v->cfg_timeout_ms = VSOCK_HANDSHAKE_MS;
    for (int i = 0; i < 3; i++)
        v->kick[i] = -1;
    char msg[512];
    v->listen_fd = uds_listen(uds_path, "--vsock uds", 128, &v->dev, &v->ino, msg, sizeof msg);
    if (v->listen_fd < 0) {
        set_error(err, VMLET_ERR_INVALID, "%s", msg);
        virtio_device_free(v);
        return NULL;
    }
    /* uds_listen refused a path longer than sun_path, which path holds. */
    snprintf(v->path, sizeof v->path, "%s", uds_path);
    return v;
}

void virtio_vsock_free(struct virtio_vsock *v)
{
    if (!v)
        return;
    virtio_device_destroy(&v->vdev);
    close_all(v);
    if (v->listen_fd >= 0) {
        close(v->listen_fd);
        uds_unlink_own(v->path, v->dev, v->ino);
    }
    free(v);
}

static void vsock_free_op(void *dev)
{
    virtio_vsock_free(dev);
}

struct virtio_device *virtio_vsock_device(struct virtio_vsock *v)
{
    return v ? &v->vdev : NULL;
}

void virtio_vsock_queue_transport_reset(struct virtio_vsock *v)
{
    pthread_mutex_lock(&v->vdev.lock);
    v->cfg_reset_event = true;
    pthread_mutex_unlock(&v->vdev.lock);
}

void virtio_vsock_set_timeout(struct virtio_vsock *v, unsigned ms)
{
    pthread_mutex_lock(&v->vdev.lock);
    v->cfg_timeout_ms = ms;
    pthread_mutex_unlock(&v->vdev.lock);
}

void virtio_vsock_get_stats(const struct virtio_vsock *v, struct virtio_vsock_stats *s)
{
    s->conns_opened = __atomic_load_n(&v->stats.conns_opened, __ATOMIC_RELAXED);
    s->conns_refused = __atomic_load_n(&v->stats.conns_refused, __ATOMIC_RELAXED);
    s->line_timeouts = __atomic_load_n(&v->stats.line_timeouts, __ATOMIC_RELAXED);
    s->answer_timeouts = __atomic_load_n(&v->stats.answer_timeouts, __ATOMIC_RELAXED);
    s->answer_ms_max = __atomic_load_n(&v->stats.answer_ms_max, __ATOMIC_RELAXED);
    s->conns_reset = __atomic_load_n(&v->stats.conns_reset, __ATOMIC_RELAXED);
    s->bytes_to_host = __atomic_load_n(&v->stats.bytes_to_host, __ATOMIC_RELAXED);
    s->bytes_to_guest = __atomic_load_n(&v->stats.bytes_to_guest, __ATOMIC_RELAXED);
    s->pkts_dropped = __atomic_load_n(&v->stats.pkts_dropped, __ATOMIC_RELAXED);
    s->pkts_malformed = __atomic_load_n(&v->stats.pkts_malformed, __ATOMIC_RELAXED);
}
