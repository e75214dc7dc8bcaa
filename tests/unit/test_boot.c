/* Linux boot protocol: bzImage header parsing, the layout plan, e820,
 * boot_params, page tables and the entry registers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "layout.h"
#include "x86/boot.h"

#define FAKE_SETUP_SECTS 4
#define FAKE_PAYLOAD     (64 * 1024)
#define FAKE_INIT_SIZE   (20u << 20)

/* A minimal bzImage: real setup header fields, zero code. */
static uint8_t *fake_bzimage(size_t *len)
{
    *len = (FAKE_SETUP_SECTS + 1) * 512 + FAKE_PAYLOAD;
    uint8_t *k = calloc(1, *len);
    k[0x1f1] = FAKE_SETUP_SECTS;
    k[0x1fe] = 0x55;
    k[0x1ff] = 0xaa;
    k[0x201] = 0x6a; /* header ends at 0x26c */
    memcpy(k + 0x202, "HdrS", 4);
    k[0x206] = 0x0f;
    k[0x207] = 0x02;                       /* protocol 2.15 */
    k[0x211] = 0x01;                       /* LOADED_HIGH */
    *(uint32_t *)(k + 0x22c) = 0x7fffffff; /* initrd_addr_max */
    *(uint16_t *)(k + 0x236) = 0x7f;       /* xloadflags: 64-bit entry */
    *(uint32_t *)(k + 0x238) = 2047;       /* cmdline_size */
    *(uint64_t *)(k + 0x258) = 0x1000000;  /* pref_address */
    *(uint32_t *)(k + 0x260) = FAKE_INIT_SIZE;
    memset(k + (FAKE_SETUP_SECTS + 1) * 512, 0x90, FAKE_PAYLOAD);
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

static void parses_a_bzimage(void **state)
{
    size_t len;
    uint8_t *k = fake_bzimage(&len);
    struct bzimage_info info;
    char why[256];
    assert_int_equal(bzimage_parse(k, 0x1000, len, &info, why, sizeof why), 0);
    assert_int_equal(info.version, 0x020f);
    assert_int_equal(info.setup_size, 5 * 512);
    assert_int_equal(info.header_end, 0x26c);
    assert_int_equal(info.cmdline_size, 2047);
    assert_int_equal(info.init_size, FAKE_INIT_SIZE);
    assert_true(info.pref_address == 0x1000000);
    k[0x1f1] = 0; /* 0 setup sectors means 4 */
    assert_int_equal(bzimage_parse(k, 0x1000, len, &info, why, sizeof why), 0);
    assert_int_equal(info.setup_size, 5 * 512);
    free(k);
}

static void rejects_what_is_not_a_bzimage(void **state)
{
    size_t len;
    uint8_t *k = fake_bzimage(&len);
    struct bzimage_info info;
    char why[256];

    uint8_t elf[0x300] = { 0x7f, 'E', 'L', 'F' };
    assert_int_equal(bzimage_parse(elf, sizeof elf, sizeof elf, &info, why, sizeof why), -1);
    assert_non_null(strstr(why, "ELF"));
    assert_int_equal(bzimage_parse(k, 100, 100, &info, why, sizeof why), -1);
    assert_non_null(strstr(why, "too short"));

    uint8_t *bad = malloc(len);
    memcpy(bad, k, len);
    bad[0x202] = 'X';
    assert_int_equal(bzimage_parse(bad, 0x1000, len, &info, why, sizeof why), -1);
    assert_non_null(strstr(why, "HdrS"));

    memcpy(bad, k, len);
    bad[0x206] = 0x0a; /* 2.10 has no 64-bit entry */
    assert_int_equal(bzimage_parse(bad, 0x1000, len, &info, why, sizeof why), -1);
    assert_non_null(strstr(why, "too old"));

    memcpy(bad, k, len);
    bad[0x236] = 0; /* 32-bit only kernel */
    assert_int_equal(bzimage_parse(bad, 0x1000, len, &info, why, sizeof why), -1);
    assert_non_null(strstr(why, "64-bit"));

    memcpy(bad, k, len);
    bad[0x1f1] = 200; /* setup claims more than the file has */
    assert_int_equal(bzimage_parse(bad, 0x1000, 0x1000, &info, why, sizeof why), -1);
    free(bad);
    free(k);
}

static void plans_initrd_below_limits(void **state)
{
    size_t len;
    uint8_t *k = fake_bzimage(&len);
    char *kpath = write_temp(k, len);
    size_t ilen = 3 << 20;
    uint8_t *initrd = calloc(1, ilen);
    char *ipath = write_temp(initrd, ilen);
    struct boot_plan plan;
    vmlet_error err;

    assert_int_equal(boot_plan_linux(kpath, ipath, "console=ttyS0", 256 << 20, &plan, &err), 0);
    assert_int_equal(plan.initrd_size, ilen);
    assert_int_equal(plan.initrd_addr % 4096, 0);
    assert_true(plan.initrd_addr + ilen <= (256 << 20));
    assert_true(plan.initrd_addr >= plan.kernel_end);
    assert_true(plan.kernel_end == 0x1000000 + FAKE_INIT_SIZE);

    /* initrd_addr_max wins over the top of RAM. */
    *(uint32_t *)(k + 0x22c) = (64 << 20) - 1;
    char *kpath2 = write_temp(k, len);
    assert_int_equal(boot_plan_linux(kpath2, ipath, NULL, 1ULL << 30, &plan, &err), 0);
    assert_true(plan.initrd_addr + ilen <= (64 << 20));

    /* With 5 GiB the initrd still goes below the 32-bit hole. */
    assert_int_equal(boot_plan_linux(kpath, ipath, NULL, 5ULL << 30, &plan, &err), 0);
    assert_true(plan.initrd_addr + ilen <= GUEST_MMIO_HOLE_START);

    unlink(kpath);
    unlink(kpath2);
    unlink(ipath);
    free(kpath);
    free(kpath2);
    free(ipath);
    free(initrd);
    free(k);
}

/* pref_address + init_size past 2^64 wrapped to a small kernel end that
 * the plan took for the truth (caught by fuzz_bzimage's checks). */
static void rejects_pref_address_that_wraps(void **state)
{
    size_t len;
    uint8_t *k = fake_bzimage(&len);
    struct bzimage_info info;
    char why[256];
    *(uint64_t *)(k + 0x258) = 0xfffffffffff00000ULL;
    *(uint32_t *)(k + 0x260) = 0x200000;
    assert_int_equal(bzimage_parse(k, 0x1000, len, &info, why, sizeof why), -1);
    assert_non_null(strstr(why, "pref_address"));
    /* Ending at 2^64 - 1 is still a (strange) bzImage. */
    *(uint32_t *)(k + 0x260) = 0xfffff;
    assert_int_equal(bzimage_parse(k, 0x1000, len, &info, why, sizeof why), 0);
    free(k);
}

/* An empty initrd file: the plan put it at the top of RAM, and loading it
 * failed with "does not fit in guest memory" (caught by fuzz_bzimage's
 * checks). */
static void loads_an_empty_initrd(void **state)
{
    size_t len;
    uint8_t *k = fake_bzimage(&len);
    char *kpath = write_temp(k, len);
    char *ipath = write_temp("", 0);
    struct boot_plan plan;
    struct guest_memory mem;
    vmlet_error err;
    assert_int_equal(boot_plan_linux(kpath, ipath, "console=ttyS0", 64 << 20, &plan, &err), 0);
    assert_int_equal(plan.initrd_size, 0);
    assert_int_equal(guest_memory_alloc(&mem, 64 << 20, &err), 0);
    struct boot_loaded loaded;
    assert_int_equal(
        boot_load_linux(&plan, kpath, ipath, "console=ttyS0", &mem, GUEST_ACPI_ADDR, &loaded, &err),
        0);
    assert_false(loaded.host_decompressed); /* the fake payload is no format */
    assert_true(loaded.entry == GUEST_KERNEL_ADDR + 0x200);
    const struct boot_params *bp = (const void *)(mem.host + GUEST_BOOT_PARAMS_ADDR);
    assert_int_equal(bp->hdr.ramdisk_size, 0);
    guest_memory_free(&mem);
    unlink(kpath);
    unlink(ipath);
    free(kpath);
    free(ipath);
    free(k);
}

static void plan_errors_name_the_problem(void **state)
{
    size_t len;
    uint8_t *k = fake_bzimage(&len);
    char *kpath = write_temp(k, len);
    size_t ilen = 40 << 20;
    uint8_t *initrd = calloc(1, ilen);
    char *ipath = write_temp(initrd, ilen);
    struct boot_plan plan;
    vmlet_error err;

    /* 48 MiB: the kernel fits (16 + 20 MiB) but a 40 MiB initrd does not. */
    assert_int_equal(boot_plan_linux(kpath, ipath, NULL, 48 << 20, &plan, &err), -1);
    assert_non_null(strstr(err.message, "initrd"));
    assert_non_null(strstr(err.message, "at least"));
    /* 32 MiB: not even the kernel. */
    assert_int_equal(boot_plan_linux(kpath, NULL, NULL, 32 << 20, &plan, &err), -1);
    assert_non_null(strstr(err.message, "too small"));
    /* Command line longer than cmdline_size. */
    char *cl = malloc(3000);
    memset(cl, 'a', 2999);
    cl[2999] = 0;
    assert_int_equal(boot_plan_linux(kpath, NULL, cl, 256 << 20, &plan, &err), -1);
    assert_non_null(strstr(err.message, "cmdline"));
    cl[2047] = 0; /* exactly the limit is fine */
    assert_int_equal(boot_plan_linux(kpath, NULL, cl, 256 << 20, &plan, &err), 0);
    /* Missing files. */
    assert_int_equal(boot_plan_linux("/nonexistent/vmlinuz", NULL, NULL, 256 << 20, &plan, &err),
                     -1);
    assert_non_null(strstr(err.message, "/nonexistent/vmlinuz"));
    assert_int_equal(boot_plan_linux(kpath, "/nonexistent/initrd", NULL, 256 << 20, &plan, &err),
                     -1);
    assert_non_null(strstr(err.message, "/nonexistent/initrd"));
    /* Not a kernel at all. */
    assert_int_equal(boot_plan_linux(ipath, NULL, NULL, 256 << 20, &plan, &err), -1);
    assert_non_null(strstr(err.message, "not a bzImage"));

    free(cl);
    unlink(kpath);
    unlink(ipath);
    free(kpath);
    free(ipath);
    free(initrd);
    free(k);
}

static void e820_maps(void **state)
{
    struct boot_e820_entry e[8];
    unsigned n = boot_e820_map(256 << 20, e, 8);
    assert_int_equal(n, 4);
    assert_true(e[3].addr == GUEST_PCI_ECAM_START && e[3].size == GUEST_PCI_ECAM_SIZE &&
                e[3].type == 2);
    assert_true(e[0].addr == 0 && e[0].size == GUEST_LOW_RAM_END && e[0].type == 1);
    assert_true(e[1].addr == GUEST_LOW_RAM_END && e[1].type == 2);
    assert_true(e[1].addr + e[1].size == 0x100000);
    assert_true(e[2].addr == 0x100000 && e[2].addr + e[2].size == (256 << 20) && e[2].type == 1);
    /* The ACPI tables must sit in reserved memory. */
    assert_true(GUEST_ACPI_ADDR >= e[1].addr &&
                GUEST_ACPI_ADDR + GUEST_ACPI_SIZE <= e[1].addr + e[1].size);

    n = boot_e820_map(5ULL << 30, e, 8);
    assert_int_equal(n, 5);
    assert_true(e[2].addr + e[2].size == GUEST_MMIO_HOLE_START);
    assert_true(e[4].addr == GUEST_HIGH_RAM_START);
    assert_true(e[4].size == (5ULL << 30) - GUEST_MMIO_HOLE_START);
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++)
        if (e[i].type == 1)
            total += e[i].size;
    assert_true(total == (5ULL << 30) - (0x100000 - GUEST_LOW_RAM_END));

    assert_int_equal(boot_e820_map(256 << 20, e, 2), 2); /* never more than max */
}

