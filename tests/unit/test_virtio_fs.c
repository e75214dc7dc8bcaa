/* Unit tests for the virtio-fs device (src/virtio/fs.c, virtio 1.2
 * section 5.11), driven through its virtio_device_ops as a transport
 * would: this file is the guest's FUSE driver (hand-built hiprio and
 * request rings in malloc'd guest memory, fake_guest.h) over a fresh
 * host directory. The FUSE server's own opcodes are test_fuse_server.c's;
 * this is the device around it: the configuration space, requests and
 * replies through the rings, FORGET on hiprio, a reset ending the
 * session, and the thread under its sandbox. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <linux/fuse.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory.h"
#include "virtio/device.h"
#include "virtio/fs.h"
#include "virtio/queue.h"
#include "virtio/virtio.h"

#include "fake_transport.h"
#include "metric_names.h"
#include "fake_guest.h"

#define RAM_SIZE (16u << 20)
#define QSIZE    64
#define REQ_BASE 0x100000ULL /* request buffers: 0x2000 bytes each */
#define REP_BASE 0x400000ULL /* reply buffers: 0x2000 bytes each */

struct fixture {
    struct guest_memory mem;
    struct virtio_transport t;
    struct ring hiprio, req;
    struct virtio_fs *fs;
    const struct virtio_device_ops *ops;
    char dir[64];
    unsigned slot;
    uint64_t unique;
    bool hiprio_event_idx;
};

void virtio_fs_test_forget_wait(struct virtio_fs *fs, int ms); /* fs.c, unit tests only */

static uint8_t *hva(struct fixture *f, uint64_t gpa)
{
    return f->mem.host + gpa;
}

static void activate(struct fixture *f)
{
    ring_setup(&f->hiprio, &f->mem, 0x10000, QSIZE, f->hiprio_event_idx);
    ring_setup(&f->req, &f->mem, 0x20000, QSIZE, false);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 2,
        .q = { &f->hiprio.q, &f->req.q },
        .kick_fd = { f->hiprio.kick, f->req.kick },
    };
    assert_int_equal(f->ops->activate(f->fs, &qs), 0);
}

/* forget_wait_ms: how long hiprio stays quiet after a request (0: the
 * device's own). */
static int setup_mode(void **state, bool sandboxed, int forget_wait_ms, bool hiprio_event_idx)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mem.host = aligned_alloc(4096, RAM_SIZE);
    assert_non_null(f->mem.host);
    memset(f->mem.host, 0, RAM_SIZE);
    f->mem.size = f->mem.low_size = RAM_SIZE;
    f->hiprio.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->req.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    strcpy(f->dir, "/tmp/vmlet-fs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof path, "%s/hello", f->dir);
    FILE *h = fopen(path, "w");
    assert_non_null(h);
    fputs("hello from the host\n", h);
    fclose(h);
    vmlet_error err;
    f->fs = virtio_fs_new(f->dir, "work", false, &err);
    assert_non_null(f->fs);
    f->ops = &virtio_fs_device(f->fs)->ops;
    if (forget_wait_ms)
        virtio_fs_test_forget_wait(f->fs, forget_wait_ms);
    f->hiprio_event_idx = hiprio_event_idx;
    if (sandboxed)
        assert_int_equal(virtio_device_spawn(virtio_fs_device(f->fs), VMLET_SECCOMP_ON, &err), 0);
    activate(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_mode(state, false, 0, false);
}

static int setup_sandboxed(void **state)
{
    return setup_mode(state, true, 0, false);
}

/* Quiet for a minute after each request: only a request wakes hiprio. */
static int setup_slow_forgets(void **state)
{
    return setup_mode(state, false, 60000, false);
}

static int setup_event_idx(void **state)
{
    return setup_mode(state, false, 0, true);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    f->ops->free(f->fs);
    close(f->hiprio.kick);
    close(f->req.kick);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f->mem.host);
    free(f);
    return 0;
}

/* Sends opcode on nodeid with args (in two descriptors when there are
 * any, as the driver splits header and arguments) and a reply buffer of
 * reply_room bytes; returns the reply's used length, its header in *oh
 * and its payload copied to out. On hiprio (no reply), returns 0. */
