/* Saving a paused VM to a snapshot directory and making a VM from one
 * (vmlet.h, docs/snapshot.md). The state file's format is
 * snapshot_format.c's; a vCPU's state is x86/vcpu_state.c's; each device
 * saves its own registers.
 *
 * Saving runs on a thread of its own (the "snapshot" thread, started with
 * the VM), because the thread that asks (the vmlet command's control
 * loop) is sandboxed so that it cannot create files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>

#include "vm_internal.h"
#include "config.h"
#include "error.h"
#include "sandbox.h"
#include "snapshot.h"
#include "snapshot_format.h"
#include "dev/acpi_pm.h"
#include "dev/i8042.h"
#include "dev/pci.h"
#include "dev/serial.h"
#include "netspec.h"
#include "virtio/device.h"
#include "virtio/pci.h"
#include "x86/vcpu.h"
#include "x86/vcpu_state.h"

#define PAGE      4096u
/* Memory is compared and written in runs of up to this many bytes. */
#define WRITE_RUN (1u << 20)

struct snapshot_saver {
    struct vmlet_vm *vm;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const char *dir;    /* the request; NULL when idle */
    const char *memory; /* with dir a state file's path: vmlet_vm_save_files */
    bool done, quit;
    int rc;
    vmlet_error err;
};

/* ---- writing files --------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t len, off_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    for (unsigned i = 0; i < PAGE / 8; i++)
        if (w[i])
            return false;
    return true;
}

/* Guest RAM as a sparse file: the file is sized first (all hole), then
 * only pages holding something other than zeros are written, so pages the
 * guest never touched (and pages it zeroed) take no space. Reading an
 * untouched page maps the shared zero page: the scan allocates nothing. */
static int write_memory(int fd, const struct guest_memory *m)
{
    if (ftruncate(fd, (off_t)m->size) < 0)
        return -1;
    uint64_t run_start = 0, run_len = 0;
    for (uint64_t off = 0; off < m->size; off += PAGE) {
        bool zero = page_is_zero(m->host + off);
        if (!zero && run_len && run_start + run_len == off && run_len < WRITE_RUN) {
            run_len += PAGE;
            continue;
        }
        if (run_len && write_all(fd, m->host + run_start, run_len, (off_t)run_start) < 0)
            return -1;
        run_len = 0;
        if (!zero) {
            run_start = off;
            run_len = PAGE;
        }
    }
    if (run_len && write_all(fd, m->host + run_start, run_len, (off_t)run_start) < 0)
        return -1;
    return fsync(fd);
}

/* ---- the state ------------------------------------------------------- */

static int save_state(struct vmlet_vm *vm, struct snap_writer *w, vmlet_error *err)
{
    bool virtio_console = false;
    for (unsigned i = 0; i < vm->ndevices; i++)
        virtio_console |= vm->devices[i].desc->kind == SNAP_DEV_CONSOLE;
    struct kvm_clock_data clock;
    memset(&clock, 0, sizeof clock);
    if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
        return set_error(err, VMLET_ERR_HOST, "KVM_GET_CLOCK failed: %s", strerror(errno));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct snap_config cfg = {
        .ncpus = vm->ncpus,
        .console = virtio_console ? VMLET_CONSOLE_VIRTIO : VMLET_CONSOLE_SERIAL,
        .memory = vm->mem.size,
        .shutdown_timeout = vm->shutdown_timeout,
        .ndevices = vm->ndevices,
        /* The host's time when the clock was read: KVM's own reading of
         * it (KVM_CLOCK_REALTIME, Linux 5.16+) is taken at the same
         * instant; ours a moment later. */
        .saved_realtime_ns = (clock.flags & KVM_CLOCK_REALTIME)
                                 ? (int64_t)clock.realtime
                                 : (int64_t)now.tv_sec * 1000000000 + now.tv_nsec,
        .tsc_khz = x86_vcpu_tsc_khz(vm->vcpus[0].fd),
    };
    snap_put(w, SNAP_CONFIG, 0, &cfg, sizeof cfg);
    for (unsigned i = 0; i < vm->ncpus; i++)
        if (x86_vcpu_save(vm->kvm_fd, vm->vm_fd, vm->vcpus[i].fd, i, w, err) < 0)
            return -1;
    for (unsigned chip = 0; chip < 3; chip++) {
        struct kvm_irqchip ic = { .chip_id = chip };
        if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
            return set_error(err, VMLET_ERR_HOST, "KVM_GET_IRQCHIP failed: %s", strerror(errno));
        snap_put(w, SNAP_IRQCHIP, chip, &ic, sizeof ic);
    }
    struct kvm_pit_state2 pit;
    if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
        return set_error(err, VMLET_ERR_HOST, "KVM_GET_PIT2 failed: %s", strerror(errno));
    snap_put(w, SNAP_PIT, 0, &pit, sizeof pit);
    snap_put(w, SNAP_CLOCK, 0, &clock, sizeof clock);

    struct serial_state ss;
    struct acpi_pm_state ps;
    struct i8042_state ks;
    struct pci_host_state hs;
    serial_save(vm->serial, &ss);
    acpi_pm_save(vm->pm, &ps);
    i8042_save(vm->i8042, &ks);
    pci_host_save(vm->pci, &hs);
    snap_put(w, SNAP_SERIAL, 0, &ss, sizeof ss);
    snap_put(w, SNAP_ACPI_PM, 0, &ps, sizeof ps);
    snap_put(w, SNAP_I8042, 0, &ks, sizeof ks);
    snap_put(w, SNAP_PCI_HOST, 0, &hs, sizeof hs);
    uint8_t *cfgspace = malloc(SNAP_PCI_CFG);
    if (!cfgspace)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    for (unsigned devfn = 0; devfn < SNAP_PCI_FUNCS; devfn++) {
        struct pci_func *f = pci_host_func(vm->pci, devfn);
        if (!f)
            continue;
        pci_func_save(f, cfgspace);
        snap_put(w, SNAP_PCI_FUNC, devfn, cfgspace, SNAP_PCI_CFG);
    }
    /* The virtio devices, stopped by save_to: what each is,
     * its transport, its own state. */
    struct virtio_pci_state *vps = (struct virtio_pci_state *)cfgspace;
    _Static_assert(sizeof *vps <= SNAP_PCI_CFG, "the scratch buffer holds a transport state");
    uint8_t *own = malloc(VIRTIO_STATE_MAX);
    for (unsigned i = 0; own && i < vm->ndevices; i++) {
        struct attached_device *a = &vm->devices[i];
        int len = a->dev->ops.save(a->dev, own, VIRTIO_STATE_MAX);
        if (len < 0 || len > VIRTIO_STATE_MAX) {
            free(own);
            free(cfgspace);
            return set_error(err, VMLET_ERR_INTERNAL, "snapshot: %s could not save its state",
                             a->group);
        }
        virtio_pci_save(a->fn, vps);
        snap_put(w, SNAP_DEVICE, i, a->desc, sizeof *a->desc);
        snap_put(w, SNAP_VIRTIO_PCI, i, vps, sizeof *vps);
        snap_put(w, SNAP_VIRTIO_STATE, i, own, (uint32_t)len);
    }
    free(cfgspace);
    if (!own)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    free(own);
    if (snap_finish(w) < 0)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory for the snapshot's state");
    return 0;
}

