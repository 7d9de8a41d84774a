/* Kernels of the shape table that address elements by index values: Gather (embeddings),
 * GatherElements, ScatterElements (and the older Scatter), OneHot, NonZero and Trilu. Index
 * values come from the graph's inputs and are hostile: every one is range-checked before it
 * touches memory, and an out-of-range index is an error naming the node, the value and where
 * it was. Registered in sl_ops_shape (ops_shape.c); declared in la_ops.h. */
#include "engine/la_layout.h"
#include "engine/la_ops.h"

#include <string.h>

#define MAXD SL_MAX_DIMS

static sl_eng_status_t check_indices_dtype(const sl_node_t *n, const sl_tensor_t *t,
                                           sl_eng_error_t *err) {
    if (t->dtype != SL_DT_INT64 && t->dtype != SL_DT_INT32)
        return sl_node_error(n, err, SL_ENG_EINVAL,
                             "input 'indices' has dtype %s, expected int32 or int64",
                             sl_dtype_name(t->dtype));
    return SL_ENG_OK;
}

/* Index i of an int32/int64 tensor. Called per element only by the indexing loops, where the
 * branch is perfectly predicted (one dtype per call) and the work per index is a copy. */
static inline int64_t index_at(const sl_tensor_t *t, int64_t i) {
    return t->dtype == SL_DT_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

static sl_eng_status_t bad_index(const sl_node_t *n, sl_eng_error_t *err, int64_t v, int64_t at,
                                 int axis, int64_t d) {
    return sl_node_error(n, err, SL_ENG_EINVAL,
                         "index %lld (at position %lld of 'indices') is out of range for axis %d "
                         "of size %lld",
                         (long long)v, (long long)at, axis, (long long)d);
}

/* Copies one element of esize bytes; the switch is hoisted by the callers' loops being short. */
static inline void copy_elem(char *dst, const char *src, size_t es) {
    switch (es) {
    case 4:
        memcpy(dst, src, 4);
        break;
    case 8:
        memcpy(dst, src, 8);
        break;
    case 1:
        *dst = *src;
        break;
    default:
        memcpy(dst, src, es);
    }
}

/* ---- Gather ---- */

sl_eng_status_t sl_la__gather_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 2, 2, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0], *idx = in[1];
    if (!sl_la__movable(n, x, "input 'data'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    if ((s = check_indices_dtype(n, idx, err))) return s;
    int axis;
    int64_t av = sl_attr_int(n, "axis", 0);
    if (x->ndim == 0 || !sl_axis_normalize(av, x->ndim, &axis))
        return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                             (long long)av, x->ndim);
    int nd = x->ndim - 1 + idx->ndim;
    if (nd > MAXD)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                             "output has %d dims, at most %d supported", nd, MAXD);
    int64_t dims[MAXD];
    int j = 0;
    for (int i = 0; i < axis; i++)
        dims[j++] = x->dims[i];
    for (int i = 0; i < idx->ndim; i++)
        dims[j++] = idx->dims[i];
    for (int i = axis + 1; i < x->ndim; i++)
        dims[j++] = x->dims[i];
    return sl_la__set_out(n, &out[0], x->dtype, nd, dims, err);
}

sl_eng_status_t sl_la__gather_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0], *idx = in[1];
    int axis;
    sl_axis_normalize(sl_attr_int(n, "axis", 0), x->ndim, &axis);
    size_t es = sl_dtype_size(x->dtype);
    int64_t d = x->dims[axis], ni = sl_tensor_numel(idx);
    int64_t outer = sl_la__prod(x->dims, 0, axis);
    size_t inner = (size_t)sl_la__prod(x->dims, axis + 1, x->ndim) * es;
    /* Check every index once, before any copy. */
    for (int64_t i = 0; i < ni; i++) {
        int64_t v = index_at(idx, i);
        if (v < -d || v >= d) return bad_index(n, k->err, v, i, axis, d);
    }
    if (inner == 0 || outer == 0) return SL_ENG_OK;
    char *dst = out[0].data;
    const char *src = x->data;
    for (int64_t o = 0; o < outer; o++) {
        const char *base = src + (size_t)o * (size_t)d * inner;
        for (int64_t i = 0; i < ni; i++, dst += inner) {
            int64_t v = index_at(idx, i);
            if (v < 0) v += d;
            memcpy(dst, base + (size_t)v * inner, inner);
        }
    }
    return SL_ENG_OK;
}

