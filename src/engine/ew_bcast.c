/* Elementwise kernels, shared part: the numpy broadcast plan (collapsed dims, precomputed
 * strides, one callback per contiguous run), the two-input driver with its same-shape and scalar
 * fast paths, and the checks every elementwise infer function makes. */
#include "engine/ew.h"

#include <stdio.h>
#include <string.h>

/* Largest element count an elementwise output may have: its byte size must fit in int64_t. */
#define EW_MAX_NUMEL (INT64_MAX / 16)

sl_eng_status_t sl_ew__bcast_plan(ew_bcast_t *p, int out_ndim, const int64_t *out_dims,
                                  const sl_tensor_t *const *ins, int n_in) {
    int64_t idims[EW_MAX_IN][SL_MAX_DIMS];
    int nd = 0;
    if (n_in < 1 || n_in > EW_MAX_IN || out_ndim < 0 || out_ndim > SL_MAX_DIMS)
        return SL_ENG_EINVAL;
    for (int k = 0; k < n_in; k++) {
        if (ins[k]->ndim > out_ndim) return SL_ENG_ESHAPE;
    }
    for (int d = 0; d < out_ndim; d++) {
        int64_t od = out_dims[d];
        int64_t id[EW_MAX_IN];
        for (int k = 0; k < n_in; k++) {
            int j = d - (out_ndim - ins[k]->ndim);
            id[k] = j >= 0 ? ins[k]->dims[j] : 1;
            if (id[k] != od && id[k] != 1) return SL_ENG_ESHAPE;
        }
        if (od == 1) continue; /* a dim of 1 moves nothing */
        /* Merge with the previous kept dim when every input spans both or is broadcast on both:
         * then the two dims address memory as one. */
        bool merge = nd > 0;
        for (int k = 0; k < n_in && merge; k++) {
            bool full_prev = idims[k][nd - 1] == p->dims[nd - 1];
            bool full_cur = id[k] == od;
            if (full_prev != full_cur) merge = false;
        }
        if (merge) {
            p->dims[nd - 1] *= od;
            for (int k = 0; k < n_in; k++)
                idims[k][nd - 1] *= id[k];
        } else {
            p->dims[nd] = od;
            for (int k = 0; k < n_in; k++)
                idims[k][nd] = id[k];
            nd++;
        }
    }
    if (nd == 0) { /* every dim is 1: one element */
        p->dims[0] = 1;
        for (int k = 0; k < n_in; k++)
            idims[k][0] = 1;
        nd = 1;
    }
    p->ndim = nd;
    p->n_in = n_in;
    for (int k = 0; k < n_in; k++) {
        int64_t s = 1;
        for (int d = nd - 1; d >= 0; d--) {
            if (idims[k][d] == p->dims[d] && p->dims[d] != 1) {
                p->strides[k][d] = s;
                s *= p->dims[d];
            } else {
                p->strides[k][d] = 0;
            }
        }
    }
    return SL_ENG_OK;
}

void sl_ew__bcast_each(const ew_bcast_t *p, ew_run_cb cb, void *ctx) {
    int nd = p->ndim;
    int64_t n = p->dims[nd - 1];
    int64_t step[EW_MAX_IN] = {0}, off[EW_MAX_IN] = {0}, idx[SL_MAX_DIMS] = {0};
    for (int k = 0; k < p->n_in; k++)
        step[k] = p->strides[k][nd - 1];
    int64_t outer = 1;
    for (int d = 0; d < nd - 1; d++)
        outer *= p->dims[d];
    if (n == 0) return;
    for (int64_t it = 0; it < outer; it++) {
        cb(ctx, it * n, off, step, n);
        /* Odometer over the outer dims: offsets move by precomputed strides, no division. */
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            for (int k = 0; k < p->n_in; k++)
                off[k] += p->strides[k][d];
            if (idx[d] < p->dims[d]) break;
            for (int k = 0; k < p->n_in; k++)
                off[k] -= p->strides[k][d] * p->dims[d];
            idx[d] = 0;
        }
    }
}

typedef struct bin_ctx {
    const ew_bin_fn *fn;
    char *o;
    const char *a, *b;
    size_t eo, ea, eb;
} bin_ctx_t;

