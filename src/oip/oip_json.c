/* The Open Inference Protocol's REST request decoder: a JSON inference request (tensors as flat or
 * nested arrays, or as binary sections after the JSON: Triton's binary tensor extension) into an
 * sl_infer_request_t. The REST front end and the gateway call it on the I/O thread; the fuzzers
 * call it on arbitrary bytes. It works on the bytes: oip_json_scan.c validates the document in
 * one pass, then this file walks it and decodes tensor data straight into the request's arena,
 * with no tree in between. The response writer is oip_json_write.c. */
#include "oip/oip_json.h"

#include "core/json.h"
#include "oip/oip_json_scan.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the OIP codec copies tensors in host order, which must be little-endian"
#endif

/* Limits beyond those of the JSON syntax (SL_JSON_MAX_BYTES, SL_JSON_MAX_DEPTH) and the HTTP
 * body: tensors per request, name and id lengths, and elements per tensor (so shape arithmetic
 * never overflows). */
#define OIP_MAX_TENSORS  SL_OIP_MAX_TENSORS
#define OIP_MAX_NAME     256
#define OIP_MAX_ID       1024
#define OIP_MAX_ELEMENTS (INT64_C(1) << 32)
/* Integers from 2^53 up are not exact in a double, which is all most JSON readers keep of a
 * number (cJSON, which this decoder replaced, and JavaScript among them): a client's encoder may
 * already have rounded 2^53 + 1 to 2^53. So although integers are now read exactly, 64-bit data
 * of that size must come as binary, as before, and shapes and sizes stay below it. */
#define OIP_EXACT_LIMIT 9007199254740992.0 /* 2^53 */

/* A field that is not there. */
#define NONE SIZE_MAX

/* Every parse error is the client's: 400 with a message naming the field. */
#define invalid(err, ...) sl_infer_error_set((err), SL_INFER_INVALID, __VA_ARGS__)

/* ---- values ---- */

static inline uint8_t at(const sl_oip_json_t *j, size_t v) {
    return sl_oip__json_at(j, v);
}
static inline bool is_array(const sl_oip_json_t *j, size_t v) {
    return at(j, v) == '[';
}
static inline bool is_object(const sl_oip_json_t *j, size_t v) {
    return at(j, v) == '{';
}
static inline bool is_string(const sl_oip_json_t *j, size_t v) {
    return at(j, v) == '"';
}
static inline bool is_bool(const sl_oip_json_t *j, size_t v) {
    return at(j, v) == 't' || at(j, v) == 'f';
}
static inline bool is_number(const sl_oip_json_t *j, size_t v) {
    uint8_t c = at(j, v);
    return c == '-' || (c >= '0' && c <= '9');
}

/* The number at v, or -1 when v is not a number (how every count and size field reads). */
static double number_or_minus_one(const sl_oip_json_t *j, size_t v) {
    if (!is_number(j, v)) return -1;
    sl_oip_json_num_t num;
    sl_oip__json_num(j, v, &num);
    return num.d;
}

typedef struct field {
    const char *name;
    size_t len;
} field_t;
#define FIELD(s)                                                                                   \
    { s, sizeof s - 1 }

/* Sets out[k] to the value of the object's first member named fields[k].name, or NONE: what
 * cJSON_GetObjectItemCaseSensitive returned (the first of duplicate keys wins, later ones are
 * ignored; keys compare as C strings, so one cut short by a \u escape that decodes to NUL
 * matches the name before it). One pass over the members for all the fields. */
static void get_fields(const sl_oip_json_t *j, size_t obj, const field_t *fields, size_t n,
                       size_t *out) {
    for (size_t k = 0; k < n; k++)
        out[k] = NONE;
    for (size_t p = sl_oip__json_first(j, obj); !sl_oip__json_done(j, p);) {
        uint8_t key[24];
        size_t klen;
        size_t v = sl_oip__json_member_value(j, sl_oip__json_str(j, p, key, sizeof key, &klen));
        for (size_t k = 0; k < n; k++) {
            if (out[k] != NONE || klen != fields[k].len) continue;
            size_t c = 0; /* names are a few bytes: no call to memcmp */
            while (c < klen && key[c] == (uint8_t)fields[k].name[c])
                c++;
            if (c == klen) {
                out[k] = v;
                break;
            }
        }
        p = sl_oip__json_next(j, sl_oip__json_skip(j, v));
    }
}

/* ---- decoding one input's JSON data ---- */

