/* mbed TLS backend: shared contexts ("configs") and per-connection sessions.
 *
 * A session owns one mbedtls_ssl_context whose bio callbacks call straight into the transport
 * callbacks of its sn_tls_io, one datagram per call on DTLS. Retransmission timers run on
 * sealnet's clock (sn_now_ms). A DTLS session gets its own shallow copy of the config's
 * mbedtls_ssl_config: the handshake timeout and the cookie callbacks' context are per session
 * in sealnet but per config in mbed TLS; the copy shares everything the config owns.
 *
 * The DTLS cookie exchange is sealnet's own (src/dtls): a server session is created for a
 * ClientHello whose cookie sealnet already verified. mbed TLS reads that ClientHello as its
 * first record and asks the cookie check callback, which asks sealnet again (params.cookie_verify)
 * so mbed TLS continues from that ClientHello exactly as after its own HelloVerifyRequest.
 *
 * Resumption mirrors the OpenSSL backend: a server with ticket keys issues and opens RFC 5077
 * tickets through its own callbacks (stateless: no session cache), a client keeps the newest
 * session per resume key in its config. A server session with tickets also gets its own copy
 * of the config, so the ticket callbacks know which session they serve (for the counters).
 */
#include "mbedtls_backend.h"

#include "cert_text.h"

#include <mbedtls/aes.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/ssl_internal.h> /* handshake->resume, ->new_session_ticket (installed by 2.28) */

#include <arpa/inet.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sn_tls_config {
    mbedtls_ssl_config conf;
    atomic_int refs;
    bool server, datagram, verify_name;
    sn_tls_key *key;             /* server: held for conf's own_cert */
    sn_tls_chain *chain;         /* server */
    sn_tls_chain *trusted;       /* client: trust anchors, or NULL (system store / none) */
    sn_tls_ticket_keys *tickets; /* server: NULL when it issues no tickets */
    sn_tls_saved_sessions saved; /* client: the newest resumable session per server identity */
    sn_mbed_observer obs;        /* key log and trace callbacks (mbedtls_inspect.c) */
};

struct sn_tls_session {
    mbedtls_ssl_context ssl;
    /* Datagram, or a server with tickets: this session's copy of config->conf (the cookie and
     * ticket callbacks' context is the session). */
    mbedtls_ssl_config conf;
    sn_tls_config *config;
    sn_tls_io io;
    sn_tls_session_params params;
    char *hostname;
    bool datagram, server, host_is_ip;
    bool send_blocked; /* datagram: the last datagram could not be sent (dropped, reported) */
    bool transport_error, transport_eof;
    bool cookie_rejected; /* server: the opening ClientHello's cookie did not verify */
    bool established;     /* the handshake finished once */
    bool close_sent;
    bool resumed;      /* the handshake resumed a session (abbreviated) */
    bool ticket_known; /* server: the client offered a ticket under a key we hold */
    bool renew_ticket; /* server: that ticket is under the previous key: issue a new one */
    char *resume_key;  /* client: identity under which new sessions are saved */
    uint64_t timer_start;
    uint32_t timer_int, timer_fin; /* ms; fin 0: no timer armed */
    sn_tls_failure failure;
    char message[320];
    char description[96];
    sn_mbed_trace trace;      /* mbedtls_inspect.c; trace.obs NULL: none */
    sn_mbed_verify verify;    /* client: what failed verification, for the message */
    sn_tls_chain *seen_chain; /* client: the chain that failed verification (mbed TLS drops it) */
    unsigned char first_bytes[24]; /* stream, before the handshake ends: what the remote sent */
    size_t first_len;
};

/* ECDHE with AEAD only, the OpenSSL backend's list in its order (server preference). */
static const int ciphersuites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                                   MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                                   MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                                   MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                                   MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                                   MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                                   0};

/* Key exchange groups. P-384 stays in the list on DTLS too: mbed TLS also checks a peer's EC
 * certificate key against it, and P-384 certificates are common. */
static const mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

/* The system trust store, parsed once (a few hundred certificates) and kept for the process. */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
static mbedtls_x509_crt system_ca;
static int system_ca_status = -1;
static pthread_once_t system_ca_once = PTHREAD_ONCE_INIT;

static void system_ca_load(void)
{
    mbedtls_x509_crt_init(&system_ca);
    /* OpenSSL's variables, so both backends find the same store. A positive count says how many
     * certificates were skipped as unparsable: fine as long as some loaded. */
    const char *file = secure_getenv("SSL_CERT_FILE"), *dir = secure_getenv("SSL_CERT_DIR");
    int rc = file && *file ? mbedtls_x509_crt_parse_file(&system_ca, file)
             : dir && *dir ? mbedtls_x509_crt_parse_path(&system_ca, dir)
                           : mbedtls_x509_crt_parse_file(&system_ca, SYSTEM_CA_FILE);
    system_ca_status = rc < 0 || system_ca.raw.p == NULL ? (rc < 0 ? rc : -1) : 0;
}

/* --- transport callbacks --------------------------------------------------------------------- */

