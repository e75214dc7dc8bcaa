/* Unit tests for virtio-net (src/virtio/net.c, virtio 1.2 section 5.1),
 * driven through its virtio_device_ops as a transport would.
 *
 * The "guest" is a malloc'd struct guest_memory with split rings built by
 * hand (section 2.7); this file plays the driver: it posts descriptor
 * chains, kicks the queue's eventfd and reads the used ring. The transport
 * calls (virtio_notify_queue, virtio_notify_config,
 * virtio_set_needs_reset) are defined here and counted. The backend is a
 * fake (backend/net.h) that records what it is sent and hands out frames
 * the test queues, signalling its wake eventfd like the slirp backend.
 * Every wait has a deadline and alarm() ends a hung run, so a bug fails a
 * test instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "memory.h"
#include "backend/net.h"
#include "virtio/net.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/virtio.h"

#include "fake_transport.h"
#include "metric_names.h"
#include "fake_guest.h"


/* ---- the fake backend --------------------------------------------------- */

#define FB_FRAMES 64

struct fb_frame {
    uint8_t *data; /* header + frame */
    size_t len;
};

struct fake_be {
    struct net_backend b;
    pthread_mutex_t lock;
    struct fb_frame rx[FB_FRAMES]; /* for the guest */
    unsigned rx_head, rx_count;
    struct fb_frame tx[FB_FRAMES]; /* from the guest */
    unsigned tx_count;
    atomic_uint recv_calls, send_calls, busy_hits, set_calls;
    atomic_bool busy;
    uint64_t guest_offloads;
    bool *freed;
};

