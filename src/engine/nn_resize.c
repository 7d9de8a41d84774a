/* CPU kernels: Resize (opsets 10, 11, 13: nearest, linear and cubic, every coordinate
 * transformation mode) and Upsample (opsets 7 and 9). The interpolations are separable, so the
 * tensor is resampled one axis at a time: for each output coordinate a few (index, weight) taps
 * are computed once per axis, then applied to whole inner rows. Listed in ops_nn.c's table. */
#include "engine/nn_common.h"
#include "engine/op.h"

#include <math.h>
#include <string.h>

#define MAX_DIM (INT64_C(1) << 40)

enum { M_NEAREST, M_LINEAR, M_CUBIC };
enum {
    C_HALF_PIXEL,
    C_PYTORCH_HALF_PIXEL,
    C_ALIGN_CORNERS,
    C_ASYMMETRIC,
    C_TF_HALF_PIXEL_NN,
    C_TF_CROP_AND_RESIZE
};
enum { N_ROUND_PREFER_FLOOR, N_ROUND_PREFER_CEIL, N_FLOOR, N_CEIL, N_SIMPLE };

typedef struct {
    int mode, ctm, nearest;
    float cubic_a, extrap;
    bool exclude_outside;
    double scale[SL_MAX_DIMS];
    int64_t out[SL_MAX_DIMS];
    double roi[2 * SL_MAX_DIMS];
    bool has_roi;
} rs_t;

static int lookup(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* Reads the float values of t (float32 or float64) into out; -1 when t is unusable. */
static int read_floats(const sl_tensor_t *t, double *out, int max) {
    int64_t n = sl_tensor_numel(t);
    if (n > max) return -1;
    if (n > 0 && !t->data) return -1; /* values unknown (shape inference at load) */
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == SL_DT_FLOAT)
            out[i] = ((const float *)t->data)[i];
        else if (t->dtype == SL_DT_DOUBLE)
            out[i] = ((const double *)t->data)[i];
        else
            return -1;
    }
    return (int)n;
}

