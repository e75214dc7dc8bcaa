/* A VM's whole life: building it (vmlet_vm_create reads top to bottom in
 * construction order), one thread per vCPU running KVM_RUN and dispatching
 * exits to the buses, and stopping it (guest power-off or reboot, host
 * request, error). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>

#include "vm_internal.h"
#include "bus.h"
#include "config.h"
#include "error.h"
#include "layout.h"
#include "memory.h"
#include "dev/acpi_pm.h"
#include "dev/i8042.h"
#include "dev/serial.h"
#include "dev/serial_input.h"
#include "dev/pci.h"
#include "kvm_irq.h"
#include "kvm_stats.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/device.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "virtio/fs.h"
#include "fs/fuse_server.h"
#include "virtio/net.h"
#include "netspec.h"
#include "sandbox.h"
#include "snapshot.h"
#include "snapshot_format.h"
#include "x86/acpi.h"
#include "x86/boot.h"
#include "x86/vcpu.h"

/* ---- host checks ----------------------------------------------------- */

VMLET_API const char *vmlet_version(void)
{
    return VMLET_VERSION;
}

/* PVM (Pagetable-based Virtual Machine) is a KVM backend for hosts that
 * are guests themselves, without VT-x/AMD-V; its module name gives it away. */
static bool host_kvm_is_pvm(void)
{
    return access("/sys/module/kvm_pvm", F_OK) == 0;
}

VMLET_API const char *vmlet_host_warning(void)
{
    if (host_kvm_is_pvm())
        return "this host's KVM is PVM, which only runs guest kernels built with PVM "
               "support (CONFIG_PVM_GUEST); a stock distribution kernel will hang early "
               "in boot. Use a host with hardware virtualization (VT-x/AMD-V) or the "
               "nested lab (tests/lab).";
    return NULL;
}

static int open_kvm(const char *path, vmlet_error *err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    /* Loading kvm_intel or kvm_amd cannot help on a PVM host: say what can. */
    static const char pvm_advice[] =
        "this host has no hardware virtualization, and its KVM is PVM (module kvm_pvm), "
        "which cannot run a stock Linux kernel anyway; run vmlet on a host with "
        "VT-x/AMD-V, or use the nested lab here (scripts/demo, tests/lab)";
    if (e == ENOENT && host_kvm_is_pvm())
        set_error(err, VMLET_ERR_HOST, "%s does not exist: %s", path, pvm_advice);
    else if ((e == ENODEV || e == ENXIO) && host_kvm_is_pvm())
        set_error(err, VMLET_ERR_HOST, "cannot open %s: no KVM driver behind it; %s", path,
                  pvm_advice);
    else if (e == ENOENT)
        set_error(err, VMLET_ERR_HOST,
                  "%s does not exist: this host has no KVM; "
                  "load kvm_intel or kvm_amd, or enable virtualization (VT-x/AMD-V) "
                  "in the firmware or for this VM",
                  path);
    else if (e == EACCES || e == EPERM)
        set_error(err, VMLET_ERR_HOST,
                  "cannot open %s: permission denied; add your "
                  "user to its group (ls -l %s; usermod -aG kvm $USER) and log in again",
                  path, path);
    else if (e == ENODEV || e == ENXIO)
        set_error(err, VMLET_ERR_HOST,
                  "cannot open %s: no KVM driver behind it; "
                  "load kvm_intel or kvm_amd",
                  path);
    else
        set_error(err, VMLET_ERR_HOST, "cannot open %s: %s", path, strerror(e));
    return -1;
}

static int check_kvm(struct vmlet_vm *vm, const char *path, unsigned cpus, vmlet_error *err)
{
    int version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (version < 0)
        return set_error(err, VMLET_ERR_HOST, "%s is not a KVM device (%s)", path, strerror(errno));
    if (version != KVM_API_VERSION)
        return set_error(err, VMLET_ERR_HOST, "%s speaks KVM API version %d; vmlet needs %d", path,
                         version, KVM_API_VERSION);
    static const struct {
        int cap;
        const char *name;
    } caps[] = {
        { KVM_CAP_IRQCHIP, "in-kernel irqchip" }, { KVM_CAP_USER_MEMORY, "user memory" },
        { KVM_CAP_SET_TSS_ADDR, "TSS address" },  { KVM_CAP_PIT2, "in-kernel PIT" },
        { KVM_CAP_EXT_CPUID, "CPUID" },           { KVM_CAP_IMMEDIATE_EXIT, "immediate exit" },
        { KVM_CAP_IRQ_ROUTING, "IRQ routing" },   { KVM_CAP_IRQFD, "irqfd" },
        { KVM_CAP_IOEVENTFD, "ioeventfd" },
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
            return set_error(err, VMLET_ERR_HOST,
                             "this host's KVM lacks the %s "
                             "capability vmlet needs",
                             caps[i].name);
    int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max <= 0)
        max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (max <= 0)
        max = 4; /* what KVM_CAP_NR_VCPUS promises when absent */
    if (cpus > (unsigned)max)
        return set_error(err, VMLET_ERR_INVALID,
                         "cpus: %u is more than this host's KVM "
                         "allows (%d); give it %d or fewer",
                         cpus, max, max);
    vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if ((long)vm->run_size <= 0)
        return set_error(err, VMLET_ERR_HOST, "KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
    return 0;
}

/* ---- interrupts and guest requests ----------------------------------- */

static void set_irq_line(void *opaque, unsigned gsi, int level)
{
    struct vmlet_vm *vm = opaque;
    struct kvm_irq_level irq = { .irq = gsi, .level = level };
    ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

/* SIGRTMIN only interrupts KVM_RUN; the handler has nothing to do. */
static void kick_handler(int sig)
{
    (void)sig;
}

void vm_install_kick_handler(void)
{
    struct sigaction sa = { .sa_handler = kick_handler };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGRTMIN, &sa, NULL);
}

static void notify_state_locked(struct vmlet_vm *vm)
{
    uint64_t one = 1;
    if (write(vm->event_fd, &one, sizeof one) < 0) {
        /* The counter saturates only after 2^64-1 changes: ignore. */
    }
    pthread_cond_broadcast(&vm->changed);
}

/* Makes every vCPU leave KVM_RUN soon: immediate_exit covers a vCPU just
 * about to enter it, the signal one already inside. */
static void kick_vcpus_locked(struct vmlet_vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        if (!v->run)
            continue;
        v->run->immediate_exit = 1;
        if (v->started && !pthread_equal(v->thread, pthread_self()))
            pthread_kill(v->thread, SIGRTMIN);
    }
}