typedef struct decoder {
    const sl_oip_json_t *j;
    const sl_infer_input_t *in;
    uint8_t *out;    /* fixed-size types: cap elements; BYTES: cap bytes of prefixes + strings */
    size_t cap;      /* 0 while out is NULL */
    size_t index;    /* flat index of the next element */
    size_t nbytes;   /* BYTES: bytes written (or counted, when out is NULL) */
    bool shape_only; /* a first pass over nested data: check its structure, decode nothing */
    sl_infer_error_t *err;
    /* Integer datatypes: element size, and the range of those up to 32 bits (wide: 64 bits). */
    size_t esize;
    bool wide;
    int64_t lo, hi;
} decoder_t;

static void decoder_init(decoder_t *d, const sl_oip_json_t *j, const sl_infer_input_t *in,
                         sl_infer_error_t *err) {
    *d = (decoder_t){.j = j, .in = in, .err = err, .esize = sluice_dtype_size(in->dtype)};
    d->wide = in->dtype == SLUICE_DT_INT64 || in->dtype == SLUICE_DT_UINT64;
    if (!sl_dtype_int_range(in->dtype, &d->lo, &d->hi)) d->lo = d->hi = 0;
}

static void store_int(decoder_t *d, int64_t i) {
    SL_ASSERT(d->index < d->cap);
    uint8_t *p = d->out + d->index * d->esize;
    switch (d->esize) {
    case 1:
        *p = (uint8_t)i;
        break;
    case 2: {
        uint16_t t = (uint16_t)i;
        memcpy(p, &t, sizeof t);
        break;
    }
    case 4: {
        uint32_t t = (uint32_t)i;
        memcpy(p, &t, sizeof t);
        break;
    }
    default: {
        uint64_t t = (uint64_t)i;
        memcpy(p, &t, sizeof t);
        break;
    }
    }
}

/* An integer datatype's element. The range checks are those the double cJSON kept of a number
 * gave, on the exact integer where there is one (the same outcome: the limits are exact
 * doubles), and the messages print that double. */
static sl_infer_code_t int_element(decoder_t *d, size_t v, size_t *end) {
    const sl_infer_input_t *in = d->in;
    int64_t i;
    if (sl_oip__json_small_int(d->j, v, &i, end) &&
        (d->wide ? (i >= 0 || in->dtype == SLUICE_DT_INT64) && i < (INT64_C(1) << 53) &&
                       i > -(INT64_C(1) << 53)
                 : i >= d->lo && i <= d->hi)) {
        store_int(d, i);
        return SL_INFER_OK;
    }
    const char *dt = sl_dtype_to_name(in->dtype);
    if (!is_number(d->j, v)) {
        return invalid(d->err, "input '%s': element %zu must be an integer (%s)", in->name,
                       d->index, dt);
    }
    sl_oip_json_num_t num;
    *end = sl_oip__json_num(d->j, v, &num);
    double x = num.d; /* for messages: what the element reads as */
    i = num.i;
    if (!num.exact) {
        /* A fraction, an exponent or 19+ digits: the value is the double, and must be a whole
         * number within range. */
        if (!isfinite(x) || x != floor(x)) {
            return invalid(d->err, "input '%s': element %zu (%.17g) must be an integer (%s)",
                           in->name, d->index, x, dt);
        }
        if (fabs(x) < OIP_EXACT_LIMIT) i = (int64_t)x;
    }
    if (d->wide) {
        if (in->dtype == SLUICE_DT_UINT64 && x < 0) {
            return invalid(d->err,
                           "input '%s': element %zu (%.17g) is out of range for UINT64 (0 to "
                           "18446744073709551615)",
                           in->name, d->index, x);
        }
        if (fabs(x) >= OIP_EXACT_LIMIT) {
            return invalid(d->err,
                           "input '%s': element %zu (%.17g) cannot be exact as a JSON number "
                           "(magnitude must be below 2^53); send %s data as binary",
                           in->name, d->index, x, dt);
        }
    } else if (num.exact ? i < d->lo || i > d->hi : x < (double)d->lo || x > (double)d->hi) {
        return invalid(d->err,
                       "input '%s': element %zu (%.17g) is out of range for %s (%" PRId64
                       " to %" PRId64 ")",
                       in->name, d->index, x, dt, d->lo, d->hi);
    }
    store_int(d, i);
    return SL_INFER_OK;
}

/* Decodes the element at v into d->out at d->index (or only checks and counts it) and sets *end
 * to one past it. */
