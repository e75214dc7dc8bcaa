/* The library's snapshot-file calls, faked for the Firecracker-mode tests
 * (tests/unit/test_fc.c, tests/fuzz/fuzz_fc_api.c): a paused VM saves to
 * any pair of paths but "/nonexistent/..."; a restore from any state
 * file but "/nonexistent/..." gives the_vm (1 vCPU, 256 MiB), created,
 * and records what it was asked in fake_restore. Include once, after
 * the_vm and fake_snapshot_api.h. */
#ifndef VMLET_TEST_FAKE_FC_SNAPSHOT_H
#define VMLET_TEST_FAKE_FC_SNAPSHOT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vmlet.h"

struct vmlet_restore_options {
    bool paused;
    char net0[64], vsock_uds[128], vcpu_name[16];
};

static struct {
    int restores;
    struct vmlet_restore_options last;
    char state[256], memory[256];
} fake_restore;

int vmlet_vm_save_files(vmlet_vm *vm, const char *state_path, const char *memory_path,
                        vmlet_error *err)
{
    (void)memory_path;
    return vmlet_vm_save(vm, state_path, err);
}

vmlet_restore_options *vmlet_restore_options_new(void)
{
    return calloc(1, sizeof(vmlet_restore_options));
}

void vmlet_restore_options_free(vmlet_restore_options *o)
{
    free(o);
}

int vmlet_restore_options_set_console(vmlet_restore_options *o, int in_fd, int out_fd)
{
    (void)o;
    (void)in_fd;
    (void)out_fd;
    return 0;
}

int vmlet_restore_options_set_kvm_device(vmlet_restore_options *o, const char *path)
{
    (void)o;
    (void)path;
    return 0;
}

int vmlet_restore_options_set_seccomp(vmlet_restore_options *o, vmlet_seccomp_mode mode)
{
    (void)o;
    (void)mode;
    return 0;
}

int vmlet_restore_options_set_start_paused(vmlet_restore_options *o, int paused)
{
    o->paused = paused != 0;
    return 0;
}

int vmlet_restore_options_set_vcpu_thread_name(vmlet_restore_options *o, const char *prefix)
{
    snprintf(o->vcpu_name, sizeof o->vcpu_name, "%s", prefix ? prefix : "");
    return 0;
}

int vmlet_restore_options_set_net(vmlet_restore_options *o, unsigned index, const char *spec)
{
    if (index == 0)
        snprintf(o->net0, sizeof o->net0, "%s", spec ? spec : "");
    return 0;
}

int vmlet_restore_options_set_vsock(vmlet_restore_options *o, uint64_t guest_cid,
                                    const char *uds_path)
{
    (void)guest_cid;
    snprintf(o->vsock_uds, sizeof o->vsock_uds, "%s", uds_path ? uds_path : "");
    return 0;
}

int vmlet_vm_restore_files(const char *state_path, const char *memory_path,
                           const vmlet_restore_options *o, vmlet_vm **out, vmlet_error *err)
{
    if (!strncmp(state_path, "/nonexistent/", 13)) {
        err->code = VMLET_ERR_FILE;
        snprintf(err->message, sizeof err->message,
                 "snapshot %.400s: cannot open its state file: No such file or directory",
                 state_path);
        return -1;
    }
    fake_restore.restores++;
    fake_restore.last = *o;
    snprintf(fake_restore.state, sizeof fake_restore.state, "%s", state_path);
    snprintf(fake_restore.memory, sizeof fake_restore.memory, "%s", memory_path);
    the_vm = (vmlet_vm){ .state = VMLET_STATE_CREATED };
    *out = &the_vm;
    return 0;
}

unsigned vmlet_vm_cpus(const vmlet_vm *vm)
{
    (void)vm;
    return 1;
}

uint64_t vmlet_vm_memory(const vmlet_vm *vm)
{
    (void)vm;
    return 256ull << 20;
}

#endif
