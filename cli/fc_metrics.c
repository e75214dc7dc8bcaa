/* Firecracker-shaped metrics lines (fc_metrics.h, docs/firecracker.md).
 *
 * Every counter that resets between lines is a total in total[] (the
 * library's, refreshed when a line is made, and the Firecracker layer's
 * own); base[] holds the totals the previous line reported, so a line
 * writes total - base and then moves base up. The objects and their
 * fields, in Firecracker 1.16's order, are the tables below; a field
 * either names a slot of its object or is a constant 0. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fc_metrics.h"

/* A disk's counters, a NIC's, and the other groups' (slots of total[]). */
enum {
    D_READ_COUNT,
    D_READ_BYTES,
    D_WRITE_COUNT,
    D_WRITE_BYTES,
    D_FLUSHES,
    D_EXEC_FAILS,
    D_INVALID,
    D_UPDATES,
    D_UPDATE_FAILS,
    D_N
};
enum {
    N_RX_BYTES,
    N_RX_PACKETS,
    N_RX_FAILS,
    N_TX_BYTES,
    N_TX_PACKETS,
    N_TX_MALFORMED,
    N_TX_FAILS,
    N_N
};

enum {
    T_DISK = 0,
    T_NET = T_DISK + VMLET_MAX_DISKS * D_N,
    T_UART_WRITES = T_NET + VMLET_MAX_NICS * N_N,
    T_UART_MISSED_WRITES,
    T_VSOCK_RX_BYTES,
    T_VSOCK_TX_BYTES,
    T_VSOCK_CONNS_ADDED,
    T_VSOCK_CONNS_KILLED,
    T_BALLOON_STATS_UPDATES,
    T_BALLOON_REPORTED_BYTES,
    T_ENTROPY_BYTES,
    T_MISSED_LINES,
    T_MISSED_LOGS,
    T_REQUESTS,
    T_FAILS = T_REQUESTS + FC_REQ_COUNT,
    T_COUNT = T_FAILS + FC_REQ_COUNT
};
/* The library's part of total[], refreshed from vmlet_vm_metrics(): a
 * disk's slots before D_UPDATES (those are the Firecracker layer's), and
 * everything from T_NET to T_MISSED_LINES. */
#define D_LIBRARY_END D_UPDATES

struct fc_metrics {
    uint64_t total[T_COUNT], base[T_COUNT];
    unsigned disks_seen, nics_seen; /* highest group number + 1 */
    uint64_t startup_us, startup_cpu_us;
    uint64_t latency_us[FC_LAT_COUNT];
};

struct fc_metrics *fc_metrics_new(void)
{
    return calloc(1, sizeof(struct fc_metrics));
}

void fc_metrics_free(struct fc_metrics *m)
{
    free(m);
}

void fc_metrics_request(struct fc_metrics *m, enum fc_request kind, bool failed)
{
    if ((unsigned)kind >= FC_REQ_COUNT)
        return;
    m->total[T_REQUESTS + kind]++;
    if (failed)
        m->total[T_FAILS + kind]++;
}

void fc_metrics_drive_update(struct fc_metrics *m, unsigned disk, bool failed)
{
    if (disk >= VMLET_MAX_DISKS)
        return;
    m->total[T_DISK + disk * D_N + D_UPDATES]++;
    if (failed)
        m->total[T_DISK + disk * D_N + D_UPDATE_FAILS]++;
}

void fc_metrics_missed_line(struct fc_metrics *m)
{
    m->total[T_MISSED_LINES]++;
}

void fc_metrics_missed_log(struct fc_metrics *m)
{
    m->total[T_MISSED_LOGS]++;
}

void fc_metrics_set_startup(struct fc_metrics *m, uint64_t us, uint64_t cpu_us)
{
    m->startup_us = us;
    m->startup_cpu_us = cpu_us;
}

