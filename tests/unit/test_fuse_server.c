/* The FUSE server (src/fs/fuse_server.c): requests built as the guest's
 * kernel builds them, split over several iovecs, against a temporary
 * directory per test: <tmp>/share is served, <tmp>/outside holds what the
 * guest must never reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "fs/fuse_server.h"

void fuse_server_test_limits(struct fuse_server *s, uint32_t max_inodes, uint32_t max_handles);

struct t {
    char tmp[64], share[96], outside[96];
    struct fuse_server *s;
    uint64_t unique;
    int err;             /* the last reply's error */
    size_t len;          /* the last reply's payload length */
    uint8_t *reply;      /* the last reply's payload */
    uint32_t uid, gid;   /* the guest caller in each request's header */
    bool negative;       /* the last lookup() got a negative entry */
    uint32_t open_flags; /* the last open_() or create() reply's */
};

static uint8_t reply_buf[FUSE_SERVER_MAX_WRITE + 4096];

static void writefile(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static char *readfile(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    return buf;
}

static char *path_in(const struct t *t, const char *rel)
{
    static char p[2][PATH_MAX];
    static int which;
    which ^= 1;
    snprintf(p[which], sizeof p[which], "%s/%s", t->share, rel);
    return p[which];
}

static struct t *new_t(bool read_only)
{
    struct t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    strcpy(t->tmp, "/tmp/vmlet-fuse-XXXXXX");
    assert_non_null(mkdtemp(t->tmp));
    snprintf(t->share, sizeof t->share, "%s/share", t->tmp);
    snprintf(t->outside, sizeof t->outside, "%s/outside", t->tmp);
    assert_int_equal(mkdir(t->share, 0755), 0);
    assert_int_equal(mkdir(t->outside, 0755), 0);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/secret", t->outside);
    writefile(p, "secret");
    vmlet_error err = { 0 };
    t->s = fuse_server_new(t->share, read_only, &err);
    assert_non_null(t->s);
    return t;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static int teardown(void **state)
{
    struct t *t = *state;
    fuse_server_free(t->s);
    nftw(t->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

/* Sends a request made of the header and up to three argument pieces, cut
 * into four iovecs at odd places (one inside the header); the reply lands in
 * two iovecs, cut inside its header. Returns the reply's error. */
static int call_cap(struct t *t, uint32_t op, uint64_t nodeid, const void *a1, size_t l1,
                    const void *a2, size_t l2, const void *a3, size_t l3, size_t out_cap)
{
    size_t len = sizeof(struct fuse_in_header) + l1 + l2 + l3;
    uint8_t *req = malloc(len);
    assert_non_null(req);
    struct fuse_in_header h = { .len = (uint32_t)len,
                                .opcode = op,
                                .unique = ++t->unique,
                                .nodeid = nodeid,
                                .uid = t->uid,
                                .gid = t->gid };
    memcpy(req, &h, sizeof h);
    size_t o = sizeof h;
    if (l1)
        memcpy(req + o, a1, l1);
    o += l1;
    if (l2)
        memcpy(req + o, a2, l2);
    o += l2;
    if (l3)
        memcpy(req + o, a3, l3);
    size_t c1 = 7, c2 = len > 50 ? 45 : len, c3 = c2 + (len - c2) / 2;
    struct iovec in[4] = {
        { req, c1 }, { req + c1, c2 - c1 }, { req + c2, c3 - c2 }, { req + c3, len - c3 }
    };
    memset(reply_buf, 0xa5, 64);
    struct iovec out[2] = { { reply_buf, 5 }, { reply_buf + 5, out_cap - 5 } };
    size_t n = fuse_server_handle(t->s, in, 4, out, 2);
    free(req);
    struct fuse_out_header oh;
    assert_true(n >= sizeof oh);
    memcpy(&oh, reply_buf, sizeof oh);
    assert_int_equal(oh.len, n);
    assert_int_equal(oh.unique, t->unique);
    t->err = oh.error;
    t->len = n - sizeof oh;
    t->reply = reply_buf + sizeof oh;
    if (oh.error)
        assert_int_equal(t->len, 0);
    return oh.error;
}

static int call(struct t *t, uint32_t op, uint64_t nodeid, const void *a1, size_t l1,
                const void *a2, size_t l2, const void *a3, size_t l3)
{
    return call_cap(t, op, nodeid, a1, l1, a2, l2, a3, l3, sizeof reply_buf);
}

/* A request that takes no reply (FORGET): returns the reply length. */
static size_t call_noreply(struct t *t, uint32_t op, uint64_t nodeid, const void *a, size_t l)
{
    uint8_t req[4096];
    struct fuse_in_header h = {
        .len = (uint32_t)(sizeof h + l), .opcode = op, .unique = ++t->unique, .nodeid = nodeid
    };
    memcpy(req, &h, sizeof h);
    memcpy(req + sizeof h, a, l);
    struct iovec in = { req, sizeof h + l };
    struct iovec out = { reply_buf, sizeof reply_buf };
    return fuse_server_handle(t->s, &in, 1, &out, 1);
}

static void do_init(struct t *t)
{
    struct fuse_init_in in = {
        .major = 7, .minor = 38, .max_readahead = 128 << 10, .flags = 0xffffffffu
    };
    assert_int_equal(call(t, FUSE_INIT, 0, &in, sizeof in, NULL, 0, NULL, 0), 0);
}

static struct t *start(bool read_only)
{
    struct t *t = new_t(read_only);
    do_init(t);
    return t;
}

static int setup_rw(void **state)
{
    *state = start(false);
    return 0;
}

static int setup_ro(void **state)
{
    *state = start(true);
    return 0;
}

static int lookup(struct t *t, uint64_t dir, const char *name, struct fuse_entry_out *e)
{
    memset(e, 0, sizeof *e);
    t->negative = false;
    int r = call(t, FUSE_LOOKUP, dir, name, strlen(name) + 1, NULL, 0, NULL, 0);
    if (r == 0) {
        assert_int_equal(t->len, sizeof *e);
        memcpy(e, t->reply, sizeof *e);
        if (e->nodeid == 0) {
            /* A negative entry: "no such name", cached by the guest for
             * entry_valid; the kernel takes it as ENOENT. */
            t->negative = true;
            assert_int_equal(e->entry_valid, 1);
            assert_int_equal(e->attr_valid, 0);
            assert_int_equal(e->attr.ino, 0);
            r = -ENOENT;
        }
    }
    return r;
}

static uint64_t lookup_ok(struct t *t, uint64_t dir, const char *name)
{
    struct fuse_entry_out e;
    assert_int_equal(lookup(t, dir, name, &e), 0);
    return e.nodeid;
}

static int getattr(struct t *t, uint64_t node, struct fuse_attr *a)
{
    struct fuse_getattr_in in = { 0 };
    memset(a, 0, sizeof *a);
    int r = call(t, FUSE_GETATTR, node, &in, sizeof in, NULL, 0, NULL, 0);
    if (r == 0) {
        struct fuse_attr_out o;
        assert_int_equal(t->len, sizeof o);
        memcpy(&o, t->reply, sizeof o);
        *a = o.attr;
    }
    return r;
}

static void forget(struct t *t, uint64_t node, uint64_t n)
{
    struct fuse_forget_in in = { .nlookup = n };
    assert_int_equal(call_noreply(t, FUSE_FORGET, node, &in, sizeof in), 0);
}

static int open_(struct t *t, uint64_t node, uint32_t flags, uint64_t *fh, bool dir)
{
    struct fuse_open_in in = { .flags = flags };
    *fh = 0;
    int r = call(t, dir ? FUSE_OPENDIR : FUSE_OPEN, node, &in, sizeof in, NULL, 0, NULL, 0);
    if (r == 0) {
        struct fuse_open_out o;
        assert_int_equal(t->len, sizeof o);
        memcpy(&o, t->reply, sizeof o);
        *fh = o.fh;
        t->open_flags = o.open_flags;
    }
    return r;
}

static int release(struct t *t, uint64_t fh, bool dir)
{
    struct fuse_release_in in = { .fh = fh };
    return call(t, dir ? FUSE_RELEASEDIR : FUSE_RELEASE, 1, &in, sizeof in, NULL, 0, NULL, 0);
}

static int create(struct t *t, uint64_t dir, const char *name, uint32_t flags, uint32_t mode,
                  struct fuse_entry_out *e, uint64_t *fh)
{
    struct fuse_create_in in = { .flags = flags, .mode = mode };
    memset(e, 0, sizeof *e);
    *fh = 0;
    int r = call(t, FUSE_CREATE, dir, &in, sizeof in, name, strlen(name) + 1, NULL, 0);
    if (r == 0) {
        struct fuse_open_out o;
        assert_int_equal(t->len, sizeof *e + sizeof o);
        memcpy(e, t->reply, sizeof *e);
        memcpy(&o, t->reply + sizeof *e, sizeof o);
        *fh = o.fh;
        t->open_flags = o.open_flags;
    }
    return r;
}

static int write_(struct t *t, uint64_t fh, uint64_t off, const void *data, uint32_t len)
{
    struct fuse_write_in in = { .fh = fh, .offset = off, .size = len };
    int r = call(t, FUSE_WRITE, 1, &in, sizeof in, data, len, NULL, 0);
    if (r == 0) {
        struct fuse_write_out o;
        memcpy(&o, t->reply, sizeof o);
        assert_int_equal(o.size, len);
    }
    return r;
}

/* READ: returns bytes read or the negative error. */
static int read_(struct t *t, uint64_t fh, uint64_t off, uint32_t size, void *buf)
{
    struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
    int r = call(t, FUSE_READ, 1, &in, sizeof in, NULL, 0, NULL, 0);
    if (r)
        return r;
    memcpy(buf, t->reply, t->len);
    return (int)t->len;
}

static int mkdir_(struct t *t, uint64_t dir, const char *name, uint32_t mode, uint64_t *node)
{
    struct fuse_mkdir_in in = { .mode = mode };
    if (node)
        *node = 0;
    int r = call(t, FUSE_MKDIR, dir, &in, sizeof in, name, strlen(name) + 1, NULL, 0);
    if (r == 0 && node) {
        struct fuse_entry_out e;
        memcpy(&e, t->reply, sizeof e);
        *node = e.nodeid;
    }
    return r;
}

static struct fuse_server_stats stats(struct t *t)
{
    struct fuse_server_stats st;
    fuse_server_get_stats(t->s, &st);
    return st;
}

/* --- INIT and DESTROY --------------------------------------------------------- */

static void init_negotiates(void **state)
{
    struct t *t = new_t(false);
    *state = t;
    struct fuse_getattr_in g = { 0 };
    assert_int_equal(call(t, FUSE_GETATTR, 1, &g, sizeof g, NULL, 0, NULL, 0), -EIO);

    struct fuse_init_in in = {
        .major = 7, .minor = 40, .max_readahead = 8u << 20, .flags = 0xffffffffu
    };
    assert_int_equal(call(t, FUSE_INIT, 0, &in, sizeof in, NULL, 0, NULL, 0), 0);
    struct fuse_init_out o;
    assert_int_equal(t->len, sizeof o);
    memcpy(&o, t->reply, sizeof o);
    assert_int_equal(o.major, 7);
    assert_int_equal(o.minor, 38);
    assert_int_equal(o.max_write, FUSE_SERVER_MAX_WRITE);
    assert_int_equal(o.max_readahead, FUSE_SERVER_MAX_WRITE);
    assert_true(o.flags & FUSE_DO_READDIRPLUS);
    assert_true(o.flags & FUSE_MAX_PAGES);
    assert_int_equal(o.max_pages * 4096u, FUSE_SERVER_MAX_WRITE);
    /* Never claimed: what the server does not do. */
    assert_false(o.flags &
                 (FUSE_WRITEBACK_CACHE | FUSE_POSIX_ACL | FUSE_EXPORT_SUPPORT | FUSE_POSIX_LOCKS |
                  FUSE_FLOCK_LOCKS | FUSE_DONT_MASK | FUSE_ATOMIC_O_TRUNC | FUSE_HANDLE_KILLPRIV |
                  FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT | FUSE_SETXATTR_EXT));
    assert_int_equal(o.flags2, 0);
    assert_int_equal(getattr(t, 1, &(struct fuse_attr){ 0 }), 0);

    /* A 6.1 kernel's 7.37, and a kernel that offers nothing. */
    in.minor = 37;
    in.flags = 0;
    in.max_readahead = 4096;
    assert_int_equal(call(t, FUSE_INIT, 0, &in, sizeof in, NULL, 0, NULL, 0), 0);
    memcpy(&o, t->reply, sizeof o);
    assert_int_equal(o.minor, 37);
    assert_int_equal(o.flags, 0);
    assert_int_equal(o.max_readahead, 4096);

    /* A newer major: answered with ours, for the kernel to ask again. */
    in.major = 8;
    assert_int_equal(call(t, FUSE_INIT, 0, &in, sizeof in, NULL, 0, NULL, 0), 0);
    memcpy(&o, t->reply, sizeof o);
    assert_int_equal(o.major, 7);
    /* Too old, and too short. */
    in.major = 7;
    in.minor = 12;
    assert_int_equal(call(t, FUSE_INIT, 0, &in, sizeof in, NULL, 0, NULL, 0), -EPROTONOSUPPORT);
    assert_int_equal(call(t, FUSE_INIT, 0, &in, 8, NULL, 0, NULL, 0), -EINVAL);
}

static void destroy_drops_everything(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "f"), "x");
    uint64_t f = lookup_ok(t, 1, "f");
    uint64_t fh;
    assert_int_equal(open_(t, f, O_RDONLY, &fh, false), 0);
    assert_int_equal(stats(t).inodes, 1);
    assert_int_equal(stats(t).open_handles, 1);
    assert_int_equal(call(t, FUSE_DESTROY, 0, NULL, 0, NULL, 0, NULL, 0), 0);
    assert_int_equal(stats(t).inodes, 0);
    assert_int_equal(stats(t).open_handles, 0);
    struct fuse_attr a;
    assert_int_equal(getattr(t, 1, &a), -EIO); /* until the next INIT */
    do_init(t);
    assert_int_equal(getattr(t, f, &a), -EBADF);
    char buf[4];
    assert_int_equal(read_(t, fh, 0, 1, buf), -EBADF);
    assert_int_equal(getattr(t, lookup_ok(t, 1, "f"), &a), 0);
}

/* --- the opcodes ---------------------------------------------------------------- */

static void lookup_and_getattr(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "a"), "hello");
    assert_int_equal(link(path_in(t, "a"), path_in(t, "b")), 0);
    struct fuse_entry_out ea, eb;
    assert_int_equal(lookup(t, 1, "a", &ea), 0);
    assert_int_equal(lookup(t, 1, "b", &eb), 0);
    assert_int_equal(ea.nodeid, eb.nodeid); /* one host inode, one nodeid */
    assert_true(ea.nodeid != 1);
    assert_int_equal(ea.entry_valid, 1);
    assert_int_equal(ea.attr_valid, 1);
    assert_int_equal(ea.attr.size, 5);
    assert_true(S_ISREG(ea.attr.mode));
    assert_int_equal(stats(t).inodes, 1);
    struct fuse_attr a;
    assert_int_equal(getattr(t, ea.nodeid, &a), 0);
    assert_int_equal(a.nlink, 2);
    assert_int_equal(getattr(t, 1, &a), 0);
    assert_true(S_ISDIR(a.mode));
    /* A missing name: a negative entry, not an error, and nothing held. */
    uint64_t errors = stats(t).errors;
    assert_int_equal(lookup(t, 1, "missing", &ea), -ENOENT);
    assert_true(t->negative);
    assert_int_equal(stats(t).errors, errors);
    assert_int_equal(stats(t).inodes, 1);
    /* Still checked as before: a bad name is an error, not an entry. */
    assert_int_equal(lookup(t, 1, "a/b", &ea), -EINVAL);
    assert_false(t->negative);
    /* Made on the host afterwards: found by the next lookup. */
    writefile(path_in(t, "missing"), "now");
    uint64_t m = lookup_ok(t, 1, "missing");
    forget(t, m, 1);
    /* Two lookups, two forgets: held until the last. */
    forget(t, eb.nodeid, 1);
    assert_int_equal(getattr(t, eb.nodeid, &a), 0);
    forget(t, eb.nodeid, 1);
    assert_int_equal(getattr(t, eb.nodeid, &a), -EBADF);
    assert_int_equal(stats(t).inodes, 0);
}

