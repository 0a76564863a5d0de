/* sn_crypto_key: PEM load/save of keys made by the openssl command, round trips, public-only
 * handling, and a clear error (code + message, empty OpenSSL error queue) for every bad input. */
#include "testutil.h"
#include "test_crypto_common.h"

#include <sys/stat.h>

#include "keys_internal.h"

static sn_crypto_key *load_ok(const char *name, bool public_only)
{
    sn_crypto_key *key = sn_crypto_key_new();
    assert_non_null(key);
    sn_err err = sn_crypto_key_load(key, fx_path(name), public_only);
    if (err != SN_OK) print_error("%s: %s\n", name, sn_last_error_message());
    assert_int_equal(err, SN_OK);
    return key;
}

/* Keys made by `openssl genpkey` (PKCS#8) come back byte-identical; the public part equals what
 * `openssl pkey -pubout` prints. */
static void openssl_keys_round_trip(void **state)
{
    (void)state;
    const char *names[] = {"rsa.pem", "ec256.pem", "ec384.pem"};
    for (size_t i = 0; i < 3; i++) {
        sn_crypto_key *key = load_ok(names[i], false);
        assert_false(sn_crypto_key_is_public_only(key));
        char *expect = fx_read(names[i]);
        char *got = sn_crypto_key_save_to_string(key, false);
        assert_non_null(got);
        assert_string_equal(got, expect);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "openssl pkey -in %s -pubout", names[i]);
        char *pub_expect = fx_sh_output(cmd);
        char *pub = sn_crypto_key_save_to_string(key, true);
        assert_non_null(pub);
        assert_string_equal(pub, pub_expect);
        sn_free(got), sn_free(pub), free(expect), free(pub_expect);
        sn_crypto_key_free(key);
    }
}

/* Traditional formats ("RSA PRIVATE KEY", "EC PARAMETERS" + "EC PRIVATE KEY") load and are
 * saved as PKCS#8, exactly as `openssl pkey` converts them. */
static void traditional_formats_load(void **state)
{
    (void)state;
    const char *names[] = {"rsa_trad.pem", "ec_trad.pem"};
    for (size_t i = 0; i < 2; i++) {
        sn_crypto_key *key = load_ok(names[i], false);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "openssl pkey -in %s", names[i]);
        char *expect = fx_sh_output(cmd);
        char *got = sn_crypto_key_save_to_string(key, false);
        assert_non_null(got);
        assert_non_null(strstr(got, "-----BEGIN PRIVATE KEY-----"));
        assert_string_equal(got, expect);
        sn_free(got), free(expect);
        sn_crypto_key_free(key);
    }
}

static void public_key_files(void **state)
{
    (void)state;
    sn_crypto_key *key = load_ok("rsa_pub.pem", true);
    assert_true(sn_crypto_key_is_public_only(key));
    char *expect = fx_read("rsa_pub.pem");
    char *got = sn_crypto_key_save_to_string(key, true);
    assert_string_equal(got, expect);
    sn_free(got);
    /* There is no private part to give. */
    assert_null(sn_crypto_key_save_to_string(key, false));
    assert_message_has("public only");
    assert_fails_with(sn_crypto_key_save(key, fx_path("out_priv.pem"), false), SN_ERR_UNCONFIGURED,
                      "public only");
    free(expect);

    /* A public key file given where a private key is wanted. */
    assert_fails_with(sn_crypto_key_load(key, fx_path("ec256_pub.pem"), false), SN_ERR_FILE_CORRUPT,
                      "public key");
    assert_message_has("ec256_pub.pem");
    sn_crypto_key_free(key);
}

/* Other spellings of the same keys: PKCS#1 "RSA PUBLIC KEY", CRLF line ends with a byte order
 * mark, a public key block before the private one. */
static void other_spellings(void **state)
{
    (void)state;
    char *rsa_pub = fx_read("rsa_pub.pem");
    sn_crypto_key *key = load_ok("rsa_pkcs1_pub.pem", true);
    char *got = sn_crypto_key_save_to_string(key, true);
    assert_string_equal(got, rsa_pub);
    sn_free(got);

    assert_int_equal(
        fx_sh("printf '\\357\\273\\277' > crlf.pem && sed 's/$/\\r/' ec256.pem >> crlf.pem"), 0);
    char *crlf = fx_read("crlf.pem");
    assert_true((unsigned char)crlf[0] == 0xEF && strstr(crlf, "\r\n") != NULL);
    free(crlf);
    assert_int_equal(sn_crypto_key_load(key, fx_path("crlf.pem"), false), SN_OK);
    char *ec = fx_read("ec256.pem");
    got = sn_crypto_key_save_to_string(key, false);
    assert_string_equal(got, ec);
    sn_free(got);

    assert_int_equal(fx_sh("cat rsa_pub.pem ec256.pem > pub_then_priv.pem"), 0);
    assert_int_equal(sn_crypto_key_load(key, fx_path("pub_then_priv.pem"), false), SN_OK);
    got = sn_crypto_key_save_to_string(key, false);
    assert_string_equal(got, ec);
    sn_free(got);
    assert_int_equal(sn_crypto_key_load(key, fx_path("pub_then_priv.pem"), true), SN_OK);
    got = sn_crypto_key_save_to_string(key, true);
    assert_string_equal(got, rsa_pub);
    sn_free(got), free(ec), free(rsa_pub);
    sn_crypto_key_free(key);
}

