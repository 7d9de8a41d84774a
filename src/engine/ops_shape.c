/* CPU kernels: the shape and data-movement operators (Reshape, Transpose, Concat, Slice, ...).
 * Ops that only relabel dims copy bytes; ops that move elements describe a strided view and hand
 * it to sl_la__copy_strided (la_layout.c). Generators (Constant, Range, Pad, ...) live in
 * la_gen.c and indexing ops (Gather, OneHot, ...) in la_index.c; this file holds the table. */
#include "engine/la_layout.h"
#include "engine/la_ops.h"

#include <stdlib.h>
#include <string.h>

#define MAXD SL_MAX_DIMS

/* ---- Reshape ---- */

static sl_eng_status_t reshape_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    bool from_attr = n->opset < 5;
    sl_eng_status_t s =
        sl_la__arity(n, in, n_in, from_attr ? 1 : 2, from_attr ? 1 : 2, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 'data'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t shape[MAXD];
    int cnt;
    if (from_attr) {
        size_t c;
        const int64_t *v = sl_attr_ints(n, "shape", &c);
        if (c > MAXD)
            return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                                 "attribute 'shape' has %zu dims, at most %d supported", c, MAXD);
        cnt = (int)c;
        if (c) memcpy(shape, v, c * sizeof *v);
    } else {
        s = sl_la__read_ints(n, in[1], "input 'shape'", MAXD, shape, &cnt, err);
        if (s) return s;
    }
    bool allowzero = n->opset >= 14 && sl_attr_int(n, "allowzero", 0) != 0;
    int minus1 = -1;
    bool has_zero = false;
    int64_t known = 1;
    for (int i = 0; i < cnt; i++) {
        if (shape[i] == -1) {
            if (minus1 >= 0)
                return sl_node_error(n, err, SL_ENG_ESHAPE,
                                     "shape has -1 at indexes %d and %d, at most one allowed",
                                     minus1, i);
            minus1 = i;
            continue;
        }
        if (shape[i] < -1)
            return sl_node_error(n, err, SL_ENG_ESHAPE, "shape has invalid dim %lld at index %d",
                                 (long long)shape[i], i);
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->ndim)
                return sl_node_error(n, err, SL_ENG_ESHAPE,
                                     "shape has 0 (copy the input dim) at index %d, but the input "
                                     "has only %d dims",
                                     i, x->ndim);
            shape[i] = x->dims[i];
        }
        if (shape[i] == 0) has_zero = true;
        if (__builtin_mul_overflow(known, shape[i], &known))
            return sl_node_error(n, err, SL_ENG_ELIMIT, "shape has too many elements");
    }
    int64_t total = sl_tensor_numel(x);
    char b1[160], b2[160];
    if (minus1 >= 0) {
        if (allowzero && has_zero)
            return sl_node_error(n, err, SL_ENG_ESHAPE,
                                 "shape has both 0 and -1, which allowzero=1 forbids");
        if (known == 0 || total % known != 0)
            return sl_node_error(n, err, SL_ENG_ESHAPE,
                                 "cannot infer the -1 in shape %s from input shape %s (%lld "
                                 "elements)",
                                 sl_la__dims_str(cnt, shape, b1, sizeof b1),
                                 sl_la__dims_str(x->ndim, x->dims, b2, sizeof b2),
                                 (long long)total);
        shape[minus1] = total / known;
    } else if (known != total) {
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "shape %s has %lld elements, input shape %s has %lld",
                             sl_la__dims_str(cnt, shape, b1, sizeof b1), (long long)known,
                             sl_la__dims_str(x->ndim, x->dims, b2, sizeof b2), (long long)total);
    }
    return sl_la__set_out(n, &out[0], x->dtype, cnt, shape, err);
}

/* ---- Flatten ---- */

static sl_eng_status_t flatten_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 0", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t axis = sl_attr_int(n, "axis", 1);
    if (axis < 0) axis += x->ndim;
    if (axis < 0 || axis > x->ndim)
        return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                             (long long)sl_attr_int(n, "axis", 1), x->ndim);
    int64_t dims[2] = {sl_la__prod(x->dims, 0, (int)axis),
                       sl_la__prod(x->dims, (int)axis, x->ndim)};
    return sl_la__set_out(n, &out[0], x->dtype, 2, dims, err);
}

