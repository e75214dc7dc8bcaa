/* libFuzzer target for virtio-net (src/virtio/net.c) as a hostile driver
 * and a hostile network see it: transmit chains (virtio_net_hdr checks
 * against the negotiated offloads, GSO and checksum fields, sizes),
 * receive buffers with and without VIRTIO_NET_F_MRG_RXBUF filled from host
 * frames the input supplies, and the control queue (every class and
 * command, MAC_ADDR_SET with and without CTRL_MAC_ADDR), all served by the
 * device's own thread against a stand-in backend that records what it is
 * sent and hands out the input's frames. Build with clang
 * -fsanitize=fuzzer,address,undefined and -Wl,--wrap=... (see
 * tests/fuzz/meson.build), or with -DVMLET_FUZZ_STANDALONE and any
 * compiler to replay files.
 *
 * Input: the layout of fuzz_device.h (queue 0 receiveq1, 1 transmitq1, 2
 * controlq; at most 256 entries each), with
 *   param 0  bit 0: the backend offers every offload (like TAP), else none
 *            (like slirp); bit 1: the host frames arrive only once the
 *            device is idle; bits 4-7: the first N sends answer BUSY
 *   param 1  bit 0: every 3rd send is DROPPED
 *   param 2..3  le16: the host side is the last N bytes of the input:
 *            8 bytes, the features the driver accepts (le64, masked with
 *            what is offered), then frames, each le16 length L and L bytes
 *            (virtio-net header and frame, cut to NET_BUF_MAX); L 0xffff
 *            is a lost frame (recv -1), L 0xfffe a broadcast frame of
 *            NET_BUF_MAX bytes with a zero header.
 *
 * Checks (besides fuzz_device.h's): every frame the backend gets is 14 to
 * 65589 bytes, with a 12-byte sanitised header first (flags at most
 * NEEDS_CSUM, num_buffers 0) and the rest in guest RAM; transmit chains
 * come back with used length 0; control acks are VIRTIO_NET_OK or
 * VIRTIO_NET_ERR, one byte; receive buffers come back with at most their
 * writable bytes, at least a header unless 0 (also those returned
 * together with MRG_RXBUF, read from the used ring); config space shows a
 * unicast, non-zero MAC. */
#include <endian.h>
#include <stdint.h>

#include "fuzz_device.h"
#include "backend/net.h"
#include "virtio/net.h"

#define MAX_FRAMES 64

struct fuzz_be {
    struct net_backend b;
    const uint8_t *stream; /* frames still to hand out */
    size_t left;
    bool gated; /* frames held until the target opens the gate */
    unsigned busy, sends;
    bool drop_some;
    unsigned frames;
};

static struct fuzz_be *be;
static uint8_t big_frame[NET_BUF_MAX];

static enum net_send_result fb_send(struct net_backend *b, const struct iovec *iov, unsigned iovcnt,
                                    size_t len)
{
    struct fuzz_be *f = (struct fuzz_be *)b;
    fz_check(iovcnt >= 2 && iov[0].iov_len == VIRTIO_NET_HDR_LEN, "no header first");
    fz_check(len >= NET_FRAME_MIN && len <= NET_FRAME_MAX, "frame size out of bounds");
    struct virtio_net_hdr_v1 h;
    memcpy(&h, iov[0].iov_base, sizeof h);
    fz_check(h.flags <= VIRTIO_NET_HDR_F_NEEDS_CSUM && h.num_buffers == 0, "header not sanitised");
    fz_check(!fz_in_ram(iov[0].iov_base, 1), "header handed over in guest memory");
    size_t total = 0;
    for (unsigned i = 1; i < iovcnt; i++) {
        fz_check(fz_in_ram(iov[i].iov_base, iov[i].iov_len), "frame bytes outside guest RAM");
        total += iov[i].iov_len;
    }
    fz_check(total == len, "frame length and iovecs disagree");
    if (f->busy) {
        f->busy--;
        eventfd_kick(b->fd); /* room again at once */
        return NET_SEND_BUSY;
    }
    return f->drop_some && ++f->sends % 3 == 0 ? NET_SEND_DROPPED : NET_SEND_OK;
}

static ssize_t fb_recv(struct net_backend *b, void *buf, size_t cap)
{
    struct fuzz_be *f = (struct fuzz_be *)b;
    if (f->gated || f->left < 2 || f->frames == MAX_FRAMES)
        return 0;
    f->frames++;
    size_t len = fz_get16(f->stream);
    f->stream += 2;
    f->left -= 2;
    if (len == 0xffff)
        return -1;
    if (len == 0xfffe) {
        memcpy(buf, big_frame, cap < sizeof big_frame ? cap : sizeof big_frame);
        return (ssize_t)(cap < sizeof big_frame ? cap : sizeof big_frame);
    }
    if (len > f->left)
        len = f->left;
    if (len > cap)
        len = cap;
    memcpy(buf, f->stream, len);
    f->stream += len;
    f->left -= len;
    return (ssize_t)len;
}

static int fb_set_offloads(struct net_backend *b, uint64_t features)
{
    (void)b;
    (void)features;
    return 0;
}

