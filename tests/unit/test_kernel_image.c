/* Host-side kernel preparation (src/x86/kernel_image.c and its use in
 * boot.c): payload formats, decompression, the ELF vmlinux, the relocation
 * table and KASLR, with truncated and hostile inputs; and a bzImage booted
 * that way into guest memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
#include "layout.h"
#include "x86/boot.h"
#include "x86/kernel_image.h"

#define KMAP      0xffffffff80000000ULL
#define BASE      0x1000000ULL /* LOAD_PHYSICAL_ADDR */
#define SEG0_OFF  0x1000
#define SEG0_SIZE 0x3000
/* The second segment 2 MiB up (it moves up: not in place), or right
 * after the first (in place, as in Debian's kernel). */
static uint64_t seg1_paddr = BASE + 0x200000;
#define SEG1_PADDR seg1_paddr
#define SEG1_OFF   (SEG0_OFF + SEG0_SIZE)
#define SEG1_FILE  0x1000
#define SEG1_MEM   0x2000
#define SHOFF      (SEG1_OFF + SEG1_FILE)
#define SHNUM      2
#define ELF_LEN    (SHOFF + SHNUM * 64)
#define IMAGE_SIZE (SEG1_PADDR + SEG1_MEM - BASE)
#define INIT_SIZE  (4u << 20)
#define ENTRY      (BASE + 0x200)

/* Relocation sites, as link-time virtual addresses and placed offsets. */
#define SITE64    0x10  /* holds a kernel address */
#define SITE_INV  0x20  /* holds a per-CPU style difference */
#define SITE32    0x30  /* holds a sign-extended kernel address */
#define SITE_SEG1 0x100 /* in the second segment: offset from SEG1_PADDR */
#define VAL64     (KMAP + BASE + 0x1234)
#define VAL_INV   0x5000u
#define VAL32     ((uint32_t)(KMAP + BASE + 0x40))

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}
static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void phdr(uint8_t *ph, uint64_t off, uint64_t paddr, uint64_t filesz, uint64_t memsz)
{
    put32(ph, 1); /* PT_LOAD */
    put64(ph + 8, off);
    put64(ph + 16, KMAP + paddr);
    put64(ph + 24, paddr);
    put64(ph + 32, filesz);
    put64(ph + 40, memsz);
}

/* A vmlinux as the kernel's build makes it: ELF header, two PT_LOAD
 * segments (the second with bss), section headers, then (with_relocs) the
 * relocation table: 0, 64-bit sites, 0, inverse 32-bit sites, 0, 32-bit
 * sites. */
static uint8_t *fake_vmlinux(bool with_relocs, size_t *len)
{
    size_t relocs = with_relocs ? 7 * 4 : 0;
    *len = ELF_LEN + relocs;
    uint8_t *e = calloc(1, *len);
    memcpy(e,
           "\x7f"
           "ELF",
           4);
    e[4] = 2; /* 64-bit */
    e[5] = 1; /* little-endian */
    e[6] = 1;
    put16(e + 16, 2);  /* ET_EXEC */
    put16(e + 18, 62); /* x86-64 */
    put64(e + 24, ENTRY);
    put64(e + 32, 64);    /* phoff */
    put64(e + 40, SHOFF); /* shoff */
    put16(e + 52, 64);
    put16(e + 54, 56);
    put16(e + 56, 3); /* two PT_LOAD and a PT_NOTE */
    put16(e + 58, 64);
    put16(e + 60, SHNUM);
    phdr(e + 64, SEG0_OFF, BASE, SEG0_SIZE, SEG0_SIZE);
    phdr(e + 64 + 56, SEG1_OFF, SEG1_PADDR, SEG1_FILE, SEG1_MEM);
    put32(e + 64 + 112, 4); /* PT_NOTE: not loaded */
    memset(e + SEG0_OFF, 0x90, SEG0_SIZE);
    memset(e + SEG1_OFF, 0x11, SEG1_FILE);
    put64(e + SEG0_OFF + SITE64, VAL64);
    put32(e + SEG0_OFF + SITE_INV, VAL_INV);
    put32(e + SEG0_OFF + SITE32, VAL32);
    put64(e + SEG1_OFF + SITE_SEG1, VAL64);
    if (with_relocs) {
        uint8_t *t = e + ELF_LEN;
        put32(t + 0, 0);
        put32(t + 4, (uint32_t)(KMAP + BASE + SITE64));
        put32(t + 8, (uint32_t)(KMAP + SEG1_PADDR + SITE_SEG1));
        put32(t + 12, 0);
        put32(t + 16, (uint32_t)(KMAP + BASE + SITE_INV));
        put32(t + 20, 0);
        put32(t + 24, (uint32_t)(KMAP + BASE + SITE32));
    }
    return e;
}