static uint32_t request(struct fixture *f, struct ring *r, uint32_t opcode, uint64_t nodeid,
                        const void *args, uint32_t args_len, uint32_t reply_room,
                        struct fuse_out_header *oh, void *out)
{
    unsigned slot = f->slot++ % 16;
    uint64_t in_gpa = REQ_BASE + slot * 0x2000ULL, out_gpa = REP_BASE + slot * 0x2000ULL;
    struct fuse_in_header ih = {
        .len = (uint32_t)sizeof ih + args_len,
        .opcode = opcode,
        .unique = ++f->unique,
        .nodeid = nodeid,
    };
    memcpy(hva(f, in_gpa), &ih, sizeof ih);
    memcpy(hva(f, in_gpa + 0x1000), args, args_len);
    struct buf b[3];
    unsigned n = 0;
    b[n++] = (struct buf){ in_gpa, sizeof ih, false };
    if (args_len)
        b[n++] = (struct buf){ in_gpa + 0x1000, args_len, false };
    if (reply_room)
        b[n++] = (struct buf){ out_gpa, reply_room, true };
    memset(hva(f, out_gpa), 0xAA, 0x2000);
    uint16_t head = post(r, b, n);
    uint16_t id = 0;
    uint32_t len = 0;
    assert_true(wait_used(r, &id, &len, WAIT_MS));
    assert_int_equal(id, head);
    if (oh && len >= sizeof *oh) {
        memcpy(oh, hva(f, out_gpa), sizeof *oh);
        assert_int_equal(oh->unique, ih.unique);
        assert_int_equal(oh->len, len);
        if (out)
            memcpy(out, hva(f, out_gpa + sizeof *oh), len - sizeof *oh);
    }
    return len;
}

static void init(struct fixture *f)
{
    struct fuse_init_in in = { .major = 7, .minor = 38, .max_readahead = 1 << 20 };
    struct fuse_out_header oh;
    struct fuse_init_out out;
    uint32_t len = request(f, &f->req, FUSE_INIT, 0, &in, sizeof in, 0x1000, &oh, &out);
    assert_int_equal(len, sizeof oh + sizeof out);
    assert_int_equal(oh.error, 0);
    assert_int_equal(out.major, 7);
}

