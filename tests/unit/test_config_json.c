/* vm.json: every key good and bad, every error with its exact message, the
 * example file, flags on top of a file, and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "config.h"

/* ---- helpers ---------------------------------------------------------- */

static int load_len(vmlet_config *c, const char *json, size_t len, vmlet_error *err)
{
    /* An exact-size copy, so reading past len is caught by ASan builds and
     * nothing relies on a NUL after the text. */
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, json, len);
    int rc = vmlet_config_from_json(c, copy, len, err);
    free(copy);
    return rc;
}

static int load(vmlet_config *c, const char *json, vmlet_error *err)
{
    return load_len(c, json, strlen(json), err);
}

/* A fresh config must come out of a failed load exactly as it went in. */
static void assert_untouched(const vmlet_config *c)
{
    assert_int_equal(c->cpus, VMLET_DEFAULT_CPUS);
    assert_true(c->memory == VMLET_DEFAULT_MEMORY);
    assert_null(c->kernel);
    assert_null(c->initrd);
    assert_null(c->cmdline);
    assert_null(c->kvm_device);
    assert_int_equal(c->console, VMLET_CONSOLE_SERIAL);
    assert_int_equal(c->ndisks, 0);
    assert_false(c->entropy);
    assert_int_equal(c->shutdown_timeout, VMLET_DEFAULT_SHUTDOWN_TIMEOUT);
    assert_int_equal(c->nnets, 0);
}

static void expect_error_len(const char *json, size_t len, vmlet_error_code code, const char *want)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err = { 0 };
    if (load_len(c, json, len, &err) != -1)
        fail_msg("accepted: %.200s", json);
    if (strcmp(err.message, want))
        fail_msg("for %.200s\n  got: %s\n want: %s", json, err.message, want);
    assert_int_equal(err.code, code);
    assert_null(strchr(err.message, '\n'));
    assert_untouched(c);
    vmlet_config_free(c);
}

static void expect_error(const char *json, vmlet_error_code code, const char *want)
{
    expect_error_len(json, strlen(json), code, want);
}

/* Schema errors are VMLET_ERR_INVALID, text that is not JSON VMLET_ERR_FILE. */
#define BAD(json, msg)    expect_error(json, VMLET_ERR_INVALID, msg)
#define SYNTAX(json, msg) expect_error(json, VMLET_ERR_FILE, msg)

static vmlet_config *load_ok(const char *json)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err = { 0 };
    if (load(c, json, &err) != 0)
        fail_msg("rejected %.200s: %s", json, err.message);
    return c;
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* A file of the source tree. meson compiles from the build root, so a
 * relative __FILE__ is relative to where the tests run; VMLET_SOURCE_ROOT
 * overrides. */
static const char *source_path(char *buf, size_t size, const char *rel)
{
    const char *root = getenv("VMLET_SOURCE_ROOT");
    if (root) {
        snprintf(buf, size, "%s/%s", root, rel);
    } else {
        snprintf(buf, size, "%s", __FILE__);
        char *at = strstr(buf, "tests/unit/test_config_json.c");
        assert_non_null(at);
        snprintf(at, size - (at - buf), "%s", rel);
    }
    return buf;
}

