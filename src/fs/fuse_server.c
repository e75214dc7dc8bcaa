/* The FUSE server behind virtio-fs: the kernel's FUSE protocol
 * (<linux/fuse.h>, 7.38; the guest's Debian 6.1 kernel speaks 7.37/7.38)
 * answered from one shared host directory.
 *
 * Safety model (the guest is hostile):
 * - Every inode the guest knows is an O_PATH|O_NOFOLLOW descriptor in a
 *   bounded table, keyed by (st_dev, st_ino) so one host inode is one
 *   nodeid. A nodeid is (generation << 32 | slot + 1); slot 0 is the root
 *   (nodeid 1, FUSE_ROOT_ID). A made-up or forgotten nodeid fails the
 *   generation check: EBADF. File handles (fh) are built the same way.
 *   After a restore from a snapshot the table holds only the root and
 *   its generations start above every id the saved server gave
 *   (fuse_server_load): an old nodeid answers ESTALE (the guest's VFS
 *   then looks the path up again), an old fh EBADF, and FORGET and
 *   RELEASE of them do nothing.
 *   The tables, their caps and descriptor lifetimes: fuse_table.c.
 * - Every name is one component (no '/', not empty, at most NAME_MAX, NUL
 *   within the request) resolved beneath its parent's descriptor with
 *   openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS).
 *   RESOLVE_NO_XDEV is not used: a mount inside the shared directory is
 *   part of what the host user shares, and the (st_dev, st_ino) key keeps
 *   its inodes apart. "." is its parent; ".." is only answered at the root
 *   (the root again); elsewhere it is refused, as the server never offers
 *   FUSE_EXPORT_SUPPORT and so the kernel never needs it.
 * - Symlinks are never followed on the host: READLINK uses readlinkat(fd,
 *   ""), everything else takes the held descriptor with AT_EMPTY_PATH or
 *   AT_SYMLINK_NOFOLLOW. Files are opened for I/O by reopening
 *   /proc/self/fd/N (a descriptor of /proc/self/fd opened at
 *   fuse_server_new) for N, the server's own O_PATH descriptor, after
 *   checking the inode is a regular file (OPEN) or a directory (OPENDIR);
 *   the guest never supplies any part of that path.
 * - No device nodes (MKNOD: regular files and FIFOs only), no set-user-ID
 *   bit (stripped from every mode the guest sets, and set-group-ID from
 *   non-directories: vmlet may run as root).
 *
 * What RESOLVE_BENEATH does not give: it is relative to the held parent
 * descriptor, and a descriptor follows its inode wherever the host moves
 * it. So every request naming a nodeid other than the root's (and every
 * READDIR) first checks, by the path /proc/self/fd gives for it, that the
 * inode is still the root or beneath it (check_inside): a directory the
 * host moved out of the share is refused with ENOENT, with everything
 * beneath it, and served again if moved back. What remains: (1) the check
 * and the operation are two steps, so a host rename racing between them
 * wins once; (2) a file the guest already has open (an fh) stays open
 * wherever the host moves it, like any open file; (3) paths longer than
 * PATH_MAX cannot be checked and are refused. Nothing the guest does
 * alone moves anything out of the share: RENAME and LINK take both ends
 * from inodes of the share.
 *
 * Ownership: files are created as vmlet's own uid/gid; fsuid is not
 * switched. With vmlet as root, the serving thread keeps CAP_CHOWN (and
 * the file capabilities a root file server needs: src/sandbox.h
 * keep_caps) and gives what the guest creates to the guest caller's
 * uid/gid (give_to_caller); set-user-ID bits are never set. Not as root,
 * chown to another uid fails with the host's EPERM. Timeouts: entries
 * (negative ones, for a name that is not there, too) and attributes are
 * valid for FUSE_TIMEOUT_S (1 s), so host-side changes show within a
 * second; with cache=always for a day (fuse_server_set_cache_always).
 */
#include "fs/fuse_server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "error.h"
#include "iov.h"
#include "fs/fuse_table.h"

#define FUSE_MIN_MINOR 31 /* oldest guest protocol answered (Linux 5.4+) */
#define ARGS_MAX       (PATH_MAX + 2 * (NAME_MAX + 1) + 128) /* non-WRITE requests */
#define READDIR_MAX    (64u << 10)                           /* largest READDIR reply built */
#define IOV_SLICE_MAX  1024                                  /* IOV_MAX */
#define NOREPLY        1                                     /* handler result: send nothing */
#define MALFORMED      (-4096) /* handler result: short arguments, a name without NUL */

/* Only the INIT flags whose behaviour the server really provides. */
#define INIT_FLAGS \
    (FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | \
     FUSE_PARALLEL_DIROPS | FUSE_AUTO_INVAL_DATA | FUSE_CACHE_SYMLINKS | FUSE_MAX_PAGES)

struct fuse_server {
    int root_fd, proc_fd; /* root_fd is owned by the table (nodeid 1) */
    bool read_only;
    bool as_root; /* new files go to the guest caller's uid/gid */
    bool have_table;
    mode_t umask; /* the process's, re-applied to what the guest asked */
    _Atomic bool initialized;
    uint32_t init_minor, init_flags; /* what INIT agreed (for a snapshot) */
    struct fuse_table t;
    struct {
        _Atomic uint64_t requests, by_opcode[64], errors, bytes_read, bytes_written, malformed;
    } st;
};

/* One request, as parsed: the header and a copy of the arguments (WRITE's
 * data and BATCH_FORGET's entries stay in the guest's iovecs). */
struct req {
    struct fuse_in_header h;
    const uint8_t *args;
    size_t args_len;
    size_t body; /* the header's length minus the header: what in[] holds after it */
    const struct iovec *in;
    unsigned n_in;
    bool bad; /* a field of its own was wrong: counted in malformed */
};

struct rep {
    const struct iovec *out;
    unsigned n_out;
    size_t cap;                   /* bytes out[] holds */
    size_t len;                   /* payload length (after struct fuse_out_header) */
    bool direct;                  /* payload already in out[] */
    _Alignas(8) uint8_t buf[256]; /* small payloads */
};

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static int node_fd(struct fuse_server *s, int32_t slot)
{
    return s->t.inodes[slot].fd; /* stable while the request holds its reference */
}

static int unknown_id(struct req *rq);

/* --- names ------------------------------------------------------------- */

/* Takes the NUL-terminated string at *off in the arguments; advances *off.
 * NULL if it is not terminated inside the request. */
static const char *take_string(const struct req *rq, size_t *off)
{
    if (*off >= rq->args_len)
        return NULL;
    const char *p = (const char *)rq->args + *off;
    const char *nul = memchr(p, 0, rq->args_len - *off);
    if (!nul)
        return NULL;
    *off += (size_t)(nul - p) + 1;
    return p;
}

/* A name the guest may create or remove: one component, not "." or "..". */
static int check_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || strchr(name, '/'))
        return -EINVAL;
    if (n > NAME_MAX)
        return -ENAMETOOLONG;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return -EINVAL;
    return 0;
}

/* The fixed arguments of a request that names one new entry (MKNOD,
 * MKDIR, LINK, CREATE) into in, and the name after them, checked. */
static int args_and_name(const struct req *rq, void *in, size_t size, const char **name)
{
    if (rq->args_len < size)
        return MALFORMED;
    memcpy(in, rq->args, size);
    size_t off = size;
    *name = take_string(rq, &off);
    if (!*name)
        return MALFORMED;
    return check_name(*name);
}