static void detects_formats_by_magic(void **state)
{
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\x02\x21\x4c\x18", 4),
                     KERNEL_COMP_LZ4);
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\x1f\x8b\x08", 3),
                     KERNEL_COMP_GZIP);
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\xfd"
                                                                "7zXZ\0",
                                               6),
                     KERNEL_COMP_XZ);
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\x28\xb5\x2f\xfd", 4),
                     KERNEL_COMP_ZSTD);
    assert_int_equal(kernel_compression_detect((const uint8_t *)"BZh9", 4), KERNEL_COMP_BZIP2);
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\x5d\0\0", 3), KERNEL_COMP_LZMA);
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\x89LZO", 4), KERNEL_COMP_LZO);
    /* A magic cut short is no format. */
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\x02\x21\x4c", 3),
                     KERNEL_COMP_UNKNOWN);
    assert_int_equal(kernel_compression_detect((const uint8_t *)"\x7f"
                                                                "ELF",
                                               4),
                     KERNEL_COMP_UNKNOWN);
    assert_true(kernel_compression_supported(KERNEL_COMP_LZ4));
    assert_false(kernel_compression_supported(KERNEL_COMP_UNKNOWN));
}

/* data compressed the way the kernel's build does, with the 4-byte size. */
static uint8_t *compress_as_kernel(enum kernel_compression c, const uint8_t *data, size_t len,
                                   size_t *out_len)
{
    size_t cap = len * 2 + 4096;
    uint8_t *o = malloc(cap);
    size_t n = 0;
    switch (c) {
    case KERNEL_COMP_LZ4: {
        /* Legacy frame: magic, then blocks of at most 8 MiB; two blocks
         * here (a split in the middle), and a repeated magic between. */
        put32(o, 0x184c2102);
        n = 4;
        size_t half = len / 2;
        const uint8_t *parts[2] = { data, data + half };
        size_t sizes[2] = { half, len - half };
        for (int i = 0; i < 2; i++) {
            int csize = LZ4_compress_default((const char *)parts[i], (char *)o + n + 4,
                                             (int)sizes[i], (int)(cap - n - 4));
            assert_true(csize > 0);
            put32(o + n, (uint32_t)csize);
            n += 4 + (size_t)csize;
            if (i == 0) {
                put32(o + n, 0x184c2102);
                n += 4;
            }
        }
        break;
    }
    case KERNEL_COMP_GZIP: {
        z_stream z = { 0 };
        assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                         Z_OK);
        z.next_in = (Bytef *)data;
        z.avail_in = len;
        z.next_out = o;
        z.avail_out = cap;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        n = z.total_out;
        deflateEnd(&z);
        break;
    }
    case KERNEL_COMP_XZ:
        assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, data, len, o, &n, cap),
                         LZMA_OK);
        break;
    case KERNEL_COMP_ZSTD:
        n = ZSTD_compress(o, cap, data, len, 19);
        assert_false(ZSTD_isError(n));
        break;
    default: fail();
    }
    put32(o + n, (uint32_t)len);
    *out_len = n + 4;
    return o;
}

static void decompresses_each_format(void **state)
{
    size_t len = 3 << 20; /* lz4: more than one block's worth of data */
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 / 5 + (i >> 12));
    enum kernel_compression formats[] = { KERNEL_COMP_LZ4, KERNEL_COMP_GZIP, KERNEL_COMP_XZ,
                                          KERNEL_COMP_ZSTD };
    char why[256];
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        size_t clen;
        uint8_t *c = compress_as_kernel(formats[f], data, len, &clen);
        assert_int_equal(kernel_compression_detect(c, clen), formats[f]);
        uint8_t *out = malloc(len);
        assert_int_equal(kernel_decompress(formats[f], c, clen, out, len, why, sizeof why), 0);
        assert_memory_equal(out, data, len);
        /* Truncated: fails, never reads or writes past the buffers. */
        assert_int_equal(kernel_decompress(formats[f], c, clen / 2, out, len, why, sizeof why), -1);
        assert_int_equal(kernel_decompress(formats[f], c, 3, out, len, why, sizeof why), -1);
        /* A size larger than the data: fails rather than leaving a tail. */
        uint8_t *big = malloc(len + 100);
        assert_int_equal(kernel_decompress(formats[f], c, clen, big, len + 100, why, sizeof why),
                         -1);
        /* Corrupted in the middle: fails, or (no checksum) gives the size. */
        c[clen / 2] ^= 0x55;
        c[clen / 2 + 1] ^= 0xaa;
        (void)kernel_decompress(formats[f], c, clen, out, len, why, sizeof why);
        free(big);
        free(out);
        free(c);
    }
    free(data);
}

