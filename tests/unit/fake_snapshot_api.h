/* vmlet_vm_save, faked for the API handler's tests (tests/unit/test_api.c,
 * tests/fuzz/fuzz_api.c): a paused VM saves to any path but
 * "/nonexistent/...", which fails as an unwritable path does. Include
 * once, after a struct vmlet_vm with a vmlet_state state. */
#ifndef VMLET_TEST_FAKE_SNAPSHOT_API_H
#define VMLET_TEST_FAKE_SNAPSHOT_API_H

#include <stdio.h>
#include <string.h>
#include "vmlet.h"

int vmlet_vm_save(vmlet_vm *vm, const char *dir, vmlet_error *err)
{
    if (vm->state != VMLET_STATE_PAUSED) {
        err->code = VMLET_ERR_STATE;
        snprintf(err->message, sizeof err->message, "snapshot: the VM must be paused to be saved");
        return -1;
    }
    if (!strncmp(dir, "/nonexistent/", 13)) {
        err->code = VMLET_ERR_FILE;
        snprintf(err->message, sizeof err->message,
                 "snapshot: cannot make %.400s.tmp: No such file or directory", dir);
        return -1;
    }
    return 0;
}

#endif