static sl_infer_code_t element(decoder_t *d, size_t v, size_t *end) {
    const sl_infer_input_t *in = d->in;
    const sl_oip_json_t *j = d->j;
    if (d->shape_only) {
        *end = sl_oip__json_skip(j, v);
        return SL_INFER_OK;
    }
    switch (in->dtype) {
    case SLUICE_DT_BOOL:
        if (!is_bool(j, v)) {
            return invalid(d->err, "input '%s': element %zu must be true or false (BOOL)", in->name,
                           d->index);
        }
        SL_ASSERT(d->index < d->cap);
        d->out[d->index] = at(j, v) == 't' ? 1 : 0;
        *end = v + (at(j, v) == 't' ? 4 : 5);
        break;
    case SLUICE_DT_FP32:
    case SLUICE_DT_FP64: {
        const char *dt = sl_dtype_to_name(in->dtype);
        if (!is_number(j, v)) {
            return invalid(d->err, "input '%s': element %zu must be a number (%s)", in->name,
                           d->index, dt);
        }
        sl_oip_json_num_t num;
        *end = sl_oip__json_num(j, v, &num);
        double x = num.d;
        if (!isfinite(x) || (in->dtype == SLUICE_DT_FP32 && fabs(x) > FLT_MAX)) {
            return invalid(d->err, "input '%s': element %zu is out of range for %s", in->name,
                           d->index, dt);
        }
        SL_ASSERT(d->index < d->cap);
        if (in->dtype == SLUICE_DT_FP32) {
            float f = (float)x; /* rounded from the double, as it always was */
            memcpy(d->out + d->index * 4, &f, 4);
        } else {
            memcpy(d->out + d->index * 8, &x, 8);
        }
        break;
    }
    case SLUICE_DT_BYTES: {
        if (!is_string(j, v)) {
            return invalid(d->err, "input '%s': element %zu must be a string (BYTES)", in->name,
                           d->index);
        }
        size_t n;
        if (d->out) {
            /* The sizing pass counted exactly these bytes. */
            SL_ASSERT(d->cap - d->nbytes >= 4);
            *end = sl_oip__json_str(j, v, d->out + d->nbytes + 4, d->cap - d->nbytes - 4, &n);
            SL_ASSERT(n <= d->cap - d->nbytes - 4);
        } else {
            *end = sl_oip__json_str(j, v, NULL, 0, &n);
        }
        if (n > UINT32_MAX) {
            return invalid(d->err, "input '%s': element %zu is too long", in->name, d->index);
        }
        if (d->out) {
            uint32_t len32 = (uint32_t)n;
            memcpy(d->out + d->nbytes, &len32, 4);
        }
        d->nbytes += 4 + n;
        break;
    }
    default: {
        sl_infer_code_t rc = int_element(d, v, end);
        if (rc != SL_INFER_OK) return rc;
        break;
    }
    }
    d->index++;
    return SL_INFER_OK;
}

/* Visits the leaves of nested data in row-major order, checking that level l has exactly
 * dims[l] entries (all of a level's entries are counted before any is visited, which orders
 * the messages). */
static sl_infer_code_t walk_nested(decoder_t *d, size_t node, uint32_t level) {
    const sl_infer_input_t *in = d->in;
    const sl_oip_json_t *j = d->j;
    char s[96];
    if (level == in->ndim) {
        if (is_array(j, node)) {
            return invalid(d->err, "input '%s': data is nested deeper than shape %s", in->name,
                           sl_dims_str(in->dims, in->ndim, s, sizeof s));
        }
        size_t end;
        return element(d, node, &end);
    }
    if (!is_array(j, node)) {
        return invalid(d->err,
                       "input '%s': nested data does not match shape %s (a value where "
                       "dimension %u needs an array of %" PRId64 ")",
                       in->name, sl_dims_str(in->dims, in->ndim, s, sizeof s), level,
                       in->dims[level]);
    }
    int64_t count = 0;
    for (size_t p = sl_oip__json_first(j, node); !sl_oip__json_done(j, p);
         p = sl_oip__json_next(j, sl_oip__json_skip(j, p)))
        count++;
    if (count != in->dims[level]) {
        return invalid(d->err,
                       "input '%s': nested data does not match shape %s (dimension %u has %" PRId64
                       " entries, expected %" PRId64 ")",
                       in->name, sl_dims_str(in->dims, in->ndim, s, sizeof s), level, count,
                       in->dims[level]);
    }
    for (size_t p = sl_oip__json_first(j, node); !sl_oip__json_done(j, p);
         p = sl_oip__json_next(j, sl_oip__json_skip(j, p))) {
        sl_infer_code_t rc = walk_nested(d, p, level + 1);
        if (rc != SL_INFER_OK) return rc;
    }
    return SL_INFER_OK;
}

