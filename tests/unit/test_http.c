/* cli/http.c: the control socket's HTTP/1.1 request parser and response
 * formatter. Every parse runs on an exact-size heap copy of the input, so
 * an ASan build catches any read past len, and nothing can rely on a NUL
 * after the request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../cli/http.h"

/* ---- helpers ---------------------------------------------------------- */

/* Parses buf[0..len) from an exact-size copy. A body pointer is returned
 * as an offset from the start of the input in *body_off (-1 for NULL). */
static int parse_len(const char *buf, size_t len, struct http_request *req, long *body_off)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    int rc = http_parse_request(copy, len, req);
    if (body_off) {
        *body_off = -1;
        if (rc > 0 && req->body) {
            assert_true(req->body >= copy && req->body + req->body_len <= copy + rc);
            *body_off = (long)(req->body - copy);
        }
    }
    free(copy);
    return rc;
}

static int parse(const char *s, struct http_request *req)
{
    return parse_len(s, strlen(s), req, NULL);
}

/* The status of a request that must be rejected, checking that *req is left
 * alone. */
static int status_of(const char *s)
{
    struct http_request req;
    memset(&req, 0x5a, sizeof req);
    int rc = parse(s, &req);
    for (size_t i = 0; i < sizeof req; i++)
        assert_int_equal(((unsigned char *)&req)[i], 0x5a);
    return rc;
}

/* Every request in the array is refused with HTTP status `status`. */
#define EXPECT_ALL_REFUSED(requests, status) \
    expect_all_refused((requests), sizeof(requests) / sizeof(requests)[0], (status))

static void expect_all_refused(const char *const *requests, size_t n, int status)
{
    for (size_t i = 0; i < n; i++)
        if (status_of(requests[i]) != -status)
            fail_msg("not %d: %s", status, requests[i]);
}

#define GET_LINE     "GET /machine-config HTTP/1.1\r\n"
#define CURL_HEADERS "Host: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"

static const char put_request[] = "PUT /boot-source HTTP/1.1\r\n" CURL_HEADERS
                                  "Content-Type: application/json\r\n"
                                  "Content-Length: 43\r\n"
                                  "\r\n"
                                  "{\"kernel_image_path\": \"vmlinux\", \"cpus\": 2}";

/* ---- requests that parse ---------------------------------------------- */

static void get_without_body(void **state)
{
    const char *s = GET_LINE CURL_HEADERS "\r\n";
    struct http_request req;
    long off;
    assert_int_equal(parse_len(s, strlen(s), &req, &off), (int)strlen(s));
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/machine-config");
    assert_null(req.body);
    assert_int_equal(req.body_len, 0);
    assert_true(req.keep_alive);
}

static void put_with_json_body(void **state)
{
    struct http_request req;
    long off;
    size_t len = strlen(put_request);
    const char *body = strstr(put_request, "\r\n\r\n") + 4;
    assert_int_equal(strlen(body), 43);
    assert_int_equal(parse_len(put_request, len, &req, &off), (int)len);
    assert_string_equal(req.method, "PUT");
    assert_string_equal(req.path, "/boot-source");
    assert_int_equal(off, body - put_request);
    assert_int_equal(req.body_len, 43);
    assert_true(req.keep_alive);
}

static void minimal_request_and_zero_length(void **state)
{
    struct http_request req;
    /* No Host: accepted on this local socket. */
    assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n", &req), 18);
    assert_string_equal(req.path, "/");
    /* Content-Length: 0 is no body. */
    const char *s = "PATCH /vm HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_string_equal(req.method, "PATCH");
    assert_null(req.body);
    assert_int_equal(req.body_len, 0);
}

static void every_prefix_is_incomplete(void **state)
{
    const char *reqs[] = { GET_LINE CURL_HEADERS "\r\n", put_request,
                           "\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" };
    for (size_t k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
        size_t len = strlen(reqs[k]);
        for (size_t n = 0; n < len; n++) {
            struct http_request req;
            memset(&req, 0x5a, sizeof req);
            if (parse_len(reqs[k], n, &req, NULL) != 0)
                fail_msg("request %zu: prefix of %zu bytes did not return 0", k, n);
            assert_int_equal(((unsigned char *)&req)[0], 0x5a);
        }
        struct http_request req;
        assert_int_equal(parse_len(reqs[k], len, &req, NULL), (int)len);
    }
}