/* cache=always: every reply that carries a validity says a day, the
 * negative entry included; back to 1 s without it. */
static void cache_always_timeouts(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "a"), "hello");
    for (int always = 1; always >= 0; always--) {
        uint64_t want = always ? 86400 : 1;
        fuse_server_set_cache_always(t->s, always);
        struct fuse_entry_out e;
        assert_int_equal(call(t, FUSE_LOOKUP, 1, "a", 2, NULL, 0, NULL, 0), 0);
        memcpy(&e, t->reply, sizeof e);
        assert_int_not_equal(e.nodeid, 0);
        assert_int_equal(e.entry_valid, want);
        assert_int_equal(e.attr_valid, want);
        forget(t, e.nodeid, 1);
        assert_int_equal(call(t, FUSE_LOOKUP, 1, "nope", 5, NULL, 0, NULL, 0), 0);
        memcpy(&e, t->reply, sizeof e);
        assert_int_equal(e.nodeid, 0);
        assert_int_equal(e.entry_valid, want);
        struct fuse_getattr_in gi = { 0 };
        struct fuse_attr_out ao;
        assert_int_equal(call(t, FUSE_GETATTR, 1, &gi, sizeof gi, NULL, 0, NULL, 0), 0);
        memcpy(&ao, t->reply, sizeof ao);
        assert_int_equal(ao.attr_valid, want);
        uint64_t fh;
        assert_int_equal(create(t, 1, always ? "c1" : "c0", O_WRONLY, 0644, &e, &fh), 0);
        assert_int_equal(e.entry_valid, want);
        assert_int_equal(e.attr_valid, want);
        assert_int_equal(release(t, fh, false), 0);
        forget(t, e.nodeid, 1);
    }
}

static void create_write_read(void **state)
{
    struct t *t = *state;
    struct fuse_entry_out e;
    uint64_t fh;
    assert_int_equal(create(t, 1, "new", O_RDWR | O_CREAT, S_IFREG | 0640, &e, &fh), 0);
    /* close() needs no FLUSH: writes are synchronous, locks the guest's. */
    assert_int_equal(t->open_flags, FOPEN_NOFLUSH);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "new"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(e.attr.ino, st.st_ino);
    /* Already there: CREATE is always exclusive. */
    uint64_t fh2;
    assert_int_equal(create(t, 1, "new", O_RDWR | O_CREAT, 0644, &e, &fh2), -EEXIST);

    static uint8_t data[300000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + i / 251);
    assert_int_equal(write_(t, fh, 0, data, sizeof data), 0);
    assert_int_equal(write_(t, fh, sizeof data, "tail", 4), 0);
    static uint8_t back[300004];
    assert_int_equal(read_(t, fh, 0, sizeof back, back), sizeof back);
    assert_memory_equal(back, data, sizeof data);
    assert_memory_equal(back + sizeof data, "tail", 4);
    /* Short read at the end, empty past it. */
    assert_int_equal(read_(t, fh, sizeof data + 2, 100, back), 2);
    assert_memory_equal(back, "il", 2);
    assert_int_equal(read_(t, fh, 1u << 30, 100, back), 0);
    struct fuse_flush_in fl = { .fh = fh };
    assert_int_equal(call(t, FUSE_FLUSH, e.nodeid, &fl, sizeof fl, NULL, 0, NULL, 0), 0);
    struct fuse_fsync_in fs = { .fh = fh, .fsync_flags = 1 };
    assert_int_equal(call(t, FUSE_FSYNC, e.nodeid, &fs, sizeof fs, NULL, 0, NULL, 0), 0);
    fs.fsync_flags = 0;
    assert_int_equal(call(t, FUSE_FSYNC, e.nodeid, &fs, sizeof fs, NULL, 0, NULL, 0), 0);
    assert_int_equal(stats(t).bytes_written, sizeof data + 4);
    assert_true(stats(t).bytes_read >= sizeof data + 4);
    assert_int_equal(release(t, fh, false), 0);
    assert_int_equal(release(t, fh, false), -EBADF);
    assert_int_equal(stats(t).open_handles, 0);

    char host[16];
    assert_int_equal(lstat(path_in(t, "new"), &st), 0);
    assert_int_equal(st.st_size, sizeof data + 4);
    /* OPEN of an existing file, O_APPEND honoured. */
    writefile(path_in(t, "old"), "abc");
    uint64_t node = lookup_ok(t, 1, "old");
    assert_int_equal(open_(t, node, O_WRONLY | O_APPEND, &fh, false), 0);
    assert_int_equal(t->open_flags, FOPEN_NOFLUSH);
    assert_int_equal(write_(t, fh, 0, "def", 3), 0);
    assert_string_equal(readfile(path_in(t, "old"), host, sizeof host), "abcdef");
    /* A write-only handle cannot be read. */
    assert_int_equal(read_(t, fh, 0, 3, back), -EBADF);
    assert_int_equal(release(t, fh, false), 0);
}

