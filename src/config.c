/* vmlet_config: what the user asked for, and the checks that tell them
 * clearly what is wrong with it before anything is allocated. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "error.h"
#include "netspec.h"
#include "x86/boot.h"

VMLET_API vmlet_config *vmlet_config_new(void)
{
    vmlet_config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cpus = VMLET_DEFAULT_CPUS;
    c->memory = VMLET_DEFAULT_MEMORY;
    c->console_in = -1;
    c->console_out = -1;
    c->shutdown_timeout = VMLET_DEFAULT_SHUTDOWN_TIMEOUT;
    return c;
}

VMLET_API void vmlet_config_free(vmlet_config *c)
{
    if (!c)
        return;
    free(c->kernel);
    free(c->initrd);
    free(c->cmdline);
    free(c->kvm_device);
    free(c->vcpu_name);
    free(c->vsock_uds);
    for (unsigned i = 0; i < c->ndisks; i++) {
        free(c->disks[i].path);
        free(c->disks[i].serial);
    }
    for (unsigned i = 0; i < c->nshares; i++) {
        free(c->shares[i].path);
        free(c->shares[i].tag);
    }
    free(c);
}

VMLET_API int vmlet_config_set_cpus(vmlet_config *c, unsigned cpus)
{
    c->cpus = cpus;
    return 0;
}

VMLET_API int vmlet_config_set_memory(vmlet_config *c, uint64_t bytes)
{
    c->memory = bytes;
    return 0;
}

VMLET_API unsigned vmlet_config_get_cpus(const vmlet_config *c)
{
    return c->cpus;
}

VMLET_API uint64_t vmlet_config_get_memory(const vmlet_config *c)
{
    return c->memory;
}

/* Replaces *slot with a copy of s (NULL clears it). */
int config_replace_string(char **slot, const char *s)
{
    char *copy = NULL;
    if (s && !(copy = strdup(s)))
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

VMLET_API int vmlet_config_set_linux_boot(vmlet_config *c, const char *kernel, const char *initrd,
                                          const char *cmdline)
{
    if (config_replace_string(&c->kernel, kernel) || config_replace_string(&c->initrd, initrd) ||
        config_replace_string(&c->cmdline, cmdline))
        return -1;
    return 0;
}

VMLET_API const char *vmlet_config_get_kernel(const vmlet_config *c)
{
    return c->kernel;
}

VMLET_API const char *vmlet_config_get_initrd(const vmlet_config *c)
{
    return c->initrd;
}

VMLET_API const char *vmlet_config_get_cmdline(const vmlet_config *c)
{
    return c->cmdline;
}

VMLET_API vmlet_console_kind vmlet_config_get_console(const vmlet_config *c)
{
    return c->console;
}

VMLET_API int vmlet_config_set_console(vmlet_config *c, vmlet_console_kind kind, int in_fd,
                                       int out_fd)
{
    c->console = kind;
    c->console_in = in_fd;
    c->console_out = out_fd;
    return 0;
}

VMLET_API int vmlet_config_add_disk(vmlet_config *c, const char *path, unsigned flags,
                                    const char *serial)
{
    if (c->ndisks == VMLET_MAX_DISKS) {
        c->too_many_disks = true;
        return 0;
    }
    struct config_disk *d = &c->disks[c->ndisks];
    memset(d, 0, sizeof *d);
    if (config_replace_string(&d->path, path ? path : "") ||
        config_replace_string(&d->serial, serial)) {
        free(d->path);
        d->path = NULL;
        return -1;
    }
    d->read_only = flags & VMLET_DISK_READONLY;
    c->ndisks++;
    return 0;
}

VMLET_API int vmlet_config_add_share(vmlet_config *c, const char *host_path, const char *tag,
                                     unsigned flags)
{
    if (c->nshares == VMLET_MAX_SHARES) {
        c->too_many_shares = true;
        return 0;
    }
    struct config_share *sh = &c->shares[c->nshares];
    memset(sh, 0, sizeof *sh);
    if (config_replace_string(&sh->path, host_path ? host_path : "") ||
        config_replace_string(&sh->tag, tag ? tag : "")) {
        free(sh->path);
        sh->path = NULL;
        return -1;
    }
    sh->read_only = flags & VMLET_SHARE_READONLY;
    sh->cache_always = flags & VMLET_SHARE_CACHE_ALWAYS;
    c->nshares++;
    return 0;
}

VMLET_API int vmlet_config_add_net(vmlet_config *c, const char *spec)
{
    if (c->nnets == VMLET_MAX_NICS) {
        c->too_many_nets = true;
        return 0;
    }
    /* Parsed here, once. The header promises that validate reports a bad
     * spec, so its error waits there; the NIC still counts towards the
     * limit, as it did when specs were kept as text. */
    struct net_spec *s = &c->nets[c->nnets++];
    vmlet_error err;
    if (net_spec_parse(spec, s, &err) < 0) {
        memset(s, 0, sizeof *s);
        if (!c->bad_net) {
            c->bad_net = true;
            c->net_error = err;
        }
    }
    return 0;
}

void config_add_net_spec(vmlet_config *c, const struct net_spec *s)
{
    if (c->nnets == VMLET_MAX_NICS)
        c->too_many_nets = true;
    else
        c->nets[c->nnets++] = *s;
}

VMLET_API int vmlet_check_net(const char *spec, vmlet_error *err)
{
    struct net_spec s;
    return net_spec_parse(spec, &s, err);
}

/* Every --net parsed, and together they make sense (no TAP device, host
 * port or MAC used twice). */
static int check_nets(const vmlet_config *c, vmlet_error *err)
{
    if (c->too_many_nets)
        return set_error(err, VMLET_ERR_INVALID, "net: more than %d NICs; give at most %d",
                         VMLET_MAX_NICS, VMLET_MAX_NICS);
    if (c->bad_net) {
        if (err)
            *err = c->net_error;
        return -1;
    }
    return net_specs_check(c->nets, c->nnets, err);
}

VMLET_API int vmlet_config_set_shutdown_timeout(vmlet_config *c, unsigned seconds)
{
    c->shutdown_timeout = seconds;
    return 0;
}

VMLET_API unsigned vmlet_config_get_shutdown_timeout(const vmlet_config *c)
{
    return c->shutdown_timeout;
}

VMLET_API int vmlet_config_set_entropy(vmlet_config *c, int enabled)
{
    c->entropy = enabled != 0;
    return 0;
}

VMLET_API int vmlet_config_set_balloon(vmlet_config *c, int enabled, unsigned flags,
                                       unsigned stats_interval_s)
{
    c->balloon = enabled != 0;
    c->balloon_flags = flags;
    c->balloon_stats_s = stats_interval_s;
    return 0;
}

#define BALLOON_FLAGS (VMLET_BALLOON_DEFLATE_ON_OOM | VMLET_BALLOON_FREE_PAGE_REPORTING)

static int check_balloon(const vmlet_config *c, vmlet_error *err)
{
    if (!c->balloon)
        return 0;
    if (c->balloon_flags & ~BALLOON_FLAGS)
        return set_error(err, VMLET_ERR_INVALID, "balloon: unknown flags 0x%x",
                         c->balloon_flags & ~BALLOON_FLAGS);
    if (c->balloon_stats_s > VMLET_BALLOON_MAX_STATS_INTERVAL)
        return set_error(err, VMLET_ERR_INVALID,
                         "balloon: a statistics interval of %u seconds is out of range; give 0 "
                         "(none) to %d",
                         c->balloon_stats_s, VMLET_BALLOON_MAX_STATS_INTERVAL);
    return 0;
}

/* The one parser of the --balloon text (the CLI's; vm.json has its keys). */
VMLET_API int vmlet_parse_balloon(const char *spec, unsigned *flags, unsigned *stats_interval_s,
                                  vmlet_error *err)
{
    *flags = 0;
    *stats_interval_s = 0;
    if (!spec)
        return 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 14 && strncmp(p, "deflate-on-oom", len) == 0) {
            *flags |= VMLET_BALLOON_DEFLATE_ON_OOM;
        } else if (len == 19 && strncmp(p, "free-page-reporting", len) == 0) {
            *flags |= VMLET_BALLOON_FREE_PAGE_REPORTING;
        } else if (len >= 6 && strncmp(p, "stats=", 6) == 0) {
            unsigned long v = 0;
            size_t i = 6;
            for (; i < len && p[i] >= '0' && p[i] <= '9' && v <= VMLET_BALLOON_MAX_STATS_INTERVAL;
                 i++)
                v = v * 10 + (unsigned long)(p[i] - '0');
            if (i == 6 || i < len || v > VMLET_BALLOON_MAX_STATS_INTERVAL)
                return set_error(err, VMLET_ERR_INVALID,
                                 "--balloon '%s': stats=%.*s: give the seconds between "
                                 "statistics, 0 (none) to %d",
                                 spec, (int)(len - 6), p + 6, VMLET_BALLOON_MAX_STATS_INTERVAL);
            *stats_interval_s = (unsigned)v;
        } else {
            return set_error(err, VMLET_ERR_INVALID,
                             "--balloon '%s': unknown option '%.*s'; known are deflate-on-oom, "
                             "free-page-reporting and stats=SECONDS",
                             spec, (int)len, p);
        }
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return set_error(err, VMLET_ERR_INVALID, "--balloon '%s': empty option after ','",
                             spec);
    }
    return 0;
}

