/* CPU kernels: Conv and ConvTranspose (1-D to 3-D, groups, pads or auto_pad, strides,
 * dilations) through im2col / col2im and OpenBLAS sgemm, the spatial geometry they share with the
 * pools, and the nn table (pools, normalizations and Resize live in nn_*.c). */
#include "engine/nn_common.h"
#include "engine/op.h"

#include <cblas.h>
#include <string.h>

/* No kernel size, stride, dilation or pad beyond this: products of two stay far from overflow. */
#define GEOM_MAX_VALUE (INT64_C(1) << 24)
#define MAX_OUT_ELEMS  (INT64_C(1) << 40)

static bool pos_ints(const int64_t *v, size_t n, int64_t lo) {
    for (size_t i = 0; i < n; i++)
        if (v[i] < lo || v[i] > GEOM_MAX_VALUE) return false;
    return true;
}

/* Reads an INTS attribute of exactly n values in [lo, 2^24] into out, or def for each when
 * absent. */
static sl_eng_status_t geom_ints(const sl_node_t *node, const char *name, size_t n, int64_t lo,
                                 int64_t def, int64_t *out, sl_eng_error_t *err) {
    size_t cnt;
    const int64_t *v = sl_attr_ints(node, name, &cnt);
    if (!v) {
        for (size_t i = 0; i < n; i++)
            out[i] = def;
        return SL_ENG_OK;
    }
    if (cnt != n || !pos_ints(v, cnt, lo))
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "attribute '%s' must hold %zu values in [%lld, 2^24], got %zu", name,
                             n, (long long)lo, cnt);
    memcpy(out, v, n * sizeof *out);
    return SL_ENG_OK;
}

/* The auto_pad attribute: 0 NOTSET, 1 SAME_UPPER, 2 SAME_LOWER, 3 VALID; -1 unknown. */
static int auto_pad(const sl_node_t *node) {
    const char *s = sl_attr_string(node, "auto_pad", "NOTSET");
    if (strcmp(s, "NOTSET") == 0 || s[0] == '\0') return 0;
    if (strcmp(s, "SAME_UPPER") == 0) return 1;
    if (strcmp(s, "SAME_LOWER") == 0) return 2;
    if (strcmp(s, "VALID") == 0) return 3;
    return -1;
}

static sl_eng_status_t spatial_rank(const sl_node_t *node, const sl_tensor_t *x,
                                    sl_eng_error_t *err) {
    if (x->ndim < 3 || x->ndim > 5)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                             "input X has %d dims, expected 3 to 5 (N, C and 1 to 3 spatial)",
                             x->ndim);
    return SL_ENG_OK;
}

