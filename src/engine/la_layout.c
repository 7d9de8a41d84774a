/* The strided copy behind the engine's data-movement kernels (Transpose, Slice, Expand,
 * DepthToSpace, ...) and the small checks the matrix and shape kernels share. Every kernel that
 * only moves bytes reduces its work to one view (dims + element strides) and calls
 * sl_la__copy_strided, so the fast paths live in one place. */
#include "engine/la_layout.h"

#include <stdio.h>
#include <string.h>

/* Side of the square tiles of the blocked transpose: 32x32 elements of 8 bytes are 8 KiB of
 * source and 8 KiB of destination, which stay in L1. */
#define TILE 32

void sl_la__strides(int nd, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}

int64_t sl_la__prod(const int64_t *dims, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= dims[i];
    return p;
}

const char *sl_la__dims_str(int nd, const int64_t *dims, char *buf, size_t len) {
    size_t n = 0;
    n += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < nd && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (n < len) snprintf(buf + n, len - n, "]");
    return buf;
}

/* ---- the strided copy ---- */

/* One row of n elements read with stride s (elements), one switch per row, not per element. */
static void copy_row(char *restrict dst, const char *restrict src, size_t esize, int64_t n,
                     int64_t s) {
#define ROW(T)                                                                                     \
    do {                                                                                           \
        T *restrict d = (T *)dst;                                                                  \
        const T *restrict p = (const T *)src;                                                      \
        for (int64_t i = 0; i < n; i++)                                                            \
            d[i] = p[i * s];                                                                       \
    } while (0)
    if (s == 1) {
        memcpy(dst, src, (size_t)n * esize);
        return;
    }
    switch (esize) {
    case 1:
        ROW(uint8_t);
        break;
    case 2:
        ROW(uint16_t);
        break;
    case 4:
        ROW(uint32_t);
        break;
    case 8:
        ROW(uint64_t);
        break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (size_t)i * esize, src + i * s * (int64_t)esize, esize);
    }
#undef ROW
}

