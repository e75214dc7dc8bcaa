/* The control socket (cli/api.c) against a fake VM: routing, bodies and
 * status codes, and the socket itself (mode, stale and live sockets,
 * malformed and oversized requests, too many clients). The fake stands in
 * for the few library calls the API makes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../cli/api.h"
#include "../../cli/http.h"

/* ---- the fake VM --------------------------------------------------------- */

struct vmlet_vm {
    vmlet_state state;
    int shutdown_requests, stops;
    uint64_t balloon_target;
};

const char *vmlet_version(void)
{
    return "9.9.9";
}

vmlet_state vmlet_vm_state(vmlet_vm *vm)
{
    return vm->state;
}

int vmlet_vm_wait_timeout(vmlet_vm *vm, vmlet_exit *exit, int timeout_ms)
{
    (void)timeout_ms;
    if (vm->state != VMLET_STATE_STOPPED)
        return 0;
    exit->reason = VMLET_STOP_POWEROFF;
    exit->message[0] = '\0';
    return 1;
}

int vmlet_vm_pause(vmlet_vm *vm)
{
    if (vm->state != VMLET_STATE_RUNNING && vm->state != VMLET_STATE_STOPPING)
        return -1;
    vm->state = VMLET_STATE_PAUSED;
    return 0;
}

int vmlet_vm_resume(vmlet_vm *vm)
{
    if (vm->state != VMLET_STATE_PAUSED)
        return -1;
    vm->state = VMLET_STATE_RUNNING;
    return 0;
}

int vmlet_vm_metrics(vmlet_vm *vm, vmlet_metric_fn fn, void *opaque)
{
    (void)vm;
    fn(opaque, "vcpu0", "vmm_exits_io", 12);
    fn(opaque, "vcpu0", "kvm_exits", 345);
    fn(opaque, "disk0", "read_bytes", 4096);
    return 0;
}

#include "fake_balloon_api.h"
#include "fake_snapshot_api.h"

static void fake_request_shutdown(void *ctx)
{
    ((vmlet_vm *)ctx)->shutdown_requests++;
}
static void fake_stop(void *ctx)
{
    ((vmlet_vm *)ctx)->stops++;
}

struct fx {
    vmlet_vm vm;
    struct api_target t;
    char dir[64], path[128];
    struct api_server *a;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->vm.state = VMLET_STATE_RUNNING;
    f->t = (struct api_target){ .vm = &f->vm,
                                .cpus = 2,
                                .memory = 512ull << 20,
                                .request_shutdown = fake_request_shutdown,
                                .stop = fake_stop,
                                .ctx = &f->vm };
    strcpy(f->dir, "/tmp/vmlet-api-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/api.sock", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    api_server_close(f->a);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Parses a request text and dispatches it; returns the status. */
static int call(struct fx *f, const char *text, char **body)
{
    struct http_request req;
    int used = http_parse_request(text, strlen(text), &req);
    assert_int_equal(used, (int)strlen(text));
    return api_dispatch(&req, &f->t, body);
}

static int call_nobody(struct fx *f, const char *text)
{
    char *body;
    int status = call(f, text, &body);
    free(body);
    return status;
}

static char *with_body(const char *method, const char *path, const char *json)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             method, path, strlen(json), json);
    return buf;
}

/* ---- routing and bodies ------------------------------------------------- */

static void info(void **state)
{
    struct fx *f = *state;
    char *body;
    assert_int_equal(call(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &body), 200);
    assert_non_null(strstr(body, "\"state\":\"running\""));
    assert_non_null(strstr(body, "\"vmm_version\":\"9.9.9\""));
    assert_non_null(strstr(body, "\"cpus\":2"));
    assert_non_null(strstr(body, "\"memory_bytes\":536870912"));
    assert_non_null(strstr(body, "\"stop_reason\":null"));
    free(body);
    f->vm.state = VMLET_STATE_STOPPED;
    assert_int_equal(call(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &body), 200);
    assert_non_null(strstr(body, "\"state\":\"stopped\""));
    assert_non_null(strstr(body, "\"stop_reason\":\"poweroff\""));
    free(body);
}

