/* sn_udp_peer: Godot's PacketPeerUDP. A peer either owns a socket (standalone) or was taken
 * from a sn_udp_server and shares its socket; then the server fills its queue in poll(). */
#include "udp_internal.h"
#include "udp_sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- life cycle ----------------------------------------------------------------------- */

static void peer_init(sn_udp_peer *p)
{
    p->fd = -1;
    p->max_packets = SN_UDP_DEFAULT_QUEUE_PACKETS;
    p->max_bytes = SN_UDP_DEFAULT_QUEUE_BYTES;
}

sn_udp_peer *sn_udp_peer_new(void)
{
    sn_udp_peer *p = sn_calloc(1, sizeof *p);
    if (!p) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory creating a UDP peer");
    peer_init(p);
    return p;
}

sn_udp_peer *sn_udp_peer_new_owned(sn_udp_hub *hub, const sn_udp_sockaddr *from, socklen_t fromlen,
                                   size_t max_packets, size_t max_bytes)
{
    sn_udp_peer *p = sn_calloc(1, sizeof *p);
    if (!p) return NULL;
    peer_init(p);
    p->hub = hub;
    p->server_owned = true;
    p->pending = true;
    p->has_remote = true;
    if (fromlen > sizeof p->remote.ss) fromlen = sizeof p->remote.ss;
    memcpy(&p->remote.ss, from, fromlen);
    p->remote.len = fromlen;
    sn_udp_key_from(&from->sa, &p->key);
    p->max_packets = max_packets;
    p->max_bytes = max_bytes;
    return p;
}

/* Returns the peer to the state of a new one, keeping its settings and counters. */
static void peer_reset(sn_udp_peer *p)
{
    if (p->hub) sn_udp_hub_forget(p->hub, p);
    p->hub = NULL;
    p->server_owned = false;
    p->pending = false;
    sn_udp_sys_close(p->fd);
    p->fd = -1;
    p->family = 0;
    p->local_port = 0;
    p->connected = false;
    p->has_remote = false;
    p->send_err = 0;
    memset(&p->remote, 0, sizeof p->remote);
    sn_udp_queue_clear(&p->q);
    sn_udp_rx_free(p->rx);
    p->rx = NULL;
}

void sn_udp_peer_free(sn_udp_peer *p)
{
    if (!p) return;
    peer_reset(p);
    sn_free(p);
}

void sn_udp_peer_free_pending(sn_udp_peer *p)
{
    /* The server already removed it from its table and list. */
    p->hub = NULL;
    sn_udp_peer_free(p);
}

void sn_udp_peer_detach(sn_udp_peer *p)
{
    p->hub = NULL;
    p->pending = false;
    p->prev = p->next = NULL;
}

void sn_udp_peer_close(sn_udp_peer *p)
{
    if (p) peer_reset(p);
}

/* ---- binding and addresses ------------------------------------------------------------ */

static sn_err check_unlocked(const sn_udp_peer *p, const char *what)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: peer is NULL", what);
    if (p->server_owned)
        return sn_fail(SN_ERR_LOCKED, "%s: peer belongs to a UDP server (close it first)", what);
    return SN_OK;
}

static void apply_socket_options(sn_udp_peer *p)
{
    if (p->broadcast) {
        int one = 1;
        setsockopt(p->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    }
}

sn_err sn_udp_peer_bind(sn_udp_peer *p, int port, const char *bind_address, int recv_buf_size)
{
    sn_err e = check_unlocked(p, "bind");
    if (e != SN_OK) return e;
    if (p->fd >= 0) return sn_fail(SN_ERR_ALREADY_IN_USE, "bind: peer is already bound");
    if ((e = sn_net_check_port(port, true)) != SN_OK) return e;
    if (recv_buf_size < 0)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "receive buffer size %d is negative",
                       recv_buf_size);
    int fd = sn_net_open_bound(SOCK_DGRAM, port, bind_address, 0, &e);
    if (fd < 0) return e;
    /* recv_buf_size is a floor for the kernel buffer: never shrink the system default. */
    int want = recv_buf_size ? recv_buf_size : 65536, cur = 0;
    socklen_t sl = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cur, &sl) == 0 && cur < want)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    p->fd = fd;
    sn_udp_sys_forget(fd);
    /* One getsockname for both: get_local_port is then free (a DTLS client asks per input). */
    struct sockaddr_storage ss;
    socklen_t sl2 = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl2) == 0) {
        p->family = ss.ss_family;
        p->local_port = sn_net_port((struct sockaddr *)&ss);
    }
    apply_socket_options(p);
    return SN_OK;
}

