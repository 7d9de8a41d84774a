/* Component health: a list of named checks run on demand for the /livez, /readyz and /healthz
 * probes (and grpc.health.v1). Probes may arrive on several I/O threads at once, so the list is
 * guarded by a read-write lock and the started flag is atomic; checks themselves must be
 * thread-safe and non-blocking (the header's contract). */
#include "core/health.h"

#include "core/common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A detail longer than this is cut (on a UTF-8 boundary) so a probe answer stays small. */
#define DETAIL_MAX 512

typedef struct {
    char *name;
    sl_health_check_cb cb;
    void *arg;
    bool required;
} check_t;

struct sl_health {
    char *component;
    sl_runtime_t *rt;
    atomic_bool started;
    pthread_rwlock_t lock; /* checks: written by sl_health_add, read by probes */
    check_t *checks;
    unsigned n_checks, cap_checks;
};

sl_health_t *sl_health_new(const char *component, sl_runtime_t *rt) {
    SL_ASSERT(component);
    sl_health_t *h = sl_calloc(1, sizeof *h);
    h->component = sl_strdup(component);
    h->rt = rt;
    atomic_init(&h->started, false);
    pthread_rwlock_init(&h->lock, NULL);
    return h;
}

void sl_health_free(sl_health_t *h) {
    if (!h) return;
    for (unsigned i = 0; i < h->n_checks; i++)
        free(h->checks[i].name);
    free(h->checks);
    pthread_rwlock_destroy(&h->lock);
    free(h->component);
    free(h);
}

void sl_health_add(sl_health_t *h, const char *name, sl_health_check_cb cb, void *arg,
                   bool required) {
    SL_ASSERT(name && *name && cb);
    pthread_rwlock_wrlock(&h->lock);
    for (unsigned i = 0; i < h->n_checks; i++) {
        /* Two checks of one name would make /healthz a JSON object with a duplicate key. */
        SL_ASSERT(strcmp(h->checks[i].name, name) != 0);
    }
    if (h->n_checks == h->cap_checks) {
        h->cap_checks = h->cap_checks ? h->cap_checks * 2 : 4;
        h->checks = sl_realloc(h->checks, h->cap_checks * sizeof *h->checks);
    }
    h->checks[h->n_checks++] = (check_t){sl_strdup(name), cb, arg, required};
    pthread_rwlock_unlock(&h->lock);
}

void sl_health_set_started(sl_health_t *h, bool started) {
    atomic_store(&h->started, started);
}

const char *sl_health_status_name(sl_health_status_t s) {
    switch (s) {
    case SL_HEALTH_OK:
        return "ok";
    case SL_HEALTH_DEGRADED:
        return "degraded";
    case SL_HEALTH_DOWN:
        return "down";
    }
    return "down";
}

const char *sl_health_component(const sl_health_t *h) {
    return h->component;
}

static void put_json_str(sl_buf_t *b, const char *s, size_t n) {
    sl_buf_putc(b, '"');
    sl_buf_json_escape(b, s, n);
    sl_buf_putc(b, '"');
}

/* Why the component is not ready before any check runs, or NULL. Draining wins over starting:
 * a component stopping before it finished starting is on its way out. */
static const char *lifecycle_reason(sl_health_t *h) {
    if (h->rt && sl_runtime_draining(h->rt)) return "draining";
    if (!atomic_load(&h->started)) return "starting";
    return NULL;
}

/* Runs the checks (all of them, or only the required ones for a readiness probe) and computes
 * the overall status, readiness and the reason for not being ready. */
static sl_health_status_t evaluate(sl_health_t *h, sl_buf_t *json, bool all_checks, bool *ready,
                                   sl_buf_t *reason) {
    const char *why = lifecycle_reason(h);
    sl_health_status_t overall = SL_HEALTH_OK;
    sl_buf_t detail = SL_BUF_INIT, checks = SL_BUF_INIT, down = SL_BUF_INIT;

    pthread_rwlock_rdlock(&h->lock);
    for (unsigned i = 0; i < h->n_checks; i++) {
        const check_t *c = &h->checks[i];
        if (!all_checks && !c->required) continue;
        if (!all_checks && why) break; /* a probe for readiness: not ready anyway */
        sl_buf_reset(&detail);
        sl_health_status_t st = c->cb(c->arg, &detail);
        if (st != SL_HEALTH_OK && st != SL_HEALTH_DEGRADED) st = SL_HEALTH_DOWN; /* unknown */
        if (st == SL_HEALTH_DOWN && c->required) {
            overall = SL_HEALTH_DOWN;
            sl_buf_puts(&down, down.len ? ", " : "required check down: ");
            sl_buf_puts(&down, c->name);
        } else if (st != SL_HEALTH_OK && overall == SL_HEALTH_OK) {
            overall = SL_HEALTH_DEGRADED;
        }
        if (!json) continue;
        size_t dlen = detail.len;
        if (dlen > DETAIL_MAX) {
            dlen = DETAIL_MAX;
            while (dlen > 0 && ((unsigned char)detail.data[dlen] & 0xc0) == 0x80)
                dlen--;
        }
        sl_buf_puts(&checks, checks.len ? "," : "");
        put_json_str(&checks, c->name, strlen(c->name));
        sl_buf_puts(&checks, ":{\"status\":\"");
        sl_buf_puts(&checks, sl_health_status_name(st));
        sl_buf_putc(&checks, '"');
        if (dlen) {
            sl_buf_puts(&checks, ",\"detail\":");
            put_json_str(&checks, detail.data, dlen);
        }
        sl_buf_putc(&checks, '}');
    }
    pthread_rwlock_unlock(&h->lock);

    if (!why && down.len) why = down.data;
    *ready = why == NULL;
    if (reason && why) sl_buf_puts(reason, why);
    if (json) {
        sl_buf_puts(json, "{\"status\":\"");
        sl_buf_puts(json, sl_health_status_name(overall));
        sl_buf_puts(json, "\",\"component\":");
        put_json_str(json, h->component, strlen(h->component));
        sl_buf_puts(json, *ready ? ",\"ready\":true" : ",\"ready\":false,\"reason\":");
        if (why) put_json_str(json, why, strlen(why));
        sl_buf_puts(json, ",\"checks\":{");
        if (checks.len) sl_buf_append(json, checks.data, checks.len);
        sl_buf_puts(json, "}}");
    }
    sl_buf_free(&detail);
    sl_buf_free(&checks);
    sl_buf_free(&down);
    return overall;
}

sl_health_status_t sl_health_evaluate(sl_health_t *h, sl_buf_t *json) {
    bool ready;
    return evaluate(h, json, true, &ready, NULL);
}

bool sl_health_ready(sl_health_t *h, sl_buf_t *reason) {
    bool ready;
    /* Only required checks decide readiness; the others are not worth running for /readyz. */
    evaluate(h, NULL, false, &ready, reason);
    return ready;
}
