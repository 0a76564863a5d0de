/* sealnet — TCP (Godot: StreamPeerTCP, TCPServer).
 *
 * Sockets are non-blocking. sn_tcp_peer_put_data / get_data block until done (as in Godot);
 * the *_partial_* variants never block. SIGPIPE never reaches the program.
 */
#ifndef SEALNET_TCP_H
#define SEALNET_TCP_H

#include <sealnet/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_tcp_peer sn_tcp_peer;
typedef struct sn_tcp_server sn_tcp_server;

typedef enum sn_tcp_status {
    SN_TCP_STATUS_NONE = 0,
    SN_TCP_STATUS_CONNECTING = 1,
    SN_TCP_STATUS_CONNECTED = 2,
    SN_TCP_STATUS_ERROR = 3
} sn_tcp_status;

/* A new peer with no socket (status NONE); NULL only when out of memory. */
SN_API sn_tcp_peer *sn_tcp_peer_new(void);
/* Closes the socket and frees the peer; NULL is fine. */
SN_API void sn_tcp_peer_free(sn_tcp_peer *p);
/* Opens the socket bound to host:port before connecting (host "*" or NULL: any, dual-stack), to
 * choose the local address or port. Errors: SN_ERR_ALREADY_IN_USE (socket open, or the port is
 * taken), SN_ERR_PARAMETER_RANGE_ERROR, SN_ERR_INVALID_PARAMETER. */
SN_API sn_err sn_tcp_peer_bind(sn_tcp_peer *p, int port, const char *host);
/* Starts a non-blocking connect to host (IP literal, or a name resolved here, synchronously, as
 * Godot does) and port 1..65535. Status CONNECTING until sn_tcp_peer_poll sees the connection up
 * (CONNECTED) or failed (ERROR with the reason, e.g. "cannot connect to 127.0.0.1:9: Connection
 * refused", or the connect timeout). Errors: SN_ERR_ALREADY_IN_USE (connecting or connected),
 * SN_ERR_CANT_RESOLVE, SN_ERR_CANT_CONNECT, SN_ERR_PARAMETER_RANGE_ERROR. A peer in ERROR may
 * connect again. */
SN_API sn_err sn_tcp_peer_connect_to_host(sn_tcp_peer *p, const char *host, int port);
/* Updates the status: finishes a pending connect (or fails it on timeout), and notices a remote
 * that closed (status NONE, once every byte it sent has been read) or reset (ERROR). Returns the
 * error that ended the connection during this call, else SN_OK. */
SN_API sn_err sn_tcp_peer_poll(sn_tcp_peer *p);
/* The status as of the last call; does no I/O. */
SN_API sn_tcp_status sn_tcp_peer_get_status(const sn_tcp_peer *p);
/* The remote address ("" when not connecting or connected; IPv4-mapped shown as dotted quad). */
SN_API const char *sn_tcp_peer_get_connected_host(const sn_tcp_peer *p);
SN_API int sn_tcp_peer_get_connected_port(const sn_tcp_peer *p);
/* The local port of the socket, 0 when there is none. */
SN_API int sn_tcp_peer_get_local_port(const sn_tcp_peer *p);
/* TCP_NODELAY (Nagle off). Remembered and applied to sockets opened later too. */
SN_API sn_err sn_tcp_peer_set_no_delay(sn_tcp_peer *p, bool enabled);
/* Bytes waiting in the kernel's receive buffer (FIONREAD); 0 when not connected, -1 on error. */
SN_API int sn_tcp_peer_get_available_bytes(sn_tcp_peer *p);
/* Sends all of buf, waiting with poll(2) while the socket buffer is full (see
 * sn_tcp_peer_set_blocking_timeout_ms). Errors: SN_ERR_UNCONFIGURED (not connected),
 * SN_ERR_CONNECTION_ERROR (reset / closed: status ERROR), SN_ERR_TIMEOUT. */
SN_API sn_err sn_tcp_peer_put_data(sn_tcp_peer *p, const void *buf, size_t len);
/* Sends what the socket takes now, never waiting: SN_OK with *sent = 0 when the socket buffer is
 * full (as Godot). Errors as sn_tcp_peer_put_data. */
SN_API sn_err sn_tcp_peer_put_partial_data(sn_tcp_peer *p, const void *buf, size_t len,
                                           size_t *sent);
/* Receives exactly len bytes, waiting with poll(2). SN_ERR_FILE_EOF when the remote closes first
 * (status NONE; the bytes read so far are in buf), SN_ERR_CONNECTION_ERROR, SN_ERR_TIMEOUT,
 * SN_ERR_UNCONFIGURED (not connected). */