static void incomplete_body(void **state)
{
    const char *s = "PUT /actions HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a\":";
    struct http_request req;
    assert_int_equal(parse(s, &req), 0);
    /* Only the head: also incomplete, not an error. */
    assert_int_equal(parse("PUT /actions HTTP/1.1\r\nContent-Length: 10\r\n\r\n", &req), 0);
}

static void pipelined_requests(void **state)
{
    const char first[] = "PUT /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    const char second[] = "GET /b?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n";
    char both[sizeof first + sizeof second];
    snprintf(both, sizeof both, "%s%s", first, second);
    struct http_request req;
    long off;

    int rc = parse_len(both, strlen(both), &req, &off);
    assert_int_equal(rc, (int)strlen(first));
    assert_string_equal(req.path, "/a");
    assert_int_equal(off, strlen(first) - 2);
    assert_int_equal(req.body_len, 2);

    rc = parse_len(both + rc, strlen(second), &req, &off);
    assert_int_equal(rc, (int)strlen(second));
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/b");
    assert_false(req.keep_alive);

    /* A first request without a body, followed by a partial second one. */
    const char *s = "GET /x HTTP/1.1\r\n\r\nGET /y HT";
    assert_int_equal(parse(s, &req), 19);
    assert_string_equal(req.path, "/x");
}

static void header_names_ignore_case(void **state)
{
    const char *s = "PUT /x HTTP/1.1\r\ncOnTeNt-LeNgTh: 3\r\nCONNECTION: CLOSE\r\n\r\nabc";
    struct http_request req;
    long off;
    assert_int_equal(parse_len(s, strlen(s), &req, &off), (int)strlen(s));
    assert_int_equal(req.body_len, 3);
    assert_false(req.keep_alive);
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n"), -501);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n"), -400);
}

static void whitespace_around_values_is_trimmed(void **state)
{
    const char *s = "PUT /x HTTP/1.1\r\nContent-Length:\t 4 \t\r\nX-Empty:\r\n"
                    "X-Blank: \t \r\nX-Inner: a \t b\r\nConnection:   close   \r\n\r\nabcd";
    struct http_request req;
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_int_equal(req.body_len, 4);
    assert_false(req.keep_alive);
}

static void connection_close_and_lists(void **state)
{
    struct http_request req;
    assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &req), 37);
    assert_false(req.keep_alive);
    parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", &req);
    assert_true(req.keep_alive);
    parse("GET / HTTP/1.1\r\nConnection: Upgrade , close\r\n\r\n", &req);
    assert_false(req.keep_alive);
    parse("GET / HTTP/1.1\r\nConnection: closed, xclose\r\n\r\n", &req);
    assert_true(req.keep_alive);
    /* close wins over keep-alive, also across two header lines. */
    parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", &req);
    assert_false(req.keep_alive);
    parse("GET / HTTP/1.1\r\nConnection: ,,\r\n\r\n", &req);
    assert_true(req.keep_alive);
}

