/* The Firecracker-compatible API (cli/fc_vmm.c) against a fake VM: every
 * endpoint's body (valid, missing and wrong-typed fields, unknown and
 * unsupported ones), the state machine (pre-boot-only requests after
 * InstanceStart, running-only ones before it), the vmlet_config that
 * InstanceStart builds, --config-file, and oversized bodies through the
 * real socket server. The library's config code is real; the VM calls are
 * fakes. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <seccomp.h>
#include <cjson/cJSON.h>

#include "../../cli/api.h"
#include "../../cli/fc_vmm.h"
#include "../../cli/http.h"
#include "config.h" /* to read back what InstanceStart built */

/* ---- the fake library -------------------------------------------------------- */

uint64_t host_memory_bytes(void)
{
    return 8ull << 30;
}

struct vmlet_vm {
    vmlet_state state;
    uint64_t balloon_target;
    int stop_requests;
};

/* What the last vmlet_vm_create() was given. */
static struct {
    int creates;
    bool fail; /* the next create fails */
    unsigned cpus;
    uint64_t memory;
    char cmdline[4096], kernel[256], vcpu_name[32];
    unsigned ndisks;
    char disk_paths[VMLET_MAX_DISKS][256];
    bool disk_ro[VMLET_MAX_DISKS];
    unsigned nnets;
    char taps[VMLET_MAX_NICS][32];
    bool has_mac[VMLET_MAX_NICS];
    uint64_t vsock_cid;
    bool entropy, balloon;
    unsigned balloon_flags, balloon_stats_s;
    int console_in, console_out;
} made;

static vmlet_vm the_vm;

const char *vmlet_version(void)
{
    return "9.9.9";
}

int vmlet_vm_create(const vmlet_config *c, vmlet_vm **out, vmlet_error *err)
{
    if (made.fail) {
        made.fail = false;
        err->code = VMLET_ERR_HOST;
        snprintf(err->message, sizeof err->message, "/dev/kvm does not exist");
        return -1;
    }
    made.creates++;
    made.cpus = c->cpus;
    made.memory = c->memory;
    snprintf(made.cmdline, sizeof made.cmdline, "%s", c->cmdline ? c->cmdline : "");
    snprintf(made.kernel, sizeof made.kernel, "%s", c->kernel ? c->kernel : "");
    snprintf(made.vcpu_name, sizeof made.vcpu_name, "%s", c->vcpu_name ? c->vcpu_name : "");
    made.ndisks = c->ndisks;
    for (unsigned i = 0; i < c->ndisks; i++) {
        snprintf(made.disk_paths[i], sizeof made.disk_paths[i], "%s", c->disks[i].path);
        made.disk_ro[i] = c->disks[i].read_only;
    }
    made.nnets = c->nnets;
    for (unsigned i = 0; i < c->nnets; i++) {
        snprintf(made.taps[i], sizeof made.taps[i], "%s", c->nets[i].tap_name);
        made.has_mac[i] = c->nets[i].has_mac;
    }
    made.vsock_cid = c->vsock_uds ? c->vsock_cid : 0;
    made.entropy = c->entropy;
    made.balloon = c->balloon;
    made.balloon_flags = c->balloon_flags;
    made.balloon_stats_s = c->balloon_stats_s;
    made.console_in = c->console_in;
    made.console_out = c->console_out;
    the_vm = (vmlet_vm){ .state = VMLET_STATE_CREATED };
    *out = &the_vm;
    return 0;
}

#include "fake_vm_lifecycle.h"

int vmlet_vm_request_stop(vmlet_vm *vm)
{
    vm->stop_requests++;
    return 0;
}

/* What the fake VM's disks have read: the tests' "fake I/O". */
static uint64_t disk_read_bytes[VMLET_MAX_DISKS];

int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque)
{
    (void)vm;
    fn(opaque, "vcpu0", "kvm_exits", 345);
    for (unsigned i = 0; i < made.ndisks; i++) {
        char group[16];
        snprintf(group, sizeof group, "disk%u", i);
        fn(opaque, group, "read_bytes", disk_read_bytes[i]);
    }
    return 0;
}

#include "fake_balloon_api.h"
#include "fake_snapshot_api.h"
#include "fake_fc_snapshot.h"
#include "metrics_json.h"
#include "fake_disk_api.h"

/* ---- helpers ------------------------------------------------------------------ */

struct fx {
    struct fc_vmm *fc;
    char dir[64];
    char kernel[128], initrd[128], disk[128], disk2[128], log[128], metrics[128];
};

static void touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/vmlet-fc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->kernel, sizeof f->kernel, "%s/vmlinuz", f->dir);
    snprintf(f->initrd, sizeof f->initrd, "%s/initrd", f->dir);
    snprintf(f->disk, sizeof f->disk, "%s/root.img", f->dir);
    snprintf(f->disk2, sizeof f->disk2, "%s/data.img", f->dir);
    snprintf(f->log, sizeof f->log, "%s/fc.log", f->dir);
    snprintf(f->metrics, sizeof f->metrics, "%s/metrics", f->dir);
    touch(f->kernel);
    touch(f->initrd);
    touch(f->disk);
    touch(f->disk2);
    struct fc_host host = { .id = "test-vm", .console_in = 5, .console_out = 6 };
    f->fc = fc_vmm_new(&host);
    assert_non_null(f->fc);
    memset(&made, 0, sizeof made);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fc_vmm_free(f->fc);
    const char *names[] = { f->kernel, f->initrd, f->disk, f->disk2, f->log, f->metrics };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unlink(names[i]);
    rmdir(f->dir);
    free(f);
    return 0;
}

static char last_body[8192];

/* METHOD PATH [JSON] through the real HTTP parser; returns the status and
 * keeps the answer's body in last_body. */
static int req(struct fx *f, const char *method, const char *path, const char *json)
{
    static char text[HTTP_MAX_HEAD + HTTP_MAX_BODY];
    int n = json ? snprintf(text, sizeof text,
                            "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            method, path, strlen(json), json)
                 : snprintf(text, sizeof text, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    struct http_request r;
    assert_int_equal(http_parse_request(text, (size_t)n, &r), n);
    char *body = NULL;
    int status = fc_vmm_dispatch(&r, f->fc, &body);
    snprintf(last_body, sizeof last_body, "%s", body ? body : "");
    free(body);
    if (status == 204)
        assert_string_equal(last_body, "");
    return status;
}

/* A 400 whose fault_message contains want. */
static void bad(struct fx *f, const char *method, const char *path, const char *json,
                const char *want)
{
    int status = req(f, method, path, json);
    if (status != 400 || !strstr(last_body, want) || !strstr(last_body, "\"fault_message\""))
        fail_msg("%s %s %s: %d %s (want 400 with '%s')", method, path, json ? json : "", status,
                 last_body, want);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char bufs[4][2048];
    static int next;
    char *b = bufs[next++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof bufs[0], f, ap);
    va_end(ap);
    return b;
}

static void boot_source(struct fx *f)
{
    assert_int_equal(req(f, "PUT", "/boot-source",
                         fmt("{\"kernel_image_path\": \"%s\", \"initrd_path\": \"%s\", "
                             "\"boot_args\": \"console=ttyS0 quiet\"}",
                             f->kernel, f->initrd)),
                     204);
}

/* ---- pre-boot resources ------------------------------------------------------- */

static void info_before_boot(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "GET", "/", NULL), 200);
    assert_string_equal(last_body, "{\"id\":\"test-vm\",\"state\":\"Not started\","
                                   "\"vmm_version\":\"9.9.9\",\"app_name\":\"vmlet\"}");
    assert_int_equal(req(f, "GET", "/version", NULL), 200);
    assert_string_equal(last_body, "{\"firecracker_version\":\"" FC_API_VERSION "\"}");
    assert_int_equal(req(f, "GET", "/machine-config", NULL), 200);
    assert_string_equal(last_body, "{\"vcpu_count\":1,\"mem_size_mib\":128,\"smt\":false,"
                                   "\"track_dirty_pages\":false,\"huge_pages\":\"None\"}");
}