static sl_eng_status_t rs_params(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                 rs_t *p, sl_eng_error_t *err) {
    const sl_tensor_t *x = in[0];
    int r = x->ndim;
    bool upsample = strcmp(node->op_type, "Upsample") == 0;
    bool v11 = !upsample && node->opset >= 11;
    if (x->dtype != SL_DT_FLOAT)
        return sl_node_error(node, err, SL_ENG_EUNSUPPORTED,
                             "input dtype %s is not supported (float32)", sl_dtype_name(x->dtype));
    if (r < 1) return sl_node_error(node, err, SL_ENG_ESHAPE, "input X must have at least 1 dim");
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    const char *ms = sl_attr_string(node, "mode", "nearest");
    p->mode = lookup(ms, modes, v11 ? 3 : 2);
    if (p->mode < 0 && !v11 && strcmp(ms, "bilinear") == 0) p->mode = M_LINEAR;
    if (p->mode < 0)
        return sl_node_error(node, err, SL_ENG_EINVAL, "mode '%s' is not supported", ms);
    p->ctm = C_ASYMMETRIC;
    p->nearest = N_SIMPLE;
    p->cubic_a = sl_attr_float(node, "cubic_coeff_a", -0.75f);
    p->exclude_outside = sl_attr_int(node, "exclude_outside", 0) != 0;
    p->extrap = sl_attr_float(node, "extrapolation_value", 0.0f);
    p->has_roi = false;
    if (v11) {
        static const char *const ctms[] = {"half_pixel",           "pytorch_half_pixel",
                                           "align_corners",        "asymmetric",
                                           "tf_half_pixel_for_nn", "tf_crop_and_resize"};
        static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                          "ceil"};
        const char *cs = sl_attr_string(node, "coordinate_transformation_mode", "half_pixel");
        const char *ns = sl_attr_string(node, "nearest_mode", "round_prefer_floor");
        p->ctm = lookup(cs, ctms, 6);
        p->nearest = lookup(ns, nms, 4);
        if (p->ctm < 0)
            return sl_node_error(node, err, SL_ENG_EINVAL,
                                 "coordinate_transformation_mode '%s' is not supported", cs);
        if (p->nearest < 0)
            return sl_node_error(node, err, SL_ENG_EINVAL, "nearest_mode '%s' is not supported",
                                 ns);
    }
    /* Scales and sizes. */
    const sl_tensor_t *scales = NULL, *sizes = NULL, *roi = NULL;
    if (upsample && node->opset < 9) {
        size_t n;
        const float *f = sl_attr_floats(node, "scales", &n);
        if (!f || n != (size_t)r)
            return sl_node_error(node, err, SL_ENG_EINVAL, "attribute 'scales' must hold %d values",
                                 r);
        for (int i = 0; i < r; i++)
            p->scale[i] = f[i];
    } else if (!v11) {
        scales = n_in > 1 ? in[1] : NULL;
        if (!scales) return sl_node_error(node, err, SL_ENG_EINVAL, "input 'scales' is required");
    } else {
        roi = n_in > 1 ? in[1] : NULL;
        scales = n_in > 2 ? in[2] : NULL;
        sizes = n_in > 3 ? in[3] : NULL;
        if (scales && sl_tensor_numel(scales) == 0) scales = NULL;
        if (sizes && sl_tensor_numel(sizes) == 0) sizes = NULL;
        if (!scales == !sizes)
            return sl_node_error(node, err, SL_ENG_EINVAL,
                                 "exactly one of 'scales' and 'sizes' must be given");
    }
    if (scales && read_floats(scales, p->scale, SL_MAX_DIMS) != r)
        return sl_node_error(node, err, SL_ENG_EINVAL,
                             "input 'scales' must be a float tensor of %d values", r);
    if (sizes) {
        if (sl_nn__read_ints(sizes, p->out, SL_MAX_DIMS) != r)
            return sl_node_error(node, err, SL_ENG_EINVAL,
                                 "input 'sizes' must be an int64 tensor of %d values", r);
        for (int i = 0; i < r; i++) {
            if (p->out[i] < 0 || p->out[i] > MAX_DIM)
                return sl_node_error(node, err, SL_ENG_EINVAL, "sizes[%d] = %lld is out of range",
                                     i, (long long)p->out[i]);
            p->scale[i] = x->dims[i] > 0 ? (double)p->out[i] / (double)x->dims[i] : 1.0;
        }
    } else {
        for (int i = 0; i < r; i++) {
            double o = floor((double)x->dims[i] * p->scale[i]);
            if (!(p->scale[i] > 0) || !(o <= (double)MAX_DIM))
                return sl_node_error(node, err, SL_ENG_EINVAL,
                                     "scales[%d] = %g is not a usable positive scale", i,
                                     p->scale[i]);
            p->out[i] = (int64_t)o;
        }
    }
    if (p->ctm == C_TF_CROP_AND_RESIZE) {
        if (!roi || read_floats(roi, p->roi, 2 * SL_MAX_DIMS) != 2 * r)
            return sl_node_error(node, err, SL_ENG_EINVAL,
                                 "tf_crop_and_resize needs input 'roi' with %d values", 2 * r);
        p->has_roi = true;
    }
    int64_t total = 1;
    for (int i = 0; i < r; i++)
        if (__builtin_mul_overflow(total, p->out[i], &total) || total > MAX_DIM)
            return sl_node_error(node, err, SL_ENG_ELIMIT, "output is too large");
    return SL_ENG_OK;
}

sl_eng_status_t sl_nn__resize_infer(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                    sl_tensor_t *out, int n_out, sl_eng_error_t *err) {
    rs_t p;
    sl_eng_status_t s = rs_params(node, in, n_in, &p, err);
    if (s) return s;
    out[0] = *in[0];
    out[0].data = NULL;
    memcpy(out[0].dims, p.out, (size_t)in[0]->ndim * sizeof p.out[0]);
    return SL_ENG_OK;
}

/* The input coordinate of output coordinate xo along axis a; *outside for tf_crop_and_resize
 * coordinates that fall outside the input. As in ONNX's reference, the output length in these
 * formulas is in * scale, not rounded (it differs from the output size for scales). */
