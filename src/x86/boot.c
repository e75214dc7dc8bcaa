/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst, protocol 2.12+,
 * "64-bit boot protocol"): the loader parses the setup header of a bzImage,
 * copies the protected-mode kernel to 1 MiB, fills boot_params, and enters
 * startup_64 (load address + 0x200) in long mode with an identity map,
 * __BOOT_CS = 0x10, __BOOT_DS = 0x18 and RSI = &boot_params. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../error.h"
#include "../layout.h"
#include "boot.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define KERNEL_HEAD_READ    0x1000  /* enough for any setup header */
#define ELF_HEAD_READ       0x10000 /* an ELF vmlinux's program headers lie here */
#define ELF_CMDLINE_SIZE    2047    /* COMMAND_LINE_SIZE less the NUL on x86 */
#define BOOT_CS             0x10
#define BOOT_DS             0x18

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
static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}
static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

int bzimage_parse(const uint8_t *head, size_t head_len, uint64_t file_size,
                  struct bzimage_info *info, char *why, size_t why_len)
{
    memset(info, 0, sizeof *info);
    if (head_len >= 4 && memcmp(head,
                                "\x7f"
                                "ELF",
                                4) == 0) {
        snprintf(why, why_len,
                 "this is an ELF vmlinux; vmlet boots a bzImage "
                 "(arch/x86/boot/bzImage or /boot/vmlinuz-*)");
        return -1;
    }
    /* The fields up to init_size (0x260) are all we read. */
    if (head_len < 0x268 || file_size < 0x268) {
        snprintf(why, why_len, "not a bzImage: the file is too short (%llu bytes)",
                 (unsigned long long)file_size);
        return -1;
    }
    if (le16(head + 0x1fe) != 0xaa55 || memcmp(head + 0x202, "HdrS", 4) != 0) {
        snprintf(why, why_len, "not a bzImage: no Linux boot header (\"HdrS\" at 0x202)");
        return -1;
    }
    info->version = le16(head + 0x206);
    if (info->version < 0x020c) {
        snprintf(why, why_len,
                 "boot protocol %u.%02u is too old; vmlet needs 2.12 "
                 "or later (Linux 3.8+)",
                 info->version >> 8, info->version & 0xff);
        return -1;
    }
    info->xloadflags = le16(head + 0x236);
    if (!(info->xloadflags & XLF_KERNEL_64)) {
        snprintf(why, why_len,
                 "not a 64-bit kernel (no 64-bit entry point); "
                 "vmlet boots x86-64 kernels");
        return -1;
    }
    unsigned setup_sects = head[0x1f1] ? head[0x1f1] : 4;
    info->setup_size = (setup_sects + 1) * 512;
    if (info->setup_size >= file_size) {
        snprintf(why, why_len,
                 "not a bzImage: the setup code (%u bytes) fills "
                 "the whole file",
                 info->setup_size);
        return -1;
    }
    info->header_end = 0x202 + head[0x201];
    if (info->header_end > SETUP_HEADER_OFFSET + sizeof(struct setup_header))
        info->header_end = SETUP_HEADER_OFFSET + sizeof(struct setup_header);
    info->initrd_addr_max = le32(head + 0x22c);
    info->cmdline_size = le32(head + 0x238);
    info->pref_address = le64(head + 0x258);
    info->init_size = le32(head + 0x260);
    info->relocatable = head[0x234];
    if (info->version >= 0x0208) {
        info->payload_offset = le32(head + 0x248);
        info->payload_length = le32(head + 0x24c);
    }
    /* The plan adds these: a sum past 2^64 would make a small kernel end. */
    if (info->pref_address > UINT64_MAX - info->init_size) {
        snprintf(why, why_len,
                 "not a bzImage: pref_address 0x%llx plus init_size 0x%x is beyond "
                 "the 64-bit address space",
                 (unsigned long long)info->pref_address, info->init_size);
        return -1;
    }
    return 0;
}

static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

static uint64_t mib_up(uint64_t bytes)
{
    return (bytes + (1 << 20) - 1) >> 20;
}

/* A setup header for an ELF vmlinux, which has none: what boot_params
 * tells the kernel about its loader's limits (head holds KERNEL_HEAD_READ
 * bytes). */
