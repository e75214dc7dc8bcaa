/* Unit tests for the CPUID topology rewrite (src/x86/cpuid.c).
 *
 * The inputs imitate KVM_GET_SUPPORTED_CPUID on an Intel host with leaf
 * 1FH and on an EPYC (Zen 3) host. Expected values are written out from
 * the Intel SDM / AMD APM field definitions, not computed by the code
 * under test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "x86/cpuid.h"

#define IDX  KVM_CPUID_FLAG_SIGNIFCANT_INDEX
#define MAXE 64

typedef struct kvm_cpuid_entry2 ent;

#define E(fn, ix, fl, a, b, c, d) \
    { \
        .function = (fn), .index = (ix), .flags = (fl), .eax = (a), .ebx = (b), .ecx = (c), \
        .edx = (d) \
    }

/* "GenuineIntel" in EBX, EDX, ECX. */
#define INTEL_B 0x756e6547u
#define INTEL_D 0x49656e69u
#define INTEL_C 0x6c65746eu
/* "AuthenticAMD". */
#define AMD_B   0x68747541u
#define AMD_D   0x69746e65u
#define AMD_C   0x444d4163u
/* "HygonGenuine". */
#define HYGON_B 0x6f677948u
#define HYGON_D 0x6e65476eu
#define HYGON_C 0x656e6975u

