/* Unit tests of gateway/keys against real files in a temp directory: creating keys, the file
 * format and its errors, Bearer authentication (wrong, expired, revoked, malformed, two keys per
 * tenant), the constant-time digest comparison, hot reload (a revoke lands, a corrupt file keeps
 * the old table) and publishing tables to reader threads while they authenticate. */
#include "gateway/keys.h"

#include "core/buf.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1750000000 /* 2025-06-15T15:06:40Z */

/* Interposes OpenSSL's CRYPTO_memcmp (the executable's definition wins over libcrypto's for the
 * statically linked keys.c) to prove that authentication decides with it on full digests. The
 * comparison itself stays constant time. */
static atomic_int memcmp_calls, memcmp_32;
int CRYPTO_memcmp(const void *in_a, const void *in_b, size_t len) {
    const volatile unsigned char *a = in_a, *b = in_b;
    unsigned char x = 0;
    for (size_t i = 0; i < len; i++)
        x |= a[i] ^ b[i];
    atomic_fetch_add(&memcmp_calls, 1);
    if (len == 32) atomic_fetch_add(&memcmp_32, 1);
    return x;
}

typedef struct {
    char dir[64];
    char path[128];
} fx_t;

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sl-keys-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/keys.json", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fx_t *fx = *state;
    DIR *d = opendir(fx->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", fx->dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static sl_str_t bearer(sl_buf_t *b, const char *key) {
    sl_buf_reset(b);
    sl_buf_printf(b, "Bearer %s", key);
    return (sl_str_t){b->data, b->len};
}

static sl_str_t S(const char *s) {
    return (sl_str_t){s, strlen(s)};
}

static void write_file(const char *path, const char *content) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.w", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    sl_buf_t b = SL_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_buf_append(&b, chunk, n);
    fclose(f);
    sl_buf_putc(&b, '\0');
    return b.data;
}

static void sha256_hex(const char *s, char out[65]) {
    unsigned char d[32];
    unsigned n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void create(sl_keys_t *t, const char *tenant, const char *tier, unsigned scopes,
                   int64_t expires, char key[SL_KEYS_KEY_BUF], const sl_key_info_t **info) {
    sl_keys_spec_t spec = {.tenant = tenant, .tier = tier, .scopes = scopes, .expires_at = expires};
    char err[128] = "";
    assert_int_equal(sl_keys_create(t, &spec, NOW, key, info, err, sizeof err), 0);
}

static void test_create_and_authenticate(void **state) {
    sl_keys_t *t = sl_keys_new_empty();
    char key[SL_KEYS_KEY_BUF], hex[65];
    const sl_key_info_t *info;
    create(t, "acme", "enterprise", SL_KEY_SCOPE_PREDICT | SL_KEY_SCOPE_ADMIN, 0, key, &info);

    /* "slk_" + 43 base64url characters; the id is "key_" + the digest's first 8 hex digits. */
    assert_int_equal(strlen(key), SL_KEYS_KEY_LEN);
    assert_memory_equal(key, "slk_", 4);
    assert_int_equal(strspn(key + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-_"),
                     43);
    sha256_hex(key, hex);
    assert_memory_equal(info->id, "key_", 4);
    assert_memory_equal(info->id + 4, hex, 8);
    assert_int_equal(strlen(info->id), 12);
    assert_int_equal(info->created_at, NOW);

    sl_buf_t b = SL_BUF_INIT;
    sl_keys_auth_t res;
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_OK);
    assert_ptr_equal(res.key, info);
    assert_string_equal(res.key->tenant, "acme");
    assert_string_equal(res.key->tier, "enterprise");
    assert_true(sl_keys_has_scope(res.key, SL_KEY_SCOPE_ADMIN));
    assert_true(sl_keys_has_scope(res.key, SL_KEY_SCOPE_PREDICT | SL_KEY_SCOPE_ADMIN));

    /* A key of the right shape that is not in the table; and one character changed. */
    assert_int_equal(sl_keys_authenticate(
                         t, S("Bearer slk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), NOW, &res),
                     SL_KEYS_AUTH_UNKNOWN);
    assert_null(res.key);
    char wrong[SL_KEYS_KEY_BUF];
    memcpy(wrong, key, sizeof wrong);
    wrong[20] = wrong[20] == 'x' ? 'y' : 'x';
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, wrong), NOW, &res), SL_KEYS_AUTH_UNKNOWN);

    /* Defaults: tier standard, scope predict only. */
    create(t, "beta", NULL, 0, 0, key, &info);
    assert_string_equal(info->tier, "standard");
    assert_int_equal(info->scopes, SL_KEY_SCOPE_PREDICT);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_OK);
    assert_false(sl_keys_has_scope(res.key, SL_KEY_SCOPE_ADMIN));

    /* Bad specs are refused with a message. */
    char err[128];
    sl_keys_spec_t bad[] = {{.tenant = NULL},
                            {.tenant = "a b"},
                            {.tenant = "acme", .tier = "Gold"},
                            {.tenant = "acme", .expires_at = NOW - 1}};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        assert_int_equal(sl_keys_create(t, &bad[i], NOW, key, NULL, err, sizeof err), SL_EINVAL);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(sl_keys_count(t), 2);
    sl_buf_free(&b);
    sl_keys_unref(t);
}