static void bin_cb(void *ctx, int64_t out_off, const int64_t *in_off, const int64_t *in_step,
                   int64_t n) {
    bin_ctx_t *c = ctx;
    int m = in_step[0] ? (in_step[1] ? EW_VV : EW_VS) : (in_step[1] ? EW_SV : EW_VV);
    c->fn[m](c->o + (size_t)out_off * c->eo, c->a + (size_t)in_off[0] * c->ea,
             c->b + (size_t)in_off[1] * c->eb, (size_t)n);
}

sl_eng_status_t sl_ew__binary(const ew_bin_fn fn[3], const sl_tensor_t *a, const sl_tensor_t *b,
                              sl_tensor_t *o) {
    int64_t no = sl_tensor_numel(o), na = sl_tensor_numel(a), nb = sl_tensor_numel(b);
    if (no == 0) return SL_ENG_OK;
    /* An input with as many elements as the output and broadcastable to it has its layout. */
    if (na == no && nb == no) {
        fn[EW_VV](o->data, a->data, b->data, (size_t)no);
        return SL_ENG_OK;
    }
    if (na == no && nb == 1) {
        fn[EW_VS](o->data, a->data, b->data, (size_t)no);
        return SL_ENG_OK;
    }
    if (na == 1 && nb == no) {
        fn[EW_SV](o->data, a->data, b->data, (size_t)no);
        return SL_ENG_OK;
    }
    ew_bcast_t plan;
    const sl_tensor_t *ins[2] = {a, b};
    sl_eng_status_t s = sl_ew__bcast_plan(&plan, o->ndim, o->dims, ins, 2);
    if (s != SL_ENG_OK) return s;
    bin_ctx_t c = {
        .fn = fn,
        .o = o->data,
        .a = a->data,
        .b = b->data,
        .eo = sl_dtype_size(o->dtype),
        .ea = sl_dtype_size(a->dtype),
        .eb = sl_dtype_size(b->dtype),
    };
    sl_ew__bcast_each(&plan, bin_cb, &c);
    return SL_ENG_OK;
}

/* ---- infer checks ---- */

const char *sl_ew__dims_str(const sl_tensor_t *t, char *buf, size_t len) {
    size_t n = 0;
    n += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, i ? ",%lld" : "%lld", (long long)t->dims[i]);
    if (n < len) snprintf(buf + n, len - n, "]");
    return buf;
}

sl_eng_status_t sl_ew__check_dtype(const sl_node_t *node, const sl_tensor_t *t, int i,
                                   uint32_t allowed, sl_eng_error_t *err) {
    if (!t) return sl_node_error(node, err, SL_ENG_EINVAL, "input %d is missing", i);
    if ((unsigned)t->dtype < EW_NDT && (allowed & EW_DT(t->dtype))) return SL_ENG_OK;
    char list[160];
    size_t n = 0;
    list[0] = '\0';
    for (int d = 0; d < EW_NDT && n < sizeof list; d++) {
        if (allowed & EW_DT(d))
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                                  sl_dtype_name((sl_dtype_t)d));
    }
    return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                         "input %d has dtype %s, not supported here (expected one of: %s)", i,
                         sl_dtype_name(t->dtype), list);
}

sl_eng_status_t sl_ew__check_same_dtype(const sl_node_t *node, const sl_tensor_t *const *in, int i,
                                        int j, sl_eng_error_t *err) {
    if (in[i]->dtype == in[j]->dtype) return SL_ENG_OK;
    return sl_node_error(node, err, SL_ENG_EINVAL,
                         "input %d has dtype %s but input %d has %s; they must be the same", j,
                         sl_dtype_name(in[j]->dtype), i, sl_dtype_name(in[i]->dtype));
}

