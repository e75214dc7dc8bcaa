/* Unit tests for the seccomp sandbox (src/sandbox.c) through the path the
 * devices use (src/virtio/device.c, src/thread.c): a device thread spawned
 * under its rules that makes a call outside them ends the process with
 * the one-line message and status 128 + SIGSYS; allowed work goes on;
 * executable memory is refused; LOG and OFF let everything through; the
 * thread has no capabilities and no_new_privs. Every case runs in a
 * child process, since a filter cannot be taken off again. Threads get
 * vmlet's stack size. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "backend/disk.h"
#include "virtio/device.h"
#include "fake_transport.h" /* virtio_device_pop can set NEEDS_RESET */

enum action { DO_ALLOWED, DO_FORBIDDEN, DO_EXEC_MEMORY, DO_IOCTL, DO_HEAP_SHRINK };

struct test_dev {
    struct virtio_device vdev;
    enum action action;
    atomic_int tid;
    atomic_bool done;
    long result;
};

static void *test_thread(void *arg)
{
    struct test_dev *t = arg;
    atomic_store(&t->tid, (int)gettid());
    switch (t->action) {
    case DO_ALLOWED: {
        /* What device threads do all day: memory, eventfds, poll. */
        void *big = malloc(8 << 20); /* mmap'd by malloc */
        memset(big, 1, 8 << 20);
        free(big);
        struct pollfd p = { .fd = t->vdev.thread.stop_fd, .events = POLLIN };
        poll(&p, 1, 0);
        t->result = 0;
        break;
    }
    case DO_HEAP_SHRINK: {
        /* Buffers under malloc's mmap threshold from this thread's own
         * heap, then freed: glibc trims a heap whose free top passes the
         * trim threshold, and the first trim in a process reads
         * /proc/sys/vm/overcommit_memory - an openat. */
        void *p[8];
        for (int i = 0; i < 8; i++)
            memset(p[i] = malloc(100000), 1, 100000);
        for (int i = 7; i >= 0; i--)
            free(p[i]);
        t->result = 0;
        break;
    }
    case DO_FORBIDDEN: t->result = syscall(__NR_getppid); break;
    case DO_IOCTL: t->result = ioctl(t->vdev.thread.stop_fd, 0x1234, 0); break;
    case DO_EXEC_MEMORY: {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        t->result = p == MAP_FAILED ? -1 : 0;
        break;
    }
    }
    atomic_store(&t->done, true);
    while (!atomic_load(&t->vdev.thread.stopping))
        usleep(1000);
    return NULL;
}

static const struct sandbox_rules test_rules = { .kind = "virtio-test" };
static const struct virtio_device_ops test_ops = { .name = "virtio-test", .num_queues = 1 };
static const struct virtio_device_hooks test_hooks = {
    .thread_fn = test_thread,
    .sandbox = &test_rules,
};

/* The /proc status line of a thread of this process ("CapEff", ...). */
static unsigned long long status_field(int tid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return ~0ULL;
    unsigned long long v = ~0ULL;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtoull(line + n + 1, NULL, strstr(field, "Cap") ? 16 : 10);
    fclose(f);
    return v;
}

/* In the child: a device under mode that does action when activated.
 * Exits 0 if the thread finished and the checks held, 1 if not. */
/* Set by a test before run_child: the child's exit status on a violation
 * (0: the default). */
static int child_violation_status;

static void child(vmlet_seccomp_mode mode, enum action action)
{
    vmlet_error err;
    if (child_violation_status && vmlet_set_sandbox_exit_status(child_violation_status) < 0)
        _exit(1);
    struct test_dev *t = virtio_device_new(sizeof *t, &test_ops, &test_hooks, &err);
    if (!t || virtio_device_spawn(&t->vdev, mode, &err) < 0) {
        fprintf(stderr, "set-up failed: %s\n", err.message);
        _exit(1);
    }
    t->action = action;
    struct virtio_queues qs = { .transport = (struct virtio_transport *)t, .count = 1 };
    if (t->vdev.ops.activate(t, &qs) < 0)
        _exit(1);
    while (!atomic_load(&t->done))
        usleep(1000);
    int tid = atomic_load(&t->tid);
    bool ok = true;
    if (mode != VMLET_SECCOMP_OFF) {
        ok = status_field(tid, "Seccomp") == 2 && status_field(tid, "NoNewPrivs") == 1 &&
             status_field(tid, "CapEff") == 0 && status_field(tid, "CapPrm") == 0;
        /* The thread that created the device is not filtered. */
        ok = ok && status_field((int)gettid(), "Seccomp") == 0;
    }
    if (action == DO_FORBIDDEN && t->result != getppid())
        ok = false;
    t->vdev.ops.free(t);
    _exit(ok ? 0 : 1);
}

