/* CPU kernels: BatchNormalization (inference form, and the training form of opset 14+ that also
 * returns running statistics), InstanceNormalization and LayerNormalization (opset 17, with
 * its optional Mean and InvStdDev outputs). float32. Listed in ops_nn.c's table. */
#include "engine/nn_common.h"
#include "engine/op.h"

#include <math.h>
#include <string.h>

static sl_eng_status_t need_float(const sl_node_t *node, const sl_tensor_t *const *in, int n,
                                  int required, sl_eng_error_t *err) {
    for (int i = 0; i < n; i++) {
        if (!in[i]) {
            if (i < required)
                return sl_node_error(node, err, SL_ENG_EINVAL, "input %d is required", i);
            continue;
        }
        if (in[i]->dtype != SL_DT_FLOAT)
            return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                                 "input %d has dtype %s, only float32 is supported", i,
                                 sl_dtype_name(in[i]->dtype));
    }
    return SL_ENG_OK;
}

/* Per-channel parameters: 1-D (or any shape) with exactly C values. */
static sl_eng_status_t per_channel(const sl_node_t *node, const sl_tensor_t *const *in, int first,
                                   int last, int64_t C, sl_eng_error_t *err) {
    static const char *const names[] = {"X", "scale", "B", "mean", "var"};
    for (int i = first; i <= last; i++) {
        if (sl_tensor_numel(in[i]) != C || in[i]->ndim != 1)
            return sl_node_error(node, err, SL_ENG_ESHAPE,
                                 "input '%s' must be 1-D with %lld values (the channels of X)",
                                 names[i], (long long)C);
    }
    return SL_ENG_OK;
}

/* ---- BatchNormalization ---- */

static bool bn_training(const sl_node_t *node) {
    return node->opset >= 14 && sl_attr_int(node, "training_mode", 0) != 0;
}

static sl_eng_status_t bn_check(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                int n_out, sl_eng_error_t *err) {
    if (n_in < 5) return sl_node_error(node, err, SL_ENG_EINVAL, "5 inputs expected, got %d", n_in);
    sl_eng_status_t s = need_float(node, in, 5, 5, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    if (x->ndim < 2)
        return sl_node_error(node, err, SL_ENG_ESHAPE, "input X has %d dims, expected N, C, ...",
                             x->ndim);
    if (node->opset < 9 && sl_attr_int(node, "spatial", 1) == 0)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                             "spatial = 0 (per-activation statistics) is not supported");
    if (n_out > 1 && !bn_training(node))
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                             "training outputs are only computed with training_mode = 1 "
                             "(opset 14+), got %d outputs",
                             n_out);
    return per_channel(node, in, 1, 4, x->dims[1], err);
}

sl_eng_status_t sl_nn__batchnorm_infer(const sl_node_t *node, const sl_tensor_t *const *in,
                                       int n_in, sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_eng_status_t s = bn_check(node, in, n_in, n_out, err);
    if (s) return s;
    out[0] = *in[0];
    out[0].data = NULL;
    for (int o = 1; o < n_out && o < 3; o++) {
        out[o] = *in[2 + o]; /* running_mean like mean, running_var like var */
        out[o].data = NULL;
    }
    return SL_ENG_OK;
}

/* y = x * a[c] + b[c] with a = scale / sqrt(var + eps), b = B - mean * a. */
static void bn_apply(const float *restrict x, float *restrict y, const float *a, const float *b,
                     int64_t N, int64_t C, int64_t sp) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float *restrict xc = x + (n * C + c) * sp;
            float *restrict yc = y + (n * C + c) * sp;
            float ac = a[c], bc = b[c];
            for (int64_t i = 0; i < sp; i++)
                yc[i] = xc[i] * ac + bc;
        }
}

