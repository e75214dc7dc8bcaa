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
 * stop, state, event_fd, wait, wait_timeout, metrics, net_warning) may be
 * called from any thread at the same time, except
 * vmlet_vm_free(), which must be the last call on a VM.
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
    VMLET_ERR_INVALID,      /* a configuration value is wrong */
    VMLET_ERR_FILE,         /* a file cannot be opened or has the wrong format */
    VMLET_ERR_HOST,         /* the host cannot run the VM (no /dev/kvm, limits) */
    VMLET_ERR_NOMEM,        /* out of host memory */
    VMLET_ERR_STATE,        /* call not valid in the VM's current state */
    VMLET_ERR_INTERNAL,     /* a KVM call failed unexpectedly */
} vmlet_error_code;

/* One line, naming the field or file and saying what to do. */
typedef struct {
    vmlet_error_code code;
    char message[512];
} vmlet_error;

/* ---- configuration --------------------------------------------------- */

typedef struct vmlet_config vmlet_config;

#define VMLET_DEFAULT_CPUS    1
#define VMLET_DEFAULT_MEMORY  (256ULL << 20)
#define VMLET_MIN_MEMORY      (16ULL << 20)

VMLET_API vmlet_config *vmlet_config_new(void);
VMLET_API void vmlet_config_free(vmlet_config *c);

/* Setters store the value; range checks happen in vmlet_config_validate()
 * (and again in vmlet_vm_create()), so all problems are reported the same
 * way. They return 0, or -1 only when out of memory. */
VMLET_API int vmlet_config_set_cpus(vmlet_config *c, unsigned cpus);
VMLET_API int vmlet_config_set_memory(vmlet_config *c, uint64_t bytes);
/* What was set (or the default: 1 vCPU, 256 MiB). */
VMLET_API unsigned vmlet_config_get_cpus(const vmlet_config *c);
VMLET_API uint64_t vmlet_config_get_memory(const vmlet_config *c);
/* kernel: an x86-64 bzImage. initrd and cmdline may be NULL. */
VMLET_API int vmlet_config_set_linux_boot(vmlet_config *c, const char *kernel,
                                          const char *initrd,
                                          const char *cmdline);
typedef enum {
    VMLET_CONSOLE_SERIAL,   /* 16550 UART at 0x3f8, IRQ 4: the guest's ttyS0 */
    VMLET_CONSOLE_VIRTIO,   /* virtio-console over PCI: the guest's hvc0 */
} vmlet_console_kind;

/* The console: the guest reads from in_fd and writes to out_fd (-1 for
 * either means none). The descriptors stay owned by the caller and must
 * stay open while the VM runs. The serial port always exists; with
 * VMLET_CONSOLE_VIRTIO its output still goes to out_fd (early boot
 * messages) but input goes to the virtio console only. Default: serial, no
 * input, output discarded. */
VMLET_API int vmlet_config_set_console(vmlet_config *c, vmlet_console_kind kind,
                                       int in_fd, int out_fd);

#define VMLET_MAX_DISKS        16
#define VMLET_DISK_SERIAL_MAX  20   /* bytes, the virtio-blk ID length */
#define VMLET_DISK_READONLY    (1u << 0)

/* Adds a virtio-blk disk backed by a raw image file or block device; disks
 * appear in the order added (vda, vdb, ...). flags: VMLET_DISK_READONLY
 * (the file is opened read-only and the guest sees a read-only disk).
 * serial: up to 20 printable ASCII characters, or NULL. Returns -1 when out
 * of memory; everything else is checked by vmlet_config_validate(). */
VMLET_API int vmlet_config_add_disk(vmlet_config *c, const char *path,
                                    unsigned flags, const char *serial);
/* A virtio-rng device fed from getrandom(2) (the guest's /dev/hwrng). */
VMLET_API int vmlet_config_set_entropy(vmlet_config *c, int enabled);
#define VMLET_MAX_NICS         8

/* Adds a virtio-net NIC; NICs appear on the PCI bus in the order added.
 * spec is the --net syntax (docs/networking.md):
 *   "user[,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=MAC]"
 *   "tap=NAME[,mac=MAC]"
 * Without mac= a NIC gets a stable default. Returns -1 when out of memory;
 * the spec is checked by vmlet_config_validate(). */
