/* UTF-8 validation shared by everything that writes text others parse strictly: JSON (logs,
 * API bodies, OTLP) and Prometheus label values. */
#ifndef SL_UTF8_H
#define SL_UTF8_H

#include <stddef.h>

/* Length (1-4) of the well-formed UTF-8 sequence at s[0..n) (Unicode Table 3-7: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when it is ill-formed; then *bad (may be
 * NULL) receives the length of the maximal ill-formed subpart, which a writer replaces with one
 * U+FFFD (the Unicode "maximal subpart" practice). n must be at least 1. */
size_t sl_utf8_seq(const unsigned char *s, size_t n, size_t *bad);

/* A malloc'd copy of the NUL-terminated s with every ill-formed subpart replaced by U+FFFD, or
 * NULL when s is already valid (nothing to free then). */
char *sl_utf8_sanitize(const char *s);

#endif
