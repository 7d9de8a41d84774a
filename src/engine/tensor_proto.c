/* ONNX TensorProto to sl_tensor_t: the loader's initializers and the .pb files of the ONNX test
 * data. Every field comes from a file, so dims, counts and sizes are checked before any copy. */
#include "engine/tensor_proto.h"
#include "engine/io.h"
#include "engine/op.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw_data is little-endian; this file copies it as is and needs a little-endian host"
#endif

#define DEFAULT_MAX_BYTES ((size_t)1 << 30)

/* "tensor 'w1'" or "unnamed tensor", for messages. */
static const char *tname(const Onnx__TensorProto *tp, char *buf, size_t n) {
    if (tp->name && tp->name[0])
        snprintf(buf, n, "tensor '%.200s'", tp->name);
    else
        snprintf(buf, n, "unnamed tensor");
    return buf;
}

/* ONNX data types this file can hold: the fixed-size ones of sl_dtype_t. */
static bool dtype_known(int32_t dt) {
    switch (dt) {
    case SL_DT_FLOAT:
    case SL_DT_UINT8:
    case SL_DT_INT8:
    case SL_DT_UINT16:
    case SL_DT_INT16:
    case SL_DT_INT32:
    case SL_DT_INT64:
    case SL_DT_BOOL:
    case SL_DT_FLOAT16:
    case SL_DT_DOUBLE:
    case SL_DT_UINT32:
    case SL_DT_UINT64:
        return true;
    default:
        return false;
    }
}

static const char *onnx_dtype_name(int32_t dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__STRING:
        return "string";
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
        return "complex64";
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
        return "complex128";
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
        return "bfloat16";
    case ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED:
        return "undefined";
    default:
        return dtype_known(dt) ? sl_dtype_name((sl_dtype_t)dt) : "unknown";
    }
}

/* The typed field that holds dt per onnx.proto, and how many values it has there. */
typedef enum field { F_NONE, F_FLOAT, F_INT32, F_INT64, F_DOUBLE, F_UINT64 } field_t;

static field_t field_for(sl_dtype_t dt) {
    switch (dt) {
    case SL_DT_FLOAT:
        return F_FLOAT;
    case SL_DT_UINT8:
    case SL_DT_INT8:
    case SL_DT_UINT16:
    case SL_DT_INT16:
    case SL_DT_INT32:
    case SL_DT_BOOL:
    case SL_DT_FLOAT16:
        return F_INT32;
    case SL_DT_INT64:
        return F_INT64;
    case SL_DT_DOUBLE:
        return F_DOUBLE;
    case SL_DT_UINT32:
    case SL_DT_UINT64:
        return F_UINT64;
    default:
        return F_NONE;
    }
}

static const char *field_name(field_t f) {
    static const char *const names[] = {"none",       "float_data",  "int32_data",
                                        "int64_data", "double_data", "uint64_data"};
    return names[f];
}

static size_t field_count(const Onnx__TensorProto *tp, field_t f) {
    switch (f) {
    case F_FLOAT:
        return tp->n_float_data;
    case F_INT32:
        return tp->n_int32_data;
    case F_INT64:
        return tp->n_int64_data;
    case F_DOUBLE:
        return tp->n_double_data;
    case F_UINT64:
        return tp->n_uint64_data;
    case F_NONE:
        break;
    }
    return 0;
}

/* Copies n values from the typed field into dst, narrowing int32_data and uint64_data to the
 * element type the way numpy's astype does (ONNX stores the small types widened). */
