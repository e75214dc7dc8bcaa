/* The seccomp sandbox (sandbox.h, docs/sandbox.md), with libseccomp.
 *
 * A filter is per thread: each of vmlet's threads loads its own (no
 * TSYNC), so a vCPU thread cannot do what a disk thread may and the
 * application's own threads are left alone. A thread inherits the filter
 * of the thread that created it, which is why every vmlet thread is
 * created before the guest runs and enters the sandbox itself. */
#include "sandbox.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/kvm.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <signal.h>
#include <ucontext.h>
#include <linux/if_tun.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "error.h"
#include "thread.h"

/* What every vmlet thread does: memory (malloc, thread stacks), locks,
 * eventfd and pipe reads/writes, poll, sleeping, clocks, signals to its
 * own threads (vCPU kicks, abort), and ending. mmap and mprotect are
 * further limited below (never executable). */
static const int common_syscalls[] = {
    __NR_read,
    __NR_write,
    __NR_readv,
    __NR_writev,
    __NR_close,
    __NR_poll,
    __NR_ppoll,
    __NR_epoll_wait,
    __NR_epoll_pwait,
    __NR_epoll_ctl,
    __NR_futex,
    __NR_nanosleep,
    __NR_clock_nanosleep,
    __NR_clock_gettime,
    __NR_gettimeofday,
    __NR_sched_yield,
    __NR_madvise,
    __NR_munmap,
    __NR_mremap,
    __NR_brk,
    __NR_getpid,
    __NR_gettid,
    __NR_tgkill,
    __NR_rt_sigprocmask,
    __NR_rt_sigreturn,
    __NR_restart_syscall,
    __NR_exit,
    __NR_exit_group,
    __NR_rseq,
    __NR_set_robust_list,
    __NR_getrandom,
    __NR_sigaltstack, /* the sanitizers' runtime, as a thread ends */
    /* Taking a SIGPIPE a console write caused (outfd.c). */
    __NR_rt_sigpending,
    __NR_rt_sigtimedwait,
};

/* Raising a legacy interrupt line (the UART's, a virtio device's INTx):
 * every device and console thread may. */
static const unsigned long common_ioctls[] = { KVM_IRQ_LINE };

/* The thread that drives a VM through the public API: the control
 * socket (cli/api.c), signals as a signalfd, the terminal put back, the
 * socket file removed at exit; stopping and freeing the VM joins threads,
 * closes and unmaps everything; metrics read the KVM statistics fds. */
static const int control_syscalls[] = {
    __NR_accept4,        __NR_recvfrom,   __NR_sendto,  __NR_shutdown, __NR_fcntl,
    __NR_unlink,         __NR_newfstatat, __NR_fstat,   __NR_lseek,    __NR_pread64,
    __NR_io_uring_enter, __NR_sendmsg,    __NR_recvmsg,
};
/* The terminal's settings; freeing the VM's devices takes their
 * interrupt routes and notify eventfds back from KVM. */
static const unsigned long control_ioctls[] = {
    TCGETS,        TCSETS,    TCSETSW,       TCSETSF,
    FIONREAD,      KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING,
    TUNSETOFFLOAD,
};
const struct sandbox_rules sandbox_control_rules = {
    .kind = "control",
    .syscalls = control_syscalls,
    .nsyscalls = sizeof control_syscalls / sizeof control_syscalls[0],
    .ioctls = control_ioctls,
    .nioctls = sizeof control_ioctls / sizeof control_ioctls[0],
    .may_remove_files = true, /* the control socket, at exit */
};

/* ---- reporting a violation ------------------------------------------- */

/* Names of system calls by number, resolved before any filter is loaded
 * (the SIGSYS handler may only make the calls every filter allows). */
#define MAX_SYSCALL 512
static const char *syscall_names[MAX_SYSCALL];
static pthread_once_t prepare_once = PTHREAD_ONCE_INIT;
static _Thread_local const char *thread_kind;
/* The process's exit status after a violation (vmlet_set_sandbox_exit_status). */
static volatile sig_atomic_t violation_status = 128 + SIGSYS;

static void append(char *buf, size_t *len, size_t cap, const char *s)
{
    while (*s && *len + 1 < cap)
        buf[(*len)++] = *s++;
}

static void append_number(char *buf, size_t *len, size_t cap, long v)
{
    char digits[24];
    int n = 0;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && n < (int)sizeof digits);
    if (v < 0)
        append(buf, len, cap, "-");
    while (n > 0 && *len + 1 < cap)
        buf[(*len)++] = digits[--n];
}