/* Binds an ephemeral port on the wildcard address of the destination's family. */
static sn_err bind_for(sn_udp_peer *p, const sn_addr *dest)
{
    return sn_udp_peer_bind(p, 0, dest->ss.ss_family == AF_INET ? "0.0.0.0" : "::", 0);
}

sn_err sn_udp_peer_connect_to_host(sn_udp_peer *p, const char *host, int port)
{
    sn_err e = check_unlocked(p, "connect_to_host");
    if (e != SN_OK) return e;
    if (!host || !*host) return sn_fail(SN_ERR_INVALID_PARAMETER, "connect_to_host: no host");
    if ((e = sn_net_check_port(port, false)) != SN_OK) return e;
    sn_addr dest;
    if ((e = sn_net_resolve(host, port, SOCK_DGRAM, p->fd >= 0 ? p->family : AF_UNSPEC, &dest)) !=
        SN_OK)
        return e;
    if (p->fd < 0 && (e = bind_for(p, &dest)) != SN_OK) return e;
    sn_net_match_family(&dest, p->family);
    if (connect(p->fd, (const struct sockaddr *)&dest.ss, dest.len) != 0)
        return sn_fail(SN_ERR_CANT_CONNECT, "cannot connect UDP socket to %s port %d: %s", host,
                       port, strerror(errno));
    p->connected = true;
    p->has_remote = true;
    p->remote = dest;
    sn_udp_sys_forget(p->fd);
    return SN_OK;
}

bool sn_udp_peer_is_bound(const sn_udp_peer *p)
{
    return p && (p->fd >= 0 || (p->server_owned && p->hub));
}

bool sn_udp_peer_is_socket_connected(const sn_udp_peer *p)
{
    return p && p->connected;
}

sn_err sn_udp_peer_set_dest_address(sn_udp_peer *p, const char *host, int port)
{
    sn_err e = check_unlocked(p, "set_dest_address");
    if (e != SN_OK) return e;
    if (p->connected)
        return sn_fail(SN_ERR_LOCKED, "set_dest_address: socket is connected to a host");
    if (!host || !*host) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_dest_address: no host");
    if ((e = sn_net_check_port(port, false)) != SN_OK) return e;
    sn_addr dest;
    if ((e = sn_net_resolve(host, port, SOCK_DGRAM, p->fd >= 0 ? p->family : AF_UNSPEC, &dest)) !=
        SN_OK)
        return e;
    p->remote = dest;
    p->has_remote = true;
    return SN_OK;
}

/* ---- sending -------------------------------------------------------------------------- */

int sn_udp_send_datagram(sn_udp_peer *p, int fd, const void *buf, size_t len,
                         const struct sockaddr *to, socklen_t to_len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sn_udp_sys_send(fd, buf, len, to, to_len) >= 0) return 0;
        if (errno != ECONNREFUSED) break;
        if (p) p->stats.icmp_refused++;
        sn_log(SN_LOG_INFO, "UDP peer: port unreachable reported by the remote");
    }
    return errno;
}

static sn_err send_error(sn_udp_peer *p, int err, size_t len)
{
    if (sn_udp_send_busy(err)) {
        p->stats.send_busy++;
        return sn_fail(SN_ERR_BUSY, "socket send buffer full");
    }
    if (err == EMSGSIZE)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "datagram of %zu bytes too large for the path",
                       len);
    if (err == ECONNREFUSED)
        return sn_fail(SN_ERR_CONNECTION_ERROR, "remote refused the datagram (port unreachable)");
    return sn_fail(SN_FAILED, "send failed: %s", strerror(err));
}

