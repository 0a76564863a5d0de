/* OpenSSL backend: shared contexts ("configs") and per-connection sessions.
 *
 * A session owns one SSL object whose BIO calls straight into the transport callbacks of its
 * sn_tls_io: no memory BIO in between, so ciphertext is copied once, by OpenSSL itself.
 * Datagram sessions see one datagram per BIO call, the way BIO_s_datagram behaves.
 */
#include "openssl.h"

#include "cert_text.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct sn_tls_config {
    SSL_CTX *ctx;
    atomic_int refs;
    bool server, datagram, verify_name;
    sn_tls_ticket_keys *tickets; /* server: NULL when it issues no tickets */
    sn_tls_saved_sessions saved; /* client: the newest resumable session per server identity */
    void (*keylog)(void *user, const char *line);
    void *keylog_user;
    sn_tls_trace_fn trace;
    void *trace_user;
};

struct sn_tls_session {
    SSL *ssl;
    sn_tls_config *config;
    sn_tls_io io;
    sn_tls_session_params params;
    char *hostname;
    bool datagram, server;
    bool listened;     /* datagram server: the opening ClientHello went through DTLSv1_listen */
    bool send_blocked; /* datagram: the last datagram could not be sent (dropped, reported) */
    bool transport_error, transport_eof;
    bool name_mismatch;
    bool established;  /* the handshake finished once: failures after it are session failures */
    bool ticket_known; /* server: the client offered a ticket under a key we hold */
    char *resume_key;  /* client: identity under which new sessions are saved */
    size_t data_mtu;   /* datagram: largest payload per record, fixed once the handshake is done */
    int peer_alert;    /* fatal alert received (-1: none) */
    bool retransmitting; /* inside DTLSv1_handle_timeout: what is sent now is sent again */
    int max_sent_seq;    /* --trace, datagram: highest handshake message_seq sent (-1: none) */
    STACK_OF(X509) * seen_chain;   /* client: the chain the server presented, kept at verify time */
    char verify_detail[400];       /* client: what failed verification, with names and dates */
    unsigned char first_bytes[24]; /* stream, before the handshake ends: what the remote sent */
    size_t first_len;
    struct hello_screen {        /* stream server: the client's plaintext handshake records */
        unsigned char hdr[5];    /* record header being read */
        unsigned char msg[4];    /* handshake message header being read */
        size_t hdr_len, msg_len; /* bytes of each read so far */
        size_t rec_left;         /* payload bytes of the current record still to come */
        size_t body_left;        /* body bytes of the current handshake message still to come */
        bool handshake;          /* the current record is a handshake record */
        bool done;               /* past the plaintext handshake: nothing more to screen */
        bool refused;            /* a ClientHello over the limit: the session failed */
    } screen;
    sn_tls_failure failure;
    char message[320];
    char description[96];
};

/* --- one-time setup: the BIO method and the SSL ex_data slot --------------------------------- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *io_method;
static int session_index = -1;

static int io_write(BIO *bio, const char *data, int len);
static int io_read(BIO *bio, char *buf, int cap);
static long io_ctrl(BIO *bio, int cmd, long num, void *ptr);
static int io_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static void setup_once(void)
{
    io_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sealnet transport");
    BIO_meth_set_write(io_method, io_write);
    BIO_meth_set_read(io_method, io_read);
    BIO_meth_set_ctrl(io_method, io_ctrl);
    BIO_meth_set_create(io_method, io_create);
    session_index = SSL_get_ex_new_index(0, "sealnet session", NULL, NULL, NULL);
}

static sn_tls_session *session_of(const SSL *ssl)
{
    return SSL_get_ex_data(ssl, session_index);
}

/* --- the BIO: transport callbacks ------------------------------------------------------------ */

static int io_write(BIO *bio, const char *data, int len)
{
    sn_tls_session *s = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    long n = s->io.send(s->io.user, data, (size_t)len);
    if (n >= 0) return (int)n;
    if (n == SN_TLS_IO_WOULD_BLOCK) {
        if (s->datagram) {
            /* A datagram that cannot go out is lost, exactly as if the network had dropped it:
             * OpenSSL must not hold it for a retry with different data. The session reports it
             * (SN_TLS_WANT from write) and the handshake's retransmission timer covers flights. */
            s->send_blocked = true;
            return len;
        }
        BIO_set_retry_write(bio);
        return -1;
    }
    s->transport_error = true;
    return -1;
}

/* The largest ClientHello a stream server accepts. OpenSSL takes up to 128 KiB and reserves a
 * buffer of the declared size as soon as the message header arrives, so a client could make
 * every handshaking connection hold that much by declaring it and sending nothing more (found
 * by fuzz_tls_server). Real ClientHellos are a few hundred bytes to a few KiB (post-quantum key
 * shares and resumption tickets included). */
#define SN_TLS_MAX_CLIENT_HELLO 16384

/* Reads the client's bytes as records before OpenSSL does, until its handshake is encrypted:
 * false (with the session failed and the reason set) at a ClientHello declaring more than
 * SN_TLS_MAX_CLIENT_HELLO bytes, the first or the one after a HelloRetryRequest. */
