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

/* pthread_create with every signal blocked in the new thread: signals
 * belong to the application and to the vCPU threads (which use SIGRTMIN to
 * leave KVM_RUN), never to a device thread. Returns 0 or an errno value. */
static inline int thread_start_unsignalled(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(thread, NULL, fn, arg);
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
 * owner creates and closes; the owner also serialises start and stop
 * (its lock). */
struct device_thread {
    pthread_t id;
    int stop_fd;
    bool running;
    atomic_bool stopping;
};

/* Starts fn(arg) with a stop request from before cleared. Returns 0 or an
 * errno value. */
static inline int device_thread_start(struct device_thread *dt, void *(*fn)(void *), void *arg)
{
    atomic_store(&dt->stopping, false);
    eventfd_drain(dt->stop_fd);
    int err = thread_start_unsignalled(&dt->id, fn, arg);
    if (err == 0)
        dt->running = true;
    return err;
}

/* Tells the thread to end and waits for it; stop_fd is left cleared for
 * the next start. Returns false if no thread was running. */
static inline bool device_thread_stop(struct device_thread *dt)
{
    if (!dt->running)
        return false;
    atomic_store(&dt->stopping, true);
    eventfd_kick(dt->stop_fd);
    pthread_join(dt->id, NULL);
    dt->running = false;
    eventfd_drain(dt->stop_fd);
    return true;
}

#endif