static const char *example_path(void)
{
    static char path[4096];
    return source_path(path, sizeof path, "examples/vm.json");
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: cannot open", path);
    static char buf[256 << 10];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static char tmp_path[64];

static const char *write_tmp(const void *data, size_t len)
{
    strcpy(tmp_path, "/tmp/vmlet-json-XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return tmp_path;
}

/* ---- the example and every key, good ---------------------------------- */

static void example_file(void **state)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err = { 0 };
    if (vmlet_config_load_json(c, example_path(), &err) != 0)
        fail_msg("%s", err.message);
    assert_string_equal(c->kernel, "/var/lib/vmlet/bzImage");
    assert_string_equal(c->initrd, "/var/lib/vmlet/initrd.img");
    assert_string_equal(c->cmdline, "console=ttyS0 root=/dev/vda rw");
    assert_int_equal(c->cpus, 2);
    assert_true(c->memory == 512ULL << 20);
    assert_int_equal(c->console, VMLET_CONSOLE_SERIAL);
    assert_true(c->entropy);
    assert_int_equal(c->ndisks, 2);
    assert_string_equal(c->disks[0].path, "/var/lib/vmlet/root.img");
    assert_string_equal(c->disks[0].serial, "root");
    assert_false(c->disks[0].read_only);
    assert_string_equal(c->disks[1].path, "/var/lib/vmlet/data.img");
    assert_string_equal(c->disks[1].serial, "data-01");
    assert_true(c->disks[1].read_only);
    assert_string_equal(c->kvm_device, "/dev/kvm");
    assert_int_equal(c->shutdown_timeout, 30);
    assert_int_equal(c->nnets, 2);

    const struct net_spec *u = &c->nets[0], *t = &c->nets[1];
    assert_int_equal(u->kind, NET_SPEC_USER);
    assert_int_equal(u->nhostfwd, 2);
    assert_string_equal(u->hostfwd[0].text, "tcp:127.0.0.1:8080-:80");
    assert_false(u->hostfwd[0].udp);
    assert_int_equal(u->hostfwd[0].host_addr, 0x7f000001);
    assert_int_equal(u->hostfwd[0].host_port, 8080);
    assert_int_equal(u->hostfwd[0].guest_addr, 0x0a00020f); /* the default */
    assert_int_equal(u->hostfwd[0].guest_port, 80);
    assert_string_equal(u->hostfwd[1].text, "udp::5353-:53");
    assert_true(u->hostfwd[1].udp);
    assert_int_equal(u->hostfwd[1].host_addr, 0x7f000001); /* the default */
    assert_int_equal(u->hostfwd[1].host_port, 5353);
    assert_int_equal(u->hostfwd[1].guest_port, 53);
    assert_false(u->has_mac);
    assert_int_equal(t->kind, NET_SPEC_TAP);
    assert_string_equal(t->tap_name, "tap0");
    assert_true(t->has_mac);
    assert_memory_equal(t->mac, "\x52\x54\x00\xab\xcd\x01", 6);
    vmlet_config_free(c);
}

/* docs/config.md shows examples/vm.json as its first JSON block. */
static void example_in_docs(void **state)
{
    char path[4096];
    size_t len, doc_len;
    char *example = strdup(read_all(example_path(), &len));
    const char *doc = read_all(source_path(path, sizeof path, "docs/config.md"), &doc_len);
    const char *start = strstr(doc, "```json\n");
    assert_non_null(start);
    start += 8;
    const char *end = strstr(start, "```");
    assert_non_null(end);
    if ((size_t)(end - start) != len || memcmp(start, example, len))
        fail_msg("the example in docs/config.md differs from examples/vm.json");
    free(example);
}

static void empty_object_changes_nothing(void **state)
{
    vmlet_config *c = load_ok(" \t\r\n{ }\n");
    assert_untouched(c);
    vmlet_config_free(c);
}

static void cpus_good(void **state)
{
    struct {
        const char *json;
        unsigned want;
    } cases[] = {
        { "{\"cpus\": 1}", 1 },      { "{\"cpus\": 255}", 255 }, { "{\"cpus\": 2.0}", 2 },
        { "{\"cpus\": 4e0}", 4 },    { "{\"cpus\": 1E1}", 10 },  { "{\"cpus\": 0.8e1}", 8 },
        { "{\"cpus\": 100e-2}", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vmlet_config *c = load_ok(cases[i].json);
        assert_int_equal(c->cpus, cases[i].want);
        vmlet_config_free(c);
    }
}

static void cpus_bad(void **state)
{
    BAD("{\"cpus\": \"2\"}", "cpus: expected a whole number, got a string");
    BAD("{\"cpus\": true}", "cpus: expected a whole number, got true");
    BAD("{\"cpus\": null}", "cpus: expected a whole number, got null");
    BAD("{\"cpus\": [2]}", "cpus: expected a whole number, got an array");
    BAD("{\"cpus\": {}}", "cpus: expected a whole number, got an object");
    BAD("{\"cpus\": 0}", "cpus: 0 is out of range; give 1 to 255");
    BAD("{\"cpus\": 256}", "cpus: 256 is out of range; give 1 to 255");
    BAD("{\"cpus\": -1}", "cpus: -1 is negative; give 1 to 255");
    BAD("{\"cpus\": -0.5}", "cpus: -0.5 is negative; give 1 to 255");
    BAD("{\"cpus\": 1.5}", "cpus: 1.5 is not a whole number");
    BAD("{\"cpus\": 4294967297}", "cpus: 4294967297 is out of range; give 1 to 255");
    BAD("{\"cpus\": 1e400}", "cpus: the number is too large to represent");
    BAD("{\"cpus\": -1e400}", "cpus: the number is too negative to represent");
    BAD("{\"cpus\": 1e-400}", "cpus: 0 is out of range; give 1 to 255");
    BAD("{\"cpus\": 9007199254740994}", "cpus: 9007199254740994 is too large (above 2^53, "
                                        "where JSON numbers stop being exact)");
}

static void memory_good(void **state)
{
    struct {
        const char *json;
        uint64_t want;
    } cases[] = {
        { "{\"memory\": \"512M\"}", 512ULL << 20 },
        { "{\"memory\": \"2G\"}", 2ULL << 30 },
        { "{\"memory\": \"1GiB\"}", 1ULL << 30 },
        { "{\"memory\": \"1t\"}", 1ULL << 40 },
        { "{\"memory\": 1073741824}", 1ULL << 30 },
        { "{\"memory\": 16777216}", 16ULL << 20 },
        { "{\"memory\": 0}", 0 }, /* validate says what is wrong with it */
        { "{\"memory\": 9007199254740992}", 1ULL << 53 },
        { "{\"memory\": 5e8}", 500000000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vmlet_config *c = load_ok(cases[i].json);
        assert_true(c->memory == cases[i].want);
        vmlet_config_free(c);
    }
}

static void memory_bad(void **state)
{
    BAD("{\"memory\": \"512X\"}", "memory: \"512X\" is not a size; give bytes or a number "
                                  "with K, M, G or T, e.g. \"512M\"");
    BAD("{\"memory\": \"\"}", "memory: \"\" is not a size; give bytes or a number with K, "
                              "M, G or T, e.g. \"512M\"");
    BAD("{\"memory\": \" 512M\"}", "memory: \" 512M\" is not a size; give bytes or a "
                                   "number with K, M, G or T, e.g. \"512M\"");
    BAD("{\"memory\": \"99999999999999999999G\"}",
        "memory: \"99999999999999999999G\" is "
        "not a size; give bytes or a number with K, M, G or T, e.g. \"512M\"");
    BAD("{\"memory\": true}", "memory: expected a size (a string such as \"512M\" or a "
                              "whole number of bytes), got true");
    BAD("{\"memory\": [512]}", "memory: expected a size (a string such as \"512M\" or a "
                               "whole number of bytes), got an array");
    BAD("{\"memory\": 512}", "memory: 512 bytes is less than the 16 MiB minimum; a number "
                             "means bytes: write \"512M\" for MiB");
    BAD("{\"memory\": 1}", "memory: 1 byte is less than the 16 MiB minimum; a number "
                           "means bytes: write \"1M\" for MiB");
    BAD("{\"memory\": -536870912}", "memory: a size cannot be negative; give bytes or a "
                                    "string such as \"512M\"");
    BAD("{\"memory\": -1e400}", "memory: a size cannot be negative; give bytes or a "
                                "string such as \"512M\"");
    BAD("{\"memory\": 536870912.5}", "memory: 536870912.5 is not a whole number");
    BAD("{\"memory\": 1e20}", "memory: 1e+20 is too large (above 2^53, where JSON numbers "
                              "stop being exact)");
    BAD("{\"memory\": 1e400}", "memory: the number is too large to represent");
    /* A long value is cut in the message so it stays readable. */
    BAD("{\"memory\": \"1234567890123456789012345678901234567890123456789\"}",
        "memory: \"1234567890123456789012345678901234567890...\" is not a size; give bytes "
        "or a number with K, M, G or T, e.g. \"512M\"");
    BAD("{\"memory\": \"5\\n12M\"}", "memory: \"5\\x0a12M\" is not a size; give bytes or "
                                     "a number with K, M, G or T, e.g. \"512M\"");
}

static void boot_strings(void **state)
{
    vmlet_config *c = load_ok("{\"kernel\": \"bz\", \"initrd\": \"rd\", "
                              "\"cmdline\": \"console=ttyS0 \\\"quoted\\\" \\u00e9\"}");
    assert_string_equal(c->kernel, "bz");
    assert_string_equal(c->initrd, "rd");
    assert_string_equal(c->cmdline, "console=ttyS0 \"quoted\" \xc3\xa9");
    vmlet_config_free(c);

    /* Each key replaces only its own field. */
    c = vmlet_config_new();
    vmlet_error err;
    vmlet_config_set_linux_boot(c, "k0", "i0", "c0");
    assert_int_equal(load(c, "{\"initrd\": \"i1\"}", &err), 0);
    assert_string_equal(c->kernel, "k0");
    assert_string_equal(c->initrd, "i1");
    assert_string_equal(c->cmdline, "c0");
    assert_int_equal(load(c, "{\"cmdline\": \"\"}", &err), 0);
    assert_string_equal(c->cmdline, "");
    assert_string_equal(c->kernel, "k0");
    assert_int_equal(load(c, "{\"kernel\": \"k2\"}", &err), 0);
    assert_string_equal(c->kernel, "k2");
    assert_string_equal(c->initrd, "i1");
    vmlet_config_free(c);

    BAD("{\"kernel\": 1}", "kernel: expected a string (the path of an x86-64 bzImage), "
                           "got a number");
    BAD("{\"kernel\": \"\"}", "kernel: empty; give the path of an x86-64 bzImage");
    BAD("{\"initrd\": false}", "initrd: expected a string (the path of an initial ramdisk, "
                               "or leave the key out), got false");
    BAD("{\"initrd\": \"\"}", "initrd: empty; give the path of an initial ramdisk, or "
                              "leave the key out");
    BAD("{\"cmdline\": [\"a\"]}", "cmdline: expected a string (the kernel command line), "
                                  "got an array");
    BAD("{\"kvm_device\": null}", "kvm_device: expected a string (the path of the KVM "
                                  "device), got null");
    BAD("{\"kvm_device\": \"\"}", "kvm_device: empty; give the path of the KVM device");

    char *long_path = repeat("{\"kernel\": \"", "a", 4096, "\"}");
    BAD(long_path, "kernel: 4096 bytes is too long; at most 4095");
    free(long_path);
    long_path = repeat("{\"kvm_device\": \"", "a", 4095, "\"}");
    c = load_ok(long_path);
    assert_int_equal(strlen(c->kvm_device), 4095);
    vmlet_config_free(c);
    free(long_path);
}

static void console_and_rng(void **state)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err;
    vmlet_config_set_console(c, VMLET_CONSOLE_SERIAL, 5, 6);
    assert_int_equal(load(c, "{\"console\": \"virtio\", \"rng\": true}", &err), 0);
    assert_int_equal(c->console, VMLET_CONSOLE_VIRTIO);
    assert_int_equal(c->console_in, 5); /* the caller's descriptors stay */
    assert_int_equal(c->console_out, 6);
    assert_true(c->entropy);
    assert_int_equal(load(c, "{\"console\": \"serial\", \"rng\": false}", &err), 0);
    assert_int_equal(c->console, VMLET_CONSOLE_SERIAL);
    assert_false(c->entropy);
    vmlet_config_free(c);

    BAD("{\"console\": \"hvc0\"}", "console: \"hvc0\" is not a console; give \"serial\" "
                                   "or \"virtio\"");
    /* Values in messages: quotes and backslashes escaped, control bytes as
     * \xHH, cut at a character boundary. */
    BAD("{\"console\": \"a\\\"b\\\\c\"}", "console: \"a\\\"b\\\\c\" is not a console; "
                                          "give \"serial\" or \"virtio\"");
    char *accents = repeat("{\"console\": \"a", "\xc3\xa9", 30, "\"}");
    char *want = repeat("console: \"a", "\xc3\xa9", 19,
                        "...\" is not a console; give "
                        "\"serial\" or \"virtio\"");
    BAD(accents, want);
    free(accents);
    free(want);
    accents = repeat("{\"console\": \"\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001"
                     "\\u0001\\u0001\\u0001",
                     "\xc3\xa9", 30, "\"}");
    want = repeat("console: \"\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01", "\xc3\xa9", 6,
                  "...\" is not a console; give \"serial\" or \"virtio\"");
    BAD(accents, want);
    free(accents);
    free(want);
    BAD("{\"console\": \"Serial\"}", "console: \"Serial\" is not a console; give \"serial\" "
                                     "or \"virtio\"");
    BAD("{\"console\": 0}", "console: expected a string (\"serial\" or \"virtio\"), got "
                            "a number");
    BAD("{\"rng\": 1}", "rng: expected true or false, got a number");
    BAD("{\"rng\": \"true\"}", "rng: expected true or false, got a string");
    BAD("{\"rng\": null}", "rng: expected true or false, got null");
}

static void disks_good(void **state)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err;
    vmlet_config_add_disk(c, "first.img", 0, NULL);
    assert_int_equal(load(c,
                          "{\"disks\": [{\"path\": \"a.img\"}, {\"serial\": \"S1\", "
                          "\"read_only\": true, \"path\": \"/dev/sdb\"}, "
                          "{\"path\": \"c.img\", \"read_only\": false}]}",
                          &err),
                     0);
    assert_int_equal(c->ndisks, 4); /* appended */
    assert_string_equal(c->disks[0].path, "first.img");
    assert_string_equal(c->disks[1].path, "a.img");
    assert_null(c->disks[1].serial);
    assert_false(c->disks[1].read_only);
    assert_string_equal(c->disks[2].path, "/dev/sdb");
    assert_string_equal(c->disks[2].serial, "S1");
    assert_true(c->disks[2].read_only);
    assert_false(c->disks[3].read_only);
    vmlet_config_free(c);

    c = load_ok("{\"disks\": []}");
    assert_int_equal(c->ndisks, 0);
    vmlet_config_free(c);

    char *sixteen = repeat("{\"disks\": [", "{\"path\": \"d\"},", 15, "{\"path\": \"d\"}]}");
    c = load_ok(sixteen);
    assert_int_equal(c->ndisks, 16);
    vmlet_config_free(c);
    free(sixteen);
}

/* Firecracker's names; both are needed. */
static void vsock(void **state)
{
    vmlet_config *c = load_ok("{\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/run/v.sock\"}}");
    assert_int_equal(c->vsock_cid, 3);
    assert_string_equal(c->vsock_uds, "/run/v.sock");
    vmlet_config_free(c);
    BAD("{\"vsock\": 3}", "vsock: expected an object such as {\"guest_cid\": 3, \"uds_path\": "
                          "\"/run/vm1/vsock.sock\"}, got a number");
    BAD("{\"vsock\": {\"uds_path\": \"v\"}}",
        "vsock: no \"guest_cid\"; give the guest's address, 3 or more");
    BAD("{\"vsock\": {\"guest_cid\": 3}}",
        "vsock: no \"uds_path\"; give the host's Unix socket path");
    BAD("{\"vsock\": {\"guest_cid\": 2, \"uds_path\": \"v\"}}",
        "vsock.guest_cid: 2 is out of range; give 3 to 4294967294");
    BAD("{\"vsock\": {\"guest_cid\": 3, \"uds_path\": \"\"}}",
        "vsock.uds_path: empty; give the path of the Unix socket to create");
}

/* Firecracker's names; every key may be left out. */
static void balloon(void **state)
{
    vmlet_config *c = load_ok("{\"balloon\": {\"deflate_on_oom\": true, \"free_page_reporting\": "
                              "true, \"stats_polling_interval_s\": 7}}");
    assert_true(c->balloon);
    assert_int_equal(c->balloon_flags,
                     VMLET_BALLOON_DEFLATE_ON_OOM | VMLET_BALLOON_FREE_PAGE_REPORTING);
    assert_int_equal(c->balloon_stats_s, 7);
    vmlet_config_free(c);
    c = load_ok("{\"balloon\": {}}");
    assert_true(c->balloon);
    assert_int_equal(c->balloon_flags, 0);
    assert_int_equal(c->balloon_stats_s, 0);
    vmlet_config_free(c);
    BAD("{\"balloon\": true}", "balloon: expected an object such as {\"free_page_reporting\": "
                               "true, \"stats_polling_interval_s\": 5}, got true");
    BAD("{\"balloon\": {\"stats_polling_interval_s\": 3601}}",
        "balloon.stats_polling_interval_s: 3601 is out of range; give 0 to 3600");
    BAD("{\"balloon\": {\"deflate_on_oom\": 1}}",
        "balloon.deflate_on_oom: expected true or false, got a number");
}

static void shares(void **state)
{
    vmlet_config *c = load_ok("{\"shares\": [{\"path\": \"/tmp\", \"tag\": \"t\"}, "
                              "{\"path\": \"/\", \"tag\": \"r\", \"read_only\": true, "
                              "\"cache\": \"always\"}, "
                              "{\"path\": \"/\", \"tag\": \"s\", \"cache\": \"auto\"}]}");
    assert_int_equal(c->nshares, 3);
    assert_string_equal(c->shares[0].path, "/tmp");
    assert_string_equal(c->shares[0].tag, "t");
    assert_false(c->shares[0].read_only);
    assert_false(c->shares[0].cache_always);
    assert_true(c->shares[1].read_only);
    assert_true(c->shares[1].cache_always);
    assert_false(c->shares[2].cache_always);
    vmlet_config_free(c);
    BAD("{\"shares\": [{\"path\": \"/tmp\", \"tag\": \"t\", \"cache\": \"never\"}]}",
        "shares[0].cache: expected \"auto\" (1 s) or \"always\" (a day), got \"never\"");
    BAD("{\"shares\": [{\"path\": \"/tmp\", \"tag\": \"t\", \"cache\": true}]}",
        "shares[0].cache: expected a string (\"auto\" or \"always\"), got true");
    BAD("{\"shares\": {}}", "shares: expected an array of objects such as [{\"path\": "
                            "\"/home/me/project\", \"tag\": \"project\"}], got an object");
    BAD("{\"shares\": [{\"tag\": \"t\"}]}",
        "shares[0]: no \"path\"; give the host directory to share");
    BAD("{\"shares\": [{\"path\": \"/tmp\"}]}",
        "shares[0]: no \"tag\"; give the name the guest mounts the share by");
    BAD("{\"shares\": [{\"path\": \"/tmp\", \"tag\": \"t\", \"ro\": true}]}",
        "shares[0].ro: unknown key; known keys are path, tag, read_only, cache");
    BAD("{\"shares\": [{\"path\": \"/tmp\", \"tag\": \"t\", \"read_only\": 1}]}",
        "shares[0].read_only: expected true or false, got a number");
}

static void disks_bad(void **state)
{
    BAD("{\"disks\": {\"path\": \"a\"}}", "disks: expected an array of objects such as "
                                          "[{\"path\": \"root.img\"}], got an object");
    BAD("{\"disks\": [\"a.img\"]}", "disks[0]: expected an object such as {\"path\": "
                                    "\"root.img\"}, got a string");
    BAD("{\"disks\": [{\"path\": \"a\"}, {\"path\": \"b\", \"raed_only\": true}]}",
        "disks[1].raed_only: unknown key; known keys are path, read_only, serial");
    BAD("{\"disks\": [{\"read_only\": true}]}",
        "disks[0]: no \"path\"; give the disk image or block device");
    BAD("{\"disks\": [{\"path\": \"\"}]}",
        "disks[0].path: empty; give an image file or block device");
    BAD("{\"disks\": [{\"path\": 7}]}", "disks[0].path: expected a string (an image file "
                                        "or block device), got a number");
    BAD("{\"disks\": [{\"path\": \"a\", \"read_only\": \"yes\"}]}",
        "disks[0].read_only: expected true or false, got a string");
    BAD("{\"disks\": [{\"path\": \"a\", \"serial\": 12}]}",
        "disks[0].serial: expected a string (up to 20 characters), got a number");
    char *seventeen = repeat("{\"disks\": [", "{\"path\": \"d\"},", 16, "{\"path\": \"d\"}]}");
    BAD(seventeen, "disks: 17 disks; at most 16 are allowed");
    free(seventeen);
}

static void network_good(void **state)
{
    vmlet_config *c = load_ok(
        "{\"network\": [{\"type\": \"user\", \"mac\": "
        "\"52:54:00:00:00:09\"}, "
        "{\"hostfwd\": [\"::2222-10.0.2.16:22\", \"udp:0.0.0.0:65535-:1\", "
        "\"tcp:0.0.0.0:2223-:22\", \"udp:127.0.0.1:2222-:22\"], \"type\": \"user\"},"
        "{\"type\": \"tap\", \"name\": \"vm-tap.1\"}, "
        "{\"type\": \"tap\", \"name\": \"tap2\", \"mac\": \"02:AB:cd:00:00:01\"}]}");
    assert_int_equal(c->nnets, 4);
    assert_int_equal(c->nets[0].kind, NET_SPEC_USER);
    assert_int_equal(c->nets[0].nhostfwd, 0);
    assert_true(c->nets[0].has_mac);
    assert_memory_equal(c->nets[0].mac, "\x52\x54\x00\x00\x00\x09", 6);
    const struct net_hostfwd *h = c->nets[1].hostfwd;
    assert_int_equal(c->nets[1].nhostfwd, 4);
    assert_false(h[0].udp);
    assert_int_equal(h[0].host_addr, 0x7f000001);
    assert_int_equal(h[0].host_port, 2222);
    assert_int_equal(h[0].guest_addr, 0x0a000210);
    assert_int_equal(h[0].guest_port, 22);
    assert_true(h[1].udp);
    assert_int_equal(h[1].host_addr, 0); /* all interfaces */
    assert_int_equal(h[1].host_port, 65535);
    assert_int_equal(h[1].guest_port, 1);
    assert_string_equal(c->nets[2].tap_name, "vm-tap.1");
    assert_false(c->nets[2].has_mac);
    assert_true(c->nets[3].has_mac);
    assert_memory_equal(c->nets[3].mac, "\x02\xab\xcd\x00\x00\x01", 6);

    /* A second file (or a later call) appends. */
    vmlet_error err;
    assert_int_equal(load(c, "{\"network\": [{\"type\": \"tap\", \"name\": \"t9\"}]}", &err), 0);
    assert_int_equal(c->nnets, 5);
    assert_string_equal(c->nets[4].tap_name, "t9");
    vmlet_config_free(c);

    /* The networks and the timeout go into the config itself (they used to
     * be handed back beside it, to be dropped when not asked for). */
    c = load_ok("{\"network\": [{\"type\": \"user\"}], \"shutdown_timeout\": 5}");
    assert_int_equal(c->nnets, 1);
    assert_int_equal(c->shutdown_timeout, 5);
    vmlet_config_free(c);
    BAD("{\"network\": [{\"type\": \"usr\"}]}",
        "network[0].type: \"usr\" is not a network type; give \"user\" or \"tap\"");
}

static void network_bad(void **state)
{
    BAD("{\"network\": {\"type\": \"user\"}}", "network: expected an array of objects such "
                                               "as [{\"type\": \"user\"}], got an object");
    BAD("{\"network\": [\"user\"]}", "network[0]: expected an object such as {\"type\": "
                                     "\"user\"}, got a string");
    BAD("{\"network\": [{}]}", "network[0]: no \"type\"; give \"type\": \"user\" or \"tap\"");
    BAD("{\"network\": [{\"tpye\": \"user\"}]}",
        "network[0].tpye: unknown key; known keys are type, hostfwd, name, mac, host_loopback, "
        "max_flows");
    BAD("{\"network\": [{\"type\": 1}]}",
        "network[0].type: expected a string (\"user\" or \"tap\"), got a number");
    BAD("{\"network\": [{\"type\": \"user\", \"name\": \"tap0\"}]}",
        "network[0].name: not a key of a user network; its keys are type, hostfwd, mac, "
        "host_loopback, max_flows");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"t\", \"hostfwd\": []}]}",
        "network[0].hostfwd: not a key of a tap network; its keys are type, name, mac");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"t\", \"host_loopback\": false}]}",
        "network[0].host_loopback: not a key of a tap network; its keys are type, name, mac");
    BAD("{\"network\": [{\"type\": \"user\", \"host_loopback\": \"off\"}]}",
        "network[0].host_loopback: expected true or false, got a string");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"t\", \"max_flows\": 8}]}",
        "network[0].max_flows: not a key of a tap network; its keys are type, name, mac");
    BAD("{\"network\": [{\"type\": \"user\", \"max_flows\": 0}]}",
        "network[0].max_flows: 0 is out of range; give 1 to 65536");
    BAD("{\"network\": [{\"type\": \"user\", \"max_flows\": 65537}]}",
        "network[0].max_flows: 65537 is out of range; give 1 to 65536");
    BAD("{\"network\": [{\"type\": \"user\", \"max_flows\": \"512\"}]}",
        "network[0].max_flows: expected a whole number, got a string");
    BAD("{\"network\": [{\"type\": \"user\", \"max_flows\": 1.5}]}",
        "network[0].max_flows: 1.5 is not a whole number");
    BAD("{\"network\": [{\"type\": \"user\", \"type\": \"user\"}]}",
        "network[0].type: duplicate key; give it once");
    BAD("{\"network\": [{\"type\": \"user\", \"hostfwd\": \"tcp::1-:2\"}]}",
        "network[0].hostfwd: expected an array of strings such as "
        "[\"tcp:127.0.0.1:8080-:80\"], got a string");
    BAD("{\"network\": [{\"type\": \"user\", \"hostfwd\": [80]}]}",
        "network[0].hostfwd[0]: expected a string such as \"tcp:127.0.0.1:8080-:80\", "
        "got a number");

    static const struct {
        const char *rule, *why;
    } fwd[] = {
        { "tcp:8080:80", "it has no '-' between the host and the guest side" },
        { "sctp::1-:2", "the protocol is not tcp or udp" },
        { "TCP::1-:2", "the protocol is not tcp or udp" },
        { "8080-80", "it has no ':'" },
        { "tcp:8080-:80", "the host side has no ':PORT'" },
        { "tcp::8080-80", "the guest side has no ':PORT'" },
        { "tcp::0-:80", "the host port is not a number from 1 to 65535" },
        { "tcp::65536-:80", "the host port is not a number from 1 to 65535" },
        { "tcp::-:80", "the host port is not a number from 1 to 65535" },
        { "tcp::+80-:80", "the host port is not a number from 1 to 65535" },
        { "tcp::80-:8 0", "the guest port is not a number from 1 to 65535" },
        { "tcp:localhost:80-:80", "the host address is not an IPv4 address such as 127.0.0.1" },
        { "tcp:1.2.3:80-:80", "the host address is not an IPv4 address such as 127.0.0.1" },
        { "tcp::80-[::1]:80", "the guest address is not an IPv4 address such as 10.0.2.15" },
        { "tcp::80-10.0.3.15:80", "the guest address is not in the guest network 10.0.2.0/24" },
        { "tcp::80-10.0.2.2:80", "the guest address is the gateway (the host), not a guest" },
        { "tcp::80-10.0.2.3:80", "the guest address is the DNS server, not a guest" },
        { "tcp::80-10.0.2.0:80", "the guest address is the network address, not a guest" },
        { "tcp::80-10.0.2.255:80", "the guest address is the broadcast address, not a guest" },
        { "tcp::80-:80-:90", "it has more than one '-'" },
        { "udp:255.255.255.255:65535-10.0.2.100:65535//////////////////////",
          "it is too long to be a forwarding rule" },
    };
    for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) {
        char json[256], want[512];
        snprintf(json, sizeof json,
                 "{\"network\": [{\"type\": \"user\", \"hostfwd\": "
                 "[\"tcp::1-:1\", \"%s\"]}]}",
                 fwd[i].rule);
        snprintf(want, sizeof want,
                 "network[0].hostfwd[1]: \"%s\": %s; the form is "
                 "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
                 fwd[i].rule, fwd[i].why);
        BAD(json, want);
    }
    char *many = repeat("{\"network\": [{\"type\": \"user\", \"hostfwd\": [", "\"::1-:1\",", 16,
                        "\"::1-:1\"]}]}");
    BAD(many, "network[0].hostfwd: 17 rules; at most 16 are allowed");
    free(many);

    BAD("{\"network\": [{\"type\": \"tap\"}]}",
        "network[0]: no \"name\"; a tap network "
        "needs the host interface, e.g. \"name\": \"tap0\"");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"\"}]}",
        "network[0].name: empty; "
        "give a host interface name such as \"tap0\"");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"a23456789012345X\"}]}",
        "network[0].name: 16 bytes is too long; at most 15");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"../eth0\"}]}",
        "network[0].name: \"../eth0\" is not an interface name; use printable "
        "characters other than spaces, '/', ':', ',' and '='");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"tap 0\"}]}",
        "network[0].name: \"tap 0\" is not an interface name; use printable "
        "characters other than spaces, '/', ':', ',' and '='");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"..\"}]}",
        "network[0].name: \"..\" is not an interface name; use printable "
        "characters other than spaces, '/', ':', ',' and '='");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"a=b\"}]}",
        "network[0].name: \"a=b\" is not an interface name; use printable "
        "characters other than spaces, '/', ':', ',' and '='");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"t\", \"mac\": 5}]}",
        "network[0].mac: expected a string such as \"52:54:00:12:34:56\", got a number");
    static const char *const bad_macs[] = { "52:54:00:12:34",    "52:54:00:12:34:5g",
                                            "52-54-00-12-34-56", "52:54:00:12:34:56:",
                                            "525400123456",      "" };
    for (size_t i = 0; i < sizeof bad_macs / sizeof bad_macs[0]; i++) {
        char json[256], want[512];
        snprintf(json, sizeof json,
                 "{\"network\": [{\"type\": \"tap\", \"name\": \"t\", "
                 "\"mac\": \"%s\"}]}",
                 bad_macs[i]);
        snprintf(want, sizeof want,
                 "network[0].mac: \"%s\" is not a MAC address; write six "
                 "hex pairs such as \"52:54:00:12:34:56\"",
                 bad_macs[i]);
        BAD(json, want);
    }
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"t\", \"mac\": \"01:00:5e:00:00:01\"}]}",
        "network[0].mac: 01:00:5e:00:00:01 is a multicast address; a NIC needs a unicast "
        "one (even first byte), e.g. \"52:54:00:12:34:56\"");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"t\", \"mac\": \"00:00:00:00:00:00\"}]}",
        "network[0].mac: 00:00:00:00:00:00 is not a usable address");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"t\"}, {\"type\": \"user\"}, "
        "{\"type\": \"tap\", \"name\": \"t\"}]}",
        "network[2].name: t is also network[0]'s interface");
    BAD("{\"network\": [{\"type\": \"tap\", \"name\": \"a\", \"mac\": \"52:54:00:00:00:01\"},"
        "{\"type\": \"tap\", \"name\": \"b\", \"mac\": \"52:54:00:00:00:01\"}]}",
        "network[1].mac: network[0] has this MAC address too");
    /* One host port forwarded twice, in one network or across two. */
    BAD("{\"network\": [{\"type\": \"user\", \"hostfwd\": [\"::80-:80\", "
        "\"tcp:127.0.0.1:80-:81\"]}]}",
        "network[0].hostfwd[1]: tcp port 80 is already forwarded by network[0].hostfwd[0]");
    BAD("{\"network\": [{\"type\": \"user\", \"hostfwd\": [\"udp:1.2.3.4:53-:53\"]}, "
        "{\"type\": \"tap\", \"name\": \"t\"}, "
        "{\"type\": \"user\", \"hostfwd\": [\"::53-:53\", \"udp:0.0.0.0:53-:53\"]}]}",
        "network[2].hostfwd[1]: udp port 53 is already forwarded by network[0].hostfwd[0]");
    BAD("{\"network\": [{\"type\": \"user\", \"mac\": \"52:54:00:00:00:01\"},"
        "{\"type\": \"tap\", \"name\": \"b\", \"mac\": \"52:54:00:00:00:01\"}]}",
        "network[1].mac: network[0] has this MAC address too");
    /* Keys are checked in file order. */
    BAD("{\"network\": [{\"type\": \"tap\", \"mac\": 1, \"name\": 2}]}",
        "network[0].mac: expected a string such as \"52:54:00:12:34:56\", got a number");
    BAD("{\"network\": [{\"name\": 2, \"type\": \"tap\", \"mac\": 1}]}",
        "network[0].name: expected a string (a host interface name such as \"tap0\"), got "
        "a number");
    char *nine = repeat("{\"network\": [", "{\"type\": \"user\"},", 8, "{\"type\": \"user\"}]}");
    BAD(nine, "network: 9 interfaces; at most 8 are allowed");
    free(nine);

    /* Eight from one file and one more from another is too many as well. */
    vmlet_error err;
    vmlet_config *c = vmlet_config_new();
    char *eight = repeat("{\"network\": [", "{\"type\": \"user\"},", 7, "{\"type\": \"user\"}]}");
    assert_int_equal(load(c, eight, &err), 0);
    assert_int_equal(load(c, "{\"cpus\": 3, \"network\": [{\"type\": \"user\"}]}", &err), -1);
    assert_string_equal(err.message, "network: more than 8 interfaces in all");
    assert_int_equal(c->cpus, 1); /* nothing applied */
    assert_int_equal(c->nnets, 8);
    free(eight);
    vmlet_config_free(c);
}

