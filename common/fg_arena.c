/* fg_arena.c - the bump allocator (see fg_arena.h).
 *
 * Chunks form a singly linked list whose head is the chunk being bumped. An allocation too
 * big for a fresh chunk gets a dedicated chunk linked in *behind* the head, so the
 * partly-used head keeps serving small allocations. The first chunk ever made is kept by
 * fg_arena_reset, which is what makes per-request arenas allocation-free in steady state. */
#include "fg_arena.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN (alignof(max_align_t))

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    alignas(max_align_t) unsigned char data[];
} arena_chunk_t;

struct fg_arena {
    arena_chunk_t *head;  /* the chunk being bumped */
    arena_chunk_t *first; /* kept across resets */
    size_t chunk_size;
    size_t used;          /* bytes handed out since creation or reset */
};

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
}

static arena_chunk_t *chunk_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(arena_chunk_t))
        return NULL;
    arena_chunk_t *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

fg_arena_t *fg_arena_new(size_t chunk_size)
{
    fg_arena_t *a = malloc(sizeof(*a));
    if (!a)
        return NULL;
    a->chunk_size = align_up(chunk_size ? chunk_size : FG_ARENA_DEFAULT_CHUNK);
    a->first = chunk_new(a->chunk_size);
    if (!a->first) {
        free(a);
        return NULL;
    }
    a->head = a->first;
    a->used = 0;
    return a;
}

void *fg_arena_alloc(fg_arena_t *a, size_t n)
{
    if (!a)
        return NULL;
    if (n == 0)
        n = 1; /* distinct, valid pointers even for empty arrays */
    if (n > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    n = align_up(n);

    arena_chunk_t *c = a->head;
    if (c->size - c->used < n) {
        if (n > a->chunk_size / 2) {
            /* Big: own chunk behind the head, so the head's free space is not wasted. */
            arena_chunk_t *big = chunk_new(n);
            if (!big)
                return NULL;
            big->used = n;
            big->next = c->next;
            c->next = big;
            a->used += n;
            return big->data;
        }
        arena_chunk_t *fresh = chunk_new(a->chunk_size);
        if (!fresh)
            return NULL;
        fresh->next = c;
        a->head = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used += n;
    return p;
}

void *fg_arena_calloc(fg_arena_t *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = fg_arena_alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

char *fg_arena_strndup(fg_arena_t *a, const char *s, size_t n)
{
    if (!s || n == SIZE_MAX)
        return NULL;
    char *p = fg_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *fg_arena_strdup(fg_arena_t *a, const char *s)
{
    if (!s)
        return NULL;
    return fg_arena_strndup(a, s, strlen(s));
}

static void chunks_free_except(arena_chunk_t *c, const arena_chunk_t *keep)
{
    while (c) {
        arena_chunk_t *next = c->next;
        if (c != keep)
            free(c);
        c = next;
    }
}

void fg_arena_reset(fg_arena_t *a)
{
    if (!a)
        return;
    chunks_free_except(a->head, a->first);
    a->first->next = NULL;
    a->first->used = 0;
    a->head = a->first;
    a->used = 0;
}

void fg_arena_free(fg_arena_t *a)
{
    if (!a)
        return;
    chunks_free_except(a->head, NULL);
    free(a);
}

size_t fg_arena_used(const fg_arena_t *a)
{
    return a ? a->used : 0;
}