static void lz4_rejects_hostile_block_sizes(void **state)
{
    uint8_t in[64] = { 0x02, 0x21, 0x4c, 0x18 };
    uint8_t out[256];
    char why[256];
    put32(in + 4, 0xfffffff0); /* larger than the input */
    assert_int_equal(
        kernel_decompress(KERNEL_COMP_LZ4, in, sizeof in, out, sizeof out, why, sizeof why), -1);
    assert_non_null(strstr(why, "lz4"));
    put32(in + 4, 0); /* an empty block would never end */
    assert_int_equal(
        kernel_decompress(KERNEL_COMP_LZ4, in, sizeof in, out, sizeof out, why, sizeof why), -1);
    /* Only magics: the data ends before the size is reached. */
    for (int i = 4; i < 64; i += 4)
        put32(in + i, 0x184c2102);
    assert_int_equal(
        kernel_decompress(KERNEL_COMP_LZ4, in, sizeof in, out, sizeof out, why, sizeof why), -1);
}

static void parses_a_vmlinux(void **state)
{
    size_t len;
    uint8_t *e = fake_vmlinux(true, &len);
    struct vmlinux_info vi;
    char why[256];
    assert_int_equal(vmlinux_parse(e, len, len, &vi, why, sizeof why), 0);
    assert_true(vi.base == BASE);
    assert_true(vi.entry == ENTRY);
    assert_true(vi.image_size == IMAGE_SIZE);
    assert_true(vi.elf_end == ELF_LEN);
    assert_int_equal(vi.nseg, 2);
    assert_true(vi.seg[1].memsz == SEG1_MEM && vi.seg[1].filesz == SEG1_FILE);
    free(e);
}

/* Each corruption alone, on a fresh copy: one clear failure each. */
static void rejects_hostile_vmlinux(void **state)
{
    size_t len;
    struct vmlinux_info vi;
    char why[256];
    struct {
        size_t at;
        unsigned width;
        uint64_t value;
        const char *says;
    } cases[] = {
        { 4, 1, 1, "x86-64" },                         /* 32-bit ELF */
        { 18, 2, 3, "x86-64" },                        /* i386 machine */
        { 16, 2, 3, "executable" },                    /* ET_DYN */
        { 32, 8, ELF_LEN, "program headers" },         /* phoff past the file */
        { 32, 8, UINT64_MAX - 8, "program headers" },  /* phoff wraps */
        { 54, 2, 32, "program headers" },              /* phentsize */
        { 56, 2, 0, "program headers" },               /* no program headers */
        { 40, 8, ELF_LEN, "section headers" },         /* shoff past the file */
        { 64 + 8, 8, ELF_LEN, "corrupt" },             /* segment past the file */
        { 64 + 8, 8, UINT64_MAX - 0x10, "corrupt" },   /* offset + size wraps */
        { 64 + 32, 8, SEG0_SIZE + 1, "corrupt" },      /* filesz > memsz */
        { 64 + 24, 8, UINT64_MAX - 0x100, "corrupt" }, /* paddr + memsz wraps */
        { 64 + 24, 8, BASE + 0x1000, "aligned" },      /* base not at 2 MiB */
        { 64 + 56 + 40, 8, 2ULL << 30, "1 GiB" },      /* a 2 GiB kernel */
        { 24, 8, BASE - 1, "entry" },                  /* entry below */
        { 24, 8, BASE + IMAGE_SIZE, "entry" },         /* entry past the end */
        { 0, 1, 0, "not an ELF" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *e = fake_vmlinux(false, &len);
        uint8_t v[8];
        memcpy(v, &cases[i].value, 8);
        memcpy(e + cases[i].at, v, cases[i].width);
        why[0] = '\0';
        assert_int_equal(vmlinux_parse(e, len, len, &vi, why, sizeof why), -1);
        if (!strstr(why, cases[i].says))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, cases[i].says);
        free(e);
    }
    /* Only PT_NOTE: nothing to load. */
    uint8_t *e = fake_vmlinux(false, &len);
    put32(e + 64, 4);
    put32(e + 64 + 56, 4);
    assert_int_equal(vmlinux_parse(e, len, len, &vi, why, sizeof why), -1);
    assert_non_null(strstr(why, "nothing to load"));
    /* Truncated anywhere: rejected, or (cut after every header and
     * segment) parsed within what remains. */
    free(e);
    e = fake_vmlinux(false, &len);
    for (size_t cut = 0; cut < len; cut += 61)
        if (vmlinux_parse(e, cut, cut, &vi, why, sizeof why) == 0)
            assert_true(vi.elf_end <= cut);
    free(e);
}