static enum net_send_result fb_send(struct net_backend *be, const struct iovec *iov,
                                    unsigned iovcnt, size_t len)
{
    struct fake_be *f = (struct fake_be *)be;
    atomic_fetch_add(&f->send_calls, 1);
    assert_true(iovcnt >= 2);
    assert_int_equal(iov[0].iov_len, VIRTIO_NET_HDR_LEN);
    if (atomic_load(&f->busy)) {
        atomic_fetch_add(&f->busy_hits, 1);
        return NET_SEND_BUSY;
    }
    pthread_mutex_lock(&f->lock);
    if (f->tx_count < FB_FRAMES) {
        uint8_t *d = malloc(VIRTIO_NET_HDR_LEN + len);
        size_t off = 0;
        for (unsigned i = 0; i < iovcnt; i++) {
            memcpy(d + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        assert_int_equal(off, VIRTIO_NET_HDR_LEN + len);
        f->tx[f->tx_count++] = (struct fb_frame){ d, off };
    }
    pthread_mutex_unlock(&f->lock);
    return NET_SEND_OK;
}

static ssize_t fb_recv(struct net_backend *be, void *buf, size_t cap)
{
    struct fake_be *f = (struct fake_be *)be;
    atomic_fetch_add(&f->recv_calls, 1);
    pthread_mutex_lock(&f->lock);
    if (!f->rx_count) {
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    struct fb_frame fr = f->rx[f->rx_head];
    f->rx_head = (f->rx_head + 1) % FB_FRAMES;
    f->rx_count--;
    pthread_mutex_unlock(&f->lock);
    assert_true(fr.len <= cap);
    memcpy(buf, fr.data, fr.len);
    free(fr.data);
    return (ssize_t)fr.len;
}

static int fb_set(struct net_backend *be, uint64_t features)
{
    struct fake_be *f = (struct fake_be *)be;
    atomic_fetch_add(&f->set_calls, 1);
    f->guest_offloads = features;
    return 0;
}

static void fb_free(struct net_backend *be)
{
    struct fake_be *f = (struct fake_be *)be;
    for (unsigned i = 0; i < f->rx_count; i++)
        free(f->rx[(f->rx_head + i) % FB_FRAMES].data);
    for (unsigned i = 0; i < f->tx_count; i++)
        free(f->tx[i].data);
    if (f->freed)
        *f->freed = true;
    close(f->b.fd);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static const struct net_backend_ops fb_ops = {
    .send = fb_send,
    .recv = fb_recv,
    .set_guest_offloads = fb_set,
    .free = fb_free,
};

static struct fake_be *fb_new(uint64_t offloads)
{
    struct fake_be *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->b.ops = &fb_ops;
    f->b.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(f->b.fd >= 0);
    f->b.fd_is_wake = true;
    f->b.offloads = offloads;
    snprintf(f->b.desc, sizeof f->b.desc, "fake");
    pthread_mutex_init(&f->lock, NULL);
    return f;
}

/* Queues a frame (header + payload) for the guest and wakes the device. */
static void fb_inject(struct fake_be *f, const struct virtio_net_hdr_v1 *h, const uint8_t *frame,
                      size_t len)
{
    uint8_t *d = malloc(VIRTIO_NET_HDR_LEN + len);
    struct virtio_net_hdr_v1 zero = { 0 };
    memcpy(d, h ? h : &zero, VIRTIO_NET_HDR_LEN);
    memcpy(d + VIRTIO_NET_HDR_LEN, frame, len);
    pthread_mutex_lock(&f->lock);
    assert_true(f->rx_count < FB_FRAMES);
    f->rx[(f->rx_head + f->rx_count) % FB_FRAMES] = (struct fb_frame){ d,
                                                                       VIRTIO_NET_HDR_LEN + len };
    f->rx_count++;
    pthread_mutex_unlock(&f->lock);
    uint64_t one = 1;
    assert_int_equal(write(f->b.fd, &one, sizeof one), sizeof one);
}

static unsigned fb_rx_left(struct fake_be *f)
{
    pthread_mutex_lock(&f->lock);
    unsigned n = f->rx_count;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static unsigned fb_tx_count(struct fake_be *f)
{
    pthread_mutex_lock(&f->lock);
    unsigned n = f->tx_count;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static bool fb_wait_tx(struct fake_be *f, unsigned n)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (fb_tx_count(f) < n) {
        if (now_ms() > end)
            return false;
        sleep_ms(1);
    }
    return true;
}

/* ---- the fake guest: memory and hand-built split rings ---------------- */

#define RAM_SIZE  (32u << 20)
#define RING_BASE 0x10000ULL /* queue i's rings at RING_BASE + i * 0x10000 */
#define DATA_BASE 0x100000ULL

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t OTHER[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
static const uint8_t BCAST[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct fixture {
    struct guest_memory mem;
    struct virtio_transport t;
    struct ring rx, tx, ctrl;
    struct fake_be *fb;
    struct virtio_net *net;
    const struct virtio_device_ops *ops;
    uint64_t next_data; /* bump allocator for guest buffers */
    bool be_freed;
};

#define NF(x) NET_BIT(VIRTIO_NET_F_##x)

static void ring_init(struct fixture *f, struct ring *r, unsigned index, uint16_t size,
                      bool event_idx)
{
    ring_setup(r, &f->mem, RING_BASE + index * 0x10000ULL, size, event_idx);
    r->q.indirect = true;
}

static uint8_t *hva(struct fixture *f, uint64_t gpa)
{
    return f->mem.host + gpa;
}

static uint64_t alloc_data(struct fixture *f, uint32_t len)
{
    uint64_t g = f->next_data;
    f->next_data += (len + 63) & ~63ULL;
    assert_true(f->next_data < RAM_SIZE);
    return g;
}

/* A frame of len bytes to dst: Ethernet header, IPv4 ethertype, payload
 * bytes derived from seed. */
static void make_frame(uint8_t *p, size_t len, const uint8_t *dst, uint8_t seed)
{
    memcpy(p, dst, 6);
    memcpy(p + 6, OTHER, 6);
    p[12] = 0x08;
    p[13] = 0x00;
    for (size_t i = 14; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static struct net_stats stats(struct fixture *f)
{
    struct net_stats s;
    virtio_net_get_stats(f->net, &s);
    return s;
}

/* Counter reaches v within the deadline. */
#define WAIT_STAT(f, field, v) \
    do { \
        uint64_t want_ = (v), end_ = now_ms() + WAIT_MS; \
        while (stats(f).field < want_ && now_ms() < end_) \
            sleep_ms(1); \
        assert_int_equal(stats(f).field, want_); \
    } while (0)

static void activate_sized(struct fixture *f, uint64_t features, bool event_idx, uint16_t rxsize)
{
    ring_init(f, &f->rx, 0, rxsize, event_idx);
    ring_init(f, &f->tx, 1, 256, event_idx);
    ring_init(f, &f->ctrl, 2, 64, event_idx);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 3,
        .q = { &f->rx.q, &f->tx.q, &f->ctrl.q },
        .kick_fd = { f->rx.kick, f->tx.kick, f->ctrl.kick },
        .features = features | (1ULL << VIRTIO_F_VERSION_1) |
                    (event_idx ? 1ULL << VIRTIO_F_EVENT_IDX : 0),
    };
    assert_int_equal(f->ops->activate(f->net, &qs), 0);
}

static void activate(struct fixture *f, uint64_t features, bool event_idx)
{
    activate_sized(f, features, event_idx, 256);
}

static int setup_offloads(void **state, uint64_t offloads)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mem.host = aligned_alloc(4096, RAM_SIZE);
    assert_non_null(f->mem.host);
    memset(f->mem.host, 0, RAM_SIZE);
    f->mem.size = f->mem.low_size = RAM_SIZE;
    f->next_data = DATA_BASE;
    f->rx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->tx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->ctrl.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->fb = fb_new(offloads);
    f->fb->freed = &f->be_freed;
    vmlet_error err;
    f->net = virtio_net_new(&f->fb->b, MAC, &err);
    assert_non_null(f->net);
    f->ops = &virtio_net_device(f->net)->ops;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_offloads(state, 0);
}

/* What a TAP backend reports. */
#define TAP_OFFLOADS \
    (NF(CSUM) | NF(GUEST_CSUM) | NF(GUEST_TSO4) | NF(GUEST_TSO6) | NF(GUEST_ECN) | NF(HOST_TSO4) | \
     NF(HOST_TSO6) | NF(HOST_ECN))

static int setup_tap(void **state)
{
    return setup_offloads(state, TAP_OFFLOADS);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    virtio_net_free(f->net);
    assert_true(f->be_freed);
    close(f->rx.kick);
    close(f->tx.kick);
    close(f->ctrl.kick);
    free(f->mem.host);
    free(f);
    return 0;
}

/* ---- device description ------------------------------------------------- */

static void test_ops(void **state)
{
    struct fixture *f = *state;
    const struct virtio_device_ops *o = f->ops;
    assert_ptr_equal(virtio_net_of(virtio_net_device(f->net)), f->net);
    assert_null(virtio_net_of(NULL));
    assert_null(virtio_net_warning(f->net)); /* the fake backend has none */
    assert_string_equal(o->name, "net");
    assert_int_equal(o->device_id, 1);
    assert_int_equal(o->device_id, VIRTIO_ID_NET);
    /* The API's counter names (group "netN"). */
    struct metric_names m = { "", { 0 }, 0 };
    o->metrics(f->net, collect_metric, &m);
    assert_string_equal(m.text, "tx_packets tx_bytes tx_dropped tx_errors tx_malformed "
                                "rx_packets rx_bytes rx_dropped rx_too_big rx_malformed "
                                "rx_filtered rx_errors rx_bad_buffers ctrl_ok ctrl_err "
                                "ctrl_malformed flows_open flows_refused");
    assert_int_equal(o->num_queues, 3);
    assert_int_equal(o->queue_max_size, 256);
    assert_int_equal(o->config_size, VIRTIO_NET_CONFIG_SIZE);
    uint64_t want = NF(MAC) | NF(STATUS) | NF(MRG_RXBUF) | NF(CTRL_VQ) | NF(CTRL_RX) |
                    NF(CTRL_MAC_ADDR);
    /* No offload without a backend that does them. */
    assert_int_equal(o->features, want);

    struct fake_be *tb = fb_new(TAP_OFFLOADS | NET_BIT(40));
    vmlet_error err;
    struct virtio_net *n = virtio_net_new(&tb->b, MAC, &err);
    assert_non_null(n);
    /* Offloads the backend has; bits the device cannot check are not offered. */
    assert_int_equal(virtio_net_device(n)->ops.features, want | TAP_OFFLOADS);
    virtio_net_device(n)->ops.reset(n); /* reset without activate */
    virtio_net_free(n);
    virtio_net_free(NULL);
}

static void test_config(void **state)
{
    struct fixture *f = *state;
    uint8_t c[32];
    memset(c, 0, sizeof c);
    f->ops->config_read(f->net, 0, c, 32);
    assert_memory_equal(c, MAC, 6);
    assert_int_equal(c[6] | c[7] << 8, VIRTIO_NET_S_LINK_UP);
    assert_int_equal(c[8] | c[9] << 8, 1);
    for (unsigned i = 24; i < 32; i++)
        assert_int_equal(c[i], 0xff);
    f->ops->config_read(f->net, 5, c, 2); /* unaligned, straddling */
    assert_int_equal(c[0], MAC[5]);
    assert_int_equal(c[1], VIRTIO_NET_S_LINK_UP);
    f->ops->config_read(f->net, SIZE_MAX - 1, c, 4);
    assert_int_equal(c[0] & c[1] & c[2] & c[3], 0xff);
    uint8_t w[6] = { 2, 2, 2, 2, 2, 2 };
    f->ops->config_write(f->net, 0, w, 6); /* read-only */
    f->ops->config_write(f->net, SIZE_MAX, w, 6);
    f->ops->config_read(f->net, 0, c, 6);
    assert_memory_equal(c, MAC, 6);
}

/* ---- transmit ------------------------------------------------------------ */

/* Posts a transmit chain: the header and the frame in the given pieces. */
static uint16_t post_tx(struct fixture *f, const struct virtio_net_hdr_v1 *h, const uint8_t *frame,
                        size_t len, unsigned pieces)
{
    struct buf b[8];
    unsigned n = 0;
    uint64_t g = alloc_data(f, VIRTIO_NET_HDR_LEN);
    memcpy(hva(f, g), h, VIRTIO_NET_HDR_LEN);
    b[n++] = (struct buf){ g, VIRTIO_NET_HDR_LEN, false };
    size_t off = 0;
    for (unsigned i = 0; i < pieces; i++) {
        size_t chunk = i + 1 < pieces ? len / pieces : len - off;
        uint64_t d = alloc_data(f, (uint32_t)chunk);
        memcpy(hva(f, d), frame + off, chunk);
        b[n++] = (struct buf){ d, (uint32_t)chunk, false };
        off += chunk;
    }
    return post(&f->tx, b, n);
}

static void test_tx_frames(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MAC) | NF(MRG_RXBUF), false);
    uint8_t frame[1514];
    struct virtio_net_hdr_v1 h = { .num_buffers = htole16(7),
                                   .hdr_len = htole16(99),
                                   .flags = VIRTIO_NET_HDR_F_DATA_VALID };
    for (unsigned i = 0; i < 4; i++) {
        size_t len = i == 3 ? sizeof frame : 60 + i;
        make_frame(frame, len, BCAST, (uint8_t)i);
        uint16_t head = post_tx(f, &h, frame, len, i + 1);
        expect_used(&f->tx, head, 0);
        assert_true(fb_wait_tx(f->fb, i + 1));
        struct fb_frame *got = &f->fb->tx[i];
        assert_int_equal(got->len, VIRTIO_NET_HDR_LEN + len);
        assert_memory_equal(got->data + VIRTIO_NET_HDR_LEN, frame, len);
        /* The backend gets a clean header: no stray flags or hints. */
        static const uint8_t zero[VIRTIO_NET_HDR_LEN];
        assert_memory_equal(got->data, zero, VIRTIO_NET_HDR_LEN);
    }
    /* Also in one descriptor: header and frame together. */
    uint64_t g = alloc_data(f, VIRTIO_NET_HDR_LEN + 100);
    memset(hva(f, g), 0, VIRTIO_NET_HDR_LEN);
    make_frame(hva(f, g) + VIRTIO_NET_HDR_LEN, 100, MAC, 9);
    uint16_t head = post(&f->tx, &(struct buf){ g, VIRTIO_NET_HDR_LEN + 100, false }, 1);
    expect_used(&f->tx, head, 0);
    assert_true(fb_wait_tx(f->fb, 5));
    struct net_stats s = stats(f);
    assert_int_equal(s.tx_packets, 5);
    assert_int_equal(s.tx_bytes, 60 + 61 + 62 + 1514 + 100);
    assert_int_equal(s.tx_malformed, 0);
    assert_true(atomic_load(&f->t.notify[VIRTIO_NET_TXQ]) >= 1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* Each malformed chain is returned unsent and counted; the queue goes on. */
static void test_tx_malformed(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(CSUM) | NF(HOST_TSO4), false); /* offered? no: backend has none */
    uint8_t frame[200];
    make_frame(frame, sizeof frame, BCAST, 1);
    unsigned bad = 0;

    struct virtio_net_hdr_v1 hs[] = {
        { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
          .csum_start = htole16(34),
          .csum_offset = htole16(16) },
        { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .flags = 1, .gso_size = htole16(1448) },
        { .gso_type = VIRTIO_NET_HDR_GSO_ECN },
        { .gso_type = 2 }, /* no such type */
        { .gso_type = 0x7f },
    };
    for (unsigned i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        uint16_t head = post_tx(f, &hs[i], frame, sizeof frame, 1);
        expect_used(&f->tx, head, 0);
        WAIT_STAT(f, tx_malformed, ++bad);
    }

    /* Header shorter than 12 bytes. */
    uint64_t g = alloc_data(f, 64);
    uint16_t head = post(&f->tx, &(struct buf){ g, 10, false }, 1);
    expect_used(&f->tx, head, 0);
    WAIT_STAT(f, tx_malformed, ++bad);
    /* A frame shorter than an Ethernet header. */
    struct virtio_net_hdr_v1 ok = { 0 };
    head = post_tx(f, &ok, frame, 13, 1);
    expect_used(&f->tx, head, 0);
    WAIT_STAT(f, tx_malformed, ++bad);
    /* A frame larger than any virtio-net frame. */
    uint64_t big = alloc_data(f, VIRTIO_NET_HDR_LEN + NET_FRAME_MAX + 1);
    memset(hva(f, big), 0, VIRTIO_NET_HDR_LEN + NET_FRAME_MAX + 1);
    head = post(&f->tx, &(struct buf){ big, VIRTIO_NET_HDR_LEN + NET_FRAME_MAX + 1, false }, 1);
    expect_used(&f->tx, head, 0);
    WAIT_STAT(f, tx_malformed, ++bad);
    /* A device-writable descriptor in a transmit chain. */
    uint64_t h1 = alloc_data(f, 12), d1 = alloc_data(f, 200);
    memset(hva(f, h1), 0, 12);
    memcpy(hva(f, d1), frame, 200);
    struct buf wb[2] = { { h1, 12, false }, { d1, 200, true } };
    head = post(&f->tx, wb, 2);
    expect_used(&f->tx, head, 0);
    WAIT_STAT(f, tx_malformed, ++bad);

    assert_int_equal(fb_tx_count(f->fb), 0);
    assert_int_equal(atomic_load(&f->fb->send_calls), 0);
    /* Still serving good frames. */
    head = post_tx(f, &ok, frame, sizeof frame, 2);
    expect_used(&f->tx, head, 0);
    assert_true(fb_wait_tx(f->fb, 1));
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* With a TAP-like backend the offloads are offered and checked. */
static void test_tx_offloads(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(CSUM) | NF(HOST_TSO4) | NF(HOST_TSO6), false);
    assert_int_equal(atomic_load(&f->fb->set_calls), 1);
    uint8_t frame[3000];
    make_frame(frame, sizeof frame, BCAST, 3);
    struct virtio_net_hdr_v1 tso = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                     .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                     .hdr_len = htole16(66),
                                     .gso_size = htole16(1448),
                                     .csum_start = htole16(34),
                                     .csum_offset = htole16(16),
                                     .num_buffers = htole16(3) };
    uint16_t head = post_tx(f, &tso, frame, sizeof frame, 3);
    expect_used(&f->tx, head, 0);
    assert_true(fb_wait_tx(f->fb, 1));
    struct virtio_net_hdr_v1 got;
    memcpy(&got, f->fb->tx[0].data, sizeof got);
    assert_int_equal(got.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert_int_equal(got.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    assert_int_equal(le16toh(got.gso_size), 1448);
    assert_int_equal(le16toh(got.csum_start), 34);
    assert_int_equal(le16toh(got.csum_offset), 16);
    assert_int_equal(got.num_buffers, 0);

    unsigned bad = 0;
    struct virtio_net_hdr_v1 hs[] = {
        /* checksum field past the end of the frame */
        { .flags = 1, .csum_start = htole16(2990), .csum_offset = htole16(9) },
        { .flags = 1, .csum_start = htole16(0xffff), .csum_offset = htole16(0xffff) },
        /* segmentation without NEEDS_CSUM, without an MSS, ECN not negotiated */
        { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = htole16(1448) },
        { .flags = 1,
          .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
          .csum_start = htole16(34),
          .csum_offset = htole16(16) },
        { .flags = 1,
          .gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
          .gso_size = htole16(1448),
          .csum_start = htole16(34),
          .csum_offset = htole16(16) },
        /* UFO not negotiated; hdr_len beyond the frame */
        { .flags = 1,
          .gso_type = VIRTIO_NET_HDR_GSO_UDP,
          .gso_size = htole16(1448),
          .csum_start = htole16(34),
          .csum_offset = htole16(6) },
        { .flags = 1,
          .gso_type = VIRTIO_NET_HDR_GSO_TCPV6,
          .gso_size = htole16(1448),
          .hdr_len = htole16(3001),
          .csum_start = htole16(54),
          .csum_offset = htole16(16) },
    };
    for (unsigned i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        head = post_tx(f, &hs[i], frame, sizeof frame, 1);
        expect_used(&f->tx, head, 0);
        WAIT_STAT(f, tx_malformed, ++bad);
    }
    assert_int_equal(fb_tx_count(f->fb), 1);
}

/* The pure checks, including feature dependencies. */
static void test_hdr_rules(void **state)
{
    (void)state;
    struct virtio_net_hdr_v1 in, out;
    uint64_t all = virtio_net_effective_features(TAP_OFFLOADS | NF(HOST_UFO) | NF(HOST_USO));

    /* HOST_TSO4 without CSUM does not count. */
    uint64_t no_csum = virtio_net_effective_features(NF(HOST_TSO4) | NF(HOST_ECN) | NF(GUEST_TSO4) |
                                                     NF(CTRL_RX));
    assert_int_equal(no_csum, 0);
    assert_int_equal(virtio_net_effective_features(NF(GUEST_CSUM) | NF(GUEST_ECN)), NF(GUEST_CSUM));

    in = (struct virtio_net_hdr_v1){ .flags = 1,
                                     .gso_type = VIRTIO_NET_HDR_GSO_UDP_L4,
                                     .gso_size = htole16(1000),
                                     .csum_start = htole16(34),
                                     .csum_offset = htole16(6) };
    assert_true(virtio_net_tx_hdr_check(&in, all, 5000, &out));
    assert_false(virtio_net_tx_hdr_check(&in, TAP_OFFLOADS, 5000, &out));
    /* Exactly at the end is fine; one past is not. */
    in = (struct virtio_net_hdr_v1){ .flags = 1,
                                     .csum_start = htole16(80),
                                     .csum_offset = htole16(18) };
    assert_true(virtio_net_tx_hdr_check(&in, all, 100, &out));
    assert_false(virtio_net_tx_hdr_check(&in, all, 99, &out));
    /* Unknown flag bits are ignored, not passed on. */
    in = (struct virtio_net_hdr_v1){ .flags = 0xfe };
    assert_true(virtio_net_tx_hdr_check(&in, 0, 60, &out));
    assert_int_equal(out.flags, 0);

    /* Receive side: DATA_VALID cleared for a guest without GUEST_CSUM,
     * NEEDS_CSUM refused, segmentation only as negotiated. */
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_DATA_VALID, .gso_size = htole16(5) };
    assert_true(virtio_net_rx_hdr_check(&h, 0, 60));
    assert_int_equal(h.flags, 0);
    assert_int_equal(h.gso_size, 0);
    h = (struct virtio_net_hdr_v1){ .flags = 1,
                                    .csum_start = htole16(34),
                                    .csum_offset = htole16(16) };
    assert_false(virtio_net_rx_hdr_check(&h, 0, 100));
    assert_true(virtio_net_rx_hdr_check(&h, NF(GUEST_CSUM), 100));
    assert_false(virtio_net_rx_hdr_check(&h, NF(GUEST_CSUM), 51));
    h = (struct virtio_net_hdr_v1){ .flags = 1,
                                    .gso_type = VIRTIO_NET_HDR_GSO_TCPV6,
                                    .gso_size = htole16(1440),
                                    .csum_start = htole16(54),
                                    .csum_offset = htole16(16),
                                    .hdr_len = htole16(74) };
    assert_false(virtio_net_rx_hdr_check(&h, NF(GUEST_CSUM) | NF(GUEST_TSO4), 3000));
    assert_true(virtio_net_rx_hdr_check(&h, NF(GUEST_CSUM) | NF(GUEST_TSO6), 3000));
    h.hdr_len = htole16(3001);
    assert_false(virtio_net_rx_hdr_check(&h, NF(GUEST_CSUM) | NF(GUEST_TSO6), 3000));
    assert_false(virtio_net_rx_hdr_check(&h, all, NET_FRAME_MAX + 1));
}

/* A busy backend holds the transmit chain; nothing is lost or duplicated. */
static void test_tx_backpressure(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    atomic_store(&f->fb->busy, true);
    uint8_t frame[100];
    struct virtio_net_hdr_v1 h = { 0 };
    uint16_t heads[3];
    for (unsigned i = 0; i < 3; i++) {
        make_frame(frame, sizeof frame, BCAST, (uint8_t)i);
        heads[i] = post_tx(f, &h, frame, sizeof frame, 1);
    }
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->fb->busy_hits) == 0 && now_ms() < end)
        sleep_ms(1);
    assert_true(atomic_load(&f->fb->busy_hits) >= 1);
    expect_no_used(&f->tx, 50);
    /* Waiting is not spinning. */
    unsigned hits = atomic_load(&f->fb->busy_hits);
    uint64_t c0 = cpu_ms();
    sleep_ms(200);
    assert_true(cpu_ms() - c0 < 100);
    assert_int_equal(atomic_load(&f->fb->busy_hits), hits);

    atomic_store(&f->fb->busy, false);
    uint64_t one = 1;
    assert_int_equal(write(f->fb->b.fd, &one, 8), 8); /* the backend has room */
    for (unsigned i = 0; i < 3; i++)
        expect_used(&f->tx, heads[i], 0);
    assert_true(fb_wait_tx(f->fb, 3));
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(f->fb->tx[i].data[VIRTIO_NET_HDR_LEN + 20], (uint8_t)(i + 20 * 7));
    assert_int_equal(stats(f).tx_packets, 3);
}

/* ---- receive ------------------------------------------------------------- */

/* Posts n receive buffers of len bytes each (one descriptor each, or the
 * header split off in pieces descriptors). Returns their gpas in g. */
static void post_rx(struct fixture *f, unsigned n, uint32_t len, uint64_t *g, uint16_t *heads)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t a = alloc_data(f, len);
        memset(hva(f, a), 0xee, len);
        if (g)
            g[i] = a;
        uint16_t h = post_nokick(&f->rx, &(struct buf){ a, len, true }, 1);
        if (heads)
            heads[i] = h;
    }
    kick(&f->rx);
}

static void test_rx_single(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MAC), false); /* no MRG_RXBUF */
    uint64_t g[2];
    uint16_t heads[2];
    post_rx(f, 2, 1526, g, heads);
    uint8_t frame[1514];
    make_frame(frame, 100, MAC, 1);
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_DATA_VALID, .num_buffers = 9 };
    fb_inject(f->fb, &h, frame, 100);
    expect_used(&f->rx, heads[0], 112);
    struct virtio_net_hdr_v1 got;
    memcpy(&got, hva(f, g[0]), sizeof got);
    assert_int_equal(got.flags, 0); /* GUEST_CSUM not negotiated */
    assert_int_equal(le16toh(got.num_buffers), 1);
    assert_memory_equal(hva(f, g[0]) + 12, frame, 100);
    assert_int_equal(hva(f, g[0])[112], 0xee); /* nothing past the frame */

    make_frame(frame, 1514, MAC, 2); /* exactly fills a 1526-byte buffer */
    fb_inject(f->fb, NULL, frame, 1514);
    expect_used(&f->rx, heads[1], 1526);
    assert_memory_equal(hva(f, g[1]) + 12, frame, 1514);
    assert_true(atomic_load(&f->t.notify[VIRTIO_NET_RXQ]) >= 1);
    struct net_stats s = stats(f);
    assert_int_equal(s.rx_packets, 2);
    assert_int_equal(s.rx_bytes, 1614);
}

