/* vmlet_config_validate: every field, with messages that name it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "config.h"

static char kernel_path[64], initrd_path[64];

/* The host these tests pretend to run on has 8 GiB (in place of
 * src/host_memory.c). */
uint64_t host_memory_bytes(void)
{
    return 8ULL << 30;
}

/* A tiny but well-formed bzImage header. */
static int make_files(void **state)
{
    uint8_t k[5 * 512 + 4096] = {0};
    k[0x1f1] = 4;
    k[0x1fe] = 0x55; k[0x1ff] = 0xaa;
    k[0x201] = 0x6a;
    memcpy(k + 0x202, "HdrS", 4);
    k[0x206] = 0x0f; k[0x207] = 0x02;
    *(uint32_t *)(k + 0x22c) = 0x7fffffff;
    *(uint16_t *)(k + 0x236) = 0x7f;
    *(uint32_t *)(k + 0x238) = 2047;
    *(uint64_t *)(k + 0x258) = 0x1000000;
    *(uint32_t *)(k + 0x260) = 16 << 20;
    strcpy(kernel_path, "/tmp/vmlet-kernel-XXXXXX");
    strcpy(initrd_path, "/tmp/vmlet-initrd-XXXXXX");
    int fd = mkstemp(kernel_path);
    assert_int_equal(write(fd, k, sizeof k), (ssize_t)sizeof k);
    close(fd);
    fd = mkstemp(initrd_path);
    assert_int_equal(write(fd, "070701", 6), 6);
    close(fd);
    return 0;
}

static int remove_files(void **state)
{
    unlink(kernel_path);
    unlink(initrd_path);
    return 0;
}

static vmlet_config *good_config(void)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_config_set_linux_boot(c, kernel_path, initrd_path, "console=ttyS0");
    return c;
}

static void expect_error(vmlet_config *c, vmlet_error_code code, const char *needle)
{
    vmlet_error err = {0};
    assert_int_equal(vmlet_config_validate(c, &err), -1);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle))
        fail_msg("message '%s' does not mention '%s'", err.message, needle);
    assert_null(strchr(err.message, '\n'));   /* one line */
}

static void defaults_validate(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    assert_int_equal(c->cpus, VMLET_DEFAULT_CPUS);
    assert_true(c->memory == VMLET_DEFAULT_MEMORY);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_free(c);
}

static void cpus_range(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    vmlet_config_set_cpus(c, 0);
    expect_error(c, VMLET_ERR_INVALID, "cpus: 0");
    vmlet_config_set_cpus(c, 256);
    expect_error(c, VMLET_ERR_INVALID, "cpus: 256");
    vmlet_config_set_cpus(c, 255);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_free(c);
}

static void memory_range(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    vmlet_config_set_memory(c, 15 << 20);
    expect_error(c, VMLET_ERR_INVALID, "memory");
    vmlet_config_set_memory(c, (256 << 20) + 1);
    expect_error(c, VMLET_ERR_INVALID, "4 KiB");
    vmlet_config_set_memory(c, 2ULL << 40);
    expect_error(c, VMLET_ERR_INVALID, "out of range");
    vmlet_config_set_memory(c, 16ULL << 30);   /* the fake host has 8 GiB */
    expect_error(c, VMLET_ERR_INVALID, "more than this host has");
    vmlet_config_set_memory(c, 20 << 20);      /* kernel needs 16 + 16 MiB */
    expect_error(c, VMLET_ERR_INVALID, "too small");
    vmlet_config_set_memory(c, 4ULL << 30);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_free(c);
}

static void files(void **state)
{
    vmlet_config *c = vmlet_config_new();
    expect_error(c, VMLET_ERR_INVALID, "kernel: no kernel given");
    vmlet_config_set_linux_boot(c, "/nonexistent/bzImage", NULL, NULL);
    expect_error(c, VMLET_ERR_FILE, "/nonexistent/bzImage");
    vmlet_config_set_linux_boot(c, "/tmp", NULL, NULL);
    expect_error(c, VMLET_ERR_FILE, "directory");
    vmlet_config_set_linux_boot(c, initrd_path, NULL, NULL);   /* not a kernel */
    expect_error(c, VMLET_ERR_FILE, "not a bzImage");
    vmlet_config_set_linux_boot(c, kernel_path, "/nonexistent/initrd", NULL);
    expect_error(c, VMLET_ERR_FILE, "/nonexistent/initrd");
    vmlet_config_free(c);
}

static void setters_copy_strings(void **state)
{
    vmlet_config *c = vmlet_config_new();
    char buf[64];
    strcpy(buf, kernel_path);
    vmlet_config_set_linux_boot(c, buf, NULL, NULL);
    buf[0] = 'X';
    vmlet_error err;
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_kvm_device(c, "/dev/null");
    assert_string_equal(c->kvm_device, "/dev/null");
    vmlet_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_validate),
        cmocka_unit_test(cpus_range),
        cmocka_unit_test(memory_range),
        cmocka_unit_test(files),
        cmocka_unit_test(setters_copy_strings),
    };
    return cmocka_run_group_tests_name("config", tests, make_files, remove_files);
}