sl_eng_status_t sl_nn__batchnorm_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    sl_eng_status_t s = bn_check(node, in, n_in, n_out, k->err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    int64_t N = x->dims[0], C = x->dims[1], sp = 1;
    for (int d = 2; d < x->ndim; d++)
        sp *= x->dims[d];
    const float *scale = in[1]->data, *bias = in[2]->data, *mean = in[3]->data, *var = in[4]->data;
    float eps = sl_attr_float(node, "epsilon", 1e-5f);
    float *ab = k->scratch(k, (size_t)(2 * C + 1) * sizeof *ab);
    if (!ab) return SL_ENG_ENOMEM;
    float *a = ab, *b = ab + C;
    if (bn_training(node)) {
        float mom = sl_attr_float(node, "momentum", 0.9f);
        const float *xd = x->data;
        double cnt = (double)(N * sp);
        for (int64_t c = 0; c < C; c++) {
            double sum = 0, sq = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xc = xd + (n * C + c) * sp;
                for (int64_t i = 0; i < sp; i++)
                    sum += xc[i];
            }
            double m = cnt > 0 ? sum / cnt : 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xc = xd + (n * C + c) * sp;
                for (int64_t i = 0; i < sp; i++)
                    sq += (xc[i] - m) * (xc[i] - m);
            }
            double v = cnt > 0 ? sq / cnt : 0;
            a[c] = (float)(scale[c] / sqrt(v + eps));
            b[c] = (float)(bias[c] - m * a[c]);
            if (n_out > 1 && out[1].data)
                ((float *)out[1].data)[c] = (float)(mean[c] * mom + m * (1 - mom));
            if (n_out > 2 && out[2].data)
                ((float *)out[2].data)[c] = (float)(var[c] * mom + v * (1 - mom));
        }
    } else {
        for (int64_t c = 0; c < C; c++) {
            a[c] = scale[c] / sqrtf(var[c] + eps);
            b[c] = bias[c] - mean[c] * a[c];
        }
    }
    bn_apply(x->data, out[0].data, a, b, N, C, sp);
    return SL_ENG_OK;
}

/* ---- InstanceNormalization ---- */

static sl_eng_status_t in_check(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                sl_eng_error_t *err) {
    if (n_in < 3) return sl_node_error(node, err, SL_ENG_EINVAL, "3 inputs expected, got %d", n_in);
    sl_eng_status_t s = need_float(node, in, 3, 3, err);
    if (s) return s;
    if (in[0]->ndim < 3)
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "input X has %d dims, expected N, C and spatial dims", in[0]->ndim);
    return per_channel(node, in, 1, 2, in[0]->dims[1], err);
}

sl_eng_status_t sl_nn__instancenorm_infer(const sl_node_t *node, const sl_tensor_t *const *in,
                                          int n_in, sl_tensor_t *out, int n_out,
                                          sl_eng_error_t *err) {
    sl_eng_status_t s = in_check(node, in, n_in, err);
    if (s) return s;
    out[0] = *in[0];
    out[0].data = NULL;
    return SL_ENG_OK;
}

/* Mean and 1/sqrt(var + eps) of one row (two passes, so that var never goes negative). */
static void row_stats(const float *restrict x, int64_t n, float eps, float *mean, float *inv) {
    float s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s[0] += x[i];
        s[1] += x[i + 1];
        s[2] += x[i + 2];
        s[3] += x[i + 3];
    }
    for (; i < n; i++)
        s[0] += x[i];
    float m = n > 0 ? ((s[0] + s[1]) + (s[2] + s[3])) / (float)n : 0.0f;
    float q[4] = {0, 0, 0, 0};
    for (i = 0; i + 4 <= n; i += 4) {
        for (int j = 0; j < 4; j++)
            q[j] += (x[i + j] - m) * (x[i + j] - m);
    }
    for (; i < n; i++)
        q[0] += (x[i] - m) * (x[i] - m);
    float v = n > 0 ? ((q[0] + q[1]) + (q[2] + q[3])) / (float)n : 0.0f;
    *mean = m;
    *inv = 1.0f / sqrtf(v + eps);
}

sl_eng_status_t sl_nn__instancenorm_run(const sl_node_t *node, const sl_tensor_t *const *in,
                                        int n_in, sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    sl_eng_status_t s = in_check(node, in, n_in, k->err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    int64_t N = x->dims[0], C = x->dims[1], sp = 1;
    for (int d = 2; d < x->ndim; d++)
        sp *= x->dims[d];
    const float *scale = in[1]->data, *bias = in[2]->data, *xd = x->data;
    float *yd = out[0].data;
    float eps = sl_attr_float(node, "epsilon", 1e-5f);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float *restrict xc = xd + (n * C + c) * sp;
            float *restrict yc = yd + (n * C + c) * sp;
            float m, inv;
            row_stats(xc, sp, eps, &m, &inv);
            float a = scale[c] * inv, b = bias[c] - m * a;
            for (int64_t i = 0; i < sp; i++)
                yc[i] = xc[i] * a + b;
        }
    return SL_ENG_OK;
}

/* ---- LayerNormalization ---- */