/* ---- Squeeze / Unsqueeze ---- */

/* The axes of Squeeze/Unsqueeze: the attribute before opset 13, the optional input 1 from 13. */
static sl_eng_status_t read_axes(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 int64_t *axes, int *cnt, bool *given, sl_eng_error_t *err) {
    *cnt = 0;
    *given = false;
    if (n->opset >= 13) {
        if (n_in < 2 || !in[1]) return SL_ENG_OK;
        *given = true;
        return sl_la__read_ints(n, in[1], "input 'axes'", MAXD, axes, cnt, err);
    }
    size_t c;
    const int64_t *v = sl_attr_ints(n, "axes", &c);
    if (!v) return SL_ENG_OK;
    if (c > MAXD) return sl_node_error(n, err, SL_ENG_EINVAL, "attribute 'axes' has %zu values", c);
    *given = true;
    *cnt = (int)c;
    memcpy(axes, v, c * sizeof *v);
    return SL_ENG_OK;
}

static sl_eng_status_t squeeze_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, n->opset >= 13 ? 2 : 1, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 'data'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t axes[MAXD];
    int cnt;
    bool given;
    if ((s = read_axes(n, in, n_in, axes, &cnt, &given, err))) return s;
    bool drop[MAXD] = {false};
    if (!given) {
        for (int i = 0; i < x->ndim; i++)
            drop[i] = x->dims[i] == 1;
    }
    for (int i = 0; i < cnt; i++) {
        int a;
        if (!sl_axis_normalize(axes[i], x->ndim, &a) || x->ndim == 0)
            return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                                 (long long)axes[i], x->ndim);
        if (drop[a])
            return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is given twice",
                                 (long long)axes[i]);
        if (x->dims[a] != 1)
            return sl_node_error(n, err, SL_ENG_ESHAPE,
                                 "cannot squeeze axis %lld: its size is %lld, expected 1",
                                 (long long)axes[i], (long long)x->dims[a]);
        drop[a] = true;
    }
    int64_t dims[MAXD];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!drop[i]) dims[nd++] = x->dims[i];
    }
    return sl_la__set_out(n, &out[0], x->dtype, nd, dims, err);
}

static sl_eng_status_t unsqueeze_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                       sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s =
        sl_la__arity(n, in, n_in, n->opset >= 13 ? 2 : 1, n->opset >= 13 ? 2 : 1, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 'data'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t axes[MAXD];
    int cnt;
    bool given;
    if ((s = read_axes(n, in, n_in, axes, &cnt, &given, err))) return s;
    if (!given) return sl_node_error(n, err, SL_ENG_EINVAL, "axes are required");
    int nd = x->ndim + cnt;
    if (nd > MAXD)
        return sl_node_error(n, err, SL_ENG_EUNSUPPORTED,
                             "output has %d dims, at most %d supported", nd, MAXD);
    bool ins[MAXD] = {false};
    for (int i = 0; i < cnt; i++) {
        int a;
        if (!sl_axis_normalize(axes[i], nd, &a))
            return sl_node_error(n, err, SL_ENG_EINVAL,
                                 "axis %lld is out of range for an output of %d dims",
                                 (long long)axes[i], nd);
        if (ins[a])
            return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is given twice",
                                 (long long)axes[i]);
        ins[a] = true;
    }
    int64_t dims[MAXD];
    for (int i = 0, j = 0; i < nd; i++)
        dims[i] = ins[i] ? 1 : x->dims[j++];
    return sl_la__set_out(n, &out[0], x->dtype, nd, dims, err);
}

/* ---- Transpose ---- */