static int io_send(void *ctx, const unsigned char *data, size_t len)
{
    sn_tls_session *s = ctx;
    long n = s->io.send(s->io.user, data, len);
    if (s->trace.obs && (n > 0 || (s->datagram && n == SN_TLS_IO_WOULD_BLOCK)))
        sn_mbed_trace_io(&s->trace, true, data, n > 0 ? (size_t)n : len);
    if (n >= 0) return (int)n;
    if (n == SN_TLS_IO_WOULD_BLOCK) {
        if (s->datagram) {
            /* A datagram that cannot go out is lost, as if the network had dropped it: the
             * retransmission timer covers handshake flights, write() reports the rest. */
            s->send_blocked = true;
            return (int)len;
        }
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    s->transport_error = true;
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int io_recv(void *ctx, unsigned char *buf, size_t cap)
{
    sn_tls_session *s = ctx;
    long n = s->io.recv(s->io.user, buf, cap);
    if (n > 0 && !s->datagram && !s->established && s->first_len < sizeof s->first_bytes) {
        /* Kept to name what a remote that does not speak TLS sent instead. */
        size_t take = sizeof s->first_bytes - s->first_len;
        if ((size_t)n < take) take = (size_t)n;
        memcpy(s->first_bytes + s->first_len, buf, take);
        s->first_len += take;
    }
    if (n > 0 && s->trace.obs) sn_mbed_trace_io(&s->trace, false, buf, (size_t)n);
    if (n > 0) return (int)n;
    if (n == 0 && s->datagram) return MBEDTLS_ERR_SSL_WANT_READ; /* an empty datagram */
    if (n == SN_TLS_IO_WOULD_BLOCK) return MBEDTLS_ERR_SSL_WANT_READ;
    if (n == SN_TLS_IO_EOF || n == 0) {
        s->transport_eof = true;
        return 0;
    }
    s->transport_error = true;
    return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* --- timers: mbed TLS's "intermediate/final delay" timer on sealnet's clock ------------------- */

static void timer_set(void *ctx, uint32_t int_ms, uint32_t fin_ms)
{
    sn_tls_session *s = ctx;
    s->timer_start = sn_now_ms();
    s->timer_int = int_ms;
    s->timer_fin = fin_ms;
}

static int timer_get(void *ctx)
{
    const sn_tls_session *s = ctx;
    if (s->timer_fin == 0) return -1;
    uint64_t elapsed = sn_now_ms() - s->timer_start;
    if (elapsed >= s->timer_fin) return 2;
    if (elapsed >= s->timer_int) return 1;
    return 0;
}

/* --- cookies (server) ------------------------------------------------------------------------- */

/* Only the opening ClientHello is checked here (sealnet verified it already and asks again).
 * After the handshake mbed TLS asks about a ClientHello repeated on the same address; sealnet
 * sends every HelloVerifyRequest itself, so that one is refused. */
static int cookie_check(void *ctx, const unsigned char *cookie, size_t len,
                        const unsigned char *info, size_t info_len)
{
    SN_UNUSED(info), SN_UNUSED(info_len);
    sn_tls_session *s = ctx;
    if (!s || s->established || !s->params.cookie_verify ||
        !s->params.cookie_verify(s->params.cookie_user, cookie, len)) {
        if (s && !s->established) s->cookie_rejected = true;
        return -1;
    }
    return 0;
}

/* mbed TLS writes a HelloVerifyRequest when the check fails. Before the handshake the session
 * must simply fail (sealnet already answered that client statelessly): refusing to write a
 * cookie ends the handshake without sending anything. After it, an empty cookie lets mbed TLS
 * drop a stray ClientHello on a live session instead of failing it. */
static int cookie_write(void *ctx, unsigned char **p, unsigned char *end, const unsigned char *info,
                        size_t info_len)
{
    SN_UNUSED(p), SN_UNUSED(end), SN_UNUSED(info), SN_UNUSED(info_len);
    const sn_tls_session *s = ctx;
    return s && s->established ? 0 : -1;
}

/* --- certificate checks ----------------------------------------------------------------------- */

static bool cert_names_ip(const mbedtls_x509_crt *crt, const char *ip)
{
    unsigned char addr[16];
    size_t alen;
    if (inet_pton(AF_INET, ip, addr) == 1)
        alen = 4;
    else if (inet_pton(AF_INET6, ip, addr) == 1)
        alen = 16;
    else
        return false;
    for (const mbedtls_x509_sequence *san = &crt->subject_alt_names; san && san->buf.p;
         san = san->next)
        if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && san->buf.len == alen &&
            memcmp(san->buf.p, addr, alen) == 0)
            return true;
    return false;
}

/* Per certificate, after mbed TLS's own checks. On the leaf: the name check follows the
 * config (mbed TLS compares the SNI name whenever one is set; it cannot compare IP SANs). */
static int verify_cert(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    sn_tls_session *s = ctx;
    if (depth == 0) {
        if (!s->config->verify_name || !s->hostname) {
            *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
        } else if (s->host_is_ip) {
            if (cert_names_ip(crt, s->hostname))
                *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
            else
                *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
        }
    }
    sn_mbed_verify_note(&s->verify, crt, depth, *flags);
    /* mbed TLS frees a chain that fails verification: a copy shows what was refused. At depth
     * 0 (the last call) crt is the head of the list the server sent. */
    if (depth == 0 && s->verify.flags_seen != 0 && !s->seen_chain)
        s->seen_chain = sn_mbed_chain_copy(crt);
    return 0;
}

/* --- session tickets (server) ------------------------------------------------------------------
 */

/* Tickets under sealnet's rotating keys, in RFC 5077 4's layout (the OpenSSL backend's too):
 * key name (16) | IV (16) | AES-256-CBC of the session as mbedtls_ssl_session_save writes it,
 * PKCS#7-padded | HMAC-SHA256 (32) of everything before it. The key name picks the key; mbed TLS
 * checks nothing of a ticket itself, so the MAC, the padding and the session's age are checked
 * here. Only the server reads its tickets: their content is this backend's own. */
#define TICKET_NAME     16
#define TICKET_IV       16
#define TICKET_HEAD     (TICKET_NAME + TICKET_IV)
#define TICKET_MAC      32
#define TICKET_LIFETIME 7200 /* seconds, as the OpenSSL backend's session timeout */

/* HMAC-SHA256 under the key's MAC half (bytes 48..79). */
static bool ticket_mac(const uint8_t key[SN_TICKET_KEY_LEN], const unsigned char *data, size_t len,
                       unsigned char out[TICKET_MAC])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    return md && mbedtls_md_hmac(md, key + 48, 32, data, len, out) == 0;
}

/* AES-256-CBC in place under the key's cipher half (bytes 16..47); len is a multiple of 16. */
static int ticket_cbc(const uint8_t key[SN_TICKET_KEY_LEN], int mode, const unsigned char *iv_in,
                      unsigned char *data, size_t len)
{
    unsigned char iv[TICKET_IV];
    memcpy(iv, iv_in, sizeof iv); /* mbed TLS advances the IV it is given */
    mbedtls_aes_context aes;
    mbedtls_aes_init(&aes);
    int rc = mode == MBEDTLS_AES_ENCRYPT ? mbedtls_aes_setkey_enc(&aes, key + 16, 256)
                                         : mbedtls_aes_setkey_dec(&aes, key + 16, 256);
    if (rc == 0) rc = mbedtls_aes_crypt_cbc(&aes, mode, len, iv, data, data);
    mbedtls_aes_free(&aes);
    return rc;
}

static bool same_bytes(const unsigned char *a, const unsigned char *b, size_t len)
{
    unsigned char diff = 0; /* constant time: a MAC check must not say how much matched */
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int ticket_write(void *ctx, const mbedtls_ssl_session *session, unsigned char *start,
                        const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    sn_tls_session *s = ctx;
    sn_tls_ticket_keys *keys = s ? s->config->tickets : NULL;
    *tlen = 0;
    *lifetime = 0;
    size_t plain = 0, room = (size_t)(end - start);
    mbedtls_ctr_drbg_context *rng = sn_mbed_drbg();
    if (!keys || !rng) return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    int rc = mbedtls_ssl_session_save(session, NULL, 0, &plain);
    if (rc != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL) return rc ? rc : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    size_t padded = (plain / 16 + 1) * 16;
    if (room < TICKET_HEAD + padded + TICKET_MAC) return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    uint8_t key[SN_TICKET_KEY_LEN];
    if (!sn_tls_ticket_keys_current(keys, key)) return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    unsigned char *body = start + TICKET_HEAD;
    memcpy(start, key, TICKET_NAME);
    rc = sn_mbed_rng(rng, start + TICKET_NAME, TICKET_IV);
    if (rc == 0) rc = mbedtls_ssl_session_save(session, body, plain, &plain);
    if (rc == 0) {
        memset(body + plain, (int)(padded - plain), padded - plain);
        rc = ticket_cbc(key, MBEDTLS_AES_ENCRYPT, start + TICKET_NAME, body, padded);
    }
    if (rc == 0 && !ticket_mac(key, start, TICKET_HEAD + padded, body + padded))
        rc = MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    mbedtls_platform_zeroize(key, sizeof key);
    if (rc != 0) {
        mbedtls_platform_zeroize(start, room); /* no session secrets left in the buffer */
        return rc;
    }
    *tlen = TICKET_HEAD + padded + TICKET_MAC;
    *lifetime = TICKET_LIFETIME;
    sn_tls_ticket_keys_count(keys, offsetof(sn_tls_ticket_counters, issued));
    return 0;
}

static int ticket_parse(void *ctx, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
    sn_tls_session *s = ctx;
    sn_tls_ticket_keys *keys = s ? s->config->tickets : NULL;
    if (!keys) return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    uint8_t key[SN_TICKET_KEY_LEN];
    int which = len >= TICKET_NAME ? sn_tls_ticket_keys_find(keys, buf, key) : 0;
    if (which == 0) {
        /* Retired or foreign key: a full handshake, and a fresh ticket under ours. */
        sn_tls_ticket_keys_count(keys, offsetof(sn_tls_ticket_counters, unknown_key));
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    }
    /* Known key: if it does not resume now (forged, expired), the handshake counts it. */
    s->ticket_known = true;
    int rc = MBEDTLS_ERR_SSL_INVALID_MAC;
    size_t padded = len >= TICKET_HEAD + TICKET_MAC ? len - TICKET_HEAD - TICKET_MAC : 0;
    unsigned char mac[TICKET_MAC];
    if (padded > 0 && padded % 16 == 0 && ticket_mac(key, buf, TICKET_HEAD + padded, mac) &&
        same_bytes(mac, buf + TICKET_HEAD + padded, TICKET_MAC)) {
        /* Authentic: it was written by ticket_write under this key. */
        unsigned char *body = buf + TICKET_HEAD;
        rc = ticket_cbc(key, MBEDTLS_AES_DECRYPT, buf + TICKET_NAME, body, padded);
        size_t pad = rc == 0 ? body[padded - 1] : 0;
        if (rc == 0 && (pad < 1 || pad > 16)) rc = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
        if (rc == 0) rc = mbedtls_ssl_session_load(session, body, padded - pad);
        mbedtls_platform_zeroize(body, padded);
        time_t now = time(NULL);
        if (rc == 0 && session->start < now && now - session->start > TICKET_LIFETIME)
            rc = MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    }
    mbedtls_platform_zeroize(key, sizeof key);
    /* A ticket under the previous key still resumes, and is replaced by one under the current
     * (mbed TLS sends none when it resumes: the handshake asks for it, see handshake_steps). */
    if (rc == 0 && which == 2) s->renew_ticket = true;
    return rc;
}

/* --- saved sessions (client) ------------------------------------------------------------------ */

static void session_drop(void *session)
{
    if (!session) return;
    mbedtls_ssl_session_free(session); /* wipes the master secret */
    sn_free(session);
}

static void session_offer(void *session, void *ssl)
{
    /* Failing (out of memory) only means a full handshake. */
    (void)mbedtls_ssl_set_session(ssl, session);
}

/* Offers the session saved under the session's resume key, if any (mbed TLS copies it). */
static void saved_offer(sn_tls_session *s)
{
    sn_tls_saved_use(&s->config->saved, s->resume_key, session_offer, &s->ssl);
}

/* Keeps the session just established as the newest for the session's resume key: a new one,
 * or one resumed (with the ticket renewed or not). */
static void saved_keep(sn_tls_session *s)
{
    sn_tls_config *c = s->config;
    mbedtls_ssl_session *session = sn_malloc(sizeof *session);
    if (!session) return;
    mbedtls_ssl_session_init(session);
    /* Resumable: a ticket, or a session id the server may have cached. */
    if (mbedtls_ssl_get_session(&s->ssl, session) != 0 ||
        (session->ticket_len == 0 && session->id_len == 0)) {
        session_drop(session);
        return;
    }
    sn_tls_saved_put(&c->saved, s->resume_key, session);
}

/* --- configs ---------------------------------------------------------------------------------- */

static sn_tls_config *config_fail(sn_tls_config *c, const char *what, int rc)
{
    sn_mbed_config_unref(c);
    if (rc) return sn_fail_null(SN_FAILED, "TLS context: %s: %s", what, sn_mbed_error_string(rc));
    return sn_fail_null(SN_FAILED, "TLS context: %s", what);
}

sn_tls_config *sn_mbed_config_new(const sn_tls_config_params *p)
{
    mbedtls_ctr_drbg_context *rng = sn_mbed_drbg();
    if (!rng) return NULL;
    sn_tls_config *c = sn_calloc(1, sizeof *c);
    if (!c) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    mbedtls_ssl_config_init(&c->conf);
    sn_tls_saved_init(&c->saved, session_drop);
    atomic_init(&c->refs, 1);
    c->server = p->server;
    c->datagram = p->datagram;
    c->verify_name = !p->server && p->verify_chain && p->verify_name;

    int rc = mbedtls_ssl_config_defaults(
        &c->conf, p->server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
        p->datagram ? MBEDTLS_SSL_TRANSPORT_DATAGRAM : MBEDTLS_SSL_TRANSPORT_STREAM,
        MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc) return config_fail(c, "defaults", rc);
    mbedtls_ssl_conf_rng(&c->conf, sn_mbed_rng, rng);
    sn_mbed_observe_config(&c->conf, &c->obs, p);
    /* TLS 1.2 / DTLS 1.2 only: mbed TLS 2.28 has no TLS 1.3 (docs/backends.md). */
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&c->conf, ciphersuites);
    mbedtls_ssl_conf_curves(&c->conf, curves);
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    /* Clients always ask for a ticket (as OpenSSL's do) and keep what they get only for a
     * resume key. Servers issue tickets only with keys: no keys, nothing to resume. */
    mbedtls_ssl_conf_session_tickets(&c->conf, p->server ? MBEDTLS_SSL_SESSION_TICKETS_DISABLED
                                                         : MBEDTLS_SSL_SESSION_TICKETS_ENABLED);

    if (p->server) {
        if (!p->key || !p->chain || p->chain->count < 1)
            return config_fail(c, "a server needs a key and a certificate", 0);
        if (!sn_mbed_key_matches_chain(p->key, p->chain))
            return config_fail(c, "private key does not match the certificate", 0);
        c->key = sn_mbed_key_ref((sn_tls_key *)p->key);
        c->chain = sn_mbed_chain_ref((sn_tls_chain *)p->chain);
        if ((rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->chain->crt, &c->key->pk)))
            return config_fail(c, "certificate", rc);
        if (p->datagram) mbedtls_ssl_conf_dtls_cookies(&c->conf, cookie_write, cookie_check, NULL);
        if (p->tickets) {
            /* Stateless: everything lives in the ticket, so any worker or machine holding the
             * keys resumes it; no server-side cache. The callbacks' context is each session's. */
            c->tickets = sn_tls_ticket_keys_ref(p->tickets);
            mbedtls_ssl_conf_session_tickets_cb(&c->conf, ticket_write, ticket_parse, NULL);
        }
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    } else if (p->verify_chain) {
        if (p->trusted) {
            c->trusted = sn_mbed_chain_ref((sn_tls_chain *)p->trusted);
            mbedtls_ssl_conf_ca_chain(&c->conf, &c->trusted->crt, NULL);
        } else {
            pthread_once(&system_ca_once, system_ca_load);
            if (system_ca_status != 0)
                return config_fail(
                    c, "system CA store (SSL_CERT_FILE, SSL_CERT_DIR or " SYSTEM_CA_FILE ")",
                    system_ca_status > 0 ? 0 : system_ca_status);
            mbedtls_ssl_conf_ca_chain(&c->conf, &system_ca, NULL);
        }
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    } else {
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    return c;
}

sn_tls_config *sn_mbed_config_ref(sn_tls_config *c)
{
    if (c) atomic_fetch_add(&c->refs, 1);
    return c;
}

void sn_mbed_config_unref(sn_tls_config *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    mbedtls_ssl_config_free(&c->conf);
    sn_mbed_key_unref(c->key);
    sn_mbed_chain_unref(c->chain);
    sn_mbed_chain_unref(c->trusted);
    sn_tls_ticket_keys_unref(c->tickets);
    sn_tls_saved_destroy(&c->saved);
    sn_free(c);
}

/* --- sessions --------------------------------------------------------------------------------- */

static bool is_ip_literal(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

sn_tls_session *sn_mbed_session_new(sn_tls_config *c, const sn_tls_session_params *params,
                                    const sn_tls_io *io)
{
    sn_tls_session *s = sn_calloc(1, sizeof *s);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    s->io = *io;
    s->params = *params;
    s->datagram = c->datagram;
    s->server = c->server;
    if (s->datagram && s->params.mtu == 0) s->params.mtu = 1200;
    if (params->hostname && *params->hostname && !(s->hostname = sn_strdup(params->hostname))) {
        sn_free(s);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    s->params.hostname = s->hostname;
    s->host_is_ip = s->hostname && is_ip_literal(s->hostname);
    s->config = sn_mbed_config_ref(c);
    mbedtls_ssl_init(&s->ssl);

    const mbedtls_ssl_config *conf = &c->conf;
    if (s->datagram || (s->server && c->tickets)) {
        s->conf = c->conf; /* shallow: shares what the config owns, never freed on its own */
        conf = &s->conf;
        if (s->server && c->tickets) s->conf.p_ticket = s;
    }
    if (s->datagram) {
        uint32_t initial = s->params.retransmit_initial_ms ? s->params.retransmit_initial_ms : 1000;
        /* Doubling from the initial timeout up to 60 s, as on OpenSSL; sealnet's handshake
         * timeout ends the handshake long before mbed TLS would give up. */
        mbedtls_ssl_conf_handshake_timeout(&s->conf, initial, initial > 60000 ? initial : 60000);
        if (s->server) s->conf.p_cookie = s;
    }
    if (c->obs.trace) {
        /* The trace's debug callback is per session: its own copy of the config, as on DTLS. */
        if (conf == &c->conf) s->conf = c->conf; /* not copied above (a ticket-less stream) */
        sn_mbed_trace_start(&s->trace, &c->obs, s, s->datagram, &s->conf);
        conf = &s->conf;
    }
    int rc = mbedtls_ssl_setup(&s->ssl, conf);
    if (rc == 0 && s->hostname && !s->host_is_ip && !s->server)
        rc = mbedtls_ssl_set_hostname(&s->ssl, s->hostname); /* SNI and the name checked */
    if (rc == 0 && s->datagram && s->server)
        /* Any identifier will do: the cookie callbacks look at the session, not at this. */
        rc = mbedtls_ssl_set_client_transport_id(&s->ssl, (const unsigned char *)"sealnet", 7);
    if (rc == 0 && !s->server && params->resume_key && *params->resume_key) {
        if (!(s->resume_key = sn_strdup(params->resume_key)))
            rc = MBEDTLS_ERR_SSL_ALLOC_FAILED;
        else
            saved_offer(s);
    }
    s->params.resume_key = s->resume_key;
    if (rc != 0) {
        sn_mbed_session_free(s);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "cannot create TLS session: %s",
                            sn_mbed_error_string(rc));
    }
    mbedtls_ssl_set_bio(&s->ssl, s, io_send, io_recv, NULL);
    if (!s->server) mbedtls_ssl_set_verify(&s->ssl, verify_cert, s);
    if (s->datagram) {
        mbedtls_ssl_set_mtu(&s->ssl, (uint16_t)(s->params.mtu > 65535 ? 65535 : s->params.mtu));
        mbedtls_ssl_set_timer_cb(&s->ssl, s, timer_set, timer_get);
    }
    return s;
}

void sn_mbed_session_free(sn_tls_session *s)
{
    if (!s) return;
    mbedtls_ssl_free(&s->ssl);
    sn_mbed_chain_unref(s->seen_chain);
    sn_mbed_config_unref(s->config);
    sn_free(s->resume_key);
    sn_free(s->hostname);
    sn_free(s);
}

const char *sn_mbed_alert_name(int desc)
{
    switch (desc) {
    case MBEDTLS_SSL_ALERT_MSG_CLOSE_NOTIFY:
        return "close_notify";
    case MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE:
        return "unexpected_message";
    case MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC:
        return "bad_record_mac";
    case MBEDTLS_SSL_ALERT_MSG_DECRYPTION_FAILED:
        return "decryption_failed";
    case MBEDTLS_SSL_ALERT_MSG_DECOMPRESSION_FAILURE:
        return "decompression_failure";
    case MBEDTLS_SSL_ALERT_MSG_RECORD_OVERFLOW:
        return "record_overflow";
    case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE:
        return "handshake_failure";
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
        return "bad_certificate";
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
        return "unsupported_certificate";
    case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
        return "certificate_revoked";
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
        return "certificate_expired";
    case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
        return "certificate_unknown";
    case MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER:
        return "illegal_parameter";
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
        return "unknown_CA";
    case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
        return "access_denied";
    case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR:
        return "decode_error";
    case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR:
        return "decrypt_error";
    case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
        return "protocol_version";
    case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY:
        return "insufficient_security";
    case MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR:
        return "internal_error";
    case MBEDTLS_SSL_ALERT_MSG_INAPROPRIATE_FALLBACK:
        return "inappropriate_fallback";
    case MBEDTLS_SSL_ALERT_MSG_USER_CANCELED:
        return "user_canceled";
    case MBEDTLS_SSL_ALERT_MSG_NO_RENEGOTIATION:
        return "no_renegotiation";
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_EXT:
        return "unsupported_extension";
    case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME:
        return "unrecognized_name";
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_PSK_IDENTITY:
        return "unknown_PSK_identity";
    case MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL:
        return "no_application_protocol";
    default:
        return "unknown";
    }
}

/* Turns a failed mbed TLS call into a sticky failure with a message naming the cause. */
static sn_tls_result fail(sn_tls_session *s, int rc, bool in_handshake)
{
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return SN_TLS_WANT;
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        if (!in_handshake) return SN_TLS_CLOSED;
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message, "peer closed the connection during the handshake");
        return SN_TLS_FAILED;
    }
    uint32_t verify = s->server ? 0 : mbedtls_ssl_get_verify_result(&s->ssl);
    if (verify == (uint32_t)-1) verify = 0; /* no certificate checked yet */
    if (s->cookie_rejected) {
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message,
                 "opening ClientHello rejected (missing, invalid or expired cookie)");
    } else if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && verify != 0 &&
               (verify & ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH) == 0) {
        s->failure = SN_TLS_FAIL_HOSTNAME;
        snprintf(s->message, sizeof s->message,
                 "certificate verify failed: hostname mismatch (certificate does not name "
                 "'%s'%s%.200s)",
                 s->hostname ? s->hostname : "", s->verify.names[0] ? "; " : "", s->verify.names);
    } else if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
               (in_handshake && verify != 0 && rc != MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)) {
        char why[280];
        sn_mbed_verify_text(&s->verify, verify & ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH, why,
                            sizeof why);
        s->failure = SN_TLS_FAIL_VERIFY;
        snprintf(s->message, sizeof s->message, "certificate verify failed: %s", why);
    } else if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        s->failure = SN_TLS_FAIL_ALERT;
        snprintf(s->message, sizeof s->message, "peer sent alert: %s",
                 sn_mbed_alert_name(s->ssl.in_msg ? s->ssl.in_msg[1] : -1));
    } else if (s->transport_error) {
        s->failure = SN_TLS_FAIL_TRANSPORT;
        snprintf(s->message, sizeof s->message, "transport error during %s",
                 in_handshake ? "the handshake" : "the session");
    } else if (s->transport_eof || rc == MBEDTLS_ERR_SSL_CONN_EOF) {
        if (in_handshake) {
            s->failure = SN_TLS_FAIL_TRANSPORT;
            snprintf(s->message, sizeof s->message,
                     "connection closed by peer during the handshake");
        } else {
            s->failure = SN_TLS_FAIL_TRUNCATED;
            snprintf(s->message, sizeof s->message,
                     "connection closed without close_notify: the stream was truncated");
        }
    } else if (in_handshake && !s->datagram && s->first_len >= 3 &&
               (s->first_bytes[0] < MBEDTLS_SSL_MSG_CHANGE_CIPHER_SPEC ||
                s->first_bytes[0] > MBEDTLS_SSL_MSG_APPLICATION_DATA || s->first_bytes[1] != 3)) {
        /* The first bytes are no TLS record header: what the remote sent instead, with what
         * follows if it is here already ("HTTP/1.1 400 Bad Request", "SSH-2.0-..."). */
        if (s->first_len < sizeof s->first_bytes) {
            long n = s->io.recv(s->io.user, s->first_bytes + s->first_len,
                                sizeof s->first_bytes - s->first_len);
            if (n > 0) s->first_len += (size_t)n;
        }
        char got[96];
        sn_quote_bytes(s->first_bytes, s->first_len, got, sizeof got);
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message, "the %s does not speak TLS (got %s)",
                 s->server ? "client" : "server", got);
    } else if (rc == MBEDTLS_ERR_SSL_INVALID_MAC) {
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message,
                 "TLS %s failed: bad record mac (a record failed authentication)",
                 in_handshake ? "handshake" : "session");
    } else if (rc == MBEDTLS_ERR_SSL_TIMEOUT) {
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message,
                 "handshake timed out: retransmissions exhausted without an answer");
    } else {
        char why[200];
        mbedtls_strerror(rc, why, sizeof why);
        s->failure = SN_TLS_FAIL_PROTOCOL;
        snprintf(s->message, sizeof s->message, "TLS %s failed: %s",
                 in_handshake ? "handshake" : "session", why);
    }
    return SN_TLS_FAILED;
}