static uint64_t lookup(struct fixture *f, const char *name, int *error)
{
    struct fuse_out_header oh;
    struct fuse_entry_out e;
    request(f, &f->req, FUSE_LOOKUP, FUSE_ROOT_ID, name, (uint32_t)strlen(name) + 1, 0x1000, &oh,
            &e);
    *error = oh.error;
    return oh.error ? 0 : e.nodeid;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_config_space(void **state)
{
    struct fixture *f = *state;
    uint8_t cfg[VIRTIO_FS_TAG_MAX + 4];
    f->ops->config_read(f->fs, 0, cfg, sizeof cfg);
    assert_memory_equal(cfg, "work", 5); /* zero-padded */
    assert_int_equal(cfg[VIRTIO_FS_TAG_MAX - 1], 0);
    assert_int_equal(cfg[VIRTIO_FS_TAG_MAX], 1); /* num_request_queues, LE */
    assert_int_equal(f->ops->device_id, VIRTIO_ID_FS);
    assert_int_equal(f->ops->num_queues, 2);
    uint8_t past[4] = { 1, 2, 3, 4 };
    f->ops->config_read(f->fs, 1000, past, sizeof past); /* past the end: zeros */
    assert_memory_equal(past, "\0\0\0\0", 4);
    f->ops->config_write(f->fs, 0, (const uint8_t *)"evil", 4); /* read-only */
    f->ops->config_read(f->fs, 0, cfg, 5);
    assert_memory_equal(cfg, "work", 5);
}

static void test_tag_checked(void **state)
{
    (void)state;
    vmlet_error err;
    assert_null(virtio_fs_new("/tmp", "", false, &err));
    assert_null(virtio_fs_new("/tmp", "0123456789012345678901234567890123456", false, &err));
    assert_null(virtio_fs_new("/no/such/dir", "x", false, &err));
    struct virtio_fs *fs = virtio_fs_new("/tmp", "012345678901234567890123456789012345", false,
                                         &err);
    assert_non_null(fs); /* 36 bytes: the whole field, no terminator */
    virtio_fs_free(fs);
}

/* INIT, LOOKUP and READ through the request queue: the reply lands in
 * the guest's buffer with the used length the header says. */
static void test_requests(void **state)
{
    struct fixture *f = *state;
    init(f);
    int error;
    uint64_t node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    struct fuse_open_in oi = { .flags = O_RDONLY };
    struct fuse_out_header oh;
    struct fuse_open_out oo;
    request(f, &f->req, FUSE_OPEN, node, &oi, sizeof oi, 0x1000, &oh, &oo);
    assert_int_equal(oh.error, 0);
    struct fuse_read_in ri = { .fh = oo.fh, .offset = 0, .size = 100 };
    char data[0x2000];
    uint32_t len = request(f, &f->req, FUSE_READ, node, &ri, sizeof ri, 0x1000, &oh, data);
    assert_int_equal(oh.error, 0);
    assert_int_equal(len, sizeof oh + 20);
    assert_memory_equal(data, "hello from the host\n", 20);
    /* A missing name: a negative entry (nodeid 0), not an error. */
    assert_int_equal(lookup(f, "nope", &error), 0);
    assert_int_equal(error, 0);
    assert_int_equal(lookup(f, "no/pe", &error), 0);
    assert_int_equal(error, -EINVAL);

    struct metric_names m = { "", { 0 }, 0 };
    f->ops->metrics(f->fs, collect_metric, &m);
    assert_non_null(strstr(m.text, "requests errors malformed bytes_read bytes_written "
                                   "open_files inodes op_lookup op_forget"));
}

/* A reply buffer too small even for the header: used length 0, and the
 * device goes on. A request with no readable part at all: the same. */
static void test_no_room(void **state)
{
    struct fixture *f = *state;
    init(f);
    uint32_t len = request(f, &f->req, FUSE_GETATTR, FUSE_ROOT_ID, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                           16, 8, NULL, NULL);
    assert_int_equal(len, 0);
    struct buf b = { REP_BASE, 0x100, true };
    uint16_t head = post(&f->req, &b, 1);
    uint16_t id;
    assert_true(wait_used(&f->req, &id, &len, WAIT_MS));
    assert_int_equal(id, head);
    assert_int_equal(len, 0);
    int error;
    assert_int_not_equal(lookup(f, "hello", &error), 0);
}

/* FORGET arrives on hiprio and takes no reply; the server's inode count
 * goes back down. A device reset drops every inode the session held. */
static void test_forget_and_reset(void **state)
{
    struct fixture *f = *state;
    init(f);
    int error;
    uint64_t node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    struct fuse_forget_in fi = { .nlookup = 1 };
    uint32_t len = request(f, &f->hiprio, FUSE_FORGET, node, &fi, sizeof fi, 0, NULL, NULL);
    assert_int_equal(len, 0);
    /* The forgotten nodeid is gone: GETATTR on it fails. */
    struct fuse_getattr_in gi = { 0 };
    struct fuse_out_header oh;
    char attr[0x1000];
    request(f, &f->req, FUSE_GETATTR, node, &gi, sizeof gi, 0x1000, &oh, attr);
    assert_int_not_equal(oh.error, 0);

    node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    f->ops->reset(f->fs);
    activate(f);
    /* A new session: nothing the old one held answers, and INIT is due. */
    request(f, &f->req, FUSE_GETATTR, node, &gi, sizeof gi, 0x1000, &oh, attr);
    assert_int_not_equal(oh.error, 0);
    init(f);
    assert_int_not_equal(lookup(f, "hello", &error), 0);
}

/* The same queues again after a stop (activate with resume set). */
static void resume(struct fixture *f)
{
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 2,
        .q = { &f->hiprio.q, &f->req.q },
        .kick_fd = { f->hiprio.kick, f->req.kick },
        .resume = true,
    };
    assert_int_equal(f->ops->activate(f->fs, &qs), 0);
}

/* A stop for a snapshot ends no FUSE session: the saved VM goes on with
 * the nodeids it held, without a new INIT. The state saved then makes a
 * new device (a restore) that answers without INIT, holds only the root,
 * and answers the old nodeid ESTALE; the name looked up again gets
 * another nodeid. */