static void elf_setup_header(uint8_t *head, const struct vmlinux_info *v)
{
    memset(head, 0, KERNEL_HEAD_READ);
    head[0x1fe] = 0x55;
    head[0x1ff] = 0xaa;
    head[0x201] = 0x66; /* the header ends after init_size, at 0x268 */
    memcpy(head + 0x202, "HdrS", 4);
    head[0x206] = 0x0f;
    head[0x207] = 0x02;                                    /* protocol 2.15 */
    head[0x211] = LOADED_HIGH;                             /* loadflags */
    memcpy(head + 0x22c, &(uint32_t){ 0x7fffffff }, 4);    /* initrd_addr_max */
    memcpy(head + 0x230, &(uint32_t){ VMLINUX_ALIGN }, 4); /* kernel_alignment */
    memcpy(head + 0x236, &(uint16_t){ XLF_KERNEL_64 }, 2);
    memcpy(head + 0x238, &(uint32_t){ ELF_CMDLINE_SIZE }, 4);
    memcpy(head + 0x258, &v->base, 8);                               /* pref_address */
    memcpy(head + 0x260, &(uint32_t){ (uint32_t)v->image_size }, 4); /* init_size */
}

/* Reads the kernel's first bytes: a bzImage's header, or an ELF's headers
 * (then parsed into plan->vmlinux, and head replaced by a setup header
 * made for it). Returns 0, or -1 with err filled. */
static int read_kernel_head(const char *kernel, uint8_t *head, uint64_t *file_size,
                            struct vmlinux_info *elf, bool *is_elf, vmlet_error *err)
{
    *file_size = 0;
    *is_elf = false;
    int fd = open(kernel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, strerror(errno));
    }
    uint8_t *buf = calloc(1, ELF_HEAD_READ);
    if (!buf) {
        close(fd);
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    }
    size_t len = st.st_size < ELF_HEAD_READ ? (size_t)st.st_size : ELF_HEAD_READ;
    int rc = read_full(fd, buf, len, 0);
    close(fd);
    *file_size = st.st_size;
    *is_elf = rc == 0 && len >= 4 &&
              memcmp(buf,
                     "\x7f"
                     "ELF",
                     4) == 0;
    char why[256];
    if (rc < 0)
        rc = set_error(err, VMLET_ERR_FILE, "kernel '%s': cannot read it", kernel);
    else if (*is_elf && vmlinux_parse(buf, len, st.st_size, elf, why, sizeof why) < 0)
        rc = set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, why);
    else if (*is_elf && elf->base < GUEST_KERNEL_ADDR)
        rc = set_error(err, VMLET_ERR_FILE,
                       "kernel '%s': its load address 0x%llx is below 1 MiB, where vmlet "
                       "keeps the boot structures; is it an x86-64 Linux vmlinux?",
                       kernel, (unsigned long long)elf->base);
    else if (*is_elf)
        elf_setup_header(head, elf);
    else
        memcpy(head, buf, KERNEL_HEAD_READ);
    free(buf);
    return rc;
}

static bool fits64(uint64_t a, uint64_t b, uint64_t limit)
{
    return a <= limit && b <= limit - a;
}

/* Whether vmlet can decompress this bzImage's payload itself: its format
 * (first bytes) and its size (the last 4 bytes the build appended).
 * Returns NULL, or why the bzImage's own decompressor is to run. */