/* ---- GatherElements, ScatterElements ---- */

static sl_eng_status_t elements_check(const sl_node_t *n, const sl_tensor_t *x,
                                      const sl_tensor_t *idx, int *axis, sl_eng_error_t *err) {
    sl_eng_status_t s = check_indices_dtype(n, idx, err);
    if (s) return s;
    if (!sl_la__movable(n, x, "input 'data'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t av = sl_attr_int(n, "axis", 0);
    if (x->ndim == 0 || !sl_axis_normalize(av, x->ndim, axis))
        return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                             (long long)av, x->ndim);
    if (idx->ndim != x->ndim)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "indices have %d dims, data has %d", idx->ndim,
                             x->ndim);
    for (int i = 0; i < x->ndim; i++) {
        if (i != *axis && idx->dims[i] > x->dims[i])
            return sl_node_error(n, err, SL_ENG_ESHAPE,
                                 "indices have size %lld in dim %d, data only %lld",
                                 (long long)idx->dims[i], i, (long long)x->dims[i]);
    }
    return SL_ENG_OK;
}

/* Walks the indices tensor; for each element calls back with its position and the offset (in
 * elements of data) it addresses. Returns an error for the first index out of range. */
#define FOR_EACH_ELEMENT(n, err, x, idx, axis, BODY)                                               \
    do {                                                                                           \
        int64_t st_[MAXD], cnt_[MAXD] = {0}, base_ = 0, tot_ = sl_tensor_numel(idx);               \
        int r_ = (x)->ndim;                                                                        \
        int64_t d_ = (x)->dims[axis];                                                              \
        sl_la__strides(r_, (x)->dims, st_);                                                        \
        for (int64_t i_ = 0; i_ < tot_; i_++) {                                                    \
            int64_t v_ = index_at(idx, i_);                                                        \
            if (v_ < -d_ || v_ >= d_) return bad_index(n, err, v_, i_, axis, d_);                  \
            if (v_ < 0) v_ += d_;                                                                  \
            int64_t at = base_ + v_ * st_[axis], pos = i_;                                         \
            BODY;                                                                                  \
            for (int j_ = r_ - 1; j_ >= 0; j_--) {                                                 \
                if (j_ != (axis)) base_ += st_[j_];                                                \
                if (++cnt_[j_] < (idx)->dims[j_]) break;                                           \
                if (j_ != (axis)) base_ -= st_[j_] * cnt_[j_];                                     \
                cnt_[j_] = 0;                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

sl_eng_status_t sl_la__gather_elements_infer(const sl_node_t *n, const sl_tensor_t *const *in,
                                             int n_in, sl_tensor_t *out, int n_out,
                                             sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 2, 2, n_out, 1, 1, err);
    if (s) return s;
    int axis;
    if ((s = elements_check(n, in[0], in[1], &axis, err))) return s;
    return sl_la__set_out(n, &out[0], in[0]->dtype, in[1]->ndim, in[1]->dims, err);
}

sl_eng_status_t sl_la__gather_elements_run(const sl_node_t *n, const sl_tensor_t *const *in,
                                           int n_in, sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0], *idx = in[1];
    int axis;
    sl_eng_status_t s = elements_check(n, x, idx, &axis, k->err);
    if (s) return s;
    size_t es = sl_dtype_size(x->dtype);
    char *dst = out[0].data;
    const char *src = x->data;
    FOR_EACH_ELEMENT(n, k->err, x, idx, axis,
                     copy_elem(dst + (size_t)pos * es, src + (size_t)at * es, es));
    return SL_ENG_OK;
}

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

static sl_eng_status_t scatter_reduction(const sl_node_t *n, sl_dtype_t dt, int *red,
                                         sl_eng_error_t *err) {
    const char *r = n->opset >= 16 ? sl_attr_string(n, "reduction", "none") : "none";
    if (strcmp(r, "none") == 0)
        *red = RED_NONE;
    else if (strcmp(r, "add") == 0)
        *red = RED_ADD;
    else if (strcmp(r, "mul") == 0)
        *red = RED_MUL;
    else if (strcmp(r, "max") == 0)
        *red = RED_MAX;
    else if (strcmp(r, "min") == 0)
        *red = RED_MIN;
    else
        return sl_node_error(n, err, SL_ENG_EINVAL,
                             "reduction '%s' is not none, add, mul, max or min", r);
    if (*red != RED_NONE && dt != SL_DT_FLOAT && dt != SL_DT_DOUBLE && dt != SL_DT_INT64 &&
        dt != SL_DT_INT32)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED, "reduction '%s' on dtype %s", r,
                             sl_dtype_name(dt));
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__scatter_elements_infer(const sl_node_t *n, const sl_tensor_t *const *in,
                                              int n_in, sl_tensor_t *out, int n_out,
                                              sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 3, 3, n_out, 1, 1, err);
    if (s) return s;
    int axis, red;
    if ((s = elements_check(n, in[0], in[1], &axis, err))) return s;
    if ((s = scatter_reduction(n, in[0]->dtype, &red, err))) return s;
    if (in[2]->dtype != in[0]->dtype)
        return sl_node_error(n, err, SL_ENG_EINVAL, "updates have dtype %s, data %s",
                             sl_dtype_name(in[2]->dtype), sl_dtype_name(in[0]->dtype));
    if (in[2]->ndim != in[1]->ndim ||
        memcmp(in[2]->dims, in[1]->dims, sizeof(int64_t) * (size_t)in[1]->ndim) != 0)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "updates and indices must have the same shape");
    return sl_la__set_out(n, &out[0], in[0]->dtype, in[0]->ndim, in[0]->dims, err);
}