static void assert_same_spec(const struct net_spec *a, const struct net_spec *b, const char *what)
{
    bool same = a->kind == b->kind && !strcmp(a->tap_name, b->tap_name) &&
                a->has_mac == b->has_mac && !memcmp(a->mac, b->mac, 6) &&
                a->nhostfwd == b->nhostfwd && a->no_host_loopback == b->no_host_loopback &&
                a->max_flows == b->max_flows;
    for (unsigned i = 0; same && i < a->nhostfwd; i++) {
        const struct net_hostfwd *x = &a->hostfwd[i], *y = &b->hostfwd[i];
        same = x->udp == y->udp && x->host_addr == y->host_addr && x->host_port == y->host_port &&
               x->guest_addr == y->guest_addr && x->guest_port == y->guest_port &&
               !strcmp(x->text, y->text);
    }
    if (!same)
        fail_msg("%s: the JSON entry and the --net text give different specs", what);
}

/* One parser: a vm.json "network" entry and the --net text it stands for
 * (docs/config.md) give the identical struct net_spec, through the public
 * calls. */
static void network_same_as_net_flag(void **state)
{
    static const struct {
        const char *json, *text;
    } pairs[] = {
        { "{\"type\": \"user\"}", "user" },
        { "{\"type\": \"user\", \"mac\": \"52:54:00:12:34:56\"}", "user,mac=52:54:00:12:34:56" },
        { "{\"type\": \"user\", \"hostfwd\": [\"tcp:127.0.0.1:8080-:80\", \"udp::5353-:53\"]}",
          "user,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp::5353-:53" },
        { "{\"mac\": \"02:AB:cd:00:00:01\", \"hostfwd\": [\"::2222-10.0.2.16:22\", "
          "\"tcp:0.0.0.0:8443-:443\"], \"type\": \"user\"}",
          "user,hostfwd=::2222-10.0.2.16:22,hostfwd=tcp:0.0.0.0:8443-:443,mac=02:AB:cd:00:00:01" },
        { "{\"type\": \"user\", \"hostfwd\": [\"udp:255.255.255.255:65535-10.0.2.254:1\"]}",
          "user,hostfwd=udp:255.255.255.255:65535-10.0.2.254:1" },
        { "{\"type\": \"tap\", \"name\": \"tap0\", \"mac\": \"52:54:00:ab:cd:01\"}",
          "tap=tap0,mac=52:54:00:ab:cd:01" },
        { "{\"name\": \"vmlet-tap.15ch\", \"type\": \"tap\"}", "tap=vmlet-tap.15ch" },
        { "{\"type\": \"user\", \"host_loopback\": false}", "user,host-loopback=off" },
        { "{\"host_loopback\": true, \"type\": \"user\"}", "user,host-loopback=on" },
        { "{\"type\": \"user\", \"host_loopback\": false, \"hostfwd\": [\"::2222-:22\"]}",
          "user,host-loopback=off,hostfwd=::2222-:22" },
        { "{\"type\": \"user\", \"max_flows\": 64}", "user,max-flows=64" },
        { "{\"max_flows\": 1, \"type\": \"user\"}", "user,max-flows=1" },
        { "{\"type\": \"user\", \"max_flows\": 65536}", "user,max-flows=65536" },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char json[512];
        vmlet_error err;
        snprintf(json, sizeof json, "{\"network\": [%s]}", pairs[i].json);
        vmlet_config *c = vmlet_config_new();
        if (load(c, json, &err) != 0)
            fail_msg("%s: %s", json, err.message);
        assert_int_equal(vmlet_config_add_net(c, pairs[i].text), 0);
        assert_int_equal(c->nnets, 2);
        assert_false(c->bad_net);
        assert_same_spec(&c->nets[0], &c->nets[1], pairs[i].text);
        struct net_spec direct;
        assert_int_equal(net_spec_parse(pairs[i].text, &direct, &err), 0);
        assert_same_spec(&c->nets[0], &direct, pairs[i].text);
        vmlet_config_free(c);
    }
}

