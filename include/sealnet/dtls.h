/* sealnet — DTLS 1.2 (Godot: DTLSServer, PacketPeerDTLS).
 *
 * Same model as Godot: the program polls the UDP server, takes new connections, hands each to
 * sn_dtls_server_take_connection(), skips those not HANDSHAKING, and polls every peer from its
 * own loop. Nothing blocks.
 */
#ifndef SEALNET_DTLS_H
#define SEALNET_DTLS_H

#include <sealnet/tls_options.h>
#include <sealnet/udp.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_dtls_server sn_dtls_server;
typedef struct sn_dtls_peer sn_dtls_peer;

typedef enum sn_dtls_status {
    SN_DTLS_STATUS_DISCONNECTED = 0,
    SN_DTLS_STATUS_HANDSHAKING = 1,
    SN_DTLS_STATUS_CONNECTED = 2,
    SN_DTLS_STATUS_ERROR = 3,
    SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH = 4
} sn_dtls_status;

/* Tunables shared by servers and client peers. Start from sn_dtls_default_settings(). */
typedef struct sn_dtls_settings {
    int mtu;                   /* UDP payload bytes per datagram, handshake flights fragmented to
                                  it; default 1200, range 512..65507: a ClientHello must
                                  fit one datagram, as in OpenSSL's DTLSv1_listen */
    int retransmit_initial_ms; /* first handshake retransmission, doubling; default 1000 */
    int handshake_timeout_ms; /* whole handshake; then ERROR "handshake timed out"; default 30000 */
    int cookie_lifetime_ms;   /* server: how long a cookie stays valid; default 60000 */
    int max_queued_packets;   /* decrypted packets waiting per peer before drops; default 1024 */
    int max_half_open;        /* server: handshakes in progress (cookie proven, not finished)
                                 among the peers taken; default 256; 0: no limit. Checked when a
                                 session would be created; at the limit the oldest (if >= 1 s
                                 old) is evicted (it turns ERROR at its next poll), else the
                                 hello is dropped unanswered. While at least half full, a
                                 handshake gets 5 s at most (docs/dtls.md) */
    int max_half_open_per_source; /* server: the same per IPv4 /32 or IPv6 /64 (at it, the
                                     hello is dropped); default 64; 0: no limit */
} sn_dtls_settings;

/* Counters of a DTLS server (monotonic since setup). */
typedef struct sn_dtls_server_stats {
    uint64_t hellos_received;    /* ClientHellos seen by take_connection */
    uint64_t cookies_sent;       /* HelloVerifyRequests answered statelessly */
    uint64_t cookies_rejected;   /* cookies present but wrong, forged or expired */
    uint64_t handshakes_started; /* peers returned HANDSHAKING */
    uint64_t malformed_dropped;  /* first datagrams that were not a usable ClientHello */
    uint64_t secret_rotations;   /* cookie secret changes */
    uint64_t half_open_now;      /* gauge: peers taken whose handshake is in progress */
    uint64_t half_open_evicted;  /* evicted for a newer handshake (max_half_open[_per_source]) */
    uint64_t half_open_dropped;  /* cookie-proven hellos dropped: at a limit, none old enough */
    uint64_t half_open_pressure_timeouts; /* handshakes ended at 5 s under pressure */
} sn_dtls_server_stats;

/* Per-peer counters. */
typedef struct sn_dtls_peer_stats {
    uint64_t packets_received, bytes_received; /* decrypted application packets */
    uint64_t packets_sent, bytes_sent;
    uint64_t dropped_queue_full; /* decrypted packets dropped: queue at max_queued_packets */
    uint64_t dropped_oversize;   /* datagrams larger than a DTLS record can be */
    uint64_t dropped_invalid;    /* datagrams screened out before decryption: empty, unknown
                                    record type, protected record shorter than its overhead */
    uint64_t send_busy;          /* datagrams that could not be sent (socket buffer full) */
    uint64_t dropped_screened;   /* handshake records kept from the session: oversized or
                                    unexpected handshake messages, next-epoch records beyond
                                    the bound, HelloVerifyRequests beyond the bound, plaintext
                                    alerts superseded by the peer's next datagram (see
                                    docs/hostile-inputs.md) */
} sn_dtls_peer_stats;

