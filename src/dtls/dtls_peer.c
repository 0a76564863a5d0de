/* sn_dtls_peer: Godot's PacketPeerDTLS. A TLS session over a UDP peer, driven by poll(). */
#include "dtls_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct packet {
    struct packet *next;
    size_t len;
    uint8_t data[];
} packet;

struct sn_dtls_peer {
    sn_dtls_status status;
    sn_udp_peer *udp;
    sn_tls_session *tls;
    bool server;
    int mtu, handshake_timeout_ms, retransmit_initial_ms, max_queued;
    uint64_t handshake_started_ms, last_packet_ms;
    packet *head, *tail;
    int queued;
    sn_dtls_peer_stats stats;
    uint8_t cookie[SN_DTLS_COOKIE_LEN]; /* server: the verified cookie of the opening hello */
    uint8_t client_random[32];          /* server: the opening hello's random */
    sn_dtls_cookie_jar *jar;            /* server: the server's cookie secret (shared) */
    bool remote_restarted;              /* server: a new valid ClientHello on our address */
    uint32_t started_s;                 /* server: when the session began (cookie clock) */
    char transport_message[160];        /* why the UDP peer refused a send, for messages */
    char ip[SN_IP_STRLEN];
    int port;
    char cipher[96];
    char peer_fingerprint[96]; /* of the remote's certificate, once connected */
    char message[320];
};

/* --- transport callbacks: the TLS session reads and writes datagrams through the UDP peer --- */

static long io_send(void *user, const void *data, size_t len)
{
    sn_dtls_peer *p = user;
    sn_err e = sn_udp_peer_put_packet(p->udp, data, len);
    if (e == SN_OK) return (long)len;
    if (e == SN_ERR_BUSY) {
        p->stats.send_busy++;
        return SN_TLS_IO_WOULD_BLOCK;
    }
    snprintf(p->transport_message, sizeof p->transport_message, "%s", sn_last_error_message());
    return SN_TLS_IO_ERROR;
}

/* Screens a datagram before the TLS library sees it. OpenSSL 3.0 ends a whole session over a
 * few malformed records that a datagram protocol must simply drop: an empty datagram, a record
 * of an unknown content type, and a protected record shorter than its AEAD overhead (the AAD
 * length check raises a fatal internal_error). Returns how many leading bytes hold acceptable
 * records: the datagram is cut at its first bad record (RFC 6347 4.1.2.7 discards invalid
 * records, not the valid ones before them); 0 drops it whole. */
static size_t acceptable_prefix(const sn_dtls_peer *p, const uint8_t *d, size_t len)
{
    size_t overhead = sn_tls_backend_get()->record_overhead(p->tls), good = 0;
    while (len - good >= 13) {
        const uint8_t *r = d + good;
        unsigned epoch = (unsigned)r[3] << 8 | r[4];
        size_t body = (size_t)r[11] << 8 | r[12];
        if (r[0] < 20 || r[0] > 23 || (epoch > 0 && body < overhead) || 13 + body > len - good)
            break;
        good += 13 + body;
    }
    return good;
}

/* A server peer sees a ClientHello on its own address: either a retransmission of the hello
 * that opened it (same random: the TLS library deals with it) or a client that restarted with
 * the same address and port (RFC 6347 4.2.8). A restart proven by a valid cookie ends this
 * session, so the client's next retransmission opens a new connection; without a valid cookie
 * it gets a stateless HelloVerifyRequest, so a spoofed hello cannot end anything.
 * True when the datagram was consumed here. */