/* Fails unless the network entry and the --net text, each with value put
 * in, are both refused. */
static void refused_by_both(const char *entry, const char *flag, const char *value)
{
    char json[512], text[512];
    vmlet_error err;
    snprintf(json, sizeof json, "{\"network\": [%.*s%s%s]}", (int)(strchr(entry, '@') - entry),
             entry, value, strchr(entry, '@') + 1);
    snprintf(text, sizeof text, "%s%s", flag, value);
    vmlet_config *c = vmlet_config_new();
    if (load(c, json, &err) == 0 || vmlet_check_net(text, &err) == 0)
        fail_msg("'%s' is accepted by one of the two", text);
    vmlet_config_free(c);
}

/* ...and what one refuses, the other refuses too. */
static void network_refused_like_net_flag(void **state)
{
    static const char *const rules[] = {
        "tcp:8080:80",
        "sctp::1-:2",
        "TCP::1-:2",
        "8080-80",
        "tcp:8080-:80",
        "tcp::8080-80",
        "tcp::0-:80",
        "tcp::65536-:80",
        "tcp::-:80",
        "tcp::+80-:80",
        "tcp::80-:8 0",
        "tcp:localhost:80-:80",
        "tcp:1.2.3:80-:80",
        "tcp::80-[::1]:80",
        "tcp::80-10.0.3.15:80",
        "tcp::80-10.0.2.2:80",
        "tcp::80-10.0.2.3:80",
        "tcp::80-10.0.2.0:80",
        "tcp::80-10.0.2.255:80",
        "tcp::80-:80-:90",
        "",
        "udp:255.255.255.255:65535-10.0.2.100:65535//////////////////////",
    };
    static const char *const macs[] = {
        "52:54:00:12:34", "52:54:00:12:34:5g", "52-54-00-12-34-56", "52:54:00:12:34:56:",
        "525400123456",   "01:00:5e:00:00:01", "00:00:00:00:00:00", "52:54:00:12:34:5 ",
    };
    static const char *const names[] = { "a/b",     "..",  ".",     "tap 0",
                                         "a=b",     "a:b", "a\x7f", "0123456789abcdef",
                                         "\xc3\xa9" };
    /* '@' in the entry is where the value goes. */
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        refused_by_both("{\"type\": \"user\", \"hostfwd\": [\"@\"]}", "user,hostfwd=", rules[i]);
    for (size_t i = 0; i < sizeof macs / sizeof macs[0]; i++)
        refused_by_both("{\"type\": \"user\", \"mac\": \"@\"}", "user,mac=", macs[i]);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        refused_by_both("{\"type\": \"tap\", \"name\": \"@\"}", "tap=", names[i]);
    static const char *const flows[] = { "0", "65537", "-1", "4294967297", "99999999" };
    for (size_t i = 0; i < sizeof flows / sizeof flows[0]; i++)
        refused_by_both("{\"type\": \"user\", \"max_flows\": @}", "user,max-flows=", flows[i]);
    /* A JSON escape that decodes to a control byte is no hex digit (the old
     * copy of the MAC parser took "\u0010" for '0'). */
    BAD("{\"network\": [{\"type\": \"user\", \"mac\": \"52:54:00:12:34:\\u0010\\u0010\"}]}",
        "network[0].mac: \"52:54:00:12:34:\\x10\\x10\" is not a MAC address; write six hex "
        "pairs such as \"52:54:00:12:34:56\"");
}

