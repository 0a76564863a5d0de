/* Key and certificate generation, checked by other implementations: the openssl command
 * (x509 -text, verify, pubkey match), GnuTLS certtool, and a Node.js TLS handshake. Also the
 * strict issuer/date parsing, random bytes and HMAC-SHA256. */
#include "test_crypto_common.h"

#include "keys_internal.h"

#include <time.h>

static sn_crypto_key *ec_key; /* one P-256 key shared by the certificate tests */

static int setup(void **state)
{
    if (fx_setup(state) != 0) return -1;
    ec_key = sn_crypto_generate_ec(NULL);
    return ec_key ? 0 : -1;
}

static int teardown(void **state)
{
    sn_crypto_key_free(ec_key);
    return fx_teardown(state);
}

static void save_pair(const sn_crypto_key *key, const sn_x509_cert *cert, const char *prefix)
{
    char name[64];
    snprintf(name, sizeof name, "%s.key", prefix);
    assert_int_equal(sn_crypto_key_save(key, fx_path(name), false), SN_OK);
    snprintf(name, sizeof name, "%s.crt", prefix);
    assert_int_equal(sn_x509_cert_save(cert, fx_path(name)), SN_OK);
}

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        print_error("\"%s\" not found in:\n%s\n", needle, hay);
        fail();
    }
}

static void rsa_sizes(void **state)
{
    (void)state;
    assert_null(sn_crypto_generate_rsa(1024));
    assert_message_has("1024 bits");
    assert_message_has("at least 2048");
    assert_null(sn_crypto_generate_rsa(-5));
    assert_message_has("at least 2048");
    assert_null(sn_crypto_generate_rsa(16385));
    assert_message_has("at most 16384");
    assert_null(sn_crypto_generate_rsa(1 << 30));
    assert_message_has("at most 16384");
    assert_backend_errors_clear();
}

static void ec_curves(void **state)
{
    (void)state;
    assert_null(sn_crypto_generate_ec("X25519"));
    assert_message_has("X25519 is a key-agreement curve, not a signing key");
    assert_null(sn_crypto_generate_ec("P-999"));
    assert_message_has("unknown or unsupported curve 'P-999'");
    assert_null(sn_crypto_generate_ec(""));
    assert_message_has("unsupported curve");
    const char *curves[] = {"P-256", "P-384"};
    const char *oids[] = {"prime256v1", "secp384r1"};
    for (int i = 0; i < 2; i++) {
        sn_crypto_key *key = sn_crypto_generate_ec(curves[i]);
        assert_non_null(key);
        assert_false(sn_crypto_key_is_public_only(key));
        assert_int_equal(sn_crypto_key_save(key, fx_path("curve.pem"), false), SN_OK);
        char *text = fx_sh_output("openssl pkey -in curve.pem -noout -text");
        assert_has(text, oids[i]);
        free(text);
        sn_crypto_key_free(key);
    }
}

/* The default certificate, checked by the openssl command. */
static void self_signed_defaults_openssl(void **state)
{
    (void)state;
    sn_x509_cert *cert = sn_crypto_generate_self_signed_certificate(ec_key, NULL, NULL, NULL);
    assert_non_null(cert);
    assert_int_equal(sn_x509_cert_get_count(cert), 1);
    assert_true(sn_x509_cert_matches_key(cert, ec_key));
    save_pair(ec_key, cert, "def");

    char *text = fx_sh_output("openssl x509 -in def.crt -noout -text 2>&1");
    assert_has(text, "Version: 3 (0x2)");
    assert_has(text, "ecdsa-with-SHA256");
    assert_has(text, "Issuer: CN = myserver, O = myorganisation, C = IT");
    assert_has(text, "Subject: CN = myserver, O = myorganisation, C = IT");
    assert_has(text, "X509v3 Basic Constraints: critical");
    assert_has(text, "CA:FALSE");
    assert_has(text, "X509v3 Subject Alternative Name");
    assert_has(text, "DNS:myserver");
    assert_true(strstr(text, "Key Usage: ") == NULL || strstr(text, "Certificate Sign"));
    free(text);

    /* Trusted as its own anchor; the key matches. */
    char *verify = fx_sh_output("openssl verify -CAfile def.crt def.crt 2>&1");
    assert_has(verify, "def.crt: OK");
    free(verify);
    assert_int_equal(fx_sh("openssl verify -CAfile def.crt -verify_hostname myserver def.crt"), 0);
    assert_int_not_equal(fx_sh("openssl verify -CAfile def.crt -verify_hostname other def.crt"), 0);
    char *a = fx_sh_output("openssl x509 -in def.crt -noout -pubkey");
    char *b = fx_sh_output("openssl pkey -in def.key -pubout");
    assert_string_equal(a, b);
    free(a), free(b);

    /* Valid from now for one year: not expiring within 364 days, expired within 366. */
    assert_int_equal(fx_sh("openssl x509 -in def.crt -noout -checkend 31449600"), 0);
    assert_int_equal(fx_sh("openssl x509 -in def.crt -noout -checkend 31622400"), 1);
    char *start = fx_sh_output("date -u -d \"$(openssl x509 -in def.crt -noout -startdate | "
                               "cut -d= -f2)\" +%s");
    long nb = atol(start);
    free(start);
    long now = (long)time(NULL);
    assert_true(nb <= now && nb >= now - 60);

    /* Serial: positive, at most 16 bytes, and a second certificate gets another. */
    char *s1 = fx_sh_output("openssl x509 -in def.crt -noout -serial");
    sn_x509_cert *other = sn_crypto_generate_self_signed_certificate(ec_key, NULL, NULL, NULL);
    assert_int_equal(sn_x509_cert_save(other, fx_path("other.crt")), SN_OK);
    char *s2 = fx_sh_output("openssl x509 -in other.crt -noout -serial");
    assert_string_not_equal(s1, s2);
    assert_true(strlen(s1) <= strlen("serial=") + 32 + 1);
    assert_int_equal(fx_sh("openssl asn1parse -in def.crt | sed -n 4p | grep -q 'INTEGER'"), 0);
    assert_int_equal(fx_sh("openssl asn1parse -in def.crt | sed -n 4p | grep -q 'INTEGER *:-'"), 1);
    free(s1), free(s2);
    sn_x509_cert_free(other);
    sn_x509_cert_free(cert);
}

