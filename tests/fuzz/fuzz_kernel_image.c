/* libFuzzer target for the host-side kernel preparation
 * (src/x86/kernel_image.c): the payload decompressors, the ELF vmlinux
 * parser and the relocation table, on any bytes. Build with clang
 * -fsanitize=fuzzer,address,undefined (docs/fuzzing.md), or with
 * -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * Input layout (little-endian):
 *   0      what: 0 = decompress, else parse as vmlinux + relocations
 *   1      decompress: the format (% 5: lz4, gzip, xz, zstd, lzma)
 *   2..4   decompress: the output size (& 0xfffff: up to 1 MiB)
 *   5..7   relocate: the virtual offset in 2 MiB steps (& 0x1ff)
 *   8..    the payload, or the decompressed vmlinux with its table
 *
 * Buffers are allocated to exactly their size, so ASan sees any access
 * past them. Besides memory errors it checks:
 *   - a failure comes with a message;
 *   - a parsed vmlinux: every segment inside the input, its image within
 *     1 GiB, its base 2 MiB aligned, the entry inside the image, elf_end
 *     inside the input;
 *   - a parsed table: its three lists inside it; relocating the placed
 *     image changes only bytes at the listed sites. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_kernel_image"
#include "fuzz_util.h"
#include "x86/kernel_image.h"

#define PARAMS    8
#define IMAGE_MAX (8u << 20) /* larger images are parsed, not placed */

static const enum kernel_compression formats[] = { KERNEL_COMP_LZ4, KERNEL_COMP_GZIP,
                                                   KERNEL_COMP_XZ, KERNEL_COMP_ZSTD,
                                                   KERNEL_COMP_LZMA };

static void decompress(const uint8_t *data, size_t size, enum kernel_compression c, size_t out_len)
{
    char why[256] = "";
    uint8_t *in = malloc(size ? size : 1);
    uint8_t *out = malloc(out_len ? out_len : 1);
    check(in && out, "out of memory");
    memcpy(in, data, size);
    if (kernel_compression_supported(c) &&
        kernel_decompress(c, in, size, out, out_len, why, sizeof why) < 0)
        check(why[0] != '\0', "a failed decompression says nothing");
    free(out);
    free(in);
}

static bool inside(const uint8_t *p, size_t width, const uint8_t *lo, size_t len)
{
    return p >= lo && (size_t)(p - lo) <= len && len - (size_t)(p - lo) >= width;
}

static void relocate(const uint8_t *data, size_t size, uint64_t delta)
{
    char why[256] = "";
    uint8_t *buf = malloc(size ? size : 1);
    check(buf != NULL, "out of memory");
    memcpy(buf, data, size);
    struct vmlinux_info vi;
    if (vmlinux_parse(buf, size, size, &vi, why, sizeof why) < 0) {
        check(why[0] != '\0', "a failed parse says nothing");
        free(buf);
        return;
    }
    check(vi.nseg > 0 && vi.nseg <= VMLINUX_MAX_SEGMENTS, "segment count");
    check(vi.base % VMLINUX_ALIGN == 0 && vi.image_size <= VMLINUX_MAX_IMAGE, "image bounds");
    check(vi.entry >= vi.base && vi.entry - vi.base < vi.image_size, "entry outside");
    check(vi.elf_end <= size, "elf_end past the input");
    for (unsigned i = 0; i < vi.nseg; i++) {
        const struct vmlinux_segment *s = &vi.seg[i];
        check(s->filesz <= s->memsz && s->offset <= size && size - s->offset >= s->filesz,
              "segment outside the input");
        check(s->paddr >= vi.base && s->paddr - vi.base <= vi.image_size &&
                  vi.image_size - (s->paddr - vi.base) >= s->memsz,
              "segment outside the image");
    }
    struct kernel_relocs r;
    const uint8_t *table = buf + vi.elf_end;
    size_t tlen = size - vi.elf_end;
    int rc = kernel_relocs_parse(table, tlen, &vi, &r, why, sizeof why);
    if (rc < 0)
        check(why[0] != '\0', "a failed table says nothing");
    if (rc != 0) {
        free(buf);
        return;
    }
    check(inside(r.r64, 4 * r.n64, table, tlen) && inside(r.inv32, 4 * r.ninv32, table, tlen) &&
              inside(r.r32, 4 * r.n32, table, tlen),
          "relocation lists outside the table");
    if (vi.image_size <= IMAGE_MAX) {
        uint8_t *image = calloc(1, vi.image_size ? vi.image_size : 1);
        uint8_t *before = malloc(vi.image_size ? vi.image_size : 1);
        check(image && before, "out of memory");
        for (unsigned i = 0; i < vi.nseg; i++)
            memmove(image + (vi.seg[i].paddr - vi.base), buf + vi.seg[i].offset, vi.seg[i].filesz);
        memcpy(before, image, vi.image_size);
        kernel_relocs_apply(&r, &vi, image, delta);
        /* Undo the listed sites' changes by the same rule: what is left
         * must be the image as it was. */
        kernel_relocs_apply(&r, &vi, image, (uint64_t)0 - delta);
        check(memcmp(image, before, vi.image_size) == 0, "relocation changed unlisted bytes");
        free(before);
        free(image);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PARAMS)
        return 0;
    const uint8_t *body = data + PARAMS;
    size_t len = size - PARAMS;
    if (data[0] == 0)
        decompress(body, len, formats[data[1] % 5], get_le(data + 2, 3) & 0xfffff);
    else
        relocate(body, len, (get_le(data + 5, 3) & 0x1ff) * VMLINUX_ALIGN);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
