/* Traffic policies per model for the gateway: a weighted split between versions (95/5), sticky
 * assignment by a hash of a request key (A/B), shadow traffic mirrored to another version, and a
 * header override for testing. A policy set is parsed from the `gateway.traffic` section of the
 * config, is immutable once built, and is swapped by pointer on hot reload (sl_traffic_holder_t).
 *
 * Config (every key but split optional):
 *
 *   traffic:
 *     fraud:
 *       split: {"1.4.0": 95, "1.5.0": 5}      # integer weights, any positive total
 *       sticky: user_id                       # or {field: user_id} or {header: x-user-id}
 *       shadow: {version: "1.6.0", percent: 10}
 *       override_header: x-sluice-version
 *
 * Sticky property (a compatibility promise: the hash is frozen, see sl_traffic_sticky_hash): a
 * key's point in [0, 1) depends only on the model name and the key, never on the process or the
 * weights. Versions own consecutive ranges of [0, 1) in the order the split lists them, so a
 * key keeps its version for as long as the weights stay the same, in every gateway replica and
 * across restarts. When weights change, only the keys between a boundary's old and new place
 * move: with the stable version listed first and the canary last, growing the canary from 5% to
 * 10% moves keys from stable to canary and never the reverse. Reordering the split reshuffles.
 *
 * Threads: a set never changes once built, so any number of I/O threads may pick from it at
 * once; picks use a per-thread PRNG and take no lock. */
#ifndef SL_GATEWAY_TRAFFIC_H
#define SL_GATEWAY_TRAFFIC_H

#include "core/buf.h"
#include "core/common.h"
#include "core/snapshot.h"
#include "core/yaml_doc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_TRAFFIC_MAX_POLICIES 1024    /* models with a policy */
#define SL_TRAFFIC_MAX_VERSIONS 16      /* versions in one split */
#define SL_TRAFFIC_MODEL_MAX    128     /* bytes of a model name */
#define SL_TRAFFIC_VERSION_MAX  64      /* bytes of a version */
#define SL_TRAFFIC_KEY_NAME_MAX 128     /* bytes of a sticky field or header name */
#define SL_TRAFFIC_MAX_WEIGHT   1000000 /* one version's weight */
#define SL_TRAFFIC_SHADOW_SCALE 10000   /* shadow shares are in basis points (1/100 %) */
#define SL_TRAFFIC_CONFIG_MAX   (1u << 20)

typedef enum sl_traffic_sticky_source {
    SL_TRAFFIC_STICKY_NONE = 0,
    SL_TRAFFIC_STICKY_FIELD,  /* a top-level field of the JSON request body */
    SL_TRAFFIC_STICKY_HEADER, /* a request header (name stored in lower case) */
} sl_traffic_sticky_source_t;

typedef struct sl_traffic_version {
    const char *name; /* "1.4.0" */
    uint32_t weight;  /* 0: reachable only through the override header */
} sl_traffic_version_t;

/* One model's policy. Every pointer is owned by the set and lives as long as it does. */
typedef struct sl_traffic_policy {
    const char *model;
    const sl_traffic_version_t *versions; /* in config order; n_versions >= 1 */
    size_t n_versions;
    uint64_t total_weight; /* > 0 */
    sl_traffic_sticky_source_t sticky_source;
    const char *sticky_name;     /* NULL when sticky_source is NONE */
    const char *shadow_version;  /* NULL: no shadow traffic; never one of versions[] */
    uint32_t shadow_bp;          /* share mirrored, in basis points (0..10000) */
    const char *override_header; /* lower case; NULL: overrides are off */
    uint32_t line;               /* config line of the policy, for messages */
    uint64_t sticky_seed;        /* internal: the sticky hash's state after the model name */
} sl_traffic_policy_t;

/* --- Policy sets --------------------------------------------------------------------------- */

typedef struct sl_traffic_set sl_traffic_set_t;

/* Builds a set from the value of the `traffic:` key (a mapping of model name to policy; NULL or
 * a YAML null gives an empty set). file names the config in messages. Returns 0 and *out (one
 * reference, drop it with sl_traffic_set_unref), or SL_EINVAL with *out NULL and one
 * "file:line: message" line per problem (at most 20) appended to err. traffic is borrowed for
 * the call only: the set copies what it keeps. */
int sl_traffic_set_parse(const char *file, const sl_yaml_node_t *traffic, sl_traffic_set_t **out,
                         sl_buf_t *err);
/* Parses the YAML document data[0..len) (borrowed, at most SL_TRAFFIC_CONFIG_MAX bytes) and
 * builds a set from its top-level `traffic` key (absent: an empty set). Same results as
 * sl_traffic_set_parse, plus SL_EPARSE / SL_ELIMIT for a document libyaml refuses. */
int sl_traffic_set_parse_text(const char *file, const void *data, size_t len,
                              sl_traffic_set_t **out, sl_buf_t *err);
/* An empty set (no model has a policy); one reference. */
sl_traffic_set_t *sl_traffic_set_empty(void);