static void boot_source_bodies(void **state)
{
    struct fx *f = *state;
    boot_source(f);
    assert_int_equal(req(f, "PUT", "/boot-source",
                         fmt("{\"kernel_image_path\": \"%s\", \"initrd_path\": null}", f->kernel)),
                     204);
    bad(f, "PUT", "/boot-source", "{\"boot_args\": \"x\"}",
        "boot-source.kernel_image_path: missing");
    bad(f, "PUT", "/boot-source", "{\"kernel_image_path\": 7}",
        "boot-source.kernel_image_path: expected a string");
    bad(f, "PUT", "/boot-source", fmt("{\"kernel_image_path\": \"%s\", \"kernel\": 1}", f->kernel),
        "boot-source.kernel: unknown key");
    bad(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"/nonexistent/vmlinuz\"}",
        "cannot open /nonexistent/vmlinuz");
    bad(f, "PUT", "/boot-source",
        fmt("{\"kernel_image_path\": \"%s\", \"initrd_path\": \"/nonexistent/i\"}", f->kernel),
        "boot-source.initrd_path: cannot open");
    /* A message quoting a long path is cut on a character boundary. */
    char *longpath = malloc(1024);
    strcpy(longpath, "{\"kernel_image_path\": \"/nonexistent/");
    for (int i = 0; i < 150; i++)
        strcat(longpath, "\xc3\xa9"); /* é */
    strcat(longpath, "\"}");
    bad(f, "PUT", "/boot-source", longpath, "cannot open /nonexistent/\xc3\xa9");
    size_t n = strlen(last_body);
    assert_true(n < 300);
    assert_string_equal(last_body + n - 2, "\"}");
    assert_true(((unsigned char)last_body[n - 3] & 0xc0) != 0xc0); /* no lead byte alone */
    assert_true(last_body[n - 3] != '\xc3');
    free(longpath);
    bad(f, "PUT", "/boot-source", "{\"kernel_image_path\": ", "line 1");
    bad(f, "PUT", "/boot-source", "[1]", "expected an object");
    bad(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"a\", \"kernel_image_path\": \"b\"}",
        "duplicate key");
}

static void machine_config_bodies(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/machine-config",
                         "{\"vcpu_count\": 2, \"mem_size_mib\": 512, \"smt\": false, "
                         "\"track_dirty_pages\": false, \"cpu_template\": \"None\", "
                         "\"huge_pages\": \"None\"}"),
                     204);
    assert_int_equal(req(f, "GET", "/machine-config", NULL), 200);
    assert_non_null(strstr(last_body, "\"vcpu_count\":2,\"mem_size_mib\":512"));
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 2}", "machine-config.mem_size_mib: missing");
    bad(f, "PUT", "/machine-config", "{\"mem_size_mib\": 64}",
        "machine-config.vcpu_count: missing");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 64}",
        "machine-config.vcpu_count: 0 is out of range");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 33, \"mem_size_mib\": 64}",
        "out of range; give 1 to 32");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 64}",
        "expected a whole number");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 1.5, \"mem_size_mib\": 64}",
        "not a whole number");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 8}",
        "mem_size_mib: 8 is out of range");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"smt\": true}",
        "machine-config.smt: SMT");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"smt\": 1}",
        "expected true or false");
    bad(f, "PUT", "/machine-config",
        "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"track_dirty_pages\": true}",
        "track_dirty_pages: dirty page tracking");
    bad(f, "PUT", "/machine-config",
        "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"cpu_template\": \"T2\"}",
        "cpu_template: CPU templates are not supported");
    bad(f, "PUT", "/machine-config",
        "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"huge_pages\": \"2M\"}",
        "huge_pages: huge pages are not supported");
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"gdb\": 1}",
        "machine-config.gdb: unknown key");
    /* A refused body changes nothing; a PATCH changes only what it names. */
    assert_int_equal(req(f, "PATCH", "/machine-config", "{\"vcpu_count\": 4}"), 204);
    assert_int_equal(req(f, "GET", "/machine-config", NULL), 200);
    assert_non_null(strstr(last_body, "\"vcpu_count\":4,\"mem_size_mib\":512"));
    bad(f, "PATCH", "/machine-config", "{\"smt\": true}", "SMT");
}

static void drive_bodies(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/drives/data",
                         fmt("{\"drive_id\": \"data\", \"path_on_host\": \"%s\", "
                             "\"is_root_device\": false, \"is_read_only\": true, "
                             "\"rate_limiter\": {}, \"cache_type\": \"Writeback\", "
                             "\"io_engine\": \"Async\", \"partuuid\": null}",
                             f->disk2)),
                     204);
    assert_int_equal(req(f, "PUT", "/drives/rootfs",
                         fmt("{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", "
                             "\"is_root_device\": true}",
                             f->disk)),
                     204);
    /* The same ID again replaces the drive, in place. */
    assert_int_equal(req(f, "PUT", "/drives/data",
                         fmt("{\"drive_id\": \"data\", \"path_on_host\": \"%s\", "
                             "\"is_root_device\": false}",
                             f->disk2)),
                     204);
    assert_int_equal(req(f, "GET", "/vm/config", NULL), 200);
    const char *first = strstr(last_body, "\"drive_id\":\"data\"");
    assert_non_null(first);
    assert_null(strstr(first + 1, "\"drive_id\":\"data\""));
    assert_non_null(strstr(first, "\"is_read_only\":false"));

    const char *root2 =
        "{\"drive_id\": \"other\", \"path_on_host\": \"x\", \"is_root_device\": true}";
    bad(f, "PUT", "/drives/other", root2, "drive rootfs is already the root device");
    bad(f, "PUT", "/drives/other",
        "{\"drive_id\": \"else\", \"path_on_host\": \"x\", \"is_root_device\": false}",
        "drives.drive_id: the ID in the path and the ID in the body differ");
    bad(f, "PUT", "/drives/bad-id",
        "{\"drive_id\": \"bad-id\", \"path_on_host\": \"x\", \"is_root_device\": false}",
        "alphanumeric characters and underscores");
    bad(f, "PUT", "/drives/d", "{\"drive_id\": \"d\", \"path_on_host\": \"x\"}",
        "drives.is_root_device: missing");
    bad(f, "PUT", "/drives/d", "{\"drive_id\": \"d\", \"is_root_device\": false}",
        "drives.path_on_host: missing");
    bad(f, "PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"path_on_host\": \"x\", \"is_root_device\": 0}",
        "drives.is_root_device: expected true or false");
    bad(f, "PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"path_on_host\": \"x\", \"is_root_device\": false, "
        "\"rate_limiter\": {\"bandwidth\": {\"size\": 1, \"refill_time\": 100}}}",
        "drives.rate_limiter.bandwidth: rate limiting is not supported");
    bad(f, "PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"path_on_host\": \"x\", \"is_root_device\": false, "
        "\"rate_limiter\": {\"tokens\": 1}}",
        "drives.rate_limiter.tokens: unknown key");
    bad(f, "PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"socket\": \"/v.sock\", \"is_root_device\": false}",
        "drives.socket: a vhost-user drive is not supported");
    bad(f, "PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"path_on_host\": \"x\", \"is_root_device\": false, "
        "\"cache_type\": \"None\"}",
        "drives.cache_type: give \\\"Unsafe\\\" or \\\"Writeback\\\"");
    bad(f, "PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"path_on_host\": \"x\", \"is_root_device\": false, "
        "\"partuuid\": \"1 init=/bin/sh\"}",
        "drives.partuuid: a partition UUID has only hex digits");
    bad(f, "PUT", "/drives", "{\"drive_id\": \"d\"}", "Invalid request method and/or path");
    /* At most VMLET_MAX_DISKS. */
    for (unsigned i = 2; i < VMLET_MAX_DISKS; i++)
        assert_int_equal(req(f, "PUT", fmt("/drives/d%u", i),
                             fmt("{\"drive_id\": \"d%u\", \"path_on_host\": \"x\", "
                                 "\"is_root_device\": false}",
                                 i)),
                         204);
    bad(f, "PUT", "/drives/one_more",
        "{\"drive_id\": \"one_more\", \"path_on_host\": \"x\", \"is_root_device\": false}",
        "at most 16 drives");
}

