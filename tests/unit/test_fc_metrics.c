/* The Firecracker-shaped metrics lines (cli/fc_metrics.c) against a fake
 * VM whose counters the tests move: every line parses (cJSON) into what
 * Kata Containers' FirecrackerMetrics expects (each of its top-level keys
 * an object, each of its fields an unsigned integer), the library's
 * counters land under Firecracker's names, counters are deltas since the
 * previous line while gauges stay, and devices are named by their IDs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "../../cli/fc_metrics.h"
#include "metrics_json.h"

/* ---- the fake VM: named counters the tests set -------------------------- */

struct vmlet_vm {
    int unused;
};
static vmlet_vm the_vm;

#define MAX_FAKE 64
static struct {
    char group[16], name[32];
    uint64_t value;
} fake[MAX_FAKE];
static unsigned nfake;

static void set_counter(const char *group, const char *name, uint64_t value)
{
    unsigned i = 0;
    while (i < nfake && (strcmp(fake[i].group, group) || strcmp(fake[i].name, name)))
        i++;
    assert_true(i < MAX_FAKE);
    if (i == nfake) {
        snprintf(fake[i].group, sizeof fake[i].group, "%s", group);
        snprintf(fake[i].name, sizeof fake[i].name, "%s", name);
        nfake++;
    }
    fake[i].value = value;
}

int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque)
{
    assert_ptr_equal(vm, &the_vm);
    for (unsigned i = 0; i < nfake; i++)
        fn(opaque, fake[i].group, fake[i].name, fake[i].value);
    return 0;
}

static int setup(void **state)
{
    nfake = 0;
    *state = fc_metrics_new();
    assert_non_null(*state);
    return 0;
}

static int teardown(void **state)
{
    fc_metrics_free(*state);
    return 0;
}

/* ---- reading a line ------------------------------------------------------ */

static cJSON *line(struct fc_metrics *m, vmlet_vm *vm, const struct fc_metrics_names *names)
{
    char *s = fc_metrics_line(m, vm, names, 1733400000123);
    assert_non_null(s);
    assert_null(strchr(s, '\n'));
    cJSON *doc = cJSON_Parse(s);
    if (!doc)
        fail_msg("not JSON: %.300s", s);
    free(s);
    assert_true(cJSON_IsObject(doc));
    return doc;
}

/* Kata Containers' FirecrackerMetrics (src/runtime/virtcontainers/
 * fc_metrics.go): its top-level keys and the uint64 fields of each. Go's
 * json.Unmarshal takes a missing key or field as 0 and ignores unknown
 * ones, but fails the whole line on a wrong type. */