/* Fills *out with the defaults listed above. */
SN_API void sn_dtls_default_settings(sn_dtls_settings *out);

/* A new server, not set up; NULL only when out of memory. */
SN_API sn_dtls_server *sn_dtls_server_new(void);
/* Frees the server; peers taken from it keep working. NULL is fine. */
SN_API void sn_dtls_server_free(sn_dtls_server *s);
/* Prepares the server with server options (sn_tls_options_server); keeps its own reference to
 * the shared context, so the options may be freed afterwards. Starts a fresh cookie secret.
 * Errors: SN_ERR_INVALID_PARAMETER (NULL, or client options), SN_FAILED (context). */
SN_API sn_err sn_dtls_server_setup(sn_dtls_server *s, const sn_tls_options *server_options);
/* Applies settings to peers taken from now on. SN_ERR_PARAMETER_RANGE_ERROR when out of range. */
SN_API sn_err sn_dtls_server_set_settings(sn_dtls_server *s, const sn_dtls_settings *settings);
SN_API void sn_dtls_server_get_settings(const sn_dtls_server *s, sn_dtls_settings *out);
SN_API void sn_dtls_server_get_stats(const sn_dtls_server *s, sn_dtls_server_stats *out);
/* Takes ownership of udp_peer (a connection taken from a UDP server), also on failure.
 * A ClientHello without a valid cookie is answered with a HelloVerifyRequest without any TLS
 * state, and the peer returned is in SN_DTLS_STATUS_ERROR (as in Godot: skip it; the client
 * retries with the cookie from the same address, which arrives as a new connection). A
 * ClientHello with a valid cookie gives a peer in SN_DTLS_STATUS_HANDSHAKING. NULL only when
 * out of memory. */
SN_API sn_dtls_peer *sn_dtls_server_take_connection(sn_dtls_server *s, sn_udp_peer *udp_peer);
/* Sets the secret that makes and checks cookies (len must be 32), before or after setup. By
 * default each server draws its own and rotates it; a set secret is shared: every worker and
 * machine given the same one accepts the cookies the others made (their clocks must agree
 * within the cookie lifetime: cookies from a set secret carry wall-clock time), and it does not
 * rotate. Copied. Errors: SN_ERR_INVALID_PARAMETER, SN_ERR_PARAMETER_RANGE_ERROR (length). */
SN_API sn_err sn_dtls_server_set_cookie_secret(sn_dtls_server *s, const uint8_t *secret,
                                               size_t len);
/* Reads a cookie-secret file into out: text, '#' comments, one line of 64 hex digits. A missing
 * file is created with a fresh random secret, mode 0600. A short, long or non-hex line, a
 * second secret or an empty file: SN_ERR_FILE_CORRUPT with a message naming the file, the line
 * and the fault. */
SN_API sn_err sn_dtls_load_cookie_secret_file(const char *path, uint8_t out[32]);

/* A new client peer, disconnected; NULL only when out of memory. */
SN_API sn_dtls_peer *sn_dtls_peer_new(void);
/* Sends close_notify when connected, then frees the peer and its UDP peer. NULL is fine. */
SN_API void sn_dtls_peer_free(sn_dtls_peer *p);
/* Settings for the next connect_to_peer. SN_ERR_PARAMETER_RANGE_ERROR when out of range. */
SN_API sn_err sn_dtls_peer_set_settings(sn_dtls_peer *p, const sn_dtls_settings *settings);
/* Starts a client handshake over udp_peer (takes ownership, also on failure; it must be
 * connected to the server with sn_udp_peer_connect_to_host). hostname: the name the server's
 * certificate must carry and the SNI, unless the options have a common-name override; NULL or
 * "" with verifying options is refused (as Godot 3 and the TLS stream do; to check the chain
 * alone, use sn_tls_options_client_unsafe(chain)). client_options NULL:
 * sn_tls_options_client(NULL, NULL), i.e. the system CAs.
 * Errors: SN_ERR_INVALID_PARAMETER (NULL udp, unconnected udp, server options, no hostname for a
 * verifying client),
 * SN_ERR_ALREADY_IN_USE (peer not disconnected), SN_FAILED. */
SN_API sn_err sn_dtls_peer_connect_to_peer(sn_dtls_peer *p, sn_udp_peer *udp_peer,
                                           const char *hostname,
                                           const sn_tls_options *client_options);
