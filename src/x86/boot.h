/* Linux x86 boot protocol: from a bzImage, initrd and command line to a
 * guest whose boot vCPU starts in 64-bit mode at the kernel's 64-bit entry
 * point with RSI pointing at boot_params. */
#ifndef VMLET_X86_BOOT_H
#define VMLET_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>
#include <asm/bootparam.h>
#include "vmlet.h"
#include "../layout.h"
#include "../memory.h"
#include "kernel_image.h"

/* What vmlet needs from a bzImage's setup header. */
struct bzimage_info {
    uint16_t version;    /* boot protocol, e.g. 0x020f */
    uint32_t setup_size; /* real-mode part: (setup_sects + 1) * 512 */
    uint32_t header_end; /* end of the setup header in the file */
    uint32_t initrd_addr_max;
    uint32_t cmdline_size; /* longest command line, without the NUL */
    uint32_t init_size;    /* memory the kernel needs to decompress */
    uint64_t pref_address;
    uint16_t xloadflags;
    uint8_t relocatable;
    uint32_t payload_offset, payload_length; /* 0, 0 before protocol 2.08 */
};

/* Parses the first bytes of a kernel file (at least 1 KiB, or the whole file
 * if shorter). Returns 0, or -1 with why filled ("not a bzImage: ..."). */
int bzimage_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
                  struct bzimage_info *info, char *why, size_t why_len);

/* Where everything goes, decided before any guest memory exists. */
struct boot_plan {
    struct bzimage_info kernel;  /* a bzImage's header (zero for an ELF) */
    bool elf;                    /* --kernel is an ELF vmlinux */
    struct vmlinux_info vmlinux; /* an ELF's segments */
    /* A bzImage whose payload vmlet decompresses itself: its format, where
     * it lies in the file and the size it decompresses to. */
    bool host_decompress;
    const char *guest_reason; /* why not, or NULL */
    enum kernel_compression payload_format;
    uint64_t payload_file_offset, payload_size, payload_output_size;
    uint64_t kernel_file_size;
    uint64_t kernel_end; /* first byte the decompressed kernel won't use */
    uint64_t initrd_addr, initrd_size;
    size_t cmdline_len;
};

/* What boot_load_linux did. */
struct boot_loaded {
    uint64_t entry;         /* the boot vCPU's RIP */
    bool host_decompressed; /* the kernel was decompressed and placed here */
    bool in_place;          /* decompressed at the kernel's own address */
    bool kaslr;             /* with a random virtual offset (KASLR_FLAG set) */
    uint64_t virt_offset;   /* that offset */
    char note[300];         /* why the bzImage's own decompressor runs, or "" */
};


/* Checks the files and the sizes against guest memory, and plans the
 * layout. Reads only the kernel's header (a bzImage's, or an ELF vmlinux's
 * program headers) and the initrd's size. A bzImage's payload is to be
 * decompressed on the host when its format is one this build supports,
 * unless VMLET_KERNEL_DECOMPRESS=guest is in the environment. */
int boot_plan_linux(const char *kernel, const char *initrd, const char *cmdline, uint64_t mem_size,
                    struct boot_plan *plan, vmlet_error *err);

/* Copies kernel and initrd into guest memory and writes the command line,
 * boot_params (with the e820 map and the RSDP address), GDT and page
 * tables. A bzImage's payload is decompressed here when the plan says so;
 * if that fails on the file's content, the bzImage boots through its own
 * decompressor (out->note says why). */
int boot_load_linux(const struct boot_plan *plan, const char *kernel, const char *initrd,
                    const char *cmdline, struct guest_memory *mem, uint64_t rsdp_addr,
                    struct boot_loaded *out, vmlet_error *err);

/* The e820 map for a guest with mem_size bytes of RAM; returns the count. */
unsigned boot_e820_map(uint64_t mem_size, struct boot_e820_entry *out, unsigned max);

/* boot_params ("zero page") for the plan: setup header copied from the
 * kernel file, loader fields, command line, initrd, e820, RSDP. */
void boot_fill_params(struct boot_params *bp, const uint8_t *kernel_head,
                      const struct boot_plan *plan, uint64_t mem_size, uint64_t rsdp_addr);

/* Identity map of 0..4 GiB with 2 MiB pages at GUEST_PML4_ADDR, and the
 * boot GDT at GUEST_GDT_ADDR. mem must hold at least 1 MiB. */
void boot_write_page_tables(uint8_t *low_mem);
void boot_write_gdt(uint8_t *low_mem);

/* Registers of the boot vCPU at the 64-bit entry point rip. */
void boot_cpu_registers(struct kvm_regs *regs, struct kvm_sregs *sregs, uint64_t rip);
/* The bzImage's 64-bit entry point: startup_64 of its decompressor. */
#define BOOT_BZIMAGE_ENTRY (GUEST_KERNEL_ADDR + 0x200)

#endif