static int open_beneath(int dirfd, const char *name)
{
    struct open_how how = {
        .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof how);
    return fd < 0 ? -errno : (int)fd;
}

/* Looks name up beneath the inode in slot and enters it (LOOKUP, and what
 * the creating requests reply). */
static int lookup_name(struct fuse_server *s, int dirfd, const char *name, struct fuse_entry_out *e)
{
    int fd = open_beneath(dirfd, name);
    return fd < 0 ? fd : fuse_inode_enter(&s->t, fd, e);
}

/* "/proc/self/fd/N" relative to proc_fd: N only, our own descriptor. */
static void fd_name(char buf[16], int fd)
{
    snprintf(buf, 16, "%d", fd);
}

static int reopen(struct fuse_server *s, int fd, int flags)
{
    char name[16];
    fd_name(name, fd);
    int r = openat(s->proc_fd, name, (flags & ~O_NOFOLLOW) | O_CLOEXEC);
    return r < 0 ? -errno : r;
}

/* Whether fd (ours) is still the root or beneath it: a directory or file
 * the host moved out of the share is refused (ENOENT) instead of served
 * through the nodeid the guest still holds. By the path the kernel gives
 * for /proc/self/fd/N, so it is a check at one instant: a host rename
 * between it and the operation still wins that one race. A path longer
 * than PATH_MAX cannot be checked and is refused too. */
static int check_inside(struct fuse_server *s, int fd)
{
    char root[PATH_MAX], path[PATH_MAX], name[16];
    fd_name(name, s->root_fd);
    ssize_t nr = readlinkat(s->proc_fd, name, root, sizeof root);
    fd_name(name, fd);
    ssize_t np = readlinkat(s->proc_fd, name, path, sizeof path);
    if (nr <= 0 || np <= 0 || nr == (ssize_t)sizeof root || np == (ssize_t)sizeof path)
        return -ENOENT;
    if (nr == 1 && root[0] == '/')
        return 0; /* the whole tree is shared */
    if (np == nr && !memcmp(path, root, (size_t)nr))
        return 0;
    if (np > nr && path[nr] == '/' && !memcmp(path, root, (size_t)nr))
        return 0;
    return -ENOENT;
}

/* node_get for a nodeid the request names besides its header's. */
static int node_get_inside(struct fuse_server *s, struct req *rq, uint64_t nodeid, int32_t *slot)
{
    *slot = fuse_inode_get(&s->t, nodeid);
    if (*slot < 0 && fuse_table_stale(&s->t, nodeid))
        return -ESTALE; /* from before a restore: the guest looks the name up again */
    if (*slot < 0)
        return unknown_id(rq);
    int r = *slot == 0 ? 0 : check_inside(s, s->t.inodes[*slot].fd);
    if (r) {
        fuse_inode_put(&s->t, *slot);
        *slot = -1;
    }
    return r;
}

/* The guest's mode without set-user-ID (or set-group-ID on non-directories):
 * a file made here may be owned by root. */
static mode_t safe_mode(mode_t mode, bool dir)
{
    mode &= 07777 & ~(mode_t)S_ISUID;
    if (!dir)
        mode &= ~(mode_t)S_ISGID;
    return mode;
}

/* The kernel already applied the guest's umask; the process's own must not
 * strip more. fd is O_PATH. */
static void fix_mode(struct fuse_server *s, int fd, mode_t mode)
{
    if (!(mode & s->umask))
        return;
    char name[16];
    fd_name(name, fd);
    if (fchmodat(s->proc_fd, name, mode, 0)) {
        /* Left as the umask made it: the guest sees the real mode. */
    }
}

/* --- opcodes -------------------------------------------------------------- */

/* A nodeid or fh the server never gave, or no longer holds. */
static int unknown_id(struct req *rq)
{
    rq->bad = true;
    return -EBADF;
}

#define NEED(rq, T) \
    do { \
        if ((rq)->args_len < sizeof(T)) \
            return MALFORMED; \
    } while (0)

static void *payload(struct rep *rp, size_t len)
{
    rp->len = len;
    memset(rp->buf, 0, len);
    return rp->buf;
}

static int op_init(struct fuse_server *s, struct req *rq, struct rep *rp)
{
    struct fuse_init_in in = { 0 };
    if (rq->args_len < 16) /* major, minor, max_readahead, flags */
        return MALFORMED;
    memcpy(&in, rq->args, rq->args_len < sizeof in ? rq->args_len : sizeof in);
    struct fuse_init_out *o = payload(rp, sizeof *o);
    o->major = FUSE_KERNEL_VERSION;
    o->minor = FUSE_KERNEL_MINOR_VERSION;
    if (in.major > FUSE_KERNEL_VERSION)
        return 0; /* the kernel will ask again with our major */
    if (in.major < FUSE_KERNEL_VERSION || in.minor < FUSE_MIN_MINOR)
        return -EPROTONOSUPPORT;
    if (in.minor < o->minor)
        o->minor = in.minor;
    o->max_readahead = in.max_readahead < FUSE_SERVER_MAX_WRITE ? in.max_readahead
                                                                : FUSE_SERVER_MAX_WRITE;
    o->flags = in.flags & INIT_FLAGS;
    o->max_write = FUSE_SERVER_MAX_WRITE;
    o->time_gran = 1;
    o->max_pages = FUSE_SERVER_MAX_WRITE / 4096;
    s->init_minor = o->minor;
    s->init_flags = o->flags;
    atomic_store(&s->initialized, true);
    return 0;
}

static int op_destroy(struct fuse_server *s, struct req *rq, struct rep *rp)
{
    /* Drops everything the guest held: the next mount starts afresh. */
    atomic_store(&s->initialized, false);
    fuse_table_drop_all(&s->t);
    return 0;
}

static int op_lookup(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    size_t off = 0;
    const char *name = take_string(rq, &off);
    if (!name)
        return MALFORMED;
    struct fuse_entry_out *e = payload(rp, sizeof *e);
    if (!strcmp(name, ".") || (!strcmp(name, "..") && node == 0)) {
        /* The directory itself (".." at the root stays at the root). */
        if (s->t.inodes[node].type != S_IFDIR)
            return -ENOTDIR;
        return fuse_inode_hold_again(&s->t, node, e);
    }
    int r = check_name(name);
    if (r)
        return r;
    r = lookup_name(s, node_fd(s, node), name, e);
    if (r == -ENOENT) {
        /* A negative entry (nodeid 0) the guest may keep as long as a
         * positive one: it looks the name up again only after that, so a
         * name the host creates shows within the same second. The kernel
         * still asks again before an exclusive create or a rename onto it
         * (LOOKUP_EXCL, LOOKUP_RENAME_TARGET). */
        memset(e, 0, sizeof *e);
        e->entry_valid = s->t.timeout_s;
        r = 0;
    }
    return r;
}

static int op_forget(struct fuse_server *s, struct req *rq)
{
    if (rq->args_len < sizeof(struct fuse_forget_in))
        return -1;
    struct fuse_forget_in in;
    memcpy(&in, rq->args, sizeof in);
    if (fuse_table_stale(&s->t, rq->h.nodeid))
        return 0; /* from before a restore: nothing to forget */
    return fuse_inode_forget(&s->t, rq->h.nodeid, in.nlookup);
}

/* Its entries are read from in[] one by one: a long batch is not limited
 * by the argument buffer. */
