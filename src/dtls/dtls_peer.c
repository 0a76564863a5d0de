/* sn_dtls_peer: Godot's PacketPeerDTLS. A TLS session over a UDP peer, driven by poll(). */
#include "dtls_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct packet {
    struct packet *next;
    size_t len;
    size_t cap; /* bytes data[] can hold (a reused node may be larger than len) */
    uint8_t data[];
} packet;

/* A node read by the program is kept for the next record when it is at most this large, so a
 * steady flow of small packets allocates nothing per packet; larger ones are freed. */
#define SN_DTLS_SPARE_MAX 2048

/* A client's current streak of ICMP port unreachable answers (see nobody_listening). */
typedef struct icmp_watch {
    const sn_udp_peer *udp; /* the UDP peer and connection attempt the streak belongs to */
    uint64_t attempt_ms;
    uint64_t seen;     /* refusals the UDP peer had counted when last looked at */
    uint64_t since_ms; /* when the streak's first refusal was seen (0: no streak) */
    uint64_t heard;    /* traffic counter at the streak's start: any change ends the streak */
} icmp_watch;

struct sn_dtls_peer {
    sn_dtls_status status;
    sn_udp_peer *udp;
    sn_tls_session *tls;
    bool server;
    int mtu, handshake_timeout_ms, retransmit_initial_ms, max_queued;
    uint64_t handshake_started_ms, last_packet_ms;
    packet *head, *tail;
    packet *spare; /* one node kept for reuse (SN_DTLS_SPARE_MAX) */
    int queued;
    size_t overhead; /* record_overhead of the session's cipher, once connected (0: ask) */
    sn_dtls_peer_stats stats;
    uint8_t cookie[SN_DTLS_COOKIE_LEN]; /* server: the verified cookie of the opening hello */
    uint8_t client_random[32];          /* server: the opening hello's random */
    sn_dtls_cookie_jar *jar;            /* server: the server's cookie secret (shared) */
    bool remote_restarted;              /* server: a new valid ClientHello on our address */
    uint32_t started_s;                 /* server: when the session began (cookie clock) */
    char transport_message[160];        /* why the UDP peer refused a send, for messages */
    char ip[SN_IP_STRLEN];
    int port;
    bool resumed; /* the last handshake resumed a session (stays true after a disconnect) */
    char cipher[96];
    char peer_fingerprint[96]; /* of the remote's certificate, once connected */
    void *ready_tag;           /* handed to the UDP peer, whichever it is (host: its peer) */
    char message[320];
    icmp_watch icmp;          /* client: ICMP port unreachable streak (nobody_listening) */
    sn_tls_chain *peer_chain; /* what the remote presented, kept when the session goes */
    /* Handshake screening (screen_records): what an unauthenticated peer may make us hold. */
    uint16_t hello_seq;             /* server: message_seq of the opening ClientHello */
    int hvr_seen;                   /* client: HelloVerifyRequests in this handshake */
    bool hvr_exceeded;              /* client: more than SN_DTLS_MAX_HVR: fail at the next poll */
    int early_epoch;                /* server: next-epoch records passed during the handshake */
    uint8_t held_alert[64];         /* a plaintext alert received during the handshake, held back */
    size_t held_len;                /* 0: none held */
    uint64_t held_ms;               /* when it was first held */
    bool release_alert;             /* the peer stayed silent: hand the alert to the session */
    char screen_note[160];          /* what screening dropped that explains a later failure */
    sn_dtls_half_table *half_table; /* server: its server's half-open table, while half-open */
    sn_dtls_half_entry half;
    /* Handshaking: the session's last step ended waiting for a datagram (SN_TLS_WANT), so
     * until one arrives, its buffers hold input or its timer expires, another step would do
     * nothing (and cost a whole trip through the TLS library and its error queue). */
    bool awaiting_input;
    /* The session's last read of the transport found nothing (io_recv). OpenSSL can answer
     * "want more" without reading at all: a malformed record it holds is worked through over
     * several steps, and SSL_has_pending does not see it. Only a step that asked the transport
     * for more and got nothing is waiting for a datagram. */
    bool read_blocked;
    uint64_t session_steps; /* handshake steps asked of the session (tests) */
    size_t recv_cap;        /* the buffer size the session reads datagrams into (0: not yet) */
};

