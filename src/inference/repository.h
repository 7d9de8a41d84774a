/* The model repository on disk: <root>/<name>/config.yaml and <root>/<name>/<semver>/
 * manifest.json plus the artifact the manifest names. This file reads it (model and version
 * directories, configs, manifests, the versions a version policy selects), hashes artifacts
 * (sha256 through OpenSSL's EVP API) and fingerprints what it read so the manager's poll can
 * tell what changed. It keeps no state: every call looks at the disk as it is now.
 *
 * Messages name files relative to the repository's last path component
 * ("models/fraud/1.2.0/manifest.json: ...") so they are useful to an operator without leaking
 * the server's absolute paths to API clients. */
#ifndef SL_REPOSITORY_H
#define SL_REPOSITORY_H

#include "core/buf.h"
#include "inference/model_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_REPO_MAX_MODELS   4096 /* model directories read from one repository */
#define SL_REPO_MAX_VERSIONS 1024 /* version directories read from one model */
#define SL_REPO_MAX_NAME     128  /* bytes of a model directory name */

/* True for a usable model name: 1..128 bytes of [A-Za-z0-9_.-], not starting with '.'. */
bool sl_repo_name_ok(const char *name);

/* The model directories of root (sorted by name, hidden entries and non-directories skipped, as
 * well as names sl_repo_name_ok refuses: those are logged). Returns 0 and a NULL-terminated
 * array the caller frees with sl_repo_strv_free, or SL_EIO with a message in err when root
 * cannot be read. */
int sl_repo_list_models(const char *root, char ***out, sl_buf_t *err);
void sl_repo_strv_free(char **v);

/* Reads and parses <root>/<name>/config.yaml into cfg (see sl_model_config_parse). Returns 0,
 * SL_ENOENT (no such model directory), or SL_EINVAL / SL_EPARSE / SL_ELIMIT (config.yaml
 * missing, unreadable or invalid); messages go to err, cfg is zeroed on failure. */
int sl_repo_read_config(const char *root, const char *name, sl_model_config_t *cfg, sl_buf_t *err);

/* The version directories of model name whose names are semantic versions, newest first, as a
 * NULL-terminated array (free with sl_repo_strv_free); other entries are ignored. Returns 0 or
 * SL_EIO. */
int sl_repo_list_versions(const char *root, const char *name, char ***out, sl_buf_t *err);

/* Applies cfg's version policy to the available versions (newest first, as listed above):
 * latest N, the specific ones (in newest-first order; listed versions that are not available
 * are reported in err as one line each and skipped), or all (at most SL_MODEL_MAX_VERSIONS,
 * the newest). Returns a NULL-terminated array of copies (free with sl_repo_strv_free), possibly
 * empty. */
char **sl_repo_select_versions(const sl_model_config_t *cfg, char *const *available, sl_buf_t *err);

/* Reads <root>/<name>/<version>/manifest.json and checks it against its directory (semver
 * equals the directory name, the artifact exists as a regular file, symlinks followed).
 * On success fills m and, when artifact_path is not NULL, sets *artifact_path to the
 * artifact's absolute path (caller frees). */
int sl_repo_read_manifest(const char *root, const char *name, const char *version, sl_manifest_t *m,
                          char **artifact_path, sl_buf_t *err);

/* Computes the sha256 of the file at path as 64 lower-case hex digits. Returns 0 or SL_EIO. */
int sl_repo_sha256_file(const char *path, char hex[65]);

/* Verifies the artifact against the manifest's sha256. Returns 0, or SL_EINVAL with
 * "models/fraud/1.2.0/model.ubj: sha256 mismatch (manifest says ab12..., file is cd34...)" /
 * SL_EIO in err. */
int sl_repo_verify_artifact(const char *root, const char *name, const char *version,
                            const sl_manifest_t *m, const char *artifact_path, sl_buf_t *err);

/* A fingerprint of what a load of this model reads: config.yaml and, when version is not NULL,
 * every file of that version directory (names, sizes, mtimes, inodes; symlinks followed); with
 * version NULL, every version directory. Changes when any of them changes. 0 when the model
 * directory is gone. */
uint64_t sl_repo_fingerprint(const char *root, const char *name, const char *version);

/* "models/fraud/1.2.0/model.ubj": the repository's last path component joined with parts
 * (NULL-terminated), for messages. Caller frees. */
char *sl_repo_display_path(const char *root, ...) __attribute__((sentinel));

#endif