static void http10(void **state)
{
    struct http_request req;
    assert_int_equal(parse("GET /vm HTTP/1.0\r\n\r\n", &req), 20);
    assert_false(req.keep_alive);
    parse("GET /vm HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req);
    assert_true(req.keep_alive);
    parse("GET /vm HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &req);
    assert_false(req.keep_alive);
}

static void query_string_dropped(void **state)
{
    struct http_request req;
    parse("GET /vm/info?verbose=1&x=/a?b HTTP/1.1\r\n\r\n", &req);
    assert_string_equal(req.path, "/vm/info");
    parse("GET /?q HTTP/1.1\r\n\r\n", &req);
    assert_string_equal(req.path, "/");
    parse("GET /vm? HTTP/1.1\r\n\r\n", &req);
    assert_string_equal(req.path, "/vm");
    /* Percent-encoding is kept as it is. */
    parse("GET /a%2Fb%7e HTTP/1.1\r\n\r\n", &req);
    assert_string_equal(req.path, "/a%2Fb%7e");
    /* Every RFC 3986 path character. */
    const char *s = "GET /AZaz09-._~!$&'()*+,;=:@/ HTTP/1.1\r\n\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_string_equal(req.path, "/AZaz09-._~!$&'()*+,;=:@/");
}

static void leading_empty_lines_skipped(void **state)
{
    struct http_request req;
    const char *s = "\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_string_equal(req.path, "/x");
    assert_int_equal(parse("\r\n\r\n\r\n", &req), 0);
}

static void obs_text_in_values_allowed(void **state)
{
    struct http_request req;
    const char *s = "GET / HTTP/1.1\r\nUser-Agent: caf\xc3\xa9\tx\r\n\r\n";
    assert_int_equal(parse(s, &req), (int)strlen(s));
}

static void longest_method_and_target(void **state)
{
    struct http_request req;
    char buf[512];
    char target[HTTP_MAX_PATH];
    target[0] = '/';
    memset(target + 1, 'p', HTTP_MAX_PATH - 2);
    target[HTTP_MAX_PATH - 1] = '\0'; /* 255 bytes */
    snprintf(buf, sizeof buf, "OPTIONS %s HTTP/1.1\r\n\r\n", target);
    assert_int_equal(parse(buf, &req), (int)strlen(buf));
    assert_string_equal(req.method, "OPTIONS");
    assert_string_equal(req.path, target);
}

/* ---- the limits ------------------------------------------------------- */

static void target_too_long_is_414(void **state)
{
    char buf[1024];
    char target[HTTP_MAX_PATH + 1];
    target[0] = '/';
    memset(target + 1, 'p', HTTP_MAX_PATH - 1);
    target[HTTP_MAX_PATH] = '\0'; /* 256 bytes */
    snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\n\r\n", target);
    assert_int_equal(status_of(buf), -414);
    /* The query string counts: the target is what is limited. */
    snprintf(buf, sizeof buf, "GET /vm?%.*s HTTP/1.1\r\n\r\n", HTTP_MAX_PATH - 4, target + 1);
    assert_int_equal(status_of(buf), -414);
}

static void head_limit_is_431(void **state)
{
    static char buf[HTTP_MAX_HEAD + 64];
    struct http_request req;
    const char *line = "GET / HTTP/1.1\r\nX-Pad: ";
    size_t n = strlen(line);

    /* A head of exactly HTTP_MAX_HEAD bytes parses. */
    memcpy(buf, line, n);
    memset(buf + n, 'a', HTTP_MAX_HEAD - n - 4);
    memcpy(buf + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
    assert_int_equal(parse_len(buf, HTTP_MAX_HEAD, &req, NULL), HTTP_MAX_HEAD);

    /* One byte more is 431, found at HTTP_MAX_HEAD bytes without waiting. */
    memset(buf + n, 'a', HTTP_MAX_HEAD - n - 3);
    memcpy(buf + HTTP_MAX_HEAD - 3, "\r\n\r\n", 4);
    assert_int_equal(parse_len(buf, HTTP_MAX_HEAD + 1, &req, NULL), -431);
    assert_int_equal(parse_len(buf, HTTP_MAX_HEAD, &req, NULL), -431);
    assert_int_equal(parse_len(buf, HTTP_MAX_HEAD - 1, &req, NULL), 0);

    /* A request line that never ends, and empty lines that never end. */
    memset(buf, 'a', sizeof buf);
    assert_int_equal(parse_len(buf, sizeof buf, &req, NULL), -431);
    for (size_t i = 0; i < sizeof buf; i += 2)
        memcpy(buf + i, "\r\n", 2);
    assert_int_equal(parse_len(buf, sizeof buf, &req, NULL), -431);
}

static void body_limit_is_413(void **state)
{
    static char buf[HTTP_MAX_BODY + 128];
    struct http_request req;
    long off;

    int n = snprintf(buf, sizeof buf, "PUT /x HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
                     HTTP_MAX_BODY);
    memset(buf + n, '7', HTTP_MAX_BODY);
    assert_int_equal(parse_len(buf, (size_t)n + HTTP_MAX_BODY, &req, &off), n + HTTP_MAX_BODY);
    assert_int_equal(off, n);
    assert_int_equal(req.body_len, HTTP_MAX_BODY);

    /* One more is 413 as soon as the head is in, without the body. */
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nContent-Length: 16385\r\n\r\n"), -413);
    /* The largest value that fits 64 bits is too large, not malformed. */
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n"),
                     -413);
}

static void huge_content_length_is_400(void **state)
{
    /* Policy: a value past 2^64-1 "overflows" and is 400. */
    assert_int_equal(
        status_of("PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), -400);
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"),
                     -400);
    /* Leading zeros are still the same small number. */
    struct http_request req;
    const char *s = "PUT /x HTTP/1.1\r\nContent-Length: 0000000000000000000000002\r\n\r\n{}";
    assert_int_equal(parse(s, &req), (int)strlen(s));
    assert_int_equal(req.body_len, 2);
}

/* ---- malformed: 400 --------------------------------------------------- */

static void bare_lf_and_bare_cr_are_400(void **state)
{
    /* Policy: CRLF only. */
    assert_int_equal(status_of("GET / HTTP/1.1\n\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: x\n\r\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: x\r\n\n"), -400);
    assert_int_equal(status_of("\nGET / HTTP/1.1\r\n\r\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\rHost: x\r\n\r\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\n\r\r\n"), -400);
    /* Found on arrival, before the head is complete. */
    assert_int_equal(status_of("GET / HTTP/1.1\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r"), 0);
}

static void control_bytes_are_400(void **state)
{
    static const char nul_get[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    static const char nul_value[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
    static const char nul_name[] = "GET / HTTP/1.1\r\nX\0A: b\r\n\r\n";
    static const char nul_first[] = "\0GET / HTTP/1.1\r\n\r\n";
    struct http_request req;
    assert_int_equal(parse_len(nul_get, sizeof nul_get - 1, &req, NULL), -400);
    assert_int_equal(parse_len(nul_value, sizeof nul_value - 1, &req, NULL), -400);
    assert_int_equal(parse_len(nul_name, sizeof nul_name - 1, &req, NULL), -400);
    assert_int_equal(parse_len(nul_first, sizeof nul_first - 1, &req, NULL), -400);
    /* Found before the head is complete. */
    assert_int_equal(parse_len(nul_get, 7, &req, NULL), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nX-A: a\x1b[0m\r\n\r\n"), -400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n"), -400);
    assert_int_equal(status_of("GET /\x7f HTTP/1.1\r\n\r\n"), -400);
}

static void bad_request_lines_are_400(void **state)
{
    const char *bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",  /* two spaces */
        "GET / HTTP/1.1 \r\n\r\n",  /* trailing space */
        " GET / HTTP/1.1\r\n\r\n",  /* empty method */
        "GET\t/\tHTTP/1.1\r\n\r\n", /* tabs */
        "GET /\r\n\r\n",            /* HTTP/0.9 style, no version */
        "GET / \r\n\r\n",           /* empty version */
        "GET\r\n\r\n",
        "GET / HTTP/1.1 extra\r\n\r\n",
        "GET / http/1.1\r\n\r\n", /* HTTP-name is case-sensitive */
        "GET / HTTP/11\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/1.\r\n\r\n",
        "GET / HTTP/a.1\r\n\r\n",
        "GET / HTTPS/1.1\r\n\r\n",
        "GET / HTTP/1,1\r\n\r\n",
    };
    EXPECT_ALL_REFUSED(bad, 400);
}

static void bad_methods_are_400(void **state)
{
    const char *bad[] = {
        "OPTIONSX / HTTP/1.1\r\n\r\n", /* 8 characters */
        "VERYLONGMETHODNAME / HTTP/1.1\r\n\r\n",
        "GE(T / HTTP/1.1\r\n\r\n",
        "GE:T / HTTP/1.1\r\n\r\n",
        "G\"T / HTTP/1.1\r\n\r\n",
        "G\xc3\xa9T / HTTP/1.1\r\n\r\n",
    };
    EXPECT_ALL_REFUSED(bad, 400);
    /* Unknown but well-formed methods are the caller's business. */
    struct http_request req;
    assert_int_equal(parse("BREW /pot HTTP/1.1\r\n\r\n", &req), 22);
    assert_string_equal(req.method, "BREW");
}

static void bad_targets_are_400(void **state)
{
    const char *bad[] = {
        "GET http://localhost/vm HTTP/1.1\r\n\r\n", /* absolute-form */
        "OPTIONS * HTTP/1.1\r\n\r\n",               /* asterisk-form */
        "CONNECT localhost:80 HTTP/1.1\r\n\r\n",    /* authority-form */
        "GET vm HTTP/1.1\r\n\r\n",
        "GET /vm#frag HTTP/1.1\r\n\r\n",
        "GET /a\"b HTTP/1.1\r\n\r\n",
        "GET /a<b> HTTP/1.1\r\n\r\n",
        "GET /a\\b HTTP/1.1\r\n\r\n",
        "GET /a{b} HTTP/1.1\r\n\r\n",
        "GET /a|b HTTP/1.1\r\n\r\n",
        "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
        "GET /a%zz HTTP/1.1\r\n\r\n",
        "GET /a%4 HTTP/1.1\r\n\r\n",
        "GET /a% HTTP/1.1\r\n\r\n",
        "GET /?a%g0 HTTP/1.1\r\n\r\n",
        "GET /?a b HTTP/1.1\r\n\r\n",
    };
    EXPECT_ALL_REFUSED(bad, 400);
}

static void bad_header_lines_are_400(void **state)
{
    const char *bad[] = {
        "GET / HTTP/1.1\r\nHost localhost\r\n\r\n",    /* no colon */
        "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n",  /* space before colon */
        "GET / HTTP/1.1\r\nHost\t: localhost\r\n\r\n", /* tab before colon */
        "GET / HTTP/1.1\r\n: localhost\r\n\r\n",       /* empty name */
        "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",      /* obs-fold */
        "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: localhost\r\n\r\n", /* space before first field */
        "GET / HTTP/1.1\r\nX(A): a\r\n\r\n",
        "GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", /* two Hosts */
    };
    EXPECT_ALL_REFUSED(bad, 400);
}

static void bad_content_lengths_are_400(void **state)
{
    const char *values[] = { "",    " ",   "+5",   "-1",       "5 5",  "0x10",
                             "1e3", "5,5", "5, 5", "\xd9\xa5", "5\t5", "five" };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "PUT /x HTTP/1.1\r\nContent-Length: %s\r\n\r\n55555", values[i]);
        if (status_of(buf) != -400)
            fail_msg("not 400: Content-Length: %s", values[i]);
    }
}

static void repeated_content_length(void **state)
{
    struct http_request req;
    const char *same = "PUT /x HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 02\r\n\r\n{}";
    assert_int_equal(parse(same, &req), (int)strlen(same));
    assert_int_equal(req.body_len, 2);
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nContent-Length: 2\r\n"
                               "Content-Length: 3\r\n\r\n{}x"),
                     -400);
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nContent-Length: 2\r\n"
                               "Content-Length: 0\r\n\r\n{}"),
                     -400);
}

