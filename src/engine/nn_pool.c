/* CPU kernels: MaxPool (with the optional Indices output), AveragePool, GlobalAveragePool,
 * GlobalMaxPool and LRN over N, C and 1 to 3 spatial axes. Listed in ops_nn.c's table. */
#include "engine/nn_common.h"
#include "engine/op.h"

#include <math.h>
#include <string.h>

/* Per output position along one axis: the kernel taps [lo, hi) that land in [lo_b, hi_b). */
static void taps(int64_t start, int64_t dil, int64_t k, int64_t lo_b, int64_t hi_b, int64_t *lo,
                 int64_t *hi) {
    int64_t l = 0, h = k;
    if (start < lo_b) l = (lo_b - start + dil - 1) / dil;
    if (start + (k - 1) * dil >= hi_b) h = hi_b - 1 - start < 0 ? 0 : (hi_b - 1 - start) / dil + 1;
    if (h > k) h = k;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

static bool is_max(const sl_node_t *node) {
    return strcmp(node->op_type, "MaxPool") == 0;
}

static sl_eng_status_t pool_check(const sl_node_t *node, const sl_tensor_t *x, sl_nn_geom_t *g,
                                  sl_eng_error_t *err) {
    bool ok = x->dtype == SL_DT_FLOAT ||
              (is_max(node) &&
               (x->dtype == SL_DT_UINT8 || x->dtype == SL_DT_INT8 || x->dtype == SL_DT_DOUBLE));
    if (!ok)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "input dtype %s is not supported",
                             sl_dtype_name(x->dtype));
    if (sl_attr_int(node, "storage_order", 0) != 0 && sl_attr_int(node, "storage_order", 0) != 1)
        return sl_node_error(node, err, SL_ENG_EINVAL, "attribute 'storage_order' must be 0 or 1");
    return sl_nn__geom(node, x, NULL, node->opset >= 10, g, err);
}

sl_eng_status_t sl_nn__pool_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    sl_nn_geom_t g;
    sl_eng_status_t s = pool_check(node, in[0], &g, err);
    if (s) return s;
    out[0] = *in[0];
    out[0].data = NULL;
    for (int i = 0; i < g.nsp; i++)
        out[0].dims[2 + i] = g.out[i];
    if (n_out > 1) {
        if (!is_max(node))
            return sl_node_error(node, err, SL_ENG_EINVAL, "AveragePool has one output");
        out[1] = out[0];
        out[1].dtype = SL_DT_INT64;
    }
    return SL_ENG_OK;
}

/* Max over the taps inside the input; Indices (when wanted) are flat over N*C*spatial, row- or
 * column-major over the spatial axes. */
