/* sn_tcp_peer: a non-blocking TCP stream (Godot: StreamPeerTCP). */
#include "tcp_internal.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define SN_TCP_DEFAULT_CONNECT_TIMEOUT_MS 30000

sn_tcp_peer *sn_tcp_peer_new(void)
{
    sn_tcp_peer *p = sn_calloc(1, sizeof *p);
    if (!p) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory allocating a TCP peer");
    p->fd = -1;
    p->connect_timeout_ms = SN_TCP_DEFAULT_CONNECT_TIMEOUT_MS;
    p->blocking_timeout_ms = -1;
    return p;
}

static void close_socket(sn_tcp_peer *p)
{
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    p->bound = false;
}

void sn_tcp_peer_free(sn_tcp_peer *p)
{
    if (!p) return;
    close_socket(p);
    sn_free(p);
}

/* Ends the connection with `status` (ERROR or NONE) and the message; returns code. */
SN_PRINTF(4, 5)
static sn_err peer_end(sn_tcp_peer *p, sn_tcp_status status, sn_err code, const char *fmt, ...)
{
    char msg[sizeof p->error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sn_format_message(p->error, sizeof p->error, "%s", msg);
    close_socket(p);
    p->status = status;
    return code;
}

/* The status checks every data call makes; SN_OK when the peer is connected. */
static sn_err require_connected(const sn_tcp_peer *p)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP peer given");
    if (p->status == SN_TCP_STATUS_CONNECTED) return SN_OK;
    return sn_fail(SN_ERR_UNCONFIGURED, "TCP peer is not connected (status %s)",
                   p->status == SN_TCP_STATUS_CONNECTING ? "CONNECTING"
                   : p->status == SN_TCP_STATUS_ERROR    ? "ERROR"
                                                         : "NONE");
}

sn_err sn_tcp_peer_bind(sn_tcp_peer *p, int port, const char *host)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP peer given");
    if (p->fd >= 0)
        return sn_fail(SN_ERR_ALREADY_IN_USE, "TCP peer already has a socket (bound or connected)");
    sn_err err;
    int fd = sn_net_open_bound(SOCK_STREAM, port, host, 0, &err);
    if (fd < 0) return err;
    p->fd = fd;
    p->bound = true;
    p->status = SN_TCP_STATUS_NONE;
    return SN_OK;
}

sn_err sn_tcp_peer_connect_to_host(sn_tcp_peer *p, const char *host, int port)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP peer given");
    if (p->status == SN_TCP_STATUS_CONNECTING || p->status == SN_TCP_STATUS_CONNECTED)
        return sn_fail(SN_ERR_ALREADY_IN_USE, "TCP peer is already %s",
                       p->status == SN_TCP_STATUS_CONNECTED ? "connected" : "connecting");
    sn_err e = sn_net_check_port(port, false);
    if (e != SN_OK) return e;
    if (!host || !*host) return sn_fail(SN_ERR_INVALID_PARAMETER, "no host given");
    if (p->status == SN_TCP_STATUS_ERROR) close_socket(p);
    p->status = SN_TCP_STATUS_NONE;
    p->error[0] = '\0';

    int family = p->bound ? sn_net_family(p->fd) : AF_UNSPEC;
    sn_addr addr;
    e = sn_net_resolve(host, port, SOCK_STREAM, family, &addr);
    if (e != SN_OK) {
        /* Keep the resolver's message as the peer's reason too. */
        snprintf(p->error, sizeof p->error, "%s", sn_last_error_message());
        close_socket(p);
        p->status = SN_TCP_STATUS_ERROR;
        return e;
    }
    if (p->bound) {
        sn_net_match_family(&addr, family);
        if (addr.ss.ss_family != family) {
            close_socket(p);
            p->status = SN_TCP_STATUS_NONE;
            return sn_fail(SN_ERR_INVALID_PARAMETER,
                           "cannot connect an IPv4-bound TCP peer to IPv6 host '%s'", host);
        }
    } else {
        p->fd = sn_net_open(addr.ss.ss_family, SOCK_STREAM, &e);
        if (p->fd < 0) return e;
    }
    p->bound = false;
    sn_net_format((const struct sockaddr *)&addr.ss, p->host, &p->port);
    if (p->no_delay) {
        int one = 1;
        setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    int rc;
    do {
        rc = connect(p->fd, (const struct sockaddr *)&addr.ss, addr.len);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) {
        p->status = SN_TCP_STATUS_CONNECTED;
        return SN_OK;
    }
    if (errno == EINPROGRESS) {
        p->status = SN_TCP_STATUS_CONNECTING;
        p->connect_deadline_ms =
            p->connect_timeout_ms > 0 ? sn_now_ms() + (uint64_t)p->connect_timeout_ms : 0;
        return SN_OK;
    }
    return peer_end(p, SN_TCP_STATUS_ERROR, SN_ERR_CANT_CONNECT, "cannot connect to %s:%d: %s",
                    p->host, p->port, strerror(errno));
}