static bool handle_new_hello(sn_dtls_peer *p, const uint8_t *d, size_t len)
{
    sn_dtls_hello hello;
    if (!p->jar || !sn_dtls_parse_client_hello(d, len, &hello)) return false;
    if (!memcmp(hello.random, p->client_random, sizeof p->client_random)) return false;
    sn_addr addr;
    if (!sn_udp_peer_remote(p->udp, &addr)) return true;
    /* A restart must prove a cookie exchange made after this session began (RFC 6347 4.2.8:
     * reachability shown by a completed cookie exchange): the opening cookie, or any older
     * one, replayed with a new random must not end a live session. */
    if (hello.cookie_len == SN_DTLS_COOKIE_LEN &&
        memcmp(hello.cookie, p->cookie, SN_DTLS_COOKIE_LEN) != 0 &&
        sn_dtls_cookie_time(hello.cookie) >= p->started_s &&
        sn_dtls_jar_check(p->jar, &addr, hello.cookie, hello.cookie_len))
        p->remote_restarted = true;
    else
        sn_dtls_send_hello_verify(p->jar, p->udp, &addr, &hello);
    return true;
}

static long io_recv(void *user, void *buf, size_t cap)
{
    sn_dtls_peer *p = user;
    const uint8_t *d;
    size_t len;
    while (!p->remote_restarted && (d = sn_udp_peer_peek(p->udp, &len))) {
        if (len > cap) {
            /* Larger than any DTLS record can be: drop it rather than hand the library a part. */
            p->stats.dropped_oversize++;
            sn_udp_peer_drop(p->udp);
            continue;
        }
        size_t good = acceptable_prefix(p, d, len);
        if (good < len) p->stats.dropped_invalid++;
        if (good == 0) {
            sn_udp_peer_drop(p->udp);
            continue;
        }
        if (p->server && d[0] == 22 && handle_new_hello(p, d, good)) {
            sn_udp_peer_drop(p->udp);
            continue;
        }
        memcpy(buf, d, good);
        sn_udp_peer_drop(p->udp);
        return (long)good;
    }
    return SN_TLS_IO_WOULD_BLOCK;
}

static bool cookie_matches(void *user, const uint8_t *cookie, size_t len)
{
    sn_dtls_peer *p = user;
    return len == SN_DTLS_COOKIE_LEN && memcmp(cookie, p->cookie, len) == 0;
}

/* --- lifecycle ------------------------------------------------------------------------------ */

static void apply_settings(sn_dtls_peer *p, const sn_dtls_settings *s)
{
    p->mtu = s->mtu;
    p->handshake_timeout_ms = s->handshake_timeout_ms;
    p->retransmit_initial_ms = s->retransmit_initial_ms;
    p->max_queued = s->max_queued_packets;
}

sn_dtls_peer *sn_dtls_peer_new(void)
{
    sn_dtls_peer *p = sn_calloc(1, sizeof *p);
    if (!p) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    sn_dtls_settings d;
    sn_dtls_default_settings(&d);
    apply_settings(p, &d);
    return p;
}

sn_dtls_peer *sn_dtls_peer_new_failed(const char *message)
{
    sn_dtls_peer *p = sn_dtls_peer_new();
    if (!p) return NULL;
    p->status = SN_DTLS_STATUS_ERROR;
    snprintf(p->message, sizeof p->message, "%s", message);
    return p;
}

static void set_error(sn_dtls_peer *p, sn_dtls_status status, const char *fmt, const char *arg)
{
    p->status = status;
    snprintf(p->message, sizeof p->message, fmt, arg);
    sn_log(SN_LOG_INFO, "dtls peer %s:%d: %s", p->ip, p->port, p->message);
}

/* Drops the session and the UDP peer but keeps decrypted packets readable. */
static void release_transport(sn_dtls_peer *p)
{
    sn_tls_backend_get()->session_free(p->tls);
    p->tls = NULL;
    sn_udp_peer_free(p->udp);
    p->udp = NULL;
}

static sn_tls_session *start_session(sn_dtls_peer *p, sn_tls_config *config, const char *host)
{
    sn_tls_session_params params = {
        .hostname = host,
        .mtu = (size_t)p->mtu,
        .retransmit_initial_ms = (uint32_t)p->retransmit_initial_ms,
        .cookie_verify = p->server ? cookie_matches : NULL,
        .cookie_user = p,
    };
    sn_tls_io io = {.user = p, .send = io_send, .recv = io_recv};
    return sn_tls_backend_get()->session_new(config, &params, &io);
}

