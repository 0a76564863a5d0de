/* Socket and address helpers shared by the UDP and TCP objects. Not installed. */
#ifndef SN_NET_H
#define SN_NET_H

#include "core.h"

#include <netinet/in.h>
#include <sys/socket.h>

/* Longest text form of an address, with room for a scope id. */
#define SN_IP_STRLEN 64

/* An address with its length, as the socket calls want it. */
typedef struct sn_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} sn_addr;

/* SN_ERR_PARAMETER_RANGE_ERROR (with the port in the message) unless 0 <= port <= 65535, and
 * unless port > 0 when allow_zero is false. */
sn_err sn_net_check_port(int port, bool allow_zero);

/* Resolves host (IP literal first, then a name lookup) to an address of the given socket type.
 * family_hint AF_UNSPEC: any; AF_INET6 on a dual-stack socket maps IPv4 results into IPv6.
 * Errors: SN_ERR_INVALID_PARAMETER, SN_ERR_PARAMETER_RANGE_ERROR, SN_ERR_CANT_RESOLVE (names the
 * host). */
sn_err sn_net_resolve(const char *host, int port, int socktype, int family_hint, sn_addr *out);

/* Socket options for sn_net_open_bound. */
enum {
    /* SO_REUSEADDR: for TCP listeners, so a restart can bind while old connections sit in
     * TIME_WAIT. Never for UDP: there it lets two sockets share a port and split its traffic. */
    SN_NET_REUSE_ADDR = 1,
    /* SO_REUSEPORT: several sockets that all ask for it share the port (multi-worker servers). */
    SN_NET_REUSE_PORT = 2,
};

/* Opens a non-blocking, close-on-exec socket bound to bind_address:port ("*" or NULL: IPv6
 * dual-stack with IPv4 fallback; an IPv6 literal: v6-only) with the SN_NET_REUSE_* flags given.
 * Returns the fd, or -1 with the error in *err and in the thread's last error
 * (SN_ERR_ALREADY_IN_USE: "udp port N already in use" / "port N already in use"). */
int sn_net_open_bound(int socktype, int port, const char *bind_address, unsigned flags,
                      sn_err *err);

/* Opens a non-blocking, close-on-exec socket of the given family, unbound. -1 on failure. */
int sn_net_open(int family, int socktype, sn_err *err);

/* Text form of an address (an IPv4-mapped IPv6 address as a dotted quad) and its port. */
void sn_net_format(const struct sockaddr *sa, char ip[SN_IP_STRLEN], int *port);

/* The port of an IPv4 or IPv6 address (host order), 0 for any other family. No formatting. */
int sn_net_port(const struct sockaddr *sa);

/* The socket's local port, 0 when unknown. */
int sn_net_local_port(int fd);

/* The family a socket was opened with (AF_INET or AF_INET6), 0 when unknown. */
int sn_net_family(int fd);

/* Converts an IPv4 address into its IPv4-mapped IPv6 form when the socket is IPv6, so that
 * sends from a dual-stack socket work with either kind of address. */
void sn_net_match_family(sn_addr *addr, int socket_family);

#endif