sn_err sn_tcp_peer_set_connect_timeout_ms(sn_tcp_peer *p, int timeout_ms)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP peer given");
    p->connect_timeout_ms = timeout_ms;
    return SN_OK;
}

sn_err sn_tcp_peer_set_blocking_timeout_ms(sn_tcp_peer *p, int timeout_ms)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP peer given");
    p->blocking_timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
    return SN_OK;
}

/* A connecting socket: writable means the connect finished, one way or the other. */
static sn_err poll_connecting(sn_tcp_peer *p)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
    int rc = poll(&pfd, 1, 0);
    if (rc > 0) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
        if (soerr == 0) {
            p->status = SN_TCP_STATUS_CONNECTED;
            return SN_OK;
        }
        return peer_end(p, SN_TCP_STATUS_ERROR, SN_ERR_CANT_CONNECT, "cannot connect to %s:%d: %s",
                        p->host, p->port, strerror(soerr));
    }
    if (p->connect_deadline_ms && sn_now_ms() >= p->connect_deadline_ms)
        return peer_end(p, SN_TCP_STATUS_ERROR, SN_ERR_TIMEOUT,
                        "connection to %s:%d timed out after %g s", p->host, p->port,
                        p->connect_timeout_ms / 1000.0);
    return SN_OK;
}

/* A connected socket: readable with nothing to read means the remote closed it. Unread data
 * keeps the peer CONNECTED until it has been read (as Godot does). */
static sn_err poll_connected(sn_tcp_peer *p)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) <= 0) return SN_OK;
    char c;
    ssize_t n = recv(p->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return SN_OK;
    if (n == 0)
        return peer_end(p, SN_TCP_STATUS_NONE, SN_OK, "connection closed by %s:%d", p->host,
                        p->port);
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return SN_OK;
    return peer_end(p, SN_TCP_STATUS_ERROR, SN_ERR_CONNECTION_ERROR, "connection to %s:%d: %s",
                    p->host, p->port, strerror(errno));
}

sn_err sn_tcp_peer_poll(sn_tcp_peer *p)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP peer given");
    switch (p->status) {
    case SN_TCP_STATUS_CONNECTING:
        return poll_connecting(p);
    case SN_TCP_STATUS_CONNECTED:
        return poll_connected(p);
    default:
        return SN_OK;
    }
}

sn_tcp_status sn_tcp_peer_get_status(const sn_tcp_peer *p)
{
    return p ? p->status : SN_TCP_STATUS_NONE;
}

const char *sn_tcp_peer_get_connected_host(const sn_tcp_peer *p)
{
    if (!p || (p->status != SN_TCP_STATUS_CONNECTED && p->status != SN_TCP_STATUS_CONNECTING))
        return "";
    return p->host;
}

int sn_tcp_peer_get_connected_port(const sn_tcp_peer *p)
{
    if (!p || (p->status != SN_TCP_STATUS_CONNECTED && p->status != SN_TCP_STATUS_CONNECTING))
        return 0;
    return p->port;
}