/* clock_gettime is in every thread's sandbox (sandbox.c). */
static uint64_t boottime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Ends the VM for the first reason given; later calls change nothing. Any
 * thread may call it, including a vCPU thread from inside an exit. */
static void vm_finish(struct vmlet_vm *vm, vmlet_stop_reason reason, const char *msg)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->reason == VMLET_STOP_NONE) {
        vm->reason = reason;
        __atomic_store_n(&vm->stop_ns, boottime_ns(), __ATOMIC_RELAXED);
        if (msg)
            snprintf(vm->message, sizeof vm->message, "%s", msg);
    }
    atomic_store(&vm->stopping, true);
    kick_vcpus_locked(vm);
    pthread_cond_broadcast(&vm->unpaused);
    pthread_mutex_unlock(&vm->lock);
}

static void on_guest_request(void *opaque, enum guest_request req)
{
    struct vmlet_vm *vm = opaque;
    vm_finish(vm, req == GUEST_REQUEST_POWEROFF ? VMLET_STOP_POWEROFF : VMLET_STOP_REBOOT, NULL);
}

/* ---- vCPU threads ---------------------------------------------------- */

static void vcpu_fail(struct vcpu *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vcpu_fail(struct vcpu *v, const char *fmt, ...)
{
    char msg[400], full[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct kvm_regs regs;
    if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
        snprintf(full, sizeof full, "vCPU %u: %s (rip 0x%llx)", v->index, msg,
                 (unsigned long long)regs.rip);
    else
        snprintf(full, sizeof full, "vCPU %u: %s", v->index, msg);
    vm_finish(v->vm, VMLET_STOP_ERROR, full);
}

/* Handles one exit; returns false when the vCPU must stop. */
static bool vcpu_handle_exit(struct vcpu *v)
{
    struct vmlet_vm *vm = v->vm;
    struct kvm_run *run = v->run;

    switch (run->exit_reason) {
    case KVM_EXIT_IO: {
        EXIT_INC(v, exits_io);
        /* data_offset, size and count come from KVM, not from the guest. */
        uint8_t *data = (uint8_t *)run + run->io.data_offset;
        bool out = run->io.direction == KVM_EXIT_IO_OUT;
        for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
            bus_dispatch(&vm->pio, run->io.port, data, run->io.size, out);
        return true;
    }
    case KVM_EXIT_MMIO:
        EXIT_INC(v, exits_mmio);
        if (run->mmio.len > sizeof run->mmio.data) {
            vcpu_fail(v, "MMIO access of %u bytes", run->mmio.len);
            return false;
        }
        bus_dispatch(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
                     run->mmio.is_write);
        return true;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault: Linux's last resort when asked to reboot. */
        EXIT_INC(v, exits_other);
        vm_finish(vm, VMLET_STOP_REBOOT, NULL);
        return false;
    case KVM_EXIT_SYSTEM_EVENT:
        EXIT_INC(v, exits_other);
        vm_finish(vm,
                  run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VMLET_STOP_REBOOT
                                                                   : VMLET_STOP_POWEROFF,
                  NULL);
        return false;
    case KVM_EXIT_FAIL_ENTRY:
        vcpu_fail(v, "KVM could not enter the guest (hardware reason 0x%llx)",
                  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return false;
    case KVM_EXIT_INTERNAL_ERROR:
        vcpu_fail(v, "KVM internal error (suberror %u)", run->internal.suberror);
        return false;
    case KVM_EXIT_HLT:
        /* With the in-kernel irqchip KVM handles HLT itself. */
        vcpu_fail(v, "unexpected HLT exit");
        return false;
    case KVM_EXIT_INTR: EXIT_INC(v, exits_intr); return true;
    default: vcpu_fail(v, "unhandled KVM exit reason %u", run->exit_reason); return false;
    }
}

/* Waits outside KVM_RUN while the VM is paused. The guest's clock is told
 * it was stopped (KVM_KVMCLOCK_CTRL) so it does not report soft lockups. */
static void vcpu_park(struct vcpu *v)
{
    struct vmlet_vm *vm = v->vm;
    /* The exit just handled (an IN's data, an MMIO read) is only complete
     * once KVM_RUN is entered again: one with immediate_exit set finishes
     * it and returns at once (KVM's API doc on immediate_exit), so that a
     * snapshot taken while parked has the instruction done. A string I/O
     * instruction may exit again for its next part: handle that too. */
    v->run->immediate_exit = 1;
    while (ioctl(v->fd, KVM_RUN, 0) == 0)
        if (!vcpu_handle_exit(v))
            break;
    pthread_mutex_lock(&vm->lock);
    vm->vcpus_parked++;
    pthread_cond_broadcast(&vm->changed);
    while (atomic_load(&vm->pausing) && !atomic_load(&vm->stopping))
        pthread_cond_wait(&vm->unpaused, &vm->lock);
    vm->vcpus_parked--;
    if (!atomic_load(&vm->stopping))
        v->run->immediate_exit = 0;
    pthread_mutex_unlock(&vm->lock);
    ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0); /* best effort: old hosts lack it */
}

/* A kick for a pause that gave up before this vCPU parked (its deadline
 * passed) leaves immediate_exit set: clear it, or every KVM_RUN would
 * return at once. Under the lock, so that a new pause's kick (set with
 * the lock held, after pausing) is never the one cleared. */
static void vcpu_clear_stale_kick(struct vcpu *v)
{
    struct vmlet_vm *vm = v->vm;
    pthread_mutex_lock(&vm->lock);
    if (!atomic_load(&vm->pausing) && !atomic_load(&vm->stopping))
        v->run->immediate_exit = 0;
    pthread_mutex_unlock(&vm->lock);
}

/* A vCPU thread runs the guest and every device register access: KVM_RUN
 * and the interrupt plumbing the virtio transport changes as the guest
 * programs it (MSI routes, irqfds, ioeventfds), a device's activation and
 * reset (epoll registration, cancelling a disk's in-flight I/O, a TAP
 * device's offloads), and the
 * register dump of a failure report. */
static const int vcpu_syscalls[] = { __NR_io_uring_enter, __NR_eventfd2 };
static const unsigned long vcpu_ioctls[] = {
    KVM_RUN,        KVM_SET_GSI_ROUTING, KVM_IRQFD,           KVM_IOEVENTFD,
    KVM_SIGNAL_MSI, KVM_IRQ_LINE,        KVM_IRQ_LINE_STATUS, KVM_KVMCLOCK_CTRL,
    KVM_GET_REGS,   KVM_GET_SREGS,       TUNSETOFFLOAD,
};
static const struct sandbox_rules vcpu_rules = SANDBOX_RULES("vcpu", vcpu_syscalls, vcpu_ioctls);

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    struct vmlet_vm *vm = v->vm;
    char name[16];
    snprintf(name, sizeof name, "%s%u", vm->vcpu_name, v->index);
    pthread_setname_np(pthread_self(), name);
    if (v->index == 0)
        __atomic_store_n(&vm->first_run_ns, boottime_ns(), __ATOMIC_RELAXED);

    while (!atomic_load(&vm->stopping)) {
        if (atomic_load(&vm->pausing)) {
            vcpu_park(v);
            continue;
        }
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                EXIT_INC(v, exits_intr);
                if (v->run->immediate_exit)
                    vcpu_clear_stale_kick(v);
                continue;
            }
            vcpu_fail(v, "KVM_RUN failed: %s", strerror(errno));
            break;
        }
        if (!vcpu_handle_exit(v))
            break;
    }

    /* One vCPU leaving ends the VM for all (a no-op if a reason is set). */
    vm_finish(vm, VMLET_STOP_HOST, NULL);
    pthread_mutex_lock(&vm->lock);
    if (--vm->vcpus_running == 0) {
        vm->state = vm->reason == VMLET_STOP_ERROR ? VMLET_STATE_ERROR : VMLET_STATE_STOPPED;
        notify_state_locked(vm);
    }
    pthread_mutex_unlock(&vm->lock);
    return NULL;
}