#define DEF_MAXPOOL(T, LOWEST)                                                                     \
    static void maxpool_##T(const T *restrict x, T *restrict y, int64_t *restrict idx,             \
                            int64_t nc0, int64_t NC, const sl_nn_view3_t *g, bool colmajor) {      \
        int64_t isp = g->in[0] * g->in[1] * g->in[2];                                              \
        for (int64_t nc = nc0; nc < NC; nc++) {                                                    \
            const T *xc = x + nc * isp;                                                            \
            for (int64_t od = 0; od < g->out[0]; od++) {                                           \
                int64_t sd = od * g->s[0] - g->p[0], dl, dh;                                       \
                taps(sd, g->d[0], g->k[0], 0, g->in[0], &dl, &dh);                                 \
                for (int64_t oh = 0; oh < g->out[1]; oh++) {                                       \
                    int64_t sh = oh * g->s[1] - g->p[1], hl, hh;                                   \
                    taps(sh, g->d[1], g->k[1], 0, g->in[1], &hl, &hh);                             \
                    for (int64_t ow = 0; ow < g->out[2]; ow++) {                                   \
                        int64_t sw = ow * g->s[2] - g->p[2], wl, wh;                               \
                        taps(sw, g->d[2], g->k[2], 0, g->in[2], &wl, &wh);                         \
                        T m = LOWEST;                                                              \
                        int64_t at = -1;                                                           \
                        for (int64_t a = dl; a < dh; a++) {                                        \
                            int64_t id = sd + a * g->d[0];                                         \
                            for (int64_t b = hl; b < hh; b++) {                                    \
                                int64_t ih = sh + b * g->d[1];                                     \
                                const T *xr = xc + (id * g->in[1] + ih) * g->in[2];                \
                                for (int64_t c = wl; c < wh; c++) {                                \
                                    int64_t iw = sw + c * g->d[2];                                 \
                                    if (at < 0 || xr[iw] > m) {                                    \
                                        m = xr[iw];                                                \
                                        at = colmajor ? id + g->in[0] * (ih + g->in[1] * iw)       \
                                                      : (id * g->in[1] + ih) * g->in[2] + iw;      \
                                    }                                                              \
                                }                                                                  \
                            }                                                                      \
                        }                                                                          \
                        int64_t o =                                                                \
                            (nc * g->out[0] + od) * g->out[1] * g->out[2] + oh * g->out[2] + ow;   \
                        y[o] = m;                                                                  \
                        if (idx) idx[o] = at < 0 ? -1 : nc * isp + at;                             \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEF_MAXPOOL(float, -INFINITY)
DEF_MAXPOOL(double, -INFINITY)
DEF_MAXPOOL(uint8_t, 0)
DEF_MAXPOOL(int8_t, INT8_MIN)

/* Mean over the taps inside the input; the divisor counts the taps inside the padded input
 * instead when count_include_pad is set. */
static void avgpool(const float *restrict x, float *restrict y, int64_t nc0, int64_t NC,
                    const sl_nn_view3_t *g, bool include_pad) {
    int64_t isp = g->in[0] * g->in[1] * g->in[2];
    for (int64_t nc = nc0; nc < NC; nc++) {
        const float *xc = x + nc * isp;
        for (int64_t od = 0; od < g->out[0]; od++) {
            int64_t sd = od * g->s[0] - g->p[0], dl, dh, pdl, pdh;
            taps(sd, g->d[0], g->k[0], 0, g->in[0], &dl, &dh);
            taps(sd, g->d[0], g->k[0], -g->p[0], g->in[0] + g->pe[0], &pdl, &pdh);
            for (int64_t oh = 0; oh < g->out[1]; oh++) {
                int64_t sh = oh * g->s[1] - g->p[1], hl, hh, phl, phh;
                taps(sh, g->d[1], g->k[1], 0, g->in[1], &hl, &hh);
                taps(sh, g->d[1], g->k[1], -g->p[1], g->in[1] + g->pe[1], &phl, &phh);
                for (int64_t ow = 0; ow < g->out[2]; ow++) {
                    int64_t sw = ow * g->s[2] - g->p[2], wl, wh, pwl, pwh;
                    taps(sw, g->d[2], g->k[2], 0, g->in[2], &wl, &wh);
                    taps(sw, g->d[2], g->k[2], -g->p[2], g->in[2] + g->pe[2], &pwl, &pwh);
                    float sum = 0;
                    for (int64_t a = dl; a < dh; a++) {
                        int64_t id = sd + a * g->d[0];
                        for (int64_t b = hl; b < hh; b++) {
                            const float *xr = xc + (id * g->in[1] + sh + b * g->d[1]) * g->in[2];
                            for (int64_t c = wl; c < wh; c++)
                                sum += xr[sw + c * g->d[2]];
                        }
                    }
                    int64_t cnt = include_pad ? (pdh - pdl) * (phh - phl) * (pwh - pwl)
                                              : (dh - dl) * (hh - hl) * (wh - wl);
                    int64_t o = (nc * g->out[0] + od) * g->out[1] * g->out[2] + oh * g->out[2] + ow;
                    y[o] = cnt > 0 ? sum / (float)cnt : 0.0f;
                }
            }
        }
    }
}

/* The common case, 2-D float max pooling whose windows all lie inside the input (no padding,
 * no dilation, no indices output): fixed loops the compiler vectorises, 5-10x faster than the
 * general walk above. Same comparison as the general path (a tap replaces the maximum only when
 * greater), so NaN handling is identical. */
static bool maxpool2d_fast_ok(const sl_nn_view3_t *g, const int64_t *idx) {
    if (idx || g->in[0] != 1 || g->k[0] != 1) return false;
    for (int i = 1; i < 3; i++) {
        if (g->d[i] != 1 || g->p[i] != 0 || g->out[i] < 1) return false;
        if ((g->out[i] - 1) * g->s[i] + g->k[i] > g->in[i]) return false;
    }
    return true;
}

static void maxpool2d_fast(const float *restrict x, float *restrict y, int64_t nc0, int64_t NC,
                           const sl_nn_view3_t *g) {
    const int64_t ih = g->in[1], iw = g->in[2], oh = g->out[1], ow = g->out[2];
    const int64_t kh = g->k[1], kw = g->k[2], sh = g->s[1], sw = g->s[2];
    for (int64_t nc = nc0; nc < NC; nc++) {
        const float *xc = x + nc * ih * iw;
        float *yc = y + nc * oh * ow;
        for (int64_t r = 0; r < oh; r++) {
            const float *row = xc + r * sh * iw;
            float *yr = yc + r * ow;
            if (kh == 2 && kw == 2 && sw == 2) {
                const float *r0 = row, *r1 = row + iw;
                for (int64_t c = 0; c < ow; c++) {
                    float m = r0[2 * c];
                    m = r0[2 * c + 1] > m ? r0[2 * c + 1] : m;
                    m = r1[2 * c] > m ? r1[2 * c] : m;
                    m = r1[2 * c + 1] > m ? r1[2 * c + 1] : m;
                    yr[c] = m;
                }
                continue;
            }
            for (int64_t c = 0; c < ow; c++)
                yr[c] = row[c * sw];
            for (int64_t a = 0; a < kh; a++) {
                const float *ra = row + a * iw;
                for (int64_t b = (a == 0); b < kw; b++) {
                    for (int64_t c = 0; c < ow; c++) {
                        float v = ra[c * sw + b];
                        yr[c] = v > yr[c] ? v : yr[c];
                    }
                }
            }
        }
    }
}

/* One pooling call, split over the N*C planes by sl_par_for. */
typedef struct pool_job {
    const sl_tensor_t *x;
    sl_tensor_t *y;
    int64_t *idx;
    const sl_nn_view3_t *g;
    bool max, flag; /* flag: count_include_pad (average) or storage_order 1 (max) */
} pool_job_t;

static void pool_planes(void *ctx, int64_t b, int64_t e) {
    const pool_job_t *j = ctx;
    const void *x = j->x->data;
    void *y = j->y->data;
    if (!j->max) {
        avgpool(x, y, b, e, j->g, j->flag);
        return;
    }
    switch (j->x->dtype) {
    case SL_DT_FLOAT:
        if (maxpool2d_fast_ok(j->g, j->idx)) {
            maxpool2d_fast(x, y, b, e, j->g);
            break;
        }
        maxpool_float(x, y, j->idx, b, e, j->g, j->flag);
        break;
    case SL_DT_DOUBLE:
        maxpool_double(x, y, j->idx, b, e, j->g, j->flag);
        break;
    case SL_DT_UINT8:
        maxpool_uint8_t(x, y, j->idx, b, e, j->g, j->flag);
        break;
    default:
        maxpool_int8_t(x, y, j->idx, b, e, j->g, j->flag);
        break;
    }
}

sl_eng_status_t sl_nn__pool_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    sl_nn_geom_t geom;
    sl_eng_status_t s = pool_check(node, x, &geom, k->err);
    if (s) return s;
    sl_nn_view3_t g;
    sl_nn__view3(&geom, &g);
    int64_t NC = x->dims[0] * x->dims[1];
    pool_job_t j = {.x = x, .y = &out[0], .g = &g, .max = is_max(node)};
    if (j.max) {
        if (x->dtype != SL_DT_FLOAT && x->dtype != SL_DT_DOUBLE && x->dtype != SL_DT_UINT8 &&
            x->dtype != SL_DT_INT8)
            return sl_node_error(node, k->err, SL_ENG_EUNSUPPORTED, "input dtype %s",
                                 sl_dtype_name(x->dtype));
        j.idx = n_out > 1 && out[1].data ? out[1].data : NULL;
        j.flag = sl_attr_int(node, "storage_order", 0) == 1;
    } else {
        j.flag = sl_attr_int(node, "count_include_pad", 0) != 0;
    }
    /* Work per plane: its outputs times the taps of each; chunks of at least ~64K taps. */
    int64_t per = g.out[0] * g.out[1] * g.out[2] * g.k[0] * g.k[1] * g.k[2];
    sl_par_for(k, NC, per > 0 ? 1 + (1 << 16) / per : NC, pool_planes, &j);
    return SL_ENG_OK;
}

/* ---- GlobalAveragePool, GlobalMaxPool ---- */

sl_eng_status_t sl_nn__global_pool_infer(const sl_node_t *node, const sl_tensor_t *const *in,
                                         int n_in, sl_tensor_t *out, int n_out,
                                         sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    if (x->dtype != SL_DT_FLOAT)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "input dtype %s is not supported",
                             sl_dtype_name(x->dtype));
    if (x->ndim < 3)
        return sl_node_error(node, err, SL_ENG_ESHAPE,
                             "input X has %d dims, expected N, C and spatial dims", x->ndim);
    out[0] = *x;
    out[0].data = NULL;
    for (int d = 2; d < x->ndim; d++)
        out[0].dims[d] = 1;
    return SL_ENG_OK;
}

sl_eng_status_t sl_nn__global_pool_run(const sl_node_t *node, const sl_tensor_t *const *in,
                                       int n_in, sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int64_t NC = x->dims[0] * x->dims[1], sp = 1;
    for (int d = 2; d < x->ndim; d++)
        sp *= x->dims[d];
    const float *xd = x->data;
    float *y = out[0].data;
    bool mx = strcmp(node->op_type, "GlobalMaxPool") == 0;
    for (int64_t c = 0; c < NC; c++) {
        const float *restrict xc = xd + c * sp;
        if (mx) {
            float m = -INFINITY;
            for (int64_t i = 0; i < sp; i++)
                m = xc[i] > m ? xc[i] : m;
            y[c] = m;
        } else {
            float s[4] = {0, 0, 0, 0};
            int64_t i = 0;
            for (; i + 4 <= sp; i += 4) {
                s[0] += xc[i];
                s[1] += xc[i + 1];
                s[2] += xc[i + 2];
                s[3] += xc[i + 3];
            }
            for (; i < sp; i++)
                s[0] += xc[i];
            y[c] = sp > 0 ? ((s[0] + s[1]) + (s[2] + s[3])) / (float)sp : 0.0f;
        }
    }
    return SL_ENG_OK;
}

/* ---- LRN ---- */

sl_eng_status_t sl_nn__lrn_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                 sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    if (x->dtype != SL_DT_FLOAT)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED, "input dtype %s is not supported",
                             sl_dtype_name(x->dtype));
    if (x->ndim < 2)
        return sl_node_error(node, err, SL_ENG_ESHAPE, "input X has %d dims, expected N, C, ...",
                             x->ndim);
    int64_t size = sl_attr_int(node, "size", 0);
    if (size < 1 || size > (INT64_C(1) << 31))
        return sl_node_error(node, err, SL_ENG_EINVAL, "attribute 'size' must be >= 1, got %lld",
                             (long long)size);
    out[0] = *x;
    out[0].data = NULL;
    return SL_ENG_OK;
}

/* y[c] = x[c] / (bias + alpha / size * sum of x^2 over channels [c - (size-1)/2,
 * c + ceil((size-1)/2)])^beta, vectorised over the spatial positions. */
sl_eng_status_t sl_nn__lrn_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                               sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    const sl_tensor_t *x = in[0];
    int64_t size = sl_attr_int(node, "size", 1);
    float alpha = sl_attr_float(node, "alpha", 1e-4f), beta = sl_attr_float(node, "beta", 0.75f);
    float bias = sl_attr_float(node, "bias", 1.0f);
    int64_t N = x->dims[0], C = x->dims[1], sp = 1;
    for (int d = 2; d < x->ndim; d++)
        sp *= x->dims[d];
    if (N * C * sp == 0) return SL_ENG_OK;
    float *acc = k->scratch(k, (size_t)sp * sizeof *acc);
    if (!acc) return SL_ENG_ENOMEM;
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    float scale = alpha / (float)size;
    const float *xd = x->data;
    float *yd = out[0].data;
    for (int64_t n = 0; n < N; n++) {
        const float *xn = xd + n * C * sp;
        float *yn = yd + n * C * sp;
        for (int64_t c = 0; c < C; c++) {
            int64_t lo = c - before < 0 ? 0 : c - before, hi = c + after >= C ? C - 1 : c + after;
            for (int64_t i = 0; i < sp; i++)
                acc[i] = 0;
            for (int64_t q = lo; q <= hi; q++) {
                const float *restrict xq = xn + q * sp;
                for (int64_t i = 0; i < sp; i++)
                    acc[i] += xq[i] * xq[i];
            }
            for (int64_t i = 0; i < sp; i++)
                yn[c * sp + i] = xn[c * sp + i] / powf(bias + scale * acc[i], beta);
        }
    }
    return SL_ENG_OK;
}
