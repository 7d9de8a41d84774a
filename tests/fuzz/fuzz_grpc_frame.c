/* libFuzzer target for the gRPC server's input path without sockets: the bytes go through a real
 * server-side nghttp2 session (sl_grpc__server_feed) with the echo and health services and a
 * handler that answers only after the connection is gone; the same bytes also hit the
 * grpc-timeout parser, the unary body parser and the grpc-message codec (which must round-trip).
 * Input: one mode byte, then HTTP/2 frames. Mode bit 0: do not prepend the client preface and an
 * empty SETTINGS frame; bit 1: held calls are answered with a reply (else an error); bits 4-7:
 * feed in chunks of 2^(n-1) bytes (0: one chunk). */
#include "core/grpc.h"
#include "core/grpc_frame.h"
#include "core/health.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HELD   16
#define MAX_CHUNKS 256

static sl_grpc_server_t *g_srv;
static sl_health_t *g_health;
static uv_loop_t g_loop;
static sl_grpc_call_t *g_held[MAX_HELD];
static size_t g_n_held;

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00"; /* empty SETTINGS */

static void hold_handler(sl_grpc_call_t *call, const uint8_t *msg, size_t len, void *ctx) {
    if (g_n_held < MAX_HELD) {
        g_held[g_n_held++] = call;
    } else {
        sl_grpc_fail(call, SL_GRPC_UNAVAILABLE, "too many held calls");
    }
}

static void init(void) {
    sl_log_level_set(SL_LOG_ERROR);
    if (uv_loop_init(&g_loop) != 0) abort();
    sl_grpc_limits_t lim = sl_grpc_limits_default();
    lim.max_message_bytes = 64 * 1024;
    lim.max_concurrent_streams = 8;
    lim.idle_timeout_ms = 1000;
    g_srv = sl_grpc_server_new("fuzz", &lim);
    g_health = sl_health_new("fuzz", NULL);
    sl_grpc_health_register(g_srv, g_health);
    sl_grpc_echo_register(g_srv);
    sl_grpc_server_add_method(g_srv, "/fuzz.Hold/Later", hold_handler, NULL);
}

static void check_side_parsers(const uint8_t *data, size_t size) {
    uint64_t ns;
    sl_grpc__timeout_parse((sl_str_t){(const char *)data, SL_MIN(size, 12)}, &ns);

    const uint8_t *msg;
    size_t len;
    const char *why;
    sl_grpc__unary_parse(data, size, 1024, &msg, &len, &why);

    size_t n = SL_MIN(size, 512);
    sl_buf_t enc = SL_BUF_INIT, dec = SL_BUF_INIT;
    sl_grpc__message_encode(&enc, (const char *)data, n);
    sl_grpc__message_decode(&dec, enc.data ? enc.data : "", enc.len);
    if (dec.len != n || (n && memcmp(dec.data, data, n) != 0)) abort();
    sl_buf_reset(&dec);
    sl_grpc__message_decode(&dec, (const char *)data, n); /* arbitrary input never fails */
    sl_buf_free(&enc);
    sl_buf_free(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_srv) init();
    if (size == 0) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    check_side_parsers(data, size);

    uint8_t *input = malloc(sizeof preface - 1 + size + 1);
    size_t len = 0;
    if (!(mode & 1)) {
        memcpy(input, preface, sizeof preface - 1);
        len = sizeof preface - 1;
    }
    if (size) memcpy(input + len, data, size);
    len += size;

    size_t chunks[MAX_CHUNKS];
    size_t n_chunks = 0;
    if (mode >> 4) {
        size_t step = (size_t)1 << ((mode >> 4) - 1);
        for (size_t at = step; at < len && n_chunks < MAX_CHUNKS; at += step) {
            chunks[n_chunks++] = at;
        }
    }
    sl_buf_t out = SL_BUF_INIT;
    sl_grpc__server_feed(g_srv, &g_loop, input, len, chunks, n_chunks, &out);
    free(input);
    sl_buf_free(&out);

    /* Calls held by a handler outlive their connection and are answered now. */
    for (size_t i = 0; i < g_n_held; i++) {
        if (mode & 2) {
            sl_grpc_reply(g_held[i], "late", 4);
        } else {
            sl_grpc_fail(g_held[i], SL_GRPC_INTERNAL, "late \xff failure");
        }
    }
    g_n_held = 0;
    uv_run(&g_loop, UV_RUN_NOWAIT); /* finishes the closes of the session's timer */
    return 0;
}