sn_err sn_udp_peer_put_packet(sn_udp_peer *p, const void *buf, size_t len)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "put_packet: peer is NULL");
    if (!buf && len) return sn_fail(SN_ERR_INVALID_PARAMETER, "put_packet: buffer is NULL");
    if (len > SN_UDP_MAX_PAYLOAD)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "datagram of %zu bytes exceeds the UDP limit of %d", len,
                       SN_UDP_MAX_PAYLOAD);
    int fd;
    sn_addr dest;
    const sn_addr *to = &dest;
    bool use_dest = true;
    if (p->server_owned) {
        if (!p->hub || (fd = p->hub->fd) < 0)
            return sn_fail(SN_ERR_UNCONFIGURED, "put_packet: the UDP server of this peer is gone");
        /* Corked: counted when the queue is flushed, where a failure becomes send_err. */
        if (p->hub->corked && sn_udp_sendq_push(p->hub, p, buf, len, &p->remote)) return SN_OK;
        to = &p->remote;
    } else {
        if (!p->has_remote)
            return sn_fail(SN_ERR_UNCONFIGURED, "put_packet: no destination address set");
        if (p->fd < 0) {
            sn_err e = bind_for(p, &p->remote);
            if (e != SN_OK) return e;
        }
        fd = p->fd;
        dest = p->remote;
        sn_net_match_family(&dest, p->family);
        use_dest = !p->connected;
    }
    int err =
        sn_udp_send_datagram(p, fd, buf, len, use_dest ? (const struct sockaddr *)&to->ss : NULL,
                             use_dest ? to->len : 0);
    sn_err res = err == 0 ? SN_OK : send_error(p, err, len);
    if (res == SN_OK) {
        p->stats.datagrams_sent++;
        p->stats.bytes_sent += len;
    }
    if (p->server_owned && p->hub) sn_udp_hub_count_send(p->hub, len, res);
    return res;
}

/* ---- receiving ------------------------------------------------------------------------ */

/* Queues the n datagrams one read brought, or counts why not (udp_internal.h: out of line). */
static SN_UDP_OUT_OF_LINE void pump_batch(sn_udp_peer *p, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t len = sn_udp_rx_len(p->rx, i);
        if (sn_udp_rx_truncated(p->rx, i)) {
            p->stats.dropped_oversize++;
            continue;
        }
        if (p->q.count >= p->max_packets || p->q.bytes + len > p->max_bytes) {
            p->stats.dropped_queue_full++;
            continue;
        }
        sn_udp_queue_push(&p->q, sn_udp_rx_take(p->rx, i));
        p->stats.datagrams_received++;
        p->stats.bytes_received += len;
    }
}

sn_err sn_udp_peer_pump(sn_udp_peer *p)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "pump: peer is NULL");
    if (p->server_owned || p->fd < 0) return SN_OK;
    if (!p->rx && !(p->rx = sn_udp_rx_new(SN_UDP_PEER_BATCH, SN_UDP_DEFAULT_SLOT, NULL)))
        return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory for UDP receive buffers");
    unsigned total = 0;
    while (total < SN_UDP_PEER_PUMP_CAP) {
        int r = sn_udp_rx_recv(p->rx, p->fd, SN_UDP_PEER_BATCH);
        if (r < 0) {
            if (errno == ECONNREFUSED) {
                /* ICMP port unreachable for an earlier send: note it and keep reading. */
                p->stats.icmp_refused++;
                total++;
                continue;
            }
            if (errno == ENOMEM) return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory receiving");
            return sn_fail(SN_FAILED, "receive failed: %s", strerror(errno));
        }
        if (r == 0) break;
        pump_batch(p, (unsigned)r);
        total += (unsigned)r;
        if ((unsigned)r < p->rx->batch) break;
    }
    return SN_OK;
}

const uint8_t *sn_udp_peer_peek(const sn_udp_peer *p, size_t *len)
{
    if (len) *len = 0;
    if (!p) return NULL;
    sn_udp_peer *mp = (sn_udp_peer *)p; /* the queue belongs to the object */
    while (mp->q.head && mp->q.head->ext) {
        /* A long datagram is stored in two parts; readers of this call want one. */
        sn_udp_pkt *h = mp->q.head, *n = sn_malloc(sizeof *n + h->len);
        if (!n) {
            sn_udp_queue_pop_free(&mp->q);
            mp->stats.dropped_queue_full++;
            continue;
        }
        n->next = h->next;
        n->len = h->len;
        n->chunk = NULL;
        n->ext = NULL;
        n->from = h->from;
        memcpy(n->data, h->data, SN_UDP_POOL_HEAD);
        memcpy(n->data + SN_UDP_POOL_HEAD, h->ext, h->len - SN_UDP_POOL_HEAD);
        mp->q.head = n;
        if (mp->q.tail == h) mp->q.tail = n;
        sn_udp_pkt_free(h);
    }
    if (!mp->q.head) return NULL;
    if (len) *len = mp->q.head->len;
    return mp->q.head->data;
}

void sn_udp_peer_drop(sn_udp_peer *p)
{
    if (p) sn_udp_queue_pop_free(&p->q);
}

bool sn_udp_peer_remote(const sn_udp_peer *p, sn_addr *out)
{
    if (!p || !p->has_remote) return false;
    if (out) *out = p->remote;
    return true;
}

void sn_udp_peer_set_ready_tag(sn_udp_peer *p, void *tag)
{
    if (p) p->ready_tag = tag;
}