static double src_coord(const rs_t *p, int a, int r, int64_t xo, int64_t lin, bool *outside) {
    double s = p->scale[a], x, lout = (double)lin * s;
    *outside = false;
    switch (p->ctm) {
    case C_HALF_PIXEL:
        return ((double)xo + 0.5) / s - 0.5;
    case C_PYTORCH_HALF_PIXEL:
        return lout > 1 ? ((double)xo + 0.5) / s - 0.5 : 0.0;
    case C_ALIGN_CORNERS:
        return lout == 1 ? 0.0 : (double)xo * (double)(lin - 1) / (lout - 1);
    case C_TF_HALF_PIXEL_NN:
        return ((double)xo + 0.5) / s;
    case C_TF_CROP_AND_RESIZE: {
        double st = p->roi[a], en = p->roi[r + a];
        x = lout > 1
                ? st * (double)(lin - 1) + (double)xo * (en - st) * (double)(lin - 1) / (lout - 1)
                : 0.5 * (st + en) * (double)(lin - 1);
        *outside = x < 0 || x > (double)(lin - 1);
        return x;
    }
    default:
        return (double)xo / s;
    }
}

static int64_t nearest_index(const rs_t *p, double x, double scale) {
    double f = floor(x);
    switch (p->nearest) {
    case N_ROUND_PREFER_FLOOR:
        return (int64_t)(x - f == 0.5 ? f : round(x));
    case N_ROUND_PREFER_CEIL:
        return (int64_t)(x - f == 0.5 ? f + 1 : round(x));
    case N_FLOOR:
        return (int64_t)f;
    case N_CEIL:
        return (int64_t)ceil(x);
    default:
        return (int64_t)(scale < 1 ? ceil(x) : f);
    }
}

