/* sealnet — Host: a whole DTLS server (and/or client) as one event-driven object.
 *
 * Godot leaves every server to hand-write the same loop: a list of peers, polling each one every
 * frame, dropping the disconnected ones, timing out the silent ones, broadcasting, closing
 * everyone on shutdown. An sn_host owns the UDP server, the DTLS server and every peer and hands
 * the program one event at a time (ENet's model, over DTLS 1.2):
 *
 *     sn_host_event ev;
 *     while (running) {
 *         while (sn_host_service(host, &ev, 50) > 0) {
 *             switch (ev.type) {
 *             case SN_HOST_EVENT_CONNECT:    ...; break;
 *             case SN_HOST_EVENT_RECEIVE:    use ev.data / ev.len; break;
 *             case SN_HOST_EVENT_DISCONNECT: ev.reason, ev.message; break;
 *             default: break;
 *             }
 *         }
 *     }
 *
 * A host with server options accepts connections; any host can also connect out with
 * sn_host_connect(), and both kinds of peer give the same events. Keepalives (see docs/host.md
 * for the wire format) keep both ends' idle timers fed and measure the round-trip time.
 * Not thread-safe: one thread services a host; distinct hosts may run on distinct threads.
 */
#ifndef SEALNET_HOST_H
#define SEALNET_HOST_H

#include <sealnet/dtls.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_host sn_host;
typedef struct sn_host_peer sn_host_peer;

/* Settings of a host. Start from sn_host_default_config() and change what you need. */
typedef struct sn_host_config {
    const char *bind_address; /* "*" or NULL: any address, IPv6 dual-stack; only for servers */
    int port;                 /* 0: ephemeral (read it with sn_host_get_port) */
    /* Server options (sn_tls_options_server): the host accepts DTLS connections. NULL: a
     * client-only host that opens no listening socket. Borrowed: the host keeps its own
     * reference to what it needs, so the options may be freed after sn_host_create. */
    const sn_tls_options *server_options;
    int max_peers;             /* peers handshaking or connected, both directions; default 4096.
                                  Beyond it incoming clients are refused with a fatal
                                  handshake_failure alert (they fail at once, not by timeout) */
    int max_half_open;         /* incoming handshakes in progress (cookie proven, unfinished);
                                  default 256. At the limit a new cookie-proven handshake evicts
                                  the oldest half-open one (docs/host.md, "Half-open
                                  handshakes"), so silent handshakes cannot lock clients out */
    int idle_timeout_ms;       /* no authenticated packet for this long: DISCONNECT TIMEOUT;
                                  default 30000; 0: never */
    int handshake_timeout_ms;  /* whole handshake, both directions; default: the DTLS layer's
                                  (sn_dtls_default_settings, 30000) */
    int keepalive_interval_ms; /* ping when nothing was sent for this long (and at least every
                                  4 intervals, for the RTT); default 1000; 0: never ping (for
                                  plain DTLS peers such as Godot: see docs/host.md) */
    int mtu;                   /* UDP payload bytes per datagram; default: the DTLS layer's
                                  (1200) */
    int max_work_per_service;  /* peers with pending I/O or timers handled per service call
                                  before returning (round-robin fair); default 256 */
    int recv_buffer_size;      /* server socket's kernel receive buffer (SO_RCVBUF, capped by
                                  net.core.rmem_max unless privileged); default 4 MiB, so bursts
                                  from many peers are not dropped by the kernel; 0: system
                                  default (about 208 KiB: roughly 100 small datagrams) */
    /* The server socket joins an SO_REUSEPORT group (several hosts on one port, as sn_workers
     * does); default false. */
    bool reuse_port;
    /* 32 bytes shared by every host that must accept the others' cookies (see
     * sn_dtls_server_set_cookie_secret); NULL: the host draws its own, rotating. Copied. */
    const uint8_t *cookie_secret;
    /* Half-open handshakes from one IPv4 /32 or IPv6 /64; default 64. One more from there is
     * dropped unanswered (it retransmits), so one address only competes with itself. */
    int max_half_open_per_source;
    /* While the half-open table is at least half full, an incoming handshake gets this long
     * instead of handshake_timeout_ms; default 5000. */
    int pressure_handshake_timeout_ms;
} sn_host_config;

