/* Saving and restoring an x86 vCPU through KVM (vcpu_state.h).
 *
 * The restore order matters, and follows what KVM's own checks need:
 * special registers before the LAPIC (APIC base and x2APIC mode come with
 * them), the LAPIC before the MSRs (KVM ignores a TSC deadline unless the
 * LAPIC timer is in TSC-deadline mode), the TSC before every other MSR (a
 * deadline is armed against the TSC as it is at that moment), the MP state
 * and then the pending events last (an event may name a SIPI vector or an
 * injected interrupt that the LAPIC must already hold). */
#include "x86/vcpu_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "error.h"

#define MSR_IA32_TSC 0x10
/* KVM_GET_MSRS and KVM_SET_MSRS take fewer than 256 entries a call
 * (MAX_IO_MSRS): longer lists go in chunks. */
#define MSR_CHUNK    128

static int xsave_size(int vm_fd)
{
    int n = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    return n > SNAP_XSAVE_MIN ? n : SNAP_XSAVE_MIN;
}

uint64_t x86_vcpu_tsc_khz(int vcpu_fd)
{
    int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
    return khz > 0 ? (uint64_t)khz : 0;
}

/* Every MSR KVM lists, less those this vCPU will not read back: KVM_GET_MSRS
 * stops at the first it refuses, which is dropped before trying again. */
static int save_msrs(int kvm_fd, int vcpu_fd, unsigned index, struct snap_writer *w,
                     vmlet_error *err)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) == 0 || errno != E2BIG || !probe.nmsrs)
        return set_error(err, VMLET_ERR_HOST, "KVM_GET_MSR_INDEX_LIST failed: %s", strerror(errno));
    unsigned n = probe.nmsrs;
    struct kvm_msr_list *list = calloc(1, sizeof *list + n * sizeof list->indices[0]);
    struct kvm_msrs *msrs = calloc(1, sizeof *msrs + n * sizeof msrs->entries[0]);
    int rc = -1;
    if (!list || !msrs) {
        set_error(err, VMLET_ERR_NOMEM, "out of memory for MSRs");
        goto out;
    }
    list->nmsrs = n;
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        set_error(err, VMLET_ERR_HOST, "KVM_GET_MSR_INDEX_LIST failed: %s", strerror(errno));
        goto out;
    }
    n = list->nmsrs < n ? list->nmsrs : n;
    if (n > SNAP_MAX_MSRS)
        n = SNAP_MAX_MSRS;
    /* Chunk by chunk; what KVM reads is packed into msrs. */
    unsigned kept = 0;
    for (unsigned at = 0; at < n;) {
        unsigned len = n - at < MSR_CHUNK ? n - at : MSR_CHUNK;
        _Alignas(struct kvm_msrs)
            uint8_t buf[sizeof(struct kvm_msrs) + MSR_CHUNK * sizeof(struct kvm_msr_entry)];
        struct kvm_msrs *io = (struct kvm_msrs *)buf;
        memset(buf, 0, sizeof buf);
        io->nmsrs = len;
        for (unsigned i = 0; i < len; i++)
            io->entries[i].index = list->indices[at + i];
        int got = ioctl(vcpu_fd, KVM_GET_MSRS, io);
        if (got < 0) {
            set_error(err, VMLET_ERR_HOST, "vCPU %u: KVM_GET_MSRS failed: %s", index,
                      strerror(errno));
            goto out;
        }
        for (int i = 0; i < got; i++)
            msrs->entries[kept++] = io->entries[i];
        /* KVM stops at the first MSR it will not read: skip that one. */
        at += (unsigned)got < len ? (unsigned)got + 1 : len;
    }
    msrs->nmsrs = kept;
    if (msrs->nmsrs == 0) {
        set_error(err, VMLET_ERR_HOST, "vCPU %u: KVM reads no MSR back", index);
        goto out;
    }
    snap_put(w, SNAP_VCPU_MSRS, index, msrs->entries, msrs->nmsrs * sizeof msrs->entries[0]);
    rc = 0;
out:
    free(list);
    free(msrs);
    return rc;
}