/* ---- building a VM --------------------------------------------------- */

/* Hands vm->mem (allocated or mapped from a snapshot) to KVM. */
int vm_register_memory(struct vmlet_vm *vm, vmlet_error *err)
{
    struct kvm_userspace_memory_region low = {
        .slot = SLOT_LOW_RAM,
        .guest_phys_addr = 0,
        .memory_size = vm->mem.low_size,
        .userspace_addr = (uintptr_t)vm->mem.host,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0)
        return set_error(err, VMLET_ERR_HOST, "cannot give guest memory to KVM: %s",
                         strerror(errno));
    if (vm->mem.high_size) {
        struct kvm_userspace_memory_region high = {
            .slot = SLOT_HIGH_RAM,
            .guest_phys_addr = GUEST_HIGH_RAM_START,
            .memory_size = vm->mem.high_size,
            .userspace_addr = (uintptr_t)(vm->mem.host + vm->mem.low_size),
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0)
            return set_error(err, VMLET_ERR_HOST,
                             "cannot give guest memory above 4 GiB "
                             "to KVM: %s",
                             strerror(errno));
    }
    return 0;
}

/* Legacy devices on the I/O port bus: the UART, power management, reset. */
int vm_setup_legacy_devices(struct vmlet_vm *vm, int console_out, vmlet_error *err)
{
    struct irq_line com1 = { set_irq_line, vm, IRQ_COM1 };
    struct irq_line sci = { set_irq_line, vm, IRQ_ACPI_SCI };
    vm->serial = serial_new(com1, console_out, vm->seccomp);
    vm->pm = acpi_pm_new(sci, on_guest_request, vm);
    vm->i8042 = i8042_new(on_guest_request, vm);
    if (!vm->serial || !vm->pm || !vm->i8042)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory creating devices");
    if (bus_register(&vm->pio, PORT_COM1, PORT_COM1_LEN, serial_pio, vm->serial) < 0 ||
        bus_register(&vm->pio, PORT_I8042_DATA, PORT_I8042_CMD - PORT_I8042_DATA + 1, i8042_pio,
                     vm->i8042) < 0 ||
        bus_register(&vm->pio, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN, acpi_pm_evt_pio,
                     vm->pm) < 0 ||
        bus_register(&vm->pio, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN, acpi_pm_cnt_pio,
                     vm->pm) < 0 ||
        bus_register(&vm->pio, PORT_ACPI_RESET, 1, acpi_pm_reset_pio, vm->pm) < 0)
        return set_error(err, VMLET_ERR_INTERNAL, "device I/O ports overlap");
    return 0;
}

/* Puts dev on the PCI bus, in the next slot, under a metrics group name.
 * dev NULL means its constructor failed and filled err. The VM owns dev
 * from here on, even if this fails. */
static int attach_virtio(struct vmlet_vm *vm, struct virtio_device *dev, const char *group,
                         vmlet_error *err)
{
    if (!dev)
        return -1;
    if (vm->ndevices == MAX_VIRTIO_DEVICES) {
        dev->ops.free(dev);
        return set_error(err, VMLET_ERR_INTERNAL, "%s: too many devices", group);
    }
    struct attached_device *a = &vm->devices[vm->ndevices++];
    a->dev = dev;
    /* Its thread now, under its sandbox: activation (on a vCPU thread,
     * under the vCPU's filter) must not be what creates it. */
    if (virtio_device_spawn(dev, vm->seccomp, err) < 0)
        return -1;
    snprintf(a->group, sizeof a->group, "%s", group);
    a->fn = virtio_pci_new(vm->pci, vm->irq, &vm->mem, &dev->ops, dev);
    if (!a->fn)
        return set_error(err, VMLET_ERR_INTERNAL, "%s: no room on the PCI bus", group);
    return 0;
}

/* What a snapshot needs to make the device just attached again (the
 * kinds vmlet can save). */
static int describe_last(struct vmlet_vm *vm, uint32_t kind, const char *text, const char *serial,
                         bool read_only, vmlet_error *err)
{
    struct attached_device *a = &vm->devices[vm->ndevices - 1];
    struct snap_device *d = calloc(1, sizeof *d);
    if (!d)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    d->kind = kind;
    d->devfn = pci_func_devfn(virtio_pci_func(a->fn));
    d->read_only = read_only;
    if (text && (size_t)snprintf(d->text, sizeof d->text, "%s", text) >= sizeof d->text) {
        free(d);
        return set_error(err, VMLET_ERR_INVALID, "%s: '%.40s...' is too long", a->group, text);
    }
    if (serial)
        snprintf(d->serial, sizeof d->serial, "%s", serial); /* checked by virtio_blk_new */
    a->desc = d;
    return 0;
}

