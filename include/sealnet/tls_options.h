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
 * as OpenSSL finds them, SSL_CERT_FILE / SSL_CERT_DIR honoured; on mbed TLS the same variables,
 * else /etc/ssl/certs/ca-certificates.crt) and its name against the host
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

/* ---- session resumption (RFC 5077 session tickets; docs/scaling.md) ----
 * A server with ticket keys hands each client a ticket (its session, encrypted and authenticated
 * under the current key); a client that comes back with it resumes: an abbreviated handshake
 * with no key exchange and no signature, on any worker or machine that holds the same keys.
 * Client options remember the newest session per server ("name:port", the last 32 servers) and
 * offer it on the next connection made with the same options; a server that does not know the
 * ticket simply does a full handshake. Servers without keys issue no tickets (as before). */

#define SN_TICKET_KEY_SIZE 80 /* one key: 16-byte name, 32-byte AES-256 key, 32-byte HMAC key */

/* Sets the server's ticket keys: `len` is 80 (one key) or 160 (current, then previous: tickets
 * under the previous key still resume and are re-issued under the current one; any other key
 * means a full handshake). Copied. The first call must come before the options' first
 * connection; later calls rotate the keys of every connection made with these options, on any
 * thread. Errors: SN_ERR_INVALID_PARAMETER (NULL, client options), SN_ERR_PARAMETER_RANGE_ERROR
 * (length), SN_ERR_ALREADY_IN_USE (first call after a connection), SN_ERR_UNAVAILABLE (a
 * backend without tickets). */
SN_API sn_err sn_tls_options_set_ticket_keys(sn_tls_options *opts, const uint8_t *keys, size_t len);
/* Loads the ticket keys from a key file and sets them. Format: text, '#' comments, one key per
 * line as 160 hex digits, current first, then optionally the previous one. A missing file is
 * created with one fresh random key, mode 0600 (workers racing to create it agree on one). A
 * short, long or non-hex line, a third key or an empty file is refused with SN_ERR_FILE_CORRUPT
 * and a message naming the file, the line and the fault. Rotate by putting a new line first and
 * keeping the old one second, then reloading. */
SN_API sn_err sn_tls_options_load_ticket_key_file(sn_tls_options *opts, const char *path);

/* Ticket counters of server options, summed over every connection made with them. */
typedef struct sn_tls_ticket_stats {
    uint64_t issued;      /* tickets handed out */
    uint64_t resumed;     /* handshakes resumed from a ticket */
    uint64_t unknown_key; /* tickets under an unknown or retired key: full handshake instead */
    uint64_t rejected;    /* tickets under a known key that did not open (forged, expired) */
} sn_tls_ticket_stats;
/* Zeroes for client options or options without ticket keys. */
SN_API void sn_tls_options_get_ticket_stats(const sn_tls_options *opts, sn_tls_ticket_stats *out);

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
