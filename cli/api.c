/* The control socket (see api.h). One listening socket and a few client
 * connections, all non-blocking, served from the CLI's poll loop.
 *
 * Out of descriptors (EMFILE; ENFILE for the whole system), accept4 fails
 * and leaves the connection queued: the listener stays readable and the
 * poll loop would wake for it again at once, forever. So the server keeps
 * one spare descriptor (/dev/null) from the start; when accept fails that
 * way it closes the spare, accepts the connection and closes it (the
 * client sees the connection closed unanswered), and opens the spare
 * again. If the spare is gone (another thread took the descriptor), the
 * listener is left out of the poll for API_PAUSE_MS instead. Either way
 * stderr gets one line, at most every API_LOG_SECONDS. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "http.h"
#include "../src/uds.h" /* the socket file, made as the library makes its own */

#define CLIENT_BUF      (HTTP_MAX_HEAD + HTTP_MAX_BODY)
#define SEND_TIMEOUT_MS 1000 /* a client that does not read its answer is dropped */
#define API_PAUSE_MS    100  /* out of descriptors and no spare: listener not polled */
#define API_LOG_SECONDS 10   /* at most one "out of descriptors" line this often */

struct api_client {
    int fd;    /* -1: free slot */
    char *buf; /* CLIENT_BUF bytes */
    size_t len;
    time_t last_active; /* CLOCK_MONOTONIC seconds */
};

struct api_server {
    int listen_fd;
    int spare_fd;           /* /dev/null, given up to refuse a connection; or -1 */
    long long paused_until; /* CLOCK_MONOTONIC ms: listener not polled before */
    time_t logged;          /* when "out of descriptors" was last said, or 0 */
    char path[sizeof((struct sockaddr_un *)0)->sun_path];
    dev_t dev; /* of the socket we made, so close only */
    ino_t ino; /* removes our own file */
    struct api_client clients[API_MAX_CLIENTS];
};

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* ---- the socket file ----------------------------------------------------- */

struct api_server *api_server_open(const char *path, char *err, size_t errlen)
{
    struct api_server *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        a->clients[i].fd = -1;
    /* uds_listen refuses a path longer than a->path holds. */
    a->listen_fd = uds_listen(path, "--api-sock", API_MAX_CLIENTS, &a->dev, &a->ino, err, errlen);
    if (a->listen_fd < 0) {
        free(a);
        return NULL;
    }
    a->spare_fd = open_spare();
    strcpy(a->path, path);
    return a;
}

static void client_close(struct api_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = 0;
}

void api_server_close(struct api_server *a)
{
    if (!a)
        return;
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        client_close(&a->clients[i]);
    close(a->listen_fd);
    if (a->spare_fd >= 0)
        close(a->spare_fd);
    /* Only our own socket: someone may have replaced the path since. */
    uds_unlink_own(a->path, a->dev, a->ino);
    free(a);
}

/* ---- answers ------------------------------------------------------------ */

static const char *state_name(vmlet_state s)
{
    switch (s) {
    case VMLET_STATE_CREATED: return "created";
    case VMLET_STATE_STARTING: return "starting";
    case VMLET_STATE_RUNNING: return "running";
    case VMLET_STATE_STOPPING: return "stopping";
    case VMLET_STATE_PAUSED: return "paused";
    case VMLET_STATE_STOPPED: return "stopped";
    case VMLET_STATE_ERROR: return "error";
    }
    return "unknown";
}

