/* `sluice keys create|list|revoke`: manages the gateway's API keys file offline. The plaintext of
 * a new key is printed once and never stored; the file keeps SHA-256 digests (gateway/keys.h),
 * and the gateway picks up every change at its next reload poll. */
#include "cli.h"

#include "core/common.h"
#include "gateway/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_FILE "./sluice-keys.json"
#define MAX_DAYS     36500 /* --expires durations up to a hundred years */

static const char keys_help[] =
    "Usage: sluice keys create --tenant T [--tier TIER] [--scopes predict,admin]\n"
    "                          [--expires 30d|RFC3339] [--file F]\n"
    "       sluice keys list [--file F]\n"
    "       sluice keys revoke ID [--file F]\n"
    "\n"
    "Manages the gateway's API keys file (default " DEFAULT_FILE "). The file holds only\n"
    "SHA-256 digests of keys, never a key itself; it is replaced atomically (mode 0600), and a\n"
    "running gateway picks up each change at its next reload.\n"
    "\n"
    "create   makes a key (\"slk_\" + 43 characters, 256 random bits) for tenant T and prints\n"
    "         it once: it cannot be shown again. --tier (default standard) is [a-z0-9_-];\n"
    "         --scopes is a comma-separated subset of predict, admin (default predict);\n"
    "         --expires takes a duration (12h, 30d, 2w) or an RFC 3339 time (default never).\n"
    "         A tenant may hold several active keys, so keys can be rotated without downtime.\n"
    "list     prints every key's id, tenant, tier, scopes, times and state\n"
    "         (active, expired, revoked); never a key or its digest\n"
    "revoke   marks the key with id ID revoked; the gateway refuses it after its next reload\n"
    "\n"
    "Exit status: 0 success; 1 the keys file is unreadable, corrupt or cannot be written, or no\n"
    "key has that id; 2 bad arguments.\n";

static int usage(const char *fmt, const char *arg) {
    fputs("sluice keys: ", stderr);
    fprintf(stderr, fmt, arg);
    /* The usage lines only; --help has the rest. */
    fprintf(stderr, "\n\n%.*s\nRun 'sluice keys --help' for details.\n",
            (int)(strstr(keys_help, "\n\n") - keys_help + 1), keys_help);
    return SL_EXIT_USAGE;
}

static int64_t now_s(void) {
    return (int64_t)(sl_wall_time_ns() / 1000000000u);
}

typedef struct opts {
    const char *file, *tenant, *tier, *scopes, *expires;
    const char *sub, *positional;
} opts_t;

/* Parses argv[1..]: options ("--name VALUE", "--name=VALUE") anywhere, the subcommand and at
 * most one more positional (revoke's id). Returns 0 or an exit status. */
static int parse_opts(int argc, char **argv, opts_t *o) {
    static const char *const names[] = {"file", "tenant", "tier", "scopes", "expires"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (!o->sub) {
                o->sub = a;
            } else if (!o->positional) {
                o->positional = a;
            } else {
                return usage("unexpected argument '%s'", a);
            }
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '='), *val;
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const char **slot = NULL;
        for (size_t k = 0; k < SL_ARRAY_LEN(names) && !slot; k++) {
            const char **fields[] = {&o->file, &o->tenant, &o->tier, &o->scopes, &o->expires};
            if (strlen(names[k]) == n && strncmp(names[k], name, n) == 0) slot = fields[k];
        }
        if (!slot) return usage("unknown option '%s'", a);
        if (eq) {
            val = eq + 1;
        } else {
            /* "--tenant --file F" is a forgotten value, not a tenant named "--file". */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                return usage("%s needs a value", a);
            val = argv[++i];
        }
        if (*slot) return usage("%s is given twice", a);
        if (!*val) return usage("%s needs a non-empty value", a);
        *slot = val;
    }
    if (!o->file) o->file = DEFAULT_FILE;
    return 0;
}

/* Loads the keys file; a missing file is an empty table when missing_ok. Returns 0 or 1. */
static int load(const char *file, bool missing_ok, sl_keys_t **out) {
    char err[256];
    int rc = sl_keys_load(file, out, err, sizeof err);
    if (rc == SL_ENOENT && missing_ok) {
        *out = sl_keys_new_empty();
        return 0;
    }
    if (rc == SL_ENOENT) {
        fprintf(stderr, "sluice keys: %s does not exist (make a key with 'sluice keys create')\n",
                file);
        return SL_EXIT_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "sluice keys: %s: %s\n", file, err);
        return SL_EXIT_FAIL;
    }
    return 0;
}

static int save(const sl_keys_t *t, const char *file) {
    char err[256];
    if (sl_keys_save(t, file, err, sizeof err) != 0) {
        fprintf(stderr, "sluice keys: %s: %s\n", file, err);
        return SL_EXIT_FAIL;
    }
    return 0;
}

static void scopes_str(unsigned scopes, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", scopes & SL_KEY_SCOPE_PREDICT ? "predict" : "",
             (scopes & SL_KEY_SCOPE_PREDICT) && (scopes & SL_KEY_SCOPE_ADMIN) ? "," : "",
             scopes & SL_KEY_SCOPE_ADMIN ? "admin" : "");
}

