/* Turns an upstream pool's configured endpoints ("10.0.0.5:8001", "inference.ns.svc:8001",
 * "[::1]:8001") into the addresses the pool balances over: numeric hosts stay as they are, DNS
 * names become one "ip:port" per address they resolve to (a Kubernetes headless Service lists
 * every replica). Blocking (getaddrinfo): run it on a worker thread after start. */
#ifndef SL_GATEWAY_RESOLVE_H
#define SL_GATEWAY_RESOLVE_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>

/* True when some endpoint names a host by DNS name (the pool needs re-resolving). */
bool sl_gw_endpoints_need_dns(const char *const *endpoints, size_t n);

/* Resolves endpoints[0..n) into *out (a malloc'd array of malloc'd strings, *n_out of them,
 * duplicates removed, at most max). A name that does not resolve is left out and reported in
 * err ("inference.ns.svc: Name or service not known"); returns 0 when at least one address
 * came out, SL_ENOENT otherwise. Free with sl_gw_endpoints_free. */
int sl_gw_resolve_endpoints(const char *const *endpoints, size_t n, size_t max, char ***out,
                            size_t *n_out, sl_buf_t *err);
void sl_gw_endpoints_free(char **addrs, size_t n);

#endif