static void setattr_mode_size_times_owner(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "f"), "0123456789");
    uint64_t f = lookup_ok(t, 1, "f");
    struct fuse_setattr_in in = { .valid = FATTR_MODE, .mode = S_IFREG | 04755 };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), 0);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755); /* no set-user-ID from the guest */
    struct fuse_attr_out ao;
    memcpy(&ao, t->reply, sizeof ao);
    assert_int_equal(ao.attr.mode & 07777, 0755);

    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE, .size = 4 };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), 0);
    char buf[32];
    assert_string_equal(readfile(path_in(t, "f"), buf, sizeof buf), "0123");
    /* Through an open handle, and a made-up one. */
    uint64_t fh;
    assert_int_equal(open_(t, f, O_RDWR, &fh, false), 0);
    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE | FATTR_FH, .size = 2, .fh = fh };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), 0);
    assert_string_equal(readfile(path_in(t, "f"), buf, sizeof buf), "01");
    in.fh = fh + (1ull << 32);
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), -EBADF);
    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE, .size = 1ull << 63 };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), -EINVAL);
    release(t, fh, false);

    in = (struct fuse_setattr_in){ .valid = FATTR_ATIME | FATTR_MTIME,
                                   .atime = 1000000,
                                   .atimensec = 5,
                                   .mtime = 2000000,
                                   .mtimensec = 7 };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), 0);
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    assert_int_equal(st.st_atim.tv_sec, 1000000);
    assert_int_equal(st.st_mtim.tv_sec, 2000000);
    assert_int_equal(st.st_mtim.tv_nsec, 7);
    in = (struct fuse_setattr_in){ .valid = FATTR_MTIME | FATTR_MTIME_NOW };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), 0);
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    assert_true(st.st_mtim.tv_sec > 2000000);
    in = (struct fuse_setattr_in){ .valid = FATTR_MTIME, .mtimensec = 2000000000 };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), -EINVAL);

    /* Owner: our own uid always; another only with CAP_CHOWN. */
    in = (struct fuse_setattr_in){ .valid = FATTR_UID | FATTR_GID,
                                   .uid = geteuid(),
                                   .gid = getegid() };
    assert_int_equal(call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0), 0);
    in.uid = 12345;
    int r = call(t, FUSE_SETATTR, f, &in, sizeof in, NULL, 0, NULL, 0);
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    if (geteuid() == 0) {
        assert_int_equal(r, 0);
        assert_int_equal(st.st_uid, 12345);
    } else {
        assert_int_equal(r, -EPERM);
        assert_int_equal(st.st_uid, geteuid());
    }
    /* A directory keeps set-group-ID; a truncated directory is refused. */
    uint64_t d;
    assert_int_equal(mkdir_(t, 1, "d", 0755, &d), 0);
    in = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = S_IFDIR | 02775 };
    assert_int_equal(call(t, FUSE_SETATTR, d, &in, sizeof in, NULL, 0, NULL, 0), 0);
    assert_int_equal(lstat(path_in(t, "d"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 02775);
    in = (struct fuse_setattr_in){ .valid = FATTR_SIZE };
    assert_int_equal(call(t, FUSE_SETATTR, d, &in, sizeof in, NULL, 0, NULL, 0), -EISDIR);
}

static void symlink_and_readlink(void **state)
{
    struct t *t = *state;
    const char *target = "../../../etc/passwd";
    int r = call(t, FUSE_SYMLINK, 1, "l", 2, target, strlen(target) + 1, NULL, 0);
    assert_int_equal(r, 0);
    struct fuse_entry_out e;
    memcpy(&e, t->reply, sizeof e);
    assert_true(S_ISLNK(e.attr.mode));
    char buf[PATH_MAX];
    ssize_t n = readlink(path_in(t, "l"), buf, sizeof buf);
    assert_int_equal(n, strlen(target));
    assert_int_equal(call(t, FUSE_READLINK, e.nodeid, NULL, 0, NULL, 0, NULL, 0), 0);
    assert_int_equal(t->len, strlen(target));
    assert_memory_equal(t->reply, target, t->len);
    /* Not a symlink; a link with no target; a name missing its NUL. */
    writefile(path_in(t, "f"), "");
    assert_int_equal(call(t, FUSE_READLINK, lookup_ok(t, 1, "f"), NULL, 0, NULL, 0, NULL, 0),
                     -EINVAL);
    assert_int_equal(call(t, FUSE_SYMLINK, 1, "m", 2, "", 1, NULL, 0), -EINVAL);
    assert_int_equal(call(t, FUSE_SYMLINK, 1, "m", 2, "abc", 3, NULL, 0), -EINVAL);
    assert_int_equal(call(t, FUSE_SYMLINK, 1, "l", 2, "x", 2, NULL, 0), -EEXIST);
    assert_int_equal(access(path_in(t, "m"), F_OK), -1);
}

static void mknod_files_and_fifos_only(void **state)
{
    struct t *t = *state;
    struct fuse_mknod_in in = { .mode = S_IFREG | 0600 };
    assert_int_equal(call(t, FUSE_MKNOD, 1, &in, sizeof in, "reg", 4, NULL, 0), 0);
    in.mode = S_IFIFO | 0600;
    assert_int_equal(call(t, FUSE_MKNOD, 1, &in, sizeof in, "fifo", 5, NULL, 0), 0);
    struct fuse_entry_out e;
    memcpy(&e, t->reply, sizeof e);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "reg"), &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(lstat(path_in(t, "fifo"), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    /* A FIFO is never opened here (it would block the thread). */
    uint64_t fh;
    assert_int_equal(open_(t, e.nodeid, O_RDONLY, &fh, false), -ENXIO);

    in.mode = S_IFCHR | 0666;
    in.rdev = makedev(1, 3); /* /dev/null */
    assert_int_equal(call(t, FUSE_MKNOD, 1, &in, sizeof in, "null", 5, NULL, 0), -EPERM);
    in.mode = S_IFBLK | 0666;
    assert_int_equal(call(t, FUSE_MKNOD, 1, &in, sizeof in, "blk", 4, NULL, 0), -EPERM);
    in.mode = S_IFSOCK | 0666;
    assert_int_equal(call(t, FUSE_MKNOD, 1, &in, sizeof in, "sock", 5, NULL, 0), -EPERM);
    assert_int_equal(lstat(path_in(t, "null"), &st), -1);
    assert_int_equal(lstat(path_in(t, "blk"), &st), -1);
}

static void mkdir_unlink_rmdir(void **state)
{
    struct t *t = *state;
    uint64_t d;
    assert_int_equal(mkdir_(t, 1, "d", 0775, &d), 0);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "d"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* The guest's mode, not cut by vmlet's own umask. */
    assert_int_equal(st.st_mode & 0777, 0775);
    assert_int_equal(mkdir_(t, 1, "d", 0755, NULL), -EEXIST);
    assert_int_equal(mkdir_(t, d, "sub", 0755, NULL), 0);
    writefile(path_in(t, "d/f"), "x");
    assert_int_equal(call(t, FUSE_RMDIR, 1, "d", 2, NULL, 0, NULL, 0), -ENOTEMPTY);
    assert_int_equal(call(t, FUSE_UNLINK, d, "f", 2, NULL, 0, NULL, 0), 0);
    assert_int_equal(call(t, FUSE_UNLINK, d, "sub", 4, NULL, 0, NULL, 0), -EISDIR);
    assert_int_equal(call(t, FUSE_RMDIR, d, "sub", 4, NULL, 0, NULL, 0), 0);
    assert_int_equal(call(t, FUSE_RMDIR, 1, "d", 2, NULL, 0, NULL, 0), 0);
    assert_int_equal(lstat(path_in(t, "d"), &st), -1);
    /* Removed, but held: the guest still has the inode until it forgets. */
    struct fuse_attr a;
    assert_int_equal(getattr(t, d, &a), 0);
    assert_int_equal(call(t, FUSE_UNLINK, 1, "d", 2, NULL, 0, NULL, 0), -ENOENT);
}

static void unlinked_while_open(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "f"), "still here");
    uint64_t f = lookup_ok(t, 1, "f"), fh;
    assert_int_equal(open_(t, f, O_RDONLY, &fh, false), 0);
    assert_int_equal(call(t, FUSE_UNLINK, 1, "f", 2, NULL, 0, NULL, 0), 0);
    char buf[32];
    assert_int_equal(read_(t, fh, 0, sizeof buf, buf), 10);
    assert_memory_equal(buf, "still here", 10);
    assert_int_equal(release(t, fh, false), 0);
}

static int rename2(struct t *t, uint64_t from, const char *a, uint64_t to, const char *b,
                   uint32_t flags)
{
    struct fuse_rename2_in in = { .newdir = to, .flags = flags };
    return call(t, FUSE_RENAME2, from, &in, sizeof in, a, strlen(a) + 1, b, strlen(b) + 1);
}

static void rename_and_rename2(void **state)
{
    struct t *t = *state;
    char buf[32];
    writefile(path_in(t, "a"), "A");
    writefile(path_in(t, "b"), "B");
    uint64_t d;
    assert_int_equal(mkdir_(t, 1, "d", 0755, &d), 0);
    struct fuse_rename_in in = { .newdir = d };
    assert_int_equal(call(t, FUSE_RENAME, 1, &in, sizeof in, "a", 2, "a2", 3), 0);
    assert_string_equal(readfile(path_in(t, "d/a2"), buf, sizeof buf), "A");
    assert_int_equal(access(path_in(t, "a"), F_OK), -1);
    /* Over an existing file, then NOREPLACE refusing to. */
    assert_int_equal(rename2(t, d, "a2", 1, "b", 0), 0);
    assert_string_equal(readfile(path_in(t, "b"), buf, sizeof buf), "A");
    writefile(path_in(t, "c"), "C");
    assert_int_equal(rename2(t, 1, "c", 1, "b", RENAME_NOREPLACE), -EEXIST);
    assert_string_equal(readfile(path_in(t, "b"), buf, sizeof buf), "A");
    assert_int_equal(rename2(t, 1, "c", 1, "b", RENAME_EXCHANGE), 0);
    assert_string_equal(readfile(path_in(t, "b"), buf, sizeof buf), "C");
    assert_string_equal(readfile(path_in(t, "c"), buf, sizeof buf), "A");
    assert_int_equal(rename2(t, 1, "c", 1, "b", RENAME_WHITEOUT), -EINVAL);
    assert_int_equal(rename2(t, 1, "c", 1, "b", 0x100), -EINVAL);
    /* To a directory the guest made up. */
    assert_int_equal(rename2(t, 1, "c", 0x500000007ull, "b", 0), -EBADF);
    assert_int_equal(rename2(t, 1, "c", 1, "../b", 0), -EINVAL);
    assert_string_equal(readfile(path_in(t, "c"), buf, sizeof buf), "A");
}

/* Who owns what the guest creates: with vmlet as root, the guest caller
 * (the uid/gid in the request); otherwise vmlet's own user, whatever the
 * request says. A hard link changes no owner. */
static void new_files_owner(void **state)
{
    struct t *t = *state;
    bool root = geteuid() == 0;
    t->uid = 1234;
    t->gid = 5678;
    uid_t want_uid = root ? 1234 : geteuid();
    gid_t want_gid = root ? 5678 : getegid();
    struct fuse_entry_out e;
    uint64_t fh;
    assert_int_equal(create(t, 1, "owned", O_RDWR, S_IFREG | 0644, &e, &fh), 0);
    assert_int_equal(e.attr.uid, want_uid);
    uint64_t dir;
    assert_int_equal(mkdir_(t, 1, "owneddir", 0755, &dir), 0);
    assert_int_equal(call(t, FUSE_SYMLINK, 1, "ownedlink", 10, "owned", 6, NULL, 0), 0);
    const char *names[] = { "owned", "owneddir", "ownedlink" };
    for (unsigned i = 0; i < 3; i++) {
        struct stat st;
        assert_int_equal(lstat(path_in(t, names[i]), &st), 0);
        assert_int_equal(st.st_uid, want_uid);
        assert_int_equal(st.st_gid, want_gid);
    }
    /* LINK of a file vmlet's user owns, by another caller: the owner stays. */
    writefile(path_in(t, "mine"), "x");
    uint64_t mine = lookup_ok(t, 1, "mine");
    struct fuse_link_in li = { .oldnodeid = mine };
    assert_int_equal(call(t, FUSE_LINK, 1, &li, sizeof li, "mine2", 6, NULL, 0), 0);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "mine2"), &st), 0);
    assert_int_equal(st.st_uid, geteuid());
    release(t, fh, false);
}

static void link_in_share(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "f"), "F");
    uint64_t f = lookup_ok(t, 1, "f");
    struct fuse_link_in in = { .oldnodeid = f };
    assert_int_equal(call(t, FUSE_LINK, 1, &in, sizeof in, "g", 2, NULL, 0), 0);
    struct fuse_entry_out e;
    memcpy(&e, t->reply, sizeof e);
    assert_int_equal(e.nodeid, f);
    assert_int_equal(e.attr.nlink, 2);
    struct stat a, b;
    assert_int_equal(lstat(path_in(t, "f"), &a), 0);
    assert_int_equal(lstat(path_in(t, "g"), &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    /* A directory cannot be linked; a made-up source is refused. */
    uint64_t d;
    assert_int_equal(mkdir_(t, 1, "d", 0755, &d), 0);
    in.oldnodeid = d;
    assert_int_equal(call(t, FUSE_LINK, 1, &in, sizeof in, "d2", 3, NULL, 0), -EPERM);
    in.oldnodeid = 77;
    assert_int_equal(call(t, FUSE_LINK, 1, &in, sizeof in, "x", 2, NULL, 0), -EBADF);
    /* A symlink to "/" is linked as the symlink, never as what it names. */
    assert_int_equal(symlink("/", path_in(t, "root")), 0);
    in.oldnodeid = lookup_ok(t, 1, "root");
    assert_int_equal(call(t, FUSE_LINK, 1, &in, sizeof in, "root2", 6, NULL, 0), 0);
    assert_int_equal(lstat(path_in(t, "root2"), &a), 0);
    assert_true(S_ISLNK(a.st_mode));
}

/* Reads a whole directory with READDIR(PLUS) of `size` bytes per request;
 * returns the number of entries, names appended to names (one per line). */
static int readdir_all(struct t *t, uint64_t dir, bool plus, uint32_t size, char *names, size_t cap,
                       uint64_t start)
{
    uint64_t fh;
    assert_int_equal(open_(t, dir, O_RDONLY, &fh, true), 0);
    assert_int_equal(t->open_flags, 0); /* directories are never flushed */
    int n = 0;
    uint64_t off = start;
    strcpy(names, "\n");
    for (;;) {
        struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
        assert_int_equal(
            call(t, plus ? FUSE_READDIRPLUS : FUSE_READDIR, dir, &in, sizeof in, NULL, 0, NULL, 0),
            0);
        if (t->len == 0)
            break;
        assert_true(t->len <= size);
        for (size_t p = 0; p < t->len;) {
            struct fuse_dirent de;
            size_t head = plus ? offsetof(struct fuse_direntplus, dirent) : 0;
            memcpy(&de, t->reply + p + head, sizeof de);
            char name[NAME_MAX + 1];
            memcpy(name, t->reply + p + head + FUSE_NAME_OFFSET, de.namelen);
            name[de.namelen] = 0;
            if (plus) {
                struct fuse_entry_out e;
                memcpy(&e, t->reply + p, sizeof e);
                bool dots = !strcmp(name, ".") || !strcmp(name, "..");
                assert_true(dots ? e.nodeid == 0 : e.nodeid != 0);
                if (!dots) {
                    assert_int_equal(e.attr.ino, de.ino);
                    struct fuse_attr a;
                    assert_int_equal(getattr(t, e.nodeid, &a), 0);
                }
            }
            strcat(names, name);
            strcat(names, "\n");
            assert_true(strlen(names) < cap);
            off = de.off;
            p += head + FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + de.namelen);
            n++;
        }
    }
    assert_int_equal(release(t, fh, true), 0);
    return n;
}