/* ---- unsupported: 501, 505 -------------------------------------------- */

static void transfer_encoding_is_501(void **state)
{
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "2\r\n{}\r\n0\r\n\r\n"),
                     -501);
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"), -501);
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n"), -501);
    /* With a Content-Length too (the smuggling case): still 501. */
    assert_int_equal(status_of("PUT /x HTTP/1.1\r\nContent-Length: 2\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n{}"),
                     -501);
    assert_int_equal(status_of("GET / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n"), -501);
}

static void other_versions_are_505(void **state)
{
    const char *bad[] = { "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/0.9\r\n\r\n",
                          "GET / HTTP/1.2\r\n\r\n", "GET / HTTP/3.1\r\n\r\n",
                          "GET / HTTP/9.9\r\nHost: x\r\n\r\n" };
    EXPECT_ALL_REFUSED(bad, 505);
}

static void bad_arguments(void **state)
{
    struct http_request req;
    assert_int_equal(http_parse_request(NULL, 0, &req), 0);
    assert_int_equal(http_parse_request(NULL, 5, &req), -500);
    assert_int_equal(http_parse_request("GET / HTTP/1.1\r\n\r\n", 18, NULL), -500);
}

/* ---- responses -------------------------------------------------------- */

static void reason_phrases(void **state)
{
    assert_string_equal(http_reason(200), "OK");
    assert_string_equal(http_reason(204), "No Content");
    assert_string_equal(http_reason(400), "Bad Request");
    assert_string_equal(http_reason(404), "Not Found");
    assert_string_equal(http_reason(413), "Content Too Large");
    assert_string_equal(http_reason(414), "URI Too Long");
    assert_string_equal(http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_reason(501), "Not Implemented");
    assert_string_equal(http_reason(505), "HTTP Version Not Supported");
    assert_string_equal(http_reason(299), "Unknown");
    assert_string_equal(http_reason(-1), "Unknown");
}

