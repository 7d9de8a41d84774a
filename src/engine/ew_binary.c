/* Elementwise kernels with numpy broadcasting: arithmetic, Pow, Mod, comparisons, logic,
 * BitShift, PRelu, the variadic Max/Min/Sum/Mean and Where. Each op is a table of per-dtype run
 * kernels (both operands varying, or one of them fixed) that sl_ew__binary drives. Integer
 * arithmetic wraps (it runs in the unsigned type) and integer division by zero gives 0, so
 * hostile inputs never reach undefined behaviour or SIGFPE. */
/* These loops are the engine's elementwise hot path. GCC 12 at -O2 vectorises only loops whose
 * trip count it knows, so the file asks for -O3 whatever the build type; no-trapping-math lets
 * float selects (clamps, NaN checks) become vector blends: it changes no value, only whether FP
 * exception flags count as side effects, and nothing here reads them. */
#if defined(__GNUC__) && !defined(__clang__)
#endif

#include "engine/ew.h"

#include <stdint.h>
#include <string.h>
#include <tgmath.h>

typedef struct binop {
    ew_bin_fn fn[EW_NDT][3]; /* [dtype][EW_VV/EW_SV/EW_VS]; NULL: dtype not supported */
    bool out_bool;           /* comparisons: the output is bool */
} binop_t;

/* EXPR sees x and y of type T, the unsigned type UT and the output type TO. */
#define BIN_FN(NAME, SUF, TT, UTT, TOO, EXPR)                                                      \
    static void NAME##_##SUF##_vv(void *o_, const void *a_, const void *b_, size_t n) {            \
        typedef TT T;                                                                              \
        typedef UTT UT;                                                                            \
        typedef TOO TO;                                                                            \
        (void)sizeof(UT);                                                                          \
        TO *restrict o = o_;                                                                       \
        const T *restrict a = a_;                                                                  \
        const T *restrict b = b_;                                                                  \
        for (size_t i = 0; i < n; i++) {                                                           \
            const T x = a[i], y = b[i];                                                            \
            o[i] = (TO)(EXPR);                                                                     \
        }                                                                                          \
    }                                                                                              \
    static void NAME##_##SUF##_sv(void *o_, const void *a_, const void *b_, size_t n) {            \
        typedef TT T;                                                                              \
        typedef UTT UT;                                                                            \
        typedef TOO TO;                                                                            \
        (void)sizeof(UT);                                                                          \
        TO *restrict o = o_;                                                                       \
        const T x = *(const T *)a_;                                                                \
        const T *restrict b = b_;                                                                  \
        for (size_t i = 0; i < n; i++) {                                                           \
            const T y = b[i];                                                                      \
            o[i] = (TO)(EXPR);                                                                     \
        }                                                                                          \
    }                                                                                              \
    static void NAME##_##SUF##_vs(void *o_, const void *a_, const void *b_, size_t n) {            \
        typedef TT T;                                                                              \
        typedef UTT UT;                                                                            \
        typedef TOO TO;                                                                            \
        (void)sizeof(UT);                                                                          \
        TO *restrict o = o_;                                                                       \
        const T *restrict a = a_;                                                                  \
        const T y = *(const T *)b_;                                                                \
        for (size_t i = 0; i < n; i++) {                                                           \
            const T x = a[i];                                                                      \
            o[i] = (TO)(EXPR);                                                                     \
        }                                                                                          \
    }

/* OUT is T (same type out) or uint8_t (bool out). */
#define BIN_F(NAME, OUT, EXPR)                                                                     \
    BIN_FN(NAME, f32, float, float, OUT, EXPR) BIN_FN(NAME, f64, double, double, OUT, EXPR)
#define BIN_SI(NAME, OUT, EXPR)                                                                    \
    BIN_FN(NAME, i8, int8_t, uint8_t, OUT, EXPR)                                                   \
    BIN_FN(NAME, i16, int16_t, uint16_t, OUT, EXPR)                                                \
    BIN_FN(NAME, i32, int32_t, uint32_t, OUT, EXPR)                                                \
    BIN_FN(NAME, i64, int64_t, uint64_t, OUT, EXPR)
