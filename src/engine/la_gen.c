/* Kernels of the shape table that generate data rather than move it: Constant (the kernel form,
 * for graphs whose Constant nodes were not folded at load), ConstantOfShape, Range and Pad.
 * Registered in sl_ops_shape (ops_shape.c); declared in la_ops.h. */
#include "engine/la_layout.h"
#include "engine/la_ops.h"

#include <math.h>
#include <string.h>

#define MAXD SL_MAX_DIMS

/* ---- Constant ---- */

/* The value a Constant node outputs, as a view of its attribute (owned by the model). */
static sl_eng_status_t constant_value(const sl_node_t *n, sl_tensor_t *v, sl_eng_error_t *err) {
    const sl_attr_t *a;
    memset(v, 0, sizeof *v);
    if ((a = sl_attr_get(n, "value")) && a->type == SL_ATTR_TENSOR && a->t) {
        *v = *a->t;
    } else if ((a = sl_attr_get(n, "value_float")) && a->type == SL_ATTR_FLOAT) {
        v->dtype = SL_DT_FLOAT;
        v->data = (void *)&a->f;
    } else if ((a = sl_attr_get(n, "value_floats")) && a->type == SL_ATTR_FLOATS) {
        v->dtype = SL_DT_FLOAT;
        v->ndim = 1;
        v->dims[0] = (int64_t)a->n;
        v->data = (void *)a->floats;
    } else if ((a = sl_attr_get(n, "value_int")) && a->type == SL_ATTR_INT) {
        v->dtype = SL_DT_INT64;
        v->data = (void *)&a->i;
    } else if ((a = sl_attr_get(n, "value_ints")) && a->type == SL_ATTR_INTS) {
        v->dtype = SL_DT_INT64;
        v->ndim = 1;
        v->dims[0] = (int64_t)a->n;
        v->data = (void *)a->ints;
    } else if (sl_attr_get(n, "sparse_value") || sl_attr_get(n, "value_string") ||
               sl_attr_get(n, "value_strings")) {
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                             "sparse and string constants are not supported");
    } else {
        return sl_node_error(n, err, SL_ENG_EINVAL, "has no value attribute");
    }
    if (!sl_la__movable(n, v, "the value", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__constant_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                      sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 0, 0, n_out, 1, 1, err);
    if (s) return s;
    sl_tensor_t v;
    if ((s = constant_value(n, &v, err))) return s;
    return sl_la__set_out(n, &out[0], v.dtype, v.ndim, v.dims, err);
}

sl_eng_status_t sl_la__constant_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    sl_tensor_t v;
    sl_eng_status_t s = constant_value(n, &v, k->err);
    if (s) return s;
    size_t bytes = sl_tensor_nbytes(&v);
    if (bytes) memcpy(out[0].data, v.data, bytes);
    return SL_ENG_OK;
}

/* ---- ConstantOfShape ---- */

static sl_eng_status_t cos_value(const sl_node_t *n, sl_tensor_t *v, sl_eng_error_t *err) {
    static const float zero = 0.0f;
    const sl_attr_t *a = sl_attr_get(n, "value");
    if (!a) {
        *v = (sl_tensor_t){.dtype = SL_DT_FLOAT, .ndim = 1, .dims = {1}, .data = (void *)&zero};
        return SL_ENG_OK;
    }
    if (a->type != SL_ATTR_TENSOR || !a->t)
        return sl_node_error(n, err, SL_ENG_EINVAL, "attribute 'value' must be a tensor");
    *v = *a->t;
    if (sl_tensor_numel(v) != 1)
        return sl_node_error(n, err, SL_ENG_EINVAL,
                             "attribute 'value' has %lld elements, expected 1",
                             (long long)sl_tensor_numel(v));
    if (!sl_la__movable(n, v, "attribute 'value'", err))
        return err ? err->code : SL_ENG_EUNSUPPORTED;
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__constant_of_shape_infer(const sl_node_t *n, const sl_tensor_t *const *in,
                                               int n_in, sl_tensor_t *out, int n_out,
                                               sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err);
    if (s) return s;
    sl_tensor_t v;
    if ((s = cos_value(n, &v, err))) return s;
    int64_t dims[MAXD];
    int cnt;
    if ((s = sl_la__read_ints(n, in[0], "input 'input'", MAXD, dims, &cnt, err))) return s;
    return sl_la__set_out(n, &out[0], v.dtype, cnt, dims, err);
}

