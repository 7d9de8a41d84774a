/* CPU kernels: the Reduce* family and ArgMax/ArgMin, plus the table that also lists the softmax
 * family, TopK and CumSum (nn_softmax.c). A reduction runs as one or more (outer, len, inner)
 * passes, one per run of adjacent reduced axes, so that every pass is a contiguous loop. */
#include "engine/nn_common.h"
#include "engine/op.h"

#include <math.h>
#include <string.h>

int sl_nn__read_ints(const sl_tensor_t *t, int64_t *out, int max) {
    int64_t n = sl_tensor_numel(t);
    if (n > max) return -1;
    if (n > 0 && !t->data) return -1; /* values unknown (shape inference at load) */
    if (t->dtype == SL_DT_INT64) {
        const int64_t *p = t->data;
        for (int64_t i = 0; i < n; i++)
            out[i] = p[i];
    } else if (t->dtype == SL_DT_INT32) {
        const int32_t *p = t->data;
        for (int64_t i = 0; i < n; i++)
            out[i] = p[i];
    } else {
        return -1;
    }
    return (int)n;
}

/* ---- reductions ---- */

typedef enum { ACC_SUM, ACC_MAX, ACC_MIN, ACC_PROD } acc_t;
typedef enum { PRE_NONE, PRE_ABS, PRE_SQUARE, PRE_EXP } pre_t;
typedef enum { POST_NONE, POST_MEAN, POST_SQRT, POST_LOG } post_t;

typedef struct {
    const char *op;
    acc_t acc;
    pre_t pre;
    post_t post;
} reduce_kind_t;

static const reduce_kind_t kinds[] = {
    {"ReduceSum", ACC_SUM, PRE_NONE, POST_NONE},
    {"ReduceMean", ACC_SUM, PRE_NONE, POST_MEAN},
    {"ReduceMax", ACC_MAX, PRE_NONE, POST_NONE},
    {"ReduceMin", ACC_MIN, PRE_NONE, POST_NONE},
    {"ReduceProd", ACC_PROD, PRE_NONE, POST_NONE},
    {"ReduceL1", ACC_SUM, PRE_ABS, POST_NONE},
    {"ReduceL2", ACC_SUM, PRE_SQUARE, POST_SQRT},
    {"ReduceLogSum", ACC_SUM, PRE_NONE, POST_LOG},
    {"ReduceLogSumExp", ACC_SUM, PRE_EXP, POST_LOG},
    {"ReduceSumSquare", ACC_SUM, PRE_SQUARE, POST_NONE},
};

static const reduce_kind_t *reduce_kind(const sl_node_t *node) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(node->op_type, kinds[i].op) == 0) return &kinds[i];
    }
    return &kinds[0];
}

/* Whether the axes come from input 1 (ReduceSum from opset 13, the others from 18). */
static bool axes_from_input(const sl_node_t *node) {
    return node->opset >= (strcmp(node->op_type, "ReduceSum") == 0 ? 13 : 18);
}

