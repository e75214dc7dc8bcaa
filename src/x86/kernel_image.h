/* The kernel inside a bzImage, prepared on the host: the compressed payload
 * (found through the setup header's payload_offset and payload_length), its
 * decompression with the distribution's libraries, the ELF vmlinux that
 * comes out, and the relocation table arch/x86/tools/relocs appends to it
 * (what KASLR needs). Every size and offset here comes from a file the user
 * gave, which may be corrupt or hostile: each is checked before use. */
#ifndef VMLET_X86_KERNEL_IMAGE_H
#define VMLET_X86_KERNEL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kernel_compression {
    KERNEL_COMP_UNKNOWN,
    KERNEL_COMP_GZIP,
    KERNEL_COMP_XZ,
    KERNEL_COMP_ZSTD,
    KERNEL_COMP_BZIP2,
    KERNEL_COMP_LZMA,
    KERNEL_COMP_LZO,
    KERNEL_COMP_LZ4,
};

/* The format named by the payload's first bytes. */
enum kernel_compression kernel_compression_detect(const uint8_t *p, size_t len);
const char *kernel_compression_name(enum kernel_compression c);
/* Whether this build has the library for it (meson found it). */
bool kernel_compression_supported(enum kernel_compression c);

/* Decompresses in[0..in_len) into exactly out_len bytes (the payload's
 * trailing 4-byte size, which the kernel's build appends). Returns 0, or -1
 * with why filled. Never writes past out[out_len). */
int kernel_decompress(enum kernel_compression c, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t out_len, char *why, size_t why_len);

#define VMLINUX_MAX_SEGMENTS 16
#define VMLINUX_MAX_IMAGE    (1ULL << 30) /* KERNEL_IMAGE_SIZE with KASLR */
#define VMLINUX_ALIGN        (2ULL << 20) /* the 64-bit kernel's PMD alignment */

struct vmlinux_segment {
    uint64_t offset; /* in the file */
    uint64_t filesz, memsz;
    uint64_t paddr; /* as linked */
};

struct vmlinux_info {
    uint64_t entry;      /* physical, as linked: startup_64 */
    uint64_t base;       /* lowest PT_LOAD physical address (LOAD_PHYSICAL_ADDR) */
    uint64_t image_size; /* highest PT_LOAD end less base */
    uint64_t elf_end;    /* end of the ELF's own bytes: headers, segments, sections */
    unsigned nseg;
    struct vmlinux_segment seg[VMLINUX_MAX_SEGMENTS];
};

/* Parses an x86-64 ELF executable whose first head_len bytes are at head
 * and which is file_len bytes long: the program headers must lie in head,
 * every PT_LOAD segment in the file. Returns 0, or -1 with why filled. */
int vmlinux_parse(const uint8_t *head, size_t head_len, uint64_t file_len,
                  struct vmlinux_info *info, char *why, size_t why_len);

/* The relocation table: read backwards from its end, 32-bit relocations
 * until a zero, inverse 32-bit ones until a zero, 64-bit ones until a zero.
 * Each entry is a link-time virtual address, 32 bits sign-extended. */
struct kernel_relocs {
    const uint8_t *r64, *inv32, *r32; /* first entry of each list */
    size_t n64, ninv32, n32;
};

/* Finds the table in table[0..len) (the bytes after the ELF) and checks
 * that every entry names a place inside the image of info. len == 0 means
 * no table (a kernel without CONFIG_RANDOMIZE_BASE): returns 1. Returns 0
 * with the table, or -1 with why filled. */
int kernel_relocs_parse(const uint8_t *table, size_t len, const struct vmlinux_info *info,
                        struct kernel_relocs *r, char *why, size_t why_len);

/* Moves the kernel's virtual addresses up by delta (a multiple of 2 MiB):
 * image is the placed kernel (info->base at image[0]), image_size bytes.
 * The entries were checked by kernel_relocs_parse. */
void kernel_relocs_apply(const struct kernel_relocs *r, const struct vmlinux_info *info,
                         uint8_t *image, uint64_t delta);

/* How many 2 MiB-aligned virtual offsets a kernel of span bytes (its
 * init_size, or more) linked at base may take: the kernel's image window
 * is 1 GiB from __START_KERNEL_map, as the in-guest decompressor uses it.
 * At least 1 (offset 0). */
uint64_t kernel_kaslr_slots(uint64_t base, uint64_t span);

/* Whether the command line holds the word "nokaslr". */
bool cmdline_has_word(const char *cmdline, const char *word);

#endif