sl_eng_status_t sl_nn__geom(const sl_node_t *node, const sl_tensor_t *x, const int64_t *kernel,
                            bool ceil_ok, sl_nn_geom_t *g, sl_eng_error_t *err) {
    sl_eng_status_t s = spatial_rank(node, x, err);
    if (s) return s;
    int nsp = g->nsp = x->ndim - 2;
    size_t n = (size_t)nsp;
    size_t kc;
    const int64_t *ks = sl_attr_ints(node, "kernel_shape", &kc);
    if (kernel) {
        if (ks && (kc != n || memcmp(ks, kernel, n * sizeof *ks) != 0))
            return sl_node_error(node, err, SL_ENG_ESHAPE,
                                 "attribute 'kernel_shape' contradicts the weight's dims");
        if (!pos_ints(kernel, n, 1))
            return sl_node_error(node, err, SL_ENG_ESHAPE, "weight has an empty kernel");
        memcpy(g->kernel, kernel, n * sizeof *kernel);
    } else {
        if (!ks)
            return sl_node_error(node, err, SL_ENG_EINVAL, "attribute 'kernel_shape' is missing");
        if ((s = geom_ints(node, "kernel_shape", n, 1, 1, g->kernel, err))) return s;
    }
    if ((s = geom_ints(node, "strides", n, 1, 1, g->stride, err))) return s;
    if ((s = geom_ints(node, "dilations", n, 1, 1, g->dilation, err))) return s;
    int64_t pads[2 * SL_MAX_DIMS];
    if ((s = geom_ints(node, "pads", 2 * n, 0, 0, pads, err))) return s;
    int ap = auto_pad(node);
    if (ap < 0)
        return sl_node_error(node, err, SL_ENG_EINVAL, "attribute 'auto_pad' is '%s'",
                             sl_attr_string(node, "auto_pad", ""));
    bool ceil = ceil_ok && sl_attr_int(node, "ceil_mode", 0) != 0;
    int64_t total = x->dims[0] * x->dims[1];
    for (int i = 0; i < nsp; i++) {
        int64_t in = g->in[i] = x->dims[2 + i], st = g->stride[i];
        int64_t eff = (g->kernel[i] - 1) * g->dilation[i] + 1, out;
        if (ap == 1 || ap == 2) {
            out = (in + st - 1) / st;
            int64_t tp = (out - 1) * st + eff - in;
            if (tp < 0) tp = 0;
            g->pad_begin[i] = ap == 1 ? tp / 2 : tp - tp / 2;
            g->pad_end[i] = tp - g->pad_begin[i];
        } else {
            g->pad_begin[i] = ap == 3 ? 0 : pads[i];
            g->pad_end[i] = ap == 3 ? 0 : pads[nsp + i];
            int64_t span = in + g->pad_begin[i] + g->pad_end[i] - eff;
            if (span < 0)
                return sl_node_error(node, err, SL_ENG_ESHAPE,
                                     "spatial axis %d: the kernel (extent %lld) is larger than "
                                     "the padded input (%lld)",
                                     i, (long long)eff, (long long)(span + eff));
            out = (ceil ? span + st - 1 : span) / st + 1;
            /* The last window must start inside the input or its begin padding. */
            if (ceil && (out - 1) * st >= in + g->pad_begin[i]) out--;
        }
        if (out < 1)
            return sl_node_error(node, err, SL_ENG_ESHAPE, "spatial axis %d has output size %lld",
                                 i, (long long)out);
        g->out[i] = out;
        if (__builtin_mul_overflow(total, out, &total) || total > MAX_OUT_ELEMS)
            return sl_node_error(node, err, SL_ENG_ELIMIT, "output is too large");
    }
    return SL_ENG_OK;
}

/* ---- 3-D view: 1-D and 2-D are 3-D with leading unit axes ---- */

/* The output positions o in [0, nout) whose input o*s - p + kk*d falls in [0, nin). */
static void valid_range(int64_t nout, int64_t nin, int64_t s, int64_t p, int64_t off, int64_t *lo,
                        int64_t *hi) {
    int64_t a = p - off; /* need o*s >= a and o*s <= nin - 1 + a */
    int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t h = nin - 1 + a < 0 ? 0 : (nin - 1 + a) / s + 1;
    if (h > nout) h = nout;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col[(c, kd, kh, kw), (od, oh, ow)] = x[c, od*s - p + kd*d, ...] or 0 in the padding. */
static void im2col(const float *restrict x, float *restrict col, int64_t C,
                   const sl_nn_view3_t *g) {
    int64_t osp = g->out[0] * g->out[1] * g->out[2], isp = g->in[0] * g->in[1] * g->in[2];
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x + c * isp;
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++) {
                    int64_t wlo, whi;
                    valid_range(g->out[2], g->in[2], g->s[2], g->p[2], kw * g->d[2], &wlo, &whi);
                    int64_t w0 = kw * g->d[2] - g->p[2], sw = g->s[2];
                    for (int64_t od = 0; od < g->out[0]; od++) {
                        int64_t id = od * g->s[0] - g->p[0] + kd * g->d[0];
                        for (int64_t oh = 0; oh < g->out[1]; oh++) {
                            float *row = col + (od * g->out[1] + oh) * g->out[2];
                            int64_t ih = oh * g->s[1] - g->p[1] + kh * g->d[1];
                            if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1]) {
                                memset(row, 0, (size_t)g->out[2] * sizeof *row);
                                continue;
                            }
                            const float *xr = xc + (id * g->in[1] + ih) * g->in[2];
                            for (int64_t ow = 0; ow < wlo; ow++)
                                row[ow] = 0;
                            if (sw == 1) {
                                memcpy(row + wlo, xr + wlo + w0, (size_t)(whi - wlo) * sizeof *row);
                            } else {
                                for (int64_t ow = wlo; ow < whi; ow++)
                                    row[ow] = xr[ow * sw + w0];
                            }
                            for (int64_t ow = whi; ow < g->out[2]; ow++)
                                row[ow] = 0;
                        }
                    }
                    col += osp;
                }
    }
}