static const struct {
    const char *key;
    bool required; /* Firecracker on x86 writes it */
    const char *fields;
} kata[] = {
    { "api_server", true,
      "process_startup_time_us process_startup_time_cpu_us sync_response_fails "
      "sync_vmm_send_timeout_count" },
    { "block", true,
      "activate_fails cfg_fails no_avail_buffer event_fails execute_fails invalid_reqs_count "
      "flush_count queue_event_count rate_limiter_event_count update_count update_fails "
      "read_bytes write_bytes read_count write_count rate_limiter_throttled_events" },
    { "get_api_requests", true,
      "instance_info_count instance_info_fails machine_cfg_count machine_cfg_fails" },
    { "i8042", true,
      "error_count missed_read_count missed_write_count read_count reset_count write_count" },
    { "latencies_us", true,
      "full_create_snapshot diff_create_snapshot load_snapshot pause_vm resume_vm "
      "vmm_full_create_snapshot vmm_diff_create_snapshot vmm_load_snapshot vmm_pause_vm "
      "vmm_resume_vm" },
    { "logger", true, "missed_metrics_count metrics_fails missed_log_count log_fails" },
    { "mmds", true,
      "rx_accepted rx_accepted_err rx_accepted_unusual rx_bad_eth rx_count tx_bytes tx_count "
      "tx_errors tx_frames connections_created connections_destroyed" },
    { "net", true,
      "activate_fails cfg_fails mac_address_updates no_rx_avail_buffer no_tx_avail_buffer "
      "event_fails rx_queue_event_count rx_event_rate_limiter_count rx_partial_writes "
      "rx_rate_limiter_throttled rx_tap_event_count rx_bytes_count rx_packets_count rx_fails "
      "rx_count tap_read_fails tap_write_fails tx_bytes_count tx_malformed_frames tx_fails "
      "tx_count tx_packets_count tx_partial_reads tx_queue_event_count "
      "tx_rate_limiter_event_count tx_rate_limiter_throttled tx_spoofed_mac_count" },
    { "patch_api_requests", true,
      "drive_count drive_fails network_count network_fails machine_cfg_count "
      "machine_cfg_fails" },
    { "put_api_requests", true,
      "actions_count actions_fails boot_source_count boot_source_fails drive_count drive_fails "
      "logger_count logger_fails machine_cfg_count machine_cfg_fails metrics_count "
      "metrics_fails network_count network_fails" },
    { "rtc", false, "error_count missed_read_count missed_write_count" }, /* aarch64 only */
    { "seccomp", true, "num_faults" },
    { "vcpu", true, "exit_io_in exit_io_out exit_mmio_read exit_mmio_write failures filter_cpuid" },
    { "vmm", true, "device_events panic_count" },
    { "uart", true,
      "error_count flush_count missed_read_count missed_write_count read_count write_count" },
    { "signals", true, "sigbus sigsegv" },
    { "vsock", true,
      "activate_fails cfg_fails rx_queue_event_fails tx_queue_event_fails ev_queue_event_fails "
      "muxer_event_fails conn_event_fails rx_queue_event_count tx_queue_event_count "
      "rx_bytes_count tx_bytes_count rx_packets_count tx_packets_count conns_added "
      "conns_killed conns_removed killq_resync tx_flush_fails tx_write_fails rx_read_fails" },
};

/* Firecracker 1.16's other top-level keys (Kata ignores them; dashboards
 * read them). */
static const char *const firecracker_more[] = { "balloon", "deprecated_api", "entropy",
                                                "pmem",    "interrupts",     "memory_hotplug" };

/* The line as Kata reads it, and Firecracker's shape: every value of
 * every object an unsigned integer or a {"min_us","max_us","sum_us"}. */
static void check_shape(const cJSON *doc)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(doc, "utc_timestamp_ms");
    assert_true(is_uint(ts));
    assert_true(ts->valuedouble == 1733400000123.0);
    for (size_t i = 0; i < sizeof kata / sizeof *kata; i++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, kata[i].key);
        if (!o && !kata[i].required)
            continue;
        if (!cJSON_IsObject(o))
            fail_msg("Kata's \"%s\" is %s", kata[i].key, o ? "not an object" : "missing");
        char fields[1024];
        snprintf(fields, sizeof fields, "%s", kata[i].fields);
        char *save = NULL;
        for (char *f = strtok_r(fields, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f);
            if (v && !is_uint(v))
                fail_msg("Kata's \"%s\".\"%s\" is not an unsigned integer", kata[i].key, f);
        }
    }
    for (size_t i = 0; i < sizeof firecracker_more / sizeof *firecracker_more; i++)
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, firecracker_more[i])))
            fail_msg("\"%s\" is not an object", firecracker_more[i]);
    for (const cJSON *o = doc->child; o; o = o->next) {
        if (!strcmp(o->string, "utc_timestamp_ms"))
            continue;
        if (!cJSON_IsObject(o) || !o->child)
            fail_msg("\"%s\" is not an object of counters", o->string);
        for (const cJSON *v = o->child; v; v = v->next) {
            if (is_uint(v))
                continue;
            if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 3 ||
                !is_uint(cJSON_GetObjectItemCaseSensitive(v, "min_us")) ||
                !is_uint(cJSON_GetObjectItemCaseSensitive(v, "max_us")) ||
                !is_uint(cJSON_GetObjectItemCaseSensitive(v, "sum_us")))
                fail_msg("\"%s\".\"%s\" is neither a counter nor a latency aggregate", o->string,
                         v->string);
        }
    }
}

