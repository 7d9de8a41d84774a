/* NumPy .npy reading and writing for the six element types the engine exchanges with users.
 * The header is a Python dict literal; it is parsed by hand, strictly and within fixed bounds,
 * because .npy files arrive from users (`sluice model run --input x=FILE.npy`). */
#include "engine/npy.h"
#include "engine/io.h"
#include "engine/op.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy data is read and written as little-endian; this file needs a little-endian host"
#endif

#define DEFAULT_MAX_BYTES ((size_t)1 << 30)
#define MAX_HEADER        (64u * 1024u)
#define MAGIC             "\x93NUMPY"
#define MAGIC_LEN         6

static const struct {
    const char *descr;
    sl_dtype_t dtype;
} descrs[] = {
    {"<f4", SL_DT_FLOAT}, {"<f8", SL_DT_DOUBLE}, {"<i8", SL_DT_INT64},
    {"<i4", SL_DT_INT32}, {"|b1", SL_DT_BOOL},   {"|u1", SL_DT_UINT8},
};

static const char *descr_of(sl_dtype_t dt) {
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (descrs[i].dtype == dt) return descrs[i].descr;
    return NULL;
}

/* ---- the header: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ---- */

typedef struct hdr {
    const char *p, *end;
    char descr[16];
    int fortran; /* -1 until seen */
    int ndim;    /* -1 until seen */
    int64_t dims[SL_MAX_DIMS];
} hdr_t;

static void skip_ws(hdr_t *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
}

static bool accept(hdr_t *h, char c) {
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return true;
    }
    return false;
}

/* A quoted string without escapes (the header never needs them), copied into buf. */
static bool parse_str(hdr_t *h, char *buf, size_t cap) {
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return false;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || n + 1 >= cap) return false;
        buf[n++] = *h->p++;
    }
    if (h->p >= h->end) return false;
    h->p++;
    buf[n] = '\0';
    return true;
}

static bool parse_word(hdr_t *h, const char *w) {
    skip_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n) != 0) return false;
    h->p += n;
    return true;
}

/* A non-negative decimal integer of at most 18 digits (no overflow possible). */
static bool parse_dim(hdr_t *h, int64_t *out) {
    skip_ws(h);
    int64_t v = 0;
    int digits = 0;
    while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
        if (++digits > 18) return false;
        v = v * 10 + (*h->p++ - '0');
    }
    if (digits == 0) return false;
    if (h->p < h->end && *h->p == 'L') h->p++; /* Python 2 longs, written by old numpy */
    *out = v;
    return true;
}

/* "()", "(3,)", "(2, 3)", "(2, 3,)": a Python tuple of dims (a 1-tuple needs its comma). */
static sl_eng_status_t parse_shape(hdr_t *h, sl_eng_error_t *err) {
    if (!accept(h, '('))
        return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: 'shape' is not a tuple");
    int n = 0;
    bool comma = false;
    while (!accept(h, ')')) {
        if (n > 0 && !comma)
            return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: ',' expected in 'shape'");
        if (n == SL_MAX_DIMS)
            return sl_eng_set_error(err, SL_ENG_ELIMIT,
                                    ".npy header: 'shape' has more than %d dims", SL_MAX_DIMS);
        if (!parse_dim(h, &h->dims[n]))
            return sl_eng_set_error(err, SL_ENG_EPARSE,
                                    ".npy header: dim %d of 'shape' is not a non-negative integer "
                                    "below 10^18",
                                    n);
        n++;
        comma = accept(h, ',');
    }
    if (n == 1 && !comma)
        return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: 'shape' is not a tuple");
    h->ndim = n;
    return SL_ENG_OK;
}

