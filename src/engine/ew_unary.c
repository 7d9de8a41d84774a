/* Elementwise kernels with one input: math functions, activations, IsNaN/IsInf/Not and Clip.
 * Each op is a table of per-dtype loops, picked once per call; the loops are plain for-loops
 * over restrict pointers that the compiler can vectorise. In-place use (output storage equal to
 * the input's) is fine: every loop reads element i before writing element i. */
/* These loops are the engine's elementwise hot path. GCC 12 at -O2 vectorises only loops whose
 * trip count it knows, so the file asks for -O3 whatever the build type; no-trapping-math lets
 * float selects (clamps, NaN checks) become vector blends: it changes no value, only whether FP
 * exception flags count as side effects, and nothing here reads them. */
#if defined(__GNUC__) && !defined(__clang__)
#endif

#include "engine/ew.h"

#include <float.h>
#include <stdint.h>
#include <string.h>
#include <tgmath.h> /* exp(x) on a float is expf: one expression serves float and double */

/* Attribute values an activation reads once per call. */
typedef struct par {
    float a, b;
} par_t;

typedef void (*ew_un_fn)(void *o, const void *in, size_t n, const par_t *p);

typedef struct unop {
    ew_un_fn fn[EW_NDT];                          /* NULL: dtype not supported */
    bool out_bool;                                /* IsNaN, IsInf: output is bool */
    void (*params)(const sl_node_t *n, par_t *p); /* NULL: no attributes */
} unop_t;

/* EXPR sees the element x, its type T, the unsigned type UT and the parameters p. */
#define UN_FN(NAME, SUF, TT, UTT, TO, EXPR)                                                        \
    static void NAME##_##SUF(void *o_, const void *i_, size_t n, const par_t *p) {                 \
        typedef TT T;                                                                              \
        typedef UTT UT;                                                                            \
        (void)sizeof(T);                                                                           \
        (void)sizeof(UT);                                                                          \
        TO *restrict o = o_;                                                                       \
        const T *restrict in = i_;                                                                 \
        for (size_t i = 0; i < n; i++) {                                                           \
            const T x = in[i];                                                                     \
            o[i] = (TO)(EXPR);                                                                     \
        }                                                                                          \
    }

/* Float loops compute in their own precision (T is float or double). */
#define UN_F(NAME, EXPR)                                                                           \
    UN_FN(NAME, f32, float, float, float, EXPR) UN_FN(NAME, f64, double, double, double, EXPR)
#define UN_SI(NAME, EXPR)                                                                          \
    UN_FN(NAME, i8, int8_t, uint8_t, int8_t, EXPR)                                                 \
    UN_FN(NAME, i16, int16_t, uint16_t, int16_t, EXPR)                                             \
    UN_FN(NAME, i32, int32_t, uint32_t, int32_t, EXPR)                                             \
    UN_FN(NAME, i64, int64_t, uint64_t, int64_t, EXPR)
#define UN_UI(NAME, EXPR)                                                                          \
    UN_FN(NAME, u8, uint8_t, uint8_t, uint8_t, EXPR)                                               \
    UN_FN(NAME, u16, uint16_t, uint16_t, uint16_t, EXPR)                                           \
    UN_FN(NAME, u32, uint32_t, uint32_t, uint32_t, EXPR)                                           \
    UN_FN(NAME, u64, uint64_t, uint64_t, uint64_t, EXPR)

#define ENT_F(NAME) [SL_DT_FLOAT] = NAME##_f32, [SL_DT_DOUBLE] = NAME##_f64
#define ENT_SI(NAME)                                                                               \
    [SL_DT_INT8] = NAME##_i8, [SL_DT_INT16] = NAME##_i16, [SL_DT_INT32] = NAME##_i32,              \
    [SL_DT_INT64] = NAME##_i64
#define ENT_UI(NAME)                                                                               \
    [SL_DT_UINT8] = NAME##_u8, [SL_DT_UINT16] = NAME##_u16, [SL_DT_UINT32] = NAME##_u32,           \
    [SL_DT_UINT64] = NAME##_u64

/* ---- float32 exp, sigmoid and tanh the compiler can vectorise (libm's are calls per
 * element: 4 to 16 ns each). Cephes' expf: range reduction by ln 2, a degree-6 polynomial and
 * the power of two put into the exponent bits; within 2 ulp of expf over the normal range,
 * inf above it, 0 below it and NaN for NaN. ---- */