static int save_cpuid(int vcpu_fd, unsigned index, struct snap_writer *w, vmlet_error *err)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof *c + SNAP_MAX_CPUID * sizeof c->entries[0]);
    if (!c)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory for CPUID");
    c->nent = SNAP_MAX_CPUID;
    int rc = 0;
    if (ioctl(vcpu_fd, KVM_GET_CPUID2, c) < 0 || c->nent == 0)
        rc = set_error(err, VMLET_ERR_HOST, "vCPU %u: KVM_GET_CPUID2 failed: %s", index,
                       strerror(errno));
    else
        snap_put(w, SNAP_VCPU_CPUID, index, c->entries, c->nent * sizeof c->entries[0]);
    free(c);
    return rc;
}

int x86_vcpu_save(int kvm_fd, int vm_fd, int vcpu_fd, unsigned index, struct snap_writer *w,
                  vmlet_error *err)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_debugregs debugregs;
    struct kvm_mp_state mp;
    memset(&xcrs, 0, sizeof xcrs);
    int xsize = xsave_size(vm_fd);
    struct kvm_xsave *xsave = calloc(1, xsize);
    if (!xsave)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory for XSAVE state");
    const char *what = NULL;
    if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0)
        what = "registers";
    else if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        what = "special registers";
    else if (ioctl(vcpu_fd, xsize > SNAP_XSAVE_MIN ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave) < 0)
        what = "XSAVE state";
    else if (ioctl(vcpu_fd, KVM_GET_XCRS, &xcrs) < 0)
        what = "XCRs";
    else if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
        what = "LAPIC";
    else if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &events) < 0)
        what = "events";
    else if (ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &debugregs) < 0)
        what = "debug registers";
    else if (ioctl(vcpu_fd, KVM_GET_MP_STATE, &mp) < 0)
        what = "MP state";
    if (what) {
        int e = errno;
        free(xsave);
        return set_error(err, VMLET_ERR_HOST, "vCPU %u: cannot read its %s: %s", index, what,
                         strerror(e));
    }
    snap_put(w, SNAP_VCPU_REGS, index, &regs, sizeof regs);
    snap_put(w, SNAP_VCPU_SREGS, index, &sregs, sizeof sregs);
    snap_put(w, SNAP_VCPU_XSAVE, index, xsave, (uint32_t)xsize);
    snap_put(w, SNAP_VCPU_XCRS, index, &xcrs, sizeof xcrs);
    snap_put(w, SNAP_VCPU_LAPIC, index, &lapic, sizeof lapic);
    snap_put(w, SNAP_VCPU_EVENTS, index, &events, sizeof events);
    snap_put(w, SNAP_VCPU_DEBUGREGS, index, &debugregs, sizeof debugregs);
    snap_put(w, SNAP_VCPU_MP_STATE, index, &mp, sizeof mp);
    free(xsave);
    if (save_msrs(kvm_fd, vcpu_fd, index, w, err) < 0 || save_cpuid(vcpu_fd, index, w, err) < 0)
        return -1;
    return 0;
}

/* ---- restoring ---------------------------------------------------------- */

/* Bits KVM rewrites from the vCPU's state as it runs (OSXSAVE, APIC,
 * OSPKE, MWAIT, the XSAVE area size): they differ between a vCPU that
 * ran and a new one without the CPUs differing. */
static void runtime_bits(const struct kvm_cpuid_entry2 *e, uint32_t mask[4])
{
    mask[0] = mask[1] = mask[2] = mask[3] = 0;
    if (e->function == 1) {
        mask[2] = (1u << 27) | (1u << 3); /* ecx: OSXSAVE, MONITOR */
        mask[3] = 1u << 9;                /* edx: APIC */
    } else if (e->function == 7 && e->index == 0) {
        mask[2] = 1u << 4; /* ecx: OSPKE */
    } else if (e->function == 0xd && e->index <= 1) {
        mask[1] = ~0u; /* ebx: the size for the XCR0 (and XSS) in use */
    } else if (e->function == 0x80000001) {
        mask[3] = 1u << 9; /* edx: APIC, mirrored */
    }
}

