/* fuzz_pem: PEM key and certificate loading, and the issuer-name and date parsing of
 * sn_crypto_generate_self_signed_certificate.
 *
 * First byte selects the mode (low 2 bits):
 *   0  sn_crypto_key_load_from_string(private)
 *   1  sn_crypto_key_load_from_string(public_only)
 *   2  sn_x509_cert_load_from_string
 *   3  self-signed certificate: the rest split at '\n' into issuer, not_before, not_after
 *      (bit 2 of the first byte: issuer NULL; bit 3: dates NULL), signed with one P-256 key made
 *      at start-up.
 * Loads go into objects that already hold something, so "a failed load leaves the object as it
 * was" is checked too. */
#include "fuzz_common.h"

static sn_crypto_key *sign_key;
static sn_x509_cert *base_cert;
static char *base_key_pem, *base_cert_pem;

static void setup(void)
{
    sign_key = sn_crypto_generate_ec("P-256");
    base_cert =
        sign_key ? sn_crypto_generate_self_signed_certificate(sign_key, NULL, NULL, NULL) : NULL;
    FUZZ_CHECK(base_cert);
    base_key_pem = sn_crypto_key_save_to_string(sign_key, false);
    base_cert_pem = sn_x509_cert_save_to_string(base_cert);
    FUZZ_CHECK(base_key_pem && base_cert_pem);
}

static void check_key(bool public_only, const char *pem)
{
    sn_crypto_key *k = sn_crypto_key_new();
    FUZZ_CHECK(k && sn_crypto_key_load_from_string(k, base_key_pem, false) == SN_OK);
    sn_err e = sn_crypto_key_load_from_string(k, pem, public_only);
    if (e != SN_OK) {
        FUZZ_CHECK(*sn_last_error_message());
        /* Unchanged: still the base key. */
        char *again = sn_crypto_key_save_to_string(k, false);
        FUZZ_CHECK(again && !strcmp(again, base_key_pem));
        sn_free(again);
    } else {
        FUZZ_CHECK(sn_crypto_key_is_public_only(k) == public_only);
        char *out = sn_crypto_key_save_to_string(k, public_only);
        FUZZ_CHECK(out);
        /* What we write, we read back. */
        sn_crypto_key *k2 = sn_crypto_key_new();
        FUZZ_CHECK(sn_crypto_key_load_from_string(k2, out, public_only) == SN_OK);
        sn_crypto_key_free(k2);
        sn_free(out);
    }
    sn_crypto_key_free(k);
}

static void check_cert(const char *pem)
{
    sn_x509_cert *c = sn_x509_cert_new();
    FUZZ_CHECK(c && sn_x509_cert_load_from_string(c, base_cert_pem) == SN_OK);
    sn_err e = sn_x509_cert_load_from_string(c, pem);
    char *out = sn_x509_cert_save_to_string(c);
    FUZZ_CHECK(out);
    if (e != SN_OK) {
        FUZZ_CHECK(*sn_last_error_message());
        FUZZ_CHECK(!strcmp(out, base_cert_pem));
        FUZZ_CHECK(sn_x509_cert_get_count(c) == 1);
    } else {
        int n = sn_x509_cert_get_count(c);
        FUZZ_CHECK(n >= 1);
        sn_x509_cert *c2 = sn_x509_cert_new();
        FUZZ_CHECK(sn_x509_cert_load_from_string(c2, out) == SN_OK);
        FUZZ_CHECK(sn_x509_cert_get_count(c2) == n);
        sn_x509_cert_free(c2);
        (void)sn_x509_cert_matches_key(c, sign_key);
        char *fp = sn_x509_cert_get_fingerprint_sha256(c);
        sn_free(fp);
    }
    sn_free(out);
    sn_x509_cert_free(c);
}

static void check_self_signed(char *text, uint8_t flags)
{
    char *fields[3] = {text, NULL, NULL};
    for (int i = 1; i < 3; i++) {
        char *nl = fields[i - 1] ? strchr(fields[i - 1], '\n') : NULL;
        if (!nl) break;
        *nl = '\0';
        fields[i] = nl + 1;
    }
    const char *issuer = (flags & 4) ? NULL : fields[0];
    const char *nb = (flags & 8) ? NULL : fields[1];
    const char *na = (flags & 8) ? NULL : fields[2];
    sn_x509_cert *c = sn_crypto_generate_self_signed_certificate(sign_key, issuer, nb, na);
    if (!c) {
        FUZZ_CHECK(*sn_last_error_message());
        return;
    }
    char *pem = sn_x509_cert_save_to_string(c);
    FUZZ_CHECK(pem);
    sn_x509_cert *c2 = sn_x509_cert_new();
    FUZZ_CHECK(sn_x509_cert_load_from_string(c2, pem) == SN_OK);
    FUZZ_CHECK(sn_x509_cert_matches_key(c2, sign_key));
    sn_x509_cert_free(c2);
    sn_free(pem);
    sn_x509_cert_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!sign_key) setup();
    if (size < 1) return 0;
    uint8_t mode = data[0];
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0'; /* the API takes C strings: an embedded NUL simply ends it */
    switch (mode & 3) {
    case 0:
        check_key(false, text);
        break;
    case 1:
        check_key(true, text);
        break;
    case 2:
        check_cert(text);
        break;
    case 3:
        check_self_signed(text, mode);
        break;
    }
    free(text);
    return 0;
}