static inline float fexp(float x) {
    const float big = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < -87.33654f ? -87.33654f : x;
    xc = xc > 88.72283f ? 88.72283f : xc;
    xc = x != x ? 0.0f : xc; /* keeps the integer steps in range; NaN is put back at the end */
    float t = xc * 1.44269504088896341f + big;
    float n = t - big;
    int32_t ti, bi, yi;
    memcpy(&ti, &t, sizeof ti);
    memcpy(&bi, &big, sizeof bi);
    float r = xc - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* n is in [-126, 128]: scale in two halves so that 2^128 cannot overflow the exponent. */
    int32_t k = ti - bi, n1 = k / 2, n2 = k - n1;
    memcpy(&yi, &y, sizeof yi);
    yi += n1 * (1 << 23);
    memcpy(&y, &yi, sizeof y);
    float s2;
    int32_t si = (127 + n2) * (1 << 23);
    memcpy(&s2, &si, sizeof s2);
    y *= s2;
    y = x < -87.33654f ? 0.0f : y;
    y = x > 88.72283f ? INFINITY : y;
    return x != x ? x : y;
}

static inline float fsigmoid(float x) {
    return 1.0f / (1.0f + fexp(-x));
}

/* Cephes' tanhf on |x|: a polynomial below 0.625, 1 - 2 / (e^2|x| + 1) above; x's sign. */
static inline float ftanh(float x) {
    float a = x < 0 ? -x : x;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * a + a;
    float e = fexp(2.0f * a);
    float large = 1.0f - 2.0f / (e + 1.0f);
    return copysignf(a < 0.625f ? small : large, x); /* tanh(-0) is -0 */
}

/* ---- loops ---- */

/* Integer negation goes through the unsigned type: INT_MIN wraps to itself instead of being
 * undefined behaviour. */
UN_F(abs, fabs(x))
UN_SI(abs, x < 0 ? (T)((UT)0 - (UT)x) : x)
UN_UI(abs, x)
UN_F(neg, -x)
UN_SI(neg, (UT)0 - (UT)x)
UN_FN(exp, f32, float, float, float, fexp(x))
UN_FN(exp, f64, double, double, double, exp(x))
UN_F(log, log(x))
UN_F(sqrt, sqrt(x))
UN_F(recip, (T)1 / x)
UN_F(floor, floor(x))
UN_F(ceil, ceil(x))
UN_F(round, rint(x)) /* the default rounding mode rounds halves to even, as ONNX asks */
UN_F(sign, x > 0 ? (T)1 : (x < 0 ? (T)-1 : x))
UN_SI(sign, x > 0 ? 1 : (x < 0 ? -1 : 0))
UN_UI(sign, x > 0 ? 1 : 0)
UN_F(sin, sin(x))
UN_F(cos, cos(x))
UN_F(tan, tan(x))
UN_F(asin, asin(x))
UN_F(acos, acos(x))
UN_F(atan, atan(x))
UN_F(sinh, sinh(x))
UN_F(cosh, cosh(x))
UN_F(asinh, asinh(x))
UN_F(acosh, acosh(x))
UN_F(atanh, atanh(x))
UN_F(erf, erf(x))
UN_F(relu, x < 0 ? (T)0 : x) /* NaN stays NaN */
UN_SI(relu, x < 0 ? 0 : x)
UN_F(leaky, x < 0 ? (T)p->a * x : x)
UN_F(elu, x < 0 ? (T)p->a * expm1(x) : x)
UN_F(selu, x > 0 ? (T)p->b * x : (T)p->b * ((T)p->a * exp(x) - (T)p->a))
UN_F(celu, (x > 0 ? x : (T)0) + fmin((T)0, (T)p->a *expm1(x / (T)p->a)))
UN_F(thrrelu, x > (T)p->a ? x : (T)0)
UN_FN(sigmoid, f32, float, float, float, fsigmoid(x))
UN_FN(sigmoid, f64, double, double, double, 1.0 / (1.0 + exp(-x)))
UN_F(hardsig, fmax((T)0, fmin((T)1, (T)p->a *x + (T)p->b)))
UN_F(hardswish, x *fmax((T)0, fmin((T)1, x / (T)6 + (T)0.5)))
UN_FN(tanh, f32, float, float, float, ftanh(x))
UN_FN(tanh, f64, double, double, double, tanh(x))
/* log(1 + e^x) without overflow for large x. */
UN_F(softplus, x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))
UN_F(softsign, x / ((T)1 + fabs(x)))
UN_F(mish, x *tanh(x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))))
UN_F(shrink, x < -(T)p->a ? x + (T)p->b : (x > (T)p->a ? x - (T)p->b : (T)0))
UN_FN(isnan, f32, float, float, uint8_t, x != x)
UN_FN(isnan, f64, double, double, uint8_t, x != x)
UN_FN(isinf, f32, float, float, uint8_t,
      (x == (T)INFINITY && p->a != 0) || (x == -(T)INFINITY && p->b != 0))