static void copy_typed(const Onnx__TensorProto *tp, sl_dtype_t dt, void *dst, size_t n) {
    switch (dt) {
    case SL_DT_FLOAT:
        memcpy(dst, tp->float_data, n * sizeof(float));
        break;
    case SL_DT_DOUBLE:
        memcpy(dst, tp->double_data, n * sizeof(double));
        break;
    case SL_DT_INT64:
        memcpy(dst, tp->int64_data, n * sizeof(int64_t));
        break;
    case SL_DT_INT32:
        memcpy(dst, tp->int32_data, n * sizeof(int32_t));
        break;
    case SL_DT_UINT64:
        memcpy(dst, tp->uint64_data, n * sizeof(uint64_t));
        break;
    case SL_DT_UINT32: {
        uint32_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint32_t)tp->uint64_data[i];
        break;
    }
    case SL_DT_UINT8: {
        uint8_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint8_t)tp->int32_data[i];
        break;
    }
    case SL_DT_INT8: {
        int8_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (int8_t)tp->int32_data[i];
        break;
    }
    case SL_DT_BOOL: {
        uint8_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = tp->int32_data[i] != 0;
        break;
    }
    case SL_DT_UINT16:
    case SL_DT_FLOAT16: { /* float16 travels as its bit pattern */
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint16_t)tp->int32_data[i];
        break;
    }
    case SL_DT_INT16: {
        int16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (int16_t)tp->int32_data[i];
        break;
    }
    default:
        break;
    }
}

/* Which typed fields hold any values: a bit per field_t. */
static unsigned fields_present(const Onnx__TensorProto *tp) {
    unsigned m = 0;
    if (tp->n_float_data) m |= 1u << F_FLOAT;
    if (tp->n_int32_data) m |= 1u << F_INT32;
    if (tp->n_int64_data) m |= 1u << F_INT64;
    if (tp->n_double_data) m |= 1u << F_DOUBLE;
    if (tp->n_uint64_data) m |= 1u << F_UINT64;
    return m;
}

sl_eng_status_t sl_tensor_from_proto(const Onnx__TensorProto *tp, size_t max_bytes,
                                     sl_tensor_t *out, sl_eng_error_t *err) {
    char nm[256];
    memset(out, 0, sizeof *out);
    if (!tp) return sl_eng_set_error(err, SL_ENG_EINVAL, "no tensor given");
    if (max_bytes == 0) max_bytes = DEFAULT_MAX_BYTES;
    tname(tp, nm, sizeof nm);

    if ((tp->has_data_location &&
         tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        tp->n_external_data > 0)
        return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED,
                                "%s: data stored in an external file is not supported", nm);
    if (tp->segment)
        return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED, "%s: segmented tensors are not supported",
                                nm);
    int32_t dt = tp->data_type;
    if (!dtype_known(dt)) {
        if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED)
            return sl_eng_set_error(err, SL_ENG_EPARSE, "%s: data_type is not set", nm);
        return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED, "%s: data type %s (%d) is not supported",
                                nm, onnx_dtype_name(dt), (int)dt);
    }
    if (tp->n_dims > SL_MAX_DIMS)
        return sl_eng_set_error(err, SL_ENG_ELIMIT, "%s: %zu dims, at most %d are supported", nm,
                                tp->n_dims, SL_MAX_DIMS);

    /* Element count with overflow and size checks before anything is allocated. */
    size_t esize = sl_dtype_size((sl_dtype_t)dt);
    uint64_t numel = 1;
    bool zero = false;
    for (size_t i = 0; i < tp->n_dims; i++) {
        int64_t d = tp->dims[i];
        if (d < 0)
            return sl_eng_set_error(err, SL_ENG_EPARSE, "%s: dim %zu is negative (%lld)", nm, i,
                                    (long long)d);
        if (d == 0) zero = true;
        if (!zero && (uint64_t)d > (uint64_t)(max_bytes / esize) / numel)
            return sl_eng_set_error(err, SL_ENG_ELIMIT,
                                    "%s: more than the limit of %zu bytes (dim %zu is %lld)", nm,
                                    max_bytes, i, (long long)d);
        if (!zero) numel *= (uint64_t)d;
    }
    if (zero) numel = 0;
    size_t nbytes = (size_t)numel * esize;

    /* Where the values are: raw_data, or the one typed field onnx.proto assigns to dt. */
    field_t want = field_for((sl_dtype_t)dt);
    unsigned present = fields_present(tp);
    if (tp->has_raw_data && tp->raw_data.len > 0) {
        if (present)
            return sl_eng_set_error(err, SL_ENG_EPARSE,
                                    "%s: has both raw_data and typed data fields", nm);
        if (tp->raw_data.len != nbytes)
            return sl_eng_set_error(err, SL_ENG_EPARSE,
                                    "%s: raw_data has %zu bytes, %s with %llu elements needs %zu",
                                    nm, tp->raw_data.len, sl_dtype_name((sl_dtype_t)dt),
                                    (unsigned long long)numel, nbytes);
    } else {
        if (present & ~(1u << want)) {
            field_t got = F_NONE;
            for (int f = F_FLOAT; f <= F_UINT64; f++)
                if (present & (1u << f)) got = (field_t)f;
            return sl_eng_set_error(err, SL_ENG_EPARSE, "%s: %s values stored in %s, expected %s",
                                    nm, sl_dtype_name((sl_dtype_t)dt), field_name(got),
                                    field_name(want));
        }
        size_t have = field_count(tp, want);
        if (have == 0 && numel > 0)
            return sl_eng_set_error(err, SL_ENG_EPARSE,
                                    "%s: no values (raw_data and %s are empty), dims need %llu", nm,
                                    field_name(want), (unsigned long long)numel);
        if (have != numel)
            return sl_eng_set_error(err, SL_ENG_EPARSE, "%s: %s has %zu values, dims need %llu", nm,
                                    field_name(want), have, (unsigned long long)numel);
    }

    void *data = malloc(nbytes ? nbytes : 1);
    if (!data)
        return sl_eng_set_error(err, SL_ENG_ENOMEM, "%s: out of memory (%zu bytes)", nm, nbytes);
    if (tp->has_raw_data && tp->raw_data.len > 0) {
        memcpy(data, tp->raw_data.data, nbytes);
        if (dt == SL_DT_BOOL) { /* any nonzero byte is true; keep bools 0/1 for the kernels */
            uint8_t *b = data;
            for (size_t i = 0; i < nbytes; i++)
                b[i] = b[i] != 0;
        }
    } else if (numel > 0) {
        copy_typed(tp, (sl_dtype_t)dt, data, (size_t)numel);
    }
    out->dtype = (sl_dtype_t)dt;
    out->ndim = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++)
        out->dims[i] = tp->dims[i];
    out->data = data;
    return SL_ENG_OK;
}

