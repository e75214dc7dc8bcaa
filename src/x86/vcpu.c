/* x86 vCPU set-up for the 64-bit Linux boot protocol (vcpu.h). The MSR
 * values are what a PC's firmware leaves behind; LINT0 as ExtINT and
 * LINT1 as NMI is the PC wiring of the legacy PIC (Intel SDM vol. 3,
 * 10.5.1). */
#include "x86/vcpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "error.h"
#include "x86/boot.h"
#include "x86/cpuid.h"

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR              0xc0000081
#define MSR_LSTAR             0xc0000082
#define MSR_CSTAR             0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

/* Room for the entries cpuid_apply_topology may add to KVM's list. */
#define CPUID_EXTRA 16

struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd)
{
    for (unsigned n = 128; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof *c + n * sizeof c->entries[0]);
        if (!c)
            return NULL;
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            return c;
        free(c);
        if (errno != E2BIG)
            return NULL;
    }
    return NULL;
}

static int set_boot_msrs(int fd)
{
    static const struct {
        uint32_t index;
        uint64_t value;
    } init[] = {
        { MSR_IA32_SYSENTER_CS, 0 },
        { MSR_IA32_SYSENTER_ESP, 0 },
        { MSR_IA32_SYSENTER_EIP, 0 },
        { MSR_STAR, 0 },
        { MSR_CSTAR, 0 },
        { MSR_KERNEL_GS_BASE, 0 },
        { MSR_SYSCALL_MASK, 0 },
        { MSR_LSTAR, 0 },
        { MSR_IA32_MISC_ENABLE, 1 },  /* fast string operations */
        { MSR_MTRR_DEF_TYPE, 0x806 }, /* MTRRs on, default write-back */
    };
    enum { N = sizeof init / sizeof init[0] };
    /* struct kvm_msrs ends in a flexible array: room for N entries. */
    _Alignas(struct kvm_msrs)
        uint8_t buf[sizeof(struct kvm_msrs) + N * sizeof(struct kvm_msr_entry)];
    memset(buf, 0, sizeof buf);
    struct kvm_msrs *msrs = (struct kvm_msrs *)buf;
    msrs->nmsrs = N;
    for (unsigned i = 0; i < N; i++) {
        msrs->entries[i].index = init[i].index;
        msrs->entries[i].data = init[i].value;
    }
    return ioctl(fd, KVM_SET_MSRS, msrs) == N ? 0 : -1;
}

/* LINT0 as ExtINT and LINT1 as NMI: the PC wiring of the legacy PIC. */
static int set_lapic_lints(int fd)
{
    struct kvm_lapic_state lapic;
    if (ioctl(fd, KVM_GET_LAPIC, &lapic) < 0)
        return -1;
    uint32_t *lvt0 = (uint32_t *)(lapic.regs + 0x350);
    uint32_t *lvt1 = (uint32_t *)(lapic.regs + 0x360);
    *lvt0 = (*lvt0 & ~0x700u) | (7u << 8);
    *lvt1 = (*lvt1 & ~0x700u) | (4u << 8);
    return ioctl(fd, KVM_SET_LAPIC, &lapic);
}

int x86_vcpu_init(int vcpu_fd, const struct kvm_cpuid2 *supported, unsigned index, unsigned ncpus,
                  bool tsc_deadline, vmlet_error *err)
{
    unsigned max = supported->nent + CPUID_EXTRA;
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + max * sizeof cpuid->entries[0]);
    if (!cpuid)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory for CPUID");
    int rc = -1;
    unsigned nent = supported->nent;
    memcpy(cpuid->entries, supported->entries, nent * sizeof cpuid->entries[0]);
    if (cpuid_apply_topology(cpuid->entries, &nent, max, index, ncpus) < 0) {
        set_error(err, VMLET_ERR_INTERNAL, "cannot describe CPU topology for vCPU %u", index);
        goto out;
    }
    cpuid_apply_fixups(cpuid->entries, nent, tsc_deadline);
    cpuid->nent = nent;
    if (ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0 || set_boot_msrs(vcpu_fd) < 0 ||
        set_lapic_lints(vcpu_fd) < 0) {
        set_error(err, VMLET_ERR_HOST, "cannot set up vCPU %u (CPUID, MSRs, LAPIC): %s", index,
                  strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(cpuid);
    return rc;
}

int x86_vcpu_set_boot_registers(int vcpu_fd, uint64_t rip, vmlet_error *err)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return set_error(err, VMLET_ERR_HOST, "KVM_GET_SREGS failed: %s", strerror(errno));
    boot_cpu_registers(&regs, &sregs, rip);
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0 ||
        ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
        return set_error(err, VMLET_ERR_HOST, "cannot set the boot vCPU's registers: %s",
                         strerror(errno));
    return 0;
}