static void test_snapshot_stop_save_load(void **state)
{
    struct fixture *f = *state;
    init(f);
    int error;
    uint64_t node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    f->ops->stop(f->fs);
    uint8_t st[VIRTIO_STATE_MAX];
    int len = f->ops->save(f->fs, st, sizeof st);
    assert_true(len > 0);
    resume(f);
    struct fuse_getattr_in gi = { 0 };
    struct fuse_out_header oh;
    char attr[0x1000];
    request(f, &f->req, FUSE_GETATTR, node, &gi, sizeof gi, 0x1000, &oh, attr);
    assert_int_equal(oh.error, 0);

    /* The restored device, over the same directory and fresh rings. */
    f->ops->free(f->fs);
    vmlet_error err;
    f->fs = virtio_fs_new(f->dir, "work", false, &err);
    assert_non_null(f->fs);
    f->ops = &virtio_fs_device(f->fs)->ops;
    char why[256];
    assert_int_equal(f->ops->load(f->fs, st, (size_t)len, why, sizeof why), 0);
    assert_int_equal(f->ops->load(f->fs, st, (size_t)len - 1, why, sizeof why), -1);
    assert_non_null(strstr(why, "shared directory state"));
    activate(f);
    request(f, &f->req, FUSE_GETATTR, node, &gi, sizeof gi, 0x1000, &oh, attr);
    assert_int_equal(oh.error, -ESTALE);
    uint64_t again = lookup(f, "hello", &error); /* no INIT first */
    assert_int_equal(error, 0);
    assert_true(again != 0 && again != node);
    request(f, &f->req, FUSE_GETATTR, again, &gi, sizeof gi, 0x1000, &oh, attr);
    assert_int_equal(oh.error, 0);
}

/* The same requests with the device thread under its sandbox: a system
 * call outside its allowlist would end this test with SIGSYS. */
static void test_sandboxed(void **state)
{
    struct fixture *f = *state;
    init(f);
    int error;
    uint64_t node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    struct fuse_open_in oi = { .flags = O_RDWR };
    struct fuse_out_header oh;
    struct fuse_open_out oo;
    request(f, &f->req, FUSE_OPEN, node, &oi, sizeof oi, 0x1000, &oh, &oo);
    assert_int_equal(oh.error, 0);
    uint8_t w[sizeof(struct fuse_write_in) + 5];
    struct fuse_write_in wi = { .fh = oo.fh, .offset = 0, .size = 5 };
    memcpy(w, &wi, sizeof wi);
    memcpy(w + sizeof wi, "HELLO", 5);
    struct fuse_write_out wo;
    request(f, &f->req, FUSE_WRITE, node, w, sizeof w, 0x1000, &oh, &wo);
    assert_int_equal(oh.error, 0);
    assert_int_equal(wo.size, 5);
    struct {
        struct fuse_mkdir_in mi;
        char name[4];
    } mk = { { .mode = 0755 }, "sub" };
    struct fuse_entry_out e;
    request(f, &f->req, FUSE_MKDIR, FUSE_ROOT_ID, &mk, sizeof mk, 0x1000, &oh, &e);
    assert_int_equal(oh.error, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/sub", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "%s/hello", f->dir);
    char buf[8] = { 0 };
    int fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, buf, 5), 5);
    close(fd);
    assert_string_equal(buf, "HELLO");
}


/* ---- the quiet hiprio queue ------------------------------------------------ */

static uint16_t used_flags(struct ring *r)
{
    return __atomic_load_n((uint16_t *)r->used, __ATOMIC_ACQUIRE);
}

/* Whether a driver adding one buffer now must notify (2.7.10). */
static bool driver_must_notify(struct ring *r)
{
    if (r->q.event_idx) {
        uint16_t ev = __atomic_load_n((uint16_t *)(r->used + 4 + 8 * (size_t)r->size),
                                      __ATOMIC_ACQUIRE);
        uint16_t old = r->avail_idx, new = (uint16_t)(old + 1);
        return (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
    }
    return !(used_flags(r) & 1);
}

/* Waits until the device wants notifications on r (or, want false, off). */
static bool wait_notify_wanted(struct ring *r, bool want)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (driver_must_notify(r) != want) {
        if (now_ms() > end)
            return false;
        sleep_ms(1);
    }
    return true;
}