static void metrics(void **state)
{
    struct fx *f = *state;
    char *body;
    assert_int_equal(call(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &body), 200);
    assert_string_equal(body, "{\"vcpu0\":{\"vmm_exits_io\":12,\"kvm_exits\":345},"
                              "\"disk0\":{\"read_bytes\":4096}}");
    free(body);
}

/* PUT /snapshot/create: only while paused (409), only "snapshot_path",
 * the library's error in the fault, PUT alone. */
static void snapshot_create(void **state)
{
    struct fx *f = *state;
    char *body;
    const char *req = with_body("PUT", "/snapshot/create", "{\"snapshot_path\": \"/tmp/snap\"}");
    assert_int_equal(call(f, req, &body), 409);
    assert_non_null(strstr(body, "must be paused"));
    free(body);
    f->vm.state = VMLET_STATE_PAUSED;
    assert_int_equal(
        call_nobody(f, with_body("PUT", "/snapshot/create", "{\"snapshot_path\": \"/tmp/snap\"}")),
        204);
    assert_int_equal(
        call(f, with_body("PUT", "/snapshot/create", "{\"snapshot_path\": \"/nonexistent/snap\"}"),
             &body),
        400);
    assert_non_null(strstr(body, "/nonexistent/snap.tmp"));
    free(body);
    assert_int_equal(call(f,
                          with_body("PUT", "/snapshot/create",
                                    "{\"snapshot_path\": \"/tmp/s\", \"mem_file_path\": \"m\"}"),
                          &body),
                     400);
    assert_non_null(strstr(body, "only \\\"snapshot_path\\\""));
    free(body);
    assert_int_equal(call(f, with_body("PUT", "/snapshot/create", "{\"snapshot_path\": 3}"), &body),
                     400);
    free(body);
    assert_int_equal(call(f, "GET /snapshot/create HTTP/1.1\r\nHost: x\r\n\r\n", &body), 405);
    free(body);
}