static sl_eng_status_t parse_header(hdr_t *h, sl_eng_error_t *err) {
    h->descr[0] = '\0';
    h->fortran = -1;
    h->ndim = -1;
    if (!accept(h, '{'))
        return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: not a dict ('{' expected)");
    bool sep = true;
    while (!accept(h, '}')) {
        if (!sep) return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: ',' or '}' expected");
        char key[32];
        if (!parse_str(h, key, sizeof key))
            return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: a quoted key expected");
        if (!accept(h, ':'))
            return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: ':' expected after '%s'",
                                    key);
        if (strcmp(key, "descr") == 0) {
            if (h->descr[0])
                return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: 'descr' twice");
            if (!parse_str(h, h->descr, sizeof h->descr) || !h->descr[0])
                return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED,
                                        ".npy header: 'descr' is not a simple type string "
                                        "(structured dtypes are not supported)");
        } else if (strcmp(key, "fortran_order") == 0) {
            if (h->fortran >= 0)
                return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: 'fortran_order' twice");
            if (parse_word(h, "False"))
                h->fortran = 0;
            else if (parse_word(h, "True"))
                h->fortran = 1;
            else
                return sl_eng_set_error(err, SL_ENG_EPARSE,
                                        ".npy header: 'fortran_order' is not True or False");
        } else if (strcmp(key, "shape") == 0) {
            if (h->ndim >= 0)
                return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: 'shape' twice");
            sl_eng_status_t st = parse_shape(h, err);
            if (st != SL_ENG_OK) return st;
        } else {
            return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: unknown key '%s'", key);
        }
        sep = accept(h, ',');
    }
    skip_ws(h);
    if (h->p != h->end)
        return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: bytes after the dict");
    if (!h->descr[0] || h->fortran < 0 || h->ndim < 0)
        return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy header: missing '%s'",
                                !h->descr[0]     ? "descr"
                                : h->fortran < 0 ? "fortran_order"
                                                 : "shape");
    return SL_ENG_OK;
}

static sl_eng_status_t dtype_from_descr(const char *d, sl_dtype_t *out, sl_eng_error_t *err) {
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++) {
        if (strcmp(d, descrs[i].descr) == 0) {
            *out = descrs[i].dtype;
            return SL_ENG_OK;
        }
    }
    if (d[0] == '>')
        return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED,
                                ".npy: big-endian data ('%s') is not supported; save it "
                                "little-endian",
                                d);
    return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED,
                            ".npy: dtype '%s' is not supported (float32 '<f4', float64 '<f8', "
                            "int64 '<i8', int32 '<i4', bool '|b1', uint8 '|u1')",
                            d);
}

sl_eng_status_t sl_npy_read_memory(const void *buf, size_t len, size_t max_bytes, sl_tensor_t *out,
                                   sl_eng_error_t *err) {
    memset(out, 0, sizeof *out);
    if (max_bytes == 0) max_bytes = DEFAULT_MAX_BYTES;
    const uint8_t *b = buf;
    if (!b || len < MAGIC_LEN + 2 || memcmp(b, MAGIC, MAGIC_LEN) != 0)
        return sl_eng_set_error(err, SL_ENG_EPARSE, "not a .npy file (bad magic)");
    unsigned major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED,
                                ".npy format version %u.%u is not supported (1.0 to 3.0)", major,
                                minor);
    size_t pre = major == 1 ? 10 : 12;
    if (len < pre) return sl_eng_set_error(err, SL_ENG_EPARSE, ".npy: truncated header length");
    size_t hlen =
        major == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                   : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hlen > MAX_HEADER)
        return sl_eng_set_error(err, SL_ENG_ELIMIT, ".npy header of %zu bytes, over 64 KiB", hlen);
    if (len - pre < hlen)
        return sl_eng_set_error(err, SL_ENG_EPARSE,
                                ".npy: truncated header (%zu bytes announced, %zu present)", hlen,
                                len - pre);

    hdr_t h = {.p = (const char *)b + pre, .end = (const char *)b + pre + hlen};
    sl_eng_status_t st = parse_header(&h, err);
    if (st != SL_ENG_OK) return st;
    sl_dtype_t dt = SL_DT_UNDEFINED;
    st = dtype_from_descr(h.descr, &dt, err);
    if (st != SL_ENG_OK) return st;

    size_t esize = sl_dtype_size(dt);
    uint64_t numel = 1;
    bool zero = false;
    for (int i = 0; i < h.ndim; i++) {
        if (h.dims[i] == 0) zero = true;
        if (!zero && (uint64_t)h.dims[i] > (uint64_t)(max_bytes / esize) / numel)
            return sl_eng_set_error(err, SL_ENG_ELIMIT,
                                    ".npy: data over the limit of %zu bytes (dim %d is %lld)",
                                    max_bytes, i, (long long)h.dims[i]);
        if (!zero) numel *= (uint64_t)h.dims[i];
    }
    if (zero) numel = 0;
    /* One element is a single element in either order, so only a real Fortran array differs. */
    if (h.fortran == 1 && numel > 1) {
        int big = 0;
        for (int i = 0; i < h.ndim; i++)
            big += h.dims[i] > 1;
        if (big > 1)
            return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED,
                                    ".npy: Fortran-order arrays are not supported; save with "
                                    "np.ascontiguousarray");
    }
    size_t nbytes = (size_t)numel * esize;
    size_t have = len - pre - hlen;
    if (have != nbytes)
        return sl_eng_set_error(err, SL_ENG_EPARSE,
                                ".npy: %zu data bytes, shape and dtype %s need %zu", have,
                                sl_dtype_name(dt), nbytes);

    void *data = malloc(nbytes ? nbytes : 1);
    if (!data)
        return sl_eng_set_error(err, SL_ENG_ENOMEM, ".npy: out of memory (%zu bytes)", nbytes);
    if (nbytes) memcpy(data, b + pre + hlen, nbytes);
    if (dt == SL_DT_BOOL) {
        uint8_t *v = data;
        for (size_t i = 0; i < nbytes; i++)
            v[i] = v[i] != 0;
    }
    out->dtype = dt;
    out->ndim = h.ndim;
    for (int i = 0; i < h.ndim; i++)
        out->dims[i] = h.dims[i];
    out->data = data;
    return SL_ENG_OK;
}

