/* Unit tests of core/config: defaults, every value type and bound, each error kind with its
 * file:line, ${} references, hostile input limits and the generated docs. */
#include "core/config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmpdir[] = "/tmp/sl_test_config_XXXXXX";

static int group_setup(void **state) {
    return mkdtemp(g_tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int load(const char *yaml, sl_config_t *cfg, sl_config_errors_t *errs) {
    return sl_config_load_buffer("t.yaml", yaml, strlen(yaml), cfg, errs);
}

/* Loads yaml that must fail with exactly one error containing want (equal to it if exact). */
static void check_one_error(const char *yaml, const char *want, bool exact) {
    sl_config_t cfg;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = load(yaml, &cfg, &errs);
    if (rc == 0 || errs.n != 1 ||
        (exact ? strcmp(errs.msgs[0], want) != 0 : !strstr(errs.msgs[0], want))) {
        print_error("yaml: %s\nwant one error %s: %s\ngot rc %d and %zu errors:\n", yaml,
                    exact ? "equal to" : "containing", want, rc, errs.n);
        for (size_t i = 0; i < errs.n; i++)
            print_error("  %s\n", errs.msgs[i]);
        fail();
    }
    assert_int_equal(rc, SL_EPARSE);
    assert_null(cfg.server.bind_host); /* nothing left to free on failure */
    sl_config_errors_free(&errs);
}

static void expect_one_error(const char *yaml, const char *want) {
    check_one_error(yaml, want, false);
}

static void expect_exact_error(const char *yaml, const char *want) {
    check_one_error(yaml, want, true);
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_defaults(void **state) {
    sl_config_t c;
    sl_config_defaults(&c);
    assert_null(c.path);
    assert_string_equal(c.server.bind_host, "0.0.0.0");
    assert_int_equal(c.server.io_threads, 0);
    assert_int_equal(c.server.worker_threads, 4);
    assert_int_equal(c.server.drain_timeout_ms, 15000);
    assert_int_equal(c.server.drain_delay_ms, 0);
    sl_http_limits_t h = sl_http_limits_default();
    assert_int_equal(c.http.max_request_line, h.max_request_line);
    assert_int_equal(c.http.max_header_bytes, h.max_header_bytes);
    assert_int_equal(c.http.max_headers, h.max_headers);
    assert_int_equal(c.http.max_body_bytes, h.max_body_bytes);
    assert_int_equal(c.http.max_connections, h.max_connections);
    assert_int_equal(c.http.header_timeout_ms, h.header_timeout_ms);
    assert_int_equal(c.http.body_timeout_ms, h.body_timeout_ms);
    assert_int_equal(c.http.idle_timeout_ms, h.idle_timeout_ms);
    assert_int_equal(c.http.write_timeout_ms, h.write_timeout_ms);
    assert_int_equal(c.http.max_body_bytes, 16u << 20);
    assert_int_equal(c.grpc.max_message_bytes, 4u << 20);
    assert_int_equal(c.grpc.max_concurrent_streams, 100);
    assert_int_equal(c.grpc.max_connections, 10000);
    assert_int_equal(c.grpc.idle_timeout_ms, 300000);
    assert_int_equal(c.log.level, SL_LOG_INFO);
    assert_int_equal(c.log.rate_limit, 20);
    assert_string_equal(c.tracing.endpoint, "");
    assert_string_equal(c.tracing.service_name, "sluice");
    assert_true(c.tracing.sample_ratio == 0.01);
    assert_int_equal(c.tracing.queue_size, 2048);
    assert_int_equal(c.tracing.batch_size, 256);
    assert_int_equal(c.tracing.flush_interval_ms, 1000);
    assert_int_equal(c.tracing.export_timeout_ms, 5000);
    assert_int_equal(c.gateway.http_port, 8080);
    assert_int_equal(c.inference.http_port, 8000);
    assert_int_equal(c.inference.grpc_port, 8001);
    assert_int_equal(c.features.http_port, 8100);
    assert_int_equal(c.features.grpc_port, 8101);
    assert_int_equal(c.registry.http_port, 9000);
    assert_int_equal(c.registry.grpc_port, 9001);
    assert_int_equal(c.worker.http_port, 8200);
    assert_false(c.debug.echo);
    sl_config_free(&c);

    /* The HTTP defaults from http_server.c must sit within the table's bounds. */
    size_t n;
    const sl_config_option_t *opts = sl_config_options(&n);
    sl_config_defaults(&c);
    for (size_t i = 0; i < n; i++) {
        sl_buf_t v = SL_BUF_INIT, m = SL_BUF_INIT;
        sl_config_t d;
        sl_config_defaults(&d);
        sl_config_option_format(&opts[i], &c, &v);
        /* Round trip: the formatted default parses back to the same value. */
        if (sl_config__set(&opts[i], &d, v.data ? v.data : "", v.len, NULL, &m) != 0) {
            print_error("%s: default %s does not load: %s\n", opts[i].name, v.data, m.data);
            fail();
        }
        assert_true(sl_config_option_equal(&opts[i], &c, &d));
        sl_buf_free(&v);
        sl_buf_free(&m);
        sl_config_free(&d);
    }
    sl_config_free(&c);
}

static void test_empty_files_give_defaults(void **state) {
    const char *empties[] = {"", "# only a comment\n", "---\n", "---\n...\n", "~\n", "\n\n"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
        sl_config_t cfg;
        sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
        assert_int_equal(load(empties[i], &cfg, &errs), 0);
        assert_int_equal(errs.n, 0);
        assert_int_equal(cfg.inference.grpc_port, 8001);
        assert_string_equal(cfg.server.bind_host, "0.0.0.0");
        sl_config_free(&cfg);
    }
    /* Empty sections are fine too. */
    sl_config_t cfg;
    assert_int_equal(load("server:\nlog: {}\n", &cfg, NULL), 0);
    sl_config_free(&cfg);
}

static void test_full_file(void **state) {
    const char *yaml = "server:\n"
                       "  bind_host: 127.0.0.1\n"
                       "  io_threads: 2\n"
                       "  worker_threads: 8\n"
                       "  drain_timeout: 30s\n"
                       "  drain_delay: 1500\n"
                       "http:\n"
                       "  max_request_line: 4KiB\n"
                       "  max_header_bytes: 16384\n"
                       "  max_headers: 50\n"
                       "  max_body_bytes: 1GiB\n"
                       "  max_connections: 500\n"
                       "  header_timeout: 2s\n"
                       "  body_timeout: 1m\n"
                       "  idle_timeout: 90s\n"
                       "  write_timeout: 250ms\n"
                       "grpc: {max_message_bytes: 1MiB, max_concurrent_streams: 10, "
                       "max_connections: 20, idle_timeout: 1h}\n"
                       "log:\n"
                       "  level: debug\n"
                       "  rate_limit: 0\n"
                       "tracing:\n"
                       "  endpoint: \"http://otel:4318/v1/traces\"\n"
                       "  service_name: fraud\n"
                       "  sample_ratio: 0.25\n"
                       "  queue_size: 100\n"
                       "  batch_size: 100\n"
                       "  flush_interval: 1.5s\n"
                       "  export_timeout: 2m\n"
                       "gateway: {http_port: 1}\n"
                       "inference: {http_port: 2, grpc_port: 3}\n"
                       "features: {http_port: 4, grpc_port: 5}\n"
                       "registry: {http_port: 6, grpc_port: 7}\n"
                       "worker: {http_port: 0}\n"
                       "debug: {echo: true}\n";
    sl_config_t c;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = load(yaml, &c, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msgs[i]);
    assert_int_equal(rc, 0);
    assert_string_equal(c.server.bind_host, "127.0.0.1");
    assert_int_equal(c.server.io_threads, 2);
    assert_int_equal(c.server.worker_threads, 8);
    assert_int_equal(c.server.drain_timeout_ms, 30000);
    assert_int_equal(c.server.drain_delay_ms, 1500);
    assert_int_equal(c.http.max_request_line, 4096);
    assert_int_equal(c.http.max_header_bytes, 16384);
    assert_int_equal(c.http.max_headers, 50);
    assert_int_equal(c.http.max_body_bytes, 1u << 30);
    assert_int_equal(c.http.max_connections, 500);
    assert_int_equal(c.http.header_timeout_ms, 2000);
    assert_int_equal(c.http.body_timeout_ms, 60000);
    assert_int_equal(c.http.idle_timeout_ms, 90000);
    assert_int_equal(c.http.write_timeout_ms, 250);
    assert_int_equal(c.grpc.max_message_bytes, 1u << 20);
    assert_int_equal(c.grpc.max_concurrent_streams, 10);
    assert_int_equal(c.grpc.max_connections, 20);
    assert_int_equal(c.grpc.idle_timeout_ms, 3600000);
    assert_int_equal(c.log.level, SL_LOG_DEBUG);
    assert_int_equal(c.log.rate_limit, 0);
    assert_string_equal(c.tracing.endpoint, "http://otel:4318/v1/traces");
    assert_string_equal(c.tracing.service_name, "fraud");
    assert_true(c.tracing.sample_ratio == 0.25);
    assert_int_equal(c.tracing.queue_size, 100);
    assert_int_equal(c.tracing.batch_size, 100);
    assert_int_equal(c.tracing.flush_interval_ms, 1500);
    assert_int_equal(c.tracing.export_timeout_ms, 120000);
    assert_int_equal(c.gateway.http_port, 1);
    assert_int_equal(c.inference.http_port, 2);
    assert_int_equal(c.inference.grpc_port, 3);
    assert_int_equal(c.features.http_port, 4);
    assert_int_equal(c.features.grpc_port, 5);
    assert_int_equal(c.registry.http_port, 6);
    assert_int_equal(c.registry.grpc_port, 7);
    assert_int_equal(c.worker.http_port, 0);
    assert_true(c.debug.echo);
    assert_null(c.path);
    sl_config_free(&c);
}

/* One option set from text: loads "section:\n  key: text\n" and returns the error or "". */
static int set_one(const char *name, const char *text, sl_config_t *c, sl_buf_t *err) {
    const char *dot = strchr(name, '.');
    sl_buf_t y = SL_BUF_INIT;
    sl_buf_printf(&y, "%.*s:\n  %s: %s\n", (int)(dot - name), name, dot + 1, text);
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    int rc = sl_config_load_buffer("t.yaml", y.data, y.len, c, &errs);
    sl_buf_reset(err);
    if (errs.n) sl_buf_puts(err, errs.msgs[0]);
    sl_config_errors_free(&errs);
    sl_buf_free(&y);
    return rc;
}

typedef struct {
    const char *option;
    const char *text;
    uint64_t want;     /* for integers: the stored value */
    const char *error; /* NULL: must load */
} value_case_t;

static uint64_t read_uint(const sl_config_t *c, const char *name) {
    const sl_config_option_t *o = sl_config_option_find(name);
    const char *p = (const char *)c + o->offset;
    if (o->size == 2) return *(const uint16_t *)p;
    if (o->size == 8) return *(const uint64_t *)p;
    return *(const uint32_t *)p;
}

static void test_integer_types_and_bounds(void **state) {
    static const value_case_t cases[] = {
        /* durations */
        {"server.drain_timeout", "250ms", 250, NULL},
        {"server.drain_timeout", "15s", 15000, NULL},
        {"server.drain_timeout", "2m", 120000, NULL},
        {"server.drain_timeout", "1h", 3600000, NULL},
        {"server.drain_timeout", "1.5s", 1500, NULL},
        {"server.drain_timeout", "700", 700, NULL},
        {"server.drain_timeout", "0", 0, NULL},
        {"server.drain_timeout", "1.5ms", 0,
         "t.yaml:2: server.drain_timeout: expected a "
         "duration"},
        {"server.drain_timeout", "5d", 0,
         "expected a duration (250ms, 15s, 2m, 1h; a plain "
         "integer is milliseconds), got '5d'"},
        {"server.drain_timeout", "1.5", 0, "expected a duration"},
        {"server.drain_timeout", "s", 0, "expected a duration"},
        {"server.drain_timeout", "2h", 0,
         "t.yaml:2: server.drain_timeout: '2h' is out of "
         "bounds (0..1h)"},
        {"server.drain_timeout", "-1s", 0, "'-1s' is out of bounds (0..1h)"},
        {"server.drain_timeout", "99999999999999999999h", 0, "out of bounds"},
        {"http.header_timeout", "0", 0, "'0' is out of bounds (1ms..1h)"},
        /* sizes */
        {"http.max_body_bytes", "16MiB", 16u << 20, NULL},
        {"http.max_body_bytes", "64KiB", 64u << 10, NULL},
        {"http.max_body_bytes", "1024", 1024, NULL},
        {"http.max_body_bytes", "1GB", 1000000000, NULL},
        {"http.max_body_bytes", "2Mi", 2u << 20, NULL},
        {"http.max_body_bytes", "1.5KiB", 1536, NULL},
        {"http.max_body_bytes", "10 MB", 10000000, NULL},
        {"http.max_body_bytes", "40GiB", 40ull << 30, NULL},
        {"http.max_body_bytes", "10XB", 0, "expected a size (1024, 64KiB, 16MiB, 1GiB, 1GB)"},
        {"http.max_body_bytes", "1.5", 0, "expected a size"},
        {"http.max_body_bytes", "100GiB", 0, "'100GiB' is out of bounds (0..64GiB)"},
        {"grpc.max_message_bytes", "2GiB", 0, "'2GiB' is out of bounds (1..1GiB)"},
        /* unsigned integers */
        {"server.io_threads", "16", 16, NULL},
        {"server.io_threads", "+3", 3, NULL},
        {"server.io_threads", "abc", 0,
         "server.io_threads: expected an unsigned integer, got "
         "'abc'"},
        {"server.io_threads", "1.5", 0, "expected an unsigned integer"},
        {"server.io_threads", "0x10", 0, "expected an unsigned integer"},
        {"server.io_threads", "-1", 0, "server.io_threads: '-1' is out of bounds (0..1024)"},
        {"server.io_threads", "5000", 0, "'5000' is out of bounds (0..1024)"},
        {"server.io_threads", "18446744073709551616", 0, "out of bounds (0..1024)"},
        {"server.worker_threads", "0", 0, "'0' is out of bounds (1..1024)"},
        {"log.rate_limit", "1000", 1000, NULL},
        /* ports */
        {"inference.grpc_port", "0", 0, NULL},
        {"inference.grpc_port", "65535", 65535, NULL},
        {"inference.grpc_port", "65536", 0, "'65536' is out of bounds (0..65535)"},
        {"inference.grpc_port", "http", 0, "expected a port number (0-65535), got 'http'"},
        {"inference.grpc_port", "\"8001\"", 8001, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const value_case_t *k = &cases[i];
        sl_config_t c;
        sl_buf_t err = SL_BUF_INIT;
        int rc = set_one(k->option, k->text, &c, &err);
        if (k->error) {
            if (rc == 0 || !strstr(err.data ? err.data : "", k->error)) {
                print_error("%s: %s: want error '%s', got rc %d '%s'\n", k->option, k->text,
                            k->error, rc, err.data ? err.data : "");
                fail();
            }
        } else {
            if (rc != 0) {
                print_error("%s: %s: %s\n", k->option, k->text, err.data);
                fail();
            }
            assert_int_equal(read_uint(&c, k->option), k->want);
        }
        sl_config_free(&c);
        sl_buf_free(&err);
    }
}

static void test_other_types(void **state) {
    sl_config_t c;
    sl_buf_t err = SL_BUF_INIT;
    /* double */
    assert_int_equal(set_one("tracing.sample_ratio", "0.5", &c, &err), 0);
    assert_true(c.tracing.sample_ratio == 0.5);
    sl_config_free(&c);
    assert_int_equal(set_one("tracing.sample_ratio", "1e-3", &c, &err), 0);
    assert_true(c.tracing.sample_ratio == 0.001);
    sl_config_free(&c);
    assert_int_equal(set_one("tracing.sample_ratio", "1", &c, &err), 0);
    assert_true(c.tracing.sample_ratio == 1.0);
    sl_config_free(&c);
    assert_int_equal(set_one("tracing.sample_ratio", "1.5", &c, &err), SL_EPARSE);
    assert_non_null(strstr(err.data, "tracing.sample_ratio: '1.5' is out of bounds (0..1)"));
    assert_int_equal(set_one("tracing.sample_ratio", "-0.1", &c, &err), SL_EPARSE);
    assert_non_null(strstr(err.data, "out of bounds (0..1)"));
    const char *not_numbers[] = {"nan", "inf", "0x1p-3", "half", ".", "1e", "--1"};
    for (size_t i = 0; i < sizeof not_numbers / sizeof *not_numbers; i++) {
        assert_int_equal(set_one("tracing.sample_ratio", not_numbers[i], &c, &err), SL_EPARSE);
        assert_non_null(strstr(err.data, "expected a number"));
    }
    /* bool */
    assert_int_equal(set_one("debug.echo", "true", &c, &err), 0);
    assert_true(c.debug.echo);
    sl_config_free(&c);
    assert_int_equal(set_one("debug.echo", "False", &c, &err), 0);
    assert_false(c.debug.echo);
    sl_config_free(&c);
    assert_int_equal(set_one("debug.echo", "yes", &c, &err), SL_EPARSE);
    assert_non_null(strstr(err.data, "debug.echo: expected true or false, got 'yes'"));
    /* enum */
    const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(set_one("log.level", levels[i], &c, &err), 0);
        assert_int_equal(c.log.level, i);
        sl_config_free(&c);
    }
    assert_int_equal(set_one("log.level", "verbose", &c, &err), SL_EPARSE);
    assert_non_null(
        strstr(err.data, "log.level: expected one of debug, info, warn, error, got 'verbose'"));
    /* strings */
    assert_int_equal(set_one("tracing.endpoint", "", &c, &err), 0);
    assert_string_equal(c.tracing.endpoint, "");
    sl_config_free(&c);
    assert_int_equal(set_one("tracing.endpoint", "'null'", &c, &err), 0);
    assert_string_equal(c.tracing.endpoint, "null");
    sl_config_free(&c);
    assert_int_equal(set_one("server.bind_host", "''", &c, &err), SL_EPARSE);
    assert_non_null(strstr(err.data, "server.bind_host: the value is 0 bytes long, allowed are "
                                     "1..255"));
    assert_int_equal(set_one("server.bind_host", "\"a\\0b\"", &c, &err), SL_EPARSE);
    assert_non_null(strstr(err.data, "NUL byte"));
    /* A null value for a non-string option. */
    assert_int_equal(set_one("server.io_threads", "", &c, &err), SL_EPARSE);
    assert_non_null(strstr(err.data, "t.yaml:2: server.io_threads: missing value"));
    sl_buf_free(&err);
}

static void test_error_kinds_with_lines(void **state) {
    expect_one_error("server:\n  io_threads: \"abc\n",
                     "t.yaml:3: YAML syntax error: found unexpected end of stream (while scanning "
                     "a quoted scalar on line 2)");
    expect_one_error("server:\n  io_threads: 1\n bad: 2\n",
                     "t.yaml:3: YAML syntax error: did not find expected key");
    expect_one_error("log:\n  level: info\n  rate: 5\n",
                     "t.yaml:3: unknown option 'log.rate' (did you mean 'log.rate_limit'?)");
    expect_one_error("server:\n  io_thread: 2\n",
                     "t.yaml:2: unknown option 'server.io_thread' (did you mean "
                     "'server.io_threads'?)");
    expect_one_error("\n\nsever:\n  io_threads: 2\n",
                     "t.yaml:3: unknown section 'sever' (did you mean 'server'?)");
    expect_one_error("server:\n  grpc_port: 1\n", "t.yaml:2: unknown option 'server.grpc_port'");
    expect_one_error("gateway:\n  grpc_port: 1\n", "unknown option 'gateway.grpc_port'");
    /* No suggestion when several options would fit. */
    expect_exact_error("debug:\n  http_port: 1\n", "t.yaml:2: unknown option 'debug.http_port'");
    expect_one_error("tracing:\n  level: debug\n",
                     "unknown option 'tracing.level' (did you mean 'log.level'?)");
    expect_one_error("server:\n  drain_timout: 1s\n", "(did you mean 'server.drain_timeout'?)");
    expect_one_error("server.io_threads: 2\n",
                     "t.yaml:1: unknown section 'server.io_threads' (write it as nested maps: "
                     "'server: {io_threads: ...}')");
    expect_exact_error("zzz: 1\n", "t.yaml:1: unknown section 'zzz'");
    expect_one_error("server:\n  io_threads:\n    a: 1\n",
                     "t.yaml:2: server.io_threads: expected a scalar (integer), got a mapping");
    expect_one_error("log:\n  level: [debug]\n", "t.yaml:2: log.level: expected a scalar (enum), "
                                                 "got a sequence");
    expect_one_error("log:\n  level: info\n  level: debug\n",
                     "t.yaml:3: duplicate key 'log.level' (first set on line 2)");
    expect_one_error("server: 5\n",
                     "t.yaml:1: 'server' is a section: expected a mapping of its options, got a "
                     "scalar");
    expect_one_error("server: [1]\n", "'server' is a section: expected a mapping of its options, "
                                      "got a sequence");
    expect_one_error("- a\n- b\n",
                     "t.yaml:1: the top level must be a mapping of sections, got a sequence");
    expect_one_error("hello\n", "t.yaml:1: the top level must be a mapping of sections, got a "
                                "scalar");
    expect_one_error("log: {level: info}\n---\nlog: {level: debug}\n",
                     "t.yaml:2: only one YAML document is allowed");
    expect_one_error("? [a]\n: 1\n", "t.yaml:1: keys must be scalars, got a sequence");
    expect_one_error("tracing: {queue_size: 10, batch_size: 20}\n",
                     "t.yaml:1: tracing.batch_size (20) must not exceed tracing.queue_size (10)");
    expect_one_error("tracing: {queue_size: 10}\n",
                     "tracing.batch_size (256) must not exceed tracing.queue_size (10)");
}

static void test_all_errors_collected(void **state) {
    const char *yaml = "server:\n"              /* 1 */
                       "  io_threads: many\n"   /* 2: wrong type */
                       "  worker_threads: 0\n"  /* 3: out of bounds */
                       "  bogus: 1\n"           /* 4: unknown */
                       "log:\n"                 /* 5 */
                       "  level: loud\n"        /* 6: bad enum */
                       "  level: info\n"        /* 7: duplicate */
                       "debug: {echo: maybe}\n" /* 8: bad bool */
                       "inference:\n"           /* 9 */
                       "  grpc_port: 70000\n";  /* 10: out of bounds */
    sl_config_t cfg;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    assert_int_equal(load(yaml, &cfg, &errs), SL_EPARSE);
    const char *want[] = {"t.yaml:2: server.io_threads: expected an unsigned integer",
                          "t.yaml:3: server.worker_threads: '0' is out of bounds",
                          "t.yaml:4: unknown option 'server.bogus'",
                          "t.yaml:6: log.level: expected one of",
                          "t.yaml:7: duplicate key 'log.level' (first set on line 6)",
                          "t.yaml:8: debug.echo: expected true or false",
                          "t.yaml:10: inference.grpc_port: '70000' is out of bounds"};
    assert_int_equal(errs.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < errs.n; i++) {
        if (strncmp(errs.msgs[i], want[i], strlen(want[i])) != 0) {
            print_error("error %zu: '%s', want prefix '%s'\n", i, errs.msgs[i], want[i]);
            fail();
        }
    }
    assert_false(errs.truncated);
    sl_config_errors_free(&errs);
    assert_int_equal(errs.n, 0);
    /* Errors followed by a syntax error: both kinds are reported. */
    assert_int_equal(load("server:\n  io_threads: x\n  y: [\n", &cfg, &errs), SL_EPARSE);
    assert_int_equal(errs.n, 3);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:2: server.io_threads: expected"));
    assert_non_null(strstr(errs.msgs[1], "t.yaml:3: unknown option 'server.y'"));
    assert_non_null(strstr(errs.msgs[2], "t.yaml:4: YAML syntax error"));
    sl_config_errors_free(&errs);
    /* A NULL error list is allowed. */
    assert_int_equal(load(yaml, &cfg, NULL), SL_EPARSE);
}

static void test_error_limit(void **state) {
    sl_buf_t y = SL_BUF_INIT;
    sl_buf_puts(&y, "server:\n");
    for (int i = 0; i < 5000; i++)
        sl_buf_printf(&y, "  unknown_%d: 1\n", i);
    sl_config_t cfg;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    assert_int_equal(sl_config_load_buffer("t.yaml", y.data, y.len, &cfg, &errs), SL_EPARSE);
    assert_int_equal(errs.n, SL_CONFIG_MAX_ERRORS);
    assert_true(errs.truncated);
    assert_non_null(strstr(errs.msgs[999], "t.yaml:1001: unknown option 'server.unknown_999'"));
    sl_config_errors_free(&errs);
    sl_buf_free(&y);
}

static void test_references(void **state) {
    sl_config_t c;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    char secret[256], big[256], yaml[2048];
    snprintf(secret, sizeof secret, "%s/token", g_tmpdir);
    write_file(secret, "s3cr3t-value\n", 13);
    snprintf(big, sizeof big, "%s/big", g_tmpdir);
    char *blob = calloc(1, (64u << 10) + 2);
    memset(blob, 'x', (64u << 10) + 1);
    write_file(big, blob, (64u << 10) + 1);
    free(blob);

    setenv("SL_TEST_PORT", "8123", 1);
    setenv("SL_TEST_EMPTY", "", 1);
    setenv("SL_TEST_HOST", "10.0.0.1", 1);
    unsetenv("SL_TEST_UNSET");
    snprintf(yaml, sizeof yaml,
             "server: {bind_host: \"${SL_TEST_HOST}\"}\n"
             "inference:\n"
             "  grpc_port: ${SL_TEST_PORT}\n"
             "  http_port: ${SL_TEST_UNSET:-8124}\n"
             "features: {http_port: \"${SL_TEST_EMPTY:-8125}\"}\n"
             "tracing:\n"
             "  endpoint: \"http://user:${file:%s}@otel:4318/$${literal}\"\n"
             "  service_name: svc-${SL_TEST_EMPTY}x\n",
             secret);
    int rc = load(yaml, &c, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msgs[i]);
    assert_int_equal(rc, 0);
    assert_string_equal(c.server.bind_host, "10.0.0.1");
    assert_int_equal(c.inference.grpc_port, 8123);
    assert_int_equal(c.inference.http_port, 8124);
    assert_int_equal(c.features.http_port, 8125);
    assert_string_equal(c.tracing.endpoint, "http://user:s3cr3t-value@otel:4318/${literal}");
    assert_string_equal(c.tracing.service_name, "svc-x");
    sl_config_free(&c);

    /* Every reference problem is an error naming the reference. */
    setenv("SL_TEST_BAD", "not-a-port-s3cr3t", 1);
    snprintf(yaml, sizeof yaml,
             "inference:\n"
             "  grpc_port: ${SL_TEST_UNSET}\n"
             "  http_port: ${SL_TEST_BAD}\n"
             "tracing:\n"
             "  endpoint: ${file:%s/missing}\n"
             "  service_name: ${file:relative/path}\n"
             "features:\n"
             "  http_port: ${NOT A NAME}\n"
             "  grpc_port: ${SL_TEST_PORT\n"
             "registry:\n"
             "  http_port: ${file:%s}\n"
             "  grpc_port: ${file:/dev/zero}\n",
             g_tmpdir, big);
    assert_int_equal(load(yaml, &c, &errs), SL_EPARSE);
    const char *want[] = {
        "t.yaml:2: inference.grpc_port: environment variable 'SL_TEST_UNSET' is not set",
        ("t.yaml:3: inference.http_port: expected a port number (0-65535), got the value of "
         "'${SL_TEST_BAD}'"),
        "t.yaml:5: tracing.endpoint: cannot read secret file",
        "t.yaml:6: tracing.service_name: ${file:...} needs an absolute path",
        "t.yaml:8: features.http_port: invalid reference '${NOT A NAME}'",
        "t.yaml:9: features.grpc_port: unterminated '${' reference",
        "t.yaml:11: registry.http_port: cannot read secret file",
        "t.yaml:12: registry.grpc_port: cannot read secret file '/dev/zero': not a regular file",
    };
    assert_int_equal(errs.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < errs.n; i++) {
        if (strncmp(errs.msgs[i], want[i], strlen(want[i])) != 0) {
            print_error("error %zu: '%s', want prefix '%s'\n", i, errs.msgs[i], want[i]);
            fail();
        }
        /* Secrets never appear in messages. */
        assert_null(strstr(errs.msgs[i], "s3cr3t"));
    }
    assert_non_null(strstr(errs.msgs[2], "No such file"));
    assert_non_null(strstr(errs.msgs[6], "larger than the limit"));
    sl_config_errors_free(&errs);
}

static void test_hostile_input(void **state) {
    sl_config_t cfg;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    sl_buf_t y = SL_BUF_INIT;

    /* Deep nesting: flow and block style. */
    for (int i = 0; i < 100000; i++)
        sl_buf_putc(&y, '[');
    assert_int_equal(sl_config_load_buffer("t.yaml", y.data, y.len, &cfg, &errs), SL_EPARSE);
    assert_non_null(strstr(errs.msgs[errs.n - 1], "nesting deeper than 16 levels"));
    sl_config_errors_free(&errs);
    sl_buf_reset(&y);
    for (int i = 0; i < 40; i++)
        sl_buf_printf(&y, "%*sk%d:\n", 2 * i, "", i);
    assert_int_equal(sl_config_load_buffer("t.yaml", y.data, y.len, &cfg, &errs), SL_EPARSE);
    assert_non_null(strstr(errs.msgs[errs.n - 1], "t.yaml:17: nesting deeper than 16 levels"));
    sl_config_errors_free(&errs);

    /* A scalar over 64 KiB. */
    sl_buf_reset(&y);
    sl_buf_puts(&y, "tracing:\n  endpoint: ");
    for (int i = 0; i < 70000; i++)
        sl_buf_putc(&y, 'a');
    sl_buf_puts(&y, "\n");
    assert_int_equal(sl_config_load_buffer("t.yaml", y.data, y.len, &cfg, &errs), SL_EPARSE);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:2: scalar of 70000 bytes is longer than the "
                                         "limit of 65536"));
    sl_config_errors_free(&errs);

    /* Anchors and aliases are refused, the billion laughs included. */
    assert_int_equal(load("log: {level: &lv debug}\ndebug: {echo: *lv}\n", &cfg, &errs), SL_EPARSE);
    assert_int_equal(errs.n, 2);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:1: YAML anchors (&lv) are not allowed"));
    assert_non_null(strstr(errs.msgs[1], "t.yaml:2: YAML aliases (*lv) are not allowed"));
    sl_config_errors_free(&errs);
    sl_buf_reset(&y);
    sl_buf_puts(&y, "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (char c = 'b'; c <= 'i'; c++) {
        sl_buf_printf(&y, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1, c - 1, c - 1,
                      c - 1, c - 1, c - 1, c - 1, c - 1);
    }
    assert_int_equal(sl_config_load_buffer("t.yaml", y.data, y.len, &cfg, &errs), SL_EPARSE);
    assert_non_null(strstr(errs.msgs[0], "anchors (&a) are not allowed"));
    assert_true(errs.n < 200);
    sl_config_errors_free(&errs);

    /* A 2 MiB buffer is refused before parsing. */
    sl_buf_reset(&y);
    for (int i = 0; i < (2 << 20) / 16; i++)
        sl_buf_puts(&y, "# padding line.\n");
    assert_int_equal(sl_config_load_buffer("t.yaml", y.data, y.len, &cfg, &errs), SL_ELIMIT);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msgs[0], "t.yaml: the file is 2097152 bytes, larger than the limit "
                                      "of 1048576");
    sl_config_errors_free(&errs);

    /* Binary garbage: errors, never a crash (deterministic pseudo-random bytes). */
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        sl_buf_reset(&y);
        size_t n = 1 + (size_t)round * 37;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            sl_buf_putc(&y, (char)(x >> 16));
        }
        int rc = sl_config_load_buffer("t.yaml", y.data, y.len, &cfg, &errs);
        if (rc == 0)
            sl_config_free(&cfg);
        else
            assert_true(errs.n > 0);
        sl_config_errors_free(&errs);
    }
    /* A NUL byte and invalid UTF-8. */
    assert_int_equal(sl_config_load_buffer("t.yaml", "log:\0\n", 6, &cfg, &errs), SL_EPARSE);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:1: YAML syntax error"));
    sl_config_errors_free(&errs);
    assert_int_equal(load("log:\n  level: \xff\xfe\n", &cfg, &errs), SL_EPARSE);
    assert_non_null(strstr(errs.msgs[0], "t.yaml:2: YAML syntax error: invalid"));
    sl_config_errors_free(&errs);
    /* Control characters in a key are escaped in the message. */
    assert_int_equal(load("\"a\\tb\\\\\": 1\n", &cfg, &errs), SL_EPARSE);
    assert_string_equal(errs.msgs[0], "t.yaml:1: unknown section 'a\\x09b\\x5c'");
    sl_config_errors_free(&errs);
    sl_buf_free(&y);
}