static sl_eng_status_t transpose_perm(const sl_node_t *n, int nd, int *perm, sl_eng_error_t *err) {
    size_t c;
    const int64_t *p = sl_attr_ints(n, "perm", &c);
    if (!p) {
        for (int i = 0; i < nd; i++)
            perm[i] = nd - 1 - i;
        return SL_ENG_OK;
    }
    if ((int)c != nd || c > MAXD)
        return sl_node_error(n, err, SL_ENG_EINVAL, "perm has %zu values, the input has %d dims", c,
                             nd);
    bool seen[MAXD] = {false};
    for (int i = 0; i < nd; i++) {
        if (p[i] < 0 || p[i] >= nd || seen[p[i]])
            return sl_node_error(n, err, SL_ENG_EINVAL,
                                 "perm is not a permutation of 0..%d (value %lld at index %d)",
                                 nd - 1, (long long)p[i], i);
        seen[p[i]] = true;
        perm[i] = (int)p[i];
    }
    return SL_ENG_OK;
}

static sl_eng_status_t transpose_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                       sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 'data'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int perm[MAXD];
    if ((s = transpose_perm(n, x->ndim, perm, err))) return s;
    int64_t dims[MAXD];
    for (int i = 0; i < x->ndim; i++)
        dims[i] = x->dims[perm[i]];
    return sl_la__set_out(n, &out[0], x->dtype, x->ndim, dims, err);
}

static sl_eng_status_t transpose_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int perm[MAXD];
    sl_eng_status_t s = transpose_perm(n, x->ndim, perm, k->err);
    if (s) return s;
    int64_t st[MAXD], vs[MAXD];
    sl_la__strides(x->ndim, x->dims, st);
    for (int i = 0; i < x->ndim; i++)
        vs[i] = st[perm[i]];
    sl_la__copy_strided(out[0].data, x->data, sl_dtype_size(x->dtype), x->ndim, out[0].dims, vs);
    return SL_ENG_OK;
}

/* ---- Concat ---- */

static sl_eng_status_t concat_axis(const sl_node_t *n, const sl_tensor_t *x, int *axis,
                                   sl_eng_error_t *err) {
    const sl_attr_t *a = sl_attr_get(n, "axis");
    if (!a && n->opset >= 4)
        return sl_node_error(n, err, SL_ENG_EINVAL, "attribute 'axis' is required");
    int64_t v = a ? a->i : 1;
    if (x->ndim == 0 || !sl_axis_normalize(v, x->ndim, axis))
        return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                             (long long)v, x->ndim);
    return SL_ENG_OK;
}

static sl_eng_status_t concat_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, n_in > 0 ? n_in : 1, 1 << 20, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 0", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int axis;
    if ((s = concat_axis(n, x, &axis, err))) return s;
    int64_t dims[MAXD];
    memcpy(dims, x->dims, sizeof dims);
    for (int i = 1; i < n_in; i++) {
        const sl_tensor_t *y = in[i];
        if (y->dtype != x->dtype)
            return sl_node_error(n, err, SL_ENG_EINVAL, "input %d has dtype %s, input 0 has %s", i,
                                 sl_dtype_name(y->dtype), sl_dtype_name(x->dtype));
        if (y->ndim != x->ndim)
            return sl_node_error(n, err, SL_ENG_ESHAPE, "input %d has %d dims, input 0 has %d", i,
                                 y->ndim, x->ndim);
        for (int d = 0; d < x->ndim; d++) {
            if (d != axis && y->dims[d] != x->dims[d])
                return sl_node_error(n, err, SL_ENG_ESHAPE,
                                     "input %d has size %lld in dim %d, input 0 has %lld", i,
                                     (long long)y->dims[d], d, (long long)x->dims[d]);
        }
        if (__builtin_add_overflow(dims[axis], y->dims[axis], &dims[axis]))
            return sl_node_error(n, err, SL_ENG_ELIMIT, "output dim %d overflows", axis);
    }
    return sl_la__set_out(n, &out[0], x->dtype, x->ndim, dims, err);
}

static sl_eng_status_t concat_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    int axis;
    sl_eng_status_t s = concat_axis(n, in[0], &axis, k->err);
    if (s) return s;
    size_t es = sl_dtype_size(in[0]->dtype);
    int64_t outer = sl_la__prod(out[0].dims, 0, axis);
    size_t inner = (size_t)sl_la__prod(out[0].dims, axis + 1, out[0].ndim) * es;
    char *dst = out[0].data;
    for (int64_t o = 0; o < outer; o++) {
        for (int i = 0; i < n_in; i++) {
            size_t chunk = (size_t)in[i]->dims[axis] * inner;
            if (chunk) memcpy(dst, (const char *)in[i]->data + (size_t)o * chunk, chunk);
            dst += chunk;
        }
    }
    return SL_ENG_OK;
}