static const ent intel_host[] = {
    E(0x0, 0, 0, 0x1f, INTEL_B, INTEL_C, INTEL_D),
    E(0x1, 0, 0, 0x000606a6, 0x2a400800, 0x7ffa3223, 0x1f8bfbff),
    E(0x2, 0, 0, 0x00feff01, 0x000000f0, 0, 0),
    E(0x4, 0, IDX, 0xfc004121, 0x02c0003f, 0x0000003f, 0),
    E(0x4, 1, IDX, 0xfc004122, 0x01c0003f, 0x0000003f, 0),
    E(0x4, 2, IDX, 0xfc004143, 0x03c0003f, 0x000003ff, 0),
    E(0x4, 3, IDX, 0xfc0fc163, 0x0280003f, 0x0000dfff, 0x4),
    E(0x4, 4, IDX, 0, 0, 0, 0),
    E(0x6, 0, 0, 0x4, 0, 0, 0),
    E(0x7, 0, IDX, 0x2, 0xf1bf07ab, 0x1b415f6e, 0xbc000410),
    E(0xb, 0, IDX, 0x1, 0x2, 0x100, 0x2a),
    E(0xb, 1, IDX, 0x7, 0x40, 0x201, 0x2a),
    E(0xd, 0, IDX, 0x2e7, 0x2e8, 0x2e8, 0),
    E(0xd, 1, IDX, 0xf, 0x240, 0, 0),
    E(0x1f, 0, IDX, 0x1, 0x2, 0x100, 0x2a),
    E(0x1f, 1, IDX, 0x6, 0x40, 0x201, 0x2a),
    E(0x1f, 2, IDX, 0x7, 0x40, 0x502, 0x2a),
    E(0x1f, 3, IDX, 0, 0, 0x3, 0x2a),
    E(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
    E(0x40000001, 0, 0, 0x01007afb, 0, 0, 0),
    E(0x80000000, 0, 0, 0x80000008, 0, 0, 0),
    E(0x80000001, 0, 0, 0, 0, 0x00000121, 0x2c100800),
    E(0x80000008, 0, 0, 0x00003030, 0x00000200, 0, 0),
};
#define INTEL_N (sizeof(intel_host) / sizeof(intel_host[0]))

static const ent amd_host[] = {
    E(0x0, 0, 0, 0x10, AMD_B, AMD_C, AMD_D),
    E(0x1, 0, 0, 0x00a00f11, 0x3f400800, 0x7ef83203, 0x178bfbff),
    E(0x4, 0, IDX, 0, 0, 0, 0),
    E(0x7, 0, IDX, 0, 0x219c07ab, 0x0040068c, 0x00000010),
    E(0xd, 0, IDX, 0x207, 0x340, 0x988, 0),
    E(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
    E(0x40000001, 0, 0, 0x01007afb, 0, 0, 0),
    E(0x80000000, 0, 0, 0x80000021, AMD_B, AMD_C, AMD_D),
    E(0x80000001, 0, 0, 0x00a00f11, 0, 0x75c237ff, 0x2fd3fbff),
    E(0x80000008, 0, 0, 0x00003030, 0x111ef657, 0x0001703f, 0),
    E(0x8000001d, 0, IDX, 0x00004121, 0x01c0003f, 0x3f, 0),
    E(0x8000001d, 1, IDX, 0x00004122, 0x01c0003f, 0x3f, 0),
    E(0x8000001d, 2, IDX, 0x00004143, 0x01c0003f, 0x3ff, 0x2),
    E(0x8000001d, 3, IDX, 0x0003c163, 0x03c0003f, 0x7fff, 0x1),
    E(0x8000001d, 4, IDX, 0, 0, 0, 0),
    E(0x8000001e, 0, 0, 0, 0, 0, 0),
    E(0x80000021, 0, 0, 0x00000045, 0, 0, 0),
};
#define AMD_N (sizeof(amd_host) / sizeof(amd_host[0]))

static unsigned load(ent *dst, const ent *src, unsigned n)
{
    memset(dst, 0xcc, sizeof(ent) * MAXE);
    memcpy(dst, src, sizeof(ent) * n);
    return n;
}

static const ent *get(const ent *e, unsigned n, uint32_t fn, uint32_t ix)
{
    const ent *hit = NULL;
    for (unsigned i = 0; i < n; i++)
        if (e[i].function == fn && e[i].index == ix) {
            assert_null(hit); /* never duplicated */
            hit = &e[i];
        }
    return hit;
}

static void assert_same(const ent *a, const ent *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(a, b, sizeof(*a));
}

/* Per-ncpus expectations, spelled out. */
struct shape {
    unsigned n, pow2, bits;
};
static const struct shape shapes[] = {
    { 1, 1, 0 },
    { 2, 2, 1 },
    { 3, 4, 2 },
    { 8, 8, 3 },
};

static void check_leaf1(const ent *e, unsigned n, const struct shape *sh, unsigned cpu)
{
    const ent *l = get(e, n, 1, 0);
    assert_non_null(l);
    assert_int_equal(l->ebx >> 24, cpu);
    assert_int_equal((l->ebx >> 16) & 0xff, sh->pow2);
    assert_int_equal(l->ebx & 0xffff, 0x0800);
    assert_int_equal(!!(l->edx & (1u << 28)), sh->n > 1);
    assert_false(l->ecx & (1u << 31)); /* left to cpuid_apply_fixups */
}

static void check_topo_leaf(const ent *e, unsigned n, uint32_t fn, const struct shape *sh,
                            unsigned cpu, unsigned nsub)
{
    for (unsigned i = 0; i < nsub; i++) {
        const ent *s = get(e, n, fn, i);
        assert_non_null(s);
        assert_true(s->flags & IDX);
        assert_int_equal(s->edx, cpu);
        assert_int_equal(s->ecx & 0xff, i);
        if (i == 0) {
            assert_int_equal(s->eax, 0);
            assert_int_equal(s->ebx, 1);
            assert_int_equal(s->ecx >> 8, 1); /* SMT */
        } else if (i == 1) {
            assert_int_equal(s->eax, sh->bits);
            assert_int_equal(s->ebx, sh->n);
            assert_int_equal(s->ecx >> 8, 2); /* core */
        } else {
            assert_int_equal(s->eax, 0);
            assert_int_equal(s->ebx, 0);
            assert_int_equal(s->ecx >> 8, 0); /* invalid */
        }
    }
    assert_null(get(e, n, fn, nsub));
}

static void test_intel(void **state)
{
    ent e[MAXE];
    for (unsigned k = 0; k < 4; k++) {
        const struct shape *sh = &shapes[k];
        for (unsigned cpu = 0; cpu < sh->n; cpu++) {
            unsigned n = load(e, intel_host, INTEL_N);
            assert_int_equal(cpuid_apply_topology(e, &n, MAXE, cpu, sh->n), 0);
            /* Only 0BH sub-leaf 2 was missing. */
            assert_int_equal(n, INTEL_N + 1);
            check_leaf1(e, n, sh, cpu);

            /* Leaf 4: cores field and sharing, the rest untouched. */
            static const uint32_t low[4] = { 0x121, 0x122, 0x143, 0x163 };
            for (unsigned i = 0; i < 4; i++) {
                const ent *c = get(e, n, 4, i), *h = get(intel_host, INTEL_N, 4, i);
                assert_int_equal(c->eax & 0x3fff, low[i]);
                assert_int_equal(c->eax >> 26, sh->pow2 - 1);
                unsigned sharing = (c->eax >> 14) & 0xfff;
                assert_int_equal(sharing, i < 3 ? 0 : sh->n - 1);
                assert_int_equal(c->ebx, h->ebx);
                assert_int_equal(c->ecx, h->ecx);
                assert_int_equal(c->edx, h->edx);
            }
            assert_same(get(e, n, 4, 4), get(intel_host, INTEL_N, 4, 4));

            check_topo_leaf(e, n, 0xb, sh, cpu, 3);
            /* 1FH had four sub-leaves (SMT, core, die, end): the die
             * level is gone, sub-leaves 2 and 3 both read invalid. */
            check_topo_leaf(e, n, 0x1f, sh, cpu, 4);

            /* AMD-only leaves are left alone on Intel. */
            assert_same(get(e, n, 0x80000001, 0), get(intel_host, INTEL_N, 0x80000001, 0));
            assert_same(get(e, n, 0x80000008, 0), get(intel_host, INTEL_N, 0x80000008, 0));
            /* And everything unrelated to topology, too. */
            static const uint32_t keep[] = { 0, 2, 6, 7, 0xd, 0x40000000, 0x40000001, 0x80000000 };
            for (unsigned i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
                assert_same(get(e, n, keep[i], 0), get(intel_host, INTEL_N, keep[i], 0));
            assert_same(get(e, n, 0xd, 1), get(intel_host, INTEL_N, 0xd, 1));
            /* Nothing written past the new count. */
            for (unsigned i = n; i < MAXE; i++)
                assert_int_equal(e[i].function, 0xccccccccu);
        }
    }
}

static void check_amd(const ent *e, unsigned n, const ent *host, unsigned host_n,
                      const struct shape *sh, unsigned cpu)
{
    check_leaf1(e, n, sh, cpu);
    /* 0BH added from nothing (max basic leaf 10H covers it). */
    check_topo_leaf(e, n, 0xb, sh, cpu, 3);
    assert_null(get(e, n, 0x1f, 0)); /* beyond max basic */

    const ent *x1 = get(e, n, 0x80000001, 0);
    assert_int_equal(!!(x1->ecx & 2), sh->n > 1); /* CmpLegacy */
    assert_int_equal(x1->ecx & ~2u, 0x75c237ffu & ~2u);
    assert_int_equal(x1->edx, 0x2fd3fbff);

    const ent *x8 = get(e, n, 0x80000008, 0);
    assert_int_equal(x8->ecx & 0xff, sh->n - 1);       /* NC */
    assert_int_equal((x8->ecx >> 12) & 0xf, sh->bits); /* ApicIdSize */
    assert_int_equal(x8->ecx & ~0xf0ffu, 0x00010000);  /* PerfTscSize kept */
    assert_int_equal(x8->eax, 0x3030);
    assert_int_equal(x8->ebx, 0x111ef657);

    static const uint32_t low[4] = { 0x121, 0x122, 0x143, 0x163 };
    for (unsigned i = 0; i < 4; i++) {
        const ent *c = get(e, n, 0x8000001d, i), *h = get(host, host_n, 0x8000001d, i);
        assert_int_equal(c->eax & 0x3fff, low[i]);
        assert_int_equal((c->eax >> 14) & 0xfff, i < 3 ? 0 : sh->n - 1);
        assert_int_equal(c->eax >> 26, 0);
        assert_int_equal(c->ebx, h->ebx);
        assert_int_equal(c->ecx, h->ecx);
        assert_int_equal(c->edx, h->edx);
    }
    assert_same(get(e, n, 0x8000001d, 4), get(host, host_n, 0x8000001d, 4));

    const ent *x1e = get(e, n, 0x8000001e, 0);
    assert_int_equal(x1e->eax, cpu);             /* extended APIC ID */
    assert_int_equal(x1e->ebx & 0xff, cpu);      /* core ID */
    assert_int_equal((x1e->ebx >> 8) & 0xff, 0); /* 1 thread per core */
    assert_int_equal(x1e->ecx, 0);               /* node 0 of 1 */

    /* Leaf 4 is reserved on AMD: untouched. */
    assert_same(get(e, n, 4, 0), get(host, host_n, 4, 0));
    static const uint32_t keep[] = { 7, 0xd, 0x40000000, 0x40000001, 0x80000000, 0x80000021 };
    for (unsigned i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        assert_same(get(e, n, keep[i], 0), get(host, host_n, keep[i], 0));
}

static void test_amd(void **state)
{
    ent e[MAXE];
    for (unsigned k = 0; k < 4; k++) {
        const struct shape *sh = &shapes[k];
        for (unsigned cpu = 0; cpu < sh->n; cpu++) {
            unsigned n = load(e, amd_host, AMD_N);
            assert_int_equal(cpuid_apply_topology(e, &n, MAXE, cpu, sh->n), 0);
            assert_int_equal(n, AMD_N + 3);
            check_amd(e, n, amd_host, AMD_N, sh, cpu);
        }
    }
}

static void test_hygon_is_amd(void **state)
{
    ent host[AMD_N], e[MAXE];
    memcpy(host, amd_host, sizeof(host));
    host[0].ebx = HYGON_B;
    host[0].ecx = HYGON_C;
    host[0].edx = HYGON_D;
    unsigned n = load(e, host, AMD_N);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 2, 3), 0);
    check_amd(e, n, host, AMD_N, &shapes[2], 2);
}

static void test_unknown_vendor(void **state)
{
    ent host[INTEL_N], e[MAXE];
    memcpy(host, intel_host, sizeof(host));
    memcpy(&host[0].ebx, "VIA ", 4);
    memcpy(&host[0].edx, "VIA ", 4);
    memcpy(&host[0].ecx, "VIA ", 4);
    unsigned n = load(e, host, INTEL_N);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 1, 2), 0);
    /* Vendor-neutral leaves are rewritten; leaf 4's meaning is unknown. */
    check_leaf1(e, n, &shapes[1], 1);
    check_topo_leaf(e, n, 0xb, &shapes[1], 1, 3);
    for (unsigned i = 0; i < 5; i++)
        assert_same(get(e, n, 4, i), get(host, INTEL_N, 4, i));
}