static void network_bodies(void **state)
{
    struct fx *f = *state;
    assert_int_equal(req(f, "PUT", "/network-interfaces/eth0",
                         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", "
                         "\"guest_mac\": \"06:00:ac:10:00:02\", \"rx_rate_limiter\": {}, "
                         "\"tx_rate_limiter\": {}}"),
                     204);
    bad(f, "PUT", "/network-interfaces/eth1", "{\"iface_id\": \"eth1\"}",
        "network-interfaces.host_dev_name: missing");
    bad(f, "PUT", "/network-interfaces/eth1",
        "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap0,mac=00:00:00:00:00:01\"}",
        "network-interfaces.host_dev_name");
    bad(f, "PUT", "/network-interfaces/eth1",
        "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"guest_mac\": \"06:00:ac\"}",
        "network-interfaces");
    bad(f, "PUT", "/network-interfaces/eth1",
        "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"guest_mac\": \"zz\"}",
        "network-interfaces.guest_mac: give a MAC address");
    bad(f, "PUT", "/network-interfaces/eth1",
        "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"mtu\": 9000}",
        "network-interfaces.mtu: setting the MTU is not supported");
    bad(f, "PUT", "/network-interfaces/eth1",
        "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"tx_rate_limiter\": "
        "{\"ops\": {\"size\": 1, \"refill_time\": 1}}}",
        "network-interfaces.tx_rate_limiter.ops: rate limiting is not supported");
    bad(f, "PUT", "/network-interfaces/eth1",
        "{\"iface_id\": \"eth1\", \"host_dev_name\": \"a_very_long_tap_name\"}", "too long");
}

static void vsock_entropy_balloon_bodies(void **state)
{
    struct fx *f = *state;
    assert_int_equal(
        req(f, "PUT", "/vsock",
            "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\", \"vsock_id\": \"root\"}"),
        204);
    bad(f, "PUT", "/vsock", "{\"guest_cid\": 2, \"uds_path\": \"/tmp/v.sock\"}",
        "vsock.guest_cid: 2 is out of range");
    bad(f, "PUT", "/vsock", "{\"guest_cid\": 3}", "vsock.uds_path: missing");
    assert_int_equal(req(f, "PUT", "/entropy", "{}"), 204);
    assert_int_equal(req(f, "PUT", "/entropy", "{\"rate_limiter\": null}"), 204);
    bad(f, "PUT", "/entropy", "{\"rate_limiter\": {\"bandwidth\": {\"size\": 1}}}",
        "entropy.rate_limiter.bandwidth: rate limiting");
    bad(f, "PUT", "/entropy", "{\"rate_limiter\": 5}", "expected an object");

    bad(f, "GET", "/balloon", NULL, "No balloon device");
    assert_int_equal(req(f, "PUT", "/balloon",
                         "{\"amount_mib\": 16, \"deflate_on_oom\": true, "
                         "\"stats_polling_interval_s\": 5, \"free_page_reporting\": true}"),
                     204);
    assert_int_equal(req(f, "GET", "/balloon", NULL), 200);
    assert_string_equal(last_body, "{\"amount_mib\":16,\"deflate_on_oom\":true,"
                                   "\"stats_polling_interval_s\":5,\"free_page_reporting\":true}");
    assert_int_equal(req(f, "PATCH", "/balloon", "{\"amount_mib\": 32}"), 204);
    assert_int_equal(req(f, "GET", "/balloon", NULL), 200);
    assert_non_null(strstr(last_body, "\"amount_mib\":32"));
    bad(f, "PATCH", "/balloon", "{\"amount_mib\": -1}", "balloon.amount_mib");
    bad(f, "PATCH", "/balloon", "{\"amount_mib\": 1, \"x\": 1}", "balloon.x: unknown key");
    bad(f, "PUT", "/balloon", "{\"amount_mib\": 16}", "balloon.deflate_on_oom: missing");
    bad(f, "PUT", "/balloon",
        "{\"amount_mib\": 16, \"deflate_on_oom\": true, "
        "\"free_page_hinting\": true}",
        "balloon.free_page_hinting: free page hinting is not supported");
    bad(f, "PUT", "/balloon",
        "{\"amount_mib\": 16, \"deflate_on_oom\": true, \"stats_polling_interval_s\": 99999}",
        "stats_polling_interval_s: 99999 is out of range");
    bad(f, "GET", "/balloon/statistics", NULL, "not supported before starting");
}

/* The metrics file's last line, parsed (every line must end in '\n'),
 * and how many lines there are. */
static cJSON *last_metrics_line(struct fx *f, int *lines)
{
    static char buf[1 << 16];
    int fd = open(f->metrics, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    *lines = 0;
    const char *last = NULL;
    for (char *p = buf; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(!strncmp(p, "{\"utc_timestamp_ms\":", 20));
        last = p;
        ++*lines;
        p = nl + 1;
    }
    cJSON *doc = last ? cJSON_ParseWithLength(last, (size_t)(strchr(last, '\n') - last)) : NULL;
    if (last)
        assert_true(cJSON_IsObject(doc));
    return doc;
}

static void logger_and_metrics(void **state)
{
    struct fx *f = *state;
    /* No metrics file yet: nothing to write, and no error (as Firecracker). */
    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}"), 204);
    assert_int_equal(req(f, "PUT", "/logger",
                         fmt("{\"log_path\": \"%s\", \"level\": \"debug\", \"show_level\": true, "
                             "\"show_log_origin\": false}",
                             f->log)),
                     204);
    bad(f, "PUT", "/logger", "{\"level\": \"Loud\"}", "logger.level: give \\\"Error\\\"");
    bad(f, "PUT", "/logger", "{\"log_path\": \"/nonexistent/dir/log\"}",
        "logger.log_path: cannot open /nonexistent/dir/log");
    assert_int_equal(req(f, "PUT", "/metrics", fmt("{\"metrics_path\": \"%s\"}", f->metrics)), 204);
    bad(f, "PUT", "/metrics", "{}", "metrics.metrics_path: missing");
    bad(f, "PUT", "/metrics", fmt("{\"metrics_path\": \"%s\", \"emit_id\": true}", f->metrics),
        "metrics.emit_id: emit_id is not supported");
    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}"), 204);
    fc_vmm_log(f->fc, "Info", "hello %d", 42);
    fc_vmm_log(f->fc, "Trace", "not at debug level");

    int lines;
    cJSON *m = last_metrics_line(f, &lines);
    assert_int_equal(lines, 1);
    /* Before InstanceStart: the requests so far (their errors are fails),
     * with the first FlushMetrics (no file then, no fail), as Firecracker
     * counts them. */
    assert_int_equal(metric_get(m, "put_api_requests", "logger_count"), 3);
    assert_int_equal(metric_get(m, "put_api_requests", "logger_fails"), 2);
    assert_int_equal(metric_get(m, "put_api_requests", "metrics_count"), 3);
    assert_int_equal(metric_get(m, "put_api_requests", "metrics_fails"), 2);
    assert_int_equal(metric_get(m, "put_api_requests", "actions_count"), 1);
    assert_int_equal(metric_get(m, "put_api_requests", "actions_fails"), 0);
    assert_int_equal(metric_get(m, "block", "read_bytes"), 0);
    cJSON_Delete(m);
    char buf[1024] = "";
    int fd = open(f->log, O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    assert_non_null(strstr(buf, " [test-vm:main:Info] hello 42\n"));
    assert_null(strstr(buf, "not at debug level"));
}