/* ---- Split ---- */

static sl_eng_status_t split_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    bool input_ok = n->opset >= 13 || n->opset < 2;
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, input_ok ? 2 : 1, n_out, 1, 1 << 16, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 0", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t av = sl_attr_int(n, "axis", 0);
    int axis;
    if (x->ndim == 0 || !sl_axis_normalize(av, x->ndim, &axis))
        return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                             (long long)av, x->ndim);
    int64_t dim = x->dims[axis];
    const int64_t *split = NULL;
    int64_t *owned = NULL, stack_split[64];
    int cnt = 0;
    if (input_ok && n_in >= 2 && in[1]) {
        /* The output count is only bounded by the graph: up to 64 on the stack (no allocation
         * per run in the common case), more on the heap. */
        int64_t *buf = n_out <= 64 ? stack_split : (owned = malloc(sizeof *owned * (size_t)n_out));
        if (!buf) return sl_node_error(n, err, SL_ENG_ENOMEM, "out of memory");
        s = sl_la__read_ints(n, in[1], "input 'split'", n_out, buf, &cnt, err);
        if (s) {
            free(owned);
            return s;
        }
        split = buf;
        if (cnt == 0) split = NULL;
    } else {
        size_t c;
        split = sl_attr_ints(n, "split", &c);
        cnt = (int)c;
    }
    if (split && cnt != n_out) {
        free(owned);
        return sl_node_error(n, err, SL_ENG_EINVAL, "split has %d values for %d outputs", cnt,
                             n_out);
    }
    if (!split && dim % n_out != 0)
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "dim %d of size %lld cannot be split into %d equal parts", axis,
                             (long long)dim, n_out);
    int64_t sum = 0;
    for (int i = 0; i < n_out; i++) {
        int64_t part = split ? split[i] : dim / n_out;
        if (part < 0 || __builtin_add_overflow(sum, part, &sum)) {
            free(owned);
            return sl_node_error(n, err, SL_ENG_EINVAL, "split value %lld at index %d is invalid",
                                 (long long)part, i);
        }
        out[i].dtype = x->dtype;
        out[i].ndim = x->ndim;
        memcpy(out[i].dims, x->dims, sizeof out[i].dims);
        out[i].dims[axis] = part;
    }
    free(owned);
    if (sum != dim)
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "split values sum to %lld, dim %d of the input has size %lld",
                             (long long)sum, axis, (long long)dim);
    return SL_ENG_OK;
}

static sl_eng_status_t split_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int axis;
    sl_axis_normalize(sl_attr_int(n, "axis", 0), x->ndim, &axis);
    size_t es = sl_dtype_size(x->dtype);
    int64_t outer = sl_la__prod(x->dims, 0, axis);
    size_t inner = (size_t)sl_la__prod(x->dims, axis + 1, x->ndim) * es;
    size_t row = (size_t)x->dims[axis] * inner;
    size_t off = 0;
    for (int i = 0; i < n_out; i++) {
        size_t chunk = (size_t)out[i].dims[axis] * inner;
        if (chunk && out[i].data) {
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)out[i].data + (size_t)o * chunk,
                       (const char *)x->data + (size_t)o * row + off, chunk);
        }
        off += chunk;
    }
    return SL_ENG_OK;
}

/* ---- Slice ---- */

