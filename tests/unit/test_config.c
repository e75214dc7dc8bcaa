/* vmlet_config_validate: every field, with messages that name it; NICs
 * parsed once when added; vm.json's settings checked with the rest. */
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
    uint8_t k[5 * 512 + 4096] = { 0 };
    k[0x1f1] = 4;
    k[0x1fe] = 0x55;
    k[0x1ff] = 0xaa;
    k[0x201] = 0x6a;
    memcpy(k + 0x202, "HdrS", 4);
    k[0x206] = 0x0f;
    k[0x207] = 0x02;
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
    vmlet_error err = { 0 };
    assert_int_equal(vmlet_config_validate(c, &err), -1);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, needle))
        fail_msg("message '%s' does not mention '%s'", err.message, needle);
    assert_null(strchr(err.message, '\n')); /* one line */
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

/* Linux keeps 15 bytes of a thread's name: the prefix leaves room for
 * "255"; control characters would garble ps and /proc. */
static void vcpu_thread_name(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    assert_int_equal(vmlet_config_set_vcpu_thread_name(c, "fc_vcpu "), 0);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_vcpu_thread_name(c, "123456789012");
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_vcpu_thread_name(c, "1234567890123");
    expect_error(c, VMLET_ERR_INVALID, "vCPU thread name: give 1 to 12 printable");
    vmlet_config_set_vcpu_thread_name(c, "");
    expect_error(c, VMLET_ERR_INVALID, "vCPU thread name");
    vmlet_config_set_vcpu_thread_name(c, "cpu\n");
    expect_error(c, VMLET_ERR_INVALID, "vCPU thread name");
    vmlet_config_set_vcpu_thread_name(c, NULL); /* back to the default */
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
    vmlet_config_set_memory(c, 16ULL << 30); /* the fake host has 8 GiB */
    expect_error(c, VMLET_ERR_INVALID, "more than this host has");
    vmlet_config_set_memory(c, 20 << 20); /* kernel needs 16 + 16 MiB */
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
    vmlet_config_set_linux_boot(c, initrd_path, NULL, NULL); /* not a kernel */
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

/* A --net spec is parsed when it is added, into the struct net_spec the
 * devices use; validate only reports. */
static void nets_parsed_when_added(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    assert_int_equal(vmlet_config_add_net(c, "user,hostfwd=tcp::8080-:80"), 0);
    assert_int_equal(vmlet_config_add_net(c, "tap=tap0,mac=52:54:00:00:00:01"), 0);
    assert_int_equal(c->nnets, 2);
    assert_int_equal(c->nets[0].kind, NET_SPEC_USER);
    assert_int_equal(c->nets[0].nhostfwd, 1);
    assert_int_equal(c->nets[0].hostfwd[0].host_port, 8080);
    assert_int_equal(c->nets[0].hostfwd[0].host_addr, NET_HOSTFWD_DEFAULT_HOST);
    assert_int_equal(c->nets[1].kind, NET_SPEC_TAP);
    assert_string_equal(c->nets[1].tap_name, "tap0");
    assert_true(c->nets[1].has_mac);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_free(c);
}

/* A bad spec is not refused by add_net (vmlet.h: it returns -1 only when
 * out of memory) but by validate, with the first bad spec's message, word
 * for word what vmlet_check_net() says. */
static void bad_net_reported_by_validate(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error want, err;
    assert_int_equal(vmlet_check_net("user,hostfwd=tcp:1.2.3:80-:80", &want), -1);
    assert_int_equal(vmlet_config_add_net(c, "user"), 0);
    assert_int_equal(vmlet_config_add_net(c, "user,hostfwd=tcp:1.2.3:80-:80"), 0);
    assert_int_equal(vmlet_config_add_net(c, "tap"), 0);
    assert_int_equal(c->nnets, 3);
    assert_int_equal(vmlet_config_validate(c, &err), -1);
    assert_int_equal(err.code, VMLET_ERR_INVALID);
    assert_string_equal(err.message, want.message);
    assert_string_equal(err.message,
                        "net 'user,hostfwd=tcp:1.2.3:80-:80': hostfwd "
                        "'tcp:1.2.3:80-:80': host address '1.2.3' is not an IPv4 address");
    vmlet_config_free(c);

    c = good_config();
    assert_int_equal(vmlet_config_add_net(c, NULL), 0);
    expect_error(c, VMLET_ERR_INVALID, "net '': empty; give user[,hostfwd=...] or tap=NAME");
    vmlet_config_free(c);

    /* Too many is said first, bad ones counting towards it, as before. */
    c = good_config();
    vmlet_config_add_net(c, "tap");
    for (unsigned i = 0; i < VMLET_MAX_NICS; i++)
        vmlet_config_add_net(c, "user");
    expect_error(c, VMLET_ERR_INVALID, "net: more than 8 NICs; give at most 8");
    vmlet_config_free(c);

    /* Across NICs, as the flags are given. */
    c = good_config();
    vmlet_config_add_net(c, "user");
    vmlet_config_add_net(c, "user,mac=52:54:00:12:34:56");
    expect_error(c, VMLET_ERR_INVALID,
                 "net: NICs 1 and 2 both have MAC 52:54:00:12:34:56; "
                 "give one of them another mac=");
    vmlet_config_free(c);
}

/* A rule with two '-' is refused naming that, not the guest side. */
static void hostfwd_two_dashes(void **state)
{
    vmlet_error err;
    assert_int_equal(vmlet_check_net("user,hostfwd=tcp::80-:80-:90", &err), -1);
    assert_string_equal(err.message, "net 'user,hostfwd=tcp::80-:80-:90': hostfwd "
                                     "'tcp::80-:80-:90': more than one '-' (expected "
                                     "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)");
}

static void shutdown_timeout(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    assert_int_equal(vmlet_config_get_shutdown_timeout(c), VMLET_DEFAULT_SHUTDOWN_TIMEOUT);
    assert_int_equal(vmlet_config_set_shutdown_timeout(c, 0), 0);
    assert_int_equal(vmlet_config_get_shutdown_timeout(c), 0);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_shutdown_timeout(c, VMLET_MAX_SHUTDOWN_TIMEOUT);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_shutdown_timeout(c, VMLET_MAX_SHUTDOWN_TIMEOUT + 1);
    expect_error(c, VMLET_ERR_INVALID,
                 "shutdown_timeout: 86401 is out of range; give 0 to "
                 "86400");
    vmlet_config_free(c);
}

/* --balloon's one parser, and the setter's bounds. */
static void balloon(void **state)
{
    (void)state;
    unsigned flags, secs;
    vmlet_error err;
    assert_int_equal(vmlet_parse_balloon(NULL, &flags, &secs, &err), 0);
    assert_int_equal(flags, 0);
    assert_int_equal(vmlet_parse_balloon("", &flags, &secs, &err), 0);
    assert_int_equal(
        vmlet_parse_balloon("deflate-on-oom,free-page-reporting,stats=5", &flags, &secs, &err), 0);
    assert_int_equal(flags, VMLET_BALLOON_DEFLATE_ON_OOM | VMLET_BALLOON_FREE_PAGE_REPORTING);
    assert_int_equal(secs, 5);
    assert_int_equal(vmlet_parse_balloon("stats=3600", &flags, &secs, &err), 0);
    assert_int_equal(flags, 0);
    assert_int_equal(secs, 3600);
    const char *bad[] = { "stats=",   "stats=3601",
                          "stats=5x", "stats=99999999999999999999",
                          "deflate",  "free-page-reporting,",
                          ",stats=1", "stats=-1" };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(vmlet_parse_balloon(bad[i], &flags, &secs, &err), -1);
        assert_int_equal(err.code, VMLET_ERR_INVALID);
        assert_non_null(strstr(err.message, "--balloon '"));
    }
    assert_int_equal(vmlet_parse_balloon("bogus", &flags, &secs, &err), -1);
    assert_string_equal(err.message, "--balloon 'bogus': unknown option 'bogus'; known are "
                                     "deflate-on-oom, free-page-reporting and stats=SECONDS");

    vmlet_config *c = good_config();
    vmlet_config_set_balloon(c, 1, VMLET_BALLOON_FREE_PAGE_REPORTING, 10);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_balloon(c, 1, 0, VMLET_BALLOON_MAX_STATS_INTERVAL + 1);
    expect_error(c, VMLET_ERR_INVALID,
                 "balloon: a statistics interval of 3601 seconds is out of range; give 0 "
                 "(none) to 3600");
    vmlet_config_set_balloon(c, 1, 1u << 7, 0);
    expect_error(c, VMLET_ERR_INVALID, "balloon: unknown flags 0x80");
    vmlet_config_set_balloon(c, 0, 1u << 7, 0); /* no device: nothing to check */
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_free(c);
}

