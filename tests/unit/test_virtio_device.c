/* Unit tests for what the virtio devices share (src/virtio/device.c):
 * iovec slicing at every edge a hostile chain can give it, the
 * little-endian and configuration-space helpers, kick reading, and the
 * activate / reset / stop / destroy path with a stand-in device thread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtio/device.h"
#include "fake_transport.h" /* virtio_device_pop can set NEEDS_RESET */

/* ---- iov_slice ---------------------------------------------------------- */

static uint8_t buf[64];

/* Pieces of 10, 0, 5 and 20 bytes. */
static const struct iovec chain[] = {
    { buf, 10 },
    { buf + 10, 0 },
    { buf + 10, 5 },
    { buf + 15, 20 },
};
#define NCHAIN 4

static void test_slice_whole(void **state)
{
    (void)state;
    struct iovec out[8];
    unsigned k = iov_slice(chain, NCHAIN, 0, UINT64_MAX, out, 8);
    assert_int_equal(k, 3); /* the empty piece is skipped */
    assert_ptr_equal(out[0].iov_base, buf);
    assert_int_equal(out[0].iov_len, 10);
    assert_ptr_equal(out[1].iov_base, buf + 10);
    assert_int_equal(out[1].iov_len, 5);
    assert_int_equal(out[2].iov_len, 20);
    assert_int_equal(iov_slice(chain, NCHAIN, 0, UINT64_MAX, NULL, UINT_MAX), 3);
}

static void test_slice_offset_and_length(void **state)
{
    (void)state;
    struct iovec out[8];
    /* Starts inside the second non-empty piece, ends inside the third. */
    unsigned k = iov_slice(chain, NCHAIN, 12, 8, out, 8);
    assert_int_equal(k, 2);
    assert_ptr_equal(out[0].iov_base, buf + 12);
    assert_int_equal(out[0].iov_len, 3);
    assert_ptr_equal(out[1].iov_base, buf + 15);
    assert_int_equal(out[1].iov_len, 5);
    /* Exactly at a piece boundary. */
    k = iov_slice(chain, NCHAIN, 10, 5, out, 8);
    assert_int_equal(k, 1);
    assert_ptr_equal(out[0].iov_base, buf + 10);
    assert_int_equal(out[0].iov_len, 5);
    /* The last byte only. */
    k = iov_slice(chain, NCHAIN, 34, 100, out, 8);
    assert_int_equal(k, 1);
    assert_ptr_equal(out[0].iov_base, buf + 34);
    assert_int_equal(out[0].iov_len, 1);
}

static void test_slice_nothing_left(void **state)
{
    (void)state;
    struct iovec out[2] = { { NULL, 77 }, { NULL, 77 } };
    assert_int_equal(iov_slice(chain, NCHAIN, 35, 10, out, 2), 0);         /* at the end */
    assert_int_equal(iov_slice(chain, NCHAIN, UINT64_MAX, 10, out, 2), 0); /* far past */
    assert_int_equal(iov_slice(chain, NCHAIN, 0, 0, out, 2), 0);           /* no length */
    assert_int_equal(iov_slice(chain, 0, 0, 10, out, 2), 0);               /* no pieces */
    assert_int_equal(iov_slice(chain, NCHAIN, 0, 10, out, 0), 0);          /* no room */
    assert_int_equal(out[0].iov_len, 77);                                  /* untouched */
}

static void test_slice_room_limit(void **state)
{
    (void)state;
    struct iovec out[2] = { 0 };
    unsigned k = iov_slice(chain, NCHAIN, 0, UINT64_MAX, out, 2);
    assert_int_equal(k, 2); /* stops at dst_max, writes no more */
    assert_int_equal(out[0].iov_len + out[1].iov_len, 15);
    assert_int_equal(iov_slice(chain, NCHAIN, 0, UINT64_MAX, NULL, 1), 1);
}

/* ---- little-endian stores and config space ------------------------------ */

