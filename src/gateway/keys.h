/* API keys for the gateway: an immutable, reference-counted table loaded from the keys file
 * (JSON, SHA-256 digests only, never a plaintext key), Bearer authentication against it in
 * constant time, a reloader the gateway polls from a timer, and the edit path `sluice keys` uses.
 *
 * Keys look like "slk_" + 43 base64url characters (256 random bits). The file:
 *
 *   {"version": 1, "keys": [
 *     {"id": "key_1a2b3c4d", "sha256": "<64 hex digits>", "tenant": "acme",
 *      "tier": "standard", "scopes": ["predict"], "created_at": "2025-01-02T03:04:05Z",
 *      "expires_at": null, "revoked_at": null}]}
 *
 * Threads: a table never changes once published, so any number of threads may authenticate
 * against it at once. Reloads build a new table; sl_keys_holder_t publishes it so a reload never
 * frees a table an in-flight lookup still reads. */
#ifndef SL_GATEWAY_KEYS_H
#define SL_GATEWAY_KEYS_H

#include "core/common.h"
#include "core/snapshot.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_KEYS_PREFIX       "slk_"
#define SL_KEYS_KEY_LEN      47 /* "slk_" + 43 base64url characters */
#define SL_KEYS_KEY_BUF      (SL_KEYS_KEY_LEN + 1)
#define SL_KEYS_ID_MAX       64 /* bytes of an id ("key_" + 8 hex when generated) */
#define SL_KEYS_TENANT_MAX   128
#define SL_KEYS_TIER_MAX     64
#define SL_KEYS_MAX_KEYS     100000
#define SL_KEYS_MAX_FILE     (16u << 20) /* bytes of a keys file */
#define SL_KEYS_HEADER_MAX   1024        /* bytes of an Authorization header value we look at */
#define SL_KEYS_DEFAULT_TIER "standard"

/* Scopes, as a bit set. */
enum { SL_KEY_SCOPE_PREDICT = 1u << 0, SL_KEY_SCOPE_ADMIN = 1u << 1 };

/* A key's public record. Times are Unix seconds; 0 means "none" (never expires, not revoked). */
typedef struct sl_key_info {
    const char *id;     /* short public id, safe to log */
    const char *tenant; /* [A-Za-z0-9._:@-], 1..SL_KEYS_TENANT_MAX bytes */
    const char *tier;   /* [a-z0-9_-], 1..SL_KEYS_TIER_MAX bytes */
    unsigned scopes;    /* SL_KEY_SCOPE_* bits, never 0 */
    int64_t created_at;
    int64_t expires_at;
    int64_t revoked_at;
} sl_key_info_t;

typedef enum sl_key_state {
    SL_KEY_ACTIVE = 0,
    SL_KEY_EXPIRED,
    SL_KEY_REVOKED,
} sl_key_state_t;

/* The outcome of sl_keys_authenticate. Everything but SL_KEYS_AUTH_OK answers 401 with a generic
 * body; the outcome is for logs and metrics only. */
typedef enum sl_keys_auth_outcome {
    SL_KEYS_AUTH_OK = 0,
    SL_KEYS_AUTH_MISSING,   /* no Authorization header, or an empty one */
    SL_KEYS_AUTH_MALFORMED, /* not "Bearer slk_<43 base64url>" */
    SL_KEYS_AUTH_UNKNOWN,   /* well formed, but no key in the table has its digest */
    SL_KEYS_AUTH_EXPIRED,
    SL_KEYS_AUTH_REVOKED,
} sl_keys_auth_outcome_t;

typedef struct sl_keys_auth {
    sl_keys_auth_outcome_t outcome;
    /* The matching key for OK, EXPIRED and REVOKED (NULL otherwise); borrowed from the table and
     * valid while the caller holds a reference to it. */
    const sl_key_info_t *key;
} sl_keys_auth_t;

typedef struct sl_keys sl_keys_t;

/* --- Loading ------------------------------------------------------------------------------- */