/* The guest CID: 3 to 0xFFFFFFFE (0, 1, 2 and -1 are reserved); the
 * socket path fits sun_path with "_<port>" added. */
static void vsock(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    assert_int_equal(vmlet_config_set_vsock(c, 3, "/run/vm1/vsock.sock"), 0);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_vsock(c, 0xFFFFFFFEu, "v.sock");
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    const uint64_t bad[] = { 0, 1, 2, 0xFFFFFFFFu, 1ull << 32 };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vmlet_config_set_vsock(c, bad[i], "v.sock");
        assert_int_equal(vmlet_config_validate(c, &err), -1);
        assert_int_equal(err.code, VMLET_ERR_INVALID);
        assert_non_null(strstr(err.message, "vsock: guest CID"));
    }
    vmlet_config_set_vsock(c, 3, "");
    expect_error(c, VMLET_ERR_INVALID, "vsock: no Unix socket path given (uds=)");
    char path[VMLET_VSOCK_MAX_PATH + 2];
    memset(path, 'a', sizeof path - 1);
    path[sizeof path - 1] = 0;
    vmlet_config_set_vsock(c, 3, path);
    assert_int_equal(vmlet_config_validate(c, &err), -1);
    assert_non_null(strstr(err.message, "is longer than 96 bytes"));
    path[VMLET_VSOCK_MAX_PATH] = 0;
    vmlet_config_set_vsock(c, 3, path);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_set_vsock(c, 0, NULL); /* no device: nothing to check */
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_free(c);
}