/* Per input dim: first element, step and output length. */
static sl_eng_status_t slice_plan(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  int64_t *start, int64_t *step, int64_t *len,
                                  sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    int64_t st[MAXD], en[MAXD], ax[MAXD], sp[MAXD];
    int ns = 0, ne = 0, na = 0, np = 0;
    sl_eng_status_t s;
    if (n->opset < 10) {
        size_t c1, c2, c3;
        const int64_t *a = sl_attr_ints(n, "starts", &c1), *b = sl_attr_ints(n, "ends", &c2),
                      *c = sl_attr_ints(n, "axes", &c3);
        if (!a || !b) return sl_node_error(n, err, SL_ENG_EINVAL, "starts and ends are required");
        if (c1 > MAXD || c2 > MAXD || c3 > MAXD)
            return sl_node_error(n, err, SL_ENG_EINVAL, "more than %d starts, ends or axes", MAXD);
        memcpy(st, a, c1 * sizeof *a);
        memcpy(en, b, c2 * sizeof *b);
        if (c) memcpy(ax, c, c3 * sizeof *c);
        ns = (int)c1, ne = (int)c2, na = c ? (int)c3 : -1, np = -1;
    } else {
        if ((s = sl_la__read_ints(n, in[1], "input 'starts'", MAXD, st, &ns, err))) return s;
        if ((s = sl_la__read_ints(n, in[2], "input 'ends'", MAXD, en, &ne, err))) return s;
        na = np = -1;
        if (n_in > 3 && in[3] &&
            (s = sl_la__read_ints(n, in[3], "input 'axes'", MAXD, ax, &na, err)))
            return s;
        if (n_in > 4 && in[4] &&
            (s = sl_la__read_ints(n, in[4], "input 'steps'", MAXD, sp, &np, err)))
            return s;
    }
    if (ne != ns || (na >= 0 && na != ns) || (np >= 0 && np != ns))
        return sl_node_error(n, err, SL_ENG_EINVAL,
                             "starts, ends, axes and steps must have the same length (%d, %d, %d, "
                             "%d)",
                             ns, ne, na, np);
    for (int i = 0; i < x->ndim; i++) {
        start[i] = 0;
        step[i] = 1;
        len[i] = x->dims[i];
    }
    bool seen[MAXD] = {false};
    for (int i = 0; i < ns; i++) {
        int64_t av = na >= 0 ? ax[i] : i;
        int a;
        if (x->ndim == 0 || !sl_axis_normalize(av, x->ndim, &a))
            return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is out of range for %d dims",
                                 (long long)av, x->ndim);
        if (seen[a])
            return sl_node_error(n, err, SL_ENG_EINVAL, "axis %lld is given twice", (long long)av);
        seen[a] = true;
        int64_t p = np >= 0 ? sp[i] : 1, d = x->dims[a], b = st[i], e = en[i];
        if (p == 0) return sl_node_error(n, err, SL_ENG_EINVAL, "step for axis %d is 0", a);
        if (b < 0) b += d;
        if (e < 0) e += d;
        int64_t l = 0;
        if (p > 0) {
            b = b < 0 ? 0 : b > d ? d : b;
            e = e < 0 ? 0 : e > d ? d : e;
            if (e > b) l = (int64_t)((uint64_t)(e - b - 1) / (uint64_t)p) + 1;
        } else if (d > 0) {
            b = b < 0 ? 0 : b > d - 1 ? d - 1 : b;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            if (b > e) l = (int64_t)((uint64_t)(b - e - 1) / (0 - (uint64_t)p)) + 1;
        }
        start[a] = l ? b : 0;
        step[a] = p;
        len[a] = l;
    }
    return SL_ENG_OK;
}

static sl_eng_status_t slice_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = n->opset < 10 ? sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err)
                                      : sl_la__arity(n, in, n_in, 3, 5, n_out, 1, 1, err);
    if (s) return s;
    if (!sl_la__movable(n, in[0], "input 'data'", err))
        return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t start[MAXD], step[MAXD], len[MAXD];
    if ((s = slice_plan(n, in, n_in, start, step, len, err))) return s;
    return sl_la__set_out(n, &out[0], in[0]->dtype, in[0]->ndim, len, err);
}

static sl_eng_status_t slice_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int64_t start[MAXD], step[MAXD], len[MAXD], st[MAXD], vs[MAXD];
    sl_eng_status_t s = slice_plan(n, in, n_in, start, step, len, k->err);
    if (s) return s;
    if (sl_tensor_numel(&out[0]) == 0) return SL_ENG_OK;
    size_t es = sl_dtype_size(x->dtype);
    sl_la__strides(x->ndim, x->dims, st);
    int64_t off = 0;
    for (int i = 0; i < x->ndim; i++) {
        off += start[i] * st[i];
        vs[i] = st[i] * step[i];
    }
    sl_la__copy_strided(out[0].data, (const char *)x->data + off * (int64_t)es, es, x->ndim, len,
                        vs);
    return SL_ENG_OK;
}

