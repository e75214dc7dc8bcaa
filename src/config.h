/* The inside of a vmlet_config, shared by config.c and vm.c. */
#ifndef VMLET_CONFIG_H
#define VMLET_CONFIG_H

#include <stdbool.h>
#include "vmlet.h"
#include "netspec.h"

#define VMLET_MAX_CPUS   255          /* xAPIC IDs in the MADT */
#define VMLET_MAX_MEMORY (1ULL << 40) /* 1 TiB */

struct config_disk {
    char *path;
    char *serial; /* NULL: none */
    bool read_only;
};

struct config_share {
    char *path, *tag;
    bool read_only;
    bool cache_always; /* VMLET_SHARE_CACHE_ALWAYS */
};

struct vmlet_config {
    unsigned cpus;
    uint64_t memory;
    char *kernel, *initrd, *cmdline;
    vmlet_console_kind console;
    int console_in, console_out;
    struct config_disk disks[VMLET_MAX_DISKS];
    unsigned ndisks;
    bool too_many_disks; /* reported by validate, not by add_disk */
    bool entropy;
    bool balloon;
    unsigned balloon_flags, balloon_stats_s; /* VMLET_BALLOON_*, seconds */
    uint64_t vsock_cid;
    char *vsock_uds; /* NULL: no vsock device */
    struct config_share shares[VMLET_MAX_SHARES];
    unsigned nshares;
    bool too_many_shares; /* reported by validate, not by add_share */
    /* Parsed once, when added; vm.c's devices read them as they are. */
    struct net_spec nets[VMLET_MAX_NICS];
    unsigned nnets;
    bool too_many_nets;
    bool bad_net;          /* net_error is the first bad --net spec's, */
    vmlet_error net_error; /* reported by validate, not by add_net */
    unsigned shutdown_timeout;
    char *kvm_device;
    vmlet_seccomp_mode seccomp;
    char *vcpu_name; /* the vCPU threads' name prefix; NULL: "vcpu" */
};

/* Adds a NIC parsed elsewhere (vm.json's "network" entries); like
 * vmlet_config_add_net(), a ninth is reported by validate. */
void config_add_net_spec(vmlet_config *c, const struct net_spec *s);
/* *slot becomes a copy of s (NULL for none), the old string freed: 0, or
 * -1 with *slot unchanged when out of memory. The library's string
 * setters (config, restore options) and the Firecracker mode's use it. */
int config_replace_string(char **slot, const char *s);
/* The vsock settings' check of vmlet_config_validate (also a restore's). */
int config_check_vsock(const vmlet_config *c, vmlet_error *err);

/* Host RAM + swap in bytes (0 if unknown); src/host_memory.c, which unit
 * tests replace with a pretend host. */
uint64_t host_memory_bytes(void);

#endif
