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

/* A stream with no connection (status DISCONNECTED); NULL only when out of memory. */
SN_API sn_tls_stream *sn_tls_stream_new(void);
/* Sends close_notify when connected, closes and frees the TCP peer, frees the stream. NULL is
 * fine. */
SN_API void sn_tls_stream_free(sn_tls_stream *s);
/* Starts a TLS client handshake over tcp, which this call takes ownership of (also when it
 * fails). tcp may still be CONNECTING: the handshake starts once it is up. The server's chain is
 * verified per client_options (NULL: sn_tls_options_client(NULL, NULL), the system CAs) and its
 * name against common_name, or the options' common name override, which is also sent as SNI. An
 * unsafe client (sn_tls_options_client_unsafe) sends no SNI and checks no name, as Godot.
 * Status HANDSHAKING, then CONNECTED, or ERROR / ERROR_HOSTNAME_MISMATCH with the reason.
 * Errors: SN_ERR_INVALID_PARAMETER (NULL, server options, no name for a verifying client),
 * SN_ERR_ALREADY_IN_USE, SN_ERR_UNCONFIGURED (tcp neither connected nor connecting),
 * SN_FAILED (session could not start). */
SN_API sn_err sn_tls_stream_connect_to_stream(sn_tls_stream *s, sn_tcp_peer *tcp,
                                              const char *common_name,
                                              const sn_tls_options *client_options);
/* Starts a TLS server handshake over tcp (ownership taken, also on failure) with the key and
 * certificate of server_options. HANDSHAKING until the handshake has really finished, then
 * CONNECTED; ERROR with the reason on failure. Errors as connect_to_stream. */
SN_API sn_err sn_tls_stream_accept_stream(sn_tls_stream *s, sn_tcp_peer *tcp,
                                          const sn_tls_options *server_options);
/* Drives everything: the TCP connect underneath, the handshake (and its timeout), pending
 * writes, and reads ahead at most one record when nothing decrypted waits, so that data, the
 * remote's close_notify (DISCONNECTED, no message) and a close without it (DISCONNECTED, "...
 * truncated") show without reading. Never blocks. */
SN_API void sn_tls_stream_poll(sn_tls_stream *s);
/* The status as of the last call; does no I/O. ERROR_HOSTNAME_MISMATCH means exactly that the
 * chain verified but names another host. */
SN_API sn_tls_status sn_tls_stream_get_status(const sn_tls_stream *s);
/* Decrypted bytes readable now without I/O. */
SN_API int sn_tls_stream_get_available_bytes(sn_tls_stream *s);
/* Sends all of buf, waiting with poll(2) while the socket is full (bounded by the TCP peer's
 * sn_tcp_peer_set_blocking_timeout_ms, forever by default). SN_ERR_UNCONFIGURED when not
 * connected, SN_ERR_CONNECTION_ERROR when the session ends, SN_ERR_TIMEOUT. */
SN_API sn_err sn_tls_stream_put_data(sn_tls_stream *s, const void *buf, size_t len);
/* Encrypts and sends what the socket takes now, never waiting: SN_OK with *sent = 0 when
 * nothing can move (as Godot). At most one record (16 KiB) of what it reports as sent may wait
 * inside the stream for the socket; poll() and the next writes push it out. */
SN_API sn_err sn_tls_stream_put_partial_data(sn_tls_stream *s, const void *buf, size_t len,
                                             size_t *sent);
/* Receives exactly len decrypted bytes, waiting with poll(2) (timeout as put_data).
 * SN_ERR_FILE_EOF when the stream ends first (the bytes so far are in buf). */
SN_API sn_err sn_tls_stream_get_data(sn_tls_stream *s, void *buf, size_t len);
/* Receives the decrypted bytes there are, up to cap, never waiting: SN_OK with *received = 0
 * when none (as Godot). Bytes decrypted before the remote's close stay readable after it.
 * SN_ERR_FILE_EOF when the stream ended during this call, SN_ERR_CONNECTION_ERROR when it
 * failed, SN_ERR_UNCONFIGURED when not connected and nothing is left. */
SN_API sn_err sn_tls_stream_get_partial_data(sn_tls_stream *s, void *buf, size_t cap,
                                             size_t *received);
/* sealnet addition: bytes put_partial_data reported as sent that still wait inside the stream
 * for the socket (at most one record, 16 KiB); 0 when none or not connected. Never does I/O.
 * While non-zero, wait for POLLOUT on the socket and call poll(), which pushes them out: a
 * non-blocking server adds this to its own queue to know a client's backlog. */
SN_API size_t sn_tls_stream_get_unsent_bytes(const sn_tls_stream *s);
/* The TCP peer underneath (borrowed: owned by the stream; NULL before connect/accept). */
SN_API sn_tcp_peer *sn_tls_stream_get_stream(sn_tls_stream *s);
/* Sends close_notify when connected and closes the TCP connection; status DISCONNECTED. */
SN_API void sn_tls_stream_disconnect_from_stream(sn_tls_stream *s);
/* Why the stream failed or ended ("" when it did not, or ended with close_notify). Owned by s. */
SN_API const char *sn_tls_stream_get_error_message(const sn_tls_stream *s);

/* sealnet additions. */
/* Handshake timeout, counted from the moment TCP is up; default 30000 ms; <= 0: none. Applies to
 * a handshake already running too. On expiry
 * the status becomes ERROR ("handshake timed out after N s"). */
SN_API sn_err sn_tls_stream_set_handshake_timeout_ms(sn_tls_stream *s, int timeout_ms);
/* The negotiated protocol and cipher once connected, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"
 * ("" before). Owned by s. For the socket to wait on, see sn_tcp_peer_get_fd(get_stream(s)). */
SN_API const char *sn_tls_stream_get_protocol_description(const sn_tls_stream *s);
/* SHA-256 fingerprint ("AB:CD:..") of the certificate the remote presented, once connected; ""
 * when it presented none (a client without a certificate, as usual). For pinning. Owned by s. */
SN_API const char *sn_tls_stream_get_peer_fingerprint_sha256(const sn_tls_stream *s);
/* True when the connected stream's handshake resumed an earlier session from a session ticket
 * (abbreviated: no key exchange, no certificate). A client resumes on its own when it connects
 * again with the same client options to the same name and port, and the server has ticket keys
 * (sn_tls_options_set_ticket_keys). False before the handshake is done. */
SN_API bool sn_tls_stream_is_session_resumed(const sn_tls_stream *s);
/* The certificate chain the remote presented (leaf first), as sn_dtls_peer_get_peer_certificate:
 * a new object freed with sn_x509_cert_free, NULL when there is none. */
SN_API sn_x509_cert *sn_tls_stream_get_peer_certificate(const sn_tls_stream *s);

#ifdef __cplusplus
}
#endif
#endif