/* ---- Expand ---- */

static sl_eng_status_t expand_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 2, 2, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 'input'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    sl_tensor_t shape = {.dtype = x->dtype};
    int cnt;
    if ((s = sl_la__read_ints(n, in[1], "input 'shape'", MAXD, shape.dims, &cnt, err))) return s;
    shape.ndim = cnt;
    for (int i = 0; i < cnt; i++) {
        if (shape.dims[i] < 0)
            return sl_node_error(n, err, SL_ENG_ESHAPE, "shape has negative dim %lld at index %d",
                                 (long long)shape.dims[i], i);
    }
    sl_tensor_t o;
    char b1[160], b2[160];
    if (sl_shape_broadcast(x, &shape, &o) != SL_ENG_OK)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "input shape %s cannot be broadcast to %s",
                             sl_la__dims_str(x->ndim, x->dims, b1, sizeof b1),
                             sl_la__dims_str(cnt, shape.dims, b2, sizeof b2));
    return sl_la__set_out(n, &out[0], x->dtype, o.ndim, o.dims, err);
}

/* Strides (elements of x) that broadcast x to out's dims: 0 where x has no dim or a dim of 1. */
static void broadcast_strides(const sl_tensor_t *x, const sl_tensor_t *o, int64_t *vs) {
    int64_t st[MAXD];
    sl_la__strides(x->ndim, x->dims, st);
    for (int i = 0; i < o->ndim; i++) {
        int j = i - (o->ndim - x->ndim);
        vs[i] = (j < 0 || x->dims[j] == 1) ? 0 : st[j];
    }
}

static sl_eng_status_t expand_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    int64_t vs[MAXD];
    broadcast_strides(in[0], &out[0], vs);
    sl_la__copy_strided(out[0].data, in[0]->data, sl_dtype_size(in[0]->dtype), out[0].ndim,
                        out[0].dims, vs);
    return SL_ENG_OK;
}

/* ---- Shape, Size ---- */

static void shape_range(const sl_node_t *n, int r, int64_t *b, int64_t *e) {
    int64_t s = n->opset >= 15 ? sl_attr_int(n, "start", 0) : 0;
    int64_t t = n->opset >= 15 ? sl_attr_int(n, "end", r) : r;
    if (s < 0) s += r;
    if (t < 0) t += r;
    *b = s < 0 ? 0 : s > r ? r : s;
    *e = t < 0 ? 0 : t > r ? r : t;
    if (*e < *b) *e = *b;
}

static sl_eng_status_t shape_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err);
    if (s) return s;
    int64_t b, e;
    shape_range(n, in[0]->ndim, &b, &e);
    int64_t d = e - b;
    return sl_la__set_out(n, &out[0], SL_DT_INT64, 1, &d, err);
}

static sl_eng_status_t shape_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    int64_t b, e;
    shape_range(n, in[0]->ndim, &b, &e);
    int64_t *o = out[0].data;
    for (int64_t i = b; i < e; i++)
        o[i - b] = in[0]->dims[i];
    return SL_ENG_OK;
}

static sl_eng_status_t size_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err);
    if (s) return s;
    return sl_la__set_out(n, &out[0], SL_DT_INT64, 0, NULL, err);
}

static sl_eng_status_t size_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    *(int64_t *)out[0].data = sl_tensor_numel(in[0]);
    return SL_ENG_OK;
}

/* ---- Tile ---- */

static sl_eng_status_t tile_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 2, 2, n_out, 1, 1, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (!sl_la__movable(n, x, "input 'input'", err)) return err ? err->code : SL_ENG_EUNSUPPORTED;
    int64_t rep[MAXD], dims[MAXD];
    int cnt;
    if ((s = sl_la__read_ints(n, in[1], "input 'repeats'", MAXD, rep, &cnt, err))) return s;
    if (cnt != x->ndim)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "repeats has %d values, the input has %d dims",
                             cnt, x->ndim);
    for (int i = 0; i < cnt; i++) {
        if (rep[i] < 0)
            return sl_node_error(n, err, SL_ENG_EINVAL, "repeats has negative value %lld",
                                 (long long)rep[i]);
        if (__builtin_mul_overflow(x->dims[i], rep[i], &dims[i]))
            return sl_node_error(n, err, SL_ENG_ELIMIT, "output dim %d overflows", i);
    }
    return sl_la__set_out(n, &out[0], x->dtype, x->ndim, dims, err);
}