static sl_infer_code_t walk(decoder_t *d, size_t data, bool nested) {
    d->index = 0;
    d->nbytes = 0;
    if (nested) return walk_nested(d, data, 0);
    const sl_oip_json_t *j = d->j;
    size_t end;
    for (size_t p = sl_oip__json_first(j, data); !sl_oip__json_done(j, p);
         p = sl_oip__json_next(j, end)) {
        sl_infer_code_t rc = element(d, p, &end);
        if (rc != SL_INFER_OK) return rc;
    }
    return SL_INFER_OK;
}

/* The data's structure against the shape, before anything is allocated for it, in the order
 * the messages are defined: nested data level by level, flat data for arrays then the count. */
static sl_infer_code_t check_structure(decoder_t *d, size_t data, bool nested, int64_t numel) {
    const sl_infer_input_t *in = d->in;
    const sl_oip_json_t *j = d->j;
    if (nested) {
        decoder_t check;
        decoder_init(&check, j, in, d->err);
        check.shape_only = true;
        return walk(&check, data, true);
    }
    int64_t count = 0;
    for (size_t p = sl_oip__json_first(j, data); !sl_oip__json_done(j, p);
         p = sl_oip__json_next(j, sl_oip__json_skip(j, p))) {
        if (is_array(j, p)) {
            return invalid(d->err, "input '%s': data mixes arrays and values", in->name);
        }
        count++;
    }
    if (count != numel) {
        char s[96];
        return invalid(d->err, "input '%s': data has %" PRId64 " elements, shape %s needs %" PRId64,
                       in->name, count, sl_dims_str(in->dims, in->ndim, s, sizeof s), numel);
    }
    return SL_INFER_OK;
}

/* The common case in one pass: data that matches the shape, checked as it is decoded into
 * d->out (room for numel elements). They return false (fast_nested: 0, else one past the node)
 * at the first thing that is not so, leaving the message to the exact checks. */
static bool fast_flat(decoder_t *d, size_t data, int64_t numel) {
    const sl_oip_json_t *j = d->j;
    size_t end;
    for (size_t p = sl_oip__json_first(j, data); !sl_oip__json_done(j, p);
         p = sl_oip__json_next(j, end)) {
        if ((int64_t)d->index == numel || is_array(j, p)) return false;
        if (element(d, p, &end) != SL_INFER_OK) return false;
    }
    return (int64_t)d->index == numel;
}

static size_t fast_nested(decoder_t *d, size_t node, uint32_t level) {
    const sl_oip_json_t *j = d->j;
    if (level == d->in->ndim) {
        size_t end;
        if (is_array(j, node) || element(d, node, &end) != SL_INFER_OK) return 0;
        return end;
    }
    if (!is_array(j, node)) return 0;
    int64_t count = 0;
    size_t p = sl_oip__json_first(j, node);
    while (!sl_oip__json_done(j, p)) {
        if (count == d->in->dims[level]) return 0; /* never more leaves than numel */
        size_t end = fast_nested(d, p, level + 1);
        if (end == 0) return 0;
        count++;
        p = sl_oip__json_next(j, end);
    }
    return count == d->in->dims[level] ? p + 1 : 0;
}