/* A receive buffer made of several descriptors, the header split. */
static void test_rx_split_buffer(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    uint64_t a = alloc_data(f, 5), b = alloc_data(f, 100), c = alloc_data(f, 2000);
    struct buf bs[3] = { { a, 5, true }, { b, 100, true }, { c, 2000, true } };
    uint16_t head = post(&f->rx, bs, 3);
    uint8_t frame[1000];
    make_frame(frame, sizeof frame, MAC, 4);
    fb_inject(f->fb, NULL, frame, sizeof frame);
    expect_used(&f->rx, head, 1012);
    uint8_t all[1012];
    memcpy(all, hva(f, a), 5);
    memcpy(all + 5, hva(f, b), 100);
    memcpy(all + 105, hva(f, c), 907);
    assert_int_equal(all[10] | all[11] << 8, 1);
    assert_memory_equal(all + 12, frame, 1000);
}

static void test_rx_mergeable(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    uint64_t g[4];
    uint16_t heads[4];
    post_rx(f, 4, 1024, g, heads);
    uint8_t frame[3000];
    make_frame(frame, sizeof frame, MAC, 5);
    fb_inject(f->fb, NULL, frame, sizeof frame);
    /* 3012 bytes: 1024 + 1024 + 964, all three visible at once. */
    uint64_t end = now_ms() + WAIT_MS;
    while (used_idx(&f->rx) == 0 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(used_idx(&f->rx), 3);
    expect_used(&f->rx, heads[0], 1024);
    expect_used(&f->rx, heads[1], 1024);
    expect_used(&f->rx, heads[2], 964);
    struct virtio_net_hdr_v1 got;
    memcpy(&got, hva(f, g[0]), sizeof got);
    assert_int_equal(le16toh(got.num_buffers), 3);
    assert_memory_equal(hva(f, g[0]) + 12, frame, 1012);
    assert_memory_equal(hva(f, g[1]), frame + 1012, 1024);
    assert_memory_equal(hva(f, g[2]), frame + 2036, 964);

    /* A small frame then takes one buffer, num_buffers 1. */
    make_frame(frame, 60, MAC, 6);
    fb_inject(f->fb, NULL, frame, 60);
    expect_used(&f->rx, heads[3], 72);
    memcpy(&got, hva(f, g[3]), sizeof got);
    assert_int_equal(le16toh(got.num_buffers), 1);
    assert_int_equal(stats(f).rx_packets, 2);
}

/* A merged frame waits for buffers the guest has not posted yet. */
static void test_rx_mergeable_waits(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    uint64_t g[3];
    uint16_t heads[3];
    post_rx(f, 1, 1500, g, heads);
    uint8_t frame[4000];
    make_frame(frame, sizeof frame, MAC, 7);
    fb_inject(f->fb, NULL, frame, sizeof frame);
    expect_no_used(&f->rx, 100);
    post_rx(f, 2, 1500, g + 1, heads + 1);
    expect_used(&f->rx, heads[0], 1500);
    expect_used(&f->rx, heads[1], 1500);
    expect_used(&f->rx, heads[2], 1012);
    assert_int_equal(hva(f, g[0])[10], 3);
    assert_memory_equal(hva(f, g[2]), frame + 2988, 1012);
    assert_int_equal(stats(f).rx_too_big, 0);
}

static void test_rx_too_big_single(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    uint64_t g[1];
    uint16_t heads[1];
    post_rx(f, 1, 1526, g, heads);
    uint8_t frame[2000];
    make_frame(frame, sizeof frame, MAC, 8);
    fb_inject(f->fb, NULL, frame, sizeof frame);
    WAIT_STAT(f, rx_too_big, 1);
    expect_no_used(&f->rx, 20);
    /* The buffer was kept for the next frame. */
    make_frame(frame, 200, MAC, 9);
    fb_inject(f->fb, NULL, frame, 200);
    expect_used(&f->rx, heads[0], 212);
    assert_memory_equal(hva(f, g[0]) + 12, frame, 200);
}

/* With MRG_RXBUF a frame larger than every buffer the queue can hold is
 * dropped; the buffers serve the next frames. */
static void test_rx_too_big_merged(void **state)
{
    struct fixture *f = *state;
    activate_sized(f, NF(MRG_RXBUF), false, 4);
    uint64_t g[4];
    uint16_t heads[4];
    post_rx(f, 4, 64, g, heads);
    uint8_t frame[1000];
    make_frame(frame, sizeof frame, MAC, 10);
    fb_inject(f->fb, NULL, frame, sizeof frame);
    WAIT_STAT(f, rx_too_big, 1);
    expect_no_used(&f->rx, 20);
    make_frame(frame, 100, MAC, 11); /* 112 bytes: two buffers */
    fb_inject(f->fb, NULL, frame, 100);
    expect_used(&f->rx, heads[0], 64);
    expect_used(&f->rx, heads[1], 48);
    assert_int_equal(hva(f, g[0])[10], 2);
    assert_memory_equal(hva(f, g[1]), frame + 52, 48);
}

/* Buffers too small for the header go back unused. */
static void test_rx_bad_buffers(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    uint64_t a = alloc_data(f, 64);
    uint16_t h1 = post(&f->rx, &(struct buf){ a, 11, true }, 1);
    uint16_t h2 = post(&f->rx, &(struct buf){ a, 64, false }, 1); /* readable only */
    expect_used(&f->rx, h1, 0);
    expect_used(&f->rx, h2, 0);
    assert_int_equal(stats(f).rx_bad_buffers, 2);
    uint16_t heads[1];
    post_rx(f, 1, 200, NULL, heads);
    uint8_t frame[60];
    make_frame(frame, 60, MAC, 1);
    fb_inject(f->fb, NULL, frame, 60);
    expect_used(&f->rx, heads[0], 72);
}

/* Headers the guest did not agree to, and runts, never reach it. */
static void test_rx_malformed(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    uint16_t heads[1];
    uint64_t g[1];
    post_rx(f, 1, 4096, g, heads);
    uint8_t frame[2000];
    make_frame(frame, sizeof frame, MAC, 1);
    struct virtio_net_hdr_v1 bad[] = {
        { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
          .csum_start = htole16(34),
          .csum_offset = htole16(16) },
        { .flags = 1,
          .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
          .gso_size = htole16(1448),
          .csum_start = htole16(34),
          .csum_offset = htole16(16) },
        { .gso_type = VIRTIO_NET_HDR_GSO_ECN },
        { .gso_type = 9 },
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
        fb_inject(f->fb, &bad[i], frame, sizeof frame);
    fb_inject(f->fb, NULL, frame, 13); /* runt */
    WAIT_STAT(f, rx_malformed, 5);
    expect_no_used(&f->rx, 20);
    fb_inject(f->fb, NULL, frame, 60);
    expect_used(&f->rx, heads[0], 72);
}

/* With GUEST_CSUM/GUEST_TSO4 accepted, the backend's offload headers pass. */
static void test_rx_offloads(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF) | NF(GUEST_CSUM) | NF(GUEST_TSO4), false);
    assert_int_equal(f->fb->guest_offloads & (NF(GUEST_CSUM) | NF(GUEST_TSO4)),
                     NF(GUEST_CSUM) | NF(GUEST_TSO4));
    uint64_t g[20];
    uint16_t heads[20];
    post_rx(f, 20, 4096, g, heads);
    static uint8_t frame[65000];
    make_frame(frame, sizeof frame, MAC, 2);
    struct virtio_net_hdr_v1 h = { .flags = 1,
                                   .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                   .gso_size = htole16(1448),
                                   .hdr_len = htole16(66),
                                   .csum_start = htole16(34),
                                   .csum_offset = htole16(16) };
    fb_inject(f->fb, &h, frame, sizeof frame);
    /* 65012 bytes over 16 buffers of 4096. */
    for (unsigned i = 0; i < 16; i++)
        expect_used(&f->rx, heads[i], i < 15 ? 4096 : 65012 - 15 * 4096);
    struct virtio_net_hdr_v1 got;
    memcpy(&got, hva(f, g[0]), sizeof got);
    assert_int_equal(got.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    assert_int_equal(le16toh(got.num_buffers), 16);
    assert_memory_equal(hva(f, g[15]), frame + 65000 - (65012 - 15 * 4096), 65012 - 15 * 4096);
    /* TCPv6 was not accepted. */
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
    fb_inject(f->fb, &h, frame, 3000);
    WAIT_STAT(f, rx_malformed, 1);
}

/* No receive buffers: the backend is not read at all, and nothing spins. */
static void test_rx_backpressure(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    uint8_t frame[100];
    for (unsigned i = 0; i < 10; i++) {
        make_frame(frame, sizeof frame, MAC, (uint8_t)i);
        fb_inject(f->fb, NULL, frame, sizeof frame);
    }
    sleep_ms(50);
    uint64_t c0 = cpu_ms();
    sleep_ms(200);
    assert_true(cpu_ms() - c0 < 100);
    assert_int_equal(atomic_load(&f->fb->recv_calls), 0);
    assert_int_equal(fb_rx_left(f->fb), 10);

    /* Three buffers: three frames, the rest stays with the backend. */
    uint64_t g[10];
    uint16_t heads[10];
    post_rx(f, 3, 2048, g, heads);
    for (unsigned i = 0; i < 3; i++)
        expect_used(&f->rx, heads[i], 112);
    expect_no_used(&f->rx, 30);
    assert_int_equal(fb_rx_left(f->fb), 7);
    post_rx(f, 7, 2048, g + 3, heads + 3);
    for (unsigned i = 3; i < 10; i++) {
        expect_used(&f->rx, heads[i], 112);
        make_frame(frame, sizeof frame, MAC, (uint8_t)i);
        assert_memory_equal(hva(f, g[i]) + 12, frame, sizeof frame);
    }
    assert_int_equal(stats(f).rx_dropped, 0);
}

/* ---- control queue --------------------------------------------------------- */

/* Sends a control command (class, cmd, data) and returns the ack. */
static uint8_t ctrl(struct fixture *f, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
    uint64_t h = alloc_data(f, 2), d = alloc_data(f, (uint32_t)len + 1), a = alloc_data(f, 1);
    hva(f, h)[0] = cls;
    hva(f, h)[1] = cmd;
    memcpy(hva(f, d), data, len);
    hva(f, a)[0] = 0x5a;
    struct buf b[3];
    unsigned n = 0;
    b[n++] = (struct buf){ h, 2, false };
    if (len)
        b[n++] = (struct buf){ d, (uint32_t)len, false };
    b[n++] = (struct buf){ a, 1, true };
    uint16_t head = post(&f->ctrl, b, n);
    expect_used(&f->ctrl, head, 1);
    return hva(f, a)[0];
}

static uint8_t ctrl_mac_table(struct fixture *f, const uint8_t (*uni)[6], uint32_t nuni,
                              const uint8_t (*multi)[6], uint32_t nmulti)
{
    uint8_t buf[8 + 12 * 6];
    size_t off = 0;
    uint32_t v = htole32(nuni);
    memcpy(buf + off, &v, 4);
    off += 4;
    memcpy(buf + off, uni, 6 * nuni);
    off += 6 * nuni;
    v = htole32(nmulti);
    memcpy(buf + off, &v, 4);
    off += 4;
    memcpy(buf + off, multi, 6 * nmulti);
    off += 6 * nmulti;
    return ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf, off);
}