int sn_tcp_peer_get_local_port(const sn_tcp_peer *p)
{
    return p ? sn_net_local_port(p->fd) : 0;
}

int sn_tcp_peer_get_fd(const sn_tcp_peer *p)
{
    return p ? p->fd : -1;
}

sn_err sn_tcp_peer_set_no_delay(sn_tcp_peer *p, bool enabled)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP peer given");
    p->no_delay = enabled;
    if (p->fd < 0) return SN_OK; /* applied when the socket is opened */
    int v = enabled ? 1 : 0;
    if (setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
        return sn_fail(SN_ERR_CANT_CREATE, "cannot set TCP_NODELAY: %s", strerror(errno));
    return SN_OK;
}

int sn_tcp_peer_get_available_bytes(sn_tcp_peer *p)
{
    if (!p || p->status != SN_TCP_STATUS_CONNECTED) return 0;
    int n = 0;
    if (ioctl(p->fd, FIONREAD, &n) != 0) return -1;
    return n;
}

sn_err sn_tcp_wait_fd(int fd, short events, int timeout_ms)
{
    uint64_t end = timeout_ms >= 0 ? sn_now_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = sn_now_ms();
            left = now >= end ? 0 : (int)(end - now);
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, left);
        if (rc > 0) return SN_OK; /* ready, or an error/hangup the next call will report */
        if (rc == 0) return sn_fail(SN_ERR_TIMEOUT, "timed out after %d ms", timeout_ms);
        if (errno != EINTR)
            return sn_fail(SN_ERR_CONNECTION_ERROR, "poll failed: %s", strerror(errno));
    }
}

/* One send: bytes sent (possibly 0 when the socket buffer is full), or -1 after ending the
 * connection with the reason. */
static long send_some(sn_tcp_peer *p, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(p->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) return (long)n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        peer_end(p, SN_TCP_STATUS_ERROR, SN_ERR_CONNECTION_ERROR, "send to %s:%d failed: %s",
                 p->host, p->port, strerror(errno));
        return -1;
    }
}

/* One recv: bytes received (> 0), 0 when nothing is waiting, -1 after the connection ended
 * (remote close: status NONE; error: status ERROR), the reason recorded. */
static long recv_some(sn_tcp_peer *p, void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = recv(p->fd, buf, cap, MSG_DONTWAIT);
        if (n > 0) return (long)n;
        if (n == 0) {
            peer_end(p, SN_TCP_STATUS_NONE, SN_ERR_FILE_EOF, "connection closed by %s:%d", p->host,
                     p->port);
            return -1;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        peer_end(p, SN_TCP_STATUS_ERROR, SN_ERR_CONNECTION_ERROR, "receive from %s:%d failed: %s",
                 p->host, p->port, strerror(errno));
        return -1;
    }
}

/* The error code for a connection that recv_some/send_some just ended. */
static sn_err ended_code(const sn_tcp_peer *p)
{
    return p->status == SN_TCP_STATUS_NONE ? SN_ERR_FILE_EOF : SN_ERR_CONNECTION_ERROR;
}

sn_err sn_tcp_peer_put_partial_data(sn_tcp_peer *p, const void *buf, size_t len, size_t *sent)
{
    if (sent) *sent = 0;
    sn_err e = require_connected(p);
    if (e != SN_OK) return e;
    if (!buf && len) return sn_fail(SN_ERR_INVALID_PARAMETER, "no buffer given");
    if (!len) return SN_OK;
    long n = send_some(p, buf, len);
    if (n < 0) return SN_ERR_CONNECTION_ERROR;
    if (sent) *sent = (size_t)n;
    return SN_OK;
}