sl_eng_status_t sl_la__constant_of_shape_run(const sl_node_t *n, const sl_tensor_t *const *in,
                                             int n_in, sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    sl_tensor_t v;
    sl_eng_status_t s = cos_value(n, &v, k->err);
    if (s) return s;
    sl_la__fill(out[0].data, v.data, sl_dtype_size(v.dtype), sl_tensor_numel(&out[0]));
    return SL_ENG_OK;
}

/* ---- Range ---- */

static sl_eng_status_t range_count(const sl_node_t *n, const sl_tensor_t *const *in, int64_t *count,
                                   sl_eng_error_t *err) {
    sl_dtype_t dt = in[0]->dtype;
    static const char *names[3] = {"start", "limit", "delta"};
    for (int i = 0; i < 3; i++) {
        if (in[i]->dtype != dt)
            return sl_node_error(n, err, SL_ENG_EINVAL, "input '%s' has dtype %s, 'start' has %s",
                                 names[i], sl_dtype_name(in[i]->dtype), sl_dtype_name(dt));
        if (sl_tensor_numel(in[i]) != 1 || in[i]->ndim > 1)
            return sl_node_error(n, err, SL_ENG_ESHAPE, "input '%s' must be a scalar", names[i]);
        if (!in[i]->data)
            return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                                 "the value of input '%s' must be known when shapes are computed",
                                 names[i]);
    }
    if (dt == SL_DT_FLOAT || dt == SL_DT_DOUBLE) {
        double s, l, d;
        sl_la__scalar_f64(in[0], &s);
        sl_la__scalar_f64(in[1], &l);
        sl_la__scalar_f64(in[2], &d);
        if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d))
            return sl_node_error(n, err, SL_ENG_EINVAL,
                                 "start, limit and delta must be finite and delta not 0");
        double c = ceil((l - s) / d);
        if (c > 4e18) return sl_node_error(n, err, SL_ENG_ELIMIT, "the output is too long");
        *count = c > 0 ? (int64_t)c : 0;
        return SL_ENG_OK;
    }
    if (dt != SL_DT_INT64 && dt != SL_DT_INT32 && dt != SL_DT_INT16)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED, "dtype %s is not supported",
                             sl_dtype_name(dt));
    int64_t s, l, d;
    sl_la__scalar_i64(in[0], &s);
    sl_la__scalar_i64(in[1], &l);
    sl_la__scalar_i64(in[2], &d);
    if (d == 0) return sl_node_error(n, err, SL_ENG_EINVAL, "delta is 0");
    __int128 diff = (__int128)l - s, dd = d;
    __int128 c = diff / dd + ((diff % dd) != 0 && ((diff > 0) == (dd > 0)));
    if (c > ((__int128)1 << 62))
        return sl_node_error(n, err, SL_ENG_ELIMIT, "the output is too long");
    *count = c > 0 ? (int64_t)c : 0;
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__range_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 3, 3, n_out, 1, 1, err);
    if (s) return s;
    int64_t c;
    if ((s = range_count(n, in, &c, err))) return s;
    return sl_la__set_out(n, &out[0], in[0]->dtype, 1, &c, err);
}

sl_eng_status_t sl_la__range_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    int64_t c = out[0].dims[0];
#define RANGE(T)                                                                                   \
    do {                                                                                           \
        T s = *(const T *)in[0]->data, d = *(const T *)in[2]->data;                                \
        T *o = out[0].data;                                                                        \
        for (int64_t i = 0; i < c; i++)                                                            \
            o[i] = (T)(s + (T)i * d);                                                              \
    } while (0)
    switch (in[0]->dtype) {
    case SL_DT_FLOAT:
        RANGE(float);
        break;
    case SL_DT_DOUBLE:
        RANGE(double);
        break;
    case SL_DT_INT64:
        RANGE(int64_t);
        break;
    case SL_DT_INT32:
        RANGE(int32_t);
        break;
    case SL_DT_INT16:
        RANGE(int16_t);
        break;
    default:
        return sl_node_error(n, k->err, SL_ENG_EUNSUPPORTED, "dtype %s is not supported",
                             sl_dtype_name(in[0]->dtype));
    }