static void resume_devices(struct vmlet_vm *vm)
{
    for (unsigned i = 0; i < vm->ndevices; i++)
        (void)virtio_pci_resume(vm->devices[i].fn); /* a failure sets NEEDS_RESET */
}

/* Writes the snapshot's two files, relative to dfd, each made new
 * (O_EXCL); label names them in messages. On failure both are removed. */
static int save_files(struct vmlet_vm *vm, int dfd, const char *state, const char *memory,
                      const char *label, vmlet_error *err)
{
    struct snap_writer w;
    snap_writer_init(&w);
    int mfd = -1, sfd = -1, rc = -1;
    /* The devices stop first: a disk finishes its requests, which may
     * write guest memory and raise interrupts, before the vCPUs' and
     * interrupt controllers' state is read; they go on once guest memory
     * is on disk. */
    for (unsigned i = 0; i < vm->ndevices; i++)
        virtio_pci_quiesce(vm->devices[i].fn);
    bool quiesced = true;
    if (save_state(vm, &w, err) < 0)
        goto out;
    mfd = openat(dfd, memory, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (mfd < 0 || write_memory(mfd, &vm->mem) < 0) {
        set_error(err, VMLET_ERR_FILE, "snapshot: cannot write %s%s: %s", label, memory,
                  strerror(errno));
        goto out;
    }
    resume_devices(vm);
    quiesced = false;
    sfd = openat(dfd, state, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (sfd < 0 || write_all(sfd, w.buf, w.len, 0) < 0 || fsync(sfd) < 0) {
        set_error(err, VMLET_ERR_FILE, "snapshot: cannot write %s%s: %s", label, state,
                  strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (quiesced)
        resume_devices(vm);
    if (rc < 0) {
        if (mfd >= 0)
            unlinkat(dfd, memory, 0);
        if (sfd >= 0)
            unlinkat(dfd, state, 0);
    }
    if (sfd >= 0)
        close(sfd);
    if (mfd >= 0)
        close(mfd);
    snap_writer_free(&w);
    return rc;
}

/* Writes the snapshot into tmp (a new directory), then renames it to dir:
 * a save that fails leaves no directory under the name asked for. */
static int save_to(struct vmlet_vm *vm, const char *dir, vmlet_error *err)
{
    char tmp[PATH_MAX], label[PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dir) >= (int)sizeof tmp)
        return set_error(err, VMLET_ERR_INVALID, "snapshot: the path '%s' is too long", dir);
    snprintf(label, sizeof label, "%s/", tmp);
    struct stat st;
    if (lstat(dir, &st) == 0)
        return set_error(err, VMLET_ERR_FILE,
                         "snapshot: %s already exists; give a directory that does not", dir);
    if (mkdir(tmp, 0700) < 0)
        return set_error(err, VMLET_ERR_FILE,
                         errno == EEXIST ? "snapshot: cannot make %s: it exists (left by a save "
                                           "that was interrupted?); remove it"
                                         : "snapshot: cannot make %s: %s",
                         tmp, strerror(errno));
    int rc = -1;
    int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        set_error(err, VMLET_ERR_FILE, "snapshot: cannot open %s: %s", tmp, strerror(errno));
    } else if (save_files(vm, dfd, SNAP_STATE_FILE, SNAP_MEMORY_FILE, label, err) == 0) {
        if (fsync(dfd) == 0 && rename(tmp, dir) == 0) {
            rc = 0;
        } else {
            set_error(err, VMLET_ERR_FILE, "snapshot: cannot rename %s to %s: %s", tmp, dir,
                      strerror(errno));
            unlinkat(dfd, SNAP_MEMORY_FILE, 0);
            unlinkat(dfd, SNAP_STATE_FILE, 0);
        }
    }
    if (dfd >= 0)
        close(dfd);
    if (rc < 0)
        rmdir(tmp);
    return rc;
}

/* The two files at the caller's paths (Firecracker's snapshot_path and
 * mem_file_path): each written as PATH.tmp, then both renamed, so a
 * failed save leaves neither. */
static int save_to_files(struct vmlet_vm *vm, const char *state, const char *memory,
                         vmlet_error *err)
{
    char st_tmp[PATH_MAX], mem_tmp[PATH_MAX];
    if (snprintf(st_tmp, sizeof st_tmp, "%s.tmp", state) >= (int)sizeof st_tmp ||
        snprintf(mem_tmp, sizeof mem_tmp, "%s.tmp", memory) >= (int)sizeof mem_tmp)
        return set_error(err, VMLET_ERR_INVALID, "snapshot: a path is too long");
    if (!strcmp(state, memory))
        return set_error(err, VMLET_ERR_INVALID,
                         "snapshot: the state and memory files must be two paths, not %s twice",
                         state);
    const char *paths[] = { state, memory, st_tmp, mem_tmp };
    struct stat st;
    for (unsigned i = 0; i < 4; i++)
        if (lstat(paths[i], &st) == 0)
            return set_error(err, VMLET_ERR_FILE, "snapshot: %s already exists; %s", paths[i],
                             i < 2 ? "give a path that does not"
                                   : "left by a save that was interrupted? remove it");
    if (save_files(vm, AT_FDCWD, st_tmp, mem_tmp, "", err) < 0)
        return -1;
    if (rename(mem_tmp, memory) < 0 || rename(st_tmp, state) < 0) {
        set_error(err, VMLET_ERR_FILE, "snapshot: cannot rename %s and %s into place: %s", st_tmp,
                  mem_tmp, strerror(errno));
        unlinkat(AT_FDCWD, st_tmp, 0);
        unlinkat(AT_FDCWD, mem_tmp, 0);
        if (lstat(st_tmp, &st) < 0 && lstat(state, &st) < 0)
            unlinkat(AT_FDCWD, memory, 0); /* the memory file made it, the state did not */
        return -1;
    }
    return 0;
}

/* ---- the snapshot thread ---------------------------------------------- */

/* Files anywhere the caller names (no Landlock: the path is not known when
 * the thread starts), and the KVM reads of the state. It takes no input
 * from the guest. */
static const int saver_syscalls[] = {
    __NR_mkdir,     __NR_mkdirat,   __NR_rmdir,      __NR_rename, __NR_renameat,
    __NR_renameat2, __NR_unlinkat,  __NR_newfstatat, __NR_fstat,  __NR_lstat,
    __NR_fsync,     __NR_ftruncate, __NR_pwrite64,   __NR_lseek,
};
static const unsigned long saver_ioctls[] = {
    KVM_GET_REGS,
    KVM_GET_SREGS,
    KVM_GET_XSAVE,
    KVM_GET_XSAVE2,
    KVM_GET_XCRS,
    KVM_GET_LAPIC,
    KVM_GET_VCPU_EVENTS,
    KVM_GET_DEBUGREGS,
    KVM_GET_MP_STATE,
    KVM_GET_MSRS,
    KVM_GET_CPUID2,
    KVM_GET_MSR_INDEX_LIST,
    KVM_CHECK_EXTENSION,
    KVM_GET_IRQCHIP,
    KVM_GET_PIT2,
    KVM_GET_CLOCK,
    KVM_GET_TSC_KHZ,
    /* A TAP NIC's offloads, set again as its device resumes. */
    TUNSETOFFLOAD,
};
static const struct sandbox_rules saver_rules = {
    .kind = "snapshot",
    .syscalls = saver_syscalls,
    .nsyscalls = sizeof saver_syscalls / sizeof saver_syscalls[0],
    .ioctls = saver_ioctls,
    .nioctls = sizeof saver_ioctls / sizeof saver_ioctls[0],
    .files_anywhere = true,
};

static void *saver_thread(void *arg)
{
    struct snapshot_saver *s = arg;
    pthread_setname_np(pthread_self(), "snapshot");
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->dir && !s->quit)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->quit)
            break;
        const char *dir = s->dir, *memory = s->memory;
        pthread_mutex_unlock(&s->lock);
        vmlet_error err = { 0 };
        int rc = memory ? save_to_files(s->vm, dir, memory, &err) : save_to(s->vm, dir, &err);
        pthread_mutex_lock(&s->lock);
        s->rc = rc;
        s->err = err;
        s->dir = s->memory = NULL;
        s->done = true;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int snapshot_saver_start(struct vmlet_vm *vm, vmlet_error *err)
{
    struct snapshot_saver *s = calloc(1, sizeof *s);
    if (!s)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    s->vm = vm;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (sandbox_thread_start(&s->thread, saver_thread, s, &saver_rules, vm->seccomp, true, err) !=
        0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return -1;
    }
    vm->saver = s;
    return 0;
}

void snapshot_saver_stop(struct vmlet_vm *vm)
{
    struct snapshot_saver *s = vm->saver;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->quit = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    vm->saver = NULL;
}

/* A device's kind, by its metrics group ("disk0", "net1"), for the
 * refusal of one vmlet cannot save (a vsock device; a share whose path
 * is too long for its record). */
static const char *device_kind(const char *group)
{
    static const struct {
        const char *prefix, *kind;
    } kinds[] = {
        { "disk", "a virtio disk (--disk)" },
        { "net", "a virtio NIC (--net)" },
        { "vsock", "a vsock device (--vsock)" },
        { "fs", "a shared directory (--share)" },
        { "balloon", "a balloon (--balloon)" },
        { "rng", "a virtio-rng device (--rng)" },
        { "console", "a virtio console (--console virtio)" },
    };
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strncmp(group, kinds[i].prefix, strlen(kinds[i].prefix)))
            return kinds[i].kind;
    return "a virtio device";
}

