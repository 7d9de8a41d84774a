/* CPU kernels along one axis: Softmax, LogSoftmax and Hardmax (2-D coercion before opset 13),
 * TopK (stable: ties keep the smaller index first) and CumSum. Listed in ops_reduce.c's table. */
#include "engine/nn_common.h"
#include "engine/op.h"

#include <math.h>
#include <string.h>

/* ---- Softmax, LogSoftmax, Hardmax ---- */

typedef enum { SM_SOFT, SM_LOG, SM_HARD } sm_kind_t;

static sm_kind_t sm_kind(const sl_node_t *node) {
    if (strcmp(node->op_type, "LogSoftmax") == 0) return SM_LOG;
    if (strcmp(node->op_type, "Hardmax") == 0) return SM_HARD;
    return SM_SOFT;
}

/* The (outer, len, inner) view the op works on: from opset 13 along axis, before that the
 * input coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])]. */
static sl_eng_status_t sm_view(const sl_node_t *node, const sl_tensor_t *x, int64_t *O, int64_t *R,
                               int64_t *I, sl_eng_error_t *err) {
    bool v13 = node->opset >= 13;
    int64_t a = sl_attr_int(node, "axis", v13 ? -1 : 1);
    int axis;
    if (x->ndim == 0) {
        *O = *R = *I = 1;
        return SL_ENG_OK;
    }
    /* Before 13 axis may equal ndim (all dims in the outer part). */
    if (!v13 && a == x->ndim) {
        *O = sl_tensor_numel(x);
        *R = 1;
        *I = 1;
        return SL_ENG_OK;
    }
    if (!sl_axis_normalize(a, x->ndim, &axis))
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "axis %lld is out of range for a tensor of %d dims", (long long)a,
                             x->ndim);
    if (v13) {
        sl_nn__split(x, axis, O, R, I);
    } else {
        int64_t o = 1, r = 1;
        for (int d = 0; d < axis; d++)
            o *= x->dims[d];
        for (int d = axis; d < x->ndim; d++)
            r *= x->dims[d];
        *O = o;
        *R = r;
        *I = 1;
    }
    return SL_ENG_OK;
}

sl_eng_status_t sl_nn__softmax_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    if (x->dtype != SL_DT_FLOAT && x->dtype != SL_DT_DOUBLE)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                             "input dtype %s is not supported (float32, float64)",
                             sl_dtype_name(x->dtype));
    int64_t O = 0, R = 0, I = 0;
    sl_eng_status_t s = sm_view(node, x, &O, &R, &I, err);
    if (s) return s;
    out[0] = *x;
    out[0].data = NULL;
    return SL_ENG_OK;
}

/* The contiguous case (inner == 1) is one row at a time; otherwise the max, the sum and the
 * scaling run as vector loops over the inner dimension with per-column state in scratch. */