static void shutdown_timeout(void **state)
{
    vmlet_config *c = load_ok("{\"shutdown_timeout\": 0}");
    assert_int_equal(vmlet_config_get_shutdown_timeout(c), 0);
    vmlet_config_free(c);
    c = load_ok("{\"shutdown_timeout\": 86400}");
    assert_int_equal(vmlet_config_get_shutdown_timeout(c), 86400);
    vmlet_config_free(c);
    BAD("{\"shutdown_timeout\": 86401}",
        "shutdown_timeout: 86401 is out of range; give 0 to 86400");
    BAD("{\"shutdown_timeout\": \"10s\"}",
        "shutdown_timeout: expected a whole number, got a string");
    BAD("{\"shutdown_timeout\": 2.5}", "shutdown_timeout: 2.5 is not a whole number");
    BAD("{\"shutdown_timeout\": -10}", "shutdown_timeout: -10 is negative; give 0 to 86400");
}

/* ---- keys ----------------------------------------------------------------- */

static void unknown_and_duplicate_keys(void **state)
{
    BAD("{\"cpus\": 1, \"memroy\": \"1G\"}",
        "memroy: unknown key; known keys are cpus, "
        "memory, kernel, initrd, cmdline, console, rng, disks, network, shutdown_timeout, "
        "kvm_device, seccomp, vsock, shares, balloon");
    BAD("{\"CPUS\": 1}", "CPUS: unknown key; known keys are cpus, memory, kernel, initrd, "
                         "cmdline, console, rng, disks, network, shutdown_timeout, kvm_device, "
                         "seccomp, vsock, shares, balloon");
    /* Keys that are not plain words are quoted, escapes and all. */
    BAD("{\"a b\": 1}", "[\"a b\"]: unknown key; known keys are cpus, memory, kernel, "
                        "initrd, cmdline, console, rng, disks, network, shutdown_timeout, "
                        "kvm_device, seccomp, vsock, shares, balloon");
    BAD("{\"\": 1}", "[\"\"]: unknown key; known keys are cpus, memory, kernel, initrd, "
                     "cmdline, console, rng, disks, network, shutdown_timeout, kvm_device, "
                     "seccomp, vsock, shares, balloon");
    BAD("{\"disks\": [{\"path\": \"a\", \"x\\ty\": 1}]}",
        "disks[0][\"x\\x09y\"]: unknown key; known keys are path, read_only, serial");
    BAD("{\"cpus\": 2, \"cpus\": 3}", "cpus: duplicate key; give it once");
    BAD("{\"kernel\": \"a\", \"cpus\": 1, \"kernel\": \"a\"}",
        "kernel: duplicate key; give it once");
    BAD("{\"disks\": [{\"path\": \"a\", \"path\": \"b\"}]}",
        "disks[0].path: duplicate key; give it once");
    BAD("{\"disks\": [{\"path\": \"a\", \"read_only\": true, \"read_only\": false}]}",
        "disks[0].read_only: duplicate key; give it once");
    /* The first problem in file order is the one reported. */
    BAD("{\"rng\": 1, \"cpus\": \"x\"}", "rng: expected true or false, got a number");
    BAD("{\"cpus\": \"x\", \"rng\": 1}", "cpus: expected a whole number, got a string");
    /* An unknown key is reported even after a bad value: keys come first. */
    BAD("{\"cpus\": \"x\", \"bogus\": 1}",
        "bogus: unknown key; known keys are cpus, memory, "
        "kernel, initrd, cmdline, console, rng, disks, network, "
        "shutdown_timeout, kvm_device, seccomp, vsock, shares, balloon");
    /* A long unknown key is cut. */
    char *longkey = repeat("{\"", "k", 300, "\": 1}");
    BAD(longkey, "[\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\"]: unknown key; known keys "
                 "are cpus, memory, kernel, initrd, cmdline, console, rng, disks, network, "
                 "shutdown_timeout, kvm_device, seccomp, vsock, shares, balloon");
    free(longkey);
}

