/* vmlet: a small, fast virtual machine monitor for Linux/KVM.
 *
 * Describe a VM with a vmlet_config, check it with vmlet_config_validate(),
 * create a vmlet_vm from it, start it, and wait for it to stop:
 *
 *     vmlet_config *c = vmlet_config_new();
 *     vmlet_config_set_cpus(c, 2);
 *     vmlet_config_set_memory(c, 512 << 20);
 *     vmlet_config_set_linux_boot(c, "vmlinuz", "initrd.img", "console=ttyS0");
 *     vmlet_config_add_disk(c, "root.img", 0, NULL);
 *     vmlet_error err;
 *     vmlet_vm *vm;
 *     if (vmlet_vm_create(c, &vm, &err) < 0 || vmlet_vm_start(vm, &err) < 0)
 *         fprintf(stderr, "%s\n", err.message);
 *     vmlet_exit exit;
 *     vmlet_vm_wait(vm, &exit);
 *     vmlet_vm_free(vm);
 *     vmlet_config_free(c);
 *
 * There is no global state: a process may run several VMs.
 *
 * Thread safety: a vmlet_config is not thread-safe; use it from one thread
 * at a time. vmlet_vm_create() copies what it needs, so the config may be
 * freed afterwards. The vmlet_vm calls (start, pause, resume, request_stop,
 * stop, state, event_fd, wait, wait_timeout, metrics, net_warning,
 * set_balloon, get_balloon, save, set_disk_path) may be called from any thread at the same
 * time, except vmlet_vm_free(), which must be the last call on a VM.
 *
 * Signals: each vCPU thread uses SIGRTMIN+0 (with a handler that does
 * nothing) to be interrupted out of KVM_RUN; the library installs that
 * handler once and blocks nothing else.
 */
#ifndef VMLET_H
#define VMLET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VMLET_API __attribute__((visibility("default")))
#else
#define VMLET_API
#endif

/* ---- errors ---------------------------------------------------------- */

typedef enum {
    VMLET_OK = 0,
    VMLET_ERR_INVALID,  /* a configuration value is wrong */
    VMLET_ERR_FILE,     /* a file cannot be opened or has the wrong format */
    VMLET_ERR_HOST,     /* the host cannot run the VM (no /dev/kvm, limits) */
    VMLET_ERR_NOMEM,    /* out of host memory */
    VMLET_ERR_STATE,    /* call not valid in the VM's current state */
    VMLET_ERR_INTERNAL, /* a KVM call failed unexpectedly */
} vmlet_error_code;

/* One line, naming the field or file and saying what to do. */
typedef struct {
    vmlet_error_code code;
    char message[512];
} vmlet_error;

/* ---- configuration --------------------------------------------------- */

typedef struct vmlet_config vmlet_config;

#define VMLET_DEFAULT_CPUS   1
#define VMLET_DEFAULT_MEMORY (256ULL << 20)
#define VMLET_MIN_MEMORY     (16ULL << 20)

VMLET_API vmlet_config *vmlet_config_new(void);
VMLET_API void vmlet_config_free(vmlet_config *c);

/* Setters store the value; range checks happen in vmlet_config_validate()
 * (which vmlet_vm_create() runs), so all problems are reported the same
 * way. They return 0, or -1 only when out of memory. */
VMLET_API int vmlet_config_set_cpus(vmlet_config *c, unsigned cpus);
VMLET_API int vmlet_config_set_memory(vmlet_config *c, uint64_t bytes);
/* What was set (or the default: 1 vCPU, 256 MiB). */
VMLET_API unsigned vmlet_config_get_cpus(const vmlet_config *c);
VMLET_API uint64_t vmlet_config_get_memory(const vmlet_config *c);
/* kernel: an x86-64 bzImage. initrd and cmdline may be NULL. The strings
 * are copied (the config's own, from the getters below, may be passed
 * back: that is how one of the three is replaced). */
VMLET_API int vmlet_config_set_linux_boot(vmlet_config *c, const char *kernel, const char *initrd,
                                          const char *cmdline);
/* What was set, or NULL. Owned by the config: valid until the next
 * vmlet_config_set_linux_boot() or vmlet_config_free(). */
VMLET_API const char *vmlet_config_get_kernel(const vmlet_config *c);
VMLET_API const char *vmlet_config_get_initrd(const vmlet_config *c);
VMLET_API const char *vmlet_config_get_cmdline(const vmlet_config *c);
typedef enum {
    VMLET_CONSOLE_SERIAL, /* 16550 UART at 0x3f8, IRQ 4: the guest's ttyS0 */
    VMLET_CONSOLE_VIRTIO, /* virtio-console over PCI: the guest's hvc0 */
} vmlet_console_kind;

