/* The error model: codes numbered like Godot's, names, thread-local messages, version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "core.h"

static void codes_match_godot(void **state)
{
    (void)state;
    assert_int_equal(SN_OK, 0);
    assert_int_equal(SN_FAILED, 1);
    assert_int_equal(SN_ERR_UNAVAILABLE, 2);
    assert_int_equal(SN_ERR_UNCONFIGURED, 3);
    assert_int_equal(SN_ERR_PARAMETER_RANGE_ERROR, 5);
    assert_int_equal(SN_ERR_OUT_OF_MEMORY, 6);
    assert_int_equal(SN_ERR_FILE_NOT_FOUND, 7);
    assert_int_equal(SN_ERR_FILE_CORRUPT, 16);
    assert_int_equal(SN_ERR_FILE_EOF, 18);
    assert_int_equal(SN_ERR_CANT_OPEN, 19);
    assert_int_equal(SN_ERR_CANT_CREATE, 20);
    assert_int_equal(SN_ERR_ALREADY_IN_USE, 22);
    assert_int_equal(SN_ERR_LOCKED, 23);
    assert_int_equal(SN_ERR_TIMEOUT, 24);
    assert_int_equal(SN_ERR_CANT_CONNECT, 25);
    assert_int_equal(SN_ERR_CANT_RESOLVE, 26);
    assert_int_equal(SN_ERR_CONNECTION_ERROR, 27);
    assert_int_equal(SN_ERR_INVALID_DATA, 30);
    assert_int_equal(SN_ERR_INVALID_PARAMETER, 31);
    assert_int_equal(SN_ERR_ALREADY_EXISTS, 32);
    assert_int_equal(SN_ERR_DOES_NOT_EXIST, 33);
    assert_int_equal(SN_ERR_BUSY, 44);
    assert_int_equal(SN_ERR_BUG, 47);
}

static void names(void **state)
{
    (void)state;
    assert_string_equal(sn_err_string(SN_OK), "SN_OK");
    assert_string_equal(sn_err_string(SN_ERR_BUSY), "SN_ERR_BUSY");
    assert_string_equal(sn_err_string(SN_ERR_CANT_RESOLVE), "SN_ERR_CANT_RESOLVE");
    assert_string_equal(sn_err_string((sn_err)999), "SN_ERR_UNKNOWN");
}

static void *other_thread(void *arg)
{
    (void)arg;
    sn_fail(SN_FAILED, "message from the other thread");
    return NULL;
}

static void messages_are_thread_local(void **state)
{
    (void)state;
    assert_int_equal(sn_fail(SN_ERR_BUSY, "port %d is busy", 4242), SN_ERR_BUSY);
    pthread_t t;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);
    assert_string_equal(sn_last_error_message(), "port 4242 is busy");
}

static int log_calls;
static void counting_log(int level, const char *msg, void *user)
{
    (void)level, (void)msg;
    *(int *)user += 1;
}

static void log_handler_silent_by_default(void **state)
{
    (void)state;
    assert_false(sn_log_enabled());
    sn_log(SN_LOG_ERROR, "nobody hears this");
    sn_set_log_handler(counting_log, &log_calls);
    sn_log(SN_LOG_INFO, "hello %d", 1);
    sn_set_log_handler(NULL, NULL);
    sn_log(SN_LOG_INFO, "silent again");
    assert_int_equal(log_calls, 1);
}

static void version_names_backend(void **state)
{
    (void)state;
    const char *v = sn_version();
    assert_non_null(strstr(v, "0.1.0"));
    /* The backend this build links, by name and version. */
#ifdef SN_TEST_BACKEND_OPENSSL
    assert_non_null(strstr(v, "(OpenSSL 3"));
#else
    assert_non_null(strstr(v, "(mbed TLS 2.28."));
#endif
}

static void alloc_injection(void **state)
{
    (void)state;
    sn_test_fail_alloc_after(1, false);
    void *a = sn_malloc(8);
    void *b = sn_malloc(8);
    void *c = sn_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    sn_free(a), sn_free(c);
    sn_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codes_match_godot),
        cmocka_unit_test(names),
        cmocka_unit_test(messages_are_thread_local),
        cmocka_unit_test(log_handler_silent_by_default),
        cmocka_unit_test(version_names_backend),
        cmocka_unit_test(alloc_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
