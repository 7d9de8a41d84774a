/* The model repository on disk: listing models and versions, reading configs and manifests,
 * applying version policies, hashing artifacts (OpenSSL EVP sha256) and fingerprinting files for
 * the manager's poll. Stateless; the manager (manager.c) decides what to load. */
#include "inference/repository.h"

#include "core/common.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAX_BYTES (64u << 10)

bool sl_repo_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > SL_REPO_MAX_NAME || name[0] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-')) {
            return false;
        }
    }
    return true;
}

void sl_repo_strv_free(char **v) {
    if (!v) return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static char *path_join(const char *a, const char *b, const char *c) {
    sl_buf_t p = SL_BUF_INIT;
    sl_buf_puts(&p, a);
    if (b) sl_buf_printf(&p, "/%s", b);
    if (c) sl_buf_printf(&p, "/%s", c);
    return p.data;
}

char *sl_repo_display_path(const char *root, ...) {
    sl_buf_t p = SL_BUF_INIT;
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && root[start - 1] != '/')
        start--;
    if (n > start)
        sl_buf_append(&p, root + start, n - start);
    else
        sl_buf_puts(&p, "repository");
    va_list ap;
    va_start(ap, root);
    for (const char *s; (s = va_arg(ap, const char *));)
        sl_buf_printf(&p, "/%s", s);
    va_end(ap);
    return p.data;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Directory entries of dir that are directories (symlinks followed) and pass ok(). */
static int list_dirs(const char *dir, bool (*ok)(const char *), size_t max, char ***out,
                     size_t *n_out) {
    DIR *d = opendir(dir);
    if (!d) return SL_EIO;
    char **v = sl_calloc(max + 1, sizeof *v);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] == '.') continue;
        char *p = path_join(dir, e->d_name, NULL);
        struct stat st;
        bool is_dir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        if (!is_dir) continue;
        if (!ok(e->d_name)) {
            SL_WARN("inference", "skipping a repository directory with an unusable name",
                    SL_LF_S("dir", dir), SL_LF_S("name", e->d_name));
            continue;
        }
        v[n++] = sl_strdup(e->d_name);
    }
    closedir(d);
    qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    if (n_out) *n_out = n;
    return 0;
}

int sl_repo_list_models(const char *root, char ***out, sl_buf_t *err) {
    *out = NULL;
    if (list_dirs(root, sl_repo_name_ok, SL_REPO_MAX_MODELS, out, NULL) != 0) {
        sl_buf_printf(err, "cannot read the model repository '%s': %s\n", root, strerror(errno));
        return SL_EIO;
    }
    return 0;
}

/* Reads a whole regular file of at most max bytes. */
static int read_file(const char *path, size_t max, char **data, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return SL_EIO;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return SL_ELIMIT;
    }
    char *buf = sl_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return 0;
}

static void read_error(sl_buf_t *err, const char *shown, int rc, size_t max) {
    if (rc == SL_ENOENT)
        sl_buf_printf(err, "%s: file not found\n", shown);
    else if (rc == SL_ELIMIT)
        sl_buf_printf(err, "%s: larger than the limit of %zu bytes\n", shown, max);
    else
        sl_buf_printf(err, "%s: cannot read the file\n", shown);
}

int sl_repo_read_config(const char *root, const char *name, sl_model_config_t *cfg, sl_buf_t *err) {
    memset(cfg, 0, sizeof *cfg);
    char *dir = path_join(root, name, NULL);
    struct stat st;
    bool exists = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    free(dir);
    if (!exists) {
        sl_buf_printf(err, "model '%s' is not in the repository\n", name);
        return SL_ENOENT;
    }
    char *path = path_join(root, name, "config.yaml");
    char *shown = sl_repo_display_path(root, name, "config.yaml", (const char *)NULL);
    char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, SL_MODEL_CONFIG_MAX_BYTES, &data, &len);
    if (rc != 0) {
        read_error(err, shown, rc, SL_MODEL_CONFIG_MAX_BYTES);
        rc = SL_EINVAL; /* the model exists; its config is missing or unreadable */
    } else {
        rc = sl_model_config_parse(shown, name, data, len, cfg, err);
    }
    free(data);
    free(path);
    free(shown);
    return rc;
}