/* The console: the guest reads from in_fd and writes to out_fd (-1 for
 * either means none). The descriptors stay owned by the caller and must
 * stay open while the VM runs. The serial port always exists; with
 * VMLET_CONSOLE_VIRTIO its output still goes to out_fd (early boot
 * messages) but input goes to the virtio console only. Default: serial, no
 * input, output discarded. */
VMLET_API int vmlet_config_set_console(vmlet_config *c, vmlet_console_kind kind, int in_fd,
                                       int out_fd);
/* The kind set (default VMLET_CONSOLE_SERIAL). */
VMLET_API vmlet_console_kind vmlet_config_get_console(const vmlet_config *c);

#define VMLET_MAX_DISKS       16
#define VMLET_DISK_SERIAL_MAX 20 /* bytes, the virtio-blk ID length */
#define VMLET_DISK_READONLY   (1u << 0)

/* Adds a virtio-blk disk backed by a raw image file or block device; disks
 * appear in the order added (vda, vdb, ...). The image's size is 0 or a
 * multiple of 512 bytes: an empty file is a disk of capacity 0, a
 * placeholder whose image vmlet_vm_set_disk_path() replaces later. flags: VMLET_DISK_READONLY
 * (the file is opened read-only and the guest sees a read-only disk).
 * serial: up to 20 printable ASCII characters, or NULL. Returns -1 when out
 * of memory; everything else is checked by vmlet_config_validate(). */
VMLET_API int vmlet_config_add_disk(vmlet_config *c, const char *path, unsigned flags,
                                    const char *serial);
/* A virtio-rng device fed from getrandom(2) (the guest's /dev/hwrng). */
VMLET_API int vmlet_config_set_entropy(vmlet_config *c, int enabled);
/* A virtio-vsock device (docs/vsock.md): the guest's AF_VSOCK sockets,
 * with guest_cid its address, reach host programs on Unix sockets.
 * uds_path is made (mode 0600) when the VM is created: a host program
 * connects to it and writes "CONNECT <port>\n" to reach a guest listener;
 * a guest connecting to CID 2 port P reaches "<uds_path>_<P>". A stale
 * socket there is replaced; a live one or another kind of file is an
 * error. uds_path NULL removes the device. vmlet_config_validate() checks
 * guest_cid (VMLET_VSOCK_MIN_CID..VMLET_VSOCK_MAX_CID) and the path's
 * length. Returns -1 when out of memory. */
#define VMLET_VSOCK_MIN_CID  3
#define VMLET_VSOCK_MAX_CID  0xFFFFFFFEu
#define VMLET_VSOCK_MAX_PATH 96 /* bytes: room for "_<port>" in 107 */
VMLET_API int vmlet_config_set_vsock(vmlet_config *c, uint64_t guest_cid, const char *uds_path);
/* A shared directory (docs/shared-directories.md): a virtio-fs device
 * through which the guest mounts host_path by its tag
 * (`mount -t virtiofs TAG /mnt`), served inside vmlet. flags:
 * VMLET_SHARE_READONLY (every change refused on the host side, files
 * opened read-only), VMLET_SHARE_CACHE_ALWAYS (names and attributes
 * cached in the guest for a day instead of a second: fewer requests,
 * for a directory only the guest changes). vmlet_config_validate() checks that host_path is a
 * directory and the tag 1 to VMLET_SHARE_TAG_MAX bytes, unique. Returns
 * -1 when out of memory. */
#define VMLET_MAX_SHARES         16
#define VMLET_SHARE_TAG_MAX      36
#define VMLET_SHARE_READONLY     (1u << 0)
#define VMLET_SHARE_CACHE_ALWAYS (1u << 1)
VMLET_API int vmlet_config_add_share(vmlet_config *c, const char *host_path, const char *tag,
                                     unsigned flags);
/* A memory balloon (docs/balloon.md): a virtio-balloon device through
 * which the guest hands memory back to the host. flags:
 * VMLET_BALLOON_DEFLATE_ON_OOM (the guest may take pages back from the
 * balloon when it runs out of memory), VMLET_BALLOON_FREE_PAGE_REPORTING
 * (pages the guest frees go back to the host without any target).
 * stats_interval_s: 0 for no statistics, else how often (seconds, at most
 * VMLET_BALLOON_MAX_STATS_INTERVAL) the guest is asked for fresh ones.
 * enabled 0 removes the device. vmlet_config_validate() checks the values;
 * returns 0. */
