/* fsmeta: the timed parts of bench/fs that fio does not do, the same
 * program in the guest and on the host (libc only; scripts/lab-images
 * builds it static):
 *
 *   fsmeta meta DIR N SIZE
 *       in a new directory DIR/fsmeta: creates N files (open with O_CREAT
 *       | O_EXCL, write SIZE bytes, close) and syncfs; drops the page,
 *       dentry and inode caches (if it may: root) and stats every file;
 *       unlinks every file and syncfs. Prints
 *       "RESULT files=N create_s=.. stat_s=.. unlink_s=.. total_s=..
 *       create_ms=a,b,.. stat_ms=.. unlink_ms=..": the last three the
 *       milliseconds each tenth of the files took (without the syncfs),
 *       to show whether a call costs more as the directory fills.
 *   fsmeta time DIR CMD [ARG...]
 *       runs CMD and then syncfs on DIR; prints "RESULT seconds=.. status=.."
 *       (CMD's exit status), the time from the start to the end of the
 *       syncfs.
 *
 * Times are CLOCK_MONOTONIC. Exit status 1 with one line on stderr if
 * anything fails (for meta: the first failing call, naming the file). */
#ifndef _GNU_SOURCE /* meson defines it; scripts/lab-images does not */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TENTHS 10

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "fsmeta: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail("open", dir);
    int r = syncfs(fd);
    close(fd);
    return r < 0 ? fail("syncfs", dir) : 0;
}

/* What a cold look at the files costs: forget the cached dentries,
 * inodes and pages. Not being allowed to (not root) is not an error. */
static void drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, "3\n", 2) < 0)
        fprintf(stderr, "fsmeta: drop_caches: %s (stat times are warm)\n", strerror(errno));
    close(fd);
}

/* Marks the end of file i of n in tenth[]: the time of each tenth. */
static void tick(double tenth[TENTHS], long i, long n, double *mark)
{
    if ((i + 1) * TENTHS / n != i * TENTHS / n) {
        double t = now();
        tenth[i * TENTHS / n] = t - *mark;
        *mark = t;
    }
}

static void print_tenths(const char *key, const double tenth[TENTHS])
{
    printf(" %s=", key);
    for (int k = 0; k < TENTHS; k++)
        printf("%s%.0f", k ? "," : "", tenth[k] * 1e3);
}

/* Creates base/f000000... with size bytes of buf each. */
static int create_files(const char *base, long n, const char *buf, long size, double tenth[TENTHS])
{
    char path[4200];
    double mark = now();
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", base, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("create", path);
        ssize_t w = write(fd, buf, (size_t)size);
        if (w != (ssize_t)size) {
            close(fd);
            if (w >= 0)
                errno = EIO; /* short write */
            return fail("write", path);
        }
        if (close(fd) < 0)
            return fail("close", path);
        tick(tenth, i, n, &mark);
    }
    return 0;
}

static int meta(const char *dir, long n, long size)
{
    char base[4096], path[4200];
    if (snprintf(base, sizeof base, "%s/fsmeta", dir) >= (int)sizeof base) {
        fprintf(stderr, "fsmeta: %s: path too long\n", dir);
        return 1;
    }
    if (mkdir(base, 0755) < 0)
        return fail("mkdir", base);
    char *buf = calloc(1, size > 0 ? (size_t)size : 1);
    if (!buf)
        return fail("calloc", "");
    memset(buf, 'x', (size_t)size);

    double tc[TENTHS] = { 0 }, ts[TENTHS] = { 0 }, tu[TENTHS] = { 0 }, mark;
    double t0 = now();
    int r = create_files(base, n, buf, size, tc);
    free(buf);
    if (r || sync_dir(base))
        return 1;
    double t1 = now();

    drop_caches();
    double t2 = now();
    mark = t2;
    for (long i = 0; i < n; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/f%06ld", base, i);
        if (stat(path, &st) < 0)
            return fail("stat", path);
        if (st.st_size != size) {
            fprintf(stderr, "fsmeta: %s: size %lld, wrote %ld\n", path, (long long)st.st_size,
                    size);
            return 1;
        }
        tick(ts, i, n, &mark);
    }
    double t3 = now();

    mark = t3;
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", base, i);
        if (unlink(path) < 0)
            return fail("unlink", path);
        tick(tu, i, n, &mark);
    }
    if (sync_dir(base))
        return 1;
    double t4 = now();
    if (rmdir(base) < 0)
        return fail("rmdir", base);

    printf("RESULT files=%ld create_s=%.3f stat_s=%.3f unlink_s=%.3f total_s=%.3f", n, t1 - t0,
           t3 - t2, t4 - t3, (t1 - t0) + (t4 - t2));
    print_tenths("create_ms", tc);
    print_tenths("stat_ms", ts);
    print_tenths("unlink_ms", tu);
    printf("\n");
    return 0;
}

static int timed(const char *dir, char **cmd)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        return fail("fork", cmd[0]);
    if (pid == 0) {
        execvp(cmd[0], cmd);
        fprintf(stderr, "fsmeta: exec %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return fail("waitpid", cmd[0]);
    if (sync_dir(dir))
        return 1;
    double t1 = now();
    printf("RESULT seconds=%.3f status=%d\n", t1 - t0,
           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "meta")) {
        char *end1, *end2;
        long n = strtol(argv[3], &end1, 10), size = strtol(argv[4], &end2, 10);
        if (*end1 || *end2 || n < 1 || n > 999999 || size < 0 || size > (64 << 20)) {
            fprintf(stderr, "fsmeta: N is 1 to 999999, SIZE 0 to 64 MiB\n");
            return 2;
        }
        return meta(argv[2], n, size);
    }
    if (argc >= 4 && !strcmp(argv[1], "time"))
        return timed(argv[2], argv + 3);
    fprintf(stderr, "usage: fsmeta meta DIR N SIZE | fsmeta time DIR CMD [ARG...]\n");
    return 2;
}
