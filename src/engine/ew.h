/* Private to the elementwise kernels (ops_elementwise.c and ew_*.c): the broadcast plan every
 * multi-input kernel iterates with, the checks their infer functions share, and the list of
 * kernels each ew_*.c file defines for the operator table in ops_elementwise.c. */
#ifndef SL_ENGINE_EW_H
#define SL_ENGINE_EW_H

#include "engine/op.h"

#define EW_NDT    14 /* dtype values 0..SL_DT_UINT64 */
#define EW_MAX_IN 3  /* Where has three inputs; variadic ops are folded two at a time */

/* The fewest elements per thread when an elementwise op is split across intra-op threads:
 * below it the wake-up of a worker costs more than the loop. */
#define EW_PAR_GRAIN 16384

/* Bit for a dtype in a set of dtypes. */
#define EW_DT(t)  (1u << (t))
#define EW_FLOATS (EW_DT(SL_DT_FLOAT) | EW_DT(SL_DT_DOUBLE))
#define EW_SINTS  (EW_DT(SL_DT_INT8) | EW_DT(SL_DT_INT16) | EW_DT(SL_DT_INT32) | EW_DT(SL_DT_INT64))
#define EW_UINTS                                                                                   \
    (EW_DT(SL_DT_UINT8) | EW_DT(SL_DT_UINT16) | EW_DT(SL_DT_UINT32) | EW_DT(SL_DT_UINT64))
#define EW_NUMERIC (EW_FLOATS | EW_SINTS | EW_UINTS)
#define EW_ALL     (EW_NUMERIC | EW_DT(SL_DT_BOOL))

/* A broadcast of up to EW_MAX_IN inputs to one output shape, with dims of size 1 dropped and
 * neighbouring dims merged wherever every input either spans both or is broadcast over both, so
 * that same-shape operands become one contiguous run and [N,M] op [M] becomes N runs of M. The
 * innermost dim is the run; each input's stride there is 0 (broadcast) or 1. */
typedef struct ew_bcast {
    int ndim; /* >= 1 */
    int n_in;
    int64_t dims[SL_MAX_DIMS];
    int64_t strides[EW_MAX_IN][SL_MAX_DIMS]; /* in elements; 0 where the input is broadcast */
} ew_bcast_t;

/* Plans the broadcast of ins[0..n_in) to (out_ndim, out_dims). Every input must be broadcastable
 * to the output (checked: SL_ENG_ESHAPE otherwise). */
sl_eng_status_t sl_ew__bcast_plan(ew_bcast_t *p, int out_ndim, const int64_t *out_dims,
                                  const sl_tensor_t *const *ins, int n_in);

/* Called once per contiguous run: out_off and in_off[k] are element offsets of the run's first
 * element, n its length; in_step[k] is 0 or 1 (input k is broadcast along the run or not). */
typedef void (*ew_run_cb)(void *ctx, int64_t out_off, const int64_t *in_off, const int64_t *in_step,
                          int64_t n);
/* Calls cb for every run of the plan, in output order. */
void sl_ew__bcast_each(const ew_bcast_t *p, ew_run_cb cb, void *ctx);

/* A kernel over one run: o[i] = f(a[i or 0], b[i or 0]). Index 0: both vary; 1: a is one value
 * (a scalar or broadcast along the run); 2: b is one value. */
typedef void (*ew_bin_fn)(void *o, const void *a, const void *b, size_t n);
enum { EW_VV = 0, EW_SV = 1, EW_VS = 2 };

/* o = fn(a, b) with numpy broadcasting into o's shape (o's dims already set by infer and data
 * allocated). Same-shape and scalar operands take a direct path; the rest use a plan. */
sl_eng_status_t sl_ew__binary(const ew_bin_fn fn[3], const sl_tensor_t *a, const sl_tensor_t *b,
                              sl_tensor_t *o);

/* Shared infer checks; each returns SL_ENG_OK or an error naming the node. */
/* Input i must be present and of a dtype in `allowed` (else EUNSUPPORTED listing them). */
sl_eng_status_t sl_ew__check_dtype(const sl_node_t *node, const sl_tensor_t *t, int i,
                                   uint32_t allowed, sl_eng_error_t *err);
/* Inputs i and j must have the same dtype. */
sl_eng_status_t sl_ew__check_same_dtype(const sl_node_t *node, const sl_tensor_t *const *in, int i,
                                        int j, sl_eng_error_t *err);
/* Broadcasts the present inputs in[0..n) into out (ndim, dims), checking compatibility and that
 * the element count stays representable. */
sl_eng_status_t sl_ew__infer_bcast(const sl_node_t *node, const sl_tensor_t *const *in, int n,
                                   sl_tensor_t *out, sl_eng_error_t *err);
/* Input arity: at least lo and at most hi inputs, inputs [0, need) present; at least one output. */
sl_eng_status_t sl_ew__check_arity(const sl_node_t *node, int n_in, int lo, int hi, int need,
                                   int n_out, sl_eng_error_t *err);
/* Before opset 7 the arithmetic and logic ops broadcast B onto A only with broadcast=1 and an
 * optional axis; returns in *bv a view of B reshaped so that numpy rules give that result. */
sl_eng_status_t sl_ew__legacy_b(const sl_node_t *node, const sl_tensor_t *a, const sl_tensor_t *b,
                                sl_tensor_t *bv, sl_eng_error_t *err);