sl_eng_status_t sl_la__scatter_elements_run(const sl_node_t *n, const sl_tensor_t *const *in,
                                            int n_in, sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0], *idx = in[1], *upd = in[2];
    int axis, red;
    sl_eng_status_t s = elements_check(n, x, idx, &axis, k->err);
    if (s || (s = scatter_reduction(n, x->dtype, &red, k->err))) return s;
    size_t es = sl_dtype_size(x->dtype);
    /* Validate every index before writing, so that an error leaves no half-done output. */
    int64_t d = x->dims[axis], ni = sl_tensor_numel(idx);
    for (int64_t i = 0; i < ni; i++) {
        int64_t v = index_at(idx, i);
        if (v < -d || v >= d) return bad_index(n, k->err, v, i, axis, d);
    }
    if (out[0].data != x->data) memcpy(out[0].data, x->data, sl_tensor_nbytes(x));
    char *dst = out[0].data;
    const char *u = upd->data;
#define REDUCE(T)                                                                                  \
    do {                                                                                           \
        T *o = (T *)dst;                                                                           \
        const T *uu = (const T *)u;                                                                \
        switch (red) {                                                                             \
        case RED_ADD:                                                                              \
            FOR_EACH_ELEMENT(n, k->err, x, idx, axis, o[at] += uu[pos]);                           \
            break;                                                                                 \
        case RED_MUL:                                                                              \
            FOR_EACH_ELEMENT(n, k->err, x, idx, axis, o[at] *= uu[pos]);                           \
            break;                                                                                 \
        case RED_MAX:                                                                              \
            FOR_EACH_ELEMENT(n, k->err, x, idx, axis, o[at] = o[at] > uu[pos] ? o[at] : uu[pos]);  \
            break;                                                                                 \
        default:                                                                                   \
            FOR_EACH_ELEMENT(n, k->err, x, idx, axis, o[at] = o[at] < uu[pos] ? o[at] : uu[pos]);  \
        }                                                                                          \
    } while (0)
    if (red == RED_NONE) {
        FOR_EACH_ELEMENT(n, k->err, x, idx, axis,
                         copy_elem(dst + (size_t)at * es, u + (size_t)pos * es, es));
    } else if (x->dtype == SL_DT_FLOAT) {
        REDUCE(float);
    } else if (x->dtype == SL_DT_DOUBLE) {
        REDUCE(double);
    } else if (x->dtype == SL_DT_INT64) {
        REDUCE(int64_t);
    } else {
        REDUCE(int32_t);
    }
#undef REDUCE
    return SL_ENG_OK;
}

/* ---- OneHot ---- */