#define BIN_UI(NAME, OUT, EXPR)                                                                    \
    BIN_FN(NAME, u8, uint8_t, uint8_t, OUT, EXPR)                                                  \
    BIN_FN(NAME, u16, uint16_t, uint16_t, OUT, EXPR)                                               \
    BIN_FN(NAME, u32, uint32_t, uint32_t, OUT, EXPR)                                               \
    BIN_FN(NAME, u64, uint64_t, uint64_t, OUT, EXPR)
#define BIN_I(NAME, OUT, EXPR) BIN_SI(NAME, OUT, EXPR) BIN_UI(NAME, OUT, EXPR)

#define E3(NAME, SUF)                                                                              \
    { NAME##_##SUF##_vv, NAME##_##SUF##_sv, NAME##_##SUF##_vs }
#define BE_F(NAME) [SL_DT_FLOAT] = E3(NAME, f32), [SL_DT_DOUBLE] = E3(NAME, f64)
#define BE_SI(NAME)                                                                                \
    [SL_DT_INT8] = E3(NAME, i8), [SL_DT_INT16] = E3(NAME, i16), [SL_DT_INT32] = E3(NAME, i32),     \
    [SL_DT_INT64] = E3(NAME, i64)
#define BE_UI(NAME)                                                                                \
    [SL_DT_UINT8] = E3(NAME, u8), [SL_DT_UINT16] = E3(NAME, u16), [SL_DT_UINT32] = E3(NAME, u32),  \
    [SL_DT_UINT64] = E3(NAME, u64)
#define BE_I(NAME)   BE_SI(NAME), BE_UI(NAME)
#define BE_NUM(NAME) BE_F(NAME), BE_I(NAME)

/* Unsigned arithmetic at least as wide as unsigned int: `1u *` keeps 8- and 16-bit operands
 * from being promoted to (signed, overflowable) int. */
#define UADD(x, y) ((UT)((UT)(x)*1u + (UT)(y)))
#define USUB(x, y) ((UT)((UT)(x)*1u - (UT)(y)))
#define UMUL(x, y) ((UT)((UT)(x)*1u * (UT)(y)))

/* Integer division and remainder: x / 0 is 0 and x / -1 is -x (wrapping), where C would trap. */
#define IDIV_DEF(SUF, T, UT)                                                                       \
    static inline T idiv_##SUF(T x, T y) {                                                         \
        if (y == 0) return 0;                                                                      \
        if (y == (T)-1) return (T)((UT)0 - (UT)x);                                                 \
        return (T)(x / y);                                                                         \
    }                                                                                              \
    static inline T irem_##SUF(T x, T y) { /* sign of the dividend, as C and numpy.fmod */         \
        if (y == 0 || y == (T)-1) return 0;                                                        \
        return (T)(x % y);                                                                         \
    }                                                                                              \
    static inline T imod_##SUF(T x, T y) { /* sign of the divisor, as Python */                    \
        T r = irem_##SUF(x, y);                                                                    \
        if (r != 0 && ((r < 0) != (y < 0))) r = (T)(r + y);                                        \
        return r;                                                                                  \
    }
IDIV_DEF(i8, int8_t, uint8_t)
IDIV_DEF(i16, int16_t, uint16_t)
IDIV_DEF(i32, int32_t, uint32_t)
IDIV_DEF(i64, int64_t, uint64_t)
#define UDIV_DEF(SUF, T)                                                                           \
    static inline T idiv_##SUF(T x, T y) {                                                         \
        return y == 0 ? 0 : (T)(x / y);                                                            \
    }                                                                                              \
    static inline T irem_##SUF(T x, T y) {                                                         \
        return y == 0 ? 0 : (T)(x % y);                                                            \
    }                                                                                              \
    static inline T imod_##SUF(T x, T y) {                                                         \
        return irem_##SUF(x, y);                                                                   \
    }