void fc_metrics_set_latency(struct fc_metrics *m, enum fc_latency which, uint64_t us)
{
    if ((unsigned)which < FC_LAT_COUNT)
        m->latency_us[which] = us;
}

/* ---- reading the library's counters -------------------------------------- */

struct name_slot {
    const char *name;
    unsigned slot;
};

/* vmlet's names (include/vmlet.h, vmlet_vm_metrics) to slots. Several
 * names may add to one slot (a block request Firecracker would call
 * invalid is vmlet's "unsupported" or "malformed"). */
static const struct name_slot disk_names[] = {
    { "read_requests", D_READ_COUNT },   { "read_bytes", D_READ_BYTES },
    { "write_requests", D_WRITE_COUNT }, { "write_bytes", D_WRITE_BYTES },
    { "flush_requests", D_FLUSHES },     { "errors", D_EXEC_FAILS },
    { "unsupported", D_INVALID },        { "malformed", D_INVALID },
};
static const struct name_slot net_names[] = {
    { "rx_bytes", N_RX_BYTES },  { "rx_packets", N_RX_PACKETS }, { "rx_errors", N_RX_FAILS },
    { "tx_bytes", N_TX_BYTES },  { "tx_packets", N_TX_PACKETS }, { "tx_malformed", N_TX_MALFORMED },
    { "tx_errors", N_TX_FAILS },
};
static const struct {
    const char *group, *name;
    unsigned slot;
    uint64_t scale;
} other_names[] = {
    { "serial", "tx_bytes", T_UART_WRITES, 1 },
    { "serial", "tx_dropped", T_UART_MISSED_WRITES, 1 },
    { "vsock", "bytes_to_guest", T_VSOCK_RX_BYTES, 1 },
    { "vsock", "bytes_to_host", T_VSOCK_TX_BYTES, 1 },
    { "vsock", "conns_opened", T_VSOCK_CONNS_ADDED, 1 },
    { "vsock", "conns_reset", T_VSOCK_CONNS_KILLED, 1 },
    { "balloon", "stats_updates", T_BALLOON_STATS_UPDATES, 1 },
    { "balloon", "reported_pages", T_BALLOON_REPORTED_BYTES, 4096 },
    { "rng", "bytes", T_ENTROPY_BYTES, 1 },
};

/* "disk12" with prefix "disk": 12; -1 for anything else. */
static int group_number(const char *group, const char *prefix, unsigned limit)
{
    size_t n = strlen(prefix);
    if (strncmp(group, prefix, n) || !group[n])
        return -1;
    unsigned v = 0;
    for (const char *s = group + n; *s; s++) {
        if (*s < '0' || *s > '9' || v >= limit)
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    return v < limit ? (int)v : -1;
}

static void add_named(uint64_t *slots, const struct name_slot *t, size_t n, const char *name,
                      uint64_t value)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            slots[t[i].slot] += value;
}

static void collect(void *opaque, const char *group, const char *name, uint64_t value)
{
    struct fc_metrics *m = opaque;
    int i;
    if ((i = group_number(group, "disk", VMLET_MAX_DISKS)) >= 0) {
        add_named(m->total + T_DISK + (unsigned)i * D_N, disk_names,
                  sizeof disk_names / sizeof *disk_names, name, value);
        if ((unsigned)i + 1 > m->disks_seen)
            m->disks_seen = (unsigned)i + 1;
        return;
    }
    if ((i = group_number(group, "net", VMLET_MAX_NICS)) >= 0) {
        add_named(m->total + T_NET + (unsigned)i * N_N, net_names,
                  sizeof net_names / sizeof *net_names, name, value);
        if ((unsigned)i + 1 > m->nics_seen)
            m->nics_seen = (unsigned)i + 1;
        return;
    }
    for (size_t k = 0; k < sizeof other_names / sizeof *other_names; k++)
        if (!strcmp(other_names[k].group, group) && !strcmp(other_names[k].name, name))
            m->total[other_names[k].slot] += value * other_names[k].scale;
}

