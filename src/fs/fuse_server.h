/* The FUSE server behind virtio-fs (src/virtio/fs.c): serves one shared
 * host directory to the guest's FUSE driver, request by request, from
 * inside vmlet (no virtiofsd). The protocol is the kernel's, from
 * <linux/fuse.h>; docs/shared-directories.md says what the guest sees.
 *
 *     struct fuse_server *s = fuse_server_new("/home/me/project", false, &err);
 *     size_t n = fuse_server_handle(s, in, n_in, out, n_out);  // per request
 *     fuse_server_free(s);
 *
 * The guest is hostile: every field of a request is checked, and the
 * guest can never reach outside the shared directory (inodes are O_PATH
 * descriptors, names are resolved one component beneath their parent,
 * symlinks are never followed on the host). */
#ifndef VMLET_FS_FUSE_SERVER_H
#define VMLET_FS_FUSE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "vmlet.h"
#include "sandbox.h"

/* Limits (docs/shared-directories.md). Past the inode cap, LOOKUP (and
 * the requests that create) answer ENFILE and READDIRPLUS entries come
 * without a nodeid; past the handle cap, OPEN, OPENDIR and CREATE answer
 * EMFILE. Each held inode and handle is one host descriptor: the process
 * needs RLIMIT_NOFILE above the caps of all its shares, else the host's
 * EMFILE reaches the guest first (harmless, but earlier). READ and WRITE
 * larger than FUSE_SERVER_MAX_WRITE answer EINVAL; INIT advertises it as
 * max_write, max_readahead (at most) and max_pages. */
#define FUSE_SERVER_MAX_INODES  65536      /* inodes the guest may hold (LOOKUP without FORGET) */
#define FUSE_SERVER_MAX_HANDLES 4096       /* open files and directories */
#define FUSE_SERVER_MAX_WRITE   (1u << 20) /* largest READ/WRITE payload */

struct fuse_server;

/* Opens root (a directory) for serving; read_only refuses every modifying
 * request with EROFS and opens files read-only. Returns NULL with err
 * filled (missing, not a directory, no permission; no openat2, no /proc).
 * Opens descriptors only (root, and /proc/self/fd as O_PATH, through which
 * files are reopened for I/O and checked to be still inside the share);
 * call it before the device thread enters its sandbox.
 *
 * fuse_server_handle makes these system calls, for the seccomp allowlist
 * (x86-64, glibc 2.36): openat2, openat, close, newfstatat, fstatfs,
 * readlinkat, symlinkat, mknodat, mkdirat, unlinkat, renameat2, linkat,
 * fchmodat, fchmod, fchownat, utimensat, ftruncate, preadv, pwritev,
 * fsync, fdatasync, getdents64, lseek, fallocate, faccessat2 (glibc falls
 * back to faccessat), futex, and malloc's brk/mmap/munmap/madvise.
 * fuse_server_new also reads /proc/self/status (the umask). */
struct fuse_server *fuse_server_new(const char *root, bool read_only, vmlet_error *err);

/* cache=always (docs/shared-directories.md): entries and attributes are
 * valid in the guest for FUSE_TIMEOUT_ALWAYS_S (a day) instead of
 * FUSE_TIMEOUT_S (1 s), so the guest asks again only when its own cache
 * drops them: for a share only the guest changes. Before the first
 * request. */
void fuse_server_set_cache_always(struct fuse_server *s, bool always);

/* The root directory's descriptor (O_PATH), for the sandbox's Landlock
 * rule. Owned by the server. */
int fuse_server_root_fd(const struct fuse_server *s);

/* Handles one request: in[] is what the driver wrote (struct
 * fuse_in_header and the opcode's arguments, possibly split over several
 * iovecs, as found in guest memory), out[] where the reply goes (struct
 * fuse_out_header and its payload; READ data goes straight there).
 * Returns the number of reply bytes written to out[], or 0 when the
 * request takes no reply (FORGET, BATCH_FORGET) or was too broken to
 * name a unique id to answer (a truncated header). Thread-safe: several
 * request queues may call it at once. */
size_t fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned n_in,
                          const struct iovec *out, unsigned n_out);

/* Counters, for the device's metrics. */
struct fuse_server_stats {
    uint64_t requests;      /* all requests handled */
    uint64_t by_opcode[64]; /* by FUSE opcode, 0..63 (higher ones: in requests only) */
    uint64_t errors;        /* replies with a negative error (ENOSYS included) */
    uint64_t bytes_read;    /* READ payload returned */
    uint64_t bytes_written; /* WRITE payload written */
    uint64_t malformed;     /* requests that failed a check of their own fields: lengths,
                             * unterminated names, nodeids and fhs the server never gave */
    uint64_t open_handles;  /* now */
    uint64_t inodes;        /* held now (the root not counted) */
};
void fuse_server_get_stats(struct fuse_server *s, struct fuse_server_stats *st);

/* Ends the driver's session (a device reset, a reboot): every inode but
 * the root and every open file are dropped; the next driver starts with
 * INIT. Call it while no request is being handled. */
void fuse_server_reset(struct fuse_server *s);

/* Snapshots (docs/shared-directories.md, "Snapshots"). The server's
 * host descriptors cannot be saved: what is saved is whether the guest's
 * INIT happened and what it agreed (a restored server answers without a
 * new INIT), and the generation high-water mark of its nodeids and fhs.
 * save (no request in progress): FUSE_SERVER_STATE_SIZE bytes into buf,
 * returns that, or -1 if cap is smaller. load, into a server that has
 * answered nothing yet: checks every field (from a file: untrusted);
 * the server then holds only the root, and every nodeid and fh it hands
 * out has a generation above the saved mark, so none equals one the
 * guest still holds from before (those get ESTALE, or EBADF for an fh).
 * 0, or -1 with why (one line, naming the field). */
#define FUSE_SERVER_STATE_SIZE 24
int fuse_server_save(struct fuse_server *s, uint8_t *buf, size_t cap);
int fuse_server_load(struct fuse_server *s, const uint8_t *buf, size_t len, char *why,
                     size_t whylen);

/* "LOOKUP", "READ", ...: the opcode's name in lower case for metrics
 * ("lookup", "read"), or NULL for an opcode the server does not know. */
const char *fuse_opcode_name(unsigned opcode);

/* The sandbox rules of a thread serving s: the system calls the server
 * makes, and Landlock beneath its root (read and list only if read-only). */
struct sandbox_rules fuse_server_sandbox_rules(const struct fuse_server *s);

/* Closes every descriptor the server holds. */
void fuse_server_free(struct fuse_server *s);

#endif