sl_eng_status_t sl_npy_read_file(const char *path, size_t max_bytes, sl_tensor_t *out,
                                 sl_eng_error_t *err) {
    memset(out, 0, sizeof *out);
    if (max_bytes == 0) max_bytes = DEFAULT_MAX_BYTES;
    size_t limit = max_bytes > SIZE_MAX - MAX_HEADER - 16 ? SIZE_MAX : max_bytes + MAX_HEADER + 16;
    uint8_t *buf;
    size_t n;
    sl_eng_status_t rd = sl_eng__read_file(path, limit, &buf, &n, err);
    if (rd != SL_ENG_OK) return rd;
    sl_eng_status_t st = sl_npy_read_memory(buf, n, max_bytes, out, err);
    free(buf);
    if (st != SL_ENG_OK && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%.200s: %.300s", path, err->msg);
        memcpy(err->msg, msg, sizeof msg);
    }
    return st;
}

sl_eng_status_t sl_npy_write_file(const char *path, const sl_tensor_t *t, sl_eng_error_t *err) {
    const char *descr = t ? descr_of(t->dtype) : NULL;
    if (!descr)
        return sl_eng_set_error(err, SL_ENG_EUNSUPPORTED,
                                "%s: cannot write %s as .npy (float32, float64, int64, int32, "
                                "bool and uint8 only)",
                                path, t ? sl_dtype_name(t->dtype) : "no tensor");
    if (t->ndim < 0 || t->ndim > SL_MAX_DIMS)
        return sl_eng_set_error(err, SL_ENG_EINVAL, "%s: tensor has %d dims", path, t->ndim);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0)
            return sl_eng_set_error(err, SL_ENG_EINVAL, "%s: dim %d is negative", path, i);
        if (t->dims[i] && numel > (uint64_t)INT64_MAX / (uint64_t)t->dims[i])
            return sl_eng_set_error(err, SL_ENG_ELIMIT, "%s: element count overflows", path);
        numel *= (uint64_t)t->dims[i];
    }
    size_t esize = sl_dtype_size(t->dtype);
    if (numel > SIZE_MAX / esize)
        return sl_eng_set_error(err, SL_ENG_ELIMIT, "%s: tensor too large", path);
    size_t nbytes = (size_t)numel * esize;
    if (nbytes && !t->data)
        return sl_eng_set_error(err, SL_ENG_EINVAL, "%s: tensor has no data", path);

    /* The dict, laid out byte for byte as numpy 1.24 writes it: room for the first dim to grow
     * to 21 digits, then spaces and a newline so that the data starts at a multiple of 64. */
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)t->dims[i]);
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
    size_t len = (size_t)n;
    if (t->ndim > 0) {
        char d0[24];
        int w = snprintf(d0, sizeof d0, "%lld", (long long)t->dims[0]);
        len += w < 21 ? (size_t)(21 - w) : 0;
    }
    size_t end = len + 64 - (10 + len + 1) % 64; /* numpy pads a full 64 when already aligned */
    if (end + 1 > sizeof hdr)
        return sl_eng_set_error(err, SL_ENG_EINVAL, "%s: header too long", path);
    memset(hdr + n, ' ', end - (size_t)n);
    hdr[end] = '\n';
    size_t hlen = end + 1;
    uint8_t pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};

    FILE *f = fopen(path, "wb");
    if (!f) return sl_eng_set_error(err, SL_ENG_EIO, "%s: %s", path, strerror(errno));
    bool ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(hdr, 1, hlen, f) == hlen &&
              (nbytes == 0 || fwrite(t->data, 1, nbytes, f) == nbytes);
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        unlink(path);
        return sl_eng_set_error(err, SL_ENG_EIO, "%s: write failed: %s", path, strerror(e));
    }
    return SL_ENG_OK;
}