UDIV_DEF(u8, uint8_t)
UDIV_DEF(u16, uint16_t)
UDIV_DEF(u32, uint32_t)
UDIV_DEF(u64, uint64_t)
#define IGEN(F, x, y)                                                                              \
    _Generic((x), int8_t                                                                           \
             : F##_i8, int16_t                                                                     \
             : F##_i16, int32_t                                                                    \
             : F##_i32, int64_t                                                                    \
             : F##_i64, uint8_t                                                                    \
             : F##_u8, uint16_t                                                                    \
             : F##_u16, uint32_t                                                                   \
             : F##_u32, uint64_t                                                                   \
             : F##_u64)(x, y)

/* Float remainder with the divisor's sign (numpy.mod). */
static inline float fmodpy_f(float x, float y) {
    float r = fmodf(x, y);
    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
}
static inline double fmodpy_d(double x, double y) {
    double r = fmod(x, y);
    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
}
#define FMODPY(x, y) _Generic((x), float : fmodpy_f, double : fmodpy_d)(x, y)

/* Max/Min propagate NaN like numpy.maximum; for integers x != x folds away. */
#define NANMAX(x, y) ((x) != (x) ? (x) : ((y) != (y) ? (y) : ((x) > (y) ? (x) : (y))))
#define NANMIN(x, y) ((x) != (x) ? (x) : ((y) != (y) ? (y) : ((x) < (y) ? (x) : (y))))
#define BITS(T)      ((T)(sizeof(T) * 8))

/* ---- loops ---- */

BIN_F(add, T, x + y)
BIN_I(add, T, UADD(x, y))
BIN_F(sub, T, x - y)
BIN_I(sub, T, USUB(x, y))
BIN_F(mul, T, x *y)
BIN_I(mul, T, UMUL(x, y))
BIN_F(div, T, x / y)
BIN_I(div, T, IGEN(idiv, x, y))
BIN_F(pow, T, pow(x, y))
BIN_F(sqr, T, ((void)y, x *x)) /* Pow with a constant exponent of 2, the common case in LayerNorm */
BIN_F(fmod, T, fmod(x, y))
BIN_I(fmod, T, IGEN(irem, x, y))
BIN_F(mod, T, FMODPY(x, y))
BIN_I(mod, T, IGEN(imod, x, y))
BIN_F(max, T, NANMAX(x, y))
BIN_I(max, T, x > y ? x : y)
BIN_F(min, T, NANMIN(x, y))
BIN_I(min, T, x < y ? x : y)
BIN_F(prelu, T, x < 0 ? y * x : x)
BIN_SI(prelu, T, x < 0 ? (T)UMUL(x, y) : x)
BIN_UI(prelu, T, ((void)y, x)) /* never negative */
BIN_F(eq, uint8_t, x == y)
BIN_I(eq, uint8_t, x == y)
BIN_FN(eq, b, uint8_t, uint8_t, uint8_t, (x != 0) == (y != 0))
BIN_F(lt, uint8_t, x < y)
BIN_I(lt, uint8_t, x < y)
BIN_F(le, uint8_t, x <= y)
BIN_I(le, uint8_t, x <= y)
BIN_F(gt, uint8_t, x > y)
BIN_I(gt, uint8_t, x > y)
BIN_F(ge, uint8_t, x >= y)
BIN_I(ge, uint8_t, x >= y)
BIN_FN(and, b, uint8_t, uint8_t, uint8_t, (x != 0) & (y != 0))
BIN_FN(or, b, uint8_t, uint8_t, uint8_t, (x != 0) | (y != 0))
BIN_FN(xor, b, uint8_t, uint8_t, uint8_t, (x != 0) ^ (y != 0))
/* Shifting by the type's width or more gives 0 (C leaves it undefined). */
BIN_UI(shl, T, y >= BITS(T) ? 0 : (UT)((UT)x * 1u << y))
BIN_UI(shr, T, y >= BITS(T) ? 0 : x >> y)

static const binop_t op_add = {.fn = {BE_NUM(add)}};
static const binop_t op_sub = {.fn = {BE_NUM(sub)}};
static const binop_t op_mul = {.fn = {BE_NUM(mul)}};
static const binop_t op_div = {.fn = {BE_NUM(div)}};
static const binop_t op_pow = {.fn = {BE_F(pow)}};
static const binop_t op_fmod = {.fn = {BE_NUM(fmod)}};
static const binop_t op_mod = {.fn = {BE_NUM(mod)}};
static const binop_t op_max = {.fn = {BE_NUM(max)}};
static const binop_t op_min = {.fn = {BE_NUM(min)}};
static const binop_t op_sum = {.fn = {BE_NUM(add)}};
static const binop_t op_mean = {.fn = {BE_F(add)}};
static const binop_t op_prelu = {.fn = {BE_NUM(prelu)}};
static const binop_t op_eq = {.fn = {BE_NUM(eq), [SL_DT_BOOL] = E3(eq, b)}, .out_bool = true};
static const binop_t op_lt = {.fn = {BE_NUM(lt)}, .out_bool = true};
static const binop_t op_le = {.fn = {BE_NUM(le)}, .out_bool = true};
static const binop_t op_gt = {.fn = {BE_NUM(gt)}, .out_bool = true};
static const binop_t op_ge = {.fn = {BE_NUM(ge)}, .out_bool = true};
static const binop_t op_and = {.fn = {[SL_DT_BOOL] = E3(and, b)}, .out_bool = true};
static const binop_t op_or = {.fn = {[SL_DT_BOOL] = E3(or, b)}, .out_bool = true};
static const binop_t op_xor = {.fn = {[SL_DT_BOOL] = E3(xor, b)}, .out_bool = true};
static const binop_t op_shl = {.fn = {BE_UI(shl)}};
static const binop_t op_shr = {.fn = {BE_UI(shr)}};

static uint32_t allowed_of(const binop_t *op) {
    uint32_t m = 0;
    for (int d = 0; d < EW_NDT; d++)
        if (op->fn[d][0]) m |= EW_DT(d);
    return m;
}

/* ---- two inputs of one dtype ---- */

static sl_eng_status_t bin_infer(const binop_t *op, EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 2, 2, 2, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, allowed_of(op), err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[1], 1, allowed_of(op), err);
    if (s == SL_ENG_OK) s = sl_ew__check_same_dtype(node, in, 0, 1, err);
    sl_tensor_t bv;
    if (s == SL_ENG_OK) s = sl_ew__legacy_b(node, in[0], in[1], &bv, err);
    if (s != SL_ENG_OK) return s;
    const sl_tensor_t *ins[2] = {in[0], &bv};
    s = sl_ew__infer_bcast(node, ins, 2, &out[0], err);
    out[0].dtype = op->out_bool ? SL_DT_BOOL : in[0]->dtype;
    return s;
}