/* Fills mask with the reduced axes of x; *noop when the op is the identity. */
static sl_eng_status_t reduce_axes(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                   bool mask[SL_MAX_DIMS], bool *noop, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    int64_t axes[SL_MAX_DIMS];
    int n = 0;
    *noop = false;
    if (axes_from_input(node)) {
        if (n_in > 1 && in[1]) {
            n = sl_nn__read_ints(in[1], axes, SL_MAX_DIMS);
            if (n < 0 || in[1]->ndim > 1)
                return sl_node_error(node, err, SL_ENG_EINVAL,
                                     "input 'axes' must be a 1-D int64 tensor of at most %d values",
                                     SL_MAX_DIMS);
        }
    } else {
        size_t cnt;
        const int64_t *a = sl_attr_ints(node, "axes", &cnt);
        if (cnt > SL_MAX_DIMS)
            return sl_node_error(node, err, SL_ENG_EINVAL, "%zu axes for a tensor of %d dims", cnt,
                                 x->ndim);
        for (size_t i = 0; i < cnt; i++)
            axes[i] = a[i];
        n = (int)cnt;
    }
    for (int d = 0; d < SL_MAX_DIMS; d++)
        mask[d] = n == 0;
    if (n == 0 && sl_attr_int(node, "noop_with_empty_axes", 0)) {
        *noop = true;
        for (int d = 0; d < SL_MAX_DIMS; d++)
            mask[d] = false;
        return SL_ENG_OK;
    }
    if (n > 0 && x->ndim == 0)
        return sl_node_error(node, err, SL_ENG_EINVAL, "axes given for a scalar input");
    for (int i = 0; i < n; i++) {
        int ax;
        if (!sl_axis_normalize(axes[i], x->ndim, &ax))
            return sl_node_error(node, err, SL_ENG_EINVAL,
                                 "axis %lld is out of range for a tensor of %d dims",
                                 (long long)axes[i], x->ndim);
        if (mask[ax])
            return sl_node_error(node, err, SL_ENG_EINVAL, "axis %lld is given twice",
                                 (long long)axes[i]);
        mask[ax] = true;
    }
    return SL_ENG_OK;
}

static bool reduce_dtype_ok(const reduce_kind_t *kd, sl_dtype_t t) {
    switch (t) {
    case SL_DT_FLOAT:
    case SL_DT_DOUBLE:
        return true;
    case SL_DT_INT32:
    case SL_DT_INT64:
        return kd->pre != PRE_EXP && kd->post != POST_LOG;
    case SL_DT_UINT8:
    case SL_DT_INT8:
        return kd->acc == ACC_MAX || kd->acc == ACC_MIN;
    default:
        return false;
    }
}

static sl_eng_status_t reduce_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    const reduce_kind_t *kd = reduce_kind(node);
    if (!reduce_dtype_ok(kd, x->dtype))
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "input dtype %s is not supported",
                             sl_dtype_name(x->dtype));
    bool mask[SL_MAX_DIMS], noop;
    sl_eng_status_t s = reduce_axes(node, in, n_in, mask, &noop, err);
    if (s) return s;
    bool keep = sl_attr_int(node, "keepdims", 1) != 0;
    out[0].dtype = x->dtype;
    out[0].ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!mask[d])
            out[0].dims[out[0].ndim++] = x->dims[d];
        else if (keep)
            out[0].dims[out[0].ndim++] = 1;
    }
    return SL_ENG_OK;
}

/* One (outer, len, inner) pass: y[o][i] = acc over r of x[o][r][i]. Integer sums and products
 * accumulate in uint64_t so that overflow wraps instead of being undefined. */
