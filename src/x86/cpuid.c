/* CPUID topology for each vCPU, following:
 *   Intel SDM Vol. 2A, CPUID instruction: leaf 01H (EBX[31:24] initial APIC
 *     ID, EBX[23:16] addressable logical processor IDs, EDX[28] HTT),
 *     leaf 04H (EAX[25:14], EAX[31:26]), leaves 0BH and 1FH (extended
 *     topology enumeration); Vol. 3A 9.9 "Programming considerations for
 *     hardware multi-threading capable processors".
 *   AMD APM Vol. 3, Appendix E "Obtaining Processor Information via CPUID":
 *     Fn8000_0001_ECX[1] CmpLegacy, Fn8000_0008_ECX (NC, ApicIdSize),
 *     Fn8000_001D_EAX[25:14] NumSharingCache, Fn8000_001E (extended APIC
 *     ID, compute unit, node); and E.5 "Multiple Processor Calculation".
 *
 * The shape is one package, ncpus cores, one thread per core, APIC ID =
 * core number = cpu_index. Everything not listed above is left as KVM
 * reported it, except for the fix in cpuid_apply_fixups().
 */
#include "x86/cpuid.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define FLAG_INDEX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

enum vendor { VENDOR_OTHER, VENDOR_INTEL, VENDOR_AMD };