char *api_fault(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "fault_message", msg);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *info_json(const struct api_target *t)
{
    cJSON *o = cJSON_CreateObject();
    vmlet_exit ex;
    bool ended = vmlet_vm_wait_timeout(t->vm, &ex, 0) == 1;
    cJSON_AddStringToObject(o, "app_name", "vmlet");
    cJSON_AddStringToObject(o, "vmm_version", vmlet_version());
    cJSON_AddStringToObject(o, "state", state_name(vmlet_vm_state(t->vm)));
    if (ended)
        cJSON_AddStringToObject(o, "stop_reason",
                                ex.reason == VMLET_STOP_POWEROFF ? "poweroff"
                                : ex.reason == VMLET_STOP_REBOOT ? "reboot"
                                : ex.reason == VMLET_STOP_HOST   ? "host"
                                                                 : "error");
    else
        cJSON_AddNullToObject(o, "stop_reason");
    cJSON_AddNumberToObject(o, "cpus", t->cpus);
    cJSON_AddNumberToObject(o, "memory_bytes", (double)t->memory);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Counters go out as JSON numbers; a double holds them exactly up to 2^53,
 * years of exits at any real rate. */
static void add_metric(void *opaque, const char *group, const char *name, uint64_t value)
{
    cJSON *root = opaque;
    cJSON *g = cJSON_GetObjectItemCaseSensitive(root, group);
    if (!g)
        g = cJSON_AddObjectToObject(root, group);
    if (g)
        cJSON_AddNumberToObject(g, name, (double)value);
}

/* vmlet_vm_metrics() as {"GROUP": {"NAME": value}}, malloc'd. */
static char *metrics_json(vmlet_vm *vm)
{
    cJSON *o = cJSON_CreateObject();
    if (vm)
        vmlet_vm_metrics(vm, add_metric, o);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* How many bytes of s to quote in a fault: at most max, cut on a character
 * boundary, so that a long UTF-8 string from the client does not end the
 * message in half a character (the answer must be valid UTF-8 JSON). */
static int quote_len(const char *s, int max)
{
    int n = (int)strnlen(s, (size_t)max);
    if (n == max)
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* s[n] continues a character: leave all of it out */
    return n;
}

/* The one string member a change request carries, e.g. {"state": "Paused"}.
 * NULL with *status and *body set when the body is not that. */
static const char *body_member(const struct http_request *req, const char *key, cJSON **doc,
                               int *status, char **body)
{
    *status = 400;
    if (!req->body || req->body_len == 0) {
        *body = api_fault("a JSON body {\"%s\": ...} is required", key);
        return NULL;
    }
    *doc = cJSON_ParseWithLength(req->body, req->body_len);
    if (!*doc || !cJSON_IsObject(*doc)) {
        *body = api_fault("the body is not a JSON object");
        return NULL;
    }
    cJSON *v = cJSON_GetObjectItemCaseSensitive(*doc, key);
    if (!cJSON_IsString(v)) {
        *body = api_fault("\"%s\" is missing or not a string", key);
        return NULL;
    }
    if (cJSON_GetArraySize(*doc) != 1) {
        *body = api_fault("only \"%s\" is allowed in this body", key);
        return NULL;
    }
    return v->valuestring;
}

static int patch_vm(const struct http_request *req, const struct api_target *t, char **body)
{
    cJSON *doc = NULL;
    int status;
    const char *want = body_member(req, "state", &doc, &status, body);
    if (want) {
        vmlet_state s = vmlet_vm_state(t->vm);
        if (!strcmp(want, "Paused")) {
            if (s == VMLET_STATE_PAUSED || vmlet_vm_pause(t->vm) == 0)
                status = 204;
            else if ((s = vmlet_vm_state(t->vm)) == VMLET_STATE_RUNNING ||
                     s == VMLET_STATE_STOPPING)
                status = 409,
                *body = api_fault("the vCPUs did not stop within 2 s: the VM runs on");
            else
                status = 409, *body = api_fault("cannot pause a VM that is %s", state_name(s));
        } else if (!strcmp(want, "Resumed")) {
            if (s == VMLET_STATE_RUNNING || s == VMLET_STATE_STOPPING ||
                vmlet_vm_resume(t->vm) == 0)
                status = 204;
            else
                status = 409, *body = api_fault("cannot resume a VM that is %s", state_name(s));
        } else {
            *body = api_fault("\"state\" must be \"Paused\" or \"Resumed\", not \"%.*s\"",
                              quote_len(want, 64), want);
        }
    }
    cJSON_Delete(doc);
    return status;
}

static int put_actions(const struct http_request *req, const struct api_target *t, char **body)
{
    cJSON *doc = NULL;
    int status;
    const char *action = body_member(req, "action_type", &doc, &status, body);
    if (action) {
        vmlet_state s = vmlet_vm_state(t->vm);
        bool ended = s == VMLET_STATE_STOPPED || s == VMLET_STATE_ERROR;
        if (strcmp(action, "RequestShutdown") && strcmp(action, "Stop")) {
            *body = api_fault("\"action_type\" must be \"RequestShutdown\" or \"Stop\", "
                              "not \"%.*s\"",
                              quote_len(action, 64), action);
        } else if (ended || s == VMLET_STATE_CREATED) {
            status = 409, *body = api_fault("the VM is %s", state_name(s));
        } else if (!strcmp(action, "Stop")) {
            t->stop(t->ctx);
            status = 204;
        } else if (s == VMLET_STATE_PAUSED) {
            /* A paused guest cannot see the button: it would only time out. */
            status = 409, *body = api_fault("the VM is paused; resume it first, or use \"Stop\"");
        } else {
            t->request_shutdown(t->ctx);
            status = 204;
        }
    }
    cJSON_Delete(doc);
    return status;
}

/* Firecracker's names for the guest's statistics, by virtio tag. */
static const char *const balloon_stat_names[VMLET_BALLOON_STAT_COUNT] = {
    [VMLET_BALLOON_STAT_SWAP_IN] = "swap_in",
    [VMLET_BALLOON_STAT_SWAP_OUT] = "swap_out",
    [VMLET_BALLOON_STAT_MAJOR_FAULTS] = "major_faults",
    [VMLET_BALLOON_STAT_MINOR_FAULTS] = "minor_faults",
    [VMLET_BALLOON_STAT_FREE_MEMORY] = "free_memory",
    [VMLET_BALLOON_STAT_TOTAL_MEMORY] = "total_memory",
    [VMLET_BALLOON_STAT_AVAILABLE_MEMORY] = "available_memory",
    [VMLET_BALLOON_STAT_DISK_CACHES] = "disk_caches",
    [VMLET_BALLOON_STAT_HUGETLB_ALLOCATIONS] = "hugetlb_allocations",
    [VMLET_BALLOON_STAT_HUGETLB_FAILURES] = "hugetlb_failures",
    [10] = "oom_kill",
    [11] = "alloc_stall",
    [12] = "async_scan",
    [13] = "direct_scan",
    [14] = "async_reclaim",
    [15] = "direct_reclaim",
};

static int get_balloon(const struct api_target *t, bool statistics, char **body)
{
    vmlet_balloon_info info;
    vmlet_error err;
    if (vmlet_vm_get_balloon(t->vm, &info, &err) < 0)
        return *body = api_fault("%s", err.message), 400;
    if (statistics && !info.stats_interval_s)
        return *body = api_fault("the balloon has no statistics (--balloon stats=SECONDS)"), 400;
    cJSON *o = cJSON_CreateObject();
    if (statistics) {
        cJSON_AddNumberToObject(o, "target_pages", (double)(info.target_bytes >> 12));
        cJSON_AddNumberToObject(o, "actual_pages", (double)(info.actual_bytes >> 12));
        cJSON_AddNumberToObject(o, "target_mib", (double)(info.target_bytes >> 20));
        cJSON_AddNumberToObject(o, "actual_mib", (double)(info.actual_bytes >> 20));
        for (unsigned i = 0; i < VMLET_BALLOON_STAT_COUNT; i++)
            if (info.stats_present & (1u << i))
                cJSON_AddNumberToObject(o, balloon_stat_names[i], (double)info.stats[i]);
        cJSON_AddNumberToObject(o, "updates", (double)info.stats_updates);
        if (info.stats_updates)
            cJSON_AddNumberToObject(o, "age_ms", (double)info.stats_age_ms);
    } else {
        cJSON_AddNumberToObject(o, "amount_mib", (double)(info.target_bytes >> 20));
        cJSON_AddNumberToObject(o, "actual_mib", (double)(info.actual_bytes >> 20));
        cJSON_AddBoolToObject(o, "deflate_on_oom", info.flags & VMLET_BALLOON_DEFLATE_ON_OOM);
        cJSON_AddBoolToObject(o, "free_page_reporting",
                              info.flags & VMLET_BALLOON_FREE_PAGE_REPORTING);
        cJSON_AddNumberToObject(o, "stats_polling_interval_s", info.stats_interval_s);
    }
    *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return 200;
}

/* {"amount_mib": N}: the target, in MiB as Firecracker has it. */
static int patch_balloon(const struct http_request *req, const struct api_target *t, char **body)
{
    if (!req->body || req->body_len == 0)
        return *body = api_fault("a JSON body {\"amount_mib\": N} is required"), 400;
    cJSON *doc = cJSON_ParseWithLength(req->body, req->body_len);
    int status = 400;
    cJSON *v = doc ? cJSON_GetObjectItemCaseSensitive(doc, "amount_mib") : NULL;
    if (!doc || !cJSON_IsObject(doc))
        *body = api_fault("the body is not a JSON object");
    else if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1048576.0 ||
             v->valuedouble != (double)(uint64_t)v->valuedouble)
        *body = api_fault("\"amount_mib\" is missing or not a whole number of MiB (0 to 1048576)");
    else if (cJSON_GetArraySize(doc) != 1)
        *body = api_fault("only \"amount_mib\" is allowed in this body");
    else {
        vmlet_error err;
        if (vmlet_vm_set_balloon(t->vm, (uint64_t)v->valuedouble << 20, &err) < 0)
            *body = api_fault("%s", err.message);
        else
            status = 204;
    }
    cJSON_Delete(doc);
    return status;
}

/* {"snapshot_path": DIR}: Firecracker's request, with vmlet's snapshot a
 * directory (state and memory inside) rather than two paths. The VM must
 * be paused; the answer comes once the snapshot is on disk. */
static int put_snapshot_create(const struct http_request *req, const struct api_target *t,
                               char **body)
{
    cJSON *doc = NULL;
    int status;
    const char *dir = body_member(req, "snapshot_path", &doc, &status, body);
    if (dir) {
        vmlet_error err;
        if (vmlet_vm_save(t->vm, dir, &err) == 0)
            status = 204;
        else {
            status = err.code == VMLET_ERR_STATE                                   ? 409
                     : err.code == VMLET_ERR_INVALID || err.code == VMLET_ERR_FILE ? 400
                                                                                   : 500;
            *body = api_fault("%s", err.message);
        }
    }
    cJSON_Delete(doc);
    return status;
}

int api_dispatch(const struct http_request *req, const struct api_target *t, char **body)
{
    *body = NULL;
    const char *m = req->method;
    if (!strcmp(req->path, "/")) {
        if (strcmp(m, "GET"))
            return *body = api_fault("%s / is not allowed; use GET", m), 405;
        *body = info_json(t);
        return 200;
    }
    if (!strcmp(req->path, "/metrics")) {
        if (strcmp(m, "GET"))
            return *body = api_fault("%s /metrics is not allowed; use GET", m), 405;
        *body = metrics_json(t->vm);
        return 200;
    }
    if (!strcmp(req->path, "/vm")) {
        if (strcmp(m, "PATCH"))
            return *body = api_fault("%s /vm is not allowed; use PATCH", m), 405;
        return patch_vm(req, t, body);
    }
    if (!strcmp(req->path, "/actions")) {
        if (strcmp(m, "PUT"))
            return *body = api_fault("%s /actions is not allowed; use PUT", m), 405;
        return put_actions(req, t, body);
    }
    if (!strcmp(req->path, "/snapshot/create")) {
        if (strcmp(m, "PUT"))
            return *body = api_fault("%s /snapshot/create is not allowed; use PUT", m), 405;
        return put_snapshot_create(req, t, body);
    }
    if (!strcmp(req->path, "/balloon")) {
        if (!strcmp(m, "GET"))
            return get_balloon(t, false, body);
        if (!strcmp(m, "PATCH"))
            return patch_balloon(req, t, body);
        return *body = api_fault("%s /balloon is not allowed; use GET or PATCH", m), 405;
    }
    if (!strcmp(req->path, "/balloon/statistics")) {
        if (strcmp(m, "GET"))
            return *body = api_fault("%s /balloon/statistics is not allowed; use GET", m), 405;
        return get_balloon(t, true, body);
    }
    *body = api_fault("no such resource: %.128s (try GET /, GET /metrics, PATCH /vm, PUT /actions, "
                      "GET or PATCH /balloon, GET /balloon/statistics)",
                      req->path);
    return 404;
}

/* ---- connections -------------------------------------------------------- */

bool api_write_all(int fd, const char *buf, size_t len, bool socket, int timeout_ms)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (len) {
        ssize_t n = socket ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return false;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (spent >= timeout_ms)
            return false;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        poll(&p, 1, (int)(timeout_ms - spent));
    }
    return true;
}