/* Parses a keys file's contents data[0..len) (borrowed) into a new table with one reference
 * (the caller's; drop it with sl_keys_unref). Every field is checked against the limits above;
 * ids and digests must be unique. Returns 0, or SL_ELIMIT / SL_EPARSE with *out NULL and a
 * message naming the offending entry and field ("keys[2].sha256 must be 64 hex digits") in err
 * (may be NULL; truncated to err_len). */
int sl_keys_parse(const char *data, size_t len, sl_keys_t **out, char *err, size_t err_len);

/* Reads and parses the file at path (borrowed). Returns as sl_keys_parse, plus SL_ENOENT when
 * the file does not exist and SL_EIO when it cannot be read. The message does not repeat path. */
int sl_keys_load(const char *path, sl_keys_t **out, char *err, size_t err_len);

/* A new table with no keys and one reference (the caller's). */
sl_keys_t *sl_keys_new_empty(void);

/* Reference counting (atomic; any thread). sl_keys_ref returns t. The last unref frees the table
 * and every sl_key_info_t borrowed from it. NULL is ignored by unref. */
sl_keys_t *sl_keys_ref(sl_keys_t *t);
void sl_keys_unref(sl_keys_t *t);

/* --- Lookup -------------------------------------------------------------------------------- */

/* Authenticates an Authorization header value (borrowed; NULL or empty means no header) at
 * time now (Unix seconds). The scheme is matched case-insensitively; the key's SHA-256 selects
 * candidates by its first 8 bytes in a hash table, and each candidate's full digest is compared
 * with CRYPTO_memcmp, so the comparison never leaks how much of a digest matched. A revoked key
 * is REVOKED even when also expired. t may be NULL (no table yet: every key is UNKNOWN). Fills
 * *res (see sl_keys_auth_t) and returns res->outcome. Thread-safe on a published table. */
sl_keys_auth_outcome_t sl_keys_authenticate(const sl_keys_t *t, sl_str_t header, int64_t now,
                                            sl_keys_auth_t *res);

/* A static name for an outcome ("ok", "missing", "malformed", "unknown", "expired",
 * "revoked"), for logs and metric labels. */
const char *sl_keys_auth_outcome_name(sl_keys_auth_outcome_t o);

/* True when key has every bit of scopes. */
static inline bool sl_keys_has_scope(const sl_key_info_t *key, unsigned scopes) {
    return key && (key->scopes & scopes) == scopes;
}

/* The number of keys and the i-th (i < count; borrowed from t, in file order). */
size_t sl_keys_count(const sl_keys_t *t);
const sl_key_info_t *sl_keys_at(const sl_keys_t *t, size_t i);
/* The key with this id, or NULL (borrowed from t). */
const sl_key_info_t *sl_keys_find_id(const sl_keys_t *t, const char *id);
/* A key's state at time now; revoked wins over expired. */
sl_key_state_t sl_keys_state(const sl_key_info_t *key, int64_t now);
const char *sl_keys_state_name(sl_key_state_t s); /* "active", "expired", "revoked" */

/* --- Publishing to I/O threads ------------------------------------------------------------- */

/* Holds the current table for many reader threads: a typed sl_snapshot_t (core/snapshot.h).
 * A plain atomic pointer plus refcounts would race (a reader loads the pointer, the reloader
 * drops the last reference, the reader's ref touches freed memory), so the holder takes a short
 * lock to hand out references and bumps a generation counter on every publish; a per-thread
 * view re-acquires only when the generation changed, so the steady-state cost of
 * sl_keys_view_get is one atomic load. */
typedef struct sl_keys_holder sl_keys_holder_t;

/* Creates a holder publishing initial (its reference moves into the holder; may be NULL for
 * "no table yet"). Free with sl_keys_holder_free, which drops the holder's reference; views
 * keep their own references and must be released separately. */
sl_keys_holder_t *sl_keys_holder_new(sl_keys_t *initial);
void sl_keys_holder_free(sl_keys_holder_t *h);
/* Publishes t (the caller's reference moves into the holder) and drops the holder's reference to
 * the previous table; readers still using it keep it alive through their own references. */
