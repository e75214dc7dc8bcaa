/* vm.json: the configuration as a JSON file (docs/config.md), through
 * vmlet_config_from_json() and vmlet_config_load_json() (include/vmlet.h).
 *
 * Three passes:
 *   1. check_syntax(): our own strict RFC 8259 scan of the raw text. cJSON
 *      is lenient where a config file must not be (leading zeros, raw
 *      control characters and NUL bytes, "\u00zz" read as NUL, NUL bytes
 *      taken as whitespace, no UTF-8 check, 1000 levels of recursion), and
 *      reports errors only as a pointer. The scan is iterative, limits depth
 *      and the number of values, and gives every error a line and column.
 *   2. cJSON builds the tree from text the scan accepted; then read_doc()
 *      checks every key, type and value against the schema into a struct
 *      parsed_doc, naming the key path in errors. "network" entries become
 *      struct net_spec through src/netspec.c's pieces, as --net values do.
 *   3. apply() calls the setters. Nothing is applied before all is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "error.h"
#include "netspec.h"

/* The schema nests 4 deep (object > "network" > entry > "hostfwd"); a few
 * levels of slack so a misplaced value gets a type error naming its key
 * instead of a depth error. */
#define JSON_MAX_DEPTH  8
/* A real vm.json has a few dozen values. Bounds cJSON's allocations (about
 * 64 bytes per value) however the input is shaped. */
#define JSON_MAX_VALUES 10000
/* Longer than any number a user means; cJSON also copies only 63. */
#define JSON_MAX_NUMBER 40
/* Whole numbers above 2^53 are no longer exact as doubles. */
#define JSON_MAX_EXACT  9007199254740992.0
#define PATH_MAX_BYTES  4095

/* ---- messages ------------------------------------------------------------ */

/* Line and column (1-based; columns count characters, not bytes, as
 * editors do, and a byte order mark is not one) of byte offset off. */
static void line_col(const unsigned char *s, size_t off, unsigned long *line, unsigned long *col)
{
    size_t i = off >= 3 && !memcmp(s, "\xef\xbb\xbf", 3) ? 3 : 0;
    *line = 1;
    *col = 1;
    for (; i < off; i++) {
        if (s[i] == '\n') {
            ++*line;
            *col = 1;
        } else if ((s[i] & 0xc0) != 0x80) {
            ++*col;
        }
    }
}

/* A user's string for a message: quoted, control bytes escaped, cut at a
 * character boundary after about max bytes so the message stays one line. */
