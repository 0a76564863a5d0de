/* What a program can inject: the clock and the allocator (<sealnet/platform.h>). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/sealnet.h>

#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t fake_us = 42000000;

static uint64_t fake_clock(void *user)
{
    return fake_us + (uint64_t)(uintptr_t)user;
}

static void clock_is_replaceable(void **state)
{
    (void)state;
    sn_set_clock(fake_clock, (void *)(uintptr_t)7);
    assert_int_equal(sn_clock_now_us(), 42000007);
    assert_int_equal(sn_clock_now_ms(), 42000);
    fake_us += 1500000;
    assert_int_equal(sn_clock_now_ms(), 43500);
    /* Timers read it: a pending UDP connection expires on the injected time, not the real. */
    sn_set_clock(NULL, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t real_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t now = sn_clock_now_ms();
    assert_true(now >= real_ms && now - real_ms < 1000);
}

typedef struct counting {
    size_t mallocs, reallocs, frees;
} counting;

static void *c_malloc(size_t n, void *user)
{
    ((counting *)user)->mallocs++;
    return malloc(n);
}
static void *c_realloc(void *p, size_t n, void *user)
{
    ((counting *)user)->reallocs++;
    return realloc(p, n);
}
static void c_free(void *p, void *user)
{
    if (p) ((counting *)user)->frees++;
    free(p);
}

static void allocator_is_replaceable(void **state)
{
    (void)state;
    counting c = {0};
    sn_allocator a = {c_malloc, c_realloc, c_free, &c};
    sn_allocator broken = {c_malloc, NULL, c_free, &c};
    assert_int_equal(sn_set_allocator(&broken), SN_ERR_INVALID_PARAMETER);
    assert_non_null(strstr(sn_last_error_message(), "required"));
    assert_int_equal(sn_allocations_live(), 0);
    assert_int_equal(sn_set_allocator(&a), SN_OK);
    /* Nothing in this process touched the TLS library yet: its allocations follow too, where
     * the backend can route them. */
    assert_true(sn_allocator_covers_backend() || sn_test_backend_lacks("allocator"));

    sn_udp_server *s = sn_udp_server_new();
    assert_non_null(s);
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    assert_non_null(key);
    char *pem = sn_crypto_key_save_to_string(key, true);
    assert_non_null(pem);
    assert_true(c.mallocs > 0);
    assert_true(sn_allocations_live() > 0);

    /* Blocks from this allocator are alive: another may not take over. */
    sn_allocator other = {c_malloc, c_realloc, c_free, NULL};
    assert_int_equal(sn_set_allocator(&other), SN_ERR_LOCKED);
    assert_non_null(strstr(sn_last_error_message(), "still in use"));

    size_t frees = c.frees;
    sn_free(pem); /* strings handed out go back to the same allocator */
    assert_true(c.frees > frees);
    sn_crypto_key_free(key);
    sn_udp_server_free(s);
    assert_int_equal(sn_allocations_live(), 0);
    assert_int_equal(sn_set_allocator(NULL), SN_OK);
    assert_false(sn_allocator_covers_backend());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allocator_is_replaceable),
        cmocka_unit_test(clock_is_replaceable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
