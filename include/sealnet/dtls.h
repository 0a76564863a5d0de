/* sealnet — DTLS 1.2 (Godot: DTLSServer, PacketPeerDTLS).
 *
 * Same model as Godot: the program polls the UDP server, takes new connections, hands each to
 * sn_dtls_server_take_connection(), skips those not HANDSHAKING, and polls every peer from its
 * own loop. Nothing blocks.
 */
#ifndef SEALNET_DTLS_H
#define SEALNET_DTLS_H

#include <sealnet/tls_options.h>
#include <sealnet/udp.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_dtls_server sn_dtls_server;
typedef struct sn_dtls_peer sn_dtls_peer;

typedef enum sn_dtls_status {
    SN_DTLS_STATUS_DISCONNECTED = 0,
    SN_DTLS_STATUS_HANDSHAKING = 1,
    SN_DTLS_STATUS_CONNECTED = 2,
    SN_DTLS_STATUS_ERROR = 3,
    SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH = 4
} sn_dtls_status;

SN_API sn_dtls_server *sn_dtls_server_new(void);
SN_API void sn_dtls_server_free(sn_dtls_server *s);
SN_API sn_err sn_dtls_server_setup(sn_dtls_server *s, const sn_tls_options *server_options);
SN_API sn_dtls_peer *sn_dtls_server_take_connection(sn_dtls_server *s, sn_udp_peer *udp_peer);

SN_API sn_dtls_peer *sn_dtls_peer_new(void);
SN_API void sn_dtls_peer_free(sn_dtls_peer *p);
SN_API sn_err sn_dtls_peer_connect_to_peer(sn_dtls_peer *p, sn_udp_peer *udp_peer,
                                           const char *hostname,
                                           const sn_tls_options *client_options);
SN_API void sn_dtls_peer_poll(sn_dtls_peer *p);
SN_API sn_dtls_status sn_dtls_peer_get_status(const sn_dtls_peer *p);
SN_API int sn_dtls_peer_get_available_packet_count(const sn_dtls_peer *p);
SN_API sn_err sn_dtls_peer_get_packet(sn_dtls_peer *p, void *buf, size_t cap, size_t *len);
SN_API sn_err sn_dtls_peer_put_packet(sn_dtls_peer *p, const void *buf, size_t len);
SN_API int sn_dtls_peer_get_max_packet_size(const sn_dtls_peer *p);
SN_API const char *sn_dtls_peer_get_packet_ip(const sn_dtls_peer *p);
SN_API int sn_dtls_peer_get_packet_port(const sn_dtls_peer *p);
SN_API uint64_t sn_dtls_peer_get_last_packet_time_ms(const sn_dtls_peer *p);
SN_API void sn_dtls_peer_disconnect_from_peer(sn_dtls_peer *p);
SN_API const char *sn_dtls_peer_get_error_message(const sn_dtls_peer *p);

#ifdef __cplusplus
}
#endif
#endif