static void relocates_like_the_decompressor(void **state)
{
    size_t len;
    uint8_t *e = fake_vmlinux(true, &len);
    struct vmlinux_info vi;
    struct kernel_relocs r;
    char why[256];
    assert_int_equal(vmlinux_parse(e, len, len, &vi, why, sizeof why), 0);
    assert_int_equal(
        kernel_relocs_parse(e + vi.elf_end, len - vi.elf_end, &vi, &r, why, sizeof why), 0);
    assert_int_equal(r.n64, 2);
    assert_int_equal(r.ninv32, 1);
    assert_int_equal(r.n32, 1);
    uint8_t *image = calloc(1, vi.image_size);
    for (unsigned i = 0; i < vi.nseg; i++)
        memcpy(image + vi.seg[i].paddr - vi.base, e + vi.seg[i].offset, vi.seg[i].filesz);
    const uint64_t delta = 0x2a00000; /* 21 slots of 2 MiB */
    kernel_relocs_apply(&r, &vi, image, delta);
    assert_true(get64(image + SITE64) == VAL64 + delta);
    assert_true(get64(image + (SEG1_PADDR - BASE) + SITE_SEG1) == VAL64 + delta);
    assert_true(get32(image + SITE_INV) == VAL_INV - (uint32_t)delta);
    assert_true(get32(image + SITE32) == VAL32 + (uint32_t)delta);
    /* Nothing else changed. */
    assert_true(image[SITE64 - 1] == 0x90 && image[SITE64 + 8] == 0x90);
    free(image);
    free(e);
}

static void rejects_hostile_relocation_tables(void **state)
{
    size_t len;
    uint8_t *e = fake_vmlinux(true, &len);
    struct vmlinux_info vi;
    struct kernel_relocs r;
    char why[256];
    assert_int_equal(vmlinux_parse(e, len, len, &vi, why, sizeof why), 0);
    uint8_t *t = e + vi.elf_end;
    size_t tlen = len - vi.elf_end;
    /* No table: a kernel without KASLR. */
    assert_int_equal(kernel_relocs_parse(t, 0, &vi, &r, why, sizeof why), 1);
    /* The first terminator missing: the lists run off the front. */
    put32(t, 0x12345678 | 0x80000000);
    assert_int_equal(kernel_relocs_parse(t, tlen, &vi, &r, why, sizeof why), -1);
    put32(t, 0);
    /* Cut inside: fewer than three terminators. */
    assert_int_equal(kernel_relocs_parse(t + 8, tlen - 8, &vi, &r, why, sizeof why), -1);
    assert_int_equal(kernel_relocs_parse(t, 3, &vi, &r, why, sizeof why), -1);
    /* A site outside the image, below it, or whose 8 bytes cross its end. */
    uint32_t bad[] = { (uint32_t)(KMAP + BASE + IMAGE_SIZE), (uint32_t)(KMAP + BASE - 4),
                       (uint32_t)(KMAP + BASE + IMAGE_SIZE - 4), 0x00001000 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put32(t + 4, bad[i]); /* a 64-bit site */
        assert_int_equal(kernel_relocs_parse(t, tlen, &vi, &r, why, sizeof why), -1);
        assert_non_null(strstr(why, "outside"));
    }
    /* The last 4 bytes are a valid 32-bit site, an 8-byte one is not. */
    put32(t + 4, (uint32_t)(KMAP + BASE + SITE64));
    put32(t + 24, (uint32_t)(KMAP + BASE + IMAGE_SIZE - 4));
    assert_int_equal(kernel_relocs_parse(t, tlen, &vi, &r, why, sizeof why), 0);
    free(e);
}

