/* libFuzzer target for the control socket's request dispatch (cli/api.c,
 * api_dispatch()) with its JSON bodies, against a stand-in VM (the library
 * calls the API makes, as in tests/unit/test_api.c): no KVM needed. Build
 * with clang -fsanitize=fuzzer,address,undefined -I cli (docs/fuzzing.md),
 * or with -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * Input layout:
 *   0     the VM's state (% 7, vmlet_state), and bit 7: a pause times out
 *         (vmlet_vm_pause fails although the VM runs)
 *   1     the method: GET, PUT, PATCH, POST, DELETE, HEAD, or (6, 7) the
 *         rest of the input is a whole HTTP request for http_parse_request
 *   2     the path: /, /metrics, /vm, /actions, /vm/ or /nothing
 *   3     bit 0: keep-alive
 *   4..   the body (none if empty), in a buffer of exactly its size
 *
 * Besides memory errors and leaks it checks that every answer is one of
 * the documented statuses (200, 204, 400, 404, 405, 409); that 204 comes
 * without a body and every other status with a JSON object, a fault
 * ({"fault_message": string} alone) for errors; that the body is valid
 * UTF-8 whenever the request was; that http_format_response() can send
 * it; and that the VM is only told to stop, shut down, pause or resume
 * when the answer says it was. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define FUZZ_TARGET "fuzz_api"
#include "fuzz_util.h"
#include "api.h"
#include "http.h"

/* ---- the stand-in VM ---------------------------------------------------- */

struct vmlet_vm {
    vmlet_state state;
    bool pause_times_out;
    int shutdown_requests, stops, pauses, resumes;
    uint64_t balloon_target;
};

const char *vmlet_version(void)
{
    return "0.0-fuzz";
}

vmlet_state vmlet_vm_state(vmlet_vm *vm)
{
    return vm->state;
}

int vmlet_vm_wait_timeout(vmlet_vm *vm, vmlet_exit *exit, int timeout_ms)
{
    (void)timeout_ms;
    if (vm->state != VMLET_STATE_STOPPED && vm->state != VMLET_STATE_ERROR)
        return 0;
    exit->reason = vm->state == VMLET_STATE_ERROR ? VMLET_STOP_ERROR : VMLET_STOP_POWEROFF;
    exit->message[0] = '\0';
    return 1;
}

int vmlet_vm_pause(vmlet_vm *vm)
{
    if ((vm->state != VMLET_STATE_RUNNING && vm->state != VMLET_STATE_STOPPING) ||
        vm->pause_times_out)
        return -1;
    vm->state = VMLET_STATE_PAUSED;
    vm->pauses++;
    return 0;
}

int vmlet_vm_resume(vmlet_vm *vm)
{
    if (vm->state != VMLET_STATE_PAUSED)
        return -1;
    vm->state = VMLET_STATE_RUNNING;
    vm->resumes++;
    return 0;
}

int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque)
{
    fn(opaque, "vcpu0", "kvm_exits", 345);
    fn(opaque, "vcpu0", "vmm_exits_io", (uint64_t)vm->state);
    fn(opaque, "disk0", "read_bytes", UINT64_MAX);
    return 0;
}

#include "../unit/fake_balloon_api.h"
#include "../unit/fake_snapshot_api.h"

static void fake_request_shutdown(void *ctx)
{
    ((vmlet_vm *)ctx)->shutdown_requests++;
}

static void fake_stop(void *ctx)
{
    ((vmlet_vm *)ctx)->stops++;
}

/* ---- checks --------------------------------------------------------------- */

/* Whether a request body holds only what cJSON will hand back as valid
 * UTF-8: valid UTF-8 itself and no \u escape (which may encode a lone
 * surrogate). */
static bool body_clean(const struct http_request *req)
{
    if (!req->body)
        return true;
    for (size_t i = 0; i + 1 < req->body_len; i++)
        if (req->body[i] == '\\' && req->body[i + 1] == 'u')
            return false;
    return utf8_valid((const unsigned char *)req->body, req->body_len);
}

static void check_answer(const struct http_request *req, int status, char *body,
                         const vmlet_vm *before, const vmlet_vm *after)
{
    check(status == 200 || status == 204 || status == 400 || status == 404 || status == 405 ||
              status == 409,
          "undocumented status");
    if (status == 204) {
        check(body == NULL, "204 with a body");
    } else {
        check(body != NULL, "no body");
        if (body_clean(req))
            check(utf8_valid((const unsigned char *)body, strlen(body)), "body is not UTF-8");
        cJSON *doc = cJSON_Parse(body);
        check(cJSON_IsObject(doc), "body is not a JSON object");
        if (status != 200) {
            cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "fault_message");
            check(cJSON_IsString(m) && m->valuestring[0] && cJSON_GetArraySize(doc) == 1,
                  "error without a fault_message");
        }
        cJSON_Delete(doc);
    }

    /* The VM was only touched as the answer says. */
    int stops = after->stops - before->stops;
    int shutdowns = after->shutdown_requests - before->shutdown_requests;
    int pauses = after->pauses - before->pauses, resumes = after->resumes - before->resumes;
    bool actions = !strcmp(req->path, "/actions"), vm = !strcmp(req->path, "/vm");
    check(stops + shutdowns <= 1 && (stops + shutdowns == 0 || (actions && status == 204)),
          "stop or shutdown without a 204 from /actions");
    check(pauses + resumes <= 1 && (pauses + resumes == 0 || (vm && status == 204)),
          "pause or resume without a 204 from /vm");
    if (vm && status == 204)
        check(after->state == VMLET_STATE_PAUSED || after->state == VMLET_STATE_RUNNING ||
                  after->state == VMLET_STATE_STOPPING,
              "PATCH /vm answered 204 in a state it cannot reach");

    /* What respond() sends. */
    size_t cap = (body ? strlen(body) : 0) + 256;
    char *out = malloc(cap);
    check(out != NULL, "out of memory");
    check(http_format_response(out, cap, status, body, req->keep_alive) > 0,
          "the answer cannot be formatted");
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = { "GET", "PUT", "PATCH", "POST", "DELETE", "HEAD" };
    static const char *const paths[] = { "/", "/metrics", "/vm", "/actions", "/vm/", "/nothing" };
    if (size < 4)
        return 0;
    vmlet_vm vm = { .state = (vmlet_state)(data[0] & 0x7f) % 7, .pause_times_out = data[0] & 0x80 };
    struct api_target t = { .vm = &vm,
                            .cpus = 4,
                            .memory = 1ull << 30,
                            .request_shutdown = fake_request_shutdown,
                            .stop = fake_stop,
                            .ctx = &vm };

    size_t blen = size - 4;
    char *buf = malloc(blen ? blen : 1);
    check(buf != NULL, "out of memory");
    memcpy(buf, data + 4, blen);

    struct http_request req;
    if (data[1] % 8 >= 6) {
        int used = http_parse_request(buf, blen, &req);
        if (used <= 0) {
            free(buf);
            return 0; /* the parser has its own target (fuzz_http) */
        }
    } else {
        memset(&req, 0, sizeof req);
        snprintf(req.method, sizeof req.method, "%s", methods[data[1] % 8]);
        snprintf(req.path, sizeof req.path, "%s", paths[data[2] % 6]);
        req.body = blen ? buf : NULL;
        req.body_len = blen;
        req.keep_alive = data[3] & 1;
    }

    vmlet_vm before = vm;
    char *body = (char *)"not set";
    int status = api_dispatch(&req, &t, &body);
    check_answer(&req, status, body, &before, &vm);
    free(body);
    free(buf);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
