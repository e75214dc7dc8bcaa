/* The FUSE server's tables (src/fs/fuse_server.c): the inodes the guest
 * holds and the files it has open, each a host descriptor in a bounded
 * slot array.
 *
 * A nodeid (and an fh) is (generation << 32 | slot + 1): slot 0 is the
 * root, nodeid 1 (FUSE_ROOT_ID); a slot's generation changes when it is
 * freed, so an id the guest made up or already forgot names nothing.
 * Inodes are found by (st_dev, st_ino), so one host inode is one nodeid.
 *
 * A request takes a reference (get) on what it uses and drops it (put)
 * when done: a descriptor is closed only when the guest has forgotten or
 * released it and no request is using it. One mutex guards both tables;
 * no system call is made under it. */
#ifndef VMLET_FS_FUSE_TABLE_H
#define VMLET_FS_FUSE_TABLE_H

#include <linux/fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#define FUSE_TIMEOUT_S        1     /* entry and attribute validity in replies, seconds */
#define FUSE_TIMEOUT_ALWAYS_S 86400 /* the same with cache=always (a day) */

struct fuse_inode {
    int fd;           /* O_PATH|O_NOFOLLOW; -1 when the slot is free */
    uint32_t gen;     /* part of the nodeid; changed when the slot is freed */
    uint32_t refs;    /* requests using fd now */
    uint64_t nlookup; /* the guest's references (LOOKUP minus FORGET) */
    dev_t dev;
    ino_t ino;
    mode_t type;   /* S_IFMT bits: a held inode never changes type */
    int32_t hnext; /* hash chain */
    bool hashed;   /* findable: false once forgotten */
};

struct fuse_handle {
    int fd;
    uint32_t gen;
    uint32_t refs;
    bool open; /* false once released; the fd closes when refs drops to 0 */
    bool dir;
};

struct fuse_table {
    pthread_mutex_t lock;
    struct fuse_inode *inodes;  /* [FUSE_SERVER_MAX_INODES + 1] */
    int32_t *ifree;             /* free slots, a stack */
    uint32_t n_ifree, n_inodes; /* n_inodes: in use, the root not counted */
    int32_t *buckets;
    struct fuse_handle *handles; /* [FUSE_SERVER_MAX_HANDLES] */
    int32_t *hfree;
    uint32_t n_hfree, n_handles;
    uint32_t max_inodes, max_handles; /* the caps (lowered by unit tests) */
    uint32_t timeout_s;               /* entry and attribute validity in replies */
    /* Restored from a snapshot: every id with a generation below this
     * (but the root's nodeid) was handed out by the saved server and
     * names nothing here (fuse_table_stale); 0 for a table never saved. */
    uint32_t first_gen;
};

/* 0, or -1 out of memory. root_fd (O_PATH, a directory) becomes nodeid 1,
 * owned by the table from then on. */
int fuse_table_init(struct fuse_table *t, int root_fd, const struct stat *root_st);
/* Closes every descriptor, the root's included. */
void fuse_table_free(struct fuse_table *t);
/* Forgets every inode but the root and releases every handle (DESTROY). */
void fuse_table_drop_all(struct fuse_table *t);
void fuse_table_counts(struct fuse_table *t, uint64_t *inodes, uint64_t *handles);
/* 0 if one more inode (and handle) would fit; else -ENFILE (-EMFILE). */
int fuse_table_room(struct fuse_table *t, bool handle);

/* Snapshots (docs/shared-directories.md): the highest generation any
 * nodeid or fh handed out so far can carry. */
uint32_t fuse_table_generation(struct fuse_table *t);
/* A restored table (only the root held): every slot starts at generation
 * gen + 1, so that no nodeid or fh the saved server handed out is handed
 * out again, naming another file. -1 if gen is 0 or leaves no room. */
int fuse_table_start_after(struct fuse_table *t, uint32_t gen);
/* An id (nodeid or fh) from before the restore: its generation is below
 * first_gen. Never the root's nodeid. */
bool fuse_table_stale(const struct fuse_table *t, uint64_t id);

/* The slot of a nodeid the guest holds, with a reference; -1 if none. */
int32_t fuse_inode_get(struct fuse_table *t, uint64_t nodeid);
void fuse_inode_put(struct fuse_table *t, int32_t slot);
/* Enters fd (O_PATH, a new descriptor; consumed) for the guest, or finds
 * the slot already holding its inode; one more guest reference; fills e.
 * -ENFILE past the cap. */
int fuse_inode_enter(struct fuse_table *t, int fd, struct fuse_entry_out *e);
/* One more guest reference to a slot this request holds. */
int fuse_inode_hold_again(struct fuse_table *t, int32_t slot, struct fuse_entry_out *e);
/* Drops n guest references (FORGET); -1 if the nodeid names nothing. */
int fuse_inode_forget(struct fuse_table *t, uint64_t nodeid, uint64_t n);

/* The slot of an open fh of that kind, with a reference; -1 if none. */
int32_t fuse_handle_get(struct fuse_table *t, uint64_t fh, bool dir);
void fuse_handle_put(struct fuse_table *t, int32_t slot);
/* Stores fd (consumed) as a new handle; -EMFILE past the cap. */
int fuse_handle_new(struct fuse_table *t, int fd, bool dir, uint64_t *fh);
/* RELEASE: -EBADF if fh names nothing. */
int fuse_handle_release(struct fuse_table *t, uint64_t fh, bool dir);

/* fstat of an O_PATH descriptor (never following a symlink): 0 or -errno. */
int fuse_stat_fd(int fd, struct stat *st);
void fuse_fill_attr(struct fuse_attr *a, const struct stat *st);

#endif