/* A same-shape or scalar-broadcast binary call split into element ranges by sl_par_for. */
typedef struct bin_job {
    ew_bin_fn fn;
    char *o;
    const char *a, *b;
    size_t eo, ea, eb; /* ea, eb: 0 for a scalar operand */
} bin_job_t;

static void bin_chunk(void *ctx, int64_t b, int64_t e) {
    const bin_job_t *j = ctx;
    j->fn(j->o + (size_t)b * j->eo, j->a + (size_t)b * j->ea, j->b + (size_t)b * j->eb,
          (size_t)(e - b));
}

/* True when it ran o = a op b on the pool (large, same-shape or scalar operands). */
static bool bin_parallel(const ew_bin_fn fn[3], const sl_tensor_t *a, const sl_tensor_t *b,
                         sl_tensor_t *o, sl_kctx_t *k) {
    int64_t no = sl_tensor_numel(o), na = sl_tensor_numel(a), nb = sl_tensor_numel(b);
    if (!k->pool || no < 2 * EW_PAR_GRAIN) return false;
    int m = na == no ? (nb == no ? EW_VV : nb == 1 ? EW_VS : -1) : na == 1 && nb == no ? EW_SV : -1;
    if (m < 0) return false;
    bin_job_t j = {.fn = fn[m],
                   .o = o->data,
                   .a = a->data,
                   .b = b->data,
                   .eo = sl_dtype_size(o->dtype),
                   .ea = m == EW_SV ? 0 : sl_dtype_size(a->dtype),
                   .eb = m == EW_VS ? 0 : sl_dtype_size(b->dtype)};
    sl_par_for(k, no, EW_PAR_GRAIN, bin_chunk, &j);
    return true;
}