static void test_put_le(void **state)
{
    (void)state;
    uint8_t b[8];
    memset(b, 0xee, sizeof b);
    put_le16(b, 0x1234);
    assert_int_equal(b[0], 0x34);
    assert_int_equal(b[1], 0x12);
    assert_int_equal(b[2], 0xee);
    put_le32(b, 0xa1b2c3d4);
    assert_memory_equal(b, "\xd4\xc3\xb2\xa1\xee", 5);
    put_le64(b, 0x0102030405060708ULL);
    assert_memory_equal(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
}

static void test_config_copy_out(void **state)
{
    (void)state;
    const uint8_t image[4] = { 1, 2, 3, 4 };
    uint8_t d[6];
    config_copy_out(image, 4, 0, d, 4, 0xff);
    assert_memory_equal(d, image, 4);
    config_copy_out(image, 4, 2, d, 4, 0xff); /* straddles the end */
    assert_memory_equal(d, "\x03\x04\xff\xff", 4);
    config_copy_out(image, 4, 4, d, 2, 0); /* just past it */
    assert_memory_equal(d, "\x00\x00", 2);
    config_copy_out(image, 4, SIZE_MAX - 1, d, 6, 0xff); /* wraps: all fill */
    assert_memory_equal(d, "\xff\xff\xff\xff\xff\xff", 6);
    config_copy_out(image, 0, 0, d, 2, 0xab); /* no config at all */
    assert_memory_equal(d, "\xab\xab", 2);
}

/* ---- kicks -------------------------------------------------------------- */

static void test_take_kick(void **state)
{
    (void)state;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(fd >= 0);
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof one), sizeof one);
    int k = fd;
    virtio_take_kick(&k, POLLIN);
    assert_int_equal(k, fd); /* read and kept */
    struct pollfd p = { .fd = fd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 0), 0); /* the counter was cleared */
    virtio_take_kick(&k, POLLIN);        /* nothing there: EAGAIN, kept */
    assert_int_equal(k, fd);
    virtio_take_kick(&k, POLLNVAL); /* gone bad: dropped */
    assert_int_equal(k, -1);
    close(fd);
}

/* ---- life cycle --------------------------------------------------------- */

struct fake_dev {
    struct virtio_device vdev;
    atomic_int runs, takes, releases;
    int fail_take;
    atomic_bool in_thread;
};

static void *fake_thread(void *arg)
{
    struct fake_dev *f = arg;
    atomic_fetch_add(&f->runs, 1);
    atomic_store(&f->in_thread, true);
    struct pollfd p = { .fd = f->vdev.thread.stop_fd, .events = POLLIN };
    while (!atomic_load(&f->vdev.thread.stopping))
        poll(&p, 1, 1000);
    atomic_store(&f->in_thread, false);
    return NULL;
}

static int fake_take(void *dev, const struct virtio_queues *qs)
{
    struct fake_dev *f = dev;
    assert_ptr_equal(f->vdev.transport, qs->transport); /* set before */
    assert_false(f->vdev.thread.running);
    atomic_fetch_add(&f->takes, 1);
    return f->fail_take ? -1 : 0;
}

static void fake_release(void *dev)
{
    struct fake_dev *f = dev;
    assert_false(atomic_load(&f->in_thread)); /* after the thread */
    atomic_fetch_add(&f->releases, 1);
}

static const struct virtio_device_ops fake_ops = {
    .name = "fake",
    .device_id = 42,
    .num_queues = 1,
    .queue_max_size = 16,
};

static const struct virtio_device_hooks fake_hooks = {
    .thread_fn = fake_thread,
    .take_queues = fake_take,
    .release_queues = fake_release,
};

static struct fake_dev *fake_new(void)
{
    vmlet_error err;
    struct fake_dev *f = virtio_device_new(sizeof *f, &fake_ops, &fake_hooks, &err);
    assert_non_null(f);
    return f;
}