static void test_low_max_basic_leaf(void **state)
{
    /* An older host: max basic leaf 0DH, 0BH listed with two sub-leaves
     * only, no 1FH. 0BH gets its end marker; 1FH is not invented. */
    ent host[INTEL_N], e[MAXE];
    unsigned hn = 0;
    for (unsigned i = 0; i < INTEL_N; i++)
        if (intel_host[i].function != 0x1f)
            host[hn++] = intel_host[i];
    host[0].eax = 0xd;
    unsigned n = load(e, host, hn);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 0, 8), 0);
    assert_int_equal(n, hn + 1);
    check_topo_leaf(e, n, 0xb, &shapes[3], 0, 3);
    assert_null(get(e, n, 0x1f, 0));

    /* Max basic leaf below 0BH: nothing is added at all. */
    ent a[AMD_N];
    memcpy(a, amd_host, sizeof(a));
    a[0].eax = 0xa;
    n = load(e, a, AMD_N);
    assert_int_equal(cpuid_apply_topology(e, &n, AMD_N, 0, 4), 0);
    assert_int_equal(n, AMD_N);
    assert_null(get(e, n, 0xb, 0));
}

static void test_max_overflow(void **state)
{
    ent e[MAXE], before[MAXE];
    /* AMD needs three new entries. */
    for (unsigned room = 0; room < 3; room++) {
        unsigned n = load(e, amd_host, AMD_N);
        memcpy(before, e, sizeof(e));
        assert_int_equal(cpuid_apply_topology(e, &n, AMD_N + room, 0, 2), -1);
        assert_int_equal(n, AMD_N);
        assert_memory_equal(e, before, sizeof(e)); /* nothing changed */
    }
    unsigned n = load(e, amd_host, AMD_N);
    assert_int_equal(cpuid_apply_topology(e, &n, AMD_N + 3, 1, 2), 0);
    assert_int_equal(n, AMD_N + 3);
    check_amd(e, n, amd_host, AMD_N, &shapes[1], 1);
    /* Intel needs one. */
    n = load(e, intel_host, INTEL_N);
    assert_int_equal(cpuid_apply_topology(e, &n, INTEL_N, 0, 2), -1);
    assert_int_equal(cpuid_apply_topology(e, &n, INTEL_N + 1, 0, 2), 0);
    /* A count already beyond max is refused. */
    n = load(e, intel_host, INTEL_N);
    assert_int_equal(cpuid_apply_topology(e, &n, INTEL_N - 1, 0, 2), -1);
}

