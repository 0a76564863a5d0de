/* DTLS internals shared by dtls_server.c, dtls_peer.c and dtls_hello.c. Not installed. */
#ifndef SN_DTLS_INTERNAL_H
#define SN_DTLS_INTERNAL_H

#include "keys_internal.h"
#include "udp_transport.h"

#include <stdatomic.h>

/* Our cookies: 4-byte timestamp (seconds) + 4-byte nonce + 24 bytes of HMAC-SHA256. The nonce
 * (a counter) makes every cookie unique, so a session can tell a fresh cookie exchange from a
 * replay of the one that opened it. GnuTLS accepts cookies of
 * at most 32 bytes, so this is also the ceiling for interoperability. */
#define SN_DTLS_COOKIE_LEN 32
#define SN_DTLS_SECRET_LEN 32
/* Record header 13 + handshake header 12 + version 2 + cookie length 1 + cookie. */
#define SN_DTLS_HVR_MAX (13 + 12 + 3 + SN_DTLS_COOKIE_LEN)

/* What take_connection needs to know about the first datagram of a connection. */
typedef struct sn_dtls_hello {
    uint8_t record_seq[6]; /* echoed in the HelloVerifyRequest (RFC 6347 4.2.1) */
    uint16_t message_seq;  /* echoed likewise */
    const uint8_t *random; /* the client's 32-byte random, points into the datagram */
    const uint8_t *cookie; /* points into the datagram */
    size_t cookie_len;
} sn_dtls_hello;

/* Parses a datagram that should open with an unfragmented DTLS ClientHello. Bounds-checked on
 * every field; false for anything else. */
bool sn_dtls_parse_client_hello(const uint8_t *d, size_t len, sn_dtls_hello *out);

/* The HelloVerifyRequest answering `hello` with `cookie`; returns its length. */
size_t sn_dtls_build_hello_verify(const sn_dtls_hello *hello, const uint8_t *cookie,
                                  size_t cookie_len, uint8_t out[SN_DTLS_HVR_MAX]);

/* A plaintext fatal alert (e.g. 40 handshake_failure) answering `hello`, for refusing a client
 * before any session exists; returns its length (15). */
size_t sn_dtls_build_alert(const sn_dtls_hello *hello, uint8_t description, uint8_t out[15]);

/* dtls_server.c: refuses the connection whose first datagrams wait in udp: answers its
 * ClientHello with a fatal handshake_failure alert (the client fails cleanly instead of timing
 * out) and frees udp. Used by a host that is full. */
void sn_dtls_server_refuse(sn_udp_peer *udp);

/* dtls_server.c: asked once a ClientHello's cookie is proven, just before a session would be
 * created for it: the one point where a connection starts to hold memory, whatever else the
 * address queued before or after the hello. False drops the hello unanswered (the client
 * retransmits). The host enforces its half-open limits here. */
typedef bool (*sn_dtls_admit_fn)(void *user, const sn_addr *addr);
void sn_dtls_server_set_admit(sn_dtls_server *s, sn_dtls_admit_fn fn, void *user);

/* ---- dtls_halfopen.c: a classic server's half-open table ---------------------------------- */

/* A half-open handshake younger than this is never evicted (a client a round trip away
 * finishes within it); the newcomer is dropped instead. Shared with the host. */
#define SN_DTLS_EVICT_MIN_AGE_MS 1000
/* Handshake time a half-open server session gets while its table is at least half full.
 * The host's default for pressure_handshake_timeout_ms. */
#define SN_DTLS_PRESSURE_TIMEOUT_MS 5000

typedef struct sn_dtls_half_table sn_dtls_half_table;
/* One server peer's place in the table; embedded in the peer. */
typedef struct sn_dtls_half_entry {
    struct sn_dtls_half_entry *prev, *next;
    bool linked;
    atomic_bool evicted; /* set by the server's thread, acted on at the peer's next poll */
    uint8_t key[9];      /* family tag + the /32 or /64 */
    uint64_t started_ms;
} sn_dtls_half_entry;

/* The source an address counts against: IPv4 /32 (IPv4-mapped too) or IPv6 /64. */
void sn_dtls_half_key(const sn_addr *addr, uint8_t out[9]);
sn_dtls_half_table *sn_dtls_half_new(void);
sn_dtls_half_table *sn_dtls_half_ref(sn_dtls_half_table *t);
void sn_dtls_half_unref(sn_dtls_half_table *t);
/* 0: no limit. */
void sn_dtls_half_set_limits(sn_dtls_half_table *t, int max, int per_source);
/* Makes room for one more half-open handshake from addr (evicting when a limit is reached and
 * the oldest is old enough); false: drop the hello. */
bool sn_dtls_half_admit(sn_dtls_half_table *t, const sn_addr *addr, uint64_t now);
void sn_dtls_half_add(sn_dtls_half_table *t, sn_dtls_half_entry *e, const sn_addr *addr,
                      uint64_t now);