static int check_cpuid(int vcpu_fd, unsigned index, const struct snap_blob *saved, vmlet_error *err)
{
    struct kvm_cpuid2 *here = calloc(1, sizeof *here + SNAP_MAX_CPUID * sizeof here->entries[0]);
    if (!here)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory for CPUID");
    here->nent = SNAP_MAX_CPUID;
    int rc = 0;
    unsigned n = saved->len / sizeof(struct kvm_cpuid_entry2);
    if (ioctl(vcpu_fd, KVM_GET_CPUID2, here) < 0) {
        rc = set_error(err, VMLET_ERR_HOST, "vCPU %u: KVM_GET_CPUID2 failed: %s", index,
                       strerror(errno));
        goto out;
    }
    if (here->nent != n) {
        rc = set_error(err, VMLET_ERR_HOST,
                       "it was saved on another CPU (vCPU %u has %u CPUID leaves there, %u "
                       "here); restore it on a host with the same CPU and KVM",
                       index, n, here->nent);
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        struct kvm_cpuid_entry2 s;
        memcpy(&s, saved->data + i * sizeof s, sizeof s);
        const struct kvm_cpuid_entry2 *h = &here->entries[i];
        uint32_t mask[4];
        runtime_bits(h, mask);
        uint32_t sv[4] = { s.eax, s.ebx, s.ecx, s.edx }, hv[4] = { h->eax, h->ebx, h->ecx, h->edx };
        int reg = -1;
        for (int r = 0; r < 4 && reg < 0; r++)
            if ((sv[r] & ~mask[r]) != (hv[r] & ~mask[r]))
                reg = r;
        if (s.function != h->function || s.index != h->index || reg >= 0) {
            static const char *const names[4] = { "eax", "ebx", "ecx", "edx" };
            rc = set_error(err, VMLET_ERR_HOST,
                           "it was saved on another CPU (vCPU %u, CPUID leaf 0x%x.%u %s: "
                           "0x%08x there, 0x%08x here); restore it on a host with the same CPU "
                           "and KVM",
                           index, s.function, s.index, names[reg < 0 ? 0 : reg],
                           sv[reg < 0 ? 0 : reg], hv[reg < 0 ? 0 : reg]);
            goto out;
        }
    }
out:
    free(here);
    return rc;
}

/* One MSR KVM refused: harmless if the new vCPU already holds that value
 * (a read-only MSR), else the host differs. */
static int msr_refused(int vcpu_fd, unsigned index, const struct kvm_msr_entry *e, vmlet_error *err)
{
    _Alignas(struct kvm_msrs) uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    memset(buf, 0, sizeof buf);
    struct kvm_msrs *one = (struct kvm_msrs *)buf;
    one->nmsrs = 1;
    one->entries[0].index = e->index;
    if (ioctl(vcpu_fd, KVM_GET_MSRS, one) == 1 && one->entries[0].data == e->data)
        return 0;
    return set_error(err, VMLET_ERR_HOST,
                     "vCPU %u: this host's KVM refuses MSR 0x%x = 0x%llx from the snapshot; "
                     "restore it on a host with the same CPU and KVM",
                     index, e->index, (unsigned long long)e->data);
}

static int restore_msrs(int vcpu_fd, unsigned index, const struct snap_blob *b,
                        uint64_t tsc_advance, vmlet_error *err)
{
    unsigned n = b->len / sizeof(struct kvm_msr_entry);
    struct kvm_msrs *m = calloc(1, sizeof *m + n * sizeof m->entries[0]);
    if (!m)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory for MSRs");
    memcpy(m->entries, b->data, n * sizeof m->entries[0]);
    int rc = 0;
    /* The TSC alone and first (see the top of this file). */
    for (unsigned i = 0; i < n; i++) {
        if (m->entries[i].index != MSR_IA32_TSC)
            continue;
        _Alignas(struct kvm_msrs)
            uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
        memset(buf, 0, sizeof buf);
        struct kvm_msrs *tsc = (struct kvm_msrs *)buf;
        tsc->nmsrs = 1;
        tsc->entries[0].index = MSR_IA32_TSC;
        tsc->entries[0].data = m->entries[i].data + tsc_advance;
        if (ioctl(vcpu_fd, KVM_SET_MSRS, tsc) != 1) {
            rc = set_error(err, VMLET_ERR_HOST, "vCPU %u: cannot set the TSC: %s", index,
                           strerror(errno));
            goto out;
        }
        m->entries[i] = m->entries[--n];
        break;
    }
    /* In chunks; an MSR KVM refuses is looked at alone (msr_refused),
     * then the rest of its chunk goes on. */
    for (unsigned at = 0; at < n;) {
        _Alignas(struct kvm_msrs)
            uint8_t buf[sizeof(struct kvm_msrs) + MSR_CHUNK * sizeof(struct kvm_msr_entry)];
        struct kvm_msrs *io = (struct kvm_msrs *)buf;
        memset(buf, 0, sizeof buf);
        io->nmsrs = n - at < MSR_CHUNK ? n - at : MSR_CHUNK;
        memcpy(io->entries, &m->entries[at], io->nmsrs * sizeof io->entries[0]);
        int done = ioctl(vcpu_fd, KVM_SET_MSRS, io);
        if (done < 0) {
            rc = set_error(err, VMLET_ERR_HOST, "vCPU %u: KVM_SET_MSRS failed: %s", index,
                           strerror(errno));
            goto out;
        }
        if ((unsigned)done < io->nmsrs) {
            if (msr_refused(vcpu_fd, index, &io->entries[done], err) < 0) {
                rc = -1;
                goto out;
            }
            done++;
        }
        at += (unsigned)done;
    }
out:
    free(m);
    return rc;
}