/* ---- text that is not (acceptable) JSON ---------------------------------- */

static void not_an_object(void **state)
{
    BAD("[]", "the top level is an array; it must be an object such as {\"kernel\": "
              "\"bzImage\", \"memory\": \"512M\"}");
    BAD("\"vm\"", "the top level is a string; it must be an object such as {\"kernel\": "
                  "\"bzImage\", \"memory\": \"512M\"}");
    BAD(" 42 ", "the top level is a number; it must be an object such as {\"kernel\": "
                "\"bzImage\", \"memory\": \"512M\"}");
    BAD("null", "the top level is null; it must be an object such as {\"kernel\": "
                "\"bzImage\", \"memory\": \"512M\"}");
}

static void empty_text(void **state)
{
    static const char msg[] = "no JSON value: the text is empty or only whitespace; give "
                              "an object such as {\"kernel\": \"bzImage\"}";
    expect_error_len("", 0, VMLET_ERR_FILE, msg);
    SYNTAX("  \n\t\r\n ", msg);
    SYNTAX("\xef\xbb\xbf", msg); /* only a byte order mark */
}

static void byte_order_mark(void **state)
{
    vmlet_config *c = load_ok("\xef\xbb\xbf{\"cpus\": 3}");
    assert_int_equal(c->cpus, 3);
    vmlet_config_free(c);
    SYNTAX("\xef\xbb\xbf{\n\"cpus\" 1}", "line 2, column 8: expected ':' after the key, "
                                         "got '1'");
    SYNTAX("\xef\xbb\xbf{\"cpus\" 1}", "line 1, column 9: expected ':' after the key, "
                                       "got '1'");
    SYNTAX("\xef\xbb\xbf\xef\xbb\xbf{}",
           "line 1, column 1: expected a value (a string in "
           "double quotes, a number, an object, an array, true, false or null), got byte 0xef");
}

static void trailing_garbage(void **state)
{
    SYNTAX("{} x", "line 1, column 4: unexpected 'x' after the end of the JSON value");
    SYNTAX("{}{}", "line 1, column 3: unexpected '{' after the end of the JSON value");
    SYNTAX("{}\n\n  ,", "line 3, column 3: unexpected ',' after the end of the JSON value");
    expect_error_len("{}\0", 3, VMLET_ERR_FILE,
                     "line 1, column 3: unexpected byte 0x00 after the end of the JSON value");
    expect_error_len("{}\n\0\0\0", 6, VMLET_ERR_FILE,
                     "line 2, column 1: unexpected byte 0x00 after the end of the JSON value");
    /* Whitespace after the value is fine. */
    vmlet_config *c = load_ok("{\"cpus\": 2}\n\n\t \r\n");
    assert_int_equal(c->cpus, 2);
    vmlet_config_free(c);
}