static int op_batch_forget(struct fuse_server *s, struct req *rq)
{
    struct fuse_batch_forget_in in;
    if (rq->args_len < sizeof in)
        return -1;
    memcpy(&in, rq->args, sizeof in);
    size_t room = (rq->body - sizeof in) / sizeof(struct fuse_forget_one);
    int r = in.count > room ? -1 : 0; /* lies about its count: forget what is there */
    for (size_t i = 0; i < in.count && i < room; i++) {
        struct fuse_forget_one one;
        if (iov_to_buf(rq->in, rq->n_in, sizeof rq->h + sizeof in + i * sizeof one, &one,
                       sizeof one) != sizeof one)
            return -1; /* cannot happen: body <= what in[] holds */
        if (!fuse_table_stale(&s->t, one.nodeid) &&
            fuse_inode_forget(&s->t, one.nodeid, one.nlookup))
            r = -1;
    }
    return r;
}

static int reply_attr(struct fuse_server *s, struct rep *rp, int fd)
{
    struct stat st;
    int r = fuse_stat_fd(fd, &st);
    if (r)
        return r;
    struct fuse_attr_out *o = payload(rp, sizeof *o);
    o->attr_valid = s->t.timeout_s;
    fuse_fill_attr(&o->attr, &st);
    return 0;
}

static int op_getattr(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    return reply_attr(s, rp, node_fd(s, node));
}

static int op_setattr(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    NEED(rq, struct fuse_setattr_in);
    struct fuse_setattr_in in;
    memcpy(&in, rq->args, sizeof in);
    int fd = node_fd(s, node);
    mode_t type = s->t.inodes[node].type;
    char name[16];
    fd_name(name, fd);
    int32_t h = -1;
    int r = 0;

    if (in.valid & FATTR_FH) {
        h = fuse_handle_get(&s->t, in.fh, false);
        if (h < 0)
            return unknown_id(rq);
    }
    if (in.valid & FATTR_MODE) {
        mode_t mode = safe_mode(in.mode, type == S_IFDIR);
        if (type == S_IFLNK)
            r = -EOPNOTSUPP; /* as fchmodat(AT_SYMLINK_NOFOLLOW) answers */
        else if (fchmodat(s->proc_fd, name, mode, 0))
            r = -errno;
        if (r)
            goto out;
    }
    if (in.valid & (FATTR_UID | FATTR_GID)) {
        uid_t uid = (in.valid & FATTR_UID) ? in.uid : (uid_t)-1;
        gid_t gid = (in.valid & FATTR_GID) ? in.gid : (gid_t)-1;
        if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
            r = -errno;
            goto out;
        }
    }
    if (in.valid & FATTR_SIZE) {
        if (in.size > INT64_MAX) {
            r = -EINVAL;
            goto out;
        }
        if (h >= 0) {
            if (ftruncate(s->t.handles[h].fd, (off_t)in.size))
                r = -errno;
        } else if (type != S_IFREG) {
            r = type == S_IFDIR ? -EISDIR : -EINVAL;
        } else {
            int wfd = reopen(s, fd, O_WRONLY);
            if (wfd < 0) {
                r = wfd;
            } else {
                if (ftruncate(wfd, (off_t)in.size))
                    r = -errno;
                close(wfd);
            }
        }
        if (r)
            goto out;
    }
    if (in.valid & (FATTR_ATIME | FATTR_MTIME)) {
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
        if (in.valid & FATTR_ATIME_NOW)
            ts[0].tv_nsec = UTIME_NOW;
        else if (in.valid & FATTR_ATIME)
            ts[0] = (struct timespec){ (time_t)in.atime, in.atimensec };
        if (in.valid & FATTR_MTIME_NOW)
            ts[1].tv_nsec = UTIME_NOW;
        else if (in.valid & FATTR_MTIME)
            ts[1] = (struct timespec){ (time_t)in.mtime, in.mtimensec };
        if ((in.valid & FATTR_ATIME && !(in.valid & FATTR_ATIME_NOW) &&
             in.atimensec >= 1000000000) ||
            (in.valid & FATTR_MTIME && !(in.valid & FATTR_MTIME_NOW) &&
             in.mtimensec >= 1000000000)) {
            r = -EINVAL;
            goto out;
        }
        if (utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
            r = -errno;
            goto out;
        }
    }
    r = reply_attr(s, rp, fd);
out:
    if (h >= 0)
        fuse_handle_put(&s->t, h);
    return r;
}

static int op_readlink(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    char buf[PATH_MAX];
    ssize_t n = readlinkat(node_fd(s, node), "", buf, sizeof buf);
    if (n < 0)
        return errno == ENOENT ? -EINVAL : -errno; /* "" on a non-symlink */
    if (rp->cap < sizeof(struct fuse_out_header) + (size_t)n)
        return -ERANGE;
    iov_from_buf(rp->out, rp->n_out, sizeof(struct fuse_out_header), buf, (size_t)n);
    rp->len = (size_t)n;
    rp->direct = true;
    return 0;
}

/* With vmlet as root, what the guest creates belongs to the guest
 * process that created it (docs/shared-directories.md): the thread keeps
 * CAP_CHOWN for this. Otherwise it stays vmlet's user's. */
