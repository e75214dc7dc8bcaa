/* The kernel inside a bzImage, prepared on the host (kernel_image.h).
 *
 * Formats and layouts follow the kernel's build: arch/x86/boot/compressed
 * compresses "vmlinux.bin" (the stripped ELF vmlinux) followed by
 * "vmlinux.relocs" with the configured compressor, then appends the
 * uncompressed size as 4 little-endian bytes. Each library is optional at
 * build time (VMLET_HAVE_*, meson.build); without it the format is not
 * supported and the caller boots the bzImage's own decompressor. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#ifdef VMLET_HAVE_LZ4
#include <lz4.h>
#endif
#ifdef VMLET_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef VMLET_HAVE_LZMA
#include <lzma.h>
#endif
#ifdef VMLET_HAVE_ZSTD
#include <zstd.h>
#endif
#include "kernel_image.h"

static uint16_t le16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}
static uint32_t le32(const uint8_t *p)
{
    return le16(p) | (uint32_t)le16(p + 2) << 16;
}
static uint64_t le64(const uint8_t *p)
{
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* ---- the payload's format -------------------------------------------- */

static const struct {
    enum kernel_compression c;
    const char *name;
    const char *magic;
    size_t len;
} formats[] = {
    { KERNEL_COMP_GZIP, "gzip", "\x1f\x8b", 2 },
    { KERNEL_COMP_XZ, "xz", "\xfd\x37\x7a\x58\x5a\x00", 6 },
    { KERNEL_COMP_ZSTD, "zstd", "\x28\xb5\x2f\xfd", 4 },
    { KERNEL_COMP_BZIP2, "bzip2", "BZh", 3 },
    { KERNEL_COMP_LZMA, "lzma", "\x5d\x00\x00", 3 },
    { KERNEL_COMP_LZO, "lzo", "\x89\x4c\x5a\x4f", 4 },
    { KERNEL_COMP_LZ4, "lz4", "\x02\x21\x4c\x18", 4 }, /* legacy frame */
};

enum kernel_compression kernel_compression_detect(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (len >= formats[i].len && memcmp(p, formats[i].magic, formats[i].len) == 0)
            return formats[i].c;
    return KERNEL_COMP_UNKNOWN;
}

const char *kernel_compression_name(enum kernel_compression c)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].c == c)
            return formats[i].name;
    return "unknown";
}

bool kernel_compression_supported(enum kernel_compression c)
{
    switch (c) {
#ifdef VMLET_HAVE_LZ4
    case KERNEL_COMP_LZ4: return true;
#endif
#ifdef VMLET_HAVE_ZLIB
    case KERNEL_COMP_GZIP: return true;
#endif
#ifdef VMLET_HAVE_LZMA
    case KERNEL_COMP_XZ:
    case KERNEL_COMP_LZMA: return true;
#endif
#ifdef VMLET_HAVE_ZSTD
    case KERNEL_COMP_ZSTD: return true;
#endif
    default: return false;
    }
}

/* ---- decompression ---------------------------------------------------- */

#ifdef VMLET_HAVE_LZ4
/* LZ4 legacy frames (lz4 -l, what the kernel's build uses): the magic, then
 * blocks of a 4-byte compressed size and the block, each decompressing to
 * at most 8 MiB; a repeated magic starts a concatenated frame. */
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

static int unlz4(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, char *why,
                 size_t why_len)
{
    size_t pos = 4, done = 0;
    while (done < out_len) {
        if (in_len - pos < 4) {
            snprintf(why, why_len, "lz4: the data ends after %zu of %zu bytes", done, out_len);
            return -1;
        }
        uint32_t csize = le32(in + pos);
        pos += 4;
        if (csize == LZ4_LEGACY_MAGIC)
            continue;
        if (csize == 0 || csize > in_len - pos ||
            csize > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK)) {
            snprintf(why, why_len, "lz4: a block of %u bytes at offset %zu is not valid", csize,
                     pos - 4);
            return -1;
        }
        size_t room = out_len - done;
        if (room > LZ4_LEGACY_BLOCK)
            room = LZ4_LEGACY_BLOCK;
        int n = LZ4_decompress_safe((const char *)in + pos, (char *)out + done, (int)csize,
                                    (int)room);
        if (n <= 0) {
            snprintf(why, why_len, "lz4: the block at offset %zu is corrupt", pos - 4);
            return -1;
        }
        done += (size_t)n;
        pos += csize;
    }
    return 0;
}
#endif