/* ---- writing the line ------------------------------------------------------ */

struct out {
    char *s;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *s = realloc(o->s, cap);
        if (!s) {
            o->failed = true;
            return;
        }
        o->s = s;
        o->cap = cap;
    }
}

/* A field: its value is v[src] (a slot of the object's values), a
 * constant 0 (Z), or a latency aggregate of zeros (LAT: Firecracker's
 * {"min_us", "max_us", "sum_us"}, which vmlet does not measure). */
#define Z   (-1)
#define LAT (-2)
struct field {
    const char *name;
    int src;
};

/* "key":{"field":value,...} after a comma. Device names are resource IDs
 * (letters, digits, '_'), so nothing needs quoting. */
static void object(struct out *o, const char *key, const char *suffix, const struct field *f,
                   size_t n, const uint64_t *v)
{
    put(o, ",\"%s%s\":{", key, suffix ? suffix : "");
    for (size_t i = 0; i < n; i++) {
        const char *sep = i ? "," : "";
        if (f[i].src == LAT)
            put(o, "%s\"%s\":{\"min_us\":0,\"max_us\":0,\"sum_us\":0}", sep, f[i].name);
        else
            put(o, "%s\"%s\":%" PRIu64, sep, f[i].name, f[i].src == Z ? 0 : v[f[i].src]);
    }
    put(o, "}");
}
#define OBJECT(o, key, fields, v) object(o, key, NULL, fields, sizeof fields / sizeof *fields, v)

static const struct field api_server_fields[] = {
    { "process_startup_time_us", 0 },
    { "process_startup_time_cpu_us", 1 },
};

enum { B_STATS_UPDATES, B_REPORTED_BYTES };
static const struct field balloon_fields[] = {
    { "activate_fails", Z },
    { "inflate_count", Z },
    { "stats_updates_count", B_STATS_UPDATES },
    { "stats_update_fails", Z },
    { "deflate_count", Z },
    { "event_fails", Z },
    { "free_page_report_count", Z },
    { "free_page_report_freed", B_REPORTED_BYTES },
    { "free_page_report_fails", Z },
    { "free_page_hint_count", Z },
    { "free_page_hint_freed", Z },
    { "free_page_hint_fails", Z },
};

static const struct field block_fields[] = {
    { "activate_fails", Z },
    { "cfg_fails", Z },
    { "no_avail_buffer", Z },
    { "event_fails", Z },
    { "execute_fails", D_EXEC_FAILS },
    { "invalid_reqs_count", D_INVALID },
    { "flush_count", D_FLUSHES },
    { "queue_event_count", Z },
    { "rate_limiter_event_count", Z },
    { "update_count", D_UPDATES },
    { "update_fails", D_UPDATE_FAILS },
    { "read_bytes", D_READ_BYTES },
    { "write_bytes", D_WRITE_BYTES },
    { "read_count", D_READ_COUNT },
    { "write_count", D_WRITE_COUNT },
    { "read_agg", LAT },
    { "write_agg", LAT },
    { "rate_limiter_throttled_events", Z },
    { "io_engine_throttled_events", Z },
    { "remaining_reqs_count", Z },
};

static const struct field deprecated_api_fields[] = { { "deprecated_http_api_calls", Z } };

static const struct field get_fields[] = {
    { "instance_info_count", FC_REQ_GET_INSTANCE_INFO },
    { "machine_cfg_count", FC_REQ_GET_MACHINE_CFG },
    { "mmds_count", Z },
    { "vmm_version_count", FC_REQ_GET_VERSION },
    { "hotplug_memory_count", Z },
};

static const struct field i8042_fields[] = {
    { "error_count", Z }, { "missed_read_count", Z }, { "missed_write_count", Z },
    { "read_count", Z },  { "reset_count", Z },       { "write_count", Z },
};