/* Sends one frame to dst and says whether the guest got it. */
static bool rx_gets(struct fixture *f, const uint8_t *dst)
{
    uint16_t heads[1];
    struct net_stats before = stats(f);
    uint8_t frame[60];
    make_frame(frame, 60, dst, 1);
    fb_inject(f->fb, NULL, frame, 60);
    uint64_t end = now_ms() + WAIT_MS;
    for (;;) {
        struct net_stats s = stats(f);
        if (s.rx_filtered > before.rx_filtered)
            return false;
        if (s.rx_packets > before.rx_packets)
            break;
        assert_true(now_ms() < end);
        sleep_ms(1);
    }
    uint16_t id;
    uint32_t len;
    assert_true(wait_used(&f->rx, &id, &len, WAIT_MS));
    post_rx(f, 1, 256, NULL, heads); /* replace the buffer */
    return true;
}

static void test_ctrl(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MAC) | NF(MRG_RXBUF) | NF(CTRL_VQ) | NF(CTRL_RX) | NF(CTRL_MAC_ADDR), false);
    post_rx(f, 4, 256, NULL, NULL);

    /* Promiscuous after reset: anything passes. */
    assert_true(rx_gets(f, OTHER));
    uint8_t off = 0, on = 1;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1),
                     VIRTIO_NET_OK);
    assert_false(rx_gets(f, OTHER));
    assert_true(rx_gets(f, MAC));
    assert_true(rx_gets(f, BCAST));
    static const uint8_t mc1[6] = { 0x33, 0x33, 0, 0, 0, 1 },
                         mc2[6] = { 0x01, 0, 0x5e, 0, 0, 0xfb };
    assert_false(rx_gets(f, mc1));

    const uint8_t uni[1][6] = { { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc } };
    const uint8_t multi[1][6] = { { 0x33, 0x33, 0, 0, 0, 1 } };
    assert_int_equal(ctrl_mac_table(f, uni, 1, multi, 1), VIRTIO_NET_OK);
    assert_true(rx_gets(f, OTHER));
    assert_true(rx_gets(f, mc1));
    assert_false(rx_gets(f, mc2));
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1),
                     VIRTIO_NET_OK);
    assert_true(rx_gets(f, mc2));

    /* Too many addresses: all unicast. */
    uint8_t big[8 + 70 * 6];
    memset(big, 0x02, sizeof big);
    uint32_t v = htole32(70);
    memcpy(big, &v, 4);
    v = 0;
    memcpy(big + 4 + 70 * 6, &v, 4);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, big, sizeof big),
                     VIRTIO_NET_OK);
    static const uint8_t stranger[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
    assert_true(rx_gets(f, stranger));

    /* New MAC: config space shows it, frames to it pass. */
    static const uint8_t newmac[6] = { 0x52, 0x54, 0x00, 0x01, 0x02, 0x03 };
    assert_int_equal(ctrl_mac_table(f, uni, 0, multi, 0), VIRTIO_NET_OK);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 6),
                     VIRTIO_NET_OK);
    uint8_t c[6];
    f->ops->config_read(f->net, 0, c, 6);
    assert_memory_equal(c, newmac, 6);
    assert_true(rx_gets(f, newmac));
    assert_false(rx_gets(f, MAC));

    /* Errors: unknown class/command, wrong lengths, bad MAC, bad tables. */
    uint8_t two[2] = { 1, 1 };
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, two, 2),
                     VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, 2 /* ALLUNI: RX_EXTRA */, &on, 1), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, 2 /* VLAN */, 0, two, 2), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, 4 /* MQ */, 0, two, 2), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, 0xff, 0xff, two, 1), VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 5),
                     VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mc1, 6),
                     VIRTIO_NET_ERR);
    static const uint8_t zero[6];
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, zero, 6),
                     VIRTIO_NET_ERR);
    /* Tables whose counts do not match the data. */
    uint8_t lie[12] = { 0 };
    v = htole32(0x40000000); /* far beyond the data */
    memcpy(lie, &v, 4);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, lie, 12),
                     VIRTIO_NET_ERR);
    v = 0;
    memcpy(lie, &v, 4);
    v = htole32(0xffffffff);
    memcpy(lie + 4, &v, 4);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, lie, 8),
                     VIRTIO_NET_ERR);
    v = 0;
    memcpy(lie + 4, &v, 4); /* 0 and 0, but 4 bytes too many */
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, lie, 12),
                     VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, lie, 7),
                     VIRTIO_NET_ERR);

    /* A command with no room for the ack, and one with only a class byte. */
    uint64_t h = alloc_data(f, 2);
    hva(f, h)[0] = 0;
    hva(f, h)[1] = 0;
    uint16_t head = post(&f->ctrl, &(struct buf){ h, 2, false }, 1);
    expect_used(&f->ctrl, head, 0);
    uint64_t a = alloc_data(f, 1);
    struct buf b2[2] = { { h, 1, false }, { a, 1, true } };
    head = post(&f->ctrl, b2, 2);
    expect_used(&f->ctrl, head, 1);
    assert_int_equal(hva(f, a)[0], VIRTIO_NET_ERR);
    struct net_stats s = stats(f);
    assert_int_equal(s.ctrl_malformed, 1);
    assert_int_equal(s.ctrl_ok, 6);
    assert_int_equal(s.ctrl_err, 13);
    assert_true(atomic_load(&f->t.notify[VIRTIO_NET_CTRLQ]) >= 1);

    /* Reset restores the MAC and the promiscuous default. */
    f->ops->reset(f->net);
    f->ops->config_read(f->net, 0, c, 6);
    assert_memory_equal(c, MAC, 6);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* Without CTRL_RX negotiated, the commands that need it are refused; without
 * CTRL_VQ the control queue is not served at all. */