static void fills_boot_params(void **state)
{
    size_t len;
    uint8_t *k = fake_bzimage(&len);
    k[0x24c] = 0xab; /* something inside the header: must be copied */
    k[0x250] = 0xcd; /* setup_data: the loader's, never the file's */
    struct boot_plan plan = { .kernel_file_size = len };
    char why[256];
    assert_int_equal(bzimage_parse(k, 0x1000, len, &plan.kernel, why, sizeof why), 0);
    plan.initrd_addr = 0x7000000;
    plan.initrd_size = 12345;
    struct boot_params *bp = malloc(sizeof *bp);
    memset(bp, 0x5a, sizeof *bp);
    boot_fill_params(bp, k, &plan, 256 << 20, GUEST_ACPI_ADDR);

    uint8_t *raw = (uint8_t *)bp;
    assert_int_equal(raw[0x24c], 0xab);
    assert_int_equal(bp->hdr.setup_data, 0);
    assert_int_equal(raw[0x26c], 0); /* past the header: zeroed */
    assert_memory_equal(raw + 0x202, "HdrS", 4);
    assert_int_equal(bp->hdr.type_of_loader, 0xff);
    assert_true(bp->hdr.loadflags & LOADED_HIGH);
    assert_true(bp->hdr.loadflags & CAN_USE_HEAP);
    assert_int_equal(bp->hdr.cmd_line_ptr, GUEST_CMDLINE_ADDR);
    assert_int_equal(bp->hdr.ramdisk_image, 0x7000000);
    assert_int_equal(bp->hdr.ramdisk_size, 12345);
    assert_int_equal(bp->hdr.code32_start, GUEST_KERNEL_ADDR);
    assert_int_equal(bp->e820_entries, 4);
    assert_true(bp->acpi_rsdp_addr == GUEST_ACPI_ADDR);
    assert_int_equal(raw[0x1e8], 4); /* e820_entries at its ABI offset */
    free(bp);
    free(k);
}

