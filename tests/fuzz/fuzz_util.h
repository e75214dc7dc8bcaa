/* What the fuzz targets share: failing a check (abort, so libFuzzer keeps
 * the input and the replay test fails), little-endian fields, and taking
 * bytes off the front of the input. Define FUZZ_TARGET ("fuzz_NAME")
 * before including it. */
#ifndef VMLET_FUZZ_UTIL_H
#define VMLET_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "%s: %s\n", FUZZ_TARGET, what);
        abort();
    }
}

static inline uint64_t get_le(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Whether p[0..n) is valid UTF-8 (RFC 3629: no overlongs, surrogates or
 * code points beyond U+10FFFF). */
static inline bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i], k = c < 0x80                ? 0
                               : c >= 0xc2 && c < 0xe0 ? 1
                               : c >= 0xe0 && c < 0xf0 ? 2
                               : c >= 0xf0 && c < 0xf5 ? 3
                                                       : 9;
        if (k == 9 || i + k >= n)
            return false;
        uint32_t cp = k ? c & (0x3fu >> k) : c;
        for (unsigned j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* The input not yet used. */
struct input {
    const uint8_t *p;
    size_t n;
};

/* The next len bytes into out; false (nothing taken) if fewer are left. */
static inline bool take(struct input *in, uint8_t *out, size_t len)
{
    if (in->n < len)
        return false;
    memcpy(out, in->p, len);
    in->p += len;
    in->n -= len;
    return true;
}

/* A scratch disk image: a new file of size bytes in /dev/shm, $TMPDIR or
 * /tmp (the first that works), its name in path. Returns its descriptor;
 * aborts if there is nowhere to make one. The caller unlinks it once
 * opened, so nothing is left behind. */
static inline int scratch_image(const char *stem, off_t size, char *path, size_t cap)
{
    const char *dirs[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
    for (unsigned i = 0; i < 3; i++) {
        if (!dirs[i] || access(dirs[i], W_OK) < 0)
            continue;
        snprintf(path, cap, "%s/%s-XXXXXX", dirs[i], stem);
        int fd = mkstemp(path);
        if (fd < 0)
            continue;
        if (ftruncate(fd, size) == 0)
            return fd;
        close(fd);
        unlink(path);
    }
    check(false, "no writable directory for a scratch image");
    return -1;
}

#endif