#define VMLET_BALLOON_DEFLATE_ON_OOM      (1u << 0)
#define VMLET_BALLOON_FREE_PAGE_REPORTING (1u << 1)
#define VMLET_BALLOON_MAX_STATS_INTERVAL  3600
VMLET_API int vmlet_config_set_balloon(vmlet_config *c, int enabled, unsigned flags,
                                       unsigned stats_interval_s);
/* Parses the --balloon syntax, "[deflate-on-oom][,free-page-reporting]
 * [,stats=SECONDS]" ("" or NULL: none of them), into flags and the
 * statistics interval. Returns 0, or -1 with err saying
 * "--balloon 'SPEC': what is wrong". */
VMLET_API int vmlet_parse_balloon(const char *spec, unsigned *flags, unsigned *stats_interval_s,
                                  vmlet_error *err);
#define VMLET_MAX_NICS 8

/* Adds a virtio-net NIC; NICs appear on the PCI bus in the order added.
 * spec is the --net syntax (docs/networking.md):
 *   "user[,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=MAC]
 *        [,host-loopback=on|off][,max-flows=N]"
 *   "tap=NAME[,mac=MAC]"
 * Without mac= a NIC gets a stable default. The spec is parsed here, once;
 * a malformed one is reported by vmlet_config_validate() (the first one's
 * error, as vmlet_check_net() words it), so the return value is always 0. */
VMLET_API int vmlet_config_add_net(vmlet_config *c, const char *spec);
/* The KVM device to use; default "/dev/kvm". */
VMLET_API int vmlet_config_set_kvm_device(vmlet_config *c, const char *path);

#define VMLET_DEFAULT_SHUTDOWN_TIMEOUT 10 /* seconds */
#define VMLET_MAX_SHUTDOWN_TIMEOUT     86400

/* How long the guest is given to power off after vmlet_vm_request_stop()
 * before the caller stops it with vmlet_vm_stop(); 0 to 86400 seconds,
 * default 10. The library does not act on it: it is kept with the rest of
 * the configuration so that a program reading vm.json ("shutdown_timeout")
 * finds it (the vmlet command uses it on SIGTERM). Checked by
 * vmlet_config_validate(). */
VMLET_API int vmlet_config_set_shutdown_timeout(vmlet_config *c, unsigned seconds);
VMLET_API unsigned vmlet_config_get_shutdown_timeout(const vmlet_config *c);

/* The seccomp sandbox (docs/sandbox.md). ON (the default): every thread
 * the VM starts (vCPUs, device and console threads) drops its
 * capabilities, sets no_new_privs and is limited to the system calls its
 * work needs; a call outside that list ends the process (status 128 +
 * SIGSYS) after one line on stderr naming the thread and the call. This
 * installs a SIGSYS handler for the process. OFF: no sandbox, for
 * debugging only. LOG: calls outside a list are allowed and the kernel
 * logs them (dmesg, "audit: type=1326"), for finding what a list lacks.
 * The application's own threads are never filtered, except one that
 * calls vmlet_vm_sandbox_this_thread(). */
typedef enum {
    VMLET_SECCOMP_ON = 0,
    VMLET_SECCOMP_OFF = 1,
    VMLET_SECCOMP_LOG = 2,
} vmlet_seccomp_mode;
/* -1 for a mode not in the enum. */
VMLET_API int vmlet_config_set_seccomp(vmlet_config *c, vmlet_seccomp_mode mode);
VMLET_API vmlet_seccomp_mode vmlet_config_get_seccomp(const vmlet_config *c);
/* The exit status of the process when a sandboxed thread makes a call
 * outside its list: 128 + SIGSYS (159) unless set here, for the whole
 * process (the SIGSYS handler is the process's). 1..255; -1 otherwise.
 * vmlet's Firecracker mode sets 148, Firecracker's status for a bad
 * system call, so an orchestrator reads the death the same way. */
VMLET_API int vmlet_set_sandbox_exit_status(int status);

/* How the vCPU threads are named (what ps -T and /proc/PID/task/TID/comm
 * show): the prefix followed by the vCPU's index. Default "vcpu" (vcpu0,
 * vcpu1, ...); "fc_vcpu " gives Firecracker's names ("fc_vcpu 0"), by
 * which tools such as Kata Containers find the threads to pin. 1 to
 * VMLET_VCPU_NAME_MAX printable ASCII bytes (Linux keeps 15 bytes of a
 * thread's name, and an index takes up to 3); checked by
 * vmlet_config_validate(). NULL restores the default. -1 when out of
 * memory. */