/* e leaves the table (nothing when it is not in it). */
void sn_dtls_half_remove(sn_dtls_half_table *t, sn_dtls_half_entry *e);
bool sn_dtls_half_under_pressure(const sn_dtls_half_table *t);
void sn_dtls_half_count_pressure_timeout(sn_dtls_half_table *t);
void sn_dtls_half_stats(const sn_dtls_half_table *t, sn_dtls_server_stats *out);
/* dtls_peer.c: ends a handshake in progress with ERROR `why`, telling the remote with a
 * plaintext fatal handshake_failure alert (an evicted client fails fast and may retry). */
void sn_dtls_peer_abort_handshake(sn_dtls_peer *p, const char *why);
/* dtls_peer.c: a server peer just created from server `t` joins its half-open table. */
void sn_dtls_peer_join_half(sn_dtls_peer *p, sn_dtls_half_table *t, const sn_addr *addr);

/* dtls_peer.c: the remote proved a restart (a new cookie-carrying ClientHello from the same
 * address and port) and this session ended because of it. */
bool sn_dtls_peer_remote_restarted(const sn_dtls_peer *p);
/* dtls_peer.c: handshake steps the peer asked of its TLS session so far (a poll with nothing
 * new for a session waiting for input asks none). For tests. */
uint64_t sn_dtls_peer_session_steps(const sn_dtls_peer *p);

/* Cookie = time || nonce || HMAC(secret, time || nonce || address || port)[0..23]. The address
 * is normalised so an IPv4 client has one identity whether seen as v4 or v4-mapped v6. */
void sn_dtls_make_cookie(const uint8_t secret[SN_DTLS_SECRET_LEN], uint32_t time_s, uint32_t nonce,
                         const sn_addr *addr, uint8_t out[SN_DTLS_COOKIE_LEN]);
/* True when cookie was made for addr with this secret no longer than lifetime_s ago. */
bool sn_dtls_check_cookie(const uint8_t secret[SN_DTLS_SECRET_LEN], uint32_t now_s,
                          uint32_t lifetime_s, const sn_addr *addr, const uint8_t *cookie,
                          size_t len);
/* The time a cookie says it was made (seconds on sn_now_ms's clock). */
uint32_t sn_dtls_cookie_time(const uint8_t *cookie);

/* The cookie secret of one server, shared with the peers taken from it (they answer and check
 * ClientHellos that arrive on an established address, RFC 6347 4.2.8). Refcounted; the mutex
 * makes it safe for peers polled on other threads than the server. */
typedef struct sn_dtls_cookie_jar sn_dtls_cookie_jar;
sn_dtls_cookie_jar *sn_dtls_jar_new(int lifetime_ms);
sn_dtls_cookie_jar *sn_dtls_jar_ref(sn_dtls_cookie_jar *jar);
void sn_dtls_jar_unref(sn_dtls_cookie_jar *jar);
void sn_dtls_jar_set_lifetime(sn_dtls_cookie_jar *jar, int lifetime_ms);
/* Makes a cookie for addr now (rotating the secret when it is due). */
void sn_dtls_jar_make(sn_dtls_cookie_jar *jar, const sn_addr *addr,
                      uint8_t out[SN_DTLS_COOKIE_LEN]);
/* True for a cookie this jar made for addr within its lifetime (current or previous secret). */
bool sn_dtls_jar_check(sn_dtls_cookie_jar *jar, const sn_addr *addr, const uint8_t *cookie,
                       size_t len);
uint64_t sn_dtls_jar_rotations(sn_dtls_cookie_jar *jar);
/* Replaces the secret with one the program gave (shared by workers or machines): it no longer
 * rotates, and cookies carry wall-clock time so that other machines can check them. */
void sn_dtls_jar_set_secret(sn_dtls_cookie_jar *jar, const uint8_t secret[SN_DTLS_SECRET_LEN]);
/* Now on the clock the jar's cookies carry, in seconds. */
uint32_t sn_dtls_jar_now_s(sn_dtls_cookie_jar *jar);
/* Answers `hello` from addr with a HelloVerifyRequest carrying a fresh cookie, sent through udp.
 * True when it went out. */
bool sn_dtls_send_hello_verify(sn_dtls_cookie_jar *jar, sn_udp_peer *udp, const sn_addr *addr,
                               const sn_dtls_hello *hello);

/* dtls_peer.c: builds the server side of a connection whose opening ClientHello carried
 * `cookie` (already verified). Takes ownership of udp. */
sn_dtls_peer *sn_dtls_peer_new_server(sn_tls_config *config, const sn_dtls_settings *settings,
                                      sn_udp_peer *udp, const sn_dtls_hello *hello,
                                      sn_dtls_cookie_jar *jar);
/* dtls_peer.c: a peer in ERROR that holds nothing but its message. */
sn_dtls_peer *sn_dtls_peer_new_failed(const char *message);

bool sn_dtls_settings_valid(const sn_dtls_settings *s);

/* dtls_peer.c: the tag a server's ready list hands back for this peer's UDP peer
 * (sn_udp_server_pop_ready), kept across a change of UDP peer. The host tags its own peer. */
void sn_dtls_peer_set_ready_tag(sn_dtls_peer *p, void *tag);
/* dtls_peer.c: datagrams wait in the UDP queue, or records inside the session, or a
 * handshaking session has not yet come back asking for input: a poll would find work. */
bool sn_dtls_peer_has_input(const sn_dtls_peer *p);

#endif