/* The lines of a microVM's life: the first at InstanceStart, one per
 * FlushMetrics, one a minute (the clock given by the test); the drives
 * under their IDs (the root drive is the library's disk 0 whatever the
 * PUT order), counters since the previous line. */
static void metrics_lines(void **state)
{
    struct fx *f = *state;
    memset(disk_read_bytes, 0, sizeof disk_read_bytes);
    assert_int_equal(req(f, "PUT", "/metrics", fmt("{\"metrics_path\": \"%s\"}", f->metrics)), 204);
    boot_source(f);
    const char *put = "{\"drive_id\": \"%s\", \"path_on_host\": \"%s\", \"is_root_device\": %s, "
                      "\"is_read_only\": false}";
    assert_int_equal(req(f, "PUT", "/drives/drive_0", fmt(put, "drive_0", f->disk2, "false")), 204);
    assert_int_equal(req(f, "PUT", "/drives/rootfs", fmt(put, "rootfs", f->disk, "true")), 204);
    assert_int_equal(req(f, "PUT", "/drives/other", "{\"drive_id\": \"other\"}"), 400);
    assert_int_equal(req(f, "GET", "/", NULL), 200);
    assert_int_equal(fc_vmm_periodic_metrics(f->fc, 5), -1); /* no VM: no clock */
    int lines;
    cJSON *m = last_metrics_line(f, &lines);
    assert_int_equal(lines, 0);
    assert_null(m);

    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    m = last_metrics_line(f, &lines);
    assert_int_equal(lines, 1);
    assert_int_equal(metric_get(m, "put_api_requests", "drive_count"), 3);
    assert_int_equal(metric_get(m, "put_api_requests", "drive_fails"), 1);
    assert_int_equal(metric_get(m, "put_api_requests", "boot_source_count"), 1);
    assert_int_equal(metric_get(m, "put_api_requests", "metrics_count"), 1);
    assert_int_equal(metric_get(m, "get_api_requests", "instance_info_count"), 1);
    assert_int_equal(metric_get(m, "block_rootfs", "read_bytes"), 0);
    assert_int_equal(metric_get(m, "block_drive_0", "read_bytes"), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(m, "block_other"));
    cJSON_Delete(m);

    /* Fake I/O: the guest reads its root drive and drive_0; Kata swaps
     * drive_0's file. */
    disk_read_bytes[0] = 8192;
    disk_read_bytes[1] = 512;
    assert_int_equal(req(f, "PATCH", "/drives/drive_0",
                         fmt("{\"drive_id\": \"drive_0\", \"path_on_host\": \"%s\"}", f->disk)),
                     204);
    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}"), 204);
    m = last_metrics_line(f, &lines);
    assert_int_equal(lines, 2);
    assert_int_equal(metric_get(m, "block_rootfs", "read_bytes"), 8192);
    assert_int_equal(metric_get(m, "block_drive_0", "read_bytes"), 512);
    assert_int_equal(metric_get(m, "block", "read_bytes"), 8192 + 512);
    assert_int_equal(metric_get(m, "block_drive_0", "update_count"), 1);
    assert_int_equal(metric_get(m, "block_rootfs", "update_count"), 0);
    assert_int_equal(metric_get(m, "patch_api_requests", "drive_count"), 1);
    assert_int_equal(metric_get(m, "put_api_requests", "actions_count"), 1); /* InstanceStart */
    assert_int_equal(metric_get(m, "put_api_requests", "drive_count"), 0);
    cJSON_Delete(m);

    /* The minute starts at the first call once the VM runs. */
    assert_int_equal(fc_vmm_periodic_metrics(f->fc, 1000), 60000);
    assert_int_equal(fc_vmm_periodic_metrics(f->fc, 60999), 1);
    m = last_metrics_line(f, &lines);
    assert_int_equal(lines, 2);
    cJSON_Delete(m);
    disk_read_bytes[0] += 4096;
    assert_int_equal(fc_vmm_periodic_metrics(f->fc, 61000), 60000);
    m = last_metrics_line(f, &lines);
    assert_int_equal(lines, 3);
    assert_int_equal(metric_get(m, "block_rootfs", "read_bytes"), 4096);
    assert_int_equal(metric_get(m, "block_drive_0", "read_bytes"), 0);
    assert_int_equal(metric_get(m, "put_api_requests", "actions_count"), 1); /* FlushMetrics */
    cJSON_Delete(m);
    /* Far behind (a stopped process): one line, then a minute from now. */
    assert_int_equal(fc_vmm_periodic_metrics(f->fc, 500000), 60000);
    assert_int_equal(fc_vmm_periodic_metrics(f->fc, 500001), 59999);
    m = last_metrics_line(f, &lines);
    assert_int_equal(lines, 4);
    assert_int_equal(metric_get(m, "block_rootfs", "read_bytes"), 0);
    cJSON_Delete(m);
}

/* ---- routing ----------------------------------------------------------------- */

static void routing(void **state)
{
    struct fx *f = *state;
    bad(f, "GET", "/nope", NULL, "Invalid request method and/or path: GET /nope.");
    bad(f, "DELETE", "/drives/x", NULL, "Invalid request method and/or path");
    bad(f, "PUT", "/boot-source/x", "{}", "Invalid request method and/or path");
    bad(f, "GET", "/drives/a/b", NULL, "Invalid request method and/or path");
    bad(f, "GET", "/", "{}", "GET request cannot have a body.");
    bad(f, "PUT", "/boot-source", NULL, "Empty PUT request.");
    bad(f, "PATCH", "/vm", NULL, "Empty PATCH request.");
    bad(f, "PUT", "/mmds", "{}", "PUT /mmds is not supported by vmlet");
    bad(f, "PUT", "/mmds/config", "{\"network_interfaces\": []}", "is not supported by vmlet");
    bad(f, "PUT", "/cpu-config", "{}", "not supported by vmlet");
    bad(f, "PUT", "/serial", "{}", "not supported by vmlet");
    bad(f, "PUT", "/hotplug/memory", "{}", "not supported by vmlet");
    bad(f, "PUT", "/snapshot/load", "{\"snapshot_path\": \"x\"}",
        "give either mem_backend or mem_file_path");
    bad(f, "PUT", "/actions", "{\"action_type\": \"Reboot\"}", "\\\"Reboot\\\" is not an action");
    bad(f, "PUT", "/actions", "{\"action_type\": 1}", "actions.action_type: expected a string");
    bad(f, "PUT", "/actions", "{}", "actions.action_type: missing");
    bad(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\", \"x\": 1}",
        "actions.x: unknown key");
    bad(f, "PUT", "/actions", "\"InstanceStart\"", "expected an object");
    /* Bodies the strict scan refuses, whatever cJSON would make of them. */
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 01, \"mem_size_mib\": 64}", "leading zeros");
    char deep[64] = "";
    for (int i = 0; i < 10; i++)
        strcat(deep, "[");
    bad(f, "PUT", "/vsock", deep, "nested more than 8 levels deep; a request body");
}

