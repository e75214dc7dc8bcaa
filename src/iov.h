/* Scatter lists (struct iovec arrays): copies bounded by the iovecs'
 * lengths, slices, totals. src/iov.c. */
#ifndef VMLET_IOV_H
#define VMLET_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Copy up to len bytes between iov[0..n) from byte offset on and buf;
 * return how many were copied (fewer when the iovecs end first). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                    size_t len);

/* Up to len bytes of iov[0..n) from byte off on, as at most dst_max
 * iovecs in dst (empty pieces are skipped). dst may be NULL to count the
 * pieces only. Returns how many pieces (0 when nothing is left). */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
                   struct iovec *dst, unsigned dst_max);
/* As iov_slice, but all len bytes or nothing: -1 if the iovecs end first
 * or dst_max pieces do not hold them. */
int iov_slice_all(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
                  struct iovec *dst, unsigned dst_max);

/* The iovecs' total length; false if it overflows size_t. */
bool iov_total(const struct iovec *iov, unsigned n, size_t *total);

#endif
