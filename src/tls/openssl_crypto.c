/* OpenSSL backend: keys, certificate chains, generation, random bytes, HMAC. (stub) */
#include "openssl.h"

sn_err sn_ossl_key_load_pem(const char *pem, size_t len, bool public_only, sn_tls_key **out)
{
    SN_UNUSED(pem), SN_UNUSED(len), SN_UNUSED(public_only), SN_UNUSED(out);
    return sn_fail(SN_ERR_UNAVAILABLE, "not implemented");
}
char *sn_ossl_key_save_pem(const sn_tls_key *key, bool public_only)
{
    SN_UNUSED(key), SN_UNUSED(public_only);
    return NULL;
}
bool sn_ossl_key_is_public_only(const sn_tls_key *key)
{
    return key->public_only;
}
sn_tls_key *sn_ossl_key_generate_rsa(int bits)
{
    SN_UNUSED(bits);
    return NULL;
}
sn_tls_key *sn_ossl_key_generate_ec(const char *curve)
{
    SN_UNUSED(curve);
    return NULL;
}
sn_tls_key *sn_ossl_key_ref(sn_tls_key *key)
{
    return key;
}
void sn_ossl_key_unref(sn_tls_key *key)
{
    SN_UNUSED(key);
}
sn_err sn_ossl_chain_load_pem(const char *pem, size_t len, sn_tls_chain **out)
{
    SN_UNUSED(pem), SN_UNUSED(len), SN_UNUSED(out);
    return sn_fail(SN_ERR_UNAVAILABLE, "not implemented");
}
char *sn_ossl_chain_save_pem(const sn_tls_chain *chain)
{
    SN_UNUSED(chain);
    return NULL;
}
sn_tls_chain *sn_ossl_chain_self_signed(const sn_tls_key *key, const char *issuer,
                                        const char *not_before, const char *not_after)
{
    SN_UNUSED(key), SN_UNUSED(issuer), SN_UNUSED(not_before), SN_UNUSED(not_after);
    return NULL;
}
bool sn_ossl_key_matches_chain(const sn_tls_key *key, const sn_tls_chain *chain)
{
    SN_UNUSED(key), SN_UNUSED(chain);
    return false;
}
sn_err sn_ossl_chain_fingerprint(const sn_tls_chain *chain, char out[96])
{
    SN_UNUSED(chain), SN_UNUSED(out);
    return SN_ERR_UNAVAILABLE;
}
sn_tls_chain *sn_ossl_chain_ref(sn_tls_chain *chain)
{
    return chain;
}
void sn_ossl_chain_unref(sn_tls_chain *chain)
{
    SN_UNUSED(chain);
}
sn_err sn_ossl_random_bytes(void *buf, size_t len)
{
    SN_UNUSED(buf), SN_UNUSED(len);
    return SN_ERR_UNAVAILABLE;
}
void sn_ossl_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                         uint8_t out[32])
{
    SN_UNUSED(key), SN_UNUSED(key_len), SN_UNUSED(data), SN_UNUSED(len), SN_UNUSED(out);
}
