/* virtio-fs, the shared-directory device (virtio 1.2 section 5.11): the
 * guest's FUSE driver talks to vmlet's own FUSE server (src/fs/), which
 * serves one host directory (docs/shared-directories.md). */
#ifndef VMLET_VIRTIO_FS_H
#define VMLET_VIRTIO_FS_H

#include <stdbool.h>
#include <stdint.h>
#include "vmlet.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_FS      26
/* The mount tag's room in the configuration space (5.11.4). */
#define VIRTIO_FS_TAG_MAX 36

struct virtio_fs;

/* Opens the directory host_path for the guest under tag (1 to 36 bytes);
 * read_only refuses every change on the host side. Returns NULL with err
 * filled (no such directory, no permission). */
struct virtio_fs *virtio_fs_new(const char *host_path, const char *tag, bool read_only,
                                vmlet_error *err);
/* cache=always: see fuse_server_set_cache_always. Before activation. */
void virtio_fs_set_cache_always(struct virtio_fs *fs, bool always);
void virtio_fs_free(struct virtio_fs *fs);
/* Its ops for the transport (dev is the virtio_fs); NULL for NULL. One
 * thread ("virtio-fs") serves the hiprio queue and the request queue,
 * under a sandbox whose Landlock rule is the shared directory itself. */
struct virtio_device *virtio_fs_device(struct virtio_fs *fs);

#endif
