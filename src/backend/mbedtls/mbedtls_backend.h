/* Private to the mbed TLS backend (src/backend/mbedtls/mbedtls_*.c). */
#ifndef SN_MBEDTLS_BACKEND_H
#define SN_MBEDTLS_BACKEND_H

#include "backend.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
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

/* mbedtls_inspect.c: what a session shows of itself (the peer's chain, certificate text, the
 * key log, the trace, verification messages). */

/* A config's key log and trace callbacks (the params' fields), kept in the config. */
typedef struct sn_mbed_observer {
    void (*keylog)(void *user, const char *line);
    void *keylog_user;
    sn_tls_trace_fn trace;
    void *trace_user;
} sn_mbed_observer;
/* Copies the params' callbacks into *obs (which lives as long as conf) and hooks the key log
 * into conf (mbedtls_ssl_conf_export_keys_ext_cb). */
void sn_mbed_observe_config(mbedtls_ssl_config *conf, sn_mbed_observer *obs,
                            const sn_tls_config_params *p);

/* One direction of a TLS stream, parsed record by record for the trace. */
typedef struct sn_mbed_stream_parse {
    uint8_t hdr[5], hs[4];
    size_t hdr_len, body_left, hs_len, hs_left;
    bool encrypted; /* a ChangeCipherSpec went this way: handshake records are Finished */
} sn_mbed_stream_parse;

/* A session's trace: handshake messages and ChangeCipherSpec from the records it sends and
 * receives (mbed TLS 2.28 has no message callback), alerts from mbed TLS's debug lines. */
typedef struct sn_mbed_trace {
    const sn_mbed_observer *obs; /* NULL: no trace */
    const void *session;
    bool datagram;
    int max_sent_seq;   /* datagram: highest message_seq sent (-1: none) */
    uint64_t recv_seen; /* datagram: message_seq values (< 64) already reported as received */
    int ccs_sent, fin_sent;
    bool ccs_recv, fin_recv;
    sn_mbed_stream_parse dir[2]; /* stream: [0] received, [1] sent */
} sn_mbed_trace;
/* Starts the trace of a session when the config has one: conf must be the session's own
 * mbed TLS config (its debug callback is pointed at *t). False when there is nothing to trace. */
bool sn_mbed_trace_start(sn_mbed_trace *t, const sn_mbed_observer *obs, const void *session,
                         bool datagram, mbedtls_ssl_config *conf);
/* Bytes the session sent or received through its transport. */
void sn_mbed_trace_io(sn_mbed_trace *t, bool sent, const unsigned char *data, size_t len);

/* What failed verification, noted from the verify callback (every certificate, top first). */
typedef struct sn_mbed_verify {
    int rank;            /* of the noted problem (0: none) */
    uint32_t flags_seen; /* every certificate's flags so far */
    char reason[96];     /* "certificate has expired", "self-signed certificate", ... */
    char detail[400];    /* "CN=x expired on 2021-01-02 03:04:05 UTC", "CN=x, issued by CN=y" */
    char names[400];     /* hostname mismatch: "it names DNS:localhost" */
} sn_mbed_verify;
void sn_mbed_verify_note(sn_mbed_verify *v, const mbedtls_x509_crt *crt, int depth, uint32_t flags);
/* The verification failure as "reason (detail)", the way the OpenSSL backend words it where
 * both libraries know the cause; else the first line of mbed TLS's own description. */
void sn_mbed_verify_text(const sn_mbed_verify *v, uint32_t flags, char *out, size_t cap);

/* Subject, issuer, names, validity and fingerprint of one certificate. */
void sn_mbed_cert_info(const mbedtls_x509_crt *crt, sn_x509_info *out);
/* subjectAltNames as "DNS:a, IP:1.2.3.4" ("" when none). */
void sn_mbed_cert_names(const mbedtls_x509_crt *crt, char *out, size_t cap);
sn_err sn_mbed_chain_info(const sn_tls_chain *chain, int index, sn_x509_info *out);
/* A new chain holding copies of the certificates of list (leaf first); NULL when empty. */
sn_tls_chain *sn_mbed_chain_copy(const mbedtls_x509_crt *list);
sn_tls_chain *sn_mbed_peer_chain(const sn_tls_session *s);
/* "close_notify", "handshake_failure", ...: OpenSSL's long alert names. */
const char *sn_mbed_alert_name(int desc);

#endif