static bool semver_name_ok(const char *s) {
    sl_semver_t sv;
    return sl_semver_parse(s, &sv) == 0;
}

static bool any_name(const char *s) {
    return true;
}

static int cmp_semver_desc(const void *a, const void *b) {
    sl_semver_t x, y;
    sl_semver_parse(*(char *const *)a, &x);
    sl_semver_parse(*(char *const *)b, &y);
    int c = sl_semver_cmp(&y, &x);
    /* Equal precedence (build metadata differs): order by name for a stable result. */
    return c ? c : strcmp(*(char *const *)a, *(char *const *)b);
}

int sl_repo_list_versions(const char *root, const char *name, char ***out, sl_buf_t *err) {
    *out = NULL;
    char *dir = path_join(root, name, NULL);
    char **all = NULL;
    size_t n = 0;
    int rc = list_dirs(dir, any_name, SL_REPO_MAX_VERSIONS, &all, &n);
    free(dir);
    if (rc != 0) {
        sl_buf_printf(err, "cannot read the directory of model '%s'\n", name);
        return SL_EIO;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (semver_name_ok(all[i]))
            all[k++] = all[i];
        else
            free(all[i]);
    }
    all[k] = NULL;
    qsort(all, k, sizeof *all, cmp_semver_desc);
    *out = all;
    return 0;
}

char **sl_repo_select_versions(const sl_model_config_t *cfg, char *const *available,
                               sl_buf_t *err) {
    size_t n = 0;
    while (available[n])
        n++;
    char **v = sl_calloc(n + 1, sizeof *v);
    size_t k = 0;
    switch (cfg->version_policy) {
    case SL_VERSIONS_LATEST:
        for (size_t i = 0; i < n && k < cfg->latest_n; i++)
            v[k++] = sl_strdup(available[i]);
        break;
    case SL_VERSIONS_ALL:
        for (size_t i = 0; i < n && k < SL_MODEL_MAX_VERSIONS; i++)
            v[k++] = sl_strdup(available[i]);
        break;
    case SL_VERSIONS_SPECIFIC:
        for (size_t i = 0; i < n; i++) {
            for (uint32_t j = 0; j < cfg->n_specific; j++) {
                if (strcmp(available[i], cfg->specific[j]) == 0) {
                    v[k++] = sl_strdup(available[i]);
                    break;
                }
            }
        }
        for (uint32_t j = 0; j < cfg->n_specific; j++) {
            bool found = false;
            for (size_t i = 0; i < n && !found; i++)
                found = strcmp(available[i], cfg->specific[j]) == 0;
            if (!found) {
                sl_buf_printf(err,
                              "version %s named in version_policy.specific of model '%s' is not "
                              "in the repository\n",
                              cfg->specific[j], cfg->name);
            }
        }
        break;
    }
    v[k] = NULL;
    return v;
}

int sl_repo_read_manifest(const char *root, const char *name, const char *version, sl_manifest_t *m,
                          char **artifact_path, sl_buf_t *err) {
    memset(m, 0, sizeof *m);
    if (artifact_path) *artifact_path = NULL;
    char *vdir = path_join(root, name, version);
    char *path = path_join(vdir, "manifest.json", NULL);
    char *shown = sl_repo_display_path(root, name, version, "manifest.json", (const char *)NULL);
    char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, MANIFEST_MAX_BYTES, &data, &len);
    if (rc != 0) {
        read_error(err, shown, rc, MANIFEST_MAX_BYTES);
        rc = SL_EINVAL;
        goto out;
    }
    rc = sl_manifest_parse(shown, data, len, m, err);
    if (rc != 0) goto out;
    if (strcmp(m->semver, version) != 0) {
        sl_buf_printf(err, "%s: semver '%s' does not match the version directory '%s'\n", shown,
                      m->semver, version);
        rc = SL_EINVAL;
        goto out;
    }
    char *apath = path_join(vdir, m->artifact, NULL);
    char *ashown = sl_repo_display_path(root, name, version, m->artifact, (const char *)NULL);
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(apath, real) || stat(real, &st) != 0) {
        sl_buf_printf(err, "%s: the artifact named in manifest.json does not exist\n", ashown);
        rc = SL_EINVAL;
    } else if (!S_ISREG(st.st_mode)) {
        sl_buf_printf(err, "%s: the artifact is not a regular file\n", ashown);
        rc = SL_EINVAL;
    } else if (artifact_path) {
        *artifact_path = sl_strdup(real);
    }
    free(apath);
    free(ashown);