sl_eng_status_t sl_ew__infer_bcast(const sl_node_t *node, const sl_tensor_t *const *in, int n,
                                   sl_tensor_t *out, sl_eng_error_t *err) {
    sl_tensor_t acc = {.ndim = 0};
    int first = -1;
    for (int i = 0; i < n; i++) {
        if (!in[i]) continue;
        if (in[i]->ndim < 0 || in[i]->ndim > SL_MAX_DIMS)
            return sl_node_error(node, err, SL_ENG_ESHAPE, "input %d has rank %d", i, in[i]->ndim);
        if (first < 0) {
            acc = *in[i];
            first = i;
            continue;
        }
        sl_tensor_t next = {.ndim = 0};
        if (sl_shape_broadcast(&acc, in[i], &next) != SL_ENG_OK) {
            char da[128], db[128];
            return sl_node_error(node, err, SL_ENG_ESHAPE,
                                 "input %d %s cannot be broadcast with %s (%s): each dim "
                                 "must match or be 1",
                                 i, sl_ew__dims_str(in[i], db, sizeof db),
                                 sl_ew__dims_str(&acc, da, sizeof da),
                                 i == 1 ? "input 0" : "the inputs before it");
        }
        memcpy(acc.dims, next.dims, sizeof acc.dims);
        acc.ndim = next.ndim;
    }
    if (first < 0) return sl_node_error(node, err, SL_ENG_EINVAL, "no inputs");
    int64_t numel = 1;
    for (int d = 0; d < acc.ndim; d++) {
        if (acc.dims[d] < 0)
            return sl_node_error(node, err, SL_ENG_ESHAPE, "negative dimension %lld",
                                 (long long)acc.dims[d]);
        if (__builtin_mul_overflow(numel, acc.dims[d], &numel) || numel > EW_MAX_NUMEL)
            return sl_node_error(node, err, SL_ENG_ELIMIT,
                                 "the broadcast output has too many elements");
    }
    out->ndim = acc.ndim;
    memcpy(out->dims, acc.dims, sizeof out->dims);
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__check_arity(const sl_node_t *node, int n_in, int lo, int hi, int need,
                                   int n_out, sl_eng_error_t *err) {
    if (n_in < lo || n_in > hi) {
        if (lo == hi)
            return sl_node_error(node, err, SL_ENG_EGRAPH, "has %d inputs, expected %d", n_in, lo);
        return sl_node_error(node, err, SL_ENG_EGRAPH, "has %d inputs, expected %d to %d", n_in, lo,
                             hi);
    }
    if (n_out < 1) return sl_node_error(node, err, SL_ENG_EGRAPH, "has no output");
    return SL_ENG_OK;
}

sl_eng_status_t sl_ew__legacy_b(const sl_node_t *node, const sl_tensor_t *a, const sl_tensor_t *b,
                                sl_tensor_t *bv, sl_eng_error_t *err) {
    *bv = *b;
    if (node->opset >= 7) return SL_ENG_OK;
    char da[128], db[128];
    if (sl_attr_int(node, "broadcast", 0) == 0) {
        bool same = a->ndim == b->ndim;
        for (int i = 0; same && i < a->ndim; i++)
            same = a->dims[i] == b->dims[i];
        if (same) return SL_ENG_OK;
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "inputs %s and %s differ and broadcast=0 (opset %lld)",
                             sl_ew__dims_str(a, da, sizeof da), sl_ew__dims_str(b, db, sizeof db),
                             (long long)node->opset);
    }
    if (!sl_attr_get(node, "axis")) return SL_ENG_OK; /* suffix matching is numpy's rule */
    int axis;
    if (!sl_axis_normalize(sl_attr_int(node, "axis", 0), a->ndim, &axis) ||
        axis + b->ndim > a->ndim)
        return sl_node_error(node, err, SL_ENG_ESHAPE, "axis %lld cannot place B %s inside A %s",
                             (long long)sl_attr_int(node, "axis", 0),
                             sl_ew__dims_str(b, db, sizeof db), sl_ew__dims_str(a, da, sizeof da));
    /* B's dims start at axis: pad with trailing ones so numpy's suffix rule aligns them. */
    int nd = a->ndim - axis;
    for (int i = b->ndim; i < nd; i++)
        bv->dims[i] = 1;
    bv->ndim = nd;
    return SL_ENG_OK;
}

void sl_ew__copy(const sl_tensor_t *in, sl_tensor_t *out) {
    size_t n = sl_tensor_nbytes(in);
    if (n && out->data != in->data) memmove(out->data, in->data, n);
}
