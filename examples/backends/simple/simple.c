/* The minimal example of Sluice's backend ABI (include/sluice/backend.h), built as the shared
 * object libsluice_backend_simple.so: Triton's "simple" model. Two INT32 inputs INPUT0 and
 * INPUT1 of one shape; OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1 (wrapping, as
 * two's-complement int32). It uses every lifecycle entry and nothing but the ABI and libc, so
 * it is the template for a new backend. config.yaml's `parameters: {delay_us: N}` makes each
 * execute sleep N microseconds (tests use it for a slow model). */
/* nanosleep: this file builds alone, without the server's compile definitions. */
#define _POSIX_C_SOURCE 200809L

#include <sluice/backend.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DELAY_US 60000000ULL /* one minute */

/* Backend-wide state: the host table (valid from backend_init to backend_fini). */
typedef struct simple_backend {
    const sluice_host_t *host;
    unsigned models; /* loaded models, for the log line at fini */
} simple_backend_t;

/* Per model version: read-only after model_load, shared by its instances. */
typedef struct simple_model {
    simple_backend_t *backend;
    unsigned long long delay_us;
    size_t in_idx[2];  /* config index of INPUT0, INPUT1 */
    size_t out_idx[2]; /* config index of OUTPUT0, OUTPUT1 */
} simple_model_t;

/* Per instance: only ever used by its own execution thread. */
typedef struct simple_instance {
    const simple_model_t *model;
    unsigned index;
    unsigned long long executions;
} simple_instance_t;

static sluice_status_t *simple_backend_init(const sluice_host_t *host, void **backend_state) {
    if (host->api_major != SLUICE_BACKEND_API_MAJOR) {
        return host->status_new(SLUICE_STATUS_UNSUPPORTED, "simple: host ABI %u.%u, built for %d",
                                host->api_major, host->api_minor, SLUICE_BACKEND_API_MAJOR);
    }
    simple_backend_t *b = calloc(1, sizeof *b);
    if (!b) return host->status_new(SLUICE_STATUS_INTERNAL, "simple: out of memory");
    b->host = host;
    host->log(1, "simple backend initialised");
    *backend_state = b;
    return NULL;
}

static void simple_backend_fini(void *backend_state) {
    simple_backend_t *b = backend_state;
    char line[96];
    snprintf(line, sizeof line, "simple backend finalised after %u model loads", b->models);
    b->host->log(1, line);
    free(b);
}

/* Finds name among n descs; returns its index or n. */
static size_t find(const sluice_tensor_desc_t *d, size_t n, const char *name) {
    size_t i = 0;
    while (i < n && strcmp(d[i].name, name) != 0)
        i++;
    return i;
}

static sluice_status_t *simple_model_load(void *backend_state, const sluice_model_desc_t *desc,
                                          void **model_state) {
    simple_backend_t *b = backend_state;
    const sluice_host_t *h = b->host;
    static const char *const in_names[2] = {"INPUT0", "INPUT1"};
    static const char *const out_names[2] = {"OUTPUT0", "OUTPUT1"};
    *model_state = NULL;
    simple_model_t *m = calloc(1, sizeof *m);
    if (!m) return h->status_new(SLUICE_STATUS_INTERNAL, "simple: out of memory");
    m->backend = b;
    for (int k = 0; k < 2; k++) {
        size_t i = find(desc->inputs, desc->n_inputs, in_names[k]);
        size_t o = find(desc->outputs, desc->n_outputs, out_names[k]);
        const char *missing = i == desc->n_inputs    ? in_names[k]
                              : o == desc->n_outputs ? out_names[k]
                                                     : NULL;
        if (missing) {
            free(m);
            return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                 "model '%s': the simple backend needs a tensor named %s",
                                 desc->name, missing);
        }
        if (desc->inputs[i].dtype != SLUICE_DT_INT32 || desc->outputs[o].dtype != SLUICE_DT_INT32) {
            free(m);
            return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                 "model '%s': %s and %s must be INT32", desc->name, in_names[k],
                                 out_names[k]);
        }
        m->in_idx[k] = i;
        m->out_idx[k] = o;
    }
    for (size_t p = 0; p < desc->n_params; p++) {
        if (strcmp(desc->param_keys[p], "delay_us") != 0) continue;
        const char *v = desc->param_values[p];
        char *end = NULL;
        errno = 0;
        unsigned long long us = strtoull(v, &end, 10);
        if (errno || end == v || *end != '\0' || v[0] == '-' || us > MAX_DELAY_US) {
            free(m);
            return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                                 "model '%s': parameter delay_us must be an integer in 0..%llu, "
                                 "got '%s'",
                                 desc->name, MAX_DELAY_US, v);
        }
        m->delay_us = us;
    }
    b->models++;
    *model_state = m;
    return NULL;
}