void *sn_udp_peer_ready_tag(const sn_udp_peer *p)
{
    return p ? p->ready_tag : NULL;
}

bool sn_udp_peer_is_server_owned(const sn_udp_peer *p)
{
    return p && p->server_owned;
}

bool sn_udp_peer_take_send_error(sn_udp_peer *p, char *msg, size_t cap)
{
    if (!p || !p->send_err) return false;
    if (msg && cap) snprintf(msg, cap, "send failed: %s", strerror(p->send_err));
    p->send_err = 0;
    return true;
}

/* True when a and b hold the same IP address (ports aside): what sn_net_format prints. */
static bool same_ip(const sn_udp_sockaddr *a, const sn_udp_sockaddr *b)
{
    if (a->sa.sa_family != b->sa.sa_family) return false;
    if (a->sa.sa_family == AF_INET) return a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
    if (a->sa.sa_family == AF_INET6)
        return memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, sizeof a->v6.sin6_addr) == 0;
    return false;
}

int sn_udp_peer_get_available_packet_count(sn_udp_peer *p)
{
    if (!p) return 0;
    sn_udp_peer_pump(p);
    return (int)(p->q.count > (size_t)INT32_MAX ? INT32_MAX : p->q.count);
}

sn_err sn_udp_peer_get_packet(sn_udp_peer *p, void *buf, size_t cap, size_t *len)
{
    if (!p || !len) return sn_fail(SN_ERR_INVALID_PARAMETER, "get_packet: NULL argument");
    if (!buf && cap) return sn_fail(SN_ERR_INVALID_PARAMETER, "get_packet: buffer is NULL");
    *len = 0;
    if (!p->q.head) sn_udp_peer_pump(p);
    sn_udp_pkt *h = p->q.head;
    if (!h) return sn_fail(SN_ERR_UNAVAILABLE, "no datagram available");
    *len = h->len;
    if (h->len > cap)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "datagram of %zu bytes does not fit in a buffer of %zu (it stays queued)",
                       h->len, cap);
    size_t head = sn_udp_pkt_head_len(h);
    if (head) memcpy(buf, h->data, head);
    if (h->ext) memcpy((uint8_t *)buf + head, h->ext, h->len - head);
    /* The formatted source stays valid while datagrams keep coming from the same address (the
     * usual case: one remote), so get_packet_ip formats once per address, not per datagram. */
    if (!p->have_last || !same_ip(&p->last_from, &h->from)) p->last_ip[0] = '\0';
    p->last_from = h->from;
    p->have_last = true;
    sn_udp_queue_pop_free(&p->q);
    return SN_OK;
}

const char *sn_udp_peer_get_packet_ip(const sn_udp_peer *p)
{
    if (!p || !p->have_last) return "";
    /* Formatted on demand: most programs never ask. The buffer belongs to the object. */
    sn_udp_peer *mp = (sn_udp_peer *)p;
    if (!mp->last_ip[0]) sn_net_format(&mp->last_from.sa, mp->last_ip, NULL);
    return mp->last_ip;
}

int sn_udp_peer_get_packet_port(const sn_udp_peer *p)
{
    if (!p || !p->have_last) return 0;
    return sn_net_port(&p->last_from.sa); /* formatting the IP for it cost a printf */
}

int sn_udp_peer_get_local_port(const sn_udp_peer *p)
{
    if (!p) return 0;
    if (p->server_owned) return p->hub && p->hub->fd >= 0 ? p->hub->port : 0;
    return p->fd >= 0 ? p->local_port : 0;
}

int sn_udp_peer_get_fd(const sn_udp_peer *p)
{
    if (!p) return -1;
    if (p->server_owned) return p->hub ? p->hub->fd : -1;
    return p->fd;
}

sn_err sn_udp_peer_wait(sn_udp_peer *p, int timeout_ms)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "wait: peer is NULL");
    if (timeout_ms < -1)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "wait: timeout %d ms is negative", timeout_ms);
    uint64_t deadline = timeout_ms < 0 ? 0 : sn_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (p->server_owned && p->hub)
            p->hub->poll(p->hub);
        else
            sn_udp_peer_pump(p);
        if (p->q.head) return SN_OK;
        int fd = sn_udp_peer_get_fd(p);
        if (fd < 0) return sn_fail(SN_ERR_UNCONFIGURED, "wait: peer has no socket");
        int left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = sn_now_ms();
            if (now >= deadline)
                return sn_fail(SN_ERR_TIMEOUT, "no datagram within %d ms", timeout_ms);
            left = (int)(deadline - now);
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        /* An override delivers datagrams the socket never sees: look again every millisecond. */
        if (sn_udp_transport_is_overridden()) {
            pfd.fd = -1;
            if (left < 0 || left > 1) left = 1;
        }
        int r = poll(&pfd, 1, left);
        if (r < 0 && errno != EINTR)
            return sn_fail(SN_FAILED, "wait: poll failed: %s", strerror(errno));
    }
}