/* The first device vmlet cannot save, or NULL. */
static const struct attached_device *unsaveable(const struct vmlet_vm *vm)
{
    for (unsigned i = 0; i < vm->ndevices; i++)
        if (!vm->devices[i].desc || !vm->devices[i].dev->ops.save || !vm->devices[i].fn)
            return &vm->devices[i];
    return NULL;
}

/* Hands a save to the snapshot thread and waits for it: dir, or the
 * state file's path with memory's. */
static int request_save(struct vmlet_vm *vm, const char *dir, const char *memory, vmlet_error *err)
{
    const struct attached_device *bad = unsaveable(vm);
    if (bad)
        return set_error(err, VMLET_ERR_STATE,
                         "snapshot: the VM has %s (%s), which vmlet cannot save yet; disks, "
                         "NICs, vsock, the virtio console, virtio-rng, shares and the balloon "
                         "can be",
                         device_kind(bad->group), bad->group);
    /* The VM lock is held throughout: nothing resumes the VM while its
     * state is read. */
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VMLET_STATE_PAUSED || !vm->saver) {
        pthread_mutex_unlock(&vm->lock);
        return set_error(err, VMLET_ERR_STATE, "snapshot: the VM must be paused to be saved");
    }
    struct snapshot_saver *s = vm->saver;
    pthread_mutex_lock(&s->lock);
    s->dir = dir;
    s->memory = memory;
    s->done = false;
    pthread_cond_broadcast(&s->cond);
    while (!s->done)
        pthread_cond_wait(&s->cond, &s->lock);
    int rc = s->rc;
    if (rc < 0 && err)
        *err = s->err;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

