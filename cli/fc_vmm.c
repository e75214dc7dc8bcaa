/* The Firecracker-compatible API (see fc_vmm.h and docs/firecracker.md).
 *
 * Before InstanceStart the microVM is only its resources, kept here in
 * Firecracker's terms (drives by drive_id, NICs by iface_id); every PUT
 * checks its body completely before it changes anything. InstanceStart
 * builds a vmlet_config from them through vmlet.h, the way `vmlet run`
 * does from its flags, and boots it. After that the requests of a running
 * microVM apply to the vmlet_vm; those the vmlet control socket already
 * answers (PATCH /vm, the balloon) go to cli/api.c's handler. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "fc_metrics.h"
#include "fc_vmm.h"
#include "http.h"
#include "../src/config.h"      /* config_replace_string, shared */
#include "../src/json_strict.h" /* vm.json's strict reading, shared */

/* Firecracker's boot_args default boots its own guests without a serial
 * port or modules; vmlet's guests (Debian's kernel loads virtio drivers
 * as modules) keep both, and get Firecracker's reboot and panic
 * behaviour. */
#define FC_DEFAULT_BOOT_ARGS "console=ttyS0 reboot=k panic=1"
#define FC_DEFAULT_MEM_MIB   128
#define FC_DEFAULT_VCPUS     1
#define FC_MAX_VCPUS         32 /* Firecracker's schema */
#define FC_MAX_MEM_MIB       (1u << 20)
#define FC_PATH_MAX          4095
#define FC_BOOT_ARGS_MAX     2048 /* the bzImage's cmdline_size is checked later */
#define FC_PARTUUID_MAX      36
#define FC_TAP_MAX           15 /* IFNAMSIZ - 1 */

struct fc_drive {
    char id[FC_ID_MAX + 1];
    char *path;
    char *partuuid; /* NULL: none */
    bool read_only, root;
    bool writeback; /* cache_type "Writeback" (else "Unsafe"); both honour flushes */
    bool async;     /* io_engine "Async" (else "Sync"); vmlet always uses io_uring */
};

struct fc_net {
    char id[FC_ID_MAX + 1];
    char tap[FC_TAP_MAX + 1];
    char mac[18]; /* "" for none */
};

enum fc_level { LEVEL_OFF, LEVEL_ERROR, LEVEL_WARNING, LEVEL_INFO, LEVEL_DEBUG, LEVEL_TRACE };
static const char *const level_names[] = { "Off", "Error", "Warning", "Info", "Debug", "Trace" };

struct fc_vmm {
    struct fc_host host;
    char id[FC_ID_MAX + 1];
    vmlet_vm *vm; /* NULL until InstanceStart */

    char *kernel, *initrd, *boot_args; /* NULL: not set */
    unsigned vcpus;
    unsigned mem_mib;
    struct fc_drive drives[VMLET_MAX_DISKS];
    unsigned ndrives;
    struct fc_net nets[VMLET_MAX_NICS];
    unsigned nnets;
    bool vsock;
    uint64_t vsock_cid;
    char *vsock_uds, *vsock_id;
    bool entropy;
    bool balloon;
    unsigned balloon_mib, balloon_stats_s;
    bool balloon_deflate_on_oom, balloon_reporting;

    int log_fd; /* -1: no logger */
    char *log_path, *log_module;
    enum fc_level log_level;
    bool log_show_level, log_show_origin;
    int metrics_fd; /* -1: no metrics */
    char *metrics_path;
    struct fc_metrics *metrics;
    bool metrics_armed; /* the periodic line's clock runs (the VM does) */
    uint64_t metrics_due_ms;
};

/* ---- small helpers ------------------------------------------------------- */

static bool absent(const cJSON *v)
{
    return !v || cJSON_IsNull(v);
}

static void path_init(struct json_keypath *p, const char *name)
{
    snprintf(p->s, sizeof p->s, "%s", name);
    p->len = strlen(p->s);
}

/* A key Firecracker has and vmlet does not: an error naming it, unless it
 * is absent or null. */
static int refuse_present(const cJSON *v, struct json_keypath *p, const char *key, const char *what,
                          vmlet_error *err)
{
    if (absent(v))
        return 0;
    json_path_key(p, key);
    return json_key_error(err, p, "%s is not supported by vmlet; leave it out", what);
}

/* Firecracker's RateLimiter: Kata sends {} (no bucket) for none, which is
 * accepted; a bucket is not, as vmlet limits nothing. */
static int check_rate_limiter(const cJSON *v, struct json_keypath *p, const char *key,
                              vmlet_error *err)
{
    if (absent(v))
        return 0;
    size_t old = json_path_key(p, key);
    if (!cJSON_IsObject(v))
        return json_key_error(err, p, "expected an object (a rate limiter), got %s",
                              json_type_name(v));
    static const char *const names[] = { "bandwidth", "ops" };
    const cJSON *f[2];
    if (json_match_keys(v, names, 2, f, p, err) < 0)
        return -1;
    for (unsigned k = 0; k < 2; k++)
        if (refuse_present(f[k], p, names[k], "rate limiting", err) < 0)
            return -1;
    json_path_pop(p, old);
    return 0;
}

bool fc_valid_id(const char *id, char also)
{
    size_t n = strlen(id);
    if (n == 0 || n > FC_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == also))
            return false;
    }
    return true;
}

/* A Firecracker resource ID: letters, digits and '_' (checked_id in
 * Firecracker's API server). */
static bool valid_resource_id(const char *id)
{
    return fc_valid_id(id, '_');
}

static int nomem(vmlet_error *err)
{
    err->code = VMLET_ERR_NOMEM;
    snprintf(err->message, sizeof err->message, "out of memory");
    return -1;
}

__attribute__((format(printf, 2, 3))) static int fail(vmlet_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = VMLET_ERR_INVALID;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Opens a log or metrics file as Firecracker does: a file (made 0600 if
 * missing, appended to) or a FIFO that already has its reader. Writes
 * never block the API: a line that does not fit is dropped. */
static int open_output(const char *path, struct json_keypath *p, vmlet_error *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        return json_key_error(err, p, "cannot open %.300s: %s%s", path, strerror(e),
                              e == ENXIO ? " (a FIFO needs its reader open first)" : "");
    }
    return fd;
}

/* How long a line may wait for a FIFO's slow reader: a metrics line is
 * longer than PIPE_BUF, so a write may take only part of it, and the rest
 * must follow or the reader's next line is garbage. */
#define LINE_WAIT_MS 100

/* Writes the line whole; false when it was dropped or cut short. */
static bool write_line(int fd, const char *line, size_t len)
{
    return api_write_all(fd, line, len, false, LINE_WAIT_MS);
}

/* ---- pre-boot resources -------------------------------------------------- */