static void fb_free(struct net_backend *b)
{
    close(b->fd);
    free(b);
}

static const struct net_backend_ops fb_ops = {
    .send = fb_send,
    .recv = fb_recv,
    .set_guest_offloads = fb_set_offloads,
    .free = fb_free,
};

static void on_push(const struct virtq *q, uint16_t head, uint32_t len,
                    const struct fz_popped *pushed)
{
    (void)pushed;
    (void)head;
    if (q == &fz.q[VIRTIO_NET_TXQ])
        fz_check(len == 0, "transmit chain used with a length");
    if (q == &fz.q[VIRTIO_NET_RXQ])
        fz_check(len == 0 || len >= VIRTIO_NET_HDR_LEN + NET_FRAME_MIN,
                 "receive shorter than a frame");
    if (q != &fz.q[VIRTIO_NET_CTRLQ])
        return;
    /* The ack was just written into the chain being returned. */
    fz_check(len <= 1, "control chain used with more than the ack");
    const struct virtq_chain *c = fz.last_chain;
    for (unsigned i = c->n_out; len && i < c->n_out + c->n_in; i++) {
        if (!c->iov[i].iov_len)
            continue;
        uint8_t ack = *(const uint8_t *)c->iov[i].iov_base;
        fz_check(ack == VIRTIO_NET_OK || ack == VIRTIO_NET_ERR, "control ack neither OK nor ERR");
        break;
    }
}

/* Receive buffers returned together (MRG_RXBUF) bypass virtq_push: read
 * them from the used ring, unless the guest had the device write over it. */
static void check_rx_used(void)
{
    const struct virtq *q = &fz.q[VIRTIO_NET_RXQ];
    if (fz.wrote_rings || fz.pops_overflow)
        return;
    for (uint16_t i = fz.start[VIRTIO_NET_RXQ]; i != q->used_idx; i++) {
        const uint8_t *e = fz.ram + q->used_gpa + 4 + 8 * (size_t)(i & (q->size - 1));
        uint32_t id, len;
        memcpy(&id, e, 4);
        memcpy(&len, e + 4, 4);
        id = le32toh(id);
        len = le32toh(len);
        uint64_t cap = 0;
        bool found = false;
        for (unsigned k = 0; k < fz.npops; k++)
            if (fz.pops[k].q == q && fz.pops[k].head == id) {
                found = true;
                cap = fz.pops[k].in_len > cap ? fz.pops[k].in_len : cap;
            }
        fz_check(found, "used receive buffer that was never popped");
        fz_check(len <= cap, "receive used length larger than the buffer");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    fz.on_push = on_push;
    if (size < FZ_HEADER + 8)
        return 0;
    size_t tail = fz_get16(data + 2);
    if (tail < 8)
        tail = 8;
    if (tail > size - FZ_HEADER)
        tail = size - FZ_HEADER;
    const uint8_t *host = data + size - tail;
    uint64_t features;
    memcpy(&features, host, 8);
    features = le64toh(features) | (1ull << VIRTIO_F_VERSION_1);

    struct virtio_queues qs;
    if (!fz_setup(data, size, 3, VIRTIO_NET_QUEUE_SIZE, &qs, features))
        return 0;
    be = calloc(1, sizeof *be);
    fz_check(be != NULL, "out of memory");
    be->b.ops = &fb_ops;
    be->b.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    fz_check(be->b.fd >= 0, "eventfd");
    be->b.fd_is_wake = true;
    if (fz_param(0) & 1)
        be->b.offloads = ~0ull; /* the device keeps those it can check */
    snprintf(be->b.desc, sizeof be->b.desc, "fuzz");
    be->stream = host + 8;
    be->left = tail - 8;
    be->gated = fz_param(0) & 2;
    be->busy = fz_param(0) >> 4;
    be->drop_some = fz_param(1) & 1;
    memset(big_frame + VIRTIO_NET_HDR_LEN, 0xff, 6);

    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    vmlet_error err;
    struct fuzz_be *fb = be;
    struct virtio_net *n = virtio_net_new(&fb->b, mac, &err);
    fz_check(n != NULL, err.message);
    struct virtio_device *dev = virtio_net_device(n);

    unsigned gen = fz_idle_gen();
    fz_check(dev->ops.activate(dev, &qs) == 0, "activate failed");
    for (unsigned round = 0; round < 4; round++) {
        fz_wait_idle(gen);
        gen = fz_idle_gen();
        bool woke = false;
        if (fb->gated) {
            fb->gated = false;
            eventfd_kick(fb->b.fd);
            woke = fz_watched(fb->b.fd, POLLIN);
        }
        woke |= fz_publish(3);
        if (!woke)
            break;
    }
    uint8_t cfg_mac[6];
    dev->ops.config_read(dev, 0, cfg_mac, 6);
    fz_check(!(cfg_mac[0] & 1) &&
                 (cfg_mac[0] | cfg_mac[1] | cfg_mac[2] | cfg_mac[3] | cfg_mac[4] | cfg_mac[5]),
             "config space shows a MAC no NIC may have");
    dev->ops.reset(dev);
    fz_after_reset(3);
    check_rx_used();
    virtio_net_free(n); /* frees the backend */
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