/* GnuTLS (gnutls-cli) trusts it as its own anchor in a real handshake and checks its name.
 * (certtool --verify refuses any non-CA trust anchor; TLS clients accept the exact certificate.) */
static void self_signed_gnutls(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-cli")) skip();
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(ec_key, "CN=gnutls.test", NULL, NULL);
    assert_non_null(cert);
    save_pair(ec_key, cert, "gnu");
    char *key_path = strdup(fx_path("gnu.key")), *crt_path = strdup(fx_path("gnu.crt"));
    const char *argv[] = {"openssl", "s_server", "-accept", "127.0.0.1:0", "-key",
                          key_path,  "-cert",    crt_path,  "-www",        NULL};
    sn_test_proc *srv = sn_test_spawn(argv);
    assert_non_null(srv);
    assert_true(sn_test_proc_wait_for(srv, "ACCEPT 127.0.0.1:", 10000));
    sn_test_proc_wait_for(srv, "\n", 200);
    const char *at = strstr(sn_test_proc_output(srv), "ACCEPT 127.0.0.1:");
    int port = atoi(at + strlen("ACCEPT 127.0.0.1:"));
    assert_true(port > 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "echo | timeout 10 gnutls-cli --x509cafile gnu.crt -p %d 127.0.0.1 "
             "--verify-hostname=%%s 2>&1",
             port);
    char full[600];
    snprintf(full, sizeof full, cmd, "gnutls.test");
    char *out = fx_sh_output(full);
    assert_has(out, "Status: The certificate is trusted.");
    assert_has(out, "Handshake was completed");
    free(out);
    snprintf(full, sizeof full, cmd, "wrong.test");
    out = fx_sh_output(full);
    assert_has(out, "does not match");
    free(out);
    sn_test_proc_stop(srv);
    free(key_path), free(crt_path);
    sn_x509_cert_free(cert);
}

/* Node.js completes a TLS handshake against it, verifying chain and name. */
static void self_signed_node(void **state)
{
    (void)state;
    if (!sn_test_have("node")) skip();
    sn_crypto_key *rsa = sn_crypto_generate_rsa(2048);
    assert_non_null(rsa);
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(rsa, "CN=localhost,O=sealnet", NULL, NULL);
    assert_non_null(cert);
    save_pair(rsa, cert, "node");
    static const char script[] =
        "const tls=require('tls'),fs=require('fs');"
        "const key=fs.readFileSync('node.key'),cert=fs.readFileSync('node.crt');"
        "const srv=tls.createServer({key,cert},s=>{s.end('hello')});"
        "srv.listen(0,'127.0.0.1',()=>{"
        " const c=tls.connect({host:'127.0.0.1',port:srv.address().port,servername:'localhost',"
        "  ca:cert},()=>{console.log('authorized='+c.authorized)});"
        " c.on('data',d=>{console.log('got='+d);c.end();srv.close()});"
        " c.on('error',e=>{console.log('error='+e.message);srv.close()});"
        "});"
        "setTimeout(()=>{console.log('timeout');process.exit(1)},10000).unref();";
    fx_write("node_check.js", script, strlen(script));
    char *out = fx_sh_output("timeout 20 node node_check.js 2>&1");
    assert_has(out, "authorized=true");
    assert_has(out, "got=hello");
    free(out);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(rsa);
}

