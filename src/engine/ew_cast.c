/* Elementwise kernels that copy or convert: the dtype conversion matrix behind Cast, CastLike
 * and Pow's mixed-type path, plus Identity and inference-mode Dropout. */
/* These loops are the engine's elementwise hot path. GCC 12 at -O2 vectorises only loops whose
 * trip count it knows, so the file asks for -O3 whatever the build type; no-trapping-math lets
 * float selects (clamps, NaN checks) become vector blends: it changes no value, only whether FP
 * exception flags count as side effects, and nothing here reads them. */
#if defined(__GNUC__) && !defined(__clang__)
#endif

#include "engine/ew.h"

#include <string.h>

/* ---- float to integer without undefined behaviour: truncation toward zero, NaN to 0,
 * saturation at the int64 (or int32) range; narrower types then wrap as numpy's astype does
 * on x86 (-1.0 to uint8 is 255) ---- */

static inline int64_t f2i64(double x) {
    if (x != x) return 0;
    if (x >= 9223372036854775808.0) return INT64_MAX;
    if (x <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}
static inline int32_t f2i32(double x) {
    if (x != x) return 0;
    if (x >= 2147483647.0) return INT32_MAX;
    if (x <= -2147483648.0) return INT32_MIN;
    return (int32_t)x;
}
static inline uint64_t f2u64(double x) {
    if (x >= 18446744073709551616.0) return UINT64_MAX;
    if (x >= 9223372036854775808.0) return (uint64_t)x;
    return (uint64_t)f2i64(x);
}

#define CAST_LOOP(TD, TS, EXPR)                                                                    \
    do {                                                                                           \
        TD *restrict d = dst;                                                                      \
        const TS *restrict s = src;                                                                \
        for (size_t i = 0; i < n; i++) {                                                           \
            const TS x = s[i];                                                                     \
            d[i] = (TD)(EXPR);                                                                     \
        }                                                                                          \
    } while (0)

/* One destination type: FCONV converts a float/double x, ICONV an integer x. */
#define CAST_FROM(TD, FCONV, ICONV)                                                                \
    switch (st) {                                                                                  \
    case SL_DT_FLOAT:                                                                              \
        CAST_LOOP(TD, float, FCONV(x));                                                            \
        return true;                                                                               \
    case SL_DT_DOUBLE:                                                                             \
        CAST_LOOP(TD, double, FCONV(x));                                                           \
        return true;                                                                               \
    case SL_DT_INT8:                                                                               \
        CAST_LOOP(TD, int8_t, ICONV(x));                                                           \
        return true;                                                                               \
    case SL_DT_INT16:                                                                              \
        CAST_LOOP(TD, int16_t, ICONV(x));                                                          \
        return true;                                                                               \
    case SL_DT_INT32:                                                                              \
        CAST_LOOP(TD, int32_t, ICONV(x));                                                          \
        return true;                                                                               \
    case SL_DT_INT64:                                                                              \
        CAST_LOOP(TD, int64_t, ICONV(x));                                                          \
        return true;                                                                               \
    case SL_DT_UINT8:                                                                              \
        CAST_LOOP(TD, uint8_t, ICONV(x));                                                          \
        return true;                                                                               \
    case SL_DT_UINT16:                                                                             \
        CAST_LOOP(TD, uint16_t, ICONV(x));                                                         \
        return true;                                                                               \
    case SL_DT_UINT32:                                                                             \
        CAST_LOOP(TD, uint32_t, ICONV(x));                                                         \
        return true;                                                                               \
    case SL_DT_UINT64:                                                                             \
        CAST_LOOP(TD, uint64_t, ICONV(x));                                                         \
        return true;                                                                               \
    case SL_DT_BOOL:                                                                               \
        CAST_LOOP(TD, uint8_t, x != 0);                                                            \
        return true;                                                                               \
    default:                                                                                       \
        return false;                                                                              \
    }

#define AS_IS(x)   (x)
#define NONZERO(x) ((x) != 0) /* NaN != 0 holds: NaN casts to true */
#define F_I64(x)   f2i64(x)
#define F_I32(x)   f2i32(x)
#define F_U64(x)   f2u64(x)

bool sl_ew__cast(void *dst, sl_dtype_t dt, const void *src, sl_dtype_t st, size_t n) {
    if (dt == st && dt != SL_DT_BOOL) {
        size_t es = sl_dtype_size(dt);
        if (!es || dt == SL_DT_FLOAT16) return false;
        if (dst != src && n) memmove(dst, src, n * es);
        return true;
    }
    switch (dt) {
    case SL_DT_FLOAT:
        CAST_FROM(float, AS_IS, AS_IS)
    case SL_DT_DOUBLE:
        CAST_FROM(double, AS_IS, AS_IS)
    case SL_DT_INT64:
        CAST_FROM(int64_t, F_I64, AS_IS)
    case SL_DT_INT32:
        CAST_FROM(int32_t, F_I32, AS_IS)
    case SL_DT_INT16:
        CAST_FROM(int16_t, F_I64, AS_IS)
    case SL_DT_INT8:
        CAST_FROM(int8_t, F_I64, AS_IS)
    case SL_DT_UINT64:
        CAST_FROM(uint64_t, F_U64, AS_IS)
    case SL_DT_UINT32:
        CAST_FROM(uint32_t, F_I64, AS_IS)
    case SL_DT_UINT16:
        CAST_FROM(uint16_t, F_I64, AS_IS)
    case SL_DT_UINT8:
        CAST_FROM(uint8_t, F_I64, AS_IS)
    case SL_DT_BOOL:
        CAST_FROM(uint8_t, NONZERO, NONZERO)
    default:
        return false;
    }
}

#define CASTABLE (EW_ALL)

static void same_shape(const sl_tensor_t *in, sl_tensor_t *out) {
    out->ndim = in->ndim;
    memcpy(out->dims, in->dims, sizeof out->dims);
}

/* ---- Identity ---- */

sl_eng_status_t sl_ew__infer_Identity(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 1, 1, 1, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, CASTABLE, err);
    if (s != SL_ENG_OK) return s;
    out[0].dtype = in[0]->dtype;
    same_shape(in[0], &out[0]);
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__run_Identity(EW_RUN_ARGS) {
    sl_ew__copy(in[0], &out[0]);
    return SL_ENG_OK;
}

/* ---- Cast (opset 6+: `to` is a TensorProto.DataType) and CastLike ---- */

static sl_eng_status_t cast_infer(const sl_node_t *node, const sl_tensor_t *x, int64_t to,
                                  sl_tensor_t *out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_ew__check_dtype(node, x, 0, CASTABLE, err);
    if (s != SL_ENG_OK) return s;
    if (to < 0 || to >= EW_NDT || !(CASTABLE & EW_DT(to)))
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                             "cast to %s (data type %lld) is not supported; supported: float32, "
                             "float64, int8-64, uint8-64, bool",
                             to >= 0 && to < EW_NDT ? sl_dtype_name((sl_dtype_t)to) : "unknown",
                             (long long)to);
    out->dtype = (sl_dtype_t)to;
    same_shape(x, out);
    return SL_ENG_OK;
}

