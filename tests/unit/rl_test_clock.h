/* A scripted clock and the base limiter config shared by the rate limiter's unit tests (local
 * and Redis run the same scenarios against it). Include after <cmocka.h> and
 * "gateway/ratelimit.h". */
#ifndef SL_TEST_RL_CLOCK_H
#define SL_TEST_RL_CLOCK_H

#include <stdint.h>

#define NS   1000000000ull
#define HOUR 3600ull
#define DAY0 1704067200ull /* 2024-01-01T00:00:00Z */

typedef struct test_clock {
    uint64_t wall_ns;
    uint64_t mono_ns;
} test_clock_t;

static inline void clock_cb(void *ctx, uint64_t *wall_ns, uint64_t *mono_ns) {
    test_clock_t *c = ctx;
    *wall_ns = __atomic_load_n(&c->wall_ns, __ATOMIC_RELAXED);
    *mono_ns = __atomic_load_n(&c->mono_ns, __ATOMIC_RELAXED);
}

static inline void advance_ns(test_clock_t *c, uint64_t ns) {
    c->wall_ns += ns;
    c->mono_ns += ns;
}

static inline void advance_ms(test_clock_t *c, uint64_t ms) {
    advance_ns(c, ms * 1000000ull);
}

/* Sets wall time to `s` seconds after DAY0 (mono moves by the same amount, never back). */
static inline void set_wall_s(test_clock_t *c, uint64_t s) {
    uint64_t to = (DAY0 + s) * NS;
    SL_ASSERT(to >= c->wall_ns);
    advance_ns(c, to - c->wall_ns);
}

/* Classes as given, tiers standard 1000 / enterprise 10000 / free unlimited, at noon of DAY0. */
static inline sl_rl_config_t base_cfg(test_clock_t *clk, const sl_rl_class_t *classes, size_t n) {
    static const sl_rl_tier_t tiers[] = {{"standard", 1000}, {"enterprise", 10000}, {"free", 0}};
    clk->wall_ns = (DAY0 + 12 * HOUR) * NS;
    clk->mono_ns = 1000 * NS;
    return (sl_rl_config_t){.classes = classes,
                            .n_classes = n,
                            .tiers = tiers,
                            .n_tiers = SL_ARRAY_LEN(tiers),
                            .clock = clock_cb,
                            .clock_ctx = clk};
}

#endif