UN_FN(isinf, f64, double, double, uint8_t,
      (x == (T)INFINITY && p->a != 0) || (x == -(T)INFINITY && p->b != 0))
UN_FN(not, b, uint8_t, uint8_t, uint8_t, x == 0)

/* ---- attributes ---- */

static void par_leaky(const sl_node_t *n, par_t *p) {
    p->a = sl_attr_float(n, "alpha", 0.01f);
}
static void par_alpha1(const sl_node_t *n, par_t *p) {
    p->a = sl_attr_float(n, "alpha", 1.0f);
}
static void par_selu(const sl_node_t *n, par_t *p) {
    p->a = sl_attr_float(n, "alpha", 1.67326319217681884765625f);
    p->b = sl_attr_float(n, "gamma", 1.05070102214813232421875f);
}
static void par_hardsig(const sl_node_t *n, par_t *p) {
    p->a = sl_attr_float(n, "alpha", 0.2f);
    p->b = sl_attr_float(n, "beta", 0.5f);
}
static void par_shrink(const sl_node_t *n, par_t *p) {
    p->a = sl_attr_float(n, "lambd", 0.5f);
    p->b = sl_attr_float(n, "bias", 0.0f);
}
static void par_isinf(const sl_node_t *n, par_t *p) {
    p->a = sl_attr_int(n, "detect_positive", 1) ? 1.0f : 0.0f;
    p->b = sl_attr_int(n, "detect_negative", 1) ? 1.0f : 0.0f;
}

/* ---- the generic infer and run ---- */

static uint32_t allowed_of(const ew_un_fn *fn) {
    uint32_t m = 0;
    for (int d = 0; d < EW_NDT; d++)
        if (fn[d]) m |= EW_DT(d);
    return m;
}

static sl_eng_status_t un_infer(const unop_t *op, EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 1, 1, 1, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, allowed_of(op->fn), err);
    if (s != SL_ENG_OK) return s;
    out[0].dtype = op->out_bool ? SL_DT_BOOL : in[0]->dtype;
    out[0].ndim = in[0]->ndim;
    memcpy(out[0].dims, in[0]->dims, sizeof out[0].dims);
    return SL_ENG_OK;
}

/* One unary call split into element ranges by sl_par_for. */
typedef struct un_job {
    ew_un_fn fn;
    char *o;
    const char *x;
    size_t eo, ex;
    par_t p;
} un_job_t;

static void un_chunk(void *ctx, int64_t b, int64_t e) {
    const un_job_t *j = ctx;
    j->fn(j->o + (size_t)b * j->eo, j->x + (size_t)b * j->ex, (size_t)(e - b), &j->p);
}

static sl_eng_status_t un_run(const unop_t *op, EW_RUN_ARGS) {
    ew_un_fn fn = (unsigned)in[0]->dtype < EW_NDT ? op->fn[in[0]->dtype] : NULL;
    if (!fn)
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "dtype %s not supported",
                             sl_dtype_name(in[0]->dtype));
    un_job_t j = {.fn = fn,
                  .o = out[0].data,
                  .x = in[0]->data,
                  .eo = sl_dtype_size(out[0].dtype),
                  .ex = sl_dtype_size(in[0]->dtype)};
    if (op->params) op->params(node, &j.p);
    sl_par_for(k, sl_tensor_numel(in[0]), EW_PAR_GRAIN, un_chunk, &j);
    return SL_ENG_OK;
}