VMLET_API int vmlet_vm_save(vmlet_vm *vm, const char *dir, vmlet_error *err)
{
    if (!dir || !*dir)
        return set_error(err, VMLET_ERR_INVALID, "snapshot: no directory given");
    return request_save(vm, dir, NULL, err);
}

VMLET_API int vmlet_vm_save_files(vmlet_vm *vm, const char *state_path, const char *memory_path,
                                  vmlet_error *err)
{
    if (!state_path || !*state_path || !memory_path || !*memory_path)
        return set_error(err, VMLET_ERR_INVALID, "snapshot: give both the state and memory files");
    return request_save(vm, state_path, memory_path, err);
}

/* ---- restoring -------------------------------------------------------- */

struct vmlet_restore_options {
    int console_in, console_out;
    char *kvm_device;
    vmlet_seccomp_mode seccomp;
    bool start_paused;
    uint64_t vsock_cid;                      /* 0: the saved one */
    char *vsock_uds;                         /* NULL: the saved one */
    char *net[VMLET_MAX_NICS];               /* NULL: the saved NIC's spec */
    char *disk[VMLET_MAX_DISKS];             /* NULL: the saved image path */
    char vcpu_name[VMLET_VCPU_NAME_MAX + 1]; /* "": "vcpu" */
};

VMLET_API vmlet_restore_options *vmlet_restore_options_new(void)
{
    vmlet_restore_options *o = calloc(1, sizeof *o);
    if (o) {
        o->console_in = o->console_out = -1;
        o->seccomp = VMLET_SECCOMP_ON;
    }
    return o;
}

VMLET_API void vmlet_restore_options_free(vmlet_restore_options *o)
{
    if (!o)
        return;
    free(o->kvm_device);
    free(o->vsock_uds);
    for (unsigned i = 0; i < VMLET_MAX_NICS; i++)
        free(o->net[i]);
    for (unsigned i = 0; i < VMLET_MAX_DISKS; i++)
        free(o->disk[i]);
    free(o);
}

VMLET_API int vmlet_restore_options_set_start_paused(vmlet_restore_options *o, int paused)
{
    o->start_paused = paused != 0;
    return 0;
}

VMLET_API int vmlet_restore_options_set_vsock(vmlet_restore_options *o, uint64_t guest_cid,
                                              const char *uds_path)
{
    if (config_replace_string(&o->vsock_uds, uds_path) < 0)
        return -1;
    o->vsock_cid = guest_cid;
    return 0;
}

VMLET_API int vmlet_restore_options_set_net(vmlet_restore_options *o, unsigned index,
                                            const char *spec)
{
    if (index >= VMLET_MAX_NICS)
        return -1;
    return config_replace_string(&o->net[index], spec);
}

VMLET_API int vmlet_restore_options_set_vcpu_thread_name(vmlet_restore_options *o,
                                                         const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (prefix && (n == 0 || n >= sizeof o->vcpu_name))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (prefix[i] < 0x20 || prefix[i] > 0x7e)
            return -1;
    snprintf(o->vcpu_name, sizeof o->vcpu_name, "%s", prefix ? prefix : "");
    return 0;
}

VMLET_API int vmlet_restore_options_set_disk(vmlet_restore_options *o, unsigned index,
                                             const char *path)
{
    if (index >= VMLET_MAX_DISKS)
        return -1;
    return config_replace_string(&o->disk[index], path);
}

VMLET_API int vmlet_restore_options_set_console(vmlet_restore_options *o, int in_fd, int out_fd)
{
    o->console_in = in_fd;
    o->console_out = out_fd;
    return 0;
}