/* Formats dims as "[2,3,4]" into buf. */
const char *sl_ew__dims_str(const sl_tensor_t *t, char *buf, size_t len);
/* Copies (memmove) in's bytes to out unless they share storage. */
void sl_ew__copy(const sl_tensor_t *in, sl_tensor_t *out);

/* Cast n elements of src (dtype st) into dst (dtype dt): float to integer truncates toward zero
 * and saturates (NaN becomes 0), integer to narrower integer wraps, anything to bool is "not
 * zero" (NaN is true). Returns false when either dtype is not a numeric or bool type. */
bool sl_ew__cast(void *dst, sl_dtype_t dt, const void *src, sl_dtype_t st, size_t n);

#define EW_INFER_ARGS                                                                              \
    const sl_node_t *node, const sl_tensor_t *const *in, int n_in, sl_tensor_t *out, int n_out,    \
        sl_eng_error_t *err
#define EW_RUN_ARGS                                                                                \
    const sl_node_t *node, const sl_tensor_t *const *in, int n_in, sl_tensor_t *out, int n_out,    \
        sl_kctx_t *k

/* The kernels, as X(OpType, since, Name): Name names sl_ew__infer_<Name> and sl_ew__run_<Name>.
 * Several entries for one OpType are the opset versions whose semantics differ. */
#define EW_UNARY_OPS(X)                                                                            \
    X(Abs, 1, Abs)                                                                                 \
    X(Neg, 1, Neg)                                                                                 \
    X(Exp, 1, Exp)                                                                                 \
    X(Log, 1, Log)                                                                                 \
    X(Sqrt, 1, Sqrt)                                                                               \
    X(Reciprocal, 1, Reciprocal)                                                                   \
    X(Floor, 1, Floor)                                                                             \
    X(Ceil, 1, Ceil)                                                                               \
    X(Round, 11, Round)                                                                            \
    X(Sign, 9, Sign)                                                                               \
    X(Sin, 7, Sin)                                                                                 \
    X(Cos, 7, Cos)                                                                                 \
    X(Tan, 7, Tan)                                                                                 \
    X(Asin, 7, Asin)                                                                               \
    X(Acos, 7, Acos)                                                                               \
    X(Atan, 7, Atan)                                                                               \
    X(Sinh, 9, Sinh)                                                                               \
    X(Cosh, 9, Cosh)                                                                               \
    X(Asinh, 9, Asinh)                                                                             \
    X(Acosh, 9, Acosh)                                                                             \
    X(Atanh, 9, Atanh)                                                                             \
    X(Erf, 9, Erf)                                                                                 \
    X(Relu, 1, Relu)                                                                               \
    X(LeakyRelu, 1, LeakyRelu)                                                                     \
    X(Elu, 1, Elu)                                                                                 \
    X(Selu, 1, Selu)                                                                               \
    X(Celu, 12, Celu)                                                                              \
    X(ThresholdedRelu, 10, ThresholdedRelu)                                                        \
    X(Sigmoid, 1, Sigmoid)                                                                         \
    X(HardSigmoid, 1, HardSigmoid)                                                                 \
    X(HardSwish, 14, HardSwish)                                                                    \
    X(Tanh, 1, Tanh)                                                                               \
    X(Softplus, 1, Softplus)                                                                       \
    X(Softsign, 1, Softsign)                                                                       \
    X(Mish, 18, Mish)                                                                              \
    X(Shrink, 9, Shrink)                                                                           \
    X(IsNaN, 9, IsNaN)                                                                             \
    X(IsInf, 10, IsInf)                                                                            \
    X(Not, 1, Not)                                                                                 \
    X(Clip, 1, Clip6)                                                                              \
    X(Clip, 11, Clip11)

#define EW_BINARY_OPS(X)                                                                           \
    X(Add, 1, Add)                                                                                 \
    X(Sub, 1, Sub)                                                                                 \
    X(Mul, 1, Mul)                                                                                 \
    X(Div, 1, Div)                                                                                 \
    X(Pow, 1, Pow)                                                                                 \
    X(Mod, 10, Mod)                                                                                \
    X(Max, 1, Max)                                                                                 \
    X(Min, 1, Min)                                                                                 \
    X(Sum, 1, Sum)                                                                                 \
    X(Mean, 1, Mean)                                                                               \
    X(PRelu, 1, PRelu)                                                                             \
    X(Equal, 1, Equal)                                                                             \
    X(Less, 1, Less)                                                                               \
    X(LessOrEqual, 12, LessOrEqual)                                                                \
    X(Greater, 1, Greater)                                                                         \
    X(GreaterOrEqual, 12, GreaterOrEqual)                                                          \
    X(And, 1, And)                                                                                 \
    X(Or, 1, Or)                                                                                   \
    X(Xor, 1, Xor)                                                                                 \
    X(BitShift, 11, BitShift)                                                                      \
    X(Where, 9, Where)

#define EW_COPY_OPS(X)                                                                             \
    X(Identity, 1, Identity)                                                                       \
    X(Cast, 6, Cast)                                                                               \
    X(CastLike, 15, CastLike)                                                                      \
    X(Dropout, 1, Dropout)

#define EW_DECLARE(op, since, name)                                                                \
    sl_eng_status_t sl_ew__infer_##name(EW_INFER_ARGS);                                            \
    sl_eng_status_t sl_ew__run_##name(EW_RUN_ARGS);
EW_UNARY_OPS(EW_DECLARE)
EW_BINARY_OPS(EW_DECLARE)
EW_COPY_OPS(EW_DECLARE)
#undef EW_DECLARE

#endif