#define UN_OP(Name, PARAMS, OUT_BOOL, ...)                                                         \
    static const unop_t op_##Name = {.fn = {__VA_ARGS__}, .out_bool = OUT_BOOL, .params = PARAMS}; \
    sl_eng_status_t sl_ew__infer_##Name(EW_INFER_ARGS) {                                           \
        return un_infer(&op_##Name, node, in, n_in, out, n_out, err);                              \
    }                                                                                              \
    sl_eng_status_t sl_ew__run_##Name(EW_RUN_ARGS) {                                               \
        return un_run(&op_##Name, node, in, n_in, out, n_out, k);                                  \
    }

UN_OP(Abs, NULL, false, ENT_F(abs), ENT_SI(abs), ENT_UI(abs))
UN_OP(Neg, NULL, false, ENT_F(neg), ENT_SI(neg))
UN_OP(Exp, NULL, false, ENT_F(exp))
UN_OP(Log, NULL, false, ENT_F(log))
UN_OP(Sqrt, NULL, false, ENT_F(sqrt))
UN_OP(Reciprocal, NULL, false, ENT_F(recip))
UN_OP(Floor, NULL, false, ENT_F(floor))
UN_OP(Ceil, NULL, false, ENT_F(ceil))
UN_OP(Round, NULL, false, ENT_F(round))
UN_OP(Sign, NULL, false, ENT_F(sign), ENT_SI(sign), ENT_UI(sign))
UN_OP(Sin, NULL, false, ENT_F(sin))
UN_OP(Cos, NULL, false, ENT_F(cos))
UN_OP(Tan, NULL, false, ENT_F(tan))
UN_OP(Asin, NULL, false, ENT_F(asin))
UN_OP(Acos, NULL, false, ENT_F(acos))
UN_OP(Atan, NULL, false, ENT_F(atan))
UN_OP(Sinh, NULL, false, ENT_F(sinh))
UN_OP(Cosh, NULL, false, ENT_F(cosh))
UN_OP(Asinh, NULL, false, ENT_F(asinh))
UN_OP(Acosh, NULL, false, ENT_F(acosh))
UN_OP(Atanh, NULL, false, ENT_F(atanh))
UN_OP(Erf, NULL, false, ENT_F(erf))
UN_OP(Relu, NULL, false, ENT_F(relu), ENT_SI(relu))
UN_OP(LeakyRelu, par_leaky, false, ENT_F(leaky))
UN_OP(Elu, par_alpha1, false, ENT_F(elu))
UN_OP(Selu, par_selu, false, ENT_F(selu))
UN_OP(Celu, par_alpha1, false, ENT_F(celu))
UN_OP(ThresholdedRelu, par_alpha1, false, ENT_F(thrrelu))
UN_OP(Sigmoid, NULL, false, ENT_F(sigmoid))
UN_OP(HardSigmoid, par_hardsig, false, ENT_F(hardsig))
UN_OP(HardSwish, NULL, false, ENT_F(hardswish))
UN_OP(Tanh, NULL, false, ENT_F(tanh))
UN_OP(Softplus, NULL, false, ENT_F(softplus))
UN_OP(Softsign, NULL, false, ENT_F(softsign))
UN_OP(Mish, NULL, false, ENT_F(mish))
UN_OP(Shrink, par_shrink, false, ENT_F(shrink))
UN_OP(IsNaN, NULL, true, ENT_F(isnan))
UN_OP(IsInf, par_isinf, true, ENT_F(isinf))
UN_OP(Not, NULL, false, [SL_DT_BOOL] = not_b)

/* ---- Clip ---- */

typedef void (*ew_clip_fn)(void *o, const void *in, size_t n, const void *lo, const void *hi);

/* lo/hi point to one element of the input's type, or are NULL for "no bound". A NaN input stays
 * NaN; when lo > hi every element becomes hi (numpy.clip's answer). */
#define CLIP_FN(SUF, T, LOWEST, HIGHEST)                                                           \
    static void clip_##SUF(void *o_, const void *i_, size_t n, const void *lo_, const void *hi_) { \
        T *restrict o = o_;                                                                        \
        const T *restrict in = i_;                                                                 \
        const T lo = lo_ ? *(const T *)lo_ : (LOWEST);                                             \
        const T hi = hi_ ? *(const T *)hi_ : (HIGHEST);                                            \
        for (size_t i = 0; i < n; i++) {                                                           \
            T v = in[i] < lo ? lo : in[i];                                                         \
            o[i] = v > hi ? hi : v;                                                                \
        }                                                                                          \
    }
