/* The engine's bump arena: a chain of large blocks with 64-byte aligned allocation. A model
 * keeps its strings and arrays in one; a run context keeps every tensor of a run in another,
 * reset at the start of each run and kept between runs, so that warm runs never call malloc. */
#include "engine/model_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sl_arena_block {
    sl_arena_block_t *next;
    size_t size; /* usable bytes at data */
    size_t used;
    unsigned char *data; /* 64-byte aligned, inside the same allocation */
};

static size_t align_up(size_t n) {
    return (n + (SL_ARENA_ALIGN - 1)) & ~(size_t)(SL_ARENA_ALIGN - 1);
}

void sl_arena_init(sl_arena_t *a, size_t block_size) {
    memset(a, 0, sizeof *a);
    a->block_size = block_size ? align_up(block_size) : 64 * 1024;
}

static sl_arena_block_t *block_new(size_t size) {
    /* One allocation: the header, then padding up to the alignment, then size bytes. */
    if (size > SIZE_MAX - sizeof(sl_arena_block_t) - SL_ARENA_ALIGN) return NULL;
    unsigned char *raw = malloc(sizeof(sl_arena_block_t) + SL_ARENA_ALIGN + size);
    if (!raw) return NULL;
    sl_arena_block_t *b = (sl_arena_block_t *)raw;
    uintptr_t p = (uintptr_t)(raw + sizeof *b);
    p = (p + SL_ARENA_ALIGN - 1) & ~(uintptr_t)(SL_ARENA_ALIGN - 1);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    b->data = (unsigned char *)p;
    return b;
}

void *sl_arena_alloc(sl_arena_t *a, size_t n) {
    if (n > SIZE_MAX / 2) return NULL;
    size_t need = align_up(n ? n : 1);
    /* Look for room in the current block, then in the blocks after it (kept from earlier
     * runs). Earlier blocks are not revisited: allocation order stays deterministic, which is
     * what makes a repeated run fit the same blocks. */
    sl_arena_block_t *last = NULL;
    for (sl_arena_block_t *b = a->cur ? a->cur : a->first; b; b = b->next) {
        if (b->size - b->used >= need) {
            void *p = b->data + b->used;
            b->used += need;
            a->cur = b;
            return p;
        }
        last = b;
    }
    if (!last) {
        for (last = a->first; last && last->next; last = last->next) {
        }
    }
    size_t size = need > a->block_size ? need : a->block_size;
    sl_arena_block_t *b = block_new(size);
    if (!b) return NULL;
    if (last)
        last->next = b;
    else
        a->first = b;
    a->n_blocks++;
    a->bytes += size;
    b->used = need;
    a->cur = b;
    return b->data;
}

char *sl_arena_strdup(sl_arena_t *a, const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *p = sl_arena_alloc(a, n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

void sl_arena_reset(sl_arena_t *a) {
    for (sl_arena_block_t *b = a->first; b; b = b->next)
        b->used = 0;
    a->cur = a->first;
}

sl_arena_mark_t sl_arena_mark(const sl_arena_t *a) {
    sl_arena_mark_t m = {a->cur, a->cur ? a->cur->used : 0};
    return m;
}

void sl_arena_release(sl_arena_t *a, sl_arena_mark_t m) {
    /* Blocks after the marked one were only touched since the mark. */
    sl_arena_block_t *b = m.block ? m.block : a->first;
    if (!b) return;
    b->used = m.block ? m.used : 0;
    for (sl_arena_block_t *n = b->next; n; n = n->next)
        n->used = 0;
    a->cur = b;
}

void sl_arena_free(sl_arena_t *a) {
    sl_arena_block_t *b = a->first;
    while (b) {
        sl_arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    size_t bs = a->block_size;
    memset(a, 0, sizeof *a);
    a->block_size = bs;
}