/* Handshake limits (docs/hostile-inputs.md). A handshake is unauthenticated until its Finished
 * messages: anything in it may come from an off-path spoofer or from a peer that only wants to
 * make the server hold memory. */
/* Client: HelloVerifyRequests answered per handshake (RFC 6347 expects one; a few more cover a
 * server that restarted or rotated its secret mid-handshake). */
#define SN_DTLS_MAX_HVR 8
/* A plaintext alert during the handshake ends it only when the peer says nothing else for this
 * long: a spoofed alert is superseded by the real peer's next datagram, and a genuine one
 * (e.g. a full server's refusal) still ends the handshake within a second. */
#define SN_DTLS_ALERT_GRACE_MS 750
/* Server: next-epoch records handed to the session, once keys for them can exist, before its
 * handshake is done. OpenSSL keeps each one it cannot decrypt yet with a whole read buffer
 * (~17 KiB); the client's Finished needs one, retransmissions and reordering a few more. */
#define SN_DTLS_EARLY_EPOCH_MAX 4
/* Server: how far past the opening ClientHello a client handshake message_seq may be. A
 * client (no client certificates are ever requested) sends ClientKeyExchange and Finished. */
#define SN_DTLS_SEQ_WINDOW 3
/* Server: the largest handshake messages a client may send. ClientHello: OpenSSL's own
 * ceiling for a DTLS record payload; ClientKeyExchange: OpenSSL's (2048, an RSA-16384
 * premaster or an ECDH point). */
#define SN_DTLS_CLIENT_HELLO_MAX 16384
#define SN_DTLS_CLIENT_KEX_MAX   2048

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
    /* The cipher is fixed once connected (renegotiation is off): asked once, not per datagram. */
    size_t overhead = p->overhead ? p->overhead : sn_tls_backend_get()->record_overhead(p->tls);
    size_t good = 0;
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

/* A plaintext handshake record from a client, checked fragment by fragment against what a
 * client of this server can send. False (with the reason in screen_note) to drop it: before
 * OpenSSL sees it, because OpenSSL would reserve the declared message length (up to 100 KiB)
 * for each of up to 10 out-of-order messages. */
static bool client_fragments_fit(sn_dtls_peer *p, const uint8_t *body, size_t len)
{
    for (size_t off = 0; off + 12 <= len;) {
        const uint8_t *f = body + off;
        unsigned type = f[0];
        size_t msg_len = (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3];
        unsigned seq = (unsigned)f[4] << 8 | f[5];
        size_t frag_len = (size_t)f[9] << 16 | (size_t)f[10] << 8 | f[11];
        size_t limit = type == 1    ? SN_DTLS_CLIENT_HELLO_MAX
                       : type == 16 ? SN_DTLS_CLIENT_KEX_MAX
                                    : 0;
        if (limit == 0) {
            snprintf(p->screen_note, sizeof p->screen_note,
                     "the client sent handshake message type %u, which it may not send here", type);
            return false;
        }
        if (msg_len > limit) {
            snprintf(p->screen_note, sizeof p->screen_note,
                     "the client sent a handshake message too large (type %u declaring %zu "
                     "bytes; limit %zu)",
                     type, msg_len, limit);
            return false;
        }
        if (seq > (unsigned)p->hello_seq + SN_DTLS_SEQ_WINDOW) {
            snprintf(p->screen_note, sizeof p->screen_note,
                     "the client sent handshake message_seq %u, beyond %u", seq,
                     (unsigned)p->hello_seq + SN_DTLS_SEQ_WINDOW);
            return false;
        }
        off += 12 + frag_len;
    }
    return true;
}

