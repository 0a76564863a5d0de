/* sealnet — TLS options (Godot: TLSOptions). One options object may be shared by any number of
 * connections; it keeps its own references to the key and certificates given to it. */
#ifndef SEALNET_TLS_OPTIONS_H
#define SEALNET_TLS_OPTIONS_H

#include <sealnet/crypto.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_tls_options sn_tls_options;

/* Client options that verify the peer's chain against trusted_chain (NULL: the system CAs, found
 * as OpenSSL finds them, SSL_CERT_FILE / SSL_CERT_DIR honoured; on mbed TLS the same variables,
 * else /etc/ssl/certs/ca-certificates.crt) and its name against the host
 * given to connect_to_* or common_name_override (NULL or "": none), which is also the SNI. */
SN_API sn_tls_options *sn_tls_options_client(const sn_x509_cert *trusted_chain,
                                             const char *common_name_override);
/* Client options that skip name checks: trusted_chain NULL verifies nothing at all; a chain is
 * verified but the name is not. */
SN_API sn_tls_options *sn_tls_options_client_unsafe(const sn_x509_cert *trusted_chain);
/* Server options. NULL (with a message) when the key and certificate do not match, the key is
 * public-only, or either is empty. */
SN_API sn_tls_options *sn_tls_options_server(const sn_crypto_key *key,
                                             const sn_x509_cert *certificate);
/* Frees the options; NULL is fine. Connections already made with them keep working. */
SN_API void sn_tls_options_free(sn_tls_options *opts);
SN_API bool sn_tls_options_is_server(const sn_tls_options *opts);
SN_API bool sn_tls_options_is_unsafe_client(const sn_tls_options *opts);
/* The override given to sn_tls_options_client, or "" when none. Owned by opts. */
SN_API const char *sn_tls_options_get_common_name_override(const sn_tls_options *opts);

#ifdef __cplusplus
}
#endif
#endif
