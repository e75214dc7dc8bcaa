/* The library's VM lifecycle calls, faked as a state machine for the
 * Firecracker-mode tests (tests/unit/test_fc.c, tests/fuzz/fuzz_fc_api.c):
 * start runs, pause and resume move between running and paused, free
 * stops, and a stopped VM has powered off. Include once, after a struct
 * vmlet_vm with a vmlet_state state. */
#ifndef VMLET_TEST_FAKE_VM_LIFECYCLE_H
#define VMLET_TEST_FAKE_VM_LIFECYCLE_H

#include "vmlet.h"

int vmlet_vm_start(vmlet_vm *vm, vmlet_error *err)
{
    (void)err;
    vm->state = VMLET_STATE_RUNNING;
    return 0;
}

void vmlet_vm_free(vmlet_vm *vm)
{
    vm->state = VMLET_STATE_STOPPED;
}

vmlet_state vmlet_vm_state(vmlet_vm *vm)
{
    return vm->state;
}

int vmlet_vm_wait_timeout(vmlet_vm *vm, vmlet_exit *exit, int timeout_ms)
{
    (void)timeout_ms;
    if (vm->state != VMLET_STATE_STOPPED)
        return 0;
    exit->reason = VMLET_STOP_POWEROFF;
    exit->message[0] = '\0';
    return 1;
}

int vmlet_vm_pause(vmlet_vm *vm)
{
    if (vm->state != VMLET_STATE_RUNNING)
        return -1;
    vm->state = VMLET_STATE_PAUSED;
    return 0;
}

int vmlet_vm_resume(vmlet_vm *vm)
{
    if (vm->state != VMLET_STATE_PAUSED)
        return -1;
    vm->state = VMLET_STATE_RUNNING;
    return 0;
}

#endif
