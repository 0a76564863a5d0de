/* Private to the TCP objects (tcp_peer.c, tcp_server.c). */
#ifndef SN_TCP_INTERNAL_H
#define SN_TCP_INTERNAL_H

#include "tcp_transport.h"

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

#endif