static void test_bad_arguments(void **state)
{
    ent e[MAXE];
    unsigned n = load(e, amd_host, AMD_N);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 0, 0), -1);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 0, 256), -1);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 2, 2), -1);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 300, 255), -1);
    assert_int_equal(cpuid_apply_topology(NULL, &n, MAXE, 0, 1), -1);
    assert_int_equal(cpuid_apply_topology(e, NULL, MAXE, 0, 1), -1);
    assert_int_equal(n, AMD_N);
    assert_memory_equal(e, amd_host, sizeof(amd_host));
    /* An empty list is valid: nothing to rewrite, nothing to add. */
    n = 0;
    assert_int_equal(cpuid_apply_topology(e, &n, 0, 0, 1), 0);
    assert_int_equal(n, 0);
}

static void test_255_cpus(void **state)
{
    ent e[MAXE];
    unsigned n = load(e, intel_host, INTEL_N);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 254, 255), 0);
    const ent *l1 = get(e, n, 1, 0);
    assert_int_equal(l1->ebx >> 24, 254);
    assert_int_equal((l1->ebx >> 16) & 0xff, 255);    /* 256 does not fit */
    assert_int_equal(get(e, n, 4, 0)->eax >> 26, 63); /* 6-bit field */
    assert_int_equal((get(e, n, 4, 3)->eax >> 14) & 0xfff, 254);
    const ent *core = get(e, n, 0xb, 1);
    assert_int_equal(core->eax, 8);
    assert_int_equal(core->ebx, 255);
    assert_int_equal(core->edx, 254);

    n = load(e, amd_host, AMD_N);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 200, 255), 0);
    const ent *x8 = get(e, n, 0x80000008, 0);
    assert_int_equal(x8->ecx & 0xff, 254);
    assert_int_equal((x8->ecx >> 12) & 0xf, 8);
    assert_int_equal(get(e, n, 0x8000001e, 0)->eax, 200);
}

