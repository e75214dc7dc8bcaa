/* The control socket of `vmlet run --api-sock PATH`: HTTP/1.1 with JSON
 * bodies on a Unix socket, in the style of Firecracker's API, so that
 * `curl --unix-socket PATH http://localhost/...` drives a running VM.
 *
 *   GET   /          {"app_name", "vmm_version", "state", "stop_reason",
 *                     "cpus", "memory_bytes"}
 *   GET   /metrics   vmlet_vm_metrics() as {"GROUP": {"NAME": value}}
 *   PATCH /vm        {"state": "Paused"} or {"state": "Resumed"}
 *   PUT   /actions   {"action_type": "RequestShutdown"} (the ACPI power
 *                     button, like SIGTERM) or {"action_type": "Stop"}
 *   PUT   /snapshot/create  {"snapshot_path": DIR}: vmlet_vm_save() of the
 *                     paused VM (409 when it is not paused or has a device
 *                     that cannot be saved yet, 400 for a path that cannot
 *                     be used, 500 when KVM fails)
 *   PATCH /balloon   {"amount_mib": N}: the balloon's target
 *   GET   /balloon   {"amount_mib", "actual_mib", "deflate_on_oom",
 *                     "free_page_reporting", "stats_polling_interval_s"}
 *   GET   /balloon/statistics  {"target_pages", "actual_pages", "target_mib",
 *                     "actual_mib", the guest's numbers by Firecracker's
 *                     names ("free_memory", ...), "updates", "age_ms"}
 *
 * Changes answer 204; errors answer {"fault_message": "..."} with 400
 * (malformed), 404 (no such path), 405 (wrong method), 409 (not possible in
 * this state), 413/414/431 (too large), 501/505. The peer is not trusted:
 * requests are size-limited (http.h), a connection that sends nothing for
 * API_IDLE_SECONDS is closed, and at most API_MAX_CLIENTS are served at
 * once. The server runs in the CLI's poll loop; it never blocks the guest. */
#ifndef VMLET_CLI_API_H
#define VMLET_CLI_API_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmlet.h"

#define API_MAX_CLIENTS  8
#define API_IDLE_SECONDS 30
#define API_POLLFDS      (1 + API_MAX_CLIENTS)

/* What the API acts on: the VM, and the CLI's own way of asking for a
 * shutdown (so --shutdown-timeout applies as it does to SIGTERM). */
struct api_target {
    vmlet_vm *vm;
    unsigned cpus;
    uint64_t memory;
    void (*request_shutdown)(void *ctx);
    void (*stop)(void *ctx);
    void *ctx;
};

struct api_server;

/* Creates the socket at path with mode 0600. A stale socket left by a
 * vmlet that died is replaced; a live one, or anything that is not a
 * socket, is not (err says why). Returns NULL with err filled. */
struct api_server *api_server_open(const char *path, char *err, size_t errlen);
/* Removes the socket file and closes every connection. */
void api_server_close(struct api_server *a);

/* Adds the server's descriptors to fds (room for API_POLLFDS); returns how
 * many. */
int api_server_pollfds(const struct api_server *a, struct pollfd *fds);
/* The poll timeout the server needs (ms until the next idle connection is
 * due to close), or -1. */
int api_server_timeout(const struct api_server *a);
/* Handles what poll reported on the descriptors api_server_pollfds() gave
 * (fds points at the first of them, n of them), and closes idle ones. */
void api_server_handle(struct api_server *a, const struct pollfd *fds, int n,
                       const struct api_target *t);

/* The same with another set of requests: handler answers each parsed
 * request as api_dispatch() does (status, malloc'd body or NULL). The
 * Firecracker-compatible mode (cli/fc_vmm.c) serves its API this way. */
struct http_request;
typedef int (*api_handler)(const struct http_request *req, void *ctx, char **body);
void api_server_serve(struct api_server *a, const struct pollfd *fds, int n, api_handler handler,
                      void *ctx);

/* {"fault_message": "..."}, malloc'd (NULL only when out of memory). */
char *api_fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes all of buf to fd (a socket: send(2) without SIGPIPE; a file or
 * FIFO: write(2)), waiting at most timeout_ms in all for a slow reader.
 * False when the descriptor failed, or time ran out with part unwritten. */
bool api_write_all(int fd, const char *buf, size_t len, bool socket, int timeout_ms);

/* Answers one parsed request: the status, and the body in *body (malloc'd,
 * or NULL for none). Exposed for the unit tests. */
int api_dispatch(const struct http_request *req, const struct api_target *t, char **body);

#endif
