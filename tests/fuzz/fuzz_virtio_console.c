/* libFuzzer target for virtio-console (src/virtio/console.c) as a hostile
 * driver sees it: receive and transmit chains of any shape on its two
 * queues, served by the device's own thread, with host input from a pipe
 * the target fills and output into a small pipe it drains, both only
 * while the device waits for them, so that backpressure, end of input and
 * a vanished reader are all reached deterministically. Build with clang
 * -fsanitize=fuzzer,address,undefined and -Wl,--wrap=... (see
 * tests/fuzz/meson.build), or with -DVMLET_FUZZ_STANDALONE and any
 * compiler to replay files.
 *
 * Input: the layout of fuzz_device.h (queue 0 receiveq, queue 1
 * transmitq, at most 256 entries each), with
 *   param 0  bit 0: the driver accepts VIRTIO_CONSOLE_F_SIZE (and the
 *            console is 80x25); bit 1: no input (in_fd -1); bit 2: output
 *            discarded (out_fd -1); bit 3: the output's reader is gone
 *            (EPIPE); bit 4: the input ends (EOF) once it is all written
 *   param 1  host input per write: (param 1 % 16 + 1) * 64 bytes
 *   param 2..3  le16: the host input is the last N bytes of the input
 *
 * The run: activate, then until nothing changes: wait for the device to
 * be idle; drain the output pipe (4 KiB) if the device waits to write;
 * else write the next piece of input if it waits to read; else publish
 * the held chains. Then reset. Checks (besides fuzz_device.h's): transmit
 * chains come back with used length 0; what came out of the output pipe
 * is exactly the tx_bytes counter, and what left the input pipe exactly
 * rx_bytes. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>

#include "fuzz_device.h"
#include "virtio/console.h"

#define MAX_ROUNDS 256

static void on_push(const struct virtq *q, uint16_t head, uint32_t len,
                    const struct fz_popped *pushed)
{
    (void)pushed;
    (void)head;
    if (q == &fz.q[VIRTIO_CONSOLE_TXQ])
        fz_check(len == 0, "transmit chain used with a length");
}

/* Reads what is in fd (non-blocking); returns the byte count. */
static uint64_t drain(int fd)
{
    uint64_t n = 0;
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        n += (uint64_t)r;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    fz.on_push = on_push;
    /* A write to a pipe without a reader must not end the fuzzer; the
     * device thread blocks the signal and takes it itself. */
    signal(SIGPIPE, SIG_IGN);
    struct virtio_queues qs;
    uint8_t flags = size >= FZ_HEADER ? data[0] : 0;
    uint64_t features = (1ull << VIRTIO_F_VERSION_1) |
                        (flags & 1 ? 1ull << VIRTIO_CONSOLE_F_SIZE : 0);
    if (!fz_setup(data, size, 2, 256, &qs, features))
        return 0;
    size_t in_len = fz_get16(data + 2), chunk = (fz_param(1) % 16 + 1) * 64u;
    if (in_len > size - FZ_HEADER)
        in_len = size - FZ_HEADER;
    const uint8_t *in = data + size - in_len;

    int inp[2], outp[2];
    fz_check(pipe2(inp, O_CLOEXEC | O_NONBLOCK) == 0 && pipe2(outp, O_CLOEXEC | O_NONBLOCK) == 0,
             "pipe");
    fcntl(outp[1], F_SETPIPE_SZ, 4096); /* fills at once: backpressure */
    if (flags & 8) {
        close(outp[0]);
        outp[0] = -1;
    }
    vmlet_error err;
    struct virtio_console *c = virtio_console_new(flags & 2 ? -1 : inp[0], flags & 4 ? -1 : outp[1],
                                                  &err);
    fz_check(c != NULL, err.message);
    if (flags & 1)
        virtio_console_set_size(c, 80, 25);
    struct virtio_device *dev = virtio_console_device(c);

    uint64_t out_bytes = 0;
    size_t in_off = 0;
    unsigned gen = fz_idle_gen();
    fz_check(dev->ops.activate(dev, &qs) == 0, "activate failed");
    for (unsigned round = 0; round < MAX_ROUNDS; round++) {
        fz_wait_idle(gen);
        gen = fz_idle_gen();
        bool woke = false;
        if (outp[0] >= 0 && fz_watched(outp[1], POLLOUT)) {
            out_bytes += drain(outp[0]);
            woke = true;
        } else if (inp[1] >= 0 && fz_watched(inp[0], POLLIN)) {
            size_t n = in_len - in_off < chunk ? in_len - in_off : chunk;
            if (n) {
                fz_check(write(inp[1], in + in_off, n) == (ssize_t)n, "input write");
                in_off += n;
                woke = true;
            } else if (flags & 16) {
                close(inp[1]); /* end of input */
                inp[1] = -1;
                woke = true;
            }
        }
        if (!woke)
            woke = fz_publish(2);
        if (!woke)
            break;
    }
    dev->ops.reset(dev);
    fz_after_reset(2);

    uint64_t tx, rx;
    virtio_console_get_stats(c, &tx, &rx);
    if (outp[0] >= 0)
        out_bytes += drain(outp[0]);
    if (!(flags & 4) && outp[0] >= 0)
        fz_check(tx == out_bytes, "tx_bytes is not what came out");
    fz_check(rx == in_off - drain(inp[0]), "rx_bytes is not what was read");
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz: tx %llu, rx %llu\n", (unsigned long long)tx, (unsigned long long)rx);
    virtio_console_free(c);
    for (int i = 0; i < 2; i++) {
        if (inp[i] >= 0)
            close(inp[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