static const char *plan_host_decompress(const char *kernel, struct boot_plan *plan)
{
    const struct bzimage_info *k = &plan->kernel;
    const char *env = getenv("VMLET_KERNEL_DECOMPRESS");
    /* Opt-in until a lab run on a quiet host shows it saves time (docs/
     * architecture.md "Boot performance"): it fixes the physical address. */
    if (!env || strcmp(env, "host"))
        return "host-side decompression is opt-in (VMLET_KERNEL_DECOMPRESS=host)";
    if (k->version < 0x0208 || k->payload_length < 16)
        return "the bzImage does not say where its payload is";
    uint64_t off = (uint64_t)k->setup_size + k->payload_offset;
    if (!fits64(off, k->payload_length, plan->kernel_file_size))
        return "the payload lies outside the file";
    uint8_t magic[8] = { 0 }, size[4] = { 0 };
    int fd = open(kernel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "cannot read the payload";
    int rc = read_full(fd, magic, sizeof magic, off);
    if (rc == 0)
        rc = read_full(fd, size, sizeof size, off + k->payload_length - 4);
    close(fd);
    if (rc < 0)
        return "cannot read the payload";
    plan->payload_format = kernel_compression_detect(magic, sizeof magic);
    if (plan->payload_format == KERNEL_COMP_UNKNOWN)
        return "the payload's format is unknown";
    if (!kernel_compression_supported(plan->payload_format))
        return "this vmlet was built without the library for the payload's format";
    plan->payload_file_offset = off;
    plan->payload_size = k->payload_length;
    plan->payload_output_size = le32(size);
    /* What the kernel's own decompressor has room for. */
    if (plan->payload_output_size < 64 || plan->payload_output_size > k->init_size)
        return "the payload's size does not fit the kernel's init_size";
    return NULL;
}

int boot_plan_linux(const char *kernel, const char *initrd, const char *cmdline, uint64_t mem_size,
                    struct boot_plan *plan, vmlet_error *err)
{
    memset(plan, 0, sizeof *plan);
    uint8_t head[KERNEL_HEAD_READ] = { 0 };
    uint64_t file_size;
    if (read_kernel_head(kernel, head, &file_size, &plan->vmlinux, &plan->elf, err) < 0)
        return -1;
    size_t head_len = file_size < KERNEL_HEAD_READ ? (size_t)file_size : KERNEL_HEAD_READ;
    if (plan->elf)
        head_len = KERNEL_HEAD_READ;
    char why[256];
    if (bzimage_parse(head, head_len, file_size, &plan->kernel, why, sizeof why) < 0)
        return set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, why);
    plan->kernel_file_size = file_size;
    if (!plan->elf) {
        plan->guest_reason = plan_host_decompress(kernel, plan);
        plan->host_decompress = plan->guest_reason == NULL;
    }

    plan->cmdline_len = cmdline ? strlen(cmdline) : 0;
    uint64_t cmdline_max = min64(plan->kernel.cmdline_size, GUEST_CMDLINE_MAX - 1);
    if (plan->cmdline_len > cmdline_max)
        return set_error(err, VMLET_ERR_INVALID,
                         "cmdline: %zu characters is longer than this kernel accepts (%llu)",
                         plan->cmdline_len, (unsigned long long)cmdline_max);

    /* A relocatable kernel decompresses at pref_address at the lowest, and
     * needs init_size bytes there; the compressed payload sits at 1 MiB. An
     * ELF lies where it was linked. */
    uint64_t payload = plan->kernel_file_size - plan->kernel.setup_size;
    plan->kernel_end = plan->kernel.pref_address + plan->kernel.init_size;
    if (!plan->elf)
        plan->kernel_end = max64(GUEST_KERNEL_ADDR + payload, plan->kernel_end);
    uint64_t low_top = min64(mem_size, GUEST_MMIO_HOLE_START);
    if (plan->kernel_end > low_top)
        return set_error(err, VMLET_ERR_INVALID,
                         "memory: %llu MiB is too small for kernel '%s', which needs "
                         "%llu MiB to decompress; give the VM more memory",
                         (unsigned long long)(mem_size >> 20), kernel,
                         (unsigned long long)mib_up(plan->kernel_end));
    if (!initrd)
        return 0;

    struct stat st;
    if (stat(initrd, &st) < 0)
        return set_error(err, VMLET_ERR_FILE, "initrd '%s': %s", initrd, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return set_error(err, VMLET_ERR_FILE, "initrd '%s' is not a regular file", initrd);
    plan->initrd_size = st.st_size;
    /* Highest place the kernel accepts, page aligned, above the kernel. */
    uint64_t top = min64(low_top, (uint64_t)plan->kernel.initrd_addr_max + 1);
    uint64_t need = plan->kernel_end + plan->initrd_size;
    if (plan->initrd_size > top || ((top - plan->initrd_size) & ~0xfffULL) < plan->kernel_end)
        return set_error(err, VMLET_ERR_INVALID,
                         "initrd '%s' (%llu MiB) does not fit in guest memory above the "
                         "kernel; give the VM at least %lluM of memory",
                         initrd, (unsigned long long)mib_up(plan->initrd_size),
                         (unsigned long long)mib_up(need) + 64);
    plan->initrd_addr = (top - plan->initrd_size) & ~0xfffULL;
    return 0;
}

unsigned boot_e820_map(uint64_t mem_size, struct boot_e820_entry *out, unsigned max)
{
    uint64_t low, high;
    guest_memory_layout(mem_size, &low, &high);
    struct boot_e820_entry map[] = {
        { 0, GUEST_LOW_RAM_END, 1 },
        /* EBDA, VGA and BIOS area: the ACPI tables live here. */
        { GUEST_LOW_RAM_END, GUEST_KERNEL_ADDR - GUEST_LOW_RAM_END, 2 },
        { GUEST_KERNEL_ADDR, low - GUEST_KERNEL_ADDR, 1 },
        /* PCI ECAM: reserved here so Linux trusts the MCFG table at once. */
        { GUEST_PCI_ECAM_START, GUEST_PCI_ECAM_SIZE, 2 },
        { GUEST_HIGH_RAM_START, high, 1 },
    };
    unsigned n = 0;
    for (unsigned i = 0; i < sizeof map / sizeof map[0] && n < max; i++)
        if (map[i].size)
            out[n++] = map[i];
    return n;
}

void boot_fill_params(struct boot_params *bp, const uint8_t *kernel_head,
                      const struct boot_plan *plan, uint64_t mem_size, uint64_t rsdp_addr)
{
    memset(bp, 0, sizeof *bp);
    memcpy(&bp->hdr, kernel_head + SETUP_HEADER_OFFSET,
           plan->kernel.header_end - SETUP_HEADER_OFFSET);
    bp->hdr.type_of_loader = 0xff; /* "undefined" boot loader */
    bp->hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
    bp->hdr.heap_end_ptr = 0xfe00;
    bp->hdr.vid_mode = 0xffff; /* "normal" */
    bp->hdr.code32_start = GUEST_KERNEL_ADDR;
    bp->hdr.cmd_line_ptr = GUEST_CMDLINE_ADDR;
    bp->hdr.ramdisk_image = plan->initrd_addr;
    bp->hdr.ramdisk_size = plan->initrd_size;
    /* The boot loader's to fill (vmlet passes none): a pointer in the
     * file would send the kernel to whatever lies at that address. */
    bp->hdr.setup_data = 0;
    bp->e820_entries = boot_e820_map(mem_size, bp->e820_table, E820_MAX_ENTRIES_ZEROPAGE);
    bp->acpi_rsdp_addr = rsdp_addr;
}

void boot_write_page_tables(uint8_t *low_mem)
{
    uint64_t *pml4 = (uint64_t *)(low_mem + GUEST_PML4_ADDR);
    uint64_t *pdpt = (uint64_t *)(low_mem + GUEST_PDPT_ADDR);
    uint64_t *pd = (uint64_t *)(low_mem + GUEST_PD_ADDR);
    enum { PRESENT = 1, WRITABLE = 2, LARGE = 0x80 };

    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = GUEST_PDPT_ADDR | PRESENT | WRITABLE;
    for (unsigned g = 0; g < 4; g++)
        pdpt[g] = (GUEST_PD_ADDR + g * 4096) | PRESENT | WRITABLE;
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | PRESENT | WRITABLE | LARGE;
}

void boot_write_gdt(uint8_t *low_mem)
{
    uint64_t gdt[4] = {
        0, 0, 0x00af9b000000ffffULL, /* 0x10: 64-bit code, present, DPL 0 */
        0x00cf93000000ffffULL,       /* 0x18: 4 GiB data, read/write */
    };
    memcpy(low_mem + GUEST_GDT_ADDR, gdt, sizeof gdt);
}

void boot_cpu_registers(struct kvm_regs *regs, struct kvm_sregs *sregs, uint64_t rip)
{
    memset(regs, 0, sizeof *regs);
    regs->rflags = 0x2; /* bit 1 is always set */
    regs->rip = rip;
    regs->rsi = GUEST_BOOT_PARAMS_ADDR;
    regs->rsp = GUEST_BOOT_PARAMS_ADDR; /* the kernel sets its own stack */

    struct kvm_segment code = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = BOOT_CS,
        .type = 0xb,
        .present = 1,
        .dpl = 0,
        .db = 0,
        .s = 1,
        .l = 1,
        .g = 1,
    };
    struct kvm_segment data = code;
    data.selector = BOOT_DS;
    data.type = 0x3;
    data.l = 0;
    data.db = 1;
    sregs->cs = code;
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    /* A busy 64-bit TSS and an LDT marked present keep VMX entry checks
     * happy; Linux loads its own soon after. */
    sregs->tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb, .present = 1 };
    sregs->ldt = (struct kvm_segment){ .limit = 0xffff, .type = 0x2, .present = 1 };
    sregs->gdt.base = GUEST_GDT_ADDR;
    sregs->gdt.limit = 4 * 8 - 1;
    sregs->idt.base = 0;
    sregs->idt.limit = 0;

    sregs->cr0 = 0x80000011; /* PG | ET | PE */
    sregs->cr3 = GUEST_PML4_ADDR;
    sregs->cr4 = 0x20;   /* PAE */
    sregs->efer = 0x500; /* LME | LMA */
}