static sl_eng_status_t onehot_params(const sl_node_t *n, const sl_tensor_t *const *in,
                                     int64_t *depth, int *axis, sl_eng_error_t *err) {
    const sl_tensor_t *idx = in[0], *dep = in[1], *val = in[2];
    if (!sl_la__scalar_i64(dep, depth))
        return sl_node_error(n, err, SL_ENG_EINVAL,
                             "input 'depth' must be one known numeric value");
    if (*depth < 1 || *depth > ((int64_t)1 << 40))
        return sl_node_error(n, err, SL_ENG_EINVAL, "depth %lld is invalid", (long long)*depth);
    if (sl_tensor_numel(val) != 2)
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "input 'values' has %lld elements, expected 2 (off, on)",
                             (long long)sl_tensor_numel(val));
    if (!sl_la__movable(n, val, "input 'values'", err))
        return err ? err->code : SL_ENG_EUNSUPPORTED;
    switch (idx->dtype) {
    case SL_DT_INT64:
    case SL_DT_INT32:
    case SL_DT_FLOAT:
    case SL_DT_DOUBLE:
        break;
    default:
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED, "indices of dtype %s are not supported",
                             sl_dtype_name(idx->dtype));
    }
    int64_t av = sl_attr_int(n, "axis", -1);
    if (!sl_axis_normalize(av, idx->ndim + 1, axis))
        return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                             (long long)av, idx->ndim + 1);
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__onehot_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 3, 3, n_out, 1, 1, err);
    if (s) return s;
    int64_t depth;
    int axis;
    if ((s = onehot_params(n, in, &depth, &axis, err))) return s;
    const sl_tensor_t *idx = in[0];
    if (idx->ndim + 1 > MAXD)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED, "output has too many dims");
    int64_t dims[MAXD];
    for (int i = 0, j = 0; i <= idx->ndim; i++)
        dims[i] = i == axis ? depth : idx->dims[j++];
    return sl_la__set_out(n, &out[0], in[2]->dtype, idx->ndim + 1, dims, err);
}

sl_eng_status_t sl_la__onehot_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *idx = in[0];
    int64_t depth;
    int axis;
    sl_eng_status_t s = onehot_params(n, in, &depth, &axis, k->err);
    if (s) return s;
    size_t es = sl_dtype_size(in[2]->dtype);
    const char *off = in[2]->data, *on = off + es;
    char *dst = out[0].data;
    int64_t total = sl_tensor_numel(&out[0]), ni = sl_tensor_numel(idx);
    for (int64_t i = 0; i < total; i++)
        copy_elem(dst + (size_t)i * es, off, es);
    int64_t inner = sl_la__prod(idx->dims, axis, idx->ndim);
    for (int64_t i = 0; i < ni; i++) {
        int64_t v;
        switch (idx->dtype) {
        case SL_DT_INT64:
            v = ((const int64_t *)idx->data)[i];
            break;
        case SL_DT_INT32:
            v = ((const int32_t *)idx->data)[i];
            break;
        case SL_DT_FLOAT: {
            float f = ((const float *)idx->data)[i];
            v = f == f && f > -9e18f && f < 9e18f ? (int64_t)f : INT64_MIN;
            break;
        }
        default: {
            double f = ((const double *)idx->data)[i];
            v = f == f && f > -9e18 && f < 9e18 ? (int64_t)f : INT64_MIN;
        }
        }
        /* Out-of-range indices give an all-off row, as the spec says. */
        if (v < 0 && v >= -depth) v += depth;
        if (v < 0 || v >= depth) continue;
        int64_t o = i / inner, r = i % inner;
        copy_elem(dst + (size_t)((o * depth + v) * inner + r) * es, on, es);
    }
    return SL_ENG_OK;
}

/* ---- NonZero ---- */

/* Counts (out == NULL) or lists the nonzero elements of x in row-major order: out receives
 * r x count coordinates. */