/* A balloon's record: its options in --balloon's syntax. */
static int describe_balloon(struct vmlet_vm *vm, const vmlet_config *c, vmlet_error *err)
{
    char spec[64];
    snprintf(spec, sizeof spec, "%s%sstats=%u",
             c->balloon_flags & VMLET_BALLOON_DEFLATE_ON_OOM ? "deflate-on-oom," : "",
             c->balloon_flags & VMLET_BALLOON_FREE_PAGE_REPORTING ? "free-page-reporting," : "",
             c->balloon_stats_s);
    return describe_last(vm, SNAP_DEV_BALLOON, spec, NULL, false, err);
}

/* A share's record: tag, NUL, absolute path (a restore may run in another
 * directory). A path too long for the record leaves the share without
 * one: the VM runs, and a save is refused naming it. */
static int describe_share(struct vmlet_vm *vm, const struct config_share *sh, vmlet_error *err)
{
    char *abs = realpath(sh->path, NULL);
    size_t tag = strlen(sh->tag);
    if (!abs || tag + 1 + strlen(abs) + 1 > SNAP_DEVICE_TEXT) {
        free(abs);
        return 0;
    }
    int rc = describe_last(vm, SNAP_DEV_FS, sh->tag, sh->cache_always ? "cache=always" : NULL,
                           sh->read_only, err);
    if (rc == 0)
        memcpy(vm->devices[vm->ndevices - 1].desc->text + tag + 1, abs, strlen(abs) + 1);
    free(abs);
    return rc;
}

/* "disk0", "net1": the metrics group of the index-th device of a kind. */
static const char *numbered(char buf[16], const char *kind, unsigned index)
{
    snprintf(buf, 16, "%s%u", kind, index);
    return buf;
}

/* Each inode the guest holds in a share, and each file it has open, is a
 * descriptor here: the limit goes up so that the shares' own caps
 * (docs/shared-directories.md) are what the guest meets. The hard limit
 * too where vmlet may (root: up to the kernel's fs.nr_open); otherwise
 * the soft limit up to the hard one. */
static void raise_fd_limit(unsigned nshares)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    rlim_t want = 1024 + (rlim_t)nshares * (FUSE_SERVER_MAX_INODES + FUSE_SERVER_MAX_HANDLES);
    const rlim_t tries[] = { want, 1048576 /* fs.nr_open's default */ };
    for (unsigned i = 0; i < 2 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want; i++) {
        struct rlimit more = { tries[i], tries[i] };
        if (tries[i] > rl.rlim_max && setrlimit(RLIMIT_NOFILE, &more) == 0)
            return; /* never lowers the hard limit */
    }
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The PCI host bridge and the virtio devices behind it, in slot order:
 * disks (so the guest names them vda, vdb, ... as given), console, rng,
 * NICs, so adding one moves no disk or NIC, then vsock, the balloon and
 * shares, whose slots no guest name depends on (shares are mounted by tag). */
int vm_setup_pci_devices(struct vmlet_vm *vm, const vmlet_config *c, vmlet_error *err)
{
    vm->pci = pci_host_new(GUEST_PCI_MMIO_START, GUEST_PCI_MMIO_SIZE);
    if (!vm->pci || pci_host_attach(vm->pci, &vm->pio, &vm->mmio, GUEST_PCI_ECAM_START) < 0)
        return set_error(err, VMLET_ERR_INTERNAL, "cannot set up the PCI host bridge");
    char group[16];
    for (unsigned i = 0; i < c->ndisks; i++) {
        const struct config_disk *d = &c->disks[i];
        struct virtio_blk *disk = virtio_blk_new(d->path, d->read_only, d->serial, err);
        if (attach_virtio(vm, virtio_blk_device(disk), numbered(group, "disk", i), err) < 0)
            return -1;
        /* By its absolute path: a restore may run in another directory. */
        char *abs = realpath(d->path, NULL);
        int rc = describe_last(vm, SNAP_DEV_DISK, abs ? abs : d->path, d->serial, d->read_only,
                               err);
        free(abs);
        if (rc < 0)
            return -1;
    }
    if (c->console == VMLET_CONSOLE_VIRTIO) {
        struct virtio_console *con = virtio_console_new(c->console_in, c->console_out, err);
        if (attach_virtio(vm, virtio_console_device(con), "console", err) < 0 ||
            describe_last(vm, SNAP_DEV_CONSOLE, NULL, NULL, false, err) < 0)
            return -1;
    }
    if (c->entropy && (attach_virtio(vm, virtio_rng_device(virtio_rng_new(err)), "rng", err) < 0 ||
                       describe_last(vm, SNAP_DEV_RNG, NULL, NULL, false, err) < 0))
        return -1;
    for (unsigned i = 0; i < c->nnets; i++) {
        struct virtio_net *nic = virtio_net_new_for_spec(&c->nets[i], i, err);
        if (attach_virtio(vm, virtio_net_device(nic), numbered(group, "net", i), err) < 0)
            return -1;
        uint8_t mac[6];
        char spec[SNAP_DEVICE_TEXT];
        net_spec_mac(&c->nets[i], i, mac);
        if (net_spec_format(&c->nets[i], mac, spec, sizeof spec) < 0 ||
            describe_last(vm, SNAP_DEV_NET, spec, NULL, false, err) < 0)
            return set_error(err, VMLET_ERR_INTERNAL, "%s: cannot describe it", group);
    }
    if (c->vsock_uds) {
        struct virtio_vsock *vs = virtio_vsock_new(c->vsock_cid, c->vsock_uds, err);
        char spec[SNAP_DEVICE_TEXT];
        if (attach_virtio(vm, virtio_vsock_device(vs), "vsock", err) < 0)
            return -1;
        snprintf(spec, sizeof spec, "cid=%llu,uds=%s", (unsigned long long)c->vsock_cid,
                 c->vsock_uds); /* the path is at most VMLET_VSOCK_MAX_PATH */
        if (describe_last(vm, SNAP_DEV_VSOCK, spec, NULL, false, err) < 0)
            return -1;
    }
    if (c->balloon) {
        struct virtio_balloon *b = virtio_balloon_new(c->balloon_flags, c->balloon_stats_s, err);
        if (attach_virtio(vm, virtio_balloon_device(b), "balloon", err) < 0)
            return -1;
        virtio_balloon_set_ram(b, vm->mem.size);
        if (describe_balloon(vm, c, err) < 0)
            return -1;
    }
    if (c->nshares)
        raise_fd_limit(c->nshares);
    for (unsigned i = 0; i < c->nshares; i++) {
        const struct config_share *sh = &c->shares[i];
        struct virtio_fs *fs = virtio_fs_new(sh->path, sh->tag, sh->read_only, err);
        if (fs)
            virtio_fs_set_cache_always(fs, sh->cache_always);
        if (attach_virtio(vm, virtio_fs_device(fs), numbered(group, "fs", i), err) < 0 ||
            describe_share(vm, sh, err) < 0)
            return -1;
    }
    return 0;
}

