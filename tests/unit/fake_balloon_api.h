/* The library's balloon calls, faked for the API handler's tests
 * (tests/unit/test_api.c, tests/fuzz/fuzz_api.c). Include once, after a
 * struct vmlet_vm with a uint64_t balloon_target. */
#ifndef VMLET_TEST_FAKE_BALLOON_API_H
#define VMLET_TEST_FAKE_BALLOON_API_H

#include <stdio.h>
#include <string.h>
#include "vmlet.h"

/* A balloon on a 512 MiB guest, with statistics every 5 s. */
int vmlet_vm_set_balloon(vmlet_vm *vm, uint64_t bytes, vmlet_error *err)
{
    if (bytes > (512ull << 20)) {
        snprintf(err->message, sizeof err->message, "balloon: too large");
        return -1;
    }
    vm->balloon_target = bytes;
    return 0;
}

int vmlet_vm_get_balloon(vmlet_vm *vm, vmlet_balloon_info *info, vmlet_error *err)
{
    (void)err;
    memset(info, 0, sizeof *info);
    info->target_bytes = vm->balloon_target;
    info->actual_bytes = 3ull << 20;
    info->flags = VMLET_BALLOON_FREE_PAGE_REPORTING;
    info->stats_interval_s = 5;
    info->stats_updates = 2;
    info->stats_present = 1u << VMLET_BALLOON_STAT_FREE_MEMORY;
    info->stats[VMLET_BALLOON_STAT_FREE_MEMORY] = 123456789;
    return 0;
}

#endif