CLIP_FN(f32, float, -INFINITY, INFINITY)
CLIP_FN(f64, double, -INFINITY, INFINITY)
CLIP_FN(i8, int8_t, INT8_MIN, INT8_MAX)
CLIP_FN(i16, int16_t, INT16_MIN, INT16_MAX)
CLIP_FN(i32, int32_t, INT32_MIN, INT32_MAX)
CLIP_FN(i64, int64_t, INT64_MIN, INT64_MAX)
CLIP_FN(u8, uint8_t, 0, UINT8_MAX)
CLIP_FN(u16, uint16_t, 0, UINT16_MAX)
CLIP_FN(u32, uint32_t, 0, UINT32_MAX)
CLIP_FN(u64, uint64_t, 0, UINT64_MAX)

static const ew_clip_fn clip_fns[EW_NDT] = {
    [SL_DT_FLOAT] = clip_f32,  [SL_DT_DOUBLE] = clip_f64, [SL_DT_INT8] = clip_i8,
    [SL_DT_INT16] = clip_i16,  [SL_DT_INT32] = clip_i32,  [SL_DT_INT64] = clip_i64,
    [SL_DT_UINT8] = clip_u8,   [SL_DT_UINT16] = clip_u16, [SL_DT_UINT32] = clip_u32,
    [SL_DT_UINT64] = clip_u64,
};

/* Opset 6: bounds are float attributes (default: none), float types only. */
sl_eng_status_t sl_ew__infer_Clip6(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 1, 1, 1, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, EW_FLOATS, err);
    if (s != SL_ENG_OK) return s;
    out[0].dtype = in[0]->dtype;
    out[0].ndim = in[0]->ndim;
    memcpy(out[0].dims, in[0]->dims, sizeof out[0].dims);
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__run_Clip6(EW_RUN_ARGS) {
    float lo = sl_attr_float(node, "min", -FLT_MAX), hi = sl_attr_float(node, "max", FLT_MAX);
    size_t n = (size_t)sl_tensor_numel(in[0]);
    if (in[0]->dtype == SL_DT_DOUBLE) {
        double dlo = lo, dhi = hi;
        clip_f64(out[0].data, in[0]->data, n, &dlo, &dhi);
    } else {
        clip_f32(out[0].data, in[0]->data, n, &lo, &hi);
    }
    return SL_ENG_OK;
}

/* Opset 11+: bounds are optional scalar inputs of the input's type (numeric types from 12). */
sl_eng_status_t sl_ew__infer_Clip11(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 1, 3, 1, n_out, err);
    uint32_t allowed = node->opset >= 12 ? EW_NUMERIC : EW_FLOATS;
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, allowed, err);
    for (int i = 1; s == SL_ENG_OK && i < n_in; i++) {
        if (!in[i]) continue;
        s = sl_ew__check_same_dtype(node, in, 0, i, err);
        if (s == SL_ENG_OK && sl_tensor_numel(in[i]) != 1)
            s = sl_node_error(node, err, SL_ENG_ESHAPE,
                              "input %d (%s) must be a scalar, got %lld elements", i,
                              i == 1 ? "min" : "max", (long long)sl_tensor_numel(in[i]));
    }
    if (s != SL_ENG_OK) return s;
    out[0].dtype = in[0]->dtype;
    out[0].ndim = in[0]->ndim;
    memcpy(out[0].dims, in[0]->dims, sizeof out[0].dims);
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__run_Clip11(EW_RUN_ARGS) {
    ew_clip_fn fn = (unsigned)in[0]->dtype < EW_NDT ? clip_fns[in[0]->dtype] : NULL;
    if (!fn)
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "dtype %s not supported",
                             sl_dtype_name(in[0]->dtype));
    const void *lo = n_in > 1 && in[1] ? in[1]->data : NULL;
    const void *hi = n_in > 2 && in[2] ? in[2]->data : NULL;
    fn(out[0].data, in[0]->data, (size_t)sl_tensor_numel(in[0]), lo, hi);
    return SL_ENG_OK;
}
