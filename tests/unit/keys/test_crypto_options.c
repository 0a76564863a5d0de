/* sn_tls_options: the three constructors, their getters, the key/certificate checks of
 * server(), the options' own references, and the lazily built shared context. */
#include "test_crypto_common.h"

#include "keys_internal.h"
/* The backends' key and chain structs both carry `atomic_int refs`, read below. */
#ifdef SN_TEST_BACKEND_OPENSSL
#include "openssl.h"
#else
#include "mbedtls_backend.h"
#endif

#include <pthread.h>

static sn_crypto_key *key, *other_key;
static sn_x509_cert *cert;

static int setup(void **state)
{
    (void)state;
    key = sn_crypto_generate_ec("P-256");
    other_key = sn_crypto_generate_ec("P-256");
    cert = key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    return key && other_key && cert ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    sn_crypto_key_free(other_key);
    return 0;
}

static void client_options(void **state)
{
    (void)state;
    sn_tls_options *o = sn_tls_options_client(NULL, NULL);
    assert_non_null(o);
    assert_false(sn_tls_options_is_server(o));
    assert_false(sn_tls_options_is_unsafe_client(o));
    assert_string_equal(sn_tls_options_get_common_name_override(o), "");
    sn_tls_options_free(o);

    o = sn_tls_options_client(cert, "example.com");
    assert_non_null(o);
    assert_string_equal(sn_tls_options_get_common_name_override(o), "example.com");
    assert_false(sn_tls_options_is_unsafe_client(o));
    sn_tls_options_free(o);

    o = sn_tls_options_client(cert, "");
    assert_string_equal(sn_tls_options_get_common_name_override(o), "");
    sn_tls_options_free(o);

    o = sn_tls_options_client_unsafe(NULL);
    assert_non_null(o);
    assert_true(sn_tls_options_is_unsafe_client(o));
    assert_false(sn_tls_options_is_server(o));
    sn_tls_options_free(o);
    o = sn_tls_options_client_unsafe(cert);
    assert_true(sn_tls_options_is_unsafe_client(o));
    sn_tls_options_free(o);
    sn_tls_options_free(NULL);
    assert_false(sn_tls_options_is_server(NULL));
    assert_string_equal(sn_tls_options_get_common_name_override(NULL), "");
}

/* An empty certificate object is refused rather than read as "system CAs" / "verify nothing". */
static void client_empty_trusted_chain(void **state)
{
    (void)state;
    sn_x509_cert *empty = sn_x509_cert_new();
    assert_null(sn_tls_options_client(empty, NULL));
    assert_message_has("trusted certificate chain is empty");
    assert_null(sn_tls_options_client_unsafe(empty));
    assert_message_has("trusted certificate chain is empty");
    sn_x509_cert_free(empty);
}

static void server_options(void **state)
{
    (void)state;
    sn_tls_options *o = sn_tls_options_server(key, cert);
    if (!o) print_error("%s\n", sn_last_error_message());
    assert_non_null(o);
    assert_true(sn_tls_options_is_server(o));
    assert_false(sn_tls_options_is_unsafe_client(o));
    assert_string_equal(sn_tls_options_get_common_name_override(o), "");
    sn_tls_options_free(o);
}

static void server_refusals(void **state)
{
    (void)state;
    assert_null(sn_tls_options_server(other_key, cert));
    assert_message_has("private key does not match the certificate");
    assert_null(sn_tls_options_server(NULL, cert));
    assert_message_has("NULL key");
    assert_null(sn_tls_options_server(key, NULL));
    assert_message_has("NULL certificate");
    sn_crypto_key *empty_key = sn_crypto_key_new();
    sn_x509_cert *empty_cert = sn_x509_cert_new();
    assert_null(sn_tls_options_server(empty_key, cert));
    assert_message_has("the key is empty");
    assert_null(sn_tls_options_server(key, empty_cert));
    assert_message_has("the certificate is empty");
    /* The matching public key alone is not enough to serve. */
    char *pub = sn_crypto_key_save_to_string(key, true);
    assert_int_equal(sn_crypto_key_load_from_string(empty_key, pub, true), SN_OK);
    assert_null(sn_tls_options_server(empty_key, cert));
    assert_message_has("public only");
    assert_true(sn_x509_cert_matches_key(cert, empty_key));
    assert_backend_errors_clear();
    sn_free(pub);
    sn_crypto_key_free(empty_key);
    sn_x509_cert_free(empty_cert);
}