VMLET_API int vmlet_restore_options_set_kvm_device(vmlet_restore_options *o, const char *path)
{
    return config_replace_string(&o->kvm_device, path);
}

VMLET_API int vmlet_restore_options_set_seccomp(vmlet_restore_options *o, vmlet_seccomp_mode mode)
{
    if (mode != VMLET_SECCOMP_ON && mode != VMLET_SECCOMP_OFF && mode != VMLET_SECCOMP_LOG)
        return -1;
    o->seccomp = mode;
    return 0;
}

/* Where a restore finds the snapshot's two files: in a snapshot
 * directory (dfd; name is the directory) or at the caller's paths
 * (AT_FDCWD; name is the state file's path). */
struct snap_files {
    int dfd;
    const char *state, *memory; /* relative to dfd */
    int nofollow;               /* O_NOFOLLOW inside a snapshot directory */
    const char *name;           /* for messages: "snapshot NAME: ..." */
};

/* The state file, whole, into a buffer of its exact size. */
static uint8_t *read_state(const struct snap_files *f, size_t *len, vmlet_error *err)
{
    const char *dir = f->name;
    int fd = openat(f->dfd, f->state, O_RDONLY | O_CLOEXEC | f->nofollow);
    if (fd < 0) {
        set_error(err, VMLET_ERR_FILE, "snapshot %s: cannot open its %s file: %s", dir,
                  SNAP_STATE_FILE, strerror(errno));
        return NULL;
    }
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > SNAP_STATE_MAX ||
        st.st_size < SNAP_HEADER_SIZE) {
        set_error(err, VMLET_ERR_FILE,
                  "snapshot %s: its %s file is not a regular file of %u to %u bytes", dir,
                  SNAP_STATE_FILE, SNAP_HEADER_SIZE, SNAP_STATE_MAX);
        goto out;
    }
    *len = (size_t)st.st_size;
    buf = malloc(*len);
    if (!buf) {
        set_error(err, VMLET_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t got = 0;
    while (got < *len) {
        ssize_t n = read(fd, buf + got, *len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            set_error(err, VMLET_ERR_FILE, "snapshot %s: cannot read its %s file: %s", dir,
                      SNAP_STATE_FILE, n < 0 ? strerror(errno) : "it shrank");
            free(buf);
            buf = NULL;
            goto out;
        }
        got += (size_t)n;
    }
out:
    close(fd);
    return buf;
}

/* A NIC's record, or the restore's replacement for it (same --net
 * syntax). A replacement without mac= keeps the saved MAC; one with
 * another MAC is offered to the driver (net_load). */
static int config_net(vmlet_config *c, const char *saved, const char *override, unsigned index,
                      const char *dir, vmlet_error *err)
{
    struct net_spec was, spec;
    vmlet_error e;
    if (net_spec_parse(saved, &was, &e) < 0)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: NIC %u: %s", dir, index, e.message);
    if (!override) {
        config_add_net_spec(c, &was);
        return 0;
    }
    if (net_spec_parse(override, &spec, &e) < 0)
        return set_error(err, VMLET_ERR_INVALID, "restore: NIC %u: %s", index, e.message);
    if (!spec.has_mac) {
        spec.has_mac = true;
        net_spec_mac(&was, index, spec.mac);
    }
    config_add_net_spec(c, &spec);
    return 0;
}

/* A vsock record, "cid=N,uds=PATH", with the restore's CID and socket
 * path where it gives them; checked as vmlet_config_validate would. */
static int config_vsock(vmlet_config *c, const char *text, const vmlet_restore_options *o,
                        const char *dir, vmlet_error *err)
{
    char *end = NULL;
    unsigned long long cid = 0;
    if (!strncmp(text, "cid=", 4) && text[4] >= '0' && text[4] <= '9') {
        errno = 0;
        cid = strtoull(text + 4, &end, 10);
    }
    if (!end || errno || strncmp(end, ",uds=", 5))
        return set_error(err, VMLET_ERR_FILE,
                         "snapshot %s: a vsock record that is not "
                         "\"cid=N,uds=PATH\"",
                         dir);
    if (vmlet_config_set_vsock(c, o->vsock_cid ? o->vsock_cid : cid,
                               o->vsock_uds ? o->vsock_uds : end + 5) < 0)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    vmlet_error e;
    if (config_check_vsock(c, &e) < 0)
        return set_error(err, o->vsock_cid || o->vsock_uds ? VMLET_ERR_INVALID : VMLET_ERR_FILE,
                         "%s%s: %s", o->vsock_cid || o->vsock_uds ? "restore" : "snapshot ",
                         o->vsock_cid || o->vsock_uds ? "" : dir, e.message);
    return 0;
}

/* A balloon record (checked) into c: its options parsed as --balloon's. */
static int config_balloon(vmlet_config *c, const struct snap_device *d, unsigned nth,
                          const char *dir, unsigned i, vmlet_error *err)
{
    unsigned flags, stats;
    vmlet_error e;
    if (nth > 1)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: device %u: a second balloon", dir, i);
    if (vmlet_parse_balloon(d->text, &flags, &stats, &e) < 0)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: device %u: %s", dir, i, e.message);
    vmlet_config_set_balloon(c, 1, flags, stats);
    return 0;
}

/* A share record (checked: tag, NUL, absolute path) into c; its tag
 * unlike the others'. The directory is opened as the VM is made. */
static int config_share(vmlet_config *c, const struct snap_device *d, const char *dir, unsigned i,
                        vmlet_error *err)
{
    const char *tag = d->text, *path = d->text + strlen(d->text) + 1;
    for (unsigned k = 0; k < c->nshares; k++)
        if (!strcmp(c->shares[k].tag, tag))
            return set_error(err, VMLET_ERR_FILE,
                             "snapshot %s: device %u: a second shared directory tagged '%s'", dir,
                             i, tag);
    if (c->nshares == VMLET_MAX_SHARES)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: more than %d shared directories", dir,
                         VMLET_MAX_SHARES);
    unsigned flags = (d->read_only ? VMLET_SHARE_READONLY : 0) |
                     (d->serial[0] ? VMLET_SHARE_CACHE_ALWAYS : 0);
    if (vmlet_config_add_share(c, path, tag, flags) < 0)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    return 0;
}