static bool screen_hello(sn_tls_session *s, const unsigned char *p, size_t n)
{
    struct hello_screen *h = &s->screen;
    while (n && !h->done) {
        if (h->rec_left == 0) {
            size_t take = sizeof h->hdr - h->hdr_len < n ? sizeof h->hdr - h->hdr_len : n;
            memcpy(h->hdr + h->hdr_len, p, take);
            h->hdr_len += take;
            p += take;
            n -= take;
            if (h->hdr_len < sizeof h->hdr) return true;
            h->hdr_len = 0;
            h->rec_left = (size_t)h->hdr[3] << 8 | h->hdr[4];
            h->handshake = h->hdr[0] == SSL3_RT_HANDSHAKE;
            /* Encrypted from here on: application data records (TLS 1.3), or anything after
             * the ChangeCipherSpec before TLS 1.3 (TLS 1.3's is a no-op: a second ClientHello
             * may follow it). Not a record at all: OpenSSL says so itself. */
            if (h->hdr[0] == SSL3_RT_APPLICATION_DATA ||
                (h->hdr[0] == SSL3_RT_CHANGE_CIPHER_SPEC &&
                 SSL_version(s->ssl) != TLS1_3_VERSION) ||
                (h->hdr[0] < SSL3_RT_CHANGE_CIPHER_SPEC || h->hdr[0] > SSL3_RT_APPLICATION_DATA))
                h->done = true;
            continue;
        }
        size_t take = h->rec_left < n ? h->rec_left : n;
        h->rec_left -= take;
        n -= take;
        if (!h->handshake) {
            p += take;
            continue;
        }
        for (; take; take--, p++) {
            if (h->body_left) {
                size_t skip = h->body_left < take ? h->body_left : take;
                h->body_left -= skip;
                p += skip - 1;
                take -= skip - 1;
                continue;
            }
            h->msg[h->msg_len++] = *p;
            if (h->msg_len < sizeof h->msg) continue;
            h->msg_len = 0;
            h->body_left = (size_t)h->msg[1] << 16 | (size_t)h->msg[2] << 8 | h->msg[3];
            if (h->msg[0] == SSL3_MT_CLIENT_HELLO && h->body_left > SN_TLS_MAX_CLIENT_HELLO) {
                h->refused = h->done = true;
                s->failure = SN_TLS_FAIL_PROTOCOL;
                snprintf(s->message, sizeof s->message,
                         "TLS handshake failed: the client declared a %zu-byte ClientHello, over "
                         "this server's limit of %d bytes",
                         h->body_left, SN_TLS_MAX_CLIENT_HELLO);
                return false;
            }
        }
    }
    return true;
}

static int io_read(BIO *bio, char *buf, int cap)
{
    sn_tls_session *s = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    long n = s->io.recv(s->io.user, buf, (size_t)cap);
    if (n > 0 && !s->datagram && !s->established && s->first_len < sizeof s->first_bytes) {
        /* Kept to name what a remote that does not speak TLS sent instead. */
        size_t take = sizeof s->first_bytes - s->first_len;
        if ((size_t)n < take) take = (size_t)n;
        memcpy(s->first_bytes + s->first_len, buf, take);
        s->first_len += take;
    }
    if (n > 0 && s->server && !s->datagram && !s->screen.done &&
        !screen_hello(s, (const unsigned char *)buf, (size_t)n))
        return -1; /* no retry flag: the handshake fails, with the reason screen_hello set */
    if (n >= 0) return (int)n;
    if (n == SN_TLS_IO_WOULD_BLOCK) {
        BIO_set_retry_read(bio);
        return -1;
    }
    if (n == SN_TLS_IO_EOF) {
        s->transport_eof = true;
        return 0;
    }
    s->transport_error = true;
    return -1;
}

static long io_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    SN_UNUSED(num), SN_UNUSED(ptr);
    sn_tls_session *s = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
        return s && s->datagram ? (long)s->params.mtu : 0;
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        return 28; /* IPv4 + UDP headers; only used with a link MTU, which we never set */
    case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT:
    case BIO_CTRL_DGRAM_SET_PEER:
    case BIO_CTRL_DGRAM_SET_CONNECTED:
        return 1;
    default:
        return 0;
    }
}

/* --- callbacks on the context ---------------------------------------------------------------- */

static void info_callback(const SSL *ssl, int where, int ret)
{
    /* SSL_CB_READ_ALERT shares its SSL_CB_ALERT bit with SSL_CB_WRITE_ALERT: test both bits. */
    if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT) return;
    sn_tls_session *s = session_of(ssl);
    if (s && (ret >> 8) == SSL3_AL_FATAL) s->peer_alert = ret & 0xff;
}

static void trace_message(const sn_tls_session *s, bool sent, bool again, const char *content,
                          const char *message, size_t length)
{
    sn_tls_trace_event ev = {sent, (s->retransmitting || again) && sent, content, message, length,
                             s};
    s->config->trace(s->config->trace_user, &ev);
}

static void alert_name(int desc, char *out, size_t cap);

