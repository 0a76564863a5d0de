/* sealnet — UDP (Godot: PacketPeerUDP, UDPServer).
 *
 * Single-threaded per object: nothing here blocks except sn_udp_peer_wait(). A server drains its
 * socket in sn_udp_server_poll() and routes each datagram, by an O(1) lookup of its source
 * address, to the peer taken for that address or to a pending connection.
 */
#ifndef SEALNET_UDP_H
#define SEALNET_UDP_H

#include <sealnet/error.h>

struct sockaddr;

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_udp_peer sn_udp_peer;
typedef struct sn_udp_server sn_udp_server;

/* A new unbound peer; NULL only when out of memory. */
SN_API sn_udp_peer *sn_udp_peer_new(void);
/* Closes and frees the peer; NULL is fine. A peer taken from a server unregisters its address. */
SN_API void sn_udp_peer_free(sn_udp_peer *p);
/* Binds to port (0: ephemeral) on bind_address ("*" or NULL: any, IPv6 dual-stack with IPv4
 * fallback; an IPv6 literal: v6 only). recv_buf_size 0: 65536.
 * Errors: SN_ERR_ALREADY_IN_USE (port taken, or peer already bound), SN_ERR_INVALID_PARAMETER,
 * SN_ERR_PARAMETER_RANGE_ERROR (port), SN_ERR_CANT_CREATE, SN_ERR_LOCKED (server-owned peer). */
SN_API sn_err sn_udp_peer_bind(sn_udp_peer *p, int port, const char *bind_address,
                               int recv_buf_size);
/* Connects the socket to host:port (IP literal or name), binding an ephemeral port if needed;
 * afterwards only datagrams from that address are received.
 * Errors: SN_ERR_CANT_RESOLVE, SN_ERR_PARAMETER_RANGE_ERROR, SN_ERR_CANT_CONNECT, SN_ERR_LOCKED. */
SN_API sn_err sn_udp_peer_connect_to_host(sn_udp_peer *p, const char *host, int port);
SN_API bool sn_udp_peer_is_bound(const sn_udp_peer *p);
SN_API bool sn_udp_peer_is_socket_connected(const sn_udp_peer *p);
/* Where put_packet sends on an unconnected socket. SN_ERR_LOCKED on a connected/server peer. */
SN_API sn_err sn_udp_peer_set_dest_address(sn_udp_peer *p, const char *host, int port);
/* Sends one datagram. SN_ERR_BUSY when the socket buffer is full; SN_ERR_UNCONFIGURED with no
 * destination or when the owning server is gone; SN_ERR_PARAMETER_RANGE_ERROR over 65507 bytes. */
SN_API sn_err sn_udp_peer_put_packet(sn_udp_peer *p, const void *buf, size_t len);
/* Number of datagrams waiting (reads the socket first for a peer that owns one). */
SN_API int sn_udp_peer_get_available_packet_count(sn_udp_peer *p);
/* Copies the oldest datagram into buf and sets *len. SN_ERR_UNAVAILABLE when none;
 * SN_ERR_PARAMETER_RANGE_ERROR when it is longer than cap (it stays queued, *len says its size). */
SN_API sn_err sn_udp_peer_get_packet(sn_udp_peer *p, void *buf, size_t cap, size_t *len);
/* Source of the last datagram read (IPv4 as a dotted quad). Owned by p; "" before any. */
SN_API const char *sn_udp_peer_get_packet_ip(const sn_udp_peer *p);
SN_API int sn_udp_peer_get_packet_port(const sn_udp_peer *p);
/* 0 when not bound. */
SN_API int sn_udp_peer_get_local_port(const sn_udp_peer *p);
/* Blocks until a datagram is waiting or timeout_ms passes (-1: forever). SN_ERR_TIMEOUT. */
SN_API sn_err sn_udp_peer_wait(sn_udp_peer *p, int timeout_ms);
SN_API sn_err sn_udp_peer_set_broadcast_enabled(sn_udp_peer *p, bool enabled);
/* interface_name NULL or "": the system's choice. */
SN_API sn_err sn_udp_peer_join_multicast_group(sn_udp_peer *p, const char *group,
                                               const char *interface_name);