int x86_vcpu_restore(int vm_fd, int vcpu_fd, unsigned index, const struct snap_blob *parts,
                     uint64_t tsc_advance, vmlet_error *err)
{
#define PART(tag) (&parts[(tag)-SNAP_VCPU_REGS])
    if (check_cpuid(vcpu_fd, index, PART(SNAP_VCPU_CPUID), err) < 0)
        return -1;
    uint32_t xsize = (uint32_t)xsave_size(vm_fd);
    if (PART(SNAP_VCPU_XSAVE)->len != xsize)
        return set_error(err, VMLET_ERR_HOST,
                         "it was saved on another CPU (an XSAVE area of %u bytes there, %u "
                         "here); restore it on a host with the same CPU and KVM",
                         PART(SNAP_VCPU_XSAVE)->len, xsize);
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_debugregs debugregs;
    struct kvm_mp_state mp;
    /* Copies: the file's bytes need not be aligned for these structs. */
    memcpy(&regs, PART(SNAP_VCPU_REGS)->data, sizeof regs);
    memcpy(&sregs, PART(SNAP_VCPU_SREGS)->data, sizeof sregs);
    memcpy(&xcrs, PART(SNAP_VCPU_XCRS)->data, sizeof xcrs);
    memcpy(&lapic, PART(SNAP_VCPU_LAPIC)->data, sizeof lapic);
    memcpy(&events, PART(SNAP_VCPU_EVENTS)->data, sizeof events);
    memcpy(&debugregs, PART(SNAP_VCPU_DEBUGREGS)->data, sizeof debugregs);
    memcpy(&mp, PART(SNAP_VCPU_MP_STATE)->data, sizeof mp);
    /* KVM_GET_VCPU_EVENTS does not flag these two as valid, but they are:
     * a pending NMI, and the vector of a SIPI an AP waits to act on. */
    events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    struct kvm_xsave *xsave = calloc(1, xsize);
    if (!xsave)
        return set_error(err, VMLET_ERR_NOMEM, "out of memory for XSAVE state");
    memcpy(xsave, PART(SNAP_VCPU_XSAVE)->data, xsize);
    const char *what = NULL;
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
        what = "special registers";
    else if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
        what = "registers";
    else if (ioctl(vcpu_fd, KVM_SET_XCRS, &xcrs) < 0)
        what = "XCRs";
    else if (ioctl(vcpu_fd, KVM_SET_XSAVE, xsave) < 0)
        what = "XSAVE state";
    else if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
        what = "LAPIC";
    int e = errno;
    free(xsave);
    if (!what) {
        if (restore_msrs(vcpu_fd, index, PART(SNAP_VCPU_MSRS), tsc_advance, err) < 0)
            return -1;
        if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) < 0)
            what = "MP state";
        else if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &events) < 0)
            what = "events";
        else if (ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &debugregs) < 0)
            what = "debug registers";
        e = errno;
    }
    if (what)
        return set_error(err, VMLET_ERR_FILE, "vCPU %u: KVM refuses its saved %s: %s", index, what,
                         strerror(e));
    return 0;
#undef PART
}