static void give_to_caller(const struct fuse_server *s, const struct req *rq, int fd)
{
    if (s->as_root && fchownat(fd, "", rq->h.uid, rq->h.gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
        /* Left as vmlet's: the guest sees the real owner. */
    }
}

/* What the creating opcodes share: the new name, looked up and entered,
 * given to its creator (owner; NULL for LINK) and its mode fixed up. */
static int made(struct fuse_server *s, const struct req *owner, struct rep *rp, int dirfd,
                const char *name, mode_t mode)
{
    struct fuse_entry_out *e = payload(rp, sizeof *e);
    int r = lookup_name(s, dirfd, name, e);
    bool fix = mode && (mode & s->umask), chown_it = owner && s->as_root;
    if (r == 0 && (fix || chown_it)) {
        int32_t slot = fuse_inode_get(&s->t, e->nodeid);
        if (slot >= 0) {
            if (chown_it)
                give_to_caller(s, owner, node_fd(s, slot));
            if (fix)
                fix_mode(s, node_fd(s, slot), mode);
            struct stat st;
            if (fuse_stat_fd(node_fd(s, slot), &st) == 0)
                fuse_fill_attr(&e->attr, &st);
            fuse_inode_put(&s->t, slot);
        }
    }
    return r;
}

static int op_symlink(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    size_t off = 0;
    const char *name = take_string(rq, &off);
    const char *target = name ? take_string(rq, &off) : NULL;
    if (!target)
        return MALFORMED;
    int r = check_name(name);
    if (r)
        return r;
    if (!*target || strlen(target) >= PATH_MAX)
        return -EINVAL;
    /* The target is only text here: it is never followed on the host. */
    if ((r = fuse_table_room(&s->t, false)))
        return r;
    if (symlinkat(target, node_fd(s, node), name))
        return -errno;
    return made(s, rq, rp, node_fd(s, node), name, 0);
}

static int op_mknod(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    struct fuse_mknod_in in;
    const char *name;
    int r = args_and_name(rq, &in, sizeof in, &name);
    if (r)
        return r;
    if (!S_ISREG(in.mode) && !S_ISFIFO(in.mode))
        return -EPERM; /* no device nodes, no sockets */
    mode_t mode = safe_mode(in.mode, false);
    if ((r = fuse_table_room(&s->t, false)))
        return r;
    if (mknodat(node_fd(s, node), name, (in.mode & S_IFMT) | mode, 0))
        return -errno;
    return made(s, rq, rp, node_fd(s, node), name, mode);
}

static int op_mkdir(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    struct fuse_mkdir_in in;
    const char *name;
    int r = args_and_name(rq, &in, sizeof in, &name);
    if (r)
        return r;
    mode_t mode = safe_mode(in.mode, true);
    if ((r = fuse_table_room(&s->t, false)))
        return r;
    if (mkdirat(node_fd(s, node), name, mode))
        return -errno;
    return made(s, rq, rp, node_fd(s, node), name, mode);
}

static int op_unlink(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node, int flags)
{
    size_t off = 0;
    const char *name = take_string(rq, &off);
    if (!name)
        return MALFORMED;
    int r = check_name(name);
    if (r)
        return r;
    return unlinkat(node_fd(s, node), name, flags) ? -errno : 0;
}

static int op_rename(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node, bool two)
{
    uint64_t newdir;
    uint32_t flags = 0;
    size_t off;
    if (two) {
        NEED(rq, struct fuse_rename2_in);
        struct fuse_rename2_in in;
        memcpy(&in, rq->args, sizeof in);
        newdir = in.newdir;
        flags = in.flags;
        off = sizeof in;
    } else {
        NEED(rq, struct fuse_rename_in);
        struct fuse_rename_in in;
        memcpy(&in, rq->args, sizeof in);
        newdir = in.newdir;
        off = sizeof in;
    }
    const char *oldname = take_string(rq, &off);
    const char *newname = oldname ? take_string(rq, &off) : NULL;
    if (!newname)
        return MALFORMED;
    int r = check_name(oldname);
    if (!r)
        r = check_name(newname);
    if (r)
        return r;
    if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
        return -EINVAL; /* no RENAME_WHITEOUT (it makes a device node) */
    int32_t nd;
    if ((r = node_get_inside(s, rq, newdir, &nd)))
        return r;
    /* Both directories are inodes of the share: nothing comes in from
     * outside (unless the host itself moved one out, see the top). */
    long rr = syscall(SYS_renameat2, node_fd(s, node), oldname, node_fd(s, nd), newname, flags);
    r = rr ? -errno : 0;
    fuse_inode_put(&s->t, nd);
    return r;
}

static int op_link(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    struct fuse_link_in in;
    const char *name;
    int r = args_and_name(rq, &in, sizeof in, &name);
    if (r)
        return r;
    int32_t old;
    if ((r = node_get_inside(s, rq, in.oldnodeid, &old)))
        return r;
    if (s->t.inodes[old].type == S_IFDIR) {
        r = -EPERM;
    } else {
        /* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc magic
         * link of our own descriptor names the same inode (a symlink
         * included: the jump lands on it and does not follow it). */
        char pname[16];
        fd_name(pname, node_fd(s, old));
        if (linkat(s->proc_fd, pname, node_fd(s, node), name, AT_SYMLINK_FOLLOW))
            r = -errno;
    }
    fuse_inode_put(&s->t, old);
    return r ? r : made(s, NULL, rp, node_fd(s, node), name, 0);
}

/* The open flags a guest may pass on: access mode and the ones that change
 * how I/O behaves on the open file. */
static int open_flags(struct fuse_server *s, uint32_t flags, int *out)
{
    int f = (int)flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC | O_TRUNC);
    if ((f & O_ACCMODE) == O_ACCMODE)
        return -EINVAL;
    if (s->read_only && ((f & O_ACCMODE) != O_RDONLY || (f & (O_TRUNC | O_APPEND))))
        return -EROFS;
    *out = f;
    return 0;
}

static int reply_open(struct fuse_server *s, struct rep *rp, int fd, bool dir, size_t at)
{
    uint64_t fh;
    int r = fuse_handle_new(&s->t, fd, dir, &fh);
    if (r)
        return r;
    if (rp->len < at + sizeof(struct fuse_open_out))
        rp->len = at + sizeof(struct fuse_open_out);
    struct fuse_open_out *o = (struct fuse_open_out *)(rp->buf + at);
    memset(o, 0, sizeof *o);
    o->fh = fh;
    /* close() need not ask (FLUSH): every WRITE has reached the host file
     * before its reply, so there is no late error to report, and POSIX
     * locks stay in the guest (FUSE_POSIX_LOCKS is never offered), so no
     * lock owner's locks are to drop here. One round trip less a close.
     * (Pages dirtied through a shared mmap still mapped are then written
     * at munmap, by write-back or at msync/fsync, not at close.) The
     * kernel honours it without writeback caching, which the server never
     * offers; FLUSH is still answered (op_flush) for any guest. */
    if (!dir)
        o->open_flags = FOPEN_NOFLUSH;
    return 0;
}

static int op_open(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    NEED(rq, struct fuse_open_in);
    struct fuse_open_in in;
    memcpy(&in, rq->args, sizeof in);
    int flags, r = open_flags(s, in.flags, &flags);
    if (r)
        return r;
    mode_t type = s->t.inodes[node].type;
    if (type != S_IFREG)
        return type == S_IFDIR ? -EISDIR : -ENXIO; /* FIFOs, symlinks, devices */
    int fd = reopen(s, node_fd(s, node), flags);
    if (fd < 0)
        return fd;
    rp->len = 0;
    return reply_open(s, rp, fd, false, 0);
}

static int op_create(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    struct fuse_create_in in;
    const char *name;
    int r = args_and_name(rq, &in, sizeof in, &name);
    if (r)
        return r;
    int flags;
    if ((r = open_flags(s, in.flags, &flags)))
        return r;
    if (s->read_only)
        return -EROFS;
    if (!S_ISREG(in.mode) && (in.mode & S_IFMT))
        return -EPERM;
    mode_t mode = safe_mode(in.mode, false);
    /* The kernel sends CREATE for a name it believes absent, so O_EXCL
     * always: a name the host made meanwhile fails EEXIST rather than
     * opening whatever it is (a FIFO would block this thread). */
    if ((r = fuse_table_room(&s->t, true)))
        return r;
    int fd = openat(node_fd(s, node), name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    mode);
    if (fd < 0)
        return -errno;
    give_to_caller(s, rq, fd);
    if ((mode & s->umask) && fchmod(fd, mode)) {
        /* Left as the umask made it: the guest sees the real mode. */
    }
    /* The O_PATH descriptor for the table, from the open file itself (the
     * name could already name something else). */
    struct fuse_entry_out *e = payload(rp, sizeof *e + sizeof(struct fuse_open_out));
    int pfd = reopen(s, fd, O_PATH);
    r = pfd < 0 ? pfd : fuse_inode_enter(&s->t, pfd, e);
    if (r) {
        close(fd);
        return r;
    }
    r = reply_open(s, rp, fd, false, sizeof *e);
    if (r)
        fuse_inode_forget(&s->t, e->nodeid, 1);
    return r;
}

static int check_range(uint64_t off, uint64_t len)
{
    uint64_t end;
    if (off > INT64_MAX || __builtin_add_overflow(off, len, &end) || end > INT64_MAX)
        return -EINVAL;
    return 0;
}

