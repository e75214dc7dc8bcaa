/* What the device tests share: a virtio transport that only counts what a
 * device asks of it (queue notifications, config changes, NEEDS_RESET;
 * atomics, as the device's own thread calls it), and clocks for waiting on
 * that thread with a deadline. Include after virtio/virtio.h. */
#ifndef VMLET_TEST_FAKE_TRANSPORT_H
#define VMLET_TEST_FAKE_TRANSPORT_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define WAIT_MS 5000 /* how long a test waits for the device thread */

struct virtio_transport {
    atomic_uint notify[VIRTIO_MAX_QUEUES];
    atomic_uint config;
    atomic_uint needs_reset;
};

void virtio_notify_queue(struct virtio_transport *t, unsigned queue)
{
    if (queue < VIRTIO_MAX_QUEUES)
        atomic_fetch_add(&t->notify[queue], 1);
}

void virtio_notify_queues(struct virtio_transport *t, uint32_t mask)
{
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        if (mask & (1u << q))
            virtio_notify_queue(t, q);
}

void virtio_notify_config(struct virtio_transport *t)
{
    atomic_fetch_add(&t->config, 1);
}

void virtio_set_needs_reset(struct virtio_transport *t)
{
    atomic_fetch_add(&t->needs_reset, 1);
}

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* This process's CPU time: a device thread that waits must not spin. */
static inline uint64_t cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

#endif
