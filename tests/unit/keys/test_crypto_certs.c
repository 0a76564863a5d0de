/* sn_x509_cert: single certificates and chains made by the openssl command, order kept, saved
 * as loaded, load replaces, failed load keeps, and a clear error for every bad input. */
#include "test_crypto_common.h"

#include "keys_internal.h"

static sn_x509_cert *load_ok(const char *name)
{
    sn_x509_cert *cert = sn_x509_cert_new();
    assert_non_null(cert);
    sn_err err = sn_x509_cert_load(cert, fx_path(name));
    if (err != SN_OK) print_error("%s: %s\n", name, sn_last_error_message());
    assert_int_equal(err, SN_OK);
    return cert;
}

/* What `openssl x509 -fingerprint -sha256` prints for a file, without the prefix. */
static char *openssl_fingerprint(const char *name)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "openssl x509 -in %s -noout -fingerprint -sha256", name);
    char *out = fx_sh_output(cmd);
    char *eq = strchr(out, '=');
    assert_non_null(eq);
    char *fp = strdup(eq + 1);
    fp[strcspn(fp, "\r\n")] = '\0';
    free(out);
    return fp;
}

static void single_certificate_round_trip(void **state)
{
    (void)state;
    sn_x509_cert *cert = load_ok("ca.pem");
    assert_int_equal(sn_x509_cert_get_count(cert), 1);
    char *expect = fx_read("ca.pem");
    char *got = sn_x509_cert_save_to_string(cert);
    assert_non_null(got);
    assert_string_equal(got, expect);
    char *fp = sn_x509_cert_get_fingerprint_sha256(cert);
    char *theirs = openssl_fingerprint("ca.pem");
    assert_string_equal(fp, theirs);
    assert_int_equal(strlen(fp), 95);
    sn_free(got), sn_free(fp), free(theirs), free(expect);
    sn_x509_cert_free(cert);
}

/* A three-certificate chain keeps every certificate, in file order, each saved once. */
static void chain_kept_in_order(void **state)
{
    (void)state;
    sn_x509_cert *cert = load_ok("chain.pem");
    assert_int_equal(sn_x509_cert_get_count(cert), 3);
    char *expect = fx_read("chain.pem");
    char *got = sn_x509_cert_save_to_string(cert);
    assert_string_equal(got, expect);
    /* The leaf comes first: the fingerprint is the leaf's. */
    char *fp = sn_x509_cert_get_fingerprint_sha256(cert);
    char *leaf_fp = openssl_fingerprint("leaf.pem");
    assert_string_equal(fp, leaf_fp);
    sn_free(got), sn_free(fp), free(leaf_fp);

    /* save() writes the same bytes, and openssl still verifies the saved chain. */
    assert_int_equal(sn_x509_cert_save(cert, fx_path("saved_chain.pem")), SN_OK);
    char *saved = fx_read("saved_chain.pem");
    assert_string_equal(saved, expect);
    free(saved), free(expect);
    assert_int_equal(fx_sh("openssl crl2pkcs7 -nocrl -certfile saved_chain.pem | openssl pkcs7 "
                           "-print_certs -noout | grep subject= | head -1 | grep -q leaf.test"),
                     0);

    /* A reversed file stays reversed: nothing is re-ordered. */
    assert_int_equal(fx_sh("cat ca.pem int.pem leaf.pem > reversed.pem"), 0);
    assert_int_equal(sn_x509_cert_load(cert, fx_path("reversed.pem")), SN_OK);
    char *rev = sn_x509_cert_save_to_string(cert), *rev_expect = fx_read("reversed.pem");
    assert_string_equal(rev, rev_expect);
    sn_free(rev), free(rev_expect);
    sn_x509_cert_free(cert);
}

/* Loading replaces (Godot appends): a chain of 3, then a single certificate, gives 1. */
static void load_replaces(void **state)
{
    (void)state;
    sn_x509_cert *cert = load_ok("chain.pem");
    assert_int_equal(sn_x509_cert_load(cert, fx_path("int.pem")), SN_OK);
    assert_int_equal(sn_x509_cert_get_count(cert), 1);
    char *got = sn_x509_cert_save_to_string(cert), *expect = fx_read("int.pem");
    assert_string_equal(got, expect);
    sn_free(got);
    char *ca = fx_read("ca.pem");
    assert_int_equal(sn_x509_cert_load_from_string(cert, ca), SN_OK);
    got = sn_x509_cert_save_to_string(cert);
    assert_string_equal(got, ca);
    sn_free(got), free(ca), free(expect);
    sn_x509_cert_free(cert);
}