static void balloon_routes(void **state)
{
    struct fx *f = *state;
    char *body;
    assert_int_equal(call_nobody(f, with_body("PATCH", "/balloon", "{\"amount_mib\": 200}")), 204);
    assert_int_equal(f->vm.balloon_target, 200ull << 20);
    assert_int_equal(call(f, "GET /balloon HTTP/1.1\r\nHost: x\r\n\r\n", &body), 200);
    assert_string_equal(body, "{\"amount_mib\":200,\"actual_mib\":3,\"deflate_on_oom\":false,"
                              "\"free_page_reporting\":true,\"stats_polling_interval_s\":5}");
    free(body);
    assert_int_equal(call(f, "GET /balloon/statistics HTTP/1.1\r\nHost: x\r\n\r\n", &body), 200);
    assert_non_null(strstr(body, "\"target_pages\":51200"));
    assert_non_null(strstr(body, "\"actual_mib\":3"));
    assert_non_null(strstr(body, "\"free_memory\":123456789"));
    assert_null(strstr(body, "swap_in")); /* not sent by the guest */
    free(body);
    /* Bad targets: one clear fault each, the target unchanged. */
    const char *bad[] = { "{\"amount_mib\": -1}",
                          "{\"amount_mib\": 1.5}",
                          "{\"amount_mib\": \"2\"}",
                          "{\"amount_mib\": 1, \"x\": 2}",
                          "[1]",
                          "{\"amount_mib\": 513}" };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(call(f, with_body("PATCH", "/balloon", bad[i]), &body), 400);
        assert_non_null(strstr(body, "fault_message"));
        free(body);
    }
    assert_int_equal(f->vm.balloon_target, 200ull << 20);
    assert_int_equal(call_nobody(f, "PUT /balloon/statistics HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    assert_int_equal(call_nobody(f, "DELETE /balloon HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
}

static void pause_and_resume(void **state)
{
    struct fx *f = *state;
    assert_int_equal(call_nobody(f, with_body("PATCH", "/vm", "{\"state\":\"Paused\"}")), 204);
    assert_int_equal(f->vm.state, VMLET_STATE_PAUSED);
    /* Pausing a paused VM is not an error (as in the library). */
    assert_int_equal(call_nobody(f, with_body("PATCH", "/vm", "{\"state\":\"Paused\"}")), 204);
    assert_int_equal(call_nobody(f, with_body("PATCH", "/vm", "{\"state\": \"Resumed\"}")), 204);
    assert_int_equal(f->vm.state, VMLET_STATE_RUNNING);
    assert_int_equal(call_nobody(f, with_body("PATCH", "/vm", "{\"state\":\"Resumed\"}")), 204);
}

static void pause_when_stopped_conflicts(void **state)
{
    struct fx *f = *state;
    f->vm.state = VMLET_STATE_STOPPED;
    char *body;
    assert_int_equal(call(f, with_body("PATCH", "/vm", "{\"state\":\"Paused\"}"), &body), 409);
    assert_non_null(strstr(body, "fault_message"));
    assert_non_null(strstr(body, "stopped"));
    free(body);
    assert_int_equal(call_nobody(f, with_body("PATCH", "/vm", "{\"state\":\"Resumed\"}")), 409);
}

static void bad_bodies(void **state)
{
    struct fx *f = *state;
    const char *bodies[] = {
        "",
        "{",
        "[]",
        "\"Paused\"",
        "{\"state\":1}",
        "{\"state\":\"paused\"}",
        "{\"state\":\"Paused\",\"extra\":1}",
        "{\"State\":\"Paused\"}",
        "null",
        "{\"state\":\"Paused\"",
        "{\"state\":\"\\ud800\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        char *body;
        assert_int_equal(call(f, with_body("PATCH", "/vm", bodies[i]), &body), 400);
        assert_non_null(strstr(body, "fault_message"));
        free(body);
    }
    assert_int_equal(f->vm.state, VMLET_STATE_RUNNING);
    assert_int_equal(call_nobody(f, "PATCH /vm HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
}

/* A long value is quoted cut to 64 bytes, but never inside a character:
 * the body must stay valid UTF-8 (found by fuzz_api; seed
 * patch_state_cut_in_utf8). 63 ASCII bytes, then a two-byte 'é'. */
static void fault_quote_keeps_utf8(void **state)
{
    struct fx *f = *state;
    char json[128], *body;
    snprintf(json, sizeof json, "{\"state\":\"%s\xc3\xa9\"}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(call(f, with_body("PATCH", "/vm", json), &body), 400);
    assert_null(strchr(body, '\xc3'));
    assert_non_null(strstr(body, "aaa\\\""));
    free(body);
    snprintf(json, sizeof json, "{\"action_type\":\"%s\xe2\x82\xac\"}",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    assert_int_equal(call(f, with_body("PUT", "/actions", json), &body), 400);
    assert_null(strchr(body, '\xe2'));
    assert_non_null(strstr(body, "bbb\\\""));
    free(body);
}

static void actions(void **state)
{
    struct fx *f = *state;
    assert_int_equal(
        call_nobody(f, with_body("PUT", "/actions", "{\"action_type\":\"RequestShutdown\"}")), 204);
    assert_int_equal(f->vm.shutdown_requests, 1);
    assert_int_equal(call_nobody(f, with_body("PUT", "/actions", "{\"action_type\":\"Stop\"}")),
                     204);
    assert_int_equal(f->vm.stops, 1);
    assert_int_equal(call_nobody(f, with_body("PUT", "/actions", "{\"action_type\":\"Reboot\"}")),
                     400);
    /* The power button of a paused guest would only time out. */
    f->vm.state = VMLET_STATE_PAUSED;
    assert_int_equal(
        call_nobody(f, with_body("PUT", "/actions", "{\"action_type\":\"RequestShutdown\"}")), 409);
    assert_int_equal(call_nobody(f, with_body("PUT", "/actions", "{\"action_type\":\"Stop\"}")),
                     204);
    f->vm.state = VMLET_STATE_STOPPED;
    assert_int_equal(call_nobody(f, with_body("PUT", "/actions", "{\"action_type\":\"Stop\"}")),
                     409);
    assert_int_equal(f->vm.shutdown_requests, 1);
    assert_int_equal(f->vm.stops, 2);
}

static void wrong_method_and_path(void **state)
{
    struct fx *f = *state;
    assert_int_equal(call_nobody(f, "POST / HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    assert_int_equal(call_nobody(f, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    assert_int_equal(call_nobody(f, "GET /vm HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    assert_int_equal(call_nobody(f, "GET /actions HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    assert_int_equal(call_nobody(f, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    assert_int_equal(call_nobody(f, "GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    /* A query string is ignored, as the parser drops it. */
    assert_int_equal(call_nobody(f, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
}

/* ---- the socket --------------------------------------------------------- */

static int connect_to(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One round of the CLI's poll loop. */
static void serve(struct fx *f)
{
    struct pollfd fds[API_POLLFDS];
    int n = api_server_pollfds(f->a, fds);
    assert_int_equal(n, API_POLLFDS);
    int rc = poll(fds, n, 1000);
    assert_true(rc >= 0);
    api_server_handle(f->a, fds, n, &f->t);
}

/* Reads what the server sent until it closes or stops sending. */
static size_t read_reply(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (len + 1 < cap && poll(&p, 1, 200) > 0) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static void socket_mode_and_round_trip(void **state)
{
    struct fx *f = *state;
    char err[512];
    f->a = api_server_open(f->path, err, sizeof err);
    assert_non_null(f->a);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    int c = connect_to(f->path);
    assert_true(c >= 0);
    serve(f); /* accept */
    const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
                      "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(c, req, strlen(req)), (ssize_t)strlen(req));
    serve(f); /* both answered, then closed */
    char buf[4096];
    read_reply(c, buf, sizeof buf);
    assert_true(!strncmp(buf, "HTTP/1.1 200 ", 13));
    assert_non_null(strstr(buf, "\"state\":\"running\""));
    char *second = strstr(buf + 1, "HTTP/1.1 200 ");
    assert_non_null(second);
    assert_non_null(strstr(second, "kvm_exits"));
    char b;
    assert_int_equal(read(c, &b, 1), 0); /* Connection: close honoured */
    close(c);

    api_server_close(f->a);
    f->a = NULL;
    assert_int_equal(lstat(f->path, &st), -1); /* removed */
}

static void malformed_and_oversized_requests(void **state)
{
    struct fx *f = *state;
    char err[512];
    f->a = api_server_open(f->path, err, sizeof err);
    assert_non_null(f->a);
    struct {
        const char *text;
        const char *status;
    } cases[] = {
        { "GARBAGE\r\n\r\n", "HTTP/1.1 400 " },
        { "GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 " },
        { "PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 501 " },
        { "PUT /actions HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", "HTTP/1.1 413 " },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int c = connect_to(f->path);
        serve(f);
        assert_int_equal(write(c, cases[i].text, strlen(cases[i].text)),
                         (ssize_t)strlen(cases[i].text));
        serve(f);
        char buf[1024];
        read_reply(c, buf, sizeof buf);
        assert_true(!strncmp(buf, cases[i].status, strlen(cases[i].status)));
        assert_non_null(strstr(buf, "fault_message"));
        close(c);
    }
    /* Headers that never end: 431 once the limit is passed. */
    int c = connect_to(f->path);
    serve(f);
    char line[128];
    snprintf(line, sizeof line, "GET / HTTP/1.1\r\n");
    assert_int_equal(write(c, line, strlen(line)), (ssize_t)strlen(line));
    memset(line, 'a', sizeof line);
    memcpy(line, "X-Pad: ", 7);
    line[126] = '\r';
    line[127] = '\n';
    char buf[1024] = "";
    for (int i = 0; i < HTTP_MAX_HEAD / 128 + 2 && !buf[0]; i++) {
        if (write(c, line, sizeof line) < 0)
            break;
        serve(f);
        struct pollfd p = { .fd = c, .events = POLLIN };
        if (poll(&p, 1, 0) > 0)
            read_reply(c, buf, sizeof buf);
    }
    assert_true(!strncmp(buf, "HTTP/1.1 431 ", 13));
    close(c);
    assert_int_equal(f->vm.state, VMLET_STATE_RUNNING); /* the VM never noticed */
}

static void too_many_clients(void **state)
{
    struct fx *f = *state;
    char err[512];
    f->a = api_server_open(f->path, err, sizeof err);
    assert_non_null(f->a);
    int c[API_MAX_CLIENTS + 1];
    for (int i = 0; i < API_MAX_CLIENTS; i++) {
        c[i] = connect_to(f->path);
        assert_true(c[i] >= 0);
        serve(f);
    }
    c[API_MAX_CLIENTS] = connect_to(f->path);
    serve(f);
    char buf[1024];
    read_reply(c[API_MAX_CLIENTS], buf, sizeof buf);
    assert_true(!strncmp(buf, "HTTP/1.1 503 ", 13));
    /* The others are still served. */
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(c[0], req, strlen(req)), (ssize_t)strlen(req));
    serve(f);
    read_reply(c[0], buf, sizeof buf);
    assert_true(!strncmp(buf, "HTTP/1.1 200 ", 13));
    for (int i = 0; i <= API_MAX_CLIENTS; i++)
        close(c[i]);
}

static void refuses_to_replace_a_file(void **state)
{
    struct fx *f = *state;
    FILE *fp = fopen(f->path, "w");
    fputs("precious", fp);
    fclose(fp);
    char err[512];
    assert_null(api_server_open(f->path, err, sizeof err));
    assert_non_null(strstr(err, "not a socket"));
    fp = fopen(f->path, "r");
    char got[16] = "";
    assert_non_null(fgets(got, sizeof got, fp));
    fclose(fp);
    assert_string_equal(got, "precious");
}

static void live_socket_refused_stale_replaced(void **state)
{
    struct fx *f = *state;
    char err[512];
    f->a = api_server_open(f->path, err, sizeof err);
    assert_non_null(f->a);
    assert_null(api_server_open(f->path, err, sizeof err));
    assert_non_null(strstr(err, "another process"));

    /* A socket file nobody listens on (a killed vmlet): replaced. */
    api_server_close(f->a);
    f->a = NULL;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strcpy(addr.sun_path, f->path);
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    close(s);
    f->a = api_server_open(f->path, err, sizeof err);
    assert_non_null(f->a);
    int c = connect_to(f->path);
    assert_true(c >= 0);
    close(c);
}

static void bad_paths(void **state)
{
    struct fx *f = *state;
    char err[512], longpath[300];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_null(api_server_open(longpath, err, sizeof err));
    assert_non_null(strstr(err, "longer than"));
    char missing[200];
    snprintf(missing, sizeof missing, "%s/no/such/dir/api.sock", f->dir);
    assert_null(api_server_open(missing, err, sizeof err));
    assert_non_null(strstr(err, "does the directory exist"));
}

/* ---- out of descriptors --------------------------------------------------- */

/* What the server's child reports on 'm'. */
struct loop_use {
    long long cpu_ms; /* CPU time of its poll loop so far */
    long long rounds; /* times round it */
};

static long long thread_cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The CLI's poll loop in a child that has used up its descriptors, run
 * until the parent says 'q'; 'm' asks for a struct loop_use, 'f' frees the
 * descriptors. No cmocka here: it answers through the pipes. */
static void server_child(struct fx *f, int cmd, int out)
{
    char err[256];
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no loop behind */
    f->a = api_server_open(f->path, err, sizeof err);
    struct rlimit rl = { 64, 64 };
    int fill[64], nfill = 0;
    if (!f->a || setrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(2);
    while (nfill < 64 && (fill[nfill] = dup(out)) >= 0)
        nfill++;
    if (errno != EMFILE || write(out, "R", 1) != 1)
        _exit(3);
    struct loop_use use = { 0, 0 };
    for (;; use.rounds++) {
        struct pollfd fds[1 + API_POLLFDS];
        fds[0] = (struct pollfd){ .fd = cmd, .events = POLLIN };
        int n = api_server_pollfds(f->a, fds + 1);
        int rc = poll(fds, 1 + n, api_server_timeout(f->a));
        api_server_handle(f->a, fds + 1, rc > 0 ? n : 0, &f->t);
        char c;
        if (rc <= 0 || !fds[0].revents || read(cmd, &c, 1) != 1)
            continue;
        if (c == 'q')
            _exit(0);
        if (c == 'f')
            while (nfill)
                close(fill[--nfill]);
        use.cpu_ms = thread_cpu_ms();
        if (write(out, &use, sizeof use) != sizeof use)
            _exit(4);
    }
}

static struct loop_use ask(int cmd, int out, char c)
{
    struct loop_use use;
    struct pollfd p = { .fd = out, .events = POLLIN };
    assert_int_equal(write(cmd, &c, 1), 1);
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(read(out, &use, sizeof use), sizeof use);
    return use;
}

/* Out of descriptors, accept4 fails with EMFILE and the connection stays
 * queued: the loop must neither spin (CPU time and rounds over 1 s stay
 * small; spinning is a whole core and millions of rounds) nor leave the
 * client hanging (its connection is closed unanswered), and once
 * descriptors are free the API answers again. */
static void out_of_descriptors(void **state)
{
    struct fx *f = *state;
    int cmd[2], out[2];
    assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(cmd[1]);
        close(out[0]);
        server_child(f, cmd[0], out[1]);
    }
    close(cmd[0]);
    close(out[1]);
    char ready = 0;
    struct pollfd p = { .fd = out[0], .events = POLLIN };
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(read(out[0], &ready, 1), 1);
    assert_int_equal(ready, 'R');

    int c = connect_to(f->path); /* queued: the child cannot accept it */
    assert_true(c >= 0);
    struct loop_use u0 = ask(cmd[1], out[0], 'm');
    usleep(1000 * 1000);
    struct loop_use u1 = ask(cmd[1], out[0], 'm');
    print_message("# out of descriptors for 1 s: the loop used %lld ms of CPU in %lld rounds\n",
                  u1.cpu_ms - u0.cpu_ms, u1.rounds - u0.rounds);
    assert_true(u1.rounds - u0.rounds < 100);
    assert_true(u1.cpu_ms - u0.cpu_ms < 200);
    /* The client was not left waiting: closed with no answer. */
    p.fd = c;
    assert_int_equal(poll(&p, 1, 1000), 1);
    char buf[256];
    assert_true(read(c, buf, sizeof buf) <= 0);
    close(c);

    /* Descriptors free again: the API answers. */
    ask(cmd[1], out[0], 'f');
    c = connect_to(f->path);
    assert_true(c >= 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(c, req, strlen(req)), (ssize_t)strlen(req));
    ask(cmd[1], out[0], 'm'); /* a round or more of the loop */
    char reply[2048];
    read_reply(c, reply, sizeof reply);
    assert_non_null(strstr(reply, "HTTP/1.1 200"));
    assert_non_null(strstr(reply, "\"app_name\":\"vmlet\""));
    close(c);

    assert_int_equal(write(cmd[1], "q", 1), 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    close(cmd[1]);
    close(out[0]);
    unlink(f->path); /* the child's; its server was never closed */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(info),
        T(metrics),
        T(balloon_routes),
        T(snapshot_create),
        T(pause_and_resume),
        T(pause_when_stopped_conflicts),
        T(bad_bodies),
        T(fault_quote_keeps_utf8),
        T(actions),
        T(wrong_method_and_path),
        T(socket_mode_and_round_trip),
        T(malformed_and_oversized_requests),
        T(too_many_clients),
        T(refuses_to_replace_a_file),
        T(live_socket_refused_stale_replaced),
        T(bad_paths),
        T(out_of_descriptors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