#define VMLET_VCPU_NAME_MAX 12
VMLET_API int vmlet_config_set_vcpu_thread_name(vmlet_config *c, const char *prefix);

/* Checks every field without taking any resource: files exist and have the
 * right format, sizes are in range. Returns 0, or -1 with err filled.
 * vmlet_vm_create() runs the same checks, so a caller that creates a VM
 * right away need not call this first. */
VMLET_API int vmlet_config_validate(const vmlet_config *c, vmlet_error *err);

/* ---- vm.json --------------------------------------------------------- */

#define VMLET_CONFIG_JSON_MAX (1u << 20) /* bytes */

/* Applies a vm.json document - the format of `vmlet run --config`,
 * docs/config.md, e.g. {"kernel": "bzImage", "cpus": 2, "network":
 * [{"type": "user"}]} - in text[0..len) (no NUL needed) onto c, as if its
 * setters had been called: keys left out keep what c has, "disks" and
 * "network" are added after c's. "network" entries follow the rules of
 * vmlet_config_add_net() and are parsed by the same code.
 *
 * The whole document is checked before anything is applied, so on an
 * error c is unchanged (only running out of memory can leave it half
 * done). Returns 0, or -1 with err: VMLET_ERR_FILE for text that is not
 * strict JSON ("line 3, column 7: expected ',' or '}', got '"'"),
 * VMLET_ERR_INVALID for a key or value, naming its path
 * ("disks[1].raed_only: unknown key; known keys are path, read_only,
 * serial", "network[0].mac: ..."), VMLET_ERR_NOMEM. What needs the host
 * (files exist, memory fits) is left to vmlet_config_validate().
 *
 * Thread safety: any thread, on different configs at the same time. cJSON,
 * the parser underneath, writes a process-wide error record on every parse;
 * vmlet never reads it and serialises its own parses, but a program that
 * reads cJSON_GetErrorPtr() itself should not parse while vmlet does. */
VMLET_API int vmlet_config_from_json(vmlet_config *c, const char *text, size_t len,
                                     vmlet_error *err);
/* The same for the file at path (a regular file, pipe or /dev/stdin) of at
 * most VMLET_CONFIG_JSON_MAX bytes; every message starts with the path:
 * "vm.json: line 3, column 7: ...". Same thread safety. */
VMLET_API int vmlet_config_load_json(vmlet_config *c, const char *path, vmlet_error *err);

/* ---- virtual machines ------------------------------------------------ */

typedef struct vmlet_vm vmlet_vm;

typedef enum {
    VMLET_STATE_CREATED,
    VMLET_STATE_STARTING,
    VMLET_STATE_RUNNING,
    VMLET_STATE_STOPPING, /* power button pressed, waiting for the guest */
    VMLET_STATE_PAUSED,   /* no vCPU runs; devices finish what they started */
    VMLET_STATE_STOPPED,
    VMLET_STATE_ERROR,
} vmlet_state;

typedef enum {
    VMLET_STOP_NONE,     /* still running */
    VMLET_STOP_POWEROFF, /* the guest powered off (ACPI S5) */
    VMLET_STOP_REBOOT,   /* the guest asked for a reset; the VM ends */
    VMLET_STOP_HOST,     /* vmlet_vm_stop() was called */
    VMLET_STOP_ERROR,    /* something failed; see message */
} vmlet_stop_reason;

typedef struct {
    vmlet_stop_reason reason;
    char message[512]; /* for VMLET_STOP_ERROR */
} vmlet_exit;

/* Builds the VM (memory, vCPUs, devices, firmware tables, boot state)
 * without running it. Runs vmlet_config_validate() first; a config it
 * refuses gives the same err. */
VMLET_API int vmlet_vm_create(const vmlet_config *c, vmlet_vm **out, vmlet_error *err);
/* Starts the vCPUs. */
VMLET_API int vmlet_vm_start(vmlet_vm *vm, vmlet_error *err);
/* Stops running guest code: returns once no vCPU is inside the guest. A
 * paused guest's clock is told it was stopped. 0, or -1 if the VM is not
 * running, or if a vCPU did not stop within 2 seconds: then the pause is
 * called off, the VM keeps running and its state is unchanged (no vCPU
 * should ever take that long; the bound keeps callers such as the API's
 * PATCH /vm from waiting for ever). Pausing a paused VM does nothing. */