static sl_eng_status_t tile_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    sl_tensor_t *o = &out[0];
    size_t es = sl_dtype_size(x->dtype);
    if (sl_tensor_numel(o) == 0) return SL_ENG_OK;
    int r = x->ndim;
    if (r == 0) {
        memcpy(o->data, x->data, es);
        return SL_ENG_OK;
    }
    /* One output row (last dim) per step: the input row it comes from, repeated. */
    int64_t st[MAXD], cnt[MAXD] = {0};
    sl_la__strides(r, x->dims, st);
    size_t in_row = (size_t)x->dims[r - 1] * es, out_row = (size_t)o->dims[r - 1] * es;
    int64_t rows = sl_la__prod(o->dims, 0, r - 1);
    char *dst = o->data;
    for (int64_t it = 0; it < rows; it++, dst += out_row) {
        int64_t off = 0;
        for (int j = 0; j < r - 1; j++)
            off += (cnt[j] % x->dims[j]) * st[j];
        const char *src = (const char *)x->data + off * (int64_t)es;
        for (size_t b = 0; b < out_row; b += in_row)
            memcpy(dst + b, src, in_row);
        for (int j = r - 2; j >= 0; j--) {
            if (++cnt[j] < o->dims[j]) break;
            cnt[j] = 0;
        }
    }
    return SL_ENG_OK;
}

/* ---- DepthToSpace, SpaceToDepth ---- */

static sl_eng_status_t d2s_check(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 int n_out, int64_t *b, sl_eng_error_t *err) {
    sl_eng_status_t s = sl_la__arity(n, in, n_in, 1, 1, n_out, 1, 1, err);
    if (s) return s;
    if (!sl_la__movable(n, in[0], "input 'input'", err))
        return err ? err->code : SL_ENG_EUNSUPPORTED;
    if (in[0]->ndim != 4)
        return sl_node_error(n, err, SL_ENG_ESHAPE, "input has %d dims, expected 4 (N, C, H, W)",
                             in[0]->ndim);
    *b = sl_attr_int(n, "blocksize", 0);
    if (*b <= 0 || *b > (1 << 20))
        return sl_node_error(n, err, SL_ENG_EINVAL, "blocksize %lld is invalid (expected > 0)",
                             (long long)*b);
    return SL_ENG_OK;
}

static bool d2s_crd(const sl_node_t *n) {
    return n->opset >= 11 && strcmp(sl_attr_string(n, "mode", "DCR"), "CRD") == 0;
}

static sl_eng_status_t d2s_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    int64_t b = 1;
    sl_eng_status_t s = d2s_check(n, in, n_in, n_out, &b, err);
    if (s) return s;
    const char *mode = n->opset >= 11 ? sl_attr_string(n, "mode", "DCR") : "DCR";
    if (strcmp(mode, "DCR") != 0 && strcmp(mode, "CRD") != 0)
        return sl_node_error(n, err, SL_ENG_EINVAL, "mode '%s' is not DCR or CRD", mode);
    const int64_t *d = in[0]->dims;
    if (d[1] % (b * b) != 0)
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "channels (%lld) are not a multiple of blocksize squared (%lld)",
                             (long long)d[1], (long long)(b * b));
    int64_t od[4] = {d[0], d[1] / (b * b), 0, 0};
    if (__builtin_mul_overflow(d[2], b, &od[2]) || __builtin_mul_overflow(d[3], b, &od[3]))
        return sl_node_error(n, err, SL_ENG_ELIMIT, "output dims overflow");
    return sl_la__set_out(n, &out[0], in[0]->dtype, 4, od, err);
}