/* SIGSYS from SECCOMP_RET_TRAP: one line, then the process ends (status
 * 128 + SIGSYS by default, as a shell shows a death by that signal). Only
 * async-signal-safe work, and only write and exit_group. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    char line[256];
    size_t len = 0;
    long nr = si->si_syscall;
    append(line, &len, sizeof line, "vmlet: sandbox: the ");
    append(line, &len, sizeof line, thread_kind ? thread_kind : "?");
    append(line, &len, sizeof line, " thread made a system call outside its allowlist: ");
    append(line, &len, sizeof line,
           nr >= 0 && nr < MAX_SYSCALL && syscall_names[nr] ? syscall_names[nr] : "syscall");
    append(line, &len, sizeof line, " (");
    append_number(line, &len, sizeof line, nr);
    if (nr == __NR_ioctl) { /* which request: the second argument */
        append(line, &len, sizeof line, ", request ");
        append_number(line, &len, sizeof line,
                      (long)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RSI]);
    }
    append(line, &len, sizeof line,
           "); stopping vmlet. This is a bug in vmlet or an attack from the guest; "
           "please report it (--seccomp off runs without the sandbox)\n");
    ssize_t unused = write(STDERR_FILENO, line, len);
    (void)unused;
    syscall(__NR_exit_group, (int)violation_status);
}

VMLET_API int vmlet_set_sandbox_exit_status(int status)
{
    if (status < 1 || status > 255)
        return -1;
    violation_status = status;
    return 0;
}

static void prepare(void)
{
    /* glibc reads /proc/sys/vm/overcommit_memory (an openat) the first
     * time any thread's malloc heap shrinks, so a sandboxed thread freeing
     * big buffers would be stopped for it. With a trim threshold no heap
     * reaches, heaps never shrink: freed memory is kept for reuse, and
     * blocks at or above the mmap threshold (128 KiB, now fixed) still go
     * back to the system when freed. Process-wide, once. */
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    for (int nr = 0; nr < MAX_SYSCALL; nr++)
        syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSYS, &sa, NULL);
}

/* ---- building and loading a filter ----------------------------------- */

/* Drops every capability but those in keep (bit n: capability n) that
 * the thread has now: nothing can be gained here, only kept. */
static int drop_capabilities(uint64_t keep)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (keep && syscall(__NR_capget, &hdr, data) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        uint32_t k = (uint32_t)(keep >> (32 * i));
        data[i].permitted &= k;
        data[i].effective = data[i].permitted;
        data[i].inheritable = 0;
    }
    return (int)syscall(__NR_capset, &hdr, data);
}

/* Landlock (Linux 5.13+): the thread may open no file at all, except
 * rules->read_paths for reading and anything beneath rules->share_fd.
 * Without Landlock (an older kernel, or not among the kernel's LSMs) this
 * does nothing: seccomp alone then keeps every thread but the network
 * and share threads from opening files, and the network one to reading.
 * Returns 0, or -1 with errno. */
static int restrict_files(const struct sandbox_rules *r)
{
    if (r->files_anywhere)
        return 0;
    int abi = (int)syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1)
        return 0;
    uint64_t handled = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: all 13 rights */
    if (abi >= 2)
        handled |= LANDLOCK_ACCESS_FS_REFER;
    if (r->may_remove_files)
        handled &= ~(uint64_t)LANDLOCK_ACCESS_FS_REMOVE_FILE;
    struct landlock_ruleset_attr attr = { .handled_access_fs = handled };
    int rs = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (rs < 0)
        return -1;
    for (const char *const *path = r->read_paths; path && *path; path++) {
        int fd = open(*path, O_PATH | O_CLOEXEC);
        if (fd < 0)
            continue; /* nothing there now: nothing to read later either */
        struct landlock_path_beneath_attr beneath = {
            .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE,
            .parent_fd = fd,
        };
        syscall(__NR_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0);
        close(fd);
    }
    for (const char *const *dir = r->disk_dirs; dir && *dir; dir++) {
        int fd = open(*dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            continue; /* gone: no image can be opened there either */
        struct landlock_path_beneath_attr beneath = {
            .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE,
            .parent_fd = fd,
        };
        syscall(__NR_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0);
        close(fd);
    }
    if (r->has_share) {
        uint64_t reading = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
        struct landlock_path_beneath_attr beneath = {
            .allowed_access = r->share_read_only ? reading : handled,
            .parent_fd = r->share_fd,
        };
        if (syscall(__NR_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) < 0) {
            int e = errno; /* without the rule the share could not be served */
            close(rs);
            errno = e;
            return -1;
        }
    }
    int rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
                 ? -1
                 : (int)syscall(__NR_landlock_restrict_self, rs, 0);
    int e = errno;
    close(rs);
    errno = e;
    return rc;
}

static int allow(scmp_filter_ctx ctx, int nr)
{
    return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

/* rules->disk_dirs: opening an existing image, read-only or read-write
 * (never made or truncated), locking it, a block device's size, and
 * realpath() for the name a snapshot records. Which files is Landlock's
 * part (restrict_files). */
static int allow_disk_opening(scmp_filter_ctx ctx)
{
    const unsigned long mask = O_ACCMODE | O_CREAT | O_TRUNC;
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, mask, O_RDONLY));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, mask, O_RDWR));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_EQ, BLKGETSIZE64, 0));
    static const int calls[] = { __NR_flock, __NR_readlink, __NR_readlinkat, __NR_getcwd };
    for (size_t i = 0; rc == 0 && i < sizeof calls / sizeof calls[0]; i++)
        rc = allow(ctx, calls[i]);
    return rc;
}

