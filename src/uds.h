/* A listening Unix socket at a path, made the one way vmlet makes them
 * (--api-sock, --vsock): mode 0600 from the start, a stale socket left by
 * a killed process replaced, a live one or any other kind of file
 * refused. Built into both the library and the CLI. */
#ifndef VMLET_UDS_H
#define VMLET_UDS_H

#include <stddef.h>
#include <sys/types.h>

/* Binds and listens (non-blocking, close-on-exec) at path. what names the
 * option in messages ("--api-sock"). Returns the descriptor and fills
 * *dev, *ino (for uds_unlink_own), or -1 with a message in err. */
int uds_listen(const char *path, const char *what, int backlog, dev_t *dev, ino_t *ino, char *err,
               size_t errlen);
/* Removes path if it is still the socket uds_listen made (someone may
 * have replaced it since). */
void uds_unlink_own(const char *path, dev_t dev, ino_t ino);

#endif
