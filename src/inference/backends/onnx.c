/* The built-in `onnx` backend: Sluice's own engine (src/engine) behind the backend ABI. A model
 * version is one loaded sl_model_t (immutable, shared by its instances); an instance is one run
 * context. The config's declared inputs and outputs are checked against the model at load. */
#include "engine/engine.h"
#include "inference/backends.h"
#include "inference/batch.h"
#include "oip/oip_types.h"

#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The engine's intra-op thread count is a property of the loaded model, but instances say how
 * many threads they may use; a model keeps one engine copy per distinct count (usually one). */
#define MAX_COPIES 4

typedef struct engine_copy {
    sl_model_t *m;
    int threads;
    uint32_t users; /* instances running on this copy */
} engine_copy_t;

typedef struct onnx_model {
    char *name;
    char *path;
    uint32_t max_batch_size;
    size_t n_cfg_in, n_cfg_out;
    size_t n_eng_in, n_eng_out;
    int *in_map;  /* config input i -> engine input index */
    int *out_map; /* config output j -> engine output index */
    engine_copy_t copies[MAX_COPIES];
    size_t n_copies;
} onnx_model_t;

typedef struct onnx_instance {
    onnx_model_t *model;
    engine_copy_t *copy;
    sl_run_t *run;
    sl_tensor_t *in, *out; /* scratch: n_eng_in, n_eng_out */
} onnx_instance_t;

/* Built-in backends are part of the server: they use its host table directly, so they need no
 * backend_init. */
static const sluice_host_t *host(void) {
    return sl_backend_host();
}

static sluice_dtype_t from_engine(sl_dtype_t t) {
    switch (t) {
    case SL_DT_FLOAT:
        return SLUICE_DT_FP32;
    case SL_DT_UINT8:
        return SLUICE_DT_UINT8;
    case SL_DT_INT8:
        return SLUICE_DT_INT8;
    case SL_DT_UINT16:
        return SLUICE_DT_UINT16;
    case SL_DT_INT16:
        return SLUICE_DT_INT16;
    case SL_DT_INT32:
        return SLUICE_DT_INT32;
    case SL_DT_INT64:
        return SLUICE_DT_INT64;
    case SL_DT_STRING:
        return SLUICE_DT_BYTES;
    case SL_DT_BOOL:
        return SLUICE_DT_BOOL;
    case SL_DT_FLOAT16:
        return SLUICE_DT_FP16;
    case SL_DT_DOUBLE:
        return SLUICE_DT_FP64;
    case SL_DT_UINT32:
        return SLUICE_DT_UINT32;
    case SL_DT_UINT64:
        return SLUICE_DT_UINT64;
    default:
        return SLUICE_DT_INVALID;
    }
}

static sl_dtype_t to_engine(sluice_dtype_t t) {
    for (int e = SL_DT_FLOAT; e <= SL_DT_UINT64; e++) {
        if (from_engine((sl_dtype_t)e) == t) return (sl_dtype_t)e;
    }
    return SL_DT_UNDEFINED;
}

static void fmt_shape(char *out, size_t cap, const int64_t *dims, int ndim) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? "," : "", (long long)dims[i]);
    }
    if (n < cap) snprintf(out + n, cap - n, "]");
}

/* Checks one declared tensor (kind "input"/"output") against the model's value info. */
static sluice_status_t *check_tensor(const onnx_model_t *om, const char *kind,
                                     const sluice_tensor_desc_t *d, const sl_value_info_t *vi) {
    const sluice_host_t *h = host();
    sluice_dtype_t dt = from_engine(vi->dtype);
    if (dt != d->dtype) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "%s '%s': config.yaml declares %s, the ONNX model has %s", kind,
                             d->name, sl_dtype_to_name(d->dtype), sl_dtype_to_name(dt));
    }
    if (to_engine(d->dtype) == SL_DT_UNDEFINED || sl_dtype_size(vi->dtype) == 0) {
        return h->status_new(SLUICE_STATUS_UNSUPPORTED,
                             "%s '%s': datatype %s is not supported by the onnx backend", kind,
                             d->name, sl_dtype_to_name(d->dtype));
    }
    if (vi->ndim < 0) return NULL; /* rank unknown: the engine checks shapes at run time */
    const bool batching = om->max_batch_size > 0;
    const int off = batching ? 1 : 0;
    char want[200], have[200];
    fmt_shape(have, sizeof have, vi->dims, vi->ndim);
    int64_t full[SLUICE_MAX_DIMS + 1];
    full[0] = -1;
    memcpy(full + off, d->dims, d->ndim * sizeof *d->dims);
    fmt_shape(want, sizeof want, full, (int)d->ndim + off);
    if (vi->ndim != (int)d->ndim + off) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "%s '%s': config.yaml declares shape %s%s, the ONNX model has %s",
                             kind, d->name, want, batching ? " (batch dimension first)" : "", have);
    }
    if (batching && vi->dims[0] >= 0 && !(vi->dims[0] == 1 && om->max_batch_size == 1)) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "%s '%s': the ONNX model fixes the first dimension at %lld, so it "
                             "cannot batch up to max_batch_size %u (export it with a dynamic "
                             "batch dimension, or set max_batch_size 0)",
                             kind, d->name, (long long)vi->dims[0], om->max_batch_size);
    }
    for (uint32_t k = 0; k < d->ndim; k++) {
        int64_t m = vi->dims[k + (uint32_t)off], c = d->dims[k];
        if (m >= 0 && c >= 0 && m != c) {
            return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                 "%s '%s': config.yaml declares shape %s, the ONNX model has %s",
                                 kind, d->name, want, have);
        }
    }
    return NULL;
}