#define DEF_SOFTMAX(T, EXP, LOG)                                                                   \
    static void softmax_##T(const T *restrict x, T *restrict y, T *restrict st, int64_t O,         \
                            int64_t R, int64_t I, sm_kind_t kind) {                                \
        for (int64_t o = 0; o < O; o++) {                                                          \
            const T *xo = x + o * R * I;                                                           \
            T *yo = y + o * R * I;                                                                 \
            if (I == 1) {                                                                          \
                T mx = -INFINITY;                                                                  \
                int64_t arg = 0;                                                                   \
                for (int64_t r = 0; r < R; r++)                                                    \
                    if (xo[r] > mx) mx = xo[r], arg = r;                                           \
                if (kind == SM_HARD) {                                                             \
                    for (int64_t r = 0; r < R; r++)                                                \
                        yo[r] = 0;                                                                 \
                    if (R > 0) yo[arg] = 1;                                                        \
                    continue;                                                                      \
                }                                                                                  \
                T sum = 0;                                                                         \
                for (int64_t r = 0; r < R; r++) {                                                  \
                    T e = EXP(xo[r] - mx);                                                         \
                    yo[r] = e;                                                                     \
                    sum += e;                                                                      \
                }                                                                                  \
                if (kind == SM_SOFT) {                                                             \
                    T inv = (T)1 / sum;                                                            \
                    for (int64_t r = 0; r < R; r++)                                                \
                        yo[r] *= inv;                                                              \
                } else {                                                                           \
                    T lse = LOG(sum); /* (x - max) - log(sum): exact for large x */                \
                    for (int64_t r = 0; r < R; r++)                                                \
                        yo[r] = (xo[r] - mx) - lse;                                                \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            T *mx = st, *sum = st + I;                                                             \
            for (int64_t i = 0; i < I; i++) {                                                      \
                mx[i] = -INFINITY;                                                                 \
                sum[i] = 0;                                                                        \
            }                                                                                      \
            if (kind == SM_HARD) {                                                                 \
                /* sum[] holds the arg index (exact in T for any realistic R). */                  \
                for (int64_t r = 0; r < R; r++)                                                    \
                    for (int64_t i = 0; i < I; i++)                                                \
                        if (xo[r * I + i] > mx[i]) mx[i] = xo[r * I + i], sum[i] = (T)r;           \
                for (int64_t r = 0; r < R; r++)                                                    \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yo[r * I + i] = (T)((int64_t)sum[i] == r);                                 \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t r = 0; r < R; r++)                                                        \
                for (int64_t i = 0; i < I; i++)                                                    \
                    mx[i] = xo[r * I + i] > mx[i] ? xo[r * I + i] : mx[i];                         \
            for (int64_t r = 0; r < R; r++)                                                        \
                for (int64_t i = 0; i < I; i++) {                                                  \
                    T e = EXP(xo[r * I + i] - mx[i]);                                              \
                    yo[r * I + i] = e;                                                             \
                    sum[i] += e;                                                                   \
                }                                                                                  \
            if (kind == SM_SOFT) {                                                                 \
                for (int64_t i = 0; i < I; i++)                                                    \
                    sum[i] = (T)1 / sum[i];                                                        \
                for (int64_t r = 0; r < R; r++)                                                    \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yo[r * I + i] *= sum[i];                                                   \
            } else {                                                                               \
                for (int64_t i = 0; i < I; i++)                                                    \
                    sum[i] = LOG(sum[i]);                                                          \
                for (int64_t r = 0; r < R; r++)                                                    \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yo[r * I + i] = (xo[r * I + i] - mx[i]) - sum[i];                          \
            }                                                                                      \
        }                                                                                          \
    }

DEF_SOFTMAX(float, expf, logf)
DEF_SOFTMAX(double, exp, log)

typedef struct sm_job {
    const sl_tensor_t *x;
    sl_tensor_t *y;
    void *st;
    int64_t R, I;
    sm_kind_t kind;
} sm_job_t;

static void sm_rows(void *ctx, int64_t b, int64_t e) {
    const sm_job_t *j = ctx;
    int64_t off = b * j->R * j->I;
    if (j->x->dtype == SL_DT_FLOAT)
        softmax_float((const float *)j->x->data + off, (float *)j->y->data + off, j->st, e - b,
                      j->R, j->I, j->kind);
    else
        softmax_double((const double *)j->x->data + off, (double *)j->y->data + off, j->st, e - b,
                       j->R, j->I, j->kind);
}

sl_eng_status_t sl_nn__softmax_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int64_t O = 0, R = 0, I = 0;
    sl_eng_status_t s = sm_view(node, x, &O, &R, &I, k->err);
    if (s) return s;
    if (O * R * I == 0) return SL_ENG_OK;
    size_t es = sl_dtype_size(x->dtype);
    void *st = I > 1 ? k->scratch(k, (size_t)(2 * I) * es) : NULL;
    if (I > 1 && !st) return SL_ENG_ENOMEM;
    sm_job_t j = {.x = x, .y = &out[0], .st = st, .R = R, .I = I, .kind = sm_kind(node)};
    /* Rows split across threads when each has its own state: the contiguous case. */
    sl_par_for(I == 1 ? k : NULL, O, 1 + 8192 / R, sm_rows, &j);
    return SL_ENG_OK;
}

/* ---- TopK ---- */

static sl_eng_status_t topk_params(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                   int *axis, int64_t *kk, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    int64_t a = sl_attr_int(node, "axis", -1);
    if (x->ndim == 0 || !sl_axis_normalize(a, x->ndim, axis))
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "axis %lld is out of range for a tensor of %d dims", (long long)a,
                             x->ndim);
    if (node->opset < 10) {
        *kk = sl_attr_int(node, "k", -1);
    } else {
        int64_t v[1];
        if (n_in < 2 || !in[1] || sl_nn__read_ints(in[1], v, 1) != 1)
            return sl_node_error(node, err, SL_ENG_EINVAL,
                                 "input K must be an int64 tensor holding one value");
        *kk = v[0];
    }
    if (*kk < 0 || *kk > x->dims[*axis])
        return sl_node_error(node, err, SL_ENG_EINVAL, "k = %lld is outside [0, %lld] for axis %d",
                             (long long)*kk, (long long)x->dims[*axis], *axis);
    return SL_ENG_OK;
}

