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

/* Opens a non-blocking, close-on-exec socket bound to bind_address:port ("*" or NULL: IPv6
 * dual-stack with IPv4 fallback; an IPv6 literal: v6-only). reuse_addr sets SO_REUSEADDR.
 * Returns the fd, or -1 with the error in *err and in the thread's last error
 * (SN_ERR_ALREADY_IN_USE names the port). */
int sn_net_open_bound(int socktype, int port, const char *bind_address, bool reuse_addr,
                      sn_err *err);

/* The same with flags: SN_NET_REUSE_ADDR (SO_REUSEADDR), SN_NET_REUSE_PORT (SO_REUSEPORT,
 * set before bind; SN_ERR_CANT_CREATE where unsupported). */
enum { SN_NET_REUSE_ADDR = 1u, SN_NET_REUSE_PORT = 2u };
int sn_net_open_bound_flags(int socktype, int port, const char *bind_address, unsigned flags,
                            sn_err *err);

/* Opens a non-blocking, close-on-exec socket of the given family, unbound. -1 on failure. */
int sn_net_open(int family, int socktype, sn_err *err);

/* Text form of an address (an IPv4-mapped IPv6 address as a dotted quad) and its port. */
void sn_net_format(const struct sockaddr *sa, char ip[SN_IP_STRLEN], int *port);

/* The socket's local port, 0 when unknown. */
int sn_net_local_port(int fd);

/* The family a socket was opened with (AF_INET or AF_INET6), 0 when unknown. */
int sn_net_family(int fd);

/* Converts an IPv4 address into its IPv4-mapped IPv6 form when the socket is IPv6, so that
 * sends from a dual-stack socket work with either kind of address. */
void sn_net_match_family(sn_addr *addr, int socket_family);

#endif