/* SSL_set_msg_callback: one call per handshake message, alert and ChangeCipherSpec. */
static void msg_callback(int write_p, int version, int content_type, const void *buf, size_t len,
                         SSL *ssl, void *arg)
{
    SN_UNUSED(version), SN_UNUSED(arg);
    sn_tls_session *s = session_of(ssl);
    if (!s || !s->config->trace) return;
    const unsigned char *b = buf;
    if (content_type == SSL3_RT_HANDSHAKE && len >= 1) {
        /* DTLS numbers handshake messages (message_seq, bytes 4-5 of the 12-byte header): one
         * sent with a number already sent is a retransmission, whichever call fired the timer. */
        bool again = false;
        if (s->datagram && write_p && len >= 12) {
            int seq = b[4] << 8 | b[5];
            again = seq <= s->max_sent_seq;
            if (!again) s->max_sent_seq = seq;
        }
        trace_message(s, write_p != 0, again, "handshake", sn_tls_handshake_name(b[0]), len);
    } else if (content_type == SSL3_RT_ALERT && len >= 2) {
        char name[64], text[96];
        alert_name(b[1], name, sizeof name);
        snprintf(text, sizeof text, "%s (%s)", name, b[0] == SSL3_AL_FATAL ? "fatal" : "warning");
        trace_message(s, write_p != 0, false, "alert", text, len);
    } else if (content_type == SSL3_RT_CHANGE_CIPHER_SPEC) {
        trace_message(s, write_p != 0, false, "change_cipher_spec", "ChangeCipherSpec", len);
    }
}

static void keylog_callback(const SSL *ssl, const char *line)
{
    sn_tls_session *s = session_of(ssl);
    if (s && s->config->keylog) s->config->keylog(s->config->keylog_user, line);
}

/* What failed verification, for the message: the certificate's dates when it is out of its
 * validity period, its names when it does not name the host. */
static void note_verify_failure(sn_tls_session *s, X509_STORE_CTX *store)
{
    int err = X509_STORE_CTX_get_error(store);
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    if (!cert) cert = X509_STORE_CTX_get0_cert(store);
    if (!cert) return;
    sn_x509_info info;
    sn_ossl_cert_info(cert, &info);
    if (err == X509_V_ERR_CERT_HAS_EXPIRED)
        snprintf(s->verify_detail, sizeof s->verify_detail, "%.150s expired on %s", info.subject,
                 info.not_after);
    else if (err == X509_V_ERR_CERT_NOT_YET_VALID)
        snprintf(s->verify_detail, sizeof s->verify_detail, "%.150s is not valid before %s",
                 info.subject, info.not_before);
    else if (err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
             err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
             err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
             err == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
        snprintf(s->verify_detail, sizeof s->verify_detail, "%.150s, issued by %.150s",
                 info.subject, info.issuer);
}

/* Chain first, name second: a name mismatch is reported only for an otherwise valid chain. */
static int verify_certificate(X509_STORE_CTX *store, void *arg)
{
    SN_UNUSED(arg);
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    sn_tls_session *s = ssl ? session_of(ssl) : NULL;
    if (s && !s->seen_chain) {
        /* OpenSSL keeps the server's chain only when it verifies: keep it to show what was
         * refused. */
        STACK_OF(X509) *untrusted = X509_STORE_CTX_get0_untrusted(store);
        s->seen_chain = untrusted ? X509_chain_up_ref(untrusted) : NULL;
    }
    int ok = X509_verify_cert(store);
    if (ok <= 0 && s) note_verify_failure(s, store);
    if (ok <= 0 || !s || !s->config->verify_name || !s->hostname) return ok;
    X509 *leaf = X509_STORE_CTX_get0_cert(store);
    int match = X509_check_ip_asc(leaf, s->hostname, 0);
    if (match < 0) /* not an IP literal: a host name */
        match = X509_check_host(leaf, s->hostname, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
    if (match == 1) return 1;
    s->name_mismatch = true;
    char names[300];
    sn_ossl_cert_names(leaf, names, sizeof names);
    if (names[0]) {
        snprintf(s->verify_detail, sizeof s->verify_detail, "it names %.300s", names);
    } else {
        sn_x509_info info;
        sn_ossl_cert_info(leaf, &info);
        snprintf(s->verify_detail, sizeof s->verify_detail,
                 "it has no subjectAltName, only the subject %.200s", info.subject);
    }
    X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
}

/* DTLSv1_listen insists on a generator, but it never runs: a session is only created for a
 * ClientHello whose cookie sealnet already verified, and HelloVerifyRequests are sealnet's own. */
static int cookie_generate(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    SN_UNUSED(ssl);
    SN_UNUSED(cookie);
    *len = 0;
    return 0;
}

static int cookie_verify(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    sn_tls_session *s = session_of(ssl);
    return s && s->params.cookie_verify &&
           s->params.cookie_verify(s->params.cookie_user, cookie, len);
}

/* DTLS retransmission: the initial timeout is ours (default 1 s), doubling up to 60 s. */
static unsigned int dtls_timer(SSL *ssl, unsigned int previous_us)
{
    sn_tls_session *s = session_of(ssl);
    unsigned int initial = s ? s->params.retransmit_initial_ms * 1000u : 1000000u;
    if (initial == 0) initial = 1000000u;
    if (previous_us == 0) return initial;
    return previous_us >= 30000000u ? 60000000u : previous_us * 2;
}

/* Session tickets under our own rotating keys (RFC 5077 4): AES-256-CBC + HMAC-SHA256, the key
 * chosen by its 16-byte name. OpenSSL checks the HMAC and the session's age itself. */
static int ticket_key_cb(SSL *ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                         EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc)
{
    sn_tls_session *s = session_of(ssl);
    sn_tls_ticket_keys *keys = s ? s->config->tickets : NULL;
    if (!keys) return 0;
    uint8_t key[SN_TICKET_KEY_LEN];
    int rc;
    if (enc) {
        if (!sn_tls_ticket_keys_current(keys, key)) return 0;
        if (RAND_bytes(iv, 16) != 1) return -1;
        memcpy(name, key, 16);
        rc = 1;
    } else {
        rc = sn_tls_ticket_keys_find(keys, name, key);
        if (rc == 0) {
            /* Retired or foreign key: a full handshake, and a fresh ticket under ours. */
            sn_tls_ticket_keys_count(keys, offsetof(sn_tls_ticket_counters, unknown_key));
            return 0;
        }
        s->ticket_known = true;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key + 48, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    int ok = enc ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 16, iv)
                 : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 16, iv);
    ok = ok == 1 && EVP_MAC_CTX_set_params(mac, params) == 1;
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) return -1;
    if (enc) sn_tls_ticket_keys_count(keys, offsetof(sn_tls_ticket_counters, issued));
    /* A ticket under the previous key still resumes, and is replaced by one under the current.
     * TLS 1.3 tickets are single-use (RFC 8446 C.4; OpenSSL's client offers one once): without
     * a fresh one the resumed session would be the last. */
    return rc == 2 || SSL_version(ssl) == TLS1_3_VERSION ? 2 : 1;
}

