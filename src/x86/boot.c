/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst, protocol 2.12+,
 * "64-bit boot protocol"): the loader parses the setup header of a bzImage,
 * copies the protected-mode kernel to 1 MiB, fills boot_params, and enters
 * startup_64 (load address + 0x200) in long mode with an identity map,
 * __BOOT_CS = 0x10, __BOOT_DS = 0x18 and RSI = &boot_params. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../error.h"
#include "../layout.h"
#include "boot.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define KERNEL_HEAD_READ    0x1000 /* enough for any setup header */
#define ENTRY_64_OFFSET     0x200  /* startup_64 relative to the load address */
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

int boot_plan_linux(const char *kernel, const char *initrd, const char *cmdline, uint64_t mem_size,
                    struct boot_plan *plan, vmlet_error *err)
{
    memset(plan, 0, sizeof *plan);
    int fd = open(kernel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, strerror(errno));
    struct stat st;
    uint8_t head[KERNEL_HEAD_READ] = { 0 };
    if (fstat(fd, &st) < 0) {
        close(fd);
        return set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, strerror(errno));
    }
    size_t head_len = st.st_size < KERNEL_HEAD_READ ? (size_t)st.st_size : KERNEL_HEAD_READ;
    int rc = read_full(fd, head, head_len, 0);
    close(fd);
    if (rc < 0)
        return set_error(err, VMLET_ERR_FILE, "kernel '%s': cannot read it", kernel);
    char why[256];
    if (bzimage_parse(head, head_len, st.st_size, &plan->kernel, why, sizeof why) < 0)
        return set_error(err, VMLET_ERR_FILE, "kernel '%s': %s", kernel, why);
    plan->kernel_file_size = st.st_size;

    plan->cmdline_len = cmdline ? strlen(cmdline) : 0;
    uint64_t cmdline_max = min64(plan->kernel.cmdline_size, GUEST_CMDLINE_MAX - 1);
    if (plan->cmdline_len > cmdline_max)
        return set_error(err, VMLET_ERR_INVALID,
                         "cmdline: %zu characters is longer than this kernel accepts (%llu)",
                         plan->cmdline_len, (unsigned long long)cmdline_max);

    /* A relocatable kernel decompresses at pref_address at the lowest, and
     * needs init_size bytes there; the compressed payload sits at 1 MiB. */
    uint64_t payload = plan->kernel_file_size - plan->kernel.setup_size;
    plan->kernel_end = max64(GUEST_KERNEL_ADDR + payload,
                             plan->kernel.pref_address + plan->kernel.init_size);
    uint64_t low_top = min64(mem_size, GUEST_MMIO_HOLE_START);
    if (plan->kernel_end > low_top)
        return set_error(err, VMLET_ERR_INVALID,
                         "memory: %llu MiB is too small for kernel '%s', which needs "
                         "%llu MiB to decompress; give the VM more memory",
                         (unsigned long long)(mem_size >> 20), kernel,
                         (unsigned long long)mib_up(plan->kernel_end));
    if (!initrd)
        return 0;

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

void boot_cpu_registers(struct kvm_regs *regs, struct kvm_sregs *sregs)
{
    memset(regs, 0, sizeof *regs);
    regs->rflags = 0x2; /* bit 1 is always set */
    regs->rip = GUEST_KERNEL_ADDR + ENTRY_64_OFFSET;
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

int boot_load_linux(const struct boot_plan *plan, const char *kernel, const char *initrd,
                    const char *cmdline, struct guest_memory *mem, uint64_t rsdp_addr,
                    vmlet_error *err)
{
    const struct bzimage_info *k = &plan->kernel;
    uint8_t head[KERNEL_HEAD_READ] = { 0 };
    uint64_t head_len = min64(plan->kernel_file_size, KERNEL_HEAD_READ);
    uint8_t *low = gpa_to_hva(mem, 0, GUEST_KERNEL_ADDR);
    if (!low)
        return set_error(err, VMLET_ERR_INTERNAL, "guest memory has no low megabyte");

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
    /* An empty initrd has nothing to copy (and its address may be the end
     * of RAM, where no byte lies). */
    if (initrd && plan->initrd_size &&
        load_file_range("initrd", initrd, 0, plan->initrd_size, mem, plan->initrd_addr, err) < 0)
        return -1;

    char *cl = (char *)low + GUEST_CMDLINE_ADDR;
    memset(cl, 0, plan->cmdline_len + 1);
    if (cmdline)
        memcpy(cl, cmdline, plan->cmdline_len);

    boot_fill_params((struct boot_params *)(low + GUEST_BOOT_PARAMS_ADDR), head, plan, mem->size,
                     rsdp_addr);
    boot_write_page_tables(low);
    boot_write_gdt(low);
    return 0;
}
