/* The VM's insides, shared by vm.c (building, running, stopping) and
 * snapshot.c (saving and restoring). Nothing here is public. */
#ifndef VMLET_VM_INTERNAL_H
#define VMLET_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "bus.h"
#include "config.h"
#include "memory.h"
#include "vmlet.h"

struct serial;
struct acpi_pm;
struct i8042;
struct kvm_irq;
struct pci_host;
struct serial_input;
struct virtio_device;
struct virtio_pci;
struct kvm_stats;
struct snapshot_saver;
struct snap_device;

#define SLOT_LOW_RAM  0
#define SLOT_HIGH_RAM 1

struct vcpu {
    struct vmlet_vm *vm;
    unsigned index;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool started;
    struct kvm_stats *kvm_stats; /* KVM's own counters, or NULL */
    /* Exits vmlet handled, by reason (relaxed atomics: metrics read them). */
    uint64_t exits_io, exits_mmio, exits_intr, exits_other;
};

#define EXIT_INC(v, field) __atomic_fetch_add(&(v)->field, 1, __ATOMIC_RELAXED)

/* A virtio device on the VM's PCI bus. */
struct attached_device {
    struct virtio_device *dev;
    struct virtio_pci *fn; /* its PCI function; NULL if attaching failed */
    char group[16];        /* its metrics group: "disk0", "net1", "console" */
    /* How a snapshot makes it again; NULL for a kind that cannot be
     * saved (a save is then refused, naming it). */
    struct snap_device *desc;
};

#define MAX_VIRTIO_DEVICES \
    (VMLET_MAX_DISKS + VMLET_MAX_NICS + VMLET_MAX_SHARES + 4) /* + console, rng, vsock, balloon */

struct vmlet_vm {
    unsigned ncpus;
    unsigned shutdown_timeout; /* kept for a snapshot */
    int console_in;
    vmlet_seccomp_mode seccomp;
    char vcpu_name[VMLET_VCPU_NAME_MAX + 1]; /* the vCPU threads' name prefix */
    int kvm_fd, vm_fd;
    size_t run_size;
    struct guest_memory mem;
    struct vcpu *vcpus;
    struct bus pio, mmio;
    struct serial *serial;
    struct acpi_pm *pm;
    struct i8042 *i8042;
    struct kvm_irq *irq; /* MSI routes, irqfds, ioeventfds */
    struct pci_host *pci;
    struct attached_device devices[MAX_VIRTIO_DEVICES]; /* in PCI slot order */
    unsigned ndevices;

    struct serial_input *serial_input; /* console_in into the UART, once started */

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t changed;
    vmlet_state state;
    vmlet_state state_before_pause; /* RUNNING or STOPPING */
    vmlet_stop_reason reason;
    char message[512];
    unsigned vcpus_running;
    bool joined;
    int event_fd;
    atomic_bool stopping; /* vCPU threads leave their loop */
    atomic_bool pausing;  /* vCPU threads park outside KVM_RUN */
    unsigned vcpus_parked;
    pthread_cond_t unpaused;
    bool start_paused; /* vmlet_vm_start leaves it PAUSED (a restore's option) */

    struct snapshot_saver *saver; /* the thread that writes snapshots, once started */
    /* CLOCK_BOOTTIME (ns) of the boot vCPU's first KVM_RUN and of the
     * first stop reason, 0 until then: what bench/boot needs to tell the
     * VMM's set-up and teardown from the guest's boot (metrics "vm"). */
    uint64_t first_run_ns, stop_ns;
    /* How the kernel was loaded (boot.h): time spent, decompressed on the
     * host or by the bzImage, KASLR. */
    uint64_t kernel_load_ns;
    bool kernel_host_decompressed, kernel_kaslr;
};

/* The parts of vmlet_vm_create that vmlet_vm_restore shares (vm.c). */
struct vmlet_vm *vm_alloc(unsigned ncpus);
int vm_open_kvm(struct vmlet_vm *vm, const vmlet_config *c, vmlet_error *err);
int vm_setup_legacy_devices(struct vmlet_vm *vm, int console_out, vmlet_error *err);
int vm_setup_pci_devices(struct vmlet_vm *vm, const vmlet_config *c, vmlet_error *err);
/* Makes the vCPUs with their CPUID and boot MSRs; no boot registers. */
int vm_create_vcpus(struct vmlet_vm *vm, vmlet_error *err);
/* Writes a new random VM generation ID into guest memory (at boot, and on
 * every restore: clones of one snapshot get different IDs); notify: also
 * raise the Generic Event Device's interrupt, so a guest driver (Linux's
 * vmgenid) reads it and reseeds its random number generator. After the
 * interrupt controllers are set up (a restore: restored). */
int vm_new_generation(struct vmlet_vm *vm, bool notify, vmlet_error *err);
int vm_register_memory(struct vmlet_vm *vm, vmlet_error *err);
void vm_install_kick_handler(void);

#endif