static void kaslr_slots_and_nokaslr(void **state)
{
    /* Debian's 6.1: linked at 16 MiB, 54 MiB of init_size: the 1 GiB
     * window less both, in 2 MiB steps, and offset 0. */
    assert_int_equal(kernel_kaslr_slots(16 << 20, 54 << 20), (1024 - 16 - 54) / 2 + 1);
    assert_int_equal(kernel_kaslr_slots(16 << 20, 1ULL << 30), 1);
    assert_int_equal(kernel_kaslr_slots(UINT64_MAX - 5, 100), 1);
    assert_true(cmdline_has_word("console=ttyS0 nokaslr quiet", "nokaslr"));
    assert_true(cmdline_has_word("nokaslr", "nokaslr"));
    assert_false(cmdline_has_word("nokaslrx console=ttyS0", "nokaslr"));
    assert_false(cmdline_has_word("foo=nokaslr", "nokaslr"));
    assert_false(cmdline_has_word(NULL, "nokaslr"));
    assert_false(cmdline_has_word("", "nokaslr"));
}

/* ---- through boot.c ---------------------------------------------------- */

#define SETUP_SECTS 4
#define SETUP_SIZE  ((SETUP_SECTS + 1) * 512)
#define PAYLOAD_OFF 0x100 /* inside the protected-mode part */

/* A bzImage whose payload is the fake vmlinux compressed with LZ4. */
static uint8_t *fake_bzimage_lz4(size_t *len, size_t *payload_len)
{
    size_t elen;
    uint8_t *e = fake_vmlinux(true, &elen);
    size_t clen;
    uint8_t *c = compress_as_kernel(KERNEL_COMP_LZ4, e, elen, &clen);
    *payload_len = clen;
    *len = SETUP_SIZE + PAYLOAD_OFF + clen + 64;
    uint8_t *k = calloc(1, *len);
    k[0x1f1] = SETUP_SECTS;
    k[0x1fe] = 0x55;
    k[0x1ff] = 0xaa;
    k[0x201] = 0x6a;
    memcpy(k + 0x202, "HdrS", 4);
    put16(k + 0x206, 0x020f);
    k[0x211] = 0x01;
    put32(k + 0x22c, 0x7fffffff);
    put32(k + 0x230, 0x200000);
    k[0x234] = 1; /* relocatable */
    put16(k + 0x236, 0x7f);
    put32(k + 0x238, 2047);
    put32(k + 0x248, PAYLOAD_OFF);
    put32(k + 0x24c, (uint32_t)clen);
    put64(k + 0x258, BASE);
    put32(k + 0x260, INIT_SIZE);
    memcpy(k + SETUP_SIZE + PAYLOAD_OFF, c, clen);
    free(c);
    free(e);
    return k;
}

