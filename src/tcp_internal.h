/* Private to the TCP and TLS stream objects (tcp_peer.c, tcp_server.c, tls_stream.c). */
#ifndef SN_TCP_INTERNAL_H
#define SN_TCP_INTERNAL_H

#include "net.h"

struct sn_tcp_peer {
    int fd; /* -1 when closed */
    sn_tcp_status status;
    char host[SN_IP_STRLEN]; /* connected host ("" when none) */
    int port;                /* connected port (0 when none) */
    bool bound;              /* fd was opened by sn_tcp_peer_bind and waits for a connect */
    bool no_delay;
    int connect_timeout_ms;  /* <= 0: none */
    int blocking_timeout_ms; /* put_data / get_data; < 0: forever */
    uint64_t connect_deadline_ms;
    char error[256];
};

/* A peer for a socket accepted by a server: CONNECTED to the given address. Takes the fd (closed
 * on failure). */
sn_tcp_peer *sn_tcp_peer_from_accepted(int fd, const struct sockaddr *remote);

/* The transport callbacks of a TLS session over this peer: never block; return a byte count or
 * SN_TLS_IO_WOULD_BLOCK / SN_TLS_IO_EOF / SN_TLS_IO_ERROR (tls/backend.h), and update the
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

#endif