/* "12h", "30d", "2w" from now, or an RFC 3339 time. Returns 0 or an exit status. */
static int parse_expires(const char *s, int64_t now, int64_t *out) {
    size_t n = strlen(s);
    char unit = n ? s[n - 1] : 0;
    int64_t mul = unit == 'h' ? 3600 : unit == 'd' ? 86400 : unit == 'w' ? 7 * 86400 : 0;
    if (mul && n >= 2 && n <= 7 && strspn(s, "0123456789") == n - 1) {
        long v = strtol(s, NULL, 10);
        if (v <= 0 || v * mul > (int64_t)MAX_DAYS * 86400)
            return usage("--expires '%s' must be more than 0 and at most 36500d", s);
        *out = now + v * mul;
        return 0;
    }
    if (sl_keys_parse_time(s, out) != 0)
        return usage("--expires '%s' must be a duration (12h, 30d, 2w) or an RFC 3339 time "
                     "(2026-01-31T00:00:00Z)",
                     s);
    if (*out <= now) return usage("--expires '%s' is in the past", s);
    return 0;
}

static int cmd_create(const opts_t *o) {
    if (!o->tenant) return usage("%screate needs --tenant", "");
    sl_keys_spec_t spec = {.tenant = o->tenant, .tier = o->tier};
    int64_t now = now_s();
    if (o->scopes && sl_keys_parse_scopes(o->scopes, &spec.scopes) != 0)
        return usage("--scopes '%s' must be a comma-separated subset of predict, admin", o->scopes);
    if (o->expires) {
        int rc = parse_expires(o->expires, now, &spec.expires_at);
        if (rc) return rc;
    }
    sl_keys_t *t = NULL;
    int rc = load(o->file, true, &t);
    if (rc) return rc;
    char key[SL_KEYS_KEY_BUF], err[256];
    const sl_key_info_t *k = NULL;
    int st = sl_keys_create(t, &spec, now, key, &k, err, sizeof err);
    if (st == SL_EINVAL) {
        rc = usage("%s", err);
    } else if (st != 0) {
        fprintf(stderr, "sluice keys: %s: %s\n", o->file, err);
        rc = SL_EXIT_FAIL;
    } else if ((rc = save(t, o->file)) == 0) {
        char scopes[32], exp[21] = "never";
        scopes_str(k->scopes, scopes, sizeof scopes);
        if (k->expires_at) sl_keys_format_time(k->expires_at, exp);
        printf(
            "Created key %s for tenant %s (tier %s, scopes %s, expires %s) in %s.\n\n"
            "    %s\n\n"
            "Store it now: this is the only time it is shown, and it cannot be recovered\n"
            "(the keys file keeps only its SHA-256). Send it as 'Authorization: Bearer <key>'.\n",
            k->id, k->tenant, k->tier, scopes, exp, o->file, key);
    }
    memset(key, 0, sizeof key);
    sl_keys_unref(t);
    return rc;
}

static int cmd_list(const opts_t *o) {
    sl_keys_t *t = NULL;
    int rc = load(o->file, false, &t);
    if (rc) return rc;
    int64_t now = now_s();
    if (sl_keys_count(t) == 0) {
        printf("No keys in %s.\n", o->file);
    } else {
        printf("%-14s %-20s %-12s %-15s %-20s %-20s %s\n", "ID", "TENANT", "TIER", "SCOPES",
               "CREATED", "EXPIRES", "STATE");
    }
    for (size_t i = 0; i < sl_keys_count(t); i++) {
        const sl_key_info_t *k = sl_keys_at(t, i);
        char scopes[32], created[21], exp[21] = "never";
        scopes_str(k->scopes, scopes, sizeof scopes);
        sl_keys_format_time(k->created_at, created);
        if (k->expires_at) sl_keys_format_time(k->expires_at, exp);
        printf("%-14s %-20s %-12s %-15s %-20s %-20s %s\n", k->id, k->tenant, k->tier, scopes,
               created, exp, sl_keys_state_name(sl_keys_state(k, now)));
    }
    sl_keys_unref(t);
    return SL_EXIT_OK;
}

static int cmd_revoke(const opts_t *o) {
    if (!o->positional) return usage("%srevoke needs a key id (see 'sluice keys list')", "");
    sl_keys_t *t = NULL;
    int rc = load(o->file, false, &t);
    if (rc) return rc;
    int64_t now = now_s();
    int st = sl_keys_revoke(t, o->positional, now);
    const sl_key_info_t *k = sl_keys_find_id(t, o->positional);
    char when[21];
    if (st == SL_ENOENT) {
        fprintf(stderr, "sluice keys: no key with id '%s' in %s\n", o->positional, o->file);
        rc = SL_EXIT_FAIL;
    } else if (st == SL_EEXISTS) {
        sl_keys_format_time(k->revoked_at, when);
        printf("Key %s (tenant %s) was already revoked at %s.\n", k->id, k->tenant, when);
    } else if ((rc = save(t, o->file)) == 0) {
        sl_keys_format_time(k->revoked_at, when);
        printf("Revoked key %s (tenant %s) at %s; a running gateway refuses it after its next "
               "reload.\n",
               k->id, k->tenant, when);
    }
    sl_keys_unref(t);
    return rc;
}

static int keys_run(int argc, char **argv) {
    opts_t o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc;
    if (!o.sub) return usage("%smissing subcommand (create, list or revoke)", "");
    bool create = strcmp(o.sub, "create") == 0, list = strcmp(o.sub, "list") == 0,
         revoke = strcmp(o.sub, "revoke") == 0;
    if (!create && !list && !revoke)
        return usage("unknown subcommand '%s' (create, list or revoke)", o.sub);
    if (!create && (o.tenant || o.tier || o.scopes || o.expires))
        return usage("--tenant, --tier, --scopes and --expires apply to create only, not %s",
                     o.sub);
    if (!revoke && o.positional) return usage("unexpected argument '%s'", o.positional);
    return create ? cmd_create(&o) : list ? cmd_list(&o) : cmd_revoke(&o);
}

const sl_cli_command_t sl_cmd_keys = {
    .name = "keys",
    .summary = "create, list and revoke the gateway's API keys",
    .help = keys_help,
    .run = keys_run,
};