/* ---- tests --------------------------------------------------------------- */

/* Before InstanceStart: no VM, no devices; the shape is whole. */
static void shape_without_a_vm(void **state)
{
    cJSON *doc = line(*state, NULL, NULL);
    check_shape(doc);
    assert_int_equal(metric_get(doc, "block", "read_bytes"), 0);
    assert_int_equal(metric_get(doc, "net", "rx_bytes_count"), 0);
    /* Only the aggregates: no device has a name yet. */
    for (const cJSON *o = doc->child; o; o = o->next)
        assert_true(strncmp(o->string, "block_", 6) && strncmp(o->string, "net_", 4));
    cJSON_Delete(doc);
}

/* The library's counters under Firecracker's names, per drive by its ID
 * and summed in "block"; deltas between lines; the names in order. */
static void disks_by_drive_id(void **state)
{
    struct fc_metrics *m = *state;
    struct fc_metrics_names names = { .drives = { "rootfs", "data" }, .ndrives = 2 };
    set_counter("vcpu0", "vmm_exits_io", 99);
    set_counter("disk0", "read_requests", 3);
    set_counter("disk0", "read_bytes", 12288);
    set_counter("disk0", "write_requests", 1);
    set_counter("disk0", "write_bytes", 512);
    set_counter("disk0", "flush_requests", 2);
    set_counter("disk0", "errors", 1);
    set_counter("disk0", "unsupported", 1);
    set_counter("disk0", "malformed", 2);
    set_counter("disk1", "read_requests", 1);
    set_counter("disk1", "read_bytes", 4096);

    char *s = fc_metrics_line(m, &the_vm, &names, 1733400000123);
    assert_non_null(s);
    /* Firecracker's map order: by name, then the aggregate. */
    char *data = strstr(s, "\"block_data\":{"), *root = strstr(s, "\"block_rootfs\":{");
    char *sum = strstr(s, "\"block\":{");
    assert_non_null(data);
    assert_non_null(root);
    assert_non_null(sum);
    assert_true(data < root && root < sum);
    free(s);
    /* That line took the totals: the next is all zeros. */
    cJSON *doc = line(m, &the_vm, &names);
    check_shape(doc);
    assert_int_equal(metric_get(doc, "block_rootfs", "read_bytes"), 0);
    assert_int_equal(metric_get(doc, "block", "read_count"), 0);
    cJSON_Delete(doc);

    /* Fake I/O: the guest reads 8 KiB more from rootfs, 1 KiB from data. */
    set_counter("disk0", "read_requests", 5);
    set_counter("disk0", "read_bytes", 12288 + 8192);
    set_counter("disk1", "read_requests", 2);
    set_counter("disk1", "read_bytes", 4096 + 1024);
    set_counter("disk1", "write_requests", 4);
    set_counter("disk1", "write_bytes", 16384);
    doc = line(m, &the_vm, &names);
    check_shape(doc);
    assert_int_equal(metric_get(doc, "block_rootfs", "read_bytes"), 8192);
    assert_int_equal(metric_get(doc, "block_rootfs", "read_count"), 2);
    assert_int_equal(metric_get(doc, "block_rootfs", "write_count"), 0);
    assert_int_equal(metric_get(doc, "block_data", "read_bytes"), 1024);
    assert_int_equal(metric_get(doc, "block_data", "read_count"), 1);
    assert_int_equal(metric_get(doc, "block_data", "write_bytes"), 16384);
    assert_int_equal(metric_get(doc, "block_data", "write_count"), 4);
    assert_int_equal(metric_get(doc, "block", "read_bytes"), 8192 + 1024);
    assert_int_equal(metric_get(doc, "block", "read_count"), 3);
    assert_int_equal(metric_get(doc, "block", "write_bytes"), 16384);
    cJSON_Delete(doc);

    /* Nothing moved: every counter is back to 0. */
    doc = line(m, &the_vm, &names);
    assert_int_equal(metric_get(doc, "block_rootfs", "read_bytes"), 0);
    assert_int_equal(metric_get(doc, "block_data", "write_bytes"), 0);
    assert_int_equal(metric_get(doc, "block", "read_bytes"), 0);
    cJSON_Delete(doc);
}