static void test_load_file(void **state) {
    char path[256];
    sl_config_t cfg;
    sl_config_errors_t errs = SL_CONFIG_ERRORS_INIT;
    snprintf(path, sizeof path, "%s/sluice.yaml", g_tmpdir);
    write_file(path, "log:\n  level: warn\n", 19);
    assert_int_equal(sl_config_load_file(path, &cfg, &errs), 0);
    assert_string_equal(cfg.path, path);
    assert_int_equal(cfg.log.level, SL_LOG_WARN);
    sl_config_free(&cfg);
    assert_null(cfg.path);

    write_file(path, "log:\n  level: x\n", 16);
    assert_int_equal(sl_config_load_file(path, &cfg, &errs), SL_EPARSE);
    char want[300];
    snprintf(want, sizeof want, "%s:2: log.level: expected one of", path);
    assert_int_equal(strncmp(errs.msgs[0], want, strlen(want)), 0);
    assert_null(cfg.path);
    sl_config_errors_free(&errs);

    snprintf(path, sizeof path, "%s/nonexistent.yaml", g_tmpdir);
    assert_int_equal(sl_config_load_file(path, &cfg, &errs), SL_EIO);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(errs.msgs[0], want);
    sl_config_errors_free(&errs);

    assert_int_equal(sl_config_load_file(g_tmpdir, &cfg, &errs), SL_EIO);
    assert_non_null(strstr(errs.msgs[0], "not a regular file"));
    sl_config_errors_free(&errs);

    snprintf(path, sizeof path, "%s/huge.yaml", g_tmpdir);
    char *blob = malloc(2u << 20);
    memset(blob, '#', 2u << 20);
    write_file(path, blob, 2u << 20);
    free(blob);
    assert_int_equal(sl_config_load_file(path, &cfg, &errs), SL_ELIMIT);
    assert_non_null(strstr(errs.msgs[0], "larger than the limit of 1048576 bytes"));
    sl_config_errors_free(&errs);
}

