/* The Open Inference Protocol's REST response encoder: an sl_infer_response_t as JSON, with the
 * outputs the request asked for as binary appended after it (Triton's binary tensor extension).
 * oip_rest.c calls it on the I/O thread; the request decoder is oip_json.c. */
#include "oip/oip_json.h"

#include "core/log.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the OIP codec copies tensors in host order, which must be little-endian"
#endif

/* Non-finite values have no JSON spelling: they are written as null (numpy reads None in a
 * float array as nan). */
static char *put_double(char *p, double v, bool fp32) {
    if (!isfinite(v)) {
        memcpy(p, "null", 4);
        return p + 4;
    }
    /* %.9g round-trips every float, %.17g every double. */
    int n = snprintf(p, 32, fp32 ? "%.9g" : "%.17g", v);
    return p + n;
}

static void write_bytes_data(const sl_infer_output_t *o, sl_buf_t *out) {
    const uint8_t *p = o->data;
    uint64_t off = 0;
    bool first = true;
    while (o->byte_size - off >= 4) {
        uint32_t n;
        memcpy(&n, p + off, 4);
        if (n > o->byte_size - off - 4) break;
        if (!first) sl_buf_putc(out, ',');
        first = false;
        sl_buf_putc(out, '"');
        sl_buf_json_escape(out, (const char *)p + off + 4, n);
        sl_buf_putc(out, '"');
        off += 4 + (uint64_t)n;
    }
    if (off != o->byte_size) {
        SL_ERROR("oip", "malformed BYTES output from the backend", SL_LF_S("output", o->name),
                 SL_LF_U("byte_size", o->byte_size));
    }
}

static void write_data(const sl_infer_output_t *o, sl_buf_t *out) {
    if (o->dtype == SLUICE_DT_BYTES) {
        write_bytes_data(o, out);
        return;
    }
    size_t esize = sluice_dtype_size(o->dtype);
    if (esize == 0) return;
    uint64_t n = o->byte_size / esize;
    /* Room for the longest element of the type and its comma: "false,", "-128,",
     * "-9223372036854775808,", "-1.2345678901234567e-308," (floats: snprintf needs 32). */
    size_t widest = o->dtype == SLUICE_DT_BOOL ? 6 : esize == 1 ? 5 : esize == 2 ? 7 : 12;
    if (esize == 8) widest = 21;
    if (o->dtype == SLUICE_DT_FP16 || o->dtype == SLUICE_DT_BF16 || o->dtype == SLUICE_DT_FP32 ||
        o->dtype == SLUICE_DT_FP64) {
        widest = 32;
    }
    sl_buf_reserve(out, (size_t)n * widest + 1);
    char *w = out->data + out->len;
    const uint8_t *p = o->data;
    for (uint64_t i = 0; i < n; i++, p += esize) {
        if (i) *w++ = ',';
        switch (o->dtype) {
        case SLUICE_DT_BOOL:
            memcpy(w, *p ? "true" : "false", *p ? 4 : 5);
            w += *p ? 4 : 5;
            break;
        case SLUICE_DT_UINT8:
            w = sl_fmt_u64(w, *p);
            break;
        case SLUICE_DT_INT8:
            w = sl_fmt_i64(w, (int8_t)*p);
            break;
        case SLUICE_DT_UINT16: {
            uint16_t v;
            memcpy(&v, p, 2);
            w = sl_fmt_u64(w, v);
            break;
        }
        case SLUICE_DT_INT16: {
            int16_t v;
            memcpy(&v, p, 2);
            w = sl_fmt_i64(w, v);
            break;
        }
        case SLUICE_DT_UINT32: {
            uint32_t v;
            memcpy(&v, p, 4);
            w = sl_fmt_u64(w, v);
            break;
        }
        case SLUICE_DT_INT32: {
            int32_t v;
            memcpy(&v, p, 4);
            w = sl_fmt_i64(w, v);
            break;
        }
        case SLUICE_DT_UINT64: {
            uint64_t v;
            memcpy(&v, p, 8);
            w = sl_fmt_u64(w, v);
            break;
        }
        case SLUICE_DT_INT64: {
            int64_t v;
            memcpy(&v, p, 8);
            w = sl_fmt_i64(w, v);
            break;
        }
        case SLUICE_DT_FP16: {
            uint16_t v;
            memcpy(&v, p, 2);
            w = put_double(w, sl_half_to_float(v), true);
            break;
        }
        case SLUICE_DT_BF16: {
            uint16_t v;
            memcpy(&v, p, 2);
            uint32_t bits = (uint32_t)v << 16;
            float f;
            memcpy(&f, &bits, 4);
            w = put_double(w, f, true);
            break;
        }
        case SLUICE_DT_FP32: {
            float v;
            memcpy(&v, p, 4);
            w = put_double(w, v, true);
            break;
        }
        case SLUICE_DT_FP64: {
            double v;
            memcpy(&v, p, 8);
            w = put_double(w, v, false);
            break;
        }
        default:
            break;
        }
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
}

static void put_str(sl_buf_t *out, const char *s) {
    sl_buf_putc(out, '"');
    sl_buf_json_escape(out, s, strlen(s));
    sl_buf_putc(out, '"');
}

/* Whether output o goes back as binary: its own request entry decides, else the request's
 * binary_data_output. */
static bool output_binary(const sl_infer_request_t *req, const sl_infer_output_t *o) {
    for (size_t i = 0; i < req->n_outputs; i++) {
        if (strcmp(req->outputs[i].name, o->name) == 0) return req->outputs[i].binary;
    }
    return req->binary_default;
}

void sl_oip_json_write_response(const sl_infer_request_t *req, const sl_infer_response_t *resp,
                                sl_buf_t *out, size_t *header_len) {
    size_t start = out->len;
    sl_buf_puts(out, "{\"model_name\":");
    put_str(out, resp->model_name);
    sl_buf_puts(out, ",\"model_version\":");
    put_str(out, resp->model_version);
    if (req->id) {
        sl_buf_puts(out, ",\"id\":");
        put_str(out, req->id);
    }
    sl_buf_puts(out, ",\"outputs\":[");
    bool any_binary = false;
    for (size_t i = 0; i < resp->n_outputs; i++) {
        const sl_infer_output_t *o = &resp->outputs[i];
        sl_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        put_str(out, o->name);
        sl_buf_puts(out, ",\"datatype\":\"");
        sl_buf_puts(out, sl_dtype_to_name(o->dtype));
        sl_buf_puts(out, "\",\"shape\":[");
        for (uint32_t d = 0; d < o->ndim; d++) {
            if (d) sl_buf_putc(out, ',');
            sl_buf_put_i64(out, o->dims[d]);
        }
        if (output_binary(req, o)) {
            any_binary = true;
            sl_buf_puts(out, "],\"parameters\":{\"binary_data_size\":");
            sl_buf_put_u64(out, o->byte_size);
            sl_buf_puts(out, "}}");
        } else {
            sl_buf_puts(out, "],\"data\":[");
            write_data(o, out);
            sl_buf_puts(out, "]}");
        }
    }
    sl_buf_puts(out, "]}");
    *header_len = out->len - start;
    if (!any_binary) return;
    for (size_t i = 0; i < resp->n_outputs; i++) {
        const sl_infer_output_t *o = &resp->outputs[i];
        if (output_binary(req, o)) sl_buf_append(out, o->data, (size_t)o->byte_size);
    }
}