static sl_eng_status_t cast_run(const sl_node_t *node, const sl_tensor_t *x, sl_tensor_t *out,
                                sl_kctx_t *k) {
    if (!sl_ew__cast(out->data, out->dtype, x->data, x->dtype, (size_t)sl_tensor_numel(x)))
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "cannot cast %s to %s",
                             sl_dtype_name(x->dtype), sl_dtype_name(out->dtype));
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__infer_Cast(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 1, 1, 1, n_out, err);
    if (s != SL_ENG_OK) return s;
    const sl_attr_t *to = sl_attr_get(node, "to");
    if (!to || to->type != SL_ATTR_INT)
        return sl_node_error(node, err, SL_ENG_EINVAL, "attribute 'to' (an INT) is required");
    return cast_infer(node, in[0], to->i, &out[0], err);
}

sl_eng_status_t sl_ew__run_Cast(EW_RUN_ARGS) {
    return cast_run(node, in[0], &out[0], k);
}

sl_eng_status_t sl_ew__infer_CastLike(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 2, 2, 2, n_out, err);
    if (s != SL_ENG_OK) return s;
    return cast_infer(node, in[0], in[1]->dtype, &out[0], err);
}

sl_eng_status_t sl_ew__run_CastLike(EW_RUN_ARGS) {
    return cast_run(node, in[0], &out[0], k);
}

/* ---- Dropout, inference only: output = data, mask all true. Opsets before 12 take ratio (and
 * before 7 is_test) as attributes; they only matter in training, so they are ignored, as every
 * inference engine does. From 12, training_mode=true is refused unless ratio is 0. ---- */

static bool dropout_training(const sl_node_t *node, const sl_tensor_t *const *in, int n_in) {
    if (node->opset < 12 || n_in < 3 || !in[2] || sl_tensor_numel(in[2]) < 1) return false;
    /* Values unknown (shape inference at load): the shapes are the same either way. */
    if (!in[2]->data || !*(const uint8_t *)in[2]->data) return false;
    float ratio = 0.5f;
    if (in[1] && in[1]->data && sl_tensor_numel(in[1]) >= 1) {
        if (in[1]->dtype == SL_DT_FLOAT) ratio = *(const float *)in[1]->data;
        if (in[1]->dtype == SL_DT_DOUBLE) ratio = (float)*(const double *)in[1]->data;
    }
    return ratio != 0.0f;
}

sl_eng_status_t sl_ew__infer_Dropout(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 1, node->opset >= 12 ? 3 : 1, 1, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, EW_FLOATS, err);
    if (s == SL_ENG_OK && n_in > 1 && in[1]) s = sl_ew__check_dtype(node, in[1], 1, EW_FLOATS, err);
    if (s == SL_ENG_OK && n_in > 2 && in[2])
        s = sl_ew__check_dtype(node, in[2], 2, EW_DT(SL_DT_BOOL), err);
    if (s != SL_ENG_OK) return s;
    if (dropout_training(node, in, n_in))
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                             "training_mode is true with a nonzero ratio; only inference (an "
                             "identity) is supported");
    out[0].dtype = in[0]->dtype;
    same_shape(in[0], &out[0]);
    if (n_out > 1) {
        out[1].dtype = node->opset >= 10 ? SL_DT_BOOL : in[0]->dtype;
        same_shape(in[0], &out[1]);
    }
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__run_Dropout(EW_RUN_ARGS) {
    sl_ew__copy(in[0], &out[0]);
    if (n_out > 1 && node->outputs[1] >= 0 && out[1].data) {
        size_t n = (size_t)sl_tensor_numel(&out[1]);
        if (out[1].dtype == SL_DT_BOOL) {
            memset(out[1].data, 1, n);
        } else {
            uint8_t one = 1;
            sl_ew__cast(out[1].data, out[1].dtype, &one, SL_DT_BOOL, 1);
            size_t es = sl_dtype_size(out[1].dtype);
            for (size_t i = 1; i < n; i++)
                memcpy((char *)out[1].data + i * es, out[1].data, es);
        }
    }
    return SL_ENG_OK;
}
