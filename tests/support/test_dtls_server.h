/* The seed DTLS server loop (Godot's DTLSServer tutorial) as one helper for tests, benchmarks
 * and fuzz targets: poll the UDP server, take every new connection and hand it to the DTLS
 * server, keep the HANDSHAKING ones, poll the kept peers. */
#ifndef SN_TEST_DTLS_SERVER_H
#define SN_TEST_DTLS_SERVER_H

#include <sealnet/sealnet.h>

/* Called for each taken peer that is not kept (its status says why: ERROR for a cookie
 * exchange or a malformed hello, HANDSHAKING when peers was full) just before it is freed. */
typedef void (*sn_test_drop_fn)(sn_dtls_peer *p, void *user);

/* One frame: sn_udp_server_poll, then every available connection through
 * sn_dtls_server_take_connection; HANDSHAKING peers are appended to peers[*n] while *n < cap,
 * the others go to on_drop (NULL: none) and are freed; then sn_dtls_peer_poll on every peer in
 * peers[0..*n). Returns how many peers were kept in this frame. */
int sn_test_dtls_server_step(sn_udp_server *udp, sn_dtls_server *dtls, sn_dtls_peer **peers, int *n,
                             int cap, sn_test_drop_fn on_drop, void *user);

#endif