static bool respond(int fd, int status, const char *body, bool keep_alive)
{
    size_t cap = (body ? strlen(body) : 0) + 256;
    char *out = malloc(cap);
    if (!out)
        return false;
    int n = http_format_response(out, cap, status, body, keep_alive);
    bool ok = n > 0 && api_write_all(fd, out, (size_t)n, true, SEND_TIMEOUT_MS);
    free(out);
    return ok;
}

/* Answers every complete request in the client's buffer. */
static void client_serve(struct api_client *c, api_handler handler, void *ctx)
{
    while (c->fd >= 0 && c->len) {
        struct http_request req;
        int used = http_parse_request(c->buf, c->len, &req);
        if (used == 0)
            return; /* wait for more */
        if (used < 0) {
            char *body = api_fault("malformed request: %s", http_reason(-used));
            respond(c->fd, -used, body, false);
            free(body);
            client_close(c);
            return;
        }
        char *body;
        int status = handler(&req, ctx, &body);
        bool ok = respond(c->fd, status, body, req.keep_alive);
        free(body);
        if (!ok || !req.keep_alive) {
            client_close(c);
            return;
        }
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
    }
}

static void client_read(struct api_client *c, api_handler handler, void *ctx)
{
    ssize_t n = recv(c->fd, c->buf + c->len, CLIENT_BUF - c->len, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        client_close(c); /* EOF or error */
        return;
    }
    c->len += (size_t)n;
    c->last_active = now_s();
    client_serve(c, handler, ctx);
}

