/* The pieces every virtio device shares (device.h): the device side of
 * virtio 1.2 section 2.1 (DRIVER_OK starts the device thread; a reset
 * stops it, after which the device touches no queue and the driver owns
 * its buffers again), and the iovec and kick helpers of the data paths
 * (2.7: split virtqueues, chains as iovecs). */
#include "virtio/device.h"

#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "error.h"

void *virtio_device_new(size_t size, const struct virtio_device_ops *ops,
                        const struct virtio_device_hooks *hooks, vmlet_error *err)
{
    struct virtio_device *d = calloc(1, size);
    if (!d) {
        set_error(err, VMLET_ERR_NOMEM, "%s: out of memory", ops->name);
        return NULL;
    }
    d->ops = *ops;
    d->hooks = hooks;
    if (!d->ops.activate)
        d->ops.activate = virtio_device_activate;
    if (!d->ops.reset)
        d->ops.reset = virtio_device_reset;
    if (!d->ops.stop)
        d->ops.stop = virtio_device_quiesce;
    if (!d->ops.free)
        d->ops.free = virtio_device_free;
    int e = device_thread_init(&d->thread);
    if (e != 0) {
        set_error(err, VMLET_ERR_HOST, "%s: cannot set up the device thread: %s", ops->name,
                  strerror(e));
        free(d);
        return NULL;
    }
    e = pthread_mutex_init(&d->lock, NULL);
    if (e != 0) {
        set_error(err, VMLET_ERR_HOST, "%s: cannot set up the device: %s", ops->name, strerror(e));
        device_thread_destroy(&d->thread);
        free(d);
        return NULL;
    }
    d->initialised = true;
    return d;
}

void virtio_device_destroy(struct virtio_device *d)
{
    if (!d->initialised)
        return;
    virtio_device_reset(d);
    device_thread_destroy(&d->thread);
    pthread_mutex_destroy(&d->lock);
    d->initialised = false;
}

int virtio_device_spawn(struct virtio_device *d, vmlet_seccomp_mode mode, vmlet_error *err)
{
    pthread_mutex_lock(&d->lock);
    int rc = device_thread_spawn(&d->thread, d->sandbox ? d->sandbox : d->hooks->sandbox, mode,
                                 err);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

enum virtq_pop_result virtio_device_pop(struct virtio_device *d, struct virtq *q,
                                        struct virtq_chain *chain, bool *broken)
{
    enum virtq_pop_result res = virtq_pop(q, chain);
    if (res == VIRTQ_EMPTY && virtq_enable_notify(q)) {
        /* More came as notifications went on: one more look finds it, as
         * the driver's available index only grows. One that moves it
         * back gets EMPTY, notifications on, not a loop it could keep
         * this thread in. */
        virtq_disable_notify(q);
        res = virtq_pop(q, chain);
        if (res == VIRTQ_EMPTY)
            virtq_enable_notify(q);
    }
    if (res == VIRTQ_BROKEN) {
        *broken = true;
        virtio_set_needs_reset(d->transport);
    }
    return res;
}

void virtio_device_free(void *dev)
{
    if (!dev)
        return;
    virtio_device_destroy(dev);
    free(dev);
}

void virtio_device_stop_locked(struct virtio_device *d)
{
    if (!device_thread_stop(&d->thread))
        return;
    if (d->hooks->release_queues)
        d->hooks->release_queues(d);
    d->transport = NULL;
}

int virtio_device_activate(void *dev, const struct virtio_queues *queues)
{
    struct virtio_device *d = dev;
    pthread_mutex_lock(&d->lock);
    virtio_device_stop_locked(d); /* activate twice without a reset: start afresh */
    d->transport = queues->transport;
    const struct virtio_device_hooks *h = d->hooks;
    int rc = h->take_queues ? h->take_queues(d, queues) : 0;
    if (rc == 0 && device_thread_start(&d->thread, h->thread_fn, d) != 0)
        rc = -1;
    if (rc < 0) {
        if (h->release_queues)
            h->release_queues(d);
        d->transport = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void virtio_device_reset(void *dev)
{
    struct virtio_device *d = dev;
    pthread_mutex_lock(&d->lock);
    virtio_device_stop_locked(d);
    pthread_mutex_unlock(&d->lock);
}

void virtio_device_quiesce(void *dev)
{
    struct virtio_device *d = dev;
    pthread_mutex_lock(&d->lock);
    d->quiescing = true;
    virtio_device_stop_locked(d);
    d->quiescing = false;
    pthread_mutex_unlock(&d->lock);
}

int virtio_device_save_none(void *dev, uint8_t *buf, size_t cap)
{
    (void)dev;
    (void)buf;
    (void)cap;
    return 0;
}

int virtio_device_load_none(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    (void)dev;
    (void)buf;
    if (len != 0) {
        snprintf(why, whylen, "%zu bytes of state for a device that keeps none", len);
        return -1;
    }
    return 0;
}

void virtio_take_kick(int *fd, short revents)
{
    if (revents & POLLNVAL) {
        *fd = -1;
        return;
    }
    uint64_t v;
    ssize_t r;
    do {
        r = read(*fd, &v, sizeof v);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN)
        *fd = -1;
}