enum { U_WRITES, U_MISSED_WRITES };
static const struct field uart_fields[] = {
    { "error_count", Z },
    { "flush_count", Z },
    { "missed_read_count", Z },
    { "missed_write_count", U_MISSED_WRITES },
    { "read_count", Z },
    { "write_count", U_WRITES },
    { "rate_limiter_dropped_bytes", Z },
};

static const struct field latencies_fields[] = {
    { "full_create_snapshot", FC_LAT_FULL_CREATE_SNAPSHOT },
    { "diff_create_snapshot", Z },
    { "load_snapshot", FC_LAT_LOAD_SNAPSHOT },
    { "pause_vm", FC_LAT_PAUSE_VM },
    { "resume_vm", FC_LAT_RESUME_VM },
    { "vmm_full_create_snapshot", Z },
    { "vmm_diff_create_snapshot", Z },
    { "vmm_load_snapshot", Z },
    { "vmm_pause_vm", Z },
    { "vmm_resume_vm", Z },
};

enum { L_MISSED_LINES, L_MISSED_LOGS };
static const struct field logger_fields[] = {
    { "missed_metrics_count", L_MISSED_LINES },
    { "metrics_fails", Z },
    { "missed_log_count", L_MISSED_LOGS },
    { "rate_limited_log_count", Z },
};

static const struct field mmds_fields[] = {
    { "rx_accepted", Z },
    { "rx_accepted_err", Z },
    { "rx_accepted_unusual", Z },
    { "rx_bad_eth", Z },
    { "rx_invalid_token", Z },
    { "rx_no_token", Z },
    { "rx_count", Z },
    { "tx_bytes", Z },
    { "tx_count", Z },
    { "tx_errors", Z },
    { "tx_frames", Z },
    { "connections_created", Z },
    { "connections_destroyed", Z },
};

/* rx_count and tx_count are Firecracker's successful TAP reads and
 * writes: one frame each, so the packet counts. */
static const struct field net_fields[] = {
    { "activate_fails", Z },
    { "cfg_fails", Z },
    { "mac_address_updates", Z },
    { "no_rx_avail_buffer", Z },
    { "no_tx_avail_buffer", Z },
    { "event_fails", Z },
    { "rx_queue_event_count", Z },
    { "rx_event_rate_limiter_count", Z },
    { "rx_rate_limiter_throttled", Z },
    { "rx_tap_event_count", Z },
    { "rx_bytes_count", N_RX_BYTES },
    { "rx_packets_count", N_RX_PACKETS },
    { "rx_fails", N_RX_FAILS },
    { "rx_count", N_RX_PACKETS },
    { "tap_read_fails", Z },
    { "tap_write_fails", Z },
    { "tap_write_agg", LAT },
    { "tx_bytes_count", N_TX_BYTES },
    { "tx_malformed_frames", N_TX_MALFORMED },
    { "tx_fails", N_TX_FAILS },
    { "tx_count", N_TX_PACKETS },
    { "tx_packets_count", N_TX_PACKETS },
    { "tx_queue_event_count", Z },
    { "tx_rate_limiter_event_count", Z },
    { "tx_rate_limiter_throttled", Z },
    { "tx_spoofed_mac_count", Z },
    { "tx_remaining_reqs_count", Z },
};

/* Indexes into a values array of requests then fails (FC_REQ_COUNT each). */
#define FAILS(k) (FC_REQ_COUNT + (k))
static const struct field patch_fields[] = {
    { "drive_count", FC_REQ_PATCH_DRIVE },
    { "drive_fails", FAILS(FC_REQ_PATCH_DRIVE) },
    { "network_count", FC_REQ_PATCH_NETWORK },
    { "network_fails", FAILS(FC_REQ_PATCH_NETWORK) },
    { "machine_cfg_count", FC_REQ_PATCH_MACHINE_CFG },
    { "machine_cfg_fails", FAILS(FC_REQ_PATCH_MACHINE_CFG) },
    { "mmds_count", Z },
    { "mmds_fails", Z },
    { "hotplug_memory_count", Z },
    { "hotplug_memory_fails", Z },
    { "pmem_count", Z },
    { "pmem_fails", Z },
};