/* The adjoint of im2col: y[c, i*s - p + k*d] += col[(c, k), i]; here g->in is the column
 * grid (ConvTranspose's input) and g->out the image (its output). */
static void col2im(const float *restrict col, float *restrict y, int64_t C,
                   const sl_nn_view3_t *g) {
    int64_t csp = g->in[0] * g->in[1] * g->in[2], ysp = g->out[0] * g->out[1] * g->out[2];
    for (int64_t c = 0; c < C; c++) {
        float *yc = y + c * ysp;
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++) {
                    int64_t wlo, whi;
                    /* input columns i with 0 <= i*s - p + kw*d < out */
                    valid_range(g->in[2], g->out[2], g->s[2], g->p[2], kw * g->d[2], &wlo, &whi);
                    int64_t w0 = kw * g->d[2] - g->p[2], sw = g->s[2];
                    for (int64_t id = 0; id < g->in[0]; id++) {
                        int64_t od = id * g->s[0] - g->p[0] + kd * g->d[0];
                        if (od < 0 || od >= g->out[0]) continue;
                        for (int64_t ih = 0; ih < g->in[1]; ih++) {
                            int64_t oh = ih * g->s[1] - g->p[1] + kh * g->d[1];
                            if (oh < 0 || oh >= g->out[1]) continue;
                            const float *cr = col + (id * g->in[1] + ih) * g->in[2];
                            float *yr = yc + (od * g->out[1] + oh) * g->out[2];
                            for (int64_t iw = wlo; iw < whi; iw++)
                                yr[iw * sw + w0] += cr[iw];
                        }
                    }
                    col += csp;
                }
    }
}

/* ---- Conv ---- */

static sl_eng_status_t conv_check(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                  sl_nn_geom_t *g, int64_t *group, sl_eng_error_t *err) {
    if (n_in < 2 || !in[0] || !in[1])
        return sl_node_error(node, err, SL_ENG_EINVAL, "inputs X and W are required");
    const sl_tensor_t *x = in[0], *w = in[1], *b = n_in > 2 ? in[2] : NULL;
    if (x->dtype != SL_DT_FLOAT || w->dtype != SL_DT_FLOAT || (b && b->dtype != SL_DT_FLOAT))
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "only float32 is supported, got %s",
                             sl_dtype_name(x->dtype));
    sl_eng_status_t s = spatial_rank(node, x, err);
    if (s) return s;
    if (w->ndim != x->ndim)
        return sl_node_error(node, err, SL_ENG_ESHAPE, "W has %d dims, expected %d (as X)", w->ndim,
                             x->ndim);
    int64_t gr = *group = sl_attr_int(node, "group", 1);
    if (gr < 1 || x->dims[1] % gr != 0 || w->dims[0] % gr != 0 || w->dims[0] == 0)
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "group %lld must divide the %lld input channels and the %lld filters",
                             (long long)gr, (long long)x->dims[1], (long long)w->dims[0]);
    if (w->dims[1] * gr != x->dims[1])
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "W has %lld channels per group, expected %lld (X has %lld channels, "
                             "group %lld)",
                             (long long)w->dims[1], (long long)(x->dims[1] / gr),
                             (long long)x->dims[1], (long long)gr);
    if (b && (b->ndim != 1 || b->dims[0] != w->dims[0]))
        return sl_node_error(node, err, SL_ENG_ESHAPE, "B must be 1-D with %lld values",
                             (long long)w->dims[0]);
    return sl_nn__geom(node, x, w->dims + 2, false, g, err);
}

