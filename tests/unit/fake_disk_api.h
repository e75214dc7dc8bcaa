/* vmlet_vm_set_disk_path, faked for the Firecracker-mode tests
 * (tests/unit/test_fc.c, tests/fuzz/fuzz_fc_api.c): a path that is not a
 * regular file (stat only: nothing is opened or written) is refused as
 * the library words it; anything else is recorded as disk index's new
 * image. Include once, after a struct vmlet_vm with a vmlet_state state. */
#ifndef VMLET_TEST_FAKE_DISK_API_H
#define VMLET_TEST_FAKE_DISK_API_H

#include <stdio.h>
#include <sys/stat.h>
#include "vmlet.h"

static struct {
    unsigned calls;
    unsigned index;
    char path[4096];
} disk_swaps;

int vmlet_vm_set_disk_path(vmlet_vm *vm, unsigned index, const char *path, vmlet_error *err)
{
    struct stat st;
    if (vm->state == VMLET_STATE_STOPPED) {
        err->code = VMLET_ERR_STATE;
        snprintf(err->message, sizeof err->message, "disk %u: the VM has stopped", index);
        return -1;
    }
    if (stat(path, &st) < 0) {
        err->code = VMLET_ERR_FILE;
        snprintf(err->message, sizeof err->message, "disk '%.200s' does not exist; check the path",
                 path);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        err->code = VMLET_ERR_FILE;
        snprintf(err->message, sizeof err->message,
                 "disk '%.200s' is not a regular file or block device; give a raw disk image",
                 path);
        return -1;
    }
    disk_swaps.calls++;
    disk_swaps.index = index;
    snprintf(disk_swaps.path, sizeof disk_swaps.path, "%s", path);
    return 0;
}

#endif