/* A failed load leaves the chain as it was. */
static void failed_load_keeps_chain(void **state)
{
    (void)state;
    sn_x509_cert *cert = load_ok("chain.pem");
    assert_int_not_equal(sn_x509_cert_load(cert, fx_path("missing.pem")), SN_OK);
    assert_int_not_equal(sn_x509_cert_load(cert, fx_path("ca.key")), SN_OK);
    assert_int_not_equal(sn_x509_cert_load_from_string(cert, "-----BEGIN CERTIFICATE-----\nAAAA"),
                         SN_OK);
    assert_int_equal(sn_x509_cert_get_count(cert), 3);
    char *got = sn_x509_cert_save_to_string(cert), *expect = fx_read("chain.pem");
    assert_string_equal(got, expect);
    sn_free(got), free(expect);
    sn_x509_cert_free(cert);
}

/* A combined file (key + certificate, as some servers keep them) yields the certificate. */
static void combined_file(void **state)
{
    (void)state;
    assert_int_equal(fx_sh("cat leaf.key leaf.pem > combined.pem"), 0);
    sn_x509_cert *cert = load_ok("combined.pem");
    assert_int_equal(sn_x509_cert_get_count(cert), 1);
    sn_crypto_key *key = sn_crypto_key_new();
    assert_int_equal(sn_crypto_key_load(key, fx_path("combined.pem"), false), SN_OK);
    assert_true(sn_x509_cert_matches_key(cert, key));
    assert_int_equal(sn_crypto_key_load(key, fx_path("ca.key"), false), SN_OK);
    assert_false(sn_x509_cert_matches_key(cert, key));
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
}

static void empty_and_null(void **state)
{
    (void)state;
    sn_x509_cert *cert = sn_x509_cert_new();
    assert_int_equal(sn_x509_cert_get_count(cert), 0);
    assert_null(sn_x509_cert_save_to_string(cert));
    assert_message_has("empty");
    assert_null(sn_x509_cert_get_fingerprint_sha256(cert));
    assert_message_has("empty");
    assert_fails_with(sn_x509_cert_save(cert, fx_path("x.pem")), SN_ERR_UNCONFIGURED, "empty");
    assert_fails_with(sn_x509_cert_load(NULL, "x"), SN_ERR_INVALID_PARAMETER, "NULL certificate");
    assert_fails_with(sn_x509_cert_load(cert, NULL), SN_ERR_INVALID_PARAMETER, "NULL path");
    assert_fails_with(sn_x509_cert_load_from_string(cert, NULL), SN_ERR_INVALID_PARAMETER, "NULL");
    assert_fails_with(sn_x509_cert_save(NULL, "x"), SN_ERR_INVALID_PARAMETER, "NULL");
    assert_fails_with(sn_x509_cert_save(cert, NULL), SN_ERR_INVALID_PARAMETER, "NULL");
    assert_null(sn_x509_cert_save_to_string(NULL));
    assert_message_has("NULL");
    assert_int_equal(sn_x509_cert_get_count(NULL), 0);
    sn_x509_cert_free(cert);
    sn_x509_cert_free(NULL);
}

static void file_errors(void **state)
{
    (void)state;
    sn_x509_cert *cert = sn_x509_cert_new();
    assert_fails_with(sn_x509_cert_load(cert, fx_path("missing.pem")), SN_ERR_FILE_NOT_FOUND,
                      fx_path("missing.pem"));
    assert_fails_with(sn_x509_cert_load(cert, fx_dir), SN_ERR_CANT_OPEN, "directory");
    fx_write("empty.pem", "", 0);
    assert_fails_with(sn_x509_cert_load(cert, fx_path("empty.pem")), SN_ERR_FILE_CORRUPT,
                      "is empty");
    assert_int_equal(fx_sh("head -c 10485760 /dev/zero > big.pem"), 0);
    assert_fails_with(sn_x509_cert_load(cert, fx_path("big.pem")), SN_ERR_FILE_CORRUPT,
                      "10485760 bytes");
    sn_x509_cert *ca = load_ok("ca.pem");
    assert_fails_with(sn_x509_cert_save(ca, "/"), SN_ERR_CANT_CREATE, "cannot create '/'");
    sn_x509_cert_free(ca);
    sn_x509_cert_free(cert);
}