SN_API sn_err sn_tcp_peer_get_data(sn_tcp_peer *p, void *buf, size_t len);
/* Receives what is waiting, up to cap, never waiting: SN_OK with *received = 0 when nothing is
 * there (as Godot). SN_ERR_FILE_EOF when the remote has closed (status NONE). */
SN_API sn_err sn_tcp_peer_get_partial_data(sn_tcp_peer *p, void *buf, size_t cap, size_t *received);
/* Closes the socket; status NONE. The peer may connect again. */
SN_API void sn_tcp_peer_disconnect_from_host(sn_tcp_peer *p);
/* Why the connection failed or ended ("" when it did not). Owned by p. */
SN_API const char *sn_tcp_peer_get_error_message(const sn_tcp_peer *p);

/* sealnet additions. */
/* Connect timeout for connects started later; default 30000 ms; <= 0: none. On expiry the status
 * becomes ERROR ("connection to H:P timed out after N s"). */
SN_API sn_err sn_tcp_peer_set_connect_timeout_ms(sn_tcp_peer *p, int timeout_ms);
/* Longest wait of put_data / get_data before SN_ERR_TIMEOUT (the data moved so far stays
 * moved); default -1: forever, as Godot. */
SN_API sn_err sn_tcp_peer_set_blocking_timeout_ms(sn_tcp_peer *p, int timeout_ms);
/* The socket, for epoll/poll in the program's own loop (-1 when none). Borrowed: do not read,
 * write or close it. */
SN_API int sn_tcp_peer_get_fd(const sn_tcp_peer *p);

/* A server that is not listening; NULL only when out of memory. */
SN_API sn_tcp_server *sn_tcp_server_new(void);
/* Stops and frees the server; NULL is fine. Peers already taken are independent of it. */
SN_API void sn_tcp_server_free(sn_tcp_server *s);
/* Listens on bind_address:port (port 0: any free port, see get_local_port; bind_address "*" or
 * NULL: every address, IPv6 dual-stack with IPv4 fallback) with SO_REUSEADDR.
 * Errors: SN_ERR_ALREADY_IN_USE (listening already, or the port is taken),
 * SN_ERR_PARAMETER_RANGE_ERROR, SN_ERR_INVALID_PARAMETER, SN_ERR_CANT_CREATE. */
SN_API sn_err sn_tcp_server_listen(sn_tcp_server *s, int port, const char *bind_address);
/* True when a connection waits to be taken. */
SN_API bool sn_tcp_server_is_connection_available(const sn_tcp_server *s);
/* The next waiting connection as a CONNECTED peer the caller owns; NULL when none
 * (SN_ERR_UNAVAILABLE in sn_last_error_message) or on error. */
SN_API sn_tcp_peer *sn_tcp_server_take_connection(sn_tcp_server *s);
SN_API bool sn_tcp_server_is_listening(const sn_tcp_server *s);
/* The port listened on, 0 when not listening. */
SN_API int sn_tcp_server_get_local_port(const sn_tcp_server *s);
/* Closes the listening socket. Peers already taken stay connected. */
SN_API void sn_tcp_server_stop(sn_tcp_server *s);
/* sealnet addition: the listening socket for epoll/poll (-1 when none); borrowed. */
SN_API int sn_tcp_server_get_fd(const sn_tcp_server *s);

/* sealnet additions: running out of descriptors. When accept(2) fails with EMFILE, ENFILE,
 * ENOMEM or ENOBUFS the waiting connection stays queued and the listening socket stays readable,
 * so a loop that polls it would spin. take_connection then returns NULL (SN_ERR_OUT_OF_MEMORY,
 * "... (accepting paused)") and pauses accepting: is_connection_available is false and
 * is_accept_paused true until resume_accepting is called (do it when a connection of yours
 * closes and frees a descriptor) or 1 s passes. While paused, leave the listening socket out of
 * poll(2) and wake at least every second. */
SN_API bool sn_tcp_server_is_accept_paused(const sn_tcp_server *s);
SN_API void sn_tcp_server_resume_accepting(sn_tcp_server *s);

/* Counters of a TCP server since it was created. */
typedef struct sn_tcp_server_stats {
    uint64_t accepted;         /* connections taken */
    uint64_t out_of_resources; /* accepts failed with EMFILE/ENFILE/ENOMEM/ENOBUFS (each pauses) */
    uint64_t accept_errors;    /* other accept failures */
    bool paused_now;           /* gauge: accepting is paused */
} sn_tcp_server_stats;
/* Copies the counters into *out (zeroes when s is NULL). */
SN_API void sn_tcp_server_get_stats(const sn_tcp_server *s, sn_tcp_server_stats *out);

#ifdef __cplusplus
}
#endif
#endif
