/* For the device tests: what a device's ops->metrics reports, collected
 * so that the names (which vmlet_vm_metrics passes on, unchanged, to the
 * API) can be compared as one string. */
#ifndef VMLET_TEST_METRIC_NAMES_H
#define VMLET_TEST_METRIC_NAMES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The names, space-separated, in order, and the first values. */
struct metric_names {
    char text[512];
    uint64_t values[32];
    unsigned n;
};

static inline void collect_metric(void *opaque, const char *name, uint64_t value)
{
    struct metric_names *m = opaque;
    size_t len = strlen(m->text);
    snprintf(m->text + len, sizeof m->text - len, "%s%s", len ? " " : "", name);
    if (m->n < 32)
        m->values[m->n++] = value;
}

#endif
