/* libFuzzer target for the bzImage parser and boot-protocol loader
 * (src/x86/boot.c): any bytes as a kernel file (a bzImage booting through
 * its own decompressor, or an ELF vmlinux), with an initrd and a
 * command line whose sizes come from the input, planned and loaded into
 * guest memory the way vmlet boots a VM. Build with clang
 * -fsanitize=fuzzer,address,undefined (docs/fuzzing.md), or with
 * -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * Input layout (little-endian):
 *   0      guest memory (% 4): 2 MiB, 5 MiB + 12 KiB, 12 MiB (each
 *          allocated to exactly that size, so ASan sees any access past
 *          it), or 3 GiB + 2 MiB (low RAM up to the MMIO hole and 2 MiB at
 *          4 GiB; mapped lazily between inaccessible guard pages)
 *   1      bit 0: an initrd, bit 1: a command line
 *   2..4   initrd size (& 0x1fffff: up to 2 MiB; its first and last 16
 *          bytes carry a pattern, the rest reads zero)
 *   5..6   command line length
 *   7      unused
 *   8..    the kernel file. Files are memfds, reached by /proc/self/fd
 *          paths: nothing is left behind.
 *
 * Besides memory errors it checks:
 *   - a failure (of the plan or of the load) comes with a message;
 *   - a plan that succeeds loads (the files did not change);
 *   - the plan: the kernel's end lies past its payload at 1 MiB and past
 *     pref_address + init_size (without wrapping), inside low RAM; the
 *     command line fits the kernel's cmdline_size; the initrd is page
 *     aligned, above the kernel's end, inside RAM and below
 *     initrd_addr_max;
 *   - guest memory: the payload at 1 MiB, the initrd at its address and
 *     the NUL-terminated command line at its pointer are the files' bytes;
 *     the low megabyte and the bytes around the payload and the initrd are
 *     zero wherever nothing was to be written;
 *   - boot_params: the setup header as in the file up to its end but for
 *     the fields a loader writes, which say where the command line and
 *     initrd are (inside RAM, as planned), every usable e820 entry inside
 *     RAM. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_TARGET "fuzz_bzimage"
#include "fuzz_util.h"
#include "layout.h"
#include "memory.h"
#include "x86/boot.h"

#define PARAMS       8
#define INITRD_MAX   0x1fffff
#define PATTERN      16
#define SETUP_HEADER 0x1f1
#define PAGE         4096ULL

static const uint64_t mem_sizes[] = { 2ULL << 20, (5ULL << 20) + 0x3000, 12ULL << 20,
                                      GUEST_MMIO_HOLE_START + (2ULL << 20) };

static int memfd(const char *name, const void *data, size_t len, char *path, size_t path_len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    check(fd >= 0, "memfd_create failed");
    if (len)
        check(write(fd, data, len) == (ssize_t)len, "cannot write a memfd");
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

/* Guest RAM of exactly size bytes: small ones on the heap, the big one
 * lazily mapped with an inaccessible page on each side. */
