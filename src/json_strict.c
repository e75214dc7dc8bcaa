/* Strict JSON: the syntax scan, cJSON underneath, and the schema helpers
 * (see json_strict.h). */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "error.h"
#include "json_strict.h"

/* Configuration schemas nest 4 to 5 deep; a few levels of slack so a
 * misplaced value gets a type error naming its key instead of a depth
 * error. */
#define JSON_MAX_DEPTH  8
/* A real document has a few dozen values. Bounds cJSON's allocations
 * (about 64 bytes per value) however the input is shaped. */
#define JSON_MAX_VALUES 10000
/* Longer than any number a user means; cJSON also copies only 63. */
#define JSON_MAX_NUMBER 40

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
const char *json_quote(char *buf, size_t size, const char *s, size_t max)
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

const char *json_type_name(const cJSON *v)
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

/* Returns the old length, for json_path_pop(). Keys that are not plain words
 * are written quoted in brackets so the path stays unambiguous. */
size_t json_path_key(struct json_keypath *p, const char *key)
{
    size_t old = p->len;
    char q[72];
    int n;
    if (plain_key(key) && strlen(key) <= 40)
        n = snprintf(p->s + p->len, sizeof p->s - p->len, "%s%s", p->len ? "." : "", key);
    else
        n = snprintf(p->s + p->len, sizeof p->s - p->len, "[%s]", json_quote(q, sizeof q, key, 40));
    if (n > 0)
        p->len = p->len + n < sizeof p->s ? p->len + n : sizeof p->s - 1;
    return old;
}

size_t json_path_index(struct json_keypath *p, unsigned i)
{
    size_t old = p->len;
    int n = snprintf(p->s + p->len, sizeof p->s - p->len, "[%u]", i);
    if (n > 0)
        p->len = p->len + n < sizeof p->s ? p->len + n : sizeof p->s - 1;
    return old;
}

void json_path_pop(struct json_keypath *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

__attribute__((format(printf, 3, 4))) int json_key_error(vmlet_error *err,
                                                         const struct json_keypath *p,
                                                         const char *fmt, ...)
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
static int check_syntax(const unsigned char *s, size_t len, size_t start,
                        const struct json_doc *doc, vmlet_error *err)
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
                                 "whitespace; give an object such as %s",
                                 doc->example);
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
                return syntax_error(err, s, i, "more than %d values; %s is much smaller",
                                    JSON_MAX_VALUES, doc->name);
            if (ch == '{' || ch == '[') {
                if (depth == JSON_MAX_DEPTH)
                    return syntax_error(err, s, i,
                                        "nested more than %d levels deep; %s needs at "
                                        "most %u",
                                        JSON_MAX_DEPTH, doc->name, doc->depth);
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

/* ---- pass 2 helpers: the schema ---------------------------------------------- */

/* Matches obj's members against the known names: found[k] is the member
 * for names[k] or NULL. Unknown and repeated keys are errors (cJSON keeps
 * both copies of a repeated key; which one wins would be an accident). */
int json_match_keys(const cJSON *obj, const char *const *names, unsigned n, const cJSON **found,
                    struct json_keypath *p, vmlet_error *err)
{
    for (unsigned k = 0; k < n; k++)
        found[k] = NULL;
    for (const cJSON *m = obj->child; m; m = m->next) {
        unsigned k = 0;
        while (k < n && strcmp(m->string, names[k]))
            k++;
        size_t old = json_path_key(p, m->string);
        if (k == n) {
            char list[300];
            size_t o = 0;
            for (unsigned j = 0; j < n; j++)
                o += snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", names[j]);
            return json_key_error(err, p, "unknown key; known keys are %s", list);
        }
        if (found[k])
            return json_key_error(err, p, "duplicate key; give it once");
        found[k] = m;
        json_path_pop(p, old);
    }
    return 0;
}

/* A whole number in [min, max] (max <= 2^53): JSON numbers arrive as
 * doubles, so the checks are on the double. */
int json_get_uint(const cJSON *v, struct json_keypath *p, uint64_t min, uint64_t max, uint64_t *out,
                  vmlet_error *err)
{
    char num[40];
    if (!cJSON_IsNumber(v))
        return json_key_error(err, p, "expected a whole number, got %s", json_type_name(v));
    double d = v->valuedouble;
    if (isinf(d))
        return json_key_error(err, p, "the number is too %s to represent",
                              d > 0 ? "large" : "negative");
    format_number(num, sizeof num, d);
    if (d < 0)
        return json_key_error(err, p, "%s is negative; give %llu to %llu", num,
                              (unsigned long long)min, (unsigned long long)max);
    if (d > JSON_MAX_EXACT)
        return json_key_error(err, p,
                              "%s is too large (above 2^53, where JSON numbers stop "
                              "being exact)",
                              num);
    if (d != (double)(uint64_t)d) /* in range now, so the cast is defined */
        return json_key_error(err, p, "%s is not a whole number", num);
    if (d < (double)min || d > (double)max)
        return json_key_error(err, p, "%s is out of range; give %llu to %llu", num,
                              (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)d;
    return 0;
}

int json_get_bool(const cJSON *v, struct json_keypath *p, bool *out, vmlet_error *err)
{
    if (!cJSON_IsBool(v))
        return json_key_error(err, p, "expected true or false, got %s", json_type_name(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A string of at most max bytes, or non-empty too when nonempty is set;
 * what names what it should be, for the message. */
int json_get_string(const cJSON *v, struct json_keypath *p, bool nonempty, size_t max,
                    const char *what, const char **out, vmlet_error *err)
{
    if (!cJSON_IsString(v))
        return json_key_error(err, p, "expected a string (%s), got %s", what, json_type_name(v));
    size_t n = strlen(v->valuestring);
    if (nonempty && n == 0)
        return json_key_error(err, p, "empty; give %s", what);
    if (n > max)
        return json_key_error(err, p, "%zu bytes is too long; at most %zu", n, max);
    *out = v->valuestring;
    return 0;
}

/* ---- the whole document ----------------------------------------------------- */

int json_strict_parse(const char *text, size_t len, const struct json_doc *doc, cJSON **out,
                      vmlet_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t start = 0;
    if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
        start = 3; /* a UTF-8 byte order mark, as some editors write */
    if (check_syntax(s, len, start, doc, err) < 0)
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
    *out = root;
    return 0;
}