/* Drives the handshake, retransmissions and reading: afterwards every datagram that had arrived
 * is decrypted and counted. Never blocks. */
SN_API void sn_dtls_peer_poll(sn_dtls_peer *p);
SN_API sn_dtls_status sn_dtls_peer_get_status(const sn_dtls_peer *p);
/* Decrypted packets waiting to be read. */
SN_API int sn_dtls_peer_get_available_packet_count(const sn_dtls_peer *p);
/* Copies the oldest packet into buf. SN_ERR_UNAVAILABLE when none; SN_ERR_PARAMETER_RANGE_ERROR
 * when longer than cap (it stays queued, *len says its size). */
SN_API sn_err sn_dtls_peer_get_packet(sn_dtls_peer *p, void *buf, size_t cap, size_t *len);
/* Encrypts and sends one packet. SN_ERR_UNCONFIGURED when not connected; SN_ERR_BUSY when the
 * socket buffer is full (the packet is not sent); SN_ERR_PARAMETER_RANGE_ERROR over
 * sn_dtls_peer_get_max_packet_size (the session stays up). */
SN_API sn_err sn_dtls_peer_put_packet(sn_dtls_peer *p, const void *buf, size_t len);
/* Largest payload that fits one datagram at the current MTU (exact once connected). */
SN_API int sn_dtls_peer_get_max_packet_size(const sn_dtls_peer *p);
/* The remote address (IPv4 as a dotted quad) and port. "" / 0 when none. */
SN_API const char *sn_dtls_peer_get_packet_ip(const sn_dtls_peer *p);
SN_API int sn_dtls_peer_get_packet_port(const sn_dtls_peer *p);
/* Monotonic ms (sn's clock, see sn_dtls_now_ms) of the last authenticated record. */
SN_API uint64_t sn_dtls_peer_get_last_packet_time_ms(const sn_dtls_peer *p);
/* The clock used by get_last_packet_time_ms. */
SN_API uint64_t sn_dtls_now_ms(void);
/* Sends close_notify when connected and releases the session and the UDP peer; packets already
 * decrypted stay readable. Status becomes DISCONNECTED. */
SN_API void sn_dtls_peer_disconnect_from_peer(sn_dtls_peer *p);
/* Why the peer is in ERROR (or DISCONNECTED by the remote); "" otherwise. Owned by p. */
SN_API const char *sn_dtls_peer_get_error_message(const sn_dtls_peer *p);
SN_API void sn_dtls_peer_get_stats(const sn_dtls_peer *p, sn_dtls_peer_stats *out);
/* The socket to wait on (poll/epoll) and the ms until poll() has timer work (-1: none), so a
 * program can sleep instead of spinning. */
SN_API int sn_dtls_peer_get_fd(const sn_dtls_peer *p);
SN_API int sn_dtls_peer_next_timeout_ms(const sn_dtls_peer *p);
/* Protocol and suite (IANA name, the same on every TLS backend), e.g.
 * "DTLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", once connected; "" before. Owned by p. */
SN_API const char *sn_dtls_peer_get_cipher(const sn_dtls_peer *p);
/* SHA-256 fingerprint ("AB:CD:..", as `openssl x509 -fingerprint -sha256`) of the certificate
 * the remote presented, once connected; "" when it presented none. Compare it with a known
 * value to pin a server. Owned by p; stays valid after a disconnect. */
SN_API const char *sn_dtls_peer_get_peer_fingerprint_sha256(const sn_dtls_peer *p);
/* True when the last handshake resumed an earlier session from a session ticket (abbreviated:
 * no key exchange, no certificate sent). A client resumes on its own when it connects again
 * with the same client options to the same name and port, and the server has ticket keys
 * (sn_tls_options_set_ticket_keys). Stays as it was after a disconnect. */
SN_API bool sn_dtls_peer_is_session_resumed(const sn_dtls_peer *p);
/* The certificate chain the remote presented (leaf first), once it did: while connected, and
 * after the session ended, a failed verification included (to show the user what was refused).
 * A new object, freed with sn_x509_cert_free; NULL when there is none. */
SN_API sn_x509_cert *sn_dtls_peer_get_peer_certificate(const sn_dtls_peer *p);

#ifdef __cplusplus
}
#endif
#endif
