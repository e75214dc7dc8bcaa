/* The Firecracker-compatible API of `vmlet firecracker` (docs/firecracker.md):
 * the microVM's resources as Firecracker's API sets them before boot
 * (PUT /boot-source, /machine-config, /drives/ID, /network-interfaces/ID,
 * /vsock, /logger, /metrics, /entropy, /balloon), InstanceStart, which
 * turns them into a vmlet_config and boots it, and the requests of a
 * running microVM. The JSON shapes are those of Firecracker's
 * swagger/firecracker.yaml (API v1.16); bodies are read strictly
 * (src/json_strict.h): unknown keys and wrong types are refused, and
 * fields Firecracker has but vmlet does not (rate limiters, MMDS, CPU
 * templates, ...) are refused by name.
 *
 * Errors are Firecracker's: status 400 with {"fault_message": "..."} for
 * bad input and for a request in the wrong state (pre-boot only after
 * InstanceStart, or running only before it). No VM exists before
 * InstanceStart, so the state machine can be driven without one; the unit
 * tests do. One thread at a time (the CLI's poll loop). */
#ifndef VMLET_CLI_FC_VMM_H
#define VMLET_CLI_FC_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmlet.h"

/* The Firecracker API version whose shapes are implemented (a subset:
 * docs/firecracker.md); what `--version` and GET /version report. */
#define FC_API_VERSION "1.16.1"
#define FC_ID_MAX      64 /* --id: Firecracker's limit */

#define FC_DEFAULT_ID "anonymous-instance"

/* Whether id is 1 to FC_ID_MAX letters, digits and the character also
 * (Firecracker's instance IDs take '-', its resource IDs '_'). */
bool fc_valid_id(const char *id, char also);

struct fc_vmm;
struct http_request;

/* The host side, given by the command. */
struct fc_host {
    const char *id;         /* --id */
    int console_in;         /* the serial console's input, or -1 */
    int console_out;        /* its output, or -1 */
    const char *kvm_device; /* NULL: /dev/kvm */
    bool seccomp_off;       /* --no-seccomp */
    /* Called once the VM runs (after InstanceStart), e.g. to sandbox the
     * calling thread; may be NULL. A -1 return fails InstanceStart with
     * err's message after stopping the VM. */
    int (*started)(void *ctx, vmlet_vm *vm, vmlet_error *err);
    void *ctx;
};

/* NULL when out of memory. host is copied (its strings must outlive the
 * fc_vmm). */
struct fc_vmm *fc_vmm_new(const struct fc_host *host);
/* Frees the VM too, if there is one, and closes the log and metrics
 * files. */
void fc_vmm_free(struct fc_vmm *fc);

/* Answers one API request (an api_handler for api_server_serve). */
int fc_vmm_dispatch(const struct http_request *req, void *fc, char **body);

/* --config-file: the document's resources as the PUTs would set them,
 * then InstanceStart. 0, or -1 with err (the message names the key). */
int fc_vmm_boot_from_json(struct fc_vmm *fc, const char *text, size_t len, vmlet_error *err);

/* The running VM, or NULL before InstanceStart. */
vmlet_vm *fc_vmm_vm(struct fc_vmm *fc);

/* One line for the logger's file (PUT /logger), if one is set and level
 * passes its filter; else nothing. level: "Error", "Warning", "Info",
 * "Debug". */
void fc_vmm_log(struct fc_vmm *fc, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes one Firecracker-shaped metrics line (cli/fc_metrics.h) to the
 * metrics file (PUT /metrics); 0, or -1 when none is set. Most counters
 * are since the previous line. InstanceStart (and a snapshot load) write
 * the first, FlushMetrics one, fc_vmm_periodic_metrics one a minute, and
 * the command the last at exit. A line the file cannot take within 100 ms
 * is dropped and counted (logger.missed_metrics_count). */
int fc_vmm_flush_metrics(struct fc_vmm *fc);
/* The periodic line: now_ms is a monotonic clock in milliseconds, given
 * by the caller (the command's poll loop) so tests can drive it. The first
 * call once the VM runs starts the period; a call at or past the due time
 * writes a line. Returns the milliseconds until the next line is due (a
 * poll timeout), or -1 while no VM runs. */
int fc_vmm_periodic_metrics(struct fc_vmm *fc, uint64_t now_ms);
/* api_server's gauges: the process's time to a listening API socket, in
 * wall-clock and CPU microseconds. */
void fc_vmm_set_startup(struct fc_vmm *fc, uint64_t us, uint64_t cpu_us);

#endif
