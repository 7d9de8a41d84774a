/* Element types, tensor sizes, status strings and the error and shape helpers every part of the
 * engine uses. */
#include "engine/engine.h"
#include "engine/op.h"

#include <stdio.h>
#include <string.h>

const char *sl_eng_strerror(sl_eng_status_t s) {
    switch (s) {
    case SL_ENG_OK:
        return "success";
    case SL_ENG_EINVAL:
        return "invalid argument";
    case SL_ENG_ENOMEM:
        return "out of memory";
    case SL_ENG_EIO:
        return "cannot read file";
    case SL_ENG_EPARSE:
        return "not a valid ONNX model";
    case SL_ENG_EUNSUPPORTED:
        return "not supported";
    case SL_ENG_ELIMIT:
        return "limit exceeded";
    case SL_ENG_EGRAPH:
        return "invalid graph";
    case SL_ENG_ESHAPE:
        return "shape mismatch";
    }
    return "unknown error";
}

size_t sl_dtype_size(sl_dtype_t t) {
    switch (t) {
    case SL_DT_FLOAT:
    case SL_DT_INT32:
    case SL_DT_UINT32:
        return 4;
    case SL_DT_UINT8:
    case SL_DT_INT8:
    case SL_DT_BOOL:
        return 1;
    case SL_DT_UINT16:
    case SL_DT_INT16:
    case SL_DT_FLOAT16:
        return 2;
    case SL_DT_INT64:
    case SL_DT_DOUBLE:
    case SL_DT_UINT64:
        return 8;
    case SL_DT_UNDEFINED:
    case SL_DT_STRING:
        return 0;
    }
    return 0;
}

const char *sl_dtype_name(sl_dtype_t t) {
    switch (t) {
    case SL_DT_FLOAT:
        return "float32";
    case SL_DT_UINT8:
        return "uint8";
    case SL_DT_INT8:
        return "int8";
    case SL_DT_UINT16:
        return "uint16";
    case SL_DT_INT16:
        return "int16";
    case SL_DT_INT32:
        return "int32";
    case SL_DT_INT64:
        return "int64";
    case SL_DT_STRING:
        return "string";
    case SL_DT_BOOL:
        return "bool";
    case SL_DT_FLOAT16:
        return "float16";
    case SL_DT_DOUBLE:
        return "float64";
    case SL_DT_UINT32:
        return "uint32";
    case SL_DT_UINT64:
        return "uint64";
    case SL_DT_UNDEFINED:
        break;
    }
    return "unknown";
}

int64_t sl_tensor_numel(const sl_tensor_t *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->dims[i];
    return n;
}

size_t sl_tensor_nbytes(const sl_tensor_t *t) {
    return (size_t)sl_tensor_numel(t) * sl_dtype_size(t->dtype);
}

static sl_eng_status_t vset(sl_eng_error_t *err, sl_eng_status_t code, const char *prefix,
                            const char *fmt, va_list ap) {
    if (!err) return code;
    err->code = code;
    size_t n = 0;
    if (prefix) {
        snprintf(err->msg, sizeof err->msg, "%s", prefix);
        n = strlen(err->msg);
    }
    vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
    return code;
}

sl_eng_status_t sl_eng_set_error(sl_eng_error_t *err, sl_eng_status_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

sl_eng_status_t sl_node_error(const sl_node_t *n, sl_eng_error_t *err, sl_eng_status_t code,
                              const char *fmt, ...) {
    char prefix[192];
    snprintf(prefix, sizeof prefix, "node '%.80s' (%.64s): ", n->name ? n->name : "",
             n->op_type ? n->op_type : "?");
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, prefix, fmt, ap);
    va_end(ap);
    return code;
}

sl_eng_status_t sl_shape_broadcast(const sl_tensor_t *a, const sl_tensor_t *b, sl_tensor_t *out) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) return SL_ENG_ESHAPE;
        out->dims[i] = da == 1 ? db : da;
    }
    out->ndim = nd;
    return SL_ENG_OK;
}

bool sl_axis_normalize(int64_t axis, int ndim, int *out) {
    if (axis < 0) axis += ndim;
    if (axis < 0 || axis >= (ndim > 0 ? ndim : 1)) return false;
    *out = (int)axis;
    return true;
}

/* ---- attributes ---- */

const sl_attr_t *sl_attr_get(const sl_node_t *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    }
    return NULL;
}

int64_t sl_attr_int(const sl_node_t *n, const char *name, int64_t def) {
    const sl_attr_t *a = sl_attr_get(n, name);
    return a && a->type == SL_ATTR_INT ? a->i : def;
}

float sl_attr_float(const sl_node_t *n, const char *name, float def) {
    const sl_attr_t *a = sl_attr_get(n, name);
    return a && a->type == SL_ATTR_FLOAT ? a->f : def;
}

const char *sl_attr_string(const sl_node_t *n, const char *name, const char *def) {
    const sl_attr_t *a = sl_attr_get(n, name);
    return a && a->type == SL_ATTR_STRING ? a->s : def;
}

const int64_t *sl_attr_ints(const sl_node_t *n, const char *name, size_t *count) {
    const sl_attr_t *a = sl_attr_get(n, name);
    if (!a || a->type != SL_ATTR_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->ints;
}

const float *sl_attr_floats(const sl_node_t *n, const char *name, size_t *count) {
    const sl_attr_t *a = sl_attr_get(n, name);
    if (!a || a->type != SL_ATTR_FLOATS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->floats;
}