/* The first line has everything since the start, mapped field by field. */
static void mapping_of_each_counter(void **state)
{
    struct fc_metrics *m = *state;
    struct fc_metrics_names names = {
        .drives = { "rootfs" }, .ndrives = 1, .ifaces = { "eth0" }, .nifaces = 1
    };
    set_counter("disk0", "read_requests", 3);
    set_counter("disk0", "read_bytes", 12288);
    set_counter("disk0", "write_requests", 1);
    set_counter("disk0", "write_bytes", 512);
    set_counter("disk0", "flush_requests", 2);
    set_counter("disk0", "other_requests", 7);
    set_counter("disk0", "errors", 1);
    set_counter("disk0", "unsupported", 1);
    set_counter("disk0", "malformed", 2);
    set_counter("net0", "rx_packets", 10);
    set_counter("net0", "rx_bytes", 1500);
    set_counter("net0", "rx_errors", 1);
    set_counter("net0", "tx_packets", 4);
    set_counter("net0", "tx_bytes", 600);
    set_counter("net0", "tx_malformed", 2);
    set_counter("net0", "tx_errors", 3);
    set_counter("serial", "tx_bytes", 4000);
    set_counter("serial", "tx_dropped", 5);
    set_counter("vsock", "bytes_to_guest", 70);
    set_counter("vsock", "bytes_to_host", 80);
    set_counter("vsock", "conns_opened", 2);
    set_counter("vsock", "conns_reset", 1);
    set_counter("balloon", "stats_updates", 6);
    set_counter("balloon", "reported_pages", 3);
    set_counter("balloon", "target_pages", 1000); /* a gauge Firecracker has no field for */
    set_counter("rng", "bytes", 64);
    cJSON *doc = line(m, &the_vm, &names);
    check_shape(doc);
    assert_int_equal(metric_get(doc, "block_rootfs", "read_count"), 3);
    assert_int_equal(metric_get(doc, "block_rootfs", "read_bytes"), 12288);
    assert_int_equal(metric_get(doc, "block_rootfs", "write_count"), 1);
    assert_int_equal(metric_get(doc, "block_rootfs", "write_bytes"), 512);
    assert_int_equal(metric_get(doc, "block_rootfs", "flush_count"), 2);
    assert_int_equal(metric_get(doc, "block_rootfs", "execute_fails"), 1);
    assert_int_equal(metric_get(doc, "block_rootfs", "invalid_reqs_count"), 3);
    assert_int_equal(metric_get(doc, "block_rootfs", "queue_event_count"), 0);
    assert_int_equal(metric_get(doc, "net_eth0", "rx_packets_count"), 10);
    assert_int_equal(metric_get(doc, "net_eth0", "rx_count"), 10);
    assert_int_equal(metric_get(doc, "net_eth0", "rx_bytes_count"), 1500);
    assert_int_equal(metric_get(doc, "net_eth0", "rx_fails"), 1);
    assert_int_equal(metric_get(doc, "net_eth0", "tx_packets_count"), 4);
    assert_int_equal(metric_get(doc, "net_eth0", "tx_count"), 4);
    assert_int_equal(metric_get(doc, "net_eth0", "tx_bytes_count"), 600);
    assert_int_equal(metric_get(doc, "net_eth0", "tx_malformed_frames"), 2);
    assert_int_equal(metric_get(doc, "net_eth0", "tx_fails"), 3);
    assert_int_equal(metric_get(doc, "net", "rx_bytes_count"), 1500);
    assert_int_equal(metric_get(doc, "uart", "write_count"), 4000);
    assert_int_equal(metric_get(doc, "uart", "missed_write_count"), 5);
    assert_int_equal(metric_get(doc, "vsock", "rx_bytes_count"), 70);
    assert_int_equal(metric_get(doc, "vsock", "tx_bytes_count"), 80);
    assert_int_equal(metric_get(doc, "vsock", "conns_added"), 2);
    assert_int_equal(metric_get(doc, "vsock", "conns_killed"), 1);
    assert_int_equal(metric_get(doc, "balloon", "stats_updates_count"), 6);
    assert_int_equal(metric_get(doc, "balloon", "free_page_report_freed"), 3 * 4096);
    assert_int_equal(metric_get(doc, "entropy", "entropy_bytes"), 64);
    /* Counted by vmlet but not by direction: Firecracker's split stays 0. */
    assert_int_equal(metric_get(doc, "vcpu", "exit_io_in"), 0);
    /* The aggregate objects Firecracker nests in block and net. */
    const cJSON *agg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "block"), "read_agg");
    assert_true(cJSON_IsObject(agg));
    cJSON_Delete(doc);
}