static void test_diff_and_copy(void **state) {
    sl_config_t a, b;
    sl_config_defaults(&a);
    assert_int_equal(load("server: {io_threads: 3, bind_host: 127.0.0.1}\nlog: {level: debug}\n"
                          "tracing: {sample_ratio: 0.5}\n",
                          &b, NULL),
                     0);
    sl_buf_t names = SL_BUF_INIT;
    assert_int_equal(sl_config_diff_restart(&a, &b, &names), 2);
    assert_string_equal(names.data, "server.bind_host, server.io_threads");
    assert_false(sl_config_option_equal(sl_config_option_find("log.level"), &a, &b));
    assert_true(sl_config_option_equal(sl_config_option_find("log.rate_limit"), &a, &b));
    sl_config_option_copy(sl_config_option_find("server.bind_host"), &b, &a);
    sl_config_option_copy(sl_config_option_find("server.io_threads"), &b, &a);
    assert_int_equal(sl_config_diff_restart(&a, &b, NULL), 0);
    assert_string_equal(b.server.bind_host, "0.0.0.0");
    assert_int_equal(b.log.level, SL_LOG_DEBUG);
    /* Reloadable options are exactly the three documented ones. */
    size_t n, reloadable = 0;
    const sl_config_option_t *opts = sl_config_options(&n);
    for (size_t i = 0; i < n; i++)
        reloadable += opts[i].reloadable;
    assert_int_equal(reloadable, 3);
    assert_true(sl_config_option_find("log.level")->reloadable);
    assert_true(sl_config_option_find("log.rate_limit")->reloadable);
    assert_true(sl_config_option_find("tracing.sample_ratio")->reloadable);
    assert_null(sl_config_option_find("server"));
    sl_buf_free(&names);
    sl_config_free(&a);
    sl_config_free(&b);
}