static void remember_remote(sn_dtls_peer *p)
{
    sn_addr addr;
    if (sn_udp_peer_remote(p->udp, &addr))
        sn_net_format((struct sockaddr *)&addr.ss, p->ip, &p->port);
}

sn_dtls_peer *sn_dtls_peer_new_server(sn_tls_config *config, const sn_dtls_settings *settings,
                                      sn_udp_peer *udp, const sn_dtls_hello *hello,
                                      sn_dtls_cookie_jar *jar)
{
    sn_dtls_peer *p = sn_dtls_peer_new();
    if (!p) {
        sn_udp_peer_free(udp);
        return NULL;
    }
    apply_settings(p, settings);
    p->server = true;
    p->udp = udp;
    memcpy(p->cookie, hello->cookie, SN_DTLS_COOKIE_LEN);
    memcpy(p->client_random, hello->random, sizeof p->client_random);
    p->jar = sn_dtls_jar_ref(jar);
    p->started_s = (uint32_t)(sn_now_ms() / 1000);
    remember_remote(p);
    p->tls = start_session(p, config, NULL);
    if (!p->tls) {
        set_error(p, SN_DTLS_STATUS_ERROR, "cannot start DTLS session: %s",
                  sn_last_error_message());
        release_transport(p);
        return p;
    }
    p->status = SN_DTLS_STATUS_HANDSHAKING;
    p->handshake_started_ms = sn_now_ms();
    /* Process the ClientHello now: the ServerHello flight leaves before take_connection returns. */
    sn_dtls_peer_poll(p);
    return p;
}

static void clear_queue(sn_dtls_peer *p)
{
    for (packet *k = p->head, *next; k; k = next) {
        next = k->next;
        sn_free(k);
    }
    p->head = p->tail = NULL;
    p->queued = 0;
}

void sn_dtls_peer_free(sn_dtls_peer *p)
{
    if (!p) return;
    sn_dtls_peer_disconnect_from_peer(p);
    clear_queue(p);
    sn_dtls_jar_unref(p->jar);
    sn_free(p);
}

sn_err sn_dtls_peer_set_settings(sn_dtls_peer *p, const sn_dtls_settings *settings)
{
    if (!p || !settings) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    if (!sn_dtls_settings_valid(settings))
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "dtls settings out of range");
    apply_settings(p, settings);
    return SN_OK;
}

sn_err sn_dtls_peer_connect_to_peer(sn_dtls_peer *p, sn_udp_peer *udp, const char *hostname,
                                    const sn_tls_options *client_options)
{
    if (!p || !udp) {
        sn_udp_peer_free(udp);
        return sn_fail(SN_ERR_INVALID_PARAMETER, "dtls connect_to_peer: NULL argument");
    }
    if (p->status == SN_DTLS_STATUS_HANDSHAKING || p->status == SN_DTLS_STATUS_CONNECTED) {
        sn_udp_peer_free(udp);
        return sn_fail(SN_ERR_ALREADY_IN_USE, "dtls peer is already connecting or connected");
    }
    if (!sn_udp_peer_is_socket_connected(udp)) {
        sn_udp_peer_free(udp);
        return sn_fail(
            SN_ERR_INVALID_PARAMETER,
            "the udp peer must be connected to the server (sn_udp_peer_connect_to_host)");
    }
    if (client_options && sn_tls_options_is_server(client_options)) {
        sn_udp_peer_free(udp);
        return sn_fail(SN_ERR_INVALID_PARAMETER, "dtls connect_to_peer needs client options");
    }
    sn_tls_options *defaults = NULL;
    if (!client_options && !(client_options = defaults = sn_tls_options_client(NULL, NULL))) {
        sn_udp_peer_free(udp);
        return SN_FAILED;
    }
    const char *override = sn_tls_options_get_common_name_override(client_options);
    const char *host = override && *override ? override : hostname;
    sn_tls_config *config = sn_tls_options_get_config(client_options, true);

    /* A fresh start: forget a previous connection's packets and message. */
    release_transport(p);
    clear_queue(p);
    memset(&p->stats, 0, sizeof p->stats);
    p->message[0] = p->cipher[0] = p->peer_fingerprint[0] = '\0';
    p->server = false;
    p->udp = udp;
    remember_remote(p);
    p->tls = config ? start_session(p, config, host) : NULL;
    sn_tls_options_free(defaults); /* the session holds its own reference to the context */
    if (!p->tls) {
        set_error(p, SN_DTLS_STATUS_ERROR, "cannot start DTLS session: %s",
                  sn_last_error_message());
        release_transport(p);
        return SN_FAILED;
    }
    p->status = SN_DTLS_STATUS_HANDSHAKING;
    p->handshake_started_ms = sn_now_ms();
    sn_dtls_peer_poll(p);
    return SN_OK;
}