VMLET_API int vmlet_vm_pause(vmlet_vm *vm);
/* Lets a paused VM run again. 0, or -1 if it is not paused or running. */
VMLET_API int vmlet_vm_resume(vmlet_vm *vm);
/* Asks the guest to shut down (ACPI power button); returns at once. */
VMLET_API int vmlet_vm_request_stop(vmlet_vm *vm);
/* Stops the vCPUs now; the guest gets no chance to clean up. */
VMLET_API int vmlet_vm_stop(vmlet_vm *vm);
VMLET_API vmlet_state vmlet_vm_state(vmlet_vm *vm);
/* Readable whenever the state changed since the last vmlet_vm_state()
 * call; for poll/epoll loops. Owned by the VM. */
VMLET_API int vmlet_vm_event_fd(vmlet_vm *vm);
/* Blocks until the VM has stopped and tells why. */
VMLET_API int vmlet_vm_wait(vmlet_vm *vm, vmlet_exit *exit);
/* Like vmlet_vm_wait(), but gives up after timeout_ms; returns 1 if the VM
 * stopped, 0 on timeout. */
VMLET_API int vmlet_vm_wait_timeout(vmlet_vm *vm, vmlet_exit *exit, int timeout_ms);
/* Stops the VM if it still runs and releases everything. */
VMLET_API void vmlet_vm_free(vmlet_vm *vm);
/* Puts the calling thread under the sandbox of a thread that drives this
 * VM (when the VM's seccomp mode is not OFF): what the vmlet_vm_* calls
 * (vmlet_vm_free included) need, plus poll, accept4, reading and writing
 * descriptors it already has, terminal settings and unlink; no programs
 * run, and the only files it may open are existing ones beneath the
 * directories of the VM's disks (vmlet_vm_set_disk_path's new images). For a supervising thread such as the
 * vmlet command's; irreversible for that thread and the threads it
 * creates later. 0, or -1 with err filled. */
VMLET_API int vmlet_vm_sandbox_this_thread(vmlet_vm *vm, vmlet_error *err);

/* Serves disk number index (0 for the first added, as in the metrics'
 * "diskN") from the image at path from now on, while the guest runs or
 * is paused: Firecracker's PATCH /drives, with which Kata Containers
 * hotplugs a container's block device into one of its placeholder disks.
 * path is opened in the calling thread, read-write or read-only as the
 * disk was added, and locked as at creation; the disk finishes every
 * request in flight on the old image (completing it to the guest), then
 * closes it, so no request reaches the old image once this returns; the
 * guest sees the new capacity (virtio-blk's configuration space) and gets
 * a configuration-change interrupt, on which Linux resizes the disk
 * (its size in /sys/block/vdX/size; a change uevent). The same path
 * again re-reads the image's size. A later snapshot records the new path.
 * The guest is told nothing else: swap only an image it is not using
 * (not mounted), as with Firecracker.
 *
 * Under the sandbox (a thread that called vmlet_vm_sandbox_this_thread())
 * the image must be beneath the directory of one of the VM's disks as
 * they were when that thread entered it, where Landlock lets it open
 * existing files (docs/sandbox.md); elsewhere the open fails (permission
 * denied). 0, or -1 with err, and the disk unchanged:
 *   VMLET_ERR_INVALID path empty or too long; no disk number index
 *   VMLET_ERR_FILE    path does not exist, cannot be opened (permissions,
 *                     the sandbox) or locked (another VM has it), or is not
 *                     a regular file or block device: err names the file
 *                     and the reason (a size that is not a multiple of 512
 *                     is taken, as by Firecracker: the tail is not seen)
 *   VMLET_ERR_STATE   the VM has stopped
 *   VMLET_ERR_NOMEM   out of memory
 *   VMLET_ERR_INTERNAL the disk could not take the image (a bug) */
VMLET_API int vmlet_vm_set_disk_path(vmlet_vm *vm, unsigned index, const char *path,
                                     vmlet_error *err);

/* The balloon's target: the guest is asked to give bytes (rounded down
 * to 4 KiB pages, at most the guest's RAM) back to the host; 0 lets it
 * have everything again. Takes effect at once when the guest's driver
 * runs, else when it starts. 0, or -1 with err (no balloon, too large). */
VMLET_API int vmlet_vm_set_balloon(vmlet_vm *vm, uint64_t bytes, vmlet_error *err);
/* The guest's memory statistics, by their virtio tag (virtio 1.2 5.5.6.3);
 * Linux 6.1 sends the first ten. */