static int op_read(struct fuse_server *s, struct req *rq, struct rep *rp)
{
    NEED(rq, struct fuse_read_in);
    struct fuse_read_in in;
    memcpy(&in, rq->args, sizeof in);
    if (in.size > FUSE_SERVER_MAX_WRITE || check_range(in.offset, in.size))
        return -EINVAL;
    if (rp->cap - sizeof(struct fuse_out_header) < in.size)
        return -EINVAL; /* the driver's buffer must hold what it asks for */
    int32_t h = fuse_handle_get(&s->t, in.fh, false);
    if (h < 0)
        return unknown_id(rq);
    struct iovec v[IOV_SLICE_MAX];
    int n = iov_slice_all(rp->out, rp->n_out, sizeof(struct fuse_out_header), in.size, v,
                          IOV_SLICE_MAX);
    ssize_t got = 0;
    if (n > 0)
        got = preadv(s->t.handles[h].fd, v, n, (off_t)in.offset);
    int r = n < 0 ? -EINVAL : got < 0 ? -errno : 0;
    fuse_handle_put(&s->t, h);
    if (r)
        return r;
    count(&s->st.bytes_read, (uint64_t)got);
    rp->len = (size_t)got;
    rp->direct = true;
    return 0;
}

static int op_write(struct fuse_server *s, struct req *rq, struct rep *rp)
{
    NEED(rq, struct fuse_write_in);
    struct fuse_write_in in;
    memcpy(&in, rq->args, sizeof in);
    size_t at = sizeof(struct fuse_in_header) + sizeof in;
    if (in.size > FUSE_SERVER_MAX_WRITE || check_range(in.offset, in.size))
        return -EINVAL;
    if (rq->h.len != at + in.size)
        return MALFORMED; /* the data is not what the header says */
    if (s->read_only)
        return -EROFS;
    int32_t h = fuse_handle_get(&s->t, in.fh, false);
    if (h < 0)
        return unknown_id(rq);
    struct iovec v[IOV_SLICE_MAX];
    int n = iov_slice_all(rq->in, rq->n_in, at, in.size, v, IOV_SLICE_MAX);
    ssize_t put = 0;
    if (n > 0)
        put = pwritev(s->t.handles[h].fd, v, n, (off_t)in.offset);
    int r = n < 0 ? -EINVAL : put < 0 ? -errno : 0;
    fuse_handle_put(&s->t, h);
    if (r)
        return r;
    count(&s->st.bytes_written, (uint64_t)put);
    struct fuse_write_out *o = payload(rp, sizeof *o);
    o->size = (uint32_t)put;
    return 0;
}

static int op_fsync(struct fuse_server *s, struct req *rq, bool dir)
{
    NEED(rq, struct fuse_fsync_in);
    struct fuse_fsync_in in;
    memcpy(&in, rq->args, sizeof in);
    int32_t h = fuse_handle_get(&s->t, in.fh, dir);
    if (h < 0)
        return unknown_id(rq);
    int fd = s->t.handles[h].fd;
    int r = ((in.fsync_flags & 1) ? fdatasync(fd) : fsync(fd)) ? -errno : 0;
    fuse_handle_put(&s->t, h);
    return r;
}

static int op_flush(struct fuse_server *s, struct req *rq)
{
    NEED(rq, struct fuse_flush_in);
    struct fuse_flush_in in;
    memcpy(&in, rq->args, sizeof in);
    int32_t h = fuse_handle_get(&s->t, in.fh, false);
    if (h < 0)
        return unknown_id(rq);
    fuse_handle_put(&s->t, h); /* nothing buffered here: writes went straight through */
    return 0;
}

static int op_release(struct fuse_server *s, struct req *rq, bool dir)
{
    NEED(rq, struct fuse_release_in);
    struct fuse_release_in in;
    memcpy(&in, rq->args, sizeof in);
    if (fuse_table_stale(&s->t, in.fh))
        return 0; /* opened before a restore: closed with the saved vmlet */
    return fuse_handle_release(&s->t, in.fh, dir) ? unknown_id(rq) : 0;
}

