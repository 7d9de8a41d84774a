/* HTTP/1.1 client on a libuv loop: a keep-alive connection pool per upstream (host:port),
 * connect and request timeouts, content-length and chunked responses parsed with llhttp,
 * bounded response size. Used by `sluice health`, the OTLP exporter, and later the gateway.
 * A client belongs to one loop; call it only on that loop's thread. */
#ifndef SL_HTTP_CLIENT_H
#define SL_HTTP_CLIENT_H

#include "core/buf.h"
#include "core/http.h"

#include <stdint.h>
#include <uv.h>

typedef struct sl_http_client sl_http_client_t;

typedef struct sl_http_client_opts {
    uint32_t connect_timeout_ms; /* default 1000 */
    uint32_t request_timeout_ms; /* whole exchange, default 5000 */
    uint32_t idle_timeout_ms;    /* pooled idle connection lifetime, default 30000 */
    uint32_t max_conns_per_host; /* default 64; requests beyond wait in a FIFO */
    uint64_t max_response_bytes; /* default 16 MiB */
} sl_http_client_opts_t;

typedef struct sl_http_response {
    int status; /* HTTP status code */
    const sl_http_header_t *headers;
    unsigned n_headers;
    const uint8_t *body;
    size_t body_len;
} sl_http_response_t;

typedef struct sl_http_client_req {
    const char *method; /* "GET", "POST", ... */
    const char *host;   /* name or address; names are resolved with getaddrinfo on the pool */
    uint16_t port;
    const char *path; /* origin-form target, "/readyz" */
    const sl_http_header_t *headers;
    unsigned n_headers;
    const void *body;
    size_t body_len;
    uint32_t timeout_ms; /* 0: the client's request_timeout_ms */
} sl_http_client_req_t;

/* status is 0 with resp set, or a negative status (SL_ETIMEOUT, SL_ECONNREFUSED, SL_EPROTO,
 * SL_ELIMIT, SL_ECANCELED, SL_ERESOLVE...) with resp NULL. resp is borrowed during the call. */
typedef void (*sl_http_client_cb)(int status, const sl_http_response_t *resp, void *arg);

/* opts may be NULL (defaults). Free with sl_http_client_free on the loop's thread. */
sl_http_client_t *sl_http_client_new(uv_loop_t *loop, const sl_http_client_opts_t *opts);
/* Fails every unfinished request with SL_ECANCELED (their callbacks run before this returns,
 * none after), closes connections; memory is released once the handles have closed (run the
 * loop). May be called from a request callback. */
void sl_http_client_free(sl_http_client_t *c);

/* Starts a request; everything in req is copied. cb is called exactly once, never before this
 * returns. Returns 0, or SL_EINVAL for a malformed request (cb not called).
 * Framing is the client's: it writes Host (unless given), Content-Length, and rejects a caller's
 * Content-Length or Transfer-Encoding, CR/LF in values and non-token names with SL_EINVAL. After
 * sl_http_client_free (e.g. from a callback) it returns SL_ECANCELED, cb not called.
 * A pooled connection that dies before any response byte is retried once on a fresh connection
 * for GET/HEAD/PUT/DELETE/OPTIONS; other methods fail with SL_ECLOSED. A connection closed
 * mid-response also gives SL_ECLOSED; a response that is not HTTP/1.x gives SL_EPROTO; one whose
 * body exceeds max_response_bytes (or whose headers exceed 64 KiB / 128 lines) SL_ELIMIT. */
int sl_http_client_request(sl_http_client_t *c, const sl_http_client_req_t *req,
                           sl_http_client_cb cb, void *arg);

/* Splits "http://host[:port][/path]" (port default 80, path default "/"); *host and *path are
 * malloc'd. Returns 0 or SL_EINVAL (https and other schemes are not supported). */
int sl_http_url_parse(const char *url, char **host, uint16_t *port, char **path);

/* Blocking convenience on a private loop: GET or POST url, store the status code and body
 * (appended to body_out, which may be NULL). A body is sent as application/json. timeout_ms 0
 * means the client defaults. Returns 0 or a negative status. For CLIs (`sluice health`), never on
 * an I/O thread. */
int sl_http_fetch(const char *method, const char *url, const void *body, size_t body_len,
                  uint32_t timeout_ms, int *status_code, sl_buf_t *body_out);

#endif