/* Reads len bytes of path at file offset off into guest memory at gpa. */
static int load_file_range(const char *what, const char *path, uint64_t off, uint64_t len,
                           struct guest_memory *mem, uint64_t gpa, vmlet_error *err)
{
    void *dst = gpa_to_hva(mem, gpa, len);
    if (!dst)
        return set_error(err, VMLET_ERR_INTERNAL, "%s '%s' does not fit in guest memory", what,
                         path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return set_error(err, VMLET_ERR_FILE, "%s '%s': %s", what, path, strerror(errno));
    int rc = read_full(fd, dst, len, off);
    close(fd);
    if (rc < 0)
        return set_error(err, VMLET_ERR_FILE,
                         "%s '%s': read failed or the file "
                         "changed while loading",
                         what, path);
    return 0;
}

/* Whether the segments of a vmlinux decompressed at its own base can be
 * moved into place there, one after another in file order: each moves
 * down (or stays) and, with its zeroed tail, ends before the next one's
 * bytes. Sets order to that order. */
static bool movable_in_place(const struct vmlinux_info *vi, unsigned *order)
{
    for (unsigned i = 0; i < vi->nseg; i++)
        order[i] = i;
    for (unsigned i = 1; i < vi->nseg; i++)
        for (unsigned j = i; j > 0 && vi->seg[order[j]].offset < vi->seg[order[j - 1]].offset;
             j--) {
            unsigned t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (unsigned i = 0; i < vi->nseg; i++) {
        const struct vmlinux_segment *sg = &vi->seg[order[i]];
        uint64_t dest = sg->paddr - vi->base;
        if (dest > sg->offset)
            return false;
        if (i + 1 < vi->nseg && dest + sg->memsz > vi->seg[order[i + 1]].offset)
            return false;
    }
    return true;
}

/* The decompressed vmlinux placed in guest memory the way the bzImage's
 * own decompressor places it (arch/x86/boot/compressed/misc.c): each
 * PT_LOAD segment at its physical address, the relocations applied for a
 * random virtual offset unless the command line says nokaslr. The payload
 * is already in guest memory at 1 MiB. When that ends below the kernel's
 * address, the payload is decompressed right there (inside init_size, as
 * the kernel's own decompressor does) and its segments moved down in
 * place: no more guest memory is touched than the guest itself would (in
 * the nested lab every page vmlet touches first costs a fault and a
 * zeroing under emulation). Otherwise, or if the segments cannot be moved
 * in place, it goes through a copy: guest RAM above init_size when it fits
 * below the initrd, else a host buffer. Returns 0, or -1 with why filled
 * before anything at the kernel's place changed but the decompressed
 * bytes (which the fallback's own decompressor overwrites). */
static int place_decompressed(const struct boot_plan *plan, const char *cmdline,
                              struct guest_memory *mem, struct boot_loaded *out, char *why,
                              size_t why_len)
{
    const struct bzimage_info *k = &plan->kernel;
    uint64_t out_len = plan->payload_output_size;
    const uint8_t *in = gpa_to_hva(mem, GUEST_KERNEL_ADDR + k->payload_offset, plan->payload_size);
    if (!in) {
        snprintf(why, why_len, "the payload is not in guest memory");
        return -1;
    }
    uint64_t setup_end = GUEST_KERNEL_ADDR + (plan->kernel_file_size - k->setup_size);
    uint8_t *buf = NULL;
    bool in_place = setup_end <= k->pref_address;
    if (in_place)
        buf = gpa_to_hva(mem, k->pref_address, out_len);
    if (!buf) {
        in_place = false;
        uint64_t scratch = (plan->kernel_end + VMLINUX_ALIGN - 1) & ~(VMLINUX_ALIGN - 1);
        uint64_t limit = plan->initrd_size ? plan->initrd_addr
                                           : min64(mem->size, GUEST_MMIO_HOLE_START);
        if (fits64(scratch, out_len, limit))
            buf = gpa_to_hva(mem, scratch, out_len);
    }
    bool mapped = false;
    if (!buf) {
        buf = mmap(NULL, out_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED) {
            snprintf(why, why_len, "no memory to decompress into");
            return -1;
        }
        mapped = true;
    }
    int rc = -1;
    uint8_t *table_copy = NULL;
    struct vmlinux_info vi;
    struct kernel_relocs relocs;
    unsigned order[VMLINUX_MAX_SEGMENTS];
    if (kernel_decompress(plan->payload_format, in, plan->payload_size, buf, out_len, why,
                          why_len) < 0 ||
        vmlinux_parse(buf, out_len, out_len, &vi, why, why_len) < 0)
        goto out;
    /* Where the kernel's own decompressor would put it without KASLR. */
    if (vi.base != k->pref_address || vi.image_size > k->init_size) {
        snprintf(why, why_len,
                 "the vmlinux inside (at 0x%llx, %llu bytes) does not match the header "
                 "(pref_address 0x%llx, init_size %u)",
                 (unsigned long long)vi.base, (unsigned long long)vi.image_size,
                 (unsigned long long)k->pref_address, k->init_size);
        goto out;
    }
    const uint8_t *table = buf + vi.elf_end;
    size_t table_len = out_len - vi.elf_end;
    if (in_place && !movable_in_place(&vi, order)) {
        /* Unusual: copy it all out and place it from there. */
        uint8_t *copy = mmap(NULL, out_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                             0);
        if (copy == MAP_FAILED) {
            snprintf(why, why_len, "no memory to decompress into");
            goto out;
        }
        memcpy(copy, buf, out_len);
        buf = copy;
        mapped = true;
        in_place = false;
        table = buf + vi.elf_end;
    }
    if (in_place && table_len) {
        /* The segments' moves may run over the table: keep it apart. */
        table_copy = malloc(table_len);
        if (!table_copy) {
            snprintf(why, why_len, "out of memory");
            goto out;
        }
        memcpy(table_copy, table, table_len);
        table = table_copy;
    }
    int has_table = kernel_relocs_parse(table, table_len, &vi, &relocs, why, why_len);
    if (has_table < 0)
        goto out;
    /* A relocation table is there only with CONFIG_RANDOMIZE_BASE; without
     * one the bzImage's decompressor does no KASLR either. */
    out->kaslr = has_table == 0 && k->relocatable && !cmdline_has_word(cmdline, "nokaslr");
    if (out->kaslr) {
        uint64_t r;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
            snprintf(why, why_len, "getrandom: %s", strerror(errno));
            out->kaslr = false;
            goto out;
        }
        uint64_t slots = kernel_kaslr_slots(vi.base, max64(out_len, k->init_size));
        out->virt_offset = (r % slots) * VMLINUX_ALIGN;
    }

    uint8_t *image = gpa_to_hva(mem, vi.base, vi.image_size);
    if (!image) {
        snprintf(why, why_len, "the kernel does not fit in guest memory");
        out->kaslr = false;
        out->virt_offset = 0;
        goto out;
    }
    if (!in_place)
        for (unsigned i = 0; i < vi.nseg; i++)
            order[i] = i;
    for (unsigned i = 0; i < vi.nseg; i++) {
        const struct vmlinux_segment *sg = &vi.seg[order[i]];
        uint8_t *dst = image + (sg->paddr - vi.base);
        memmove(dst, buf + sg->offset, sg->filesz);
        memset(dst + sg->filesz, 0, sg->memsz - sg->filesz);
    }
    if (out->virt_offset)
        kernel_relocs_apply(&relocs, &vi, image, out->virt_offset);
    out->entry = vi.entry;
    out->host_decompressed = true;
    out->in_place = in_place;
    rc = 0;
out:
    free(table_copy);
    if (mapped)
        munmap(buf, out_len);
    return rc;
}

/* An ELF vmlinux: each segment from the file to its physical address. */
static int load_vmlinux(const struct boot_plan *plan, const char *kernel, struct guest_memory *mem,
                        vmlet_error *err)
{
    uint8_t head[KERNEL_HEAD_READ];
    uint64_t file_size;
    struct vmlinux_info now;
    bool is_elf;
    if (read_kernel_head(kernel, head, &file_size, &now, &is_elf, err) < 0)
        return -1;
    if (!is_elf || file_size != plan->kernel_file_size ||
        memcmp(&now, &plan->vmlinux, sizeof now) != 0)
        return set_error(err, VMLET_ERR_FILE, "kernel '%s' changed while loading", kernel);
    for (unsigned i = 0; i < now.nseg; i++) {
        const struct vmlinux_segment *sg = &now.seg[i];
        uint8_t *dst = gpa_to_hva(mem, sg->paddr, sg->memsz);
        if (!dst)
            return set_error(err, VMLET_ERR_INTERNAL, "kernel '%s' does not fit in guest memory",
                             kernel);
        memset(dst + sg->filesz, 0, sg->memsz - sg->filesz);
        if (sg->filesz &&
            load_file_range("kernel", kernel, sg->offset, sg->filesz, mem, sg->paddr, err) < 0)
            return -1;
    }
    return 0;
}

int boot_load_linux(const struct boot_plan *plan, const char *kernel, const char *initrd,
                    const char *cmdline, struct guest_memory *mem, uint64_t rsdp_addr,
                    struct boot_loaded *out, vmlet_error *err)
{
    const struct bzimage_info *k = &plan->kernel;
    uint8_t head[KERNEL_HEAD_READ] = { 0 };
    uint64_t head_len = min64(plan->kernel_file_size, KERNEL_HEAD_READ);
    uint8_t *low = gpa_to_hva(mem, 0, GUEST_KERNEL_ADDR);
    memset(out, 0, sizeof *out);
    out->entry = BOOT_BZIMAGE_ENTRY;
    if (!low)
        return set_error(err, VMLET_ERR_INTERNAL, "guest memory has no low megabyte");

