/* What a certificate says (sn_x509_cert_get_info) and the options' key log and trace setters:
 * fields, errors, the key log file's mode. The end-to-end use (a key log equal to openssl
 * s_server's, a trace with retransmissions) is in tests/system/test_cli_options.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sealnet/sealnet.h>

#include "testutil.h"

static void info_of_a_generated_certificate(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("peer chain")) skip();
    sn_crypto_key *k = sn_crypto_generate_ec("P-256");
    sn_x509_cert *c = sn_crypto_generate_self_signed_certificate(
        k, "CN=game.example,O=Studio", "20250102030405", "20350607080910");
    assert_non_null(c);
    sn_x509_info info;
    assert_int_equal(sn_x509_cert_get_info(c, 0, &info), SN_OK);
    assert_string_equal(info.subject, "CN=game.example, O=Studio");
    assert_string_equal(info.issuer, info.subject); /* self-signed */
    assert_string_equal(info.names, "DNS:game.example");
    assert_string_equal(info.not_before, "2025-01-02 03:04:05 UTC");
    assert_string_equal(info.not_after, "2035-06-07 08:09:10 UTC");
    char *fp = sn_x509_cert_get_fingerprint_sha256(c);
    assert_string_equal(info.fingerprint_sha256, fp);
    sn_free(fp);

    assert_int_equal(sn_x509_cert_get_info(c, 1, &info), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_x509_cert_get_info(c, -1, &info), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_x509_cert_get_info(NULL, 0, &info), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_x509_cert_get_info(c, 0, NULL), SN_ERR_INVALID_PARAMETER);
    sn_x509_cert *empty = sn_x509_cert_new();
    assert_int_equal(sn_x509_cert_get_info(empty, 0, &info), SN_ERR_UNCONFIGURED);
    sn_x509_cert_free(empty);

    /* An IP address as CN is an IP subjectAltName. */
    sn_x509_cert *ip = sn_crypto_generate_self_signed_certificate(k, "CN=127.0.0.1", NULL, NULL);
    assert_int_equal(sn_x509_cert_get_info(ip, 0, &info), SN_OK);
    assert_string_equal(info.names, "IP:127.0.0.1");
    sn_x509_cert_free(ip);
    sn_x509_cert_free(c);
    sn_crypto_key_free(k);
}

/* A certificate made by openssl req with awkward names: quoting and escaping, UTF-8, an
 * attribute OpenSSL has no name for, every kind of subjectAltName. Every backend must print it
 * as the OpenSSL backend does (openssl x509 -nameopt oneline,-esc_msb,-space_eq,utf8). */
static const char awkward_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICTjCCAfSgAwIBAgIBBzAKBggqhkjOPQQDAjBzMQwwCgYDVQQDDANhLGIxGzAZ\n"
    "BgNVBAoMEsOcbsOvICJxIiBcIDw+Oz0jaDEOMAwGA1UECwwFIGxlYWQxFDASBgkq\n"
    "hkiG9w0BCQEWBWFAYi5jMQ4wDAYDVQQHDAV0YWIJeDEQMA4GByoDBAWSp2AMA29k\n"
    "ZDAeFw0yNjEyMDIwMzM1NDRaFw0zNjExMjkwMzM1NDRaMHMxDDAKBgNVBAMMA2Es\n"
    "YjEbMBkGA1UECgwSw5xuw68gInEiIFwgPD47PSNoMQ4wDAYDVQQLDAUgbGVhZDEU\n"
    "MBIGCSqGSIb3DQEJARYFYUBiLmMxDjAMBgNVBAcMBXRhYgl4MRAwDgYHKgMEBZKn\n"
    "YAwDb2RkMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZPvQx7iZeKNppnx1whK4\n"
    "SYP7b/MVekkJ7gHDOfRALk4MFp9IMiYg5eEHrx/kZM6h+piYVLzFLLoIspEV0DAD\n"
    "WqN5MHcwVgYDVR0RBE8wTYIMZ2FtZS5leGFtcGxlhwR/AAABhxAAAAAAAAAAAAAA\n"
    "AAAAAAABgQ5tZUBleGFtcGxlLmNvbYYVaHR0cHM6Ly9leGFtcGxlLmNvbS94MB0G\n"
    "A1UdDgQWBBR/VEFbuDmdRRmo312ewP0Eg1K2zzAKBggqhkjOPQQDAgNIADBFAiA+\n"
    "XspuNDxMhdg74J7gZgNC1i5fobN7nVigwkFefAvT+AIhAJzofsZ9CutQYkDDeWz1\n"
    "DiyqyhK/HRzTcVqZSS9M5pCY\n"
    "-----END CERTIFICATE-----\n";