static void readdir_and_readdirplus(void **state)
{
    struct t *t = *state;
    char p[64];
    for (int i = 0; i < 100; i++) {
        snprintf(p, sizeof p, "file-with-a-longish-name-%03d", i);
        writefile(path_in(t, p), "");
    }
    static char names[16384];
    assert_int_equal(readdir_all(t, 1, false, 512, names, sizeof names, 0), 102);
    for (int i = 0; i < 100; i++) {
        snprintf(p, sizeof p, "\nfile-with-a-longish-name-%03d\n", i);
        assert_non_null(strstr(names, p));
        assert_null(strstr(strstr(names, p) + 1, p)); /* once */
    }
    assert_non_null(strstr(names, ".\n"));
    assert_int_equal(stats(t).inodes, 0);
    /* PLUS: every entry looked up but "." and "..". */
    assert_int_equal(readdir_all(t, 1, true, 4096, names, sizeof names, 0), 102);
    assert_int_equal(stats(t).inodes, 100);

    /* The offset cookie: start from the 50th entry's, get the rest. */
    uint64_t fh;
    assert_int_equal(open_(t, 1, O_RDONLY, &fh, true), 0);
    struct fuse_read_in in = { .fh = fh, .size = 4096 };
    uint64_t off50 = 0;
    int seen = 0;
    while (seen < 50) {
        in.offset = off50;
        assert_int_equal(call(t, FUSE_READDIR, 1, &in, sizeof in, NULL, 0, NULL, 0), 0);
        for (size_t q = 0; q < t->len && seen < 50;) {
            struct fuse_dirent de;
            memcpy(&de, t->reply + q, sizeof de);
            off50 = de.off;
            q += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + de.namelen);
            seen++;
        }
    }
    release(t, fh, true);
    assert_int_equal(readdir_all(t, 1, false, 4096, names, sizeof names, off50), 52);

    /* A size too small for one entry; an fh of a file; a made-up fh. */
    assert_int_equal(open_(t, 1, O_RDONLY, &fh, true), 0);
    in = (struct fuse_read_in){ .fh = fh, .size = 8 };
    assert_int_equal(call(t, FUSE_READDIR, 1, &in, sizeof in, NULL, 0, NULL, 0), -EINVAL);
    in = (struct fuse_read_in){ .fh = fh, .size = 4096, .offset = 1ull << 63 };
    assert_int_equal(call(t, FUSE_READDIR, 1, &in, sizeof in, NULL, 0, NULL, 0), -EINVAL);
    struct fuse_fsync_in fs = { .fh = fh };
    assert_int_equal(call(t, FUSE_FSYNCDIR, 1, &fs, sizeof fs, NULL, 0, NULL, 0), 0);
    uint64_t ffh;
    assert_int_equal(
        open_(t, lookup_ok(t, 1, "file-with-a-longish-name-000"), O_RDONLY, &ffh, false), 0);
    in = (struct fuse_read_in){ .fh = ffh, .size = 4096 };
    assert_int_equal(call(t, FUSE_READDIR, 1, &in, sizeof in, NULL, 0, NULL, 0), -EBADF);
    assert_int_equal(release(t, ffh, true), -EBADF); /* a file's fh as a dir's */
    assert_int_equal(release(t, fh, false), -EBADF);
    assert_int_equal(release(t, ffh, false), 0);
    assert_int_equal(release(t, fh, true), 0);
    /* OPENDIR of a file, OPEN of a directory. */
    assert_int_equal(open_(t, lookup_ok(t, 1, "file-with-a-longish-name-001"), O_RDONLY, &fh, true),
                     -ENOTDIR);
    assert_int_equal(open_(t, 1, O_RDONLY, &fh, false), -EISDIR);
}

static void statfs_access_fallocate_lseek(void **state)
{
    struct t *t = *state;
    assert_int_equal(call(t, FUSE_STATFS, 1, NULL, 0, NULL, 0, NULL, 0), 0);
    struct fuse_statfs_out so;
    assert_int_equal(t->len, sizeof so);
    memcpy(&so, t->reply, sizeof so);
    assert_true(so.st.bsize > 0);
    assert_int_equal(so.st.namelen, 255);

    writefile(path_in(t, "f"), "");
    assert_int_equal(chmod(path_in(t, "f"), 0500), 0);
    uint64_t f = lookup_ok(t, 1, "f");
    struct fuse_access_in ai = { .mask = R_OK | X_OK };
    assert_int_equal(call(t, FUSE_ACCESS, f, &ai, sizeof ai, NULL, 0, NULL, 0), 0);
    ai.mask = W_OK;
    assert_int_equal(call(t, FUSE_ACCESS, f, &ai, sizeof ai, NULL, 0, NULL, 0),
                     geteuid() == 0 ? 0 : -EACCES);
    ai.mask = 0x100;
    assert_int_equal(call(t, FUSE_ACCESS, f, &ai, sizeof ai, NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(chmod(path_in(t, "f"), 0600), 0);

    uint64_t fh;
    assert_int_equal(open_(t, f, O_RDWR, &fh, false), 0);
    struct fuse_fallocate_in fa = { .fh = fh, .offset = 1 << 20, .length = 4096 };
    assert_int_equal(call(t, FUSE_FALLOCATE, f, &fa, sizeof fa, NULL, 0, NULL, 0), 0);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    assert_int_equal(st.st_size, (1 << 20) + 4096);
    fa.mode = FALLOC_FL_KEEP_SIZE;
    fa.offset = 4 << 20;
    assert_int_equal(call(t, FUSE_FALLOCATE, f, &fa, sizeof fa, NULL, 0, NULL, 0), 0);
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    assert_int_equal(st.st_size, (1 << 20) + 4096);
    fa.offset = INT64_MAX;
    assert_int_equal(call(t, FUSE_FALLOCATE, f, &fa, sizeof fa, NULL, 0, NULL, 0), -EINVAL);
    fa.offset = 1ull << 63;
    assert_int_equal(call(t, FUSE_FALLOCATE, f, &fa, sizeof fa, NULL, 0, NULL, 0), -EINVAL);

    assert_int_equal(write_(t, fh, 8192, "data", 4), 0);
    struct fuse_lseek_in li = { .fh = fh, .offset = 0, .whence = SEEK_DATA };
    assert_int_equal(call(t, FUSE_LSEEK, f, &li, sizeof li, NULL, 0, NULL, 0), 0);
    struct fuse_lseek_out lo;
    memcpy(&lo, t->reply, sizeof lo);
    assert_true(lo.offset <= 8192);
    li.whence = SEEK_HOLE;
    li.offset = 8192;
    assert_int_equal(call(t, FUSE_LSEEK, f, &li, sizeof li, NULL, 0, NULL, 0), 0);
    memcpy(&lo, t->reply, sizeof lo);
    assert_true(lo.offset > 8192);
    li.whence = SEEK_END;
    assert_int_equal(call(t, FUSE_LSEEK, f, &li, sizeof li, NULL, 0, NULL, 0), -EINVAL);
    li.whence = SEEK_DATA;
    li.offset = 1ull << 63;
    assert_int_equal(call(t, FUSE_LSEEK, f, &li, sizeof li, NULL, 0, NULL, 0), -EINVAL);
    release(t, fh, false);
}

static void xattrs_and_unknown_opcodes(void **state)
{
    struct t *t = *state;
    struct fuse_getxattr_in gx = { .size = 100 };
    assert_int_equal(call(t, FUSE_GETXATTR, 1, &gx, sizeof gx, "user.a", 7, NULL, 0), -ENOSYS);
    assert_int_equal(call(t, FUSE_LISTXATTR, 1, &gx, sizeof gx, NULL, 0, NULL, 0), -ENOSYS);
    struct fuse_setxattr_in sx = { .size = 1 };
    assert_int_equal(call(t, FUSE_SETXATTR, 1, &sx, sizeof sx, "user.a", 7, "v", 1), -ENOSYS);
    static char big[70000];
    assert_int_equal(call(t, FUSE_SETXATTR, 1, &sx, sizeof sx, big, sizeof big, NULL, 0), -ENOSYS);
    assert_int_equal(call(t, FUSE_REMOVEXATTR, 1, "user.a", 7, NULL, 0, NULL, 0), -ENOSYS);
    uint32_t ops[] = { FUSE_GETLK,        FUSE_SETLK,  FUSE_IOCTL,
                       FUSE_POLL,         FUSE_BMAP,   FUSE_COPY_FILE_RANGE,
                       FUSE_SETUPMAPPING, FUSE_SYNCFS, FUSE_TMPFILE,
                       FUSE_NOTIFY_REPLY, 4000,        0 };
    char args[64] = { 0 };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        assert_int_equal(call(t, ops[i], 1, args, sizeof args, NULL, 0, NULL, 0), -ENOSYS);
    assert_true(stats(t).by_opcode[FUSE_SETLK] == 1);
    assert_true(stats(t).errors >= 15);
}

/* --- hostile requests ------------------------------------------------------------- */

static void made_up_and_forgotten_ids(void **state)
{
    struct t *t = *state;
    struct fuse_attr a;
    uint64_t before = stats(t).malformed;
    assert_int_equal(getattr(t, 0, &a), -EBADF);
    assert_int_equal(getattr(t, 2, &a), -EBADF);
    assert_int_equal(getattr(t, UINT64_MAX, &a), -EBADF);
    assert_int_equal(getattr(t, (5ull << 32) | 1, &a), -EBADF); /* root's slot, wrong gen */
    assert_int_equal(stats(t).malformed, before + 4);
    writefile(path_in(t, "f"), "x");
    uint64_t f = lookup_ok(t, 1, "f");
    forget(t, f, 1);
    assert_int_equal(getattr(t, f, &a), -EBADF);
    assert_int_equal(call(t, FUSE_LOOKUP, f, "x", 2, NULL, 0, NULL, 0), -EBADF);
    /* Its slot reused: the old nodeid still does not name the new inode. */
    writefile(path_in(t, "g"), "y");
    uint64_t g = lookup_ok(t, 1, "g");
    assert_int_equal(g & 0xffffffff, f & 0xffffffff);
    assert_true(g != f);
    assert_int_equal(getattr(t, f, &a), -EBADF);
    /* Forgetting too much or what was never given: no reply, no harm. */
    forget(t, g, 1000);
    forget(t, g, 1);
    forget(t, 0xdead00000001ull, 1);
    forget(t, 1, 5); /* the root stays */
    assert_int_equal(getattr(t, 1, &a), 0);
    /* File handles: made up, released, of another slot's generation. */
    char buf[8];
    assert_int_equal(read_(t, 0, 0, 1, buf), -EBADF);
    assert_int_equal(read_(t, 1, 0, 1, buf), -EBADF);
    assert_int_equal(read_(t, UINT64_MAX, 0, 1, buf), -EBADF);
    uint64_t fh;
    assert_int_equal(open_(t, lookup_ok(t, 1, "g"), O_RDONLY, &fh, false), 0);
    assert_int_equal(read_(t, fh, 0, 1, buf), 1);
    assert_int_equal(read_(t, fh ^ (1ull << 32), 0, 1, buf), -EBADF);
    release(t, fh, false);
    assert_int_equal(read_(t, fh, 0, 1, buf), -EBADF);
    assert_int_equal(write_(t, fh, 0, "z", 1), -EBADF);
    struct fuse_fsync_in fs = { .fh = fh };
    assert_int_equal(call(t, FUSE_FSYNC, 1, &fs, sizeof fs, NULL, 0, NULL, 0), -EBADF);
    struct fuse_flush_in fl = { .fh = fh };
    assert_int_equal(call(t, FUSE_FLUSH, 1, &fl, sizeof fl, NULL, 0, NULL, 0), -EBADF);
}

/* --- snapshots ------------------------------------------------------------- */

/* The server a restore makes: a new one over the same share, loaded with
 * the saved state. 0, or -1 with why. */
static int restore_from(struct t *t, const uint8_t *st, size_t len, char *why, size_t whylen)
{
    fuse_server_free(t->s);
    vmlet_error err = { 0 };
    t->s = fuse_server_new(t->share, false, &err);
    assert_non_null(t->s);
    return fuse_server_load(t->s, st, len, why, whylen);
}

/* After a restore nothing the guest held before names a file: its old
 * nodeids answer ESTALE (the guest's VFS looks the path up again), its
 * old fhs EBADF, FORGET and RELEASE of them do nothing; no nodeid or fh
 * handed out afterwards equals an old one, even for slots used many
 * times before; INIT is not asked for again. */
static void snapshot_generations(void **state)
{
    struct t *t = *state;
    char name[16];
    uint64_t old[64], fh[8];
    unsigned nold = 0;
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "f%d", i);
        writefile(path_in(t, name), name);
    }
    /* Churn: slot 1's generation goes up with every forget. */
    for (int i = 0; i < 20; i++) {
        old[nold] = lookup_ok(t, 1, "f0");
        forget(t, old[nold++], 1);
    }
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "f%d", i);
        old[nold++] = lookup_ok(t, 1, name);
        assert_int_equal(open_(t, old[nold - 1], O_RDONLY, &fh[i], false), 0);
    }
    uint8_t st[FUSE_SERVER_STATE_SIZE + 8];
    assert_int_equal(fuse_server_save(t->s, st, 8), -1);
    assert_int_equal(fuse_server_save(t->s, st, sizeof st), FUSE_SERVER_STATE_SIZE);
    char why[256] = "";
    assert_int_equal(restore_from(t, st, FUSE_SERVER_STATE_SIZE, why, sizeof why), 0);

    struct fuse_attr a;
    assert_int_equal(getattr(t, 1, &a), 0); /* no INIT again */
    uint64_t malformed = stats(t).malformed;
    for (unsigned i = 0; i < nold; i++)
        assert_int_equal(getattr(t, old[i], &a), -ESTALE);
    assert_int_equal(call(t, FUSE_LOOKUP, old[nold - 1], "x", 2, NULL, 0, NULL, 0), -ESTALE);
    assert_int_equal(stats(t).malformed, malformed); /* stale is not malformed */
    char buf[8];
    assert_int_equal(read_(t, fh[0], 0, 1, buf), -EBADF);
    forget(t, old[nold - 1], 1);
    assert_int_equal(release(t, fh[1], false), 0);
    assert_int_equal(stats(t).inodes, 0);
    assert_int_equal(stats(t).open_handles, 0);
    /* By path again: new nodeids and fhs, none an old one. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof name, "f%d", i);
            uint64_t n = lookup_ok(t, 1, name), h;
            assert_int_equal(open_(t, n, O_RDONLY, &h, false), 0);
            for (unsigned k = 0; k < nold; k++)
                assert_true(n != old[k]);
            for (int k = 0; k < 8; k++)
                assert_true(h != fh[k]);
            assert_int_equal(read_(t, h, 0, 2, buf), 2);
            assert_memory_equal(buf, name, 2);
            assert_int_equal(release(t, h, false), 0);
            forget(t, n, 1);
        }
    }
    /* A second save starts higher still: restored twice, still no reuse. */
    uint32_t gen1, gen2;
    memcpy(&gen1, st + 20, 4);
    assert_int_equal(fuse_server_save(t->s, st, sizeof st), FUSE_SERVER_STATE_SIZE);
    memcpy(&gen2, st + 20, 4);
    assert_true(gen2 > gen1);
}