/* The fixture's queues handed over again after a stop (a snapshot
 * taken, or one restored): positions kept. */
static struct virtio_queues resumed_queues(struct fixture *f, uint64_t feat)
{
    return (struct virtio_queues){
        .transport = &f->t,
        .count = 3,
        .q = { &f->rx.q, &f->tx.q, &f->ctrl.q },
        .kick_fd = { f->rx.kick, f->tx.kick, f->ctrl.kick },
        .features = feat | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX),
        .resume = true,
    };
}

/* A snapshot of the NIC: the receive buffers it held go back to the
 * ring; the MAC and filter the driver set survive into a device that
 * loads the state (here the same one after a reset, which forgot them),
 * and state no driver could have set is refused. */
static void test_snapshot_state(void **state)
{
    struct fixture *f = *state;
    uint64_t feat = NF(MAC) | NF(MRG_RXBUF) | NF(CTRL_VQ) | NF(CTRL_RX) | NF(CTRL_MAC_ADDR);
    activate(f, feat, true);
    post_rx(f, 4, 256, NULL, NULL);
    uint8_t off = 0;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1),
                     VIRTIO_NET_OK);
    static const uint8_t newmac[6] = { 0x52, 0x54, 0x00, 0x01, 0x02, 0x03 };
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 6),
                     VIRTIO_NET_OK);
    assert_true(rx_gets(f, newmac));
    /* The device holds a buffer while it waits for the backend. */
    uint64_t end = now_ms() + WAIT_MS;
    while (__atomic_load_n(&f->rx.q.last_avail, __ATOMIC_ACQUIRE) == used_idx(&f->rx) &&
           now_ms() < end)
        sleep_ms(1);
    f->ops->stop(f->net);
    assert_int_equal(f->rx.q.last_avail, used_idx(&f->rx)); /* given back */
    assert_int_equal(f->ctrl.q.last_avail, used_idx(&f->ctrl));
    assert_int_equal(f->tx.q.last_avail, used_idx(&f->tx));

    uint8_t st[VIRTIO_STATE_MAX];
    int len = f->ops->save(f->net, st, sizeof st);
    assert_true(len > 12 && len <= VIRTIO_STATE_MAX);
    f->ops->reset(f->net); /* back to the defaults */
    uint8_t c[6];
    f->ops->config_read(f->net, 0, c, 6);
    assert_memory_equal(c, MAC, 6);
    char why[128];
    assert_int_equal(f->ops->load(f->net, st, (size_t)len, why, sizeof why), 0);
    f->ops->config_read(f->net, 0, c, 6);
    assert_memory_equal(c, newmac, 6);
    struct virtio_queues qs = resumed_queues(f, feat);
    assert_int_equal(f->ops->activate(f->net, &qs), 0);
    assert_false(rx_gets(f, MAC)); /* the driver's filter, not promiscuous */
    assert_true(rx_gets(f, newmac));
    f->ops->reset(f->net);

    /* Hostile states: a multicast MAC, a table longer than the device
     * keeps, reserved bytes set, a truncated record. */
    uint8_t bad[VIRTIO_STATE_MAX];
    memcpy(bad, st, (size_t)len);
    bad[0] |= 1;
    assert_int_equal(f->ops->load(f->net, bad, (size_t)len, why, sizeof why), -1);
    assert_string_equal(why, "a multicast or zero MAC address");
    memcpy(bad, st, (size_t)len);
    uint32_t many = htole32(VIRTIO_NET_MAC_TABLE_MAX + 1);
    memcpy(bad + 12, &many, 4);
    assert_int_equal(f->ops->load(f->net, bad, (size_t)len, why, sizeof why), -1);
    assert_string_equal(why, "a receive filter no driver could set");
    memcpy(bad, st, (size_t)len);
    bad[len - 1] = 1; /* the record ends with two reserved bytes */
    assert_int_equal(f->ops->load(f->net, bad, (size_t)len, why, sizeof why), -1);
    assert_string_equal(why, "nonzero reserved bytes");
    assert_int_equal(f->ops->load(f->net, st, (size_t)len - 1, why, sizeof why), -1);
}

