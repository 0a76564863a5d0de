/* OpenSSL backend: shared contexts and sessions. (stub, being written) */
#include "openssl.h"

sn_tls_config *sn_ossl_config_new(const sn_tls_config_params *params)
{
    SN_UNUSED(params);
    return sn_fail_null(SN_ERR_UNAVAILABLE, "not implemented");
}
sn_tls_config *sn_ossl_config_ref(sn_tls_config *config) { return config; }
void sn_ossl_config_unref(sn_tls_config *config) { SN_UNUSED(config); }
sn_tls_session *sn_ossl_session_new(sn_tls_config *config, const sn_tls_session_params *params,
                                    const sn_tls_io *io)
{
    SN_UNUSED(config), SN_UNUSED(params), SN_UNUSED(io);
    return NULL;
}
void sn_ossl_session_free(sn_tls_session *s) { SN_UNUSED(s); }
sn_tls_result sn_ossl_handshake(sn_tls_session *s)
{
    SN_UNUSED(s);
    return SN_TLS_FAILED;
}
sn_tls_result sn_ossl_read(sn_tls_session *s, void *buf, size_t cap, size_t *n)
{
    SN_UNUSED(s), SN_UNUSED(buf), SN_UNUSED(cap), SN_UNUSED(n);
    return SN_TLS_FAILED;
}
sn_tls_result sn_ossl_write(sn_tls_session *s, const void *buf, size_t len, size_t *n)
{
    SN_UNUSED(s), SN_UNUSED(buf), SN_UNUSED(len), SN_UNUSED(n);
    return SN_TLS_FAILED;
}
void sn_ossl_close(sn_tls_session *s) { SN_UNUSED(s); }
sn_tls_failure sn_ossl_failure(const sn_tls_session *s, const char **message)
{
    SN_UNUSED(s);
    *message = "not implemented";
    return SN_TLS_FAIL_PROTOCOL;
}
size_t sn_ossl_pending(const sn_tls_session *s)
{
    SN_UNUSED(s);
    return 0;
}
int64_t sn_ossl_next_timeout_ms(sn_tls_session *s)
{
    SN_UNUSED(s);
    return -1;
}
sn_tls_result sn_ossl_handle_timeout(sn_tls_session *s)
{
    SN_UNUSED(s);
    return SN_TLS_FAILED;
}
size_t sn_ossl_max_payload(const sn_tls_session *s)
{
    SN_UNUSED(s);
    return 0;
}
const char *sn_ossl_describe(const sn_tls_session *s)
{
    SN_UNUSED(s);
    return "";
}