sn_err sn_tcp_peer_put_data(sn_tcp_peer *p, const void *buf, size_t len)
{
    sn_err e = require_connected(p);
    if (e != SN_OK) return e;
    if (!buf && len) return sn_fail(SN_ERR_INVALID_PARAMETER, "no buffer given");
    const uint8_t *at = buf;
    while (len > 0) {
        long n = send_some(p, at, len);
        if (n < 0) return SN_ERR_CONNECTION_ERROR;
        at += n;
        len -= (size_t)n;
        if (len && n == 0) {
            e = sn_tcp_wait_fd(p->fd, POLLOUT, p->blocking_timeout_ms);
            if (e != SN_OK) return e;
        }
    }
    return SN_OK;
}

sn_err sn_tcp_peer_get_partial_data(sn_tcp_peer *p, void *buf, size_t cap, size_t *received)
{
    if (received) *received = 0;
    sn_err e = require_connected(p);
    if (e != SN_OK) return e;
    if (!buf && cap) return sn_fail(SN_ERR_INVALID_PARAMETER, "no buffer given");
    if (!cap) return SN_OK;
    long n = recv_some(p, buf, cap);
    if (n < 0) return ended_code(p);
    if (received) *received = (size_t)n;
    return SN_OK;
}

sn_err sn_tcp_peer_get_data(sn_tcp_peer *p, void *buf, size_t len)
{
    sn_err e = require_connected(p);
    if (e != SN_OK) return e;
    if (!buf && len) return sn_fail(SN_ERR_INVALID_PARAMETER, "no buffer given");
    uint8_t *at = buf;
    while (len > 0) {
        long n = recv_some(p, at, len);
        if (n < 0) return ended_code(p);
        at += n;
        len -= (size_t)n;
        if (len && n == 0) {
            e = sn_tcp_wait_fd(p->fd, POLLIN, p->blocking_timeout_ms);
            if (e != SN_OK) return e;
        }
    }
    return SN_OK;
}

void sn_tcp_peer_disconnect_from_host(sn_tcp_peer *p)
{
    if (!p) return;
    close_socket(p);
    p->status = SN_TCP_STATUS_NONE;
    p->host[0] = '\0';
    p->port = 0;
}

void sn_tcp_peer_shutdown(sn_tcp_peer *p)
{
    if (p->fd >= 0 && p->status == SN_TCP_STATUS_CONNECTED) {
        shutdown(p->fd, SHUT_WR);
        char sink[4096];
        for (int i = 0; i < 256 && recv(p->fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {
        }
    }
    sn_tcp_peer_disconnect_from_host(p);
}

const char *sn_tcp_peer_get_error_message(const sn_tcp_peer *p)
{
    return p ? p->error : "";
}

sn_tcp_peer *sn_tcp_peer_from_accepted(int fd, const struct sockaddr *remote)
{
    sn_tcp_peer *p = sn_tcp_peer_new();
    if (!p) {
        close(fd);
        return NULL;
    }
    p->fd = fd;
    p->status = SN_TCP_STATUS_CONNECTED;
    sn_net_format(remote, p->host, &p->port);
    return p;
}

long sn_tcp_peer_io_send(sn_tcp_peer *p, const void *data, size_t len)
{
    if (p->status != SN_TCP_STATUS_CONNECTED) return SN_NET_IO_ERROR;
    long n = send_some(p, data, len);
    if (n < 0) return SN_NET_IO_ERROR;
    return n == 0 ? SN_NET_IO_WOULD_BLOCK : n;
}

long sn_tcp_peer_io_recv(sn_tcp_peer *p, void *buf, size_t cap)
{
    if (p->status != SN_TCP_STATUS_CONNECTED)
        return p->status == SN_TCP_STATUS_NONE ? SN_NET_IO_EOF : SN_NET_IO_ERROR;
    long n = recv_some(p, buf, cap);
    if (n < 0) return p->status == SN_TCP_STATUS_NONE ? SN_NET_IO_EOF : SN_NET_IO_ERROR;
    return n == 0 ? SN_NET_IO_WOULD_BLOCK : n;
}

int sn_tcp_peer_blocking_timeout_ms(const sn_tcp_peer *p)
{
    return p ? p->blocking_timeout_ms : -1;
}
