/* The seccomp sandbox (docs/sandbox.md): every thread vmlet starts puts
 * itself under an allowlist of the system calls its kind of work needs,
 * before it touches anything the guest wrote. A call outside the list
 * ends the process with one line on stderr naming the thread and the
 * call. Each thread also drops every capability, sets no_new_privs and,
 * where the kernel has Landlock, gives up opening any file but those its
 * rules name.
 *
 * The lists are per kind of thread and live next to the code that needs
 * them: a device's in its own file (struct sandbox_rules in its hooks),
 * the vCPU's in vm.c, the console threads' in serial.c and
 * serial_input.c. What every thread needs (memory, locks, eventfds,
 * poll, clocks, ending the thread) is added here. */
#ifndef VMLET_SANDBOX_H
#define VMLET_SANDBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include "vmlet.h"

/* An ioctl allowed on any descriptor (the request number is what the
 * filter can see). */
struct sandbox_rules {
    const char *kind;    /* "vcpu", "virtio-blk", ...: named in a violation */
    const int *syscalls; /* __NR_* numbers beyond the common set */
    size_t nsyscalls;
    const unsigned long *ioctls; /* request numbers; no ioctl at all if none */
    size_t nioctls;
    bool open_read_only; /* openat for reading (libslirp reads resolv.conf) */
    /* Landlock: the files it may open (for reading); NULL-terminated. */
    const char *const *read_paths;
    bool may_remove_files; /* Landlock: unlink (the control socket) */
    /* Landlock: a directory, by descriptor, beneath which the thread may
     * do anything with files (share_read_only: read and list only): a
     * shared directory (virtio-fs). has_share false: none. */
    bool has_share;
    bool share_read_only;
    int share_fd;
    /* Capabilities the thread keeps if it has them (bit n: CAP_n); all
     * others are dropped. A shared directory's thread keeps those that
     * let a root vmlet serve files of every owner, confined by Landlock
     * and seccomp to the share. */
    uint64_t keep_caps;
    /* No Landlock at all, and openat for any purpose: the snapshot
     * writer, which makes files wherever the caller names. */
    bool files_anywhere;
    /* Disk images the thread may open to swap a disk's image
     * (vmlet_vm_set_disk_path): Landlock lets it open existing files
     * beneath these directories for reading and writing, nothing else
     * there (no making, removing or listing); seccomp adds openat
     * without O_CREAT or O_TRUNC, flock, the block-device size ioctl and
     * what realpath() reads. NULL-terminated; NULL or empty: none. */
    const char *const *disk_dirs;
    bool sockets;      /* socket() for AF_INET/AF_INET6 (user-mode NAT) */
    bool unix_sockets; /* socket() for AF_UNIX (vsock's host side) */
};

#define SANDBOX_RULES(k, sys, ioc) \
    { \
        .kind = (k), .syscalls = (sys), .nsyscalls = sizeof(sys) / sizeof((sys)[0]), \
        .ioctls = (ioc), .nioctls = sizeof(ioc) / sizeof((ioc)[0]) \
    }

/* Puts the calling thread under rules (mode ON or LOG; OFF does nothing)
 * and drops its capabilities. Returns 0, or -1 with err filled (no
 * seccomp in this kernel, libseccomp failed). */
int sandbox_enter(const struct sandbox_rules *rules, vmlet_seccomp_mode mode, vmlet_error *err);

/* pthread_create for a thread that enters the sandbox (rules, mode) before
 * it runs fn(arg): waits until it did, so a failure is the caller's error
 * and nothing of fn runs unsandboxed. unsignalled: start it with every
 * signal blocked (device and console threads; vCPU threads keep the
 * caller's mask for their kick signal). Returns 0 or -1 with err filled. */
int sandbox_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg,
                         const struct sandbox_rules *rules, vmlet_seccomp_mode mode,
                         bool unsignalled, vmlet_error *err);

/* The rules of the thread that drives a VM through the public API (the
 * CLI's supervising loop): vmlet_vm_sandbox_this_thread(). */
extern const struct sandbox_rules sandbox_control_rules;

#endif