/* ---- options -------------------------------------------------------------------------- */

sn_err sn_udp_peer_set_broadcast_enabled(sn_udp_peer *p, bool enabled)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_broadcast_enabled: peer is NULL");
    if (p->server_owned)
        return sn_fail(SN_ERR_LOCKED, "set_broadcast_enabled: peer belongs to a UDP server");
    p->broadcast = enabled;
    if (p->fd >= 0) {
        int v = enabled ? 1 : 0;
        if (setsockopt(p->fd, SOL_SOCKET, SO_BROADCAST, &v, sizeof v) != 0)
            return sn_fail(SN_FAILED, "cannot set SO_BROADCAST: %s", strerror(errno));
    }
    return SN_OK;
}

static sn_err multicast(sn_udp_peer *p, const char *group, const char *ifname, bool join)
{
    const char *what = join ? "join_multicast_group" : "leave_multicast_group";
    sn_err e = check_unlocked(p, what);
    if (e != SN_OK) return e;
    if (!group || !*group) return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: no group", what);
    if (p->fd < 0) return sn_fail(SN_ERR_UNCONFIGURED, "%s: peer is not bound", what);
    unsigned ifindex = 0;
    if (ifname && *ifname) {
        ifindex = if_nametoindex(ifname);
        if (!ifindex)
            return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: no network interface named '%s'", what,
                           ifname);
    }
    struct in_addr a4;
    struct in6_addr a6;
    int r;
    if (inet_pton(AF_INET, group, &a4) == 1) {
        if (!IN_MULTICAST(ntohl(a4.s_addr)))
            return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: %s is not a multicast address", what,
                           group);
        struct ip_mreqn m;
        memset(&m, 0, sizeof m);
        m.imr_multiaddr = a4;
        m.imr_ifindex = (int)ifindex;
        /* Linux accepts IPv4 membership on a dual-stack IPv6 socket. */
        r = setsockopt(p->fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m,
                       sizeof m);
    } else if (inet_pton(AF_INET6, group, &a6) == 1) {
        if (!IN6_IS_ADDR_MULTICAST(&a6))
            return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: %s is not a multicast address", what,
                           group);
        if (p->family != AF_INET6)
            return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: IPv6 group %s on an IPv4 socket", what,
                           group);
        struct ipv6_mreq m;
        memset(&m, 0, sizeof m);
        m.ipv6mr_multiaddr = a6;
        m.ipv6mr_interface = ifindex;
        r = setsockopt(p->fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m,
                       sizeof m);
    } else {
        return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: '%s' is not an IP address", what, group);
    }
    if (r != 0)
        return sn_fail(errno == EADDRINUSE ? SN_ERR_ALREADY_EXISTS : SN_FAILED,
                       "%s %s%s%s failed: %s", what, group, ifname && *ifname ? " on " : "",
                       ifname && *ifname ? ifname : "", strerror(errno));
    return SN_OK;
}

sn_err sn_udp_peer_join_multicast_group(sn_udp_peer *p, const char *group,
                                        const char *interface_name)
{
    return multicast(p, group, interface_name, true);
}

sn_err sn_udp_peer_leave_multicast_group(sn_udp_peer *p, const char *group,
                                         const char *interface_name)
{
    return multicast(p, group, interface_name, false);
}

void sn_udp_peer_get_stats(const sn_udp_peer *p, sn_udp_peer_stats *out)
{
    if (!out) return;
    if (!p) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = p->stats;
    if (!p->server_owned) out->dropped_kernel = sn_udp_sys_drops(p->fd);
}

void sn_udp_peer_get_counters(const sn_udp_peer *p, sn_udp_peer_stats *out)
{
    if (p)
        *out = p->stats;
    else
        memset(out, 0, sizeof *out);
}

sn_err sn_udp_peer_set_queue_limits(sn_udp_peer *p, size_t max_packets, size_t max_bytes)
{
    if (!p) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_queue_limits: peer is NULL");
    if (max_packets) p->max_packets = max_packets;
    if (max_bytes) p->max_bytes = max_bytes;
    return SN_OK;
}