/* A clone: the state loaded into a NIC made with another MAC (a
 * restore's --net mac=). The new MAC is offered in config space for the
 * driver's next probe, the driver's MAC stays in the filter until then,
 * and a reset makes the new one the NIC's. State from the first format
 * (no saved default MAC, 8 bytes shorter) still loads, without offering. */
static void test_snapshot_clone_mac(void **state)
{
    struct fixture *f = *state;
    uint64_t feat = NF(MAC) | NF(MRG_RXBUF) | NF(CTRL_VQ) | NF(CTRL_RX);
    activate(f, feat, true);
    uint8_t off = 0; /* as Linux does on open: the filter, not promiscuous */
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1),
                     VIRTIO_NET_OK);
    f->ops->stop(f->net);
    uint8_t st[VIRTIO_STATE_MAX];
    int len = f->ops->save(f->net, st, sizeof st);
    assert_true(len > 8);

    /* The clone, in place of the saved NIC (the fixture's rings stay). */
    virtio_net_free(f->net);
    assert_true(f->be_freed);
    f->be_freed = false;
    f->fb = fb_new(0);
    f->fb->freed = &f->be_freed;
    static const uint8_t clone_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
    vmlet_error err;
    struct virtio_net *clone = virtio_net_new(&f->fb->b, clone_mac, &err);
    assert_non_null(clone);
    f->net = clone; /* rx_gets and teardown look at the fixture's device */
    const struct virtio_device_ops *ops = &virtio_net_device(clone)->ops;
    f->ops = ops;
    char why[128];
    assert_int_equal(ops->load(clone, st, (size_t)len, why, sizeof why), 0);
    uint8_t c[6];
    ops->config_read(clone, 0, c, 6);
    assert_memory_equal(c, clone_mac, 6);
    struct virtio_queues qs = resumed_queues(f, feat);
    post_rx(f, 4, 256, NULL, NULL);
    assert_int_equal(ops->activate(clone, &qs), 0);
    assert_true(rx_gets(f, MAC));        /* the driver's MAC until it probes again */
    assert_false(rx_gets(f, clone_mac)); /* not yet the interface's */
    ops->reset(clone);
    ops->config_read(clone, 0, c, 6);
    assert_memory_equal(c, clone_mac, 6);

    /* The first format: no default MAC saved, so nothing is offered. */
    assert_int_equal(ops->load(clone, st, (size_t)len - 8, why, sizeof why), 0);
    ops->config_read(clone, 0, c, 6);
    assert_memory_equal(c, MAC, 6);
}

