/* Private to the mbed TLS backend (src/backend/mbedtls/mbedtls_*.c). */
#ifndef SN_MBEDTLS_BACKEND_H
#define SN_MBEDTLS_BACKEND_H

#include "backend.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <stdatomic.h>

struct sn_tls_key {
    mbedtls_pk_context pk;
    bool public_only;
    atomic_int refs;
};

struct sn_tls_chain {
    mbedtls_x509_crt crt; /* leaf first, in load order (mbed TLS keeps a linked list) */
    int count;
    atomic_int refs;
};

/* mbed TLS's message for an error code (a thread-local buffer). */
const char *sn_mbed_error_string(int code);

/* The process-wide DRBG (seeded once from the system's entropy); thread-safe. Its f_rng form is
 * sn_mbed_rng(sn_mbed_drbg(), buf, len). NULL when seeding failed (message recorded). */
mbedtls_ctr_drbg_context *sn_mbed_drbg(void);
int sn_mbed_rng(void *drbg, unsigned char *buf, size_t len);

/* mbedtls_crypto.c: keys, chains, generation, random, HMAC. */
sn_err sn_mbed_key_load_pem(const char *pem, size_t len, bool public_only, sn_tls_key **out);
char *sn_mbed_key_save_pem(const sn_tls_key *key, bool public_only);
bool sn_mbed_key_is_public_only(const sn_tls_key *key);
sn_tls_key *sn_mbed_key_generate_rsa(int bits);
sn_tls_key *sn_mbed_key_generate_ec(const char *curve);
sn_tls_key *sn_mbed_key_ref(sn_tls_key *key);
void sn_mbed_key_unref(sn_tls_key *key);
sn_err sn_mbed_chain_load_pem(const char *pem, size_t len, sn_tls_chain **out);
char *sn_mbed_chain_save_pem(const sn_tls_chain *chain);
sn_tls_chain *sn_mbed_chain_self_signed(const sn_tls_key *key, const char *issuer,
                                        const char *not_before, const char *not_after);
bool sn_mbed_key_matches_chain(const sn_tls_key *key, const sn_tls_chain *chain);
sn_err sn_mbed_chain_fingerprint(const sn_tls_chain *chain, char out[96]);
/* SHA-256 of one certificate's DER as "AB:CD:..". */
sn_err sn_mbed_cert_fingerprint(const mbedtls_x509_crt *cert, char out[96]);
int sn_mbed_chain_count(const sn_tls_chain *chain);
sn_tls_chain *sn_mbed_chain_ref(sn_tls_chain *chain);
void sn_mbed_chain_unref(sn_tls_chain *chain);
sn_err sn_mbed_random_bytes(void *buf, size_t len);
void sn_mbed_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                         uint8_t out[32]);

/* mbedtls_session.c: contexts and sessions. */
sn_tls_config *sn_mbed_config_new(const sn_tls_config_params *params);
sn_tls_config *sn_mbed_config_ref(sn_tls_config *config);
void sn_mbed_config_unref(sn_tls_config *config);
sn_tls_session *sn_mbed_session_new(sn_tls_config *config, const sn_tls_session_params *params,
                                    const sn_tls_io *io);
void sn_mbed_session_free(sn_tls_session *s);
sn_tls_result sn_mbed_handshake(sn_tls_session *s);
sn_tls_result sn_mbed_read(sn_tls_session *s, void *buf, size_t cap, size_t *n);
sn_tls_result sn_mbed_write(sn_tls_session *s, const void *buf, size_t len, size_t *n);
void sn_mbed_close(sn_tls_session *s);
sn_tls_failure sn_mbed_failure(const sn_tls_session *s, const char **message);
size_t sn_mbed_pending(const sn_tls_session *s);
bool sn_mbed_has_buffered_input(const sn_tls_session *s);
int64_t sn_mbed_next_timeout_ms(sn_tls_session *s);
sn_tls_result sn_mbed_handle_timeout(sn_tls_session *s);
size_t sn_mbed_max_payload(const sn_tls_session *s);
size_t sn_mbed_record_overhead(const sn_tls_session *s);
const char *sn_mbed_describe(const sn_tls_session *s);
sn_err sn_mbed_peer_fingerprint(const sn_tls_session *s, char out[96]);
bool sn_mbed_session_resumed(const sn_tls_session *s);

#endif