/* Which records of a datagram reach the session while the handshake is in progress (after it,
 * everything acceptable does). Copies the kept records to out and returns their length. */
static size_t screen_records(sn_dtls_peer *p, const uint8_t *d, size_t len, uint8_t *out)
{
    if (p->status != SN_DTLS_STATUS_HANDSHAKING) {
        memcpy(out, d, len);
        return len;
    }
    size_t kept = 0;
    bool kex_seen = false; /* a ClientKeyExchange or ChangeCipherSpec earlier in this datagram */
    for (size_t off = 0; off + 13 <= len;) {
        const uint8_t *r = d + off;
        size_t rlen = 13 + ((size_t)r[11] << 8 | r[12]);
        unsigned epoch = (unsigned)r[3] << 8 | r[4];
        off += rlen;
        bool keep = true;
        if (epoch == 0 && r[0] == 21) {
            /* Held, not believed: the peer's next datagram supersedes it. */
            if (!p->held_len) p->held_ms = sn_now_ms();
            p->held_len = rlen <= sizeof p->held_alert ? rlen : 0;
            if (p->held_len) memcpy(p->held_alert, r, rlen);
            continue;
        }
        if (epoch == 0 && r[0] == 22 && rlen >= 13 + 12) {
            if (p->server) {
                keep = client_fragments_fit(p, r + 13, rlen - 13);
            } else if (r[13] == 3 && ++p->hvr_seen > SN_DTLS_MAX_HVR) {
                p->hvr_exceeded = true;
                keep = false;
            }
        } else if (epoch > 0 && p->server) {
            /* Before the client's key exchange no key of a later epoch can exist: such a
             * record is forged or early, and OpenSSL would keep it with a whole read buffer.
             * After it (or after a key exchange or ChangeCipherSpec earlier in this datagram),
             * records that still arrive ahead of the ChangeCipherSpec are bounded by count. */
            const sn_tls_backend *b = sn_tls_backend_get();
            bool possible =
                kex_seen ||
                (b->peer_next_epoch_possible ? b->peer_next_epoch_possible(p->tls) : true);
            keep = possible && p->early_epoch < SN_DTLS_EARLY_EPOCH_MAX;
            if (keep) p->early_epoch++;
        }
        if (keep && epoch == 0 && r[0] == 20) kex_seen = true;
        if (keep && epoch == 0 && r[0] == 22 && rlen >= 13 + 12 && r[13] == 16) kex_seen = true;
        if (!keep) {
            p->stats.dropped_screened++;
            continue;
        }
        /* The peer is still talking: an alert held so far was not its last word. */
        if (p->held_len) p->stats.dropped_screened++;
        p->held_len = 0;
        memcpy(out + kept, r, rlen);
        kept += rlen;
    }
    return kept;
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
    if (p->release_alert && p->held_len <= cap) {
        /* The peer said nothing after its alert: let the session act on it. */
        size_t n = p->held_len;
        memcpy(buf, p->held_alert, n);
        p->read_blocked = false;
        p->release_alert = false;
        p->held_len = 0;
        return (long)n;
    }
    p->recv_cap = cap;
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
        size_t kept = screen_records(p, d, good, buf);
        sn_udp_peer_drop(p->udp);
        if (kept == 0) continue;
        p->read_blocked = false;
        return (long)kept;
    }
    p->read_blocked = true;
    return SN_TLS_IO_WOULD_BLOCK;
}

/* A datagram waits in the UDP queue or records in the session: what a read or a handshake step
 * would find. Without either, asking the session is a whole trip through the TLS library (and
 * its error queue) for nothing. */
static bool queued_or_buffered(const sn_dtls_peer *p)
{
    return sn_udp_peer_peek(p->udp, NULL) || sn_tls_backend_get()->has_buffered_input(p->tls);
}