static void test_ctrl_not_negotiated(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(CTRL_VQ), false);
    uint8_t on = 1;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1),
                     VIRTIO_NET_ERR);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, OTHER, 6),
                     VIRTIO_NET_ERR);
    /* CTRL_RX is not CTRL_MAC_ADDR: the MAC cannot be changed without the
     * latter (5.1.6.5.2); the filter commands still work. */
    f->ops->reset(f->net);
    activate(f, NF(CTRL_VQ) | NF(CTRL_RX), false);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, OTHER, 6),
                     VIRTIO_NET_ERR);
    uint8_t c[6];
    f->ops->config_read(f->net, 0, c, 6);
    assert_memory_equal(c, MAC, 6);
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1),
                     VIRTIO_NET_OK);
    f->ops->reset(f->net);
    activate(f, NF(CTRL_RX), false); /* CTRL_RX without CTRL_VQ */
    uint64_t h = alloc_data(f, 3), a = alloc_data(f, 1);
    struct buf b[2] = { { h, 3, false }, { a, 1, true } };
    post(&f->ctrl, b, 2);
    expect_no_used(&f->ctrl, 50);
}

/* ---- notification suppression (EVENT_IDX, 2.7.7 and 2.7.10) ------------ */

static void set_used_event(struct ring *r, uint16_t v)
{
    __atomic_store_n((uint16_t *)(r->avail + 4 + 2 * r->size), v, __ATOMIC_RELEASE);
}

static uint16_t avail_event(struct ring *r)
{
    return __atomic_load_n((uint16_t *)(r->used + 4 + 8 * r->size), __ATOMIC_ACQUIRE);
}

static void test_event_idx(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), true);
    /* The driver wants an interrupt only once the 4th buffer is used
     * (used_event 3: when used idx passes 3). */
    set_used_event(&f->rx, 3);
    uint64_t g[6];
    uint16_t heads[6];
    post_rx(f, 6, 256, g, heads);
    uint8_t frame[60];
    for (unsigned i = 0; i < 3; i++) {
        make_frame(frame, 60, MAC, (uint8_t)i);
        fb_inject(f->fb, NULL, frame, 60);
        expect_used(&f->rx, heads[i], 72);
    }
    /* The first push after activation always notifies (nothing is known
     * about the driver yet); the next two do not pass used_event. */
    sleep_ms(20);
    assert_int_equal(atomic_load(&f->t.notify[VIRTIO_NET_RXQ]), 1);
    fb_inject(f->fb, NULL, frame, 60);
    expect_used(&f->rx, heads[3], 72);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.notify[VIRTIO_NET_RXQ]) < 2 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.notify[VIRTIO_NET_RXQ]), 2);

    /* Transmit: after going idle the device asks to be kicked at the next
     * new entry (avail_event = its last_avail). */
    struct virtio_net_hdr_v1 h = { 0 };
    set_used_event(&f->tx, 0);
    for (unsigned i = 0; i < 3; i++) {
        uint16_t head = post_tx(f, &h, frame, 60, 1);
        expect_used(&f->tx, head, 0);
    }
    end = now_ms() + WAIT_MS;
    while (avail_event(&f->tx) != 3 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(avail_event(&f->tx), 3);
    /* A chain made available without a kick, after the device went idle,
     * waits for the kick (the device is not polling). */
    uint64_t d = alloc_data(f, 72);
    memset(hva(f, d), 0, 72);
    make_frame(hva(f, d) + 12, 60, MAC, 1);
    uint16_t head = post_nokick(&f->tx, &(struct buf){ d, 72, false }, 1);
    expect_no_used(&f->tx, 50);
    kick(&f->tx);
    expect_used(&f->tx, head, 0);
    /* used_event 0 was passed by the first push only. */
    assert_int_equal(atomic_load(&f->t.notify[VIRTIO_NET_TXQ]), 1);
}

/* ---- reset, broken rings, failed backend --------------------------------- */

