/* Strict JSON for configuration documents and API bodies: vm.json
 * (src/config_json.c) and the Firecracker-compatible API
 * (cli/fc_vmm.c) read their input through the same checks.
 *
 * json_strict_parse() scans the text to RFC 8259 itself (cJSON accepts
 * leading zeros, raw control characters, NUL bytes and bad UTF-8, and
 * recurses without a bound) before cJSON builds the tree; its errors give
 * a line and column. The json_get_*() and json_match_keys() helpers then
 * check a document against its schema, naming the key path in every
 * message ("drives[1].path_on_host: expected a string ..."). */
#ifndef VMLET_JSON_STRICT_H
#define VMLET_JSON_STRICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "vmlet.h"

/* Whole numbers above 2^53 are no longer exact as doubles. */
#define JSON_MAX_EXACT 9007199254740992.0

/* What kind of document is read, for the messages: its name ("a
 * vm.json"), how deep its schema nests, and a small example of it. */
struct json_doc {
    const char *name;
    unsigned depth;
    const char *example;
};

/* Checks text[0..len) (no NUL needed; a UTF-8 byte order mark is
 * skipped) and parses it: 0 with *root (free with cJSON_Delete), or -1
 * with err (VMLET_ERR_FILE for bad syntax, "line 3, column 7: ..."). At
 * most 8 levels deep and 10000 values. */
int json_strict_parse(const char *text, size_t len, const struct json_doc *doc, cJSON **root,
                      vmlet_error *err);

/* Where in the document we are, as the user would write it:
 * network[0].hostfwd[2]. */
struct json_keypath {
    char s[200];
    size_t len;
};

/* Append a key or an index; return the old length, for json_path_pop(). */
size_t json_path_key(struct json_keypath *p, const char *key);
size_t json_path_index(struct json_keypath *p, unsigned i);
void json_path_pop(struct json_keypath *p, size_t old);

/* err = VMLET_ERR_INVALID, "PATH: message"; returns -1. */
__attribute__((format(printf, 3, 4))) int json_key_error(vmlet_error *err,
                                                         const struct json_keypath *p,
                                                         const char *fmt, ...);

/* Matches obj's members against the known names: found[k] is the member
 * for names[k] or NULL. Unknown and repeated keys are errors. */
int json_match_keys(const cJSON *obj, const char *const *names, unsigned n, const cJSON **found,
                    struct json_keypath *p, vmlet_error *err);
/* A whole number in [min, max] (max <= 2^53). */
int json_get_uint(const cJSON *v, struct json_keypath *p, uint64_t min, uint64_t max, uint64_t *out,
                  vmlet_error *err);
int json_get_bool(const cJSON *v, struct json_keypath *p, bool *out, vmlet_error *err);
/* A string of at most max bytes, non-empty too when nonempty is set;
 * what names what it should be, for the message. */
int json_get_string(const cJSON *v, struct json_keypath *p, bool nonempty, size_t max,
                    const char *what, const char **out, vmlet_error *err);

/* "a string", "a number", "true", ... for messages. */
const char *json_type_name(const cJSON *v);
/* A user's string for a message: quoted, control bytes escaped, cut at a
 * character boundary after about max bytes. */
const char *json_quote(char *buf, size_t size, const char *s, size_t max);

#endif