/* mbedtls_ssl_handshake, one step at a time, to see what 2.28 keeps in its handshake state (freed
 * when the handshake ends): whether it resumes, and where a renewed ticket must be asked for. */
static int handshake_steps(sn_tls_session *s)
{
    int rc = 0;
    while (rc == 0 && s->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        rc = mbedtls_ssl_handshake_step(&s->ssl);
        mbedtls_ssl_handshake_params *hs = s->ssl.handshake;
        if (!hs) continue;
        /* The ClientHello resumed a ticket under the previous key: mbed TLS would send no new
         * one; this asks for it (ServerHello's extension and a NewSessionTicket) before the
         * ServerHello goes out. */
        if (s->renew_ticket) {
            hs->new_session_ticket = 1;
            s->renew_ticket = false;
        }
        s->resumed = hs->resume != 0; /* final once the ServerHello was written or read */
    }
    return rc;
}

/* What the end of a handshake does besides mbed TLS: ticket counters (server), the session kept
 * for the next connection (client). */
static void handshake_done(sn_tls_session *s)
{
    if (s->server && s->config->tickets) {
        if (s->resumed)
            sn_tls_ticket_keys_count(s->config->tickets, offsetof(sn_tls_ticket_counters, resumed));
        else if (s->ticket_known)
            sn_tls_ticket_keys_count(s->config->tickets,
                                     offsetof(sn_tls_ticket_counters, rejected));
    }
    if (!s->server && s->resume_key) saved_keep(s);
}