static int op_opendir(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    if (s->t.inodes[node].type != S_IFDIR)
        return -ENOTDIR;
    int fd = reopen(s, node_fd(s, node), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return fd;
    rp->len = 0;
    return reply_open(s, rp, fd, true, 0);
}

struct host_dirent {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* READDIR and READDIRPLUS: from the offset cookie (the d_off of the last
 * entry the guest took), as many entries as fit in size. The directory's
 * position is set for every request, so two readers of one handle only
 * confuse each other. */
static int op_readdir(struct fuse_server *s, struct req *rq, struct rep *rp, bool plus)
{
    NEED(rq, struct fuse_read_in);
    struct fuse_read_in in;
    memcpy(&in, rq->args, sizeof in);
    if (in.offset > INT64_MAX)
        return -EINVAL;
    size_t size = in.size < READDIR_MAX ? in.size : READDIR_MAX;
    if (size == 0 || size > rp->cap - sizeof(struct fuse_out_header))
        return -EINVAL;
    int32_t h = fuse_handle_get(&s->t, in.fh, true);
    if (h < 0)
        return unknown_id(rq);
    int fd = s->t.handles[h].fd;
    /* A directory moved out of the share while open: its names and (for
     * PLUS) inodes are not handed out. */
    int r = check_inside(s, fd);
    if (r) {
        fuse_handle_put(&s->t, h);
        return r;
    }
    uint8_t *raw = malloc(size), *out = malloc(size);
    if (!raw || !out) {
        r = -ENOMEM;
        goto done;
    }
    if (lseek(fd, (off_t)in.offset, SEEK_SET) < 0) {
        r = -errno;
        goto done;
    }
    long got = syscall(SYS_getdents64, fd, raw, size);
    if (got < 0) {
        r = -errno;
        goto done;
    }
    size_t used = 0;
    for (long p = 0; p < got;) {
        struct host_dirent *d = (struct host_dirent *)(raw + p);
        p += d->d_reclen;
        size_t namelen = strlen(d->d_name);
        size_t head = plus ? offsetof(struct fuse_direntplus, dirent) : 0;
        size_t rec = head + FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
        if (used + rec > size)
            break;
        struct fuse_entry_out e = { 0 };
        bool dots = !strcmp(d->d_name, ".") || !strcmp(d->d_name, "..");
        if (plus && !dots && lookup_name(s, fd, d->d_name, &e) < 0)
            memset(&e, 0, sizeof e); /* nodeid 0: the guest looks it up itself */
        uint8_t *o = out + used;
        memset(o, 0, rec);
        if (plus)
            memcpy(o, &e, sizeof e);
        struct fuse_dirent de = {
            .ino = d->d_ino,
            .off = (uint64_t)d->d_off,
            .namelen = (uint32_t)namelen,
            .type = d->d_type,
        };
        memcpy(o + head, &de, sizeof de);
        memcpy(o + head + FUSE_NAME_OFFSET, d->d_name, namelen);
        used += rec;
    }
    if (used == 0 && got > 0)
        r = -EINVAL; /* size too small for even one entry */
    else
        rp->len = iov_from_buf(rp->out, rp->n_out, sizeof(struct fuse_out_header), out, used);
    rp->direct = true;
done:
    free(raw);
    free(out);
    fuse_handle_put(&s->t, h);
    return r;
}

static int op_statfs(struct fuse_server *s, struct req *rq, struct rep *rp, int32_t node)
{
    struct statfs sf;
    if (fstatfs(node_fd(s, node), &sf))
        return -errno;
    struct fuse_statfs_out *o = payload(rp, sizeof *o);
    o->st.blocks = sf.f_blocks;
    o->st.bfree = sf.f_bfree;
    o->st.bavail = sf.f_bavail;
    o->st.files = sf.f_files;
    o->st.ffree = sf.f_ffree;
    o->st.bsize = (uint32_t)sf.f_bsize;
    o->st.namelen = (uint32_t)sf.f_namelen;
    o->st.frsize = (uint32_t)sf.f_frsize;
    return 0;
}

static int op_access(struct fuse_server *s, struct req *rq, int32_t node)
{
    NEED(rq, struct fuse_access_in);
    struct fuse_access_in in;
    memcpy(&in, rq->args, sizeof in);
    if (in.mask & ~(uint32_t)(R_OK | W_OK | X_OK))
        return -EINVAL;
    if (s->read_only && (in.mask & W_OK))
        return -EROFS;
    if (s->t.inodes[node].type == S_IFLNK)
        return 0; /* the /proc link would not land on a symlink's own inode */
    char name[16];
    fd_name(name, node_fd(s, node));
    return faccessat(s->proc_fd, name, (int)in.mask, 0) ? -errno : 0;
}

static int op_fallocate(struct fuse_server *s, struct req *rq)
{
    NEED(rq, struct fuse_fallocate_in);
    struct fuse_fallocate_in in;
    memcpy(&in, rq->args, sizeof in);
    if (check_range(in.offset, in.length) || in.length == 0)
        return -EINVAL;
    int32_t h = fuse_handle_get(&s->t, in.fh, false);
    if (h < 0)
        return unknown_id(rq);
    int r = fallocate(s->t.handles[h].fd, (int)in.mode, (off_t)in.offset, (off_t)in.length) ? -errno
                                                                                            : 0;
    fuse_handle_put(&s->t, h);
    return r;
}

static int op_lseek(struct fuse_server *s, struct req *rq, struct rep *rp)
{
    NEED(rq, struct fuse_lseek_in);
    struct fuse_lseek_in in;
    memcpy(&in, rq->args, sizeof in);
    if (in.offset > INT64_MAX || (in.whence != SEEK_DATA && in.whence != SEEK_HOLE))
        return -EINVAL; /* the kernel resolves SET/CUR/END itself */
    int32_t h = fuse_handle_get(&s->t, in.fh, false);
    if (h < 0)
        return unknown_id(rq);
    off_t o = lseek(s->t.handles[h].fd, (off_t)in.offset, (int)in.whence);
    int r = o < 0 ? -errno : 0;
    fuse_handle_put(&s->t, h);
    if (r)
        return r;
    struct fuse_lseek_out *out = payload(rp, sizeof *out);
    out->offset = (uint64_t)o;
    return 0;
}

static bool modifies(uint32_t op)
{
    switch (op) {
    case FUSE_SETATTR:
    case FUSE_SYMLINK:
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
    case FUSE_LINK:
    case FUSE_CREATE:
    case FUSE_WRITE:
    case FUSE_FALLOCATE: return true;
    default: return false;
    }
}

/* Opcodes whose nodeid names an inode the handler uses. */
static bool takes_node(uint32_t op)
{
    switch (op) {
    case FUSE_LOOKUP:
    case FUSE_GETATTR:
    case FUSE_SETATTR:
    case FUSE_READLINK:
    case FUSE_SYMLINK:
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
    case FUSE_LINK:
    case FUSE_OPEN:
    case FUSE_CREATE:
    case FUSE_OPENDIR:
    case FUSE_STATFS:
    case FUSE_ACCESS: return true;
    default: return false;
    }
}

static int dispatch(struct fuse_server *s, struct req *rq, struct rep *rp)
{
    uint32_t op = rq->h.opcode;
    switch (op) {
    case FUSE_INIT: return op_init(s, rq, rp);
    case FUSE_FORGET: return op_forget(s, rq) ? unknown_id(rq) : NOREPLY;
    case FUSE_BATCH_FORGET: return op_batch_forget(s, rq) ? unknown_id(rq) : NOREPLY;
    /* Extended attributes are not offered: ENOSYS makes the guest's
     * kernel remember (fc->no_getxattr etc.), stop asking, and answer
     * EOPNOTSUPP to its programs. */
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
    case FUSE_SETXATTR:
    case FUSE_REMOVEXATTR: return -ENOSYS;
    default: break;
    }
    if (!atomic_load(&s->initialized))
        return -EIO;
    if (s->read_only && modifies(op))
        return -EROFS;

    int32_t node = -1;
    if (takes_node(op)) {
        int r = node_get_inside(s, rq, rq->h.nodeid, &node);
        if (r)
            return r;
    }
    int r;
    switch (op) {
    case FUSE_DESTROY: r = op_destroy(s, rq, rp); break;
    case FUSE_LOOKUP: r = op_lookup(s, rq, rp, node); break;
    case FUSE_GETATTR: r = op_getattr(s, rq, rp, node); break;
    case FUSE_SETATTR: r = op_setattr(s, rq, rp, node); break;
    case FUSE_READLINK: r = op_readlink(s, rq, rp, node); break;
    case FUSE_SYMLINK: r = op_symlink(s, rq, rp, node); break;
    case FUSE_MKNOD: r = op_mknod(s, rq, rp, node); break;
    case FUSE_MKDIR: r = op_mkdir(s, rq, rp, node); break;
    case FUSE_UNLINK: r = op_unlink(s, rq, rp, node, 0); break;
    case FUSE_RMDIR: r = op_unlink(s, rq, rp, node, AT_REMOVEDIR); break;
    case FUSE_RENAME: r = op_rename(s, rq, rp, node, false); break;
    case FUSE_RENAME2: r = op_rename(s, rq, rp, node, true); break;
    case FUSE_LINK: r = op_link(s, rq, rp, node); break;
    case FUSE_OPEN: r = op_open(s, rq, rp, node); break;
    case FUSE_CREATE: r = op_create(s, rq, rp, node); break;
    case FUSE_READ: r = op_read(s, rq, rp); break;
    case FUSE_WRITE: r = op_write(s, rq, rp); break;
    case FUSE_FLUSH: r = op_flush(s, rq); break;
    case FUSE_RELEASE: r = op_release(s, rq, false); break;
    case FUSE_FSYNC: r = op_fsync(s, rq, false); break;
    case FUSE_OPENDIR: r = op_opendir(s, rq, rp, node); break;
    case FUSE_READDIR: r = op_readdir(s, rq, rp, false); break;
    case FUSE_READDIRPLUS: r = op_readdir(s, rq, rp, true); break;
    case FUSE_RELEASEDIR: r = op_release(s, rq, true); break;
    case FUSE_FSYNCDIR: r = op_fsync(s, rq, true); break;
    case FUSE_STATFS: r = op_statfs(s, rq, rp, node); break;
    case FUSE_ACCESS: r = op_access(s, rq, node); break;
    case FUSE_FALLOCATE: r = op_fallocate(s, rq); break;
    case FUSE_LSEEK: r = op_lseek(s, rq, rp); break;
    default: r = -ENOSYS; break;
    }
    if (node >= 0)
        fuse_inode_put(&s->t, node);
    return r;
}

size_t fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned n_in,
                          const struct iovec *out, unsigned n_out)
{
    count(&s->st.requests, 1);
    struct req rq = { .in = in, .n_in = n_in };
    struct rep rp = { .out = out, .n_out = n_out };
    size_t total;
    if (!iov_total(in, n_in, &total) || total < sizeof rq.h ||
        iov_to_buf(in, n_in, 0, &rq.h, sizeof rq.h) != sizeof rq.h) {
        count(&s->st.malformed, 1);
        return 0; /* no unique to answer to */
    }
    if (rq.h.opcode < 64)
        count(&s->st.by_opcode[rq.h.opcode], 1);
    /* FORGET and BATCH_FORGET come on the hiprio queue with no room for a
     * reply, and need none; everything else needs at least a header. */
    bool no_reply = rq.h.opcode == FUSE_FORGET || rq.h.opcode == FUSE_BATCH_FORGET;
    if (!iov_total(out, n_out, &rp.cap) || (!no_reply && rp.cap < sizeof(struct fuse_out_header))) {
        count(&s->st.malformed, 1);
        return 0;
    }

    uint8_t args[ARGS_MAX];
    int r;
    bool bad = false;
    /* The header's length must be covered by what the driver wrote; trailing
     * bytes past it are ignored. WRITE's data stays in in[]. */
    size_t want = rq.h.len >= sizeof rq.h ? rq.h.len - sizeof rq.h : 0;
    rq.body = want;
    if (rq.h.len < sizeof rq.h || rq.h.len > total) {
        r = -EINVAL;
        bad = true;
    } else if (rq.h.opcode == FUSE_WRITE || rq.h.opcode == FUSE_BATCH_FORGET) {
        size_t fixed = rq.h.opcode == FUSE_WRITE ? sizeof(struct fuse_write_in)
                                                 : sizeof(struct fuse_batch_forget_in);
        rq.args_len = want < fixed ? want : fixed;
        iov_to_buf(in, n_in, sizeof rq.h, args, rq.args_len);
        rq.args = args;
        r = dispatch(s, &rq, &rp);
    } else if (want > sizeof args) {
        r = rq.h.opcode == FUSE_SETXATTR ? -ENOSYS : -E2BIG;
        bad = r != -ENOSYS;
    } else {
        rq.args_len = iov_to_buf(in, n_in, sizeof rq.h, args, want);
        rq.args = args;
        r = dispatch(s, &rq, &rp);
    }
    if (r == NOREPLY)
        return 0;
    if (r == MALFORMED) {
        rq.bad = true;
        r = -EINVAL;
    }
    if (rq.bad || bad) {
        /* The request's own fields were wrong: short arguments, an
         * unterminated name, a nodeid or fh the server never gave. */
        count(&s->st.malformed, 1);
    }
    if (rq.h.opcode == FUSE_FORGET || rq.h.opcode == FUSE_BATCH_FORGET)
        return 0; /* never answered, even when wrong */
    if (r == 0 && !rp.direct && sizeof(struct fuse_out_header) + rp.len > rp.cap) {
        r = -EINVAL; /* the driver's buffer is too small for the reply */
        count(&s->st.malformed, 1);
        if (rq.h.opcode == FUSE_LOOKUP || rq.h.opcode == FUSE_CREATE || rq.h.opcode == FUSE_MKDIR ||
            rq.h.opcode == FUSE_MKNOD || rq.h.opcode == FUSE_SYMLINK || rq.h.opcode == FUSE_LINK) {
            struct fuse_entry_out e;
            memcpy(&e, rp.buf, sizeof e);
            fuse_inode_forget(&s->t, e.nodeid, 1); /* the guest will never know it */
        }
        if (rq.h.opcode == FUSE_CREATE) {
            struct fuse_open_out o;
            memcpy(&o, rp.buf + sizeof(struct fuse_entry_out), sizeof o);
            fuse_handle_release(&s->t, o.fh, false);
        }
    }
    struct fuse_out_header oh = { .unique = rq.h.unique };
    if (r < 0) {
        count(&s->st.errors, 1);
        oh.error = r;
        rp.len = 0;
    } else if (!rp.direct) {
        iov_from_buf(out, n_out, sizeof oh, rp.buf, rp.len);
    }
    oh.len = (uint32_t)(sizeof oh + rp.len);
    iov_from_buf(out, n_out, 0, &oh, sizeof oh);
    return oh.len;
}

/* --- life ------------------------------------------------------------------ */

static mode_t read_umask(void)
{
    /* From /proc: umask() itself would change it, for every thread. */
    mode_t m = 022;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return m;
    char line[128];
    unsigned v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Umask: %o", &v) == 1) {
            m = (mode_t)v & 0777;
            break;
        }
    }
    fclose(f);
    return m;
}