/* The saved state is a file's: each field checked, the message naming it. */
static void snapshot_state_checked(void **state)
{
    struct t *t = *state;
    uint8_t good[FUSE_SERVER_STATE_SIZE], st[FUSE_SERVER_STATE_SIZE];
    assert_int_equal(fuse_server_save(t->s, good, sizeof good), FUSE_SERVER_STATE_SIZE);
    static const struct {
        unsigned at;
        uint32_t value;
        const char *why;
    } bad[] = {
        { 0, 2, "initialized is 2" },
        { 4, 6, "FUSE major 6" },
        { 8, 12, "FUSE minor 12" },
        { 8, 1000, "FUSE minor 1000" },
        { 12, 1u << 31, "INIT flags 0x80000000" },
        { 16, 4096, "max_write 4096" },
        { 20, 0, "generation 0" },
        { 20, UINT32_MAX, "generation 4294967295" },
    };
    char why[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(st, good, sizeof st);
        memcpy(st + bad[i].at, &bad[i].value, 4);
        why[0] = 0;
        assert_int_equal(restore_from(t, st, sizeof st, why, sizeof why), -1);
        assert_non_null(strstr(why, "shared directory state: "));
        if (!strstr(why, bad[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, why, bad[i].why);
    }
    assert_int_equal(restore_from(t, good, sizeof good - 1, why, sizeof why), -1);
    assert_string_equal(why, "shared directory state: 23 bytes, not 24");
    /* INIT values without an INIT. */
    memset(st, 0, sizeof st);
    st[8] = 31;
    st[20] = 1;
    assert_int_equal(restore_from(t, st, sizeof st, why, sizeof why), -1);
    assert_string_equal(why, "shared directory state: INIT values without an INIT");
    /* Saved before the guest's INIT: the restored server waits for it. */
    st[8] = 0;
    assert_int_equal(restore_from(t, st, sizeof st, why, sizeof why), 0);
    struct fuse_attr a;
    assert_int_equal(getattr(t, 1, &a), -EIO);
    do_init(t);
    assert_int_equal(getattr(t, 1, &a), 0);
    /* Only into a server that holds nothing yet. */
    writefile(path_in(t, "f"), "x");
    lookup_ok(t, 1, "f");
    assert_int_equal(fuse_server_load(t->s, good, sizeof good, why, sizeof why), -1);
    assert_non_null(strstr(why, "in use"));
}

static void hostile_names(void **state)
{
    struct t *t = *state;
    struct fuse_entry_out e;
    uint64_t before = stats(t).malformed;
    assert_int_equal(lookup(t, 1, "a/b", &e), -EINVAL);
    assert_int_equal(lookup(t, 1, "", &e), -EINVAL);
    assert_int_equal(lookup(t, 1, "/etc", &e), -EINVAL);
    char longname[NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[NAME_MAX + 1] = 0;
    assert_int_equal(lookup(t, 1, longname, &e), -ENAMETOOLONG);
    assert_int_equal(mkdir_(t, 1, longname, 0755, NULL), -ENAMETOOLONG);
    longname[NAME_MAX] = 0; /* exactly NAME_MAX is fine */
    assert_int_equal(mkdir_(t, 1, longname, 0755, NULL), 0);
    /* Not terminated within the request. */
    assert_int_equal(call(t, FUSE_LOOKUP, 1, "abc", 3, NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(call(t, FUSE_UNLINK, 1, "abc", 3, NULL, 0, NULL, 0), -EINVAL);
    struct fuse_mkdir_in mi = { .mode = 0755 };
    assert_int_equal(call(t, FUSE_MKDIR, 1, &mi, sizeof mi, "xyz", 3, NULL, 0), -EINVAL);
    assert_int_equal(call(t, FUSE_MKDIR, 1, &mi, sizeof mi, NULL, 0, NULL, 0), -EINVAL);
    struct fuse_rename_in ri = { .newdir = 1 };
    assert_int_equal(call(t, FUSE_RENAME, 1, &ri, sizeof ri, "a", 2, "b", 1), -EINVAL);
    assert_true(stats(t).malformed >= before + 5);
    /* "." is the directory itself; ".." at the root is the root; creating
     * or removing either is refused. */
    assert_int_equal(lookup(t, 1, ".", &e), 0);
    assert_int_equal(e.nodeid, 1);
    assert_int_equal(lookup(t, 1, "..", &e), 0);
    assert_int_equal(e.nodeid, 1);
    uint64_t d;
    assert_int_equal(mkdir_(t, 1, "d", 0755, &d), 0);
    assert_int_equal(lookup(t, d, ".", &e), 0);
    assert_int_equal(e.nodeid, d);
    assert_int_equal(lookup(t, d, "..", &e), -EINVAL);
    assert_int_equal(mkdir_(t, d, "..", 0755, NULL), -EINVAL);
    assert_int_equal(call(t, FUSE_RMDIR, d, ".", 2, NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(call(t, FUSE_UNLINK, 1, "..", 3, NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(rename2(t, d, "..", 1, "x", 0), -EINVAL);
    assert_int_equal(call(t, FUSE_SYMLINK, 1, "..", 3, "/", 2, NULL, 0), -EINVAL);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "d"), &st), 0);
}

/* A raw request, for lengths that lie: returns the reply length. */
static size_t raw(struct t *t, const void *req, size_t len, size_t out_cap)
{
    uint8_t copy[8192];
    memcpy(copy, req, len);
    struct iovec in[2] = { { copy, len / 2 }, { copy + len / 2, len - len / 2 } };
    struct iovec out = { reply_buf, out_cap };
    memset(reply_buf, 0, 64);
    size_t n = fuse_server_handle(t->s, in, 2, &out, 1);
    if (n) {
        struct fuse_out_header oh;
        memcpy(&oh, reply_buf, sizeof oh);
        assert_int_equal(oh.len, n);
        t->err = oh.error;
    }
    return n;
}

static void lengths_that_lie(void **state)
{
    struct t *t = *state;
    uint64_t m0 = stats(t).malformed;
    struct {
        struct fuse_in_header h;
        char name[8];
    } rq = { .h = { .len = sizeof rq, .opcode = FUSE_LOOKUP, .unique = 99, .nodeid = 1 },
             .name = "x" };
    writefile(path_in(t, "x"), "");
    assert_int_equal(raw(t, &rq, sizeof rq, 4096),
                     sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out));
    assert_int_equal(t->err, 0);
    /* Truncated header: nothing to answer to. */
    assert_int_equal(raw(t, &rq, 39, 4096), 0);
    assert_int_equal(raw(t, &rq, 0, 4096), 0);
    /* A length past what was written, or shorter than the header. */
    rq.h.len = sizeof rq + 1;
    assert_int_equal(raw(t, &rq, sizeof rq, 4096), sizeof(struct fuse_out_header));
    assert_int_equal(t->err, -EINVAL);
    rq.h.len = 20;
    raw(t, &rq, sizeof rq, 4096);
    assert_int_equal(t->err, -EINVAL);
    /* A length that cuts the name's NUL off. */
    rq.h.len = sizeof rq.h + 1;
    raw(t, &rq, sizeof rq, 4096);
    assert_int_equal(t->err, -EINVAL);
    /* No room for the reply header; room for the header but not the entry. */
    rq.h.len = sizeof rq;
    assert_int_equal(raw(t, &rq, sizeof rq, 15), 0);
    assert_int_equal(raw(t, &rq, sizeof rq, 32), sizeof(struct fuse_out_header));
    assert_int_equal(t->err, -EINVAL);
    assert_int_equal(stats(t).inodes, 1); /* the first lookup only */
    /* A huge non-WRITE request. */
    static uint8_t big[70000];
    struct fuse_in_header bh = {
        .len = sizeof big, .opcode = FUSE_LOOKUP, .unique = 5, .nodeid = 1
    };
    memcpy(big, &bh, sizeof bh);
    struct iovec in = { big, sizeof big }, out = { reply_buf, 4096 };
    assert_int_equal(fuse_server_handle(t->s, &in, 1, &out, 1), 16);
    struct fuse_out_header oh;
    memcpy(&oh, reply_buf, sizeof oh);
    assert_int_equal(oh.error, -E2BIG);
    /* Arguments shorter than the opcode's struct. */
    struct fuse_setattr_in sa = { .valid = FATTR_SIZE };
    assert_int_equal(call(t, FUSE_SETATTR, 1, &sa, 10, NULL, 0, NULL, 0), -EINVAL);
    struct fuse_read_in rd = { 0 };
    assert_int_equal(call(t, FUSE_READ, 1, &rd, 20, NULL, 0, NULL, 0), -EINVAL);
    assert_true(stats(t).malformed >= m0 + 9);
    /* A BATCH_FORGET whose count is past its entries: no reply, what is
     * there forgotten. */
    uint64_t x = lookup_ok(t, 1, "x");
    struct {
        struct fuse_batch_forget_in b;
        struct fuse_forget_one one[1];
    } bf = { .b = { .count = 1000 }, .one = { { .nodeid = x, .nlookup = 2 } } };
    assert_int_equal(call_noreply(t, FUSE_BATCH_FORGET, 0, &bf, sizeof bf), 0);
    assert_int_equal(stats(t).inodes, 0);
    assert_int_equal(call_noreply(t, FUSE_BATCH_FORGET, 0, &bf, 4), 0);
    assert_int_equal(call_noreply(t, FUSE_FORGET, x, &bf, 4), 0);
}

/* A BATCH_FORGET longer than any other request's arguments, split over
 * many iovecs: every entry honoured. */
static void long_batch_forget(void **state)
{
    struct t *t = *state;
    enum { N = 600 };
    char name[16];
    static struct fuse_forget_one one[N];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "f%d", i);
        writefile(path_in(t, name), "");
        one[i].nodeid = lookup_ok(t, 1, name);
        assert_int_equal(lookup(t, 1, name, &(struct fuse_entry_out){ 0 }), 0);
        one[i].nlookup = 2;
    }
    assert_int_equal(stats(t).inodes, N);
    static uint8_t req[sizeof(struct fuse_in_header) + 8 + sizeof one];
    struct fuse_in_header h = { .len = sizeof req, .opcode = FUSE_BATCH_FORGET, .unique = 1 };
    struct fuse_batch_forget_in b = { .count = N };
    memcpy(req, &h, sizeof h);
    memcpy(req + sizeof h, &b, sizeof b);
    memcpy(req + sizeof h + sizeof b, one, sizeof one);
    struct iovec in[100];
    size_t chunk = sizeof req / 100 + 1;
    for (int i = 0; i < 100; i++) {
        size_t at = i * chunk < sizeof req ? i * chunk : sizeof req;
        size_t len = at + chunk <= sizeof req ? chunk : sizeof req - at;
        in[i] = (struct iovec){ req + at, len };
    }
    struct iovec out = { reply_buf, 64 };
    assert_int_equal(fuse_server_handle(t->s, in, 100, &out, 1), 0);
    assert_int_equal(stats(t).inodes, 0);
}

static void read_write_bounds(void **state)
{
    struct t *t = *state;
    struct fuse_entry_out e;
    uint64_t fh;
    assert_int_equal(create(t, 1, "f", O_RDWR, 0644, &e, &fh), 0);
    static uint8_t data[FUSE_SERVER_MAX_WRITE + 1];
    assert_int_equal(write_(t, fh, 0, data, FUSE_SERVER_MAX_WRITE), 0);
    assert_int_equal(write_(t, fh, 0, data, FUSE_SERVER_MAX_WRITE + 1), -EINVAL);
    assert_int_equal(read_(t, fh, 0, FUSE_SERVER_MAX_WRITE, data), FUSE_SERVER_MAX_WRITE);
    assert_int_equal(read_(t, fh, 0, FUSE_SERVER_MAX_WRITE + 1, data), -EINVAL);
    assert_int_equal(read_(t, fh, 1ull << 63, 1, data), -EINVAL);
    assert_int_equal(read_(t, fh, INT64_MAX, 2, data), -EINVAL);
    assert_int_equal(write_(t, fh, UINT64_MAX - 1, "ab", 2), -EINVAL);
    assert_int_equal(write_(t, fh, INT64_MAX, "ab", 2), -EINVAL);
    /* WRITE whose size says more, or less, than the data it carries. */
    struct fuse_write_in w = { .fh = fh, .offset = 0, .size = 100 };
    assert_int_equal(call(t, FUSE_WRITE, 1, &w, sizeof w, "only ten b", 10, NULL, 0), -EINVAL);
    w.size = 2;
    assert_int_equal(call(t, FUSE_WRITE, 1, &w, sizeof w, "only ten b", 10, NULL, 0), -EINVAL);
    assert_int_equal(call(t, FUSE_WRITE, 1, &w, 30, NULL, 0, NULL, 0), -EINVAL);
    /* A READ larger than the driver's buffer. */
    struct fuse_read_in r = { .fh = fh, .size = 8192 };
    assert_int_equal(call_cap(t, FUSE_READ, 1, &r, sizeof r, NULL, 0, NULL, 0, 4096), -EINVAL);
    r.size = 4096 - 16;
    assert_int_equal(call_cap(t, FUSE_READ, 1, &r, sizeof r, NULL, 0, NULL, 0, 4096), 0);
    assert_int_equal(t->len, 4096 - 16);
    struct stat st;
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    assert_int_equal(st.st_size, FUSE_SERVER_MAX_WRITE);
    release(t, fh, false);
}

/* Every cut of a request into two iovecs gives the same answer. */
static void every_split_point(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "some-file"), "0123456789");
    uint64_t f = lookup_ok(t, 1, "some-file"), fh;
    assert_int_equal(open_(t, f, O_RDWR, &fh, false), 0);
    struct {
        struct fuse_in_header h;
        struct fuse_write_in w;
        char data[6];
    } rq = { .h = { .len = offsetof(typeof(rq), data) + 6,
                    .opcode = FUSE_WRITE,
                    .unique = 1,
                    .nodeid = f },
             .w = { .fh = fh, .offset = 2, .size = 6 },
             .data = "ABCDEF" };
    for (size_t cut = 0; cut <= rq.h.len; cut++) {
        struct iovec in[2] = { { &rq, cut }, { (uint8_t *)&rq + cut, rq.h.len - cut } };
        uint8_t out[64];
        struct iovec ov[2] = { { out, cut % 17 }, { out + cut % 17, sizeof out - cut % 17 } };
        assert_int_equal(fuse_server_handle(t->s, in, 2, ov, 2), 24);
        struct fuse_out_header oh;
        memcpy(&oh, out, sizeof oh);
        assert_int_equal(oh.error, 0);
        rq.data[0]++;
    }
    char buf[16], want[16] = "01?BCDEF89";
    want[2] = (char)('A' + rq.h.len); /* the last of len + 1 writes */
    assert_string_equal(readfile(path_in(t, "some-file"), buf, sizeof buf), want);
    release(t, fh, false);
}

/* Random requests from a small set of interesting values (FALLOCATE left
 * out: it would really reserve space): the server answers each with a
 * well-formed reply or nothing, and nothing outside the share changes. */
static void random_requests(void **state)
{
    struct t *t = *state;
    static const uint32_t ops[] = {
        FUSE_LOOKUP,       FUSE_FORGET,      FUSE_GETATTR,
        FUSE_SETATTR,      FUSE_READLINK,    FUSE_SYMLINK,
        FUSE_MKNOD,        FUSE_MKDIR,       FUSE_UNLINK,
        FUSE_RMDIR,        FUSE_RENAME,      FUSE_LINK,
        FUSE_OPEN,         FUSE_READ,        FUSE_WRITE,
        FUSE_STATFS,       FUSE_RELEASE,     FUSE_FSYNC,
        FUSE_FLUSH,        FUSE_INIT,        FUSE_OPENDIR,
        FUSE_READDIR,      FUSE_RELEASEDIR,  FUSE_FSYNCDIR,
        FUSE_ACCESS,       FUSE_CREATE,      FUSE_DESTROY,
        FUSE_BATCH_FORGET, FUSE_READDIRPLUS, FUSE_RENAME2,
        FUSE_LSEEK,        FUSE_GETXATTR,    99,
    };
    static const uint64_t vals[] = { 0,
                                     1,
                                     2,
                                     3,
                                     7,
                                     4096,
                                     0x80000000u,
                                     0xffffffffu,
                                     1ull << 32,
                                     (1ull << 32) | 1,
                                     (1ull << 32) | 2,
                                     INT64_MAX,
                                     UINT64_MAX,
                                     1ull << 63,
                                     O_RDWR,
                                     O_WRONLY | O_APPEND,
                                     S_IFREG | 0644,
                                     S_IFIFO | 0600,
                                     S_IFCHR | 0600,
                                     S_IFDIR | 0755 };
    static const char alphabet[] = "ab./\0";
    static uint8_t req[8192];
    uint64_t ids[16] = { 1, 1 };
    unsigned seed = 12345;
    int successes = 0;
    writefile(path_in(t, "a"), "some text");
    assert_int_equal(mkdir(path_in(t, "b"), 0755), 0);
    for (int iter = 0; iter < 20000; iter++) {
        uint32_t op = ops[rand_r(&seed) % (sizeof ops / sizeof ops[0])];
        size_t len = sizeof(struct fuse_in_header) + (size_t)(rand_r(&seed) % 200);
        for (size_t i = sizeof(struct fuse_in_header); i < len;) {
            if (rand_r(&seed) % 3 == 0) { /* a value */
                uint64_t v = rand_r(&seed) % 2 ? vals[rand_r(&seed) % 20] : ids[rand_r(&seed) % 16];
                size_t k = len - i < 8 ? len - i : 8;
                memcpy(req + i, &v, k);
                i += k;
            } else { /* a name byte */
                req[i++] = (uint8_t)alphabet[rand_r(&seed) % 6] - (rand_r(&seed) % 4 == 0) * '0';
            }
        }
        struct fuse_in_header h = { .len = (uint32_t)len,
                                    .opcode = op,
                                    .unique = (uint64_t)iter,
                                    .nodeid = ids[rand_r(&seed) % 16] };
        if (rand_r(&seed) % 10 == 0)
            h.len = (uint32_t)vals[rand_r(&seed) % 20]; /* a lie */
        memcpy(req, &h, sizeof h);
        size_t cut = (size_t)rand_r(&seed) % (len + 1);
        struct iovec in[2] = { { req, cut }, { req + cut, len - cut } };
        size_t cap = rand_r(&seed) % 4 ? sizeof reply_buf : (size_t)(rand_r(&seed) % 200);
        struct iovec out = { reply_buf, cap };
        size_t n = fuse_server_handle(t->s, in, 2, &out, 1);
        assert_true(n <= cap);
        if (n) {
            struct fuse_out_header oh;
            memcpy(&oh, reply_buf, sizeof oh);
            assert_int_equal(oh.len, n);
            assert_int_equal(oh.unique, (uint64_t)iter);
            assert_true(oh.error <= 0 && oh.error > -4096);
            successes += oh.error == 0;
            /* Keep what came back, to use as ids later. */
            if (oh.error == 0 && n >= sizeof oh + 16) {
                uint64_t id;
                memcpy(&id, reply_buf + sizeof oh, 8);
                ids[2 + rand_r(&seed) % 14] = id;
                memcpy(&id, reply_buf + sizeof oh + 128, 8); /* CREATE's fh */
                if (op == FUSE_CREATE)
                    ids[2 + rand_r(&seed) % 14] = id;
            }
        }
        if (op == FUSE_DESTROY)
            do_init(t);
    }
    char p[PATH_MAX], buf[16];
    snprintf(p, sizeof p, "%s/secret", t->outside);
    assert_string_equal(readfile(p, buf, sizeof buf), "secret");
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(st.st_nlink, 1);
    int entries = 0;
    DIR *d = opendir(t->outside);
    assert_non_null(d);
    while (readdir(d))
        entries++;
    closedir(d);
    assert_int_equal(entries, 3); /* ".", "..", "secret" */
    assert_true(stats(t).malformed > 0);
    assert_true(successes > 1000); /* not all refused at the door (about 1500) */
}

/* --- escapes ------------------------------------------------------------------------------ */

static void symlinks_lead_nowhere(void **state)
{
    struct t *t = *state;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/secret", t->outside);
    assert_int_equal(symlink("/", path_in(t, "slash")), 0);
    assert_int_equal(symlink("../..", path_in(t, "up")), 0);
    assert_int_equal(symlink(p, path_in(t, "abs")), 0);
    assert_int_equal(symlink("../outside/secret", path_in(t, "rel")), 0);
    assert_int_equal(symlink("../outside", path_in(t, "reldir")), 0);
    assert_int_equal(symlink("../outside/new", path_in(t, "dangling")), 0);
    const char *links[] = { "slash", "up", "abs", "rel", "reldir" };
    for (size_t i = 0; i < 5; i++) {
        struct fuse_entry_out e;
        assert_int_equal(lookup(t, 1, links[i], &e), 0);
        assert_true(S_ISLNK(e.attr.mode)); /* the link, not its target */
        uint64_t fh;
        assert_int_equal(open_(t, e.nodeid, O_RDONLY, &fh, false), -ENXIO);
        assert_int_equal(open_(t, e.nodeid, O_RDONLY, &fh, true), -ENOTDIR);
        /* Through it: not a directory here. */
        struct fuse_entry_out e2;
        int r = lookup(t, e.nodeid, "secret", &e2);
        assert_true(r == -ENOTDIR || r == -ELOOP);
        r = lookup(t, e.nodeid, "etc", &e2);
        assert_true(r == -ENOTDIR || r == -ELOOP);
        assert_int_equal(lookup(t, e.nodeid, ".", &e2), -ENOTDIR);
        assert_int_equal(lookup(t, e.nodeid, "..", &e2), -EINVAL);
        assert_int_equal(mkdir_(t, e.nodeid, "x", 0755, NULL), -ENOTDIR);
        /* Attributes change the link only (or are refused). */
        struct fuse_setattr_in sa = { .valid = FATTR_SIZE };
        assert_int_equal(call(t, FUSE_SETATTR, e.nodeid, &sa, sizeof sa, NULL, 0, NULL, 0),
                         -EINVAL);
        sa = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = 0777 };
        assert_int_equal(call(t, FUSE_SETATTR, e.nodeid, &sa, sizeof sa, NULL, 0, NULL, 0),
                         -EOPNOTSUPP);
        sa = (struct fuse_setattr_in){ .valid = FATTR_MTIME, .mtime = 12345 };
        assert_int_equal(call(t, FUSE_SETATTR, e.nodeid, &sa, sizeof sa, NULL, 0, NULL, 0), 0);
    }
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_size, 6);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_true(st.st_mtime != 12345);
    assert_int_equal(lstat(t->outside, &st), 0);
    assert_true(st.st_mtime != 12345);
    /* CREATE over a dangling link: refused, nothing made outside. */
    struct fuse_entry_out e;
    uint64_t fh;
    assert_int_equal(create(t, 1, "dangling", O_WRONLY, 0644, &e, &fh), -EEXIST);
    snprintf(p, sizeof p, "%s/new", t->outside);
    assert_int_equal(access(p, F_OK), -1);
    /* Renaming and linking move the link itself, inside the share. */
    assert_int_equal(rename2(t, 1, "rel", 1, "rel2", 0), 0);
    assert_int_equal(lstat(path_in(t, "rel2"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
}

/* A directory the host moves out of the share while the guest holds it:
 * refused through the nodeid (and the open handle) the guest still has;
 * one moved within the share, or the share itself moved, keeps working. */
static void host_moves_directory_out(void **state)
{
    struct t *t = *state;
    char moved[PATH_MAX], p[PATH_MAX], buf[32];
    assert_int_equal(mkdir(path_in(t, "d"), 0755), 0);
    assert_int_equal(mkdir(path_in(t, "d/sub"), 0755), 0);
    writefile(path_in(t, "d/f"), "in d");
    writefile(path_in(t, "d/sub/g"), "in sub");
    uint64_t d = lookup_ok(t, 1, "d"), sub = lookup_ok(t, d, "sub");
    uint64_t f = lookup_ok(t, d, "f"), dfh, ffh, fh;
    assert_int_equal(open_(t, d, O_RDONLY, &dfh, true), 0);
    assert_int_equal(open_(t, f, O_RDWR, &ffh, false), 0);
    /* Moved within the share: still served. */
    assert_int_equal(rename(path_in(t, "d"), path_in(t, "d2")), 0);
    struct fuse_entry_out e;
    assert_int_equal(lookup(t, d, "f", &e), 0);
    /* The share itself moved: still served. */
    char share2[PATH_MAX];
    snprintf(share2, sizeof share2, "%s/share2", t->tmp);
    assert_int_equal(rename(t->share, share2), 0);
    assert_int_equal(lookup(t, d, "f", &e), 0);
    assert_int_equal(rename(share2, t->share), 0);

    snprintf(moved, sizeof moved, "%s/d", t->outside);
    assert_int_equal(rename(path_in(t, "d2"), moved), 0);
    struct fuse_attr a;
    assert_int_equal(lookup(t, d, "f", &e), -ENOENT);
    assert_false(t->negative); /* an error: nothing for the guest to keep */
    assert_int_equal(getattr(t, d, &a), -ENOENT);
    assert_int_equal(getattr(t, sub, &a), -ENOENT); /* beneath it too */
    assert_int_equal(lookup(t, sub, "g", &e), -ENOENT);
    assert_int_equal(mkdir_(t, d, "new", 0755, NULL), -ENOENT);
    assert_int_equal(call(t, FUSE_UNLINK, d, "f", 2, NULL, 0, NULL, 0), -ENOENT);
    assert_int_equal(create(t, d, "c", O_RDWR, 0644, &e, &fh), -ENOENT);
    /* Pulling a file in from it, or linking one. */
    assert_int_equal(rename2(t, d, "f", 1, "stolen", 0), -ENOENT);
    struct fuse_rename_in rn = { .newdir = d };
    assert_int_equal(call(t, FUSE_RENAME, 1, &rn, sizeof rn, "x", 2, "y", 2), -ENOENT);
    struct fuse_link_in ln = { .oldnodeid = f };
    assert_int_equal(call(t, FUSE_LINK, 1, &ln, sizeof ln, "stolen", 7, NULL, 0), -ENOENT);
    struct fuse_setattr_in sa = { .valid = FATTR_SIZE };
    assert_int_equal(call(t, FUSE_SETATTR, f, &sa, sizeof sa, NULL, 0, NULL, 0), -ENOENT);
    assert_int_equal(open_(t, f, O_RDONLY, &fh, false), -ENOENT);
    /* Its open directory handle lists nothing. */
    struct fuse_read_in ri = { .fh = dfh, .size = 4096 };
    assert_int_equal(call(t, FUSE_READDIRPLUS, d, &ri, sizeof ri, NULL, 0, NULL, 0), -ENOENT);
    assert_int_equal(call(t, FUSE_READDIR, d, &ri, sizeof ri, NULL, 0, NULL, 0), -ENOENT);
    release(t, dfh, true);
    /* What stays: a file the guest already had open is still that file,
     * as for any process (fuse_server.c, at the top). */
    assert_int_equal(read_(t, ffh, 0, 4, buf), 4);
    release(t, ffh, false);
    /* Nothing outside changed. */
    snprintf(p, sizeof p, "%s/d/f", t->outside);
    assert_string_equal(readfile(p, buf, sizeof buf), "in d");
    assert_int_equal(access(path_in(t, "stolen"), F_OK), -1);
    /* The share's root is unaffected, and "d" is gone from it. */
    assert_int_equal(lookup(t, 1, "d", &e), -ENOENT);
    assert_int_equal(lookup(t, 1, "..", &e), 0);
    assert_int_equal(e.nodeid, 1);
    /* Moved back: served again. */
    assert_int_equal(rename(moved, path_in(t, "d")), 0);
    assert_int_equal(lookup(t, d, "f", &e), 0);
}

/* --- caps ----------------------------------------------------------------------------------- */

static void inode_cap_and_recovery(void **state)
{
    struct t *t = *state;
    fuse_server_test_limits(t->s, 50, FUSE_SERVER_MAX_HANDLES);
    char name[32];
    uint64_t ids[50];
    for (int i = 0; i <= 50; i++) {
        snprintf(name, sizeof name, "f%d", i);
        writefile(path_in(t, name), "");
    }
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "f%d", i);
        ids[i] = lookup_ok(t, 1, name);
    }
    struct fuse_entry_out e;
    assert_int_equal(lookup(t, 1, "f50", &e), -ENFILE);
    assert_int_equal(stats(t).inodes, 50);
    /* Held inodes can still be looked up again (no new slot). */
    assert_int_equal(lookup(t, 1, "f3", &e), 0);
    assert_int_equal(e.nodeid, ids[3]);
    /* READDIRPLUS past the cap: entries without a nodeid, not an error. */
    static char names[4096];
    assert_int_equal(readdir_all(t, 1, false, 4096, names, sizeof names, 0), 53);
    uint64_t fh;
    assert_int_equal(open_(t, 1, O_RDONLY, &fh, true), 0);
    struct fuse_read_in in = { .fh = fh, .size = 8192 };
    assert_int_equal(call(t, FUSE_READDIRPLUS, 1, &in, sizeof in, NULL, 0, NULL, 0), 0);
    release(t, fh, true);
    assert_int_equal(stats(t).inodes, 50);
    forget(t, ids[0], 1); /* READDIRPLUS counted a lookup too */
    assert_int_equal(lookup(t, 1, "f50", &e), -ENFILE);
    forget(t, ids[0], 1);
    assert_int_equal(lookup(t, 1, "f50", &e), 0);
    assert_int_equal(lookup(t, 1, "f0", &e), -ENFILE);
    /* Creating at the cap: refused before anything is made on the host. */
    assert_int_equal(create(t, 1, "c", O_RDWR, 0644, &e, &fh), -ENFILE);
    assert_int_equal(mkdir_(t, 1, "d", 0755, NULL), -ENFILE);
    assert_int_equal(call(t, FUSE_SYMLINK, 1, "l", 2, "x", 2, NULL, 0), -ENFILE);
    struct fuse_mknod_in mn = { .mode = S_IFIFO | 0644 };
    assert_int_equal(call(t, FUSE_MKNOD, 1, &mn, sizeof mn, "p", 2, NULL, 0), -ENFILE);
    assert_int_equal(access(path_in(t, "c"), F_OK), -1);
    assert_int_equal(access(path_in(t, "d"), F_OK), -1);
    assert_int_equal(access(path_in(t, "p"), F_OK), -1);
    /* LINK needs no new slot: the inode is held already. */
    struct fuse_link_in ln = { .oldnodeid = ids[1] };
    assert_int_equal(call(t, FUSE_LINK, 1, &ln, sizeof ln, "f1b", 4, NULL, 0), 0);
    assert_int_equal(stats(t).open_handles, 0);
    assert_int_equal(stats(t).inodes, 50);
}

