/* OIP REST path parsing and name rules. */
#include "oip/oip_path.h"

#include <string.h>

static const char bad_model[] =
    "model name must be 1-255 characters of letters, digits, '_', '.' and '-' (not '.' or '..')";
static const char bad_version[] =
    "model version must be 1-255 characters of letters, digits, '_', '.', '+' and '-'";

bool sl_oip_name_ok(sl_str_t s, bool version) {
    if (s.len == 0 || s.len > SL_OIP_NAME_MAX) return false;
    if (sl_str_eq(s, ".") || sl_str_eq(s, "..")) return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-' || (version && c == '+');
        if (!ok) return false;
    }
    return true;
}

/* Splits s at '/' into at most max segments; returns the count, or max + 1 when there are
 * more. */
static size_t split(sl_str_t s, sl_str_t *seg, size_t max) {
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i == s.len || s.ptr[i] == '/') {
            if (n == max) return max + 1;
            seg[n++] = (sl_str_t){s.ptr + start, i - start};
            start = i + 1;
        }
    }
    return n;
}

static void copy_str(char *dst, sl_str_t s) {
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
}

int sl_oip_parse_model_path(sl_str_t rest, sl_oip_model_path_t *p, const char **msg) {
    sl_str_t seg[4];
    size_t n = split(rest, seg, 4);
    memset(p, 0, sizeof *p);
    p->action = (sl_str_t){"", 0};
    bool shape_ok = false;
    if (n == 1 || n == 2) {
        shape_ok = true;
        if (n == 2) p->action = seg[1];
    } else if ((n == 3 || n == 4) && sl_str_eq(seg[1], "versions")) {
        shape_ok = true;
        if (n == 4) p->action = seg[3];
    }
    if (shape_ok && p->action.len > 0 && !sl_str_eq(p->action, "ready") &&
        !sl_str_eq(p->action, "infer") && !sl_str_eq(p->action, "config") &&
        !sl_str_eq(p->action, "stats")) {
        shape_ok = false;
    }
    if (!shape_ok || seg[0].len == 0) {
        *msg = "not found: no such endpoint under /v2/models";
        return 404;
    }
    if (!sl_oip_name_ok(seg[0], false)) {
        *msg = bad_model;
        return 400;
    }
    copy_str(p->model, seg[0]);
    if (n >= 3) {
        if (!sl_oip_name_ok(seg[2], true)) {
            *msg = bad_version;
            return 400;
        }
        copy_str(p->version, seg[2]);
    }
    return 0;
}

int sl_oip_parse_repository_path(sl_str_t rest, char model[SL_OIP_NAME_MAX + 1], bool *load,
                                 const char **msg) {
    sl_str_t seg[2];
    size_t n = split(rest, seg, 2);
    *load = n == 2 && sl_str_eq(seg[1], "load");
    if (n != 2 || (!*load && !sl_str_eq(seg[1], "unload"))) {
        *msg = "not found: use /v2/repository/models/{model}/load or /unload";
        return 404;
    }
    if (!sl_oip_name_ok(seg[0], false)) {
        *msg = bad_model;
        return 400;
    }
    copy_str(model, seg[0]);
    return 0;
}