static void model_free(onnx_model_t *om) {
    for (size_t i = 0; i < om->n_copies; i++)
        sl_model_free(om->copies[i].m);
    free(om->in_map);
    free(om->out_map);
    free(om->name);
    free(om->path);
    free(om);
}

static sluice_status_t *load_copy(onnx_model_t *om, int threads, sl_model_t **out) {
    sl_model_opts_t opts = {.intra_op_threads = threads};
    sl_eng_error_t err = {0};
    sl_eng_status_t s = sl_model_load_file(om->path, &opts, out, &err);
    if (s == SL_ENG_OK) return NULL;
    sluice_status_code_t code = s == SL_ENG_EIO            ? SLUICE_STATUS_NOT_FOUND
                                : s == SL_ENG_EUNSUPPORTED ? SLUICE_STATUS_UNSUPPORTED
                                : s == SL_ENG_ENOMEM       ? SLUICE_STATUS_UNAVAILABLE
                                                           : SLUICE_STATUS_INVALID_ARGUMENT;
    return host()->status_new(code, "cannot load the ONNX model of '%s': %s", om->name,
                              err.msg[0] ? err.msg : sl_eng_strerror(s));
}

static sluice_status_t *onnx_model_load(void *backend_state, const sluice_model_desc_t *desc,
                                        void **model_state) {
    const sluice_host_t *h = host();
    *model_state = NULL;
    onnx_model_t *om = sl_calloc(1, sizeof *om);
    om->name = sl_strdup(desc->name);
    om->path = sl_strdup(desc->artifact_path);
    om->max_batch_size = desc->max_batch_size;
    om->n_cfg_in = desc->n_inputs;
    om->n_cfg_out = desc->n_outputs;
    sl_model_t *m = NULL;
    sluice_status_t *st = load_copy(om, 1, &m);
    if (st) {
        model_free(om);
        return st;
    }
    om->copies[0] = (engine_copy_t){.m = m, .threads = 1};
    om->n_copies = 1;
    om->n_eng_in = sl_model_num_inputs(m);
    om->n_eng_out = sl_model_num_outputs(m);
    om->in_map = sl_calloc(desc->n_inputs ? desc->n_inputs : 1, sizeof *om->in_map);
    om->out_map = sl_calloc(desc->n_outputs ? desc->n_outputs : 1, sizeof *om->out_map);

    bool *used = sl_calloc(om->n_eng_in ? om->n_eng_in : 1, sizeof *used);
    for (size_t i = 0; i < desc->n_inputs && !st; i++) {
        const sluice_tensor_desc_t *d = &desc->inputs[i];
        int e = sl_model_input_index(m, d->name);
        if (e < 0) {
            st = h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                               "input '%s' of config.yaml is not an input of the ONNX model",
                               d->name);
            break;
        }
        used[e] = true;
        om->in_map[i] = e;
        st = check_tensor(om, "input", d, sl_model_input(m, (size_t)e));
    }
    for (size_t e = 0; e < om->n_eng_in && !st; e++) {
        if (!used[e]) {
            st = h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                               "the ONNX model's input '%s' is not declared in config.yaml",
                               sl_model_input(m, e)->name);
        }
    }
    free(used);
    for (size_t j = 0; j < desc->n_outputs && !st; j++) {
        const sluice_tensor_desc_t *d = &desc->outputs[j];
        int e = sl_model_output_index(m, d->name);
        if (e < 0) {
            st = h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                               "output '%s' of config.yaml is not an output of the ONNX model",
                               d->name);
            break;
        }
        om->out_map[j] = e;
        st = check_tensor(om, "output", d, sl_model_output(m, (size_t)e));
    }
    if (st) {
        model_free(om);
        return st;
    }
    *model_state = om;
    return NULL;
}

static void onnx_model_unload(void *model_state) {
    if (model_state) model_free(model_state);
}