/* Random damage to a valid PEM key: every outcome is SN_OK or a FILE_CORRUPT with a message,
 * never a crash (ASan/UBSan watch), and OpenSSL's error queue is always left empty. */
static void damaged_input_never_crashes(void **state)
{
    (void)state;
    const char *names[] = {"ec256.pem", "rsa_trad.pem", "enc_trad.pem"};
    sn_crypto_key *key = sn_crypto_key_new();
    unsigned int seed = 12345;
    for (size_t f = 0; f < 3; f++) {
        char *orig = fx_read(names[f]);
        size_t len = strlen(orig);
        for (int i = 0; i < 300; i++) {
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
                    break; /* truncation */
                }
            }
            if (m[0] == '\0') m[0] = 'x';
            sn_err err = sn_crypto_key_load_from_string(key, m, (rand_r(&seed) & 1) != 0);
            assert_true(err == SN_OK || err == SN_ERR_FILE_CORRUPT);
            if (err != SN_OK) assert_true(strlen(sn_last_error_message()) > 10);
            assert_backend_errors_clear();
            free(m);
        }
        free(orig);
    }
    sn_crypto_key_free(key);
}

/* Loading a private key with public_only keeps just its public part (as Godot does). */
static void private_key_loaded_public_only(void **state)
{
    (void)state;
    sn_crypto_key *key = load_ok("ec256.pem", true);
    assert_true(sn_crypto_key_is_public_only(key));
    char *expect = fx_read("ec256_pub.pem");
    char *got = sn_crypto_key_save_to_string(key, true);
    assert_string_equal(got, expect);
    sn_free(got), free(expect);
    assert_null(sn_crypto_key_save_to_string(key, false));
    assert_message_has("public only");
    sn_crypto_key_free(key);
}