static sl_eng_status_t conv_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_nn_geom_t g;
    int64_t group = 1;
    sl_eng_status_t s = conv_check(node, in, n_in, &g, &group, err);
    if (s) return s;
    out[0].dtype = SL_DT_FLOAT;
    out[0].ndim = in[0]->ndim;
    out[0].dims[0] = in[0]->dims[0];
    out[0].dims[1] = in[1]->dims[0];
    for (int i = 0; i < g.nsp; i++)
        out[0].dims[2 + i] = g.out[i];
    return SL_ENG_OK;
}

/* im2col split over input channels (each writes its own rows of col) by sl_par_for. */
typedef struct im2col_job {
    const float *x;
    float *col;
    const sl_nn_view3_t *g;
    int64_t isp, rows; /* input plane size; col rows per channel (kernel taps) times osp */
} im2col_job_t;

static void im2col_chunk(void *ctx, int64_t b, int64_t e) {
    const im2col_job_t *j = ctx;
    im2col(j->x + b * j->isp, j->col + b * j->rows, e - b, j->g);
}

static sl_eng_status_t conv_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    sl_nn_geom_t geom;
    int64_t group = 1;
    sl_eng_status_t s = conv_check(node, in, n_in, &geom, &group, k->err);
    if (s) return s;
    const sl_tensor_t *x = in[0], *w = in[1], *b = n_in > 2 ? in[2] : NULL;
    sl_nn_view3_t g;
    sl_nn__view3(&geom, &g);
    int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0];
    int64_t Cg = C / group, Mg = M / group;
    int64_t ksp = g.k[0] * g.k[1] * g.k[2], kdim = Cg * ksp;
    int64_t isp = g.in[0] * g.in[1] * g.in[2], osp = g.out[0] * g.out[1] * g.out[2];
    bool direct = ksp == 1;
    for (int i = 0; i < 3; i++)
        direct = direct && g.s[i] == 1 && g.p[i] == 0 && g.in[i] == g.out[i];
    if (Mg > INT32_MAX || osp > INT32_MAX || kdim > INT32_MAX)
        return sl_node_error(node, k->err, SL_ENG_ELIMIT, "matrix sizes exceed the BLAS int range");
    float *col = NULL;
    if (!direct && kdim * osp > 0) {
        col = k->scratch(k, (size_t)(kdim * osp) * sizeof *col);
        if (!col) return SL_ENG_ENOMEM;
    }
    const float *xd = x->data, *wd = w->data, *bd = b ? b->data : NULL;
    float *yd = out[0].data;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t gi = 0; gi < group; gi++) {
            const float *xg = xd + (n * C + gi * Cg) * isp;
            float *yg = yd + (n * M + gi * Mg) * osp;
            for (int64_t m = 0; m < Mg; m++) {
                float bv = bd ? bd[gi * Mg + m] : 0.0f;
                float *ym = yg + m * osp;
                for (int64_t i = 0; i < osp; i++)
                    ym[i] = bv;
            }
            if (kdim == 0 || osp == 0) continue;
            const float *cm = xg;
            if (!direct) {
                im2col_job_t j = {.x = xg, .col = col, .g = &g, .isp = isp, .rows = ksp * osp};
                sl_par_for(k, Cg, 1 + (1 << 15) / (ksp * osp), im2col_chunk, &j);
                cm = col;
            }
            sl_sgemm(k, false, false, Mg, osp, kdim, 1.0f, wd + gi * Mg * kdim, kdim, cm, osp, 1.0f,
                     yg, osp);
        }
    }
    return SL_ENG_OK;
}

/* ---- ConvTranspose ---- */