static sluice_status_t *onnx_instance_new(void *model_state, const sluice_instance_desc_t *desc,
                                          void **instance_state) {
    onnx_model_t *om = model_state;
    *instance_state = NULL;
    if (desc->device != SLUICE_DEVICE_CPU) {
        return host()->status_new(SLUICE_STATUS_UNSUPPORTED,
                                  "the onnx backend runs on CPU only (instance %u asks for GPU)",
                                  desc->index);
    }
    int threads = desc->threads >= 1 ? (int)SL_MIN(desc->threads, 1024u) : 1;
    engine_copy_t *copy = NULL;
    for (size_t i = 0; i < om->n_copies; i++) {
        if (om->copies[i].threads == threads) copy = &om->copies[i];
    }
    if (!copy) {
        /* The copy loaded for validation (1 thread) is dropped if nobody runs on it. */
        if (om->n_copies == 1 && om->copies[0].users == 0) {
            sl_model_free(om->copies[0].m);
            om->n_copies = 0;
        }
        if (om->n_copies == MAX_COPIES) {
            return host()->status_new(SLUICE_STATUS_UNSUPPORTED,
                                      "model '%s': instances use more than %d different thread "
                                      "counts",
                                      om->name, MAX_COPIES);
        }
        sl_model_t *m = NULL;
        sluice_status_t *st = load_copy(om, threads, &m);
        if (st) return st;
        copy = &om->copies[om->n_copies++];
        *copy = (engine_copy_t){.m = m, .threads = threads};
    }
    sl_eng_error_t err = {0};
    sl_run_t *run = NULL;
    sl_eng_status_t s = sl_run_new(copy->m, &run, &err);
    if (s != SL_ENG_OK) {
        return host()->status_new(SLUICE_STATUS_INTERNAL, "model '%s': cannot create a run: %s",
                                  om->name, err.msg[0] ? err.msg : sl_eng_strerror(s));
    }
    onnx_instance_t *in = sl_calloc(1, sizeof *in);
    in->model = om;
    in->copy = copy;
    in->run = run;
    in->in = sl_calloc(om->n_eng_in ? om->n_eng_in : 1, sizeof *in->in);
    in->out = sl_calloc(om->n_eng_out ? om->n_eng_out : 1, sizeof *in->out);
    copy->users++;
    *instance_state = in;
    return NULL;
}

static void onnx_instance_free(void *instance_state) {
    onnx_instance_t *in = instance_state;
    if (!in) return;
    sl_run_free(in->run);
    in->copy->users--;
    free(in->in);
    free(in->out);
    free(in);
}

static sluice_status_t *onnx_execute(void *instance_state, sluice_batch_t *batch) {
    onnx_instance_t *in = instance_state;
    const onnx_model_t *om = in->model;
    const sluice_host_t *h = host();
    for (size_t i = 0; i < om->n_cfg_in; i++) {
        const sluice_tensor_t *t = h->batch_input(batch, i);
        sl_tensor_t *e = &in->in[om->in_map[i]];
        e->dtype = to_engine(t->dtype);
        e->ndim = (int)t->ndim;
        memcpy(e->dims, t->dims, t->ndim * sizeof *t->dims);
        e->data = (void *)t->data; /* the engine only reads inputs */
    }
    sl_eng_error_t err = {0};
    sl_eng_status_t s = sl_run_exec(in->run, in->in, om->n_eng_in, in->out, om->n_eng_out, &err);
    if (s != SL_ENG_OK) {
        const char *msg = err.msg[0] ? err.msg : sl_eng_strerror(s);
        /* Declared shapes were checked at load, so a shape the engine refuses now (a dynamic
         * dimension out of what the graph allows, tensors over the size limit) comes from the
         * request: the client's error. */
        if (s == SL_ENG_EINVAL || s == SL_ENG_ESHAPE || s == SL_ENG_ELIMIT) {
            return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                 "model '%s' cannot run these inputs: %s", om->name, msg);
        }
        return h->status_new(SLUICE_STATUS_INTERNAL, "model '%s': %s", om->name, msg);
    }
    for (size_t j = 0; j < om->n_cfg_out; j++) {
        if (!h->batch_output_wanted(batch, j)) continue;
        const sl_tensor_t *o = &in->out[om->out_map[j]];
        if (o->ndim < 0 || o->ndim > SLUICE_MAX_DIMS) {
            return h->status_new(SLUICE_STATUS_INTERNAL, "model '%s': output %zu has rank %d",
                                 om->name, j, o->ndim);
        }
        void *dst = NULL;
        sluice_status_t *st;
        if ((st = h->output_alloc(batch, j, from_engine(o->dtype), (uint32_t)o->ndim, o->dims, 0,
                                  &dst)) != NULL) {
            return st;
        }
        size_t n = sl_tensor_nbytes(o);
        if (n) memcpy(dst, o->data, n);
    }
    return NULL;
}

static const sluice_backend_iface_t onnx_iface = {
    .api_major = SLUICE_BACKEND_API_MAJOR,
    .api_minor = SLUICE_BACKEND_API_MINOR,
    .name = "onnx",
    .model_load = onnx_model_load,
    .model_unload = onnx_model_unload,
    .instance_new = onnx_instance_new,
    .instance_free = onnx_instance_free,
    .execute = onnx_execute,
};

const sluice_backend_iface_t *sl_backend_onnx_entry(void) {
    return &onnx_iface;
}