static void host_descriptors_run_out(void **state)
{
    struct t *t = *state;
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0);
    low = old;
    low.rlim_cur = (rlim_t)probe + 5;
    close(probe);
    char name[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "f%d", i);
        writefile(path_in(t, name), "");
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int ok = 0, emfile = 0;
    for (int i = 0; i < 20; i++) {
        struct fuse_entry_out e;
        snprintf(name, sizeof name, "f%d", i);
        int r = lookup(t, 1, name, &e);
        ok += r == 0;
        emfile += r == -EMFILE;
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_true(ok >= 1 && ok <= 6);
    assert_int_equal(ok + emfile, 20);
    assert_int_equal(stats(t).inodes, ok);
}

static void handle_cap_and_recovery(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "f"), "x");
    uint64_t f = lookup_ok(t, 1, "f");
    static uint64_t fhs[FUSE_SERVER_MAX_HANDLES];
    for (int i = 0; i < FUSE_SERVER_MAX_HANDLES; i++)
        assert_int_equal(open_(t, f, O_RDONLY, &fhs[i], i % 2 ? false : false), 0);
    uint64_t fh;
    assert_int_equal(open_(t, f, O_RDONLY, &fh, false), -EMFILE);
    assert_int_equal(open_(t, 1, O_RDONLY, &fh, true), -EMFILE);
    struct fuse_entry_out e;
    assert_int_equal(create(t, 1, "c", O_RDWR, 0644, &e, &fh), -EMFILE);
    assert_int_equal(stats(t).open_handles, FUSE_SERVER_MAX_HANDLES);
    /* The failed CREATE made nothing. */
    assert_int_equal(access(path_in(t, "c"), F_OK), -1);
    assert_int_equal(stats(t).inodes, 1);
    assert_int_equal(release(t, fhs[100], false), 0);
    assert_int_equal(open_(t, 1, O_RDONLY, &fh, true), 0);
    assert_int_equal(open_(t, f, O_RDONLY, &fh, false), -EMFILE);
    for (int i = 0; i < FUSE_SERVER_MAX_HANDLES; i++) {
        if (i != 100)
            assert_int_equal(release(t, fhs[i], false), 0);
    }
    assert_int_equal(stats(t).open_handles, 1);
}

