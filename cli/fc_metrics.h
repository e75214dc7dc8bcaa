/* Firecracker-shaped metrics lines for `vmlet firecracker` (the file or
 * FIFO of PUT /metrics; docs/firecracker.md, "Metrics").
 *
 * One line is one JSON object with Firecracker's top-level keys (those of
 * Firecracker 1.16 on x86: "utc_timestamp_ms", "api_server", "balloon",
 * "block_<drive_id>"..., "block", ..., "memory_hotplug"), each an object
 * of unsigned integers (a few hold {"min_us", "max_us", "sum_us"}
 * objects), so that Kata Containers' FirecrackerMetrics and Firecracker
 * dashboards read it. The counters vmlet has are mapped onto Firecracker's
 * names; the others are written as 0, and only where Firecracker writes
 * them too. As in Firecracker, most counters are what happened since the
 * previous line (a line takes the totals it reported as its new base) and
 * a few are gauges: the startup times, seccomp's num_faults, the
 * latencies_us values.
 *
 * Counters come from two places: vmlet_vm_metrics() of the running VM
 * (disks, NICs, serial, vsock, balloon, entropy), read when a line is
 * made, and what the Firecracker layer counts itself (API requests by
 * resource, drive updates, lines it could not write), given through the
 * fc_metrics_* calls below. One thread at a time. */
#ifndef VMLET_CLI_FC_METRICS_H
#define VMLET_CLI_FC_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "vmlet.h"

/* Firecracker writes a line every 60 s on its own (and on FlushMetrics). */
#define FC_METRICS_PERIOD_MS 60000

/* The API requests Firecracker counts ("<name>_count", "<name>_fails" in
 * get_api_requests, put_api_requests and patch_api_requests). */
enum fc_request {
    FC_REQ_GET_INSTANCE_INFO,
    FC_REQ_GET_MACHINE_CFG,
    FC_REQ_GET_VERSION,
    FC_REQ_PUT_ACTIONS,
    FC_REQ_PUT_BOOT_SOURCE,
    FC_REQ_PUT_DRIVE,
    FC_REQ_PUT_LOGGER,
    FC_REQ_PUT_MACHINE_CFG,
    FC_REQ_PUT_METRICS,
    FC_REQ_PUT_NETWORK,
    FC_REQ_PUT_VSOCK,
    FC_REQ_PATCH_DRIVE,
    FC_REQ_PATCH_NETWORK,
    FC_REQ_PATCH_MACHINE_CFG,
    FC_REQ_COUNT
};

/* The latencies_us gauges vmlet measures (the last one, in microseconds). */
enum fc_latency {
    FC_LAT_FULL_CREATE_SNAPSHOT,
    FC_LAT_LOAD_SNAPSHOT,
    FC_LAT_PAUSE_VM,
    FC_LAT_RESUME_VM,
    FC_LAT_COUNT
};

/* The devices' names: drive IDs by the library's disk number, interface
 * IDs by NIC number (NULL or missing: "diskN" / "netN", e.g. after a
 * snapshot load, which keeps no Firecracker IDs). */
struct fc_metrics_names {
    const char *drives[VMLET_MAX_DISKS];
    unsigned ndrives;
    const char *ifaces[VMLET_MAX_NICS];
    unsigned nifaces;
};

struct fc_metrics;

/* NULL when out of memory. */
struct fc_metrics *fc_metrics_new(void);
void fc_metrics_free(struct fc_metrics *m);

/* One request of a kind, and whether it failed (an error answer). */
void fc_metrics_request(struct fc_metrics *m, enum fc_request kind, bool failed);
/* A PATCH /drives of the library's disk number disk (block's
 * update_count, update_fails). */
void fc_metrics_drive_update(struct fc_metrics *m, unsigned disk, bool failed);
/* A metrics line, or a log line, that could not be written whole
 * (logger's missed_metrics_count, missed_log_count). */
void fc_metrics_missed_line(struct fc_metrics *m);
void fc_metrics_missed_log(struct fc_metrics *m);
/* Gauges: api_server's process_startup_time_us and _cpu_us; one latency. */
void fc_metrics_set_startup(struct fc_metrics *m, uint64_t us, uint64_t cpu_us);
void fc_metrics_set_latency(struct fc_metrics *m, enum fc_latency which, uint64_t us);

/* The next line (no newline), malloc'd, or NULL when out of memory. vm
 * may be NULL (before InstanceStart: the devices' counters are 0). The
 * counters reported become the base of the next line's. */
char *fc_metrics_line(struct fc_metrics *m, vmlet_vm *vm, const struct fc_metrics_names *names,
                      int64_t utc_ms);

#endif