/* dst[r][c] = src[r + c * cs] for an R x C block, in TILE x TILE tiles. */
static void transpose_block(char *restrict dst, const char *restrict src, size_t esize, int64_t R,
                            int64_t C, int64_t cs) {
#define TR(T)                                                                                      \
    do {                                                                                           \
        T *restrict d = (T *)dst;                                                                  \
        const T *restrict p = (const T *)src;                                                      \
        for (int64_t r0 = 0; r0 < R; r0 += TILE) {                                                 \
            int64_t r1 = r0 + TILE < R ? r0 + TILE : R;                                            \
            for (int64_t c0 = 0; c0 < C; c0 += TILE) {                                             \
                int64_t c1 = c0 + TILE < C ? c0 + TILE : C;                                        \
                for (int64_t r = r0; r < r1; r++)                                                  \
                    for (int64_t c = c0; c < c1; c++)                                              \
                        d[r * C + c] = p[r + c * cs];                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    switch (esize) {
    case 1:
        TR(uint8_t);
        break;
    case 2:
        TR(uint16_t);
        break;
    case 4:
        TR(uint32_t);
        break;
    case 8:
        TR(uint64_t);
        break;
    default:
        for (int64_t r = 0; r < R; r++)
            copy_row(dst + (size_t)(r * C) * esize, src + r * (int64_t)esize, esize, C, cs);
    }
#undef TR
}

void sl_la__fill(void *dst_, const void *val, size_t esize, int64_t n) {
    char *dst = dst_;
    if (n <= 0) return;
    memcpy(dst, val, esize);
    /* Doubling memcpy: log2(n) calls whatever the element size. */
    size_t done = esize, total = (size_t)n * esize;
    while (done < total) {
        size_t c = done < total - done ? done : total - done;
        memcpy(dst + done, dst, c);
        done += c;
    }
}

void sl_la__copy_strided(void *dst, const void *src, size_t esize, int nd, const int64_t *dims,
                         const int64_t *strides) {
    int64_t d[SL_MAX_DIMS], s[SL_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < nd; i++) {
        if (dims[i] == 0) return;
        if (dims[i] == 1) continue;
        /* Merge with the previous dim when together they are one longer run of one stride. */
        if (m > 0 && s[m - 1] == strides[i] * dims[i]) {
            d[m - 1] *= dims[i];
            s[m - 1] = strides[i];
            continue;
        }
        d[m] = dims[i];
        s[m] = strides[i];
        m++;
    }
    char *out = dst;
    const char *in = src;
    if (m == 0) {
        memcpy(out, in, esize);
        return;
    }
    /* Each case copies "blocks" (the innermost one or two dims) for every index of the outer
     * dims, walking the outer dims with counters. */
    int outer;
    int64_t block;
    enum { ROWS, FILL, TRANSPOSE } kind;
    if (s[m - 1] == 0) {
        kind = FILL;
        outer = m - 1;
        block = d[m - 1];
    } else if (m >= 2 && s[m - 2] == 1 && s[m - 1] != 1) {
        kind = TRANSPOSE;
        outer = m - 2;
        block = d[m - 2] * d[m - 1];
    } else {
        kind = ROWS;
        outer = m - 1;
        block = d[m - 1];
    }
    int64_t cnt[SL_MAX_DIMS] = {0}, off = 0;
    int64_t total = sl_la__prod(d, 0, outer);
    size_t block_bytes = (size_t)block * esize;
    for (int64_t it = 0; it < total; it++) {
        const char *p = in + off * (int64_t)esize;
        char *q = out + (size_t)it * block_bytes;
        switch (kind) {
        case ROWS:
            copy_row(q, p, esize, d[m - 1], s[m - 1]);
            break;
        case FILL:
            sl_la__fill(q, p, esize, d[m - 1]);
            break;
        case TRANSPOSE:
            transpose_block(q, p, esize, d[m - 2], d[m - 1], s[m - 1]);
            break;
        }
        for (int j = outer - 1; j >= 0; j--) {
            off += s[j];
            if (++cnt[j] < d[j]) break;
            off -= s[j] * d[j];
            cnt[j] = 0;
        }
    }
}

/* ---- shared checks ---- */

size_t sl_la__movable(const sl_node_t *n, const sl_tensor_t *t, const char *what,
                      sl_eng_error_t *err) {
    size_t es = sl_dtype_size(t->dtype);
    if (es == 0 || t->dtype == SL_DT_FLOAT16) {
        sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                      "%s has dtype %s, which the engine does not support", what,
                      sl_dtype_name(t->dtype));
        return 0;
    }
    return es;
}

sl_eng_status_t sl_la__read_ints(const sl_node_t *n, const sl_tensor_t *t, const char *what,
                                 int64_t max, int64_t *vals, int *count, sl_eng_error_t *err) {
    if (t->dtype != SL_DT_INT64 && t->dtype != SL_DT_INT32)
        return sl_node_error(n, err, SL_ENG_EINVAL, "%s has dtype %s, expected int64", what,
                             sl_dtype_name(t->dtype));
    if (t->ndim > 1)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "%s has %d dims, expected 1", what, t->ndim);
    int64_t cnt = sl_tensor_numel(t);
    if (cnt > max)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "%s has %lld values, at most %lld allowed",
                             what, (long long)cnt, (long long)max);
    if (cnt > 0 && !t->data)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                             "the values of %s must be known when shapes are computed", what);
    for (int64_t i = 0; i < cnt; i++)
        vals[i] =
            t->dtype == SL_DT_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    *count = (int)cnt;
    return SL_ENG_OK;
}