sn_tls_result sn_mbed_handshake(sn_tls_session *s)
{
    if (s->failure) return SN_TLS_FAILED;
    if (s->established) return SN_TLS_OK;
    /* When mbed TLS finds its retransmission timer expired it resends and returns WANT_READ
     * without reading: datagrams already queued for the session would wait for a poll that
     * happens before the next expiry, and a caller that polls on timers only would never let
     * them in. So after a resend it gets a second call, which reads. */
    bool expired = timer_get(s) == 2;
    int rc = handshake_steps(s);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ && expired) rc = handshake_steps(s);
    if (rc == 0) {
        s->established = true;
        handshake_done(s);
        return SN_TLS_OK;
    }
    return fail(s, rc, true);
}

sn_tls_result sn_mbed_read(sn_tls_session *s, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (s->failure) return SN_TLS_FAILED;
    bool was_established = s->established;
    if (!was_established) {
        /* Data flows only once the handshake is done: finish it first. */
        sn_tls_result r = sn_mbed_handshake(s);
        if (r != SN_TLS_OK) return r;
    }
    int rc = mbedtls_ssl_read(&s->ssl, buf, cap);
    if (rc > 0) {
        if (s->datagram && (size_t)rc == cap && mbedtls_ssl_get_bytes_avail(&s->ssl) > 0) {
            s->failure = SN_TLS_FAIL_TOO_BIG;
            snprintf(s->message, sizeof s->message,
                     "a record larger than the %zu-byte read buffer arrived", cap);
            return SN_TLS_FAILED;
        }
        *n = (size_t)rc;
        return SN_TLS_OK;
    }
    if (rc == 0) {
        if (s->transport_eof) return fail(s, MBEDTLS_ERR_SSL_CONN_EOF, false);
        return SN_TLS_WANT; /* an empty record */
    }
    return fail(s, rc, false);
}