static char *write_temp(const void *data, size_t len)
{
    char *path = strdup("/tmp/vmlet-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void boot_lz4(const uint8_t *k, size_t len, const char *cmdline, uint64_t mem_size,
                     struct boot_plan *plan, struct boot_loaded *loaded, struct guest_memory *mem)
{
    char *kpath = write_temp(k, len);
    vmlet_error err;
    assert_int_equal(boot_plan_linux(kpath, NULL, cmdline, mem_size, plan, &err), 0);
    assert_int_equal(guest_memory_alloc(mem, mem_size, &err), 0);
    assert_int_equal(
        boot_load_linux(plan, kpath, NULL, cmdline, mem, GUEST_ACPI_ADDR, loaded, &err), 0);
    unlink(kpath);
    free(kpath);
}

static void boots_a_bzimage_decompressed_on_the_host(void **state)
{
    /* Each way to place it: decompressed at the kernel's address and moved
     * in place; there, but copied out (a segment moves up); with a
     * protected-mode part reaching past 16 MiB (15 MiB of padding), into
     * guest RAM above init_size (64 MiB) or a host buffer (20 MiB, the
     * kernel's end). */
    struct {
        uint64_t seg1, mem;
        size_t pad;
        bool in_place;
    } ways[] = {
        { BASE + SEG0_SIZE, 64 << 20, 0, true },
        { BASE + 0x200000, 64 << 20, 0, false },
        { BASE + SEG0_SIZE, 64 << 20, 15 << 20, false },
        { BASE + SEG0_SIZE, 20 << 20, 15 << 20, false },
    };
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        seg1_paddr = ways[w].seg1;
        size_t len, plen;
        uint8_t *k0 = fake_bzimage_lz4(&len, &plen);
        uint8_t *k = calloc(1, len + ways[w].pad);
        memcpy(k, k0, len);
        free(k0);
        len += ways[w].pad;
        struct boot_plan plan;
        struct boot_loaded loaded;
        struct guest_memory mem;
        boot_lz4(k, len, "console=ttyS0", ways[w].mem, &plan, &loaded, &mem);
        assert_int_equal(loaded.in_place, ways[w].in_place);
        assert_true(plan.host_decompress);
        assert_int_equal(plan.payload_format, KERNEL_COMP_LZ4);
        assert_true(loaded.host_decompressed);
        assert_true(loaded.kaslr);
        assert_string_equal(loaded.note, "");
        assert_true(loaded.entry == ENTRY);
        assert_true(loaded.virt_offset % (2 << 20) == 0);
        assert_true(loaded.virt_offset < (1ULL << 30) - BASE - INIT_SIZE + 1);
        const uint8_t *img = mem.host + BASE;
        uint64_t d = loaded.virt_offset;
        assert_true(get64(img + SITE64) == VAL64 + d);
        assert_true(get32(img + SITE_INV) == VAL_INV - (uint32_t)d);
        assert_true(get32(img + SITE32) == VAL32 + (uint32_t)d);
        assert_true(img[0x200] == 0x90);
        /* The second segment at its address, its bss zero. */
        const uint8_t *s1 = mem.host + SEG1_PADDR;
        assert_true(s1[0] == 0x11 && s1[SEG1_FILE - 1] == 0x11);
        assert_true(get64(s1 + SITE_SEG1) == VAL64 + d);
        for (size_t i = SEG1_FILE; i < SEG1_MEM; i++)
            assert_int_equal(s1[i], 0);
        const struct boot_params *bp = (const void *)(mem.host + GUEST_BOOT_PARAMS_ADDR);
        assert_true(bp->hdr.loadflags & KASLR_FLAG);
        guest_memory_free(&mem);
        free(k);
    }
    seg1_paddr = BASE + 0x200000;
}

static void nokaslr_keeps_link_addresses(void **state)
{
    size_t len, plen;
    uint8_t *k = fake_bzimage_lz4(&len, &plen);
    struct boot_plan plan;
    struct boot_loaded loaded;
    struct guest_memory mem;
    boot_lz4(k, len, "console=ttyS0 nokaslr", 64 << 20, &plan, &loaded, &mem);
    assert_true(loaded.host_decompressed);
    assert_false(loaded.kaslr);
    assert_true(loaded.virt_offset == 0);
    const uint8_t *img = mem.host + BASE;
    assert_true(get64(img + SITE64) == VAL64);
    assert_true(get32(img + SITE32) == VAL32);
    const struct boot_params *bp = (const void *)(mem.host + GUEST_BOOT_PARAMS_ADDR);
    assert_false(bp->hdr.loadflags & KASLR_FLAG);
    guest_memory_free(&mem);
    free(k);
}

/* What the kernel's own decompressor gets when vmlet cannot: the file's
 * bytes at 1 MiB and the bzImage's entry. */