VMLET_API int vmlet_config_set_vsock(vmlet_config *c, uint64_t guest_cid, const char *uds_path)
{
    c->vsock_cid = guest_cid;
    return config_replace_string(&c->vsock_uds, uds_path);
}

/* CIDs 0, 1 and 2 are the hypervisor's, the local and the host's, and
 * 0xFFFFFFFF is VMADDR_CID_ANY; the upper 32 bits are reserved (virtio 1.2
 * section 5.10.4). The socket path must fit a Unix socket address, with
 * "_<port>" added for the guest's own connections. */
int config_check_vsock(const vmlet_config *c, vmlet_error *err)
{
    if (!c->vsock_uds)
        return 0;
    if (c->vsock_cid < VMLET_VSOCK_MIN_CID || c->vsock_cid > VMLET_VSOCK_MAX_CID)
        return set_error(err, VMLET_ERR_INVALID,
                         "vsock: guest CID %llu is out of range; give 3 to %u (0, 1 and 2 are "
                         "reserved, 2 is the host)",
                         (unsigned long long)c->vsock_cid, VMLET_VSOCK_MAX_CID);
    size_t len = strlen(c->vsock_uds);
    if (len == 0)
        return set_error(err, VMLET_ERR_INVALID, "vsock: no Unix socket path given (uds=)");
    if (len > VMLET_VSOCK_MAX_PATH)
        return set_error(err, VMLET_ERR_INVALID,
                         "vsock: the Unix socket path '%s' is longer than %d bytes (a Unix "
                         "socket address holds 107, and \"_<port>\" is added to it for "
                         "connections from the guest); use a shorter path",
                         c->vsock_uds, VMLET_VSOCK_MAX_PATH);
    return 0;
}