/* The devices the snapshot describes, into the config the VM is made
 * from, in their saved order (vm_setup_pci_devices attaches them in the
 * same order), with the restore's replacements. Each record is checked;
 * a NIC's spec is parsed as the command line's would be. */
static int config_devices(vmlet_config *c, const struct snapshot *s, const vmlet_restore_options *o,
                          const char *dir, vmlet_error *err)
{
    unsigned consoles = 0, rngs = 0, vsocks = 0, balloons = 0;
    for (unsigned i = 0; i < s->config.ndevices; i++) {
        struct snap_device d;
        char why[256];
        if (s->device[i].len != sizeof d)
            return set_error(err, VMLET_ERR_FILE, "snapshot %s: device %u's record is cut", dir, i);
        memcpy(&d, s->device[i].data, sizeof d);
        if (snap_device_check(&d, why, sizeof why) < 0)
            return set_error(err, VMLET_ERR_FILE, "snapshot %s: device %u: %s", dir, i, why);
        int rc = 0;
        switch (d.kind) {
        case SNAP_DEV_DISK:
            rc = vmlet_config_add_disk(
                c, c->ndisks < VMLET_MAX_DISKS && o->disk[c->ndisks] ? o->disk[c->ndisks] : d.text,
                d.read_only ? VMLET_DISK_READONLY : 0, d.serial[0] ? d.serial : NULL);
            break;
        case SNAP_DEV_CONSOLE: consoles++; break;
        case SNAP_DEV_RNG:
            rngs++;
            vmlet_config_set_entropy(c, 1);
            break;
        case SNAP_DEV_NET:
            if (c->nnets == VMLET_MAX_NICS)
                return set_error(err, VMLET_ERR_FILE, "snapshot %s: more NICs than a VM can have",
                                 dir);
            if (config_net(c, d.text, o->net[c->nnets], c->nnets, dir, err) < 0)
                return -1;
            break;
        case SNAP_DEV_VSOCK:
            if (vsocks++ || config_vsock(c, d.text, o, dir, err) < 0)
                return vsocks > 1 ? set_error(err, VMLET_ERR_FILE,
                                              "snapshot %s: more than one vsock device", dir)
                                  : -1;
            break;
        case SNAP_DEV_BALLOON:
            if (config_balloon(c, &d, ++balloons, dir, i, err) < 0)
                return -1;
            break;
        case SNAP_DEV_FS:
            if (config_share(c, &d, dir, i, err) < 0)
                return -1;
            break;
        }
        if (rc < 0)
            return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    }
    for (unsigned i = c->nnets; i < VMLET_MAX_NICS; i++)
        if (o->net[i])
            return set_error(err, VMLET_ERR_INVALID,
                             "restore: a network given for NIC %u, but the snapshot's VM has %u "
                             "NIC%s",
                             i, c->nnets, c->nnets == 1 ? "" : "s");
    for (unsigned i = c->ndisks; i < VMLET_MAX_DISKS; i++)
        if (o->disk[i])
            return set_error(err, VMLET_ERR_INVALID,
                             "restore: an image given for disk %u, but the snapshot's VM has %u "
                             "disk%s",
                             i, c->ndisks, c->ndisks == 1 ? "" : "s");
    if (!vsocks && (o->vsock_cid || o->vsock_uds))
        return set_error(err, VMLET_ERR_INVALID,
                         "restore: vsock settings given, but the snapshot's VM has no vsock "
                         "device");
    if (consoles > 1 || rngs > 1 || c->too_many_disks)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: more devices than a VM can have", dir);
    if ((consoles == 1) != (s->config.console == VMLET_CONSOLE_VIRTIO) ||
        (s->config.console != VMLET_CONSOLE_VIRTIO && s->config.console != VMLET_CONSOLE_SERIAL))
        return set_error(err, VMLET_ERR_FILE,
                         "snapshot %s: its console kind does not match its "
                         "devices",
                         dir);
    vmlet_error e;
    if (net_specs_check(c->nets, c->nnets, &e) < 0)
        return set_error(err, VMLET_ERR_INVALID, "restore: %s", e.message);
    return 0;
}

/* The VM's devices are the snapshot's, in the same places. */
static int devices_match(const struct vmlet_vm *vm, const struct snapshot *s, const char *dir,
                         vmlet_error *err)
{
    if (vm->ndevices != s->config.ndevices)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: %u devices were made from %u records",
                         dir, vm->ndevices, s->config.ndevices);
    for (unsigned i = 0; i < vm->ndevices; i++) {
        struct snap_device d;
        memcpy(&d, s->device[i].data, sizeof d);
        const struct snap_device *now = vm->devices[i].desc;
        if (!now || now->kind != d.kind || now->devfn != d.devfn)
            return set_error(err, VMLET_ERR_FILE,
                             "snapshot %s: device %u (%s) is not where the snapshot had it", dir, i,
                             vm->devices[i].group);
    }
    return 0;
}

