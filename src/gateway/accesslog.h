/* The gateway's access log: one structured JSON line per request, sampled per status class,
 * with chosen body fields and request headers included and PII among them scrubbed (hashed
 * with a salt, or redacted). Lines go through core/log.h (component "access", level INFO) so
 * they carry the timestamp and trace ids like every other line; sampling, not the logger's
 * repeat limiter, bounds their volume. The policy parser fills sl_access_log_cfg_t from YAML
 * (with the helpers below) and the gateway calls sl_access_log_write from its I/O threads.
 *
 * YAML shape the config mirrors (every key optional):
 *   access_log:
 *     enabled: true
 *     sample_percent: 100          # 0..100, at most two decimals ("0.25")
 *     errors_sample_percent: 100   # share of status >= 400 (other than 401/429)
 *     rejections_sample_percent: 1 # share of 401 and 429 (all are still counted in metrics)
 *     fields: [amount, user_id]    # top-level body fields to include
 *     headers: [user-agent, x-user-id]
 *     scrub: [user_id, {name: x-user-id, mode: redact}]  # mode: hash (default) | redact
 *     salt: "..."                  # optional; random per process when absent
 */
#ifndef SL_GATEWAY_ACCESSLOG_H
#define SL_GATEWAY_ACCESSLOG_H

#include "core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_ACCESS_LOG_MAX_NAMES   16    /* fields, headers: at most 16 each */
#define SL_ACCESS_LOG_MAX_SCRUB   32    /* scrub entries (fields and headers together) */
#define SL_ACCESS_LOG_NAME_MAX    64    /* a name: 1..64 bytes of [A-Za-z0-9_.-] */
#define SL_ACCESS_LOG_SALT_MAX    64    /* configured salt: 0..64 bytes */
#define SL_ACCESS_LOG_VALUE_MAX   256   /* logged values (and the path) are cut at 256 bytes */
#define SL_ACCESS_LOG_PERCENT_ALL 10000 /* percentages are kept in basis points: 100.00% */

/* How a scrubbed value is written: "sha256:" + the first 12 hex digits of SHA-256(salt ||
 * value) (equal values still correlate, none is readable), or the literal "[redacted]". */
typedef enum sl_access_scrub_mode {
    SL_ACCESS_SCRUB_HASH = 0,
    SL_ACCESS_SCRUB_REDACT = 1,
} sl_access_scrub_mode_t;

typedef struct sl_access_scrub {
    char name[SL_ACCESS_LOG_NAME_MAX + 1]; /* a field or header name, matched ignoring case */
    sl_access_scrub_mode_t mode;
} sl_access_scrub_t;

/* Access log configuration: plain data (no pointers), so it can be copied by assignment into a
 * hot-reloaded snapshot. Start from sl_access_log_cfg_init (the defaults), add names with the
 * add helpers (each validates), then call sl_access_log_cfg_validate once at the end. Sampling
 * shares are basis points: 10000 = 100% (every request), 1 = 0.01%, 0 = never. */
typedef struct sl_access_log_cfg {
    bool enabled;                  /* default true */
    uint32_t sample_bp;            /* status < 400; default 10000 */
    uint32_t errors_sample_bp;     /* status >= 400 except 401/429; default 10000 */
    uint32_t rejections_sample_bp; /* status 401 and 429; default 100 (1%) */
    char fields[SL_ACCESS_LOG_MAX_NAMES][SL_ACCESS_LOG_NAME_MAX + 1]; /* body fields */
    size_t n_fields;
    char headers[SL_ACCESS_LOG_MAX_NAMES][SL_ACCESS_LOG_NAME_MAX + 1]; /* stored lowercase */
    size_t n_headers;
    sl_access_scrub_t scrub[SL_ACCESS_LOG_MAX_SCRUB];
    size_t n_scrub;
    unsigned char salt[SL_ACCESS_LOG_SALT_MAX];
    size_t salt_len; /* 0: a random salt made once per process */
} sl_access_log_cfg_t;

/* Fills *cfg with the defaults above (enabled, 100% / 100% / 1%, no fields, headers or scrub
 * names, per-process random salt). */
void sl_access_log_cfg_init(sl_access_log_cfg_t *cfg);

/* Parses a percentage written as "0".."100" with at most two decimals ("12.5", "0.01") into
 * basis points. Returns 0, or SL_EINVAL (not a number of that form) / SL_ERANGE (above 100).
 * s is borrowed for the call. For a YAML scalar pass its value string. */
int sl_access_log_percent_parse(const char *s, uint32_t *out_bp);

/* Add one name to cfg (copied; name borrowed for the call). Each returns 0, or SL_EINVAL (empty,
 * too long, characters outside [A-Za-z0-9_.-], or a name that is never logged: authorization,
 * proxy-authorization, cookie, x-api-key and the like), SL_EEXISTS (already listed, ignoring case)
 * or SL_ELIMIT (list full); on error a message naming the option goes to err (may be NULL; cut
 * to err_len), e.g. "access_log.headers: authorization is never logged". */
