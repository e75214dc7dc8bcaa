/* The library's own threads (device, backend, console threads): starting
 * them with signals blocked, the eventfds that wake them, and the stop
 * sequence the virtio device threads share. */
#ifndef VMLET_THREAD_H
#define VMLET_THREAD_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "vmlet.h"

/* Stack size of every thread vmlet starts. glibc's default (8 MiB, from
 * RLIMIT_STACK) is mostly untouched, but where such a mapping holds an
 * aligned 2 MiB block, a host with transparent huge pages set to "always"
 * backs the stack's first touch with a whole huge page. Under 2 MiB no
 * block fits. vmlet's deepest chain, a FUSE request with its bounce
 * buffer, has about 30 KiB of frames (gcc -fstack-usage); 256 KiB leaves
 * room for libslirp, glib and glibc below our callbacks (glibc's alloca
 * limit is a quarter of the stack). The sanitizers' redzones and bigger
 * frames get four times as much. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define THREAD_STACK_SCALE 4
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define THREAD_STACK_SCALE 4
#endif
#endif
#ifndef THREAD_STACK_SCALE
#define THREAD_STACK_SCALE 1
#endif
#define THREAD_STACK_SIZE ((size_t)256 * 1024 * THREAD_STACK_SCALE)
_Static_assert(THREAD_STACK_SIZE < 2 * 1024 * 1024, "a thread stack that can hold a huge page");

/* pthread_create with vmlet's stack size (and glibc's guard page).
 * Returns 0 or an errno value. */
static inline int thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err != 0)
        return err;
    err = pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
    if (err == 0)
        err = pthread_create(thread, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return err;
}

/* thread_create with every signal blocked in the new thread: signals
 * belong to the application and to the vCPU threads (which use SIGRTMIN to
 * leave KVM_RUN), never to a device thread (sandbox_thread_start uses it;
 * the sandbox then unblocks SIGSYS alone). Returns 0 or an errno value. */
static inline int thread_start_unsignalled(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = thread_create(thread, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

/* Reads, and so clears, an eventfd's counter. On a non-blocking eventfd
 * with nothing pending the read fails with EAGAIN: nothing to clear. A
 * blocking one must only be drained after poll/epoll said readable, by
 * its only reader, or this blocks. */
static inline void eventfd_drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

/* Adds 1 to an eventfd's counter. Cannot fail for an eventfd below its
 * maximum count. */
static inline void eventfd_kick(int fd)
{
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* poll() or epoll_wait() failed other than with EINTR (ENOMEM): wait a
 * little before the next round rather than spin. */
static inline void thread_wait_failed(void)
{
    static const struct timespec pause = { 0, 10 * 1000 * 1000 };
    nanosleep(&pause, NULL);
}

/* A device thread that is told to end by setting stopping, which the
 * thread may look at between bits of work, and kicking stop_fd, which
 * wakes it from poll/epoll. stop_fd is a non-blocking eventfd that the
 * owner creates and closes; the owner also serialises start, stop and
 * destroy (its lock).
 *
 * One worker thread serves every run: it is created once (the first
 * device_thread_spawn or start), waits between runs and ends in
 * device_thread_destroy. Runs start when the guest activates the device,
 * from a vCPU thread; a thread created then would inherit the vCPU's
 * seccomp filter, so the worker is spawned, and enters its own sandbox,
 * while the VM is built (src/sandbox.h). */
struct device_thread {
    pthread_t id;
    int stop_fd;
    bool running; /* a run is going (the owner's view) */
    atomic_bool stopping;
    bool spawned; /* the worker exists */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    enum { WORKER_IDLE, WORKER_RUN, WORKER_EXIT } order;
    bool busy; /* inside fn */
    void *(*fn)(void *);
    void *arg;
};

/* Sets up dt (its stop_fd included). Returns 0 or an errno value. */
int device_thread_init(struct device_thread *dt);
/* Creates the worker, which enters the sandbox (rules, mode: see
 * sandbox.h) and waits for runs. Returns 0, or -1 with err filled. */
struct sandbox_rules;
int device_thread_spawn(struct device_thread *dt, const struct sandbox_rules *rules,
                        vmlet_seccomp_mode mode, vmlet_error *err);
/* Runs fn(arg) on the worker (spawned now, unsandboxed, if it was not),
 * with a stop request from before cleared. Returns 0 or an errno value. */
int device_thread_start(struct device_thread *dt, void *(*fn)(void *), void *arg);
/* Tells the run to end and waits until fn returned; stop_fd is left
 * cleared for the next start. Returns false if no run was going. */
bool device_thread_stop(struct device_thread *dt);
/* Stops a run, ends the worker and frees what init made. */
void device_thread_destroy(struct device_thread *dt);

#endif