#ifdef VMLET_HAVE_ZLIB
static int gunzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, char *why,
                  size_t why_len)
{
    if (in_len > UINT_MAX || out_len > UINT_MAX) {
        snprintf(why, why_len, "gzip: the payload is too large");
        return -1;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        snprintf(why, why_len, "gzip: cannot start zlib");
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    int rc = inflate(&z, Z_FINISH);
    size_t got = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || got != out_len) {
        snprintf(why, why_len, "gzip: the data is corrupt (%zu of %zu bytes)", got, out_len);
        return -1;
    }
    return 0;
}
#endif

#ifdef VMLET_HAVE_LZMA
/* xz and the older lzma ("alone") format; the kernel's dictionaries are at
 * most 64 MiB, so 256 MiB is a bound a hostile header cannot exceed. */
static int unxz(bool alone, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len,
                char *why, size_t why_len)
{
    lzma_stream s = LZMA_STREAM_INIT;
    const uint64_t memlimit = 256ULL << 20;
    lzma_ret rc = alone ? lzma_alone_decoder(&s, memlimit) : lzma_stream_decoder(&s, memlimit, 0);
    if (rc != LZMA_OK) {
        snprintf(why, why_len, "xz: cannot start liblzma");
        return -1;
    }
    s.next_in = in;
    s.avail_in = in_len;
    s.next_out = out;
    s.avail_out = out_len;
    do
        rc = lzma_code(&s, LZMA_FINISH);
    while (rc == LZMA_OK && s.avail_out && s.avail_in);
    size_t got = s.total_out;
    lzma_end(&s);
    /* lzma "alone" streams may have no end marker: the size ends them. */
    bool ended = rc == LZMA_STREAM_END || (alone && rc == LZMA_OK && got == out_len);
    if (!ended || got != out_len) {
        snprintf(why, why_len, "%s: the data is corrupt (%zu of %zu bytes)", alone ? "lzma" : "xz",
                 got, out_len);
        return -1;
    }
    return 0;
}
#endif

#ifdef VMLET_HAVE_ZSTD
static int unzstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, char *why,
                  size_t why_len)
{
    /* One frame, then the 4-byte size the build appended. */
    size_t frame = ZSTD_findFrameCompressedSize(in, in_len);
    if (ZSTD_isError(frame)) {
        snprintf(why, why_len, "zstd: %s", ZSTD_getErrorName(frame));
        return -1;
    }
    size_t got = ZSTD_decompress(out, out_len, in, frame);
    if (ZSTD_isError(got) || got != out_len) {
        snprintf(why, why_len, "zstd: %s",
                 ZSTD_isError(got) ? ZSTD_getErrorName(got) : "the data is shorter than its size");
        return -1;
    }
    return 0;
}
#endif

int kernel_decompress(enum kernel_compression c, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t out_len, char *why, size_t why_len)
{
    switch (c) {
#ifdef VMLET_HAVE_LZ4
    case KERNEL_COMP_LZ4:
        if (in_len < 4)
            break;
        return unlz4(in, in_len, out, out_len, why, why_len);
#endif
#ifdef VMLET_HAVE_ZLIB
    case KERNEL_COMP_GZIP: return gunzip(in, in_len, out, out_len, why, why_len);
#endif
#ifdef VMLET_HAVE_LZMA
    case KERNEL_COMP_XZ: return unxz(false, in, in_len, out, out_len, why, why_len);
    case KERNEL_COMP_LZMA: return unxz(true, in, in_len, out, out_len, why, why_len);
#endif
#ifdef VMLET_HAVE_ZSTD
    case KERNEL_COMP_ZSTD: return unzstd(in, in_len, out, out_len, why, why_len);
#endif
    default: break;
    }
    snprintf(why, why_len, "%s: not supported by this build", kernel_compression_name(c));
    return -1;
}

