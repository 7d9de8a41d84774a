/* The gateway's name rules, one place for every parser: names of models, pipelines, fields,
 * pools, classes and tiers are [A-Za-z0-9_.-] (model and pipeline names, which end up in paths,
 * may not start with '.'); versions are semver-like [A-Za-z0-9.+-] starting alphanumeric. */
#ifndef SL_GATEWAY_NAMES_H
#define SL_GATEWAY_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* s[0..n) is 1..max bytes of [A-Za-z0-9_.-] (no NUL), and when no_dot_start, not starting with
 * '.'. */
bool sl_gw_name_ok(const char *s, size_t n, size_t max, bool no_dot_start);
/* s[0..n) is 1..max bytes of [A-Za-z0-9.+-] starting with a letter or digit. */
bool sl_gw_version_ok(const char *s, size_t n, size_t max);

#endif