static void test_docs_list_every_option(void **state) {
    sl_buf_t md = SL_BUF_INIT;
    sl_config_docs_markdown(&md);
    assert_non_null(strstr(md.data, "# Sluice configuration\n"));
    assert_non_null(strstr(md.data, "do not edit"));
    assert_non_null(strstr(md.data, "${NAME:-default}"));
    assert_non_null(strstr(md.data, "${file:/abs/path}"));
    size_t n;
    const sl_config_option_t *opts = sl_config_options(&n);
    assert_true(n >= 36);
    for (size_t i = 0; i < n; i++) {
        char row[128];
        snprintf(row, sizeof row, "| `%s` | %s | `", opts[i].name,
                 sl_config_type_name(opts[i].type));
        if (!strstr(md.data, row)) {
            print_error("docs lack a row for %s\n", opts[i].name);
            fail();
        }
        /* Each option sits under its section's heading. */
        char heading[64];
        snprintf(heading, sizeof heading, "\n## %.*s\n",
                 (int)(strchr(opts[i].name, '.') - opts[i].name), opts[i].name);
        const char *h = strstr(md.data, heading);
        assert_non_null(h);
        assert_true(strstr(md.data, row) > h);
    }
    assert_non_null(strstr(md.data, "| `server.drain_timeout` | duration | `15s` | 0..1h | no |"));
    assert_non_null(strstr(md.data, "| `http.max_body_bytes` | size | `16MiB` | 0..64GiB | no |"));
    assert_non_null(strstr(md.data, "| `log.level` | enum | `info` | `debug`, `info`, `warn`, "
                                    "`error` | yes |"));
    assert_non_null(strstr(md.data, "| `tracing.endpoint` | string | `\"\"` |"));
    assert_non_null(strstr(md.data, "| `tracing.sample_ratio` | number | `0.01` | 0..1 | yes |"));
    sl_buf_free(&md);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_files_give_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_integer_types_and_bounds),
        cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_error_kinds_with_lines),
        cmocka_unit_test(test_all_errors_collected),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_diff_and_copy),
        cmocka_unit_test(test_docs_list_every_option),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
