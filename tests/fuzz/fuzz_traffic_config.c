/* Fuzzes the traffic policy parser (sl_traffic_set_parse_text) on arbitrary bytes: YAML syntax
 * and limits, splits, sticky keys, shadows, override headers. A failure must explain itself in at
 * most 20 lines; every policy of a set that parses must be found by name and must answer
 * sl_traffic_pick with one of its own versions, whatever the sticky and override values. */
#include "gateway/traffic.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The decision names a version of p: a split version, or the shadow through an override. */
static void check_decision(const sl_traffic_policy_t *p, const sl_traffic_decision_t *d,
                           bool overridden) {
    bool found = false;
    for (size_t i = 0; i < p->n_versions && !found; i++)
        found = d->version == p->versions[i].name &&
                (p->versions[i].weight > 0 || d->reason == SL_TRAFFIC_BY_OVERRIDE);
    if (!found &&
        !(d->version && d->version == p->shadow_version && d->reason == SL_TRAFFIC_BY_OVERRIDE))
        abort();
    if (d->shadow && (d->shadow != p->shadow_version || d->shadow == d->version)) abort();
    if (d->reason == SL_TRAFFIC_BY_OVERRIDE && !overridden) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_traffic_set_t *s = NULL;
    sl_buf_t err = SL_BUF_INIT;
    int rc = sl_traffic_set_parse_text("fuzz.yaml", data, size, &s, &err);
    if (rc != 0) {
        /* Every failure explains itself, within the limit, and leaves nothing behind. */
        size_t lines = 0;
        for (size_t i = 0; i < err.len; i++)
            lines += err.data[i] == '\n';
        if (s != NULL || err.len == 0 || err.data[err.len - 1] != '\n') abort();
        /* The policy parser's own problems: one line each, at most 20. (libyaml-level errors
         * from core/yaml_doc.c may quote a key holding line breaks, so they are not counted.) */
        if (rc == SL_EINVAL && lines > 20) abort();
        if (rc != SL_EINVAL && rc != SL_EPARSE && rc != SL_ELIMIT) abort();
        sl_buf_free(&err);
        return 0;
    }
    if (!s || err.len != 0) abort();
    /* Sticky and override values taken from the input: its start and its end. */
    size_t half = size / 2;
    sl_str_t sticky = {(const char *)data, SL_MIN(half, 64)};
    sl_str_t tail = {(const char *)data + size - SL_MIN(half, 16), SL_MIN(half, 16)};
    sl_str_t none = {NULL, 0};
    size_t n = sl_traffic_set_count(s);
    if (n > SL_TRAFFIC_MAX_POLICIES) abort();
    for (size_t i = 0; i < n; i++) {
        const sl_traffic_policy_t *p = sl_traffic_set_at(s, i);
        if (sl_traffic_set_find(s, (sl_str_t){p->model, strlen(p->model)}) == NULL) abort();
        if (p->n_versions < 1 || p->n_versions > SL_TRAFFIC_MAX_VERSIONS || !p->total_weight)
            abort();
        sl_traffic_decision_t d;
        sl_traffic_pick(p, none, none, &d);
        check_decision(p, &d, false);
        sl_traffic_pick(p, sticky, tail, &d);
        check_decision(p, &d, true);
        sl_traffic_pick_with(p, none, none, 0, 0, &d);
        check_decision(p, &d, false);
        sl_traffic_pick_with(p, none, none, UINT64_MAX, UINT64_MAX, &d);
        check_decision(p, &d, false);
        /* Every version and the shadow, named by the override header. */
        for (size_t k = 0; k <= p->n_versions; k++) {
            const char *v = k < p->n_versions ? p->versions[k].name : p->shadow_version;
            if (!v) continue;
            sl_traffic_pick(p, sticky, (sl_str_t){v, strlen(v)}, &d);
            if (d.version != v || d.reason != SL_TRAFFIC_BY_OVERRIDE) abort();
        }
    }
    sl_traffic_set_unref(s);
    sl_buf_free(&err);
    return 0;
}