/* ---- the state machine ------------------------------------------------------- */

static void running_only_before_boot(void **state)
{
    struct fx *f = *state;
    const char *msg = "The requested operation is not supported before starting the microVM.";
    bad(f, "PATCH", "/vm", "{\"state\": \"Paused\"}", msg);
    bad(f, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", msg);
    bad(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
        "no boot source: PUT /boot-source");
    assert_int_equal(made.creates, 0);
    assert_null(fc_vmm_vm(f->fc));
}

static void instance_start_builds_the_config(void **state)
{
    struct fx *f = *state;
    boot_source(f);
    assert_int_equal(req(f, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}"),
                     204);
    assert_int_equal(req(f, "PUT", "/drives/data",
                         fmt("{\"drive_id\": \"data\", \"path_on_host\": \"%s\", "
                             "\"is_root_device\": false, \"is_read_only\": true}",
                             f->disk2)),
                     204);
    assert_int_equal(req(f, "PUT", "/drives/rootfs",
                         fmt("{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", "
                             "\"is_root_device\": true, \"is_read_only\": false}",
                             f->disk)),
                     204);
    assert_int_equal(req(f, "PUT", "/network-interfaces/eth0",
                         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap7\"}"),
                     204);
    assert_int_equal(req(f, "PUT", "/vsock", "{\"guest_cid\": 52, \"uds_path\": \"/tmp/v.sock\"}"),
                     204);
    assert_int_equal(req(f, "PUT", "/balloon",
                         "{\"amount_mib\": 64, \"deflate_on_oom\": true, "
                         "\"free_page_reporting\": true}"),
                     204);

    /* A create that fails leaves the microVM not started, and fixable. */
    made.fail = true;
    bad(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", "/dev/kvm does not exist");
    assert_null(fc_vmm_vm(f->fc));
    assert_int_equal(req(f, "PUT", "/entropy", "{}"), 204);

    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_int_equal(made.creates, 1);
    assert_int_equal(made.cpus, 2);
    assert_int_equal(made.memory, 256ull << 20);
    assert_string_equal(made.kernel, f->kernel);
    assert_string_equal(made.cmdline, "console=ttyS0 quiet root=/dev/vda rw");
    assert_string_equal(made.vcpu_name, "fc_vcpu ");
    assert_int_equal(made.ndisks, 2); /* the root drive first: the guest's vda */
    assert_string_equal(made.disk_paths[0], f->disk);
    assert_false(made.disk_ro[0]);
    assert_string_equal(made.disk_paths[1], f->disk2);
    assert_true(made.disk_ro[1]);
    assert_int_equal(made.nnets, 1);
    assert_string_equal(made.taps[0], "tap7");
    assert_int_equal(made.vsock_cid, 52);
    assert_true(made.entropy);
    assert_true(made.balloon);
    assert_int_equal(made.balloon_flags,
                     VMLET_BALLOON_DEFLATE_ON_OOM | VMLET_BALLOON_FREE_PAGE_REPORTING);
    assert_int_equal(the_vm.balloon_target, 64ull << 20);
    assert_int_equal(made.console_in, 5);
    assert_int_equal(made.console_out, 6);
    assert_non_null(fc_vmm_vm(f->fc));
}

static void pre_boot_only_after_boot(void **state)
{
    struct fx *f = *state;
    boot_source(f);
    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_string_equal(made.cmdline, "console=ttyS0 quiet"); /* no root drive, no root= */
    const char *msg = "The requested operation is not supported after starting the microVM.";
    bad(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", msg);
    bad(f, "PUT", "/boot-source", fmt("{\"kernel_image_path\": \"%s\"}", f->kernel), msg);
    bad(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}", msg);
    bad(f, "PATCH", "/machine-config", "{\"vcpu_count\": 1}", msg);
    bad(f, "PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"path_on_host\": \"x\", "
        "\"is_root_device\": false}",
        msg);
    bad(f, "PUT", "/network-interfaces/e", "{\"iface_id\": \"e\", \"host_dev_name\": \"t\"}", msg);
    bad(f, "PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"v\"}", msg);
    bad(f, "PUT", "/logger", "{}", msg);
    bad(f, "PUT", "/metrics", "{\"metrics_path\": \"m\"}", msg);
    bad(f, "PUT", "/entropy", "{}", msg);
    bad(f, "PUT", "/balloon", "{\"amount_mib\": 1, \"deflate_on_oom\": true}", msg);
    assert_int_equal(made.creates, 1);
    /* What still answers: the instance, the config, the machine. */
    assert_int_equal(req(f, "GET", "/vm/config", NULL), 200);
    assert_int_equal(req(f, "GET", "/machine-config", NULL), 200);
}

static void running_requests(void **state)
{
    struct fx *f = *state;
    boot_source(f);
    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_int_equal(req(f, "GET", "/", NULL), 200);
    assert_non_null(strstr(last_body, "\"state\":\"Running\""));

    assert_int_equal(req(f, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
    assert_int_equal(req(f, "GET", "/", NULL), 200);
    assert_non_null(strstr(last_body, "\"state\":\"Paused\""));
    bad(f, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", "paused; resume it first");
    assert_int_equal(the_vm.stop_requests, 0);
    bad(f, "PATCH", "/vm", "{\"state\": \"Frozen\"}", "\\\"state\\\" must be");
    /* Bodies cli/api.c answers are read strictly first: bad UTF-8 is not
     * quoted back (found by fuzz_fc_api). */
    bad(f, "PATCH", "/vm", "{\"state\": \"Pau\xc2tsed\"}", "invalid UTF-8");
    assert_int_equal(req(f, "PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);
    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}"), 204);
    assert_int_equal(the_vm.stop_requests, 1);

    /* The balloon of a running VM goes to the library; no balloon there
     * (the fake has one on any VM) would be its error. */
    assert_int_equal(req(f, "PATCH", "/balloon", "{\"amount_mib\": 100}"), 204);
    assert_int_equal(the_vm.balloon_target, 100ull << 20);
    assert_int_equal(req(f, "GET", "/balloon/statistics", NULL), 200);
    bad(f, "PATCH", "/balloon", "{\"amount_mib\": 4096}", "too large");
    bad(f, "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}",
        "the VM must be paused to be saved");

    the_vm.state = VMLET_STATE_STOPPED;
    assert_int_equal(req(f, "GET", "/", NULL), 200);
    assert_non_null(strstr(last_body, "\"state\":\"Stopped\""));
    bad(f, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", "has stopped");
}

/* PATCH /network-interfaces/{id}: Firecracker's changes rate limiters
 * only; empty ones (Kata's) change nothing here, a bucket is refused, and
 * the interface must be one given before InstanceStart. */
static void patch_network_interfaces(void **state)
{
    struct fx *f = *state;
    boot_source(f);
    assert_int_equal(req(f, "PUT", "/network-interfaces/eth0",
                         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap7\"}"),
                     204);
    const char *empty =
        "{\"iface_id\": \"eth0\", \"rx_rate_limiter\": {}, \"tx_rate_limiter\": {}}";
    bad(f, "PATCH", "/network-interfaces/eth0", empty,
        "The requested operation is not supported before starting the microVM.");
    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_int_equal(req(f, "PATCH", "/network-interfaces/eth0", empty), 204);
    assert_int_equal(req(f, "PATCH", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\"}"), 204);
    bad(f, "PATCH", "/network-interfaces/eth0",
        "{\"iface_id\": \"eth0\", \"tx_rate_limiter\": {\"ops\": {\"size\": 1, "
        "\"refill_time\": 100}}}",
        "network-interfaces.tx_rate_limiter.ops: rate limiting is not supported");
    bad(f, "PATCH", "/network-interfaces/eth9", "{\"iface_id\": \"eth9\"}",
        "network-interfaces.iface_id: no interface eth9 was given before InstanceStart");
    bad(f, "PATCH", "/network-interfaces/eth0", "{\"iface_id\": \"eth1\"}",
        "the ID in the path and the ID in the body differ");
    bad(f, "PATCH", "/network-interfaces/eth0",
        "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap8\"}",
        "network-interfaces.host_dev_name: unknown key");
    bad(f, "PATCH", "/network-interfaces/eth0", "{}", "network-interfaces.iface_id: missing");
}

/* ---- snapshots ------------------------------------------------------------------ */

/* PUT /snapshot/load before anything is configured: its body checked
 * completely, then the library asked for the files, with the microVM's
 * console, Firecracker's vCPU names, paused unless resume_vm, and the
 * overrides; afterwards the microVM is started, and PUT /snapshot/create
 * on it once paused writes the two files. */
static void snapshots(void **state)
{
    struct fx *f = *state;
    const char *mb = "\"mem_backend\": {\"backend_path\": \"/tmp/m\", \"backend_type\": \"File\"}";
    bad(f, "PUT", "/snapshot/load",
        fmt("{\"snapshot_path\": \"/tmp/s\", \"mem_file_path\": \"/tmp/m\", %s}", mb),
        "give either mem_backend or mem_file_path");
    bad(f, "PUT", "/snapshot/load",
        "{\"snapshot_path\": \"/tmp/s\", \"mem_backend\": {\"backend_path\": \"/tmp/m\", "
        "\"backend_type\": \"Uffd\"}}",
        "snapshot/load.mem_backend.backend_type: a userfaultfd backend: not supported by vmlet");
    bad(f, "PUT", "/snapshot/load",
        fmt("{\"snapshot_path\": \"/tmp/s\", %s, \"enable_diff_snapshots\": true}", mb),
        "diff snapshots: not supported by vmlet");
    bad(f, "PUT", "/snapshot/load",
        fmt("{\"snapshot_path\": \"/tmp/s\", %s, \"network_overrides\": [{\"iface_id\": \"a\", "
            "\"host_dev_name\": \"t1\"}, {\"iface_id\": \"b\", \"host_dev_name\": \"t2\"}]}",
            mb),
        "give at most one override");
    bad(f, "PUT", "/snapshot/load",
        fmt("{\"snapshot_path\": \"/tmp/s\", %s, \"network_overrides\": [{\"iface_id\": \"a\", "
            "\"host_dev_name\": \"t 1\"}]}",
            mb),
        "a TAP device name has only");
    bad(f, "PUT", "/snapshot/load", fmt("{\"snapshot_path\": \"/tmp/s\", %s, \"x\": 1}", mb),
        "snapshot/load.x: unknown key");
    bad(f, "PUT", "/snapshot/load", fmt("{\"snapshot_path\": \"/nonexistent/s\", %s}", mb),
        "snapshot /nonexistent/s: cannot open its state file");
    assert_int_equal(fake_restore.restores, 0);
    assert_null(fc_vmm_vm(f->fc));

    assert_int_equal(req(f, "PUT", "/snapshot/load",
                         fmt("{\"snapshot_path\": \"/tmp/s\", %s, \"resume_vm\": false, "
                             "\"network_overrides\": [{\"iface_id\": \"eth0\", "
                             "\"host_dev_name\": \"tap9\"}], "
                             "\"vsock_override\": {\"uds_path\": \"/tmp/v2.sock\"}}",
                             mb)),
                     204);
    assert_int_equal(fake_restore.restores, 1);
    assert_string_equal(fake_restore.state, "/tmp/s");
    assert_string_equal(fake_restore.memory, "/tmp/m");
    assert_true(fake_restore.last.paused);
    assert_string_equal(fake_restore.last.net0, "tap=tap9");
    assert_string_equal(fake_restore.last.vsock_uds, "/tmp/v2.sock");
    assert_string_equal(fake_restore.last.vcpu_name, "fc_vcpu ");
    assert_non_null(fc_vmm_vm(f->fc));
    assert_int_equal(req(f, "GET", "/machine-config", NULL), 200);
    assert_non_null(strstr(last_body, "\"mem_size_mib\":256"));
    const char *msg = "The requested operation is not supported after starting the microVM.";
    bad(f, "PUT", "/snapshot/load", fmt("{\"snapshot_path\": \"/tmp/s\", %s}", mb), msg);
    bad(f, "PUT", "/boot-source", fmt("{\"kernel_image_path\": \"%s\"}", f->kernel), msg);

    /* Create: Firecracker's two paths, a full snapshot. */
    assert_int_equal(req(f, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
    bad(f, "PUT", "/snapshot/create",
        "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"/tmp/s2\", \"mem_file_path\": "
        "\"/tmp/m2\"}",
        "diff snapshots: not supported by vmlet");
    bad(f, "PUT", "/snapshot/create", "{\"snapshot_path\": \"/tmp/s2\"}",
        "snapshot/create.mem_file_path: missing");
    bad(f, "PUT", "/snapshot/create",
        "{\"snapshot_path\": \"/nonexistent/s2\", \"mem_file_path\": \"/tmp/m2\"}", "cannot make");
    assert_int_equal(req(f, "PUT", "/snapshot/create",
                         "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"/tmp/s2\", "
                         "\"mem_file_path\": \"/tmp/m2\"}"),
                     204);
}

/* A snapshot replaces the whole machine: after any of its resources is
 * configured, a load is refused (as Firecracker does). */
static void snapshot_load_after_config(void **state)
{
    struct fx *f = *state;
    boot_source(f);
    bad(f, "PUT", "/snapshot/load",
        "{\"snapshot_path\": \"/tmp/s\", \"mem_file_path\": \"/tmp/m\"}",
        "not allowed after configuring boot-specific resources");
    bad(f, "PUT", "/snapshot/create",
        "{\"snapshot_path\": \"/tmp/s\", \"mem_file_path\": \"/tmp/m\"}",
        "not supported before starting the microVM");
}

/* PATCH /drives/{id}: Kata's block hotplug. Placeholder drives (empty
 * files) boot; a running (or paused) microVM's drive gets a new file
 * through the library, by the library's disk number (the root drive is
 * disk 0 wherever it was declared); GET /vm/config shows it; every refusal
 * names the key and changes nothing. */
static void patch_drives(void **state)
{
    struct fx *f = *state;
    char hole0[160], hole1[160];
    snprintf(hole0, sizeof hole0, "%s/drive_0", f->dir);
    snprintf(hole1, sizeof hole1, "%s/drive_1", f->dir);
    close(open(hole0, O_WRONLY | O_CREAT | O_TRUNC, 0600)); /* os.Create, as Kata */
    close(open(hole1, O_WRONLY | O_CREAT | O_TRUNC, 0600));
    memset(&disk_swaps, 0, sizeof disk_swaps);
    boot_source(f);
    const char *put = "{\"drive_id\": \"%s\", \"path_on_host\": \"%s\", \"is_root_device\": %s, "
                      "\"is_read_only\": false}";
    assert_int_equal(req(f, "PUT", "/drives/drive_0", fmt(put, "drive_0", hole0, "false")), 204);
    assert_int_equal(req(f, "PUT", "/drives/rootfs", fmt(put, "rootfs", f->disk, "true")), 204);
    assert_int_equal(req(f, "PUT", "/drives/drive_1", fmt(put, "drive_1", hole1, "false")), 204);
    const char *patch = "{\"drive_id\": \"%s\", \"path_on_host\": \"%s\"}";
    bad(f, "PATCH", "/drives/drive_0", fmt(patch, "drive_0", f->disk2),
        "The requested operation is not supported before starting the microVM.");

    assert_int_equal(req(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
    assert_int_equal(made.ndisks, 3);
    assert_string_equal(made.disk_paths[0], f->disk);
    assert_string_equal(made.disk_paths[1], hole0);
    assert_string_equal(made.disk_paths[2], hole1);
    assert_int_equal(disk_swaps.calls, 0);

    assert_int_equal(req(f, "PATCH", "/drives/drive_1", fmt(patch, "drive_1", f->disk2)), 204);
    assert_int_equal(disk_swaps.calls, 1);
    assert_int_equal(disk_swaps.index, 2);
    assert_string_equal(disk_swaps.path, f->disk2);
    assert_int_equal(req(f, "GET", "/vm/config", NULL), 200);
    assert_non_null(strstr(last_body, fmt("\"path_on_host\":\"%s\"", f->disk2)));
    assert_int_equal(req(f, "PATCH", "/drives/drive_0",
                         fmt("{\"drive_id\": \"drive_0\", \"path_on_host\": \"%s\", "
                             "\"rate_limiter\": {}}",
                             f->disk2)),
                     204);
    assert_int_equal(disk_swaps.index, 1);
    assert_int_equal(req(f, "PATCH", "/drives/rootfs", fmt(patch, "rootfs", f->disk)), 204);
    assert_int_equal(disk_swaps.index, 0);
    /* Back to the placeholder, while paused (Kata's hot unplug). */
    assert_int_equal(req(f, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
    assert_int_equal(req(f, "PATCH", "/drives/drive_1", fmt(patch, "drive_1", hole1)), 204);
    assert_int_equal(disk_swaps.index, 2);
    assert_string_equal(disk_swaps.path, hole1);
    assert_int_equal(req(f, "PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);
    /* No path: nothing to swap (an empty rate limiter changes nothing). */
    assert_int_equal(
        req(f, "PATCH", "/drives/drive_1", "{\"drive_id\": \"drive_1\", \"rate_limiter\": {}}"),
        204);
    assert_int_equal(disk_swaps.calls, 4);

    bad(f, "PATCH", "/drives/drive_1",
        "{\"drive_id\": \"drive_1\", \"rate_limiter\": {\"bandwidth\": {\"size\": 1, "
        "\"refill_time\": 100}}}",
        "drives.rate_limiter.bandwidth: rate limiting is not supported");
    bad(f, "PATCH", "/drives/drive_9", fmt(patch, "drive_9", f->disk2),
        "drives.drive_id: no drive drive_9 was given before InstanceStart");
    bad(f, "PATCH", "/drives/drive_1", fmt(patch, "drive_0", f->disk2),
        "drives.drive_id: the ID in the path and the ID in the body differ");
    bad(f, "PATCH", "/drives/drive_1", fmt("{\"path_on_host\": \"%s\"}", f->disk2),
        "drives.drive_id: missing");
    bad(f, "PATCH", "/drives/drive_1", fmt(patch, "drive_1", "/nonexistent/x.img"),
        "drives.path_on_host: disk '/nonexistent/x.img' does not exist");
    bad(f, "PATCH", "/drives/drive_1", fmt(patch, "drive_1", f->dir), "drives.path_on_host: disk");
    assert_non_null(strstr(last_body, "is not a regular file or block device"));
    bad(f, "PATCH", "/drives/drive_1", "{\"drive_id\": \"drive_1\", \"path_on_host\": 7}",
        "drives.path_on_host: expected a string");
    bad(f, "PATCH", "/drives/drive_1", "{\"drive_id\": \"drive_1\", \"path_on_host\": \"\"}",
        "drives.path_on_host");
    bad(f, "PATCH", "/drives/drive_1",
        fmt("{\"drive_id\": \"drive_1\", \"path_on_host\": \"%s\", \"is_read_only\": true}",
            f->disk2),
        "drives.is_read_only: unknown key");
    bad(f, "PATCH", "/drives/drive_1", "[]", "expected an object");
    bad(f, "PATCH", "/drives/bad-id", fmt(patch, "bad-id", f->disk2),
        "API Resource IDs can only contain");
    bad(f, "PATCH", "/drives", fmt(patch, "drive_1", f->disk2), "Invalid request method");
    assert_int_equal(disk_swaps.calls, 4);
    assert_int_equal(req(f, "GET", "/vm/config", NULL), 200);
    assert_non_null(strstr(last_body, fmt("\"path_on_host\":\"%s\"", hole1)));

    the_vm.state = VMLET_STATE_STOPPED;
    bad(f, "PATCH", "/drives/drive_1", fmt(patch, "drive_1", f->disk2),
        "drives.path_on_host: disk 2: the VM has stopped");
    unlink(hole0);
    unlink(hole1);
}

/* ---- --config-file ------------------------------------------------------------ */

static int boot_json(struct fx *f, const char *json, vmlet_error *err)
{
    return fc_vmm_boot_from_json(f->fc, json, strlen(json), err);
}

static void config_file(void **state)
{
    struct fx *f = *state;
    vmlet_error err = { 0 };
    const char *doc = fmt(
        "{\"boot-source\": {\"kernel_image_path\": \"%s\", \"boot_args\": \"x=1\"},"
        " \"machine-config\": {\"vcpu_count\": 3, \"mem_size_mib\": 300, \"smt\": false},"
        " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\","
        "   \"is_root_device\": true, \"is_read_only\": true, \"rate_limiter\": {}}],"
        " \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\","
        "   \"guest_mac\": \"AA:FC:00:00:00:01\", \"rx_rate_limiter\": {}, \"tx_rate_limiter\": "
        "{}}],"
        " \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/tmp/kata.hvsock\", \"vsock_id\": "
        "\"root\"},"
        " \"logger\": {\"log_path\": \"%s\", \"level\": \"Error\"},"
        " \"metrics\": {\"metrics_path\": \"%s\"},"
        " \"mmds-config\": null, \"pmem\": [], \"balloon\": null}",
        f->kernel, f->disk, f->log, f->metrics);
    if (boot_json(f, doc, &err) < 0)
        fail_msg("%s", err.message);
    assert_int_equal(made.creates, 1);
    assert_int_equal(made.cpus, 3);
    assert_int_equal(made.memory, 300ull << 20);
    assert_string_equal(made.cmdline, "x=1 root=/dev/vda ro");
    assert_true(made.disk_ro[0]);
    assert_true(made.has_mac[0]);
    assert_int_equal(made.vsock_cid, 3);
    assert_int_equal(req(f, "GET", "/", NULL), 200);
    assert_non_null(strstr(last_body, "\"state\":\"Running\""));
}

static void config_file_errors(void **state)
{
    struct fx *f = *state;
    struct {
        const char *doc, *want;
    } cases[] = {
        { "", "no JSON value" },
        { "[]", "the file is an array; it must be an object" },
        { "{\"boot-source\": {\"kernel_image_path\": 1}}",
          "boot-source.kernel_image_path: expected a string" },
        { "{\"drives\": {}}", "drives: expected an array" },
        { "{\"drives\": [{\"drive_id\": \"a\"}]}", "drives[0].path_on_host: missing" },
        { "{\"drives\": [3]}", "drives[0]: expected an object" },
        { "{\"network-interfaces\": [{\"iface_id\": \"e\", \"host_dev_name\": \"t\", \"mtu\": "
          "1500}]}",
          "network-interfaces[0].mtu: setting the MTU is not supported" },
        { "{\"mmds-config\": {\"network_interfaces\": [\"eth0\"]}}",
          "mmds-config: not supported by vmlet" },
        { "{\"cpu-config\": {}}", "cpu-config: not supported by vmlet" },
        { "{\"pmem\": [{\"id\": \"p\"}]}", "pmem: not supported by vmlet" },
        { "{\"boot_source\": {}}", "boot_source: unknown key; known keys are boot-source" },
        { "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}", "no boot source" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vmlet_error err = { 0 };
        if (boot_json(f, cases[i].doc, &err) == 0 || !strstr(err.message, cases[i].want))
            fail_msg("%s: '%s' (want '%s')", cases[i].doc, err.message, cases[i].want);
    }
    assert_int_equal(made.creates, 0);
}

/* GET /vm/config is a document --config-file reads back to the same. */
static void vm_config_round_trip(void **state)
{
    struct fx *f = *state;
    boot_source(f);
    assert_int_equal(req(f, "PUT", "/drives/rootfs",
                         fmt("{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", "
                             "\"is_root_device\": true, \"partuuid\": \"0eaa91a0-01\"}",
                             f->disk)),
                     204);
    assert_int_equal(req(f, "PUT", "/network-interfaces/eth0",
                         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", "
                         "\"guest_mac\": \"06:00:ac:10:00:02\"}"),
                     204);
    assert_int_equal(req(f, "PUT", "/vsock", "{\"guest_cid\": 9, \"uds_path\": \"/tmp/v\"}"), 204);
    assert_int_equal(req(f, "PUT", "/balloon", "{\"amount_mib\": 8, \"deflate_on_oom\": false}"),
                     204);
    assert_int_equal(req(f, "PUT", "/entropy", "{}"), 204);
    assert_int_equal(req(f, "PUT", "/logger", fmt("{\"log_path\": \"%s\"}", f->log)), 204);
    assert_int_equal(req(f, "GET", "/vm/config", NULL), 200);
    char first[8192];
    strcpy(first, last_body);

    struct fc_host host = { .id = "copy", .console_in = -1, .console_out = -1 };
    struct fc_vmm *copy = fc_vmm_new(&host);
    vmlet_error err = { 0 };
    if (fc_vmm_boot_from_json(copy, first, strlen(first), &err) < 0)
        fail_msg("%s", err.message);
    assert_string_equal(made.cmdline, "console=ttyS0 quiet root=PARTUUID=0eaa91a0-01 rw");
    struct fc_vmm *orig = f->fc;
    f->fc = copy;
    assert_int_equal(req(f, "GET", "/vm/config", NULL), 200);
    assert_string_equal(last_body, first);
    f->fc = orig;
    fc_vmm_free(copy);
}

/* Once the VM runs, the control thread's sandbox refuses openat; the log
 * lines written then must not need one (glibc's first gmtime_r reads
 * /etc/localtime: found in the lab). A child process with openat fatal
 * stands in for the sandbox. First in the list, so that no earlier test
 * has read the time zone in this process already. */
static void log_lines_open_nothing(void **state)
{
    (void)state;
    char dir[] = "/tmp/vmlet-fc-log-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/fc.log", dir);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct fc_host host = { .id = "sandboxed", .console_in = -1, .console_out = -1 };
        struct fc_vmm *fc = fc_vmm_new(&host);
        vmlet_error err;
        char doc[160];
        int n = snprintf(doc, sizeof doc, "{\"logger\": {\"log_path\": \"%s\"}}", path);
        /* The logger is set and no line written yet (without a boot source
         * the document does not boot, and says so without logging). */
        if (!fc || fc_vmm_boot_from_json(fc, doc, (size_t)n, &err) == 0 ||
            !strstr(err.message, "no boot source"))
            _exit(2);
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(openat), 0) < 0 ||
            seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(open), 0) < 0 ||
            seccomp_load(ctx) < 0)
            _exit(3);
        fc_vmm_log(fc, "Info", "after the sandbox");
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child %s %d", WIFEXITED(status) ? "exited" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    char buf[512] = "";
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[got > 0 ? got : 0] = '\0';
    assert_non_null(strstr(buf, "[sandboxed:main] after the sandbox\n"));
    unlink(path);
    rmdir(dir);
}

/* ---- bodies too large for the socket ----------------------------------------- */

static int connect_to(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

static void serve(struct api_server *a, struct fc_vmm *fc)
{
    struct pollfd fds[API_POLLFDS];
    int n = api_server_pollfds(a, fds);
    assert_true(poll(fds, (nfds_t)n, 1000) >= 0);
    api_server_serve(a, fds, n, fc_vmm_dispatch, fc);
}

static void oversized_body(void **state)
{
    struct fx *f = *state;
    char path[128], why[256];
    snprintf(path, sizeof path, "%s/api.sock", f->dir);
    struct api_server *a = api_server_open(path, why, sizeof why);
    assert_non_null(a);
    int c = connect_to(path);
    serve(a, f->fc);
    static char text[HTTP_MAX_BODY + 512];
    int n = snprintf(text, sizeof text,
                     "PUT /boot-source HTTP/1.1\r\nContent-Length: %d\r\n\r\n{\"boot_args\": \"",
                     HTTP_MAX_BODY + 1);
    assert_int_equal(write(c, text, (size_t)n), n);
    serve(a, f->fc);
    char buf[1024] = "";
    ssize_t got = read(c, buf, sizeof buf - 1);
    assert_true(got > 0);
    assert_true(!strncmp(buf, "HTTP/1.1 413 ", 13));
    assert_non_null(strstr(buf, "fault_message"));
    close(c);

    /* The largest body that fits is read, and its field's limit applies. */
    c = connect_to(path);
    serve(a, f->fc);
    char *args = malloc(HTTP_MAX_BODY);
    memset(args, 'a', 3000);
    args[3000] = '\0';
    char *json = malloc(HTTP_MAX_BODY);
    snprintf(json, HTTP_MAX_BODY, "{\"kernel_image_path\": \"%s\", \"boot_args\": \"%s\"}",
             f->kernel, args);
    n = snprintf(text, sizeof text, "PUT /boot-source HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(json), json);
    assert_int_equal(write(c, text, (size_t)n), n);
    serve(a, f->fc);
    got = read(c, buf, sizeof buf - 1);
    assert_true(got > 0);
    buf[got] = '\0';
    assert_true(!strncmp(buf, "HTTP/1.1 400 ", 13));
    assert_non_null(strstr(buf, "boot-source.boot_args: 3000 bytes is too long"));
    free(args);
    free(json);
    close(c);
    api_server_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_lines_open_nothing),
        cmocka_unit_test_setup_teardown(info_before_boot, setup, teardown),
        cmocka_unit_test_setup_teardown(boot_source_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(machine_config_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(drive_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(network_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(vsock_entropy_balloon_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(logger_and_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(routing, setup, teardown),
        cmocka_unit_test_setup_teardown(running_only_before_boot, setup, teardown),
        cmocka_unit_test_setup_teardown(instance_start_builds_the_config, setup, teardown),
        cmocka_unit_test_setup_teardown(pre_boot_only_after_boot, setup, teardown),
        cmocka_unit_test_setup_teardown(running_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_drives, setup, teardown),
        cmocka_unit_test_setup_teardown(config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(config_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(vm_config_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_body, setup, teardown),
        cmocka_unit_test_setup_teardown(patch_network_interfaces, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshots, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_load_after_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