typedef enum sn_host_event_type {
    SN_HOST_EVENT_NONE = 0,
    SN_HOST_EVENT_CONNECT = 1,   /* handshake done: the peer can send and receive */
    SN_HOST_EVENT_RECEIVE = 2,   /* one application packet: data/len */
    SN_HOST_EVENT_DISCONNECT = 3 /* the peer is gone: reason/message; delivered once */
} sn_host_event_type;

typedef enum sn_host_disconnect_reason {
    SN_HOST_DISCONNECT_NONE = 0,
    SN_HOST_DISCONNECT_CLOSED = 1,           /* the remote sent close_notify */
    SN_HOST_DISCONNECT_TIMEOUT = 2,          /* nothing authenticated for idle_timeout_ms */
    SN_HOST_DISCONNECT_HANDSHAKE_FAILED = 3, /* outgoing connection failed (message says why,
                                                e.g. a full server's handshake_failure alert,
                                                a certificate error, a handshake timeout) */
    SN_HOST_DISCONNECT_KICKED = 4,           /* sn_host_peer_disconnect() by this program */
    SN_HOST_DISCONNECT_REFUSED = 5,          /* outgoing connection refused before any DTLS:
                                                this host is full, or ICMP port unreachable
                                                (nothing listens there) */
    SN_HOST_DISCONNECT_ERROR = 6,            /* connected session failed (fatal alert, send
                                                error); message says why */
    SN_HOST_DISCONNECT_RESTARTED = 7         /* the client restarted: a new cookie-proven
                                                ClientHello from the same address and port
                                                ended its old session (RFC 6347 4.2.8); its
                                                new connection follows as a new peer */
} sn_host_disconnect_reason;

typedef enum sn_host_peer_state {
    SN_HOST_PEER_HANDSHAKING = 0,
    SN_HOST_PEER_CONNECTED = 1,
    SN_HOST_PEER_DISCONNECTED = 2 /* DISCONNECT is queued or delivered; the handle dies at the
                                     next sn_host_service after that event */
} sn_host_peer_state;

/* One event. Everything it points to (peer, data, message) stays valid until the next
 * sn_host_service or sn_host_free call on the same host. */
typedef struct sn_host_event {
    sn_host_event_type type;
    sn_host_peer *peer;
    uint32_t peer_id;
    void *user_data;     /* the peer's user data pointer */
    const uint8_t *data; /* RECEIVE */
    size_t len;
    sn_host_disconnect_reason reason; /* DISCONNECT */
    const char *message;              /* DISCONNECT: human-readable cause; "" otherwise */
} sn_host_event;

/* Counters of a host since it was created; gauges (`*_now`) describe the present. */
typedef struct sn_host_stats {
    uint64_t peers_connected_now;    /* gauge */
    uint64_t peers_handshaking_now;  /* gauge */
    uint64_t incoming_half_open_now; /* gauge: incoming handshakes in progress */
    uint64_t handshakes_started;     /* both directions */
    uint64_t handshakes_completed;
    uint64_t handshakes_failed;
    uint64_t cookies_sent;      /* HelloVerifyRequests (stateless) */
    uint64_t refused_full;      /* incoming clients refused: max_peers reached */
    uint64_t dropped_half_open; /* cookie-proven ClientHellos dropped: max_half_open reached,
                                   every half-open handshake younger than 1 s and no source
                                   holding more than the newcomer's (docs/host.md); the client
                                   retransmits */
    uint64_t idle_timeouts;
    uint64_t disconnects;                          /* DISCONNECT events delivered */
    uint64_t packets_received, bytes_received;     /* application packets delivered (RECEIVE) */
    uint64_t packets_sent, bytes_sent;             /* application packets sent (send, broadcast) */
    uint64_t keepalives_sent, keepalives_received; /* pings and pongs, both counted */
    uint64_t dropped_send_busy;                    /* sends refused: socket buffer full */
    uint64_t dropped_queue_full;                   /* UDP or DTLS receive queues full */
    uint64_t dropped_malformed;    /* first datagrams that were no ClientHello, oversize
                                      datagrams */
    uint64_t dropped_pending_full; /* datagrams from new addresses while the UDP server's
                                      pending table was full */
    uint64_t service_calls;
    uint64_t waits; /* times service slept in epoll_wait */
    /* The half-open table (docs/host.md, "Half-open handshakes"). */
    uint64_t incoming_half_open_peak;     /* gauge: most half-open at once; <= max_half_open */
    uint64_t evicted_half_open;           /* the table was full: the oldest half-open evicted
                                             (or, all young, the largest source's oldest) */
    uint64_t dropped_half_open_source;    /* cookie-proven ClientHellos dropped: the source was
                                             at max_half_open_per_source */
    uint64_t half_open_pressure_timeouts; /* ended at pressure_handshake_timeout_ms */
} sn_host_stats;