static sl_infer_code_t decode_json_data(sl_infer_request_t *req, const sl_oip_json_t *j,
                                        sl_infer_input_t *in, size_t data, int64_t numel,
                                        sl_infer_error_t *err) {
    if (!is_array(j, data)) {
        return invalid(err, "input '%s': field 'data' must be an array", in->name);
    }
    if (in->dtype == SLUICE_DT_FP16 || in->dtype == SLUICE_DT_BF16) {
        return invalid(err,
                       "input '%s': %s data cannot be sent as JSON numbers; send it as binary "
                       "data (parameters.binary_data_size)",
                       in->name, sl_dtype_to_name(in->dtype));
    }
    /* Nested when the first entry is an array; then every level must match the shape. A flat
     * array must hold exactly numel values and no arrays. */
    size_t first = sl_oip__json_first(j, data);
    bool nested = !sl_oip__json_done(j, first) && is_array(j, first) && in->ndim > 0;
    decoder_t d;
    decoder_init(&d, j, in, err);
    size_t esize = d.esize;
    if (esize) {
        /* A small body must never make the server allocate for a huge declared shape. Every
         * value takes two bytes of the array at least ("1,"), so only when the array's bytes
         * could hold numel values is the allocation made first (bounded by what was received)
         * and data and shape checked while decoding. Otherwise the exact checks below run before
         * any allocation; after an error here they run too, and name it. */
        size_t span = sl_oip__json_skip(j, data) - data;
        if ((uint64_t)numel <= span / 2) {
            d.out = sl_infer_request_alloc(req, (size_t)numel * esize);
            d.cap = (size_t)numel;
            bool ok = nested ? fast_nested(&d, data, 0) != 0 : fast_flat(&d, data, numel);
            if (ok) {
                in->data = d.out;
                in->byte_size = (uint64_t)numel * esize;
                return SL_INFER_OK;
            }
        }
    }
    sl_infer_code_t rc = check_structure(&d, data, nested, numel);
    if (rc != SL_INFER_OK) return rc;
    if (esize) {
        if (!d.out) {
            d.out = sl_infer_request_alloc(req, (size_t)numel * esize);
            d.cap = (size_t)numel;
        }
    } else {
        /* BYTES: a first pass checks and sizes, the second writes. */
        rc = walk(&d, data, nested);
        if (rc != SL_INFER_OK) return rc;
        d.out = sl_infer_request_alloc(req, d.nbytes);
        d.cap = d.nbytes;
    }
    rc = walk(&d, data, nested);
    if (rc != SL_INFER_OK) return rc;
    in->data = d.out;
    in->byte_size = esize ? (uint64_t)numel * esize : d.nbytes;
    return SL_INFER_OK;
}

/* Checks a binary BYTES tensor: length prefixes that tile the data exactly, numel of them. */
static sl_infer_code_t check_binary_bytes(const sl_infer_input_t *in, int64_t numel,
                                          sl_infer_error_t *err) {
    const uint8_t *p = in->data;
    uint64_t off = 0, count = 0;
    while (off < in->byte_size) {
        if (in->byte_size - off < 4) {
            return invalid(err,
                           "input '%s': binary BYTES data is malformed (element %" PRIu64
                           "'s 4-byte length is cut off)",
                           in->name, count);
        }
        uint32_t n;
        memcpy(&n, p + off, 4);
        off += 4;
        if (n > in->byte_size - off) {
            return invalid(err,
                           "input '%s': binary BYTES data is malformed (element %" PRIu64
                           " declares %" PRIu32 " bytes, %" PRIu64 " remain)",
                           in->name, count, n, in->byte_size - off);
        }
        off += n;
        count++;
    }
    if ((int64_t)count != numel) {
        char s[96];
        return invalid(err,
                       "input '%s': binary BYTES data holds %" PRIu64
                       " elements, shape %s needs %" PRId64,
                       in->name, count, sl_dims_str(in->dims, in->ndim, s, sizeof s), numel);
    }
    return SL_INFER_OK;
}

/* ---- the request ---- */

static sl_infer_code_t parse_shape(const sl_oip_json_t *j, sl_infer_input_t *in, size_t shape,
                                   int64_t *numel, sl_infer_error_t *err) {
    if (shape == NONE) return invalid(err, "input '%s': missing field 'shape'", in->name);
    if (!is_array(j, shape)) {
        return invalid(err, "input '%s': field 'shape' must be an array of integers", in->name);
    }
    for (size_t p = sl_oip__json_first(j, shape); !sl_oip__json_done(j, p);
         p = sl_oip__json_next(j, sl_oip__json_skip(j, p))) {
        if (in->ndim == SLUICE_MAX_DIMS) {
            return invalid(err, "input '%s': shape has more than %d dimensions", in->name,
                           SLUICE_MAX_DIMS);
        }
        double x = number_or_minus_one(j, p);
        if (!(x >= 0) || x != floor(x) || x >= OIP_EXACT_LIMIT) {
            return invalid(err, "input '%s': shape must hold non-negative integers (dimension %u)",
                           in->name, in->ndim);
        }
        in->dims[in->ndim++] = (int64_t)x;
    }
    int64_t n = sl_dims_numel(in->dims, in->ndim);
    if (n < 0 || n > OIP_MAX_ELEMENTS) {
        char s[96];
        return invalid(err, "input '%s': shape %s has too many elements (at most %" PRId64 ")",
                       in->name, sl_dims_str(in->dims, in->ndim, s, sizeof s), OIP_MAX_ELEMENTS);
    }
    *numel = n;
    return SL_INFER_OK;
}