/* --- progress --------------------------------------------------------------------------------- */

static void fail_from_session(sn_dtls_peer *p)
{
    const char *why = "";
    sn_tls_failure f = sn_tls_backend_get()->failure(p->tls, &why);
    char msg[sizeof p->message];
    if (f == SN_TLS_FAIL_TRANSPORT && p->transport_message[0])
        snprintf(msg, sizeof msg, "%s: %s", why, p->transport_message);
    else
        snprintf(msg, sizeof msg, "%s", why);
    set_error(p,
              f == SN_TLS_FAIL_HOSTNAME ? SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH
                                        : SN_DTLS_STATUS_ERROR,
              "%s", msg);
    release_transport(p);
}

static void enqueue(sn_dtls_peer *p, const uint8_t *data, size_t len)
{
    if (p->queued >= p->max_queued) {
        p->stats.dropped_queue_full++;
        return;
    }
    packet *k = sn_malloc(sizeof *k + len);
    if (!k) {
        p->stats.dropped_queue_full++;
        return;
    }
    k->next = NULL;
    k->len = len;
    memcpy(k->data, data, len);
    if (p->tail)
        p->tail->next = k;
    else
        p->head = k;
    p->tail = k;
    p->queued++;
    p->stats.packets_received++;
    p->stats.bytes_received += len;
}

/* After each call into the session: a proven restart of the remote ends this connection. */
static bool restarted(sn_dtls_peer *p)
{
    if (!p->remote_restarted) return false;
    set_error(p, SN_DTLS_STATUS_DISCONNECTED, "%s",
              "the remote restarted the session (new ClientHello from the same address)");
    release_transport(p);
    return true;
}

static void read_all(sn_dtls_peer *p)
{
    const sn_tls_backend *b = sn_tls_backend_get();
    /* One record is at most 16 KiB of plaintext. */
    uint8_t buf[16384];
    for (;;) {
        size_t n = 0;
        sn_tls_result r = b->read(p->tls, buf, sizeof buf, &n);
        if (restarted(p)) return;
        if (r == SN_TLS_OK) {
            p->last_packet_ms = sn_now_ms();
            enqueue(p, buf, n);
            continue;
        }
        if (r == SN_TLS_CLOSED) {
            set_error(p, SN_DTLS_STATUS_DISCONNECTED, "%s", "the remote closed the connection");
            release_transport(p);
        } else if (r == SN_TLS_FAILED) {
            fail_from_session(p);
        }
        return;
    }
}

/* A client whose hellos keep coming back as ICMP port unreachable, with nothing received at
 * all, is talking to a closed port: say so now instead of after the handshake timeout. Two
 * refusals (the hello and its first retransmission) leave a server that is just starting a
 * second's grace. */