static sl_eng_status_t convt_check(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                   sl_nn_view3_t *g3, int64_t *group, int64_t *out_sp,
                                   sl_eng_error_t *err) {
    if (n_in < 2 || !in[0] || !in[1])
        return sl_node_error(node, err, SL_ENG_EINVAL, "inputs X and W are required");
    const sl_tensor_t *x = in[0], *w = in[1], *b = n_in > 2 ? in[2] : NULL;
    if (x->dtype != SL_DT_FLOAT || w->dtype != SL_DT_FLOAT || (b && b->dtype != SL_DT_FLOAT))
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "only float32 is supported, got %s",
                             sl_dtype_name(x->dtype));
    sl_eng_status_t s = spatial_rank(node, x, err);
    if (s) return s;
    if (w->ndim != x->ndim || w->dims[0] != x->dims[1])
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "W must have %d dims and %lld input channels first", x->ndim,
                             (long long)x->dims[1]);
    int64_t gr = *group = sl_attr_int(node, "group", 1);
    if (gr < 1 || x->dims[1] % gr != 0)
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "group %lld must divide the %lld input channels", (long long)gr,
                             (long long)x->dims[1]);
    int64_t M = w->dims[1] * gr;
    if (b && (b->ndim != 1 || b->dims[0] != M))
        return sl_node_error(node, err, SL_ENG_ESHAPE, "B must be 1-D with %lld values",
                             (long long)M);
    int nsp = x->ndim - 2;
    size_t n = (size_t)nsp;
    int64_t kern[SL_MAX_DIMS], st[SL_MAX_DIMS], dil[SL_MAX_DIMS], opad[SL_MAX_DIMS];
    int64_t pads[2 * SL_MAX_DIMS], oshape[SL_MAX_DIMS];
    if (!pos_ints(w->dims + 2, n, 1))
        return sl_node_error(node, err, SL_ENG_ESHAPE, "weight has an empty kernel");
    if ((s = geom_ints(node, "kernel_shape", n, 1, 1, kern, err))) return s;
    if (sl_attr_get(node, "kernel_shape") && memcmp(kern, w->dims + 2, n * sizeof *kern) != 0)
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "attribute 'kernel_shape' contradicts the weight's dims");
    memcpy(kern, w->dims + 2, n * sizeof *kern);
    if ((s = geom_ints(node, "strides", n, 1, 1, st, err))) return s;
    if ((s = geom_ints(node, "dilations", n, 1, 1, dil, err))) return s;
    if ((s = geom_ints(node, "output_padding", n, 0, 0, opad, err))) return s;
    if ((s = geom_ints(node, "pads", 2 * n, 0, 0, pads, err))) return s;
    size_t osc;
    const int64_t *os = sl_attr_ints(node, "output_shape", &osc);
    if (os) {
        /* Spatial sizes only, or N, C and the spatial sizes: keep the last nsp. */
        if ((osc != n && osc != n + 2) || !pos_ints(os + (osc - n), n, 1))
            return sl_node_error(node, err, SL_ENG_EINVAL,
                                 "attribute 'output_shape' must hold %d sizes >= 1", nsp);
        memcpy(oshape, os + (osc - n), n * sizeof *oshape);
    }
    int ap = auto_pad(node);
    if (ap < 0)
        return sl_node_error(node, err, SL_ENG_EINVAL, "attribute 'auto_pad' is '%s'",
                             sl_attr_string(node, "auto_pad", ""));
    sl_nn_geom_t g = {.nsp = nsp};
    int64_t total = x->dims[0] * M;
    for (int i = 0; i < nsp; i++) {
        int64_t inn = x->dims[2 + i], eff = (kern[i] - 1) * dil[i] + 1, out;
        int64_t full = st[i] * (inn - 1) + opad[i] + eff;
        if (os || ap == 1 || ap == 2) {
            out = os ? oshape[i] : inn * st[i];
            int64_t tp = full - out;
            int64_t half = sl_nn__floordiv(tp, 2);
            g.pad_begin[i] = ap == 1 ? half : tp - half;
        } else {
            g.pad_begin[i] = ap == 3 ? 0 : pads[i];
            out = full - (ap == 3 ? 0 : pads[i] + pads[nsp + i]);
        }
        if (out < 1)
            return sl_node_error(node, err, SL_ENG_ESHAPE, "spatial axis %d has output size %lld",
                                 i, (long long)out);
        g.kernel[i] = kern[i];
        g.stride[i] = st[i];
        g.dilation[i] = dil[i];
        g.in[i] = inn;
        g.out[i] = out_sp[i] = out;
        if (__builtin_mul_overflow(total, out, &total) || total > MAX_OUT_ELEMS)
            return sl_node_error(node, err, SL_ENG_ELIMIT, "output is too large");
    }
    sl_nn__view3(&g, g3);
    return SL_ENG_OK;
}