static void cubic_coeffs(double t, double A, double c[4]) {
    double u = t + 1, v = 1 - t, w = 2 - t;
    c[0] = ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
    c[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
    c[2] = ((A + 2) * v - (A + 3)) * v * v + 1;
    c[3] = ((A * w - 5 * A) * w + 8 * A) * w - 4 * A;
}

#define MAX_TAPS 4

/* Taps for axis a: idx[j*4 + t], w[j*4 + t]; ntap per mode; ext[j] when the output coordinate
 * takes the extrapolation value. Returns true when the mapping is the identity. */
static bool axis_taps(const rs_t *p, int a, int r, int64_t lin, int64_t lout, int64_t *idx,
                      float *w, bool *ext, int *ntap) {
    int nt = *ntap = p->mode == M_NEAREST ? 1 : p->mode == M_LINEAR ? 2 : 4;
    bool ident = lin == lout;
    for (int64_t j = 0; j < lout; j++) {
        bool outside;
        double x = src_coord(p, a, r, j, lin, &outside);
        int64_t *ij = idx + j * MAX_TAPS;
        float *wj = w + j * MAX_TAPS;
        ext[j] = outside;
        if (p->mode == M_NEAREST) {
            int64_t i = nearest_index(p, x, p->scale[a]);
            ij[0] = i < 0 ? 0 : i >= lin ? lin - 1 : i;
            wj[0] = 1;
        } else if (p->mode == M_LINEAR) {
            double xc = x < 0 ? 0 : x > (double)(lin - 1) ? (double)(lin - 1) : x;
            int64_t i0 = (int64_t)floor(xc);
            double t = xc - (double)i0;
            ij[0] = i0;
            ij[1] = i0 + 1 < lin ? i0 + 1 : lin - 1;
            wj[0] = (float)(1 - t);
            wj[1] = (float)t;
        } else {
            int64_t i0 = (int64_t)floor(x);
            double c[4], sum = 0;
            cubic_coeffs(x - (double)i0, p->cubic_a, c);
            for (int t = 0; t < 4; t++) {
                int64_t i = i0 - 1 + t;
                if (p->exclude_outside && (i < 0 || i >= lin)) c[t] = 0;
                sum += c[t];
                ij[t] = i < 0 ? 0 : i >= lin ? lin - 1 : i;
            }
            for (int t = 0; t < 4; t++)
                wj[t] = (float)(p->exclude_outside && sum != 0 ? c[t] / sum : c[t]);
        }
        if (ident) {
            float tot = 0;
            for (int t = 0; t < nt; t++) {
                if (wj[t] != 0 && ij[t] != j) ident = false;
                tot += wj[t];
            }
            ident = ident && !outside && tot == 1.0f;
        }
    }
    return ident;
}

/* y[o, j, i] = sum_t w[j, t] * x[o, idx[j, t], i], or the extrapolation value. */
static void resample(const float *restrict x, float *restrict y, int64_t O, int64_t lin,
                     int64_t lout, int64_t I, const int64_t *idx, const float *w, const bool *ext,
                     int nt, float extrap) {
    for (int64_t o = 0; o < O; o++) {
        const float *xo = x + o * lin * I;
        for (int64_t j = 0; j < lout; j++) {
            float *restrict yr = y + (o * lout + j) * I;
            const int64_t *ij = idx + j * MAX_TAPS;
            const float *wj = w + j * MAX_TAPS;
            if (ext[j]) {
                for (int64_t i = 0; i < I; i++)
                    yr[i] = extrap;
                continue;
            }
            if (nt == 1) {
                memcpy(yr, xo + ij[0] * I, (size_t)I * sizeof *yr);
                continue;
            }
            const float *restrict x0 = xo + ij[0] * I;
            float w0 = wj[0];
            for (int64_t i = 0; i < I; i++)
                yr[i] = w0 * x0[i];
            for (int t = 1; t < nt; t++) {
                const float *restrict xt = xo + ij[t] * I;
                float wt = wj[t];
                for (int64_t i = 0; i < I; i++)
                    yr[i] += wt * xt[i];
            }
        }
    }
}

sl_eng_status_t sl_nn__resize_run(const sl_node_t *node, const sl_tensor_t *const *in, int n_in,
                                  sl_tensor_t *out, int n_out, sl_kctx_t *k) {
    rs_t p;
    sl_eng_status_t s = rs_params(node, in, n_in, &p, k->err);
    if (s) return s;
    const sl_tensor_t *x = in[0];
    int r = x->ndim;
    int64_t n_out_el = sl_tensor_numel(&out[0]);
    if (n_out_el == 0) return SL_ENG_OK;
    if (sl_tensor_numel(x) == 0)
        return sl_node_error(node, k->err, SL_ENG_ESHAPE,
                             "cannot resize an empty input to a "
                             "non-empty output");
    int64_t cur[SL_MAX_DIMS];
    memcpy(cur, x->dims, (size_t)r * sizeof cur[0]);
    const float *src = x->data;
    /* Axes that change, last first; the last one resampled writes into out. */
    int todo[SL_MAX_DIMS], nt_axes = 0;
    int64_t *idx = NULL;
    float *w = NULL;
    bool *ext = NULL;
    int64_t maxlen = 1;
    for (int a = 0; a < r; a++)
        maxlen = p.out[a] > maxlen ? p.out[a] : maxlen;
    idx = k->scratch(k, (size_t)maxlen * MAX_TAPS * sizeof *idx);
    w = k->scratch(k, (size_t)maxlen * MAX_TAPS * sizeof *w);
    ext = k->scratch(k, (size_t)maxlen * sizeof *ext);
    if (!idx || !w || !ext) return SL_ENG_ENOMEM;
    for (int a = r - 1; a >= 0; a--) {
        int nt;
        if (!axis_taps(&p, a, r, x->dims[a], p.out[a], idx, w, ext, &nt)) todo[nt_axes++] = a;
    }
    if (nt_axes == 0) {
        memcpy(out[0].data, x->data, (size_t)n_out_el * sizeof(float));
        return SL_ENG_OK;
    }
    for (int q = 0; q < nt_axes; q++) {
        int a = todo[q], nt;
        axis_taps(&p, a, r, x->dims[a], p.out[a], idx, w, ext, &nt);
        int64_t O = 1, I = 1;
        for (int d = 0; d < a; d++)
            O *= cur[d];
        for (int d = a + 1; d < r; d++)
            I *= cur[d];
        float *dst;
        if (q == nt_axes - 1) {
            dst = out[0].data;
        } else {
            dst = k->scratch(k, (size_t)(O * p.out[a] * I) * sizeof *dst);
            if (!dst) return SL_ENG_ENOMEM;
        }
        resample(src, dst, O, cur[a], p.out[a], I, idx, w, ext, nt, p.extrap);
        cur[a] = p.out[a];
        src = dst;
    }
    return SL_ENG_OK;
}
