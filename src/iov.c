/* Copying to and from scatter lists (struct iovec arrays) and cutting
 * them up, for the devices (guest buffers as host iovecs) and the FUSE
 * server. Every function stays within the iovecs' own lengths. */
#include "iov.h"

#include <stdbool.h>
#include <string.h>

/* The bytes [offset, offset + len) of the scatter list and buf, copied
 * one way or the other; returns how many the list held. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t offset, uint8_t *buf, size_t len,
                       bool into_iov)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done)
            chunk = len - done;
        uint8_t *at = (uint8_t *)iov[i].iov_base + offset;
        if (into_iov)
            memcpy(at, buf + done, chunk);
        else
            memcpy(buf + done, at, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len)
{
    return iov_copy(iov, n, offset, buf, len, false);
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len)
{
    return iov_copy(iov, n, offset, (uint8_t *)buf, len, true); /* only read from */
}

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
                   struct iovec *dst, unsigned dst_max)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n && k < dst_max && len > 0; i++) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        uint64_t take = iov[i].iov_len - off;
        if (take > len)
            take = len;
        if (dst)
            dst[k] = (struct iovec){ (uint8_t *)iov[i].iov_base + off, (size_t)take };
        k++;
        len -= take;
        off = 0;
    }
    return k;
}

int iov_slice_all(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
                  struct iovec *dst, unsigned dst_max)
{
    unsigned k = iov_slice(iov, n, off, len, dst, dst_max);
    uint64_t got = 0;
    for (unsigned i = 0; i < k; i++)
        got += dst[i].iov_len;
    return got == len ? (int)k : -1;
}

bool iov_total(const struct iovec *iov, unsigned n, size_t *total)
{
    size_t t = 0;
    for (unsigned i = 0; i < n; i++) {
        if (__builtin_add_overflow(t, iov[i].iov_len, &t))
            return false;
    }
    *total = t;
    return true;
}