/* Fills *out with the defaults documented in sn_host_config (client-only, port 0). */
SN_API void sn_host_default_config(sn_host_config *out);

/* Creates a host: with config->server_options it listens on bind_address:port. config NULL:
 * the defaults (a client-only host). NULL with a message on failure (port in use, bad values,
 * client options given as server options). */
SN_API sn_host *sn_host_create(const sn_host_config *config);
/* sn_host_create(NULL): a client-only host with default settings. */
SN_API sn_host *sn_host_new(void);
/* Sends close_notify to every connected peer, then frees every peer and the host. No events
 * are delivered. NULL is fine. */
SN_API void sn_host_free(sn_host *host);

/* The port the host listens on (0 for a client-only host). */
SN_API int sn_host_get_port(const sn_host *host);

/* Does all pending I/O and timers and fills *event with the next event. Sleeps in epoll_wait
 * at most timeout_ms (0: never sleeps; -1: until an event) while there is nothing to do.
 * Returns 1 with an event, 0 when timeout_ms passed without one (event->type NONE), -1 on
 * failure (message in sn_last_error_message). Work per call is bounded by
 * max_work_per_service; what is left is picked up by the next call, round-robin. */
SN_API int sn_host_service(sn_host *host, sn_host_event *event, int timeout_ms);

/* Starts a DTLS connection to address:port (IP literal or name). hostname: what the server's
 * certificate must name, and the SNI (NULL: address). client_options NULL:
 * sn_tls_options_client(NULL, NULL), i.e. system CAs; borrowed. The peer later gives CONNECT,
 * or DISCONNECT (HANDSHAKE_FAILED / REFUSED) with the reason; a host that is full gives a peer
 * whose DISCONNECT REFUSED comes at the next service. NULL with a message on bad arguments or
 * an address that does not resolve. The handle belongs to the host. */
SN_API sn_host_peer *sn_host_connect(sn_host *host, const char *address, int port,
                                     const char *hostname, const sn_tls_options *client_options);

/* Sends one application packet to every peer whose CONNECT was delivered, except `except`
 * (NULL: none). Returns how many peers it was sent to; -1 with a message on bad arguments. */
SN_API int sn_host_broadcast(sn_host *host, const void *data, size_t len,
                             const sn_host_peer *except);

/* Sends now what the host queued (ENet's enet_host_flush). Rarely needed: replies sent while
 * handling the events of a service pass wait in a queue and leave together, in one sendmmsg,
 * at the next sn_host_service call (or when 64 are queued); sends made when no pass is in
 * progress leave at once. sn_host_next_timeout_ms is 0 while anything is queued. A datagram
 * that then fails for good ends its peer's session: DISCONNECT ERROR with the cause, at the
 * next service. NULL is fine. */
SN_API void sn_host_flush(sn_host *host);

/* The live peer with this id (ids are never reused within a host's life); NULL when it is
 * gone. The safe way to keep a reference across service calls. */
