/* The FUSE server's inode and handle tables (fuse_table.h). */
#include "fs/fuse_table.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fs/fuse_server.h"

#define HASH_BUCKETS (1u << 17) /* > 2 * FUSE_SERVER_MAX_INODES, a power of two */

static uint64_t make_id(uint32_t gen, uint32_t slot)
{
    return ((uint64_t)gen << 32) | (slot + 1);
}

/* The slot an id names, or -1 if out of range (generation not checked). */
static int32_t id_slot(uint64_t id, uint32_t slots)
{
    uint64_t low = id & 0xffffffffu;
    return low == 0 || low > slots ? -1 : (int32_t)(low - 1);
}

static uint32_t hash_key(dev_t dev, ino_t ino)
{
    uint64_t k = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;
    return (uint32_t)(k >> 40) & (HASH_BUCKETS - 1);
}

int fuse_stat_fd(int fd, struct stat *st)
{
    return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

void fuse_fill_attr(struct fuse_attr *a, const struct stat *st)
{
    memset(a, 0, sizeof *a);
    a->ino = st->st_ino;
    a->size = (uint64_t)st->st_size;
    a->blocks = (uint64_t)st->st_blocks;
    a->atime = (uint64_t)st->st_atim.tv_sec;
    a->mtime = (uint64_t)st->st_mtim.tv_sec;
    a->ctime = (uint64_t)st->st_ctim.tv_sec;
    a->atimensec = (uint32_t)st->st_atim.tv_nsec;
    a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
    a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
    a->mode = st->st_mode;
    a->nlink = (uint32_t)st->st_nlink;
    a->uid = st->st_uid;
    a->gid = st->st_gid;
    a->rdev = (uint32_t)st->st_rdev;
    a->blksize = (uint32_t)st->st_blksize;
}

static void fill_entry(const struct fuse_table *t, struct fuse_entry_out *e, uint64_t nodeid,
                       const struct stat *st)
{
    memset(e, 0, sizeof *e);
    e->nodeid = nodeid;
    e->entry_valid = t->timeout_s;
    e->attr_valid = t->timeout_s;
    fuse_fill_attr(&e->attr, st);
}

/* --- inodes (called with the lock held unless said) --------------------- */

static void unhash(struct fuse_table *t, int32_t slot)
{
    struct fuse_inode *in = &t->inodes[slot];
    int32_t *p = &t->buckets[hash_key(in->dev, in->ino)];
    while (*p != -1 && *p != slot)
        p = &t->inodes[*p].hnext;
    if (*p == slot)
        *p = in->hnext;
    in->hashed = false;
}

/* Frees a slot nobody holds or uses; returns its fd, to close unlocked. */
static int inode_free_slot(struct fuse_table *t, int32_t slot)
{
    struct fuse_inode *in = &t->inodes[slot];
    int fd = in->fd;
    in->fd = -1;
    if (++in->gen == 0) /* never 0 again: nodeid 1 is the root's alone */
        in->gen = t->first_gen ? t->first_gen : 1;
    t->ifree[t->n_ifree++] = slot;
    t->n_inodes--;
    return fd;
}

/* Drops n guest references to a hashed inode; returns an fd to close, or -1. */
static int forget_locked(struct fuse_table *t, int32_t slot, uint64_t n)
{
    struct fuse_inode *in = &t->inodes[slot];
    in->nlookup = n >= in->nlookup ? 0 : in->nlookup - n;
    if (in->nlookup > 0 || slot == 0)
        return -1;
    unhash(t, slot);
    return in->refs == 0 ? inode_free_slot(t, slot) : -1;
}

static bool inode_valid(const struct fuse_table *t, int32_t slot, uint64_t nodeid)
{
    const struct fuse_inode *in = &t->inodes[slot];
    return in->fd >= 0 && in->hashed && in->gen == (uint32_t)(nodeid >> 32);
}

int32_t fuse_inode_get(struct fuse_table *t, uint64_t nodeid)
{
    int32_t slot = id_slot(nodeid, FUSE_SERVER_MAX_INODES + 1);
    if (slot < 0)
        return -1;
    pthread_mutex_lock(&t->lock);
    if (inode_valid(t, slot, nodeid))
        t->inodes[slot].refs++;
    else
        slot = -1;
    pthread_mutex_unlock(&t->lock);
    return slot;
}

void fuse_inode_put(struct fuse_table *t, int32_t slot)
{
    int fd = -1;
    pthread_mutex_lock(&t->lock);
    struct fuse_inode *in = &t->inodes[slot];
    if (--in->refs == 0 && in->nlookup == 0 && !in->hashed && slot != 0)
        fd = inode_free_slot(t, slot);
    pthread_mutex_unlock(&t->lock);
    if (fd >= 0)
        close(fd);
}

int fuse_inode_enter(struct fuse_table *t, int fd, struct fuse_entry_out *e)
{
    struct stat st;
    int r = fuse_stat_fd(fd, &st);
    if (r) {
        close(fd);
        return r;
    }
    pthread_mutex_lock(&t->lock);
    uint32_t b = hash_key(st.st_dev, st.st_ino);
    int32_t slot = t->buckets[b];
    while (slot != -1 && (t->inodes[slot].dev != st.st_dev || t->inodes[slot].ino != st.st_ino))
        slot = t->inodes[slot].hnext;
    if (slot == -1) {
        if (t->n_inodes >= t->max_inodes || t->n_ifree == 0) {
            pthread_mutex_unlock(&t->lock);
            close(fd);
            return -ENFILE;
        }
        slot = t->ifree[--t->n_ifree];
        t->n_inodes++;
        struct fuse_inode *in = &t->inodes[slot];
        in->fd = fd;
        fd = -1;
        in->refs = 0;
        in->nlookup = 0;
        in->dev = st.st_dev;
        in->ino = st.st_ino;
        in->type = st.st_mode & S_IFMT;
        in->hnext = t->buckets[b];
        in->hashed = true;
        t->buckets[b] = slot;
    }
    t->inodes[slot].nlookup++;
    uint64_t id = make_id(t->inodes[slot].gen, (uint32_t)slot);
    pthread_mutex_unlock(&t->lock);
    if (fd >= 0)
        close(fd); /* the inode was held already */
    fill_entry(t, e, id, &st);
    return 0;
}

int fuse_inode_hold_again(struct fuse_table *t, int32_t slot, struct fuse_entry_out *e)
{
    struct stat st;
    int r = fuse_stat_fd(t->inodes[slot].fd, &st);
    if (r)
        return r;
    pthread_mutex_lock(&t->lock);
    struct fuse_inode *in = &t->inodes[slot];
    if (!in->hashed) { /* forgotten meanwhile */
        pthread_mutex_unlock(&t->lock);
        return -ENOENT;
    }
    in->nlookup++;
    uint64_t id = make_id(in->gen, (uint32_t)slot);
    pthread_mutex_unlock(&t->lock);
    fill_entry(t, e, id, &st);
    return 0;
}

int fuse_inode_forget(struct fuse_table *t, uint64_t nodeid, uint64_t n)
{
    int32_t slot = id_slot(nodeid, FUSE_SERVER_MAX_INODES + 1);
    if (slot < 0)
        return -1;
    int fd = -1, r = -1;
    pthread_mutex_lock(&t->lock);
    if (inode_valid(t, slot, nodeid)) {
        fd = forget_locked(t, slot, n);
        r = 0;
    }
    pthread_mutex_unlock(&t->lock);
    if (fd >= 0)
        close(fd);
    return r;
}

/* --- handles ------------------------------------------------------------ */

static int handle_free_slot(struct fuse_table *t, int32_t slot)
{
    struct fuse_handle *h = &t->handles[slot];
    int fd = h->fd;
    h->fd = -1;
    if (++h->gen == 0)
        h->gen = t->first_gen ? t->first_gen : 1;
    t->hfree[t->n_hfree++] = slot;
    t->n_handles--;
    return fd;
}

int32_t fuse_handle_get(struct fuse_table *t, uint64_t fh, bool dir)
{
    int32_t slot = id_slot(fh, FUSE_SERVER_MAX_HANDLES);
    if (slot < 0)
        return -1;
    pthread_mutex_lock(&t->lock);
    struct fuse_handle *h = &t->handles[slot];
    if (h->open && h->gen == (uint32_t)(fh >> 32) && h->dir == dir)
        h->refs++;
    else
        slot = -1;
    pthread_mutex_unlock(&t->lock);
    return slot;
}

void fuse_handle_put(struct fuse_table *t, int32_t slot)
{
    int fd = -1;
    pthread_mutex_lock(&t->lock);
    struct fuse_handle *h = &t->handles[slot];
    if (--h->refs == 0 && !h->open)
        fd = handle_free_slot(t, slot);
    pthread_mutex_unlock(&t->lock);
    if (fd >= 0)
        close(fd);
}

int fuse_handle_new(struct fuse_table *t, int fd, bool dir, uint64_t *fh)
{
    pthread_mutex_lock(&t->lock);
    if (t->n_handles >= t->max_handles || t->n_hfree == 0) {
        pthread_mutex_unlock(&t->lock);
        close(fd);
        return -EMFILE;
    }
    int32_t slot = t->hfree[--t->n_hfree];
    t->n_handles++;
    struct fuse_handle *h = &t->handles[slot];
    h->fd = fd;
    h->refs = 0;
    h->open = true;
    h->dir = dir;
    *fh = make_id(h->gen, (uint32_t)slot);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

int fuse_handle_release(struct fuse_table *t, uint64_t fh, bool dir)
{
    int32_t slot = fuse_handle_get(t, fh, dir);
    if (slot < 0)
        return -EBADF;
    pthread_mutex_lock(&t->lock);
    t->handles[slot].open = false;
    pthread_mutex_unlock(&t->lock);
    fuse_handle_put(t, slot);
    return 0;
}

/* --- the whole table ------------------------------------------------------ */

int fuse_table_room(struct fuse_table *t, bool handle)
{
    pthread_mutex_lock(&t->lock);
    int r = t->n_inodes >= t->max_inodes               ? -ENFILE
            : handle && t->n_handles >= t->max_handles ? -EMFILE
                                                       : 0;
    pthread_mutex_unlock(&t->lock);
    return r;
}

void fuse_table_counts(struct fuse_table *t, uint64_t *inodes, uint64_t *handles)
{
    pthread_mutex_lock(&t->lock);
    *inodes = t->n_inodes;
    *handles = t->n_handles;
    pthread_mutex_unlock(&t->lock);
}

uint32_t fuse_table_generation(struct fuse_table *t)
{
    /* A slot's generation only grows: the one it has now is at least
     * that of every id it ever gave. */
    uint32_t max = t->first_gen;
    pthread_mutex_lock(&t->lock);
    for (uint32_t i = 1; i <= FUSE_SERVER_MAX_INODES; i++)
        if (t->inodes[i].gen > max)
            max = t->inodes[i].gen;
    for (uint32_t i = 0; i < FUSE_SERVER_MAX_HANDLES; i++)
        if (t->handles[i].gen > max)
            max = t->handles[i].gen;
    pthread_mutex_unlock(&t->lock);
    return max;
}

int fuse_table_start_after(struct fuse_table *t, uint32_t gen)
{
    if (gen == 0 || gen == UINT32_MAX)
        return -1;
    pthread_mutex_lock(&t->lock);
    if (t->n_inodes || t->n_handles) { /* a fresh table's slots only */
        pthread_mutex_unlock(&t->lock);
        return -1;
    }
    t->first_gen = gen + 1;
    for (uint32_t i = 1; i <= FUSE_SERVER_MAX_INODES; i++)
        t->inodes[i].gen = t->first_gen;
    for (uint32_t i = 0; i < FUSE_SERVER_MAX_HANDLES; i++)
        t->handles[i].gen = t->first_gen;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

bool fuse_table_stale(const struct fuse_table *t, uint64_t id)
{
    return id != FUSE_ROOT_ID && (uint32_t)(id >> 32) < t->first_gen;
}

/* Descriptors to close, a batch at a time with the lock dropped. */
struct fd_batch {
    int fd[128];
    unsigned n;
};

static void batch_add(struct fuse_table *t, struct fd_batch *b, int fd)
{
    if (fd < 0)
        return;
    b->fd[b->n++] = fd;
    if (b->n == sizeof b->fd / sizeof b->fd[0]) {
        pthread_mutex_unlock(&t->lock);
        while (b->n)
            close(b->fd[--b->n]);
        pthread_mutex_lock(&t->lock);
    }
}

void fuse_table_drop_all(struct fuse_table *t)
{
    struct fd_batch b = { .n = 0 };
    pthread_mutex_lock(&t->lock);
    t->inodes[0].nlookup = 0;
    for (uint32_t i = 1; i <= FUSE_SERVER_MAX_INODES; i++) {
        if (t->inodes[i].fd >= 0 && t->inodes[i].hashed)
            batch_add(t, &b, forget_locked(t, (int32_t)i, UINT64_MAX));
    }
    for (uint32_t i = 0; i < FUSE_SERVER_MAX_HANDLES; i++) {
        struct fuse_handle *h = &t->handles[i];
        if (h->open) {
            h->open = false;
            if (h->refs == 0)
                batch_add(t, &b, handle_free_slot(t, (int32_t)i));
        }
    }
    pthread_mutex_unlock(&t->lock);
    while (b.n)
        close(b.fd[--b.n]);
}

int fuse_table_init(struct fuse_table *t, int root_fd, const struct stat *root_st)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    t->max_inodes = FUSE_SERVER_MAX_INODES;
    t->max_handles = FUSE_SERVER_MAX_HANDLES;
    t->timeout_s = FUSE_TIMEOUT_S;
    t->inodes = calloc(FUSE_SERVER_MAX_INODES + 1, sizeof *t->inodes);
    t->ifree = calloc(FUSE_SERVER_MAX_INODES + 1, sizeof *t->ifree);
    t->buckets = malloc(HASH_BUCKETS * sizeof *t->buckets);
    t->handles = calloc(FUSE_SERVER_MAX_HANDLES, sizeof *t->handles);
    t->hfree = calloc(FUSE_SERVER_MAX_HANDLES, sizeof *t->hfree);
    if (!t->inodes || !t->ifree || !t->buckets || !t->handles || !t->hfree) {
        fuse_table_free(t);
        return -1;
    }
    memset(t->buckets, 0xff, HASH_BUCKETS * sizeof *t->buckets);
    for (uint32_t i = 0; i <= FUSE_SERVER_MAX_INODES; i++) {
        t->inodes[i].fd = -1;
        t->inodes[i].gen = 1;
    }
    for (uint32_t i = FUSE_SERVER_MAX_INODES; i >= 1; i--) /* lowest slots first */
        t->ifree[t->n_ifree++] = (int32_t)i;
    for (uint32_t i = FUSE_SERVER_MAX_HANDLES; i-- > 0;) {
        t->handles[i].fd = -1;
        t->handles[i].gen = 1;
        t->hfree[t->n_hfree++] = (int32_t)i;
    }
    /* The root: slot 0 with generation 0, nodeid 1, never forgotten. */
    struct fuse_inode *r = &t->inodes[0];
    r->fd = root_fd;
    r->gen = 0;
    r->dev = root_st->st_dev;
    r->ino = root_st->st_ino;
    r->type = S_IFDIR;
    r->hashed = true;
    r->hnext = -1;
    t->buckets[hash_key(root_st->st_dev, root_st->st_ino)] = 0;
    return 0;
}

void fuse_table_free(struct fuse_table *t)
{
    if (t->inodes) {
        for (uint32_t i = 0; i <= FUSE_SERVER_MAX_INODES; i++) {
            if (t->inodes[i].fd >= 0)
                close(t->inodes[i].fd);
        }
    }
    if (t->handles) {
        for (uint32_t i = 0; i < FUSE_SERVER_MAX_HANDLES; i++) {
            if (t->handles[i].fd >= 0)
                close(t->handles[i].fd);
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t->inodes);
    free(t->ifree);
    free(t->buckets);
    free(t->handles);
    free(t->hfree);
    memset(t, 0, sizeof *t);
}