/* ---- the ELF vmlinux -------------------------------------------------- */

#define EHDR_SIZE         64
#define PHDR_SIZE         56
#define SHDR_SIZE         64
#define PT_LOAD_TYPE      1
#define EM_X86_64_MACHINE 62
#define ET_EXEC_TYPE      2

/* a + b <= limit, without overflow. */
static bool fits(uint64_t a, uint64_t b, uint64_t limit)
{
    return a <= limit && b <= limit - a;
}

int vmlinux_parse(const uint8_t *head, size_t head_len, uint64_t file_len,
                  struct vmlinux_info *info, char *why, size_t why_len)
{
    memset(info, 0, sizeof *info);
    if (head_len > file_len)
        head_len = file_len;
    if (head_len < EHDR_SIZE || memcmp(head,
                                       "\x7f"
                                       "ELF",
                                       4) != 0) {
        snprintf(why, why_len, "not an ELF file");
        return -1;
    }
    if (head[4] != 2 || head[5] != 1 || le16(head + 18) != EM_X86_64_MACHINE) {
        snprintf(why, why_len, "not an x86-64 ELF (64-bit, little-endian) kernel");
        return -1;
    }
    if (le16(head + 16) != ET_EXEC_TYPE) {
        snprintf(why, why_len, "the ELF is not an executable (a vmlinux is ET_EXEC)");
        return -1;
    }
    uint64_t phoff = le64(head + 32), shoff = le64(head + 40);
    unsigned phentsize = le16(head + 54), phnum = le16(head + 56);
    unsigned shentsize = le16(head + 58), shnum = le16(head + 60);
    if (phentsize != PHDR_SIZE || phnum == 0 || phnum > 64 ||
        !fits(phoff, (uint64_t)phnum * PHDR_SIZE, head_len)) {
        snprintf(why, why_len, "the ELF's program headers are missing or out of place");
        return -1;
    }
    info->elf_end = phoff + (uint64_t)phnum * PHDR_SIZE;
    if (shnum) {
        if (shentsize != SHDR_SIZE || !fits(shoff, (uint64_t)shnum * SHDR_SIZE, file_len)) {
            snprintf(why, why_len, "the ELF's section headers lie outside the file");
            return -1;
        }
        if (shoff + (uint64_t)shnum * SHDR_SIZE > info->elf_end)
            info->elf_end = shoff + (uint64_t)shnum * SHDR_SIZE;
    }

    uint64_t lo = UINT64_MAX, hi = 0;
    for (unsigned i = 0; i < phnum; i++) {
        const uint8_t *ph = head + phoff + (uint64_t)i * PHDR_SIZE;
        if (le32(ph) != PT_LOAD_TYPE)
            continue;
        struct vmlinux_segment s = {
            .offset = le64(ph + 8),
            .paddr = le64(ph + 24),
            .filesz = le64(ph + 32),
            .memsz = le64(ph + 40),
        };
        if (s.memsz == 0)
            continue;
        if (info->nseg == VMLINUX_MAX_SEGMENTS) {
            snprintf(why, why_len, "the ELF has more than %d loadable segments",
                     VMLINUX_MAX_SEGMENTS);
            return -1;
        }
        if (s.filesz > s.memsz || !fits(s.offset, s.filesz, file_len) ||
            !fits(s.paddr, s.memsz, UINT64_MAX)) {
            snprintf(why, why_len, "segment %u (offset 0x%llx, %llu bytes) is corrupt", i,
                     (unsigned long long)s.offset, (unsigned long long)s.filesz);
            return -1;
        }
        if (s.offset + s.filesz > info->elf_end)
            info->elf_end = s.offset + s.filesz;
        if (s.paddr < lo)
            lo = s.paddr;
        if (s.paddr + s.memsz > hi)
            hi = s.paddr + s.memsz;
        info->seg[info->nseg++] = s;
    }
    if (info->nseg == 0) {
        snprintf(why, why_len, "the ELF has nothing to load");
        return -1;
    }
    info->base = lo;
    info->image_size = hi - lo;
    info->entry = le64(head + 24);
    if (lo % VMLINUX_ALIGN) {
        snprintf(why, why_len, "the kernel's load address 0x%llx is not 2 MiB aligned",
                 (unsigned long long)lo);
        return -1;
    }
    if (info->image_size > VMLINUX_MAX_IMAGE) {
        snprintf(why, why_len, "the kernel spans %llu MiB, more than 1 GiB",
                 (unsigned long long)(info->image_size >> 20));
        return -1;
    }
    if (info->entry < lo || info->entry >= hi) {
        snprintf(why, why_len, "the entry point 0x%llx is outside the kernel",
                 (unsigned long long)info->entry);
        return -1;
    }
    return 0;
}