static sl_eng_status_t bin_run(const binop_t *op, EW_RUN_ARGS) {
    sl_dtype_t dt = in[0]->dtype;
    if ((unsigned)dt >= EW_NDT || !op->fn[dt][0])
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "dtype %s not supported",
                             sl_dtype_name(dt));
    sl_tensor_t bv;
    sl_eng_status_t s = sl_ew__legacy_b(node, in[0], in[1], &bv, k->err);
    if (s == SL_ENG_OK && !bin_parallel(op->fn[dt], in[0], &bv, &out[0], k))
        s = sl_ew__binary(op->fn[dt], in[0], &bv, &out[0]);
    if (s != SL_ENG_OK)
        return sl_node_error(node, k->err, s, "inputs cannot be broadcast to the output");
    return SL_ENG_OK;
}

#define BIN_OP(Name, OP)                                                                           \
    sl_eng_status_t sl_ew__infer_##Name(EW_INFER_ARGS) {                                           \
        return bin_infer(OP, node, in, n_in, out, n_out, err);                                     \
    }                                                                                              \
    sl_eng_status_t sl_ew__run_##Name(EW_RUN_ARGS) {                                               \
        return bin_run(OP, node, in, n_in, out, n_out, k);                                         \
    }

BIN_OP(Add, &op_add)
BIN_OP(Sub, &op_sub)
BIN_OP(Mul, &op_mul)
BIN_OP(Div, &op_div)
BIN_OP(Equal, &op_eq)
BIN_OP(Less, &op_lt)
BIN_OP(LessOrEqual, &op_le)
BIN_OP(Greater, &op_gt)
BIN_OP(GreaterOrEqual, &op_ge)
BIN_OP(And, &op_and)
BIN_OP(Or, &op_or)
BIN_OP(Xor, &op_xor)

/* Mod: fmod=1 is C's fmod / truncated remainder (sign of the dividend); fmod=0 is the integer
 * modulus with the divisor's sign (numpy.mod), which we also give floats. */
static const binop_t *mod_op(const sl_node_t *node) {
    return sl_attr_int(node, "fmod", 0) ? &op_fmod : &op_mod;
}
sl_eng_status_t sl_ew__infer_Mod(EW_INFER_ARGS) {
    return bin_infer(mod_op(node), node, in, n_in, out, n_out, err);
}
sl_eng_status_t sl_ew__run_Mod(EW_RUN_ARGS) {
    return bin_run(mod_op(node), node, in, n_in, out, n_out, k);
}

/* BitShift: unsigned integers; the direction attribute is required. */
static const binop_t *shift_op(const sl_node_t *node) {
    const char *d = sl_attr_string(node, "direction", "");
    return strcmp(d, "LEFT") == 0 ? &op_shl : strcmp(d, "RIGHT") == 0 ? &op_shr : NULL;
}
sl_eng_status_t sl_ew__infer_BitShift(EW_INFER_ARGS) {
    const binop_t *op = shift_op(node);
    if (!op)
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "attribute direction is '%s', expected \"LEFT\" or \"RIGHT\"",
                             sl_attr_string(node, "direction", ""));
    return bin_infer(op, node, in, n_in, out, n_out, err);
}
sl_eng_status_t sl_ew__run_BitShift(EW_RUN_ARGS) {
    const binop_t *op = shift_op(node);
    if (!op) return sl_node_error(node, k->err, SL_ENG_EINVAL, "bad direction attribute");
    return bin_run(op, node, in, n_in, out, n_out, k);
}

/* ---- PRelu: slope broadcasts onto X (the output has X's shape) ---- */

/* Before opset 7 a 1-D slope of X's channel count applies per channel (dim 1), as Caffe2 and
 * old PyTorch exports mean it; from 7 on it is plain (unidirectional) numpy broadcasting. */
