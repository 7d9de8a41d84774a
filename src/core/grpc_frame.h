/* Private to the gRPC server and client: the length-prefixed message framing, grpc-timeout,
 * grpc-message percent-encoding, content-type checks, HTTP-to-gRPC status mapping and the small
 * helpers both HTTP/2 endpoints share. Exposed in a header so unit tests and the fuzzer reach
 * them; nothing outside src/core/grpc_*.c and tests should include it. */
#ifndef SL_GRPC_FRAME_H
#define SL_GRPC_FRAME_H

#include "core/buf.h"
#include "core/common.h"
#include "core/grpc.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Every message on the wire is 1 byte compressed flag + 4 bytes big-endian length + payload. */
#define SL_GRPC_PREFIX_LEN 5
/* 8 digits, 1 unit, NUL. */
#define SL_GRPC_TIMEOUT_MAX_LEN 10
/* Request headers (metadata) limits, also advertised as SETTINGS_MAX_HEADER_LIST_SIZE. */
#define SL_GRPC_MAX_HEADER_BYTES (16 * 1024)
#define SL_GRPC_MAX_HEADERS      100
/* Longest accepted :path. */
#define SL_GRPC_MAX_PATH 1024

/* Writes the 5-byte prefix for a message of len bytes. */
void sl_grpc__prefix_write(uint8_t out[SL_GRPC_PREFIX_LEN], bool compressed, uint32_t len);
/* Reads a prefix from p/len. Returns 0, SL_EAGAIN when fewer than 5 bytes are there, or
 * SL_EPROTO when the flag byte is neither 0 nor 1. */
int sl_grpc__prefix_parse(const uint8_t *p, size_t len, bool *compressed, uint32_t *msg_len);
/* Appends prefix + msg to out. */
void sl_grpc__frame_append(sl_buf_t *out, const void *msg, size_t len);

/* Parses a unary body: exactly one uncompressed message of at most max bytes. Returns
 * SL_GRPC_OK with *msg and *msg_len pointing into p, or a gRPC code with a static explanation in
 * *why: INTERNAL (no message, truncated, more than one, bad flag), UNIMPLEMENTED (compressed),
 * RESOURCE_EXHAUSTED (too large). */
int sl_grpc__unary_parse(const uint8_t *p, size_t len, uint32_t max, const uint8_t **msg,
                         size_t *msg_len, const char **why);

/* grpc-timeout: 1 to 8 ASCII digits and a unit H M S m u n. Stores nanoseconds (saturating
 * nothing: the largest value, 99999999H, fits in 64 bits). Returns 0 or SL_EPARSE. */
int sl_grpc__timeout_parse(sl_str_t v, uint64_t *ns);
/* Formats a timeout of ms milliseconds (> 0) with the finest unit that fits 8 digits, rounding
 * up so the peer never sees a shorter deadline. Returns the length written (NUL-terminated). */
size_t sl_grpc__timeout_format(uint64_t ms, char out[SL_GRPC_TIMEOUT_MAX_LEN]);

/* grpc-message percent-encoding: bytes outside 0x20..0x7e and '%' become %XX (uppercase). */
void sl_grpc__message_encode(sl_buf_t *out, const char *s, size_t n);
/* Decodes %XX sequences; malformed ones are kept literally, as the spec asks (never fails). */
void sl_grpc__message_decode(sl_buf_t *out, const char *s, size_t n);

/* "application/grpc", "application/grpc+proto", "application/grpc;..." (case-insensitive). */
bool sl_grpc__content_type_ok(sl_str_t v);
/* The gRPC code for a non-200 HTTP status with no grpc-status (the spec's mapping table). */
int sl_grpc__code_from_http(int http_status);

/* Moves what nghttp2 wants to send into out, stopping once out holds at least max bytes (the
 * rest stays queued in nghttp2). Returns 0 or a negative nghttp2 error. */
int sl_grpc__h2_collect(nghttp2_session *s, sl_buf_t *out, size_t max);
/* A read buffer for uv_read_start's alloc callback, one per thread: reads are consumed
 * synchronously in the read callback, so every connection of a thread can share it. */
void sl_grpc__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Fuzzing and tests: runs data through a server-side session of srv exactly as if a connection
 * on loop had read it (chunked as given by the split points in chunks/n_chunks, NULL: one
 * chunk), dispatching handlers, and appends what the server would write to out (may be NULL).
 * The session is then torn down; handlers that kept a call may answer it afterwards. Close
 * callbacks run on loop: run it (UV_RUN_NOWAIT) before freeing anything. */
void sl_grpc__server_feed(sl_grpc_server_t *srv, uv_loop_t *loop, const uint8_t *data, size_t len,
                          const size_t *chunks, size_t n_chunks, sl_buf_t *out);

#endif
