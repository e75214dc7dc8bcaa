/* Starting the library's own threads (device, backend, console threads). */
#ifndef VMLET_THREAD_H
#define VMLET_THREAD_H

#include <pthread.h>
#include <signal.h>

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

#endif
