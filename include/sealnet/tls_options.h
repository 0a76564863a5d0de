/* sealnet — TLS options (Godot: TLSOptions). One options object may be shared by any number of
 * connections; it keeps its own references to the key and certificates given to it. */
#ifndef SEALNET_TLS_OPTIONS_H
#define SEALNET_TLS_OPTIONS_H

#include <sealnet/crypto.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_tls_options sn_tls_options;

/* Client options that verify the peer's chain against trusted_chain (NULL: the system CAs, found
 * as OpenSSL finds them, SSL_CERT_FILE / SSL_CERT_DIR honoured) and its name against the host
 * given to connect_to_* or common_name_override (NULL or "": none), which is also the SNI. */
SN_API sn_tls_options *sn_tls_options_client(const sn_x509_cert *trusted_chain,
                                             const char *common_name_override);
/* Client options that skip name checks: trusted_chain NULL verifies nothing at all; a chain is
 * verified but the name is not. */
SN_API sn_tls_options *sn_tls_options_client_unsafe(const sn_x509_cert *trusted_chain);
/* Server options. NULL (with a message) when the key and certificate do not match, the key is
 * public-only, or either is empty. */
SN_API sn_tls_options *sn_tls_options_server(const sn_crypto_key *key,
                                             const sn_x509_cert *certificate);
/* Frees the options; NULL is fine. Connections already made with them keep working. */
SN_API void sn_tls_options_free(sn_tls_options *opts);
SN_API bool sn_tls_options_is_server(const sn_tls_options *opts);
SN_API bool sn_tls_options_is_unsafe_client(const sn_tls_options *opts);
/* The override given to sn_tls_options_client, or "" when none. Owned by opts. */
SN_API const char *sn_tls_options_get_common_name_override(const sn_tls_options *opts);

/* Key logging, for Wireshark and the like: every session made with these options hands its
 * secrets, one NSS key log line at a time ("CLIENT_RANDOM <client random> <master secret>" for
 * (D)TLS 1.2, the *_TRAFFIC_SECRET lines for TLS 1.3; no newline), to fn. Anyone holding the
 * lines can decrypt the sessions: for debugging only. Must be set before the options are first
 * used by a connection. Errors: SN_ERR_INVALID_PARAMETER (NULL opts), SN_ERR_LOCKED (already in
 * use), SN_ERR_UNAVAILABLE (the TLS backend cannot log keys). fn NULL switches logging off. */
typedef void (*sn_tls_keylog_fn)(void *user, const char *line);
SN_API sn_err sn_tls_options_set_keylog_callback(sn_tls_options *opts, sn_tls_keylog_fn fn,
                                                 void *user);
/* The same into a file: appends the lines (each with its newline) to path, created with mode
 * 0600 when missing (as SSLKEYLOGFILE in browsers and curl). The file stays open until the
 * options are freed. NULL path: no logging. Errors as above, plus SN_ERR_CANT_CREATE naming the
 * path. */
SN_API sn_err sn_tls_options_set_keylog_file(sn_tls_options *opts, const char *path);

/* One handshake-level message seen by a session (what `openssl s_client -msg` shows). */
typedef struct sn_tls_trace_event {
    bool sent;           /* true: this side sent it; false: received */
    bool retransmission; /* DTLS: sent again because the peer's answer did not come in time */
    const char *content; /* "handshake", "alert" or "change_cipher_spec" */
    const char *message; /* "ClientHello", "HelloVerifyRequest", "Finished", ...; for an alert
                            "close_notify" and the like */
    size_t length;       /* bytes of the message (handshake header included) */
    const void *session; /* the same for every message of one connection */
} sn_tls_trace_event;
typedef void (*sn_tls_trace_fn)(void *user, const sn_tls_trace_event *ev);
/* Calls fn for every handshake message, alert and ChangeCipherSpec that sessions made with these
 * options send or receive, on the thread that polls them. Strings in *ev live for the call
 * only. Must be set before first use; errors as sn_tls_options_set_keylog_callback (without
 * SN_ERR_UNAVAILABLE). */
SN_API sn_err sn_tls_options_set_trace_callback(sn_tls_options *opts, sn_tls_trace_fn fn,
                                                void *user);

#ifdef __cplusplus
}
#endif
#endif