static int64_t nonzero_scan(const sl_tensor_t *x, int64_t *out, int64_t count) {
    int64_t total = sl_tensor_numel(x), found = 0;
    int r = x->ndim ? x->ndim : 1;
    int64_t one = 1;
    const int64_t *dims = x->ndim ? x->dims : &one;
#define SCAN(T)                                                                                    \
    do {                                                                                           \
        const T *p = x->data;                                                                      \
        if (!out) {                                                                                \
            for (int64_t i = 0; i < total; i++)                                                    \
                found += p[i] != 0;                                                                \
            break;                                                                                 \
        }                                                                                          \
        for (int64_t i = 0; i < total; i++) {                                                      \
            if (p[i] == 0) continue;                                                               \
            int64_t rem = i;                                                                       \
            for (int j = r - 1; j >= 0; j--) {                                                     \
                out[j * count + found] = rem % dims[j];                                            \
                rem /= dims[j];                                                                    \
            }                                                                                      \
            found++;                                                                               \
        }                                                                                          \
    } while (0)
    switch (x->dtype) {
    case SL_DT_FLOAT:
        SCAN(float);
        break;
    case SL_DT_DOUBLE:
        SCAN(double);
        break;
    case SL_DT_INT64:
    case SL_DT_UINT64:
        SCAN(int64_t);
        break;
    case SL_DT_INT32:
    case SL_DT_UINT32:
        SCAN(int32_t);
        break;
    case SL_DT_INT16:
    case SL_DT_UINT16:
        SCAN(int16_t);
        break;
    default:
        SCAN(uint8_t);
    }
#undef SCAN
    return found;
}

sl_eng_status_t sl_la__nonzero_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err);
    if (s) return s;
    if (!sl_la__movable(n, in[0], "input 'X'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    if (!in[0]->data && sl_tensor_numel(in[0]) > 0)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                             "the values of input 'X' must be known when shapes are computed");
    int64_t dims[2] = {in[0]->ndim ? in[0]->ndim : 1, nonzero_scan(in[0], NULL, 0)};
    return sl_la__set_out(n, &out[0], SL_DT_INT64, 2, dims, err);
}

sl_eng_status_t sl_la__nonzero_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    if (nonzero_scan(in[0], NULL, 0) != out[0].dims[1])
        return sl_node_error(n, k->err, SL_ENG_ESHAPE, "input changed after shapes were computed");
    nonzero_scan(in[0], out[0].data, out[0].dims[1]);
    return SL_ENG_OK;
}

/* ---- Trilu ---- */

static sl_eng_status_t trilu_k(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                               int64_t *kk, sl_eng_error_t *err) {
    *kk = 0;
    if (n_in > 1 && in[1]) {
        if ((in[1]->dtype != SL_DT_INT64) || !sl_la__scalar_i64(in[1], kk))
            return sl_node_error(n, err, SL_ENG_EINVAL, "input 'k' must be one int64 value");
    }
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__trilu_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 2, n_out, 1, 1, err);
    if (s) return s;
    if (!sl_la__movable(n, in[0], "input 'input'", err))
        return err ? err->code : SL_ENG_EUNSUPPORTED;
    if (in[0]->ndim < 2)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "input has %d dims, expected at least 2",
                             in[0]->ndim);
    int64_t kk;
    if ((s = trilu_k(n, in, n_in, &kk, err))) return s;
    return sl_la__set_out(n, &out[0], in[0]->dtype, in[0]->ndim, in[0]->dims, err);
}

sl_eng_status_t sl_la__trilu_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int64_t kk;
    sl_eng_status_t s = trilu_k(n, in, n_in, &kk, k->err);
    if (s) return s;
    bool upper = sl_attr_int(n, "upper", 1) != 0;
    size_t es = sl_dtype_size(x->dtype);
    int64_t R = x->dims[x->ndim - 2], C = x->dims[x->ndim - 1];
    int64_t mats = sl_la__prod(x->dims, 0, x->ndim - 2);
    /* Clamp k so that i + k cannot overflow; beyond +-(R + C) it changes nothing. */
    int64_t lim = R + C;
    kk = kk > lim ? lim : kk < -lim ? -lim : kk;
    if (out[0].data != x->data) memcpy(out[0].data, x->data, sl_tensor_nbytes(x));
    char *p = out[0].data;
    for (int64_t m = 0; m < mats; m++) {
        for (int64_t i = 0; i < R; i++) {
            char *row = p + (size_t)((m * R + i) * C) * es;
            int64_t a, b; /* zero columns [a, b) */
            if (upper) {
                a = 0;
                b = i + kk;
            } else {
                a = i + kk + 1;
                b = C;
            }
            a = a < 0 ? 0 : a > C ? C : a;
            b = b < 0 ? 0 : b > C ? C : b;
            if (b > a) memset(row + (size_t)a * es, 0, (size_t)(b - a) * es);
        }
    }
    return SL_ENG_OK;
}
