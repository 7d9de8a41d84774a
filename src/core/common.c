/* Status strings, assertion failure, aborting allocators, string helpers, clocks and randomness
 * for the runtime. */
#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

const char *sl_strerror(int status) {
    switch (status) {
    case SL_OK:
        return "success";
#define SL__ERR_CASE(name, code, msg)                                                              \
    case code:                                                                                     \
        return msg;
        SL_ERRNO_MAP(SL__ERR_CASE)
#undef SL__ERR_CASE
    default:
        return "unknown error";
    }
}

void sl__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "sluice: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

static _Noreturn void oom(size_t n) {
    fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sl_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *sl_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *sl_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *sl_strdup(const char *s) {
    return sl_strndup(s, strlen(s));
}

char *sl_strndup(const char *s, size_t n) {
    char *p = sl_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool sl_str_eq(sl_str_t a, const char *lit) {
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.ptr, lit, n) == 0;
}

bool sl_str_ieq(sl_str_t a, const char *lit) {
    size_t n = strlen(lit);
    return a.len == n && strncasecmp(a.ptr, lit, n) == 0;
}

size_t sl_str_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[65], row[65];
    if (la > 64 || lb > 64) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = row[j - 1] + 1;
            row[j] = SL_MIN(sub, SL_MIN(del, ins));
        }
        memcpy(prev, row, (lb + 1) * sizeof *row);
    }
    return prev[lb];
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sl_now_ns(void) {
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t sl_now_ms(void) {
    return clock_ns(CLOCK_MONOTONIC) / 1000000u;
}

uint64_t sl_wall_time_ns(void) {
    return clock_ns(CLOCK_REALTIME);
}

void sl_random_bytes(void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            perror("sluice: getrandom");
            abort();
        }
        p += got;
        n -= (size_t)got;
    }
}

uint64_t sl_rand64(void) {
    static _Thread_local uint64_t state;
    if (state == 0) {
        while (state == 0)
            sl_random_bytes(&state, sizeof state);
    }
    /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}
