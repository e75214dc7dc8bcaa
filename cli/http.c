/* HTTP/1.1 requests for the control socket (vmlet run --api-sock PATH),
 * parsed strictly after RFC 9112 (message syntax), with RFC 9110 for the
 * meaning of the fields and RFC 3986 for the characters of a target.
 *
 * The peer is untrusted: anything that can open the socket. The parser
 * reads only buf[0..len), never past it and never a NUL after it; it does
 * not allocate and keeps no state between calls (the caller passes the
 * whole of what it has received each time). Anything outside the small
 * subset below is rejected with a status rather than guessed at.
 *
 * Accepted:
 *   request-line = method SP origin-form SP HTTP-version CRLF     (§3)
 *     method   1..7 tchars, case-sensitive; not checked against a list
 *              (that is the caller's 405)
 *     target   "/" then RFC 3986 path characters, optionally "?" query;
 *              a "%" needs two hex digits after it; nothing is decoded;
 *              the query is dropped from req->path
 *     version  exactly "HTTP/1.1" or "HTTP/1.0"
 *   field-line   = field-name ":" OWS field-value OWS CRLF         (§5)
 *     field names are tokens, compared case-insensitively; the value
 *     may hold HTAB, SP, visible ASCII and bytes >= 0x80 (obs-text)
 *   an empty line (CRLF) ends the head; a body follows only when there is
 *   a Content-Length (§6.3: a request without one has no body).
 *   Empty lines before the request line are skipped (§2.2 SHOULD); they
 *   count in the returned length and toward HTTP_MAX_HEAD.
 *
 * Rejected, and the policy decisions:
 *   400  Line endings are CRLF only. A bare LF, or a CR not followed by
 *        LF, anywhere in the head is 400 (§2.2 lets a recipient accept a
 *        bare LF; we do not, so a request cannot mean one thing to us and
 *        another to a proxy or a log in between).
 *        Control bytes (0x00-0x1f except HTAB, and 0x7f), including NUL,
 *        anywhere in the head. These two checks run on the bytes as they
 *        arrive, so they fire before the head is complete.
 *        Request line: not exactly three parts separated by single SPs,
 *        a method longer than 7 or with a non-tchar, a target that is not
 *        origin-form (absolute-form "http://...", "*", no leading "/"),
 *        a character not allowed in a path or query ("#", SP, '"', "<",
 *        "\", bytes >= 0x80, ...), a "%" without two hex digits, a version
 *        that is not "HTTP/" DIGIT "." DIGIT.
 *        Field lines: no colon, an empty name, whitespace or any other
 *        non-tchar before the colon (§5.1), obs-fold, i.e. a line starting
 *        with SP or HTAB (§5.2).
 *        Content-Length that is not 1*DIGIT after trimming (no sign, no
 *        spaces inside, no "5, 5" list), that overflows 64 bits, or that
 *        appears again with a different value (the same value again is
 *        accepted). So 99999999999999999999999 is 400, while
 *        18446744073709551615 (fits) is 413 like any other value above
 *        HTTP_MAX_BODY.
 *        More than one Host (§3.2). A missing Host is accepted: this is a
 *        local socket, and curl sends one anyway.
 *   413  Content-Length above HTTP_MAX_BODY (reported as soon as the head
 *        is complete; the body is not waited for).
 *   414  A target (counted with its query string) longer than
 *        HTTP_MAX_PATH - 1 bytes.
 *   431  HTTP_MAX_HEAD bytes from buf[0] without the end of the head.
 *   501  Transfer-Encoding, whatever its value and even with a
 *        Content-Length: we do not do chunked (§6.1).
 *   505  A well-formed version other than HTTP/1.0 and HTTP/1.1.
 *
 * Errors are reported in this order: the byte checks as soon as a bad byte
 * is seen (so before 431), then the request line from left to right
 * (method, target form, 414, target characters, version), the field lines
 * from top to bottom, then 501, then 413.
 *
 * "Expect: 100-continue" is not acted on: the parser just waits for the
 * body, which clients send after a short timeout anyway. */