static void test_malformed_headers(void **state) {
    sl_keys_t *t = sl_keys_new_empty();
    char key[SL_KEYS_KEY_BUF];
    create(t, "acme", NULL, 0, 0, key, NULL);
    sl_keys_auth_t res;
    assert_int_equal(sl_keys_authenticate(t, (sl_str_t){NULL, 0}, NOW, &res), SL_KEYS_AUTH_MISSING);
    assert_int_equal(sl_keys_authenticate(t, S(""), NOW, &res), SL_KEYS_AUTH_MISSING);
    assert_int_equal(sl_keys_authenticate(t, S(" \t "), NOW, &res), SL_KEYS_AUTH_MISSING);

    char buf[2048];
    const char *const bad[] = {
        "%s",              /* no scheme */
        "Basic %s",        /* another scheme */
        "Bearer",          /* no credentials */
        "Bearer ",         /* likewise, after trimming */
        "Bearer%s",        /* no space */
        "Bearer %s extra", /* trailing token */
        "Bearer %s,",      /* trailing comma */
        "Bearer %s%s",     /* twice as long */
        "Bearer \"%s\"",   /* quoted */
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        snprintf(buf, sizeof buf, bad[i], key, key);
        assert_int_equal(sl_keys_authenticate(t, S(buf), NOW, &res), SL_KEYS_AUTH_MALFORMED);
        assert_null(res.key);
    }
    /* Wrong prefix, a short key, a character outside base64url, an embedded NUL. */
    snprintf(buf, sizeof buf, "Bearer sk_%s", key + 3);
    assert_int_equal(sl_keys_authenticate(t, S(buf), NOW, &res), SL_KEYS_AUTH_MALFORMED);
    snprintf(buf, sizeof buf, "Bearer %.46s", key);
    assert_int_equal(sl_keys_authenticate(t, S(buf), NOW, &res), SL_KEYS_AUTH_MALFORMED);
    snprintf(buf, sizeof buf, "Bearer %s", key);
    buf[7 + 10] = '+';
    assert_int_equal(sl_keys_authenticate(t, S(buf), NOW, &res), SL_KEYS_AUTH_MALFORMED);
    snprintf(buf, sizeof buf, "Bearer %s", key);
    buf[7 + 10] = '\0';
    assert_int_equal(sl_keys_authenticate(t, (sl_str_t){buf, 7 + SL_KEYS_KEY_LEN}, NOW, &res),
                     SL_KEYS_AUTH_MALFORMED);
    /* Over the header limit, even if it would otherwise parse. */
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "Bearer ", 7);
    memcpy(buf + 7, key, SL_KEYS_KEY_LEN);
    assert_int_equal(sl_keys_authenticate(t, (sl_str_t){buf, SL_KEYS_HEADER_MAX + 1}, NOW, &res),
                     SL_KEYS_AUTH_MALFORMED);

    /* The scheme is case-insensitive; surrounding whitespace and extra spaces are allowed. */
    snprintf(buf, sizeof buf, "  bEaReR \t %s  ", key);
    assert_int_equal(sl_keys_authenticate(t, S(buf), NOW, &res), SL_KEYS_AUTH_OK);
    assert_string_equal(sl_keys_auth_outcome_name(SL_KEYS_AUTH_MALFORMED), "malformed");
    /* Before any table is published every key is unknown. */
    snprintf(buf, sizeof buf, "Bearer %s", key);
    assert_int_equal(sl_keys_authenticate(NULL, S(buf), NOW, &res), SL_KEYS_AUTH_UNKNOWN);
    sl_keys_unref(t);
}