#define DEF_REDUCE(T, A, LOWEST, HIGHEST)                                                          \
    static void reduce_pass_##T(const T *restrict x, T *restrict y, int64_t O, int64_t R,          \
                                int64_t I, acc_t acc) {                                            \
        for (int64_t o = 0; o < O; o++) {                                                          \
            const T *xo = x + o * R * I;                                                           \
            T *yo = y + o * I;                                                                     \
            if (I == 1) {                                                                          \
                A s[4];                                                                            \
                int64_t r = 0;                                                                     \
                switch (acc) {                                                                     \
                case ACC_SUM:                                                                      \
                    s[0] = s[1] = s[2] = s[3] = 0;                                                 \
                    for (; r + 4 <= R; r += 4) {                                                   \
                        s[0] += (A)xo[r];                                                          \
                        s[1] += (A)xo[r + 1];                                                      \
                        s[2] += (A)xo[r + 2];                                                      \
                        s[3] += (A)xo[r + 3];                                                      \
                    }                                                                              \
                    for (; r < R; r++)                                                             \
                        s[0] += (A)xo[r];                                                          \
                    *yo = (T)((s[0] + s[1]) + (s[2] + s[3]));                                      \
                    break;                                                                         \
                case ACC_PROD: {                                                                   \
                    A p = 1;                                                                       \
                    for (; r < R; r++)                                                             \
                        p *= (A)xo[r];                                                             \
                    *yo = (T)p;                                                                    \
                    break;                                                                         \
                }                                                                                  \
                case ACC_MAX: {                                                                    \
                    T m = LOWEST;                                                                  \
                    for (; r < R; r++)                                                             \
                        m = xo[r] > m ? xo[r] : m;                                                 \
                    *yo = m;                                                                       \
                    break;                                                                         \
                }                                                                                  \
                case ACC_MIN: {                                                                    \
                    T m = HIGHEST;                                                                 \
                    for (; r < R; r++)                                                             \
                        m = xo[r] < m ? xo[r] : m;                                                 \
                    *yo = m;                                                                       \
                    break;                                                                         \
                }                                                                                  \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            T init = acc == ACC_SUM    ? (T)0                                                      \
                     : acc == ACC_PROD ? (T)1                                                      \
                     : acc == ACC_MAX  ? LOWEST                                                    \
                                       : HIGHEST;                                                   \
            for (int64_t i = 0; i < I; i++)                                                        \
                yo[i] = init;                                                                      \
            for (int64_t r = 0; r < R; r++) {                                                      \
                const T *restrict xr = xo + r * I;                                                 \
                switch (acc) {                                                                     \
                case ACC_SUM:                                                                      \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yo[i] = (T)((A)yo[i] + (A)xr[i]);                                          \
                    break;                                                                         \
                case ACC_PROD:                                                                     \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yo[i] = (T)((A)yo[i] * (A)xr[i]);                                          \
                    break;                                                                         \
                case ACC_MAX:                                                                      \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yo[i] = xr[i] > yo[i] ? xr[i] : yo[i];                                     \
                    break;                                                                         \
                case ACC_MIN:                                                                      \
                    for (int64_t i = 0; i < I; i++)                                                \
                        yo[i] = xr[i] < yo[i] ? xr[i] : yo[i];                                     \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEF_REDUCE(float, float, -INFINITY, INFINITY)
DEF_REDUCE(double, double, -INFINITY, INFINITY)
DEF_REDUCE(int32_t, uint64_t, INT32_MIN, INT32_MAX)
DEF_REDUCE(int64_t, uint64_t, INT64_MIN, INT64_MAX)
DEF_REDUCE(uint8_t, uint64_t, 0, UINT8_MAX)
DEF_REDUCE(int8_t, uint64_t, INT8_MIN, INT8_MAX)

static void reduce_pass(sl_dtype_t t, const void *x, void *y, int64_t O, int64_t R, int64_t I,
                        acc_t acc) {
    switch (t) {
    case SL_DT_FLOAT:
        reduce_pass_float(x, y, O, R, I, acc);
        break;
    case SL_DT_DOUBLE:
        reduce_pass_double(x, y, O, R, I, acc);
        break;
    case SL_DT_INT32:
        reduce_pass_int32_t(x, y, O, R, I, acc);
        break;
    case SL_DT_INT64:
        reduce_pass_int64_t(x, y, O, R, I, acc);
        break;
    case SL_DT_UINT8:
        reduce_pass_uint8_t(x, y, O, R, I, acc);
        break;
    case SL_DT_INT8:
        reduce_pass_int8_t(x, y, O, R, I, acc);
        break;
    default:
        break;
    }
}

/* The elementwise map applied before accumulating (|x|, x*x, exp x) into dst; M is the type
 * the arithmetic runs in (uint64_t for integers, so that overflow wraps). */
#define PRE_LOOP(T, M, EXPF)                                                                       \
    do {                                                                                           \
        const T *restrict s = src;                                                                 \
        T *restrict d = dst;                                                                       \
        switch (pre) {                                                                             \
        case PRE_ABS:                                                                              \
            for (int64_t i = 0; i < n; i++)                                                        \
                d[i] = s[i] < 0 ? (T)((M)0 - (M)s[i]) : s[i];                                      \
            break;                                                                                 \
        case PRE_SQUARE:                                                                           \
            for (int64_t i = 0; i < n; i++)                                                        \
                d[i] = (T)((M)s[i] * (M)s[i]);                                                     \
            break;                                                                                 \
        case PRE_EXP:                                                                              \
            for (int64_t i = 0; i < n; i++)                                                        \
                d[i] = (T)EXPF((double)s[i]);                                                      \
            break;                                                                                 \
        case PRE_NONE:                                                                             \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

static void reduce_pre(sl_dtype_t t, pre_t pre, const void *src, void *dst, int64_t n) {
    switch (t) {
    case SL_DT_FLOAT:
        PRE_LOOP(float, float, expf);
        break;
    case SL_DT_DOUBLE:
        PRE_LOOP(double, double, exp);
        break;
    case SL_DT_INT32:
        PRE_LOOP(int32_t, uint64_t, exp);
        break;
    case SL_DT_INT64:
        PRE_LOOP(int64_t, uint64_t, exp);
        break;
    default:
        break;
    }
}

#define POST_LOOP(T, SQRTF, LOGF)                                                                  \
    do {                                                                                           \
        T *restrict d = y;                                                                         \
        switch (post) {                                                                            \
        case POST_MEAN:                                                                            \
            for (int64_t i = 0; i < n; i++)                                                        \
                d[i] = (T)(d[i] / (T)count);                                                       \
            break;                                                                                 \
        case POST_SQRT:                                                                            \
            for (int64_t i = 0; i < n; i++)                                                        \
                d[i] = (T)SQRTF(d[i]);                                                             \
            break;                                                                                 \
        case POST_LOG:                                                                             \
            for (int64_t i = 0; i < n; i++)                                                        \
                d[i] = (T)LOGF(d[i]);                                                              \
            break;                                                                                 \
        case POST_NONE:                                                                            \
            break;                                                                                 \
        }                                                                                          \
    } while (0)

static void reduce_post(sl_dtype_t t, post_t post, void *y, int64_t n, int64_t count) {
    if (post == POST_MEAN && count == 0) count = 1; /* an empty mean: 0 / 1, not a trap */
    switch (t) {
    case SL_DT_FLOAT:
        POST_LOOP(float, sqrtf, logf);
        break;
    case SL_DT_DOUBLE:
        POST_LOOP(double, sqrt, log);
        break;
    case SL_DT_INT32:
        POST_LOOP(int32_t, sqrt, log);
        break;
    case SL_DT_INT64:
        POST_LOOP(int64_t, sqrt, log);
        break;
    default:
        break;
    }
}

static sl_eng_status_t reduce_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    const reduce_kind_t *kd = reduce_kind(node);
    bool mask[SL_MAX_DIMS], noop;
    sl_eng_status_t s = reduce_axes(node, in, n_in, mask, &noop, k->err);
    if (s) return s;
    size_t es = sl_dtype_size(x->dtype);
    int64_t n = sl_tensor_numel(x), n_out_el = sl_tensor_numel(&out[0]);
    if (noop) {
        memcpy(out[0].data, x->data, (size_t)n * es);
        return SL_ENG_OK;
    }
    /* Collapse to runs of adjacent dims with the same flag (size-1 dims drop out). */
    int64_t size[SL_MAX_DIMS];
    bool red[SL_MAX_DIMS];
    int m = 0;
    int64_t count = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (mask[d]) count *= x->dims[d];
        if (x->dims[d] == 1) continue;
        if (m > 0 && red[m - 1] == mask[d]) {
            size[m - 1] *= x->dims[d];
        } else {
            size[m] = x->dims[d];
            red[m++] = mask[d];
        }
    }
    const void *src = x->data;
    if (kd->pre != PRE_NONE && n > 0) {
        void *p = k->scratch(k, (size_t)n * es);
        if (!p) return SL_ENG_ENOMEM;
        reduce_pre(x->dtype, kd->pre, src, p, n);
        src = p;
    }
    int passes = 0;
    for (int j = 0; j < m; j++)
        passes += red[j];
    if (passes == 0 || n == 0) {
        if (n == 0) /* reducing an empty set gives each output the accumulator's identity */
            reduce_pass(x->dtype, src, out[0].data, n_out_el, 0, 1, kd->acc);
        else
            memcpy(out[0].data, src, (size_t)n * es);
        reduce_post(x->dtype, kd->post, out[0].data, n_out_el, count);
        return SL_ENG_OK;
    }
    void *buf[2] = {NULL, NULL};
    int done = 0;
    for (int j = m - 1; j >= 0; j--) {
        if (!red[j]) continue;
        int64_t O = 1, I = 1;
        for (int q = 0; q < j; q++)
            O *= size[q];
        for (int q = j + 1; q < m; q++)
            I *= size[q];
        void *dst;
        if (++done == passes) {
            dst = out[0].data;
        } else {
            int b = done & 1;
            if (!buf[b]) {
                buf[b] = k->scratch(k, (size_t)(O * I) * es);
                if (!buf[b]) return SL_ENG_ENOMEM;
            }
            dst = buf[b];
        }
        reduce_pass(x->dtype, src, dst, O, size[j], I, kd->acc);
        size[j] = 1;
        src = dst;
    }
    reduce_post(x->dtype, kd->post, out[0].data, n_out_el, count);
    return SL_ENG_OK;
}

/* ---- ArgMax / ArgMin ---- */

static sl_eng_status_t arg_axis(const sl_node_t *node, const sl_tensor_t *x, int *axis,
                                sl_eng_error_t *err) {
    int64_t a = sl_attr_int(node, "axis", 0);
    if (x->ndim == 0 || !sl_axis_normalize(a, x->ndim, axis))
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "axis %lld is out of range for a tensor of %d dims", (long long)a,
                             x->ndim);
    if (x->dims[*axis] == 0)
        return sl_node_error(node, err, SL_ENG_ESHAPE, "cannot take %s over an empty axis",
                             node->op_type);
    return SL_ENG_OK;
}

static sl_eng_status_t arg_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    switch (x->dtype) {
    case SL_DT_FLOAT:
    case SL_DT_DOUBLE:
    case SL_DT_INT32:
    case SL_DT_INT64:
    case SL_DT_UINT8:
    case SL_DT_INT8:
        break;
    default:
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "input dtype %s is not supported",
                             sl_dtype_name(x->dtype));
    }
    int axis;
    sl_eng_status_t s = arg_axis(node, x, &axis, err);
    if (s) return s;
    bool keep = sl_attr_int(node, "keepdims", 1) != 0;
    out[0].dtype = SL_DT_INT64;
    out[0].ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != axis)
            out[0].dims[out[0].ndim++] = x->dims[d];
        else if (keep)
            out[0].dims[out[0].ndim++] = 1;
    }
    return SL_ENG_OK;
}

/* best[i] tracks the running extreme of column i; BETTER(a, b) says a replaces b. With
 * select_last_index, ties replace (>=), so the last index wins. */
#define DEF_ARG(T)                                                                                 \
    static void arg_##T(const T *restrict x, int64_t *restrict y, T *restrict best, int64_t O,     \
                        int64_t R, int64_t I, bool is_max, bool last) {                            \
        for (int64_t o = 0; o < O; o++) {                                                          \
            const T *xo = x + o * R * I;                                                           \
            int64_t *yo = y + o * I;                                                               \
            for (int64_t i = 0; i < I; i++) {                                                      \
                best[i] = xo[i];                                                                   \
                yo[i] = 0;                                                                         \
            }                                                                                      \
            for (int64_t r = 1; r < R; r++) {                                                      \
                const T *xr = xo + r * I;                                                          \
                if (is_max && !last) {                                                             \
                    for (int64_t i = 0; i < I; i++)                                                \
                        if (xr[i] > best[i]) best[i] = xr[i], yo[i] = r;                           \
                } else if (is_max) {                                                               \
                    for (int64_t i = 0; i < I; i++)                                                \
                        if (xr[i] >= best[i]) best[i] = xr[i], yo[i] = r;                          \
                } else if (!last) {                                                                \
                    for (int64_t i = 0; i < I; i++)                                                \
                        if (xr[i] < best[i]) best[i] = xr[i], yo[i] = r;                           \
                } else {                                                                           \
                    for (int64_t i = 0; i < I; i++)                                                \
                        if (xr[i] <= best[i]) best[i] = xr[i], yo[i] = r;                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEF_ARG(float)
DEF_ARG(double)
DEF_ARG(int32_t)
DEF_ARG(int64_t)
DEF_ARG(uint8_t)
DEF_ARG(int8_t)

static sl_eng_status_t arg_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                               sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int axis;
    sl_eng_status_t s = arg_axis(node, x, &axis, k->err);
    if (s) return s;
    int64_t O, R, I;
    sl_nn__split(x, axis, &O, &R, &I);
    if (O * I == 0) return SL_ENG_OK;
    bool is_max = strcmp(node->op_type, "ArgMax") == 0;
    bool last = sl_attr_int(node, "select_last_index", 0) != 0;
    void *best = k->scratch(k, (size_t)I * sl_dtype_size(x->dtype));
    if (!best) return SL_ENG_ENOMEM;
    int64_t *y = out[0].data;
    switch (x->dtype) {
    case SL_DT_FLOAT:
        arg_float(x->data, y, best, O, R, I, is_max, last);
        break;
    case SL_DT_DOUBLE:
        arg_double(x->data, y, best, O, R, I, is_max, last);
        break;
    case SL_DT_INT32:
        arg_int32_t(x->data, y, best, O, R, I, is_max, last);
        break;
    case SL_DT_INT64:
        arg_int64_t(x->data, y, best, O, R, I, is_max, last);
        break;
    case SL_DT_UINT8:
        arg_uint8_t(x->data, y, best, O, R, I, is_max, last);
        break;
    case SL_DT_INT8:
        arg_int8_t(x->data, y, best, O, R, I, is_max, last);
        break;
    default:
        return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "input dtype %s",
                             sl_dtype_name(x->dtype));
    }
    return SL_ENG_OK;
}

#define REDUCE(name)                                                                               \
    { .op_type = name, .domain = "", .since = 1, .infer = reduce_infer, .run = reduce_run }
#define NN(name, fn, v)                                                                            \
    {                                                                                              \
        .op_type = name, .domain = "", .since = v, .infer = sl_nn__##fn##_infer,                   \
        .run = sl_nn__##fn##_run                                                                   \
    }

const sl_op_t sl_ops_reduce[] = {
    REDUCE("ReduceSum"),
    REDUCE("ReduceMean"),
    REDUCE("ReduceMax"),
    REDUCE("ReduceMin"),
    REDUCE("ReduceProd"),
    REDUCE("ReduceL1"),
    REDUCE("ReduceL2"),
    REDUCE("ReduceLogSum"),
    REDUCE("ReduceLogSumExp"),
    REDUCE("ReduceSumSquare"),
    {.op_type = "ArgMax", .domain = "", .since = 1, .infer = arg_infer, .run = arg_run},
    {.op_type = "ArgMin", .domain = "", .since = 1, .infer = arg_infer, .run = arg_run},
    NN("Softmax", softmax, 1),
    NN("LogSoftmax", softmax, 1),
    NN("Hardmax", softmax, 1),
    NN("TopK", topk, 1),
    NN("CumSum", cumsum, 11),
    {.op_type = NULL},
};
