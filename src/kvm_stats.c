/* Reads KVM's binary statistics (see kvm_stats.h). The layout comes from
 * the kernel, but it is still checked before use: a descriptor that points
 * outside the file is skipped rather than trusted. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "kvm_stats.h"

#define STATS_MAX_DESC 1024
#define STATS_MAX_NAME 256
#define STATS_MAX_DATA (1u << 20)

struct stat_counter {
    char name[STATS_MAX_NAME];
    size_t offset; /* of its value in the data block */
};

struct kvm_stats {
    int fd;
    unsigned n;
    struct stat_counter *c;
    uint64_t data_offset; /* where the values are in the file */
    size_t data_size;     /* all of them, read at once */
};

static bool read_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return true;
}

struct kvm_stats *kvm_stats_open(int kvm_object_fd)
{
    int fd = ioctl(kvm_object_fd, KVM_GET_STATS_FD, NULL);
    if (fd < 0)
        return NULL;
    struct kvm_stats_header h;
    struct kvm_stats *s = calloc(1, sizeof *s);
    uint8_t *desc = NULL;
    if (!s || !read_all(fd, &h, sizeof h, 0) || h.num_desc > STATS_MAX_DESC || h.name_size == 0 ||
        h.name_size > STATS_MAX_NAME)
        goto fail;
    size_t desc_size = sizeof(struct kvm_stats_desc) + h.name_size;
    desc = malloc(desc_size * h.num_desc);
    s->c = calloc(h.num_desc ? h.num_desc : 1, sizeof *s->c);
    if (!desc || !s->c || !read_all(fd, desc, desc_size * h.num_desc, h.desc_offset))
        goto fail;
    for (unsigned i = 0; i < h.num_desc; i++) {
        const struct kvm_stats_desc *d = (const void *)(desc + i * desc_size);
        uint64_t end = (uint64_t)d->offset + (uint64_t)d->size * sizeof(uint64_t);
        if (end > STATS_MAX_DATA)
            continue; /* not believed */
        if (end > s->data_size)
            s->data_size = (size_t)end;
        if ((d->flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE || d->size != 1)
            continue; /* histograms, peaks, gauges */
        struct stat_counter *c = &s->c[s->n++];
        memcpy(c->name, d->name, h.name_size);
        c->name[h.name_size - 1] = '\0';
        c->offset = d->offset;
    }
    free(desc);
    desc = NULL;
    s->data_offset = h.data_offset;
    s->fd = fd;
    return s;
fail:
    free(desc);
    if (s)
        free(s->c);
    free(s);
    close(fd);
    return NULL;
}

void kvm_stats_free(struct kvm_stats *s)
{
    if (!s)
        return;
    close(s->fd);
    free(s->c);
    free(s);
}

int kvm_stats_read(const struct kvm_stats *s,
                   void (*fn)(void *opaque, const char *name, uint64_t value), void *opaque)
{
    /* One read for all values: one system call, and one moment. The
     * buffer is the caller's own, so concurrent readers do not share it. */
    uint8_t *data = malloc(s->data_size ? s->data_size : 1);
    if (!data || !read_all(s->fd, data, s->data_size, s->data_offset)) {
        free(data);
        return -1;
    }
    for (unsigned i = 0; i < s->n; i++) {
        uint64_t v;
        memcpy(&v, data + s->c[i].offset, sizeof v);
        fn(opaque, s->c[i].name, v);
    }
    free(data);
    return 0;
}
