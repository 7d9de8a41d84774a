/* Fuzzes the keys file parser (sl_keys_parse) on arbitrary bytes: JSON limits, every field's
 * validation, duplicate ids and digests. A failure must be SL_EPARSE or SL_ELIMIT with a message;
 * a table that parses must answer lookups and authenticate headers built from the input. */
#include "gateway/keys.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keys whose digests the seeds list, so the match paths (ok, expired, revoked) are reachable:
 * SHA-256("slk_" + 43 x 'A') and SHA-256("slk_" + 43 x 'B'). */
#define KEY_A "slk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEY_B "slk_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

static void check_auth(const sl_keys_t *t, const char *p, size_t n, int64_t now) {
    sl_keys_auth_t res;
    sl_keys_auth_outcome_t o = sl_keys_authenticate(t, (sl_str_t){p, n}, now, &res);
    if (o != res.outcome || !sl_keys_auth_outcome_name(o)) abort();
    bool matched = o == SL_KEYS_AUTH_OK || o == SL_KEYS_AUTH_EXPIRED || o == SL_KEYS_AUTH_REVOKED;
    if (matched != (res.key != NULL)) abort();
    if (!matched) return;
    sl_key_state_t st = sl_keys_state(res.key, now);
    sl_keys_auth_outcome_t want = st == SL_KEY_REVOKED   ? SL_KEYS_AUTH_REVOKED
                                  : st == SL_KEY_EXPIRED ? SL_KEYS_AUTH_EXPIRED
                                                         : SL_KEYS_AUTH_OK;
    if (o != want || sl_keys_find_id(t, res.key->id) != res.key) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_keys_t *t = (sl_keys_t *)1;
    char err[256] = "";
    int rc = sl_keys_parse((const char *)data, size, &t, err, sizeof err);
    if (rc != 0) {
        /* Every failure explains itself and leaves nothing behind. */
        if ((rc != SL_EPARSE && rc != SL_ELIMIT) || t != NULL || err[0] == '\0') abort();
        return 0;
    }
    if (!t) abort();
    size_t n = sl_keys_count(t);
    if (n > SL_KEYS_MAX_KEYS) abort();
    for (size_t i = 0; i < n; i++) {
        const sl_key_info_t *k = sl_keys_at(t, i);
        if (!k->id[0] || !k->tenant[0] || !k->tier[0] || !k->scopes || k->created_at <= 0) abort();
        if (sl_keys_find_id(t, k->id) != k) abort();
        if (!sl_keys_state_name(sl_keys_state(k, k->created_at))) abort();
    }

    /* A key-shaped header whose 43 characters come from the input (mapped into base64url), the
     * raw input itself as a header, and the two keys the seeds know, each at a few times. */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char hdr[7 + SL_KEYS_KEY_LEN + 1];
    memcpy(hdr, "Bearer " SL_KEYS_PREFIX, 11);
    for (size_t i = 0; i < 43; i++)
        hdr[11 + i] = b64[(size ? data[(i * 7 + 3) % size] : i) & 63];
    hdr[sizeof hdr - 1] = '\0';
    static const int64_t times[] = {0, 1, 1735787045, 4102444800, INT64_MAX};
    for (size_t k = 0; k < sizeof times / sizeof times[0]; k++) {
        check_auth(t, hdr, sizeof hdr - 1, times[k]);
        check_auth(t, (const char *)data, size, times[k]);
        check_auth(t, "Bearer " KEY_A, sizeof("Bearer " KEY_A) - 1, times[k]);
        check_auth(t, "bearer\t" KEY_B " ", sizeof("bearer\t" KEY_B " ") - 1, times[k]);
    }
    check_auth(NULL, hdr, sizeof hdr - 1, 1);
    sl_keys_t *r = sl_keys_ref(t);
    sl_keys_unref(t);
    sl_keys_unref(r);
    return 0;
}