static void test_idempotent(void **state)
{
    ent e[MAXE], once[MAXE];
    unsigned n = load(e, amd_host, AMD_N);
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 3, 8), 0);
    unsigned n1 = n;
    memcpy(once, e, sizeof(e));
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 3, 8), 0);
    assert_int_equal(n, n1);
    assert_memory_equal(e, once, sizeof(e));
    /* Re-applying for another vCPU from a rewritten list also works. */
    assert_int_equal(cpuid_apply_topology(e, &n, MAXE, 5, 8), 0);
    check_amd(e, n, amd_host, AMD_N, &shapes[3], 5);
}

static void test_fixups(void **state)
{
    ent e[MAXE];
    unsigned n = load(e, amd_host, AMD_N);
    ent *leaf1 = (ent *)get(e, n, 1, 0);
    uint32_t eax1 = leaf1->eax, ebx1 = leaf1->ebx, edx1 = leaf1->edx, ecx1 = leaf1->ecx;
    cpuid_apply_fixups(e, n, false);
    assert_int_equal(leaf1->ecx, ecx1 | (1u << 31)); /* only the hypervisor bit */
    assert_int_equal(leaf1->eax, eax1);
    assert_int_equal(leaf1->ebx, ebx1);
    assert_int_equal(leaf1->edx, edx1);
    leaf1->ecx = ecx1 & ~(1u << 24);
    cpuid_apply_fixups(e, n, true); /* the host has a TSC-deadline LAPIC */
    assert_int_equal(leaf1->ecx, (ecx1 & ~(1u << 24)) | (1u << 31) | (1u << 24));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intel),
        cmocka_unit_test(test_amd),
        cmocka_unit_test(test_hygon_is_amd),
        cmocka_unit_test(test_unknown_vendor),
        cmocka_unit_test(test_low_max_basic_leaf),
        cmocka_unit_test(test_max_overflow),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_255_cpus),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_fixups),
    };
    return cmocka_run_group_tests_name("cpuid", tests, NULL, NULL);
}
