/* What the layers above net/ (tls) may use of a TCP peer beyond the public API: non-blocking
 * byte moves for a TLS session, a polite shutdown, and waiting on its socket. Not installed. */
#ifndef SN_TCP_TRANSPORT_H
#define SN_TCP_TRANSPORT_H

#include "net.h"

/* Results of the non-blocking moves besides a byte count (the TLS backend uses the same
 * numbers for its transport callbacks). */
enum { SN_NET_IO_WOULD_BLOCK = -1, SN_NET_IO_EOF = -2, SN_NET_IO_ERROR = -3 };

/* The transport callbacks of a TLS session over this peer: never block; return a byte count or
 * SN_NET_IO_WOULD_BLOCK / SN_NET_IO_EOF / SN_NET_IO_ERROR, and update the
 * peer's status (EOF: NONE, error: ERROR with the message). */
long sn_tcp_peer_io_send(sn_tcp_peer *p, const void *data, size_t len);
long sn_tcp_peer_io_recv(sn_tcp_peer *p, void *buf, size_t cap);

/* Ends the connection politely: FIN after what was written, unread input discarded (so that
 * close() does not turn into a reset that could destroy what we just sent), socket closed,
 * status NONE. */
void sn_tcp_peer_shutdown(sn_tcp_peer *p);

/* Waits with poll(2) until the socket is ready for `events` (POLLIN / POLLOUT) or timeout_ms
 * passes (< 0: forever). SN_OK, SN_ERR_TIMEOUT, or SN_ERR_CONNECTION_ERROR. */
sn_err sn_tcp_wait_fd(int fd, short events, int timeout_ms);

/* The timeout put_data / get_data wait for (sn_tcp_peer_set_blocking_timeout_ms); < 0: forever. */
int sn_tcp_peer_blocking_timeout_ms(const sn_tcp_peer *p);

#endif