static void session_drop(void *session)
{
    SSL_SESSION_free(session);
}

static void session_take_ref(void *session, void *out)
{
    if (SSL_SESSION_up_ref(session) == 1) *(SSL_SESSION **)out = session;
}

/* Client: the saved session for `key` (a new reference), or NULL. */
static SSL_SESSION *saved_get(sn_tls_config *c, const char *key)
{
    SSL_SESSION *found = NULL;
    sn_tls_saved_use(&c->saved, key, session_take_ref, &found);
    return found;
}

/* Client: keeps `session` (takes the reference) as the newest for `key`. */
static void saved_put(sn_tls_config *c, const char *key, SSL_SESSION *session)
{
    sn_tls_saved_put(&c->saved, key, session);
}

/* A TLS 1.3 ticket is a key of its own: a connection that used it and then failed says nothing
 * against it (unlike a TLS 1.2 session, which RFC 5246 7.2.2 says must not be resumed after a
 * fatal alert). OpenSSL marks the session a connection holds as not resumable when that
 * connection fails or is freed without close_notify, so the saved copy and the connection's
 * must be separate objects, or one dropped connection costs every later one a full
 * handshake. */
static SSL_SESSION *private_copy(SSL_SESSION *session)
{
    if (SSL_SESSION_get_protocol_version(session) != TLS1_3_VERSION) return session;
    SSL_SESSION *copy = SSL_SESSION_dup(session);
    SSL_SESSION_free(session);
    return copy;
}

/* Client: keeps the newest resumable session (TLS 1.3 sends tickets after the handshake). */
static int new_session_cb(SSL *ssl, SSL_SESSION *session)
{
    sn_tls_session *s = session_of(ssl);
    if (!s || !s->resume_key || !SSL_SESSION_is_resumable(session)) return 0;
    if (SSL_SESSION_get_protocol_version(session) == TLS1_3_VERSION) {
        SSL_SESSION *copy = SSL_SESSION_dup(session);
        if (copy) saved_put(s->config, s->resume_key, copy);
        return 0; /* OpenSSL keeps its reference: the connection's copy is not the saved one */
    }
    saved_put(s->config, s->resume_key, session);
    return 1; /* the cache keeps our reference */
}

/* --- configs --------------------------------------------------------------------------------- */

static const char *const dtls_ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static sn_tls_config *config_fail(SSL_CTX *ctx, const char *what)
{
    const char *why = sn_ossl_error_string("unknown error");
    SSL_CTX_free(ctx);
    return sn_fail_null(SN_FAILED, "TLS context: %s: %s", what, why);
}