static int read_boot_source(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                            vmlet_error *err)
{
    static const char *const names[] = { "kernel_image_path", "initrd_path", "boot_args" };
    const cJSON *f[3];
    const char *kernel, *initrd = NULL, *args = NULL;
    if (json_match_keys(v, names, 3, f, p, err) < 0)
        return -1;
    size_t old = json_path_key(p, names[0]);
    if (!f[0])
        return json_key_error(err, p, "missing; give the path of an x86-64 bzImage");
    if (json_get_string(f[0], p, true, FC_PATH_MAX, "the path of an x86-64 bzImage", &kernel, err) <
        0)
        return -1;
    json_path_pop(p, old);
    if (!absent(f[1])) {
        old = json_path_key(p, names[1]);
        if (json_get_string(f[1], p, true, FC_PATH_MAX, "the path of an initrd", &initrd, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (!absent(f[2])) {
        old = json_path_key(p, names[2]);
        if (json_get_string(f[2], p, false, FC_BOOT_ARGS_MAX, "the kernel command line", &args,
                            err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    /* Firecracker opens the kernel here; so a wrong path is told now. */
    const char *files[2] = { kernel, initrd };
    for (unsigned i = 0; i < 2; i++) {
        if (!files[i])
            continue;
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            json_path_key(p, names[i]);
            return json_key_error(err, p, "cannot open %.300s: %s", files[i], strerror(e));
        }
        close(fd);
    }
    if (config_replace_string(&fc->kernel, kernel) || config_replace_string(&fc->initrd, initrd) ||
        config_replace_string(&fc->boot_args, args))
        return nomem(err);
    return 0;
}

/* PUT (partial false: both counts required) and PATCH /machine-config. */
static int read_machine_config(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                               bool partial, vmlet_error *err)
{
    static const char *const names[] = { "vcpu_count",        "mem_size_mib", "smt",
                                         "track_dirty_pages", "cpu_template", "huge_pages" };
    const cJSON *f[6];
    uint64_t vcpus = fc->vcpus, mib = fc->mem_mib;
    if (json_match_keys(v, names, 6, f, p, err) < 0)
        return -1;
    size_t old;
    if (!partial && (!f[0] || !f[1])) {
        json_path_key(p, names[f[0] ? 1 : 0]);
        return json_key_error(err, p, "missing; give vcpu_count and mem_size_mib");
    }
    if (f[0]) {
        old = json_path_key(p, names[0]);
        if (json_get_uint(f[0], p, 1, FC_MAX_VCPUS, &vcpus, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (f[1]) {
        old = json_path_key(p, names[1]);
        if (json_get_uint(f[1], p, VMLET_MIN_MEMORY >> 20, FC_MAX_MEM_MIB, &mib, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    bool flag;
    for (unsigned k = 2; k <= 3; k++) {
        if (absent(f[k]))
            continue;
        old = json_path_key(p, names[k]);
        if (json_get_bool(f[k], p, &flag, err) < 0)
            return -1;
        if (flag)
            return json_key_error(err, p, "%s is not supported by vmlet; set false",
                                  k == 2 ? "SMT (simultaneous multithreading)"
                                         : "dirty page tracking (diff snapshots)");
        json_path_pop(p, old);
    }
    for (unsigned k = 4; k <= 5; k++) {
        if (absent(f[k]))
            continue;
        old = json_path_key(p, names[k]);
        if (!cJSON_IsString(f[k]) || strcmp(f[k]->valuestring, "None"))
            return json_key_error(err, p, "%s are not supported by vmlet; give \"None\"",
                                  k == 4 ? "CPU templates" : "huge pages");
        json_path_pop(p, old);
    }
    fc->vcpus = (unsigned)vcpus;
    fc->mem_mib = (unsigned)mib;
    return 0;
}

static int read_drive(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                      const char *path_id, vmlet_error *err)
{
    static const char *const names[] = { "drive_id",     "path_on_host", "is_root_device",
                                         "is_read_only", "partuuid",     "cache_type",
                                         "io_engine",    "rate_limiter", "socket" };
    enum { N = sizeof names / sizeof names[0] };
    const cJSON *f[N];
    struct fc_drive d = { 0 };
    const char *id, *path, *partuuid = NULL;
    if (json_match_keys(v, names, N, f, p, err) < 0)
        return -1;
    size_t old = json_path_key(p, names[0]);
    if (!f[0])
        return json_key_error(err, p, "missing; give the drive's ID");
    if (json_get_string(f[0], p, true, FC_ID_MAX, "the drive's ID", &id, err) < 0)
        return -1;
    if (!valid_resource_id(id))
        return json_key_error(err, p, "use only letters, digits and '_'");
    if (path_id && strcmp(id, path_id))
        return json_key_error(err, p, "the ID in the path and the ID in the body differ");
    json_path_pop(p, old);
    if (refuse_present(f[8], p, names[8], "a vhost-user drive", err) < 0 ||
        check_rate_limiter(f[7], p, names[7], err) < 0)
        return -1;
    old = json_path_key(p, names[1]);
    if (!f[1])
        return json_key_error(err, p, "missing; give the drive's image file or block device");
    if (json_get_string(f[1], p, true, FC_PATH_MAX, "an image file or block device", &path, err) <
        0)
        return -1;
    json_path_pop(p, old);
    old = json_path_key(p, names[2]);
    if (!f[2])
        return json_key_error(err, p, "missing; give true or false");
    if (json_get_bool(f[2], p, &d.root, err) < 0)
        return -1;
    json_path_pop(p, old);
    if (!absent(f[3])) {
        old = json_path_key(p, names[3]);
        if (json_get_bool(f[3], p, &d.read_only, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (!absent(f[4])) {
        old = json_path_key(p, names[4]);
        if (json_get_string(f[4], p, true, FC_PARTUUID_MAX, "a partition UUID", &partuuid, err) < 0)
            return -1;
        /* It goes on the kernel command line: hex digits and '-' only. */
        if (strspn(partuuid, "0123456789abcdefABCDEF-") != strlen(partuuid))
            return json_key_error(err, p, "a partition UUID has only hex digits and '-'");
        json_path_pop(p, old);
    }
    static const char *const choices[2][2] = { { "Unsafe", "Writeback" }, { "Sync", "Async" } };
    bool *flags[2] = { &d.writeback, &d.async };
    for (unsigned k = 0; k < 2; k++) {
        const cJSON *c = f[5 + k];
        if (absent(c))
            continue;
        old = json_path_key(p, names[5 + k]);
        if (!cJSON_IsString(c) ||
            (strcmp(c->valuestring, choices[k][0]) && strcmp(c->valuestring, choices[k][1])))
            return json_key_error(err, p, "give \"%s\" or \"%s\"", choices[k][0], choices[k][1]);
        *flags[k] = !strcmp(c->valuestring, choices[k][1]);
        json_path_pop(p, old);
    }
    unsigned slot = 0;
    while (slot < fc->ndrives && strcmp(fc->drives[slot].id, id))
        slot++;
    for (unsigned i = 0; d.root && i < fc->ndrives; i++)
        if (i != slot && fc->drives[i].root)
            return fail(err, "%s: drive %s is already the root device; only one may be", p->s,
                        fc->drives[i].id);
    if (slot == fc->ndrives && slot == VMLET_MAX_DISKS)
        return fail(err, "%s: vmlet has at most %d drives", p->s, VMLET_MAX_DISKS);
    snprintf(d.id, sizeof d.id, "%s", id);
    d.path = strdup(path);
    d.partuuid = partuuid ? strdup(partuuid) : NULL;
    if (!d.path || (partuuid && !d.partuuid)) {
        free(d.path);
        free(d.partuuid);
        return nomem(err);
    }
    if (slot < fc->ndrives) {
        free(fc->drives[slot].path);
        free(fc->drives[slot].partuuid);
    } else {
        fc->ndrives++;
    }
    fc->drives[slot] = d;
    return 0;
}

static int read_net(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *path_id,
                    vmlet_error *err)
{
    static const char *const names[] = { "iface_id",        "host_dev_name",   "guest_mac",
                                         "rx_rate_limiter", "tx_rate_limiter", "mtu" };
    enum { N = sizeof names / sizeof names[0] };
    const cJSON *f[N];
    const char *id, *tap, *mac = NULL;
    if (json_match_keys(v, names, N, f, p, err) < 0)
        return -1;
    size_t old = json_path_key(p, names[0]);
    if (!f[0])
        return json_key_error(err, p, "missing; give the interface's ID");
    if (json_get_string(f[0], p, true, FC_ID_MAX, "the interface's ID", &id, err) < 0)
        return -1;
    if (!valid_resource_id(id))
        return json_key_error(err, p, "use only letters, digits and '_'");
    if (path_id && strcmp(id, path_id))
        return json_key_error(err, p, "the ID in the path and the ID in the body differ");
    json_path_pop(p, old);
    if (check_rate_limiter(f[3], p, names[3], err) < 0 ||
        check_rate_limiter(f[4], p, names[4], err) < 0 ||
        refuse_present(f[5], p, names[5], "setting the MTU", err) < 0)
        return -1;
    old = json_path_key(p, names[1]);
    if (!f[1])
        return json_key_error(err, p, "missing; give the name of a TAP device");
    if (json_get_string(f[1], p, true, FC_TAP_MAX, "the name of a TAP device", &tap, err) < 0)
        return -1;
    /* A Linux interface name, and nothing that would read as another
     * option of the --net syntax it becomes. */
    for (const char *c = tap; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return json_key_error(err, p,
                                  "a TAP device name has only letters, digits, '_', '-' and '.'");
    json_path_pop(p, old);
    if (!absent(f[2])) {
        old = json_path_key(p, names[2]);
        if (json_get_string(f[2], p, true, 17, "a MAC address such as \"06:00:ac:10:00:02\"", &mac,
                            err) < 0)
            return -1;
        if (strspn(mac, "0123456789abcdefABCDEF:") != strlen(mac))
            return json_key_error(err, p, "give a MAC address such as \"06:00:ac:10:00:02\"");
        json_path_pop(p, old);
    }
    /* The library's own parser says whether the MAC is one it takes. */
    char spec[64];
    snprintf(spec, sizeof spec, "tap=%s%s%s", tap, mac ? ",mac=" : "", mac ? mac : "");
    vmlet_error why;
    if (vmlet_check_net(spec, &why) < 0)
        return fail(err, "%s: %s", p->s, why.message);
    unsigned slot = 0;
    while (slot < fc->nnets && strcmp(fc->nets[slot].id, id))
        slot++;
    if (slot == VMLET_MAX_NICS)
        return fail(err, "%s: vmlet has at most %d network interfaces", p->s, VMLET_MAX_NICS);
    struct fc_net *n = &fc->nets[slot];
    snprintf(n->id, sizeof n->id, "%s", id);
    snprintf(n->tap, sizeof n->tap, "%s", tap);
    snprintf(n->mac, sizeof n->mac, "%s", mac ? mac : "");
    if (slot == fc->nnets)
        fc->nnets++;
    return 0;
}

static int read_vsock(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, vmlet_error *err)
{
    static const char *const names[] = { "guest_cid", "uds_path", "vsock_id" };
    const cJSON *f[3];
    uint64_t cid;
    const char *uds, *vsock_id = NULL;
    if (json_match_keys(v, names, 3, f, p, err) < 0)
        return -1;
    size_t old = json_path_key(p, names[0]);
    if (!f[0])
        return json_key_error(err, p, "missing; give the guest's CID (3 or more)");
    if (json_get_uint(f[0], p, VMLET_VSOCK_MIN_CID, VMLET_VSOCK_MAX_CID, &cid, err) < 0)
        return -1;
    json_path_pop(p, old);
    old = json_path_key(p, names[1]);
    if (!f[1])
        return json_key_error(err, p, "missing; give the path of the Unix socket to create");
    if (json_get_string(f[1], p, true, VMLET_VSOCK_MAX_PATH,
                        "the path of the Unix socket to create", &uds, err) < 0)
        return -1;
    json_path_pop(p, old);
    if (!absent(f[2])) { /* deprecated in Firecracker, and meaningless here */
        old = json_path_key(p, names[2]);
        if (json_get_string(f[2], p, false, FC_ID_MAX, "an ID", &vsock_id, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (config_replace_string(&fc->vsock_uds, uds) ||
        config_replace_string(&fc->vsock_id, vsock_id))
        return nomem(err);
    fc->vsock = true;
    fc->vsock_cid = cid;
    return 0;
}

static int read_entropy(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, vmlet_error *err)
{
    static const char *const names[] = { "rate_limiter" };
    const cJSON *f[1];
    if (json_match_keys(v, names, 1, f, p, err) < 0 ||
        check_rate_limiter(f[0], p, names[0], err) < 0)
        return -1;
    fc->entropy = true;
    return 0;
}

static int read_balloon(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, vmlet_error *err)
{
    static const char *const names[] = { "amount_mib", "deflate_on_oom", "stats_polling_interval_s",
                                         "free_page_reporting", "free_page_hinting" };
    const cJSON *f[5];
    uint64_t mib, stats = 0;
    bool deflate, reporting = false, hinting = false;
    if (json_match_keys(v, names, 5, f, p, err) < 0)
        return -1;
    size_t old = json_path_key(p, names[0]);
    if (!f[0])
        return json_key_error(err, p, "missing; give the target in MiB (0 for none)");
    if (json_get_uint(f[0], p, 0, FC_MAX_MEM_MIB, &mib, err) < 0)
        return -1;
    json_path_pop(p, old);
    old = json_path_key(p, names[1]);
    if (!f[1])
        return json_key_error(err, p, "missing; give true or false");
    if (json_get_bool(f[1], p, &deflate, err) < 0)
        return -1;
    json_path_pop(p, old);
    if (!absent(f[2])) {
        old = json_path_key(p, names[2]);
        if (json_get_uint(f[2], p, 0, VMLET_BALLOON_MAX_STATS_INTERVAL, &stats, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    bool *flags[2] = { &reporting, &hinting };
    for (unsigned k = 0; k < 2; k++) {
        if (absent(f[3 + k]))
            continue;
        old = json_path_key(p, names[3 + k]);
        if (json_get_bool(f[3 + k], p, flags[k], err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (hinting) {
        json_path_key(p, names[4]);
        return json_key_error(err, p,
                              "free page hinting is not supported by vmlet; set false "
                              "(free_page_reporting returns freed memory)");
    }
    fc->balloon = true;
    fc->balloon_mib = (unsigned)mib;
    fc->balloon_deflate_on_oom = deflate;
    fc->balloon_reporting = reporting;
    fc->balloon_stats_s = (unsigned)stats;
    return 0;
}

static int read_logger(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, vmlet_error *err)
{
    static const char *const names[] = { "log_path", "level", "show_level", "show_log_origin",
                                         "module" };
    const cJSON *f[5];
    const char *path = NULL, *module = NULL;
    enum fc_level level = LEVEL_INFO;
    bool show[2] = { false, false };
    if (json_match_keys(v, names, 5, f, p, err) < 0)
        return -1;
    size_t old;
    if (!absent(f[0])) {
        old = json_path_key(p, names[0]);
        if (json_get_string(f[0], p, true, FC_PATH_MAX, "a file or FIFO", &path, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (!absent(f[1])) {
        old = json_path_key(p, names[1]);
        unsigned k = 0;
        if (cJSON_IsString(f[1]))
            while (k <= LEVEL_TRACE && strcasecmp(f[1]->valuestring, level_names[k]))
                k++;
        if (!cJSON_IsString(f[1]) || k > LEVEL_TRACE)
            return json_key_error(err, p,
                                  "give \"Error\", \"Warning\", \"Info\", \"Debug\", \"Trace\" "
                                  "or \"Off\"");
        level = (enum fc_level)k;
        json_path_pop(p, old);
    }
    for (unsigned k = 0; k < 2; k++) {
        if (absent(f[2 + k]))
            continue;
        old = json_path_key(p, names[2 + k]);
        if (json_get_bool(f[2 + k], p, &show[k], err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (!absent(f[4])) {
        old = json_path_key(p, names[4]);
        if (json_get_string(f[4], p, false, 256, "a module name", &module, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    int fd = -1;
    if (path) {
        old = json_path_key(p, names[0]);
        if ((fd = open_output(path, p, err)) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (config_replace_string(&fc->log_path, path) ||
        config_replace_string(&fc->log_module, module)) {
        if (fd >= 0)
            close(fd);
        return nomem(err);
    }
    if (fc->log_fd >= 0)
        close(fc->log_fd);
    fc->log_fd = fd;
    fc->log_level = level;
    fc->log_show_level = show[0];
    fc->log_show_origin = show[1];
    return 0;
}

static int read_metrics(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, vmlet_error *err)
{
    static const char *const names[] = { "metrics_path", "emit_id", "properties" };
    const cJSON *f[3];
    const char *path;
    if (json_match_keys(v, names, 3, f, p, err) < 0)
        return -1;
    if (!absent(f[1]) && !cJSON_IsFalse(f[1]))
        return refuse_present(f[1], p, names[1], "emit_id", err);
    if (refuse_present(f[2], p, names[2], "properties on metrics lines", err) < 0)
        return -1;
    json_path_key(p, names[0]);
    if (!f[0])
        return json_key_error(err, p, "missing; give a file or FIFO");
    if (json_get_string(f[0], p, true, FC_PATH_MAX, "a file or FIFO", &path, err) < 0)
        return -1;
    int fd = open_output(path, p, err);
    if (fd < 0)
        return -1;
    if (config_replace_string(&fc->metrics_path, path)) {
        close(fd);
        return nomem(err);
    }
    if (fc->metrics_fd >= 0)
        close(fc->metrics_fd);
    fc->metrics_fd = fd;
    return 0;
}

/* ---- InstanceStart ------------------------------------------------------- */

/* The config Firecracker's resources describe. The root drive comes first
 * (the guest's vda), as in Firecracker, and its root= goes on the
 * command line. */
static int build_config(struct fc_vmm *fc, vmlet_config **out, vmlet_error *err)
{
    if (!fc->kernel)
        return fail(err, "no boot source: PUT /boot-source {\"kernel_image_path\": ...} "
                         "before InstanceStart");
    vmlet_config *c = vmlet_config_new();
    char *cmdline = malloc(FC_BOOT_ARGS_MAX + 128);
    if (!c || !cmdline) {
        vmlet_config_free(c);
        free(cmdline);
        return nomem(err);
    }
    const struct fc_drive *root = NULL;
    for (unsigned i = 0; i < fc->ndrives; i++)
        if (fc->drives[i].root)
            root = &fc->drives[i];
    int n = snprintf(cmdline, FC_BOOT_ARGS_MAX + 128, "%s",
                     fc->boot_args ? fc->boot_args : FC_DEFAULT_BOOT_ARGS);
    if (root)
        snprintf(cmdline + n, FC_BOOT_ARGS_MAX + 128 - n, "%sroot=%s%s %s", n ? " " : "",
                 root->partuuid ? "PARTUUID=" : "/dev/vda", root->partuuid ? root->partuuid : "",
                 root->read_only ? "ro" : "rw");
    int rc = 0;
    vmlet_config_set_cpus(c, fc->vcpus);
    vmlet_config_set_memory(c, (uint64_t)fc->mem_mib << 20);
    rc |= vmlet_config_set_linux_boot(c, fc->kernel, fc->initrd, cmdline);
    free(cmdline);
    vmlet_config_set_console(c, VMLET_CONSOLE_SERIAL, fc->host.console_in, fc->host.console_out);
    rc |= vmlet_config_set_vcpu_thread_name(c, "fc_vcpu ");
    if (root)
        rc |= vmlet_config_add_disk(c, root->path, root->read_only ? VMLET_DISK_READONLY : 0, NULL);
    for (unsigned i = 0; i < fc->ndrives; i++) {
        const struct fc_drive *d = &fc->drives[i];
        if (d != root)
            rc |= vmlet_config_add_disk(c, d->path, d->read_only ? VMLET_DISK_READONLY : 0, NULL);
    }
    for (unsigned i = 0; i < fc->nnets; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "tap=%s%s%s", fc->nets[i].tap,
                 fc->nets[i].mac[0] ? ",mac=" : "", fc->nets[i].mac);
        rc |= vmlet_config_add_net(c, spec);
    }
    if (fc->vsock)
        rc |= vmlet_config_set_vsock(c, fc->vsock_cid, fc->vsock_uds);
    if (fc->entropy)
        vmlet_config_set_entropy(c, 1);
    if (fc->balloon)
        vmlet_config_set_balloon(
            c, 1,
            (fc->balloon_deflate_on_oom ? VMLET_BALLOON_DEFLATE_ON_OOM : 0) |
                (fc->balloon_reporting ? VMLET_BALLOON_FREE_PAGE_REPORTING : 0),
            fc->balloon_stats_s);
    if (fc->host.kvm_device)
        rc |= vmlet_config_set_kvm_device(c, fc->host.kvm_device);
    if (fc->host.seccomp_off)
        vmlet_config_set_seccomp(c, VMLET_SECCOMP_OFF);
    if (rc) {
        vmlet_config_free(c);
        return nomem(err);
    }
    *out = c;
    return 0;
}

static int instance_start(struct fc_vmm *fc, vmlet_error *err)
{
    vmlet_config *c = NULL;
    if (build_config(fc, &c, err) < 0)
        return -1;
    vmlet_vm *vm;
    int rc = vmlet_vm_create(c, &vm, err);
    vmlet_config_free(c);
    if (rc < 0)
        return -1;
    if ((fc->balloon && fc->balloon_mib &&
         vmlet_vm_set_balloon(vm, (uint64_t)fc->balloon_mib << 20, err) < 0) ||
        vmlet_vm_start(vm, err) < 0 ||
        (fc->host.started && fc->host.started(fc->host.ctx, vm, err) < 0)) {
        vmlet_vm_free(vm);
        return -1;
    }
    fc->vm = vm;
    fc_vmm_log(fc, "Info", "InstanceStart: the microVM runs (%u vCPUs, %u MiB, %u drives)",
               fc->vcpus, fc->mem_mib, fc->ndrives);
    fc_vmm_flush_metrics(fc); /* Firecracker's first line comes as the VM starts */
    return 0;
}

/* ---- snapshots ------------------------------------------------------------ */

/* A path member: present, a non-empty string that fits a path. */
static int get_path(const cJSON *v, struct json_keypath *p, const char *key, const char **out,
                    vmlet_error *err)
{
    size_t old = json_path_key(p, key);
    if (!v)
        return json_key_error(err, p, "missing; give a file's path");
    if (json_get_string(v, p, true, FC_PATH_MAX - 8, "a file's path", out, err) < 0)
        return -1;
    json_path_pop(p, old);
    return 0;
}

/* A boolean member that vmlet only takes as false (a feature it lacks). */
static int false_only(const cJSON *v, struct json_keypath *p, const char *key, const char *what,
                      vmlet_error *err)
{
    if (absent(v))
        return 0;
    size_t old = json_path_key(p, key);
    bool on;
    if (json_get_bool(v, p, &on, err) < 0)
        return -1;
    if (on)
        return json_key_error(err, p, "%s: not supported by vmlet (docs/firecracker.md)", what);
    json_path_pop(p, old);
    return 0;
}

/* PUT /snapshot/create on a paused microVM: Firecracker's two files, the
 * state (snapshot_path) and guest memory (mem_file_path); a full
 * snapshot only. */
static int snapshot_create(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                           vmlet_error *err)
{
    static const char *const names[] = { "snapshot_path", "mem_file_path", "snapshot_type" };
    const cJSON *f[3];
    const char *state = NULL, *memory = NULL, *type;
    if (json_match_keys(v, names, 3, f, p, err) < 0 ||
        get_path(f[0], p, names[0], &state, err) < 0 ||
        get_path(f[1], p, names[1], &memory, err) < 0)
        return -1;
    if (!absent(f[2])) {
        size_t old = json_path_key(p, names[2]);
        if (json_get_string(f[2], p, true, 16, "\"Full\"", &type, err) < 0)
            return -1;
        if (strcmp(type, "Full"))
            return json_key_error(err, p, "%s",
                                  strcmp(type, "Diff") ? "give \"Full\""
                                                       : "diff snapshots: not supported by vmlet "
                                                         "(no dirty page tracking); give \"Full\"");
        json_path_pop(p, old);
    }
    if (vmlet_vm_save_files(fc->vm, state, memory, err) < 0)
        return -1;
    fc_vmm_log(fc, "Info", "snapshot: saved to %s and %s", state, memory);
    return 0;
}

/* network_overrides: [{"iface_id": ..., "host_dev_name": TAP}]. vmlet's
 * snapshots do not keep Firecracker's interface IDs, so one override is
 * taken, for the snapshot's first interface (docs/firecracker.md). */
static int read_net_override(const cJSON *v, struct json_keypath *p, char tap[FC_TAP_MAX + 1],
                             vmlet_error *err)
{
    size_t old = json_path_key(p, "network_overrides");
    if (!cJSON_IsArray(v))
        return json_key_error(err, p, "expected an array of {\"iface_id\", \"host_dev_name\"}");
    int n = cJSON_GetArraySize(v);
    if (n > 1)
        return json_key_error(err, p,
                              "vmlet's snapshots do not keep interface IDs: give at most one "
                              "override, for the first interface");
    if (n == 1) {
        static const char *const names[] = { "iface_id", "host_dev_name" };
        const cJSON *f[2];
        const char *id, *name;
        size_t at = json_path_index(p, 0);
        const cJSON *o = cJSON_GetArrayItem(v, 0);
        if (!cJSON_IsObject(o))
            return json_key_error(err, p, "expected an object");
        if (json_match_keys(o, names, 2, f, p, err) < 0)
            return -1;
        size_t k = json_path_key(p, names[0]);
        if (!f[0] || json_get_string(f[0], p, true, FC_ID_MAX, "the interface's ID", &id, err) < 0)
            return f[0] ? -1 : json_key_error(err, p, "missing; give the interface's ID");
        json_path_pop(p, k);
        k = json_path_key(p, names[1]);
        if (!f[1] ||
            json_get_string(f[1], p, true, FC_TAP_MAX, "the name of a TAP device", &name, err) < 0)
            return f[1] ? -1 : json_key_error(err, p, "missing; give the name of a TAP device");
        for (const char *c = name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
                return json_key_error(err, p,
                                      "a TAP device name has only letters, digits, '_', "
                                      "'-' and '.'");
        json_path_pop(p, k);
        snprintf(tap, FC_TAP_MAX + 1, "%s", name);
        json_path_pop(p, at);
    }
    json_path_pop(p, old);
    return 0;
}

/* PUT /snapshot/load before anything but the logger and metrics is
 * configured: the microVM from Firecracker's two files, paused unless
 * resume_vm. */
static int snapshot_load(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                         vmlet_error *err)
{
    static const char *const names[] = { "snapshot_path",     "mem_file_path",
                                         "mem_backend",       "enable_diff_snapshots",
                                         "track_dirty_pages", "resume_vm",
                                         "network_overrides", "vsock_override" };
    enum { N = sizeof names / sizeof names[0] };
    const cJSON *f[N];
    const char *state = NULL, *memory = NULL, *uds = NULL;
    bool resume = false;
    char tap[FC_TAP_MAX + 1] = "";
    if (fc->kernel || fc->ndrives || fc->nnets || fc->vsock || fc->balloon || fc->entropy ||
        fc->vcpus != FC_DEFAULT_VCPUS || fc->mem_mib != FC_DEFAULT_MEM_MIB)
        return fail(err, "Loading a microVM snapshot is not allowed after configuring "
                         "boot-specific resources.");
    if (json_match_keys(v, names, N, f, p, err) < 0 ||
        get_path(f[0], p, names[0], &state, err) < 0 ||
        false_only(f[3], p, names[3], "diff snapshots", err) < 0 ||
        false_only(f[4], p, names[4], "dirty page tracking", err) < 0)
        return -1;
    if (absent(f[1]) == absent(f[2]))
        return fail(err, "%s: give either mem_backend or mem_file_path", p->s);
    if (!absent(f[1]) && get_path(f[1], p, names[1], &memory, err) < 0)
        return -1;
    if (!absent(f[2])) {
        static const char *const mb[] = { "backend_path", "backend_type" };
        const cJSON *g[2];
        const char *type;
        size_t old = json_path_key(p, names[2]);
        if (!cJSON_IsObject(f[2]))
            return json_key_error(err, p,
                                  "expected an object such as {\"backend_path\": "
                                  "\"mem\", \"backend_type\": \"File\"}");
        if (json_match_keys(f[2], mb, 2, g, p, err) < 0 ||
            get_path(g[0], p, mb[0], &memory, err) < 0)
            return -1;
        size_t k = json_path_key(p, mb[1]);
        if (!g[1])
            return json_key_error(err, p, "missing; give \"File\"");
        if (json_get_string(g[1], p, true, 16, "\"File\"", &type, err) < 0)
            return -1;
        if (strcmp(type, "File"))
            return json_key_error(err, p, "%s",
                                  strcmp(type, "Uffd") ? "give \"File\""
                                                       : "a userfaultfd backend: not supported by "
                                                         "vmlet; give \"File\"");
        json_path_pop(p, k);
        json_path_pop(p, old);
    }
    if (!absent(f[5])) {
        size_t old = json_path_key(p, names[5]);
        if (json_get_bool(f[5], p, &resume, err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    if (!absent(f[6]) && read_net_override(f[6], p, tap, err) < 0)
        return -1;
    if (!absent(f[7])) {
        static const char *const vo[] = { "uds_path" };
        const cJSON *g[1];
        size_t old = json_path_key(p, names[7]);
        if (!cJSON_IsObject(f[7]))
            return json_key_error(err, p, "expected an object such as {\"uds_path\": \"v.sock\"}");
        if (json_match_keys(f[7], vo, 1, g, p, err) < 0)
            return -1;
        size_t k = json_path_key(p, vo[0]);
        if (!g[0])
            return json_key_error(err, p, "missing; give the path of the Unix socket to create");
        if (json_get_string(g[0], p, true, VMLET_VSOCK_MAX_PATH,
                            "the path of the Unix socket to create", &uds, err) < 0)
            return -1;
        json_path_pop(p, k);
        json_path_pop(p, old);
    }

    vmlet_restore_options *o = vmlet_restore_options_new();
    if (!o)
        return nomem(err);
    char spec[FC_TAP_MAX + 8];
    snprintf(spec, sizeof spec, "tap=%s", tap);
    int rc = vmlet_restore_options_set_console(o, fc->host.console_in, fc->host.console_out);
    rc |= vmlet_restore_options_set_vcpu_thread_name(o, "fc_vcpu ");
    rc |= vmlet_restore_options_set_start_paused(o, !resume);
    if (fc->host.kvm_device)
        rc |= vmlet_restore_options_set_kvm_device(o, fc->host.kvm_device);
    if (fc->host.seccomp_off)
        rc |= vmlet_restore_options_set_seccomp(o, VMLET_SECCOMP_OFF);
    if (tap[0])
        rc |= vmlet_restore_options_set_net(o, 0, spec);
    if (uds)
        rc |= vmlet_restore_options_set_vsock(o, 0, uds);
    if (rc) {
        vmlet_restore_options_free(o);
        return nomem(err);
    }
    vmlet_vm *vm;
    rc = vmlet_vm_restore_files(state, memory, o, &vm, err);
    vmlet_restore_options_free(o);
    if (rc < 0)
        return -1;
    if (vmlet_vm_start(vm, err) < 0 ||
        (fc->host.started && fc->host.started(fc->host.ctx, vm, err) < 0)) {
        vmlet_vm_free(vm);
        return -1;
    }
    fc->vm = vm;
    fc->vcpus = vmlet_vm_cpus(vm);
    fc->mem_mib = (unsigned)(vmlet_vm_memory(vm) >> 20);
    fc_vmm_log(fc, "Info", "snapshot: loaded from %s and %s, the microVM %s", state, memory,
               resume ? "runs" : "is paused");
    fc_vmm_flush_metrics(fc);
    return 0;
}

/* ---- answers ------------------------------------------------------------ */

static char *print_and_free(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static const char *instance_state(struct fc_vmm *fc)
{
    if (!fc->vm)
        return "Not started";
    switch (vmlet_vm_state(fc->vm)) {
    case VMLET_STATE_PAUSED: return "Paused";
    case VMLET_STATE_STOPPED:
    case VMLET_STATE_ERROR: return "Stopped"; /* not in Firecracker's enum: it would have exited */
    default: return "Running";
    }
}

static char *instance_info(struct fc_vmm *fc)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", fc->id);
    cJSON_AddStringToObject(o, "state", instance_state(fc));
    cJSON_AddStringToObject(o, "vmm_version", vmlet_version());
    cJSON_AddStringToObject(o, "app_name", "vmlet");
    return print_and_free(o);
}

static cJSON *machine_config_json(const struct fc_vmm *fc)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "vcpu_count", fc->vcpus);
    cJSON_AddNumberToObject(o, "mem_size_mib", fc->mem_mib);
    cJSON_AddBoolToObject(o, "smt", false);
    cJSON_AddBoolToObject(o, "track_dirty_pages", false);
    cJSON_AddStringToObject(o, "huge_pages", "None");
    return o;
}

/* GET /vm/config: every resource, in the shape --config-file reads. */
static char *vm_config_json(const struct fc_vmm *fc)
{
    cJSON *o = cJSON_CreateObject();
    if (fc->balloon) {
        cJSON *b = cJSON_AddObjectToObject(o, "balloon");
        cJSON_AddNumberToObject(b, "amount_mib", fc->balloon_mib);
        cJSON_AddBoolToObject(b, "deflate_on_oom", fc->balloon_deflate_on_oom);
        cJSON_AddNumberToObject(b, "stats_polling_interval_s", fc->balloon_stats_s);
        cJSON_AddBoolToObject(b, "free_page_reporting", fc->balloon_reporting);
    } else {
        cJSON_AddNullToObject(o, "balloon");
    }
    cJSON *drives = cJSON_AddArrayToObject(o, "drives");
    for (unsigned i = 0; i < fc->ndrives; i++) {
        const struct fc_drive *d = &fc->drives[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "drive_id", d->id);
        if (d->partuuid)
            cJSON_AddStringToObject(j, "partuuid", d->partuuid);
        cJSON_AddBoolToObject(j, "is_root_device", d->root);
        cJSON_AddStringToObject(j, "cache_type", d->writeback ? "Writeback" : "Unsafe");
        cJSON_AddBoolToObject(j, "is_read_only", d->read_only);
        cJSON_AddStringToObject(j, "path_on_host", d->path);
        cJSON_AddStringToObject(j, "io_engine", d->async ? "Async" : "Sync");
        cJSON_AddItemToArray(drives, j);
    }
    if (fc->kernel) {
        cJSON *b = cJSON_AddObjectToObject(o, "boot-source");
        cJSON_AddStringToObject(b, "kernel_image_path", fc->kernel);
        if (fc->initrd)
            cJSON_AddStringToObject(b, "initrd_path", fc->initrd);
        if (fc->boot_args)
            cJSON_AddStringToObject(b, "boot_args", fc->boot_args);
    } else {
        cJSON_AddNullToObject(o, "boot-source");
    }
    if (fc->log_fd >= 0 || fc->log_path || fc->log_level != LEVEL_INFO) {
        cJSON *l = cJSON_AddObjectToObject(o, "logger");
        if (fc->log_path)
            cJSON_AddStringToObject(l, "log_path", fc->log_path);
        cJSON_AddStringToObject(l, "level", level_names[fc->log_level]);
        cJSON_AddBoolToObject(l, "show_level", fc->log_show_level);
        cJSON_AddBoolToObject(l, "show_log_origin", fc->log_show_origin);
        if (fc->log_module)
            cJSON_AddStringToObject(l, "module", fc->log_module);
    } else {
        cJSON_AddNullToObject(o, "logger");
    }
    cJSON_AddItemToObject(o, "machine-config", machine_config_json(fc));
    if (fc->metrics_path) {
        cJSON *m = cJSON_AddObjectToObject(o, "metrics");
        cJSON_AddStringToObject(m, "metrics_path", fc->metrics_path);
    } else {
        cJSON_AddNullToObject(o, "metrics");
    }
    cJSON_AddNullToObject(o, "mmds-config");
    cJSON *nets = cJSON_AddArrayToObject(o, "network-interfaces");
    for (unsigned i = 0; i < fc->nnets; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "iface_id", fc->nets[i].id);
        cJSON_AddStringToObject(j, "host_dev_name", fc->nets[i].tap);
        if (fc->nets[i].mac[0])
            cJSON_AddStringToObject(j, "guest_mac", fc->nets[i].mac);
        cJSON_AddItemToArray(nets, j);
    }
    if (fc->vsock) {
        cJSON *v = cJSON_AddObjectToObject(o, "vsock");
        cJSON_AddNumberToObject(v, "guest_cid", (double)fc->vsock_cid);
        cJSON_AddStringToObject(v, "uds_path", fc->vsock_uds);
        if (fc->vsock_id)
            cJSON_AddStringToObject(v, "vsock_id", fc->vsock_id);
    } else {
        cJSON_AddNullToObject(o, "vsock");
    }
    if (fc->entropy)
        cJSON_AddObjectToObject(o, "entropy");
    else
        cJSON_AddNullToObject(o, "entropy");
    return print_and_free(o);
}

/* ---- the log and the metrics -------------------------------------------- */

void fc_vmm_log(struct fc_vmm *fc, const char *level, const char *fmt, ...)
{
    unsigned k = LEVEL_ERROR;
    while (k <= LEVEL_TRACE && strcmp(level, level_names[k]))
        k++;
    if (fc->log_fd < 0 || k > (unsigned)fc->log_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%09ld [%s:main%s%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec, fc->id, fc->log_show_level ? ":" : "",
                     fc->log_show_level ? level_names[k] : "");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if ((size_t)n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (!write_line(fc->log_fd, line, (size_t)n))
        fc_metrics_missed_log(fc->metrics);
}

/* The library's disk number of drive slot (defined with PATCH /drives). */
static unsigned disk_index(const struct fc_vmm *fc, unsigned slot);

int fc_vmm_flush_metrics(struct fc_vmm *fc)
{
    if (fc->metrics_fd < 0)
        return -1;
    struct fc_metrics_names names = { .ndrives = fc->ndrives, .nifaces = fc->nnets };
    for (unsigned i = 0; i < fc->ndrives; i++)
        names.drives[disk_index(fc, i)] = fc->drives[i].id;
    for (unsigned i = 0; i < fc->nnets; i++)
        names.ifaces[i] = fc->nets[i].id;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char *s = fc_metrics_line(fc->metrics, fc->vm, &names, ms);
    if (!s) {
        fc_metrics_missed_line(fc->metrics);
        return -1;
    }
    size_t n = strlen(s);
    s[n] = '\n'; /* over the NUL: the line goes out whole */
    if (!write_line(fc->metrics_fd, s, n + 1))
        fc_metrics_missed_line(fc->metrics);
    free(s);
    return 0;
}

int fc_vmm_periodic_metrics(struct fc_vmm *fc, uint64_t now_ms)
{
    if (!fc->vm)
        return -1;
    if (!fc->metrics_armed) {
        fc->metrics_armed = true;
        fc->metrics_due_ms = now_ms + FC_METRICS_PERIOD_MS;
    }
    if (now_ms >= fc->metrics_due_ms) {
        fc_vmm_flush_metrics(fc);
        fc->metrics_due_ms += FC_METRICS_PERIOD_MS;
        if (fc->metrics_due_ms <= now_ms) /* far behind (a stopped process): no burst */
            fc->metrics_due_ms = now_ms + FC_METRICS_PERIOD_MS;
    }
    return (int)(fc->metrics_due_ms - now_ms);
}

void fc_vmm_set_startup(struct fc_vmm *fc, uint64_t us, uint64_t cpu_us)
{
    fc_metrics_set_startup(fc->metrics, us, cpu_us);
}

/* ---- requests ------------------------------------------------------------ */

enum fc_when { PRE_BOOT, RUNNING, ANY };

static const struct json_doc body_doc = { "a request body", 5,
                                          "{\"action_type\": \"InstanceStart\"}" };

/* api_fault() keeps 255 bytes of a message; a message naming a long
 * user string (a path) is cut before that, on a character boundary, so
 * that the answer stays valid UTF-8. */
#define FAULT_MAX 240

static char *fault_text(const char *msg)
{
    int n = (int)strnlen(msg, FAULT_MAX);
    if (n == FAULT_MAX)
        while (n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80)
            n--; /* msg[n] continues a character: leave all of it out */
    return api_fault("%.*s", n, msg);
}

static int fault400(char **body, const char *msg)
{
    *body = fault_text(msg);
    return 400;
}

static int wrong_state(struct fc_vmm *fc, enum fc_when when, char **body)
{
    if (when == PRE_BOOT && fc->vm)
        return fault400(body, "The requested operation is not supported after starting the "
                              "microVM.");
    if (when == RUNNING && !fc->vm)
        return fault400(body, "The requested operation is not supported before starting the "
                              "microVM.");
    return 0;
}

typedef int (*resource_reader)(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                               const char *path_id, vmlet_error *err);

static int rd_boot(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *id,
                   vmlet_error *err)
{
    return read_boot_source(fc, v, p, err);
}
static int rd_machine(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *id,
                      vmlet_error *err)
{
    return read_machine_config(fc, v, p, false, err);
}
static int rd_machine_patch(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                            const char *id, vmlet_error *err)
{
    return read_machine_config(fc, v, p, true, err);
}
static int rd_vsock(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *id,
                    vmlet_error *err)
{
    return read_vsock(fc, v, p, err);
}
static int rd_entropy(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *id,
                      vmlet_error *err)
{
    return read_entropy(fc, v, p, err);
}
static int rd_balloon(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *id,
                      vmlet_error *err)
{
    return read_balloon(fc, v, p, err);
}
static int rd_logger(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *id,
                     vmlet_error *err)
{
    return read_logger(fc, v, p, err);
}
static int rd_metrics(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *id,
                      vmlet_error *err)
{
    return read_metrics(fc, v, p, err);
}

static int rd_snapshot_create(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                              const char *id, vmlet_error *err)
{
    return snapshot_create(fc, v, p, err);
}
static int rd_snapshot_load(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                            const char *id, vmlet_error *err)
{
    return snapshot_load(fc, v, p, err);
}

/* Reads one resource object (the body of a PUT, or a member of
 * --config-file) named name, with read. */
static int read_object(struct fc_vmm *fc, const cJSON *v, const char *name, resource_reader read,
                       const char *path_id, const char *example, vmlet_error *err)
{
    struct json_keypath p;
    path_init(&p, name);
    if (!cJSON_IsObject(v))
        return json_key_error(err, &p, "expected an object such as %s, got %s", example,
                              json_type_name(v));
    return read(fc, v, &p, path_id, err);
}

static int put_resource(struct fc_vmm *fc, const struct http_request *req, const char *name,
                        resource_reader read, const char *path_id, const char *example, char **body)
{
    vmlet_error err = { 0 };
    cJSON *doc;
    if (json_strict_parse(req->body, req->body_len, &body_doc, &doc, &err) < 0)
        return fault400(body, err.message);
    int rc = read_object(fc, doc, name, read, path_id, example, &err);
    cJSON_Delete(doc);
    if (rc < 0)
        return fault400(body, err.message);
    return 204;
}

/* {"action_type": ...}: the one member, checked as the other bodies are. */
static int put_actions(struct fc_vmm *fc, const struct http_request *req, char **body)
{
    vmlet_error err = { 0 };
    cJSON *doc;
    if (json_strict_parse(req->body, req->body_len, &body_doc, &doc, &err) < 0)
        return fault400(body, err.message);
    static const char *const names[] = { "action_type" };
    const cJSON *f[1];
    struct json_keypath p;
    path_init(&p, "actions");
    int status = 400;
    const char *action;
    if (!cJSON_IsObject(doc)) {
        json_key_error(&err, &p, "expected an object such as {\"action_type\": \"InstanceStart\"}");
        goto out;
    }
    if (json_match_keys(doc, names, 1, f, &p, &err) < 0)
        goto out;
    json_path_key(&p, names[0]);
    if (!f[0]) {
        json_key_error(&err, &p, "missing; give InstanceStart, SendCtrlAltDel or FlushMetrics");
        goto out;
    }
    if (json_get_string(f[0], &p, true, 64, "InstanceStart, SendCtrlAltDel or FlushMetrics",
                        &action, &err) < 0)
        goto out;
    if (!strcmp(action, "InstanceStart")) {
        if ((status = wrong_state(fc, PRE_BOOT, body)))
            goto done;
        if (instance_start(fc, &err) == 0)
            status = 204;
        else
            status = 400;
    } else if (!strcmp(action, "SendCtrlAltDel")) {
        if ((status = wrong_state(fc, RUNNING, body)))
            goto done;
        vmlet_state s = vmlet_vm_state(fc->vm);
        status = 400;
        if (s == VMLET_STATE_PAUSED)
            snprintf(err.message, sizeof err.message,
                     "SendCtrlAltDel: the microVM is paused; resume it first (PATCH /vm)");
        else if (s != VMLET_STATE_RUNNING && s != VMLET_STATE_STOPPING)
            snprintf(err.message, sizeof err.message, "SendCtrlAltDel: the microVM has stopped");
        else if (vmlet_vm_request_stop(fc->vm) == 0)
            status = 204;
        else
            snprintf(err.message, sizeof err.message, "SendCtrlAltDel: the microVM has stopped");
    } else if (!strcmp(action, "FlushMetrics")) {
        /* As Firecracker: with no metrics file (no PUT /metrics) nothing is
         * written, and that is not an error; a line that cannot be made
         * is counted in logger.missed_metrics_count. */
        if (fc->metrics_fd < 0)
            fc_vmm_log(fc, "Info", "FlushMetrics: no metrics file (PUT /metrics): nothing written");
        else
            fc_vmm_flush_metrics(fc);
        status = 204;
    } else {
        char q[80];
        json_key_error(&err, &p,
                       "%s is not an action; give InstanceStart, SendCtrlAltDel or "
                       "FlushMetrics",
                       json_quote(q, sizeof q, action, 40));
    }
out:
    if (status != 204)
        *body = fault_text(err.message);
done:
    cJSON_Delete(doc);
    return status;
}

static void fc_target_noop(void *ctx)
{
    (void)ctx;
}

/* A request the vmlet control socket answers the same way; its 409 (not
 * in this state) is Firecracker's 400. */
static int via_vmlet_api(struct fc_vmm *fc, const struct http_request *req, char **body)
{
    /* The body is held to this API's strict reading first (cli/api.c's
     * is cJSON's, which takes bad UTF-8 and may quote it back). */
    if (req->body_len) {
        vmlet_error err = { 0 };
        cJSON *doc;
        if (json_strict_parse(req->body, req->body_len, &body_doc, &doc, &err) < 0)
            return fault400(body, err.message);
        cJSON_Delete(doc);
    }
    struct api_target t = { .vm = fc->vm,
                            .cpus = fc->vcpus,
                            .memory = (uint64_t)fc->mem_mib << 20,
                            .request_shutdown = fc_target_noop,
                            .stop = fc_target_noop };
    int status = api_dispatch(req, &t, body);
    return status == 409 ? 400 : status;
}

/* Splits "/drives/ID" into the resource and the ID (NULL if none; ""
 * when the path ends in '/'); false for deeper paths. */
static bool split_path(const char *path, char *resource, size_t rsize, const char **id)
{
    const char *s = path[0] == '/' ? path + 1 : path;
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n >= rsize)
        return false;
    memcpy(resource, s, n);
    resource[n] = '\0';
    *id = slash ? slash + 1 : NULL;
    return !*id || !strchr(*id, '/');
}

/* PATCH /balloon before boot: a new target for the configured balloon. */
static int patch_balloon_preboot(struct fc_vmm *fc, const struct http_request *req, char **body)
{
    vmlet_error err = { 0 };
    cJSON *doc;
    if (json_strict_parse(req->body, req->body_len, &body_doc, &doc, &err) < 0)
        return fault400(body, err.message);
    static const char *const names[] = { "amount_mib" };
    const cJSON *f[1];
    struct json_keypath p;
    uint64_t mib;
    int rc = -1;
    path_init(&p, "balloon");
    if (!cJSON_IsObject(doc))
        json_key_error(&err, &p, "expected an object such as {\"amount_mib\": 64}");
    else if (json_match_keys(doc, names, 1, f, &p, &err) == 0) {
        json_path_key(&p, names[0]);
        if (!f[0])
            json_key_error(&err, &p, "missing; give the target in MiB");
        else
            rc = json_get_uint(f[0], &p, 0, fc->mem_mib, &mib, &err);
    }
    cJSON_Delete(doc);
    if (rc < 0)
        return fault400(body, err.message);
    fc->balloon_mib = (unsigned)mib;
    return 204;
}

/* The library's number for drive slot (vmlet_vm_set_disk_path): the root
 * drive is disk 0 and the others follow in their order (build_config). */
static unsigned disk_index(const struct fc_vmm *fc, unsigned slot)
{
    unsigned root = 0;
    while (root < fc->ndrives && !fc->drives[root].root)
        root++;
    if (root == fc->ndrives || slot > root)
        return slot;
    return slot == root ? 0 : slot + 1;
}

/* PATCH /drives/{id} on a running microVM (Firecracker's PartialDrive):
 * a new backing file for the drive, the guest told of its size (Kata's
 * block hotplug into its placeholder drives). */
/* The start of a PATCH on a resource with an ID (names[0] is the ID's
 * key; read_object has checked it is an object): the known keys, its ID
 * given and the path's. 0, or -1 with err naming the key. */
static int read_patch_id(const cJSON *v, const char *const *names, unsigned n, const cJSON **f,
                         struct json_keypath *p, const char *what, const char *path_id,
                         const char **id, vmlet_error *err)
{
    if (json_match_keys(v, names, n, f, p, err) < 0)
        return -1;
    size_t old = json_path_key(p, names[0]);
    if (!f[0])
        return json_key_error(err, p, "missing; give %s", what);
    if (json_get_string(f[0], p, true, FC_ID_MAX, what, id, err) < 0)
        return -1;
    if (strcmp(*id, path_id))
        return json_key_error(err, p, "the ID in the path and the ID in the body differ");
    json_path_pop(p, old);
    return 0;
}

/* PATCH /network-interfaces/{id} on a running microVM: in Firecracker it
 * changes only the interface's rate limiters. vmlet has none, so an
 * interface given before InstanceStart with empty limiters (what Kata
 * sends) is accepted and changes nothing; a limiter with a bucket is
 * refused naming the field. */
static int patch_net(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p, const char *path_id,
                     vmlet_error *err)
{
    static const char *const names[] = { "iface_id", "rx_rate_limiter", "tx_rate_limiter" };
    const cJSON *f[3] = { 0 };
    const char *id = NULL;
    if (read_patch_id(v, names, 3, f, p, "the interface's ID", path_id, &id, err) < 0 ||
        !id) /* set when it returns 0: for the analyzer */
        return -1;
    unsigned slot = 0;
    while (slot < fc->nnets && strcmp(fc->nets[slot].id, id))
        slot++;
    if (slot == fc->nnets) {
        json_path_key(p, names[0]);
        return json_key_error(err, p, "no interface %s was given before InstanceStart", id);
    }
    if (check_rate_limiter(f[1], p, names[1], err) < 0 ||
        check_rate_limiter(f[2], p, names[2], err) < 0)
        return -1;
    return 0;
}

static int patch_drive(struct fc_vmm *fc, const cJSON *v, struct json_keypath *p,
                       const char *path_id, vmlet_error *err)
{
    static const char *const names[] = { "drive_id", "path_on_host", "rate_limiter" };
    const cJSON *f[3] = { 0 };
    const char *id = NULL, *path = NULL;
    if (read_patch_id(v, names, 3, f, p, "the drive's ID", path_id, &id, err) < 0 ||
        !id) /* set when it returns 0: for the analyzer */
        return -1;
    if (check_rate_limiter(f[2], p, names[2], err) < 0)
        return -1;
    if (!absent(f[1])) {
        size_t old = json_path_key(p, names[1]);
        if (json_get_string(f[1], p, true, FC_PATH_MAX, "an image file or block device", &path,
                            err) < 0)
            return -1;
        json_path_pop(p, old);
    }
    unsigned slot = 0;
    while (slot < fc->ndrives && strcmp(fc->drives[slot].id, id))
        slot++;
    if (slot == fc->ndrives) {
        json_path_key(p, names[0]);
        if (!fc->kernel) /* the microVM came from PUT /snapshot/load */
            return json_key_error(err, p,
                                  "no drive %s: vmlet's snapshots do not keep drive IDs, so "
                                  "after PUT /snapshot/load no drive can be patched",
                                  id);
        return json_key_error(err, p, "no drive %s was given before InstanceStart", id);
    }
    char *copy = path ? strdup(path) : NULL;
    if (path && !copy)
        return nomem(err);
    if (path && vmlet_vm_set_disk_path(fc->vm, disk_index(fc, slot), path, err) < 0) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        json_path_key(p, names[1]);
        free(copy);
        return json_key_error(err, p, "%s", why);
    }
    if (copy) {
        free(fc->drives[slot].path);
        fc->drives[slot].path = copy;
        fc_vmm_log(fc, "Info", "drive %s: now %.300s", id, path);
    }
    return 0;
}

static const char *const unsupported_resources[] = {
    "mmds", "cpu-config", "serial", "pmem", "hotplug",
};

static int dispatch(struct fc_vmm *fc, const struct http_request *req, char **body)
{
    *body = NULL;
    const char *m = req->method;
    bool get = !strcmp(m, "GET"), put = !strcmp(m, "PUT"), patch = !strcmp(m, "PATCH");
    bool has_body = req->body && req->body_len;
    char resource[32];
    const char *id;
    int status;

    if (!split_path(req->path, resource, sizeof resource, &id))
        goto invalid;
    if (get && has_body)
        return fault400(body, "GET request cannot have a body.");
    if ((put || patch) && !has_body)
        return fault400(body, put ? "Empty PUT request." : "Empty PATCH request.");
    if (id && !valid_resource_id(id) &&
        (!strcmp(resource, "drives") || !strcmp(resource, "network-interfaces")))
        return fault400(body, "API Resource IDs can only contain alphanumeric characters and "
                              "underscores, at most 64.");

    if (get && !resource[0] && !id)
        return *body = instance_info(fc), 200;
    if (get && !strcmp(resource, "version") && !id) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "firecracker_version", FC_API_VERSION);
        return *body = print_and_free(o), 200;
    }
    if (get && !strcmp(resource, "machine-config") && !id)
        return *body = print_and_free(machine_config_json(fc)), 200;
    if (get && !strcmp(resource, "vm") && id && !strcmp(id, "config"))
        return *body = vm_config_json(fc), 200;
    if (put && !strcmp(resource, "actions") && !id)
        return put_actions(fc, req, body);

    static const struct {
        const char *name;
        resource_reader read;
        bool with_id;
        const char *example;
    } resources[] = {
        { "boot-source", rd_boot, false, "{\"kernel_image_path\": \"vmlinuz\"}" },
        { "machine-config", rd_machine, false, "{\"vcpu_count\": 2, \"mem_size_mib\": 512}" },
        { "drives", read_drive, true,
          "{\"drive_id\": \"rootfs\", \"path_on_host\": \"root.img\", \"is_root_device\": true}" },
        { "network-interfaces", read_net, true,
          "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}" },
        { "vsock", rd_vsock, false, "{\"guest_cid\": 3, \"uds_path\": \"v.sock\"}" },
        { "logger", rd_logger, false, "{\"log_path\": \"fc.log\", \"level\": \"Info\"}" },
        { "metrics", rd_metrics, false, "{\"metrics_path\": \"metrics.fifo\"}" },
        { "entropy", rd_entropy, false, "{}" },
        { "balloon", rd_balloon, false, "{\"amount_mib\": 0, \"deflate_on_oom\": true}" },
    };
    if (put)
        for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++) {
            if (strcmp(resource, resources[i].name))
                continue;
            if (resources[i].with_id != (id != NULL))
                goto invalid;
            if ((status = wrong_state(fc, PRE_BOOT, body)))
                return status;
            return put_resource(fc, req, resources[i].name, resources[i].read, id,
                                resources[i].example, body);
        }
    if (patch && !strcmp(resource, "machine-config") && !id) {
        if ((status = wrong_state(fc, PRE_BOOT, body)))
            return status;
        return put_resource(fc, req, "machine-config", rd_machine_patch, NULL,
                            "{\"vcpu_count\": 2}", body);
    }
    if (patch && !strcmp(resource, "vm") && !id) {
        if ((status = wrong_state(fc, RUNNING, body)))
            return status;
        return via_vmlet_api(fc, req, body);
    }
    if (!strcmp(resource, "balloon") && (get || patch)) {
        if (id && !(get && !strcmp(id, "statistics")))
            goto unsupported;
        if (fc->vm)
            return via_vmlet_api(fc, req, body);
        if (id)
            return wrong_state(fc, RUNNING, body);
        if (!fc->balloon)
            return fault400(body, "No balloon device: PUT /balloon first.");
        if (get) {
            char *all = vm_config_json(fc);
            cJSON *o = all ? cJSON_Parse(all) : NULL;
            free(all);
            *body = print_and_free(cJSON_DetachItemFromObject(o, "balloon"));
            cJSON_Delete(o);
            return 200;
        }
        return patch_balloon_preboot(fc, req, body);
    }
    if (put && !strcmp(resource, "snapshot") && id && !strcmp(id, "create")) {
        if ((status = wrong_state(fc, RUNNING, body)))
            return status;
        return put_resource(fc, req, "snapshot/create", rd_snapshot_create, NULL,
                            "{\"snapshot_path\": \"vm.state\", \"mem_file_path\": \"vm.mem\"}",
                            body);
    }
    if (put && !strcmp(resource, "snapshot") && id && !strcmp(id, "load")) {
        if ((status = wrong_state(fc, PRE_BOOT, body)))
            return status;
        return put_resource(fc, req, "snapshot/load", rd_snapshot_load, NULL,
                            "{\"snapshot_path\": \"vm.state\", \"mem_backend\": "
                            "{\"backend_path\": \"vm.mem\", \"backend_type\": \"File\"}}",
                            body);
    }
    if (patch && !strcmp(resource, "drives") && id) {
        if ((status = wrong_state(fc, RUNNING, body)))
            return status;
        return put_resource(fc, req, "drives", patch_drive, id,
                            "{\"drive_id\": \"drive_0\", \"path_on_host\": \"disk.img\"}", body);
    }
    if (patch && !strcmp(resource, "network-interfaces") && id) {
        if ((status = wrong_state(fc, RUNNING, body)))
            return status;
        return put_resource(fc, req, "network-interfaces", patch_net, id,
                            "{\"iface_id\": \"eth0\"}", body);
    }
    if ((put || patch) &&
        (!strcmp(resource, "snapshot") || !strcmp(resource, "network-interfaces"))) {
        *body = api_fault("%s /%s%s%s is not supported by vmlet's Firecracker mode yet "
                          "(docs/firecracker.md)",
                          m, resource, id ? "/" : "", id ? id : "");
        return 400;
    }
    for (size_t i = 0; i < sizeof unsupported_resources / sizeof unsupported_resources[0]; i++)
        if (!strcmp(resource, unsupported_resources[i]))
            goto unsupported;
invalid:
    *body = api_fault("Invalid request method and/or path: %s %.128s.", m, req->path);
    return 400;
unsupported:
    *body = api_fault("%s /%s%s%s is not supported by vmlet (docs/firecracker.md)", m, resource,
                      id ? "/" : "", id ? id : "");
    return 400;
}

/* The requests Firecracker counts in its metrics, by method and path. */
static const struct {
    const char *method, *resource;
    bool with_id;
    enum fc_request kind;
} counted_requests[] = {
    { "GET", "", false, FC_REQ_GET_INSTANCE_INFO },
    { "GET", "machine-config", false, FC_REQ_GET_MACHINE_CFG },
    { "GET", "version", false, FC_REQ_GET_VERSION },
    { "PUT", "actions", false, FC_REQ_PUT_ACTIONS },
    { "PUT", "boot-source", false, FC_REQ_PUT_BOOT_SOURCE },
    { "PUT", "drives", true, FC_REQ_PUT_DRIVE },
    { "PUT", "logger", false, FC_REQ_PUT_LOGGER },
    { "PUT", "machine-config", false, FC_REQ_PUT_MACHINE_CFG },
    { "PUT", "metrics", false, FC_REQ_PUT_METRICS },
    { "PUT", "network-interfaces", true, FC_REQ_PUT_NETWORK },
    { "PUT", "vsock", false, FC_REQ_PUT_VSOCK },
    { "PATCH", "drives", true, FC_REQ_PATCH_DRIVE },
    { "PATCH", "network-interfaces", true, FC_REQ_PATCH_NETWORK },
    { "PATCH", "machine-config", false, FC_REQ_PATCH_MACHINE_CFG },
};

/* A request's part in the metrics: its counter (and fails on an error
 * answer), a drive's update_count, and the latencies_us gauges of the
 * pauses, resumes and snapshots that succeeded (us: the whole request). */
static void count_request(struct fc_vmm *fc, const struct http_request *req, int status,
                          uint64_t us)
{
    char resource[32];
    const char *id;
    if (!split_path(req->path, resource, sizeof resource, &id))
        return;
    const char *m = req->method;
    bool failed = status >= 400;
    for (size_t i = 0; i < sizeof counted_requests / sizeof *counted_requests; i++)
        if (!strcmp(m, counted_requests[i].method) &&
            !strcmp(resource, counted_requests[i].resource) &&
            counted_requests[i].with_id == (id != NULL))
            fc_metrics_request(fc->metrics, counted_requests[i].kind, failed);
    if (!strcmp(m, "PATCH") && !strcmp(resource, "drives") && id && fc->vm)
        for (unsigned i = 0; i < fc->ndrives; i++)
            if (!strcmp(fc->drives[i].id, id))
                fc_metrics_drive_update(fc->metrics, disk_index(fc, i), failed);
    if (status != 204)
        return;
    if (!strcmp(m, "PUT") && !strcmp(resource, "snapshot") && id)
        fc_metrics_set_latency(
            fc->metrics, !strcmp(id, "create") ? FC_LAT_FULL_CREATE_SNAPSHOT : FC_LAT_LOAD_SNAPSHOT,
            us);
    if (!strcmp(m, "PATCH") && !strcmp(resource, "vm") && !id) {
        /* The body was read strictly already: {"state": "Paused"|"Resumed"}. */
        cJSON *doc = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(doc, "state");
        if (cJSON_IsString(st))
            fc_metrics_set_latency(
                fc->metrics,
                !strcmp(st->valuestring, "Paused") ? FC_LAT_PAUSE_VM : FC_LAT_RESUME_VM, us);
        cJSON_Delete(doc);
    }
}

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Each request and its answer go to the log (Info; the fault at Warning). */
int fc_vmm_dispatch(const struct http_request *req, void *ctx, char **body)
{
    struct fc_vmm *fc = ctx;
    uint64_t start = monotonic_us();
    int status = dispatch(fc, req, body);
    count_request(fc, req, status, monotonic_us() - start);
    if (status >= 400)
        fc_vmm_log(fc, "Warning", "API: %s %.128s: %d %.300s", req->method, req->path, status,
                   *body ? *body : "");
    else
        fc_vmm_log(fc, "Info", "API: %s %.128s: %d", req->method, req->path, status);
    return status;
}

/* ---- --config-file ------------------------------------------------------- */

int fc_vmm_boot_from_json(struct fc_vmm *fc, const char *text, size_t len, vmlet_error *err)
{
    static const struct json_doc config_doc = {
        "a Firecracker config file", 6, "{\"boot-source\": {\"kernel_image_path\": \"vmlinuz\"}}"
    };
    cJSON *doc;
    if (json_strict_parse(text, len, &config_doc, &doc, err) < 0)
        return -1;
    static const char *const names[] = {
        "boot-source",    "machine-config", "drives",  "network-interfaces", "vsock",      "logger",
        "metrics",        "entropy",        "balloon", "mmds-config",        "cpu-config", "pmem",
        "memory-hotplug", "serial"
    };
    enum { N = sizeof names / sizeof names[0] };
    const cJSON *f[N];
    struct json_keypath p = { .len = 0 };
    int rc = -1;
    if (!cJSON_IsObject(doc)) {
        fail(err, "the file is %s; it must be an object such as %s", json_type_name(doc),
             config_doc.example);
        goto out;
    }
    if (json_match_keys(doc, names, N, f, &p, err) < 0)
        goto out;
    /* Logger and metrics first, so what follows can be logged. */
    static const unsigned order[] = { 5, 6, 0, 1, 4, 7, 8 };
    static const resource_reader readers[] = { rd_boot,    rd_machine, NULL,
                                               NULL,       rd_vsock,   rd_logger,
                                               rd_metrics, rd_entropy, rd_balloon };
    for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++) {
        unsigned k = order[i];
        if (absent(f[k]))
            continue;
        if (read_object(fc, f[k], names[k], readers[k], NULL, "{...}", err) < 0)
            goto out;
    }
    for (unsigned k = 2; k <= 3; k++) {
        if (absent(f[k]))
            continue;
        path_init(&p, names[k]);
        if (!cJSON_IsArray(f[k])) {
            json_key_error(err, &p, "expected an array, got %s", json_type_name(f[k]));
            goto out;
        }
        unsigned i = 0;
        for (const cJSON *e = f[k]->child; e; e = e->next, i++) {
            char name[48];
            snprintf(name, sizeof name, "%s[%u]", names[k], i);
            if (read_object(fc, e, name, k == 2 ? read_drive : read_net, NULL, "{...}", err) < 0)
                goto out;
        }
    }
    for (unsigned k = 9; k < N; k++) {
        bool empty = absent(f[k]) || (cJSON_IsArray(f[k]) && !f[k]->child);
        if (!empty) {
            path_init(&p, names[k]);
            json_key_error(err, &p, "not supported by vmlet; leave it out (docs/firecracker.md)");
            goto out;
        }
    }
    rc = instance_start(fc, err);
out:
    cJSON_Delete(doc);
    return rc;
}

/* ---- life ------------------------------------------------------------- */

struct fc_vmm *fc_vmm_new(const struct fc_host *host)
{
    struct fc_vmm *fc = calloc(1, sizeof *fc);
    if (!fc)
        return NULL;
    fc->host = *host;
    snprintf(fc->id, sizeof fc->id, "%s", host->id ? host->id : FC_DEFAULT_ID);
    fc->vcpus = FC_DEFAULT_VCPUS;
    fc->mem_mib = FC_DEFAULT_MEM_MIB;
    fc->log_fd = fc->metrics_fd = -1;
    fc->log_level = LEVEL_INFO;
    if (!(fc->metrics = fc_metrics_new())) {
        free(fc);
        return NULL;
    }
    /* glibc's gmtime_r reads /etc/localtime on its first call, which the
     * sandbox (this thread's, once the VM runs) refuses: read it now. */
    tzset();
    return fc;
}

vmlet_vm *fc_vmm_vm(struct fc_vmm *fc)
{
    return fc->vm;
}

void fc_vmm_free(struct fc_vmm *fc)
{
    if (!fc)
        return;
    if (fc->vm)
        vmlet_vm_free(fc->vm);
    for (unsigned i = 0; i < fc->ndrives; i++) {
        free(fc->drives[i].path);
        free(fc->drives[i].partuuid);
    }
    free(fc->kernel);
    free(fc->initrd);
    free(fc->boot_args);
    free(fc->vsock_uds);
    free(fc->vsock_id);
    free(fc->log_path);
    free(fc->log_module);
    free(fc->metrics_path);
    if (fc->log_fd >= 0)
        close(fc->log_fd);
    if (fc->metrics_fd >= 0)
        close(fc->metrics_fd);
    fc_metrics_free(fc->metrics);
    free(fc);
}