static const struct field put_fields[] = {
    { "actions_count", FC_REQ_PUT_ACTIONS },
    { "actions_fails", FAILS(FC_REQ_PUT_ACTIONS) },
    { "boot_source_count", FC_REQ_PUT_BOOT_SOURCE },
    { "boot_source_fails", FAILS(FC_REQ_PUT_BOOT_SOURCE) },
    { "drive_count", FC_REQ_PUT_DRIVE },
    { "drive_fails", FAILS(FC_REQ_PUT_DRIVE) },
    { "logger_count", FC_REQ_PUT_LOGGER },
    { "logger_fails", FAILS(FC_REQ_PUT_LOGGER) },
    { "machine_cfg_count", FC_REQ_PUT_MACHINE_CFG },
    { "machine_cfg_fails", FAILS(FC_REQ_PUT_MACHINE_CFG) },
    { "cpu_cfg_count", Z },
    { "cpu_cfg_fails", Z },
    { "metrics_count", FC_REQ_PUT_METRICS },
    { "metrics_fails", FAILS(FC_REQ_PUT_METRICS) },
    { "network_count", FC_REQ_PUT_NETWORK },
    { "network_fails", FAILS(FC_REQ_PUT_NETWORK) },
    { "mmds_count", Z },
    { "mmds_fails", Z },
    { "vsock_count", FC_REQ_PUT_VSOCK },
    { "vsock_fails", FAILS(FC_REQ_PUT_VSOCK) },
    { "pmem_count", Z },
    { "pmem_fails", Z },
    { "serial_count", Z },
    { "serial_fails", Z },
    { "hotplug_memory_count", Z },
    { "hotplug_memory_fails", Z },
};

/* vmlet's sandbox ends the process on a refused system call (exit 148),
 * as Firecracker's does, so no line ever sees a fault. */
static const struct field seccomp_fields[] = { { "num_faults", Z } };

/* vmlet counts port I/O and MMIO exits but not by direction. */
static const struct field vcpu_fields[] = {
    { "exit_io_in", Z },
    { "exit_io_out", Z },
    { "exit_mmio_read", Z },
    { "exit_mmio_write", Z },
    { "failures", Z },
    { "kvmclock_ctrl_fails", Z },
    { "exit_io_in_agg", LAT },
    { "exit_io_out_agg", LAT },
    { "exit_mmio_read_agg", LAT },
    { "exit_mmio_write_agg", LAT },
};

static const struct field vmm_fields[] = { { "panic_count", Z } };

static const struct field signals_fields[] = {
    { "sigbus", Z },  { "sigsegv", Z }, { "sigxfsz", Z }, { "sigxcpu", Z },
    { "sigpipe", Z }, { "sighup", Z },  { "sigill", Z },
};

enum { V_RX_BYTES, V_TX_BYTES, V_CONNS_ADDED, V_CONNS_KILLED };
static const struct field vsock_fields[] = {
    { "activate_fails", Z },
    { "cfg_fails", Z },
    { "rx_queue_event_fails", Z },
    { "tx_queue_event_fails", Z },
    { "ev_queue_event_fails", Z },
    { "muxer_event_fails", Z },
    { "conn_event_fails", Z },
    { "rx_queue_event_count", Z },
    { "tx_queue_event_count", Z },
    { "rx_bytes_count", V_RX_BYTES },
    { "tx_bytes_count", V_TX_BYTES },
    { "rx_packets_count", Z },
    { "tx_packets_count", Z },
    { "conns_added", V_CONNS_ADDED },
    { "conns_killed", V_CONNS_KILLED },
    { "conns_removed", Z },
    { "killq_resync", Z },
    { "tx_flush_fails", Z },
    { "tx_write_fails", Z },
    { "rx_read_fails", Z },
};

