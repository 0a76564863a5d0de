/* sn_tcp_server: a listening TCP socket (Godot: TCPServer). */
#include "tcp_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* After accept fails for want of a descriptor or memory the listening socket stays readable:
 * without a pause, every loop that polls it would spin. A pause this long bounds the futile
 * retries when the program does not say that a descriptor freed (resume_accepting). */
#define SN_TCP_ACCEPT_PAUSE_MS 1000

struct sn_tcp_server {
    int fd;                   /* -1 when not listening */
    uint64_t paused_until_ms; /* 0: accepting */
    sn_tcp_server_stats stats;
};

sn_tcp_server *sn_tcp_server_new(void)
{
    sn_tcp_server *s = sn_calloc(1, sizeof *s);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory allocating a TCP server");
    s->fd = -1;
    return s;
}

void sn_tcp_server_free(sn_tcp_server *s)
{
    if (!s) return;
    sn_tcp_server_stop(s);
    sn_free(s);
}

sn_err sn_tcp_server_listen(sn_tcp_server *s, int port, const char *bind_address)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "no TCP server given");
    if (s->fd >= 0)
        return sn_fail(SN_ERR_ALREADY_IN_USE, "TCP server is already listening on port %d",
                       sn_net_local_port(s->fd));
    sn_err err;
    int fd = sn_net_open_bound(SOCK_STREAM, port, bind_address, SN_NET_REUSE_ADDR, &err);
    if (fd < 0) return err;
    if (listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE) return sn_fail(SN_ERR_ALREADY_IN_USE, "port %d already in use", port);
        return sn_fail(SN_ERR_CANT_CREATE, "cannot listen on port %d: %s", port, strerror(e));
    }
    s->fd = fd;
    return SN_OK;
}

bool sn_tcp_server_is_accept_paused(const sn_tcp_server *s)
{
    return s && s->paused_until_ms && sn_now_ms() < s->paused_until_ms;
}

void sn_tcp_server_resume_accepting(sn_tcp_server *s)
{
    if (s) s->paused_until_ms = 0;
}

void sn_tcp_server_get_stats(const sn_tcp_server *s, sn_tcp_server_stats *out)
{
    if (!out) return;
    if (!s) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = s->stats;
    out->paused_now = sn_tcp_server_is_accept_paused(s);
}

bool sn_tcp_server_is_connection_available(const sn_tcp_server *s)
{
    if (!s || s->fd < 0 || sn_tcp_server_is_accept_paused(s)) return false;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

sn_tcp_peer *sn_tcp_server_take_connection(sn_tcp_server *s)
{
    if (!s) return sn_fail_null(SN_ERR_INVALID_PARAMETER, "no TCP server given");
    if (s->fd < 0) return sn_fail_null(SN_ERR_UNCONFIGURED, "TCP server is not listening");
    struct sockaddr_storage ss;
    for (;;) {
        socklen_t len = sizeof ss;
        if (sn_tcp_server_is_accept_paused(s))
            return sn_fail_null(SN_ERR_OUT_OF_MEMORY,
                                "accepting is paused: out of descriptors or memory");
        int fd = accept4(s->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            s->paused_until_ms = 0;
            sn_tcp_peer *p = sn_tcp_peer_from_accepted(fd, (const struct sockaddr *)&ss);
            if (p) s->stats.accepted++;
            return p;
        }
        int e = errno;
        /* A connection reset before it was accepted is gone; look for the next one. */
        if (e == EINTR || e == ECONNABORTED) continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return sn_fail_null(SN_ERR_UNAVAILABLE, "no connection waiting");
        if (e == EMFILE || e == ENFILE || e == ENOMEM || e == ENOBUFS) {
            s->stats.out_of_resources++;
            s->paused_until_ms = sn_now_ms() + SN_TCP_ACCEPT_PAUSE_MS;
            return sn_fail_null(SN_ERR_OUT_OF_MEMORY,
                                "cannot accept a connection: %s (accepting paused)", strerror(e));
        }
        s->stats.accept_errors++;
        return sn_fail_null(SN_ERR_CONNECTION_ERROR, "cannot accept a connection: %s", strerror(e));
    }
}

bool sn_tcp_server_is_listening(const sn_tcp_server *s)
{
    return s && s->fd >= 0;
}

int sn_tcp_server_get_local_port(const sn_tcp_server *s)
{
    return s ? sn_net_local_port(s->fd) : 0;
}

int sn_tcp_server_get_fd(const sn_tcp_server *s)
{
    return s ? s->fd : -1;
}

void sn_tcp_server_stop(sn_tcp_server *s)
{
    if (!s || s->fd < 0) return;
    close(s->fd);
    s->fd = -1;
    s->paused_until_ms = 0;
}