/* A FORGET of nodeid on hiprio, kicked only if the device asks for it,
 * as the guest's driver does. */
static uint16_t post_forget(struct fixture *f, uint64_t nodeid)
{
    uint64_t gpa = REQ_BASE + 0x40000ULL + (f->hiprio.avail_idx % 32) * 0x100ULL;
    struct {
        struct fuse_in_header ih;
        struct fuse_forget_in fi;
    } m = { { .len = sizeof m, .opcode = FUSE_FORGET, .unique = ++f->unique, .nodeid = nodeid },
            { .nlookup = 1 } };
    memcpy(hva(f, gpa), &m, sizeof m);
    struct buf b = { gpa, sizeof m, false };
    bool must = driver_must_notify(&f->hiprio);
    uint16_t head = post_nokick(&f->hiprio, &b, 1);
    if (must)
        kick(&f->hiprio);
    return head;
}

static int getattr_error(struct fixture *f, uint64_t node)
{
    struct fuse_getattr_in gi = { 0 };
    struct fuse_out_header oh;
    char attr[0x1000];
    request(f, &f->req, FUSE_GETATTR, node, &gi, sizeof gi, 0x1000, &oh, attr);
    return oh.error;
}

/* While requests come, hiprio is quiet: the guest need not notify for a
 * FORGET, the next request's wake-up serves it first, and its completion
 * is told to the guest only with 31 more. */
static void test_forgets_ride_with_requests(void **state)
{
    struct fixture *f = *state;
    init(f);
    assert_true(wait_notify_wanted(&f->hiprio, false));
    int error;
    uint64_t node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    uint16_t head = post_forget(f, node);
    expect_no_used(&f->hiprio, 50);                   /* no kick, no wake-up */
    assert_int_equal(getattr_error(f, node), -EBADF); /* forgotten before it */
    expect_used(&f->hiprio, head, 0);
    assert_int_equal(atomic_load(&f->t.notify[0]), 0);
    for (int i = 0; i < 31; i++)
        post_forget(f, node); /* unknown now: still taken, without reply */
    assert_int_equal(getattr_error(f, FUSE_ROOT_ID), 0);
    for (int i = 0; i < 31; i++) {
        uint16_t id;
        uint32_t len;
        assert_true(wait_used(&f->hiprio, &id, &len, WAIT_MS));
    }
    assert_int_equal(atomic_load(&f->t.notify[0]), 1); /* the 32 at once */
    assert_true(driver_must_notify(&f->hiprio) == false);
}

/* Without requests, the quiet ends: the forgets are answered and told,
 * and the guest is asked to notify again. */
static void check_quiet_ends(struct fixture *f)
{
    init(f);
    int error;
    uint64_t node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    uint16_t head = post_forget(f, node);
    expect_used(&f->hiprio, head, 0);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.notify[0]) == 0 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.notify[0]), 1);
    assert_true(wait_notify_wanted(&f->hiprio, true));
    /* And a FORGET now is kicked and served at once. */
    node = lookup(f, "hello", &error);
    assert_int_equal(error, 0);
    assert_true(wait_notify_wanted(&f->hiprio, true));
    head = post_forget(f, node);
    expect_used(&f->hiprio, head, 0);
    assert_int_equal(getattr_error(f, node), -EBADF);
}

static void test_forgets_told_when_idle(void **state)
{
    check_quiet_ends(*state);
}

/* The same with EVENT_IDX on hiprio: quiet is avail_event left behind. */
static void test_forgets_quiet_event_idx(void **state)
{
    struct fixture *f = *state;
    assert_true(f->hiprio.q.event_idx);
    check_quiet_ends(f);
    int error;
    assert_int_not_equal(lookup(f, "hello", &error), 0);
    assert_true(wait_notify_wanted(&f->hiprio, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
        cmocka_unit_test(test_tag_checked),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_stop_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandboxed, setup_sandboxed, teardown),
        cmocka_unit_test_setup_teardown(test_forgets_ride_with_requests, setup_slow_forgets,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forgets_told_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forgets_quiet_event_idx, setup_event_idx, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