static bool nobody_listening(sn_dtls_peer *p)
{
    if (p->server) return false;
    sn_udp_peer_stats st;
    sn_udp_peer_get_stats(p->udp, &st);
    if (st.icmp_refused < 2 || st.datagrams_received > 0) return false;
    char where[SN_IP_STRLEN + 16];
    snprintf(where, sizeof where, "%s:%d", p->ip, p->port);
    set_error(p, SN_DTLS_STATUS_ERROR,
              "connection refused: nothing is listening on %s (ICMP port unreachable)", where);
    release_transport(p);
    return true;
}

void sn_dtls_peer_poll(sn_dtls_peer *p)
{
    if (!p || !p->tls) return;
    const sn_tls_backend *b = sn_tls_backend_get();
    sn_udp_peer_pump(p->udp);
    if (p->status == SN_DTLS_STATUS_HANDSHAKING) {
        sn_tls_result r = b->handshake(p->tls);
        if (restarted(p)) return;
        if (r == SN_TLS_FAILED) {
            fail_from_session(p);
            return;
        }
        if (r == SN_TLS_WANT) {
            if (nobody_listening(p)) return;
            uint64_t now = sn_now_ms();
            if (now - p->handshake_started_ms >= (uint64_t)p->handshake_timeout_ms) {
                char secs[32];
                snprintf(secs, sizeof secs, "%.3g", p->handshake_timeout_ms / 1000.0);
                set_error(p, SN_DTLS_STATUS_ERROR, "handshake timed out after %s s", secs);
                release_transport(p);
                return;
            }
            if (b->next_timeout_ms(p->tls) == 0 && b->handle_timeout(p->tls) == SN_TLS_FAILED)
                fail_from_session(p);
            return;
        }
        p->status = SN_DTLS_STATUS_CONNECTED;
        p->last_packet_ms = sn_now_ms();
        snprintf(p->cipher, sizeof p->cipher, "%s", b->describe(p->tls));
        if (b->peer_fingerprint(p->tls, p->peer_fingerprint) != SN_OK) p->peer_fingerprint[0] = 0;
        sn_log(SN_LOG_INFO, "dtls peer %s:%d connected (%s)", p->ip, p->port, p->cipher);
    }
    if (p->status != SN_DTLS_STATUS_CONNECTED) return;
    /* The last flight may still need retransmitting after the handshake is done. */
    if (b->next_timeout_ms(p->tls) == 0) b->handle_timeout(p->tls);
    /* Nothing arrived and nothing is buffered in the session: no need to ask it. */
    size_t ignored;
    if (!sn_udp_peer_peek(p->udp, &ignored) && !b->has_buffered_input(p->tls)) return;
    read_all(p);
}

/* --- data ------------------------------------------------------------------------------------- */

sn_dtls_status sn_dtls_peer_get_status(const sn_dtls_peer *p)
{
    return p ? p->status : SN_DTLS_STATUS_DISCONNECTED;
}

int sn_dtls_peer_get_available_packet_count(const sn_dtls_peer *p)
{
    return p ? p->queued : 0;
}

sn_err sn_dtls_peer_get_packet(sn_dtls_peer *p, void *buf, size_t cap, size_t *len)
{
    if (!p || !len || (!buf && cap)) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    packet *k = p->head;
    if (!k) {
        *len = 0;
        return sn_fail(SN_ERR_UNAVAILABLE, "no packet available");
    }
    *len = k->len;
    if (k->len > cap)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "packet of %zu bytes does not fit a %zu-byte buffer (it stays queued)",
                       k->len, cap);
    if (k->len) memcpy(buf, k->data, k->len);
    p->head = k->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    sn_free(k);
    return SN_OK;
}

int sn_dtls_peer_get_max_packet_size(const sn_dtls_peer *p)
{
    if (!p) return 0;
    if (p->tls && p->status == SN_DTLS_STATUS_CONNECTED)
        return (int)sn_tls_backend_get()->max_payload(p->tls);
    /* Before the handshake settles the cipher: the record header (13) and the largest
     * overhead of the suites the backend allows. */
    return p->mtu - 13 - (int)sn_tls_backend_get()->record_overhead_max;
}