#undef RANGE
    return SL_ENG_OK;
}

/* ---- Pad ---- */

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

typedef struct pad_plan {
    enum pad_mode mode;
    int64_t pads[2 * MAXD];
    unsigned char value[8]; /* the constant, in the data's dtype */
} pad_plan_t;

/* Writes v converted to dtype dt into out (8 bytes at most). */
static void from_double(sl_dtype_t dt, double v, unsigned char *out) {
    switch (dt) {
    case SL_DT_FLOAT: {
        float f = (float)v;
        memcpy(out, &f, 4);
        break;
    }
    case SL_DT_DOUBLE:
        memcpy(out, &v, 8);
        break;
#define INT_CASE(E, T)                                                                             \
    case E: {                                                                                      \
        T t = (T)v;                                                                                \
        memcpy(out, &t, sizeof t);                                                                 \
        break;                                                                                     \
    }
        INT_CASE(SL_DT_INT64, int64_t)
        INT_CASE(SL_DT_INT32, int32_t)
        INT_CASE(SL_DT_INT16, int16_t)
        INT_CASE(SL_DT_INT8, int8_t)
        INT_CASE(SL_DT_UINT64, uint64_t)
        INT_CASE(SL_DT_UINT32, uint32_t)
        INT_CASE(SL_DT_UINT16, uint16_t)
        INT_CASE(SL_DT_UINT8, uint8_t)
#undef INT_CASE
    case SL_DT_BOOL:
        out[0] = v != 0;
        break;
    default:
        break;
    }
}

static sl_eng_status_t pad_plan(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                pad_plan_t *p, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    int r = x->ndim, cnt;
    sl_eng_status_t s;
    const char *mode = sl_attr_string(n, "mode", "constant");
    if (strcmp(mode, "constant") == 0)
        p->mode = PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0)
        p->mode = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0)
        p->mode = PAD_EDGE;
    else
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                             "mode '%s' is not supported (constant, reflect or edge)", mode);
    memset(p->value, 0, sizeof p->value);
    if (n->opset < 11) {
        size_t c;
        const int64_t *v = sl_attr_ints(n, "pads", &c);
        if (!v) return sl_node_error(n, err, SL_ENG_EINVAL, "attribute 'pads' is required");
        if (c > 2 * MAXD)
            return sl_node_error(n, err, SL_ENG_EINVAL, "attribute 'pads' has %zu values", c);
        memcpy(p->pads, v, c * sizeof *v);
        cnt = (int)c;
        from_double(x->dtype, sl_attr_float(n, "value", 0.0f), p->value);
    } else {
        if ((s = sl_la__read_ints(n, in[1], "input 'pads'", 2 * MAXD, p->pads, &cnt, err)))
            return s;
        if (n_in > 2 && in[2]) {
            if (in[2]->dtype != x->dtype || sl_tensor_numel(in[2]) != 1 || !in[2]->data)
                return sl_node_error(n, err, SL_ENG_EINVAL,
                                     "input 'constant_value' must be one %s value",
                                     sl_dtype_name(x->dtype));
            memcpy(p->value, in[2]->data, sl_dtype_size(x->dtype));
        }
    }
    if (cnt != 2 * r)
        return sl_node_error(n, err, SL_ENG_EINVAL, "pads has %d values, expected %d (2 per dim)",
                             cnt, 2 * r);
    for (int i = 0; i < r; i++) {
        int64_t b = p->pads[i], e = p->pads[i + r];
        if (p->mode != PAD_CONSTANT && (b < 0 || e < 0))
            return sl_node_error(n, err, SL_ENG_EINVAL, "negative pads need mode 'constant'");
        if (p->mode != PAD_CONSTANT && x->dims[i] == 0 && (b || e))
            return sl_node_error(n, err, SL_ENG_ESHAPE, "cannot %s-pad dim %d of size 0", mode, i);
        const int64_t lim = (int64_t)1 << 40; /* keeps d + b + e far from overflow */
        if (b < -lim || b > lim || e < -lim || e > lim)
            return sl_node_error(n, err, SL_ENG_ELIMIT, "pads for dim %d are too large", i);
    }
    return SL_ENG_OK;
}