sl_eng_status_t sl_tensor_read_pb(const char *path, size_t max_bytes, sl_tensor_t *out, char **name,
                                  sl_eng_error_t *err) {
    memset(out, 0, sizeof *out);
    if (name) *name = NULL;
    if (max_bytes == 0) max_bytes = DEFAULT_MAX_BYTES;
    /* Typed fields are varints: an int64 takes up to 10 bytes for 8 of data. Allow that much
     * encoding overhead plus room for the name and dims. */
    size_t limit = max_bytes > (SIZE_MAX - (1u << 20)) / 2 ? SIZE_MAX : max_bytes * 2 + (1u << 20);
    uint8_t *buf = NULL;
    size_t len = 0;
    sl_eng_status_t st = sl_eng__read_file(path, limit, &buf, &len, err);
    if (st != SL_ENG_OK) return st;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp) return sl_eng_set_error(err, SL_ENG_EPARSE, "%s: not a serialized TensorProto", path);
    st = sl_tensor_from_proto(tp, max_bytes, out, err);
    if (st == SL_ENG_OK && name) {
        *name = strdup(tp->name ? tp->name : "");
        if (!*name) {
            free(out->data);
            memset(out, 0, sizeof *out);
            st = sl_eng_set_error(err, SL_ENG_ENOMEM, "%s: out of memory", path);
        }
    } else if (st != SL_ENG_OK && err) {
        /* Prefix the file so the user knows which of many .pb files it was. */
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%.200s: %.300s", path, err->msg);
        memcpy(err->msg, msg, sizeof msg);
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}
