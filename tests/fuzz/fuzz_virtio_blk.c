/* Fuzz target for the split virtqueue (virtio 1.2 section 2.7,
 * src/virtio/queue.c) and the virtio-blk request path (section 5.2,
 * src/virtio/blk.c) as a hostile driver sees them: the input becomes guest
 * memory (rings, descriptors, indirect tables, request headers, data),
 * and every chain virtq_pop() accepts is handled by the device's
 * synchronous request path against a small image file.
 *
 * Build with libFuzzer (see docs/fuzzing.md):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I include -I src \
 *     tests/fuzz/fuzz_virtio_blk.c src/virtio/blk.c src/virtio/queue.c \
 *     src/backend/disk.c src/memory.c src/error.c -luring -lpthread -o fuzz_virtio_blk
 * or with -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * Input layout (all little-endian):
 *   0      flags: 1 EVENT_IDX, 2 INDIRECT_DESC, 4 read-only device,
 *          8 FLUSH not negotiated, 16 DISCARD not negotiated,
 *          32 WRITE_ZEROES not negotiated, 64 ring addresses from bytes 4..9,
 *          128 SIZE_MAX and SEG_MAX not negotiated (only the total cap bounds
 *          a request then)
 *   1      queue size = 1 << (byte % 9)
 *   2..3   initial last_avail / used idx (to reach the 16-bit wrap)
 *   4..9   desc_gpa/16, avail_gpa/2, used_gpa/4 (only with flag 64)
 *   10..15 unused
 *   16..   guest memory from gpa 0. By default the available ring is at
 *          gpa 0, the descriptor table right after it (16-aligned), the
 *          used ring at USED_GPA. Low RAM is LOW_SIZE bytes; HIGH_SIZE
 *          more bytes are at 4 GiB. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_TARGET "fuzz_virtio_blk"
#include "fuzz_util.h"
#include "layout.h"
#include "memory.h"
#include "virtio/blk.h"
#include "virtio/queue.h"

#define PARAMS    16
#define LOW_SIZE  0xe000u
#define HIGH_SIZE 0x2000u
#define USED_GPA  0xc000u
#define IMG_SIZE  (64 * 1024)
#define MAX_POPS  512

/* The transport side: nothing to do here. */
void virtio_notify_queue(struct virtio_transport *t, unsigned queue)
{
    (void)t;
    (void)queue;
}
void virtio_notify_config(struct virtio_transport *t)
{
    (void)t;
}
void virtio_set_needs_reset(struct virtio_transport *t)
{
    (void)t;
}

static struct virtio_blk *blk_rw, *blk_ro;
static uint8_t *ram;
static struct virtq_chain *chain;

static struct virtio_blk *make_device(bool read_only)
{
    char path[256];
    close(scratch_image("vmlet-fuzz-blk", IMG_SIZE, path, sizeof path));
    vmlet_error err;
    struct virtio_blk *b = virtio_blk_new(path, read_only, "fuzz-serial", &err);
    unlink(path); /* the open descriptor keeps it alive */
    check(b != NULL, err.message);
    return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    blk_rw = make_device(false);
    blk_ro = make_device(true);
    chain = malloc(sizeof *chain);
    ram = aligned_alloc(4096, LOW_SIZE + HIGH_SIZE);
    return 0;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PARAMS)
        return 0;
    uint8_t flags = data[0];
    uint16_t qsize = (uint16_t)(1u << (data[1] % 9));

    /* Exactly LOW_SIZE + HIGH_SIZE bytes of host memory, so ASan sees any
     * access beyond guest RAM. */
    memset(ram, 0, LOW_SIZE + HIGH_SIZE);
    size_t n = size - PARAMS < LOW_SIZE + HIGH_SIZE ? size - PARAMS : LOW_SIZE + HIGH_SIZE;
    memcpy(ram, data + PARAMS, n);
    struct guest_memory mem = {
        .host = ram, .size = LOW_SIZE + HIGH_SIZE, .low_size = LOW_SIZE, .high_size = HIGH_SIZE
    };

    struct virtq q = {
        .mem = &mem, .size = qsize, .ready = true, .event_idx = flags & 1, .indirect = flags & 2
    };
    if (flags & 64) {
        q.desc_gpa = (uint64_t)get16(data + 4) * 16;
        q.avail_gpa = (uint64_t)get16(data + 6) * 2;
        q.used_gpa = (uint64_t)get16(data + 8) * 4;
        if (data[10] & 1) /* sometimes in high RAM */
            q.used_gpa = GUEST_HIGH_RAM_START + (q.used_gpa & (HIGH_SIZE - 1));
    } else {
        q.avail_gpa = 0;
        q.desc_gpa = (6 + 2 * (uint64_t)qsize + 15) & ~15ull;
        q.used_gpa = USED_GPA;
    }
    virtq_reset(&q);
    q.last_avail = q.used_idx = get16(data + 2);

    uint64_t features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_BLK_SIZE);
    if (!(flags & 128))
        features |= (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX);
    if (flags & 1)
        features |= 1ull << VIRTIO_F_EVENT_IDX;
    if (flags & 2)
        features |= 1ull << VIRTIO_F_INDIRECT_DESC;
    if (!(flags & 8))
        features |= 1ull << VIRTIO_BLK_F_FLUSH;
    if (!(flags & 16))
        features |= 1ull << VIRTIO_BLK_F_DISCARD;
    if (!(flags & 32))
        features |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
    struct virtio_blk *blk = flags & 4 ? blk_ro : blk_rw;
    if (flags & 4)
        features |= 1ull << VIRTIO_BLK_F_RO;

    (void)virtq_rings_valid(&q);
    for (unsigned i = 0; i < MAX_POPS; i++) {
        virtq_disable_notify(&q);
        enum virtq_pop_result r = virtq_pop(&q, chain);
        if (r == VIRTQ_BROKEN)
            break;
        if (r == VIRTQ_EMPTY) {
            if (!virtq_enable_notify(&q))
                break;
            continue;
        }
        /* What the pop promised: every iovec inside guest RAM. */
        for (unsigned k = 0; k < chain->n_out + chain->n_in; k++) {
            const uint8_t *b = chain->iov[k].iov_base;
            if (b < ram || b > ram + mem.size ||
                chain->iov[k].iov_len > (size_t)(ram + mem.size - b))
                abort();
        }
        int st = virtio_blk_process_chain_sync(blk, features, &q, chain);
        if (st > VIRTIO_BLK_S_UNSUPP)
            abort();
        (void)virtq_should_notify(&q);
    }
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
/* Replays the given files (e.g. the seed corpus) without libFuzzer. */
int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
#endif