static void prelu_slope(const sl_node_t *node, const sl_tensor_t *x, const sl_tensor_t *slope,
                        sl_tensor_t *view) {
    *view = *slope;
    if (node->opset >= 7 || slope->ndim != 1 || x->ndim < 2 || slope->dims[0] == 1 ||
        slope->dims[0] != x->dims[1])
        return;
    view->ndim = x->ndim - 1;
    for (int i = 1; i < view->ndim; i++)
        view->dims[i] = 1;
}

sl_eng_status_t sl_ew__infer_PRelu(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 2, 2, 2, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, allowed_of(&op_prelu), err);
    if (s == SL_ENG_OK) s = sl_ew__check_same_dtype(node, in, 0, 1, err);
    if (s != SL_ENG_OK) return s;
    sl_tensor_t sv;
    prelu_slope(node, in[0], in[1], &sv);
    const sl_tensor_t *ins[2] = {in[0], &sv};
    s = sl_ew__infer_bcast(node, ins, 2, &out[0], err);
    if (s != SL_ENG_OK) return s;
    bool same = out[0].ndim == in[0]->ndim;
    for (int i = 0; same && i < in[0]->ndim; i++)
        same = out[0].dims[i] == in[0]->dims[i];
    if (!same) {
        char dx[128], ds[128];
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "slope %s does not broadcast to X %s (unidirectional broadcast)",
                             sl_ew__dims_str(in[1], ds, sizeof ds),
                             sl_ew__dims_str(in[0], dx, sizeof dx));
    }
    out[0].dtype = in[0]->dtype;
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__run_PRelu(EW_RUN_ARGS) {
    sl_dtype_t dt = in[0]->dtype;
    if ((unsigned)dt >= EW_NDT || !op_prelu.fn[dt][0])
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "dtype %s not supported",
                             sl_dtype_name(dt));
    sl_tensor_t sv;
    prelu_slope(node, in[0], in[1], &sv);
    sl_eng_status_t s = sl_ew__binary(op_prelu.fn[dt], in[0], &sv, &out[0]);
    if (s != SL_ENG_OK) return sl_node_error(node, k->err, s, "slope cannot be broadcast to X");
    return SL_ENG_OK;
}

/* ---- Pow: float base with a same-dtype exponent runs directly; other pairs (int base, or an
 * exponent of another type) go through float64 in scratch memory ---- */

#define POW_BASES (EW_FLOATS | EW_DT(SL_DT_INT32) | EW_DT(SL_DT_INT64))

sl_eng_status_t sl_ew__infer_Pow(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 2, 2, 2, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, POW_BASES, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[1], 1, EW_NUMERIC, err);
    if (s == SL_ENG_OK && node->opset < 12) s = sl_ew__check_same_dtype(node, in, 0, 1, err);
    sl_tensor_t bv;
    if (s == SL_ENG_OK) s = sl_ew__legacy_b(node, in[0], in[1], &bv, err);
    if (s != SL_ENG_OK) return s;
    const sl_tensor_t *ins[2] = {in[0], &bv};
    s = sl_ew__infer_bcast(node, ins, 2, &out[0], err);
    out[0].dtype = in[0]->dtype;
    return s;
}

static bool is_const2(const sl_tensor_t *e) {
    if (sl_tensor_numel(e) != 1) return false;
    return e->dtype == SL_DT_FLOAT ? *(const float *)e->data == 2.0f
                                   : *(const double *)e->data == 2.0;
}