size_t sn_mbed_max_payload(const sn_tls_session *s)
{
    if (!s->datagram) return 16384;
    if (!s->established) return 0;
    int n = mbedtls_ssl_get_max_out_record_payload(&s->ssl);
    return n > 0 ? (size_t)n : 0;
}

sn_tls_result sn_mbed_write(sn_tls_session *s, const void *buf, size_t len, size_t *n)
{
    *n = 0;
    if (s->failure) return SN_TLS_FAILED;
    if (s->datagram && len > sn_mbed_max_payload(s)) return SN_TLS_FAILED;
    s->send_blocked = false;
    int rc = mbedtls_ssl_write(&s->ssl, buf, len);
    if (rc >= 0) {
        *n = (size_t)rc;
        if (s->datagram && s->send_blocked) return SN_TLS_WANT;
        return SN_TLS_OK;
    }
    return fail(s, rc, !s->established);
}

void sn_mbed_close(sn_tls_session *s)
{
    if (!s || s->failure || !s->established || s->close_sent) return;
    s->close_sent = true;
    mbedtls_ssl_close_notify(&s->ssl);
}

sn_tls_failure sn_mbed_failure(const sn_tls_session *s, const char **message)
{
    if (message) *message = s->message;
    return s->failure;
}

size_t sn_mbed_pending(const sn_tls_session *s)
{
    return mbedtls_ssl_get_bytes_avail(&s->ssl);
}