SN_API sn_err sn_udp_peer_leave_multicast_group(sn_udp_peer *p, const char *group,
                                                const char *interface_name);
/* Closes the socket and drops queued datagrams; the object can be bound again. */
SN_API void sn_udp_peer_close(sn_udp_peer *p);

/* Counters of one peer (standalone or server-owned). */
typedef struct sn_udp_peer_stats {
    uint64_t datagrams_received; /* queued for the program */
    uint64_t bytes_received;
    uint64_t datagrams_sent;
    uint64_t bytes_sent;
    uint64_t dropped_queue_full; /* queue bound reached: newest dropped */
    uint64_t dropped_oversize;   /* truncated by the kernel (standalone peers) */
    uint64_t icmp_refused;       /* ECONNREFUSED seen (ICMP port unreachable); not fatal */
    uint64_t send_busy;          /* put_packet returned SN_ERR_BUSY */
    uint64_t dropped_kernel;     /* dropped by the kernel: receive buffer full (own socket) */
} sn_udp_peer_stats;

/* Copies the peer's counters into *out (zeroes when p is NULL). */
SN_API void sn_udp_peer_get_stats(const sn_udp_peer *p, sn_udp_peer_stats *out);
/* The descriptor to wait on in poll/epoll: the peer's own socket, the server's socket for a
 * server-owned peer, -1 when closed or detached. Do not read from or close it. */
SN_API int sn_udp_peer_get_fd(const sn_udp_peer *p);
/* Bounds on the peer's receive queue (defaults 256 datagrams, 256 KiB of payload); beyond
 * them the newest datagram is dropped and counted. 0 keeps the current value. */
SN_API sn_err sn_udp_peer_set_queue_limits(sn_udp_peer *p, size_t max_packets, size_t max_bytes);

/* A new server, not listening; NULL only when out of memory. */
SN_API sn_udp_server *sn_udp_server_new(void);
/* Stops and frees the server; peers taken from it are detached (their sends fail with
 * SN_ERR_UNCONFIGURED) and stay valid until freed. NULL is fine. */
SN_API void sn_udp_server_free(sn_udp_server *s);
/* Binds and listens ("*"/NULL: dual-stack). A port another socket holds is refused with
 * SN_ERR_ALREADY_IN_USE, "udp port N already in use": unlike Godot (which sets SO_REUSEADDR),
 * two servers never share a port by accident; see sn_udp_server_set_reuse_port to do it on
 * purpose. Other errors as sn_udp_peer_bind. */
SN_API sn_err sn_udp_server_listen(sn_udp_server *s, int port, const char *bind_address);
/* Opt-in port sharing for deliberate multi-socket servers (one socket per worker thread or
 * process): with it enabled on every socket, the next listen sets SO_REUSEPORT and the kernel
 * spreads clients across the sockets by address (one client always reaches the same socket).
 * Every socket sharing the port must enable it, and all must belong to the same user. Default
 * off. Call before sn_udp_server_listen: SN_ERR_ALREADY_IN_USE while listening,
 * SN_ERR_INVALID_PARAMETER for NULL. The setting survives stop and applies to the next listen. */
SN_API sn_err sn_udp_server_set_reuse_port(sn_udp_server *s, bool enabled);
/* Whether the next listen shares the port (false for NULL). */
SN_API bool sn_udp_server_get_reuse_port(const sn_udp_server *s);
/* Reads what has arrived (bounded work per call) and routes it; expires old pending connections.
 * SN_ERR_UNCONFIGURED when not listening. */