sl_eng_status_t sl_nn__topk_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    if (x->dtype != SL_DT_FLOAT && x->dtype != SL_DT_DOUBLE && x->dtype != SL_DT_INT32 &&
        x->dtype != SL_DT_INT64)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "input dtype %s is not supported",
                             sl_dtype_name(x->dtype));
    int axis;
    int64_t kk = 0;
    sl_eng_status_t s = topk_params(node, in, n_in, &axis, &kk, err);
    if (s) return s;
    for (int o = 0; o < n_out && o < 2; o++) {
        out[o] = *x;
        out[o].data = NULL;
        out[o].dims[axis] = kk;
        if (o == 1) out[o].dtype = SL_DT_INT64;
    }
    return SL_ENG_OK;
}

/* A stable merge sort of (value, index) pairs: equal values keep their index order, which is
 * what ONNX asks of ties. BEFORE(a, b) is the strict order (greater for largest). */
#define DEF_TOPK(T)                                                                                \
    typedef struct {                                                                               \
        T v;                                                                                       \
        int64_t i;                                                                                 \
    } pair_##T;                                                                                    \
    static void msort_##T(pair_##T *restrict a, pair_##T *restrict tmp, int64_t n, bool largest) { \
        for (int64_t w = 1; w < n; w *= 2) {                                                       \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                                            \
                int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;       \
                int64_t p = lo, q = mid, t = lo;                                                   \
                while (p < mid && q < hi) {                                                        \
                    bool take_q = largest ? a[q].v > a[p].v : a[q].v < a[p].v;                     \
                    tmp[t++] = take_q ? a[q++] : a[p++];                                           \
                }                                                                                  \
                while (p < mid)                                                                    \
                    tmp[t++] = a[p++];                                                             \
                while (q < hi)                                                                     \
                    tmp[t++] = a[q++];                                                             \
            }                                                                                      \
            memcpy(a, tmp, (size_t)n * sizeof *a);                                                 \
        }                                                                                          \
    }                                                                                              \
    static sl_eng_status_t topk_##T(const T *x, T *yv, int64_t *yi, int64_t O, int64_t R,          \
                                    int64_t I, int64_t kk, bool largest, sl_kctx_t *k) {           \
        pair_##T *a = k->scratch(k, (size_t)R * sizeof *a);                                        \
        pair_##T *tmp = k->scratch(k, (size_t)R * sizeof *a);                                      \
        if (!a || !tmp) return SL_ENG_ENOMEM;                                                      \
        for (int64_t o = 0; o < O; o++)                                                            \
            for (int64_t i = 0; i < I; i++) {                                                      \
                const T *xs = x + o * R * I + i;                                                   \
                for (int64_t r = 0; r < R; r++) {                                                  \
                    a[r].v = xs[r * I];                                                            \
                    a[r].i = r;                                                                    \
                }                                                                                  \
                msort_##T(a, tmp, R, largest);                                                     \
                for (int64_t r = 0; r < kk; r++) {                                                 \
                    if (yv) yv[(o * kk + r) * I + i] = a[r].v;                                     \
                    if (yi) yi[(o * kk + r) * I + i] = a[r].i;                                     \
                }                                                                                  \
            }                                                                                      \
        return SL_ENG_OK;                                                                          \
    }

DEF_TOPK(float)
DEF_TOPK(double)
DEF_TOPK(int32_t)
DEF_TOPK(int64_t)