out:
    if (rc != 0) sl_manifest_free(m);
    free(data);
    free(vdir);
    free(path);
    free(shown);
    return rc;
}

int sl_repo_sha256_file(const char *path, char hex[65]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SL_EIO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) abort(); /* out of memory: server policy */
    int rc = 0;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) rc = SL_EIO;
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = sl_malloc(CHUNK);
    while (rc == 0) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = SL_EIO;
        if (r <= 0) break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1) rc = SL_EIO;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 32)) rc = SL_EIO;
    if (rc == 0) {
        static const char digits[] = "0123456789abcdef";
        for (unsigned i = 0; i < 32; i++) {
            hex[2 * i] = digits[md[i] >> 4];
            hex[2 * i + 1] = digits[md[i] & 15];
        }
        hex[64] = '\0';
    }
    free(buf);
    EVP_MD_CTX_free(ctx);
    close(fd);
    return rc;
}

int sl_repo_verify_artifact(const char *root, const char *name, const char *version,
                            const sl_manifest_t *m, const char *artifact_path, sl_buf_t *err) {
    char *shown = sl_repo_display_path(root, name, version, m->artifact, (const char *)NULL);
    char hex[65];
    int rc = sl_repo_sha256_file(artifact_path, hex);
    if (rc != 0) {
        sl_buf_printf(err, "%s: cannot read the artifact\n", shown);
    } else if (strcmp(hex, m->sha256) != 0) {
        sl_buf_printf(err, "%s: sha256 mismatch (manifest says %.12s..., file is %.12s...)\n",
                      shown, m->sha256, hex);
        rc = SL_EINVAL;
    }
    free(shown);
    return rc;
}

/* ---- fingerprints (FNV-1a 64 over names and stat fields) ---- */

static uint64_t fnv_stat(uint64_t h, const char *name, const char *path) {
    struct stat st;
    h = sl_fnv64(h, name, strlen(name) + 1);
    if (stat(path, &st) != 0) return sl_fnv64(h, "-", 1);
    int64_t f[5] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec,
                    (int64_t)st.st_ino, (int64_t)st.st_ctim.tv_nsec};
    return sl_fnv64(h, f, sizeof f);
}

/* Every entry of dir (sorted), recursing into directories to depth levels. */
static uint64_t fnv_dir(uint64_t h, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return sl_fnv64(h, "!", 1);
    size_t n = 0, cap = 16;
    char **names = sl_malloc(cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) && n < SL_REPO_MAX_VERSIONS * 4) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = sl_realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = sl_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *p = path_join(dir, names[i], NULL);
        struct stat st;
        if (depth > 0 && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            h = sl_fnv64(h, names[i], strlen(names[i]) + 1);
            h = fnv_dir(h, p, depth - 1);
        } else {
            h = fnv_stat(h, names[i], p);
        }
        free(p);
        free(names[i]);
    }
    free(names);
    return h;
}

uint64_t sl_repo_fingerprint(const char *root, const char *name, const char *version) {
    char *dir = path_join(root, name, NULL);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(dir);
        return 0;
    }
    uint64_t h = SL_FNV64_INIT;
    char *cfg = path_join(dir, "config.yaml", NULL);
    h = fnv_stat(h, "config.yaml", cfg);
    free(cfg);
    if (version) {
        char *vdir = path_join(dir, version, NULL);
        h = sl_fnv64(h, version, strlen(version) + 1);
        h = fnv_dir(h, vdir, 0);
        free(vdir);
    } else {
        h = fnv_dir(h, dir, 1);
    }
    free(dir);
    return h ? h : 1;
}