typedef enum {
    VMLET_BALLOON_STAT_SWAP_IN = 0,  /* bytes swapped in */
    VMLET_BALLOON_STAT_SWAP_OUT,     /* bytes swapped out */
    VMLET_BALLOON_STAT_MAJOR_FAULTS, /* counts */
    VMLET_BALLOON_STAT_MINOR_FAULTS,
    VMLET_BALLOON_STAT_FREE_MEMORY, /* bytes */
    VMLET_BALLOON_STAT_TOTAL_MEMORY,
    VMLET_BALLOON_STAT_AVAILABLE_MEMORY,
    VMLET_BALLOON_STAT_DISK_CACHES,
    VMLET_BALLOON_STAT_HUGETLB_ALLOCATIONS,
    VMLET_BALLOON_STAT_HUGETLB_FAILURES,
    VMLET_BALLOON_STAT_COUNT = 16, /* tags 10..15: newer kernels' reclaim counters */
} vmlet_balloon_stat;
typedef struct {
    uint64_t target_bytes; /* what the host asks the guest to give */
    uint64_t actual_bytes; /* what the guest says it gave (the guest's word) */
    unsigned flags;        /* VMLET_BALLOON_* as configured */
    unsigned stats_interval_s;
    uint64_t stats_updates; /* statistics received so far; 0: none yet */
    uint64_t stats_age_ms;  /* since the last ones came */
    uint32_t stats_present; /* bit n: stats[n] was in the last update */
    uint64_t stats[VMLET_BALLOON_STAT_COUNT];
} vmlet_balloon_info;
/* Fills info; 0, or -1 with err when the VM has no balloon. Any thread. */
VMLET_API int vmlet_vm_get_balloon(vmlet_vm *vm, vmlet_balloon_info *info, vmlet_error *err);

/* Metrics: counters that only grow, from the VM's creation on. Calls
 * fn(opaque, group, name, value) once per counter, synchronously, before
 * returning 0. Groups and their counters:
 *   "vcpuN"  vmm_exits_io, vmm_exits_mmio, vmm_exits_intr, vmm_exits_other:
 *            exits that reached vmlet, by reason; kvm_NAME: KVM's own
 *            counters for the vCPU (kvm_exits, kvm_io_exits, kvm_halt_exits,
 *            kvm_irq_exits, ... - whatever the host kernel reports through
 *            KVM_GET_STATS_FD; none on kernels before 5.14)
 *   "serial" tx_bytes (written to the console output), tx_dropped (bytes
 *            the guest wrote while vmlet's 64 KiB output buffer was full)
 *   "diskN"  read_requests, read_bytes, write_requests, write_bytes,
 *            flush_requests, other_requests, errors, unsupported, malformed
 *   "netN"   tx_packets, tx_bytes, tx_dropped, tx_errors, tx_malformed,
 *            rx_packets, rx_bytes, rx_dropped, rx_too_big, rx_malformed,
 *            rx_filtered, rx_errors, rx_bad_buffers, ctrl_ok, ctrl_err,
 *            ctrl_malformed ("tx" is guest to network)
 *   "console" tx_bytes, rx_bytes (the virtio console, when configured)
 *   "rng"    requests, bytes (when entropy is configured)
 *   "vsock"  conns_opened, conns_refused, conns_reset, line_timeouts, answer_timeouts,
 *            answer_ms_max, bytes_to_host, bytes_to_guest, pkts_dropped, pkts_malformed (docs/vsock.md)
 *   "balloon" target_pages and actual_pages (the two values that also go
 *            down), inflated_pages, deflated_pages, reported_pages,
 *            returned_bytes, invalid_pages, stats_updates (docs/balloon.md)
 * The strings are valid only during the call. Callable from any thread,
 * at any time between create and free; the values are read without
 * stopping the VM, so counters of different groups are not one snapshot. */
typedef void (*vmlet_metric_fn)(void *opaque, const char *group, const char *name, uint64_t value);
VMLET_API int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque);

/* ---- snapshots (docs/snapshot.md) -------------------------------------- */