/* Each virtio device's own state, then its transport's (which checks
 * every field); the devices start later (start_devices). */
static int restore_virtio(struct vmlet_vm *vm, const struct snapshot *s, const char *dir,
                          vmlet_error *err)
{
    struct virtio_pci_state *st = malloc(sizeof *st);
    if (!st)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory");
    int rc = 0;
    for (unsigned i = 0; i < vm->ndevices && rc == 0; i++) {
        struct attached_device *a = &vm->devices[i];
        char why[512];
        memcpy(st, s->virtio_pci[i].data, sizeof *st);
        if (a->dev->ops.load(a->dev, s->virtio_state[i].data, s->virtio_state[i].len, why,
                             sizeof why) < 0 ||
            virtio_pci_restore(a->fn, st, why, sizeof why) < 0)
            rc = set_error(err, VMLET_ERR_FILE, "snapshot %s: %s: %s", dir, a->group, why);
    }
    free(st);
    return rc;
}

/* Once the vCPUs and interrupt controllers are back, so that no
 * interrupt a device sends as it starts is lost. */
static int start_devices(struct vmlet_vm *vm, const char *dir, vmlet_error *err)
{
    for (unsigned i = 0; i < vm->ndevices; i++)
        if (virtio_pci_resume(vm->devices[i].fn) < 0)
            return set_error(err, VMLET_ERR_HOST, "snapshot %s: %s would not start again", dir,
                             vm->devices[i].group);
    return 0;
}

/* The saved in-kernel interrupt controllers and PIT. The devices raised
 * their lines first; SET_IRQCHIP then puts back the controllers' view. */
static int restore_vm_devices(struct vmlet_vm *vm, const struct snapshot *s, const char *dir,
                              vmlet_error *err)
{
    struct serial_state ss;
    struct acpi_pm_state ps;
    struct i8042_state ks;
    struct pci_host_state hs;
    memcpy(&ss, s->serial.data, sizeof ss);
    memcpy(&ps, s->acpi_pm.data, sizeof ps);
    memcpy(&ks, s->i8042.data, sizeof ks);
    memcpy(&hs, s->pci_host.data, sizeof hs);
    const char *bad = serial_restore(vm->serial, &ss) < 0  ? "serial port"
                      : acpi_pm_restore(vm->pm, &ps) < 0   ? "ACPI PM"
                      : i8042_restore(vm->i8042, &ks) < 0  ? "i8042"
                      : pci_host_restore(vm->pci, &hs) < 0 ? "PCI host bridge"
                                                           : NULL;
    for (unsigned devfn = 0; devfn < SNAP_PCI_FUNCS && !bad; devfn++) {
        struct pci_func *f = pci_host_func(vm->pci, devfn);
        if (!f != !s->pci_func[devfn].data)
            bad = "PCI function list";
        else if (f && pci_func_restore(f, s->pci_func[devfn].data) < 0)
            bad = "PCI function";
    }
    if (bad)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: its %s state is not one vmlet makes",
                         dir, bad);
    if (restore_virtio(vm, s, dir, err) < 0)
        return -1;
    for (unsigned chip = 0; chip < 3; chip++) {
        struct kvm_irqchip ic;
        memcpy(&ic, s->irqchip[chip].data, sizeof ic);
        if (ic.chip_id != chip)
            return set_error(err, VMLET_ERR_FILE, "snapshot %s: irqchip %u is labelled %u", dir,
                             chip, ic.chip_id);
        if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic) < 0)
            return set_error(err, VMLET_ERR_FILE, "snapshot %s: KVM refuses irqchip %u: %s", dir,
                             chip, strerror(errno));
    }
    struct kvm_pit_state2 pit;
    memcpy(&pit, s->pit.data, sizeof pit);
    if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: KVM refuses the PIT state: %s", dir,
                         strerror(errno));
    return 0;
}

static int64_t realtime_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* Everything after the VM's memory and devices exist: the vCPUs, then the
 * clock. The guest's clocks go on as if it had been paused from the save
 * until now: kvmclock and the TSC move on by the host's real time that
 * passed (none if the host clock went back). */
static int restore_cpus_and_clock(struct vmlet_vm *vm, const struct snapshot *s, const char *dir,
                                  vmlet_error *err)
{
    if (vm_create_vcpus(vm, err) < 0)
        return -1;
    int64_t elapsed = realtime_ns() - s->config.saved_realtime_ns;
    if (elapsed < 0)
        elapsed = 0;
    uint64_t khz = x86_vcpu_tsc_khz(vm->vcpus[0].fd);
    if (s->config.tsc_khz && khz && s->config.tsc_khz != khz)
        return set_error(err, VMLET_ERR_HOST,
                         "snapshot %s: it was saved with a TSC of %llu kHz, this host's is %llu "
                         "kHz; restore it on a host with the same CPU",
                         dir, (unsigned long long)s->config.tsc_khz, (unsigned long long)khz);
    uint64_t tsc_advance = (uint64_t)((unsigned __int128)elapsed * khz / 1000000);
    for (unsigned i = 0; i < vm->ncpus; i++) {
        vmlet_error e;
        if (x86_vcpu_restore(vm->vm_fd, vm->vcpus[i].fd, i, s->vcpus[i], tsc_advance, &e) < 0)
            return set_error(err, e.code, "snapshot %s: %s", dir, e.message);
    }
    struct kvm_clock_data saved, clock;
    memcpy(&saved, s->clock.data, sizeof saved);
    memset(&clock, 0, sizeof clock);
    int64_t gap = realtime_ns() - s->config.saved_realtime_ns;
    clock.clock = saved.clock + (uint64_t)(gap > 0 ? gap : 0);
    if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
        return set_error(err, VMLET_ERR_HOST, "snapshot %s: KVM_SET_CLOCK failed: %s", dir,
                         strerror(errno));
    /* The guest was stopped: no soft-lockup reports for the time it lost
     * (best effort; only once the guest's kvmclock is set up). */
    for (unsigned i = 0; i < vm->ncpus; i++)
        ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0);
    return 0;
}

