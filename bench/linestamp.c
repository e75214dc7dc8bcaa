/* linestamp: runs a command and writes its output (stdout and stderr
 * together) line by line, each line prefixed with the milliseconds since
 * linestamp started it (CLOCK_MONOTONIC, read when the line's first byte
 * arrived), for bench/snapshot.sh: the time from starting a VMM to the
 * guest's first console line, to the millisecond (the lab's shells only
 * have /proc/uptime, in hundredths). libc only; scripts/lab-images builds
 * it static.
 *
 *   linestamp COMMAND [ARG...]
 *
 * Output: first "MS linestamp: pid PID" (the command's process, for
 * reading its /proc entries), then "MS LINE" per line ("%.3f "), written
 * with one write() each so a script polling the file sees whole lines; a
 * last line without a newline gets one. At the end "MS linestamp: exit N"
 * (N: the command's exit status, or 128 + the signal that ended it), and
 * linestamp exits with N.
 * Exit status 127 with one line on stderr if the command cannot be run. */
#ifndef _GNU_SOURCE /* meson defines it; scripts/lab-images does not */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static struct timespec start;

static double ms_since_start(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - start.tv_sec) * 1e3 + (double)(ts.tv_nsec - start.tv_nsec) / 1e6;
}

static void write_all(const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere to write: keep draining the command */
        p += n;
        len -= (size_t)n;
    }
}

/* One stamped line: the stamp taken when its first byte came. */
static void emit(double stamp, const char *line, size_t len)
{
    char out[LINE_MAX_BYTES + 32];
    int head = snprintf(out, sizeof out, "%.3f ", stamp);
    memcpy(out + head, line, len);
    out[head + (int)len] = '\n';
    write_all(out, (size_t)head + len + 1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: linestamp COMMAND [ARG...]\n");
        return 2;
    }
    int fds[2];
    if (pipe(fds) < 0) {
        fprintf(stderr, "linestamp: pipe: %s\n", strerror(errno));
        return 127;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "linestamp: fork: %s\n", strerror(errno));
        return 127;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "linestamp: cannot run %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char head[64];
    int hl = snprintf(head, sizeof head, "%.3f linestamp: pid %d\n", ms_since_start(), (int)pid);
    write_all(head, (size_t)hl);
    char line[LINE_MAX_BYTES], buf[4096];
    size_t len = 0;
    double stamp = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        double now = ms_since_start();
        for (ssize_t i = 0; i < n; i++) {
            if (len == 0)
                stamp = now;
            if (buf[i] == '\n' || len == sizeof line) {
                emit(stamp, line, len);
                len = 0;
                if (buf[i] == '\n')
                    continue;
                stamp = now;
            }
            line[len++] = buf[i];
        }
    }
    if (len)
        emit(stamp, line, len);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char tail[64];
    int tl = snprintf(tail, sizeof tail, "%.3f linestamp: exit %d\n", ms_since_start(), rc);
    write_all(tail, (size_t)tl);
    return rc;
}