static void page_tables_identity_map_4g(void **state)
{
    uint8_t *low = calloc(1, 1 << 20);
    boot_write_page_tables(low);
    uint64_t *pml4 = (uint64_t *)(low + GUEST_PML4_ADDR);
    uint64_t *pdpt = (uint64_t *)(low + GUEST_PDPT_ADDR);
    assert_true((pml4[0] & ~0xfffULL) == GUEST_PDPT_ADDR && (pml4[0] & 3) == 3);
    for (int i = 1; i < 512; i++)
        assert_true(pml4[i] == 0);
    /* Walk a few addresses the way the CPU does. */
    uint64_t probes[] = { 0, GUEST_KERNEL_ADDR, 0x3fffffff, 0x40000000, 0xfee00000, 0xffffffff };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        uint64_t va = probes[i];
        uint64_t pdpte = pdpt[(va >> 30) & 511];
        assert_true(pdpte & 1);
        uint64_t *pd = (uint64_t *)(low + (pdpte & ~0xfffULL));
        uint64_t pde = pd[(va >> 21) & 511];
        assert_true((pde & 0x81) == 0x81); /* present, 2 MiB page */
        assert_true((pde & ~0x1fffffULL) + (va & 0x1fffff) == va);
    }
    assert_true(pdpt[4] == 0); /* nothing above 4 GiB */
    /* The tables fit below the command line. */
    assert_true(GUEST_PD_ADDR + 4 * 4096 <= GUEST_CMDLINE_ADDR);
    free(low);
}

