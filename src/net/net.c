/* Socket and address helpers shared by the UDP and TCP objects. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

sn_err sn_net_check_port(int port, bool allow_zero)
{
    if (port < (allow_zero ? 0 : 1) || port > 65535)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "port %d out of range (%d..65535)", port,
                       allow_zero ? 0 : 1);
    return SN_OK;
}

static bool parse_literal(const char *host, int port, sn_addr *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof *v4;
        return true;
    }
    /* Accept "[::1]" as well as "::1". */
    char buf[SN_IP_STRLEN];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *v6;
        return true;
    }
    return false;
}

void sn_net_match_family(sn_addr *addr, int socket_family)
{
    if (socket_family != AF_INET6 || addr->ss.ss_family != AF_INET) return;
    struct sockaddr_in v4 = *(struct sockaddr_in *)&addr->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr->ss;
    memset(v6, 0, sizeof *v6);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = v4.sin_port;
    v6->sin6_addr.s6_addr[10] = 0xff;
    v6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&v6->sin6_addr.s6_addr[12], &v4.sin_addr, 4);
    addr->len = sizeof *v6;
}

sn_err sn_net_resolve(const char *host, int port, int socktype, int family_hint, sn_addr *out)
{
    if (!host || !*host || !out) return sn_fail(SN_ERR_INVALID_PARAMETER, "no host given");
    sn_err e = sn_net_check_port(port, true);
    if (e != SN_OK) return e;
    if (parse_literal(host, port, out)) return SN_OK;

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = socktype;
    hints.ai_family = family_hint == AF_INET ? AF_INET : AF_UNSPEC;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || !res)
        return sn_fail(SN_ERR_CANT_RESOLVE, "cannot resolve host '%s': %s", host,
                       rc ? gai_strerror(rc) : "no address");
    /* Prefer IPv4 results: loopback names resolve to both and IPv4 works on every socket here. */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
    out->len = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(res);
    return SN_OK;
}

int sn_net_open(int family, int socktype, sn_err *err)
{
    int fd = socket(family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        *err =
            sn_fail(errno == EMFILE || errno == ENFILE ? SN_ERR_OUT_OF_MEMORY : SN_ERR_CANT_CREATE,
                    "cannot create socket: %s", strerror(errno));
    return fd;
}

static int bind_one(int family, int socktype, const sn_addr *addr, bool v6only, unsigned flags,
                    int port, sn_err *err)
{
    int fd = sn_net_open(family, socktype, err);
    if (fd < 0) return -1;
    int one = 1, v6 = v6only ? 1 : 0;
    if ((flags & SN_NET_REUSE_ADDR) && socktype != SOCK_DGRAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((flags & SN_NET_REUSE_PORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        int e = errno;
        close(fd);
        *err = sn_fail(SN_ERR_UNAVAILABLE, "SO_REUSEPORT not supported: %s", strerror(e));
        return -1;
    }
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6) != 0 &&
        !v6only) {
        close(fd);
        *err = sn_fail(SN_ERR_CANT_CREATE, "dual-stack socket not supported: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            *err = sn_fail(SN_ERR_ALREADY_IN_USE, "%sport %d already in use",
                           socktype == SOCK_DGRAM ? "udp " : "", port);
        else if (e == EADDRNOTAVAIL)
            *err = sn_fail(SN_ERR_INVALID_PARAMETER, "address not available on this host");
        else if (e == EACCES)
            *err = sn_fail(SN_ERR_CANT_OPEN, "permission denied binding port %d", port);
        else
            *err = sn_fail(SN_ERR_CANT_CREATE, "bind to port %d failed: %s", port, strerror(e));
        return -1;
    }
    return fd;
}

int sn_net_open_bound(int socktype, int port, const char *bind_address, unsigned flags, sn_err *err)
{
    *err = sn_net_check_port(port, true);
    if (*err != SN_OK) return -1;
    sn_addr addr;
    memset(&addr, 0, sizeof addr);
    if (!bind_address || !strcmp(bind_address, "*") || !*bind_address) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr.ss;
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_any;
        v6->sin6_port = htons((uint16_t)port);
        addr.len = sizeof *v6;
        int fd = bind_one(AF_INET6, socktype, &addr, false, flags, port, err);
        if (fd >= 0 || *err == SN_ERR_ALREADY_IN_USE) return fd;
        /* No IPv6 on this host: fall back to IPv4 any. */
        memset(&addr, 0, sizeof addr);
        struct sockaddr_in *v4 = (struct sockaddr_in *)&addr.ss;
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = htons((uint16_t)port);
        addr.len = sizeof *v4;
        *err = SN_OK;
        return bind_one(AF_INET, socktype, &addr, false, flags, port, err);
    }
    if (!parse_literal(bind_address, port, &addr)) {
        *err = sn_fail(SN_ERR_INVALID_PARAMETER, "bind address '%s' is not an IP address",
                       bind_address);
        return -1;
    }
    return bind_one(addr.ss.ss_family, socktype, &addr, addr.ss.ss_family == AF_INET6, flags, port,
                    err);
}

int sn_net_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

void sn_net_format(const struct sockaddr *sa, char ip[SN_IP_STRLEN], int *port)
{
    ip[0] = '\0';
    if (port) *port = sn_net_port(sa);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, ip, SN_IP_STRLEN);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
            inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], ip, SN_IP_STRLEN);
        else
            inet_ntop(AF_INET6, &v6->sin6_addr, ip, SN_IP_STRLEN);
    }
}

int sn_net_local_port(int fd)
{
    if (fd < 0) return 0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
    return sn_net_port((struct sockaddr *)&ss);
}

int sn_net_family(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
    return ss.ss_family;
}