/* Shares: a directory this user may use, a tag of 1 to 36 bytes that no
 * other share has, at most 16. */
static void shares(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    assert_int_equal(vmlet_config_add_share(c, "/tmp", "tmp", 0), 0);
    assert_int_equal(vmlet_config_add_share(c, "/", "root", VMLET_SHARE_READONLY), 0);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    assert_true(c->shares[1].read_only);
    assert_false(c->shares[0].read_only);
    vmlet_config_add_share(c, "/usr", "tmp", 0);
    expect_error(c, VMLET_ERR_INVALID,
                 "share '/usr': the tag 'tmp' is already the tag of '/tmp'; give each share its "
                 "own");
    vmlet_config_free(c);

    c = good_config();
    vmlet_config_add_share(c, "/tmp", "", 0);
    expect_error(c, VMLET_ERR_INVALID,
                 "share '/tmp': the tag '' must be 1 to 36 bytes (the guest mounts it by this "
                 "name)");
    vmlet_config_free(c);
    c = good_config();
    vmlet_config_add_share(c, "/tmp", "0123456789012345678901234567890123456", 0);
    assert_int_equal(vmlet_config_validate(c, &err), -1);
    assert_non_null(strstr(err.message, "must be 1 to 36 bytes"));
    vmlet_config_free(c);
    c = good_config();
    vmlet_config_add_share(c, "/no/such/dir", "x", 0);
    expect_error(c, VMLET_ERR_FILE,
                 "share '/no/such/dir': No such file or directory; check the path");
    vmlet_config_free(c);
    c = good_config();
    vmlet_config_add_share(c, "/etc/hostname", "x", 0);
    expect_error(c, VMLET_ERR_FILE, "share '/etc/hostname' is not a directory");
    vmlet_config_free(c);

    c = good_config();
    char tag[8];
    for (unsigned i = 0; i <= VMLET_MAX_SHARES; i++) {
        snprintf(tag, sizeof tag, "t%u", i);
        assert_int_equal(vmlet_config_add_share(c, "/tmp", tag, 0), 0);
    }
    expect_error(c, VMLET_ERR_INVALID, "shares: more than 16; give at most 16");
    vmlet_config_free(c);
}