bool sn_mbed_has_buffered_input(const sn_tls_session *s)
{
    return mbedtls_ssl_get_bytes_avail(&s->ssl) > 0 || mbedtls_ssl_check_pending(&s->ssl) != 0;
}

int64_t sn_mbed_next_timeout_ms(sn_tls_session *s)
{
    if (!s->datagram || s->timer_fin == 0) return -1;
    uint64_t elapsed = sn_now_ms() - s->timer_start;
    return elapsed >= s->timer_fin ? 0 : (int64_t)(s->timer_fin - elapsed);
}

sn_tls_result sn_mbed_handle_timeout(sn_tls_session *s)
{
    if (s->failure) return SN_TLS_FAILED;
    /* mbed TLS retransmits from inside the handshake when it finds its timer expired. */
    if (s->established) return SN_TLS_OK;
    sn_tls_result r = sn_mbed_handshake(s);
    return r == SN_TLS_FAILED ? SN_TLS_FAILED : SN_TLS_OK;
}

/* The suite in force or being negotiated (0: none yet). */
static int suite_id(const sn_tls_session *s)
{
    if (s->ssl.session && s->ssl.session->ciphersuite) return s->ssl.session->ciphersuite;
    if (s->ssl.session_negotiate) return s->ssl.session_negotiate->ciphersuite;
    return 0;
}

