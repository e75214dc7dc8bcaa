/* libFuzzer target for the FUSE server behind virtio-fs
 * (src/fs/fuse_server.c): the input is a run of requests as a hostile
 * guest's driver would send them, each fed to fuse_server_handle() as it
 * would arrive from guest memory. Build with clang
 * -fsanitize=fuzzer,address,undefined, or with -DVMLET_FUZZ_STANDALONE
 * and any compiler to replay files.
 *
 * Input, repeated: le16 request length L, u8 split, le16 reply room R,
 * then L request bytes (a struct fuse_in_header and its arguments, every
 * field as the fuzzer made it). The request is split into two iovecs at
 * split % (L + 1), each in a heap block of exactly its size (ASan sees any
 * read past it); the reply gets R bytes, also in two blocks. The server
 * works on a fresh directory per input with a file, a directory and a
 * symlink pointing outside it; the first request of an input that is not
 * INIT gets an INIT first, so the fuzzer reaches the other opcodes.
 *
 * Checks beyond memory errors:
 *   - the reply length returned fits the reply room, and a non-zero one
 *     starts with a header whose len is that length and whose unique is
 *     the request's;
 *   - an error reply carries a negative errno and nothing else;
 *   - nothing outside the shared directory changes: a sibling file keeps
 *     its contents and no new name appears beside the share.
 * FALLOCATE lengths and WRITE offsets are trimmed so that an input cannot
 * fill the disk (a space check, not a protocol one). */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_TARGET "fuzz_fuse_server"
#include "fuzz_util.h"
#include "fs/fuse_server.h"

#define MAX_REQUESTS 64

static char base[64];  /* holds share/ and outside */
static char share[96]; /* the shared directory, made afresh per input */

static void run(const char *cmd)
{
    check(system(cmd) == 0, cmd);
}

static void setup_once(void)
{
    if (base[0])
        return;
    const char *t = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/vmlet-fuzz-fs-XXXXXX", t && *t ? t : "/tmp");
    check(mkdtemp(base) != NULL, "mkdtemp");
    snprintf(share, sizeof share, "%s/share", base);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "echo secret >%s/outside", base);
    run(cmd);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

/* The share as every input first sees it, made without a shell (an input
 * a few milliseconds long should not wait for one). */