static void test_init_fills_ops(void **state)
{
    (void)state;
    struct fake_dev *f = fake_new();
    assert_string_equal(f->vdev.ops.name, "fake");
    assert_int_equal(f->vdev.ops.device_id, 42);
    assert_ptr_equal(f->vdev.ops.activate, virtio_device_activate);
    assert_ptr_equal(f->vdev.ops.reset, virtio_device_reset);
    assert_ptr_equal(f->vdev.ops.stop, virtio_device_quiesce);
    /* No save hook: a snapshot of a VM with this device is refused. */
    assert_null(f->vdev.ops.save);
    assert_null(f->vdev.ops.load);
    assert_ptr_equal(f->vdev.ops.free, virtio_device_free);
    virtio_device_destroy(&f->vdev);
    virtio_device_destroy(&f->vdev); /* twice: harmless */
    virtio_device_free(f);
    virtio_device_free(NULL);
}

static void test_activate_reset(void **state)
{
    (void)state;
    struct fake_dev *f = fake_new();
    struct virtio_transport *t = (struct virtio_transport *)f; /* any address */
    struct virtio_queues qs = { .transport = t, .count = 1 };

    f->vdev.ops.reset(f); /* before activate: nothing to do */
    assert_int_equal(atomic_load(&f->releases), 0);

    assert_int_equal(f->vdev.ops.activate(f, &qs), 0);
    assert_true(f->vdev.thread.running);
    assert_ptr_equal(f->vdev.transport, t);
    /* Activate again without a reset: the old thread ends first. */
    assert_int_equal(f->vdev.ops.activate(f, &qs), 0);
    assert_int_equal(atomic_load(&f->takes), 2);
    assert_int_equal(atomic_load(&f->releases), 1);

    f->vdev.ops.reset(f);
    assert_false(f->vdev.thread.running);
    assert_null(f->vdev.transport);
    assert_int_equal(atomic_load(&f->runs), 2);
    assert_int_equal(atomic_load(&f->releases), 2);
    f->vdev.ops.reset(f); /* again: nothing more */
    assert_int_equal(atomic_load(&f->releases), 2);

    assert_int_equal(f->vdev.ops.activate(f, &qs), 0);
    f->vdev.ops.stop(f);
    assert_false(f->vdev.thread.running);
    assert_int_equal(atomic_load(&f->releases), 3);

    assert_int_equal(f->vdev.ops.activate(f, &qs), 0);
    virtio_device_destroy(&f->vdev); /* stops a running thread */
    assert_false(atomic_load(&f->in_thread));
    assert_int_equal(atomic_load(&f->releases), 4);
    f->vdev.ops.free(f); /* after destroy: only frees */
}

static void test_activate_fails(void **state)
{
    (void)state;
    struct fake_dev *f = fake_new();
    struct virtio_queues qs = { .transport = (struct virtio_transport *)f, .count = 1 };
    f->fail_take = 1;
    assert_int_equal(f->vdev.ops.activate(f, &qs), -1);
    assert_false(f->vdev.thread.running);
    assert_int_equal(atomic_load(&f->runs), 0);
    assert_int_equal(atomic_load(&f->releases), 1); /* undoes a partial take */
    assert_null(f->vdev.transport);
    f->fail_take = 0;
    assert_int_equal(f->vdev.ops.activate(f, &qs), 0); /* and can try again */
    virtio_device_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_whole),
        cmocka_unit_test(test_slice_offset_and_length),
        cmocka_unit_test(test_slice_nothing_left),
        cmocka_unit_test(test_slice_room_limit),
        cmocka_unit_test(test_put_le),
        cmocka_unit_test(test_config_copy_out),
        cmocka_unit_test(test_take_kick),
        cmocka_unit_test(test_init_fills_ops),
        cmocka_unit_test(test_activate_reset),
        cmocka_unit_test(test_activate_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
