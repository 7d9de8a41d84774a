/* A model's serving configuration (models/<name>/config.yaml) and a version's manifest
 * (models/<name>/<semver>/manifest.json), parsed and validated. Every error names the file and
 * line (config.yaml) or field (manifest.json) and says what was expected. Both are plain data;
 * the repository and the manager read them. */
#ifndef SL_MODEL_CONFIG_H
#define SL_MODEL_CONFIG_H

#include "core/buf.h"

#include <sluice/backend.h>

#include <stdbool.h>
#include <stdint.h>

#define SL_MODEL_MAX_TENSORS      64 /* inputs or outputs per model */
#define SL_MODEL_MAX_PREFERRED    16 /* preferred batch sizes */
#define SL_MODEL_MAX_PRIORITIES   16 /* priority levels */
#define SL_MODEL_MAX_PARAMS       64 /* backend parameters */
#define SL_MODEL_MAX_INSTANCES    64 /* instance count */
#define SL_MODEL_MAX_VERSIONS     64 /* versions kept loaded (policy all / specific) */
#define SL_MODEL_CONFIG_MAX_BYTES (256u << 10)

typedef enum sl_timeout_action {
    SL_TIMEOUT_REJECT = 0, /* a request still queued at its timeout fails (504) */
    SL_TIMEOUT_DELAY = 1,  /* it stays queued, but behind every request that has not timed out */
} sl_timeout_action_t;

typedef struct sl_queue_policy {
    uint32_t max_queue_size;     /* 0: unbounded (queued requests across all levels) */
    uint64_t default_timeout_us; /* 0: none */
    bool allow_timeout_override; /* a request's own timeout may replace the default */
    sl_timeout_action_t timeout_action;
} sl_queue_policy_t;

typedef struct sl_dynamic_batching {
    bool enabled;
    uint32_t preferred[SL_MODEL_MAX_PREFERRED]; /* ascending, each <= max_batch_size */
    uint32_t n_preferred;
    uint64_t max_queue_delay_us;
    uint32_t priority_levels;         /* 0: one level */
    uint32_t default_priority_level;  /* 1..priority_levels (0 when levels is 0) */
    sl_queue_policy_t default_policy; /* applies to every level without its own */
    sl_queue_policy_t priority_policy[SL_MODEL_MAX_PRIORITIES + 1]; /* indexed by level */
    bool has_priority_policy[SL_MODEL_MAX_PRIORITIES + 1];
} sl_dynamic_batching_t;

typedef enum sl_version_policy_kind {
    SL_VERSIONS_LATEST = 0, /* the newest `latest` versions by semver (default 1) */
    SL_VERSIONS_SPECIFIC,   /* exactly the listed versions */
    SL_VERSIONS_ALL,
} sl_version_policy_kind_t;

typedef struct sl_warmup {
    char *name;          /* a label for logs */
    uint32_t batch_size; /* >= 1 */
    /* Each input is filled with zeros, or with random values when random is true (seeded,
     * deterministic), or read from `data_file` (a .npy path relative to the model dir). */
    bool random;
    char *data_file[SL_MODEL_MAX_TENSORS]; /* per input, NULL when not given */
} sl_warmup_t;

typedef struct sl_model_config {
    char *name;              /* the directory name; config.yaml's `name:` must match if given */
    char *backend;           /* "onnx", "xgboost", or a backend found in the backend directory */
    char *platform;          /* reported in metadata; defaults from the backend ("onnx_onnxv1") */
    uint32_t max_batch_size; /* 0: no batching, dims are the full shapes */
    sluice_tensor_desc_t inputs[SL_MODEL_MAX_TENSORS];
    uint32_t n_inputs;
    sluice_tensor_desc_t outputs[SL_MODEL_MAX_TENSORS];
    uint32_t n_outputs; /* names inside tensor descs are owned (char*) by the config */
    sl_dynamic_batching_t batching;
    uint32_t instance_count; /* default 1 */
    sluice_device_kind_t instance_kind;
    uint32_t instance_threads; /* intra-op threads per instance, default 1 */
    sl_warmup_t *warmup;
    uint32_t n_warmup;
    sl_version_policy_kind_t version_policy;
    uint32_t latest_n; /* SL_VERSIONS_LATEST */
    char **specific;   /* SL_VERSIONS_SPECIFIC: semver strings */
    uint32_t n_specific;
    bool response_cache;             /* optional per-model cache */
    uint32_t response_cache_entries; /* default 1024 */
    char *param_keys[SL_MODEL_MAX_PARAMS];
    char *param_values[SL_MODEL_MAX_PARAMS];
    uint32_t n_params;
} sl_model_config_t;

/* Parses config.yaml from memory for model `dir_name` (file is used in messages). On success
 * returns 0 and fills cfg (free with sl_model_config_free). On failure returns SL_EPARSE or
 * SL_EINVAL / SL_ELIMIT with "file:line: message" appended to err (one line per problem) and cfg
 * zeroed. */
int sl_model_config_parse(const char *file, const char *dir_name, const void *data, size_t len,
                          sl_model_config_t *cfg, sl_buf_t *err);
void sl_model_config_free(sl_model_config_t *cfg);
/* Appends the config as JSON (Triton-style field names where they exist: name, platform,
 * backend, max_batch_size, input[], output[], dynamic_batching{}, instance_group[],
 * version_policy{}), for GET /v2/models/{m}/config and ModelConfig. */
void sl_model_config_to_json(const sl_model_config_t *cfg, sl_buf_t *out);

typedef struct sl_manifest {
    char *artifact;            /* file name within the version directory (no '/', no "..") */
    char sha256[65];           /* lower-case hex */
    char *semver;              /* must equal the directory name */
    char *trained_at;          /* RFC 3339, optional (NULL) */
    char *metrics_json;        /* training metrics object as compact JSON, optional (NULL) */
    char *feature_schema_json; /* feature schema as compact JSON, optional (NULL) */
} sl_manifest_t;

/* Parses manifest.json (file used in messages). Same conventions as sl_model_config_parse. */
int sl_manifest_parse(const char *file, const void *data, size_t len, sl_manifest_t *m,
                      sl_buf_t *err);
void sl_manifest_free(sl_manifest_t *m);

/* Semantic versions "MAJOR.MINOR.PATCH[-pre][+build]": parse (returns 0 or SL_EINVAL) and order
 * (SemVer 2.0 precedence; build metadata ignored). */
typedef struct sl_semver {
    uint64_t major, minor, patch;
    char pre[64]; /* "" when none */
} sl_semver_t;
int sl_semver_parse(const char *s, sl_semver_t *out);
int sl_semver_cmp(const sl_semver_t *a, const sl_semver_t *b);

#endif