/* References: a set is freed when its last reference is dropped. Both are thread-safe;
 * sl_traffic_set_ref returns s, sl_traffic_set_unref accepts NULL. */
sl_traffic_set_t *sl_traffic_set_ref(const sl_traffic_set_t *s);
void sl_traffic_set_unref(const sl_traffic_set_t *s);

/* The policy for model (borrowed, NUL not required), or NULL when the model has none (the
 * gateway then routes to the model's default version). The pointer lives as long as the set. */
const sl_traffic_policy_t *sl_traffic_set_find(const sl_traffic_set_t *s, sl_str_t model);
/* Number of policies, and the i-th in model-name order (for listings and /v2 debug output). */
size_t sl_traffic_set_count(const sl_traffic_set_t *s);
const sl_traffic_policy_t *sl_traffic_set_at(const sl_traffic_set_t *s, size_t i);

/* --- Picking a version --------------------------------------------------------------------- */

typedef enum sl_traffic_reason {
    SL_TRAFFIC_BY_WEIGHT = 0, /* a random draw by weight */
    SL_TRAFFIC_BY_STICKY,     /* the sticky key's hash */
    SL_TRAFFIC_BY_OVERRIDE,   /* the override header named a version of the policy */
} sl_traffic_reason_t;

typedef struct sl_traffic_decision {
    const char *version; /* serves the client; borrowed from the set */
    const char *shadow;  /* mirror this request here and discard the answer; NULL: no mirror */
    sl_traffic_reason_t reason;
    /* The override header was sent but named no version of the policy: it was ignored and the
     * version was picked as if it were absent (the gateway may log it or add a response
     * header; it must not forward the value upstream). */
    bool override_ignored;
} sl_traffic_decision_t;

/* Picks the version for one request of policy p. sticky is the value of the policy's sticky
 * field or header and override the value of its override header; the caller extracts both
 * (ptr NULL: not present in the request; both borrowed for the call). Order: an override naming
 * one of the split versions or the shadow version wins; else a present sticky value decides by
 * hash; else a weighted random draw. A request that has no sticky value falls back to the
 * random draw. Shadow mirroring is a separate random draw of shadow_bp / 10000, skipped when the
 * override picked the shadow version itself. The decision's strings are borrowed from the set:
 * a request that keeps them past the current callback holds a set reference. Lock-free. */
void sl_traffic_pick(const sl_traffic_policy_t *p, sl_str_t sticky, sl_str_t override,
                     sl_traffic_decision_t *out);
/* The same with the two random draws given (uniform 64-bit values), for tests and replays. */
void sl_traffic_pick_with(const sl_traffic_policy_t *p, sl_str_t sticky, sl_str_t override,
                          uint64_t r_split, uint64_t r_shadow, sl_traffic_decision_t *out);

/* The frozen sticky hash: 64-bit FNV-1a over model, one 0 byte, then key, finished with the
 * murmur3 fmix64 avalanche. Never change it: every sticky assignment in every replica depends
 * on it. A key lands on the version whose range holds floor(hash * total / 2^64). */
uint64_t sl_traffic_sticky_hash(sl_str_t model, sl_str_t key);

/* --- Hot reload ---------------------------------------------------------------------------- */

/* Holds the current set for many I/O threads: a typed sl_snapshot_t (core/snapshot.h). A plain
 * atomic pointer plus refcounts would race (a reader loads the pointer, the reloader drops the last
 * reference, the reader's ref touches freed memory), so the holder hands out references under a
 * short lock and bumps a generation on every publish; a per-thread view re-acquires only when the
 * generation changed, so the steady-state cost of sl_traffic_view_get is one atomic load. */
typedef struct sl_traffic_holder sl_traffic_holder_t;

/* Creates a holder publishing initial (the caller's reference moves in; NULL: an empty set).
 * sl_traffic_holder_free drops the holder's reference; views release their own. */
sl_traffic_holder_t *sl_traffic_holder_new(sl_traffic_set_t *initial);
void sl_traffic_holder_free(sl_traffic_holder_t *h);
/* Publishes s (the caller's reference moves in; NULL: an empty set) and drops the holder's
 * reference to the previous set; readers still using it keep it alive with their own. */
void sl_traffic_holder_publish(sl_traffic_holder_t *h, sl_traffic_set_t *s);
/* A new reference to the current set (never NULL); the caller drops it with
 * sl_traffic_set_unref. */
sl_traffic_set_t *sl_traffic_holder_acquire(sl_traffic_holder_t *h);

/* One reader thread's cached reference; zero-initialise it ({0}). */
typedef struct sl_traffic_view {
    sl_snapshot_view_t snap; /* private */
} sl_traffic_view_t;

/* The current set (never NULL), re-acquired only when a new one was published. Borrowed from
 * the view: valid until the next sl_traffic_view_get or sl_traffic_view_release on the same
 * view. */
const sl_traffic_set_t *sl_traffic_view_get(sl_traffic_holder_t *h, sl_traffic_view_t *v);
void sl_traffic_view_release(sl_traffic_view_t *v);

#endif