sn_err sn_dtls_peer_put_packet(sn_dtls_peer *p, const void *buf, size_t len)
{
    if (!p || (!buf && len)) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    if (p->status != SN_DTLS_STATUS_CONNECTED || !p->tls)
        return sn_fail(SN_ERR_UNCONFIGURED, "dtls peer is not connected");
    if (len == 0)
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "an empty packet cannot be sent over DTLS (TLS libraries write no "
                       "empty records); the session stays up");
    size_t max = (size_t)sn_dtls_peer_get_max_packet_size(p);
    if (len > max)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "packet of %zu bytes exceeds the maximum of %zu at MTU %d", len, max,
                       p->mtu);
    size_t n = 0;
    sn_tls_result r = sn_tls_backend_get()->write(p->tls, buf, len, &n);
    if (r == SN_TLS_OK) {
        p->stats.packets_sent++;
        p->stats.bytes_sent += len;
        return SN_OK;
    }
    if (r == SN_TLS_WANT) return sn_fail(SN_ERR_BUSY, "socket send buffer full; packet not sent");
    fail_from_session(p);
    return sn_fail(SN_ERR_CONNECTION_ERROR, "%s", p->message);
}

const char *sn_dtls_peer_get_packet_ip(const sn_dtls_peer *p)
{
    return p ? p->ip : "";
}
int sn_dtls_peer_get_packet_port(const sn_dtls_peer *p)
{
    return p ? p->port : 0;
}
uint64_t sn_dtls_peer_get_last_packet_time_ms(const sn_dtls_peer *p)
{
    return p ? p->last_packet_ms : 0;
}

void sn_dtls_peer_disconnect_from_peer(sn_dtls_peer *p)
{
    if (!p) return;
    if (p->tls && p->status == SN_DTLS_STATUS_CONNECTED) sn_tls_backend_get()->close(p->tls);
    release_transport(p);
    if (p->status == SN_DTLS_STATUS_CONNECTED || p->status == SN_DTLS_STATUS_HANDSHAKING)
        p->status = SN_DTLS_STATUS_DISCONNECTED;
}

const char *sn_dtls_peer_get_error_message(const sn_dtls_peer *p)
{
    return p ? p->message : "";
}

void sn_dtls_peer_get_stats(const sn_dtls_peer *p, sn_dtls_peer_stats *out)
{
    if (p && out) *out = p->stats;
}

int sn_dtls_peer_get_fd(const sn_dtls_peer *p)
{
    return p && p->udp ? sn_udp_peer_get_fd(p->udp) : -1;
}

int sn_dtls_peer_next_timeout_ms(const sn_dtls_peer *p)
{
    if (!p || !p->tls) return -1;
    if (p->status != SN_DTLS_STATUS_HANDSHAKING && p->status != SN_DTLS_STATUS_CONNECTED) return -1;
    int64_t t = sn_tls_backend_get()->next_timeout_ms(p->tls);
    if (p->status == SN_DTLS_STATUS_CONNECTED) return t < 0 ? -1 : (int)t;
    /* Handshaking: the retransmission timer or the handshake deadline, whichever is first. */
    uint64_t elapsed = sn_now_ms() - p->handshake_started_ms;
    int64_t left = elapsed >= (uint64_t)p->handshake_timeout_ms
                       ? 0
                       : (int64_t)((uint64_t)p->handshake_timeout_ms - elapsed);
    if (t < 0 || t > left) t = left;
    return (int)t;
}

const char *sn_dtls_peer_get_cipher(const sn_dtls_peer *p)
{
    return p ? p->cipher : "";
}

const char *sn_dtls_peer_get_peer_fingerprint_sha256(const sn_dtls_peer *p)
{
    return p ? p->peer_fingerprint : "";
}
