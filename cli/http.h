/* A small, strict HTTP/1.1 request parser and response formatter for the
 * control socket (vmlet run --api-sock PATH). The spec followed is RFC 9112
 * (HTTP/1.1 message syntax) with the semantics of RFC 9110; see http.c for
 * what is accepted and what is rejected with which status.
 *
 * The peer is untrusted: the parser reads only buf[0..len), never allocates,
 * never needs a NUL after the input, and rejects anything it does not
 * expect instead of guessing. */
#ifndef VMLET_CLI_HTTP_H
#define VMLET_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEAD 8192 /* request line + headers, incl. the blank line */
#define HTTP_MAX_BODY 16384
#define HTTP_MAX_PATH 256

struct http_request {
    char method[8];           /* "GET", "PUT", "PATCH", ... NUL-terminated */
    char path[HTTP_MAX_PATH]; /* origin-form target without query string, NUL-terminated */
    const char *body;         /* points into the caller's buffer; NULL when no body */
    size_t body_len;
    bool
        keep_alive; /* HTTP/1.1 default true; "Connection: close" -> false; HTTP/1.0 -> false unless keep-alive */
};

/* Parses one request at buf[0..len). Returns
 *   > 0  the request is complete: the number of bytes it used (head + body); *req is filled
 *     0  incomplete: call again with more bytes (only while len is below the limits)
 *   < 0  -STATUS: the request is malformed; answer with that HTTP status and close the
 *        connection. The statuses are 400, 413, 414, 431, 501 and 505 (see http.c for
 *        which input gives which), and 500 only for a NULL req or a NULL buf with len > 0.
 * *req is written only when the return value is > 0. */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

/* The reason phrase for a status ("OK", "Bad Request", ...; "Unknown" otherwise). */
const char *http_reason(int status);

/* Formats a complete response with Content-Type: application/json (when body is non-NULL
 * and non-empty), Content-Length, and "Connection: close" when !keep_alive. body is a
 * NUL-terminated string or NULL. Returns the length written, or -1 if cap is too small
 * (nothing partial is meant to be sent). The output is also NUL-terminated, so cap must
 * leave room for that NUL, which is not counted in the returned length.
 *
 * Following RFC 9110, 1xx and 204 responses carry no Content-Length and no body (-1 if
 * a non-empty body is given), and a 1xx (e.g. "100 Continue") is only the status line
 * and the blank line. status must be 100..599, or the result is -1. */
int http_format_response(char *out, size_t cap, int status, const char *body, bool keep_alive);

#endif
