/* Key and certificate generation (Godot: Crypto) and random bytes, through the backend. */
#include "keys_internal.h"

#include <string.h>
#include <strings.h>

sn_crypto_key *sn_crypto_generate_rsa(int bits)
{
    if (bits < 2048)
        return sn_fail_null(SN_ERR_PARAMETER_RANGE_ERROR,
                            "RSA keys of %d bits are too weak; use at least 2048 bits", bits);
    if (bits > 16384)
        return sn_fail_null(SN_ERR_PARAMETER_RANGE_ERROR,
                            "RSA keys of %d bits are refused: at most 16384 bits (generating "
                            "larger keys takes minutes and no peer needs them)",
                            bits);
    sn_tls_key *h = sn_tls_backend_get()->key_generate_rsa(bits);
    return h ? sn_crypto_key_wrap(h) : NULL;
}

sn_crypto_key *sn_crypto_generate_ec(const char *curve)
{
    if (curve && (strcasecmp(curve, "X25519") == 0 || strcasecmp(curve, "X448") == 0))
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "%s is a key-agreement curve, not a signing key; use P-256 or P-384",
                            curve);
    if (curve && strcmp(curve, "P-256") != 0 && strcmp(curve, "P-384") != 0)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "unknown or unsupported curve '%.40s' (supported: P-256, P-384)",
                            curve);
    sn_tls_key *h = sn_tls_backend_get()->key_generate_ec(curve ? curve : "P-256");
    return h ? sn_crypto_key_wrap(h) : NULL;
}

sn_x509_cert *sn_crypto_generate_self_signed_certificate(const sn_crypto_key *key,
                                                         const char *issuer_name,
                                                         const char *not_before,
                                                         const char *not_after)
{
    if (!key) return sn_fail_null(SN_ERR_INVALID_PARAMETER, "NULL key");
    sn_tls_key *h = sn_crypto_key_handle(key);
    if (!h)
        return sn_fail_null(SN_ERR_UNCONFIGURED,
                            "the key is empty; load or generate a key before making a certificate");
    sn_tls_chain *chain =
        sn_tls_backend_get()->chain_self_signed(h, issuer_name, not_before, not_after);
    return chain ? sn_x509_cert_wrap(chain) : NULL;
}

sn_err sn_crypto_generate_random_bytes(void *buf, size_t len)
{
    if (!buf && len > 0) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL buffer for %zu bytes", len);
    if (len == 0) return SN_OK;
    return sn_tls_backend_get()->random_bytes(buf, len);
}