sl_eng_status_t sl_nn__topk_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int axis;
    int64_t kk = 0;
    sl_eng_status_t s = topk_params(node, in, n_in, &axis, &kk, k->err);
    if (s) return s;
    int64_t O = 0, R = 0, I = 0;
    sl_nn__split(x, axis, &O, &R, &I);
    if (O * I * kk == 0) return SL_ENG_OK;
    bool largest = node->opset < 11 || sl_attr_int(node, "largest", 1) != 0;
    void *yv = n_out > 0 ? out[0].data : NULL;
    int64_t *yi = n_out > 1 ? out[1].data : NULL;
    switch (x->dtype) {
    case SL_DT_FLOAT:
        return topk_float(x->data, yv, yi, O, R, I, kk, largest, k);
    case SL_DT_DOUBLE:
        return topk_double(x->data, yv, yi, O, R, I, kk, largest, k);
    case SL_DT_INT32:
        return topk_int32_t(x->data, yv, yi, O, R, I, kk, largest, k);
    case SL_DT_INT64:
        return topk_int64_t(x->data, yv, yi, O, R, I, kk, largest, k);
    default:
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "input dtype %s",
                             sl_dtype_name(x->dtype));
    }
}

/* ---- CumSum ---- */

static sl_eng_status_t cumsum_axis(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                   int *axis, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    int64_t v[1];
    if (n_in < 2 || !in[1] || in[1]->ndim > 1 || sl_nn__read_ints(in[1], v, 1) != 1)
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "input 'axis' must be an int32 or int64 tensor holding one value");
    if (x->ndim == 0 || !sl_axis_normalize(v[0], x->ndim, axis))
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "axis %lld is out of range for a tensor of %d dims", (long long)v[0],
                             x->ndim);
    return SL_ENG_OK;
}

sl_eng_status_t sl_nn__cumsum_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    if (x->dtype != SL_DT_FLOAT && x->dtype != SL_DT_DOUBLE && x->dtype != SL_DT_INT32 &&
        x->dtype != SL_DT_INT64)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "input dtype %s is not supported",
                             sl_dtype_name(x->dtype));
    int axis;
    sl_eng_status_t s = cumsum_axis(node, in, n_in, &axis, err);
    if (s) return s;
    out[0] = *x;
    out[0].data = NULL;
    return SL_ENG_OK;
}

/* Rows r run forward or backward; each step adds a whole inner row (a vector loop). Integer
 * sums wrap through uint64_t rather than overflow. */
#define DEF_CUMSUM(T, A)                                                                           \
    static void cumsum_##T(const T *restrict x, T *restrict y, int64_t O, int64_t R, int64_t I,    \
                           bool excl, bool rev) {                                                  \
        for (int64_t o = 0; o < O; o++) {                                                          \
            const T *xo = x + o * R * I;                                                           \
            T *yo = y + o * R * I;                                                                 \
            for (int64_t s = 0; s < R; s++) {                                                      \
                int64_t r = rev ? R - 1 - s : s, prev = rev ? r + 1 : r - 1;                       \
                T *restrict yr = yo + r * I;                                                       \
                if (s == 0) {                                                                      \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yr[i] = excl ? (T)0 : xo[r * I + i];                                       \
                    continue;                                                                      \
                }                                                                                  \
                const T *yp = yo + prev * I;                                                       \
                const T *xa = xo + (excl ? prev : r) * I;                                          \
                for (int64_t i = 0; i < I; i++)                                                    \
                    yr[i] = (T)((A)yp[i] + (A)xa[i]);                                              \
            }                                                                                      \
        }                                                                                          \
    }

DEF_CUMSUM(float, float)
DEF_CUMSUM(double, double)
DEF_CUMSUM(int32_t, uint64_t)
DEF_CUMSUM(int64_t, uint64_t)

sl_eng_status_t sl_nn__cumsum_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int axis;
    sl_eng_status_t s = cumsum_axis(node, in, n_in, &axis, k->err);
    if (s) return s;
    int64_t O = 0, R = 0, I = 0;
    sl_nn__split(x, axis, &O, &R, &I);
    bool excl = sl_attr_int(node, "exclusive", 0) != 0, rev = sl_attr_int(node, "reverse", 0) != 0;
    switch (x->dtype) {
    case SL_DT_FLOAT:
        cumsum_float(x->data, out[0].data, O, R, I, excl, rev);
        break;
    case SL_DT_DOUBLE:
        cumsum_double(x->data, out[0].data, O, R, I, excl, rev);
        break;
    case SL_DT_INT32:
        cumsum_int32_t(x->data, out[0].data, O, R, I, excl, rev);
        break;
    case SL_DT_INT64:
        cumsum_int64_t(x->data, out[0].data, O, R, I, excl, rev);
        break;
    default:
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "input dtype %s",
                             sl_dtype_name(x->dtype));
    }
    return SL_ENG_OK;
}
