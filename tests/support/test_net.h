/* An in-memory datagram network behind sealnet's UDP transport hook (sn_set_udp_transport),
 * for tests and fuzz targets that must run without the kernel's UDP stack: deterministic (no
 * scheduling, no socket buffers) and many times faster than loopback.
 *
 * sealnet still opens and binds its sockets, so every socket has a real address; the network
 * only replaces what travels. A datagram sent to an address lands in that address's queue and
 * is read by the socket bound to it (a wildcard-bound socket reads every address of its port);
 * a connected socket reads only what comes from its peer, as the kernel filters. A datagram to
 * an address nobody reads stays queued (the program can take it as a fake endpoint) until the
 * next sn_test_net_reset. A program can also send from any address it likes (a spoofed or
 * simulated client): sn_test_net_inject. Queues are bounded: a full one drops and counts.
 * Single-threaded. */
#ifndef SN_TEST_NET_H
#define SN_TEST_NET_H

#include <sealnet/sealnet.h>

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address on the fake network: IPv4 and IPv6 alike (IPv4 stored v4-mapped). */
typedef struct sn_test_addr {
    uint8_t ip[16];
    uint16_t port;
} sn_test_addr;

typedef struct sn_test_net_stats {
    uint64_t sent;           /* datagrams accepted by the network (sends and injections) */
    uint64_t delivered;      /* datagrams read by a socket or taken by the program */
    uint64_t dropped_full;   /* the destination's queue was full */
    uint64_t dropped_filter; /* a connected socket's datagram from someone else */
    uint64_t dropped_trunc;  /* read with a buffer too small (the kernel's MSG_TRUNC) */
    uint64_t send_failures;  /* sends failed on purpose (sn_test_net_fail_sends) */
} sn_test_net_stats;

/* Installs the network as sealnet's UDP transport (and empties it). The datagrams a full queue
 * dropped are what a socket bound to that address reports as dropped_kernel (counted since
 * the last sn_test_net_reset), with no system call. */
void sn_test_net_install(void);
/* Restores the kernel transport and frees every queued datagram. */
void sn_test_net_remove(void);
/* Drops every queued datagram and zeroes the statistics and fault settings. */
void sn_test_net_reset(void);

/* 127.0.0.x:port as an address (x 0..255); a dotted quad or IPv6 literal with sn_test_addr_ip. */
sn_test_addr sn_test_addr_v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port);
bool sn_test_addr_ip(const char *ip, uint16_t port, sn_test_addr *out);
bool sn_test_addr_equal(const sn_test_addr *a, const sn_test_addr *b);

/* The network remembers each socket's local and peer address after its first send or read
 * instead of asking the kernel every time (two system calls per datagram read: most of a fuzz
 * input's cost). sealnet tells it when a socket is bound, connected or closed
 * (sn_udp_transport.forget), so the names stay right across closes and descriptor reuse. On by
 * default; false asks the kernel every time (for sockets closed behind sealnet's back). Either
 * call forgets what was cached. */
void sn_test_net_cache_names(bool on);

/* Sends len bytes from `from` to `to` as if a host with that address had sent them. False when
 * the queue was full (dropped, counted). */
bool sn_test_net_inject(const sn_test_addr *from, const sn_test_addr *to, const void *data,
                        size_t len);
/* Takes the oldest datagram queued for `to` (a fake endpoint): its full length (copied up to
 * cap), its source in *from (may be NULL); -1 when none. */
long sn_test_net_take(const sn_test_addr *to, void *buf, size_t cap, sn_test_addr *from);
/* Datagrams queued for `to`, and in all. */
size_t sn_test_net_queued_to(const sn_test_addr *to);
size_t sn_test_net_queued(void);
/* Caps: datagrams per destination (default 256) and in all (default 8192). */
void sn_test_net_set_limits(size_t per_destination, size_t total);
/* From now on, sends from any socket fail with errno err (0: stop). */
void sn_test_net_fail_sends(int err);

void sn_test_net_get_stats(sn_test_net_stats *out);

/* ---- DTLS wire helpers for scripted clients ---- */

/* A DTLS ClientHello with its cookie replaced by `cookie`: record, handshake and fragment
 * lengths rewritten. Returns the new length, 0 when `ch` is not a single-fragment ClientHello or
 * the result does not fit in cap. */
size_t sn_test_dtls_splice_cookie(const uint8_t *ch, size_t len, const uint8_t *cookie,
                                  size_t cookie_len, uint8_t *out, size_t cap);
/* The cookie of a HelloVerifyRequest datagram (pointing into d); false when d is not one. */
bool sn_test_dtls_hvr_cookie(const uint8_t *d, size_t len, const uint8_t **cookie,
                             size_t *cookie_len);

#endif