static const struct field entropy_fields[] = {
    { "activate_fails", Z },           { "entropy_event_fails", Z },
    { "entropy_event_count", Z },      { "entropy_bytes", 0 },
    { "host_rng_fails", Z },           { "entropy_rate_limiter_throttled", Z },
    { "rate_limiter_event_count", Z },
};

static const struct field pmem_fields[] = {
    { "activate_fails", Z },
    { "cfg_fails", Z },
    { "event_fails", Z },
    { "queue_event_count", Z },
    { "rate_limiter_throttled_events", Z },
    { "rate_limiter_event_count", Z },
};

static const struct field interrupts_fields[] = { { "triggers", Z }, { "config_updates", Z } };

static const struct field memory_hotplug_fields[] = {
    { "activate_fails", Z },   { "queue_event_fails", Z }, { "queue_event_count", Z },
    { "plug_agg", LAT },       { "plug_count", Z },        { "plug_bytes", Z },
    { "plug_fails", Z },       { "unplug_agg", LAT },      { "unplug_count", Z },
    { "unplug_bytes", Z },     { "unplug_fails", Z },      { "unplug_discard_fails", Z },
    { "unplug_all_agg", LAT }, { "unplug_all_count", Z },  { "unplug_all_fails", Z },
    { "state_agg", LAT },      { "state_count", Z },       { "state_fails", Z },
};

/* A device's name: its ID, or vmlet's group name when there is none. */
static const char *device_name(char *buf, size_t size, const char *const *ids, unsigned nids,
                               unsigned i, const char *fallback)
{
    if (i < nids && ids[i] && ids[i][0])
        return ids[i];
    snprintf(buf, size, "%s%u", fallback, i);
    return buf;
}

/* Devices in their names' byte order, as Firecracker's per-device map
 * writes them. */
static void sort_by_name(unsigned *order, const char *const *names, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        order[i] = i;
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && strcmp(names[order[j - 1]], names[order[j]]) > 0; j--) {
            unsigned t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
}

/* block_<id>... then block (their sum); the same for net. */
_Static_assert(VMLET_MAX_DISKS >= VMLET_MAX_NICS, "devices() sizes its arrays for disks");
static void devices(struct out *o, const char *kind, const uint64_t *delta, unsigned stride,
                    unsigned n, const char *const *ids, unsigned nids, const char *fallback,
                    const struct field *f, size_t nf)
{
    char bufs[VMLET_MAX_DISKS][16];
    const char *names[VMLET_MAX_DISKS];
    unsigned order[VMLET_MAX_DISKS];
    uint64_t sum[(int)D_N > (int)N_N ? (int)D_N : (int)N_N] = { 0 };
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%s_", kind);
    for (unsigned i = 0; i < n; i++)
        names[i] = device_name(bufs[i], sizeof bufs[i], ids, nids, i, fallback);
    sort_by_name(order, names, n);
    for (unsigned i = 0; i < n; i++) {
        const uint64_t *v = delta + order[i] * stride;
        for (unsigned k = 0; k < stride; k++)
            sum[k] += v[k];
        object(o, prefix, names[order[i]], f, nf, v);
    }
    object(o, kind, NULL, f, nf, sum);
}

