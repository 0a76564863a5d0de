/* sealnet — TLS over a TCP stream (Godot: StreamPeerTLS). TLS 1.2 and 1.3. */
#ifndef SEALNET_TLS_H
#define SEALNET_TLS_H

#include <sealnet/tcp.h>
#include <sealnet/tls_options.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_tls_stream sn_tls_stream;

typedef enum sn_tls_status {
    SN_TLS_STATUS_DISCONNECTED = 0,
    SN_TLS_STATUS_HANDSHAKING = 1,
    SN_TLS_STATUS_CONNECTED = 2,
    SN_TLS_STATUS_ERROR = 3,
    SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH = 4
} sn_tls_status;

SN_API sn_tls_stream *sn_tls_stream_new(void);
SN_API void sn_tls_stream_free(sn_tls_stream *s);
SN_API sn_err sn_tls_stream_connect_to_stream(sn_tls_stream *s, sn_tcp_peer *tcp,
                                              const char *common_name,
                                              const sn_tls_options *client_options);
SN_API sn_err sn_tls_stream_accept_stream(sn_tls_stream *s, sn_tcp_peer *tcp,
                                          const sn_tls_options *server_options);
SN_API void sn_tls_stream_poll(sn_tls_stream *s);
SN_API sn_tls_status sn_tls_stream_get_status(const sn_tls_stream *s);
SN_API int sn_tls_stream_get_available_bytes(sn_tls_stream *s);
SN_API sn_err sn_tls_stream_put_data(sn_tls_stream *s, const void *buf, size_t len);
SN_API sn_err sn_tls_stream_put_partial_data(sn_tls_stream *s, const void *buf, size_t len,
                                             size_t *sent);
SN_API sn_err sn_tls_stream_get_data(sn_tls_stream *s, void *buf, size_t len);
SN_API sn_err sn_tls_stream_get_partial_data(sn_tls_stream *s, void *buf, size_t cap,
                                             size_t *received);
SN_API sn_tcp_peer *sn_tls_stream_get_stream(sn_tls_stream *s);
SN_API void sn_tls_stream_disconnect_from_stream(sn_tls_stream *s);
SN_API const char *sn_tls_stream_get_error_message(const sn_tls_stream *s);

#ifdef __cplusplus
}
#endif
#endif