#include "http.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* tchar (RFC 9110 §5.6.2) */
static bool is_tchar(unsigned char c)
{
    return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* pchar without pct-encoded (checked by the caller), plus "/" (RFC 3986
 * §3.3); the query (§3.4) allows "?" too, which the caller handles. */
static bool is_path_char(unsigned char c)
{
    return is_alnum(c) || (c != 0 && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* s[0..n) equals the lower-case literal lit, ignoring ASCII case (not
 * locale-dependent, unlike strncasecmp). */
static bool equals_ci(const char *s, size_t n, const char *lit)
{
    if (n != strlen(lit))
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

/* Content-Length = 1*DIGIT; false when empty, not all digits, or above
 * UINT64_MAX. */
static bool parse_length(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Connection = #connection-option (RFC 9110 §7.6.1): a comma-separated
 * list; only "close" and "keep-alive" mean anything to us. */
static void parse_connection(const char *s, size_t n, bool *close, bool *keep)
{
    size_t i = 0;
    while (i <= n) {
        size_t a = i, b = i;
        while (b < n && s[b] != ',')
            b++;
        i = b + 1;
        while (a < b && is_ows(s[a]))
            a++;
        while (b > a && is_ows(s[b - 1]))
            b--;
        if (equals_ci(s + a, b - a, "close"))
            *close = true;
        else if (equals_ci(s + a, b - a, "keep-alive"))
            *keep = true;
    }
}

/* Finds the end of the head in buf[0..len), checking every byte on the
 * way. Returns the head's length (up to and including the blank line's
 * CRLF) with *start at the request line, 0 when more bytes are needed, or
 * -STATUS. */
static int find_head(const char *buf, size_t len, size_t *start)
{
    size_t limit = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    size_t line = 0;        /* where the current line starts */
    bool seen_line = false; /* a non-empty line has ended */

    *start = 0;
    for (size_t i = 0; i < limit; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r') {
            if (i + 1 < len && buf[i + 1] != '\n')
                return -400; /* bare CR */
        } else if (c == '\n') {
            if (i == 0 || buf[i - 1] != '\r')
                return -400;     /* bare LF */
            if (i - 1 == line) { /* an empty line */
                if (seen_line)
                    return (int)(i + 1);
                *start = i + 1; /* before the request line */
            } else {
                seen_line = true;
            }
            line = i + 1;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return -400;
        }
    }
    return len >= HTTP_MAX_HEAD ? -431 : 0;
}

int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
    struct http_request r;
    size_t start;

    if (!req || (!buf && len))
        return -500;
    if (len == 0)
        return 0;

    int head = find_head(buf, len, &start);
    if (head <= 0)
        return head;
    size_t head_len = (size_t)head;
    const char *head_end = buf + head_len; /* just past the blank line */
    memset(&r, 0, sizeof r);

    /* The request line. Every line in the head ends with CRLF, and the
     * first CR of a line is its end (find_head checked). */
    const char *p = buf + start;
    const char *eol = memchr(p, '\r', (size_t)(head_end - p));
    if (!eol)
        return -400; /* cannot happen: the head ends with CRLF CRLF */

    const char *sp = memchr(p, ' ', (size_t)(eol - p));
    if (!sp || sp == p || (size_t)(sp - p) >= sizeof r.method)
        return -400;
    for (const char *q = p; q < sp; q++)
        if (!is_tchar((unsigned char)*q))
            return -400;
    memcpy(r.method, p, (size_t)(sp - p));

    const char *target = sp + 1;
    sp = memchr(target, ' ', (size_t)(eol - target));
    if (!sp || sp == target || target[0] != '/')
        return -400;
    size_t target_len = (size_t)(sp - target);
    if (target_len > HTTP_MAX_PATH - 1)
        return -414;
    size_t path_len = target_len;
    for (size_t i = 0; i < target_len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c == '%') {
            if (i + 2 >= target_len || !is_hex((unsigned char)target[i + 1]) ||
                !is_hex((unsigned char)target[i + 2]))
                return -400;
            i += 2;
        } else if (c == '?') {
            if (path_len == target_len)
                path_len = i;
        } else if (!is_path_char(c)) {
            return -400;
        }
    }
    memcpy(r.path, target, path_len);

    const char *v = sp + 1;
    if (eol - v != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit((unsigned char)v[5]) ||
        v[6] != '.' || !is_digit((unsigned char)v[7]))
        return -400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return -505;
    bool http11 = v[7] == '1';

    /* The field lines, up to the blank line at head_end - 2. */
    bool have_length = false, chunked = false, close = false, keep = false;
    uint64_t length = 0;
    unsigned hosts = 0;
    for (p = eol + 2; p < head_end - 2; p = eol + 2) {
        eol = memchr(p, '\r', (size_t)(head_end - p));
        if (!eol)
            return -400; /* cannot happen, as above */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return -400;
        for (const char *q = p; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return -400; /* also whitespace before the colon, obs-fold */
        size_t name_len = (size_t)(colon - p);
        const char *val = colon + 1, *val_end = eol;
        while (val < val_end && is_ows(*val))
            val++;
        while (val_end > val && is_ows(val_end[-1]))
            val_end--;
        size_t val_len = (size_t)(val_end - val);

        if (equals_ci(p, name_len, "content-length")) {
            uint64_t n;
            if (!parse_length(val, val_len, &n) || (have_length && n != length))
                return -400;
            have_length = true;
            length = n;
        } else if (equals_ci(p, name_len, "transfer-encoding")) {
            chunked = true;
        } else if (equals_ci(p, name_len, "connection")) {
            parse_connection(val, val_len, &close, &keep);
        } else if (equals_ci(p, name_len, "host")) {
            if (++hosts > 1)
                return -400;
        }
    }

    if (chunked)
        return -501;
    if (length > HTTP_MAX_BODY)
        return -413;
    if (len - head_len < length)
        return 0;

    r.body = length ? buf + head_len : NULL;
    r.body_len = (size_t)length;
    r.keep_alive = !close && (http11 || keep);
    *req = r;
    return (int)(head_len + (size_t)length);
}

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

int http_format_response(char *out, size_t cap, int status, const char *body, bool keep_alive)
{
    char head[256];
    int n;

    if (!out || status < 100 || status > 599)
        return -1;
    size_t body_len = body ? strlen(body) : 0;
    if (status < 200) {
        /* Interim: the status line alone (RFC 9110 §15.2). */
        if (body_len)
            return -1;
        n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n\r\n", status, http_reason(status));
    } else if (status == 204) {
        /* No Content-Length in a 204 (RFC 9110 §8.6), and no body. */
        if (body_len)
            return -1;
        n = snprintf(head, sizeof head, "HTTP/1.1 204 %s\r\n%s\r\n", http_reason(status),
                     keep_alive ? "" : "Connection: close\r\n");
    } else {
        n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n%s\r\n", status,
                     http_reason(status), body_len ? "Content-Type: application/json\r\n" : "",
                     body_len, keep_alive ? "" : "Connection: close\r\n");
    }
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    size_t head_len = (size_t)n;
    if (body_len > (size_t)INT_MAX - head_len || head_len + body_len >= cap)
        return -1;
    memcpy(out, head, head_len);
    if (body_len)
        memcpy(out + head_len, body, body_len);
    out[head_len + body_len] = '\0';
    return (int)(head_len + body_len);
}