static int build(scmp_filter_ctx ctx, const struct sandbox_rules *r)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof common_syscalls / sizeof common_syscalls[0]; i++)
        rc = allow(ctx, common_syscalls[i]);
    for (size_t i = 0; rc == 0 && i < r->nsyscalls; i++)
        rc = allow(ctx, r->syscalls[i]);
    /* Memory, but never executable: no new code in a vmlet thread. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* pthread_setname_np on itself; nothing else of prctl. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME, 0));
    for (size_t i = 0; rc == 0 && i < sizeof common_ioctls / sizeof common_ioctls[0]; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_EQ, common_ioctls[i], 0));
    for (size_t i = 0; rc == 0 && i < r->nioctls; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_EQ, r->ioctls[i], 0));
    if (rc == 0 && r->open_read_only)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT, O_RDONLY));
    if (rc == 0 && r->files_anywhere)
        rc = allow(ctx, SCMP_SYS(openat));
    if (rc == 0 && r->disk_dirs && r->disk_dirs[0])
        rc = allow_disk_opening(ctx);
    if (rc == 0 && r->sockets)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_EQ, AF_INET, 0));
    if (rc == 0 && r->sockets)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_EQ, AF_INET6, 0));
    if (rc == 0 && r->unix_sockets)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
    return rc;
}

int sandbox_enter(const struct sandbox_rules *r, vmlet_seccomp_mode mode, vmlet_error *err)
{
    if (mode == VMLET_SECCOMP_OFF)
        return 0;
    pthread_once(&prepare_once, prepare);
    if (drop_capabilities(r->keep_caps) < 0)
        return set_error(err, VMLET_ERR_HOST, "sandbox: cannot drop capabilities: %s",
                         strerror(errno));
    if (restrict_files(r) < 0)
        return set_error(err, VMLET_ERR_HOST, "sandbox: cannot limit the %s thread's files: %s",
                         r->kind, strerror(errno));
    scmp_filter_ctx ctx = seccomp_init(mode == VMLET_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
    if (!ctx)
        return set_error(err, VMLET_ERR_NOMEM, "sandbox: out of memory");
    int rc = build(ctx, r);
    if (rc < 0) {
        seccomp_release(ctx);
        return set_error(err, VMLET_ERR_HOST, "sandbox: cannot build the %s thread's filter: %s",
                         r->kind, strerror(-rc));
    }
    /* A trap with SIGSYS blocked kills without a word: device threads
     * block every other signal, never this one. */
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
    /* libseccomp sets no_new_privs before loading (SCMP_FLTATR_CTL_NNP). */
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        return set_error(err, VMLET_ERR_HOST,
                         "sandbox: this kernel refused the seccomp filter (%s); "
                         "run with --seccomp off (vmlet_config_set_seccomp) to go without it",
                         strerror(-rc));
    thread_kind = r->kind;
    return 0;
}

/* ---- threads that start inside the sandbox --------------------------- */

struct start {
    void *(*fn)(void *);
    void *arg;
    const struct sandbox_rules *rules;
    vmlet_seccomp_mode mode;
    pthread_mutex_t lock;
    pthread_cond_t done;
    int state; /* 0 starting, 1 entered, -1 failed */
    vmlet_error err;
};

static void *trampoline(void *p)
{
    struct start *s = p;
    void *(*fn)(void *) = s->fn;
    void *arg = s->arg;
    vmlet_error err = { 0 };
    /* Named for its kind from the start (a device's worker waits, maybe
     * for ever, for a driver that never comes). */
    if (s->rules)
        pthread_setname_np(pthread_self(), s->rules->kind);
    int ok = s->rules ? sandbox_enter(s->rules, s->mode, &err) : 0;
    pthread_mutex_lock(&s->lock);
    s->state = ok == 0 ? 1 : -1;
    s->err = err;
    pthread_cond_signal(&s->done);
    pthread_mutex_unlock(&s->lock);
    /* s belongs to the starter, which may be gone from here on. */
    return ok == 0 ? fn(arg) : NULL;
}

int sandbox_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg,
                         const struct sandbox_rules *rules, vmlet_seccomp_mode mode,
                         bool unsignalled, vmlet_error *err)
{
    struct start s = { .fn = fn, .arg = arg, .rules = rules, .mode = mode };
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.done, NULL);
    int e = unsignalled ? thread_start_unsignalled(thread, trampoline, &s)
                        : thread_create(thread, trampoline, &s);
    if (e == 0) {
        pthread_mutex_lock(&s.lock);
        while (s.state == 0)
            pthread_cond_wait(&s.done, &s.lock);
        pthread_mutex_unlock(&s.lock);
    }
    pthread_cond_destroy(&s.done);
    pthread_mutex_destroy(&s.lock);
    if (e != 0)
        return set_error(err, VMLET_ERR_HOST, "cannot start a thread: %s", strerror(e));
    if (s.state < 0) {
        pthread_join(*thread, NULL);
        if (err)
            *err = s.err;
        return -1;
    }
    return 0;
}