static void test_expired_and_revoked(void **state) {
    sl_keys_t *t = sl_keys_new_empty();
    char key[SL_KEYS_KEY_BUF];
    const sl_key_info_t *info;
    create(t, "acme", NULL, 0, NOW + 100, key, &info);
    sl_buf_t b = SL_BUF_INIT;
    sl_keys_auth_t res;
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW + 99, &res), SL_KEYS_AUTH_OK);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW + 100, &res),
                     SL_KEYS_AUTH_EXPIRED);
    assert_ptr_equal(res.key, info); /* the id is there for the log line */
    assert_int_equal(sl_keys_state(info, NOW + 100), SL_KEY_EXPIRED);

    assert_int_equal(sl_keys_revoke(t, info->id, NOW + 50), 0);
    assert_int_equal(sl_keys_revoke(t, info->id, NOW + 60), SL_EEXISTS);
    assert_int_equal(info->revoked_at, NOW + 50);
    assert_int_equal(sl_keys_revoke(t, "key_00000000", NOW), SL_ENOENT);
    /* Revoked wins over expired, and applies at any time. */
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_REVOKED);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW + 200, &res),
                     SL_KEYS_AUTH_REVOKED);
    assert_string_equal(sl_keys_state_name(sl_keys_state(info, NOW)), "revoked");
    sl_buf_free(&b);
    sl_keys_unref(t);
}

/* Rotation: a tenant's old and new keys both work until the old one is revoked. */
static void test_two_keys_per_tenant(void **state) {
    fx_t *fx = *state;
    sl_keys_t *t = sl_keys_new_empty();
    char k1[SL_KEYS_KEY_BUF], k2[SL_KEYS_KEY_BUF], err[256];
    const sl_key_info_t *i1, *i2;
    create(t, "acme", NULL, 0, 0, k1, &i1);
    create(t, "acme", NULL, 0, 0, k2, &i2);
    assert_string_not_equal(k1, k2);
    assert_string_not_equal(i1->id, i2->id);
    assert_int_equal(sl_keys_save(t, fx->path, err, sizeof err), 0);
    sl_keys_unref(t);

    assert_int_equal(sl_keys_load(fx->path, &t, err, sizeof err), 0);
    sl_buf_t b = SL_BUF_INIT;
    sl_keys_auth_t r1, r2;
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, k1), NOW, &r1), SL_KEYS_AUTH_OK);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, k2), NOW, &r2), SL_KEYS_AUTH_OK);
    assert_string_equal(r1.key->tenant, "acme");
    assert_string_equal(r2.key->tenant, "acme");
    assert_ptr_not_equal(r1.key, r2.key);
    assert_int_equal(sl_keys_revoke(t, r1.key->id, NOW), 0);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, k1), NOW, &r1), SL_KEYS_AUTH_REVOKED);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, k2), NOW, &r2), SL_KEYS_AUTH_OK);
    sl_buf_free(&b);
    sl_keys_unref(t);
}