/* Smallest power of two >= n (n >= 1). */
static unsigned pow2_ceil(unsigned n)
{
    unsigned p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* Bits needed to hold IDs 0..n-1 (0 for n == 1). */
static unsigned id_bits(unsigned n)
{
    unsigned b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

static bool sig_is(const struct kvm_cpuid_entry2 *e, const char *s)
{
    /* Vendor string order is EBX, EDX, ECX. */
    char v[12];
    memcpy(v, &e->ebx, 4);
    memcpy(v + 4, &e->edx, 4);
    memcpy(v + 8, &e->ecx, 4);
    return memcmp(v, s, 12) == 0;
}

static enum vendor vendor_of(const struct kvm_cpuid_entry2 *leaf0)
{
    if (!leaf0)
        return VENDOR_OTHER;
    if (sig_is(leaf0, "AuthenticAMD") || sig_is(leaf0, "HygonGenuine"))
        return VENDOR_AMD;
    /* Centaur and Zhaoxin describe caches and topology the Intel way. */
    if (sig_is(leaf0, "GenuineIntel") || sig_is(leaf0, "CentaurHauls") ||
        sig_is(leaf0, "  Shanghai  "))
        return VENDOR_INTEL;
    return VENDOR_OTHER;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid_entry2 *e, unsigned n, uint32_t function,
                                     uint32_t index)
{
    for (unsigned i = 0; i < n; i++)
        if (e[i].function == function && (!(e[i].flags & FLAG_INDEX) || e[i].index == index))
            return &e[i];
    return NULL;
}

/* For the extended-topology leaves every sub-leaf needs its own entry:
 * match the index exactly, whatever the flags say. */
static bool has_subleaf(const struct kvm_cpuid_entry2 *e, unsigned n, uint32_t function,
                        uint32_t index)
{
    for (unsigned i = 0; i < n; i++)
        if (e[i].function == function && e[i].index == index)
            return true;
    return false;
}

/* Sub-leaves 0 (SMT), 1 (core) and 2 (first invalid level). */
#define TOPO_SUBLEAVES 3

static unsigned topo_missing(const struct kvm_cpuid_entry2 *e, unsigned n, uint32_t leaf,
                             uint32_t max_basic)
{
    if (max_basic < leaf)
        return 0;
    unsigned missing = 0;
    for (uint32_t i = 0; i < TOPO_SUBLEAVES; i++)
        if (!has_subleaf(e, n, leaf, i))
            missing++;
    return missing;
}

static void topo_add(struct kvm_cpuid_entry2 *e, unsigned *n, uint32_t leaf, uint32_t max_basic)
{
    if (max_basic < leaf)
        return;
    for (uint32_t i = 0; i < TOPO_SUBLEAVES; i++) {
        if (has_subleaf(e, *n, leaf, i))
            continue;
        struct kvm_cpuid_entry2 *x = &e[(*n)++];
        memset(x, 0, sizeof(*x));
        x->function = leaf;
        x->index = i;
        x->flags = FLAG_INDEX;
    }
}

/* Leaf 0BH / 1FH sub-leaf contents (SDM: EAX[4:0] shift to the next
 * level's ID, EBX[15:0] logical processors at this level, ECX[15:8] level
 * type, ECX[7:0] the sub-leaf, EDX the x2APIC ID on every sub-leaf). */
static void topo_fill(struct kvm_cpuid_entry2 *x, unsigned apic, unsigned ncpus)
{
    uint32_t sub = x->index;
    x->flags |= FLAG_INDEX;
    x->edx = apic;
    switch (sub) {
    case 0: /* SMT: one thread per core */
        x->eax = 0;
        x->ebx = 1;
        x->ecx = (1u << 8) | 0;
        break;
    case 1: /* core: the whole package */
        x->eax = id_bits(ncpus);
        x->ebx = ncpus;
        x->ecx = (2u << 8) | 1;
        break;
    default: /* invalid: enumeration ends */
        x->eax = 0;
        x->ebx = 0;
        x->ecx = sub & 0xff;
        break;
    }
}

/* Cache sharing fields (leaf 04H EAX[25:14] on Intel, 8000_001DH
 * EAX[25:14] on AMD, same layout): L1 and L2 are private to a core (one
 * thread each), L3 and beyond are shared by the whole package. */
static uint32_t cache_sharing(uint32_t eax, unsigned ncpus)
{
    unsigned level = (eax >> 5) & 7;
    unsigned sharing = level >= 3 ? ncpus - 1 : 0;
    return (eax & ~(0xfffu << 14)) | (sharing << 14);
}

int cpuid_apply_topology(struct kvm_cpuid_entry2 *entries, unsigned *nent, unsigned max,
                         unsigned cpu_index, unsigned ncpus)
{
    if (!entries || !nent || *nent > max || ncpus == 0 || ncpus > 255 || cpu_index >= ncpus)
        return -1;

    unsigned n = *nent;
    struct kvm_cpuid_entry2 *leaf0 = find(entries, n, 0, 0);
    uint32_t max_basic = leaf0 ? leaf0->eax : 0;
    enum vendor vendor = vendor_of(leaf0);
    const unsigned apic = cpu_index;

    /* Check room before touching anything, so a failure changes nothing. */
    unsigned add = topo_missing(entries, n, 0xb, max_basic) +
                   topo_missing(entries, n, 0x1f, max_basic);
    if (add > max - n)
        return -1;
    topo_add(entries, &n, 0xb, max_basic);
    topo_add(entries, &n, 0x1f, max_basic);
    *nent = n;

    /* Legacy count field: 8 bits, so 256 is written as 255; the count
     * order (what Linux derives from it) is the same. */
    unsigned pkg_ids = pow2_ceil(ncpus);
    unsigned legacy_count = pkg_ids > 255 ? 255 : pkg_ids;
    /* Leaf 04H EAX[31:26] is 6 bits: at most 64 cores. */
    unsigned cores_field = pkg_ids - 1 > 63 ? 63 : pkg_ids - 1;

    for (unsigned i = 0; i < n; i++) {
        struct kvm_cpuid_entry2 *e = &entries[i];
        switch (e->function) {
        case 0x1:
            e->ebx = (e->ebx & 0xffff) | (apic << 24) | (legacy_count << 16);
            if (ncpus > 1)
                e->edx |= 1u << 28; /* HTT: EBX[23:16] is valid */
            else
                e->edx &= ~(1u << 28);
            break;
        case 0x4:
            if (vendor != VENDOR_INTEL || (e->eax & 0x1f) == 0)
                break; /* AMD: reserved; type 0: end */
            e->eax = cache_sharing(e->eax, ncpus);
            e->eax = (e->eax & ~(0x3fu << 26)) | (cores_field << 26);
            break;
        case 0xb:
        case 0x1f: topo_fill(e, apic, ncpus); break;
        case 0x80000001:
            if (vendor != VENDOR_AMD)
                break;
            /* CmpLegacy: the HTT count in leaf 1 counts cores. */
            if (ncpus > 1)
                e->ecx |= 1u << 1;
            else
                e->ecx &= ~(1u << 1);
            break;
        case 0x80000008:
            if (vendor != VENDOR_AMD)
                break;
            /* NC = cores - 1; ApicIdSize = APIC ID bits for the core. */
            e->ecx = (e->ecx & ~0xf0ffu) | (id_bits(ncpus) << 12) | (ncpus - 1);
            break;
        case 0x8000001d:
            if (vendor != VENDOR_AMD || (e->eax & 0x1f) == 0)
                break;
            e->eax = cache_sharing(e->eax, ncpus);
            break;
        case 0x8000001e:
            if (vendor != VENDOR_AMD)
                break;
            e->eax = apic;             /* extended APIC ID */
            e->ebx = cpu_index & 0xff; /* compute unit (core) ID;
                                                   threads per unit - 1 = 0 */
            e->ecx = 0;                /* node 0, 1 node/package */
            e->edx = 0;
            break;
        default: break;
        }
    }
    return 0;
}

void cpuid_apply_fixups(struct kvm_cpuid_entry2 *entries, unsigned nent, bool tsc_deadline)
{
    for (unsigned i = 0; i < nent; i++) {
        struct kvm_cpuid_entry2 *e = &entries[i];
        if (e->function != 0x1)
            continue;
        /* KVM_GET_SUPPORTED_CPUID leaves the "hypervisor" bit clear; without
         * it Linux never reads the KVM leaves (kvm-clock, PV EOI, ...) and
         * calibrates its clocks the slow way. */
        e->ecx |= 1u << 31;
        /* Nor does it list the TSC-deadline timer, which the in-kernel
         * LAPIC emulates (KVM_CAP_TSC_DEADLINE_TIMER). Without it Linux
         * must calibrate the LAPIC timer against the PIT, and where that
         * fails (seen in the nested lab) it ticks with the PIT: a port-I/O
         * exit for every timer event. */
        if (tsc_deadline)
            e->ecx |= 1u << 24;
    }
}