/* Runs child() in a new process; returns its wait status and what it
 * wrote to stderr. */
static int run_child(vmlet_seccomp_mode mode, enum action action, char *out, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        child(mode, action);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(p[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (out[0])
        print_message("# the child wrote: %s", out);
    return status;
}

static void test_forbidden_call_ends_process_with_message(void **state)
{
    (void)state;
    char out[1024];
    int status = run_child(VMLET_SECCOMP_ON, DO_FORBIDDEN, out, sizeof out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 128 + SIGSYS);
    assert_non_null(strstr(out, "vmlet: sandbox: the virtio-test thread made a system call "
                                "outside its allowlist: getppid ("));
    assert_non_null(strstr(out, "--seccomp off"));
    assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */
}

/* Firecracker mode's status: the same line, the process ends with 148. */
static void test_violation_exit_status_settable(void **state)
{
    (void)state;
    char out[1024];
    assert_int_equal(vmlet_set_sandbox_exit_status(0), -1);
    assert_int_equal(vmlet_set_sandbox_exit_status(256), -1);
    child_violation_status = 148;
    int status = run_child(VMLET_SECCOMP_ON, DO_FORBIDDEN, out, sizeof out);
    child_violation_status = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 148);
    assert_non_null(strstr(out, "outside its allowlist: getppid ("));
}

static void test_allowed_work_goes_on(void **state)
{
    (void)state;
    char out[1024];
    int status = run_child(VMLET_SECCOMP_ON, DO_ALLOWED, out, sizeof out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(out, "");
}

/* A device thread that frees big heap buffers (vsock's and virtio-fs's
 * do) is not stopped by what malloc does underneath. */
static void test_heap_trim_allowed(void **state)
{
    (void)state;
    char out[1024];
    int status = run_child(VMLET_SECCOMP_ON, DO_HEAP_SHRINK, out, sizeof out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(out, "");
}

static void test_executable_memory_refused(void **state)
{
    (void)state;
    char out[1024];
    int status = run_child(VMLET_SECCOMP_ON, DO_EXEC_MEMORY, out, sizeof out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 128 + SIGSYS);
    assert_non_null(strstr(out, "allowlist: mmap ("));
}

/* An ioctl is allowed by request number: the line names the one refused. */
static void test_ioctl_request_named(void **state)
{
    (void)state;
    char out[1024];
    int status = run_child(VMLET_SECCOMP_ON, DO_IOCTL, out, sizeof out);
    assert_int_equal(WEXITSTATUS(status), 128 + SIGSYS);
    assert_non_null(strstr(out, "allowlist: ioctl (16, request 4660)"));
}

static void test_log_mode_allows(void **state)
{
    (void)state;
    char out[1024];
    int status = run_child(VMLET_SECCOMP_LOG, DO_FORBIDDEN, out, sizeof out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_off_mode_filters_nothing(void **state)
{
    (void)state;
    char out[1024];
    int status = run_child(VMLET_SECCOMP_OFF, DO_FORBIDDEN, out, sizeof out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    status = run_child(VMLET_SECCOMP_OFF, DO_EXEC_MEMORY, out, sizeof out);
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void *report_stack_size(void *arg)
{
    pthread_attr_t attr;
    size_t *size = arg;
    *size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, size);
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

/* vmlet's threads get its stack size, not glibc's 8 MiB default: under
 * 2 MiB, so transparent huge pages can never back a stack (thread.h). */
static void test_thread_stack_size(void **state)
{
    (void)state;
    size_t size = 1;
    pthread_t t;
    vmlet_error err;
    assert_int_equal(
        sandbox_thread_start(&t, report_stack_size, &size, NULL, VMLET_SECCOMP_OFF, true, &err), 0);
    pthread_join(t, NULL);
    assert_true(size >= THREAD_STACK_SIZE);
    assert_true(size < 2 * 1024 * 1024);
}

/* ---- the control thread and disk images (vmlet_vm_set_disk_path) ------ */

/* In a child: the control list with one disk directory, in. Opens in/a.img
 * (read-write: allowed), out/b.img (outside: Landlock refuses it where
 * there is Landlock), and realpath()s the first; with make set, also tries
 * to make a file in in/ (seccomp: never). Exit 0: as expected with
 * Landlock, 2: as expected without it, 1: something else. */
static void control_child(const char *in, const char *out, bool make)
{
    const char *dirs[] = { in, NULL };
    struct sandbox_rules r = sandbox_control_rules;
    r.disk_dirs = dirs;
    bool landlock = syscall(__NR_landlock_create_ruleset, NULL, 0, 1u /* VERSION */) >= 1;
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s/a.img", in);
    snprintf(b, sizeof b, "%s/b.img", out);
    vmlet_error err;
    if (sandbox_enter(&r, VMLET_SECCOMP_ON, &err) < 0) {
        fprintf(stderr, "%s\n", err.message);
        _exit(1);
    }
    struct disk_file f;
    if (disk_file_open(&f, a, false, NULL, &err) < 0 || f.size != 4096) {
        fprintf(stderr, "inside: %s\n", err.message);
        _exit(1);
    }
    disk_file_close(&f);
    char *abs = realpath(a, NULL);
    if (!abs)
        _exit(1);
    free(abs);
    if (make)
        open(a, O_RDWR | O_TRUNC); /* the sandbox stops the process here */
    int rc = disk_file_open(&f, b, true, NULL, &err);
    if (landlock) {
        if (rc == 0 || !strstr(err.message, "Permission denied")) {
            fprintf(stderr, "outside: %s\n", rc == 0 ? "opened" : err.message);
            _exit(1);
        }
        _exit(0);
    }
    _exit(rc == 0 ? 2 : 1);
}

static int run_control_child(const char *in, const char *out, bool make, char *msg, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        control_child(in, out, make);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(p[0], msg + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    msg[len] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void make_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    close(fd);
}

static void test_control_thread_opens_disk_images(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    char base[PATH_MAX - 16], in[PATH_MAX], out[PATH_MAX], cmd[PATH_MAX + 16];
    snprintf(base, sizeof base, "%s/vmlet-sandbox-XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(base));
    snprintf(in, sizeof in, "%s/in", base);
    snprintf(out, sizeof out, "%s/out", base);
    assert_int_equal(mkdir(in, 0700), 0);
    assert_int_equal(mkdir(out, 0700), 0);
    make_file(in, "a.img");
    make_file(out, "b.img");

    char msg[1024];
    int status = run_control_child(in, out, false, msg, sizeof msg);
    int make_status = run_control_child(in, out, true, msg + strlen(msg), sizeof msg - strlen(msg));
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    assert_int_equal(system(cmd), 0);
    if (msg[0])
        print_message("# the children wrote: %s", msg);
    assert_true(WIFEXITED(status));
    /* Making or truncating a file is never allowed. */
    assert_true(WIFEXITED(make_status));
    assert_int_equal(WEXITSTATUS(make_status), 128 + SIGSYS);
    assert_non_null(strstr(msg, "the control thread made a system call outside its allowlist: "
                                "openat"));
    if (WEXITSTATUS(status) == 2)
        skip(); /* no Landlock in this kernel: nothing limits which files */
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forbidden_call_ends_process_with_message),
        cmocka_unit_test(test_violation_exit_status_settable),
        cmocka_unit_test(test_allowed_work_goes_on),
        cmocka_unit_test(test_heap_trim_allowed),
        cmocka_unit_test(test_executable_memory_refused),
        cmocka_unit_test(test_ioctl_request_named),
        cmocka_unit_test(test_log_mode_allows),
        cmocka_unit_test(test_off_mode_filters_nothing),
        cmocka_unit_test(test_thread_stack_size),
        cmocka_unit_test(test_control_thread_opens_disk_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
