/* The built-in `xgboost` backend: gradient-boosted trees through the XGBoost C API (1.7). A
 * model version keeps the model as UBJ bytes; each instance owns its own booster loaded from
 * them, because boosters are not documented as safe for concurrent prediction. Input: one
 * dense FP32 tensor [batch, n_features]; output: one FP32 tensor, [batch] or [batch, k]. */
#include "core/common.h"
#include "core/json.h"
#include "inference/backends.h"
#include "inference/batch.h"
#include "oip/oip_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xgboost/c_api.h>

/* Inplace prediction options: normal prediction over every tree; NaN marks a missing value (as
 * in the Python package). XGBoost 1.7 requires "missing" and "cache_id" here. */
static const char predict_config[] = "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
                                     "\"iteration_end\":0,\"strict_shape\":false,"
                                     "\"missing\":NaN,\"cache_id\":0}";

typedef struct xgb_model {
    char *name;
    char *objective;
    uint32_t max_batch_size;
    uint64_t n_features;
    uint64_t per_row;  /* predictions per row: 1, n_class or n_targets */
    uint32_t out_ndim; /* output shape: [rows] or [rows, per_row] */
    void *ubj;         /* the model, serialised once at load */
    size_t ubj_len;
} xgb_model_t;

typedef struct xgb_instance {
    const xgb_model_t *model;
    BoosterHandle booster;
} xgb_instance_t;

static const sluice_host_t *host(void) {
    return sl_backend_host(); /* built-in: the server's own table, no backend_init needed */
}

/* XGBoost's last error without the stack trace it appends. */
static const char *xgb_error(char *buf, size_t cap) {
    const char *e = XGBGetLastError();
    if (!e) e = "unknown XGBoost error";
    size_t n = strcspn(e, "\n");
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), e);
    return buf;
}

static void model_free(xgb_model_t *xm) {
    if (!xm) return;
    free(xm->name);
    free(xm->objective);
    free(xm->ubj);
    free(xm);
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Reads objective, num_class and num_target from the booster's JSON configuration. */
static sluice_status_t *read_config(BoosterHandle bst, xgb_model_t *xm) {
    char eb[256];
    bst_ulong len = 0;
    const char *json = NULL;
    if (XGBoosterSaveJsonConfig(bst, &len, &json) != 0) {
        return host()->status_new(SLUICE_STATUS_INTERNAL,
                                  "model '%s': cannot read the XGBoost configuration: %s", xm->name,
                                  xgb_error(eb, sizeof eb));
    }
    cJSON *root = NULL;
    if (sl_json_parse(json, (size_t)len, &root, eb, sizeof eb) != 0) {
        return host()->status_new(SLUICE_STATUS_INTERNAL,
                                  "model '%s': the XGBoost configuration is not JSON: %s", xm->name,
                                  eb);
    }
    const cJSON *learner = cJSON_GetObjectItemCaseSensitive(root, "learner");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(learner, "objective");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
    const cJSON *param = cJSON_GetObjectItemCaseSensitive(learner, "learner_model_param");
    const cJSON *ncls = cJSON_GetObjectItemCaseSensitive(param, "num_class");
    const cJSON *ntgt = cJSON_GetObjectItemCaseSensitive(param, "num_target");
    sluice_status_t *st = NULL;
    if (!cJSON_IsString(name)) {
        st = host()->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                "model '%s': the XGBoost model names no objective", xm->name);
        goto out;
    }
    xm->objective = sl_strdup(name->valuestring);
    long n_class = cJSON_IsString(ncls) ? strtol(ncls->valuestring, NULL, 10) : 0;
    long n_target = cJSON_IsString(ntgt) ? strtol(ntgt->valuestring, NULL, 10) : 1;
    const char *o = xm->objective;
    if (strcmp(o, "multi:softprob") == 0) {
        if (n_class < 2 || n_class > (1L << 20)) {
            st = host()->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                    "model '%s': multi:softprob with num_class %ld", xm->name,
                                    n_class);
            goto out;
        }
        xm->per_row = (uint64_t)n_class;
    } else if (strcmp(o, "multi:softmax") == 0 || strncmp(o, "binary:", 7) == 0 ||
               strncmp(o, "reg:", 4) == 0 || strcmp(o, "count:poisson") == 0) {
        xm->per_row = n_target >= 1 && n_target <= (1L << 20) ? (uint64_t)n_target : 1;
    } else {
        st = host()->status_new(SLUICE_STATUS_UNSUPPORTED,
                                "model '%s': objective '%s' is not supported by the xgboost "
                                "backend (binary:*, reg:*, count:poisson, multi:softprob, "
                                "multi:softmax are)",
                                xm->name, o);
    }
out:
    cJSON_Delete(root);
    return st;
}

static void fmt_dims(char *out, size_t cap, const int64_t *dims, uint32_t ndim) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (uint32_t i = 0; i < ndim && n < cap; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (n < cap) snprintf(out + n, cap - n, "]");
}

