/* sealnet — UDP (Godot: PacketPeerUDP, UDPServer).
 *
 * Single-threaded per object: nothing here blocks except sn_udp_peer_wait(). A server drains its
 * socket in sn_udp_server_poll() and routes each datagram, by an O(1) lookup of its source
 * address, to the peer taken for that address or to a pending connection.
 */
#ifndef SEALNET_UDP_H
#define SEALNET_UDP_H

#include <sealnet/error.h>

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

/* A new server, not listening; NULL only when out of memory. */
SN_API sn_udp_server *sn_udp_server_new(void);
/* Stops and frees the server; peers taken from it are detached (their sends fail with
 * SN_ERR_UNCONFIGURED) and stay valid until freed. NULL is fine. */
SN_API void sn_udp_server_free(sn_udp_server *s);
/* Binds and listens ("*"/NULL: dual-stack). Errors as sn_udp_peer_bind. */
SN_API sn_err sn_udp_server_listen(sn_udp_server *s, int port, const char *bind_address);
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

#ifdef __cplusplus
}
#endif
#endif
