/* The Open Inference Protocol's REST paths: model names and versions as they may appear in a
 * URL, and the /v2/models/{m}[/versions/{v}][/action] and /v2/repository/models/{m}/{action}
 * shapes. Shared by the inference service and the gateway so both refuse the same names
 * (no '/', '%', "..": path tricks never reach a repository or an upstream). */
#ifndef SL_OIP_PATH_H
#define SL_OIP_PATH_H

#include "core/common.h"

#define SL_OIP_NAME_MAX 255

/* Model names: 1..255 of [A-Za-z0-9_.-], not "." or ".."; versions also '+' (semver build). */
bool sl_oip_name_ok(sl_str_t s, bool version);

typedef struct sl_oip_model_path {
    char model[SL_OIP_NAME_MAX + 1];
    char version[SL_OIP_NAME_MAX + 1]; /* "" when the path names none */
    sl_str_t action; /* "", "ready", "infer", "config", "stats"; points into the parsed path */
} sl_oip_model_path_t;

/* Parses rest, the part of the path after "/v2/models/" (borrowed; p->action points into it).
 * Returns 0; or 404 (not an endpoint under /v2/models) or 400 (a bad name or version) with a
 * message for the client in *msg (static). */
int sl_oip_parse_model_path(sl_str_t rest, sl_oip_model_path_t *p, const char **msg);

/* Parses rest, the part after "/v2/repository/models/": "{m}/load" or "{m}/unload". Returns 0
 * with model filled and *load set; or 404 / 400 with *msg as above. */
int sl_oip_parse_repository_path(sl_str_t rest, char model[SL_OIP_NAME_MAX + 1], bool *load,
                                 const char **msg);

#endif