/* --- threads ----------------------------------------------------------------- */

/* One request from a thread of its own: the reply's error, payload in out. */
static int thread_call(struct fuse_server *s, uint32_t op, uint64_t node, const void *a, size_t l,
                       void *out, size_t cap)
{
    uint8_t req[256], rep[4096];
    struct fuse_in_header h = {
        .len = (uint32_t)(sizeof h + l), .opcode = op, .unique = 7, .nodeid = node
    };
    memcpy(req, &h, sizeof h);
    memcpy(req + sizeof h, a, l);
    struct iovec in = { req, h.len }, ov = { rep, sizeof rep };
    size_t n = fuse_server_handle(s, &in, 1, &ov, 1);
    if (n == 0)
        return 1; /* no reply (FORGET) */
    struct fuse_out_header oh;
    memcpy(&oh, rep, sizeof oh);
    if (out)
        memcpy(out, rep + sizeof oh, n - sizeof oh < cap ? n - sizeof oh : cap);
    return oh.error;
}

static void *hammer(void *arg)
{
    struct fuse_server *s = arg;
    intptr_t failures = 0;
    for (int i = 0; i < 2000; i++) {
        struct fuse_entry_out e;
        if (thread_call(s, FUSE_LOOKUP, 1, "shared", 7, &e, sizeof e)) {
            failures++;
            continue;
        }
        struct fuse_open_in oi = { .flags = O_RDONLY };
        struct fuse_open_out oo;
        if (thread_call(s, FUSE_OPEN, e.nodeid, &oi, sizeof oi, &oo, sizeof oo) == 0) {
            struct fuse_read_in ri = { .fh = oo.fh, .size = 4 };
            char buf[4];
            failures += thread_call(s, FUSE_READ, 1, &ri, sizeof ri, buf, sizeof buf) != 0;
            failures += memcmp(buf, "data", 4) != 0;
            struct fuse_release_in rl = { .fh = oo.fh };
            failures += thread_call(s, FUSE_RELEASE, 1, &rl, sizeof rl, NULL, 0) != 0;
        } else {
            failures++;
        }
        /* Stale and made-up ids from other threads' forgotten inodes. */
        struct fuse_getattr_in gi = { 0 };
        int r = thread_call(s, FUSE_GETATTR, e.nodeid ^ (1ull << 32), &gi, sizeof gi, NULL, 0);
        failures += r != -EBADF;
        struct fuse_forget_in fi = { .nlookup = 1 };
        failures += thread_call(s, FUSE_FORGET, e.nodeid, &fi, sizeof fi, NULL, 0) != 1;
    }
    return (void *)failures;
}