char *fc_metrics_line(struct fc_metrics *m, vmlet_vm *vm, const struct fc_metrics_names *names,
                      int64_t utc_ms)
{
    static const struct fc_metrics_names none = { .ndrives = 0 };
    if (!names)
        names = &none;
    for (unsigned i = 0; i < VMLET_MAX_DISKS; i++)
        memset(m->total + T_DISK + i * D_N, 0, D_LIBRARY_END * sizeof m->total[0]);
    memset(m->total + T_NET, 0, (T_MISSED_LINES - T_NET) * sizeof m->total[0]);
    m->disks_seen = m->nics_seen = 0;
    if (vm)
        vmlet_vm_metrics(vm, collect, m);

    /* Since the last line; a total below its base (a device that began
     * again) counts from 0. */
    uint64_t d[T_COUNT];
    for (unsigned i = 0; i < T_COUNT; i++)
        d[i] = m->total[i] >= m->base[i] ? m->total[i] - m->base[i] : m->total[i];

    struct out o = { .cap = 16384 };
    o.s = malloc(o.cap);
    if (!o.s)
        return NULL;
    o.s[0] = '\0';
    put(&o, "{\"utc_timestamp_ms\":%" PRId64, utc_ms);
    uint64_t v[2 * FC_REQ_COUNT];

    v[0] = m->startup_us, v[1] = m->startup_cpu_us;
    OBJECT(&o, "api_server", api_server_fields, v);
    v[B_STATS_UPDATES] = d[T_BALLOON_STATS_UPDATES];
    v[B_REPORTED_BYTES] = d[T_BALLOON_REPORTED_BYTES];
    OBJECT(&o, "balloon", balloon_fields, v);

    unsigned ndisks = names->ndrives > m->disks_seen ? names->ndrives : m->disks_seen;
    unsigned nnics = names->nifaces > m->nics_seen ? names->nifaces : m->nics_seen;
    if (ndisks > VMLET_MAX_DISKS)
        ndisks = VMLET_MAX_DISKS;
    if (nnics > VMLET_MAX_NICS)
        nnics = VMLET_MAX_NICS;
    devices(&o, "block", d + T_DISK, D_N, ndisks, names->drives, names->ndrives, "disk",
            block_fields, sizeof block_fields / sizeof *block_fields);

    OBJECT(&o, "deprecated_api", deprecated_api_fields, v);
    memcpy(v, d + T_REQUESTS, sizeof v); /* requests then fails: T_FAILS follows */
    OBJECT(&o, "get_api_requests", get_fields, v);
    OBJECT(&o, "i8042", i8042_fields, v);
    v[U_WRITES] = d[T_UART_WRITES];
    v[U_MISSED_WRITES] = d[T_UART_MISSED_WRITES];
    OBJECT(&o, "uart", uart_fields, v);
    OBJECT(&o, "latencies_us", latencies_fields, m->latency_us);
    v[L_MISSED_LINES] = d[T_MISSED_LINES];
    v[L_MISSED_LOGS] = d[T_MISSED_LOGS];
    OBJECT(&o, "logger", logger_fields, v);
    OBJECT(&o, "mmds", mmds_fields, v);

    devices(&o, "net", d + T_NET, N_N, nnics, names->ifaces, names->nifaces, "net", net_fields,
            sizeof net_fields / sizeof *net_fields);

    memcpy(v, d + T_REQUESTS, sizeof v);
    OBJECT(&o, "patch_api_requests", patch_fields, v);
    OBJECT(&o, "put_api_requests", put_fields, v);
    OBJECT(&o, "seccomp", seccomp_fields, v);
    OBJECT(&o, "vcpu", vcpu_fields, v);
    OBJECT(&o, "vmm", vmm_fields, v);
    OBJECT(&o, "signals", signals_fields, v);
    v[V_RX_BYTES] = d[T_VSOCK_RX_BYTES];
    v[V_TX_BYTES] = d[T_VSOCK_TX_BYTES];
    v[V_CONNS_ADDED] = d[T_VSOCK_CONNS_ADDED];
    v[V_CONNS_KILLED] = d[T_VSOCK_CONNS_KILLED];
    OBJECT(&o, "vsock", vsock_fields, v);
    v[0] = d[T_ENTROPY_BYTES];
    OBJECT(&o, "entropy", entropy_fields, v);
    OBJECT(&o, "pmem", pmem_fields, v);
    OBJECT(&o, "interrupts", interrupts_fields, v);
    OBJECT(&o, "memory_hotplug", memory_hotplug_fields, v);
    put(&o, "}");
    if (o.failed) {
        free(o.s);
        return NULL;
    }
    memcpy(m->base, m->total, sizeof m->base);
    return o.s;
}