static void entry_registers(void **state)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    memset(&sregs, 0, sizeof sregs);
    boot_cpu_registers(&regs, &sregs, 0x1000000);
    assert_true(regs.rip == 0x1000000);
    assert_true(regs.rsi == GUEST_BOOT_PARAMS_ADDR);
    assert_true(regs.rflags == 2);
    assert_int_equal(sregs.cs.selector, 0x10);
    assert_int_equal(sregs.cs.l, 1);
    assert_int_equal(sregs.cs.db, 0);
    assert_int_equal(sregs.ds.selector, 0x18);
    assert_int_equal(sregs.ss.selector, 0x18);
    assert_true(sregs.cr0 & 1 && sregs.cr0 & 0x80000000);
    assert_true(sregs.cr4 & 0x20);
    assert_true((sregs.efer & 0x500) == 0x500);
    assert_true(sregs.cr3 == GUEST_PML4_ADDR);

    uint8_t *low = calloc(1, 1 << 20);
    boot_write_gdt(low);
    uint64_t *gdt = (uint64_t *)(low + GUEST_GDT_ADDR);
    assert_true(sregs.gdt.base == GUEST_GDT_ADDR);
    /* The descriptors in memory agree with the cached segments. */
    assert_true((gdt[2] >> 53) & 1);           /* L bit of __BOOT_CS */
    assert_true((gdt[2] >> 47) & 1);           /* present */
    assert_int_equal((gdt[3] >> 40) & 0xf, 3); /* data, read/write, accessed */
    free(low);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_bzimage),
        cmocka_unit_test(rejects_what_is_not_a_bzimage),
        cmocka_unit_test(plans_initrd_below_limits),
        cmocka_unit_test(rejects_pref_address_that_wraps),
        cmocka_unit_test(loads_an_empty_initrd),
        cmocka_unit_test(plan_errors_name_the_problem),
        cmocka_unit_test(e820_maps),
        cmocka_unit_test(fills_boot_params),
        cmocka_unit_test(page_tables_identity_map_4g),
        cmocka_unit_test(entry_registers),
    };
    return cmocka_run_group_tests_name("boot", tests, NULL, NULL);
}