static sl_eng_status_t ln_check(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                int *axis, sl_eng_error_t *err) {
    if (n_in < 2) return sl_node_error(node, err, SL_ENG_EINVAL, "inputs X and Scale are required");
    sl_eng_status_t s = need_float(node, in, n_in < 3 ? n_in : 3, 2, err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    int64_t a = sl_attr_int(node, "axis", -1);
    if (x->ndim == 0 || !sl_axis_normalize(a, x->ndim, axis))
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "axis %lld is out of range for a tensor of %d dims", (long long)a,
                             x->ndim);
    /* Scale and B broadcast (unidirectionally) to the normalized shape dims[axis:]. */
    for (int i = 1; i < 3 && i < n_in; i++) {
        const sl_tensor_t *p = in[i];
        if (!p) continue;
        bool ok = p->ndim <= x->ndim - *axis;
        for (int d = 0; ok && d < p->ndim; d++) {
            int64_t want = x->dims[x->ndim - p->ndim + d];
            ok = p->dims[d] == 1 || p->dims[d] == want;
        }
        if (!ok)
            return sl_node_error(node, err, SL_ENG_ESHAPE,
                                 "input '%s' does not broadcast to the normalized dims (axis %d "
                                 "of a %d-dim X)",
                                 i == 1 ? "Scale" : "B", *axis, x->ndim);
    }
    return SL_ENG_OK;
}

sl_eng_status_t sl_nn__layernorm_infer(const sl_node_t *node, const sl_tensor_t *const *in,
                                       int n_in, sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    int axis;
    sl_eng_status_t s = ln_check(node, in, n_in, &axis, err);
    if (s) return s;
    out[0] = *in[0];
    out[0].data = NULL;
    for (int o = 1; o < n_out && o < 3; o++) {
        out[o] = *in[0];
        out[o].data = NULL;
        out[o].dtype = SL_DT_FLOAT;
        for (int d = axis; d < in[0]->ndim; d++)
            out[o].dims[d] = 1;
    }
    return SL_ENG_OK;
}

/* p expanded to the D values of the normalized shape (dims[nd - D ...]) when it broadcasts. */
static const float *ln_expand(const sl_tensor_t *p, const sl_tensor_t *x, int axis, int64_t D,
                              sl_kctx_t *k) {
    if (sl_tensor_numel(p) == D) return p->data;
    float *e = k->scratch(k, (size_t)D * sizeof *e);
    if (!e) return NULL;
    const float *src = p->data;
    int nd = x->ndim - axis;
    for (int64_t j = 0; j < D; j++) {
        int64_t rem = j, off = 0, mul = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t dim = x->dims[axis + d], c = rem % dim;
            rem /= dim;
            int pd = d - (nd - p->ndim);
            if (pd >= 0) {
                if (p->dims[pd] != 1) off += c * mul;
                mul *= p->dims[pd];
            }
        }
        e[j] = src[off];
    }
    return e;
}

/* LayerNormalization rows [b, e), split across threads by sl_par_for. */
typedef struct ln_job {
    const float *xd, *scale, *bias;
    float *yd, *mo, *io;
    int64_t D;
    float eps;
} ln_job_t;

static void ln_rows(void *ctx, int64_t b, int64_t e) {
    const ln_job_t *j = ctx;
    int64_t D = j->D;
    const float *scale = j->scale, *bias = j->bias;
    for (int64_t o = b; o < e; o++) {
        const float *restrict xr = j->xd + o * D;
        float *restrict yr = j->yd + o * D;
        float m, inv;
        row_stats(xr, D, j->eps, &m, &inv);
        if (j->mo) j->mo[o] = m;
        if (j->io) j->io[o] = inv;
        if (bias) {
            for (int64_t i = 0; i < D; i++)
                yr[i] = (xr[i] - m) * inv * scale[i] + bias[i];
        } else {
            for (int64_t i = 0; i < D; i++)
                yr[i] = (xr[i] - m) * inv * scale[i];
        }
    }
}

sl_eng_status_t sl_nn__layernorm_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                     sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    int axis;
    sl_eng_status_t s = ln_check(node, in, n_in, &axis, k->err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    int64_t O = 1, D = 1;
    for (int d = 0; d < axis; d++)
        O *= x->dims[d];
    for (int d = axis; d < x->ndim; d++)
        D *= x->dims[d];
    if (O * D == 0) return SL_ENG_OK;
    const float *scale = ln_expand(in[1], x, axis, D, k);
    const float *bias = n_in > 2 && in[2] ? ln_expand(in[2], x, axis, D, k) : NULL;
    if (!scale || (n_in > 2 && in[2] && !bias)) return SL_ENG_ENOMEM;
    ln_job_t j = {.xd = x->data,
                  .yd = out[0].data,
                  .scale = scale,
                  .bias = bias,
                  .mo = n_out > 1 ? out[1].data : NULL,
                  .io = n_out > 2 ? out[2].data : NULL,
                  .D = D,
                  .eps = sl_attr_float(node, "epsilon", 1e-5f)};
    sl_par_for(k, O, 1 + 8192 / D, ln_rows, &j);
    return SL_ENG_OK;
}