sn_tls_config *sn_ossl_config_new(const sn_tls_config_params *p)
{
    pthread_once(&once, setup_once);
    if (!io_method || session_index < 0)
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "cannot set up the OpenSSL backend");
    SSL_CTX *ctx = SSL_CTX_new(p->datagram ? DTLS_method() : TLS_method());
    if (!ctx) return config_fail(NULL, "cannot create");

    /* Protocol floor and the suites: ECDHE key exchange with AEAD ciphers only. TLS 1.3 suites
     * are all AEAD already. */
    int version = p->datagram ? DTLS1_2_VERSION : TLS1_2_VERSION;
    if (!SSL_CTX_set_min_proto_version(ctx, version)) return config_fail(ctx, "protocol version");
    if (p->datagram && !SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION))
        return config_fail(ctx, "protocol version");
    if (!SSL_CTX_set_cipher_list(ctx, dtls_ciphers)) return config_fail(ctx, "cipher list");
    if (!SSL_CTX_set1_groups_list(ctx, p->datagram ? "X25519:P-256" : "X25519:P-256:P-384"))
        return config_fail(ctx, "groups");
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (p->server && !p->tickets) {
        /* No keys, no tickets: nothing to resume, as before resumption existed. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 0);
    } else if (p->server) {
        /* Stateless: everything lives in the ticket, so any worker or machine holding the keys
         * resumes it; no server-side cache. The context id must match across them. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_timeout(ctx, 7200);
        static const unsigned char sid_ctx[] = "sealnet";
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
    } else {
        /* A client offers the session its caller saved; new ones arrive through the callback. */
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    }
    /* Idle TLS sessions give their record buffers back (OpenSSL 3.0 ignores this for DTLS). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!p->datagram)
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    else
        SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU);
    SSL_CTX_set_info_callback(ctx, info_callback);
    if (p->keylog) SSL_CTX_set_keylog_callback(ctx, keylog_callback);
    if (p->trace) SSL_CTX_set_msg_callback(ctx, msg_callback);

    if (p->server) {
        if (!p->key || !p->chain || sk_X509_num(p->chain->certs) < 1)
            return config_fail(ctx, "a server needs a key and a certificate");
        if (SSL_CTX_use_certificate(ctx, sk_X509_value(p->chain->certs, 0)) != 1)
            return config_fail(ctx, "certificate");
        for (int i = 1; i < sk_X509_num(p->chain->certs); i++)
            if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(p->chain->certs, i)) != 1)
                return config_fail(ctx, "certificate chain");
        if (SSL_CTX_use_PrivateKey(ctx, p->key->pkey) != 1) return config_fail(ctx, "private key");
        if (SSL_CTX_check_private_key(ctx) != 1)
            return config_fail(ctx, "private key does not match the certificate");
        if (p->datagram) {
            SSL_CTX_set_options(ctx, SSL_OP_COOKIE_EXCHANGE);
            SSL_CTX_set_cookie_generate_cb(ctx, cookie_generate);
            SSL_CTX_set_cookie_verify_cb(ctx, cookie_verify);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else if (p->verify_chain) {
        if (p->trusted) {
            X509_STORE *store = X509_STORE_new();
            if (!store) return config_fail(ctx, "trust store");
            for (int i = 0; i < sk_X509_num(p->trusted->certs); i++)
                X509_STORE_add_cert(store, sk_X509_value(p->trusted->certs, i));
            /* Like Godot/mbedTLS: every certificate given as trusted is a trust anchor, an
             * intermediate included. */
            X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
            SSL_CTX_set_cert_store(ctx, store);
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            return config_fail(ctx, "system CA store");
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, verify_certificate, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }

    sn_tls_config *c = sn_calloc(1, sizeof *c);
    if (!c) {
        SSL_CTX_free(ctx);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    c->ctx = ctx;
    c->server = p->server;
    c->datagram = p->datagram;
    c->verify_name = !p->server && p->verify_chain && p->verify_name;
    c->tickets = p->server ? sn_tls_ticket_keys_ref(p->tickets) : NULL;
    sn_tls_saved_init(&c->saved, session_drop);
    c->keylog = p->keylog;
    c->keylog_user = p->keylog_user;
    c->trace = p->trace;
    c->trace_user = p->trace_user;
    atomic_init(&c->refs, 1);
    return c;
}

sn_tls_config *sn_ossl_config_ref(sn_tls_config *c)
{
    if (c) atomic_fetch_add(&c->refs, 1);
    return c;
}

void sn_ossl_config_unref(sn_tls_config *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    SSL_CTX_free(c->ctx);
    sn_tls_ticket_keys_unref(c->tickets);
    sn_tls_saved_destroy(&c->saved);
    sn_free(c);
}

/* --- sessions -------------------------------------------------------------------------------- */

static bool is_ip_literal(const char *host)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
    if (!ip) return false;
    ASN1_OCTET_STRING_free(ip);
    return true;
}