/* accept4 failed with e (EMFILE or ENFILE) and the connection is still
 * queued: refuse it with the spare descriptor (see above). Returns whether
 * it is gone; if not, the listener is paused. */
static bool refuse_out_of_fds(struct api_server *a, int e)
{
    bool gone = false, none = false;
    if (a->spare_fd >= 0) {
        close(a->spare_fd);
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            gone = true;
        }
        /* accept4 says EMFILE before it looks at the queue */
        none = fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        a->spare_fd = open_spare();
        if (none && a->spare_fd >= 0)
            return false; /* nothing was waiting */
    }
    if (!gone || a->spare_fd < 0)
        a->paused_until = now_ms() + API_PAUSE_MS;
    time_t now = now_s();
    if (!a->logged || now - a->logged >= API_LOG_SECONDS) {
        fprintf(stderr, "\r\nvmlet: --api-sock: out of file descriptors (%s); %s\r\n", strerror(e),
                gone ? "closing new connections unanswered" : "not accepting for a while");
        a->logged = now;
    }
    return gone && a->spare_fd >= 0;
}

static void accept_clients(struct api_server *a)
{
    if (a->spare_fd < 0)
        a->spare_fd = open_spare(); /* lost while out of descriptors */
    for (;;) {
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if ((e == EMFILE || e == ENFILE) && refuse_out_of_fds(a, e))
                continue; /* the next one, if any */
            return;
        }
        struct api_client *slot = NULL;
        for (int i = 0; i < API_MAX_CLIENTS && !slot; i++)
            if (a->clients[i].fd < 0)
                slot = &a->clients[i];
        char *buf = slot ? malloc(CLIENT_BUF) : NULL;
        if (!buf) {
            char *body = api_fault("too many connections (at most %d)", API_MAX_CLIENTS);
            respond(fd, 503, body, false);
            free(body);
            close(fd);
            continue;
        }
        *slot = (struct api_client){ .fd = fd, .buf = buf, .last_active = now_s() };
    }
}

