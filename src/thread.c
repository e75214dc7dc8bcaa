/* The device worker thread (thread.h): one per device, parked between
 * the runs that activation starts and reset stops. */
#include "thread.h"

#include <string.h>
#include <sys/eventfd.h>
#include "error.h"
#include "sandbox.h"

int device_thread_init(struct device_thread *dt)
{
    memset(dt, 0, sizeof *dt);
    dt->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (dt->stop_fd < 0)
        return errno;
    int e = pthread_mutex_init(&dt->lock, NULL);
    if (e == 0 && (e = pthread_cond_init(&dt->changed, NULL)) != 0)
        pthread_mutex_destroy(&dt->lock);
    if (e != 0) {
        close(dt->stop_fd);
        dt->stop_fd = -1;
        return e;
    }
    atomic_init(&dt->stopping, false);
    return 0;
}

static void *worker(void *arg)
{
    struct device_thread *dt = arg;
    pthread_mutex_lock(&dt->lock);
    for (;;) {
        while (dt->order == WORKER_IDLE)
            pthread_cond_wait(&dt->changed, &dt->lock);
        if (dt->order == WORKER_EXIT)
            break;
        dt->busy = true;
        pthread_mutex_unlock(&dt->lock);
        dt->fn(dt->arg);
        pthread_mutex_lock(&dt->lock);
        dt->busy = false;
        if (dt->order == WORKER_RUN)
            dt->order = WORKER_IDLE;
        pthread_cond_broadcast(&dt->changed);
    }
    pthread_mutex_unlock(&dt->lock);
    return NULL;
}

int device_thread_spawn(struct device_thread *dt, const struct sandbox_rules *rules,
                        vmlet_seccomp_mode mode, vmlet_error *err)
{
    if (dt->spawned)
        return 0;
    if (sandbox_thread_start(&dt->id, worker, dt, rules, mode, true, err) < 0)
        return -1;
    dt->spawned = true;
    return 0;
}

int device_thread_start(struct device_thread *dt, void *(*fn)(void *), void *arg)
{
    if (!dt->spawned) {
        vmlet_error err;
        if (device_thread_spawn(dt, NULL, VMLET_SECCOMP_OFF, &err) < 0)
            return EAGAIN;
    }
    atomic_store(&dt->stopping, false);
    eventfd_drain(dt->stop_fd);
    pthread_mutex_lock(&dt->lock);
    dt->fn = fn;
    dt->arg = arg;
    dt->order = WORKER_RUN;
    pthread_cond_broadcast(&dt->changed);
    pthread_mutex_unlock(&dt->lock);
    dt->running = true;
    return 0;
}

bool device_thread_stop(struct device_thread *dt)
{
    if (!dt->running)
        return false;
    atomic_store(&dt->stopping, true);
    eventfd_kick(dt->stop_fd);
    pthread_mutex_lock(&dt->lock);
    while (dt->order == WORKER_RUN || dt->busy)
        pthread_cond_wait(&dt->changed, &dt->lock);
    pthread_mutex_unlock(&dt->lock);
    dt->running = false;
    eventfd_drain(dt->stop_fd);
    return true;
}

void device_thread_destroy(struct device_thread *dt)
{
    device_thread_stop(dt);
    if (dt->spawned) {
        pthread_mutex_lock(&dt->lock);
        dt->order = WORKER_EXIT;
        pthread_cond_broadcast(&dt->changed);
        pthread_mutex_unlock(&dt->lock);
        pthread_join(dt->id, NULL);
        dt->spawned = false;
    }
    if (dt->stop_fd >= 0)
        close(dt->stop_fd);
    dt->stop_fd = -1;
    pthread_cond_destroy(&dt->changed);
    pthread_mutex_destroy(&dt->lock);
}