static void corrupt_payload_falls_back(void **state)
{
    size_t len, plen;
    uint8_t *k = fake_bzimage_lz4(&len, &plen);
    uint8_t *payload = k + SETUP_SIZE + PAYLOAD_OFF;
    for (int c = 0; c < 5; c++) {
        uint8_t *bad = malloc(len);
        memcpy(bad, k, len);
        uint8_t *p = bad + SETUP_SIZE + PAYLOAD_OFF;
        if (c == 0)
            put32(p + 4, (uint32_t)plen * 2); /* first block past the payload */
        else if (c == 1)
            put32(p + plen - 4, INIT_SIZE + 1); /* size beyond init_size */
        else if (c == 2)
            put32(p + plen - 4, (uint32_t)(plen * 3)); /* size ≠ the data's */
        if (c == 3)
            setenv("VMLET_KERNEL_DECOMPRESS", "guest", 1);
        if (c == 4)
            unsetenv("VMLET_KERNEL_DECOMPRESS"); /* the default */
        struct boot_plan plan;
        struct boot_loaded loaded;
        struct guest_memory mem;
        boot_lz4(bad, len, "console=ttyS0", 64 << 20, &plan, &loaded, &mem);
        assert_false(loaded.host_decompressed);
        assert_false(loaded.kaslr);
        assert_true(loaded.note[0] != '\0');
        assert_true(loaded.entry == BOOT_BZIMAGE_ENTRY);
        assert_memory_equal(mem.host + GUEST_KERNEL_ADDR, bad + SETUP_SIZE, len - SETUP_SIZE);
        const struct boot_params *bp = (const void *)(mem.host + GUEST_BOOT_PARAMS_ADDR);
        assert_false(bp->hdr.loadflags & KASLR_FLAG);
        guest_memory_free(&mem);
        free(bad);
        setenv("VMLET_KERNEL_DECOMPRESS", "host", 1);
    }
    (void)payload;
    free(k);
}

static void boots_an_elf_vmlinux(void **state)
{
    size_t len;
    uint8_t *e = fake_vmlinux(true, &len);
    char *path = write_temp(e, len);
    struct boot_plan plan;
    struct boot_loaded loaded;
    struct guest_memory mem;
    vmlet_error err;
    assert_int_equal(boot_plan_linux(path, NULL, "console=ttyS0", 64 << 20, &plan, &err), 0);
    assert_true(plan.elf);
    assert_true(plan.kernel_end == BASE + IMAGE_SIZE);
    assert_int_equal(guest_memory_alloc(&mem, 64 << 20, &err), 0);
    assert_int_equal(
        boot_load_linux(&plan, path, NULL, "console=ttyS0", &mem, GUEST_ACPI_ADDR, &loaded, &err),
        0);
    assert_true(loaded.entry == ENTRY);
    assert_false(loaded.kaslr);
    assert_non_null(strstr(loaded.note, "no KASLR"));
    assert_true(get64(mem.host + BASE + SITE64) == VAL64);
    assert_true(mem.host[SEG1_PADDR] == 0x11 && mem.host[SEG1_PADDR + SEG1_MEM - 1] == 0);
    const struct boot_params *bp = (const void *)(mem.host + GUEST_BOOT_PARAMS_ADDR);
    assert_true(bp->hdr.boot_flag == 0xaa55 && bp->hdr.header == 0x53726448);
    assert_true(bp->hdr.cmd_line_ptr == GUEST_CMDLINE_ADDR);
    guest_memory_free(&mem);
    /* Linked below 1 MiB, where vmlet's boot structures are: refused. */
    phdr(e + 64, SEG0_OFF, 0, SEG0_SIZE, SEG0_SIZE);
    phdr(e + 64 + 56, SEG1_OFF, 0x200000, SEG1_FILE, SEG1_MEM);
    put64(e + 24, 0x200);
    unlink(path);
    free(path);
    path = write_temp(e, len);
    assert_int_equal(boot_plan_linux(path, NULL, NULL, 64 << 20, &plan, &err), -1);
    assert_non_null(strstr(err.message, "below 1 MiB"));
    unlink(path);
    free(path);
    free(e);
}

int main(void)
{
    /* Host-side decompression is opt-in; the tests of it opt in here, and
     * the fallback test below checks that without it the bzImage's own
     * decompressor runs. */
    setenv("VMLET_KERNEL_DECOMPRESS", "host", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(detects_formats_by_magic),
        cmocka_unit_test(decompresses_each_format),
        cmocka_unit_test(lz4_rejects_hostile_block_sizes),
        cmocka_unit_test(parses_a_vmlinux),
        cmocka_unit_test(rejects_hostile_vmlinux),
        cmocka_unit_test(relocates_like_the_decompressor),
        cmocka_unit_test(rejects_hostile_relocation_tables),
        cmocka_unit_test(kaslr_slots_and_nokaslr),
        cmocka_unit_test(boots_a_bzimage_decompressed_on_the_host),
        cmocka_unit_test(nokaslr_keeps_link_addresses),
        cmocka_unit_test(corrupt_payload_falls_back),
        cmocka_unit_test(boots_an_elf_vmlinux),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
