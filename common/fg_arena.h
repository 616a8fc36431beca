/* fg_arena.h - a bump allocator: many small allocations, one free.
 *
 * Used wherever a group of allocations shares one lifetime: a decoded config (every string
 * and array of an fg_config_t lives in its arena) and, in the data plane, a request (its
 * copied head, rewritten headers and log fields). Allocation is a pointer bump inside the
 * current chunk; a request larger than a chunk gets a chunk of its own. Nothing is freed
 * individually: fg_arena_reset() recycles the first chunk, fg_arena_free() returns all. */
#ifndef FG_ARENA_H
#define FG_ARENA_H

#include <stddef.h>

#define FG_ARENA_DEFAULT_CHUNK 4096

typedef struct fg_arena fg_arena_t;

/** New arena whose chunks hold `chunk_size` bytes (0 = FG_ARENA_DEFAULT_CHUNK).
 *  Returns NULL on allocation failure. The caller owns it; release with fg_arena_free. */
fg_arena_t *fg_arena_new(size_t chunk_size);

/** `n` bytes aligned for any scalar type, valid until reset/free; NULL on ENOMEM. */
void *fg_arena_alloc(fg_arena_t *a, size_t n);

/** Zeroed `count * size` bytes (overflow-checked); NULL on ENOMEM or overflow. */
void *fg_arena_calloc(fg_arena_t *a, size_t count, size_t size);

/** NUL-terminated copy of the first `n` bytes of `s` (which need not be terminated). */
char *fg_arena_strndup(fg_arena_t *a, const char *s, size_t n);

/** NUL-terminated copy of `s`; NULL `s` gives NULL. */
char *fg_arena_strdup(fg_arena_t *a, const char *s);

/** Forget every allocation but keep the first chunk for reuse. */
void fg_arena_reset(fg_arena_t *a);

/** Release the arena and everything allocated from it. NULL is accepted. */
void fg_arena_free(fg_arena_t *a);

/** Bytes handed out since creation or the last reset (for limits and tests). */
size_t fg_arena_used(const fg_arena_t *a);

#endif
