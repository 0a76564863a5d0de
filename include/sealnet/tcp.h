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

SN_API sn_tcp_peer *sn_tcp_peer_new(void);
SN_API void sn_tcp_peer_free(sn_tcp_peer *p);
SN_API sn_err sn_tcp_peer_bind(sn_tcp_peer *p, int port, const char *host);
SN_API sn_err sn_tcp_peer_connect_to_host(sn_tcp_peer *p, const char *host, int port);
SN_API sn_err sn_tcp_peer_poll(sn_tcp_peer *p);
SN_API sn_tcp_status sn_tcp_peer_get_status(const sn_tcp_peer *p);
SN_API const char *sn_tcp_peer_get_connected_host(const sn_tcp_peer *p);
SN_API int sn_tcp_peer_get_connected_port(const sn_tcp_peer *p);
SN_API int sn_tcp_peer_get_local_port(const sn_tcp_peer *p);
SN_API sn_err sn_tcp_peer_set_no_delay(sn_tcp_peer *p, bool enabled);
SN_API int sn_tcp_peer_get_available_bytes(sn_tcp_peer *p);
SN_API sn_err sn_tcp_peer_put_data(sn_tcp_peer *p, const void *buf, size_t len);
SN_API sn_err sn_tcp_peer_put_partial_data(sn_tcp_peer *p, const void *buf, size_t len,
                                           size_t *sent);
SN_API sn_err sn_tcp_peer_get_data(sn_tcp_peer *p, void *buf, size_t len);
SN_API sn_err sn_tcp_peer_get_partial_data(sn_tcp_peer *p, void *buf, size_t cap, size_t *received);
SN_API void sn_tcp_peer_disconnect_from_host(sn_tcp_peer *p);
SN_API const char *sn_tcp_peer_get_error_message(const sn_tcp_peer *p);

SN_API sn_tcp_server *sn_tcp_server_new(void);
SN_API void sn_tcp_server_free(sn_tcp_server *s);
SN_API sn_err sn_tcp_server_listen(sn_tcp_server *s, int port, const char *bind_address);
SN_API bool sn_tcp_server_is_connection_available(const sn_tcp_server *s);
SN_API sn_tcp_peer *sn_tcp_server_take_connection(sn_tcp_server *s);
SN_API bool sn_tcp_server_is_listening(const sn_tcp_server *s);
SN_API int sn_tcp_server_get_local_port(const sn_tcp_server *s);
SN_API void sn_tcp_server_stop(sn_tcp_server *s);

#ifdef __cplusplus
}
#endif
#endif
