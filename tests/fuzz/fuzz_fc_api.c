/* libFuzzer target for the Firecracker-compatible API (cli/fc_vmm.c):
 * fc_vmm_dispatch() with its JSON bodies, before and after InstanceStart,
 * and fc_vmm_boot_from_json() (--config-file), against a stand-in VM (the
 * library's config code is real). Build as fuzz_api is (docs/fuzzing.md).
 *
 * Input layout:
 *   0     bits 0-1: GET, PUT, PATCH, DELETE; bit 2: InstanceStart first
 *         (a boot source of /dev/null and a drive "rootfs", then the VM
 *         runs; PATCH /drives/rootfs reaches a stand-in that only stats); bit 3: the VM is
 *         paused; bit 4: the rest is a --config-file document instead
 *   1     the path (see paths[] below)
 *   2..   the body (none if empty), in a buffer of exactly its size
 *
 * /logger and /metrics are left out, and so is any config document that
 * names them or has an escape: they create the files they are given, and a
 * fuzzer must not write where its input says.
 *
 * Besides memory errors and leaks it checks that every answer is 200, 204
 * or 400 (Firecracker's statuses); that 204 has no body, 200 a JSON object
 * and 400 {"fault_message": string} alone, all valid UTF-8; and that a VM is created only
 * by a 204 to InstanceStart (or a config that boots). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define FUZZ_TARGET "fuzz_fc_api"
#include "fuzz_util.h"
#include "fc_vmm.h"
#include "http.h"

/* ---- the stand-in library ------------------------------------------------ */

uint64_t host_memory_bytes(void)
{
    return 8ull << 30;
}

struct vmlet_vm {
    vmlet_state state;
    uint64_t balloon_target;
};

static vmlet_vm the_vm;
static int creates;

const char *vmlet_version(void)
{
    return "0.0-fuzz";
}

int vmlet_vm_create(const vmlet_config *c, vmlet_vm **out, vmlet_error *err)
{
    (void)c;
    (void)err;
    creates++;
    the_vm = (vmlet_vm){ .state = VMLET_STATE_CREATED };
    *out = &the_vm;
    return 0;
}

#include "../unit/fake_vm_lifecycle.h"

int vmlet_vm_request_stop(vmlet_vm *vm)
{
    (void)vm;
    return 0;
}

int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque)
{
    (void)vm;
    fn(opaque, "vcpu0", "kvm_exits", 345);
    return 0;
}

#include "../unit/fake_balloon_api.h"
#include "../unit/fake_snapshot_api.h"
#include "../unit/fake_fc_snapshot.h"
#include "../unit/fake_disk_api.h"

/* ---- checks --------------------------------------------------------------- */

static void check_answer(int status, char *body)
{
    check(status == 200 || status == 204 || status == 400, "not one of Firecracker's statuses");
    if (status == 204) {
        check(body == NULL, "204 with a body");
        return;
    }
    check(body != NULL, "no body");
    /* Request strings are checked UTF-8 (src/json_strict.c) and paths
     * ASCII: every answer is valid UTF-8, however a message is cut. */
    check(utf8_valid((const unsigned char *)body, strlen(body)), "body is not UTF-8");
    cJSON *doc = cJSON_Parse(body);
    check(cJSON_IsObject(doc), "body is not a JSON object");
    if (status == 400) {
        cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "fault_message");
        check(cJSON_IsString(m) && m->valuestring[0] && cJSON_GetArraySize(doc) == 1,
              "error without a fault_message");
    }
    cJSON_Delete(doc);
}

static bool names_a_file_to_write(const uint8_t *p, size_t n)
{
    return memchr(p, '\\', n) || memmem(p, n, "logger", 6) || memmem(p, n, "metrics", 7);
}

static int dispatch(struct fc_vmm *fc, const char *method, const char *path, const char *body,
                    size_t len)
{
    struct http_request req = { .body = len ? body : NULL, .body_len = len };
    snprintf(req.method, sizeof req.method, "%s", method);
    snprintf(req.path, sizeof req.path, "%s", path);
    char *answer = (char *)"not set";
    int status = fc_vmm_dispatch(&req, fc, &answer);
    check_answer(status, answer);
    free(answer);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = { "GET", "PUT", "PATCH", "DELETE" };
    static const char *const paths[] = {
        "/",           "/version",         "/machine-config",          "/vm/config",
        "/actions",    "/boot-source",     "/drives/rootfs",           "/drives/a_b",
        "/drives/x-y", "/drives",          "/network-interfaces/eth0", "/vsock",
        "/entropy",    "/balloon",         "/balloon/statistics",      "/vm",
        "/mmds",       "/snapshot/create", "/drives/rootfs/x",
    };
    enum { NPATHS = sizeof paths / sizeof paths[0] };
    if (size < 2)
        return 0;
    const uint8_t *rest = data + 2;
    size_t blen = size - 2;
    char *buf = malloc(blen ? blen : 1);
    check(buf != NULL, "out of memory");
    memcpy(buf, rest, blen);

    struct fc_host host = { .id = "fuzz", .console_in = -1, .console_out = -1 };
    struct fc_vmm *fc = fc_vmm_new(&host);
    check(fc != NULL, "out of memory");
    creates = 0;

    if (data[0] & 0x10) {
        if (!names_a_file_to_write(rest, blen)) {
            vmlet_error err = { 0 };
            int rc = fc_vmm_boot_from_json(fc, buf, blen, &err);
            check(rc == 0 ? creates == 1 && fc_vmm_vm(fc) : creates == 0 && err.message[0],
                  "a config file's result and the VM disagree");
            if (rc == 0)
                check(dispatch(fc, "GET", "/", NULL, 0) == 200, "GET / of a booted config");
        }
    } else {
        if (data[0] & 0x04) {
            static const char boot[] = "{\"kernel_image_path\": \"/dev/null\"}";
            static const char start[] = "{\"action_type\": \"InstanceStart\"}";
            /* A drive, so that PATCH /drives/rootfs reaches the library. */
            static const char drive[] = "{\"drive_id\": \"rootfs\", \"path_on_host\": "
                                        "\"/dev/null\", \"is_root_device\": false}";
            check(dispatch(fc, "PUT", "/boot-source", boot, sizeof boot - 1) == 204, "boot-source");
            check(dispatch(fc, "PUT", "/drives/rootfs", drive, sizeof drive - 1) == 204, "drive");
            check(dispatch(fc, "PUT", "/actions", start, sizeof start - 1) == 204, "InstanceStart");
            if (data[0] & 0x08)
                the_vm.state = VMLET_STATE_PAUSED;
        }
        int before = creates;
        int status = dispatch(fc, methods[data[0] & 3], paths[data[1] % NPATHS], buf, blen);
        check(creates == before || (status == 204 && creates == before + 1),
              "a VM made without a 204");
    }
    fc_vmm_free(fc);
    free(buf);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