static void content_errors(void **state)
{
    (void)state;
    sn_x509_cert *cert = sn_x509_cert_new();
    assert_fails_with(sn_x509_cert_load(cert, fx_path("ca.key")), SN_ERR_FILE_CORRUPT,
                      "holds a private key, not a certificate");
    assert_message_has("ca.key");
    assert_fails_with(sn_x509_cert_load(cert, fx_path("leaf.csr")), SN_ERR_FILE_CORRUPT,
                      "certificate request, not a certificate");
    /* Truncated chain: the second certificate loses its END line. */
    char *chain = fx_read("chain.pem");
    char *leaf = fx_read("leaf.pem");
    size_t leaf_len = strlen(leaf);
    free(leaf);
    fx_write("trunc.pem", chain, leaf_len + 200);
    assert_fails_with(sn_x509_cert_load(cert, fx_path("trunc.pem")), SN_ERR_FILE_CORRUPT,
                      "truncated PEM");
    /* Valid base64 that is not a certificate: named by its position and line. */
    char *bad = strdup(chain);
    char *second = strstr(bad + 10, "-----BEGIN CERTIFICATE-----");
    char *data = strchr(second, '\n') + 1;
    memcpy(data, "AAAAAAAAAAAAAAAAAAAA", 20);
    fx_write("baddata.pem", bad, strlen(bad));
    assert_fails_with(sn_x509_cert_load(cert, fx_path("baddata.pem")), SN_ERR_FILE_CORRUPT,
                      "certificate 2 is not a valid X.509 certificate");
    data[3] = '*';
    fx_write("badchar.pem", bad, strlen(bad));
    assert_fails_with(sn_x509_cert_load(cert, fx_path("badchar.pem")), SN_ERR_FILE_CORRUPT,
                      "PEM parse error at line");
    free(bad), free(chain);
    unsigned char junk[512];
    assert_int_equal(sn_crypto_generate_random_bytes(junk, sizeof junk), SN_OK);
    junk[0] = 'x';
    fx_write("junk.pem", (const char *)junk, sizeof junk);
    assert_fails_with(sn_x509_cert_load(cert, fx_path("junk.pem")), SN_ERR_FILE_CORRUPT,
                      "no PEM data");
    assert_int_equal(fx_sh("openssl x509 -in ca.pem -outform DER -out ca.der"), 0);
    assert_fails_with(sn_x509_cert_load(cert, fx_path("ca.der")), SN_ERR_FILE_CORRUPT, "DER");
    assert_int_equal(sn_x509_cert_get_count(cert), 0);
    sn_x509_cert_free(cert);
}

/* Random damage to a valid chain: SN_OK or FILE_CORRUPT with a message, never a crash, and the
 * object keeps its previous chain whenever a load fails. */
static void damaged_input_never_crashes(void **state)
{
    (void)state;
    sn_x509_cert *cert = load_ok("ca.pem");
    char *ca = fx_read("ca.pem");
    char *orig = fx_read("chain.pem");
    size_t len = strlen(orig);
    unsigned int seed = 777;
    for (int i = 0; i < 600; i++) {
        char *m = strdup(orig);
        int edits = 1 + (int)(rand_r(&seed) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rand_r(&seed) % len;
            switch (rand_r(&seed) % 3) {
            case 0:
                m[at] = (char)(rand_r(&seed) % 256);
                break;
            case 1:
                m[at] = "AZaz09+/=\n-"[rand_r(&seed) % 12];
                break;
            default:
                m[at] = '\0';
                break;
            }
        }
        if (m[0] == '\0') m[0] = 'x';
        sn_err err = sn_x509_cert_load_from_string(cert, m);
        assert_true(err == SN_OK || err == SN_ERR_FILE_CORRUPT);
        assert_backend_errors_clear();
        if (err != SN_OK) {
            assert_true(strlen(sn_last_error_message()) > 10);
        } else {
            assert_int_equal(sn_x509_cert_load_from_string(cert, ca), SN_OK); /* reset */
        }
        char *now = sn_x509_cert_save_to_string(cert);
        assert_string_equal(now, ca);
        sn_free(now);
        free(m);
    }
    free(orig), free(ca);
    sn_x509_cert_free(cert);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_certificate_round_trip),
        cmocka_unit_test(chain_kept_in_order),
        cmocka_unit_test(load_replaces),
        cmocka_unit_test(failed_load_keeps_chain),
        cmocka_unit_test(combined_file),
        cmocka_unit_test(empty_and_null),
        cmocka_unit_test(file_errors),
        cmocka_unit_test(content_errors),
        cmocka_unit_test(damaged_input_never_crashes),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