/* A name field (value at v, NONE when absent): a non-empty string of at most OIP_MAX_NAME bytes,
 * copied into the arena. */
static sl_infer_code_t get_name(sl_infer_request_t *req, const sl_oip_json_t *j, size_t v,
                                const char *what, size_t index, const char **out,
                                sl_infer_error_t *err) {
    if (v == NONE) return invalid(err, "%s %zu: missing field 'name'", what, index);
    char buf[OIP_MAX_NAME];
    size_t len = 0;
    if (is_string(j, v)) sl_oip__json_str(j, v, (uint8_t *)buf, sizeof buf, &len);
    if (len == 0) {
        return invalid(err, "%s %zu: field 'name' must be a non-empty string", what, index);
    }
    if (len > OIP_MAX_NAME) {
        return invalid(err, "%s %zu: name is longer than %d bytes", what, index, OIP_MAX_NAME);
    }
    *out = sl_infer_request_strndup(req, buf, len);
    return SL_INFER_OK;
}

/* Binary inputs waiting for their slice of the binary section. */
typedef struct pending {
    size_t input; /* index into req->inputs (the array moves as inputs are added) */
    int64_t numel;
} pending_t;

static sl_infer_code_t parse_input(sl_infer_request_t *req, const sl_oip_json_t *j, size_t jin,
                                   size_t index, pending_t *pend, size_t *n_pend,
                                   sl_infer_error_t *err) {
    if (!is_object(j, jin)) return invalid(err, "input %zu must be an object", index);
    enum { NAME, DATATYPE, SHAPE, PARAMETERS, DATA };
    static const field_t fields[] = {FIELD("name"), FIELD("datatype"), FIELD("shape"),
                                     FIELD("parameters"), FIELD("data")};
    size_t f[SL_ARRAY_LEN(fields)];
    get_fields(j, jin, fields, SL_ARRAY_LEN(fields), f);
    sl_infer_input_t *in = sl_infer_request_add_input(req);
    sl_infer_code_t rc = get_name(req, j, f[NAME], "input", index, &in->name, err);
    if (rc != SL_INFER_OK) return rc;

    size_t dt = f[DATATYPE];
    if (dt == NONE) return invalid(err, "input '%s': missing field 'datatype'", in->name);
    if (!is_string(j, dt)) {
        return invalid(err, "input '%s': field 'datatype' must be a string", in->name);
    }
    char dname[32];
    size_t dlen;
    sl_oip__json_str(j, dt, (uint8_t *)dname, sizeof dname, &dlen);
    in->dtype = dlen <= sizeof dname ? sl_dtype_from_name(dname, dlen) : SLUICE_DT_INVALID;
    if (in->dtype == SLUICE_DT_INVALID) {
        return invalid(err, "input '%s': unknown datatype '%.*s'", in->name,
                       (int)(dlen < sizeof dname ? dlen : sizeof dname), dname);
    }
    int64_t numel = 0;
    rc = parse_shape(j, in, f[SHAPE], &numel, err);
    if (rc != SL_INFER_OK) return rc;

    size_t params = f[PARAMETERS], bsize = NONE;
    if (params != NONE) {
        if (!is_object(j, params)) {
            return invalid(err, "input '%s': field 'parameters' must be an object", in->name);
        }
        static const field_t bfield[] = {FIELD("binary_data_size")};
        get_fields(j, params, bfield, 1, &bsize);
    }
    size_t data = f[DATA];
    if (bsize == NONE) {
        if (data == NONE) {
            return invalid(err, "input '%s': missing field 'data' (or parameters.binary_data_size)",
                           in->name);
        }
        return decode_json_data(req, j, in, data, numel, err);
    }
    if (data != NONE) {
        return invalid(err, "input '%s': has both 'data' and parameters.binary_data_size",
                       in->name);
    }
    double x = number_or_minus_one(j, bsize);
    if (!(x >= 0) || x != floor(x) || x >= OIP_EXACT_LIMIT) {
        return invalid(err,
                       "input '%s': parameters.binary_data_size must be a non-negative integer",
                       in->name);
    }
    in->byte_size = (uint64_t)x;
    size_t esize = sluice_dtype_size(in->dtype);
    if (esize && in->byte_size != (uint64_t)numel * esize) {
        char s[96];
        return invalid(err,
                       "input '%s': binary_data_size is %" PRIu64 " bytes, shape %s of %s needs "
                       "%" PRIu64,
                       in->name, in->byte_size, sl_dims_str(in->dims, in->ndim, s, sizeof s),
                       sl_dtype_to_name(in->dtype), (uint64_t)numel * esize);
    }
    pend[*n_pend].input = req->n_inputs - 1;
    pend[*n_pend].numel = numel;
    (*n_pend)++;
    return SL_INFER_OK;
}