VMLET_API int vmlet_config_add_net(vmlet_config *c, const char *spec);
/* The KVM device to use; default "/dev/kvm". */
VMLET_API int vmlet_config_set_kvm_device(vmlet_config *c, const char *path);

/* Checks every field without taking any resource: files exist and have the
 * right format, sizes are in range. Returns 0, or -1 with err filled. */
VMLET_API int vmlet_config_validate(const vmlet_config *c, vmlet_error *err);

/* ---- virtual machines ------------------------------------------------ */

typedef struct vmlet_vm vmlet_vm;

typedef enum {
    VMLET_STATE_CREATED,
    VMLET_STATE_STARTING,
    VMLET_STATE_RUNNING,
    VMLET_STATE_STOPPING,   /* power button pressed, waiting for the guest */
    VMLET_STATE_PAUSED,     /* no vCPU runs; devices finish what they started */
    VMLET_STATE_STOPPED,
    VMLET_STATE_ERROR,
} vmlet_state;

typedef enum {
    VMLET_STOP_NONE,        /* still running */
    VMLET_STOP_POWEROFF,    /* the guest powered off (ACPI S5) */
    VMLET_STOP_REBOOT,      /* the guest asked for a reset; the VM ends */
    VMLET_STOP_HOST,        /* vmlet_vm_stop() was called */
    VMLET_STOP_ERROR,       /* something failed; see message */
} vmlet_stop_reason;

typedef struct {
    vmlet_stop_reason reason;
    char message[512];      /* for VMLET_STOP_ERROR */
} vmlet_exit;

/* Builds the VM (memory, vCPUs, devices, firmware tables, boot state)
 * without running it. */
VMLET_API int vmlet_vm_create(const vmlet_config *c, vmlet_vm **out,
                              vmlet_error *err);
/* Starts the vCPUs. */
VMLET_API int vmlet_vm_start(vmlet_vm *vm, vmlet_error *err);
/* Stops running guest code: returns once no vCPU is inside the guest. A
 * paused guest's clock is told it was stopped. 0, or -1 if the VM is not
 * running. Pausing a paused VM does nothing. */
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
VMLET_API int vmlet_vm_wait_timeout(vmlet_vm *vm, vmlet_exit *exit,
                                    int timeout_ms);
/* Stops the VM if it still runs and releases everything. */
VMLET_API void vmlet_vm_free(vmlet_vm *vm);

/* Metrics: counters that only grow, from the VM's creation on. Calls
 * fn(opaque, group, name, value) once per counter, synchronously, before
 * returning 0. Groups and their counters:
 *   "vcpuN"  vmm_exits_io, vmm_exits_mmio, vmm_exits_intr, vmm_exits_other:
 *            exits that reached vmlet, by reason; kvm_NAME: KVM's own
 *            counters for the vCPU (kvm_exits, kvm_io_exits, kvm_halt_exits,
 *            kvm_irq_exits, ... - whatever the host kernel reports through
 *            KVM_GET_STATS_FD; none on kernels before 5.14)
 *   "diskN"  read_requests, read_bytes, write_requests, write_bytes,
 *            flush_requests, other_requests, errors, unsupported, malformed
 *   "netN"   tx_packets, tx_bytes, tx_dropped, tx_errors, tx_malformed,
 *            rx_packets, rx_bytes, rx_dropped, rx_too_big, rx_malformed,
 *            rx_filtered, rx_errors, rx_bad_buffers, ctrl_ok, ctrl_err,
 *            ctrl_malformed ("tx" is guest to network)
 *   "console" tx_bytes, rx_bytes (the virtio console, when configured)
 *   "rng"    requests, bytes (when entropy is configured)
 * The strings are valid only during the call. Callable from any thread,
 * at any time between create and free; the values are read without
 * stopping the VM, so counters of different groups are not one snapshot. */
typedef void (*vmlet_metric_fn)(void *opaque, const char *group, const char *name,
                                uint64_t value);
VMLET_API int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque);

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