static void parse_errors_have_line_and_column(void **state)
{
    SYNTAX("{\n  \"cpus\": 2\n  \"memory\": \"1G\"\n}",
           "line 3, column 3: expected ',' or '}', got '\"'");
    SYNTAX("{\n  \"cpus\": 2,\n}", "line 3, column 1: expected a key in double quotes, got "
                                   "'}'; remove the trailing ','");
    SYNTAX("{\"disks\": [{\"path\": \"a\"},]}",
           "line 1, column 26: expected a value before ']'; remove the trailing ','");
    SYNTAX("{\"cpus\": }", "line 1, column 10: expected a value before '}'");
    SYNTAX("{\"cpus\" 2}", "line 1, column 9: expected ':' after the key, got '2'");
    SYNTAX("{'cpus': 2}", "line 1, column 2: expected a key in double quotes, got '''");
    SYNTAX("{cpus: 2}", "line 1, column 2: expected a key in double quotes, got 'c'");
    SYNTAX("{\"cpus\": 2 // two\n}", "line 1, column 12: expected ',' or '}', got '/'");
    SYNTAX("{\"cpus\": 2,\n \"kernel\": \"bz", "line 2, column 12: this string is not "
                                               "closed; add '\"'");
    SYNTAX("{\"disks\": [{\"path\": \"a\"}", "line 1, column 25: the text ends inside an "
                                             "array; close it with ']'");
    SYNTAX("{\"cpus\": 2", "line 1, column 11: the text ends inside an object; close it "
                           "with '}'");
    SYNTAX("{\"rng\": True}",
           "line 1, column 9: expected a value (a string in double "
           "quotes, a number, an object, an array, true, false or null), got 'T'");
    SYNTAX("{\"rng\": tru}",
           "line 1, column 9: expected a value (a string in double "
           "quotes, a number, an object, an array, true, false or null), got 't'");
    SYNTAX("{\"rng\": truex}", "line 1, column 13: expected ',' or '}', got 'x'");
    /* Columns count characters, not bytes. */
    SYNTAX("{\"cmdline\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\" x}",
           "line 1, column 19: expected ',' or '}', got 'x'");
    SYNTAX("{\"cmdline\": \"a\\qb\"}",
           "line 1, column 15: invalid escape: backslash then "
           "'q'; the escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
    SYNTAX("{\"cmdline\": \"\\u12G4\"}", "line 1, column 14: \\u needs four hex digits");
    SYNTAX("{\"cmdline\": \"\\u12", "line 1, column 14: \\u needs four hex digits");
    SYNTAX("{\"cmdline\": \"abc\\", "line 1, column 13: this string is not closed; add '\"'");
    SYNTAX("{\"cmdline\": \"a\tb\"}", "line 1, column 15: control character 0x09 in a "
                                      "string; write it as an escape such as \\n or \\u0009");
    SYNTAX("{\"cmdline\": \"a\nb\"}", "line 1, column 15: control character 0x0a in a "
                                      "string; write it as an escape such as \\n or \\u000a");
    SYNTAX("{\"cpus\":\f2}", "line 1, column 9: expected a value (a string in double quotes, "
                             "a number, an object, an array, true, false or null), got byte 0x0c");
}

static void numbers_strict(void **state)
{
    SYNTAX("{\"cpus\": 02}", "line 1, column 10: numbers cannot start with 0 (leading zeros "
                             "are not JSON)");
    SYNTAX("{\"cpus\": -02}", "line 1, column 10: numbers cannot start with 0 (leading "
                              "zeros are not JSON)");
    SYNTAX("{\"cpus\": +2}",
           "line 1, column 10: expected a value (a string in double "
           "quotes, a number, an object, an array, true, false or null), got '+'");
    SYNTAX("{\"cpus\": .5}",
           "line 1, column 10: expected a value (a string in double "
           "quotes, a number, an object, an array, true, false or null), got '.'");
    SYNTAX("{\"cpus\": 2.}", "line 1, column 12: expected a digit after '.'");
    SYNTAX("{\"cpus\": 2e}", "line 1, column 12: expected a digit in the exponent");
    SYNTAX("{\"cpus\": 2e+}", "line 1, column 13: expected a digit in the exponent");
    SYNTAX("{\"cpus\": -}", "line 1, column 11: expected a digit, got '}'");
    SYNTAX("{\"cpus\": -", "line 1, column 11: expected a digit, got the end");
    SYNTAX("{\"cpus\": 0x10}", "line 1, column 11: expected ',' or '}', got 'x'");
    SYNTAX("{\"cpus\": NaN}",
           "line 1, column 10: expected a value (a string in double "
           "quotes, a number, an object, an array, true, false or null), got 'N'");
    SYNTAX("{\"cpus\": Infinity}",
           "line 1, column 10: expected a value (a string in double "
           "quotes, a number, an object, an array, true, false or null), got 'I'");
    SYNTAX("{\"cpus\": 1-2}", "line 1, column 11: expected ',' or '}', got '-'");
    /* Huge numbers: too many digits is a syntax error, a huge exponent a range error. */
    char *digits = repeat("{\"memory\": 1", "0", 400, "}");
    SYNTAX(digits, "line 1, column 12: this number is 401 characters long; at most 40 "
                   "are allowed");
    free(digits);
    BAD("{\"memory\": 1e99999999999999999999}", "memory: the number is too large to "
                                                "represent");
    BAD("{\"cpus\": 1.7976931348623157e308}", "cpus: 1.7976931348623157e+308 is too large "
                                              "(above 2^53, where JSON numbers stop being exact)");
    BAD("{\"cpus\": 123456789012345678901234567890123456789}",
        "cpus: "
        "1.2345678901234568e+38 is too large (above 2^53, where JSON numbers stop being exact)");
}

static void invalid_utf8(void **state)
{
    static const struct {
        const char *bytes;
        int column;
        const char *why;
    } cases[] = {
        { "\xc0\xaf", 14, "(byte 0xc0): an overlong encoding" },
        { "\xc1\xbf", 14, "(byte 0xc1): an overlong encoding" },
        { "\xe0\x80\xaf", 14, "(byte 0xe0): an overlong encoding" },
        { "\xe0\x9f\xbf", 14, "(byte 0xe0): an overlong encoding" },
        { "\xf0\x80\x80\xaf", 14, "(byte 0xf0): an overlong encoding" },
        { "\xf0\x8f\xbf\xbf", 14, "(byte 0xf0): an overlong encoding" },
        { "\xed\xa0\x80", 14, "(byte 0xed): an encoded UTF-16 surrogate (U+D800..U+DFFF)" },
        { "\xed\xbf\xbf", 14, "(byte 0xed): an encoded UTF-16 surrogate (U+D800..U+DFFF)" },
        { "\xf4\x90\x80\x80", 14, "(byte 0xf4): a code point beyond U+10FFFF" },
        { "\xf5\x80\x80\x80", 14, "(byte 0xf5): a byte that never appears in UTF-8" },
        { "\xff", 14, "(byte 0xff): a byte that never appears in UTF-8" },
        { "\xfe", 14, "(byte 0xfe): a byte that never appears in UTF-8" },
        { "\x80", 14, "(byte 0x80): a continuation byte with no lead byte" },
        { "a\xbf", 15, "(byte 0xbf): a continuation byte with no lead byte" },
        { "\xe2\x82", 14, "(byte 0xe2): a truncated sequence" }, /* then the quote */
        { "\xc3", 14, "(byte 0xc3): a truncated sequence" },
        { "\xf0\x9f\x98", 14, "(byte 0xf0): a truncated sequence" },
        { "\xe2\x82\xac\xe2\x28\xa1", 15, "(byte 0xe2): a truncated sequence" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[64], want[256];
        snprintf(json, sizeof json, "{\"cmdline\": \"%s\"}", cases[i].bytes);
        snprintf(want, sizeof want, "line 1, column %d: invalid UTF-8 in a string %s",
                 cases[i].column, cases[i].why);
        SYNTAX(json, want);
    }
    /* Truncated at the very end of the text. */
    SYNTAX("{\"cmdline\": \"\xe2\x82", "line 1, column 14: invalid UTF-8 in a string "
                                       "(byte 0xe2): a truncated sequence");
    /* In a key too. */
    SYNTAX("{\"cp\xffus\": 1}", "line 1, column 5: invalid UTF-8 in a string (byte 0xff): "
                                "a byte that never appears in UTF-8");
    /* Outside strings any non-ASCII byte is simply unexpected. */
    SYNTAX("{\xc3\xa9}", "line 1, column 2: expected a key in double quotes, got byte 0xc3");

    /* Escaped surrogates must pair up. */
    SYNTAX("{\"cmdline\": \"\\ud800\"}", "line 1, column 14: \\ud800 is a UTF-16 high "
                                         "surrogate without a low surrogate after it");
    SYNTAX("{\"cmdline\": \"\\uD800\\u0041\"}", "line 1, column 14: \\ud800 is a UTF-16 high "
                                                "surrogate without a low surrogate after it");
    SYNTAX("{\"cmdline\": \"\\udbff\\udbff\"}", "line 1, column 14: \\udbff is a UTF-16 "
                                                "high surrogate without a low surrogate after it");
    SYNTAX("{\"cmdline\": \"x\\udc00\"}", "line 1, column 15: \\udc00 is a lone UTF-16 low "
                                          "surrogate");
    SYNTAX("{\"cmdline\": \"\\ud800", "line 1, column 14: \\ud800 is a UTF-16 high "
                                      "surrogate without a low surrogate after it");

    /* Valid UTF-8 of every length, raw and escaped, is kept as it is. */
    vmlet_config *c = load_ok("{\"cmdline\": \"\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"
                              "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf \\ud83d\\ude00\\u00e9\\u20ac"
                              "\\uffff\\/\\b\\f\\n\\r\\t\"}");
    assert_string_equal(c->cmdline,
                        "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"
                        "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf \xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac"
                        "\xef\xbf\xbf/\b\f\n\r\t");
    vmlet_config_free(c);
}

static void nul_bytes(void **state)
{
    static const char raw[] = "{\"kernel\": \"bz\0Image\"}";
    expect_error_len(raw, sizeof raw - 1, VMLET_ERR_FILE,
                     "line 1, column 15: NUL byte in a string");
    SYNTAX("{\"kernel\": \"bz\\u0000Image\"}", "line 1, column 15: \\u0000 (a NUL character) "
                                               "is not allowed in a string");
    static const char key[] = "{\"cpus\0x\": 1}";
    expect_error_len(key, sizeof key - 1, VMLET_ERR_FILE, "line 1, column 7: NUL byte in a string");
    static const char between[] = "{\"cpus\":\0 1}";
    expect_error_len(between, sizeof between - 1, VMLET_ERR_FILE,
                     "line 1, column 9: expected a value (a string in double quotes, a "
                     "number, an object, an array, true, false or null), got byte 0x00");
    expect_error_len("\0{}", 3, VMLET_ERR_FILE,
                     "line 1, column 1: expected a value (a string in double quotes, a "
                     "number, an object, an array, true, false or null), got byte 0x00");
    /* A length that stops before the NUL terminator is respected. */
    vmlet_config *c = vmlet_config_new();
    vmlet_error err;
    assert_int_equal(vmlet_config_from_json(c, "{\"cpus\": 7}garbage", 11, &err), 0);
    assert_int_equal(c->cpus, 7);
    vmlet_config_free(c);
}

/* ---- hostile input ------------------------------------------------------------ */

static void nesting(void **state)
{
    /* The schema's own depth is fine... */
    vmlet_config *c = load_ok("{\"network\": [{\"type\": \"user\", \"hostfwd\": []}]}");
    vmlet_config_free(c);
    /* ...misplaced structure up to 8 levels gets a type error naming the key... */
    BAD("{\"cpus\": [[[[[[[1]]]]]]]}", "cpus: expected a whole number, got an array");
    /* ...and deeper is refused before cJSON recurses. */
    SYNTAX("{\"cpus\": [[[[[[[[1]]]]]]]]}", "line 1, column 17: nested more than 8 levels "
                                            "deep; a vm.json needs at most 4");
    static const char *const units[] = { "[", "{\"a\":", "[{\"b\":" };
    for (size_t i = 0; i < 3; i++) {
        char *deep = repeat("", units[i], 100000, "");
        double t0 = now();
        expect_error(deep, VMLET_ERR_FILE,
                     i == 1 ? "line 1, column 41: nested more than 8 levels deep; a vm.json needs "
                              "at most 4"
                     : i == 0
                         ? "line 1, column 9: nested more than 8 levels deep; a vm.json needs at "
                           "most 4"
                         : "line 1, column 25: nested more than 8 levels deep; a vm.json needs "
                           "at most 4");
        assert_true(now() - t0 < 1.0);
        free(deep);
    }
    /* Deep nesting after good text reports its line; the top object is
     * level 1, so the 8th '[' is one too many. */
    char *deep = repeat("{\"cpus\": 1,\n\"x\":", "[", 100000, "");
    SYNTAX(deep, "line 2, column 12: nested more than 8 levels deep; a vm.json needs at "
                 "most 4");
    free(deep);
}

static void whitespace_10mb(void **state)
{
    size_t n = 10u << 20;
    char *ws = malloc(n + 16);
    assert_non_null(ws);
    memset(ws, ' ', n);
    for (size_t i = 0; i < n; i += 80)
        ws[i] = '\n';
    double t0 = now();
    expect_error_len(ws, n, VMLET_ERR_FILE,
                     "no JSON value: the text is empty or only "
                     "whitespace; give an object such as {\"kernel\": \"bzImage\"}");
    /* An object after it still parses; more after that is reported at its
     * line: 131072 newlines, then 79 spaces and the 11-byte object. */
    memcpy(ws + n, "{\"cpus\": 2}", 11);
    vmlet_config *c = vmlet_config_new();
    vmlet_error err;
    assert_int_equal(load_len(c, ws, n + 11, &err), 0);
    assert_int_equal(c->cpus, 2);
    vmlet_config_free(c);
    memcpy(ws + n + 11, " ]", 2);
    expect_error_len(ws, n + 13, VMLET_ERR_FILE,
                     "line 131073, column 92: unexpected ']' "
                     "after the end of the JSON value");
    assert_true(now() - t0 < 5.0);
    free(ws);
}

static void many_values(void **state)
{
    /* 10000 values are read (and the key errors); one more is not. */
    char *ok = repeat("{\"x\": [", "0,", 9997, "0]}");
    BAD(ok, "x: unknown key; known keys are cpus, memory, kernel, initrd, cmdline, console, "
            "rng, disks, network, shutdown_timeout, kvm_device, seccomp, vsock, shares, balloon");
    free(ok);
    char *many = repeat("{\"x\": [", "0,", 9998, "0]}");
    SYNTAX(many, "line 1, column 20004: more than 10000 values; a vm.json is much smaller");
    free(many);
    /* Also as an object with thousands of duplicate keys. */
    char *dups = repeat("{\"cpus\": 1", ",\"cpus\": 1", 5000, "}");
    BAD(dups, "cpus: duplicate key; give it once");
    free(dups);
}

static void big_string(void **state)
{
    /* A 1 MiB string is read whole (the kernel's limit on the command line is
     * validate's business)... */
    char *big = repeat("{\"cmdline\": \"", "x", 1u << 20, "\"}");
    vmlet_config *c = load_ok(big);
    assert_int_equal(strlen(c->cmdline), 1u << 20);
    vmlet_config_free(c);
    /* ...but a file that size is over the cap. */
    const char *path = write_tmp(big, strlen(big));
    c = vmlet_config_new();
    vmlet_error err;
    assert_int_equal(vmlet_config_load_json(c, path, &err), -1);
    assert_int_equal(err.code, VMLET_ERR_FILE);
    char want[128];
    snprintf(want, sizeof want, "%s: larger than 1 MiB; a vm.json is a few hundred bytes", path);
    assert_string_equal(err.message, want);
    assert_null(c->cmdline);
    vmlet_config_free(c);
    unlink(path);
    free(big);
    /* And as a bad value it is cut in the message. */
    big = repeat("{\"console\": \"", "y", 1u << 20, "\"}");
    BAD(big, "console: \"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...\" is not a console; "
             "give \"serial\" or \"virtio\"");
    free(big);
}

/* ---- files ---------------------------------------------------------------- */

static void files(void **state)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err;
    char want[512];

    assert_int_equal(vmlet_config_load_json(c, "/nonexistent/vm.json", &err), -1);
    assert_int_equal(err.code, VMLET_ERR_FILE);
    assert_string_equal(err.message, "/nonexistent/vm.json: No such file or directory; "
                                     "check the path of the config file");
    assert_int_equal(vmlet_config_load_json(c, "/tmp", &err), -1);
    assert_string_equal(err.message, "/tmp is a directory; the config must be a JSON file");

    const char *path = write_tmp("", 0);
    assert_int_equal(vmlet_config_load_json(c, path, &err), -1);
    assert_int_equal(err.code, VMLET_ERR_FILE);
    snprintf(want, sizeof want,
             "%s: the file is empty; it needs a JSON object such as "
             "{\"kernel\": \"bzImage\"}",
             path);
    assert_string_equal(err.message, want);
    unlink(path);

    path = write_tmp("{\n  \"cpus\": 2,\n  \"memory\": 1.5\n}\n", 33);
    assert_int_equal(vmlet_config_load_json(c, path, &err), -1);
    assert_int_equal(err.code, VMLET_ERR_INVALID);
    snprintf(want, sizeof want, "%s: memory: 1.5 is not a whole number", path);
    assert_string_equal(err.message, want);
    unlink(path);

    path = write_tmp("{\n  \"cpus\": 2\n  \"memory\": 1\n}\n", 30);
    assert_int_equal(vmlet_config_load_json(c, path, &err), -1);
    assert_int_equal(err.code, VMLET_ERR_FILE);
    snprintf(want, sizeof want, "%s: line 3, column 3: expected ',' or '}', got '\"'", path);
    assert_string_equal(err.message, want);
    unlink(path);
    assert_int_equal(c->cpus, 1);

    /* Exactly at the cap is allowed: a 1 MiB file of mostly whitespace. */
    size_t n = VMLET_CONFIG_JSON_MAX;
    char *buf = malloc(n);
    memset(buf, ' ', n);
    memcpy(buf, "{\"cpus\": 9}", 11);
    path = write_tmp(buf, n);
    assert_int_equal(vmlet_config_load_json(c, path, &err), 0);
    assert_int_equal(c->cpus, 9);
    unlink(path);
    free(buf);

    /* Pipes have no size; the cap holds there too. */
    assert_int_equal(vmlet_config_load_json(c, "/dev/zero", &err), -1);
    assert_string_equal(err.message, "/dev/zero: larger than 1 MiB; a vm.json is a few "
                                     "hundred bytes");
    assert_int_equal(vmlet_config_load_json(c, "/dev/null", &err), -1);
    assert_string_equal(err.message, "/dev/null: the file is empty; it needs a JSON object "
                                     "such as {\"kernel\": \"bzImage\"}");
    vmlet_config_free(c);
}

/* ---- layering ---------------------------------------------------------------- */

/* The CLI loads the file, then applies the flags it was given. */
static void flags_override(void **state)
{
    vmlet_config *c = vmlet_config_new();
    vmlet_error err;
    vmlet_config_set_console(c, VMLET_CONSOLE_SERIAL, 3, 4);
    if (vmlet_config_load_json(c, example_path(), &err) != 0)
        fail_msg("%s", err.message);
    /* The file's "console" sets the kind and keeps the descriptors. */
    assert_int_equal(c->console_in, 3);
    assert_int_equal(c->console_out, 4);

    /* --cpus 4 --kernel other --console virtio --memory 1G --disk extra.img,
     * as cli/main.c applies them: the getters keep what the flags leave. */
    vmlet_config_set_cpus(c, 4);
    vmlet_config_set_linux_boot(c, "other", vmlet_config_get_initrd(c),
                                vmlet_config_get_cmdline(c));
    vmlet_config_set_console(c, VMLET_CONSOLE_VIRTIO, 3, 4);
    vmlet_config_set_memory(c, 1ULL << 30);
    vmlet_config_add_disk(c, "extra.img", 0, NULL);

    assert_int_equal(c->cpus, 4);
    assert_true(c->memory == 1ULL << 30);
    assert_string_equal(c->kernel, "other");
    assert_string_equal(c->initrd, "/var/lib/vmlet/initrd.img");       /* from the file */
    assert_string_equal(c->cmdline, "console=ttyS0 root=/dev/vda rw"); /* from the file */
    assert_int_equal(c->console, VMLET_CONSOLE_VIRTIO);
    assert_int_equal(c->console_in, 3);
    assert_int_equal(c->console_out, 4);
    assert_true(c->entropy); /* from the file */
    assert_int_equal(c->ndisks, 3);
    assert_string_equal(c->disks[2].path, "extra.img");

    vmlet_config_set_linux_boot(c, vmlet_config_get_kernel(c), "rd2", vmlet_config_get_cmdline(c));
    vmlet_config_set_linux_boot(c, vmlet_config_get_kernel(c), vmlet_config_get_initrd(c), "quiet");
    assert_string_equal(c->kernel, "other");
    assert_string_equal(c->initrd, "rd2");
    assert_string_equal(c->cmdline, "quiet");
    vmlet_config_set_console(c, vmlet_config_get_console(c), 7, 8);
    assert_int_equal(c->console, VMLET_CONSOLE_VIRTIO);
    assert_int_equal(c->console_in, 7);
    vmlet_config_free(c);
}

/* Everything is checked before anything is applied. */
static void all_or_nothing(void **state)
{
    expect_error("{\"cpus\": 4, \"kernel\": \"bz\", \"disks\": [{\"path\": \"a\"}], "
                 "\"rng\": true, \"console\": \"virtio\", \"memory\": \"1G\", "
                 "\"shutdown_timeout\": 5, \"network\": [{\"type\": \"user\"}], "
                 "\"kvm_device\": \"/dev/kvm\", \"initrd\": 5}",
                 VMLET_ERR_INVALID,
                 "initrd: expected a string (the path of an initial ramdisk, or leave the "
                 "key out), got a number");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_file),
        cmocka_unit_test(example_in_docs),
        cmocka_unit_test(empty_object_changes_nothing),
        cmocka_unit_test(cpus_good),
        cmocka_unit_test(cpus_bad),
        cmocka_unit_test(memory_good),
        cmocka_unit_test(memory_bad),
        cmocka_unit_test(boot_strings),
        cmocka_unit_test(console_and_rng),
        cmocka_unit_test(disks_good),
        cmocka_unit_test(disks_bad),
        cmocka_unit_test(vsock),
        cmocka_unit_test(balloon),
        cmocka_unit_test(shares),
        cmocka_unit_test(network_good),
        cmocka_unit_test(network_bad),
        cmocka_unit_test(network_same_as_net_flag),
        cmocka_unit_test(network_refused_like_net_flag),
        cmocka_unit_test(shutdown_timeout),
        cmocka_unit_test(unknown_and_duplicate_keys),
        cmocka_unit_test(not_an_object),
        cmocka_unit_test(empty_text),
        cmocka_unit_test(byte_order_mark),
        cmocka_unit_test(trailing_garbage),
        cmocka_unit_test(parse_errors_have_line_and_column),
        cmocka_unit_test(numbers_strict),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(nul_bytes),
        cmocka_unit_test(nesting),
        cmocka_unit_test(whitespace_10mb),
        cmocka_unit_test(many_values),
        cmocka_unit_test(big_string),
        cmocka_unit_test(files),
        cmocka_unit_test(flags_override),
        cmocka_unit_test(all_or_nothing),
    };
    return cmocka_run_group_tests_name("config_json", tests, NULL, NULL);
}
