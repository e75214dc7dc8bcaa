/* For the tests of vmlet firecracker's metrics lines (test_fc,
 * test_fc_metrics): reading a counter back out of a parsed line. The
 * includer has cmocka.h and cjson/cJSON.h. */
#ifndef VMLET_TEST_METRICS_JSON_H
#define VMLET_TEST_METRICS_JSON_H

#include <stdbool.h>
#include <stdint.h>

/* A JSON number that is a uint64 (what Kata's Go types take). */
static inline bool is_uint(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 18446744073709551616.0 &&
           v->valuedouble == (double)(uint64_t)v->valuedouble;
}

/* doc.key.field as an unsigned integer; fails unless it is one. */
static inline uint64_t metric_get(const cJSON *doc, const char *key, const char *field)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, key);
    if (!cJSON_IsObject(o))
        fail_msg("\"%s\" is not an object", key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!is_uint(v))
        fail_msg("\"%s\".\"%s\" is not an unsigned integer", key, field);
    return (uint64_t)v->valuedouble;
}

#endif