static void test_constant_time_compare(void **state) {
    sl_keys_t *t = sl_keys_new_empty();
    char key[SL_KEYS_KEY_BUF];
    create(t, "acme", NULL, 0, 0, key, NULL);
    sl_buf_t b = SL_BUF_INIT;
    sl_keys_auth_t res;
    atomic_store(&memcmp_32, 0);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_OK);
    assert_int_equal(atomic_load(&memcmp_32), 1);
    sl_keys_unref(t);

    /* A stored digest equal to the key's in its first 8 bytes (the hash table's key) but not in
     * its last: the lookup finds the candidate, CRYPTO_memcmp on all 32 bytes rejects it. */
    char hex[65], doc[512];
    sha256_hex(key, hex);
    hex[63] = hex[63] == '0' ? '1' : '0';
    snprintf(doc, sizeof doc,
             "{\"version\": 1, \"keys\": [{\"id\": \"key_x\", \"sha256\": \"%s\", \"tenant\": "
             "\"acme\", \"tier\": \"standard\", \"scopes\": [\"predict\"], \"created_at\": "
             "\"2025-01-01T00:00:00Z\"}]}",
             hex);
    char err[256];
    assert_int_equal(sl_keys_parse(doc, strlen(doc), &t, err, sizeof err), 0);
    atomic_store(&memcmp_32, 0);
    assert_int_equal(sl_keys_authenticate(t, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_UNKNOWN);
    assert_int_equal(atomic_load(&memcmp_32), 1);
    assert_null(res.key);
    sl_keys_unref(t);
    sl_buf_free(&b);
}

static void test_file_format(void **state) {
    fx_t *fx = *state;
    sl_keys_t *t = sl_keys_new_empty();
    char key[SL_KEYS_KEY_BUF], hex[65], err[256];
    const sl_key_info_t *info;
    create(t, "acme", "enterprise", SL_KEY_SCOPE_ADMIN, NOW + 86400, key, &info);
    assert_int_equal(sl_keys_save(t, fx->path, err, sizeof err), 0);

    /* The digest is stored, the key is not; no temp file is left; only the owner may read. */
    char *text = read_file(fx->path);
    sha256_hex(key, hex);
    assert_non_null(strstr(text, hex));
    assert_null(strstr(text, key));
    assert_null(strstr(text, key + 4));
    assert_null(strstr(text, "slk_"));
    assert_non_null(strstr(text, "\"expires_at\": \"2025-06-16T15:06:40Z\""));
    assert_non_null(strstr(text, "\"revoked_at\": null"));
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    DIR *d = opendir(fx->dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));)
        files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);

    /* Round trip. */
    sl_keys_t *t2;
    assert_int_equal(sl_keys_load(fx->path, &t2, err, sizeof err), 0);
    assert_int_equal(sl_keys_count(t2), 1);
    const sl_key_info_t *k = sl_keys_at(t2, 0);
    assert_string_equal(k->id, info->id);
    assert_string_equal(k->tier, "enterprise");
    assert_int_equal(k->scopes, SL_KEY_SCOPE_ADMIN);
    assert_int_equal(k->created_at, NOW);
    assert_int_equal(k->expires_at, NOW + 86400);
    assert_int_equal(k->revoked_at, 0);
    assert_ptr_equal(sl_keys_find_id(t2, info->id), k);
    free(text);
    sl_keys_unref(t);
    sl_keys_unref(t2);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.json", fx->dir);
    assert_int_equal(sl_keys_load(missing, &t2, err, sizeof err), SL_ENOENT);
    assert_null(t2);
}