struct fuse_server *fuse_server_new(const char *root, bool read_only, vmlet_error *err)
{
    struct fuse_server *s = calloc(1, sizeof *s);
    if (!s) {
        set_error(err, VMLET_ERR_NOMEM, "shared directory %s: out of memory", root);
        return NULL;
    }
    s->root_fd = s->proc_fd = -1;
    s->read_only = read_only;
    s->as_root = geteuid() == 0;
    s->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        set_error(err, VMLET_ERR_FILE, "shared directory %s: %s (it must be a directory)", root,
                  strerror(errno));
        goto fail;
    }
    s->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->proc_fd < 0) {
        set_error(err, VMLET_ERR_HOST, "shared directory %s: /proc/self/fd: %s (is /proc mounted?)",
                  root, strerror(errno));
        goto fail;
    }
    int probe = open_beneath(s->root_fd, ".");
    if (probe < 0) {
        set_error(err, VMLET_ERR_HOST,
                  "shared directory %s: openat2: %s (Linux 5.6 or later needed)", root,
                  strerror(-probe));
        goto fail;
    }
    close(probe);
    struct stat st;
    int r = fuse_stat_fd(s->root_fd, &st);
    if (r) {
        set_error(err, VMLET_ERR_FILE, "shared directory %s: %s", root, strerror(-r));
        goto fail;
    }
    s->umask = read_umask();
    if (fuse_table_init(&s->t, s->root_fd, &st)) {
        set_error(err, VMLET_ERR_NOMEM, "shared directory %s: out of memory", root);
        goto fail;
    }
    s->have_table = true; /* it owns root_fd now */
    return s;
fail:
    fuse_server_free(s);
    return NULL;
}

#ifdef VMLET_UNIT_TEST
/* Lower caps, so a test can reach them with few descriptors (declared in
 * the test, not in the header). */
void fuse_server_test_limits(struct fuse_server *s, uint32_t max_inodes, uint32_t max_handles);
void fuse_server_test_limits(struct fuse_server *s, uint32_t max_inodes, uint32_t max_handles)
{
    s->t.max_inodes = max_inodes < FUSE_SERVER_MAX_INODES ? max_inodes : FUSE_SERVER_MAX_INODES;
    s->t.max_handles = max_handles < FUSE_SERVER_MAX_HANDLES ? max_handles
                                                             : FUSE_SERVER_MAX_HANDLES;
}
#endif

void fuse_server_set_cache_always(struct fuse_server *s, bool always)
{
    s->t.timeout_s = always ? FUSE_TIMEOUT_ALWAYS_S : FUSE_TIMEOUT_S;
}

int fuse_server_root_fd(const struct fuse_server *s)
{
    return s->root_fd;
}

void fuse_server_get_stats(struct fuse_server *s, struct fuse_server_stats *st)
{
    memset(st, 0, sizeof *st);
    st->requests = atomic_load_explicit(&s->st.requests, memory_order_relaxed);
    for (int i = 0; i < 64; i++)
        st->by_opcode[i] = atomic_load_explicit(&s->st.by_opcode[i], memory_order_relaxed);
    st->errors = atomic_load_explicit(&s->st.errors, memory_order_relaxed);
    st->bytes_read = atomic_load_explicit(&s->st.bytes_read, memory_order_relaxed);
    st->bytes_written = atomic_load_explicit(&s->st.bytes_written, memory_order_relaxed);
    st->malformed = atomic_load_explicit(&s->st.malformed, memory_order_relaxed);
    fuse_table_counts(&s->t, &st->inodes, &st->open_handles);
}