/* The Firecracker layer's own counters are deltas too; gauges stay. */
static void requests_and_gauges(void **state)
{
    struct fc_metrics *m = *state;
    fc_metrics_request(m, FC_REQ_PUT_DRIVE, false);
    fc_metrics_request(m, FC_REQ_PUT_DRIVE, true);
    fc_metrics_request(m, FC_REQ_PUT_DRIVE, false);
    fc_metrics_request(m, FC_REQ_GET_INSTANCE_INFO, false);
    fc_metrics_request(m, FC_REQ_PATCH_DRIVE, true);
    fc_metrics_request(m, FC_REQ_PUT_ACTIONS, false);
    fc_metrics_request(m, FC_REQ_COUNT, true); /* not a kind: ignored */
    fc_metrics_drive_update(m, 1, false);
    fc_metrics_drive_update(m, 1, true);
    fc_metrics_drive_update(m, VMLET_MAX_DISKS, true); /* out of range: ignored */
    fc_metrics_missed_line(m);
    fc_metrics_missed_log(m);
    fc_metrics_missed_log(m);
    fc_metrics_set_startup(m, 1234, 567);
    fc_metrics_set_latency(m, FC_LAT_PAUSE_VM, 77);
    fc_metrics_set_latency(m, FC_LAT_LOAD_SNAPSHOT, 88);
    struct fc_metrics_names names = { .drives = { "rootfs", "drive_0" }, .ndrives = 2 };

    cJSON *doc = line(m, &the_vm, &names);
    check_shape(doc);
    assert_int_equal(metric_get(doc, "put_api_requests", "drive_count"), 3);
    assert_int_equal(metric_get(doc, "put_api_requests", "drive_fails"), 1);
    assert_int_equal(metric_get(doc, "put_api_requests", "actions_count"), 1);
    assert_int_equal(metric_get(doc, "put_api_requests", "actions_fails"), 0);
    assert_int_equal(metric_get(doc, "get_api_requests", "instance_info_count"), 1);
    assert_int_equal(metric_get(doc, "patch_api_requests", "drive_count"), 1);
    assert_int_equal(metric_get(doc, "patch_api_requests", "drive_fails"), 1);
    assert_int_equal(metric_get(doc, "block_drive_0", "update_count"), 2);
    assert_int_equal(metric_get(doc, "block_drive_0", "update_fails"), 1);
    assert_int_equal(metric_get(doc, "block_rootfs", "update_count"), 0);
    assert_int_equal(metric_get(doc, "block", "update_count"), 2);
    assert_int_equal(metric_get(doc, "logger", "missed_metrics_count"), 1);
    assert_int_equal(metric_get(doc, "logger", "missed_log_count"), 2);
    assert_int_equal(metric_get(doc, "api_server", "process_startup_time_us"), 1234);
    assert_int_equal(metric_get(doc, "api_server", "process_startup_time_cpu_us"), 567);
    assert_int_equal(metric_get(doc, "latencies_us", "pause_vm"), 77);
    assert_int_equal(metric_get(doc, "latencies_us", "load_snapshot"), 88);
    assert_int_equal(metric_get(doc, "latencies_us", "resume_vm"), 0);
    cJSON_Delete(doc);

    fc_metrics_request(m, FC_REQ_PUT_DRIVE, false);
    doc = line(m, &the_vm, &names);
    assert_int_equal(metric_get(doc, "put_api_requests", "drive_count"), 1);
    assert_int_equal(metric_get(doc, "put_api_requests", "drive_fails"), 0);
    assert_int_equal(metric_get(doc, "get_api_requests", "instance_info_count"), 0);
    assert_int_equal(metric_get(doc, "block_drive_0", "update_count"), 0);
    assert_int_equal(metric_get(doc, "logger", "missed_log_count"), 0);
    /* Gauges are not reset by a line. */
    assert_int_equal(metric_get(doc, "api_server", "process_startup_time_us"), 1234);
    assert_int_equal(metric_get(doc, "latencies_us", "pause_vm"), 77);
    cJSON_Delete(doc);
}