static int restore(const struct snap_files *f, const vmlet_restore_options *o, vmlet_vm **out,
                   vmlet_error *err)
{
    *out = NULL;
    vmlet_restore_options defaults = { .console_in = -1,
                                       .console_out = -1,
                                       .seccomp = VMLET_SECCOMP_ON };
    if (!o)
        o = &defaults;
    const char *dir = f->name;
    size_t len = 0;
    struct snapshot s;
    memset(&s, 0, sizeof s);
    struct vmlet_vm *vm = NULL;
    vmlet_config *c = NULL;
    int mfd = -1, rc = -1;
    uint8_t *buf = read_state(f, &len, err);
    if (!buf)
        goto out;
    char why[256];
    uint32_t version;
    if (snap_parse(buf, len, &s, &version, why, sizeof why) < 0) {
        set_error(err, VMLET_ERR_FILE, "snapshot %s: %s", dir, why);
        goto out;
    }
    mfd = openat(f->dfd, f->memory, O_RDONLY | O_CLOEXEC | f->nofollow);
    struct stat st;
    if (mfd < 0 || fstat(mfd, &st) < 0) {
        set_error(err, VMLET_ERR_FILE, "snapshot %s: cannot open its %s file: %s", dir,
                  SNAP_MEMORY_FILE, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != s.config.memory) {
        set_error(err, VMLET_ERR_FILE,
                  "snapshot %s: its %s file has %llu bytes, but the VM had %llu of RAM", dir,
                  SNAP_MEMORY_FILE, (unsigned long long)st.st_size,
                  (unsigned long long)s.config.memory);
        goto out;
    }
    /* What the VM is made of: the snapshot's sizes, the caller's host
     * side (console descriptors, KVM device, sandbox). */
    c = vmlet_config_new();
    if (!c || vmlet_config_set_kvm_device(c, o->kvm_device ? o->kvm_device : "/dev/kvm") < 0) {
        set_error(err, VMLET_ERR_NOMEM, "out of memory");
        goto out;
    }
    c->cpus = s.config.ncpus;
    c->memory = s.config.memory;
    c->seccomp = o->seccomp;
    if (config_devices(c, &s, o, dir, err) < 0)
        goto out;
    c->console = (vmlet_console_kind)s.config.console;
    c->console_in = o->console_in;
    c->console_out = o->console_out;
    vm = vm_alloc(s.config.ncpus);
    if (!vm) {
        set_error(err, VMLET_ERR_NOMEM, "out of memory");
        goto out;
    }
    vm->console_in = c->console == VMLET_CONSOLE_SERIAL ? o->console_in : -1;
    vm->seccomp = o->seccomp;
    snprintf(vm->vcpu_name, sizeof vm->vcpu_name, "%s", o->vcpu_name[0] ? o->vcpu_name : "vcpu");
    vm->shutdown_timeout = s.config.shutdown_timeout;
    vm->start_paused = o->start_paused;
    if (vm_open_kvm(vm, c, err) < 0 ||
        guest_memory_map_file(&vm->mem, s.config.memory, mfd, err) < 0 ||
        vm_register_memory(vm, err) < 0 || vm_setup_legacy_devices(vm, o->console_out, err) < 0 ||
        vm_setup_pci_devices(vm, c, err) < 0 || devices_match(vm, &s, dir, err) < 0 ||
        restore_vm_devices(vm, &s, dir, err) < 0 || restore_cpus_and_clock(vm, &s, dir, err) < 0 ||
        vm_new_generation(vm, true, err) < 0 || start_devices(vm, dir, err) < 0)
        goto out;
    vm_install_kick_handler();
    vm->state = VMLET_STATE_CREATED;
    *out = vm;
    vm = NULL;
    rc = 0;
out:
    vmlet_vm_free(vm);
    vmlet_config_free(c);
    snap_free(&s);
    free(buf);
    if (mfd >= 0)
        close(mfd); /* the mapping keeps the file */
    return rc;
}

VMLET_API int vmlet_vm_restore(const char *dir, const vmlet_restore_options *o, vmlet_vm **out,
                               vmlet_error *err)
{
    *out = NULL;
    if (!dir || !*dir)
        return set_error(err, VMLET_ERR_INVALID, "restore: no snapshot directory given");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return set_error(err, VMLET_ERR_FILE, "snapshot %s: cannot open it: %s", dir,
                         strerror(errno));
    struct snap_files f = { dfd, SNAP_STATE_FILE, SNAP_MEMORY_FILE, O_NOFOLLOW, dir };
    int rc = restore(&f, o, out, err);
    close(dfd);
    return rc;
}

VMLET_API int vmlet_vm_restore_files(const char *state_path, const char *memory_path,
                                     const vmlet_restore_options *o, vmlet_vm **out,
                                     vmlet_error *err)
{
    *out = NULL;
    if (!state_path || !*state_path || !memory_path || !*memory_path)
        return set_error(err, VMLET_ERR_INVALID, "restore: give both the state and memory files");
    struct snap_files f = { AT_FDCWD, state_path, memory_path, 0, state_path };
    return restore(&f, o, out, err);
}