sn_tls_session *sn_ossl_session_new(sn_tls_config *c, const sn_tls_session_params *params,
                                    const sn_tls_io *io)
{
    sn_tls_session *s = sn_calloc(1, sizeof *s);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    s->io = *io;
    s->params = *params;
    s->datagram = c->datagram;
    s->server = c->server;
    s->peer_alert = -1;
    s->max_sent_seq = -1;
    if (s->datagram && s->params.mtu == 0) s->params.mtu = 1200;
    if (params->hostname && *params->hostname && !(s->hostname = sn_strdup(params->hostname))) {
        sn_free(s);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    s->params.hostname = s->hostname;
    s->ssl = SSL_new(c->ctx);
    BIO *bio = BIO_new(io_method);
    if (!s->ssl || !bio) {
        BIO_free(bio);
        SSL_free(s->ssl);
        sn_free(s->hostname);
        sn_free(s);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "cannot create TLS session: %s",
                            sn_ossl_error_string("out of memory"));
    }
    BIO_set_data(bio, s);
    SSL_set_bio(s->ssl, bio, bio);
    SSL_set_ex_data(s->ssl, session_index, s);
    s->config = sn_ossl_config_ref(c);
    if (s->datagram) {
        SSL_set_mtu(s->ssl, (long)s->params.mtu);
        /* No record can be larger than a datagram, so the write buffer need not hold 16 KiB:
         * this trims ~14 KiB from every DTLS peer. */
        size_t fragment = s->params.mtu < 512 ? 512 : s->params.mtu > 16384 ? 16384 : s->params.mtu;
        SSL_set_max_send_fragment(s->ssl, (long)fragment);
        DTLS_set_timer_cb(s->ssl, dtls_timer);
    }
    if (s->server) {
        SSL_set_accept_state(s->ssl);
        /* No client certificate is ever requested, so no client message comes near OpenSSL's
         * 100 KiB default ceiling; a DTLS session reserves up to that much per out-of-order
         * message it buffers (defence in depth: sealnet's DTLS layer screens them first). */
        if (s->datagram) SSL_set_max_cert_list(s->ssl, 4096);
    } else {
        SSL_set_connect_state(s->ssl);
        if (s->hostname && !is_ip_literal(s->hostname))
            SSL_set_tlsext_host_name(s->ssl, s->hostname);
        if (params->resume_key && *params->resume_key) {
            s->resume_key = sn_strdup(params->resume_key);
            SSL_SESSION *saved = s->resume_key ? saved_get(c, s->resume_key) : NULL;
            if (saved) saved = private_copy(saved);
            if (saved && SSL_set_session(s->ssl, saved) != 1) ERR_clear_error();
            SSL_SESSION_free(saved); /* SSL_set_session took its own reference */
        }
    }
    s->params.resume_key = s->resume_key;
    return s;
}

void sn_ossl_session_free(sn_tls_session *s)
{
    if (!s) return;
    /* A session the peer ended with close_notify ended cleanly and stays resumable: OpenSSL
     * marks one freed before this side's own close_notify as bad, and the client's next
     * connection to that server would pay a full handshake. */
    if (!s->failure && (SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN))
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(s->ssl);
    sn_free(s->resume_key);
    if (s->seen_chain) sk_X509_pop_free(s->seen_chain, X509_free);
    sn_ossl_config_unref(s->config);
    sn_free(s->hostname);
    sn_free(s);
}

static void alert_name(int desc, char *out, size_t cap)
{
    snprintf(out, cap, "%s", SSL_alert_desc_string_long(desc));
    for (char *p = out; *p; p++)
        if (*p == ' ') *p = '_';
}

/* Reasons OpenSSL gives when the first bytes from the remote are not a TLS record. */
static bool not_tls(unsigned long code)
{
    if (ERR_GET_LIB(code) != ERR_LIB_SSL) return false;
    int r = ERR_GET_REASON(code);
    return r == SSL_R_WRONG_VERSION_NUMBER || r == SSL_R_UNKNOWN_PROTOCOL ||
           r == SSL_R_PACKET_LENGTH_TOO_LONG || r == SSL_R_HTTP_REQUEST ||
           r == SSL_R_HTTPS_PROXY_REQUEST || r == SSL_R_RECORD_LENGTH_MISMATCH ||
           r == SSL_R_WRONG_SSL_VERSION;
}