    if (plan->elf) {
        if (load_vmlinux(plan, kernel, mem, err) < 0)
            return -1;
        elf_setup_header(head, &plan->vmlinux);
        out->entry = plan->vmlinux.entry;
        snprintf(out->note, sizeof out->note, "an ELF vmlinux: no KASLR");
    } else {
        /* The header is read again: the file could have changed since the plan. */
        int fd = open(kernel, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, strerror(errno));
        int rc = read_full(fd, head, head_len, 0);
        close(fd);
        struct bzimage_info now;
        char why[256];
        if (rc < 0 ||
            bzimage_parse(head, head_len, plan->kernel_file_size, &now, why, sizeof why) < 0 ||
            memcmp(&now, k, sizeof now) != 0)
            return set_error(err, VMLET_ERR_FILE, "kernel '%s' changed while loading", kernel);

        if (load_file_range("kernel", kernel, k->setup_size, plan->kernel_file_size - k->setup_size,
                            mem, GUEST_KERNEL_ADDR, err) < 0)
            return -1;
        if (!plan->host_decompress)
            snprintf(out->note, sizeof out->note, "%s",
                     plan->guest_reason ? plan->guest_reason : "");
        else if (place_decompressed(plan, cmdline, mem, out, why, sizeof why) < 0)
            /* What is at 1 MiB still boots through its own decompressor. */
            snprintf(out->note, sizeof out->note, "%s payload: %s",
                     kernel_compression_name(plan->payload_format), why);
    }
    /* An empty initrd has nothing to copy (and its address may be the end
     * of RAM, where no byte lies). */
    if (initrd && plan->initrd_size &&
        load_file_range("initrd", initrd, 0, plan->initrd_size, mem, plan->initrd_addr, err) < 0)
        return -1;

    char *cl = (char *)low + GUEST_CMDLINE_ADDR;
    memset(cl, 0, plan->cmdline_len + 1);
    if (cmdline)
        memcpy(cl, cmdline, plan->cmdline_len);

    struct boot_params *bp = (struct boot_params *)(low + GUEST_BOOT_PARAMS_ADDR);
    boot_fill_params(bp, head, plan, mem->size, rsdp_addr);
    /* The kernel randomizes its memory regions too only when told. */
    if (out->kaslr)
        bp->hdr.loadflags |= KASLR_FLAG;
    boot_write_page_tables(low);
    boot_write_gdt(low);
    return 0;
}