const char *sn_mbed_describe(const sn_tls_session *s)
{
    sn_tls_session *m = (sn_tls_session *)s;
    /* mbed TLS names suites "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256": the IANA name with
     * dashes for underscores. */
    int id = suite_id(s);
    const char *suite = id ? mbedtls_ssl_get_ciphersuite_name(id) : "(none)";
    snprintf(m->description, sizeof m->description, "%s %s", mbedtls_ssl_get_version(&s->ssl),
             suite);
    for (char *p = strchr(m->description, ' '); p && *p; p++)
        if (*p == '-') *p = '_';
    return m->description;
}

size_t sn_mbed_record_overhead(const sn_tls_session *s)
{
    int id = suite_id(s);
    const mbedtls_ssl_ciphersuite_t *info = id ? mbedtls_ssl_ciphersuite_from_id(id) : NULL;
    if (!info) return 16;
    /* ChaCha20-Poly1305: 16-byte tag. AES-GCM: 8-byte explicit nonce + 16-byte tag. */
    return info->cipher == MBEDTLS_CIPHER_CHACHA20_POLY1305 ? 16 : 24;
}

sn_err sn_mbed_peer_fingerprint(const sn_tls_session *s, char out[96])
{
    const mbedtls_x509_crt *cert = s ? mbedtls_ssl_get_peer_cert(&s->ssl) : NULL;
    if (!cert) return sn_fail(SN_ERR_UNAVAILABLE, "the remote presented no certificate");
    return sn_mbed_cert_fingerprint(cert, out);
}

bool sn_mbed_session_resumed(const sn_tls_session *s)
{
    return s && s->established && s->resumed;
}

sn_tls_chain *sn_mbed_peer_chain(const sn_tls_session *s)
{
    if (!s) return NULL;
    /* During the handshake the chain is in the handshake's session; after a failed
     * verification only in the copy verify_cert kept. */
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&s->ssl);
    if (!crt && s->ssl.session_negotiate) crt = s->ssl.session_negotiate->peer_cert;
    if (!crt) return s->seen_chain ? sn_mbed_chain_ref(s->seen_chain) : NULL;
    return sn_mbed_chain_copy(crt);
}