int api_server_pollfds(const struct api_server *a, struct pollfd *fds)
{
    int n = 0;
    bool paused = a->paused_until && now_ms() < a->paused_until;
    fds[n++] = (struct pollfd){ .fd = paused ? -1 : a->listen_fd, .events = POLLIN };
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        fds[n++] = (struct pollfd){ .fd = a->clients[i].fd, .events = POLLIN };
    return n; /* free slots have fd -1, which poll() skips */
}

int api_server_timeout(const struct api_server *a)
{
    time_t now = now_s(), next = 0;
    bool any = false;
    for (int i = 0; i < API_MAX_CLIENTS; i++) {
        if (a->clients[i].fd < 0)
            continue;
        time_t due = a->clients[i].last_active + API_IDLE_SECONDS;
        if (!any || due < next)
            next = due;
        any = true;
    }
    int ms = !any ? -1 : next <= now ? 0 : (int)(next - now) * 1000;
    long long left = a->paused_until - now_ms(); /* a pause ends: poll the listener again */
    if (a->paused_until && left > 0 && (ms < 0 || left < ms))
        ms = (int)left;
    return ms;
}

static int dispatch_target(const struct http_request *req, void *ctx, char **body)
{
    return api_dispatch(req, ctx, body);
}

void api_server_handle(struct api_server *a, const struct pollfd *fds, int n,
                       const struct api_target *t)
{
    api_server_serve(a, fds, n, dispatch_target, (void *)t);
}

void api_server_serve(struct api_server *a, const struct pollfd *fds, int n, api_handler handler,
                      void *ctx)
{
    if (n > 0 && fds[0].fd == a->listen_fd && fds[0].revents)
        accept_clients(a);
    time_t now = now_s();
    for (int i = 0; i < API_MAX_CLIENTS; i++) {
        struct api_client *c = &a->clients[i];
        if (c->fd < 0)
            continue;
        if (1 + i < n && fds[1 + i].fd == c->fd && fds[1 + i].revents)
            client_read(c, handler, ctx);
        else if (now - c->last_active >= API_IDLE_SECONDS)
            client_close(c);
    }
}