/* Checks the declared input and output against the model. Shapes exclude the batch dimension
 * when batching; a non-batching model declares [rows, n_features] and [rows(, k)]. */
static sluice_status_t *check_desc(const sluice_model_desc_t *desc, xgb_model_t *xm) {
    const sluice_host_t *h = host();
    const uint32_t off = desc->max_batch_size > 0 ? 0 : 1;
    if (desc->n_inputs != 1 || desc->n_outputs != 1) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "model '%s': the xgboost backend takes one input and one output, "
                             "config.yaml declares %zu inputs and %zu outputs",
                             xm->name, desc->n_inputs, desc->n_outputs);
    }
    const sluice_tensor_desc_t *in = &desc->inputs[0], *out = &desc->outputs[0];
    char d[200];
    fmt_dims(d, sizeof d, in->dims, in->ndim);
    if (in->dtype != SLUICE_DT_FP32 || in->ndim != 1 + off) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "input '%s': the xgboost backend takes FP32 %s, config.yaml declares "
                             "%s %s",
                             in->name, off ? "[rows, n_features]" : "[n_features]",
                             sl_dtype_to_name(in->dtype), d);
    }
    int64_t nf = in->dims[off];
    if (nf >= 0 && (uint64_t)nf != xm->n_features) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "input '%s': config.yaml declares %lld features, the XGBoost model "
                             "was trained on %llu",
                             in->name, (long long)nf, (unsigned long long)xm->n_features);
    }
    fmt_dims(d, sizeof d, out->dims, out->ndim);
    if (out->dtype != SLUICE_DT_FP32) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "output '%s': the xgboost backend produces FP32, config.yaml "
                             "declares %s",
                             out->name, sl_dtype_to_name(out->dtype));
    }
    /* After the rows: nothing (one value per row), or one dimension of per_row (or -1). */
    bool ok = out->ndim >= off && out->ndim <= off + 1;
    if (ok && off && out->ndim >= 1 && in->dims[0] >= 0 && out->dims[0] >= 0 &&
        out->dims[0] != in->dims[0]) {
        ok = false;
    }
    if (ok && out->ndim == off && xm->per_row != 1) ok = false;
    if (ok && out->ndim == off + 1 && out->dims[off] >= 0 &&
        (uint64_t)out->dims[off] != xm->per_row) {
        ok = false;
    }
    if (!ok) {
        char want[96];
        const char *rows = off ? "rows" : "", *sep = off ? ", " : "";
        if (xm->per_row == 1)
            snprintf(want, sizeof want, "[%s] or [%s%s1]", rows, rows, sep);
        else
            snprintf(want, sizeof want, "[%s%s%llu]", rows, sep, (unsigned long long)xm->per_row);
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "output '%s': objective %s gives %llu value(s) per row, so declare "
                             "dims %s, got %s",
                             out->name, xm->objective, (unsigned long long)xm->per_row, want, d);
    }
    xm->out_ndim = out->ndim - off + 1;
    return NULL;
}

static sluice_status_t *xgb_model_load(void *backend_state, const sluice_model_desc_t *desc,
                                       void **model_state) {
    const sluice_host_t *h = host();
    char eb[256];
    *model_state = NULL;
    xgb_model_t *xm = sl_calloc(1, sizeof *xm);
    xm->name = sl_strdup(desc->name);
    xm->max_batch_size = desc->max_batch_size;
    const char *file = base_name(desc->artifact_path);
    if (!has_suffix(file, ".json") && !has_suffix(file, ".ubj")) {
        sluice_status_t *st = h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                            "model '%s': an XGBoost artifact must be a .json or "
                                            ".ubj file, got '%s'",
                                            xm->name, file);
        model_free(xm);
        return st;
    }
    BoosterHandle bst = NULL;
    sluice_status_t *st = NULL;
    if (XGBoosterCreate(NULL, 0, &bst) != 0) {
        st = h->status_new(SLUICE_STATUS_INTERNAL, "model '%s': XGBoosterCreate: %s", xm->name,
                           xgb_error(eb, sizeof eb));
        goto fail;
    }
    if (XGBoosterLoadModel(bst, desc->artifact_path) != 0) {
        st = h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                           "model '%s': cannot load the XGBoost model '%s': %s", xm->name, file,
                           xgb_error(eb, sizeof eb));
        goto fail;
    }
    bst_ulong nf = 0;
    if (XGBoosterGetNumFeature(bst, &nf) != 0) {
        st = h->status_new(SLUICE_STATUS_INTERNAL, "model '%s': XGBoosterGetNumFeature: %s",
                           xm->name, xgb_error(eb, sizeof eb));
        goto fail;
    }
    xm->n_features = nf;
    if ((st = read_config(bst, xm)) != NULL) goto fail;
    if ((st = check_desc(desc, xm)) != NULL) goto fail;
    bst_ulong len = 0;
    const char *bytes = NULL;
    if (XGBoosterSaveModelToBuffer(bst, "{\"format\":\"ubj\"}", &len, &bytes) != 0) {
        st = h->status_new(SLUICE_STATUS_INTERNAL, "model '%s': cannot serialise the model: %s",
                           xm->name, xgb_error(eb, sizeof eb));
        goto fail;
    }
    xm->ubj = sl_malloc(len ? (size_t)len : 1);
    memcpy(xm->ubj, bytes, (size_t)len);
    xm->ubj_len = (size_t)len;
    XGBoosterFree(bst);
    *model_state = xm;
    return NULL;
