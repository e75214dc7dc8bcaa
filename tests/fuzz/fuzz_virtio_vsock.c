/* libFuzzer target for virtio-vsock (src/virtio/vsock.c) as a hostile
 * driver sees it: tx packets of any shape (short headers, lying lengths,
 * other CIDs, unknown ops and types, packets for unknown connections,
 * credit that does not add up), rx buffers of any size, served by the
 * device's own thread until idle, held chains published later, then a
 * reset. The host side is real Unix sockets: a listener at "<uds>_1"
 * (guest connections to port 1 succeed, to others are refused) and,
 * on request, a host program that connects and writes a CONNECT line and
 * data before the device starts. Build as tests/fuzz/meson.build does, or
 * with -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * Input: the layout of fuzz_device.h (queues rx, tx, event), with
 *   param 0  bit 0: a host program connects first and writes
 *            "CONNECT <param 1>\n" and 100 bytes; bit 1: a transport reset
 *            event is queued (the first event buffer gets it)
 *
 * Checks (besides fuzz_device.h's): tx chains are given back with used
 * length 0; every rx buffer used is empty (0) or a whole header and its
 * payload, at most VSOCK_MAX_PKT; the device's bytes_to_guest counter is
 * the sum of those payloads; the device never stalls (fz_wait_idle). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fuzz_device.h"
#include "virtio/vsock.h"

static char dir[48], uds[64], port1[80];
static int listener = -1;
static uint64_t rx_payload;

static void cleanup(void)
{
    unlink(port1);
    unlink(uds);
    rmdir(dir);
}

static void host_setup(void)
{
    if (listener >= 0)
        return;
    snprintf(dir, sizeof dir, "/tmp/vmlet-fuzz-vsock-%d", (int)getpid());
    fz_check(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir");
    snprintf(uds, sizeof uds, "%s/v.sock", dir);
    snprintf(port1, sizeof port1, "%s_1", uds);
    unlink(port1);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", port1);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fz_check(listener >= 0, "socket");
    fz_check(bind(listener, (struct sockaddr *)&a, sizeof a) == 0, "bind");
    fz_check(listen(listener, 64) == 0, "listen");
    atexit(cleanup);
}

/* Connections the device made to port 1 and left: gone, so the backlog
 * never fills across inputs. */
static void host_drain(void)
{
    int fd;
    while ((fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        close(fd);
}

static void on_push(const struct virtq *q, uint16_t head, uint32_t len,
                    const struct fz_popped *pushed)
{
    (void)head;
    (void)pushed;
    if (q == &fz.q[1]) {
        fz_check(len == 0, "a tx chain given back with a used length");
    } else if (q == &fz.q[0] && len) {
        fz_check(len >= VSOCK_HDR_SIZE, "an rx packet shorter than its header");
        fz_check(len - VSOCK_HDR_SIZE <= VSOCK_MAX_PKT, "an rx packet over the maximum");
        rx_payload += len - VSOCK_HDR_SIZE;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    host_setup();
    fz.on_push = on_push;
    struct virtio_queues qs;
    if (!fz_setup(data, size, 3, 256, &qs, 1ull << VIRTIO_F_VERSION_1))
        return 0;
    vmlet_error err;
    struct virtio_vsock *v = virtio_vsock_new(3, uds, &err);
    fz_check(v != NULL, err.message);
    struct virtio_device *dev = virtio_vsock_device(v);
    if (fz_param(0) & 2)
        virtio_vsock_queue_transport_reset(v);
    virtio_vsock_set_timeout(v, 0); /* a deadline would keep the thread from idling */
    rx_payload = 0;

    int host = -1;
    if (fz_param(0) & 1) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s", uds);
        host = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        fz_check(host >= 0 && connect(host, (struct sockaddr *)&a, sizeof a) == 0, "connect");
        char line[128];
        int n = snprintf(line, sizeof line, "CONNECT %u\n", fz_param(1));
        memset(line + n, 'h', 100);
        fz_check(write(host, line, (size_t)n + 100) == n + 100, "host write");
    }

    unsigned gen = fz_idle_gen();
    fz_check(dev->ops.activate(dev, &qs) == 0, "activate failed");
    fz_wait_idle(gen);
    gen = fz_idle_gen();
    if (fz_publish(3))
        fz_wait_idle(gen);
    dev->ops.reset(dev);
    fz_after_reset(3);

    struct virtio_vsock_stats s;
    virtio_vsock_get_stats(v, &s);
    fz_check(s.bytes_to_guest == rx_payload, "bytes_to_guest is not the rx payload given");
    dev->ops.free(dev);
    if (host >= 0)
        close(host);
    host_drain();
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
