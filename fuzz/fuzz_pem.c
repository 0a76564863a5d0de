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
#include "keys_internal.h" /* the backend handle behind a key or certificate */

static sn_crypto_key *sign_key;
static sn_x509_cert *base_cert;
/* The objects every load goes into. Between inputs they hold the same backend key and chain as
 * sign_key and base_cert (a second reference, not a second decode: OpenSSL 3's decoders cost
 * far more than anything else an input does, and reloading the base PEM before every input
 * made them most of the run). */
static sn_crypto_key *held_key;
static sn_x509_cert *held_cert;

static const sn_tls_backend *backend(void)
{
    return sn_tls_backend_get();
}

static void hold_base_key(void)
{
    sn_crypto_key_free(held_key);
    held_key = sn_crypto_key_wrap(backend()->key_ref(sn_crypto_key_handle(sign_key)));
    FUZZ_CHECK(held_key);
}

static void hold_base_cert(void)
{
    sn_x509_cert_free(held_cert);
    held_cert = sn_x509_cert_wrap(backend()->chain_ref(sn_x509_cert_handle(base_cert)));
    FUZZ_CHECK(held_cert);
}

static void setup(void)
{
    sign_key = sn_crypto_generate_ec("P-256");
    base_cert =
        sign_key ? sn_crypto_generate_self_signed_certificate(sign_key, NULL, NULL, NULL) : NULL;
    FUZZ_CHECK(base_cert);
    hold_base_key();
    hold_base_cert();
}

static void check_key(bool public_only, const char *pem)
{
    sn_tls_key *before = sn_crypto_key_handle(held_key);
    sn_err e = sn_crypto_key_load_from_string(held_key, pem, public_only);
    if (e != SN_OK) {
        FUZZ_CHECK(*sn_last_error_message());
        /* Unchanged: the very same key. sign_key holds a reference to it, so its address cannot
         * have been freed and handed to a new key in between; and it is still the private half
         * of the base certificate's key (a key modified in place would not be). */
        FUZZ_CHECK(sn_crypto_key_handle(held_key) == before);
        FUZZ_CHECK(!sn_crypto_key_is_public_only(held_key));
        FUZZ_CHECK(sn_x509_cert_matches_key(base_cert, held_key));
        return;
    }
    FUZZ_CHECK(sn_crypto_key_handle(held_key) != before);
    FUZZ_CHECK(sn_crypto_key_is_public_only(held_key) == public_only);
    char *out = sn_crypto_key_save_to_string(held_key, public_only);
    FUZZ_CHECK(out);
    /* What we write, we read back. */
    sn_crypto_key *k2 = sn_crypto_key_new();
    FUZZ_CHECK(sn_crypto_key_load_from_string(k2, out, public_only) == SN_OK);
    sn_crypto_key_free(k2);
    sn_free(out);
    hold_base_key();
}

static void check_cert(const char *pem)
{
    sn_tls_chain *before = sn_x509_cert_handle(held_cert);
    sn_err e = sn_x509_cert_load_from_string(held_cert, pem);
    if (e != SN_OK) {
        FUZZ_CHECK(*sn_last_error_message());
        /* Unchanged: the same chain (base_cert keeps it alive), still one certificate. */
        FUZZ_CHECK(sn_x509_cert_handle(held_cert) == before);
        FUZZ_CHECK(sn_x509_cert_get_count(held_cert) == 1);
        FUZZ_CHECK(sn_x509_cert_matches_key(held_cert, sign_key));
        return;
    }
    FUZZ_CHECK(sn_x509_cert_handle(held_cert) != before);
    char *out = sn_x509_cert_save_to_string(held_cert);
    FUZZ_CHECK(out);
    int n = sn_x509_cert_get_count(held_cert);
    FUZZ_CHECK(n >= 1);
    sn_x509_cert *c2 = sn_x509_cert_new();
    FUZZ_CHECK(sn_x509_cert_load_from_string(c2, out) == SN_OK);
    FUZZ_CHECK(sn_x509_cert_get_count(c2) == n);
    sn_x509_cert_free(c2);
    (void)sn_x509_cert_matches_key(held_cert, sign_key);
    char *fp = sn_x509_cert_get_fingerprint_sha256(held_cert);
    sn_free(fp);
    sn_free(out);
    hold_base_cert();
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