static int setup_acpi(struct vmlet_vm *vm, vmlet_error *err)
{
    uint8_t *tables = gpa_to_hva(&vm->mem, GUEST_ACPI_ADDR, GUEST_ACPI_SIZE);
    struct acpi_machine machine = { .ncpus = vm->ncpus, .pci = vm->pci != NULL, .vmgenid = true };
    if (!tables || acpi_build_tables(tables, GUEST_ACPI_ADDR, GUEST_ACPI_SIZE, &machine) < 0)
        return set_error(err, VMLET_ERR_INTERNAL, "cannot build the ACPI tables");
    return vm_new_generation(vm, false, err);
}

int vm_new_generation(struct vmlet_vm *vm, bool notify, vmlet_error *err)
{
    uint8_t *id = gpa_to_hva(&vm->mem, GUEST_VMGENID_ADDR, GUEST_VMGENID_SIZE);
    uint8_t fresh[GUEST_VMGENID_SIZE];
    if (!id)
        return set_error(err, VMLET_ERR_INTERNAL, "no guest memory for the VM generation ID");
    if (getrandom(fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh)
        return set_error(err, VMLET_ERR_HOST, "cannot make a VM generation ID: getrandom: %s",
                         strerror(errno));
    memcpy(id, fresh, sizeof fresh);
    if (notify) { /* an edge on the GED's pin: its _EVT notifies \_SB.VGEN */
        set_irq_line(vm, GSI_ACPI_GED, 1);
        set_irq_line(vm, GSI_ACPI_GED, 0);
    }
    return 0;
}

int vm_create_vcpus(struct vmlet_vm *vm, vmlet_error *err)
{
    struct kvm_cpuid2 *supported = x86_supported_cpuid(vm->kvm_fd);
    if (!supported)
        return set_error(err, VMLET_ERR_HOST, "KVM_GET_SUPPORTED_CPUID failed: %s",
                         strerror(errno));
    bool tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    int rc = -1;
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        v->vm = vm;
        v->index = i;
        v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
        if (v->fd < 0) {
            set_error(err, VMLET_ERR_HOST, "cannot create vCPU %u: %s", i, strerror(errno));
            goto out;
        }
        v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
        if (v->run == MAP_FAILED) {
            v->run = NULL;
            set_error(err, VMLET_ERR_HOST, "cannot map vCPU %u: %s", i, strerror(errno));
            goto out;
        }
        v->kvm_stats = kvm_stats_open(v->fd);
        if (x86_vcpu_init(v->fd, supported, i, vm->ncpus, tsc_deadline, err) < 0)
            goto out;
    }
    rc = 0;
out:
    free(supported);
    return rc;
}

struct vmlet_vm *vm_alloc(unsigned ncpus)
{
    struct vmlet_vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return NULL;
    vm->vcpus = calloc(ncpus, sizeof *vm->vcpus);
    if (!vm->vcpus) {
        free(vm);
        return NULL;
    }
    vm->ncpus = ncpus;
    vm->kvm_fd = vm->vm_fd = vm->event_fd = -1;
    for (unsigned i = 0; i < ncpus; i++)
        vm->vcpus[i].fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&vm->changed, &attr);
    pthread_cond_init(&vm->unpaused, NULL);
    pthread_condattr_destroy(&attr);
    return vm;
}

/* KVM and the VM with its in-kernel interrupt controllers and PIT, and
 * the state event fd. */