/* save() writes the same PEM to a file; the private key file is readable by its owner only. */
static void save_to_file_and_reload(void **state)
{
    (void)state;
    sn_crypto_key *key = load_ok("ec384.pem", false);
    assert_int_equal(sn_crypto_key_save(key, fx_path("saved.pem"), false), SN_OK);
    assert_int_equal(sn_crypto_key_save(key, fx_path("saved_pub.pem"), true), SN_OK);
    char *a = fx_read("ec384.pem"), *b = fx_read("saved.pem");
    assert_string_equal(a, b);
    free(a), free(b);
    struct stat st;
    assert_int_equal(stat(fx_path("saved.pem"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Overwriting a world-readable file with a private key narrows it too. */
    assert_int_equal(fx_sh("touch open.pem && chmod 644 open.pem"), 0);
    assert_int_equal(sn_crypto_key_save(key, fx_path("open.pem"), false), SN_OK);
    assert_int_equal(stat(fx_path("open.pem"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(fx_sh("cmp saved_pub.pem ec256_pub.pem"), 1); /* a different key */
    assert_int_equal(fx_sh("openssl pkey -in ec384.pem -pubout | cmp - saved_pub.pem"), 0);
    sn_crypto_key *pub = load_ok("saved_pub.pem", true);
    assert_true(sn_crypto_key_is_public_only(pub));
    sn_crypto_key_free(pub);
    assert_fails_with(sn_crypto_key_save(key, "/nonexistent-dir/k.pem", false), SN_ERR_CANT_CREATE,
                      "/nonexistent-dir/k.pem");
    sn_crypto_key_free(key);
}

/* Generated keys save and reload byte-identically, and openssl reads them. */
static void generated_keys_round_trip(void **state)
{
    (void)state;
    sn_crypto_key *gen[2] = {sn_crypto_generate_ec("P-256"), sn_crypto_generate_rsa(2048)};
    for (int i = 0; i < 2; i++) {
        assert_non_null(gen[i]);
        char *pem = sn_crypto_key_save_to_string(gen[i], false);
        assert_non_null(pem);
        sn_crypto_key *again = sn_crypto_key_new();
        assert_int_equal(sn_crypto_key_load_from_string(again, pem, false), SN_OK);
        char *pem2 = sn_crypto_key_save_to_string(again, false);
        assert_string_equal(pem, pem2);
        fx_write("gen.pem", pem, strlen(pem));
        assert_int_equal(fx_sh("openssl pkey -in gen.pem -check -noout"), 0);
        char *theirs = fx_sh_output("openssl pkey -in gen.pem");
        assert_string_equal(theirs, pem);
        sn_free(pem), sn_free(pem2), free(theirs);
        sn_crypto_key_free(again);
        sn_crypto_key_free(gen[i]);
    }
}

/* A load replaces what was there; a failed load leaves the key as it was. */
static void load_replaces_and_failure_keeps(void **state)
{
    (void)state;
    sn_crypto_key *key = load_ok("rsa.pem", false);
    assert_int_equal(sn_crypto_key_load(key, fx_path("ec256.pem"), false), SN_OK);
    char *got = sn_crypto_key_save_to_string(key, false), *expect = fx_read("ec256.pem");
    assert_string_equal(got, expect);
    sn_free(got);
    assert_int_not_equal(sn_crypto_key_load(key, fx_path("ca.pem"), false), SN_OK);
    assert_int_not_equal(sn_crypto_key_load_from_string(key, "garbage", true), SN_OK);
    got = sn_crypto_key_save_to_string(key, false);
    assert_string_equal(got, expect);
    assert_false(sn_crypto_key_is_public_only(key));
    sn_free(got), free(expect);
    sn_crypto_key_free(key);
}

static void empty_key(void **state)
{
    (void)state;
    sn_crypto_key *key = sn_crypto_key_new();
    assert_true(sn_crypto_key_is_public_only(key));
    assert_null(sn_crypto_key_save_to_string(key, true));
    assert_message_has("empty");
    assert_fails_with(sn_crypto_key_save(key, fx_path("x.pem"), true), SN_ERR_UNCONFIGURED,
                      "empty");
    sn_crypto_key_free(key);
    sn_crypto_key_free(NULL);
}

static void null_arguments(void **state)
{
    (void)state;
    sn_crypto_key *key = sn_crypto_key_new();
    assert_fails_with(sn_crypto_key_load(NULL, "x", false), SN_ERR_INVALID_PARAMETER, "NULL key");
    assert_fails_with(sn_crypto_key_load(key, NULL, false), SN_ERR_INVALID_PARAMETER, "NULL path");
    assert_fails_with(sn_crypto_key_load_from_string(key, NULL, false), SN_ERR_INVALID_PARAMETER,
                      "NULL");
    assert_fails_with(sn_crypto_key_load_from_string(NULL, "x", false), SN_ERR_INVALID_PARAMETER,
                      "NULL");
    assert_fails_with(sn_crypto_key_save(key, NULL, false), SN_ERR_INVALID_PARAMETER, "NULL");
    assert_fails_with(sn_crypto_key_save(NULL, "x", false), SN_ERR_INVALID_PARAMETER, "NULL");
    assert_null(sn_crypto_key_save_to_string(NULL, false));
    assert_message_has("NULL");
    assert_true(sn_crypto_key_is_public_only(NULL));
    sn_crypto_key_free(key);
}

static void file_errors(void **state)
{
    (void)state;
    sn_crypto_key *key = sn_crypto_key_new();
    assert_fails_with(sn_crypto_key_load(key, fx_path("missing.pem"), false), SN_ERR_FILE_NOT_FOUND,
                      fx_path("missing.pem"));
    /* Tests run as root, so permissions do not block reads: a directory cannot be read. */
    assert_fails_with(sn_crypto_key_load(key, fx_dir, false), SN_ERR_CANT_OPEN, "directory");
    assert_message_has(fx_dir);
    fx_write("empty.pem", "", 0);
    assert_fails_with(sn_crypto_key_load(key, fx_path("empty.pem"), false), SN_ERR_FILE_CORRUPT,
                      "is empty");
    assert_message_has("empty.pem");
    /* 10 MiB: refused by its size before any parsing. */
    assert_int_equal(fx_sh("head -c 10485760 /dev/zero > big.pem"), 0);
    assert_fails_with(sn_crypto_key_load(key, fx_path("big.pem"), false), SN_ERR_FILE_CORRUPT,
                      "10485760 bytes");
    assert_message_has("4 MiB");
    /* A device that never ends is cut off at the cap too. */
    assert_fails_with(sn_crypto_key_load(key, "/dev/zero", false), SN_ERR_FILE_CORRUPT,
                      "larger than 4194304 bytes");
    assert_null(sn_crypto_key_handle(key));
    sn_crypto_key_free(key);
}

static void content_errors(void **state)
{
    (void)state;
    sn_crypto_key *key = sn_crypto_key_new();
    /* Truncated: the first half of a PEM key, END line gone. */
    char *pem = fx_read("rsa.pem");
    fx_write("trunc.pem", pem, strlen(pem) / 2);
    assert_fails_with(sn_crypto_key_load(key, fx_path("trunc.pem"), false), SN_ERR_FILE_CORRUPT,
                      "truncated PEM");
    assert_message_has("trunc.pem");
    assert_message_has("line 1");
    /* A bad character inside the base64 data: named with its line. */
    char *bad = strdup(pem);
    char *line3 = strchr(strchr(bad, '\n') + 1, '\n') + 1;
    line3[5] = '#';
    fx_write("badchar.pem", bad, strlen(bad));
    assert_fails_with(sn_crypto_key_load(key, fx_path("badchar.pem"), false), SN_ERR_FILE_CORRUPT,
                      "PEM parse error at line 3");
    /* Well-formed PEM whose content is not a key. */
    line3[5] = 'A';
    memcpy(strchr(bad, '\n') + 1, "AAAAAAAAAAAAAAAA", 16);
    fx_write("badder.pem", bad, strlen(bad));
    assert_fails_with(sn_crypto_key_load(key, fx_path("badder.pem"), false), SN_ERR_FILE_CORRUPT,
                      "not a valid key");
    free(bad), free(pem);

    /* Wrong type: a certificate where a key is wanted. */
    assert_fails_with(sn_crypto_key_load(key, fx_path("ca.pem"), false), SN_ERR_FILE_CORRUPT,
                      "holds a certificate, not a private key");
    assert_fails_with(sn_crypto_key_load(key, fx_path("leaf.csr"), true), SN_ERR_FILE_CORRUPT,
                      "certificate request");
    /* Encrypted keys, PKCS#8 and legacy: never prompt, say why. */
    assert_fails_with(sn_crypto_key_load(key, fx_path("enc.pem"), false), SN_ERR_FILE_CORRUPT,
                      "passphrase");
    assert_fails_with(sn_crypto_key_load(key, fx_path("enc_trad.pem"), false), SN_ERR_FILE_CORRUPT,
                      "encrypted");
    /* Garbage and DER. */
    unsigned char junk[1000];
    assert_int_equal(sn_crypto_generate_random_bytes(junk, sizeof junk), SN_OK);
    junk[0] = 0x01;
    fx_write("junk.pem", (const char *)junk, sizeof junk);
    assert_fails_with(sn_crypto_key_load(key, fx_path("junk.pem"), false), SN_ERR_FILE_CORRUPT,
                      "no PEM data");
    assert_fails_with(sn_crypto_key_load(key, fx_path("ec256.der"), false), SN_ERR_FILE_CORRUPT,
                      "DER");
    assert_fails_with(sn_crypto_key_load_from_string(key, "", false), SN_ERR_FILE_CORRUPT, "empty");
    assert_fails_with(sn_crypto_key_load_from_string(
                          key, "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", false),
                      SN_ERR_FILE_CORRUPT, "no data");
    assert_fails_with(
        sn_crypto_key_load_from_string(
            key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END CERTIFICATE-----\n", false),
        SN_ERR_FILE_CORRUPT, "line 3");
    assert_null(sn_crypto_key_handle(key));
    sn_crypto_key_free(key);
}

/* Allocation failures anywhere in load/save end in a clean error, never a crash or a leak. */
static void allocation_failures(void **state)
{
    (void)state;
    char *pem = fx_read("ec256.pem");
    int succeeded = 0;
    for (long n = 0; n < 20; n++) {
        sn_test_fail_alloc_after(n, false);
        sn_crypto_key *key = sn_crypto_key_new();
        if (key) {
            sn_err err = sn_crypto_key_load_from_string(key, pem, false);
            if (err == SN_OK) {
                char *s = sn_crypto_key_save_to_string(key, false);
                if (s) succeeded++;
                sn_free(s);
            } else {
                assert_int_equal(err, SN_ERR_OUT_OF_MEMORY);
            }
        }
        sn_test_fail_alloc_after(-1, false);
        sn_crypto_key_free(key);
    }
    assert_true(succeeded > 0);
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openssl_keys_round_trip),
        cmocka_unit_test(traditional_formats_load),
        cmocka_unit_test(public_key_files),
        cmocka_unit_test(other_spellings),
        cmocka_unit_test(damaged_input_never_crashes),
        cmocka_unit_test(private_key_loaded_public_only),
        cmocka_unit_test(save_to_file_and_reload),
        cmocka_unit_test(generated_keys_round_trip),
        cmocka_unit_test(load_replaces_and_failure_keeps),
        cmocka_unit_test(empty_key),
        cmocka_unit_test(null_arguments),
        cmocka_unit_test(file_errors),
        cmocka_unit_test(content_errors),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