/* Saves a paused VM into a new directory dir: its "state" file (vCPUs,
 * interrupt controllers, PIT, clock, devices, sizes; a versioned format)
 * and "memory", guest RAM as a sparse file (pages that hold only zeros,
 * such as those the guest never touched, take no space). The VM stays
 * paused; resume it, or stop it, afterwards. The snapshot is written to
 * "dir.tmp" and renamed to dir once complete: a failed save leaves
 * nothing under dir (and removes what it wrote). Writing runs on the VM's
 * "snapshot" thread (started by vmlet_vm_start, sandboxed to make files
 * but not to read guest input); the call returns when it is done. Disks,
 * NICs, vsock (its connections are not: docs/snapshot.md), the virtio
 * console, virtio-rng, shared directories and the balloon are saved: each
 * device stops first (a disk finishes its requests in flight) and goes on
 * afterwards. A share's open files and inodes are not saved: after a
 * restore they fail cleanly (ESTALE, EBADF) and paths work again
 * (docs/shared-directories.md).
 * 0, or -1 with err:
 *   VMLET_ERR_STATE   the VM is not paused; or it has a share whose path
 *                     is too long for a snapshot, which vmlet cannot
 *                     save: err names it
 *   VMLET_ERR_INVALID dir is empty or too long
 *   VMLET_ERR_FILE    dir already exists, dir.tmp exists (an interrupted
 *                     save: remove it), or a file cannot be written
 *                     (no space, permissions), with the path and reason
 *   VMLET_ERR_HOST    KVM refused to read some state
 *   VMLET_ERR_NOMEM   out of memory */
VMLET_API int vmlet_vm_save(vmlet_vm *vm, const char *dir, vmlet_error *err);
/* The same snapshot as two files at paths of the caller's choosing, as
 * Firecracker's snapshot_path and mem_file_path: the state file and the
 * memory file. Neither may exist; each is written as PATH.tmp and both
 * are renamed once complete, so a failed save leaves neither. Errors as
 * vmlet_vm_save (VMLET_ERR_INVALID also for one path given twice). */
VMLET_API int vmlet_vm_save_files(vmlet_vm *vm, const char *state_path, const char *memory_path,
                                  vmlet_error *err);

/* What a restore takes from the caller rather than from the snapshot:
 * the host side of the VM, and what must differ between two VMs restored
 * from one snapshot (clones). Default: console output discarded, no
 * input, "/dev/kvm", seccomp ON, running; disk images, TAP devices,
 * user-mode NICs and the vsock socket opened again as the snapshot names
 * them, with the saved MACs and vsock CID. */
typedef struct vmlet_restore_options vmlet_restore_options;
VMLET_API vmlet_restore_options *vmlet_restore_options_new(void);
VMLET_API void vmlet_restore_options_free(vmlet_restore_options *o);
/* The console's descriptors (serial or virtio, as the snapshot's VM had
 * it), as vmlet_config_set_console(). */
VMLET_API int vmlet_restore_options_set_console(vmlet_restore_options *o, int in_fd, int out_fd);
/* -1 when out of memory. */
VMLET_API int vmlet_restore_options_set_kvm_device(vmlet_restore_options *o, const char *path);
/* -1 for a mode not in the enum. */
VMLET_API int vmlet_restore_options_set_seccomp(vmlet_restore_options *o, vmlet_seccomp_mode mode);
/* Non-zero: vmlet_vm_start() leaves the restored VM in
 * VMLET_STATE_PAUSED, no guest instruction run; vmlet_vm_resume() runs it. */
VMLET_API int vmlet_restore_options_set_start_paused(vmlet_restore_options *o, int paused);
/* The vCPU threads' name prefix, as vmlet_config_set_vcpu_thread_name()
 * (a restore in Firecracker's mode names them "fc_vcpu N"); NULL restores
 * the default. -1 for an empty, too long or unprintable prefix. */
VMLET_API int vmlet_restore_options_set_vcpu_thread_name(vmlet_restore_options *o,
                                                         const char *prefix);
/* The index-th NIC (0-based, in the saved order) on another network: a
 * --net spec as vmlet_config_add_net() takes (another TAP device, user
 * mode with other forwards). Without mac= it keeps the saved MAC. With
 * another mac= the NIC offers that MAC in its config space, where the
 * guest's driver reads it when it probes the device again (unbinding and
 * binding virtio_net); until then the guest's interface keeps the MAC it
 * had, so its network goes on working (docs/snapshot.md, "Clones"). NULL
 * takes the saved spec again. -1 for index >= VMLET_MAX_NICS or out of
 * memory; a bad spec, or an index past the snapshot's NICs, fails the
 * restore (VMLET_ERR_INVALID). */
VMLET_API int vmlet_restore_options_set_net(vmlet_restore_options *o, unsigned index,
                                            const char *spec);