/* Turns a failed OpenSSL call into a sticky failure with a message naming the cause. */
static sn_tls_result fail(sn_tls_session *s, int rc, bool in_handshake)
{
    if (s->screen.refused) {
        ERR_clear_error();
        return SN_TLS_FAILED; /* failure and message set by screen_hello */
    }
    int err = SSL_get_error(s->ssl, rc);
    /* SSL_get_error answers WANT_* only when the error queue is empty: nothing to clear (the
     * clear costs ~500 instructions in OpenSSL 3.0, on every read that finds no record). */
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return SN_TLS_WANT;
    if (err == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        if (!in_handshake) return SN_TLS_CLOSED;
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message, "peer closed the connection during the handshake");
        return SN_TLS_FAILED;
    }
    unsigned long code = ERR_peek_error();
    const char *why = sn_ossl_error_string("unknown TLS error");
    /* OpenSSL records a verification result even when it was told not to enforce it (an unsafe
     * client), so the result is a cause only when a failed check could have ended the
     * handshake; otherwise a dead server or an alert would pass for "certificate verify
     * failed: self-signed certificate". */
    bool enforced = !s->server && (SSL_get_verify_mode(s->ssl) & SSL_VERIFY_PEER);
    long verify = enforced ? SSL_get_verify_result(s->ssl) : X509_V_OK;
    if (enforced && s->name_mismatch) {
        s->failure = SN_TLS_FAIL_HOSTNAME;
        snprintf(s->message, sizeof s->message,
                 "certificate verify failed: hostname mismatch (certificate does not name "
                 "'%s'%s%.200s)",
                 s->hostname ? s->hostname : "", s->verify_detail[0] ? "; " : "", s->verify_detail);
    } else if (verify != X509_V_OK) {
        s->failure = SN_TLS_FAIL_VERIFY;
        snprintf(s->message, sizeof s->message, "certificate verify failed: %s%s%.200s%s",
                 X509_verify_cert_error_string(verify), s->verify_detail[0] ? " (" : "",
                 s->verify_detail, s->verify_detail[0] ? ")" : "");
    } else if (ERR_GET_REASON(code) == SSL_R_EXCESSIVE_MESSAGE_SIZE) {
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message,
                 "handshake message too large: the peer sent a %s message over this side's "
                 "limit (%ld bytes for a certificate chain)",
                 in_handshake ? "handshake" : "post-handshake",
                 (long)SSL_get_max_cert_list(s->ssl));
    } else if (s->peer_alert >= 0) {
        char name[64];
        alert_name(s->peer_alert, name, sizeof name);
        s->failure = SN_TLS_FAIL_ALERT;
        snprintf(s->message, sizeof s->message, "peer sent alert: %s", name);
    } else if (s->transport_error) {
        s->failure = SN_TLS_FAIL_TRANSPORT;
        snprintf(s->message, sizeof s->message, "transport error during %s",
                 in_handshake ? "the handshake" : "the session");
    } else if (s->transport_eof || ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        if (in_handshake) {
            s->failure = SN_TLS_FAIL_TRANSPORT;
            snprintf(s->message, sizeof s->message,
                     "connection closed by peer during the handshake");
        } else {
            s->failure = SN_TLS_FAIL_TRUNCATED;
            snprintf(s->message, sizeof s->message,
                     "connection closed without close_notify: the stream was truncated");
        }
    } else if (in_handshake && not_tls(code) && s->first_len > 0) {
        s->failure = SN_TLS_FAIL_PROTOCOL;
        /* OpenSSL stopped at the 5-byte record header: what follows, if it is here already,
         * says more ("HTTP/1.1 400 Bad Request", "SSH-2.0-..."). The session is over anyway. */
        if (s->first_len < sizeof s->first_bytes) {
            long n = s->io.recv(s->io.user, s->first_bytes + s->first_len,
                                sizeof s->first_bytes - s->first_len);
            if (n > 0) s->first_len += (size_t)n;
        }
        char got[96];
        sn_quote_bytes(s->first_bytes, s->first_len, got, sizeof got);
        snprintf(s->message, sizeof s->message, "the %s does not speak TLS (got %s)",
                 s->server ? "client" : "server", got);
    } else {
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message, "TLS %s failed: %s",
                 in_handshake ? "handshake" : "session", why);
    }
    return SN_TLS_FAILED;
}

sn_tls_result sn_ossl_handshake(sn_tls_session *s)
{
    if (s->failure) return SN_TLS_FAILED;
    if (SSL_is_init_finished(s->ssl)) return SN_TLS_OK;
    if (s->datagram && s->server && !s->listened) {
        /* The opening ClientHello carries a cookie our caller has already checked;
         * DTLSv1_listen checks it again through cookie_verify and primes the state machine
         * (sequence numbers, hello-verify done) so the handshake continues from it. */
        BIO_ADDR *client = BIO_ADDR_new();
        int rc = client ? DTLSv1_listen(s->ssl, client) : -1;
        BIO_ADDR_free(client);
        if (rc <= 0) {
            ERR_clear_error();
            s->failure = SN_TLS_FAIL_PROTOCOL;
            snprintf(s->message, sizeof s->message,
                     "opening ClientHello rejected (missing, invalid or expired cookie)");
            return SN_TLS_FAILED;
        }
        s->listened = true;
    }
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        s->established = true;
        if (s->server && s->config->tickets) {
            bool reused = SSL_session_reused(s->ssl) == 1;
            if (reused)
                sn_tls_ticket_keys_count(s->config->tickets,
                                         offsetof(sn_tls_ticket_counters, resumed));
            else if (s->ticket_known)
                sn_tls_ticket_keys_count(s->config->tickets,
                                         offsetof(sn_tls_ticket_counters, rejected));
        }
        /* TLS 1.2 / DTLS: the session (with a ticket renewed in a resumed handshake, which
         * OpenSSL does not report through new_session_cb) is final now. */
        if (!s->server && s->resume_key && SSL_version(s->ssl) != TLS1_3_VERSION) {
            SSL_SESSION *session = SSL_get1_session(s->ssl);
            if (session && SSL_SESSION_is_resumable(session))
                saved_put(s->config, s->resume_key, session);
            else
                SSL_SESSION_free(session);
        }
        /* Asked before every send (by the peer and by write's guard): compute it once. */
        if (s->datagram) s->data_mtu = DTLS_get_data_mtu(s->ssl);
        return SN_TLS_OK;
    }
    return fail(s, rc, true);
}

sn_tls_result sn_ossl_read(sn_tls_session *s, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (s->failure) return SN_TLS_FAILED;
    size_t got = 0;
    int rc = SSL_read_ex(s->ssl, buf, cap, &got);
    if (rc == 1) {
        s->established = true; /* data flows only once the handshake is done */
        *n = got;
        return SN_TLS_OK;
    }
    return fail(s, 0, !s->established);
}

size_t sn_ossl_max_payload(const sn_tls_session *s)
{
    if (!s->datagram) return 16384;
    if (s->data_mtu) return s->data_mtu;
    return SSL_is_init_finished(s->ssl) ? DTLS_get_data_mtu(s->ssl) : 0;
}

