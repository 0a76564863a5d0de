/* Shared by the test_crypto_*.c programs: fixtures made with the `openssl` command and small
 * assertion helpers. Each test program includes it once. */
#ifndef SN_TEST_CRYPTO_COMMON_H
#define SN_TEST_CRYPTO_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include <sealnet/sealnet.h>

/* The backend's own error state is clean after every call, failed or not: OpenSSL's error
 * queue is empty (a stale entry would leak into a later call's message). mbed TLS keeps no
 * error state between calls, so there is nothing to check on it. */
#ifdef SN_TEST_BACKEND_OPENSSL
#include <openssl/err.h>
#define assert_backend_errors_clear() assert_int_equal(ERR_peek_error(), 0)
#else
#define assert_backend_errors_clear() ((void)0)
#endif

/* Fails the test (showing the message) unless the last error message contains needle. */
#define assert_message_has(needle)                                                                 \
    do {                                                                                           \
        const char *msg_ = sn_last_error_message();                                                \
        if (!strstr(msg_, (needle))) {                                                             \
            print_error("last error message \"%s\" does not contain \"%s\"\n", msg_, (needle));    \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* A failing call: its code, a message naming the cause, and the backend's error state clean. */
#define assert_fails_with(expr, code, needle)                                                      \
    do {                                                                                           \
        sn_err got_ = (expr);                                                                      \
        if (got_ != (code))                                                                        \
            print_error("got %s (%s)\n", sn_err_string(got_), sn_last_error_message());            \
        assert_int_equal(got_, (code));                                                            \
        assert_message_has(needle);                                                                \
        assert_backend_errors_clear();                                                             \
    } while (0)

static char *fx_dir;

static inline char *fx_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", fx_dir, name);
    return p;
}

/* The whole file as a NUL-terminated string (caller frees). */
static inline char *fx_read(const char *name)
{
    char *s = sn_test_read_file(fx_path(name), NULL);
    if (!s) print_error("cannot read fixture %s\n", name);
    assert_non_null(s);
    return s;
}

static inline void fx_write(const char *name, const char *data, size_t len)
{
    assert_true(sn_test_write_file(fx_path(name), data, len));
}

/* Output of a shell command run inside the fixture directory (caller frees). */
static inline char *fx_sh_output(const char *cmd)
{
    char *out = sn_test_sh_output("cd '%s' && %s", fx_dir, cmd);
    assert_non_null(out);
    return out;
}

static inline int fx_sh(const char *cmd)
{
    return sn_test_sh("cd '%s' && (%s) >/dev/null 2>&1", fx_dir, cmd);
}

/* Keys and a three-certificate chain made by the openssl command. */
static const char fx_script[] =
    "set -e\n"
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec256.pem\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.pem\n"
    "openssl pkey -in rsa.pem -pubout -out rsa_pub.pem\n"
    "openssl pkey -in ec256.pem -pubout -out ec256_pub.pem\n"
    "openssl pkey -in rsa.pem -traditional -out rsa_trad.pem\n"
    "openssl rsa -in rsa.pem -RSAPublicKey_out -out rsa_pkcs1_pub.pem\n"
    "openssl ecparam -name prime256v1 -genkey -out ec_trad.pem\n"
    "openssl pkey -in ec256.pem -outform DER -out ec256.der\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:x "
    "-out enc.pem\n"
    "openssl ec -in ec_trad.pem -aes256 -passout pass:x -out enc_trad.pem\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out int.key\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf.key\n"
    "openssl req -x509 -new -key ca.key -subj /CN=Test-Root -days 30 -out ca.pem\n"
    "printf 'basicConstraints=critical,CA:TRUE\\n' > ca.ext\n"
    "printf 'basicConstraints=critical,CA:FALSE\\nsubjectAltName=DNS:leaf.test\\n' > leaf.ext\n"
    "openssl req -new -key int.key -subj /CN=Test-Intermediate -out int.csr\n"
    "openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 30 "
    "-extfile ca.ext -out int.pem\n"
    "openssl req -new -key leaf.key -subj /CN=leaf.test -out leaf.csr\n"
    "openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -set_serial 3 -days 30 "
    "-extfile leaf.ext -out leaf.pem\n"
    "cat leaf.pem int.pem ca.pem > chain.pem\n"
    "openssl verify -CAfile ca.pem -untrusted int.pem leaf.pem\n";

static inline int fx_setup(void **state)
{
    (void)state;
    if (!sn_test_have("openssl")) {
        fprintf(stderr, "the openssl command is needed for these tests\n");
        return -1;
    }
    fx_dir = sn_test_tmpdir();
    if (!fx_dir) return -1;
    char *script = sn_test_path(fx_dir, "make.sh");
    sn_test_write_file(script, fx_script, strlen(fx_script));
    int rc = sn_test_sh("cd '%s' && sh make.sh >make.log 2>&1", fx_dir);
    free(script);
    if (rc != 0) {
        sn_test_sh("cat '%s/make.log' >&2", fx_dir);
        return -1;
    }
    return 0;
}

static inline int fx_teardown(void **state)
{
    (void)state;
    if (fx_dir) {
        if (!getenv("SN_KEEP_TMP")) sn_test_rmtree(fx_dir);
        free(fx_dir);
        fx_dir = NULL;
    }
    return 0;
}

#endif
