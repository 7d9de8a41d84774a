/* Fuzzes the HTTP/1.1 request path end to end: each input is written into one side of a
 * socketpair whose other side the server adopts as a connection; the loop runs until the server
 * has answered and closed, so parsing, limits, pipelining and error answers all run for real. */
#include "core/http.h"
#include "core/runtime.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static sl_runtime_t *g_rt;
static sl_listener_t *g_ls;
static sl_http_server_t *g_srv;

static void echo(sl_http_req_t *req, void *ctx) {
    sl_http_resp_header(req, "X-Echo", "1");
    sl_http_respond(req, 200, "application/octet-stream", req->body, req->body_len);
}

static void hello(sl_http_req_t *req, void *ctx) {
    sl_http_respond(req, 200, "text/plain", "hi", 2);
}

static void setup(void) {
    sl_runtime_opts_t o = {.io_threads = 1};
    g_rt = sl_runtime_new(&o);
    sl_http_limits_t lim = sl_http_limits_default();
    lim.max_request_line = 512;
    lim.max_header_bytes = 2048;
    lim.max_headers = 16;
    lim.max_body_bytes = 8192;
    g_srv = sl_http_server_new("fuzz", &lim);
    sl_http_server_route(g_srv, "POST", "/echo", echo, NULL, false);
    sl_http_server_route(g_srv, "GET", "/x/*", hello, NULL, false);
    sl_listener_cfg_t lc = {.name = "fuzz", .host = "127.0.0.1", .port = 0};
    if (sl_runtime_listen(g_rt, &lc, sl_http_proto(), g_srv, &g_ls) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_rt) setup();
    if (size > 65536) return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
    int bufsz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    sl_loop_t *loop = sl_runtime_loop(g_rt, 0);
    sl_listener_adopt(g_ls, loop, sv[0]);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    size_t off = 0;
    char sink[65536];
    /* Write, then half-close so the server sees EOF; read whatever it answers meanwhile. */
    for (int i = 0; i < 100000 && sl_listener_connections(g_ls) > 0; i++) {
        if (off < size) {
            ssize_t w = write(sv[1], data + off, size - off);
            if (w > 0) off += (size_t)w;
            if (off == size) shutdown(sv[1], SHUT_WR);
        } else if (off == 0) {
            shutdown(sv[1], SHUT_WR);
            off = 1;
            size = 1;
        }
        while (read(sv[1], sink, sizeof sink) > 0) {
        }
        uv_run(sl_loop_uv(loop), UV_RUN_NOWAIT);
    }
    /* Let the close callbacks run. */
    uv_run(sl_loop_uv(loop), UV_RUN_NOWAIT);
    close(sv[1]);
    return 0;
}