bool sl_la__scalar_f64(const sl_tensor_t *t, double *out) {
    if (sl_tensor_numel(t) != 1 || !t->data) return false;
    switch (t->dtype) {
    case SL_DT_FLOAT:
        *out = *(const float *)t->data;
        return true;
    case SL_DT_DOUBLE:
        *out = *(const double *)t->data;
        return true;
    case SL_DT_INT64:
        *out = (double)*(const int64_t *)t->data;
        return true;
    case SL_DT_INT32:
        *out = *(const int32_t *)t->data;
        return true;
    case SL_DT_INT16:
        *out = *(const int16_t *)t->data;
        return true;
    case SL_DT_INT8:
        *out = *(const int8_t *)t->data;
        return true;
    case SL_DT_UINT8:
    case SL_DT_BOOL:
        *out = *(const uint8_t *)t->data;
        return true;
    case SL_DT_UINT16:
        *out = *(const uint16_t *)t->data;
        return true;
    case SL_DT_UINT32:
        *out = *(const uint32_t *)t->data;
        return true;
    case SL_DT_UINT64:
        *out = (double)*(const uint64_t *)t->data;
        return true;
    default:
        return false;
    }
}

bool sl_la__scalar_i64(const sl_tensor_t *t, int64_t *out) {
    if (sl_tensor_numel(t) != 1 || !t->data) return false;
    switch (t->dtype) {
    case SL_DT_INT64:
        *out = *(const int64_t *)t->data;
        return true;
    case SL_DT_INT32:
        *out = *(const int32_t *)t->data;
        return true;
    case SL_DT_UINT64: {
        uint64_t v = *(const uint64_t *)t->data;
        *out = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
        return true;
    }
    default: {
        double v;
        if (!sl_la__scalar_f64(t, &v) || v != v) return false;
        /* Float depths and counts truncate toward zero, like a C cast, clamped to int64. */
        *out = v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v;
        return true;
    }
    }
}

sl_eng_status_t sl_la__check_dims(const sl_node_t *n, int nd, const int64_t *dims, size_t esize,
                                  sl_eng_error_t *err) {
    char buf[160];
    if (nd > SL_MAX_DIMS)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                             "output has %d dims, at most %d supported", nd, SL_MAX_DIMS);
    int64_t p = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 0)
            return sl_node_error(n, err, SL_ENG_ESHAPE, "output shape %s has a negative dim",
                                 sl_la__dims_str(nd, dims, buf, sizeof buf));
        if (__builtin_mul_overflow(p, dims[i], &p))
            return sl_node_error(n, err, SL_ENG_ELIMIT, "output shape %s has too many elements",
                                 sl_la__dims_str(nd, dims, buf, sizeof buf));
    }
    size_t bytes;
    if (__builtin_mul_overflow((size_t)p, esize ? esize : 1, &bytes) || bytes > (size_t)INT64_MAX)
        return sl_node_error(n, err, SL_ENG_ELIMIT, "output shape %s has too many bytes",
                             sl_la__dims_str(nd, dims, buf, sizeof buf));
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__arity(const sl_node_t *n, const sl_tensor_t *const *in, int n_in, int min_in,
                             int max_in, int n_out, int min_out, int max_out, sl_eng_error_t *err) {
    if (n_in < min_in || n_in > max_in) {
        if (min_in == max_in)
            return sl_node_error(n, err, SL_ENG_EGRAPH, "has %d inputs, expected %d", n_in, min_in);
        return sl_node_error(n, err, SL_ENG_EGRAPH, "has %d inputs, expected %d to %d", n_in,
                             min_in, max_in);
    }
    for (int i = 0; i < min_in; i++) {
        if (!in[i]) return sl_node_error(n, err, SL_ENG_EGRAPH, "required input %d is missing", i);
    }
    if (n_out < min_out || n_out > max_out)
        return sl_node_error(n, err, SL_ENG_EGRAPH, "has %d outputs, expected %d to %d", n_out,
                             min_out, max_out);
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__copy_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    size_t bytes = sl_tensor_nbytes(in[0]);
    if (bytes && out[0].data != in[0]->data) memcpy(out[0].data, in[0]->data, bytes);
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__set_out(const sl_node_t *n, sl_tensor_t *o, sl_dtype_t dt, int nd,
                               const int64_t *dims, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__check_dims(n, nd, dims, sl_dtype_size(dt), err);
    if (s) return s;
    o->dtype = dt;
    o->ndim = nd;
    for (int i = 0; i < nd; i++)
        o->dims[i] = dims[i];
    return SL_ENG_OK;
}