SN_API sn_err sn_udp_server_poll(sn_udp_server *s);
SN_API bool sn_udp_server_is_connection_available(const sn_udp_server *s);
/* The oldest pending connection as a peer the caller owns; NULL when none. */
SN_API sn_udp_peer *sn_udp_server_take_connection(sn_udp_server *s);
/* Limit on pending (not yet taken) connections; default 16. Lowering it drops the newest extras. */
SN_API void sn_udp_server_set_max_pending_connections(sn_udp_server *s, int max);
SN_API int sn_udp_server_get_max_pending_connections(const sn_udp_server *s);
SN_API bool sn_udp_server_is_listening(const sn_udp_server *s);
SN_API int sn_udp_server_get_local_port(const sn_udp_server *s);
/* Closes the socket, drops pending connections, detaches taken peers. */
SN_API void sn_udp_server_stop(sn_udp_server *s);

/* Counters of a server since it was created. Gauges (`*_now`) describe the present. */
typedef struct sn_udp_server_stats {
    uint64_t datagrams_received; /* read from the socket, including those dropped below */
    uint64_t bytes_received;     /* payload of the datagrams not truncated */
    uint64_t datagrams_routed;   /* queued to a taken peer or a pending connection */
    uint64_t datagrams_sent;     /* by peers taken from this server */
    uint64_t bytes_sent;
    uint64_t send_busy;            /* sends refused with SN_ERR_BUSY */
    uint64_t send_errors;          /* other send failures */
    uint64_t recv_syscalls;        /* recvmmsg calls (batches) */
    uint64_t recv_errors;          /* recvmmsg failures other than "nothing waiting" */
    uint64_t polls_capped;         /* polls that stopped at the per-poll cap */
    uint64_t pending_opened;       /* new source addresses accepted as pending */
    uint64_t pending_expired;      /* pending connections not taken in time */
    uint64_t pending_taken;        /* returned by take_connection */
    uint64_t pending_discarded;    /* dropped by lowering the limit or by stop */
    uint64_t dropped_pending_full; /* datagrams from new addresses while pending was full */
    uint64_t dropped_queue_full;   /* a peer's queue was full */
    uint64_t dropped_oversize;     /* longer than the receive slot (truncated) */
    uint64_t dropped_no_memory;    /* could not allocate a peer */
    uint64_t dropped_kernel;       /* dropped by the kernel before we read them (receive
                                      buffer full), as the socket reports it (SO_MEMINFO) */
    uint64_t pending_now;          /* gauge */
    uint64_t taken_now;            /* gauge: taken peers still registered */
    uint64_t table_capacity;       /* gauge: slots in the address table */
    uint64_t send_batches;         /* sendmmsg calls for the datagrams of a corked server */
} sn_udp_server_stats;

/* Copies the server's counters into *out (zeroes when s is NULL). */
SN_API void sn_udp_server_get_stats(const sn_udp_server *s, sn_udp_server_stats *out);
/* The listening socket for poll/epoll (-1 when not listening). Do not read from or close it. */
SN_API int sn_udp_server_get_fd(const sn_udp_server *s);
/* Milliseconds until the oldest pending connection expires (0: already due), -1 when none:
 * the longest a program may sleep before calling sn_udp_server_poll again. */
SN_API int sn_udp_server_next_timeout_ms(const sn_udp_server *s);
/* How long a pending connection waits to be taken (default 10000 ms; <= 0: forever). */
SN_API void sn_udp_server_set_pending_timeout_ms(sn_udp_server *s, int ms);
SN_API int sn_udp_server_get_pending_timeout_ms(const sn_udp_server *s);
/* Queue bounds given to connections opened from now on (defaults 256 datagrams, 256 KiB).
 * 0 keeps the current value. SN_ERR_INVALID_PARAMETER for NULL. */
SN_API sn_err sn_udp_server_set_queue_limits(sn_udp_server *s, size_t max_packets,
                                             size_t max_bytes);