void sl_keys_holder_publish(sl_keys_holder_t *h, sl_keys_t *t);
/* A new reference to the current table (may be NULL); the caller unrefs it. */
sl_keys_t *sl_keys_holder_acquire(sl_keys_holder_t *h);

/* One reader thread's cached reference; zero-initialise it ({0}). */
typedef struct sl_keys_view {
    sl_snapshot_view_t snap; /* private */
} sl_keys_view_t;

/* The current table for this view's thread (NULL when none is published), refreshed if a newer
 * one was published. The pointer is borrowed from the view: it stays valid until the next
 * sl_keys_view_get or sl_keys_view_release on the same view, so a request that outlives one
 * callback copies what it needs or takes sl_keys_ref. */
const sl_keys_t *sl_keys_view_get(sl_keys_holder_t *h, sl_keys_view_t *v);
void sl_keys_view_release(sl_keys_view_t *v);

/* --- Hot reload ---------------------------------------------------------------------------- */

/* Watches one keys file by (device, inode, size, mtime, ctime): atomic replacement (rename),
 * in-place rewrites and deletion are all seen at the next poll. */
typedef struct sl_keys_reloader sl_keys_reloader_t;

/* path is copied. Nothing is read until the first poll. Free with sl_keys_reloader_free. */
sl_keys_reloader_t *sl_keys_reloader_new(const char *path);
void sl_keys_reloader_free(sl_keys_reloader_t *r);
/* Called from a timer (one thread at a time per reloader). When the file changed since the last
 * poll (the first poll always counts as a change): loads it and returns 0 with *out the new
 * table (one reference, the caller's: publish it), or returns a negative status with *out NULL
 * and "PATH: problem" in err; the caller keeps serving with its old table, and the same broken
 * file is not reported again until it changes. Unchanged: returns 0 with *out NULL. */
int sl_keys_reloader_poll(sl_keys_reloader_t *r, sl_keys_t **out, char *err, size_t err_len);

/* --- Editing (the `sluice keys` path; only on a table no other thread has seen) ----------- */

/* What a new key gets. tier NULL means SL_KEYS_DEFAULT_TIER; scopes 0 means predict. */
typedef struct sl_keys_spec {
    const char *tenant;
    const char *tier;
    unsigned scopes;
    int64_t expires_at; /* 0: never */
} sl_keys_spec_t;

/* Generates a key from 256 random bits (RAND_bytes) and adds its record to t with created_at =
 * now. The plaintext goes to key_out only (the table keeps its SHA-256); *info_out (may be NULL)
 * is borrowed from t. Returns 0; SL_EINVAL with a message for a bad spec; SL_ELIMIT when t is
 * full; SL_EIO when the random generator fails. */
int sl_keys_create(sl_keys_t *t, const sl_keys_spec_t *spec, int64_t now,
                   char key_out[SL_KEYS_KEY_BUF], const sl_key_info_t **info_out, char *err,
                   size_t err_len);

/* Marks key id revoked at now. Returns 0, SL_EXISTS when it was already revoked (the first
 * revocation time is kept), SL_ENOENT when no key has that id. */
int sl_keys_revoke(sl_keys_t *t, const char *id, int64_t now);

/* Writes t to path atomically: a temporary file (mode 0600) in the same directory, fsync,
 * rename over path, fsync of the directory. Returns 0, or SL_EIO with a message in err (the old
 * file is then untouched). */
int sl_keys_save(const sl_keys_t *t, const char *path, char *err, size_t err_len);

/* --- Small helpers shared with the CLI ----------------------------------------------------- */

/* Parses an RFC 3339 date-time ("2025-01-02T03:04:05Z", "...05.5+02:00") into Unix seconds
 * (fractions are dropped). Years 1970..9999. Returns 0 or SL_EINVAL. */
int sl_keys_parse_time(const char *s, int64_t *out);
/* Writes t (Unix seconds, UTC) as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void sl_keys_format_time(int64_t t, char buf[21]);
/* Parses "scopes" as a comma-separated list of predict/admin into *out. Returns 0 or
 * SL_EINVAL. */
int sl_keys_parse_scopes(const char *s, unsigned *out);

#endif