/* ---- relocations ------------------------------------------------------- */

#define START_KERNEL_MAP 0xffffffff80000000ULL

/* Where in the placed image the entry at p points, or -1 if it does not
 * leave width bytes inside it. */
static int64_t reloc_target(const uint8_t *p, const struct vmlinux_info *info, unsigned width)
{
    uint64_t vaddr = (uint64_t)(int64_t)(int32_t)le32(p);
    uint64_t off = vaddr - START_KERNEL_MAP - info->base;
    if (off > info->image_size || info->image_size - off < width)
        return -1;
    return (int64_t)off;
}

/* Counts entries backwards from the one at end - 4 to the zero before them. */
static int reloc_list(const uint8_t *table, size_t *end, const struct vmlinux_info *info,
                      unsigned width, const uint8_t **first, size_t *n)
{
    size_t pos = *end;
    *n = 0;
    for (;;) {
        if (pos < 4)
            return -1;
        pos -= 4;
        if (le32(table + pos) == 0)
            break;
        if (reloc_target(table + pos, info, width) < 0)
            return -2;
        (*n)++;
    }
    *first = table + pos + 4;
    *end = pos;
    return 0;
}

int kernel_relocs_parse(const uint8_t *table, size_t len, const struct vmlinux_info *info,
                        struct kernel_relocs *r, char *why, size_t why_len)
{
    memset(r, 0, sizeof *r);
    if (len == 0)
        return 1;
    size_t end = len;
    int rc = reloc_list(table, &end, info, 4, &r->r32, &r->n32);
    if (rc == 0)
        rc = reloc_list(table, &end, info, 4, &r->inv32, &r->ninv32);
    if (rc == 0)
        rc = reloc_list(table, &end, info, 8, &r->r64, &r->n64);
    if (rc == -1)
        snprintf(why, why_len, "the relocation table (%zu bytes) has no end", len);
    else if (rc == -2)
        snprintf(why, why_len, "a relocation points outside the kernel");
    return rc < 0 ? -1 : 0;
}

void kernel_relocs_apply(const struct kernel_relocs *r, const struct vmlinux_info *info,
                         uint8_t *image, uint64_t delta)
{
    /* Little-endian host and guest: the fields are patched in place. */
    for (size_t i = 0; i < r->n32; i++) {
        uint8_t *p = image + reloc_target(r->r32 + 4 * i, info, 4);
        uint32_t v;
        memcpy(&v, p, 4);
        v += (uint32_t)delta;
        memcpy(p, &v, 4);
    }
    for (size_t i = 0; i < r->ninv32; i++) {
        uint8_t *p = image + reloc_target(r->inv32 + 4 * i, info, 4);
        uint32_t v;
        memcpy(&v, p, 4);
        v -= (uint32_t)delta;
        memcpy(p, &v, 4);
    }
    for (size_t i = 0; i < r->n64; i++) {
        uint8_t *p = image + reloc_target(r->r64 + 4 * i, info, 8);
        uint64_t v;
        memcpy(&v, p, 8);
        v += delta;
        memcpy(p, &v, 8);
    }
}

uint64_t kernel_kaslr_slots(uint64_t base, uint64_t span)
{
    if (!fits(base, span, VMLINUX_MAX_IMAGE))
        return 1;
    return (VMLINUX_MAX_IMAGE - base - span) / VMLINUX_ALIGN + 1;
}

bool cmdline_has_word(const char *cmdline, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = cmdline; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        size_t len = strcspn(p, " \t\n");
        if (len == n && memcmp(p, word, n) == 0)
            return true;
        p += len;
    }
    return false;
}
