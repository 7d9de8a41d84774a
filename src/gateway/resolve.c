/* Endpoint resolution for upstream pools. */
#include "gateway/resolve.h"

#include "core/common.h"
#include "gateway/upstream.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static bool numeric(const char *host) {
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

bool sl_gw_endpoints_need_dns(const char *const *endpoints, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char host[SL_UPSTREAM_ADDR_MAX];
        uint16_t port;
        if (sl_upstream_addr_split(endpoints[i], host, sizeof host, &port) && !numeric(host))
            return true;
    }
    return false;
}

static void add(char ***out, size_t *n, size_t max, const char *addr) {
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*out)[i], addr) == 0) return;
    }
    if (*n >= max) return;
    *out = sl_realloc(*out, (*n + 1) * sizeof **out);
    (*out)[(*n)++] = sl_strdup(addr);
}

int sl_gw_resolve_endpoints(const char *const *endpoints, size_t n, size_t max, char ***out,
                            size_t *n_out, sl_buf_t *err) {
    *out = NULL;
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        char host[SL_UPSTREAM_ADDR_MAX], port[8];
        uint16_t port_no;
        if (!sl_upstream_addr_split(endpoints[i], host, sizeof host, &port_no)) continue;
        snprintf(port, sizeof port, "%u", (unsigned)port_no);
        if (numeric(host)) {
            add(out, n_out, max, endpoints[i]);
            continue;
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(host, port, &hints, &res);
        if (rc != 0) {
            if (err) sl_buf_printf(err, "%s%s: %s", err->len ? "; " : "", host, gai_strerror(rc));
            continue;
        }
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 16];
            const void *src = a->ai_family == AF_INET
                                  ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                                  : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
            if (!inet_ntop(a->ai_family, src, ip, sizeof ip)) continue;
            snprintf(addr, sizeof addr, a->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, port);
            add(out, n_out, max, addr);
        }
        freeaddrinfo(res);
    }
    return *n_out ? 0 : SL_ENOENT;
}

void sl_gw_endpoints_free(char **addrs, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(addrs[i]);
    free(addrs);
}