sl_eng_status_t sl_ew__run_Pow(EW_RUN_ARGS) {
    const sl_tensor_t *a = in[0];
    sl_tensor_t bv;
    sl_eng_status_t s = sl_ew__legacy_b(node, a, in[1], &bv, k->err);
    if (s != SL_ENG_OK) return s;
    if (sl_tensor_numel(&out[0]) == 0) return SL_ENG_OK;
    if ((a->dtype == SL_DT_FLOAT || a->dtype == SL_DT_DOUBLE) && bv.dtype == a->dtype) {
        static const ew_bin_fn sqr_f32[3] = E3(sqr, f32), sqr_f64[3] = E3(sqr, f64);
        const ew_bin_fn *fn = op_pow.fn[a->dtype];
        if (is_const2(&bv)) fn = a->dtype == SL_DT_FLOAT ? sqr_f32 : sqr_f64;
        s = sl_ew__binary(fn, a, &bv, &out[0]);
    } else {
        size_t na = (size_t)sl_tensor_numel(a), nb = (size_t)sl_tensor_numel(&bv);
        size_t no = (size_t)sl_tensor_numel(&out[0]);
        sl_tensor_t da = *a, db = bv, dout = out[0];
        da.dtype = db.dtype = dout.dtype = SL_DT_DOUBLE;
        da.data = k->scratch(k, na * sizeof(double));
        db.data = k->scratch(k, nb * sizeof(double));
        dout.data = k->scratch(k, no * sizeof(double));
        if (!da.data || !db.data || !dout.data)
            return sl_node_error(node, k->err, SL_ENG_ENOMEM, "out of scratch memory");
        if (!sl_ew__cast(da.data, SL_DT_DOUBLE, a->data, a->dtype, na) ||
            !sl_ew__cast(db.data, SL_DT_DOUBLE, bv.data, bv.dtype, nb))
            return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "dtypes %s ^ %s",
                                 sl_dtype_name(a->dtype), sl_dtype_name(bv.dtype));
        s = sl_ew__binary(op_pow.fn[SL_DT_DOUBLE], &da, &db, &dout);
        if (s == SL_ENG_OK) sl_ew__cast(out[0].data, out[0].dtype, dout.data, SL_DT_DOUBLE, no);
    }
    if (s != SL_ENG_OK)
        return sl_node_error(node, k->err, s, "inputs cannot be broadcast to the output");
    return SL_ENG_OK;
}

/* ---- variadic: Max, Min, Sum, Mean fold their inputs into the output two at a time ---- */

static sl_eng_status_t var_infer(const binop_t *op, EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 1, INT32_MAX, n_in, n_out, err);
    for (int i = 0; s == SL_ENG_OK && i < n_in; i++) {
        s = sl_ew__check_dtype(node, in[i], i, allowed_of(op), err);
        if (s == SL_ENG_OK) s = sl_ew__check_same_dtype(node, in, 0, i, err);
    }
    if (s == SL_ENG_OK) s = sl_ew__infer_bcast(node, in, n_in, &out[0], err);
    if (s != SL_ENG_OK) return s;
    out[0].dtype = in[0]->dtype;
    return SL_ENG_OK;
}

static sl_eng_status_t var_run(const binop_t *op, EW_RUN_ARGS) {
    sl_dtype_t dt = in[0]->dtype;
    if ((unsigned)dt >= EW_NDT || !op->fn[dt][0])
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "dtype %s not supported",
                             sl_dtype_name(dt));
    if (n_in == 1) {
        sl_ew__copy(in[0], &out[0]);
        return SL_ENG_OK;
    }
    sl_eng_status_t s = sl_ew__binary(op->fn[dt], in[0], in[1], &out[0]);
    /* The output is as large as the broadcast of everything, so it accumulates in place. */
    for (int i = 2; s == SL_ENG_OK && i < n_in; i++)
        s = sl_ew__binary(op->fn[dt], &out[0], in[i], &out[0]);
    if (s != SL_ENG_OK)
        return sl_node_error(node, k->err, s, "inputs cannot be broadcast to the output");
    return SL_ENG_OK;
}

#define VAR_OP(Name, OP)                                                                           \
    sl_eng_status_t sl_ew__infer_##Name(EW_INFER_ARGS) {                                           \
        return var_infer(OP, node, in, n_in, out, n_out, err);                                     \
    }
VAR_OP(Max, &op_max)
VAR_OP(Min, &op_min)
VAR_OP(Sum, &op_sum)
VAR_OP(Mean, &op_mean)