static sl_eng_status_t d2s_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                               sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const int64_t *d = in[0]->dims;
    int64_t b = sl_attr_int(n, "blocksize", 1), C = d[1], H = d[2], W = d[3], c = C / (b * b);
    /* The output as [N, c, H, b, W, b] and where each of its elements is in the input. */
    int64_t vd[6] = {d[0], c, H, b, W, b};
    int64_t vs[6] = {C * H * W, H * W, W, b * c * H * W, 1, c * H * W};
    if (d2s_crd(n)) {
        vs[1] = b * b * H * W;
        vs[3] = b * H * W;
        vs[5] = H * W;
    }
    sl_la__copy_strided(out[0].data, in[0]->data, sl_dtype_size(in[0]->dtype), 6, vd, vs);
    return SL_ENG_OK;
}

static sl_eng_status_t s2d_infer(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    int64_t b = 1;
    sl_eng_status_t s = d2s_check(n, in, n_in, n_out, &b, err);
    if (s) return s;
    const int64_t *d = in[0]->dims;
    if (d[2] % b || d[3] % b)
        return sl_node_error(n, err, SL_ENG_ESHAPE,
                             "height %lld and width %lld must be multiples of blocksize %lld",
                             (long long)d[2], (long long)d[3], (long long)b);
    int64_t od[4] = {d[0], 0, d[2] / b, d[3] / b};
    if (__builtin_mul_overflow(d[1], b * b, &od[1]))
        return sl_node_error(n, err, SL_ENG_ELIMIT, "output dims overflow");
    return sl_la__set_out(n, &out[0], in[0]->dtype, 4, od, err);
}

static sl_eng_status_t s2d_run(const sl_node_t *n, const sl_tensor_t *const *in, int n_in,
                               sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const int64_t *d = in[0]->dims;
    int64_t b = sl_attr_int(n, "blocksize", 1), C = d[1], H = d[2], W = d[3];
    /* The output as [N, b, b, C, H/b, W/b]. */
    int64_t vd[6] = {d[0], b, b, C, H / b, W / b};
    int64_t vs[6] = {C * H * W, W, 1, H * W, b * W, b};
    sl_la__copy_strided(out[0].data, in[0]->data, sl_dtype_size(in[0]->dtype), 6, vd, vs);
    return SL_ENG_OK;
}

#define K(name, ver, inf, rn)                                                                      \
    { .op_type = name, .domain = "", .since = ver, .infer = inf, .run = rn }

const sl_op_t sl_ops_shape[] = {
    K("Reshape", 1, reshape_infer, sl_la__copy_run),
    K("Flatten", 1, flatten_infer, sl_la__copy_run),
    K("Squeeze", 1, squeeze_infer, sl_la__copy_run),
    K("Unsqueeze", 1, unsqueeze_infer, sl_la__copy_run),
    K("Transpose", 1, transpose_infer, transpose_run),
    K("Concat", 1, concat_infer, concat_run),
    K("Split", 1, split_infer, split_run),
    K("Slice", 1, slice_infer, slice_run),
    K("Expand", 8, expand_infer, expand_run),
    K("Shape", 1, shape_infer, shape_run),
    K("Size", 1, size_infer, size_run),
    K("Tile", 6, tile_infer, tile_run),
    K("DepthToSpace", 1, d2s_infer, d2s_run),
    K("SpaceToDepth", 1, s2d_infer, s2d_run),
    K("Constant", 1, sl_la__constant_infer, sl_la__constant_run),
    K("ConstantOfShape", 9, sl_la__constant_of_shape_infer, sl_la__constant_of_shape_run),
    K("Range", 11, sl_la__range_infer, sl_la__range_run),
    K("Pad", 2, sl_la__pad_infer, sl_la__pad_run),
    K("Gather", 1, sl_la__gather_infer, sl_la__gather_run),
    K("GatherElements", 11, sl_la__gather_elements_infer, sl_la__gather_elements_run),
    K("ScatterElements", 11, sl_la__scatter_elements_infer, sl_la__scatter_elements_run),
    K("Scatter", 9, sl_la__scatter_elements_infer, sl_la__scatter_elements_run),
    K("OneHot", 9, sl_la__onehot_infer, sl_la__onehot_run),
    K("NonZero", 9, sl_la__nonzero_infer, sl_la__nonzero_run),
    K("Trilu", 14, sl_la__trilu_infer, sl_la__trilu_run),
    {.op_type = NULL},
};