static sl_infer_code_t parse_outputs(sl_infer_request_t *req, const sl_oip_json_t *j, size_t outs,
                                     sl_infer_error_t *err) {
    if (!is_array(j, outs)) return invalid(err, "field 'outputs' must be an array");
    enum { NAME, PARAMETERS };
    static const field_t fields[] = {FIELD("name"), FIELD("parameters")};
    static const field_t bfield[] = {FIELD("binary_data")};
    size_t i = 0;
    for (size_t jo = sl_oip__json_first(j, outs); !sl_oip__json_done(j, jo);
         jo = sl_oip__json_next(j, sl_oip__json_skip(j, jo))) {
        if (i == OIP_MAX_TENSORS) {
            return invalid(err, "too many outputs requested (at most %d)", OIP_MAX_TENSORS);
        }
        if (!is_object(j, jo)) return invalid(err, "output %zu must be an object", i);
        size_t f[SL_ARRAY_LEN(fields)];
        get_fields(j, jo, fields, SL_ARRAY_LEN(fields), f);
        sl_infer_output_req_t *o = sl_infer_request_add_output(req);
        sl_infer_code_t rc = get_name(req, j, f[NAME], "output", i, &o->name, err);
        if (rc != SL_INFER_OK) return rc;
        o->binary = req->binary_default;
        size_t params = f[PARAMETERS];
        if (params != NONE) {
            if (!is_object(j, params)) {
                return invalid(err, "output '%s': field 'parameters' must be an object", o->name);
            }
            size_t b;
            get_fields(j, params, bfield, 1, &b);
            if (b != NONE) {
                if (!is_bool(j, b)) {
                    return invalid(err, "output '%s': parameters.binary_data must be true or false",
                                   o->name);
                }
                o->binary = at(j, b) == 't';
            }
        }
        i++;
    }
    return SL_INFER_OK;
}

/* The request-level parameters: binary_data_output and the schedule policy (priority, timeout
 * in microseconds). Others are ignored, as OIP allows. */
static sl_infer_code_t parse_params(sl_infer_request_t *req, const sl_oip_json_t *j, size_t params,
                                    sl_infer_error_t *err) {
    if (!is_object(j, params)) return invalid(err, "field 'parameters' must be an object");
    enum { BINARY, PRIORITY, TIMEOUT };
    static const field_t fields[] = {FIELD("binary_data_output"), FIELD("priority"),
                                     FIELD("timeout")};
    size_t f[SL_ARRAY_LEN(fields)];
    get_fields(j, params, fields, SL_ARRAY_LEN(fields), f);
    if (f[BINARY] != NONE) {
        if (!is_bool(j, f[BINARY])) {
            return invalid(err, "parameters.binary_data_output must be true or false");
        }
        req->binary_default = at(j, f[BINARY]) == 't';
    }
    if (f[PRIORITY] != NONE) {
        double x = number_or_minus_one(j, f[PRIORITY]);
        if (!(x >= 0) || x != floor(x) || x > UINT32_MAX) {
            return invalid(err, "parameters.priority must be a non-negative integer");
        }
        req->priority = (uint32_t)x;
    }
    if (f[TIMEOUT] != NONE) {
        double x = number_or_minus_one(j, f[TIMEOUT]);
        if (!(x >= 0) || x != floor(x) || x >= OIP_EXACT_LIMIT) {
            return invalid(err, "parameters.timeout must be a non-negative integer (microseconds)");
        }
        req->timeout_us = (uint64_t)x;
    }
    return SL_INFER_OK;
}