sl_eng_status_t sl_la__pad_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = n->opset < 11 ? sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err)
                                      : sl_la__arity(n, in, n_in, 2, 3, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 'data'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    pad_plan_t p;
    if ((s = pad_plan(n, in, n_in, &p, err))) return s;
    int64_t dims[MAXD];
    for (int i = 0; i < x->ndim; i++) {
        dims[i] = x->dims[i] + p.pads[i] + p.pads[i + x->ndim];
        if (dims[i] < 0)
            return sl_node_error(
                n, err, SL_ENG_ESHAPE, "pads %lld and %lld make dim %d of size %lld negative",
                (long long)p.pads[i], (long long)p.pads[i + x->ndim], i, (long long)x->dims[i]);
    }
    return sl_la__set_out(n, &out[0], x->dtype, x->ndim, dims, err);
}

/* Where output index o (before padding removed: i = o - pad) reads in a dim of size d; -1 for
 * the constant. */
static int64_t pad_map(enum pad_mode m, int64_t i, int64_t d) {
    if (i >= 0 && i < d) return i;
    switch (m) {
    case PAD_CONSTANT:
        return -1;
    case PAD_EDGE:
        return i < 0 ? 0 : d - 1;
    case PAD_REFLECT: {
        if (d == 1) return 0;
        int64_t period = 2 * (d - 1), q = i % period;
        if (q < 0) q += period;
        return q < d ? q : period - q;
    }
    }
    return -1;
}

sl_eng_status_t sl_la__pad_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                               sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    sl_tensor_t *o = &out[0];
    pad_plan_t p;
    sl_eng_status_t s = pad_plan(n, in, n_in, &p, k->err);
    if (s) return s;
    size_t es = sl_dtype_size(x->dtype);
    int r = x->ndim;
    if (sl_tensor_numel(o) == 0) return SL_ENG_OK;
    if (r == 0) {
        memcpy(o->data, x->data, es);
        return SL_ENG_OK;
    }
    int64_t st[MAXD], cnt[MAXD] = {0};
    sl_la__strides(r, x->dims, st);
    int64_t d = x->dims[r - 1], pb = p.pads[r - 1], ow = o->dims[r - 1];
    /* The output columns [lo, hi) read input columns lo - pb ... contiguously. */
    int64_t lo = pb > 0 ? pb : 0, hi = pb + d < ow ? pb + d : ow;
    int64_t rows = sl_la__prod(o->dims, 0, r - 1);
    char *dst = o->data;
    const char *base = x->data;
    for (int64_t it = 0; it < rows; it++, dst += (size_t)ow * es) {
        int64_t off = 0;
        bool constant_row = false;
        for (int j = 0; j < r - 1; j++) {
            int64_t src = pad_map(p.mode, cnt[j] - p.pads[j], x->dims[j]);
            if (src < 0) {
                constant_row = true;
                break;
            }
            off += src * st[j];
        }
        if (constant_row || d == 0) {
            sl_la__fill(dst, p.value, es, ow);
        } else {
            const char *row = base + off * (int64_t)es;
            for (int64_t c = 0; c < lo && c < ow; c++) {
                int64_t src = pad_map(p.mode, c - pb, d);
                memcpy(dst + (size_t)c * es,
                       src < 0 ? (const char *)p.value : row + src * (int64_t)es, es);
            }
            if (hi > lo)
                memcpy(dst + (size_t)lo * es, row + (lo - pb) * (int64_t)es,
                       (size_t)(hi - lo) * es);
            for (int64_t c = hi > lo ? hi : lo; c < ow; c++) {
                int64_t src = pad_map(p.mode, c - pb, d);
                memcpy(dst + (size_t)c * es,
                       src < 0 ? (const char *)p.value : row + src * (int64_t)es, es);
            }
        }
        for (int j = r - 2; j >= 0; j--) {
            if (++cnt[j] < o->dims[j]) break;
            cnt[j] = 0;
        }
    }
    return SL_ENG_OK;
}
