/* Listening Unix sockets (uds.h). */
#include "uds.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Someone accepts on it (a stale socket refuses with ECONNREFUSED). */
static bool socket_is_live(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; /* cannot tell: do not remove it */
    bool live = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0 ||
                errno != ECONNREFUSED;
    close(fd);
    return live;
}

int uds_listen(const char *path, const char *what, int backlog, dev_t *dev, ino_t *ino, char *err,
               size_t errlen)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(err, errlen,
                 "%s '%s': the path is longer than the %zu bytes a Unix "
                 "socket address holds; use a shorter path",
                 what, path, sizeof addr.sun_path - 1);
        return -1;
    }
    strcpy(addr.sun_path, path);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen,
                     "%s '%s': the file exists and is not a socket; "
                     "not replacing it: choose another path",
                     what, path);
            return -1;
        }
        if (socket_is_live(&addr)) {
            snprintf(err, errlen,
                     "%s '%s': another process is serving this socket; "
                     "choose another path",
                     what, path);
            return -1;
        }
        unlink(path); /* stale: left by a vmlet that was killed */
    }

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", what, strerror(errno));
        return -1;
    }
    /* Created 0600 from the start: no moment where others could connect. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    int e = errno;
    umask(old);
    if (rc < 0 || listen(fd, backlog) < 0 || lstat(path, &st) < 0) {
        if (rc == 0)
            e = errno;
        snprintf(err, errlen, "%s '%s': cannot create the socket: %s%s", what, path, strerror(e),
                 e == ENOENT ? " (does the directory exist?)" : "");
        if (rc == 0)
            unlink(path);
        close(fd);
        return -1;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    return fd;
}

void uds_unlink_own(const char *path, dev_t dev, ino_t ino)
{
    struct stat st;
    if (lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
        unlink(path);
}