static sl_infer_code_t parse_root(const sl_oip_json_t *j, const uint8_t *bin, size_t bin_len,
                                  bool has_header, sl_infer_request_t *req, sl_infer_error_t *err) {
    if (!is_object(j, j->root)) return invalid(err, "the request must be a JSON object");
    enum { ID, PARAMETERS, INPUTS, OUTPUTS };
    static const field_t fields[] = {FIELD("id"), FIELD("parameters"), FIELD("inputs"),
                                     FIELD("outputs")};
    size_t f[SL_ARRAY_LEN(fields)];
    get_fields(j, j->root, fields, SL_ARRAY_LEN(fields), f);
    if (f[ID] != NONE) {
        if (!is_string(j, f[ID])) return invalid(err, "field 'id' must be a string");
        char id[OIP_MAX_ID];
        size_t n;
        sl_oip__json_str(j, f[ID], (uint8_t *)id, sizeof id, &n);
        if (n > OIP_MAX_ID) return invalid(err, "field 'id' is longer than %d bytes", OIP_MAX_ID);
        req->id = sl_infer_request_strndup(req, id, n);
    }
    if (f[PARAMETERS] != NONE) {
        sl_infer_code_t rc = parse_params(req, j, f[PARAMETERS], err);
        if (rc != SL_INFER_OK) return rc;
    }

    size_t inputs = f[INPUTS];
    if (inputs == NONE) return invalid(err, "missing field 'inputs'");
    if (!is_array(j, inputs)) return invalid(err, "field 'inputs' must be an array");
    pending_t pend[OIP_MAX_TENSORS];
    size_t n_pend = 0, i = 0;
    for (size_t jin = sl_oip__json_first(j, inputs); !sl_oip__json_done(j, jin);
         jin = sl_oip__json_next(j, sl_oip__json_skip(j, jin))) {
        if (i == OIP_MAX_TENSORS)
            return invalid(err, "too many inputs (at most %d)", OIP_MAX_TENSORS);
        sl_infer_code_t rc = parse_input(req, j, jin, i, pend, &n_pend, err);
        if (rc != SL_INFER_OK) return rc;
        i++;
    }
    if (i == 0) return invalid(err, "field 'inputs' must not be empty");

    if (f[OUTPUTS] != NONE) {
        sl_infer_code_t rc = parse_outputs(req, j, f[OUTPUTS], err);
        if (rc != SL_INFER_OK) return rc;
    }

    /* The binary section: the binary inputs' slices in input order, covering it exactly. */
    if (n_pend > 0 && !has_header) {
        return invalid(err,
                       "input '%s' has parameters.binary_data_size but the request has no "
                       "Inference-Header-Content-Length header",
                       req->inputs[pend[0].input].name);
    }
    uint64_t declared = 0;
    for (size_t k = 0; k < n_pend; k++)
        declared += req->inputs[pend[k].input].byte_size; /* each < 2^53 */
    if (declared != bin_len) {
        return invalid(err, "binary data is %zu bytes, inputs declare %" PRIu64, bin_len, declared);
    }
    size_t off = 0;
    for (size_t k = 0; k < n_pend; k++) {
        sl_infer_input_t *in = &req->inputs[pend[k].input];
        const uint8_t *p = bin + off;
        off += in->byte_size;
        size_t align = sluice_dtype_size(in->dtype);
        /* Tensors start at any offset of the body; copy the misaligned ones so that backends
         * can read them as their element type. */
        if (align > 1 && ((uintptr_t)p % align) != 0) {
            uint8_t *copy = sl_infer_request_alloc(req, in->byte_size);
            memcpy(copy, p, in->byte_size);
            p = copy;
        }
        in->data = p;
        if (in->dtype == SLUICE_DT_BYTES) {
            sl_infer_code_t rc = check_binary_bytes(in, pend[k].numel, err);
            if (rc != SL_INFER_OK) return rc;
        }
    }
    return SL_INFER_OK;
}

sl_infer_code_t sl_oip_json_parse_request(const uint8_t *body, size_t len, int64_t header_len,
                                          sl_infer_request_t *req, sl_infer_error_t *err) {
    size_t json_len = len;
    if (header_len != -1) {
        if (header_len < 0) {
            return invalid(err, "Inference-Header-Content-Length must be a non-negative integer");
        }
        if ((uint64_t)header_len > len) {
            return invalid(err,
                           "Inference-Header-Content-Length %" PRId64
                           " is larger than the body (%zu bytes)",
                           header_len, len);
        }
        json_len = (size_t)header_len;
    }
    sl_oip_json_t j;
    if (!sl_oip__json_validate(&j, body, json_len)) {
        /* Malformed JSON is rare and worded by core/json ("invalid JSON: ... at byte N"): the
         * two accept the same documents, so its parser refuses this one too. */
        cJSON *root = NULL;
        char jerr[160];
        if (sl_json_parse((const char *)body, json_len, &root, jerr, sizeof jerr) != 0) {
            return invalid(err, "%s", jerr);
        }
        cJSON_Delete(root);
        return invalid(err, "invalid JSON");
    }
    return parse_root(&j, body + json_len, len - json_len, header_len != -1, req, err);
}