void fuse_server_free(struct fuse_server *s)
{
    if (!s)
        return;
    if (s->have_table)
        fuse_table_free(&s->t); /* the root's descriptor included */
    else if (s->root_fd >= 0)
        close(s->root_fd);
    if (s->proc_fd >= 0)
        close(s->proc_fd);
    free(s);
}

/* --- for the device (src/virtio/fs.c) ------------------------------------ */

/* The saved state, little-endian (x86 only). */
struct server_snap {
    uint32_t initialized;                    /* 0 or 1 */
    uint32_t major, minor, flags, max_write; /* what INIT agreed; 0 before */
    uint32_t generation;                     /* fuse_table_generation */
};
_Static_assert(sizeof(struct server_snap) == FUSE_SERVER_STATE_SIZE, "the saved state's size");

int fuse_server_save(struct fuse_server *s, uint8_t *buf, size_t cap)
{
    if (cap < sizeof(struct server_snap))
        return -1;
    struct server_snap st = { .generation = fuse_table_generation(&s->t) };
    if (atomic_load(&s->initialized)) {
        st.initialized = 1;
        st.major = FUSE_KERNEL_VERSION;
        st.minor = s->init_minor;
        st.flags = s->init_flags;
        st.max_write = FUSE_SERVER_MAX_WRITE;
    }
    memcpy(buf, &st, sizeof st);
    return (int)sizeof st;
}

static int load_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int load_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(why, whylen, "shared directory state: ");
    if (n > 0 && (size_t)n < whylen)
        vsnprintf(why + n, whylen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int fuse_server_load(struct fuse_server *s, const uint8_t *buf, size_t len, char *why,
                     size_t whylen)
{
    struct server_snap st;
    if (len != sizeof st)
        return load_fail(why, whylen, "%zu bytes, not %zu", len, sizeof st);
    memcpy(&st, buf, sizeof st);
    if (st.initialized > 1)
        return load_fail(why, whylen, "initialized is %u, not 0 or 1", st.initialized);
    if (!st.initialized && (st.major || st.minor || st.flags || st.max_write))
        return load_fail(why, whylen, "INIT values without an INIT");
    if (st.initialized) {
        if (st.major != FUSE_KERNEL_VERSION)
            return load_fail(why, whylen, "FUSE major %u (this vmlet speaks %u)", st.major,
                             FUSE_KERNEL_VERSION);
        if (st.minor < FUSE_MIN_MINOR || st.minor > FUSE_KERNEL_MINOR_VERSION)
            return load_fail(why, whylen, "FUSE minor %u (this vmlet answers %u to %u)", st.minor,
                             FUSE_MIN_MINOR, FUSE_KERNEL_MINOR_VERSION);
        if (st.flags & ~(uint32_t)INIT_FLAGS)
            return load_fail(why, whylen, "INIT flags 0x%x not all offered (0x%x)", st.flags,
                             (uint32_t)INIT_FLAGS);
        if (st.max_write != FUSE_SERVER_MAX_WRITE)
            return load_fail(why, whylen, "max_write %u (this vmlet serves %u)", st.max_write,
                             FUSE_SERVER_MAX_WRITE);
    }
    if (fuse_table_start_after(&s->t, st.generation) < 0)
        return load_fail(why, whylen, "generation %u (1 to %u) or the server in use", st.generation,
                         UINT32_MAX - 1);
    s->init_minor = st.minor;
    s->init_flags = st.flags;
    atomic_store(&s->initialized, st.initialized == 1);
    return 0;
}

void fuse_server_reset(struct fuse_server *s)
{
    op_destroy(s, NULL, NULL); /* the same as the driver's own DESTROY */
}

const char *fuse_opcode_name(unsigned opcode)
{
    static const char *const names[] = {
        [FUSE_LOOKUP] = "lookup",
        [FUSE_FORGET] = "forget",
        [FUSE_GETATTR] = "getattr",
        [FUSE_SETATTR] = "setattr",
        [FUSE_READLINK] = "readlink",
        [FUSE_SYMLINK] = "symlink",
        [FUSE_MKNOD] = "mknod",
        [FUSE_MKDIR] = "mkdir",
        [FUSE_UNLINK] = "unlink",
        [FUSE_RMDIR] = "rmdir",
        [FUSE_RENAME] = "rename",
        [FUSE_LINK] = "link",
        [FUSE_OPEN] = "open",
        [FUSE_READ] = "read",
        [FUSE_WRITE] = "write",
        [FUSE_STATFS] = "statfs",
        [FUSE_RELEASE] = "release",
        [FUSE_FSYNC] = "fsync",
        [FUSE_SETXATTR] = "setxattr",
        [FUSE_GETXATTR] = "getxattr",
        [FUSE_LISTXATTR] = "listxattr",
        [FUSE_REMOVEXATTR] = "removexattr",
        [FUSE_FLUSH] = "flush",
        [FUSE_INIT] = "init",
        [FUSE_OPENDIR] = "opendir",
        [FUSE_READDIR] = "readdir",
        [FUSE_RELEASEDIR] = "releasedir",
        [FUSE_FSYNCDIR] = "fsyncdir",
        [FUSE_ACCESS] = "access",
        [FUSE_CREATE] = "create",
        [FUSE_DESTROY] = "destroy",
        [FUSE_BATCH_FORGET] = "batch_forget",
        [FUSE_FALLOCATE] = "fallocate",
        [FUSE_READDIRPLUS] = "readdirplus",
        [FUSE_RENAME2] = "rename2",
        [FUSE_LSEEK] = "lseek",
    };
    return opcode < sizeof names / sizeof names[0] ? names[opcode] : NULL;
}

/* The calls the handlers above make, beyond the common set (read, write,
 * close, ...): resolving and making names beneath a held descriptor,
 * reopening through /proc/self/fd, attributes, I/O and directory reads. */
static const int fuse_syscalls[] = {
    __NR_openat2,    __NR_openat,     __NR_newfstatat, __NR_fstat,   __NR_fstatfs,
    __NR_readlinkat, __NR_symlinkat,  __NR_mknodat,    __NR_mkdirat, __NR_unlinkat,
    __NR_renameat2,  __NR_linkat,     __NR_fchmodat,   __NR_fchmod,  __NR_fchownat,
    __NR_utimensat,  __NR_ftruncate,  __NR_fallocate,  __NR_fsync,   __NR_fdatasync,
    __NR_lseek,      __NR_getdents64, __NR_preadv,     __NR_pwritev, __NR_pread64,
    __NR_pwrite64,   __NR_faccessat,  __NR_faccessat2, __NR_capget,
};

struct sandbox_rules fuse_server_sandbox_rules(const struct fuse_server *s)
{
    /* As root, the thread keeps what serving files of every owner takes
     * (docs/shared-directories.md); Landlock keeps it inside the share. */
    uint64_t keep = (1ull << CAP_CHOWN) | (1ull << CAP_DAC_OVERRIDE) | (1ull << CAP_FOWNER) |
                    (1ull << CAP_FSETID);
    return (struct sandbox_rules){
        .kind = "virtio-fs",
        .syscalls = fuse_syscalls,
        .nsyscalls = sizeof fuse_syscalls / sizeof fuse_syscalls[0],
        .has_share = true,
        .share_read_only = s->read_only,
        .share_fd = s->root_fd,
        .keep_caps = geteuid() == 0 ? keep : 0,
    };
}