/* After a snapshot load there are no IDs: vmlet's group names stand in.
 * Groups that are not devices vmlet has, or out of range, are ignored. */
static void devices_without_ids_and_odd_groups(void **state)
{
    struct fc_metrics *m = *state;
    set_counter("disk0", "read_bytes", 100);
    set_counter("disk1", "read_bytes", 200);
    set_counter("net0", "tx_bytes", 300);
    set_counter("disk", "read_bytes", 1000);
    set_counter("diskx", "read_bytes", 1000);
    set_counter("disk99", "read_bytes", 1000);
    set_counter("disk016", "read_bytes", 1000); /* 16: past VMLET_MAX_DISKS */
    set_counter("net8", "tx_bytes", 1000);
    set_counter("disk0", "no_such_counter", 1000);
    cJSON *doc = line(m, &the_vm, NULL);
    check_shape(doc);
    assert_int_equal(metric_get(doc, "block_disk0", "read_bytes"), 100);
    assert_int_equal(metric_get(doc, "block_disk1", "read_bytes"), 200);
    assert_int_equal(metric_get(doc, "block", "read_bytes"), 300);
    assert_int_equal(metric_get(doc, "net_net0", "tx_bytes_count"), 300);
    assert_int_equal(metric_get(doc, "net", "tx_bytes_count"), 300);
    int blocks = 0;
    for (const cJSON *o = doc->child; o; o = o->next)
        blocks += !strncmp(o->string, "block", 5);
    assert_int_equal(blocks, 3);
    cJSON_Delete(doc);

    /* A total that went down (a device begun again) counts from 0. */
    set_counter("disk0", "read_bytes", 40);
    doc = line(m, &the_vm, NULL);
    assert_int_equal(metric_get(doc, "block_disk0", "read_bytes"), 40);
    cJSON_Delete(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(shape_without_a_vm, setup, teardown),
        cmocka_unit_test_setup_teardown(disks_by_drive_id, setup, teardown),
        cmocka_unit_test_setup_teardown(mapping_of_each_counter, setup, teardown),
        cmocka_unit_test_setup_teardown(requests_and_gauges, setup, teardown),
        cmocka_unit_test_setup_teardown(devices_without_ids_and_odd_groups, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
