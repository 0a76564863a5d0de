/* Private to the OpenSSL backend (src/tls/openssl_*.c). */
#ifndef SN_TLS_OPENSSL_H
#define SN_TLS_OPENSSL_H

#include "backend.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdatomic.h>

struct sn_tls_key {
    EVP_PKEY *pkey;
    bool public_only;
    atomic_int refs;
};

struct sn_tls_chain {
    STACK_OF(X509) * certs; /* leaf first, in load order */
    atomic_int refs;
};

/* A human-readable description of the OpenSSL error queue (and clears it); `fallback` when the
 * queue is empty. Returns a pointer into a thread-local buffer. */
const char *sn_ossl_error_string(const char *fallback);

/* openssl_crypto.c: keys, chains, generation, random, HMAC. */
sn_err sn_ossl_key_load_pem(const char *pem, size_t len, bool public_only, sn_tls_key **out);
char *sn_ossl_key_save_pem(const sn_tls_key *key, bool public_only);
bool sn_ossl_key_is_public_only(const sn_tls_key *key);
sn_tls_key *sn_ossl_key_generate_rsa(int bits);
sn_tls_key *sn_ossl_key_generate_ec(const char *curve);
sn_tls_key *sn_ossl_key_ref(sn_tls_key *key);
void sn_ossl_key_unref(sn_tls_key *key);
sn_err sn_ossl_chain_load_pem(const char *pem, size_t len, sn_tls_chain **out);
char *sn_ossl_chain_save_pem(const sn_tls_chain *chain);
sn_tls_chain *sn_ossl_chain_self_signed(const sn_tls_key *key, const char *issuer,
                                        const char *not_before, const char *not_after);
bool sn_ossl_key_matches_chain(const sn_tls_key *key, const sn_tls_chain *chain);
sn_err sn_ossl_chain_fingerprint(const sn_tls_chain *chain, char out[96]);
/* SHA-256 of one certificate's DER as "AB:CD:..". */
sn_err sn_ossl_cert_fingerprint(const X509 *cert, char out[96]);
int sn_ossl_chain_count(const sn_tls_chain *chain);
/* The subjectAltNames of x as "DNS:a, IP:1.2.3.4" ("" when none). */
void sn_ossl_cert_names(const X509 *x, char *out, size_t cap);
void sn_ossl_cert_info(const X509 *x, sn_x509_info *out);
sn_err sn_ossl_chain_info(const sn_tls_chain *chain, int index, sn_x509_info *out);
/* A chain holding new references to the certificates of certs; NULL when empty. */
sn_tls_chain *sn_ossl_chain_from_stack(STACK_OF(X509) * certs);
sn_tls_chain *sn_ossl_chain_ref(sn_tls_chain *chain);
void sn_ossl_chain_unref(sn_tls_chain *chain);
sn_err sn_ossl_random_bytes(void *buf, size_t len);
void sn_ossl_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                         uint8_t out[32]);

/* openssl_session.c: contexts and sessions. */
sn_tls_config *sn_ossl_config_new(const sn_tls_config_params *params);
sn_tls_config *sn_ossl_config_ref(sn_tls_config *config);
void sn_ossl_config_unref(sn_tls_config *config);
sn_tls_session *sn_ossl_session_new(sn_tls_config *config, const sn_tls_session_params *params,
                                    const sn_tls_io *io);
void sn_ossl_session_free(sn_tls_session *s);
sn_tls_result sn_ossl_handshake(sn_tls_session *s);
sn_tls_result sn_ossl_read(sn_tls_session *s, void *buf, size_t cap, size_t *n);
sn_tls_result sn_ossl_write(sn_tls_session *s, const void *buf, size_t len, size_t *n);
void sn_ossl_close(sn_tls_session *s);
sn_tls_failure sn_ossl_failure(const sn_tls_session *s, const char **message);
size_t sn_ossl_pending(const sn_tls_session *s);
bool sn_ossl_has_buffered_input(const sn_tls_session *s);
int64_t sn_ossl_next_timeout_ms(sn_tls_session *s);
sn_tls_result sn_ossl_handle_timeout(sn_tls_session *s);
size_t sn_ossl_max_payload(const sn_tls_session *s);
size_t sn_ossl_record_overhead(const sn_tls_session *s);
const char *sn_ossl_describe(const sn_tls_session *s);
sn_err sn_ossl_peer_fingerprint(const sn_tls_session *s, char out[96]);
bool sn_ossl_session_resumed(const sn_tls_session *s);
sn_tls_chain *sn_ossl_peer_chain(const sn_tls_session *s);
bool sn_ossl_peer_next_epoch_possible(const sn_tls_session *s);

#endif