static void simple_model_unload(void *model_state) {
    free(model_state);
}

static sluice_status_t *simple_instance_new(void *model_state, const sluice_instance_desc_t *desc,
                                            void **instance_state) {
    simple_model_t *m = model_state;
    *instance_state = NULL;
    if (desc->device != SLUICE_DEVICE_CPU) {
        return m->backend->host->status_new(SLUICE_STATUS_UNSUPPORTED,
                                            "the simple backend runs on CPU only");
    }
    simple_instance_t *in = calloc(1, sizeof *in);
    if (!in) return m->backend->host->status_new(SLUICE_STATUS_INTERNAL, "simple: out of memory");
    in->model = m;
    in->index = desc->index;
    *instance_state = in;
    return NULL;
}

static void simple_instance_free(void *instance_state) {
    free(instance_state);
}

static void sleep_us(unsigned long long us) {
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static sluice_status_t *simple_execute(void *instance_state, sluice_batch_t *batch) {
    simple_instance_t *in = instance_state;
    const simple_model_t *m = in->model;
    const sluice_host_t *h = m->backend->host;
    const sluice_tensor_t *a = h->batch_input(batch, m->in_idx[0]);
    const sluice_tensor_t *b = h->batch_input(batch, m->in_idx[1]);
    if (a->ndim != b->ndim || memcmp(a->dims, b->dims, a->ndim * sizeof a->dims[0]) != 0) {
        return h->status_new(SLUICE_STATUS_INVALID_ARGUMENT,
                             "INPUT0 and INPUT1 must have the same shape");
    }
    if (m->delay_us) sleep_us(m->delay_us);
    size_t n = (size_t)(a->byte_size / sizeof(int32_t));
    const int32_t *x = a->data, *y = b->data;
    for (int k = 0; k < 2; k++) {
        if (!h->batch_output_wanted(batch, m->out_idx[k])) continue;
        void *data = NULL;
        sluice_status_t *st;
        if ((st = h->output_alloc(batch, m->out_idx[k], SLUICE_DT_INT32, a->ndim, a->dims, 0,
                                  &data)) != NULL) {
            return st;
        }
        int32_t *z = data;
        /* Unsigned arithmetic wraps; signed overflow would be undefined. */
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)x[i], v = (uint32_t)y[i];
            z[i] = (int32_t)(k == 0 ? u + v : u - v);
        }
    }
    in->executions++;
    return NULL;
}

static const sluice_backend_iface_t simple_iface = {
    .api_major = SLUICE_BACKEND_API_MAJOR,
    .api_minor = SLUICE_BACKEND_API_MINOR,
    .name = "simple",
    .backend_init = simple_backend_init,
    .backend_fini = simple_backend_fini,
    .model_load = simple_model_load,
    .model_unload = simple_model_unload,
    .instance_new = simple_instance_new,
    .instance_free = simple_instance_free,
    .execute = simple_execute,
};

SLUICE_EXPORT const sluice_backend_iface_t *sluice_backend_entry(void) {
    return &simple_iface;
}