SN_API sn_host_peer *sn_host_find_peer(const sn_host *host, uint32_t id);
/* Copies up to cap handles of the host's peers (every state) into out and returns how many
 * peers there are in all, so a program can walk them (e.g. to free user data before
 * sn_host_free). The handles follow the usual lifetime rules. */
SN_API size_t sn_host_get_peers(const sn_host *host, sn_host_peer **out, size_t cap);
/* Number of peers in a state (handshaking, connected or disconnected-but-not-yet-freed). */
SN_API size_t sn_host_peer_count(const sn_host *host, sn_host_peer_state state);

/* Counters, kept as running sums (O(1)). Zeroes when host is NULL. */
SN_API void sn_host_get_stats(const sn_host *host, sn_host_stats *out);

/* For a program with its own event loop: the epoll descriptor that becomes readable when any of
 * the host's sockets has data, and the ms until service has timer work (0: now, -1: none). */
SN_API int sn_host_get_fd(const sn_host *host);
SN_API int sn_host_next_timeout_ms(const sn_host *host);

/* Encrypts and sends one packet. SN_ERR_UNCONFIGURED when the peer is not connected;
 * SN_ERR_BUSY when the socket buffer is full (not sent); SN_ERR_PARAMETER_RANGE_ERROR over
 * sn_host_peer_get_max_packet_size; SN_ERR_INVALID_PARAMETER for a packet that is exactly a
 * keepalive (13 bytes starting with the reserved prefix, see docs/host.md). */
SN_API sn_err sn_host_peer_send(sn_host_peer *peer, const void *data, size_t len);
/* Sends close_notify and drops the peer: its undelivered packets are discarded and one
 * DISCONNECT with reason KICKED follows (unless a DISCONNECT was already queued). */
SN_API void sn_host_peer_disconnect(sn_host_peer *peer);

SN_API uint32_t sn_host_peer_get_id(const sn_host_peer *peer);
SN_API sn_host_peer_state sn_host_peer_get_state(const sn_host_peer *peer);
SN_API bool sn_host_peer_is_outgoing(const sn_host_peer *peer);
/* Remote address (IPv4 as a dotted quad) and port. Owned by the peer. */
SN_API const char *sn_host_peer_get_address(const sn_host_peer *peer);
SN_API int sn_host_peer_get_port(const sn_host_peer *peer);
/* Monotonic ms (sn_dtls_now_ms) of the last authenticated packet, keepalives included. */
SN_API uint64_t sn_host_peer_get_last_packet_time_ms(const sn_host_peer *peer);
/* Smoothed round-trip time and its mean deviation from keepalives, in ms; -1 before the first
 * pong (and always for a plain DTLS peer that does not answer pings). */
SN_API double sn_host_peer_get_rtt_ms(const sn_host_peer *peer);
SN_API double sn_host_peer_get_rtt_var_ms(const sn_host_peer *peer);
SN_API void sn_host_peer_set_user_data(sn_host_peer *peer, void *user_data);
SN_API void *sn_host_peer_get_user_data(const sn_host_peer *peer);
/* Overrides the host's keepalive interval for this peer (0: no pings, e.g. a Godot client). */
SN_API void sn_host_peer_set_keepalive_interval_ms(sn_host_peer *peer, int ms);
SN_API int sn_host_peer_get_max_packet_size(const sn_host_peer *peer);
/* Protocol and suite (IANA name), e.g. "DTLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
 * once connected, "" before. Owned by the peer. */
SN_API const char *sn_host_peer_get_cipher(const sn_host_peer *peer);
/* True when the peer's handshake resumed an earlier session from a session ticket (see
 * sn_dtls_peer_is_session_resumed). Outgoing peers resume on their own when connected again
 * with the same client options to the same name and port. */
SN_API bool sn_host_peer_is_session_resumed(const sn_host_peer *peer);

/* Names for logs: "CONNECT", "TIMEOUT", ... Static strings. */
SN_API const char *sn_host_event_type_string(sn_host_event_type type);
SN_API const char *sn_host_disconnect_reason_string(sn_host_disconnect_reason reason);

#ifdef __cplusplus
}
#endif
#endif