int vm_open_kvm(struct vmlet_vm *vm, const vmlet_config *c, vmlet_error *err)
{
    const char *kvm_path = c->kvm_device ? c->kvm_device : "/dev/kvm";
    vm->kvm_fd = open_kvm(kvm_path, err);
    if (vm->kvm_fd < 0 || check_kvm(vm, kvm_path, c->cpus, err) < 0)
        return -1;
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        set_error(err, VMLET_ERR_HOST, "cannot create a VM: %s", strerror(errno));
        return -1;
    }
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    uint64_t identity_map = KVM_IDENTITY_MAP_ADDR;
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 ||
        ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0 ||
        ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
        ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0 || !(vm->irq = kvm_irq_new(vm->vm_fd))) {
        set_error(err, VMLET_ERR_HOST, "cannot set up the VM's interrupt controllers: %s",
                  strerror(errno));
        return -1;
    }
    vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->event_fd < 0) {
        set_error(err, VMLET_ERR_HOST, "eventfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

VMLET_API int vmlet_vm_create(const vmlet_config *c, vmlet_vm **out, vmlet_error *err)
{
    *out = NULL;
    if (vmlet_config_validate(c, err) < 0)
        return -1;
    struct boot_plan plan;
    struct boot_loaded loaded;
    uint64_t load_start;
    if (boot_plan_linux(c->kernel, c->initrd, c->cmdline, c->memory, &plan, err) < 0)
        return -1;
    struct vmlet_vm *vm = vm_alloc(c->cpus);
    if (!vm)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    /* The serial port reads the console only when it is the console. */
    vm->console_in = c->console == VMLET_CONSOLE_SERIAL ? c->console_in : -1;
    vm->seccomp = c->seccomp;
    snprintf(vm->vcpu_name, sizeof vm->vcpu_name, "%s", c->vcpu_name ? c->vcpu_name : "vcpu");
    vm->shutdown_timeout = c->shutdown_timeout;

    /* 1. KVM and the VM with its in-kernel interrupt controllers and PIT. */
    if (vm_open_kvm(vm, c, err) < 0)
        goto fail;
    /* 2. Guest RAM. */
    if (guest_memory_alloc(&vm->mem, c->memory, err) < 0 || vm_register_memory(vm, err) < 0)
        goto fail;
    /* 3. Devices: legacy ones on I/O ports, virtio ones on PCI. */
    if (vm_setup_legacy_devices(vm, c->console_out, err) < 0 ||
        vm_setup_pci_devices(vm, c, err) < 0)
        goto fail;
    /* 4. Firmware tables: ACPI describes CPUs, power button, S5 and reset. */
    if (setup_acpi(vm, err) < 0)
        goto fail;
    /* 5. The kernel, initrd, command line and boot_params. */
    load_start = boottime_ns();
    if (boot_load_linux(&plan, c->kernel, c->initrd, c->cmdline, &vm->mem, GUEST_ACPI_ADDR, &loaded,
                        err) < 0)
        goto fail;
    vm->kernel_load_ns = boottime_ns() - load_start;
    vm->kernel_host_decompressed = loaded.host_decompressed;
    vm->kernel_kaslr = loaded.kaslr;
    /* How the kernel was loaded (and why not the faster way), for whoever
     * is looking at timings; tests/lab/kernel.sh checks the offset
     * against the guest's own /proc/kallsyms. */
    const char *debug = getenv("VMLET_TIMING");
    if (debug && !strcmp(debug, "1")) {
        if (loaded.host_decompressed)
            fprintf(stderr, "vmlet: kernel: %s payload decompressed by vmlet, KASLR %s 0x%llx\n",
                    kernel_compression_name(plan.payload_format),
                    loaded.kaslr ? "offset" : "off, offset",
                    (unsigned long long)loaded.virt_offset);
        if (loaded.note[0])
            fprintf(stderr, "vmlet: kernel: %s\n", loaded.note);
    }
    /* 6. vCPUs: CPUID topology, MSRs, LAPIC wiring, boot registers. */
    /* Only the boot vCPU gets a register state; the others wait in the
     * in-kernel LAPIC for the guest's INIT/SIPI. */
    if (vm_create_vcpus(vm, err) < 0 ||
        x86_vcpu_set_boot_registers(vm->vcpus[0].fd, loaded.entry, err) < 0)
        goto fail;

    vm_install_kick_handler();
    vm->state = VMLET_STATE_CREATED;
    *out = vm;
    return 0;
fail:
    vmlet_vm_free(vm);
    return -1;
}

/* ---- running and stopping -------------------------------------------- */

VMLET_API int vmlet_vm_start(vmlet_vm *vm, vmlet_error *err)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VMLET_STATE_CREATED) {
        pthread_mutex_unlock(&vm->lock);
        return set_error(err, VMLET_ERR_STATE, "the VM was already started");
    }
    /* The snapshot thread first, while the caller is not yet sandboxed. */
    if (snapshot_saver_start(vm, err) < 0) {
        pthread_mutex_unlock(&vm->lock);
        return -1;
    }
    vm->state = VMLET_STATE_STARTING;
    notify_state_locked(vm);
    /* Started paused: each vCPU parks before its first guest instruction. */
    if (vm->start_paused) {
        vm->state_before_pause = VMLET_STATE_RUNNING;
        atomic_store(&vm->pausing, true);
    }
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        /* The caller's signal mask: the kick signal must reach it. */
        vmlet_error start_err;
        if (sandbox_thread_start(&v->thread, vcpu_thread, v, &vcpu_rules, vm->seccomp, false,
                                 &start_err) != 0) {
            pthread_mutex_unlock(&vm->lock);
            vm_finish(vm, VMLET_STOP_ERROR, "cannot start a vCPU thread");
            pthread_mutex_lock(&vm->lock);
            if (vm->vcpus_running == 0) {
                vm->state = VMLET_STATE_ERROR;
                notify_state_locked(vm);
            }
            pthread_mutex_unlock(&vm->lock);
            if (err)
                *err = start_err;
            return -1;
        }
        v->started = true;
        vm->vcpus_running++;
    }
    if (vm->console_in >= 0)
        vm->serial_input = serial_input_start(vm->serial, vm->console_in, vm->seccomp);
    /* PAUSED only once every vCPU has parked, as after vmlet_vm_pause: a
     * save may read their state then. */
    while (vm->start_paused && vm->vcpus_parked < vm->vcpus_running && !atomic_load(&vm->stopping))
        pthread_cond_wait(&vm->changed, &vm->lock);
    if (vm->state == VMLET_STATE_STARTING) {
        vm->state = vm->start_paused ? VMLET_STATE_PAUSED : VMLET_STATE_RUNNING;
        notify_state_locked(vm);
    }
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

VMLET_API int vmlet_vm_request_stop(vmlet_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VMLET_STATE_RUNNING && vm->state != VMLET_STATE_STOPPING) {
        pthread_mutex_unlock(&vm->lock);
        return -1;
    }
    if (vm->state == VMLET_STATE_RUNNING) {
        vm->state = VMLET_STATE_STOPPING;
        notify_state_locked(vm);
    }
    pthread_mutex_unlock(&vm->lock);
    acpi_pm_press_power_button(vm->pm);
    return 0;
}

/* How long vmlet_vm_pause waits for the vCPUs to park (vmlet.h). */
#define PAUSE_TIMEOUT_MS 2000