static void concurrent_lookups_and_forgets(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "shared"), "data");
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, t->s), 0);
    for (int i = 0; i < 3; i++) {
        void *failures;
        assert_int_equal(pthread_join(th[i], &failures), 0);
        assert_int_equal((intptr_t)failures, 0);
    }
    assert_int_equal(stats(t).inodes, 0);
    assert_int_equal(stats(t).open_handles, 0);
    assert_int_equal(stats(t).requests, 1 + 3 * 2000 * 6);
}

/* --- read-only --------------------------------------------------------------------------- */

static void read_only_refuses_changes(void **state)
{
    struct t *t = *state;
    writefile(path_in(t, "f"), "keep");
    assert_int_equal(mkdir(path_in(t, "d"), 0755), 0);
    uint64_t f = lookup_ok(t, 1, "f"), d = lookup_ok(t, 1, "d"), fh;
    struct fuse_setattr_in sa = { .valid = FATTR_SIZE };
    assert_int_equal(call(t, FUSE_SETATTR, f, &sa, sizeof sa, NULL, 0, NULL, 0), -EROFS);
    sa = (struct fuse_setattr_in){ .valid = FATTR_MODE, .mode = 0777 };
    assert_int_equal(call(t, FUSE_SETATTR, f, &sa, sizeof sa, NULL, 0, NULL, 0), -EROFS);
    assert_int_equal(call(t, FUSE_SYMLINK, 1, "l", 2, "f", 2, NULL, 0), -EROFS);
    struct fuse_mknod_in mn = { .mode = S_IFREG | 0644 };
    assert_int_equal(call(t, FUSE_MKNOD, 1, &mn, sizeof mn, "n", 2, NULL, 0), -EROFS);
    assert_int_equal(mkdir_(t, 1, "e", 0755, NULL), -EROFS);
    assert_int_equal(call(t, FUSE_UNLINK, 1, "f", 2, NULL, 0, NULL, 0), -EROFS);
    assert_int_equal(call(t, FUSE_RMDIR, 1, "d", 2, NULL, 0, NULL, 0), -EROFS);
    struct fuse_rename_in rn = { .newdir = 1 };
    assert_int_equal(call(t, FUSE_RENAME, 1, &rn, sizeof rn, "f", 2, "g", 2), -EROFS);
    assert_int_equal(rename2(t, 1, "f", 1, "d", RENAME_EXCHANGE), -EROFS);
    struct fuse_link_in ln = { .oldnodeid = f };
    assert_int_equal(call(t, FUSE_LINK, d, &ln, sizeof ln, "g", 2, NULL, 0), -EROFS);
    struct fuse_entry_out e;
    assert_int_equal(create(t, 1, "c", O_RDWR, 0644, &e, &fh), -EROFS);
    assert_int_equal(open_(t, f, O_WRONLY, &fh, false), -EROFS);
    assert_int_equal(open_(t, f, O_RDWR, &fh, false), -EROFS);
    assert_int_equal(open_(t, f, O_RDONLY | O_TRUNC, &fh, false), -EROFS);
    assert_int_equal(open_(t, f, O_RDONLY | O_APPEND, &fh, false), -EROFS);
    struct fuse_access_in ac = { .mask = W_OK };
    assert_int_equal(call(t, FUSE_ACCESS, f, &ac, sizeof ac, NULL, 0, NULL, 0), -EROFS);
    ac.mask = R_OK;
    assert_int_equal(call(t, FUSE_ACCESS, f, &ac, sizeof ac, NULL, 0, NULL, 0), 0);
    /* Reading works; writing through a read handle does not. */
    assert_int_equal(open_(t, f, O_RDONLY, &fh, false), 0);
    char buf[8];
    assert_int_equal(read_(t, fh, 0, 4, buf), 4);
    assert_memory_equal(buf, "keep", 4);
    assert_int_equal(write_(t, fh, 0, "gone", 4), -EROFS);
    struct fuse_fallocate_in fa = { .fh = fh, .length = 100 };
    assert_int_equal(call(t, FUSE_FALLOCATE, f, &fa, sizeof fa, NULL, 0, NULL, 0), -EROFS);
    release(t, fh, false);
    static char names[1024];
    assert_int_equal(readdir_all(t, 1, true, 4096, names, sizeof names, 0), 4);
    /* Nothing changed on the host. */
    assert_string_equal(readfile(path_in(t, "f"), buf, sizeof buf), "keep");
    struct stat st;
    assert_int_equal(lstat(path_in(t, "f"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(access(path_in(t, "c"), F_OK), -1);
    assert_int_equal(access(path_in(t, "e"), F_OK), -1);
    assert_int_equal(access(path_in(t, "l"), F_OK), -1);
}

static void new_refuses_bad_roots(void **state)
{
    vmlet_error err = { 0 };
    assert_null(fuse_server_new("/nonexistent/vmlet-share", false, &err));
    assert_int_equal(err.code, VMLET_ERR_FILE);
    assert_non_null(strstr(err.message, "/nonexistent/vmlet-share"));
    assert_null(fuse_server_new("/etc/passwd", false, &err));
    assert_int_equal(err.code, VMLET_ERR_FILE);
    struct fuse_server *s = fuse_server_new("/tmp", true, &err);
    assert_non_null(s);
    assert_true(fuse_server_root_fd(s) >= 0);
    fuse_server_free(s);
}

#define T(f)    cmocka_unit_test_setup_teardown(f, setup_rw, teardown)
#define T_RO(f) cmocka_unit_test_setup_teardown(f, setup_ro, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(init_negotiates, teardown),
        T(destroy_drops_everything),
        T(lookup_and_getattr),
        T(cache_always_timeouts),
        T(create_write_read),
        T(setattr_mode_size_times_owner),
        T(symlink_and_readlink),
        T(mknod_files_and_fifos_only),
        T(mkdir_unlink_rmdir),
        T(unlinked_while_open),
        T(rename_and_rename2),
        T(link_in_share),
        T(new_files_owner),
        T(readdir_and_readdirplus),
        T(statfs_access_fallocate_lseek),
        T(xattrs_and_unknown_opcodes),
        T(made_up_and_forgotten_ids),
        T(hostile_names),
        T(lengths_that_lie),
        T(long_batch_forget),
        T(read_write_bounds),
        T(every_split_point),
        T(random_requests),
        T(symlinks_lead_nowhere),
        T(host_moves_directory_out),
        T(inode_cap_and_recovery),
        T(host_descriptors_run_out),
        T(handle_cap_and_recovery),
        T(concurrent_lookups_and_forgets),
        T_RO(read_only_refuses_changes),
        cmocka_unit_test(new_refuses_bad_roots),
        T(snapshot_generations),
        T(snapshot_state_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