/* The index-th disk (0-based, in the saved order) from another image
 * file, e.g. a clone's copy: it must have the saved image's size and hold
 * what the saved one held (vmlet checks the size only); read-only and
 * serial stay the snapshot's. NULL takes the saved path again. -1 for
 * index >= VMLET_MAX_DISKS or out of memory; an index past the
 * snapshot's disks fails the restore (VMLET_ERR_INVALID). */
VMLET_API int vmlet_restore_options_set_disk(vmlet_restore_options *o, unsigned index,
                                             const char *path);
/* The vsock device's guest CID (0: the saved one) and Unix socket path
 * (NULL: the saved one). The restored device has no connections and
 * sends the guest a transport reset event: the guest's connected vsock
 * sockets are reset, its listening ones stay, and it reads the CID again.
 * Checked as vmlet_config_set_vsock()'s values; given for a snapshot
 * without a vsock device, the restore fails (VMLET_ERR_INVALID). -1 when
 * out of memory. */
VMLET_API int vmlet_restore_options_set_vsock(vmlet_restore_options *o, uint64_t guest_cid,
                                              const char *uds_path);

/* Makes a VM from the snapshot in dir (options may be NULL for the
 * defaults), in VMLET_STATE_CREATED: vmlet_vm_start() resumes the guest
 * where it was paused. Guest RAM is the memory file mapped copy-on-write
 * (MAP_PRIVATE): nothing of it is read until the guest touches it, so the
 * time this takes does not grow with the VM's memory; the file must stay
 * unchanged while the VM runs (shortening it would make the guest's
 * accesses fail), and the guest's writes never reach it. The guest's
 * clocks go on as if it had been paused from the save until now (see
 * docs/snapshot.md). The snapshot is untrusted input: every size, count
 * and offset is checked. 0 with *out, or -1 with err:
 *   VMLET_ERR_FILE    dir or a file in it cannot be opened or read; the
 *                     state file is not a vmlet snapshot, has another
 *                     format version ("format version 3; this vmlet reads
 *                     versions 1 to 2"), is cut short, altered (checksum),
 *                     or holds a value vmlet or KVM refuses (a device's
 *                     state no driver could have set: the message names
 *                     the device and the field); the memory file's size is
 *                     not the VM's; a disk image cannot be opened, or its
 *                     size changed since the save
 *   VMLET_ERR_HOST    the snapshot was saved on another CPU (its CPUID,
 *                     XSAVE size or TSC frequency differ: the message names
 *                     what), KVM refuses an MSR, or no KVM here (as
 *                     vmlet_vm_create)
 *   VMLET_ERR_INVALID more vCPUs than this host's KVM allows; a NIC or
 *                     vsock replacement or a disk path in options is bad or names a
 *                     device the snapshot does not have
 *   VMLET_ERR_NOMEM   out of memory */
VMLET_API int vmlet_vm_restore(const char *dir, const vmlet_restore_options *options,
                               vmlet_vm **out, vmlet_error *err);
/* The same from a snapshot saved with vmlet_vm_save_files (or the
 * files of a snapshot directory): its state file and memory file, which
 * may be symbolic links. Errors as vmlet_vm_restore, naming state_path. */
VMLET_API int vmlet_vm_restore_files(const char *state_path, const char *memory_path,
                                     const vmlet_restore_options *options, vmlet_vm **out,
                                     vmlet_error *err);
/* The VM's vCPU count and RAM in bytes (for a restored VM, the
 * snapshot's). */
VMLET_API unsigned vmlet_vm_cpus(const vmlet_vm *vm);
VMLET_API uint64_t vmlet_vm_memory(const vmlet_vm *vm);

/* ---- utilities ------------------------------------------------------- */

VMLET_API const char *vmlet_version(void);
/* Parses "512M", "2G", "1048576", "64k": bytes with an optional K/M/G/T
 * suffix (powers of 1024). Returns 0, or -1 on a malformed or overflowing
 * value. */
VMLET_API int vmlet_parse_size(const char *s, uint64_t *bytes);
/* Checks one --net value without touching the host. Returns 0, or -1
 * with err saying "--net 'SPEC': PART: what is wrong". */
VMLET_API int vmlet_check_net(const char *spec, vmlet_error *err);
/* Something about NIC number nic worth telling the user once the VM is
 * created (e.g. its TAP device is down), or NULL. */
VMLET_API const char *vmlet_vm_net_warning(vmlet_vm *vm, unsigned nic);
/* One line about the host worth telling the user before a boot (e.g. the
 * KVM here is PVM, which only runs PVM-enabled guest kernels), or NULL. */
VMLET_API const char *vmlet_host_warning(void);

#ifdef __cplusplus
}
#endif
#endif