static const char *quote(char *buf, size_t size, const char *s, size_t max)
{
    size_t o = 0, i = 0, n = strlen(s);
    if (n > max) {
        n = max;
        while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    buf[o++] = '"';
    /* Room is kept for an escape, "..." and the closing quote. */
    for (; i < n && o + 10 < size; i++) {
        unsigned char ch = s[i];
        if (ch < 0x20 || ch == 0x7f)
            o += snprintf(buf + o, size - o, "\\x%02x", ch);
        else if (ch == '"' || ch == '\\')
            o += snprintf(buf + o, size - o, "\\%c", ch);
        else
            buf[o++] = ch;
    }
    if (s[i]) {
        /* Never end inside a character: continuation bytes were copied
         * one for one, so step back over them. */
        while (i && ((unsigned char)s[i] & 0xc0) == 0x80) {
            i--;
            o--;
        }
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* The shortest form of v that reads back the same. */
static const char *format_number(char *buf, size_t size, double v)
{
    snprintf(buf, size, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, size, "%.17g", v);
    return buf;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsTrue(v))
        return "true";
    if (cJSON_IsFalse(v))
        return "false";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

/* Where in the document we are, as the user would write it:
 * network[0].hostfwd[2]. */
struct keypath {
    char s[200];
    size_t len;
};

static bool plain_key(const char *k)
{
    if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || *k == '_'))
        return false;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_'))
            return false;
    return true;
}

/* Returns the old length, for path_pop(). Keys that are not plain words
 * are written quoted in brackets so the path stays unambiguous. */
static size_t path_key(struct keypath *p, const char *key)
{
    size_t old = p->len;
    char q[72];
    int n;
    if (plain_key(key) && strlen(key) <= 40)
        n = snprintf(p->s + p->len, sizeof p->s - p->len, "%s%s", p->len ? "." : "", key);
    else
        n = snprintf(p->s + p->len, sizeof p->s - p->len, "[%s]", quote(q, sizeof q, key, 40));
    if (n > 0)
        p->len = p->len + n < sizeof p->s ? p->len + n : sizeof p->s - 1;
    return old;
}

static size_t path_index(struct keypath *p, unsigned i)
{
    size_t old = p->len;
    int n = snprintf(p->s + p->len, sizeof p->s - p->len, "[%u]", i);
    if (n > 0)
        p->len = p->len + n < sizeof p->s ? p->len + n : sizeof p->s - 1;
    return old;
}

static void path_pop(struct keypath *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

__attribute__((format(printf, 3, 4))) static int key_error(vmlet_error *err,
                                                           const struct keypath *p, const char *fmt,
                                                           ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_error(err, VMLET_ERR_INVALID, "%s: %s", p->s, msg);
}

__attribute__((format(printf, 4, 5))) static int syntax_error(vmlet_error *err,
                                                              const unsigned char *s, size_t off,
                                                              const char *fmt, ...)
{
    char msg[400];
    unsigned long line, col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    line_col(s, off, &line, &col);
    return set_error(err, VMLET_ERR_FILE, "line %lu, column %lu: %s", line, col, msg);
}

/* How to show the byte at s[i] in "unexpected ..." messages. */
static const char *describe_byte(char *buf, size_t size, unsigned char ch)
{
    if (ch > 0x20 && ch < 0x7f)
        snprintf(buf, size, "'%c'", ch);
    else
        snprintf(buf, size, "byte 0x%02x", ch);
    return buf;
}

/* ---- pass 1: syntax -------------------------------------------------------- */

static bool is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static size_t skip_ws(const unsigned char *s, size_t len, size_t i)
{
    while (i < len && is_ws(s[i]))
        i++;
    return i;
}

/* Length of the valid UTF-8 sequence at s[i] (a byte >= 0x80), or 0 with
 * *why set: the checks of RFC 3629, each with its own message. */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t i, const char **why)
{
    unsigned char b = s[i];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the 2nd byte */
    if (b < 0xc0) {
        *why = "a continuation byte with no lead byte";
        return 0;
    }
    if (b < 0xc2) {
        *why = "an overlong encoding";
        return 0;
    }
    if (b < 0xe0) {
        n = 2;
    } else if (b < 0xf0) {
        n = 3;
        if (b == 0xe0)
            lo = 0xa0; /* below: overlong */
        if (b == 0xed)
            hi = 0x9f; /* above: UTF-16 surrogates */
    } else if (b < 0xf5) {
        n = 4;
        if (b == 0xf0)
            lo = 0x90; /* below: overlong */
        if (b == 0xf4)
            hi = 0x8f; /* above: beyond U+10FFFF */
    } else {
        *why = "a byte that never appears in UTF-8";
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if (i + k >= len || (s[i + k] & 0xc0) != 0x80) {
            *why = "a truncated sequence";
            return 0;
        }
    }
    if (s[i + 1] < lo || s[i + 1] > hi) {
        *why = b == 0xed   ? "an encoded UTF-16 surrogate (U+D800..U+DFFF)"
               : b == 0xf4 ? "a code point beyond U+10FFFF"
                           : "an overlong encoding";
        return 0;
    }
    return n;
}

static int hex4(const unsigned char *s, size_t len, size_t i, unsigned *out)
{
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        if (i + k >= len)
            return -1;
        unsigned char ch = s[i + k];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v |= ch - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* A string starting at the quote s[*i]; leaves *i after the closing quote. */
static int scan_string(const unsigned char *s, size_t len, size_t *i, vmlet_error *err)
{
    size_t start = *i, p = start + 1;
    char b[16];
    for (;;) {
        if (p >= len)
            return syntax_error(err, s, start, "this string is not closed; add '\"'");
        unsigned char ch = s[p];
        if (ch == '"')
            break;
        if (ch == 0)
            return syntax_error(err, s, p, "NUL byte in a string");
        if (ch < 0x20)
            return syntax_error(err, s, p,
                                "control character 0x%02x in a string; "
                                "write it as an escape such as \\n or \\u%04x",
                                ch, ch);
        if (ch >= 0x80) {
            const char *why;
            size_t n = utf8_seq(s, len, p, &why);
            if (!n)
                return syntax_error(err, s, p, "invalid UTF-8 in a string (byte 0x%02x): %s", ch,
                                    why);
            p += n;
            continue;
        }
        if (ch != '\\') {
            p++;
            continue;
        }
        if (p + 1 >= len)
            return syntax_error(err, s, start, "this string is not closed; add '\"'");
        ch = s[p + 1];
        if (ch && strchr("\"\\/bfnrt", ch)) {
            p += 2;
            continue;
        }
        if (ch != 'u')
            return syntax_error(err, s, p,
                                "invalid escape: backslash then %s; the escapes "
                                "are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                                describe_byte(b, sizeof b, ch));
        unsigned u, u2;
        if (hex4(s, len, p + 2, &u) < 0)
            return syntax_error(err, s, p, "\\u needs four hex digits");
        if (u == 0)
            return syntax_error(err, s, p,
                                "\\u0000 (a NUL character) is not allowed "
                                "in a string");
        if (u >= 0xdc00 && u <= 0xdfff)
            return syntax_error(err, s, p, "\\u%04x is a lone UTF-16 low surrogate", u);
        if (u >= 0xd800 && u <= 0xdbff) {
            /* A high surrogate must be followed by an escaped low one. */
            if (p + 7 >= len || s[p + 6] != '\\' || s[p + 7] != 'u' ||
                hex4(s, len, p + 8, &u2) < 0 || u2 < 0xdc00 || u2 > 0xdfff)
                return syntax_error(err, s, p,
                                    "\\u%04x is a UTF-16 high surrogate "
                                    "without a low surrogate after it",
                                    u);
            p += 12;
            continue;
        }
        p += 6;
    }
    *i = p + 1;
    return 0;
}

static int scan_number(const unsigned char *s, size_t len, size_t *i, vmlet_error *err)
{
    size_t start = *i, p = start;
    char b[16];
#define DIGIT(k) ((k) < len && s[k] >= '0' && s[k] <= '9')
    if (s[p] == '-')
        p++;
    if (!DIGIT(p))
        return syntax_error(err, s, p, "expected a digit, got %s",
                            p < len ? describe_byte(b, sizeof b, s[p]) : "the end");
    if (s[p] == '0' && DIGIT(p + 1))
        return syntax_error(err, s, start,
                            "numbers cannot start with 0 (leading zeros "
                            "are not JSON)");
    while (DIGIT(p))
        p++;
    if (p < len && s[p] == '.') {
        p++;
        if (!DIGIT(p))
            return syntax_error(err, s, p, "expected a digit after '.'");
        while (DIGIT(p))
            p++;
    }
    if (p < len && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < len && (s[p] == '+' || s[p] == '-'))
            p++;
        if (!DIGIT(p))
            return syntax_error(err, s, p, "expected a digit in the exponent");
        while (DIGIT(p))
            p++;
    }
#undef DIGIT
    if (p - start > JSON_MAX_NUMBER)
        return syntax_error(err, s, start,
                            "this number is %zu characters long; at most "
                            "%d are allowed",
                            p - start, JSON_MAX_NUMBER);
    *i = p;
    return 0;
}

/* Checks text is exactly one JSON value (RFC 8259) of acceptable size and
 * depth. Iterative, so hostile nesting costs no stack. */
static int check_syntax(const unsigned char *s, size_t len, size_t start, vmlet_error *err)
{
    enum { VALUE, FIRST_VALUE, KEY, FIRST_KEY, COLON, NEXT, DONE } want = VALUE;
    char stack[JSON_MAX_DEPTH]; /* '{' or '[' per open container */
    unsigned depth = 0;
    unsigned long values = 0;
    bool after_comma = false; /* for the "trailing ','" hint */
    char b[16];
    size_t i = start;

    for (;;) {
        i = skip_ws(s, len, i);
        if (i == len) {
            if (want == DONE)
                return 0;
            /* The text ends before its first value (else want is DONE or a
             * container is open). */
            if (depth == 0)
                return set_error(err, VMLET_ERR_FILE,
                                 "no JSON value: the text is empty or only "
                                 "whitespace; give an object such as {\"kernel\": \"bzImage\"}");
            return syntax_error(err, s, len, "the text ends inside %s; close it with '%c'",
                                stack[depth - 1] == '{' ? "an object" : "an array",
                                stack[depth - 1] == '{' ? '}' : ']');
        }
        unsigned char ch = s[i];
        bool comma = after_comma;
        after_comma = false;
        switch (want) {
        case FIRST_VALUE:
            if (ch == ']')
                goto close;
            /* fall through */
        case VALUE:
            if (++values > JSON_MAX_VALUES)
                return syntax_error(err, s, i,
                                    "more than %d values; a vm.json is much "
                                    "smaller",
                                    JSON_MAX_VALUES);
            if (ch == '{' || ch == '[') {
                if (depth == JSON_MAX_DEPTH)
                    return syntax_error(err, s, i,
                                        "nested more than %d levels deep; a "
                                        "vm.json needs at most 4",
                                        JSON_MAX_DEPTH);
                stack[depth++] = ch;
                want = ch == '{' ? FIRST_KEY : FIRST_VALUE;
                i++;
                continue;
            }
            if (ch == '"') {
                if (scan_string(s, len, &i, err) < 0)
                    return -1;
            } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
                if (scan_number(s, len, &i, err) < 0)
                    return -1;
            } else if (len - i >= 4 && !memcmp(s + i, "true", 4)) {
                i += 4;
            } else if (len - i >= 5 && !memcmp(s + i, "false", 5)) {
                i += 5;
            } else if (len - i >= 4 && !memcmp(s + i, "null", 4)) {
                i += 4;
            } else if (ch == ']' || ch == '}') {
                return syntax_error(err, s, i, "expected a value before '%c'%s", ch,
                                    comma ? "; remove the trailing ','" : "");
            } else {
                return syntax_error(err, s, i,
                                    "expected a value (a string in double "
                                    "quotes, a number, an object, an array, true, false "
                                    "or null), got %s",
                                    describe_byte(b, sizeof b, ch));
            }
            want = depth ? NEXT : DONE;
            continue;
        case FIRST_KEY:
            if (ch == '}')
                goto close;
            /* fall through */
        case KEY:
            if (ch != '"')
                return syntax_error(err, s, i, "expected a key in double quotes, got %s%s",
                                    describe_byte(b, sizeof b, ch),
                                    comma && ch == '}' ? "; remove the trailing ','" : "");
            if (scan_string(s, len, &i, err) < 0)
                return -1;
            want = COLON;
            continue;
        case COLON:
            if (ch != ':')
                return syntax_error(err, s, i, "expected ':' after the key, got %s",
                                    describe_byte(b, sizeof b, ch));
            i++;
            want = VALUE;
            continue;
        case NEXT:
            if (ch == ',') {
                after_comma = true;
                i++;
                want = stack[depth - 1] == '{' ? KEY : VALUE;
                continue;
            }
            if (ch == (stack[depth - 1] == '{' ? '}' : ']'))
                goto close;
            return syntax_error(err, s, i, "expected ',' or '%c', got %s",
                                stack[depth - 1] == '{' ? '}' : ']',
                                describe_byte(b, sizeof b, ch));
        case DONE:
            return syntax_error(err, s, i, "unexpected %s after the end of the JSON value",
                                describe_byte(b, sizeof b, ch));
        }
    close:
        depth--;
        i++;
        want = depth ? NEXT : DONE;
    }
}

/* ---- pass 2: schema ------------------------------------------------------ */

struct parsed_disk {
    const char *path, *serial;
    bool read_only;
};

struct parsed_share {
    const char *path, *tag;
    bool read_only, cache_always;
};

/* What the document sets; strings point into the cJSON tree. */
struct parsed_doc {
    bool has_cpus, has_memory, has_console, has_rng;
    unsigned cpus;
    uint64_t memory;
    vmlet_console_kind console;
    bool rng;
    const char *kernel, *initrd, *cmdline, *kvm_device; /* NULL: not set */
    struct parsed_disk disks[VMLET_MAX_DISKS];
    unsigned ndisks;
    struct net_spec nets[VMLET_MAX_NICS];
    unsigned nnets;
    bool has_shutdown_timeout;
    unsigned shutdown_timeout;
    bool has_seccomp;
    vmlet_seccomp_mode seccomp;
    uint64_t vsock_cid;
    const char *vsock_uds; /* NULL: no "vsock" */
    bool has_balloon;
    unsigned balloon_flags, balloon_stats_s;
    struct parsed_share shares[VMLET_MAX_SHARES];
    unsigned nshares;
};

/* Matches obj's members against the known names: found[k] is the member
 * for names[k] or NULL. Unknown and repeated keys are errors (cJSON keeps
 * both copies of a repeated key; which one wins would be an accident). */
static int match_keys(const cJSON *obj, const char *const *names, unsigned n, const cJSON **found,
                      struct keypath *p, vmlet_error *err)
{
    for (unsigned k = 0; k < n; k++)
        found[k] = NULL;
    for (const cJSON *m = obj->child; m; m = m->next) {
        unsigned k = 0;
        while (k < n && strcmp(m->string, names[k]))
            k++;
        size_t old = path_key(p, m->string);
        if (k == n) {
            char list[300];
            size_t o = 0;
            for (unsigned j = 0; j < n; j++)
                o += snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", names[j]);
            return key_error(err, p, "unknown key; known keys are %s", list);
        }
        if (found[k])
            return key_error(err, p, "duplicate key; give it once");
        found[k] = m;
        path_pop(p, old);
    }
    return 0;
}

/* A whole number in [min, max] (max <= 2^53): JSON numbers arrive as
 * doubles, so the checks are on the double. */
static int get_uint(const cJSON *v, struct keypath *p, uint64_t min, uint64_t max, uint64_t *out,
                    vmlet_error *err)
{
    char num[40];
    if (!cJSON_IsNumber(v))
        return key_error(err, p, "expected a whole number, got %s", type_name(v));
    double d = v->valuedouble;
    if (isinf(d))
        return key_error(err, p, "the number is too %s to represent", d > 0 ? "large" : "negative");
    format_number(num, sizeof num, d);
    if (d < 0)
        return key_error(err, p, "%s is negative; give %llu to %llu", num, (unsigned long long)min,
                         (unsigned long long)max);
    if (d > JSON_MAX_EXACT)
        return key_error(err, p,
                         "%s is too large (above 2^53, where JSON numbers stop "
                         "being exact)",
                         num);
    if (d != (double)(uint64_t)d) /* in range now, so the cast is defined */
        return key_error(err, p, "%s is not a whole number", num);
    if (d < (double)min || d > (double)max)
        return key_error(err, p, "%s is out of range; give %llu to %llu", num,
                         (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)d;
    return 0;
}

static int get_bool(const cJSON *v, struct keypath *p, bool *out, vmlet_error *err)
{
    if (!cJSON_IsBool(v))
        return key_error(err, p, "expected true or false, got %s", type_name(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A string of at most max bytes, or non-empty too when nonempty is set;
 * what names what it should be, for the message. */
static int get_string(const cJSON *v, struct keypath *p, bool nonempty, size_t max,
                      const char *what, const char **out, vmlet_error *err)
{
    if (!cJSON_IsString(v))
        return key_error(err, p, "expected a string (%s), got %s", what, type_name(v));
    size_t n = strlen(v->valuestring);
    if (nonempty && n == 0)
        return key_error(err, p, "empty; give %s", what);
    if (n > max)
        return key_error(err, p, "%zu bytes is too long; at most %zu", n, max);
    *out = v->valuestring;
    return 0;
}

static int read_memory(const cJSON *v, struct keypath *p, uint64_t *out, vmlet_error *err)
{
    char q[64];
    if (cJSON_IsString(v)) {
        if (vmlet_parse_size(v->valuestring, out) < 0)
            return key_error(err, p,
                             "%s is not a size; give bytes or a number with K, "
                             "M, G or T, e.g. \"512M\"",
                             quote(q, sizeof q, v->valuestring, 40));
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return key_error(err, p,
                         "expected a size (a string such as \"512M\" or a whole "
                         "number of bytes), got %s",
                         type_name(v));
    if (v->valuedouble < 0)
        return key_error(err, p,
                         "a size cannot be negative; give bytes or a string such "
                         "as \"512M\"");
    if (get_uint(v, p, 0, (uint64_t)JSON_MAX_EXACT, out, err) < 0)
        return -1;
    /* "memory": 512 most likely meant MiB; validate would only say 0 MiB. */
    if (*out && *out < VMLET_MIN_MEMORY)
        return key_error(err, p,
                         "%llu byte%s is less than the 16 MiB minimum; a number "
                         "means bytes: write \"%lluM\" for MiB",
                         (unsigned long long)*out, *out == 1 ? "" : "s", (unsigned long long)*out);
    return 0;
}

static int read_console(const cJSON *v, struct keypath *p, vmlet_console_kind *out,
                        vmlet_error *err)
{
    char q[64];
    if (!cJSON_IsString(v))
        return key_error(err, p, "expected a string (\"serial\" or \"virtio\"), got %s",
                         type_name(v));
    if (!strcmp(v->valuestring, "serial"))
        *out = VMLET_CONSOLE_SERIAL;
    else if (!strcmp(v->valuestring, "virtio"))
        *out = VMLET_CONSOLE_VIRTIO;
    else
        return key_error(err, p, "%s is not a console; give \"serial\" or \"virtio\"",
                         quote(q, sizeof q, v->valuestring, 40));
    return 0;
}

static int read_seccomp(const cJSON *v, struct keypath *p, vmlet_seccomp_mode *out,
                        vmlet_error *err)
{
    char q[64];
    if (!cJSON_IsString(v))
        return key_error(err, p, "expected a string (\"on\", \"off\" or \"log\"), got %s",
                         type_name(v));
    if (!strcmp(v->valuestring, "on"))
        *out = VMLET_SECCOMP_ON;
    else if (!strcmp(v->valuestring, "off"))
        *out = VMLET_SECCOMP_OFF;
    else if (!strcmp(v->valuestring, "log"))
        *out = VMLET_SECCOMP_LOG;
    else
        return key_error(err, p, "%s is not a sandbox mode; give \"on\", \"off\" or \"log\"",
                         quote(q, sizeof q, v->valuestring, 40));
    return 0;
}

static int read_disk(const cJSON *v, struct keypath *p, struct parsed_disk *d, vmlet_error *err)
{
    static const char *const names[] = { "path", "read_only", "serial" };
    const cJSON *f[3];
    size_t old;
    if (!cJSON_IsObject(v))
        return key_error(err, p,
                         "expected an object such as {\"path\": \"root.img\"}, "
                         "got %s",
                         type_name(v));
    if (match_keys(v, names, 3, f, p, err) < 0)
        return -1;
    if (!f[0])
        return key_error(err, p, "no \"path\"; give the disk image or block device");
    memset(d, 0, sizeof *d);
    old = path_key(p, "path");
    if (get_string(f[0], p, true, PATH_MAX_BYTES, "an image file or block device", &d->path, err) <
        0)
        return -1;
    path_pop(p, old);
    if (f[1]) {
        old = path_key(p, "read_only");
        if (get_bool(f[1], p, &d->read_only, err) < 0)
            return -1;
        path_pop(p, old);
    }
    if (f[2]) {
        /* Its characters and length are vmlet_config_validate()'s to check. */
        old = path_key(p, "serial");
        if (get_string(f[2], p, false, SIZE_MAX, "up to 20 characters", &d->serial, err) < 0)
            return -1;
        path_pop(p, old);
    }
    return 0;
}

static int read_disk_at(const cJSON *v, struct keypath *p, void *items, unsigned i,
                        vmlet_error *err)
{
    return read_disk(v, p, &((struct parsed_disk *)items)[i], err);
}

/* {"path": "/home/me/project", "tag": "project", "read_only": false,
 * "cache": "auto"}; the tag's length and the directory are
 * vmlet_config_validate()'s to check. */
static int read_share_at(const cJSON *v, struct keypath *p, void *items, unsigned i,
                         vmlet_error *err)
{
    static const char *const names[] = { "path", "tag", "read_only", "cache" };
    struct parsed_share *sh = &((struct parsed_share *)items)[i];
    const cJSON *f[4];
    size_t old;
    if (!cJSON_IsObject(v))
        return key_error(err, p,
                         "expected an object such as {\"path\": \"/home/me/project\", \"tag\": "
                         "\"project\"}, got %s",
                         type_name(v));
    if (match_keys(v, names, 4, f, p, err) < 0)
        return -1;
    if (!f[0])
        return key_error(err, p, "no \"path\"; give the host directory to share");
    if (!f[1])
        return key_error(err, p, "no \"tag\"; give the name the guest mounts the share by");
    memset(sh, 0, sizeof *sh);
    old = path_key(p, "path");
    if (get_string(f[0], p, true, PATH_MAX_BYTES, "a directory", &sh->path, err) < 0)
        return -1;
    path_pop(p, old);
    old = path_key(p, "tag");
    if (get_string(f[1], p, true, SIZE_MAX, "up to 36 bytes", &sh->tag, err) < 0)
        return -1;
    path_pop(p, old);
    if (f[2]) {
        old = path_key(p, "read_only");
        if (get_bool(f[2], p, &sh->read_only, err) < 0)
            return -1;
        path_pop(p, old);
    }
    if (f[3]) {
        old = path_key(p, "cache");
        const char *cache = "";
        if (get_string(f[3], p, true, SIZE_MAX, "\"auto\" or \"always\"", &cache, err) < 0)
            return -1;
        if (strcmp(cache, "auto") && strcmp(cache, "always"))
            return key_error(err, p, "expected \"auto\" (1 s) or \"always\" (a day), got \"%s\"",
                             cache);
        sh->cache_always = !strcmp(cache, "always");
        path_pop(p, old);
    }
    return 0;
}

/* An array of at most max objects, each read by read_at into items[i];
 * example shows one, for the message. */
static int read_array(const cJSON *v, struct keypath *p, unsigned max, const char *what,
                      const char *example,
                      int (*read_at)(const cJSON *, struct keypath *, void *, unsigned,
                                     vmlet_error *),
                      void *items, unsigned *count, vmlet_error *err)
{
    if (!cJSON_IsArray(v))
        return key_error(err, p, "expected an array of objects such as [%s], got %s", example,
                         type_name(v));
    unsigned n = cJSON_GetArraySize(v), i = 0;
    if (n > max)
        return key_error(err, p, "%u %s; at most %u are allowed", n, what, max);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        size_t old = path_index(p, i);
        if (read_at(e, p, items, i, err) < 0)
            return -1;
        path_pop(p, old);
    }
    *count = n;
    return 0;
}

/* "vsock": {"guest_cid": 3, "uds_path": "/run/vm1/vsock.sock"}, Firecracker's
 * names. The path's length is vmlet_config_validate()'s to check. */
static int read_vsock(const cJSON *v, struct keypath *p, struct parsed_doc *d, vmlet_error *err)
{
    static const char *const names[] = { "guest_cid", "uds_path" };
    const cJSON *f[2];
    if (!cJSON_IsObject(v))
        return key_error(err, p,
                         "expected an object such as {\"guest_cid\": 3, \"uds_path\": "
                         "\"/run/vm1/vsock.sock\"}, got %s",
                         type_name(v));
    if (match_keys(v, names, 2, f, p, err) < 0)
        return -1;
    if (!f[0])
        return key_error(err, p, "no \"guest_cid\"; give the guest's address, 3 or more");
    if (!f[1])
        return key_error(err, p, "no \"uds_path\"; give the host's Unix socket path");
    size_t old = path_key(p, "guest_cid");
    if (get_uint(f[0], p, VMLET_VSOCK_MIN_CID, VMLET_VSOCK_MAX_CID, &d->vsock_cid, err) < 0)
        return -1;
    path_pop(p, old);
    old = path_key(p, "uds_path");
    if (get_string(f[1], p, true, PATH_MAX_BYTES, "the path of the Unix socket to create",
                   &d->vsock_uds, err) < 0)
        return -1;
    path_pop(p, old);
    return 0;
}

/* "balloon": {"deflate_on_oom": true, "free_page_reporting": true,
 * "stats_polling_interval_s": 5}, Firecracker's names (free page reporting
 * its newer one); every key may be left out, {} is a balloon with none. */
static int read_balloon(const cJSON *v, struct keypath *p, struct parsed_doc *d, vmlet_error *err)
{
    static const char *const names[] = { "deflate_on_oom", "free_page_reporting",
                                         "stats_polling_interval_s" };
    static const unsigned flag[] = { VMLET_BALLOON_DEFLATE_ON_OOM,
                                     VMLET_BALLOON_FREE_PAGE_REPORTING };
    const cJSON *f[3];
    if (!cJSON_IsObject(v))
        return key_error(err, p,
                         "expected an object such as {\"free_page_reporting\": true, "
                         "\"stats_polling_interval_s\": 5}, got %s",
                         type_name(v));
    if (match_keys(v, names, 3, f, p, err) < 0)
        return -1;
    d->balloon_flags = 0;
    d->balloon_stats_s = 0;
    for (unsigned k = 0; k < 2; k++) {
        bool on = false;
        size_t old = path_key(p, names[k]);
        if (f[k] && get_bool(f[k], p, &on, err) < 0)
            return -1;
        path_pop(p, old);
        if (on)
            d->balloon_flags |= flag[k];
    }
    if (f[2]) {
        uint64_t u;
        size_t old = path_key(p, names[2]);
        if (get_uint(f[2], p, 0, VMLET_BALLOON_MAX_STATS_INTERVAL, &u, err) < 0)
            return -1;
        path_pop(p, old);
        d->balloon_stats_s = (unsigned)u;
    }
    d->has_balloon = true;
    return 0;
}

/* ---- network: parsed by src/netspec.c, as --net is ---------------------------- */

static int read_mac(const cJSON *v, struct keypath *p, struct net_spec *net, vmlet_error *err)
{
    char q[64];
    if (!cJSON_IsString(v))
        return key_error(err, p, "expected a string such as \"52:54:00:12:34:56\", got %s",
                         type_name(v));
    switch (net_parse_mac(v->valuestring, strlen(v->valuestring), net->mac)) {
    case NET_MAC_OK: break;
    case NET_MAC_SYNTAX:
        return key_error(err, p,
                         "%s is not a MAC address; write six hex pairs such as "
                         "\"52:54:00:12:34:56\"",
                         quote(q, sizeof q, v->valuestring, 40));
    case NET_MAC_MULTICAST:
        return key_error(err, p,
                         "%s is a multicast address; a NIC needs a unicast one "
                         "(even first byte), e.g. \"52:54:00:12:34:56\"",
                         v->valuestring);
    case NET_MAC_ZERO: return key_error(err, p, "00:00:00:00:00:00 is not a usable address");
    }
    net->has_mac = true;
    return 0;
}

/* What is wrong with a rule, in this file's words ("the host port ..."). */
static const char *hostfwd_why(enum net_fwd_error e, const struct net_hostfwd *f, char *buf,
                               size_t size)
{
    switch (e) {
    case NET_FWD_OK: return NULL;
    case NET_FWD_TOO_LONG: return "it is too long to be a forwarding rule";
    case NET_FWD_NO_COLON: return "it has no ':'";
    case NET_FWD_PROTOCOL: return "the protocol is not tcp or udp";
    case NET_FWD_NO_DASH: return "it has no '-' between the host and the guest side";
    case NET_FWD_TWO_DASHES: return "it has more than one '-'";
    case NET_FWD_HOST_SIDE: return "the host side has no ':PORT'";
    case NET_FWD_HOST_ADDR: return "the host address is not an IPv4 address such as 127.0.0.1";
    case NET_FWD_HOST_PORT: return "the host port is not a number from 1 to 65535";
    case NET_FWD_GUEST_SIDE: return "the guest side has no ':PORT'";
    case NET_FWD_GUEST_ADDR: return "the guest address is not an IPv4 address such as 10.0.2.15";
    case NET_FWD_GUEST_NETWORK: return "the guest address is not in the guest network 10.0.2.0/24";
    case NET_FWD_GUEST_RESERVED:
        snprintf(buf, size, "the guest address is %s, not a guest",
                 net_guest_addr_role(f->guest_addr));
        return buf;
    case NET_FWD_GUEST_PORT: return "the guest port is not a number from 1 to 65535";
    }
    return "it is not a forwarding rule";
}

static int read_hostfwds(const cJSON *v, struct keypath *p, struct net_spec *net, vmlet_error *err)
{
    char q[80], part[NET_HOSTFWD_TEXT_MAX], why[96];
    if (!cJSON_IsArray(v))
        return key_error(err, p,
                         "expected an array of strings such as "
                         "[\"tcp:127.0.0.1:8080-:80\"], got %s",
                         type_name(v));
    unsigned n = cJSON_GetArraySize(v), i = 0;
    if (n > NET_SPEC_MAX_HOSTFWD)
        return key_error(err, p, "%u rules; at most %d are allowed", n, NET_SPEC_MAX_HOSTFWD);
    for (const cJSON *r = v->child; r; r = r->next, i++) {
        size_t old = path_index(p, i);
        if (!cJSON_IsString(r))
            return key_error(err, p,
                             "expected a string such as \"tcp:127.0.0.1:8080-:80\", "
                             "got %s",
                             type_name(r));
        enum net_fwd_error e = net_parse_hostfwd(r->valuestring, strlen(r->valuestring),
                                                 &net->hostfwd[i], part);
        if (e != NET_FWD_OK)
            return key_error(err, p,
                             "%s: %s; the form is "
                             "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
                             quote(q, sizeof q, r->valuestring, 64),
                             hostfwd_why(e, &net->hostfwd[i], why, sizeof why));
        path_pop(p, old);
    }
    net->nhostfwd = n;
    return 0;
}

static int read_net(const cJSON *v, struct keypath *p, struct net_spec *net, vmlet_error *err)
{
    /* All keys first, so a misspelt "type" is reported as such. */
    static const char *const all[] = { "type", "hostfwd",       "name",
                                       "mac",  "host_loopback", "max_flows" };
    enum { TYPE, HOSTFWD, NAME, MAC, LOOPBACK, MAX_FLOWS, NKEYS };
    const cJSON *f[NKEYS];
    char q[64];
    size_t old;
    if (!cJSON_IsObject(v))
        return key_error(err, p, "expected an object such as {\"type\": \"user\"}, got %s",
                         type_name(v));
    if (match_keys(v, all, NKEYS, f, p, err) < 0)
        return -1;
    memset(net, 0, sizeof *net);
    if (!f[TYPE])
        return key_error(err, p, "no \"type\"; give \"type\": \"user\" or \"tap\"");
    old = path_key(p, "type");
    if (!cJSON_IsString(f[TYPE]))
        return key_error(err, p, "expected a string (\"user\" or \"tap\"), got %s",
                         type_name(f[TYPE]));
    if (!strcmp(f[TYPE]->valuestring, "user"))
        net->kind = NET_SPEC_USER;
    else if (!strcmp(f[TYPE]->valuestring, "tap"))
        net->kind = NET_SPEC_TAP;
    else
        return key_error(err, p, "%s is not a network type; give \"user\" or \"tap\"",
                         quote(q, sizeof q, f[TYPE]->valuestring, 40));
    path_pop(p, old);

    bool user = net->kind == NET_SPEC_USER;
    if ((user && f[NAME]) || (!user && (f[HOSTFWD] || f[LOOPBACK] || f[MAX_FLOWS]))) {
        path_key(p, user          ? "name"
                    : f[HOSTFWD]  ? "hostfwd"
                    : f[LOOPBACK] ? "host_loopback"
                                  : "max_flows");
        return key_error(err, p, "not a key of a %s network; its keys are %s",
                         user ? "user" : "tap",
                         user ? "type, hostfwd, mac, host_loopback, max_flows" : "type, name, mac");
    }
    /* In file order, as everywhere. */
    for (const cJSON *m = v->child; m; m = m->next) {
        int rc = 0;
        old = path_key(p, m->string);
        if (m == f[HOSTFWD]) {
            rc = read_hostfwds(m, p, net, err);
        } else if (m == f[NAME]) {
            const char *name = ""; /* set by get_string() when it returns 0 */
            rc = get_string(m, p, true, NET_TAP_NAME_MAX,
                            "a host interface name such "
                            "as \"tap0\"",
                            &name, err);
            if (rc == 0 && !net_tap_name_ok(name, strlen(name)))
                rc = key_error(err, p,
                               "%s is not an interface name; use printable "
                               "characters other than spaces, '/', ':', ',' and '='",
                               quote(q, sizeof q, name, 40));
            if (rc == 0)
                strcpy(net->tap_name, name);
        } else if (m == f[MAC]) {
            rc = read_mac(m, p, net, err);
        } else if (m == f[LOOPBACK]) {
            bool on = true;
            rc = get_bool(m, p, &on, err);
            net->no_host_loopback = !on; /* as --net's host-loopback=off */
        } else if (m == f[MAX_FLOWS]) {
            uint64_t n = 0; /* netspec.h's range, as --net's max-flows=N */
            rc = get_uint(m, p, NET_MAX_FLOWS_MIN, NET_MAX_FLOWS_MAX, &n, err);
            net->max_flows = (unsigned)n;
        }
        if (rc < 0)
            return -1;
        path_pop(p, old);
    }
    if (!user && !f[NAME])
        return key_error(err, p,
                         "no \"name\"; a tap network needs the host interface, "
                         "e.g. \"name\": \"tap0\"");
    return 0;
}

/* What only shows across entries: one tap twice, one MAC twice, one host
 * port forwarded twice, named by key path. Validate checks again over all
 * NICs, the file's and those added otherwise. */
static int check_nets(const struct net_spec *nets, unsigned i, struct keypath *p, vmlet_error *err)
{
    const struct net_spec *net = &nets[i];
    for (unsigned j = 0; j <= i; j++) {
        const struct net_spec *o = &nets[j];
        if (j < i && net->kind == NET_SPEC_TAP && o->kind == NET_SPEC_TAP &&
            !strcmp(o->tap_name, net->tap_name)) {
            path_key(p, "name");
            return key_error(err, p, "%s is also network[%u]'s interface", net->tap_name, j);
        }
        if (j < i && net->has_mac && o->has_mac && !memcmp(o->mac, net->mac, 6)) {
            path_key(p, "mac");
            return key_error(err, p, "network[%u] has this MAC address too", j);
        }
        for (unsigned a = 0; a < net->nhostfwd; a++) {
            unsigned bmax = j < i ? o->nhostfwd : a;
            for (unsigned b = 0; b < bmax; b++) {
                if (net_hostfwd_clash(&net->hostfwd[a], &o->hostfwd[b])) {
                    path_key(p, "hostfwd");
                    path_index(p, a);
                    return key_error(err, p,
                                     "%s port %u is already forwarded by "
                                     "network[%u].hostfwd[%u]",
                                     net->hostfwd[a].udp ? "udp" : "tcp", net->hostfwd[a].host_port,
                                     j, b);
                }
            }
        }
    }
    return 0;
}

static int read_network(const cJSON *v, struct keypath *p, struct parsed_doc *d, vmlet_error *err)
{
    if (!cJSON_IsArray(v))
        return key_error(err, p,
                         "expected an array of objects such as "
                         "[{\"type\": \"user\"}], got %s",
                         type_name(v));
    unsigned n = cJSON_GetArraySize(v), i = 0;
    if (n > VMLET_MAX_NICS)
        return key_error(err, p, "%u interfaces; at most %d are allowed", n, VMLET_MAX_NICS);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        size_t old = path_index(p, i);
        if (read_net(e, p, &d->nets[i], err) < 0 || check_nets(d->nets, i, p, err) < 0)
            return -1;
        path_pop(p, old);
    }
    d->nnets = n;
    return 0;
}

enum {
    K_CPUS,
    K_MEMORY,
    K_KERNEL,
    K_INITRD,
    K_CMDLINE,
    K_CONSOLE,
    K_RNG,
    K_DISKS,
    K_NETWORK,
    K_SHUTDOWN_TIMEOUT,
    K_KVM_DEVICE,
    K_SECCOMP,
    K_VSOCK,
    K_SHARES,
    K_BALLOON,
    K_COUNT
};

static int read_doc(const cJSON *root, struct parsed_doc *d, vmlet_error *err)
{
    static const char *const names[K_COUNT] = {
        [K_CPUS] = "cpus",
        [K_MEMORY] = "memory",
        [K_KERNEL] = "kernel",
        [K_INITRD] = "initrd",
        [K_CMDLINE] = "cmdline",
        [K_CONSOLE] = "console",
        [K_RNG] = "rng",
        [K_DISKS] = "disks",
        [K_NETWORK] = "network",
        [K_SHUTDOWN_TIMEOUT] = "shutdown_timeout",
        [K_KVM_DEVICE] = "kvm_device",
        [K_SECCOMP] = "seccomp",
        [K_VSOCK] = "vsock",
        [K_SHARES] = "shares",
        [K_BALLOON] = "balloon",
    };
    const cJSON *f[K_COUNT];
    struct keypath p = { .s = "", .len = 0 };
    uint64_t u = 0;
    int rc = 0;

    if (!cJSON_IsObject(root))
        return set_error(err, VMLET_ERR_INVALID,
                         "the top level is %s; it must be an "
                         "object such as {\"kernel\": \"bzImage\", \"memory\": \"512M\"}",
                         type_name(root));
    if (match_keys(root, names, K_COUNT, f, &p, err) < 0)
        return -1;
    /* In file order, so the first problem in the file is the one reported. */
    for (const cJSON *v = root->child; v && rc == 0; v = v->next) {
        int k = 0;
        while (f[k] != v)
            k++;
        path_key(&p, names[k]);
        switch (k) {
        case K_CPUS:
            rc = get_uint(v, &p, 1, VMLET_MAX_CPUS, &u, err);
            d->cpus = u;
            d->has_cpus = true;
            break;
        case K_MEMORY:
            rc = read_memory(v, &p, &d->memory, err);
            d->has_memory = true;
            break;
        case K_KERNEL:
            rc = get_string(v, &p, true, PATH_MAX_BYTES, "the path of an x86-64 bzImage",
                            &d->kernel, err);
            break;
        case K_INITRD:
            rc = get_string(v, &p, true, PATH_MAX_BYTES,
                            "the path of an initial ramdisk, "
                            "or leave the key out",
                            &d->initrd, err);
            break;
        case K_CMDLINE:
            /* Its length limit depends on the kernel; validate checks it. */
            rc = get_string(v, &p, false, SIZE_MAX, "the kernel command line", &d->cmdline, err);
            break;
        case K_CONSOLE:
            rc = read_console(v, &p, &d->console, err);
            d->has_console = true;
            break;
        case K_RNG:
            rc = get_bool(v, &p, &d->rng, err);
            d->has_rng = true;
            break;
        case K_DISKS:
            rc = read_array(v, &p, VMLET_MAX_DISKS, "disks", "{\"path\": \"root.img\"}",
                            read_disk_at, d->disks, &d->ndisks, err);
            break;
        case K_SHARES:
            rc = read_array(v, &p, VMLET_MAX_SHARES, "shares",
                            "{\"path\": \"/home/me/project\", \"tag\": \"project\"}", read_share_at,
                            d->shares, &d->nshares, err);
            break;
        case K_NETWORK: rc = read_network(v, &p, d, err); break;
        case K_SHUTDOWN_TIMEOUT:
            rc = get_uint(v, &p, 0, VMLET_MAX_SHUTDOWN_TIMEOUT, &u, err);
            d->shutdown_timeout = u;
            d->has_shutdown_timeout = true;
            break;
        case K_KVM_DEVICE:
            rc = get_string(v, &p, true, PATH_MAX_BYTES, "the path of the KVM device",
                            &d->kvm_device, err);
            break;
        case K_SECCOMP:
            rc = read_seccomp(v, &p, &d->seccomp, err);
            d->has_seccomp = true;
            break;
        case K_VSOCK: rc = read_vsock(v, &p, d, err); break;
        case K_BALLOON: rc = read_balloon(v, &p, d, err); break;
        }
        if (rc == 0)
            path_pop(&p, 0);
    }
    return rc;
}

/* ---- pass 3: apply --------------------------------------------------------- */

static int apply(vmlet_config *c, const struct parsed_doc *d, vmlet_error *err)
{
    int rc = 0;
    if (d->has_cpus)
        rc |= vmlet_config_set_cpus(c, d->cpus);
    if (d->has_memory)
        rc |= vmlet_config_set_memory(c, d->memory);
    /* The setter copies before it frees, so passing c's own strings back is
     * safe. */
    if (d->kernel || d->initrd || d->cmdline)
        rc |= vmlet_config_set_linux_boot(c, d->kernel ? d->kernel : c->kernel,
                                          d->initrd ? d->initrd : c->initrd,
                                          d->cmdline ? d->cmdline : c->cmdline);
    if (d->has_console)
        rc |= vmlet_config_set_console(c, d->console, c->console_in, c->console_out);
    if (d->has_rng)
        rc |= vmlet_config_set_entropy(c, d->rng);
    for (unsigned i = 0; i < d->ndisks; i++)
        rc |= vmlet_config_add_disk(c, d->disks[i].path,
                                    d->disks[i].read_only ? VMLET_DISK_READONLY : 0,
                                    d->disks[i].serial);
    for (unsigned i = 0; i < d->nnets; i++)
        config_add_net_spec(c, &d->nets[i]);
    if (d->kvm_device)
        rc |= vmlet_config_set_kvm_device(c, d->kvm_device);
    if (d->has_shutdown_timeout)
        rc |= vmlet_config_set_shutdown_timeout(c, d->shutdown_timeout);
    if (d->has_seccomp)
        rc |= vmlet_config_set_seccomp(c, d->seccomp);
    if (d->vsock_uds)
        rc |= vmlet_config_set_vsock(c, d->vsock_cid, d->vsock_uds);
    if (d->has_balloon)
        rc |= vmlet_config_set_balloon(c, 1, d->balloon_flags, d->balloon_stats_s);
    for (unsigned i = 0; i < d->nshares; i++)
        rc |= vmlet_config_add_share(
            c, d->shares[i].path, d->shares[i].tag,
            (d->shares[i].read_only ? VMLET_SHARE_READONLY : 0) |
                (d->shares[i].cache_always ? VMLET_SHARE_CACHE_ALWAYS : 0));
    if (rc)
        return set_error(err, VMLET_ERR_NOMEM,
                         "out of memory while applying the "
                         "configuration");
    return 0;
}

VMLET_API int vmlet_config_from_json(vmlet_config *c, const char *text, size_t len,
                                     vmlet_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t start = 0;
    if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
        start = 3; /* a UTF-8 byte order mark, as some editors write */
    if (check_syntax(s, len, start, err) < 0)
        return -1;

    /* Not NUL-terminated: the end is checked through parse_end instead. */
    const char *end = NULL;
    /* cJSON writes a process-wide error record on every parse (which we
     * never read: the end comes back through `end`); one lock keeps two
     * of our calls from racing on it. */
    static pthread_mutex_t cjson_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&cjson_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(text + start, len - start, &end, 0);
    pthread_mutex_unlock(&cjson_lock);
    if (!root) {
        /* check_syntax() accepted it, so this is memory, or a disagreement
         * between the two parsers (which the fuzz target looks for). */
        size_t off = end ? (size_t)(end - text) : start;
        unsigned long line, col;
        line_col(s, off, &line, &col);
        return set_error(err, VMLET_ERR_INTERNAL,
                         "line %lu, column %lu: cJSON could not "
                         "read this (out of memory?)",
                         line, col);
    }
    size_t off = (size_t)(end - text);
    if (skip_ws(s, len, off) != len) {
        unsigned long line, col;
        line_col(s, off, &line, &col);
        cJSON_Delete(root);
        return set_error(err, VMLET_ERR_INTERNAL,
                         "line %lu, column %lu: cJSON stopped "
                         "reading here",
                         line, col);
    }

    struct parsed_doc *d = calloc(1, sizeof *d); /* ~11 KiB: keep it off the stack */
    if (!d) {
        cJSON_Delete(root);
        return set_error(err, VMLET_ERR_NOMEM, "out of memory reading the configuration");
    }
    int rc = read_doc(root, d, err);
    /* Networks are appended, like the disks; refused here rather than by
     * validate so that nothing is applied. */
    if (rc == 0 && c->nnets + d->nnets > VMLET_MAX_NICS)
        rc = set_error(err, VMLET_ERR_INVALID, "network: more than %d interfaces in all",
                       VMLET_MAX_NICS);
    if (rc == 0)
        rc = apply(c, d, err);
    free(d);
    cJSON_Delete(root);
    return rc;
}

/* Prefixes err's message with the file name. */
static int in_file(vmlet_error *err, const char *path)
{
    if (err) {
        char msg[sizeof err->message];
        memcpy(msg, err->message, sizeof msg);
        msg[sizeof msg - 1] = '\0';
        /* A long path is cut so the message itself still fits. */
        int n = snprintf(err->message, sizeof err->message, "%.200s: ", path);
        snprintf(err->message + n, sizeof err->message - n, "%s", msg);
    }
    return -1;
}

VMLET_API int vmlet_config_load_json(vmlet_config *c, const char *path, vmlet_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return set_error(err, VMLET_ERR_FILE, "%s: %s; check the path of the config file", path,
                         strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return set_error(err, VMLET_ERR_FILE,
                         "%s is a directory; the config must be a JSON "
                         "file",
                         path);
    }
    /* Read at most one byte past the cap: enough to know it is too big,
     * whatever the file (a pipe has no size to ask for). */
    size_t cap = VMLET_CONFIG_JSON_MAX + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return set_error(err, VMLET_ERR_NOMEM, "%s: out of memory", path);
    }
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return set_error(err, VMLET_ERR_FILE, "%s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += n;
    }
    close(fd);
    int rc;
    if (len > VMLET_CONFIG_JSON_MAX)
        rc = set_error(err, VMLET_ERR_FILE,
                       "%s: larger than %u MiB; a vm.json is a few "
                       "hundred bytes",
                       path, VMLET_CONFIG_JSON_MAX >> 20);
    else if (len == 0)
        rc = set_error(err, VMLET_ERR_FILE,
                       "%s: the file is empty; it needs a JSON "
                       "object such as {\"kernel\": \"bzImage\"}",
                       path);
    else if ((rc = vmlet_config_from_json(c, buf, len, err)) < 0)
        in_file(err, path);
    free(buf);
    return rc;
}
