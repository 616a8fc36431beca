/* test_arena.c - unit tests for common/fg_arena.c: alignment, string copies, overflow
 * checks, allocations bigger than a chunk, accounting, reset and free. Run under ASan, the
 * pattern checks also prove that no two allocations overlap. */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fg_arena.h"

static void test_alignment_and_distinct(void **state)
{
    (void)state;
    fg_arena_t *a = fg_arena_new(256);
    assert_non_null(a);
    void *prev = NULL;
    for (size_t n = 0; n < 300; n++) {
        void *p = fg_arena_alloc(a, n % 37);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        assert_ptr_not_equal(p, prev); /* even zero-byte allocations are distinct */
        prev = p;
    }
    fg_arena_free(a);
}

static void test_no_overlap(void **state)
{
    (void)state;
    enum { N = 5000 };
    fg_arena_t *a = fg_arena_new(0);
    unsigned char *ptrs[N];
    size_t sizes[N];
    for (size_t i = 0; i < N; i++) {
        sizes[i] = 1 + (i * 7919) % 300;
        if (i % 500 == 0)
            sizes[i] = 3 * FG_ARENA_DEFAULT_CHUNK; /* bigger than a chunk */
        ptrs[i] = fg_arena_alloc(a, sizes[i]);
        assert_non_null(ptrs[i]);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(ptrs[i][k], i & 0xff);
    fg_arena_free(a);
}

static void test_strings(void **state)
{
    (void)state;
    fg_arena_t *a = fg_arena_new(64);
    char *s = fg_arena_strdup(a, "hello");
    assert_string_equal(s, "hello");
    char *t = fg_arena_strndup(a, "abcdef", 3);
    assert_string_equal(t, "abc");
    const char unterminated[4] = {'w', 'x', 'y', 'z'};
    char *u = fg_arena_strndup(a, unterminated, sizeof(unterminated));
    assert_string_equal(u, "wxyz");
    assert_null(fg_arena_strdup(a, NULL));
    assert_null(fg_arena_strndup(a, NULL, 3));
    char *e = fg_arena_strdup(a, "");
    assert_non_null(e);
    assert_string_equal(e, "");
    /* A string longer than a chunk. */
    char big[1000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_string_equal(fg_arena_strdup(a, big), big);
    assert_string_equal(s, "hello"); /* earlier copies survive */
    fg_arena_free(a);
}

static void test_calloc_zeroes(void **state)
{
    (void)state;
    fg_arena_t *a = fg_arena_new(0);
    /* Dirty the chunk, reset, and check calloc really zeroes recycled memory. */
    memset(fg_arena_alloc(a, 512), 0xab, 512);
    fg_arena_reset(a);
    unsigned char *z = fg_arena_calloc(a, 64, 8);
    assert_non_null(z);
    for (size_t i = 0; i < 512; i++)
        assert_int_equal(z[i], 0);
    assert_null(fg_arena_calloc(a, SIZE_MAX / 2, 3)); /* overflow */
    assert_null(fg_arena_alloc(a, SIZE_MAX));
    assert_null(fg_arena_alloc(a, SIZE_MAX - 8));
    assert_non_null(fg_arena_calloc(a, 0, 16));
    fg_arena_free(a);
}

static void test_used_and_reset(void **state)
{
    (void)state;
    fg_arena_t *a = fg_arena_new(128);
    assert_int_equal(fg_arena_used(a), 0);
    fg_arena_alloc(a, 10);
    size_t after_one = fg_arena_used(a);
    assert_true(after_one >= 10);
    fg_arena_alloc(a, 10000);
    assert_true(fg_arena_used(a) >= after_one + 10000);
    fg_arena_reset(a);
    assert_int_equal(fg_arena_used(a), 0);
    /* Still usable after reset, many times over. */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 100; i++)
            memset(fg_arena_alloc(a, 40), round, 40);
        fg_arena_alloc(a, 4096);
        fg_arena_reset(a);
    }
    assert_int_equal(fg_arena_used(a), 0);
    assert_int_equal(fg_arena_used(NULL), 0);
    fg_arena_free(a);
    fg_arena_free(NULL);
    fg_arena_reset(NULL);
    assert_null(fg_arena_alloc(NULL, 1));
}

static void test_big_allocation_keeps_chunk(void **state)
{
    (void)state;
    /* A big allocation must not waste the current chunk: small ones after it continue in
     * the same chunk (adjacent addresses). */
    fg_arena_t *a = fg_arena_new(1024);
    char *p1 = fg_arena_alloc(a, 16);
    char *big = fg_arena_alloc(a, 100000);
    char *p2 = fg_arena_alloc(a, 16);
    assert_non_null(big);
    assert_ptr_equal(p2, p1 + 16);
    memset(big, 1, 100000);
    fg_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_distinct), cmocka_unit_test(test_no_overlap),
        cmocka_unit_test(test_strings),                cmocka_unit_test(test_calloc_zeroes),
        cmocka_unit_test(test_used_and_reset),         cmocka_unit_test(test_big_allocation_keeps_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