static void fresh_share(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx %s 2>/dev/null", share);
    struct stat st;
    if (lstat(share, &st) == 0 && nftw(share, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        run(cmd); /* a directory the input made unreadable */
        check(nftw(share, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "cannot empty the share");
    }
    char path[160];
    check(mkdir(share, 0755) == 0, "mkdir share");
    snprintf(path, sizeof path, "%s/dir", share);
    check(mkdir(path, 0755) == 0, "mkdir dir");
    snprintf(path, sizeof path, "%s/file", share);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    check(fd >= 0 && write(fd, "hello\n", 6) == 6, "the file");
    close(fd);
    snprintf(path, sizeof path, "%s/link", share);
    check(symlink("../outside", path) == 0, "the link");
    snprintf(path, sizeof path, "%s/root", share);
    check(symlink("/", path) == 0, "the link to /");
}

/* The base directory holds exactly outside and share, and outside is as
 * made: the guest changed nothing beside its share. */
static void check_outside(void)
{
    char path[128], buf[16] = { 0 };
    snprintf(path, sizeof path, "%s/outside", base);
    int fd = open(path, O_RDONLY);
    check(fd >= 0, "the file beside the share is gone");
    check(read(fd, buf, sizeof buf - 1) == 7 && !strcmp(buf, "secret\n"),
          "the file beside the share changed");
    close(fd);
    DIR *d = opendir(base);
    check(d != NULL, "opendir");
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    check(n == 2, "a new name appeared beside the share");
}

/* Keeps an input from filling the disk: a FALLOCATE of at most 1 MiB, a
 * WRITE below 1 GiB (sparse). */
static void trim(uint8_t *req, size_t len)
{
    if (len < sizeof(struct fuse_in_header))
        return;
    uint32_t opcode = (uint32_t)get_le(req + 4, 4);
    uint8_t *args = req + sizeof(struct fuse_in_header);
    size_t alen = len - sizeof(struct fuse_in_header);
    if (opcode == FUSE_FALLOCATE && alen >= sizeof(struct fuse_fallocate_in))
        put_le(args + offsetof(struct fuse_fallocate_in, length),
               get_le(args + offsetof(struct fuse_fallocate_in, length), 8) & 0xFFFFF, 8);
    if (opcode == FUSE_WRITE && alen >= sizeof(struct fuse_write_in))
        put_le(args + offsetof(struct fuse_write_in, offset),
               get_le(args + offsetof(struct fuse_write_in, offset), 8) & 0x3FFFFFFF, 8);
    if (opcode == FUSE_SETATTR && alen >= sizeof(struct fuse_setattr_in))
        put_le(args + offsetof(struct fuse_setattr_in, size),
               get_le(args + offsetof(struct fuse_setattr_in, size), 8) & 0x3FFFFFFF, 8);
}

static void one(struct fuse_server *s, const uint8_t *req, size_t len, unsigned split, size_t room)
{
    size_t a = len ? split % (len + 1) : 0;
    uint8_t *p0 = malloc(a ? a : 1), *p1 = malloc(len - a ? len - a : 1);
    size_t r0 = room / 2, r1 = room - r0;
    uint8_t *o0 = malloc(r0 ? r0 : 1), *o1 = malloc(r1 ? r1 : 1);
    check(p0 && p1 && o0 && o1, "out of memory");
    memcpy(p0, req, a);
    memcpy(p1, req + a, len - a);
    struct iovec in[2] = { { p0, a }, { p1, len - a } };
    struct iovec out[2] = { { o0, r0 }, { o1, r1 } };
    size_t n = fuse_server_handle(s, in, 2, out, 2);
    check(n <= room, "the reply is longer than its room");
    if (n > 0) {
        uint8_t hdr[sizeof(struct fuse_out_header)];
        check(n >= sizeof hdr, "a reply shorter than its header");
        size_t h0 = r0 < sizeof hdr ? r0 : sizeof hdr;
        memcpy(hdr, o0, h0);
        memcpy(hdr + h0, o1, sizeof hdr - h0);
        struct fuse_out_header oh;
        memcpy(&oh, hdr, sizeof oh);
        check(oh.len == n, "the header's len is not the reply's length");
        check(len >= 16 && oh.unique == get_le(req + 8, 8),
              "the reply's unique is not the request's");
        check(oh.error <= 0 && oh.error > -4096, "an error that is not a negative errno");
        check(oh.error == 0 || n == sizeof oh, "an error reply with a payload");
    }
    free(p0);
    free(p1);
    free(o0);
    free(o1);
}

static void send_init(struct fuse_server *s)
{
    uint8_t req[sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in)] = { 0 };
    struct fuse_in_header h = { .len = sizeof req, .opcode = FUSE_INIT, .unique = 1 };
    struct fuse_init_in in = { .major = FUSE_KERNEL_VERSION,
                               .minor = FUSE_KERNEL_MINOR_VERSION,
                               .max_readahead = 1 << 20 };
    memcpy(req, &h, sizeof h);
    memcpy(req + sizeof h, &in, sizeof in);
    one(s, req, sizeof req, 0, 4096);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    fresh_share();
    vmlet_error err;
    struct fuse_server *s = fuse_server_new(share, size > 0 && (data[0] & 0x80), &err);
    check(s != NULL, err.message);
    struct input in = { data, size };
    uint8_t *req = malloc(65536 + 1);
    check(req != NULL, "out of memory");
    for (unsigned i = 0; i < MAX_REQUESTS; i++) {
        uint8_t lenb[2], split, roomb[2];
        if (!take(&in, lenb, 2) || !take(&in, &split, 1) || !take(&in, roomb, 2))
            break;
        size_t len = get_le(lenb, 2);
        if (len > in.n)
            len = in.n;
        take(&in, req, len);
        trim(req, len);
        if (i == 0 && !(len >= 8 && get_le(req + 4, 4) == FUSE_INIT))
            send_init(s);
        one(s, req, len, split, get_le(roomb, 2));
    }
    free(req);
    fuse_server_free(s);
    check_outside();
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