sl_eng_status_t sl_ew__run_Max(EW_RUN_ARGS) {
    return var_run(&op_max, node, in, n_in, out, n_out, k);
}
sl_eng_status_t sl_ew__run_Min(EW_RUN_ARGS) {
    return var_run(&op_min, node, in, n_in, out, n_out, k);
}
sl_eng_status_t sl_ew__run_Sum(EW_RUN_ARGS) {
    return var_run(&op_sum, node, in, n_in, out, n_out, k);
}
sl_eng_status_t sl_ew__run_Mean(EW_RUN_ARGS) {
    sl_eng_status_t s = var_run(&op_mean, node, in, n_in, out, n_out, k);
    if (s != SL_ENG_OK || n_in == 1) return s;
    size_t n = (size_t)sl_tensor_numel(&out[0]);
    if (out[0].dtype == SL_DT_FLOAT) {
        float *restrict o = out[0].data, d = (float)n_in;
        for (size_t i = 0; i < n; i++)
            o[i] /= d;
    } else {
        double *restrict o = out[0].data, d = (double)n_in;
        for (size_t i = 0; i < n; i++)
            o[i] /= d;
    }
    return SL_ENG_OK;
}

/* ---- Where: out = cond ? X : Y, three-way broadcast, any dtype (copied by element size) ---- */

typedef struct where_ctx {
    const uint8_t *c;
    const char *x, *y;
    char *o;
    size_t es;
} where_ctx_t;

#define WHERE_LOOP(T)                                                                              \
    do {                                                                                           \
        T *restrict o = (T *)(w->o + (size_t)out_off * sizeof(T));                                 \
        const T *restrict x = (const T *)(w->x + (size_t)off[1] * sizeof(T));                      \
        const T *restrict y = (const T *)(w->y + (size_t)off[2] * sizeof(T));                      \
        const uint8_t *restrict c = w->c + off[0];                                                 \
        int64_t sc = step[0], sx = step[1], sy = step[2];                                          \
        for (int64_t i = 0; i < n; i++)                                                            \
            o[i] = c[i * sc] ? x[i * sx] : y[i * sy];                                              \
    } while (0)

static void where_cb(void *ctx, int64_t out_off, const int64_t *off, const int64_t *step,
                     int64_t n) {
    where_ctx_t *w = ctx;
    switch (w->es) {
    case 1:
        WHERE_LOOP(uint8_t);
        break;
    case 2:
        WHERE_LOOP(uint16_t);
        break;
    case 4:
        WHERE_LOOP(uint32_t);
        break;
    default:
        WHERE_LOOP(uint64_t);
        break;
    }
}

sl_eng_status_t sl_ew__infer_Where(EW_INFER_ARGS) {
    sl_eng_status_t s = sl_ew__check_arity(node, n_in, 3, 3, 3, n_out, err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[0], 0, EW_DT(SL_DT_BOOL), err);
    if (s == SL_ENG_OK) s = sl_ew__check_dtype(node, in[1], 1, EW_ALL, err);
    if (s == SL_ENG_OK) s = sl_ew__check_same_dtype(node, in, 1, 2, err);
    if (s == SL_ENG_OK) s = sl_ew__infer_bcast(node, in, 3, &out[0], err);
    if (s != SL_ENG_OK) return s;
    out[0].dtype = in[1]->dtype;
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__run_Where(EW_RUN_ARGS) {
    size_t es = sl_dtype_size(in[1]->dtype);
    if (es != 1 && es != 2 && es != 4 && es != 8)
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "dtype %s not supported",
                             sl_dtype_name(in[1]->dtype));
    if (sl_tensor_numel(&out[0]) == 0) return SL_ENG_OK;
    ew_bcast_t plan;
    sl_eng_status_t s = sl_ew__bcast_plan(&plan, out[0].ndim, out[0].dims, in, 3);
    if (s != SL_ENG_OK)
        return sl_node_error(node, k->err, s, "inputs cannot be broadcast to the output");
    where_ctx_t w = {
        .c = in[0]->data, .x = in[1]->data, .y = in[2]->data, .o = out[0].data, .es = es};
    sl_ew__bcast_each(&plan, where_cb, &w);
    return SL_ENG_OK;
}
