/* vmlet_parse_size: what users type for --memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "vmlet.h"

static void accepts_plain_and_suffixed(void **state)
{
    struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        { "0", 0 },
        { "1048576", 1048576 },
        { "64k", 64 << 10 },
        { "64K", 64 << 10 },
        { "512M", 512ULL << 20 },
        { "512m", 512ULL << 20 },
        { "2G", 2ULL << 30 },
        { "1T", 1ULL << 40 },
        { "512MB", 512ULL << 20 },
        { "512MiB", 512ULL << 20 },
        { "16777216", 16ULL << 20 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1234;
        assert_int_equal(vmlet_parse_size(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].want);
    }
}

static void rejects_malformed(void **state)
{
    const char *bad[] = { "",
                          "M",
                          "-1",
                          "+5",
                          " 5",
                          "5 ",
                          "1.5G",
                          "12Q",
                          "12MX",
                          "0x10",
                          "512MiBB",
                          "18446744073709551616",
                          "99999999999999999999G",
                          "17179869184G" /* 2^34 G overflows 64 bits */ };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 77;
        assert_int_equal(vmlet_parse_size(bad[i], &v), -1);
        assert_int_equal(v, 77); /* untouched on error */
    }
    uint64_t v;
    assert_int_equal(vmlet_parse_size(NULL, &v), -1);
}

static void largest_values(void **state)
{
    uint64_t v;
    assert_int_equal(vmlet_parse_size("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(vmlet_parse_size("16777215T", &v), 0);
    assert_true(v == 16777215ULL << 40);
    assert_int_equal(vmlet_parse_size("16777216T", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_plain_and_suffixed),
        cmocka_unit_test(rejects_malformed),
        cmocka_unit_test(largest_values),
    };
    return cmocka_run_group_tests_name("size", tests, NULL, NULL);
}