sn_tls_result sn_ossl_write(sn_tls_session *s, const void *buf, size_t len, size_t *n)
{
    *n = 0;
    if (s->failure) return SN_TLS_FAILED;
    if (s->datagram && len > sn_ossl_max_payload(s)) return SN_TLS_FAILED;
    s->send_blocked = false;
    size_t wrote = 0;
    int rc = SSL_write_ex(s->ssl, buf, len, &wrote);
    if (rc == 1) {
        *n = wrote;
        if (s->datagram && s->send_blocked) return SN_TLS_WANT;
        return SN_TLS_OK;
    }
    return fail(s, 0, !s->established);
}

void sn_ossl_close(sn_tls_session *s)
{
    if (!s || s->failure || !SSL_is_init_finished(s->ssl)) return;
    if (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN) return;
    SSL_shutdown(s->ssl);
    ERR_clear_error();
}

sn_tls_failure sn_ossl_failure(const sn_tls_session *s, const char **message)
{
    if (message) *message = s->message;
    return s->failure;
}

size_t sn_ossl_pending(const sn_tls_session *s)
{
    return (size_t)SSL_pending(s->ssl);
}

bool sn_ossl_has_buffered_input(const sn_tls_session *s)
{
    return SSL_has_pending(s->ssl) == 1;
}

int64_t sn_ossl_next_timeout_ms(sn_tls_session *s)
{
    if (!s->datagram) return -1;
    struct timeval tv;
    if (DTLSv1_get_timeout(s->ssl, &tv) != 1) return -1;
    return (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
}

sn_tls_result sn_ossl_handle_timeout(sn_tls_session *s)
{
    if (s->failure) return SN_TLS_FAILED;
    s->retransmitting = true;
    int rc = (int)DTLSv1_handle_timeout(s->ssl);
    s->retransmitting = false;
    if (rc >= 0) return SN_TLS_OK;
    return fail(s, rc, !s->established);
}

const char *sn_ossl_describe(const sn_tls_session *s)
{
    sn_tls_session *m = (sn_tls_session *)s;
    /* IANA names ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"): the same on every backend. */
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    const char *name = c ? SSL_CIPHER_standard_name(c) : NULL;
    snprintf(m->description, sizeof m->description, "%s %s", SSL_get_version(s->ssl),
             name ? name : "(none)");
    return m->description;
}

size_t sn_ossl_record_overhead(const sn_tls_session *s)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    if (!c) c = SSL_get_pending_cipher(s->ssl);
    if (!c) return 16;
    /* ChaCha20-Poly1305: 16-byte tag. AES-GCM: 8-byte explicit nonce + 16-byte tag. */
    return SSL_CIPHER_get_cipher_nid(c) == NID_chacha20_poly1305 ? 16 : 24;
}

sn_err sn_ossl_peer_fingerprint(const sn_tls_session *s, char out[96])
{
    X509 *cert = s ? SSL_get0_peer_certificate(s->ssl) : NULL;
    if (!cert) return sn_fail(SN_ERR_UNAVAILABLE, "the remote presented no certificate");
    return sn_ossl_cert_fingerprint(cert, out);
}

bool sn_ossl_session_resumed(const sn_tls_session *s)
{
    return s && s->established && SSL_session_reused(s->ssl) == 1;
}

sn_tls_chain *sn_ossl_peer_chain(const sn_tls_session *s)
{
    if (!s) return NULL;
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(s->ssl);
    if (s->server) {
        /* A server's view of the chain leaves the leaf out: put it back in front. */
        X509 *leaf = SSL_get0_peer_certificate(s->ssl);
        if (!leaf) return NULL;
        STACK_OF(X509) *all = sk_X509_new_null();
        if (!all) return NULL;
        sk_X509_push(all, leaf);
        for (int i = 0; chain && i < sk_X509_num(chain); i++)
            sk_X509_push(all, sk_X509_value(chain, i));
        sn_tls_chain *c = sn_ossl_chain_from_stack(all);
        sk_X509_free(all);
        return c;
    }
    if (!chain || sk_X509_num(chain) == 0) chain = s->seen_chain;
    return sn_ossl_chain_from_stack(chain);
}

bool sn_ossl_peer_next_epoch_possible(const sn_tls_session *s)
{
    if (!s || !s->ssl) return false;
    /* Server states in which the client's epoch-1 keys cannot exist yet: before its key
     * exchange was read (a full handshake), and before our own Finished (resumption). */
    switch (SSL_get_state(s->ssl)) {
    case TLS_ST_BEFORE:
    case TLS_ST_SR_CLNT_HELLO:
    case DTLS_ST_SW_HELLO_VERIFY_REQUEST:
    case TLS_ST_SW_HELLO_REQ:
    case TLS_ST_SW_SRVR_HELLO:
    case TLS_ST_SW_CERT:
    case TLS_ST_SW_CERT_STATUS:
    case TLS_ST_SW_KEY_EXCH:
    case TLS_ST_SW_CERT_REQ:
    case TLS_ST_SW_SRVR_DONE:
    case TLS_ST_SR_CERT:
        return false;
    default:
        return true;
    }
}