static void self_signed_custom(void **state)
{
    (void)state;
    sn_crypto_key *p384 = sn_crypto_generate_ec("P-384");
    sn_x509_cert *cert = sn_crypto_generate_self_signed_certificate(
        p384, " CN = api.example.com , O=Acme\\, Inc., OU=Ops, OU=Net, ST=Lazio, L=Roma, c=it",
        "20200101000000", "20400229235959");
    if (!cert) print_error("%s\n", sn_last_error_message());
    assert_non_null(cert);
    save_pair(p384, cert, "custom");
    char *text = fx_sh_output("openssl x509 -in custom.crt -noout -text -nameopt RFC2253 2>&1");
    assert_has(text,
               "Subject: C=IT,L=Roma,ST=Lazio,OU=Net,OU=Ops,O=Acme\\, Inc.,CN=api.example.com");
    assert_has(text, "Not Before: Jan  1 00:00:00 2020 GMT");
    assert_has(text, "Not After : Feb 29 23:59:59 2040 GMT");
    assert_has(text, "DNS:api.example.com");
    free(text);
    assert_int_equal(fx_sh("openssl verify -CAfile custom.crt custom.crt"), 0);
    sn_x509_cert_free(cert);

    /* An IP address as CN becomes an IP subjectAltName; a CN that names no host gets none. */
    cert = sn_crypto_generate_self_signed_certificate(p384, "CN=127.0.0.1", NULL, NULL);
    assert_int_equal(sn_x509_cert_save(cert, fx_path("ip.crt")), SN_OK);
    assert_int_equal(fx_sh("openssl verify -CAfile ip.crt -verify_ip 127.0.0.1 ip.crt"), 0);
    sn_x509_cert_free(cert);
    cert = sn_crypto_generate_self_signed_certificate(p384, "CN=My Test Server", NULL, NULL);
    assert_non_null(cert);
    assert_int_equal(sn_x509_cert_save(cert, fx_path("nosan.crt")), SN_OK);
    assert_int_equal(fx_sh("openssl x509 -in nosan.crt -noout -text | grep -q 'Alternative'"), 1);
    assert_int_equal(fx_sh("openssl verify -CAfile nosan.crt nosan.crt"), 0);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(p384);
}

