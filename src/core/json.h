/* JSON helpers over cJSON 1.7.15: a parser with limits checked before cJSON sees the input
 * (nesting depth, since cJSON recurses; size; strict string contents; no trailing garbage),
 * typed getters whose errors name the field, and printing into an sl_buf_t. Every error text
 * is meant to reach a client as-is ("field 'inputs' must be an array"). */
#ifndef SL_JSON_H
#define SL_JSON_H

#include "core/buf.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_JSON_MAX_DEPTH     64                 /* default nesting limit: arrays and objects */
#define SL_JSON_MAX_BYTES     (64u << 20)        /* default size limit */
#define SL_JSON_MAX_EXACT_INT 9007199254740992LL /* 2^53: integers must be smaller in magnitude */

typedef struct sl_json_limits {
    size_t max_bytes;   /* 0 = SL_JSON_MAX_BYTES */
    unsigned max_depth; /* 0 = SL_JSON_MAX_DEPTH; never above SL_JSON_MAX_DEPTH */
} sl_json_limits_t;

/* Parses exactly one JSON value from data[0..len) (borrowed, need not be NUL-terminated), with
 * the default limits. Whitespace may surround the value; anything else after it is an error.
 * Strings must be valid UTF-8 without raw control characters (RFC 8259).
 * Returns 0 and *out (caller frees with cJSON_Delete), or SL_ELIMIT (too large, too deep) /
 * SL_EPARSE (malformed) with *out NULL and a message with the byte offset written to err
 * (err may be NULL; the message is truncated to err_len). */
int sl_json_parse(const char *data, size_t len, cJSON **out, char *err, size_t err_len);
/* The same with explicit limits (lim may be NULL for the defaults). */
int sl_json_parse_ex(const char *data, size_t len, const sl_json_limits_t *lim, cJSON **out,
                     char *err, size_t err_len);

/* Typed getters for field name of object obj. Each returns 0 and stores the value; SL_ENOENT
 * when the field is absent ("missing field 'name'"); SL_EINVAL when obj is not an object or the
 * field has the wrong type ("field 'name' must be a string"); SL_ERANGE when it is out of range.
 * The message goes to err (may be NULL). Returned pointers are borrowed from obj and live as
 * long as it does. Callers that treat a field as optional check for SL_ENOENT. */
int sl_json_get_string(const cJSON *obj, const char *name, const char **out, char *err,
                       size_t err_len);
/* An integer in [min, max] (written without fraction or exponent beyond an integral value,
 * and smaller than 2^53 in magnitude, so it is exact). */
int sl_json_get_int64(const cJSON *obj, const char *name, int64_t min, int64_t max, int64_t *out,
                      char *err, size_t err_len);
/* A finite number. */
int sl_json_get_double(const cJSON *obj, const char *name, double *out, char *err, size_t err_len);
int sl_json_get_bool(const cJSON *obj, const char *name, bool *out, char *err, size_t err_len);
/* An array (*out borrowed; iterate with cJSON_ArrayForEach) and its length. */
int sl_json_get_array(const cJSON *obj, const char *name, const cJSON **out, size_t *n, char *err,
                      size_t err_len);
int sl_json_get_object(const cJSON *obj, const char *name, const cJSON **out, char *err,
                       size_t err_len);

/* Appends item as compact JSON to out. Returns 0, or SL_ENOMEM when cJSON fails to print. */
int sl_json_print(const cJSON *item, sl_buf_t *out);

#endif