static sl_eng_status_t convt_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                   sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_nn_view3_t g;
    int64_t group, osp[SL_MAX_DIMS];
    sl_eng_status_t s = convt_check(node, in, n_in, &g, &group, osp, err);
    if (s) return s;
    out[0].dtype = SL_DT_FLOAT;
    out[0].ndim = in[0]->ndim;
    out[0].dims[0] = in[0]->dims[0];
    out[0].dims[1] = in[1]->dims[1] * group;
    for (int i = 0; i < in[0]->ndim - 2; i++)
        out[0].dims[2 + i] = osp[i];
    return SL_ENG_OK;
}

static sl_eng_status_t convt_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    sl_nn_view3_t g;
    int64_t group, ospv[SL_MAX_DIMS];
    sl_eng_status_t s = convt_check(node, in, n_in, &g, &group, ospv, k->err);
    if (s) return s;
    const sl_tensor_t *x = in[0], *w = in[1], *b = n_in > 2 ? in[2] : NULL;
    int64_t N = x->dims[0], C = x->dims[1], Cg = C / group, Mg = w->dims[1], M = Mg * group;
    int64_t ksp = g.k[0] * g.k[1] * g.k[2], rows = Mg * ksp;
    int64_t isp = g.in[0] * g.in[1] * g.in[2], osp = g.out[0] * g.out[1] * g.out[2];
    if (rows > INT32_MAX || isp > INT32_MAX || Cg > INT32_MAX)
        return sl_node_error(node, k->err, SL_ENG_ELIMIT, "matrix sizes exceed the BLAS int range");
    float *col = NULL;
    if (rows * isp > 0) {
        col = k->scratch(k, (size_t)(rows * isp) * sizeof *col);
        if (!col) return SL_ENG_ENOMEM;
    }
    const float *xd = x->data, *wd = w->data, *bd = b ? b->data : NULL;
    float *yd = out[0].data;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t gi = 0; gi < group; gi++) {
            float *yg = yd + (n * M + gi * Mg) * osp;
            for (int64_t m = 0; m < Mg; m++) {
                float bv = bd ? bd[gi * Mg + m] : 0.0f;
                for (int64_t i = 0; i < osp; i++)
                    yg[m * osp + i] = bv;
            }
            if (rows * isp == 0 || Cg == 0) continue;
            /* col[(m, k), i] = sum_c W[c, m, k] * X[c, i] */
            sl_sgemm(k, true, false, rows, isp, Cg, 1.0f, wd + gi * Cg * rows, rows,
                     xd + (n * C + gi * Cg) * isp, isp, 0.0f, col, isp);
            col2im(col, yg, Mg, &g);
        }
    }
    return SL_ENG_OK;
}

#define NN(name, fn, v)                                                                            \
    {                                                                                              \
        .op_type = name, .domain = "", .since = v, .infer = sl_nn__##fn##_infer,                   \
        .run = sl_nn__##fn##_run                                                                   \
    }

const sl_op_t sl_ops_nn[] = {
    {.op_type = "Conv", .domain = "", .since = 1, .infer = conv_infer, .run = conv_run},
    {.op_type = "ConvTranspose", .domain = "", .since = 1, .infer = convt_infer, .run = convt_run},
    NN("MaxPool", pool, 1),
    NN("AveragePool", pool, 1),
    NN("GlobalAveragePool", global_pool, 1),
    NN("GlobalMaxPool", global_pool, 1),
    NN("LRN", lrn, 1),
    NN("BatchNormalization", batchnorm, 1),
    NN("InstanceNormalization", instancenorm, 1),
    NN("LayerNormalization", layernorm, 17),
    NN("Resize", resize, 10),
    NN("Upsample", resize, 7),
    {.op_type = NULL},
};