static void issuer_name_errors(void **state)
{
    (void)state;
    static const struct {
        const char *issuer, *needle;
    } bad[] = {
        {"", "it is empty"},
        {"O=Acme", "no CN"},
        {"CN=", "the value of CN is empty"},
        {"CN=a,O=", "the value of O is empty"},
        {"CN=a,,O=b", "component 2 is empty"},
        {"CN=a,", "ends with a comma"},
        {"CN=a,X=b", "unknown attribute 'X'"},
        {"CN=a,emailAddress=x@y", "unknown attribute 'emailAddress'"},
        {"CN=a,C=ITA", "two-letter country code"},
        {"CN=a,C=1T", "two-letter country code"},
        {"CN=a,CN=b", "CN appears twice"},
        {"CN=a,junk", "component 2 ('junk') has no '='"},
        {"=x", "no attribute name"},
        {"CN=a=b", "unexpected '='"},
        {"CN=a\\", "lone backslash"},
        {"CN=a\\n", "invalid escape"},
        {"CN=a\x01z", "control character"},
        {"CN=\xff\xfe", "not valid UTF-8"},
        {"CN=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "at most 64"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        sn_x509_cert *cert =
            sn_crypto_generate_self_signed_certificate(ec_key, bad[i].issuer, NULL, NULL);
        if (cert) print_error("issuer '%s' was accepted\n", bad[i].issuer);
        assert_null(cert);
        assert_message_has("invalid issuer name");
        assert_message_has(bad[i].needle);
        assert_backend_errors_clear();
    }
}

static void date_errors(void **state)
{
    (void)state;
    static const struct {
        const char *nb, *na, *needle;
    } bad[] = {
        {"2020010100000", NULL, "expected 14 digits"},
        {"202001010000000", NULL, "expected 14 digits"},
        {"2020-01-01 00:0", NULL, "expected 14 digits"},
        {"", NULL, "expected 14 digits"},
        {"20201301000000", NULL, "month"},
        {"20200001000000", NULL, "month"},
        {"20210229000000", NULL, "no such day"},
        {"20200431000000", NULL, "no such day"},
        {"20200101240000", NULL, "hour"},
        {"20200101006000", NULL, "minute"},
        {"20200101000060", NULL, "second"},
        {"19691231235959", NULL, "1970"},
        {NULL, "2020010100000x", "not_after"},
        {"20300101000000", "20200101000000", "must be later than not_before"},
        {"20300101000000", "20300101000000", "must be later"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        sn_x509_cert *cert =
            sn_crypto_generate_self_signed_certificate(ec_key, NULL, bad[i].nb, bad[i].na);
        if (cert) print_error("dates %s / %s accepted\n", bad[i].nb, bad[i].na);
        assert_null(cert);
        assert_message_has(bad[i].needle);
    }
    /* Leap day in a leap year, and GeneralizedTime years. */
    sn_x509_cert *cert = sn_crypto_generate_self_signed_certificate(ec_key, NULL, "20240229120000",
                                                                    "20991231235959");
    assert_non_null(cert);
    sn_x509_cert_free(cert);
}

static void key_errors(void **state)
{
    (void)state;
    assert_null(sn_crypto_generate_self_signed_certificate(NULL, NULL, NULL, NULL));
    assert_message_has("NULL key");
    sn_crypto_key *empty = sn_crypto_key_new();
    assert_null(sn_crypto_generate_self_signed_certificate(empty, NULL, NULL, NULL));
    assert_message_has("empty");
    char *pub = sn_crypto_key_save_to_string(ec_key, true);
    assert_int_equal(sn_crypto_key_load_from_string(empty, pub, true), SN_OK);
    assert_null(sn_crypto_generate_self_signed_certificate(empty, NULL, NULL, NULL));
    assert_message_has("public only");
    sn_free(pub);
    sn_crypto_key_free(empty);
}

static void random_bytes(void **state)
{
    (void)state;
    assert_fails_with(sn_crypto_generate_random_bytes(NULL, 16), SN_ERR_INVALID_PARAMETER,
                      "NULL buffer");
    assert_int_equal(sn_crypto_generate_random_bytes(NULL, 0), SN_OK);
    unsigned char a[64] = {0}, b[64] = {0}, zero[64] = {0};
    assert_int_equal(sn_crypto_generate_random_bytes(a, sizeof a), SN_OK);
    assert_int_equal(sn_crypto_generate_random_bytes(b, sizeof b), SN_OK);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(a, b, sizeof a);
    /* Every byte value shows up in 1 MiB. */
    size_t n = 1 << 20;
    unsigned char *big = malloc(n);
    assert_int_equal(sn_crypto_generate_random_bytes(big, n), SN_OK);
    int seen[256] = {0};
    for (size_t i = 0; i < n; i++)
        seen[big[i]]++;
    for (int v = 0; v < 256; v++)
        assert_true(seen[v] > 3000 && seen[v] < 5200);
    free(big);
}

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block). */
static void hmac_sha256_vectors(void **state)
{
    (void)state;
    const sn_tls_backend *be = sn_tls_backend_get();
    uint8_t out[32], key[131];
    char h[65];
    memset(key, 0x0b, 20);
    be->hmac_sha256(key, 20, (const uint8_t *)"Hi There", 8, out);
    hex(out, 32, h);
    assert_string_equal(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    be->hmac_sha256((const uint8_t *)"Jefe", 4, (const uint8_t *)"what do ya want for nothing?", 28,
                    out);
    hex(out, 32, h);
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, sizeof key);
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    be->hmac_sha256(key, sizeof key, (const uint8_t *)msg, strlen(msg), out);
    hex(out, 32, h);
    assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* Cost of a cookie-sized HMAC (informational). */
    uint8_t data[48] = {1};
    uint64_t t0 = sn_test_now_ms();
    for (int i = 0; i < 100000; i++)
        be->hmac_sha256(key, 32, data, sizeof data, out);
    uint64_t ms = sn_test_now_ms() - t0;
    fprintf(stderr, "hmac_sha256 (32-byte key, 48-byte message): %.0f ns each\n",
            (double)ms * 1e6 / 100000.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rsa_sizes),
        cmocka_unit_test(ec_curves),
        cmocka_unit_test(self_signed_defaults_openssl),
        cmocka_unit_test(self_signed_gnutls),
        cmocka_unit_test(self_signed_node),
        cmocka_unit_test(self_signed_custom),
        cmocka_unit_test(issuer_name_errors),
        cmocka_unit_test(date_errors),
        cmocka_unit_test(key_errors),
        cmocka_unit_test(random_bytes),
        cmocka_unit_test(hmac_sha256_vectors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