fail:
    if (bst) XGBoosterFree(bst);
    model_free(xm);
    return st;
}

static void xgb_model_unload(void *model_state) {
    model_free(model_state);
}

static sluice_status_t *xgb_instance_new(void *model_state, const sluice_instance_desc_t *desc,
                                         void **instance_state) {
    const xgb_model_t *xm = model_state;
    char eb[256];
    *instance_state = NULL;
    if (desc->device != SLUICE_DEVICE_CPU) {
        return host()->status_new(SLUICE_STATUS_UNSUPPORTED,
                                  "the xgboost backend runs on CPU only (instance %u asks for GPU)",
                                  desc->index);
    }
    BoosterHandle bst = NULL;
    char nthread[16];
    snprintf(nthread, sizeof nthread, "%u", desc->threads >= 1 ? desc->threads : 1);
    if (XGBoosterCreate(NULL, 0, &bst) != 0 ||
        XGBoosterLoadModelFromBuffer(bst, xm->ubj, xm->ubj_len) != 0 ||
        XGBoosterSetParam(bst, "nthread", nthread) != 0) {
        sluice_status_t *st =
            host()->status_new(SLUICE_STATUS_INTERNAL, "model '%s': cannot create a booster: %s",
                               xm->name, xgb_error(eb, sizeof eb));
        if (bst) XGBoosterFree(bst);
        return st;
    }
    xgb_instance_t *in = sl_calloc(1, sizeof *in);
    in->model = xm;
    in->booster = bst;
    *instance_state = in;
    return NULL;
}

static void xgb_instance_free(void *instance_state) {
    xgb_instance_t *in = instance_state;
    if (!in) return;
    XGBoosterFree(in->booster);
    free(in);
}

static sluice_status_t *xgb_execute(void *instance_state, sluice_batch_t *batch) {
    xgb_instance_t *in = instance_state;
    const xgb_model_t *xm = in->model;
    const sluice_host_t *h = host();
    char eb[256];
    const sluice_tensor_t *t = h->batch_input(batch, 0);
    if (!t || t->dtype != SLUICE_DT_FP32 || t->ndim != 2 || t->dims[1] < 0 ||
        (uint64_t)t->dims[1] != xm->n_features) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "input '%s': expected FP32 [rows, %llu] (the model's feature count)",
                             t ? t->name : "?", (unsigned long long)xm->n_features);
    }
    uint64_t rows = (uint64_t)t->dims[0];
    if (!h->batch_output_wanted(batch, 0)) return NULL;
    /* numpy's __array_interface__, which XGBoost reads the pointer and shape from. */
    char array[192];
    snprintf(array, sizeof array,
             "{\"data\":[%llu,true],\"shape\":[%llu,%llu],\"typestr\":\"<f4\",\"version\":3}",
             (unsigned long long)(uintptr_t)t->data, (unsigned long long)rows,
             (unsigned long long)xm->n_features);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *result = NULL;
    if (XGBoosterPredictFromDense(in->booster, array, predict_config, NULL, &shape, &dim,
                                  &result) != 0) {
        return h->status_new(SLUICE_STATUS_INTERNAL, "model '%s': XGBoost prediction failed: %s",
                             xm->name, xgb_error(eb, sizeof eb));
    }
    uint64_t n = 1;
    for (bst_ulong k = 0; k < dim; k++)
        n *= shape[k];
    if (dim < 1 || shape[0] != rows || n != rows * xm->per_row) {
        return h->status_new(
            SLUICE_STATUS_INTERNAL,
            "model '%s': XGBoost returned %llu values for %llu rows, expected %llu "
            "per row",
            xm->name, (unsigned long long)n, (unsigned long long)rows,
            (unsigned long long)xm->per_row);
    }
    int64_t dims[2] = {(int64_t)rows, (int64_t)xm->per_row};
    void *dst = NULL;
    sluice_status_t *st;
    if ((st = h->output_alloc(batch, 0, SLUICE_DT_FP32, xm->out_ndim, dims, 0, &dst)) != NULL) {
        return st;
    }
    memcpy(dst, result, n * sizeof(float));
    return NULL;
}

static const sluice_backend_iface_t xgb_iface = {
    .api_major = SLUICE_BACKEND_API_MAJOR,
    .api_minor = SLUICE_BACKEND_API_MINOR,
    .name = "xgboost",
    .model_load = xgb_model_load,
    .model_unload = xgb_model_unload,
    .instance_new = xgb_instance_new,
    .instance_free = xgb_instance_free,
    .execute = xgb_execute,
};

const sluice_backend_iface_t *sl_backend_xgboost_entry(void) {
    return &xgb_iface;
}