/* A multi-valued RDN (CN + OU) and a BMPString (O, with a character beyond Latin-1). */
static const char multi_rdn_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdDCCARkCFAIrdgKt/CAgRgUX8V0cC7zDdiHoMAoGCCqGSM49BAMCMDwxGDAK\n"
    "BgNVBAMTA2EsYjAKBgNVBAsTA3ggeTETMBEGA1UECh4KANwAbgDvACAnEzELMAkG\n"
    "A1UEBhMCREUwHhcNMjYxMjAyMDM1MjIzWhcNMjcwMTAxMDM1MjIzWjA8MRgwCgYD\n"
    "VQQDEwNhLGIwCgYDVQQLEwN4IHkxEzARBgNVBAoeCgDcAG4A7wAgJxMxCzAJBgNV\n"
    "BAYTAkRFMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1cc2v3LMYLaoOc3EQRu8\n"
    "xy3v04prqleEF+YmRm4svEEKJEhfXyd4nO7UzCh5DFm0aQC0CroG2Hm1YNYA9gCq\n"
    "LjAKBggqhkjOPQQDAgNJADBGAiEAg4KdxOunxpApfYRbgYjA32BqpvHsia2SjsKw\n"
    "0JyRG/YCIQCnghqJFMxe917rBlmRcTrS/E5h/h7v/jS8MulJzCoanA==\n"
    "-----END CERTIFICATE-----\n";

static void names_read_the_same_on_every_backend(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("peer chain")) skip();
    sn_x509_cert *c = sn_x509_cert_new();
    assert_int_equal(sn_x509_cert_load_from_string(c, awkward_pem), SN_OK);
    sn_x509_info info;
    assert_int_equal(sn_x509_cert_get_info(c, 0, &info), SN_OK);
    assert_string_equal(info.subject,
                        "CN=\"a,b\", O=\"\xc3\x9cn\xc3\xaf \\\"q\\\" \\\\ <>;=#h\", "
                        "OU=\" lead\", emailAddress=a@b.c, L=tab\\09x, 1.2.3.4.5.300000=odd");
    assert_string_equal(info.issuer, info.subject);
    assert_string_equal(info.names, "DNS:game.example, IP:127.0.0.1, IP:::1, "
                                    "email:me@example.com, URI:https://example.com/x");
    assert_string_equal(info.not_before, "2026-12-02 03:35:44 UTC");
    assert_string_equal(info.not_after, "2036-11-29 03:35:44 UTC");
    sn_x509_cert_free(c);
    c = sn_x509_cert_new();
    assert_int_equal(sn_x509_cert_load_from_string(c, multi_rdn_pem), SN_OK);
    assert_int_equal(sn_x509_cert_get_info(c, 0, &info), SN_OK);
    assert_string_equal(info.subject,
                        "CN=\"a,b\" + OU=x y, O=\xc3\x9cn\xc3\xaf \xe2\x9c\x93, C=DE");
    assert_string_equal(info.names, "");
    sn_x509_cert_free(c);
}

static void keylog_and_trace_setters(void **state)
{
    (void)state;
    char *dir = sn_test_tmpdir();
    char *path = sn_test_path(dir, "keys.log");
    sn_tls_options *o = sn_tls_options_client_unsafe(NULL);
    if (sn_test_backend_lacks("keylog")) {
        /* The capability bit: refused up front, naming the backend and the feature. */
        assert_int_equal(sn_tls_options_set_keylog_file(o, path), SN_ERR_UNAVAILABLE);
        assert_non_null(strstr(sn_last_error_message(), "does not support key logging"));
        sn_tls_options_free(o);
        sn_test_rmtree(dir);
        free(path);
        free(dir);
        return;
    }
    assert_int_equal(sn_tls_options_set_keylog_file(NULL, path), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tls_options_set_keylog_file(o, "/nonexistent/dir/keys.log"),
                     SN_ERR_CANT_CREATE);
    assert_non_null(strstr(sn_last_error_message(), "/nonexistent/dir/keys.log"));
    assert_int_equal(sn_tls_options_set_keylog_file(o, path), SN_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* secrets: the owner's only */
    assert_int_equal(sn_tls_options_set_keylog_file(o, NULL), SN_OK); /* off again */
    assert_int_equal(sn_tls_options_set_keylog_callback(o, NULL, NULL), SN_OK);
    assert_int_equal(sn_tls_options_set_trace_callback(NULL, NULL, NULL), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tls_options_set_trace_callback(o, NULL, NULL), SN_OK);
    sn_tls_options_free(o);
    sn_test_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(info_of_a_generated_certificate),
        cmocka_unit_test(names_read_the_same_on_every_backend),
        cmocka_unit_test(keylog_and_trace_setters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