/* The options hold their own references: the caller frees key and certificate right away. */
static void options_keep_references(void **state)
{
    (void)state;
    sn_crypto_key *k = sn_crypto_generate_ec("P-256");
    sn_x509_cert *c = sn_crypto_generate_self_signed_certificate(k, NULL, NULL, NULL);
    sn_tls_key *kh = sn_crypto_key_handle(k);
    sn_tls_chain *ch = sn_x509_cert_handle(c);
    assert_int_equal(atomic_load(&kh->refs), 1);
    sn_tls_options *o = sn_tls_options_server(k, c);
    assert_non_null(o);
    assert_int_equal(atomic_load(&kh->refs), 2);
    assert_int_equal(atomic_load(&ch->refs), 2);
    sn_crypto_key_free(k);
    sn_x509_cert_free(c);
    assert_int_equal(atomic_load(&kh->refs), 1);
    assert_int_equal(atomic_load(&ch->refs), 1);
    /* Still usable (ASan would flag a use after free here). */
    assert_true(sn_tls_backend_get()->key_matches_chain(kh, ch));
    (void)sn_tls_options_get_config(o, false);
    sn_tls_options_free(o); /* drops the last references: LeakSanitizer checks they are freed */

    sn_x509_cert *t = sn_crypto_generate_self_signed_certificate(key, NULL, NULL, NULL);
    sn_tls_chain *th = sn_x509_cert_handle(t);
    o = sn_tls_options_client(t, "x");
    assert_int_equal(atomic_load(&th->refs), 2);
    sn_x509_cert_free(t);
    assert_int_equal(atomic_load(&th->refs), 1);
    sn_tls_options_free(o);
}

struct config_job {
    const sn_tls_options *opts;
    bool datagram;
    sn_tls_config *got;
};

static void *get_config_thread(void *arg)
{
    struct config_job *j = arg;
    j->got = sn_tls_options_get_config(j->opts, j->datagram);
    return NULL;
}

/* Several threads asking one options object for its context at once all get the same one
 * (built once). The backend's config_new may still be a stub returning NULL: then all get NULL. */
static void shared_config_across_threads(void **state)
{
    (void)state;
    sn_tls_options *opts[3] = {sn_tls_options_server(key, cert), sn_tls_options_client(cert, NULL),
                               sn_tls_options_client_unsafe(NULL)};
    for (int k = 0; k < 3; k++) {
        assert_non_null(opts[k]);
        for (int d = 0; d < 2; d++) {
            struct config_job jobs[4];
            pthread_t th[4];
            for (int i = 0; i < 4; i++) {
                jobs[i] = (struct config_job){opts[k], d == 1, NULL};
                assert_int_equal(pthread_create(&th[i], NULL, get_config_thread, &jobs[i]), 0);
            }
            for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
            for (int i = 1; i < 4; i++)
                assert_ptr_equal(jobs[i].got, jobs[0].got);
            assert_ptr_equal(sn_tls_options_get_config(opts[k], d == 1), jobs[0].got);
        }
        sn_tls_options_free(opts[k]);
    }
    assert_null(sn_tls_options_get_config(NULL, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(client_options),          cmocka_unit_test(client_empty_trusted_chain),
        cmocka_unit_test(server_options),          cmocka_unit_test(server_refusals),
        cmocka_unit_test(options_keep_references), cmocka_unit_test(shared_config_across_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