static uint8_t *ram_alloc(uint64_t size)
{
    if (size < GUEST_MMIO_HOLE_START)
        return calloc(1, size);
    uint8_t *p = mmap(NULL, size + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    check(p != MAP_FAILED, "cannot reserve the big guest memory");
    check(mprotect(p + PAGE, size, PROT_READ | PROT_WRITE) == 0, "mprotect failed");
    return p + PAGE;
}

static void ram_free(uint8_t *ram, uint64_t size)
{
    if (size < GUEST_MMIO_HOLE_START)
        free(ram);
    else
        munmap(ram - PAGE, size + 2 * PAGE);
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Guest bytes [gpa, end) that nothing should have written are zero. */
static void expect_zero(const struct guest_memory *m, uint64_t gpa, uint64_t end, const char *what)
{
    static const uint8_t zero[4096];
    while (gpa < end) {
        uint64_t n = min64(end - gpa, sizeof zero);
        const uint8_t *p = gpa_to_hva(m, gpa, n);
        check(p != NULL, "zero check outside RAM");
        check(memcmp(p, zero, n) == 0, what);
        gpa += n;
    }
}

static void check_plan(const struct boot_plan *plan, uint64_t mem_size, bool initrd,
                       size_t cmdline_len)
{
    const struct bzimage_info *k = &plan->kernel;
    uint64_t low_top = min64(mem_size, GUEST_MMIO_HOLE_START);
    uint64_t payload = plan->kernel_file_size - k->setup_size;
    check(k->setup_size < plan->kernel_file_size, "no payload");
    check(plan->kernel_end >= GUEST_KERNEL_ADDR + payload, "kernel end before the payload's end");
    check(k->pref_address + k->init_size >= k->pref_address &&
              plan->kernel_end >= k->pref_address + k->init_size,
          "kernel end before pref_address + init_size");
    check(plan->kernel_end <= low_top, "kernel beyond low RAM");
    check(plan->cmdline_len == cmdline_len && cmdline_len <= k->cmdline_size &&
              cmdline_len < GUEST_CMDLINE_MAX,
          "command line longer than the kernel takes");
    if (!initrd)
        return;
    check(plan->initrd_addr % PAGE == 0, "initrd not page aligned");
    check(plan->initrd_addr >= plan->kernel_end, "initrd overlaps the kernel");
    check(plan->initrd_addr + plan->initrd_size <= low_top, "initrd beyond low RAM");
    check(plan->initrd_addr + plan->initrd_size <= (uint64_t)k->initrd_addr_max + 1,
          "initrd above initrd_addr_max");
}

static void check_memory(const struct guest_memory *m, const struct boot_plan *plan,
                         const uint8_t *kernel, const uint8_t *pattern, bool initrd,
                         const char *cmdline)
{
    const struct bzimage_info *k = &plan->kernel;
    uint64_t payload = plan->kernel_file_size - k->setup_size;
    const uint8_t *at = gpa_to_hva(m, GUEST_KERNEL_ADDR, payload);
    check(at && memcmp(at, kernel + k->setup_size, payload) == 0, "payload not at 1 MiB");

    const char *cl = gpa_to_hva(m, GUEST_CMDLINE_ADDR, plan->cmdline_len + 1);
    check(cl && memcmp(cl, cmdline, plan->cmdline_len) == 0 && cl[plan->cmdline_len] == '\0',
          "command line not where the pointer says");

    uint64_t size = plan->initrd_size;
    if (initrd && size) {
        const uint8_t *rd = gpa_to_hva(m, plan->initrd_addr, size);
        uint64_t n = min64(size, PATTERN);
        if (size <= 2 * PATTERN) {
            /* Head and tail overlap: the file as the two writes left it. */
            uint8_t file[2 * PATTERN] = { 0 };
            memcpy(file, pattern, n);
            memcpy(file + size - n, pattern + PATTERN - n, n);
            check(rd && memcmp(rd, file, size) == 0, "initrd not at its address");
        } else {
            check(rd && memcmp(rd, pattern, n) == 0 &&
                      memcmp(rd + size - n, pattern + PATTERN - n, n) == 0,
                  "initrd not at its address");
        }
    }

    /* Nothing but the GDT, boot_params, page tables and command line in
     * the low megabyte; nothing right after the payload or around the
     * initrd. */
    uint64_t cl_end = GUEST_CMDLINE_ADDR + plan->cmdline_len + 1;
    expect_zero(m, 0, GUEST_GDT_ADDR, "write below the GDT");
    expect_zero(m, GUEST_GDT_ADDR + 32, GUEST_BOOT_PARAMS_ADDR, "write after the GDT");
    expect_zero(m, GUEST_BOOT_PARAMS_ADDR + PAGE, GUEST_PML4_ADDR, "write after boot_params");
    expect_zero(m, GUEST_PD_ADDR + 4 * PAGE, GUEST_CMDLINE_ADDR, "write after the page tables");
    expect_zero(m, cl_end, GUEST_KERNEL_ADDR, "write after the command line");
    uint64_t low_top = min64(m->size, GUEST_MMIO_HOLE_START);
    uint64_t pay_end = GUEST_KERNEL_ADDR + payload;
    uint64_t rd_lo = initrd ? plan->initrd_addr : low_top;
    expect_zero(m, pay_end, min64(pay_end + PAGE, rd_lo), "write after the payload");
    if (initrd) {
        uint64_t before = rd_lo - min64(rd_lo - pay_end, PAGE);
        expect_zero(m, before, rd_lo, "write before the initrd");
        expect_zero(m, rd_lo + size, min64(rd_lo + size + PAGE, low_top), "write after the initrd");
    }
}

static void check_params(const struct guest_memory *m, const struct boot_plan *plan,
                         const uint8_t *kernel, bool initrd)
{
    const struct boot_params *bp = gpa_to_hva(m, GUEST_BOOT_PARAMS_ADDR, sizeof *bp);
    check(bp != NULL, "no boot_params");
    const struct setup_header *h = &bp->hdr;

    /* The header as in the file, loader fields aside. */
    struct setup_header want;
    memset(&want, 0, sizeof want);
    memcpy(&want, kernel + SETUP_HEADER, plan->kernel.header_end - SETUP_HEADER);
    struct setup_header got = *h;
    got.type_of_loader = want.type_of_loader;
    got.loadflags = want.loadflags;
    got.heap_end_ptr = want.heap_end_ptr;
    got.vid_mode = want.vid_mode;
    got.code32_start = want.code32_start;
    got.cmd_line_ptr = want.cmd_line_ptr;
    got.ramdisk_image = want.ramdisk_image;
    got.ramdisk_size = want.ramdisk_size;
    check(h->setup_data == 0, "setup_data taken from the file");
    got.setup_data = want.setup_data;
    check(memcmp(&got, &want, sizeof want) == 0, "setup header differs from the file's");

    check(h->type_of_loader == 0xff &&
              (h->loadflags & (LOADED_HIGH | CAN_USE_HEAP)) == (LOADED_HIGH | CAN_USE_HEAP),
          "loader fields not set");
    check(h->cmd_line_ptr == GUEST_CMDLINE_ADDR &&
              gpa_to_hva(m, h->cmd_line_ptr, plan->cmdline_len + 1) != NULL,
          "command line pointer outside RAM");
    check(h->code32_start == GUEST_KERNEL_ADDR, "code32_start not the load address");
    if (initrd) {
        check(h->ramdisk_image == plan->initrd_addr && h->ramdisk_size == plan->initrd_size,
              "ramdisk fields differ from the plan");
        check(!h->ramdisk_size || gpa_to_hva(m, h->ramdisk_image, h->ramdisk_size) != NULL,
              "ramdisk outside RAM");
        check((uint64_t)h->ramdisk_image + h->ramdisk_size <= (uint64_t)h->initrd_addr_max + 1 ||
                  plan->kernel.header_end < 0x230,
              "ramdisk above the kernel's initrd_addr_max");
    } else {
        check(h->ramdisk_image == 0 && h->ramdisk_size == 0, "ramdisk without an initrd");
    }
    check(bp->acpi_rsdp_addr == GUEST_ACPI_ADDR, "RSDP address lost");
    check(bp->e820_entries > 0 && bp->e820_entries <= E820_MAX_ENTRIES_ZEROPAGE,
          "e820 entry count");
    for (unsigned i = 0; i < bp->e820_entries; i++) {
        const struct boot_e820_entry *e = &bp->e820_table[i];
        if (e->type == 1)
            check(gpa_to_hva(m, e->addr, e->size) != NULL, "usable e820 entry outside RAM");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PARAMS)
        return 0;
    /* The payload's decompression is fuzz_kernel_image's; here the bytes
     * at 1 MiB must stay the file's. */
    setenv("VMLET_KERNEL_DECOMPRESS", "guest", 1);
    uint64_t mem_size = mem_sizes[data[0] % 4];
    bool with_initrd = data[1] & 1, with_cmdline = data[1] & 2;
    size_t initrd_size = (data[2] | data[3] << 8 | (size_t)data[4] << 16) & INITRD_MAX;
    size_t cmdline_len = (size_t)(data[5] | data[6] << 8);
    const uint8_t *kernel = data + PARAMS;
    size_t kernel_len = size - PARAMS;

    char kpath[64], ipath[64];
    int kfd = memfd("kernel", kernel, kernel_len, kpath, sizeof kpath);
    int ifd = -1;
    uint8_t pattern[PATTERN];
    for (unsigned i = 0; i < PATTERN; i++)
        pattern[i] = (uint8_t)(0xa0 + i);
    if (with_initrd) {
        ifd = memfd("initrd", NULL, 0, ipath, sizeof ipath);
        check(ftruncate(ifd, (off_t)initrd_size) == 0, "cannot size the initrd");
        size_t n = min64(initrd_size, PATTERN);
        check(pwrite(ifd, pattern, n, 0) == (ssize_t)n &&
                  pwrite(ifd, pattern + PATTERN - n, n, (off_t)(initrd_size - n)) == (ssize_t)n,
              "cannot write the initrd");
    }
    char *cmdline = NULL;
    if (with_cmdline) {
        cmdline = malloc(cmdline_len + 1);
        check(cmdline != NULL, "out of memory");
        for (size_t i = 0; i < cmdline_len; i++)
            cmdline[i] = (char)('a' + i % 26);
        cmdline[cmdline_len] = '\0';
    }

    struct boot_plan plan;
    vmlet_error err = { 0 };
    int rc = boot_plan_linux(kpath, with_initrd ? ipath : NULL, cmdline, mem_size, &plan, &err);
    if (rc < 0) {
        check(err.message[0] != '\0' && err.code != VMLET_OK, "a failed plan says nothing");
    } else {
        check(rc == 0, "plan returned neither 0 nor -1");
        check_plan(&plan, mem_size, with_initrd, with_cmdline ? cmdline_len : 0);
        struct guest_memory m = { .size = mem_size };
        guest_memory_layout(mem_size, &m.low_size, &m.high_size);
        m.host = ram_alloc(mem_size);
        check(m.host != NULL, "out of memory");
        struct boot_loaded loaded;
        rc = boot_load_linux(&plan, kpath, with_initrd ? ipath : NULL, cmdline, &m, GUEST_ACPI_ADDR,
                             &loaded, &err);
        if (rc != 0)
            fprintf(stderr, "fuzz_bzimage: load failed: %s\n", err.message);
        check(rc == 0, "a plan that succeeded did not load");
        check(!loaded.host_decompressed, "decompressed on the host though told not to");
        if (plan.elf) {
            /* An ELF vmlinux: entered inside what was loaded. */
            check(loaded.entry >= plan.vmlinux.base &&
                      loaded.entry < plan.vmlinux.base + plan.vmlinux.image_size &&
                      plan.kernel_end <= min64(mem_size, GUEST_MMIO_HOLE_START),
                  "ELF entry outside the kernel");
        } else {
            check(loaded.entry == BOOT_BZIMAGE_ENTRY, "bzImage entered elsewhere");
            check_memory(&m, &plan, kernel, pattern, with_initrd, cmdline ? cmdline : "");
            check_params(&m, &plan, kernel, with_initrd);
        }
        ram_free(m.host, mem_size);
    }
    free(cmdline);
    if (ifd >= 0)
        close(ifd);
    close(kfd);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
