/* How the public objects reach into each other inside the library. Not installed.
 * Each function is implemented in the file named beside it. */
#ifndef SN_OBJECTS_H
#define SN_OBJECTS_H

#include "net.h"
#include "tls/backend.h"

/* crypto_key.c / x509_cert.c: the backend handle behind a key or certificate (borrowed; NULL
 * when the object is empty). */
sn_tls_key *sn_crypto_key_handle(const sn_crypto_key *key);
sn_tls_chain *sn_x509_cert_handle(const sn_x509_cert *cert);
/* Wraps a backend handle in a new public object; takes ownership of the handle, also on
 * failure. */
sn_crypto_key *sn_crypto_key_wrap(sn_tls_key *handle);
sn_x509_cert *sn_x509_cert_wrap(sn_tls_chain *handle);

/* tls_options.c: the shared context for stream (TLS) or datagram (DTLS) connections made with
 * these options. Borrowed: a session takes its own reference. Never NULL for valid options. */
sn_tls_config *sn_tls_options_get_config(const sn_tls_options *opts, bool datagram);

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
/* True for a peer taken from a server (it shares the server's socket). */
bool sn_udp_peer_is_server_owned(const sn_udp_peer *p);

#endif