static void format_exact_bytes(void **state)
{
    char out[256];
    const char *body = "{\"fault_message\":\"bad\"}";
    const char *want = "HTTP/1.1 400 Bad Request\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 23\r\n"
                       "Connection: close\r\n"
                       "\r\n"
                       "{\"fault_message\":\"bad\"}";
    assert_int_equal(http_format_response(out, sizeof out, 400, body, false), (int)strlen(want));
    assert_string_equal(out, want);

    assert_int_equal(http_format_response(out, sizeof out, 200, "", true), 38);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    http_format_response(out, sizeof out, 200, NULL, true);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    http_format_response(out, sizeof out, 204, NULL, true);
    assert_string_equal(out, "HTTP/1.1 204 No Content\r\n\r\n");
    http_format_response(out, sizeof out, 204, NULL, false);
    assert_string_equal(out, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    http_format_response(out, sizeof out, 100, NULL, false);
    assert_string_equal(out, "HTTP/1.1 100 Continue\r\n\r\n");
    http_format_response(out, sizeof out, 299, NULL, true);
    assert_string_equal(out, "HTTP/1.1 299 Unknown\r\nContent-Length: 0\r\n\r\n");
}

static void format_too_small_or_invalid(void **state)
{
    char out[256];
    const char *body = "{\"state\":\"Running\"}";
    int need = http_format_response(out, sizeof out, 200, body, true);
    assert_true(need > 0);
    char want[256];
    memcpy(want, out, (size_t)need + 1);
    /* Every cap too small for the response and its NUL: -1, nothing written. */
    for (int cap = 0; cap <= need; cap++) {
        memset(out, '#', sizeof out);
        assert_int_equal(http_format_response(out, (size_t)cap, 200, body, true), -1);
        for (size_t i = 0; i < sizeof out; i++)
            assert_int_equal(out[i], '#');
    }
    assert_int_equal(http_format_response(out, (size_t)need + 1, 200, body, true), need);
    assert_string_equal(out, want);

    /* Bodies where none may be, and statuses out of range. */
    assert_int_equal(http_format_response(out, sizeof out, 204, "{}", true), -1);
    assert_int_equal(http_format_response(out, sizeof out, 100, "{}", true), -1);
    assert_int_equal(http_format_response(out, sizeof out, 99, NULL, true), -1);
    assert_int_equal(http_format_response(out, sizeof out, 600, NULL, true), -1);
    assert_int_equal(http_format_response(NULL, 10, 200, NULL, true), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_without_body),
        cmocka_unit_test(put_with_json_body),
        cmocka_unit_test(minimal_request_and_zero_length),
        cmocka_unit_test(every_prefix_is_incomplete),
        cmocka_unit_test(incomplete_body),
        cmocka_unit_test(pipelined_requests),
        cmocka_unit_test(header_names_ignore_case),
        cmocka_unit_test(whitespace_around_values_is_trimmed),
        cmocka_unit_test(connection_close_and_lists),
        cmocka_unit_test(http10),
        cmocka_unit_test(query_string_dropped),
        cmocka_unit_test(leading_empty_lines_skipped),
        cmocka_unit_test(obs_text_in_values_allowed),
        cmocka_unit_test(longest_method_and_target),
        cmocka_unit_test(target_too_long_is_414),
        cmocka_unit_test(head_limit_is_431),
        cmocka_unit_test(body_limit_is_413),
        cmocka_unit_test(huge_content_length_is_400),
        cmocka_unit_test(bare_lf_and_bare_cr_are_400),
        cmocka_unit_test(control_bytes_are_400),
        cmocka_unit_test(bad_request_lines_are_400),
        cmocka_unit_test(bad_methods_are_400),
        cmocka_unit_test(bad_targets_are_400),
        cmocka_unit_test(bad_header_lines_are_400),
        cmocka_unit_test(bad_content_lengths_are_400),
        cmocka_unit_test(repeated_content_length),
        cmocka_unit_test(transfer_encoding_is_501),
        cmocka_unit_test(other_versions_are_505),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(reason_phrases),
        cmocka_unit_test(format_exact_bytes),
        cmocka_unit_test(format_too_small_or_invalid),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