static void test_parse_errors(void **state) {
    static const char entry_fmt[] =
        "{\"version\": 1, \"keys\": [{\"id\": \"key_1\", \"sha256\": \"%s\", \"tenant\": \"acme\", "
        "\"tier\": \"standard\", \"scopes\": [\"predict\"], \"created_at\": "
        "\"2025-01-01T00:00:00Z\"%s}%s]}";
#define H1 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    static const char h1[] = H1;
    char doc[2048];
    struct {
        const char *doc; /* NULL: built from entry_fmt with the three parts below */
        const char *hex, *extra, *more;
        const char *want;
    } cases[] = {
        {"", 0, 0, 0, "not valid JSON"},
        {"{\"version\": 1, \"keys\": [", 0, 0, 0, "not valid JSON"},
        {"[]", 0, 0, 0, "top level must be an object"},
        {"{\"version\": 2, \"keys\": []}", 0, 0, 0, "'version' must be 1"},
        {"{\"keys\": []}", 0, 0, 0, "'version' must be 1"},
        {"{\"version\": 1}", 0, 0, 0, "'keys' must be an array"},
        {"{\"version\": 1, \"keys\": [], \"x\": 1}", 0, 0, 0, "unknown top-level field 'x'"},
        {"{\"version\": 1, \"keys\": [1]}", 0, 0, 0, "keys[0] must be an object"},
        {"{\"version\": 1, \"keys\": [{}]}", 0, 0, 0, "keys[0]: missing field 'id'"},
        {NULL, "abc", "", "", "keys[0].sha256 must be 64 hex digits"},
        {NULL, h1, ", \"key\": \"slk_x\"", "", "keys[0]: unknown field 'key'"},
        {NULL, h1, ", \"expires_at\": \"tomorrow\"", "", "keys[0].expires_at must be an RFC 3339"},
        {NULL, h1, ", \"revoked_at\": 5", "", "keys[0].revoked_at must be an RFC 3339"},
        {NULL, h1, "",
         ", {\"id\": \"key_1\", \"sha256\": \"" H1 "b\", \"tenant\": \"a\", \"tier\": \"t\", "
         "\"scopes\": [\"admin\"], \"created_at\": \"2025-01-01T00:00:00Z\"}",
         "keys[1].sha256 must be 64 hex digits"},
        {NULL, h1, "",
         ", {\"id\": \"key_1\", \"sha256\": \"" H1 "\", \"tenant\": \"a\", \"tier\": \"t\", "
         "\"scopes\": [\"admin\"], \"created_at\": \"2025-01-01T00:00:00Z\"}",
         "keys[1].id 'key_1' is used twice"},
        {NULL, h1, "",
         ", {\"id\": \"key_2\", \"sha256\": \"" H1 "\", \"tenant\": \"a\", \"tier\": \"t\", "
         "\"scopes\": [\"admin\"], \"created_at\": \"2025-01-01T00:00:00Z\"}",
         "keys[1].sha256 repeats the digest"},
        {"{\"version\": 1, \"keys\": [{\"id\": \"k\", \"sha256\": \"" /* ... */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"tenant\": \"a\", "
         "\"tier\": \"Gold\", \"scopes\": [\"predict\"], \"created_at\": "
         "\"2025-01-01T00:00:00Z\"}]}",
         0, 0, 0, "keys[0].tier must be"},
        {"{\"version\": 1, \"keys\": [{\"id\": \"k\", \"sha256\": \"" /* ... */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"tenant\": \"a\", "
         "\"tier\": \"t\", \"scopes\": [], \"created_at\": \"2025-01-01T00:00:00Z\"}]}",
         0, 0, 0, "keys[0].scopes must be a non-empty array"},
        {"{\"version\": 1, \"keys\": [{\"id\": \"k\", \"sha256\": \"" /* ... */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"tenant\": \"a\", "
         "\"tier\": \"t\", \"scopes\": [\"root\"], \"created_at\": \"2025-01-01T00:00:00Z\"}]}",
         0, 0, 0, "keys[0].scopes: each scope must be"},
        {"{\"version\": 1, \"keys\": [{\"id\": \"k\", \"sha256\": \"" /* ... */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"tenant\": \"a b\", "
         "\"tier\": \"t\", \"scopes\": [\"admin\"], \"created_at\": \"2025-01-01T00:00:00Z\"}]}",
         0, 0, 0, "keys[0].tenant must be"},
        {"{\"version\": 1, \"keys\": [{\"id\": \"k\", \"sha256\": \"" /* ... */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"tenant\": \"a\", "
         "\"tier\": \"t\", \"scopes\": [\"admin\"]}]}",
         0, 0, 0, "keys[0]: missing field 'created_at'"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        const char *d = cases[i].doc;
        if (!d) {
            snprintf(doc, sizeof doc, entry_fmt, cases[i].hex, cases[i].extra, cases[i].more);
            d = doc;
        }
        sl_keys_t *t = (sl_keys_t *)1;
        char err[256] = "";
        int rc = sl_keys_parse(d, strlen(d), &t, err, sizeof err);
        if (rc == 0 || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc %d, message '%s', want '%s'", i, rc, err, cases[i].want);
        assert_null(t);
    }
    /* The good variant of the template parses. */
    snprintf(doc, sizeof doc, entry_fmt, h1, ", \"expires_at\": null", "");
    sl_keys_t *t;
    assert_int_equal(sl_keys_parse(doc, strlen(doc), &t, NULL, 0), 0);
    assert_int_equal(sl_keys_at(t, 0)->expires_at, 0);
    sl_keys_unref(t);

    /* Size limit. */
    size_t big = SL_KEYS_MAX_FILE + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    char err[256];
    assert_int_equal(sl_keys_parse(huge, big, &t, err, sizeof err), SL_ELIMIT);
    free(huge);
}

static void test_reload(void **state) {
    fx_t *fx = *state;
    char err[256], key[SL_KEYS_KEY_BUF];
    const sl_key_info_t *info;
    sl_keys_t *edit = sl_keys_new_empty();
    create(edit, "acme", NULL, 0, 0, key, &info);
    char id[SL_KEYS_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", info->id);
    assert_int_equal(sl_keys_save(edit, fx->path, err, sizeof err), 0);
    sl_keys_unref(edit);

    sl_keys_reloader_t *r = sl_keys_reloader_new(fx->path);
    sl_keys_t *cur = NULL, *next = (sl_keys_t *)1;
    assert_int_equal(sl_keys_reloader_poll(r, &cur, err, sizeof err), 0);
    assert_non_null(cur);
    assert_int_equal(sl_keys_reloader_poll(r, &next, err, sizeof err), 0);
    assert_null(next); /* unchanged */

    sl_buf_t b = SL_BUF_INIT;
    sl_keys_auth_t res;
    assert_int_equal(sl_keys_authenticate(cur, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_OK);

    /* `sluice keys revoke` does exactly this: load, revoke, save atomically. */
    assert_int_equal(sl_keys_load(fx->path, &edit, err, sizeof err), 0);
    assert_int_equal(sl_keys_revoke(edit, id, NOW), 0);
    assert_int_equal(sl_keys_save(edit, fx->path, err, sizeof err), 0);
    sl_keys_unref(edit);
    assert_int_equal(sl_keys_reloader_poll(r, &next, err, sizeof err), 0);
    assert_non_null(next);
    assert_int_equal(sl_keys_authenticate(next, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_REVOKED);
    /* The old table is untouched for lookups still using it. */
    assert_int_equal(sl_keys_authenticate(cur, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_OK);
    sl_keys_unref(cur);
    cur = next;

    /* A corrupt file: an error naming the file and the problem, once; the old table stays. */
    write_file(fx->path, "{\"version\": 1, \"keys\": [{\"id\": \"k\"}]}");
    next = (sl_keys_t *)1;
    err[0] = '\0';
    assert_true(sl_keys_reloader_poll(r, &next, err, sizeof err) < 0);
    assert_null(next);
    assert_non_null(strstr(err, fx->path));
    assert_non_null(strstr(err, "keys[0]: missing field 'sha256'"));
    assert_int_equal(sl_keys_reloader_poll(r, &next, err, sizeof err), 0);
    assert_null(next);
    assert_int_equal(sl_keys_authenticate(cur, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_REVOKED);

    /* Deleted: reported once; restored: loaded again. */
    assert_int_equal(unlink(fx->path), 0);
    assert_int_equal(sl_keys_reloader_poll(r, &next, err, sizeof err), SL_ENOENT);
    assert_int_equal(sl_keys_reloader_poll(r, &next, err, sizeof err), 0);
    write_file(fx->path, "{\"version\": 1, \"keys\": []}");
    assert_int_equal(sl_keys_reloader_poll(r, &next, err, sizeof err), 0);
    assert_non_null(next);
    assert_int_equal(sl_keys_count(next), 0);
    assert_int_equal(sl_keys_authenticate(next, bearer(&b, key), NOW, &res), SL_KEYS_AUTH_UNKNOWN);
    sl_keys_unref(next);
    sl_keys_unref(cur);
    sl_keys_reloader_free(r);
    sl_buf_free(&b);
}

typedef struct {
    sl_keys_holder_t *h;
    const char *key;
    atomic_bool stop;
    atomic_long ok, revoked, other;
} race_t;

static void *reader(void *arg) {
    race_t *rc = arg;
    sl_keys_view_t v = {0};
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Bearer %s", rc->key);
    while (!atomic_load(&rc->stop)) {
        const sl_keys_t *t = sl_keys_view_get(rc->h, &v);
        sl_keys_auth_t res;
        switch (sl_keys_authenticate(t, S(hdr), NOW, &res)) {
        case SL_KEYS_AUTH_OK:
            atomic_fetch_add(&rc->ok, 1);
            break;
        case SL_KEYS_AUTH_REVOKED:
            atomic_fetch_add(&rc->revoked, 1);
            break;
        default:
            atomic_fetch_add(&rc->other, 1);
        }
        /* Touch the borrowed record: freed memory here is what ASan would catch. */
        if (res.key && strcmp(res.key->tenant, "acme") != 0) atomic_fetch_add(&rc->other, 1);
    }
    sl_keys_view_release(&v);
    return NULL;
}

/* Readers authenticate while tables alternate between "active" and "revoked" under them. */
static void test_holder_publish_while_reading(void **state) {
    char key[SL_KEYS_KEY_BUF];
    const sl_key_info_t *info;
    sl_keys_t *active = sl_keys_new_empty();
    create(active, "acme", NULL, 0, 0, key, &info);
    char id[SL_KEYS_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", info->id);

    race_t rc = {.h = sl_keys_holder_new(sl_keys_ref(active)), .key = key};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &rc), 0);
    /* The readers must have run on the active table at least once; on a loaded machine the
     * publishing loop below could otherwise finish before they are scheduled. */
    for (int spins = 0; atomic_load(&rc.ok) == 0 && spins < 5000; spins++)
        usleep(1000);
    char err[128];
    for (int i = 0; i < 400; i++) {
        sl_keys_t *t = sl_keys_new_empty();
        sl_keys_spec_t spec = {.tenant = "acme"};
        char other[SL_KEYS_KEY_BUF];
        assert_int_equal(sl_keys_create(t, &spec, NOW, other, NULL, err, sizeof err), 0);
        if (i % 2 == 0) {
            sl_keys_unref(t);
            t = sl_keys_ref(active);
        } else {
            /* A fresh table holding the same key, revoked. */
            char hex[65], doc[512];
            sha256_hex(key, hex);
            snprintf(doc, sizeof doc,
                     "{\"version\": 1, \"keys\": [{\"id\": \"%s\", \"sha256\": \"%s\", \"tenant\": "
                     "\"acme\", \"tier\": \"standard\", \"scopes\": [\"predict\"], \"created_at\": "
                     "\"2025-01-01T00:00:00Z\", \"revoked_at\": \"2025-01-02T00:00:00Z\"}]}",
                     id, hex);
            sl_keys_unref(t);
            assert_int_equal(sl_keys_parse(doc, strlen(doc), &t, err, sizeof err), 0);
        }
        sl_keys_holder_publish(rc.h, t);
        if (i % 50 == 0) usleep(1000); /* let readers run; not synchronisation */
    }
    /* End on the revoked table, then require the readers to see it. */
    sl_keys_t *last = sl_keys_holder_acquire(rc.h);
    sl_keys_auth_t res;
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Bearer %s", key);
    assert_int_equal(sl_keys_authenticate(last, S(hdr), NOW, &res), SL_KEYS_AUTH_REVOKED);
    sl_keys_unref(last);
    long seen = atomic_load(&rc.revoked);
    for (int spins = 0; atomic_load(&rc.revoked) == seen && spins < 5000; spins++)
        usleep(1000);
    atomic_store(&rc.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(atomic_load(&rc.ok) > 0);
    assert_true(atomic_load(&rc.revoked) > seen);
    assert_int_equal(atomic_load(&rc.other), 0);
    sl_keys_holder_free(rc.h);
    sl_keys_unref(active);
}

static void test_time_and_scopes(void **state) {
    int64_t t;
    char buf[21];
    assert_int_equal(sl_keys_parse_time("2025-06-15T15:06:40Z", &t), 0);
    assert_int_equal(t, NOW);
    assert_int_equal(sl_keys_parse_time("2025-06-15t17:06:40.123456+02:00", &t), 0);
    assert_int_equal(t, NOW);
    assert_int_equal(sl_keys_parse_time("2024-02-29T00:00:00Z", &t), 0);
    sl_keys_format_time(t, buf);
    assert_string_equal(buf, "2024-02-29T00:00:00Z");
    sl_keys_format_time(NOW, buf);
    assert_string_equal(buf, "2025-06-15T15:06:40Z");
    const char *const bad[] = {"",
                               "2025-06-15",
                               "2025-06-15T15:06:40",
                               "2025-06-15 15:06:40Z",
                               "2025-13-01T00:00:00Z",
                               "2023-02-29T00:00:00Z",
                               "2025-06-15T24:00:00Z",
                               "1969-12-31T23:59:59Z",
                               "2025-06-15T15:06:40.Z",
                               "2025-06-15T15:06:40Zjunk",
                               "2025-06-15T15:06:40+2:00"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        if (sl_keys_parse_time(bad[i], &t) != SL_EINVAL) fail_msg("accepted '%s'", bad[i]);
    }
    unsigned s;
    assert_int_equal(sl_keys_parse_scopes("predict", &s), 0);
    assert_int_equal(s, SL_KEY_SCOPE_PREDICT);
    assert_int_equal(sl_keys_parse_scopes("admin,predict", &s), 0);
    assert_int_equal(s, SL_KEY_SCOPE_PREDICT | SL_KEY_SCOPE_ADMIN);
    assert_int_equal(sl_keys_parse_scopes("predict,", &s), SL_EINVAL);
    assert_int_equal(sl_keys_parse_scopes("root", &s), SL_EINVAL);
    assert_int_equal(sl_keys_parse_scopes("", &s), SL_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_authenticate),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_expired_and_revoked),
        cmocka_unit_test_setup_teardown(test_two_keys_per_tenant, setup, teardown),
        cmocka_unit_test(test_constant_time_compare),
        cmocka_unit_test_setup_teardown(test_file_format, setup, teardown),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test(test_holder_publish_while_reading),
        cmocka_unit_test(test_time_and_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