static void test_reset_while_busy(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    /* A merged frame half-gathered, a transmit chain held by a busy backend. */
    uint64_t g[1];
    post_rx(f, 1, 1024, g, NULL);
    static uint8_t frame[5000];
    make_frame(frame, sizeof frame, MAC, 1);
    fb_inject(f->fb, NULL, frame, sizeof frame);
    atomic_store(&f->fb->busy, true);
    struct virtio_net_hdr_v1 h = { 0 };
    post_tx(f, &h, frame, 100, 1);
    uint64_t end = now_ms() + WAIT_MS;
    while ((atomic_load(&f->fb->busy_hits) == 0 || atomic_load(&f->fb->recv_calls) == 0) &&
           now_ms() < end)
        sleep_ms(1);
    /* Keep the backend busy with more traffic while resetting. */
    for (unsigned i = 0; i < 20; i++)
        fb_inject(f->fb, NULL, frame, 60);

    uint64_t t0 = now_ms();
    f->ops->reset(f->net);
    assert_true(now_ms() - t0 < 1000);
    assert_int_equal(f->fb->guest_offloads, 0);
    /* After reset nothing touches guest memory: make more work available
     * and watch the used rings and the buffers. */
    static uint8_t rx_used[0x1000], tx_used[0x1000], bufs[0x4000];
    memcpy(rx_used, f->rx.used, sizeof rx_used);
    memcpy(tx_used, f->tx.used, sizeof tx_used);
    memcpy(bufs, hva(f, g[0]), sizeof bufs);
    post_rx(f, 2, 1024, NULL, NULL);
    atomic_store(&f->fb->busy, false);
    uint64_t one = 1;
    assert_int_equal(write(f->fb->b.fd, &one, 8), 8);
    kick(&f->tx);
    sleep_ms(50);
    assert_int_equal(used_idx(&f->rx), 0);
    assert_int_equal(used_idx(&f->tx), 0);
    assert_memory_equal(rx_used, f->rx.used, sizeof rx_used);
    assert_memory_equal(tx_used, f->tx.used, sizeof tx_used);
    assert_memory_equal(bufs, hva(f, g[0]), 1024);
    assert_int_equal(fb_tx_count(f->fb), 0);
    assert_int_equal(stats(f).rx_dropped, 1); /* the half-gathered frame */

    /* And the device comes back. */
    activate(f, 0, false);
    uint16_t heads[1];
    post_rx(f, 1, 2048, NULL, heads);
    fb_inject(f->fb, NULL, frame, 60);
    uint16_t id;
    uint32_t len;
    /* Queued frames from before the reset arrive first; any is fine. */
    assert_true(wait_used(&f->rx, &id, &len, WAIT_MS));
    assert_int_equal(id, heads[0]);
}

struct flood {
    struct ring *r;
    atomic_bool stop;
};

/* A driver on another vCPU that re-posts every receive buffer the moment
 * the device returns it, each one readable only (no room for a header),
 * so the device always has one more to look at. */
static void *flood_rx(void *arg)
{
    struct flood *fl = arg;
    struct ring *r = fl->r;
    uint64_t end = now_ms() + 5000;
    while (!atomic_load(&fl->stop) && now_ms() < end) {
        bool posted = false;
        while ((uint16_t)(r->avail_idx - used_idx(r)) < r->size) {
            publish(r, (uint16_t)(r->avail_idx % r->size));
            posted = true;
        }
        /* Kick only when the device asked for it (VRING_USED_F_NO_NOTIFY
         * clear), as a driver does: no system call while it is busy. */
        if (posted && !(__atomic_load_n((uint16_t *)r->used, __ATOMIC_ACQUIRE) & 1))
            kick(r);
    }
    return NULL;
}

/* The receive loop has a budget and sees a stop: a reset returns promptly
 * while the driver keeps feeding it buffers it must return at once. (The
 * old unbounded loop let go only when it found the ring empty; on a loaded
 * host the flooding thread is descheduled often enough that it does, so
 * this cannot show that loop hanging every time: it shows liveness.) */
static void test_rx_flood_reset(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    /* Each buffer is an indirect table of 1024 readable descriptors: the
     * device walks them all before returning the buffer, while the driver
     * re-posts it with one store, so the driver stays ahead and the ring
     * is never empty (which is when the old loop let go). */
    enum { NIND = 1024 };
    uint64_t a = alloc_data(f, 64), table = alloc_data(f, NIND * 16);
    for (unsigned i = 0; i < NIND; i++) {
        uint8_t *d = hva(f, table) + 16 * i;
        uint32_t len = 1;
        uint16_t flags = i + 1 < NIND ? F_NEXT : 0, next = (uint16_t)(i + 1);
        memcpy(d, &a, 8);
        memcpy(d + 8, &len, 4);
        memcpy(d + 12, &flags, 2);
        memcpy(d + 14, &next, 2);
    }
    for (unsigned i = 0; i < f->rx.size; i++)
        put_desc(&f->rx, i, table, NIND * 16, 4 /* INDIRECT */, 0);
    struct flood fl = { .r = &f->rx };
    atomic_init(&fl.stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flood_rx, &fl), 0);
    kick(&f->rx);
    uint64_t end = now_ms() + WAIT_MS;
    while (stats(f).rx_bad_buffers < 1000 && now_ms() < end)
        sleep_ms(1);
    assert_true(stats(f).rx_bad_buffers >= 1000);

    uint64_t t0 = now_ms();
    f->ops->reset(f->net);
    uint64_t took = now_ms() - t0;
    atomic_store(&fl.stop, true);
    pthread_join(t, NULL);
    assert_true(took < 1000);
}

static void test_broken_ring(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(MRG_RXBUF), false);
    /* The driver claims more available than the ring holds. */
    __atomic_store_n((uint16_t *)(f->tx.avail + 2), (uint16_t)(f->tx.size + 5), __ATOMIC_RELEASE);
    kick(&f->tx);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) == 0 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 1);
    /* A loop in a receive chain. */
    uint64_t a = alloc_data(f, 64);
    put_desc(&f->rx, 0, a, 64, F_WRITE | F_NEXT, 0);
    publish(&f->rx, 0);
    kick(&f->rx);
    end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 2 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 2);
    /* After a reset all queues work again. */
    f->ops->reset(f->net);
    activate(f, NF(CTRL_VQ) | NF(CTRL_RX), false);
    uint8_t on = 1;
    assert_int_equal(ctrl(f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1),
                     VIRTIO_NET_OK);
    /* A chain pointing outside guest RAM. */
    put_desc(&f->rx, 0, RAM_SIZE - 8, 64, F_WRITE, 0);
    publish(&f->rx, 0);
    kick(&f->rx);
    end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 3 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 3);
}

/* The host side goes away: transmit frames are dropped, the link goes down. */
static void test_backend_failed(void **state)
{
    struct fixture *f = *state;
    activate(f, NF(STATUS), false);
    atomic_store(&f->fb->b.failed, true);
    uint64_t one = 1;
    assert_int_equal(write(f->fb->b.fd, &one, 8), 8);
    struct virtio_net_hdr_v1 h = { 0 };
    uint8_t frame[60];
    make_frame(frame, 60, BCAST, 1);
    uint16_t head = post_tx(f, &h, frame, 60, 1);
    expect_used(&f->tx, head, 0);
    WAIT_STAT(f, tx_errors, 1);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.config) == 0 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.config), 1);
    uint8_t c[8];
    f->ops->config_read(f->net, 0, c, 8);
    assert_int_equal(c[6], 0);
    assert_int_equal(fb_tx_count(f->fb), 0);
}

int main(void)
{
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_offloads, setup_tap, teardown),
        cmocka_unit_test(test_hdr_rules),
        cmocka_unit_test_setup_teardown(test_tx_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_split_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_mergeable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_mergeable_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_too_big_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_too_big_merged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_bad_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_flood_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_offloads, setup_tap, teardown),
        cmocka_unit_test_setup_teardown(test_rx_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctrl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_clone_mac, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctrl_not_negotiated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_failed, setup, teardown),
    };
    return cmocka_run_group_tests_name("virtio_net", tests, NULL, NULL);
}
