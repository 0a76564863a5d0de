/* What the layers above net/ (dtls, host) may use of a UDP peer beyond the public API: its queue
 * without copying, and its remote address. Not installed. */
#ifndef SN_UDP_TRANSPORT_H
#define SN_UDP_TRANSPORT_H

#include "net.h"

/* udp_peer.c: what the DTLS layer needs from a UDP peer. */
/* Reads what the peer's own socket holds into its queue; a no-op for a server-owned peer, whose
 * queue the server fills. */
sn_err sn_udp_peer_pump(sn_udp_peer *p);
/* The oldest queued datagram without removing it (NULL when none). Valid until the next call
 * that changes the queue. */
const uint8_t *sn_udp_peer_peek(const sn_udp_peer *p, size_t *len);
/* Removes the oldest queued datagram (no-op when none). */
void sn_udp_peer_drop(sn_udp_peer *p);
/* The address this peer talks to (connected address, destination, or the address a server
 * routed to it). false when it has none. */
bool sn_udp_peer_remote(const sn_udp_peer *p, sn_addr *out);
/* The ready list (ENet's dispatch queue): a server puts a taken peer on it when it routes a
 * datagram to it and the peer is not on it already; pop_ready takes the oldest off (NULL when
 * none). The peer is borrowed: its owner (e.g. a DTLS peer) decides its life, and freeing it
 * takes it off the list. The tag tells the consumer whose peer it is without the consumer
 * keeping a pointer to the UDP peer. */
sn_udp_peer *sn_udp_server_pop_ready(sn_udp_server *s);
size_t sn_udp_server_ready_count(const sn_udp_server *s);
void sn_udp_peer_set_ready_tag(sn_udp_peer *p, void *tag);
void *sn_udp_peer_ready_tag(const sn_udp_peer *p);

/* Send batching (udp_sendq.c). While a server is corked, what its taken peers send is queued
 * (put_packet returns SN_OK) and leaves in one sendmmsg per flush: at uncorking, at
 * sn_udp_server_flush, when the queue is full (64 datagrams or 64 KiB), and when the server
 * stops. A queued datagram that then fails for good becomes its peer's send error and puts the
 * peer on the ready list; one refused for a full buffer is dropped and counted (send_busy), as
 * the network could have dropped it. Default uncorked. */
void sn_udp_server_set_corked(sn_udp_server *s, bool corked);
/* Off: corking is ignored and every send is its own sendto (for comparisons; default on). */
void sn_udp_server_set_send_batching(sn_udp_server *s, bool enabled);
bool sn_udp_server_is_corked(const sn_udp_server *s);
void sn_udp_server_flush(sn_udp_server *s);
/* Datagrams waiting for the next flush. */
size_t sn_udp_server_queued_sends(const sn_udp_server *s);
/* True once, with the message ("send failed: <strerror>"), when a queued datagram of this peer
 * failed for good; clears it. */
bool sn_udp_peer_take_send_error(sn_udp_peer *p, char *msg, size_t cap);
/* The peer's counters as sn_udp_peer_get_stats gives them, except dropped_kernel (left 0): no
 * system call, for callers that look at the counters on every poll (the DTLS client's ICMP
 * watch). */
void sn_udp_peer_get_counters(const sn_udp_peer *p, sn_udp_peer_stats *out);

/* True for a peer taken from a server (it shares the server's socket). */
bool sn_udp_peer_is_server_owned(const sn_udp_peer *p);

#endif