/* Drops, as io_recv would, the datagrams at the head of the queue that hold no acceptable
 * record, without asking the session: a poll that then finds nothing else queued need not step
 * it (junk from a spoofer or a broken peer costs no trip through the TLS library). */
static void drop_unusable(sn_dtls_peer *p)
{
    const uint8_t *d;
    size_t len;
    while ((d = sn_udp_peer_peek(p->udp, &len)) && len <= p->recv_cap &&
           acceptable_prefix(p, d, len) == 0) {
        p->stats.dropped_invalid++;
        sn_udp_peer_drop(p->udp);
    }
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

void sn_dtls_peer_join_half(sn_dtls_peer *p, sn_dtls_half_table *t, const sn_addr *addr)
{
    p->half_table = sn_dtls_half_ref(t);
    sn_dtls_half_add(t, &p->half, addr, p->handshake_started_ms);
}

/* The handshake is over (connected, failed, evicted, freed): out of the half-open table. */
static void leave_half(sn_dtls_peer *p)
{
    if (!p->half_table) return;
    sn_dtls_half_remove(p->half_table, &p->half);
    sn_dtls_half_unref(p->half_table);
    p->half_table = NULL;
}

/* Drops the session and the UDP peer but keeps decrypted packets readable. */
static void release_transport(sn_dtls_peer *p)
{
    if (p->tls && sn_tls_backend_get()->peer_chain) { /* optional in a backend */
        sn_tls_chain *c = sn_tls_backend_get()->peer_chain(p->tls);
        if (c) {
            if (p->peer_chain) sn_tls_backend_get()->chain_unref(p->peer_chain);
            p->peer_chain = c;
        }
    }
    leave_half(p);
    sn_tls_backend_get()->session_free(p->tls);
    p->tls = NULL;
    p->overhead = 0;
    p->recv_cap = 0;
    sn_udp_peer_free(p->udp);
    p->udp = NULL;
}

void sn_dtls_peer_abort_handshake(sn_dtls_peer *p, const char *why)
{
    if (!p || p->status != SN_DTLS_STATUS_HANDSHAKING) return;
    if (p->udp) {
        /* A plaintext fatal handshake_failure, so the client fails within its alert grace and
         * can retry instead of retransmitting into nothing until its handshake timeout. The
         * sequence number is far ahead of any the session used: not taken for a replay. */
        static const uint8_t alert[15] = {21,   0xfe, 0xfd, 0, 0, 0, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0, 2, 2, 40};
        sn_udp_peer_put_packet(p->udp, alert, sizeof alert);
    }
    set_error(p, SN_DTLS_STATUS_ERROR, "%s", why);
    release_transport(p);
}

static sn_tls_session *start_session(sn_dtls_peer *p, sn_tls_config *config, const char *host)
{
    /* A client resumes the last session it had with this server (same options, name, port). */
    char resume_key[SN_IP_STRLEN + 300] = "";
    if (!p->server)
        snprintf(resume_key, sizeof resume_key, "%s:%d", host && *host ? host : p->ip, p->port);
    sn_tls_session_params params = {
        .resume_key = resume_key,
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
    sn_udp_peer_set_ready_tag(udp, p->ready_tag);
    memcpy(p->cookie, hello->cookie, SN_DTLS_COOKIE_LEN);
    memcpy(p->client_random, hello->random, sizeof p->client_random);
    p->hello_seq = hello->message_seq;
    p->jar = sn_dtls_jar_ref(jar);
    p->started_s = sn_dtls_jar_now_s(jar);
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
    sn_free(p->spare);
    p->spare = NULL;
}

void sn_dtls_peer_free(sn_dtls_peer *p)
{
    if (!p) return;
    sn_dtls_peer_disconnect_from_peer(p);
    clear_queue(p);
    sn_dtls_jar_unref(p->jar);
    if (p->peer_chain) sn_tls_backend_get()->chain_unref(p->peer_chain);
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
    /* A verifying client with no name would accept any certificate the chain vouches for, for
     * any host: refuse, as the TLS stream and Godot 3 do (client_unsafe(chain) checks the chain
     * alone, on purpose). */
    if (!sn_tls_options_is_unsafe_client(client_options) && (!host || !*host)) {
        sn_tls_options_free(defaults);
        sn_udp_peer_free(udp);
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "dtls connect_to_peer: a hostname is needed to verify the server "
                       "(sn_tls_options_client_unsafe skips name checks)");
    }
    sn_tls_config *config = sn_tls_options_get_config(client_options, true);

    /* A fresh start: forget a previous connection's packets and message. */
    release_transport(p);
    clear_queue(p);
    memset(&p->stats, 0, sizeof p->stats);
    p->message[0] = p->cipher[0] = p->peer_fingerprint[0] = p->screen_note[0] = '\0';
    p->resumed = false;
    if (p->peer_chain) sn_tls_backend_get()->chain_unref(p->peer_chain);
    p->peer_chain = NULL;
    p->hvr_seen = p->early_epoch = 0;
    p->hvr_exceeded = p->release_alert = p->awaiting_input = false;
    p->held_len = 0;
    p->server = false;
    p->udp = udp;
    sn_udp_peer_set_ready_tag(udp, p->ready_tag);
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
    else if (p->screen_note[0] && p->status == SN_DTLS_STATUS_HANDSHAKING)
        snprintf(msg, sizeof msg, "%s (earlier: %s)", why, p->screen_note);
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
    packet *k = p->spare;
    if (k && k->cap >= len) {
        p->spare = NULL;
    } else if ((k = sn_malloc(sizeof *k + len))) {
        k->cap = len;
    } else {
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

uint64_t sn_dtls_peer_session_steps(const sn_dtls_peer *p)
{
    return p ? p->session_steps : 0;
}

bool sn_dtls_peer_remote_restarted(const sn_dtls_peer *p)
{
    return p && p->remote_restarted;
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
    uint64_t now = 0;
    for (;;) {
        size_t n = 0;
        sn_tls_result r = b->read(p->tls, buf, sizeof buf, &n);
        if (restarted(p)) return;
        if (r == SN_TLS_OK) {
            if (!now) now = sn_now_ms(); /* one clock read per poll, not per record */
            p->last_packet_ms = now;
            enqueue(p, buf, n);
            /* The same test as the poll's before reading: with no datagram queued and nothing
             * buffered in the session, another read would only come back empty (a whole trip
             * through the TLS library and its error queue, per packet). */
            if (!queued_or_buffered(p)) return;
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

/* How long ICMP port unreachable answers must keep coming before a client believes them. */
#define SN_DTLS_ICMP_PERSIST_MS 2000

/* A client whose datagrams keep drawing ICMP port unreachable is talking to a closed port: a
 * handshake to a server that is not there, or a session whose server went away. ICMP is not
 * authenticated (anyone on the path can forge one) and a server that is restarting draws a few,
 * so a refusal counts only as part of a streak: the streak starts at the first refusal, ends at
 * any authenticated traffic (a decrypted packet once connected; during the handshake, where
 * nothing is authenticated yet, any datagram at all), and ends the connection when a refusal
 * still comes SN_DTLS_ICMP_PERSIST_MS after its first: across the hello's retransmissions, or
 * across the program's sends. */
static bool nobody_listening(sn_dtls_peer *p)
{
    if (p->server || !p->udp) return false;
    icmp_watch *w = &p->icmp;
    if (w->udp != p->udp || w->attempt_ms != p->handshake_started_ms)
        *w = (icmp_watch){.udp = p->udp, .attempt_ms = p->handshake_started_ms};
    sn_udp_peer_stats st;
    sn_udp_peer_get_counters(p->udp, &st); /* every poll: no system call */
    bool connected = p->status == SN_DTLS_STATUS_CONNECTED;
    uint64_t heard = connected ? p->stats.packets_received : st.datagrams_received;
    if (w->since_ms && heard != w->heard) w->since_ms = 0;
    if (st.icmp_refused == w->seen) return false;
    w->seen = st.icmp_refused;
    uint64_t now = sn_now_ms();
    if (!w->since_ms) {
        w->since_ms = now ? now : 1;
        w->heard = heard;
        return false;
    }
    if (now - w->since_ms < SN_DTLS_ICMP_PERSIST_MS) return false;
    char where[SN_IP_STRLEN + 16];
    snprintf(where, sizeof where, "%s:%d", p->ip, p->port);
    if (connected)
        set_error(p, SN_DTLS_STATUS_ERROR, "%s", "the server went away (ICMP port unreachable)");
    else
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
    /* A datagram the session handed over earlier left later, in its server's batch, and failed
     * for good: the session is as dead as when a direct send fails. */
    if (sn_udp_peer_take_send_error(p->udp, p->transport_message, sizeof p->transport_message)) {
        char why[sizeof p->message];
        snprintf(why, sizeof why, "transport error during %s: %s",
                 p->status == SN_DTLS_STATUS_HANDSHAKING ? "the handshake" : "the session",
                 p->transport_message);
        set_error(p, SN_DTLS_STATUS_ERROR, "%s", why);
        release_transport(p);
        return;
    }
    if (p->status == SN_DTLS_STATUS_HANDSHAKING && p->half_table) {
        if (atomic_load(&p->half.evicted)) {
            sn_dtls_peer_abort_handshake(
                p, "evicted: a newer handshake needed the slot (half-open limit)");
            return;
        }
        if (sn_dtls_half_under_pressure(p->half_table) &&
            SN_DTLS_PRESSURE_TIMEOUT_MS < p->handshake_timeout_ms &&
            sn_now_ms() - p->handshake_started_ms >= SN_DTLS_PRESSURE_TIMEOUT_MS) {
            sn_dtls_half_count_pressure_timeout(p->half_table);
            set_error(p, SN_DTLS_STATUS_ERROR, "%s",
                      "half-open handshake timed out (the server is under pressure)");
            release_transport(p);
            return;
        }
    }
    if (p->status == SN_DTLS_STATUS_HANDSHAKING) {
        if (p->held_len && sn_now_ms() - p->held_ms >= SN_DTLS_ALERT_GRACE_MS)
            p->release_alert = true;
        /* Nothing new for a session that asked for input: answer for it. Its timer is asked
         * first, so an expired one still retransmits (mbed TLS does it inside the step). */
        if (p->awaiting_input) drop_unusable(p);
        bool idle = p->awaiting_input && !p->release_alert && !queued_or_buffered(p) &&
                    b->next_timeout_ms(p->tls) != 0;
        sn_tls_result r = SN_TLS_WANT;
        if (!idle) {
            p->read_blocked = false;
            r = b->handshake(p->tls);
            p->session_steps++;
            p->awaiting_input = r == SN_TLS_WANT && p->read_blocked;
        }
        if (restarted(p)) return;
        if (p->hvr_exceeded) {
            char n[16];
            snprintf(n, sizeof n, "%d", SN_DTLS_MAX_HVR);
            set_error(p, SN_DTLS_STATUS_ERROR,
                      "the server sent more than %s HelloVerifyRequests in one handshake "
                      "(a broken or hostile server, or a spoofer): gave up",
                      n);
            release_transport(p);
            return;
        }
        if (r == SN_TLS_FAILED) {
            fail_from_session(p);
            return;
        }
        if (r == SN_TLS_WANT) {
            if (nobody_listening(p)) return;
            uint64_t now = sn_now_ms();
            if (now - p->handshake_started_ms >= (uint64_t)p->handshake_timeout_ms) {
                char secs[200];
                if (p->screen_note[0])
                    snprintf(secs, sizeof secs, "%.3g s (%s)", p->handshake_timeout_ms / 1000.0,
                             p->screen_note);
                else
                    snprintf(secs, sizeof secs, "%.3g s", p->handshake_timeout_ms / 1000.0);
                set_error(p, SN_DTLS_STATUS_ERROR, "handshake timed out after %s", secs);
                release_transport(p);
                return;
            }
            if (!idle && b->next_timeout_ms(p->tls) == 0 &&
                b->handle_timeout(p->tls) == SN_TLS_FAILED)
                fail_from_session(p);
            return;
        }
        p->status = SN_DTLS_STATUS_CONNECTED;
        p->overhead = b->record_overhead(p->tls);
        leave_half(p);
        p->last_packet_ms = sn_now_ms();
        p->resumed = b->session_resumed && b->session_resumed(p->tls); /* optional */
        snprintf(p->cipher, sizeof p->cipher, "%s", b->describe(p->tls));
        if (b->peer_fingerprint(p->tls, p->peer_fingerprint) != SN_OK) p->peer_fingerprint[0] = 0;
        sn_log(SN_LOG_INFO, "dtls peer %s:%d connected (%s)", p->ip, p->port, p->cipher);
    }
    if (p->status != SN_DTLS_STATUS_CONNECTED) return;
    if (nobody_listening(p)) return;
    /* The last flight may still need retransmitting after the handshake is done; a session that
     * cannot resend it is dead, and says why rather than staying CONNECTED. */
    if (b->next_timeout_ms(p->tls) == 0 && b->handle_timeout(p->tls) == SN_TLS_FAILED) {
        fail_from_session(p);
        return;
    }
    /* Nothing arrived (or only junk) and nothing is buffered in the session: no need to ask
     * it. */
    drop_unusable(p);
    if (!queued_or_buffered(p)) return;
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
    if (!p->spare && k->cap <= SN_DTLS_SPARE_MAX) {
        p->spare = k;
    } else {
        sn_free(k);
    }
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
    if (p->held_len) { /* a held alert is believed once its grace has passed */
        uint64_t held = sn_now_ms() - p->held_ms;
        int64_t grace =
            held >= SN_DTLS_ALERT_GRACE_MS ? 0 : (int64_t)(SN_DTLS_ALERT_GRACE_MS - held);
        if (grace < t) t = grace;
    }
    return (int)t;
}

void sn_dtls_peer_set_ready_tag(sn_dtls_peer *p, void *tag)
{
    if (!p) return;
    p->ready_tag = tag;
    if (p->udp) sn_udp_peer_set_ready_tag(p->udp, tag);
}

bool sn_dtls_peer_has_input(const sn_dtls_peer *p)
{
    if (!p || !p->tls) return false;
    if (p->status == SN_DTLS_STATUS_HANDSHAKING && !p->awaiting_input) return true;
    return queued_or_buffered(p);
}

const char *sn_dtls_peer_get_cipher(const sn_dtls_peer *p)
{
    return p ? p->cipher : "";
}

const char *sn_dtls_peer_get_peer_fingerprint_sha256(const sn_dtls_peer *p)
{
    return p ? p->peer_fingerprint : "";
}

bool sn_dtls_peer_is_session_resumed(const sn_dtls_peer *p)
{
    return p && p->resumed;
}

sn_x509_cert *sn_dtls_peer_get_peer_certificate(const sn_dtls_peer *p)
{
    if (!p) return NULL;
    const sn_tls_backend *b = sn_tls_backend_get();
    sn_tls_chain *c = p->tls && b->peer_chain ? b->peer_chain(p->tls) : NULL;
    if (!c && p->peer_chain) c = b->chain_ref(p->peer_chain);
    return c ? sn_x509_cert_wrap(c) : NULL;
}