/* What a caller needs to replace one of kernel, initrd and cmdline. */
/* A disk image of 0 bytes is a placeholder (a disk of 0 sectors that
 * vmlet_vm_set_disk_path fills later, Kata's drive pool); any other size
 * must be whole sectors. */
static void disk_sizes(void **state)
{
    char path[64];
    strcpy(path, "/tmp/vmlet-disk-XXXXXX");
    int fd = mkstemp(path);
    close(fd);
    vmlet_config *c = good_config();
    vmlet_config_add_disk(c, path, 0, NULL);
    vmlet_error err;
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    assert_int_equal(truncate(path, 1000), 0);
    expect_error(c, VMLET_ERR_FILE, "(1000 bytes) is not a multiple of 512");
    assert_int_equal(truncate(path, 1024), 0);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_free(c);
    unlink(path);
}

static void getters(void **state)
{
    vmlet_config *c = vmlet_config_new();
    assert_null(vmlet_config_get_kernel(c));
    assert_null(vmlet_config_get_initrd(c));
    assert_null(vmlet_config_get_cmdline(c));
    assert_int_equal(vmlet_config_get_console(c), VMLET_CONSOLE_SERIAL);
    vmlet_config_set_linux_boot(c, "k", "i", "c");
    /* The config's own strings passed back in. */
    vmlet_config_set_linux_boot(c, "k2", vmlet_config_get_initrd(c), vmlet_config_get_cmdline(c));
    assert_string_equal(vmlet_config_get_kernel(c), "k2");
    assert_string_equal(vmlet_config_get_initrd(c), "i");
    assert_string_equal(vmlet_config_get_cmdline(c), "c");
    vmlet_config_set_console(c, VMLET_CONSOLE_VIRTIO, -1, -1);
    assert_int_equal(vmlet_config_get_console(c), VMLET_CONSOLE_VIRTIO);
    vmlet_config_free(c);
}

/* vm.json's NICs and the ones added after it are one list: validate sees
 * a clash between them, as the CLI's --config and --net. */
static void json_and_add_net_together(void **state)
{
    vmlet_config *c = good_config();
    vmlet_error err;
    static const char json[] = "{\"network\": [{\"type\": \"user\", \"hostfwd\": "
                               "[\"tcp::8080-:80\"]}], \"shutdown_timeout\": 30}";
    assert_int_equal(vmlet_config_from_json(c, json, strlen(json), &err), 0);
    assert_int_equal(vmlet_config_get_shutdown_timeout(c), 30);
    assert_int_equal(vmlet_config_validate(c, &err), 0);
    vmlet_config_add_net(c, "user,hostfwd=tcp::8080-:22");
    expect_error(c, VMLET_ERR_INVALID,
                 "net: hostfwd 'tcp::8080-:80' (NIC 1) and "
                 "'tcp::8080-:22' (NIC 2) forward the same tcp port 8080");
    vmlet_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_validate),
        cmocka_unit_test(cpus_range),
        cmocka_unit_test(memory_range),
        cmocka_unit_test(vcpu_thread_name),
        cmocka_unit_test(files),
        cmocka_unit_test(setters_copy_strings),
        cmocka_unit_test(nets_parsed_when_added),
        cmocka_unit_test(bad_net_reported_by_validate),
        cmocka_unit_test(hostfwd_two_dashes),
        cmocka_unit_test(shutdown_timeout),
        cmocka_unit_test(vsock),
        cmocka_unit_test(balloon),
        cmocka_unit_test(shares),
        cmocka_unit_test(getters),
        cmocka_unit_test(disk_sizes),
        cmocka_unit_test(json_and_add_net_together),
    };
    return cmocka_run_group_tests_name("config", tests, make_files, remove_files);
}
