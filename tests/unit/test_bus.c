/* The I/O address maps: registration rules and dispatch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "bus.h"

struct recorder {
    uint64_t offset;
    uint32_t len;
    bool is_write;
    uint8_t last[8];
    int calls;
};

static void record(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct recorder *r = opaque;
    r->offset = offset;
    r->len = len;
    r->is_write = is_write;
    r->calls++;
    if (is_write)
        memcpy(r->last, data, len);
    else
        data[0] = 0x42;
}

static void rejects_overlaps(void **state)
{
    struct bus b = { 0 };
    struct recorder r = { 0 };
    assert_int_equal(bus_register(&b, 0x3f8, 8, record, &r), 0);
    assert_int_equal(bus_register(&b, 0x3f8, 8, record, &r), -1);
    assert_int_equal(bus_register(&b, 0x3f0, 9, record, &r), -1); /* reaches 0x3f8 */
    assert_int_equal(bus_register(&b, 0x3ff, 1, record, &r), -1);
    assert_int_equal(bus_register(&b, 0x3f0, 8, record, &r), 0); /* ends at 0x3f7 */
    assert_int_equal(bus_register(&b, 0x400, 1, record, &r), 0);
    assert_int_equal(bus_register(&b, 0x500, 0, record, &r), -1);      /* empty */
    assert_int_equal(bus_register(&b, UINT64_MAX, 2, record, &r), -1); /* wraps */
    bus_free(&b);
}

static void dispatches_with_offsets(void **state)
{
    struct bus b = { 0 };
    struct recorder com = { 0 }, pm = { 0 };
    /* Registered out of order: the map keeps itself sorted. */
    assert_int_equal(bus_register(&b, 0x600, 4, record, &pm), 0);
    assert_int_equal(bus_register(&b, 0x3f8, 8, record, &com), 0);
    for (int i = 0; i < 40; i++) /* force growth past the first allocation */
        assert_int_equal(bus_register(&b, 0x1000 + i * 16, 4, record, &pm), 0);

    uint8_t data[4] = { 0xaa, 0, 0, 0 };
    assert_true(bus_dispatch(&b, 0x3fd, data, 1, true));
    assert_int_equal(com.offset, 5);
    assert_int_equal(com.last[0], 0xaa);
    assert_true(bus_dispatch(&b, 0x602, data, 2, false));
    assert_int_equal(pm.offset, 2);
    assert_int_equal(data[0], 0x42);
    assert_int_equal(data[1], 0xff); /* untouched bytes read as all-ones */
    assert_true(bus_dispatch(&b, 0x1000 + 39 * 16 + 3, data, 1, false));
    assert_int_equal(pm.offset, 3);
    bus_free(&b);
}

static void unclaimed_reads_all_ones(void **state)
{
    struct bus b = { 0 };
    struct recorder r = { 0 };
    assert_int_equal(bus_register(&b, 0x3f8, 8, record, &r), 0);
    uint8_t data[4] = { 0 };
    assert_false(bus_dispatch(&b, 0x3f7, data, 4, false));
    assert_memory_equal(data, "\xff\xff\xff\xff", 4);
    assert_false(bus_dispatch(&b, 0x400, data, 1, true));
    assert_false(bus_dispatch(&b, UINT64_MAX, data, 1, false));
    assert_int_equal(r.calls, 0);
    bus_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_overlaps),
        cmocka_unit_test(dispatches_with_offsets),
        cmocka_unit_test(unclaimed_reads_all_ones),
    };
    return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
