/* The backend registry (backends.h): the built-in backends (onnx, xgboost) and backends in
 * shared objects (<dir>/libsluice_backend_<name>.so), each checked against the ABI version and
 * initialised once on first use, finalised and unloaded when the registry is freed. */
#include "inference/backends.h"

#include "core/common.h"
#include "core/log.h"
#include "inference/batch.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_NAME 64

typedef struct builtin {
    const char *name;
    sluice_backend_entry_fn entry;
} builtin_t;

static const builtin_t builtins[] = {
    {"onnx", sl_backend_onnx_entry},
    {"xgboost", sl_backend_xgboost_entry},
};

typedef struct backend {
    char *name;
    const sluice_backend_iface_t *iface;
    void *dl; /* NULL for built-ins */
    void *state;
} backend_t;

struct sl_backends {
    char *dir;
    pthread_mutex_t mu;
    backend_t *v; /* initialised backends */
    size_t n, cap;
};

sl_backends_t *sl_backends_new(const char *dir) {
    sl_backends_t *b = sl_calloc(1, sizeof *b);
    b->dir = dir ? sl_strdup(dir) : NULL;
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void sl_backends_free(sl_backends_t *b) {
    if (!b) return;
    /* Finalise in reverse order of initialisation, as a stack of resources. */
    for (size_t i = b->n; i-- > 0;) {
        backend_t *e = &b->v[i];
        if (e->iface->backend_fini) e->iface->backend_fini(e->state);
        if (e->dl) dlclose(e->dl);
        free(e->name);
    }
    free(b->v);
    free(b->dir);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int sl_backends__check_iface(const sluice_backend_iface_t *iface, sl_buf_t *err) {
    if (!iface) {
        sl_buf_puts(err, "the backend's entry function returned no interface");
        return SL_EINVAL;
    }
    const char *name = iface->name ? iface->name : "(unnamed)";
    if (iface->api_major != SLUICE_BACKEND_API_MAJOR ||
        iface->api_minor > SLUICE_BACKEND_API_MINOR) {
        sl_buf_printf(err, "backend '%s' was built for ABI %u.%u, this server speaks %d.%d", name,
                      iface->api_major, iface->api_minor, SLUICE_BACKEND_API_MAJOR,
                      SLUICE_BACKEND_API_MINOR);
        return SL_EINVAL;
    }
    if (!iface->name || !iface->name[0]) {
        sl_buf_puts(err, "the backend's interface has no name");
        return SL_EINVAL;
    }
    const char *missing = !iface->model_load      ? "model_load"
                          : !iface->model_unload  ? "model_unload"
                          : !iface->instance_new  ? "instance_new"
                          : !iface->instance_free ? "instance_free"
                          : !iface->execute       ? "execute"
                                                  : NULL;
    if (missing) {
        sl_buf_printf(err, "backend '%s' lacks the required entry %s", name, missing);
        return SL_EINVAL;
    }
    return 0;
}

static bool valid_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

static void not_found(const sl_backends_t *b, const char *name, sl_buf_t *err) {
    sl_buf_printf(err, "backend '%s' not found (built-in: onnx, xgboost; ", name);
    if (b->dir)
        sl_buf_printf(err, "searched %s)", b->dir);
    else
        sl_buf_puts(err, "no backend directory configured)");
}

/* Finds name among the built-ins or opens its shared object. Returns the interface (checked)
 * and *dl (NULL for built-ins), or NULL with the reason in err. */
static const sluice_backend_iface_t *resolve(sl_backends_t *b, const char *name, void **dl,
                                             sl_buf_t *err) {
    *dl = NULL;
    const sluice_backend_iface_t *iface = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(builtins); i++) {
        if (strcmp(builtins[i].name, name) == 0) iface = builtins[i].entry();
    }
    if (!iface) {
        /* The name becomes part of a path: only plain names, never '/' or "..". */
        if (!valid_name(name)) {
            sl_buf_printf(err, "backend name '%.80s' is invalid (1-%d letters, digits, '_' or '-')",
                          name, MAX_NAME);
            return NULL;
        }
        if (!b->dir) {
            not_found(b, name, err);
            return NULL;
        }
        sl_buf_t path = SL_BUF_INIT;
        sl_buf_printf(&path, "%s/libsluice_backend_%s.so", b->dir, name);
        if (access(path.data, F_OK) != 0) {
            sl_buf_free(&path);
            not_found(b, name, err);
            return NULL;
        }
        *dl = dlopen(path.data, RTLD_NOW | RTLD_LOCAL);
        if (!*dl) {
            const char *why = dlerror();
            sl_buf_printf(err, "backend '%s': cannot load %s: %s", name, path.data,
                          why ? why : "unknown error");
            sl_buf_free(&path);
            return NULL;
        }
        sluice_backend_entry_fn entry;
        /* POSIX guarantees function pointers survive the round trip through void *. */
        *(void **)&entry = dlsym(*dl, SLUICE_BACKEND_ENTRY_SYMBOL);
        if (!entry) {
            sl_buf_printf(err, "backend '%s': %s does not export %s", name, path.data,
                          SLUICE_BACKEND_ENTRY_SYMBOL);
            sl_buf_free(&path);
            dlclose(*dl);
            *dl = NULL;
            return NULL;
        }
        sl_buf_free(&path);
        iface = entry();
    }
    if (sl_backends__check_iface(iface, err) != 0) goto fail;
    if (strcmp(iface->name, name) != 0) {
        sl_buf_printf(err, "backend '%s': its interface calls itself '%s'", name, iface->name);
        goto fail;
    }
    return iface;
fail:
    if (*dl) dlclose(*dl);
    *dl = NULL;
    return NULL;
}

const sluice_backend_iface_t *sl_backends_get(sl_backends_t *b, const char *name, void **state,
                                              sl_buf_t *err) {
    *state = NULL;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->v[i].name, name) == 0) {
            *state = b->v[i].state;
            const sluice_backend_iface_t *iface = b->v[i].iface;
            pthread_mutex_unlock(&b->mu);
            return iface;
        }
    }
    void *dl;
    const sluice_backend_iface_t *iface = resolve(b, name, &dl, err);
    if (!iface) {
        pthread_mutex_unlock(&b->mu);
        return NULL;
    }
    void *st = NULL;
    if (iface->backend_init) {
        sluice_status_t *s = iface->backend_init(sl_backend_host(), &st);
        if (s) {
            sl_buf_printf(err, "backend '%s' failed to initialise: %s", name, sl_status_message(s));
            sl_status_free(s);
            if (dl) dlclose(dl);
            pthread_mutex_unlock(&b->mu);
            return NULL;
        }
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 4;
        b->v = sl_realloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = (backend_t){.name = sl_strdup(name), .iface = iface, .dl = dl, .state = st};
    SL_INFO("inference", "backend ready", SL_LF_S("backend", name),
            SL_LF_S("kind", dl ? "shared object" : "built-in"),
            SL_LF_U("abi_major", iface->api_major), SL_LF_U("abi_minor", iface->api_minor));
    *state = st;
    pthread_mutex_unlock(&b->mu);
    return iface;
}