/* A share: a directory this user can read (and, unless read-only, write),
 * under a tag of 1 to 36 bytes that no other share has. */
static int check_shares(const vmlet_config *c, vmlet_error *err)
{
    if (c->too_many_shares)
        return set_error(err, VMLET_ERR_INVALID, "shares: more than %d; give at most %d",
                         VMLET_MAX_SHARES, VMLET_MAX_SHARES);
    for (unsigned i = 0; i < c->nshares; i++) {
        const struct config_share *sh = &c->shares[i];
        size_t len = strlen(sh->tag);
        struct stat st;
        if (!sh->path[0])
            return set_error(err, VMLET_ERR_INVALID, "share %u: no directory given", i);
        if (len == 0 || len > VMLET_SHARE_TAG_MAX)
            return set_error(err, VMLET_ERR_INVALID,
                             "share '%s': the tag '%s' must be 1 to %d bytes (the guest mounts "
                             "it by this name)",
                             sh->path, sh->tag, VMLET_SHARE_TAG_MAX);
        for (unsigned j = 0; j < i; j++)
            if (!strcmp(c->shares[j].tag, sh->tag))
                return set_error(err, VMLET_ERR_INVALID,
                                 "share '%s': the tag '%s' is already the tag of '%s'; give "
                                 "each share its own",
                                 sh->path, sh->tag, c->shares[j].path);
        if (stat(sh->path, &st) < 0)
            return set_error(err, VMLET_ERR_FILE, "share '%s': %s; check the path", sh->path,
                             strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return set_error(err, VMLET_ERR_FILE, "share '%s' is not a directory", sh->path);
        if (access(sh->path, sh->read_only ? R_OK | X_OK : R_OK | W_OK | X_OK) < 0)
            return set_error(err, VMLET_ERR_FILE, "share '%s': %s; %s", sh->path, strerror(errno),
                             sh->read_only ? "make it readable for this user"
                                           : "make it writable for this user, or add ,ro");
    }
    return 0;
}

/* A disk must be a readable (and, unless read-only, writable) regular file
 * or block device whose size is a whole number of 512-byte sectors; none
 * is a placeholder of capacity 0 (vmlet_vm_set_disk_path fills it). */
static int check_disk(unsigned i, const struct config_disk *d, vmlet_error *err)
{
    struct stat st;
    if (!d->path[0])
        return set_error(err, VMLET_ERR_INVALID, "disk %u: no path given", i);
    if (stat(d->path, &st) < 0)
        return set_error(err, VMLET_ERR_FILE, "disk '%s': %s; check the path", d->path,
                         strerror(errno));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return set_error(err, VMLET_ERR_FILE,
                         "disk '%s' is not a regular file or a "
                         "block device",
                         d->path);
    if (access(d->path, d->read_only ? R_OK : R_OK | W_OK) < 0)
        return set_error(err, VMLET_ERR_FILE, "disk '%s': %s; %s", d->path, strerror(errno),
                         d->read_only ? "make it readable for this user"
                                      : "make it writable for this user, or add ,ro");
    if (S_ISREG(st.st_mode) && st.st_size % 512)
        return set_error(err, VMLET_ERR_FILE,
                         "disk '%s': its size (%lld bytes) is not a "
                         "multiple of 512; resize it (truncate -s)",
                         d->path, (long long)st.st_size);
    if (d->serial) {
        if (strlen(d->serial) > VMLET_DISK_SERIAL_MAX)
            return set_error(err, VMLET_ERR_INVALID,
                             "disk '%s': serial '%s' is longer "
                             "than %d characters",
                             d->path, d->serial, VMLET_DISK_SERIAL_MAX);
        for (const char *p = d->serial; *p; p++)
            if (*p < 0x21 || *p > 0x7e)
                return set_error(err, VMLET_ERR_INVALID,
                                 "disk '%s': serial may only "
                                 "hold printable ASCII without spaces",
                                 d->path);
    }
    return 0;
}

VMLET_API int vmlet_config_set_seccomp(vmlet_config *c, vmlet_seccomp_mode mode)
{
    if (mode != VMLET_SECCOMP_ON && mode != VMLET_SECCOMP_OFF && mode != VMLET_SECCOMP_LOG)
        return -1;
    c->seccomp = mode;
    return 0;
}

VMLET_API vmlet_seccomp_mode vmlet_config_get_seccomp(const vmlet_config *c)
{
    return c->seccomp;
}

VMLET_API int vmlet_config_set_vcpu_thread_name(vmlet_config *c, const char *prefix)
{
    return config_replace_string(&c->vcpu_name, prefix);
}

VMLET_API int vmlet_config_set_kvm_device(vmlet_config *c, const char *path)
{
    return config_replace_string(&c->kvm_device, path);
}

/* Memory sizes for messages: "512 MiB", "1.5 GiB". */
static void format_size(char *buf, size_t len, uint64_t bytes)
{
    if (bytes >= (1ULL << 30))
        snprintf(buf, len, "%.1f GiB", bytes / (double)(1ULL << 30));
    else
        snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
}

/* The file must exist, be readable and be a regular file or block device. */
static int check_readable_file(const char *what, const char *path, vmlet_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return set_error(err, VMLET_ERR_FILE, "%s '%s': %s; check the path", what, path,
                         strerror(errno));
    if (S_ISDIR(st.st_mode))
        return set_error(err, VMLET_ERR_FILE, "%s '%s' is a directory; give a file", what, path);
    if (access(path, R_OK) < 0)
        return set_error(err, VMLET_ERR_FILE, "%s '%s': %s; make it readable for this user", what,
                         path, strerror(errno));
    return 0;
}

/* Two --disk options naming one file would be two devices writing one
 * image behind each other's back. */
static int same_file_twice(const vmlet_config *c, vmlet_error *err)
{
    struct stat a, b;
    for (unsigned i = 0; i < c->ndisks; i++)
        for (unsigned j = i + 1; j < c->ndisks; j++)
            if (stat(c->disks[i].path, &a) == 0 && stat(c->disks[j].path, &b) == 0 &&
                a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                return set_error(err, VMLET_ERR_INVALID,
                                 "disk '%s' is given twice (also "
                                 "as '%s')",
                                 c->disks[j].path, c->disks[i].path);
    return 0;
}

VMLET_API int vmlet_config_validate(const vmlet_config *c, vmlet_error *err)
{
    char want[32], have[32];

    if (c->cpus < 1 || c->cpus > VMLET_MAX_CPUS)
        return set_error(err, VMLET_ERR_INVALID, "cpus: %u is out of range; give 1 to %u", c->cpus,
                         VMLET_MAX_CPUS);
    if (c->memory < VMLET_MIN_MEMORY || c->memory > VMLET_MAX_MEMORY) {
        format_size(want, sizeof want, c->memory);
        return set_error(err, VMLET_ERR_INVALID, "memory: %s is out of range; give 16M to 1T",
                         want);
    }
    if (c->memory % 4096)
        return set_error(err, VMLET_ERR_INVALID, "memory: %llu bytes is not a multiple of 4 KiB",
                         (unsigned long long)c->memory);
    uint64_t host = host_memory_bytes();
    if (host && c->memory > host) {
        format_size(want, sizeof want, c->memory);
        format_size(have, sizeof have, host);
        return set_error(err, VMLET_ERR_INVALID,
                         "memory: %s is more than this host has (%s of RAM and swap); "
                         "give the VM less memory",
                         want, have);
    }
    if (!c->kernel)
        return set_error(err, VMLET_ERR_INVALID,
                         "kernel: no kernel given; give the path of an x86-64 bzImage");
    if (check_readable_file("kernel", c->kernel, err) < 0)
        return -1;
    if (c->initrd && check_readable_file("initrd", c->initrd, err) < 0)
        return -1;
    if (c->console != VMLET_CONSOLE_SERIAL && c->console != VMLET_CONSOLE_VIRTIO)
        return set_error(err, VMLET_ERR_INVALID, "console: unknown kind %d", (int)c->console);
    if (c->vcpu_name) {
        size_t n = strlen(c->vcpu_name);
        bool printable = n >= 1 && n <= VMLET_VCPU_NAME_MAX;
        for (size_t i = 0; printable && i < n; i++)
            printable = c->vcpu_name[i] >= 0x20 && c->vcpu_name[i] < 0x7f;
        if (!printable)
            return set_error(err, VMLET_ERR_INVALID,
                             "vCPU thread name: give 1 to %d printable ASCII characters",
                             VMLET_VCPU_NAME_MAX);
    }
    if (c->too_many_disks)
        return set_error(err, VMLET_ERR_INVALID, "disks: more than %d; give at most %d",
                         VMLET_MAX_DISKS, VMLET_MAX_DISKS);
    for (unsigned i = 0; i < c->ndisks; i++)
        if (check_disk(i, &c->disks[i], err) < 0)
            return -1;
    if (same_file_twice(c, err) < 0)
        return -1;
    if (check_nets(c, err) < 0)
        return -1;
    if (config_check_vsock(c, err) < 0)
        return -1;
    if (check_shares(c, err) < 0)
        return -1;
    if (check_balloon(c, err) < 0)
        return -1;
    if (c->shutdown_timeout > VMLET_MAX_SHUTDOWN_TIMEOUT)
        return set_error(err, VMLET_ERR_INVALID,
                         "shutdown_timeout: %u is out of range; "
                         "give 0 to %d",
                         c->shutdown_timeout, VMLET_MAX_SHUTDOWN_TIMEOUT);

    /* The format checks and the fit of kernel + initrd in memory belong to
     * the boot code, which knows the layout. */
    struct boot_plan plan;
    return boot_plan_linux(c->kernel, c->initrd, c->cmdline, c->memory, &plan, err);
}
