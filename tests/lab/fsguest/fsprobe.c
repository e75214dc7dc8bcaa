/* What the shared-directory guest (tests/lab/fsguest/init) needs beyond
 * busybox, built static by scripts/lab-images:
 *   fsprobe exchange A B      renameat2(RENAME_EXCHANGE)
 *   fsprobe noreplace A B     renameat2(RENAME_NOREPLACE)
 *   fsprobe openmany DIR N    creates and holds open DIR/f0..f(N-1), then
 *                             prints how many opened and the first error
 * Prints one line, "ok" or what failed; exit status 0 or 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int rename_flags(const char *a, const char *b, unsigned flags)
{
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, flags) < 0) {
        printf("%s\n", strerror(errno));
        return 1;
    }
    printf("ok\n");
    return 0;
}

static int open_many(const char *dir, long n)
{
    /* Room for n descriptors in this process, so that the share's cap is
     * what stops it and not our own limit. */
    struct rlimit rl = { (rlim_t)n + 64, (rlim_t)n + 64 };
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
        rl.rlim_cur < (rlim_t)n) {
        printf("cannot hold %ld files here (RLIMIT_NOFILE %llu)\n", n,
               (unsigned long long)rl.rlim_cur);
        return 1;
    }
    long opened = 0;
    int first_err = 0;
    char path[4096];
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%ld", dir, i);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            if (!first_err)
                first_err = errno;
            continue;
        }
        opened++;
    }
    printf("opened %ld of %ld%s%s\n", opened, n, first_err ? ", first error: " : "",
           first_err ? strerror(first_err) : "");
    fflush(stdout);
    sleep(5); /* held, for the host to look at vmlet meanwhile */
    return 0; /* the descriptors close at exit */
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "exchange"))
        return rename_flags(argv[2], argv[3], RENAME_EXCHANGE);
    if (argc == 4 && !strcmp(argv[1], "noreplace"))
        return rename_flags(argv[2], argv[3], RENAME_NOREPLACE);
    if (argc == 4 && !strcmp(argv[1], "openmany"))
        return open_many(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: fsprobe exchange|noreplace A B | openmany DIR N\n");
    return 2;
}
