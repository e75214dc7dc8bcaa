/* libFuzzer target for the control socket's HTTP parser (cli/http.c): any
 * bytes as what a connection sent. Build with clang
 * -fsanitize=fuzzer,address,undefined -I cli, or with -DVMLET_FUZZ_STANDALONE
 * and any compiler to replay files.
 *
 * Every parse gets its own heap copy of exactly the bytes it may read, so
 * ASan reports any read past len. Besides memory errors it checks:
 *   - a result is > 0, 0, or one of the documented statuses;
 *   - a complete request used at most the bytes given, has a non-empty
 *     token method and a NUL-terminated path starting with "/" without a
 *     "?", and its body (if any) is the last body_len bytes it used;
 *   - 0 only while below the limits: with HTTP_MAX_HEAD + HTTP_MAX_BODY
 *     bytes there is always an answer (the socket's buffer is that size);
 *   - more bytes never change an answer: a prefix that got anything but 0
 *     gets the same from the whole input, and a complete request parses
 *     the same from exactly the bytes it used, and every shorter prefix of
 *     it is incomplete;
 *   - responses: -1 or a NUL-terminated response of the returned length
 *     that fits the buffer, starts with a status line and ends with the
 *     body. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_http"
#include "fuzz_util.h"
#include "http.h"

/* Parses data[0..len) from an exact-size copy; the body comes back as an
 * offset (-1 for none) since the copy is gone afterwards. */
static int parse(const uint8_t *data, size_t len, struct http_request *req, long *body_off)
{
    char *copy = malloc(len ? len : 1);
    check(copy != NULL, "out of memory");
    memcpy(copy, data, len);
    memset(req, 0x5a, sizeof *req);
    int rc = http_parse_request(copy, len, req);
    *body_off = -1;

    check(rc >= 0 || rc == -400 || rc == -413 || rc == -414 || rc == -431 || rc == -501 ||
              rc == -505,
          "undocumented status");
    if (rc == 0)
        check(len < HTTP_MAX_HEAD + HTTP_MAX_BODY, "incomplete at the buffer limit");
    if (rc > 0) {
        size_t used = (size_t)rc;
        check(used <= len, "used more than given");
        check(used <= HTTP_MAX_HEAD + HTTP_MAX_BODY, "used more than the limits");
        check(memchr(req->method, '\0', sizeof req->method) != NULL, "method not terminated");
        check(req->method[0] != '\0', "empty method");
        for (const char *m = req->method; *m; m++)
            check(*m > 0x20 && *m < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", *m),
                  "method is not a token");
        check(memchr(req->path, '\0', sizeof req->path) != NULL, "path not terminated");
        check(req->path[0] == '/', "path does not start with /");
        check(!strchr(req->path, '?'), "query left in path");
        for (const char *p = req->path; *p; p++)
            check(*p > 0x20 && *p < 0x7f && *p != '#', "bad byte in path");
        check(req->keep_alive == true || req->keep_alive == false, "keep_alive not a bool");
        check((req->body == NULL) == (req->body_len == 0), "body and body_len disagree");
        check(req->body_len <= HTTP_MAX_BODY, "body too large");
        if (req->body) {
            check(req->body >= copy && req->body < copy + used, "body outside the buffer");
            check((size_t)(req->body - copy) + req->body_len == used,
                  "body is not the end of the request");
            *body_off = req->body - copy;
        }
    } else {
        /* *req is written only on success. */
        for (size_t i = 0; i < sizeof *req; i++)
            check(((unsigned char *)req)[i] == 0x5a, "req written without success");
    }
    free(copy);
    return rc;
}

static void same_request(const struct http_request *a, long a_off, const struct http_request *b,
                         long b_off)
{
    check(strcmp(a->method, b->method) == 0 && strcmp(a->path, b->path) == 0 &&
              a->body_len == b->body_len && a->keep_alive == b->keep_alive && a_off == b_off,
          "same bytes, different request");
}

static void format(int status, const uint8_t *data, size_t size, size_t cap)
{
    /* A body from the input, up to its first NUL and 200 bytes. */
    char body[201];
    size_t n = 0;
    while (n < size && n < sizeof body - 1 && data[n])
        n++;
    memcpy(body, data, n);
    body[n] = '\0';

    char *out = malloc(cap ? cap : 1);
    check(out != NULL, "out of memory");
    int rc = http_format_response(out, cap, status, n ? body : NULL, status != 431);
    if (rc >= 0) {
        check((size_t)rc < cap && out[rc] == '\0' && strlen(out) == (size_t)rc, "response length");
        check(strncmp(out, "HTTP/1.1 ", 9) == 0, "no status line");
        check(strstr(out, "\r\n\r\n") != NULL, "no end of head");
        check((size_t)rc >= n && memcmp(out + rc - n, body, n) == 0, "body not at the end");
    } else {
        check(rc == -1, "bad format result");
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_request whole, part;
    long whole_off, part_off;
    int rc = parse(data, size, &whole, &whole_off);

    /* A few prefixes: nothing they answer changes with more bytes. */
    size_t cuts[] = { size / 2, size ? size - 1 : 0, size > 17 ? 17 : size / 3 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        int prc = parse(data, cuts[i], &part, &part_off);
        if (prc != 0) {
            check(prc == rc, "a prefix answered differently");
            if (prc > 0)
                same_request(&part, part_off, &whole, whole_off);
        }
    }
    if (rc > 0) {
        size_t used = (size_t)rc;
        check(parse(data, used, &part, &part_off) == rc, "the used bytes alone differ");
        same_request(&part, part_off, &whole, whole_off);
        check(parse(data, used - 1, &part, &part_off) == 0, "complete before its end");
        check(parse(data, used / 2, &part, &part_off) == 0, "complete at half");
    }

    static const int statuses[] = { 100, 200, 204, 400, 404, 413, 431, 501, 599, 600 };
    size_t cap = size ? (size_t)data[0] * 2 : 0;
    format(statuses[size % (sizeof statuses / sizeof statuses[0])], data, size, cap);
    format(rc < 0 ? -rc : 200, data, size, 512);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