int sl_access_log_cfg_add_field(sl_access_log_cfg_t *cfg, const char *name, char *err,
                                size_t err_len);
int sl_access_log_cfg_add_header(sl_access_log_cfg_t *cfg, const char *name, char *err,
                                 size_t err_len);
int sl_access_log_cfg_add_scrub(sl_access_log_cfg_t *cfg, const char *name,
                                sl_access_scrub_mode_t mode, char *err, size_t err_len);
/* Parses "hash" / "redact" into *out; returns 0 or SL_EINVAL. */
int sl_access_log_scrub_mode_parse(const char *s, sl_access_scrub_mode_t *out);
/* Sets the salt (bytes copied; salt borrowed for the call). Returns 0, or SL_EINVAL when len is
 * 0 or above SL_ACCESS_LOG_SALT_MAX (message to err). */
int sl_access_log_cfg_set_salt(sl_access_log_cfg_t *cfg, const void *salt, size_t len, char *err,
                               size_t err_len);

/* Checks a whole config (for one filled by hand or copied): shares <= 10000, counts within
 * bounds, every name well formed and unique, no header or field that must never be logged
 * ("access_log.headers: authorization is never logged"). Returns 0 or SL_EINVAL with a message
 * in err. The policy parser calls it after filling cfg; a config that fails is refused. */
int sl_access_log_cfg_validate(const sl_access_log_cfg_t *cfg, char *err, size_t err_len);

/* Reads the value of a body field or request header named name (a configured name, headers
 * lowercase) for the request being logged. Returns true and sets *out (borrowed: must stay valid
 * until sl_access_log_write returns) when present, false when absent. Body field values are
 * given as text (a JSON string's content unescaped, a number's literal); they are always logged
 * as JSON strings. */
typedef bool (*sl_access_lookup_cb)(void *ctx, const char *name, sl_str_t *out);

/* What the gateway knows about a finished request. Every pointer is borrowed for the call and
 * may be NULL (its key is then left out of the line), every string NUL-terminated except path.
 * Strings are escaped on output; path is attacker-controlled and cut at 256 bytes. */
typedef struct sl_access_entry {
    const char *method;
    const char *path; /* raw request target, path_len bytes, need not be NUL-terminated */
    size_t path_len;
    int status;
    uint64_t duration_us; /* whole request, as the client saw it */
    uint64_t upstream_us; /* time spent waiting for inference (all tries) */
    uint64_t bytes_in;
    uint64_t bytes_out;
    const char *key_id; /* the API key's public id, never the key */
    const char *tenant;
    const char *model;
    const char *version;
    const char *endpoint; /* the upstream endpoint that answered, "host:port" */
    const char *route;    /* "predict", "oip", "admin" */
    const char *outcome;  /* "ok", "rate_limited", "unauthorized", "degraded", "upstream_error",
                             "bad_request", ... */
    bool degraded;
    uint32_t retries;
    const char *trace_id;          /* lowercase hex; NULL: the thread's trace context (log.h) */
    const char *span_id;           /* used with trace_id */
    const char *client_addr;       /* "ip:port" */
    sl_access_lookup_cb field_cb;  /* body fields; NULL: none are logged */
    sl_access_lookup_cb header_cb; /* request headers; NULL: none are logged */
    void *cb_ctx;
} sl_access_entry_t;

/* Whether a request with this status is sampled given rnd (uniform 64-bit randomness, e.g.
 * sl_rand64(); injectable so tests decide): 401 and 429 use rejections_sample_bp, other
 * status >= 400 errors_sample_bp, the rest sample_bp; the request is kept when
 * rnd % 10000 < share. A disabled config samples nothing. */
bool sl_access_log_sampled(const sl_access_log_cfg_t *cfg, int status, uint64_t rnd);

/* Writes one JSON line for e through core/log.h (INFO, component "access", msg "request",
 * bypassing the repeat limiter) when cfg is enabled and the request is sampled (see above).
 * Keys: method, path (+ path_truncated), status, duration_us, upstream_us, bytes_in, bytes_out,
 * key_id, tenant, model, version, endpoint, route, outcome, degraded, retries, client, then
 * "field.<name>" and "header.<name>" for each configured name present, scrubbed when listed in
 * scrub. Values are cut at 256 bytes (scrub hashes see the whole value). Names that must never
 * be logged are skipped even if a config slipped past validation. cfg and e are borrowed for the
 * call. Thread-safe. Returns true when a line was written. */
bool sl_access_log_write(const sl_access_log_cfg_t *cfg, const sl_access_entry_t *e, uint64_t rnd);

/* The scrubbed form of value under cfg's salt, "sha256:" + 12 hex digits, NUL-terminated into
 * out (at least 20 bytes). Exposed for tests and for correlating a value with the log. */
void sl_access_log_hash(const sl_access_log_cfg_t *cfg, const void *value, size_t len,
                        char out[20]);

#endif