VMLET_API int vmlet_vm_pause(vmlet_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VMLET_STATE_RUNNING && vm->state != VMLET_STATE_STOPPING) {
        int paused = vm->state == VMLET_STATE_PAUSED;
        pthread_mutex_unlock(&vm->lock);
        return paused ? 0 : -1;
    }
    vm->state_before_pause = vm->state;
    atomic_store(&vm->pausing, true);
    kick_vcpus_locked(vm);
    /* Return only once no vCPU runs guest code, or give up after
     * PAUSE_TIMEOUT_MS: a vCPU held inside a device (it should never be)
     * must not make the caller (the API's PATCH /vm) wait for ever. */
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += PAUSE_TIMEOUT_MS / 1000;
    deadline.tv_nsec += (PAUSE_TIMEOUT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (vm->vcpus_parked < vm->vcpus_running && !atomic_load(&vm->stopping)) {
        if (pthread_cond_timedwait(&vm->changed, &vm->lock, &deadline) == ETIMEDOUT &&
            vm->vcpus_parked < vm->vcpus_running && !atomic_load(&vm->stopping)) {
            /* Call the pause off: the parked vCPUs run again, the state
             * never left RUNNING/STOPPING. */
            atomic_store(&vm->pausing, false);
            pthread_cond_broadcast(&vm->unpaused);
            pthread_mutex_unlock(&vm->lock);
            return -1;
        }
    }
    if (!atomic_load(&vm->stopping)) {
        vm->state = VMLET_STATE_PAUSED;
        notify_state_locked(vm);
    }
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

VMLET_API int vmlet_vm_resume(vmlet_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VMLET_STATE_PAUSED) {
        int running = vm->state == VMLET_STATE_RUNNING;
        pthread_mutex_unlock(&vm->lock);
        return running ? 0 : -1;
    }
    atomic_store(&vm->pausing, false);
    vm->state = vm->state_before_pause;
    notify_state_locked(vm);
    pthread_cond_broadcast(&vm->unpaused);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

VMLET_API int vmlet_vm_stop(vmlet_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool never_started = vm->state == VMLET_STATE_CREATED;
    if (never_started) {
        vm->reason = VMLET_STOP_HOST;
        vm->state = VMLET_STATE_STOPPED;
        notify_state_locked(vm);
    }
    pthread_mutex_unlock(&vm->lock);
    if (!never_started)
        vm_finish(vm, VMLET_STOP_HOST, NULL);
    return 0;
}

VMLET_API vmlet_state vmlet_vm_state(vmlet_vm *vm)
{
    uint64_t v;
    if (read(vm->event_fd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing changed since the last call. */
    }
    pthread_mutex_lock(&vm->lock);
    vmlet_state s = vm->state;
    pthread_mutex_unlock(&vm->lock);
    return s;
}

VMLET_API const char *vmlet_vm_net_warning(vmlet_vm *vm, unsigned nic)
{
    for (unsigned i = 0; i < vm->ndevices; i++) {
        struct virtio_device *d = vm->devices[i].dev;
        if (d->ops.device_id == VIRTIO_ID_NET && nic-- == 0)
            return virtio_net_warning(virtio_net_of(d));
    }
    return NULL;
}

static struct virtio_balloon *find_balloon(vmlet_vm *vm)
{
    for (unsigned i = 0; i < vm->ndevices; i++) {
        struct virtio_balloon *b = virtio_balloon_of(vm->devices[i].dev);
        if (b)
            return b;
    }
    return NULL;
}

VMLET_API int vmlet_vm_set_balloon(vmlet_vm *vm, uint64_t bytes, vmlet_error *err)
{
    struct virtio_balloon *b = find_balloon(vm);
    if (!b)
        return set_error(err, VMLET_ERR_STATE, "balloon: this VM has no balloon (--balloon)");
    if (bytes > vm->mem.size)
        return set_error(err, VMLET_ERR_INVALID,
                         "balloon: a target of %llu MiB is more than the guest's %llu MiB of RAM",
                         (unsigned long long)(bytes >> 20),
                         (unsigned long long)(vm->mem.size >> 20));
    virtio_balloon_set_target(b, (uint32_t)(bytes >> VIRTIO_BALLOON_PFN_SHIFT));
    return 0;
}

VMLET_API int vmlet_vm_get_balloon(vmlet_vm *vm, vmlet_balloon_info *info, vmlet_error *err)
{
    struct virtio_balloon *b = find_balloon(vm);
    if (!b)
        return set_error(err, VMLET_ERR_STATE, "balloon: this VM has no balloon (--balloon)");
    virtio_balloon_get_info(b, info);
    return 0;
}

VMLET_API unsigned vmlet_vm_cpus(const vmlet_vm *vm)
{
    return vm->ncpus;
}

VMLET_API uint64_t vmlet_vm_memory(const vmlet_vm *vm)
{
    return vm->mem.size;
}

VMLET_API int vmlet_vm_event_fd(vmlet_vm *vm)
{
    return vm->event_fd;
}

static bool stopped_locked(const struct vmlet_vm *vm)
{
    return vm->state == VMLET_STATE_STOPPED || vm->state == VMLET_STATE_ERROR;
}

VMLET_API int vmlet_vm_wait_timeout(vmlet_vm *vm, vmlet_exit *exit, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&vm->lock);
    while (!stopped_locked(vm)) {
        if (timeout_ms < 0)
            pthread_cond_wait(&vm->changed, &vm->lock);
        else if (pthread_cond_timedwait(&vm->changed, &vm->lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool done = stopped_locked(vm);
    if (exit) {
        exit->reason = done ? vm->reason : VMLET_STOP_NONE;
        snprintf(exit->message, sizeof exit->message, "%s", done ? vm->message : "");
    }
    pthread_mutex_unlock(&vm->lock);
    return done ? 1 : 0;
}

VMLET_API int vmlet_vm_wait(vmlet_vm *vm, vmlet_exit *exit)
{
    vmlet_vm_wait_timeout(vm, exit, -1);
    return 0;
}

static void join_threads(struct vmlet_vm *vm)
{
    if (vm->joined)
        return;
    vm->joined = true;
    for (unsigned i = 0; i < vm->ncpus; i++)
        if (vm->vcpus[i].started)
            pthread_join(vm->vcpus[i].thread, NULL);
    serial_input_stop(vm->serial_input);
    vm->serial_input = NULL;
}

/* ---- metrics ------------------------------------------------------------ */

struct metric_ctx {
    vmlet_metric_fn fn;
    void *opaque;
    const char *group;
};

static void put_device_metric(void *opaque, const char *name, uint64_t value)
{
    struct metric_ctx *m = opaque;
    m->fn(m->opaque, m->group, name, value);
}

static void put_kvm_stat(void *opaque, const char *name, uint64_t value)
{
    struct metric_ctx *m = opaque;
    char full[128];
    snprintf(full, sizeof full, "kvm_%s", name);
    m->fn(m->opaque, m->group, full, value);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

VMLET_API int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque)
{
    char group[32];
    struct metric_ctx m = { fn, opaque, group };
    fn(opaque, "vm", "first_run_boottime_ns", load(&vm->first_run_ns));
    fn(opaque, "vm", "stop_boottime_ns", load(&vm->stop_ns));
    fn(opaque, "vm", "kernel_load_ns", vm->kernel_load_ns);
    fn(opaque, "vm", "kernel_host_decompressed", vm->kernel_host_decompressed);
    fn(opaque, "vm", "kernel_kaslr", vm->kernel_kaslr);
    for (unsigned i = 0; i < vm->ncpus; i++) {
        const struct vcpu *v = &vm->vcpus[i];
        snprintf(group, sizeof group, "vcpu%u", i);
        fn(opaque, group, "vmm_exits_io", load(&v->exits_io));
        fn(opaque, group, "vmm_exits_mmio", load(&v->exits_mmio));
        fn(opaque, group, "vmm_exits_intr", load(&v->exits_intr));
        fn(opaque, group, "vmm_exits_other", load(&v->exits_other));
        if (v->kvm_stats)
            kvm_stats_read(v->kvm_stats, put_kvm_stat, &m);
    }
    if (vm->serial) {
        uint64_t bytes, dropped;
        serial_get_tx_stats(vm->serial, &bytes, &dropped);
        fn(opaque, "serial", "tx_bytes", bytes);
        fn(opaque, "serial", "tx_dropped", dropped);
    }
    for (unsigned i = 0; i < vm->ndevices; i++) {
        const struct attached_device *a = &vm->devices[i];
        struct metric_ctx dm = { fn, opaque, a->group };
        a->dev->ops.metrics(a->dev, put_device_metric, &dm);
    }
    return 0;
}

VMLET_API void vmlet_vm_free(vmlet_vm *vm)
{
    if (!vm)
        return;
    bool started = false;
    for (unsigned i = 0; i < vm->ncpus; i++)
        started |= vm->vcpus[i].started;
    if (started) {
        vm_finish(vm, VMLET_STOP_HOST, NULL);
        join_threads(vm);
    }
    snapshot_saver_stop(vm);
    for (unsigned i = 0; i < vm->ncpus; i++) {
        if (vm->vcpus[i].run)
            munmap(vm->vcpus[i].run, vm->run_size);
        kvm_stats_free(vm->vcpus[i].kvm_stats);
        if (vm->vcpus[i].fd >= 0)
            close(vm->vcpus[i].fd);
    }
    /* Transports first: freeing one resets its device and stops its thread. */
    for (unsigned i = 0; i < vm->ndevices; i++) {
        struct attached_device *a = &vm->devices[i];
        if (a->fn)
            virtio_pci_free(a->fn);
        a->dev->ops.free(a->dev);
        free(a->desc);
    }
    if (vm->pci)
        pci_host_free(vm->pci);
    if (vm->irq)
        kvm_irq_free(vm->irq);
    if (vm->serial)
        serial_free(vm->serial);
    if (vm->pm)
        acpi_pm_free(vm->pm);
    if (vm->i8042)
        i8042_free(vm->i8042);
    bus_free(&vm->pio);
    bus_free(&vm->mmio);
    guest_memory_free(&vm->mem);
    int fds[] = { vm->vm_fd, vm->kvm_fd, vm->event_fd };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pthread_cond_destroy(&vm->changed);
    pthread_cond_destroy(&vm->unpaused);
    pthread_mutex_destroy(&vm->lock);
    free(vm->vcpus);
    free(vm);
}

/* ---- a disk's image swapped (vmlet_vm_set_disk_path) ----------------- */

/* The index-th disk, or NULL. */
static struct attached_device *find_disk(vmlet_vm *vm, unsigned index)
{
    for (unsigned i = 0; i < vm->ndevices; i++)
        if (vm->devices[i].dev->ops.device_id == VIRTIO_ID_BLOCK && index-- == 0)
            return &vm->devices[i];
    return NULL;
}

static unsigned count_disks(const vmlet_vm *vm)
{
    unsigned n = 0;
    for (unsigned i = 0; i < vm->ndevices; i++)
        n += vm->devices[i].dev->ops.device_id == VIRTIO_ID_BLOCK;
    return n;
}

VMLET_API int vmlet_vm_set_disk_path(vmlet_vm *vm, unsigned index, const char *path,
                                     vmlet_error *err)
{
    if (!path || !*path)
        return set_error(err, VMLET_ERR_INVALID, "disk %u: no path given", index);
    struct attached_device *a = find_disk(vm, index);
    if (!a)
        return set_error(err, VMLET_ERR_INVALID, "disk %u: the VM has %u disks", index,
                         count_disks(vm));
    /* By its absolute path, as at creation: what a snapshot records. */
    char *abs = realpath(path, NULL);
    const char *name = abs ? abs : path;
    if (strlen(name) >= SNAP_DEVICE_TEXT) {
        free(abs);
        return set_error(err, VMLET_ERR_INVALID, "disk %u: '%.40s...' is too long", index, path);
    }
    /* The VM lock keeps a save from recording the disk half swapped, and
     * the VM from ending meanwhile. */
    pthread_mutex_lock(&vm->lock);
    int rc;
    if (vm->state == VMLET_STATE_STOPPED || vm->state == VMLET_STATE_ERROR) {
        rc = set_error(err, VMLET_ERR_STATE, "disk %u: the VM has stopped", index);
    } else {
        rc = virtio_blk_set_path(virtio_blk_of(a->dev), path, err);
        if (rc == 0 && a->desc)
            snprintf(a->desc->text, sizeof a->desc->text, "%s", name);
    }
    pthread_mutex_unlock(&vm->lock);
    free(abs);
    return rc;
}

/* The directories of the VM's disks (a NULL-terminated array, freed by
 * free_dirs), where the control thread may open a disk's new image. */
static char **disk_dirs(const vmlet_vm *vm)
{
    char **dirs = calloc(count_disks(vm) + 1, sizeof *dirs);
    unsigned n = 0;
    for (unsigned i = 0; dirs && i < vm->ndevices; i++) {
        const struct attached_device *a = &vm->devices[i];
        if (a->dev->ops.device_id != VIRTIO_ID_BLOCK || !a->desc)
            continue;
        char *dir = strdup(a->desc->text);
        if (!dir)
            continue;
        char *slash = strrchr(dir, '/');
        if (!slash)
            snprintf(dir, strlen(dir) + 1, "."); /* a relative name, kept as given */
        else
            slash[slash == dir] = '\0'; /* "/img" -> "/" */
        dirs[n++] = dir;
    }
    return dirs;
}

static void free_dirs(char **dirs)
{
    for (char **d = dirs; d && *d; d++)
        free(*d);
    free(dirs);
}

VMLET_API int vmlet_vm_sandbox_this_thread(vmlet_vm *vm, vmlet_error *err)
{
    struct sandbox_rules rules = sandbox_control_rules;
    char **dirs = disk_dirs(vm);
    if (!dirs)
        return set_error(err, VMLET_ERR_NOMEM, "sandbox: out of memory");
    rules.disk_dirs = (const char *const *)dirs;
    int rc = sandbox_enter(&rules, vm->seccomp, err);
    free_dirs(dirs);
    return rc;
}