/* Datagrams per recvmmsg (1..1024, default 64) and per poll call (>= batch, default 1024).
 * SN_ERR_PARAMETER_RANGE_ERROR outside those ranges. A smaller batch keeps the receive slots
 * already made (they go at stop), so going back up allocates nothing. */
SN_API sn_err sn_udp_server_set_poll_limits(sn_udp_server *s, int batch, int max_per_poll);
/* Longest datagram accepted (1..65535, default 65535); longer ones are dropped and counted.
 * Up to 1984 bytes a datagram lives in one 2 KiB pool block; allowing longer ones also reserves a
 * per-slot overflow buffer (address space, touched only by long datagrams). Lowering the size
 * keeps those buffers (they go at stop); raising it past them makes them again. */
SN_API sn_err sn_udp_server_set_max_datagram_size(sn_udp_server *s, int size);
/* Asks the kernel for a receive buffer of this many bytes (SO_RCVBUF, then SO_RCVBUFFORCE when
 * permitted); applied now when listening and at every listen. 0: the system default. */
SN_API sn_err sn_udp_server_set_recv_buffer_size(sn_udp_server *s, int bytes);
/* ---- the UDP transport: send and receive overrides (netcode's override_send_and_receive) ----
 *
 * Every datagram sealnet sends or receives on a UDP socket (peers, servers, DTLS and the host
 * on top of them) goes through these two calls. Sockets are still opened and bound as usual (so
 * ports and addresses mean what they always do), but a program may replace what happens on the
 * wire: a test injects faults (a send failing with EPERM, ICMP errors as ECONNREFUSED, loss), a
 * fuzz target feeds datagrams without any network, a game engine routes packets through its own
 * relay. Process-wide; set it before creating the objects it should serve. With an override in
 * place, waits (sn_udp_peer_wait, sn_host_service) look at the sockets every millisecond instead
 * of sleeping until the kernel says one is readable. */
typedef struct sn_udp_transport {
    /* Sends one datagram on socket fd to `to` (NULL: the socket's connected address). Returns
     * the bytes sent, or -1 with errno set (EAGAIN/ENOBUFS: busy, ECONNREFUSED: an earlier
     * datagram drew ICMP port unreachable, anything else: a failure). */
    long (*send)(void *user, int fd, const void *buf, size_t len, const struct sockaddr *to,
                 unsigned to_len);
    /* Receives one datagram for socket fd into buf (cap bytes) and its source into from
     * (*from_len bytes of room, set to the address length). Returns the datagram's full length
     * (more than cap: it was truncated and is dropped), or -1 with errno (EAGAIN: nothing
     * waiting; ECONNREFUSED: ICMP port unreachable). */
    long (*recv)(void *user, int fd, void *buf, size_t cap, struct sockaddr *from,
                 unsigned *from_len);
    void *user;
    /* Optional. Datagrams for socket fd that the transport dropped before the program read
     * them (its queue was full): what dropped_kernel reports for that socket in the server and
     * peer statistics while this override is installed, without a system call per stats call.
     * NULL: those statistics read the kernel's counter of the socket (SO_MEMINFO), as without
     * an override (right for a pass-through transport that reads the kernel's sockets). */
    uint64_t (*drops)(void *user, int fd);
    /* Optional. Socket fd's addresses are about to change or stop meaning anything: sealnet
     * calls it after binding or connecting one of its UDP sockets and before closing one, so a
     * transport may cache what it learns about a socket (its address, its peer) instead of
     * asking the kernel at every datagram. */
    void (*forget)(void *user, int fd);
} sn_udp_transport;

/* Installs (a copy of) t; NULL restores the kernel's sendto/recvmmsg. SN_ERR_INVALID_PARAMETER
 * when a function is missing. */
SN_API sn_err sn_set_udp_transport(const sn_udp_transport *t);
/* True while an override is installed. */
SN_API bool sn_udp_transport_is_overridden(void);

#ifdef __cplusplus
}
#endif
#endif
