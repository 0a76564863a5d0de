/* The one interface between sealnet's public objects and a TLS library (curl's vtls idea).
 *
 * Everything TLS-library-specific lives behind `sn_tls_backend`: keys, certificate chains,
 * shared immutable contexts ("configs") and per-connection sessions. Sessions do no I/O of their
 * own: they move ciphertext through the two callbacks in `sn_tls_io`, which the UDP/DTLS and
 * TCP/TLS objects implement. Each backend is one table (src/backend/<name>/), chosen at build
 * time with -DSEALNET_TLS_BACKEND=openssl|mbedtls; docs/backends.md lists their differences.
 *
 * Every function that fails records the cause with sn_fail() (see internal.h).
 */
#ifndef SN_BACKEND_H
#define SN_BACKEND_H

#include "core.h"

#include <pthread.h>

typedef struct sn_tls_key sn_tls_key;         /* refcounted key handle */
typedef struct sn_tls_chain sn_tls_chain;     /* refcounted certificate chain, leaf first */
typedef struct sn_tls_config sn_tls_config;   /* refcounted immutable context */
typedef struct sn_tls_session sn_tls_session; /* one connection's TLS state */

/* Session-ticket keys (RFC 5077), backend-neutral: a rotating set (current + previous) that any
 * number of configs point at, so a rotation reaches contexts already built and every worker or
 * machine loaded with the same keys accepts the others' tickets. One key is
 * SN_TICKET_KEY_LEN bytes: 16 of key name, 32 of AES-256 key, 32 of HMAC-SHA256 key. New
 * tickets use the current key; the previous one still opens tickets (which are then renewed).
 * Refcounted and thread-safe (backend.c). */
#define SN_TICKET_KEY_LEN  80
#define SN_TICKET_KEYS_MAX 2
typedef struct sn_tls_ticket_keys sn_tls_ticket_keys;
typedef struct sn_tls_ticket_counters {
    uint64_t issued;      /* tickets handed out (new or renewed) */
    uint64_t resumed;     /* handshakes resumed from a ticket */
    uint64_t unknown_key; /* tickets under a key not (or no longer) in the set: full handshake */
    uint64_t rejected;    /* tickets under a known key that did not open (forged, expired) */
} sn_tls_ticket_counters;
sn_tls_ticket_keys *sn_tls_ticket_keys_new(void);
sn_tls_ticket_keys *sn_tls_ticket_keys_ref(sn_tls_ticket_keys *k);
void sn_tls_ticket_keys_unref(sn_tls_ticket_keys *k);
/* Replaces the set with n (1..SN_TICKET_KEYS_MAX) keys of SN_TICKET_KEY_LEN bytes, current
 * first. SN_ERR_PARAMETER_RANGE_ERROR for another count. */
sn_err sn_tls_ticket_keys_set(sn_tls_ticket_keys *k, const uint8_t *keys, size_t n);
/* Copies the current key into out; false when the set is empty. */
bool sn_tls_ticket_keys_current(sn_tls_ticket_keys *k, uint8_t out[SN_TICKET_KEY_LEN]);
/* Copies the key named `name` (16 bytes) into out: 1 for the current key, 2 for the previous,
 * 0 when unknown. */
int sn_tls_ticket_keys_find(sn_tls_ticket_keys *k, const uint8_t *name,
                            uint8_t out[SN_TICKET_KEY_LEN]);
/* Counters, bumped by the backend (atomics). */
void sn_tls_ticket_keys_count(sn_tls_ticket_keys *k, size_t field_offset);
void sn_tls_ticket_keys_counters(sn_tls_ticket_keys *k, sn_tls_ticket_counters *out);

/* Return values of the transport callbacks besides a byte count. */
enum { SN_TLS_IO_WOULD_BLOCK = -1, SN_TLS_IO_EOF = -2, SN_TLS_IO_ERROR = -3 };

typedef struct sn_tls_io {
    void *user;
    /* Stream: how many bytes were taken (1..len). Datagram: sends one whole datagram.
     * Or SN_TLS_IO_WOULD_BLOCK / SN_TLS_IO_ERROR. */
    long (*send)(void *user, const void *data, size_t len);
    /* Stream: up to cap bytes. Datagram: one whole datagram (never a part of one).
     * Or SN_TLS_IO_WOULD_BLOCK / SN_TLS_IO_EOF / SN_TLS_IO_ERROR. */
    long (*recv)(void *user, void *buf, size_t cap);
} sn_tls_io;

typedef enum sn_tls_result {
    SN_TLS_OK = 0,     /* done */
    SN_TLS_WANT = 1,   /* needs transport progress: call again later */
    SN_TLS_CLOSED = 2, /* the remote sent close_notify */
    SN_TLS_FAILED = 3  /* fatal: see failure() */
} sn_tls_result;

typedef enum sn_tls_failure {
    SN_TLS_FAIL_NONE = 0,
    SN_TLS_FAIL_PROTOCOL,  /* any other TLS failure */
    SN_TLS_FAIL_HOSTNAME,  /* the chain verified but names another host */
    SN_TLS_FAIL_VERIFY,    /* the chain did not verify */
    SN_TLS_FAIL_ALERT,     /* the remote sent a fatal alert */
    SN_TLS_FAIL_TRUNCATED, /* the transport ended without close_notify */
    SN_TLS_FAIL_TRANSPORT, /* the transport reported an error */
    SN_TLS_FAIL_TOO_BIG    /* a write larger than a record/datagram allows (session stays up) */
} sn_tls_failure;

typedef struct sn_tls_config_params {
    bool server;
    bool datagram;               /* DTLS 1.2 rather than TLS 1.2/1.3 */
    const sn_tls_key *key;       /* server: private key */
    const sn_tls_chain *chain;   /* server: certificate chain, leaf first */
    const sn_tls_chain *trusted; /* client: trust anchors; NULL: the system store */
    bool verify_chain;           /* client */
    bool verify_name;            /* client */
    sn_tls_ticket_keys *tickets; /* server: issue and accept session tickets; NULL: none */
    /* Every NSS key log line ("CLIENT_RANDOM <hex> <hex>", no newline) of every session made
     * from this config; NULL: none. Needs SN_TLS_CAP_KEYLOG. */
    void (*keylog)(void *user, const char *line);
    void *keylog_user;
    /* Every handshake message, alert and ChangeCipherSpec sent or received, retransmissions
     * flagged; NULL: none. */
    sn_tls_trace_fn trace;
    void *trace_user;
} sn_tls_config_params;

#define SN_TLS_SAVED_SESSIONS 32
/* A client config's saved sessions: the newest resumable session per server identity
 * ("name:port") for the last SN_TLS_SAVED_SESSIONS servers, least recently used replaced
 * first. Sessions are the backend's own objects, owned here and released with `drop`. Sessions
 * on several threads may share a config: every access is under the lock. */
typedef struct sn_tls_saved_sessions {
    pthread_mutex_t lock;
    struct sn_tls_saved_session {
        char key[280];
        void *session; /* NULL: a free slot */
        uint64_t used;
    } slot[SN_TLS_SAVED_SESSIONS];
    uint64_t use_clock;
    void (*drop)(void *session);
} sn_tls_saved_sessions;
void sn_tls_saved_init(sn_tls_saved_sessions *s, void (*drop)(void *session));
/* Drops every saved session. */
void sn_tls_saved_destroy(sn_tls_saved_sessions *s);
/* When a session is saved for key: calls use(session, user) under the lock (to take a
 * reference or a copy; the session stays saved) and returns true. */
bool sn_tls_saved_use(sn_tls_saved_sessions *s, const char *key,
                      void (*use)(void *session, void *user), void *user);
/* Keeps session (taking ownership) as the newest for key; a key too long to keep drops it. */
void sn_tls_saved_put(sn_tls_saved_sessions *s, const char *key, void *session);
typedef struct sn_tls_session_params {
    const char *hostname;           /* client: SNI and the name verified; NULL or "": none */
    size_t mtu;                     /* datagram: UDP payload bytes per datagram */
    uint32_t retransmit_initial_ms; /* datagram: first retransmission timeout (doubles) */
    /* Datagram server: checks the cookie of the ClientHello that opened the session. The
     * HelloVerifyRequest itself is sealnet's (dtls/), stateless and backend-neutral. */
    bool (*cookie_verify)(void *user, const uint8_t *cookie, size_t len);
    void *cookie_user;
    /* Client: the server's identity for resumption ("name:port"; NULL: none). The config keeps
     * the newest resumable session per identity (the last SN_TLS_SAVED_SESSIONS servers) and a
     * session with the same identity offers it; a server that does not take it does a full
     * handshake. */
    const char *resume_key;
} sn_tls_session_params;

/* Capability bits: what a backend can do. A call that needs a missing one fails with
 * SN_ERR_UNAVAILABLE naming the backend and the feature (sn_tls_require). */
enum {
    SN_TLS_CAP_TLS13 = 1u << 0,    /* TLS 1.3 on streams */
    SN_TLS_CAP_KEYLOG = 1u << 1,   /* NSS key log lines */
    SN_TLS_CAP_TICKETS = 1u << 2,  /* session tickets (resumption) */
    SN_TLS_CAP_ALLOCATOR = 1u << 3 /* its allocations can follow sn_set_allocator */
};

typedef struct sn_tls_backend {
    const char *name;
    const char *(*library_version)(void);
    unsigned caps; /* SN_TLS_CAP_* */
    /* Routes the backend's own allocations through `a` (a pointer that stays valid); false
     * when it cannot (it has allocated already, or does not support it). NULL when never. */
    bool (*route_allocator)(const sn_allocator *a);

    /* Keys. load: a PEM private key, or a public key when public_only. */
    sn_err (*key_load_pem)(const char *pem, size_t len, bool public_only, sn_tls_key **out);
    char *(*key_save_pem)(const sn_tls_key *key, bool public_only); /* malloc'd, NUL-ended */
    bool (*key_is_public_only)(const sn_tls_key *key);
    sn_tls_key *(*key_generate_rsa)(int bits);
    sn_tls_key *(*key_generate_ec)(const char *curve);
    sn_tls_key *(*key_ref)(sn_tls_key *key);
    void (*key_unref)(sn_tls_key *key);

    /* Certificate chains. */
    sn_err (*chain_load_pem)(const char *pem, size_t len, sn_tls_chain **out);
    char *(*chain_save_pem)(const sn_tls_chain *chain); /* malloc'd, NUL-ended */
    sn_tls_chain *(*chain_self_signed)(const sn_tls_key *key, const char *issuer,
                                       const char *not_before, const char *not_after);
    bool (*key_matches_chain)(const sn_tls_key *key, const sn_tls_chain *chain);
    /* SHA-256 of the leaf's DER, as "AB:CD:..." (95 chars + NUL). */
    sn_err (*chain_fingerprint)(const sn_tls_chain *chain, char out[96]);
    /* Number of certificates in the chain. */
    int (*chain_count)(const sn_tls_chain *chain);
    sn_tls_chain *(*chain_ref)(sn_tls_chain *chain);
    void (*chain_unref)(sn_tls_chain *chain);
    sn_err (*random_bytes)(void *buf, size_t len);
    /* HMAC-SHA256 of data under key into out[32]. */
    void (*hmac_sha256)(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                        uint8_t out[32]);

    /* Shared immutable contexts. */
    sn_tls_config *(*config_new)(const sn_tls_config_params *params);
    sn_tls_config *(*config_ref)(sn_tls_config *config);
    void (*config_unref)(sn_tls_config *config);

    /* Sessions: each keeps a reference to its config. */
    sn_tls_session *(*session_new)(sn_tls_config *config, const sn_tls_session_params *params,
                                   const sn_tls_io *io);
    void (*session_free)(sn_tls_session *s);
    /* Drives the handshake: OK when finished, WANT for more I/O, FAILED. */
    sn_tls_result (*handshake)(sn_tls_session *s);
    /* One read: stream: up to cap bytes; datagram: one record (FAILED/TOO_BIG if cap is short). */
    sn_tls_result (*read)(sn_tls_session *s, void *buf, size_t cap, size_t *n);
    /* Stream: writes up to len (may be partial, *n says). Datagram: one record or nothing. */
    sn_tls_result (*write)(sn_tls_session *s, const void *buf, size_t len, size_t *n);
    /* Sends close_notify (best effort). */
    void (*close)(sn_tls_session *s);
    /* Why the session failed, with a message naming the cause (owned by the session). */
    sn_tls_failure (*failure)(const sn_tls_session *s, const char **message);
    /* True when the session holds input it has not handed out yet: decrypted bytes or records
     * not yet processed (e.g. data that came in the same datagram as the last handshake
     * message). When false and the transport has nothing, a read would only say WANT. */
    bool (*has_buffered_input)(const sn_tls_session *s);
    /* Decrypted bytes buffered inside the session, readable without I/O. */
    size_t (*pending)(const sn_tls_session *s);
    /* Datagram: ms until the retransmission timer fires (-1: none armed), and firing it. */
    int64_t (*next_timeout_ms)(sn_tls_session *s);
    sn_tls_result (*handle_timeout)(sn_tls_session *s);
    /* Datagram: bytes a protected record adds to its payload (explicit nonce + tag) for the
     * negotiated suite; the smallest across allowed suites (16) while none is negotiated. A
     * protected record shorter than this is forged or broken. */
    size_t (*record_overhead)(const sn_tls_session *s);
    /* Datagram: the largest record_overhead of any suite the backend allows (the bound used
     * before a handshake settles the suite). */
    size_t record_overhead_max;
    /* Datagram: largest application payload that fits one datagram at the session's MTU. */
    size_t (*max_payload)(const sn_tls_session *s);
    /* SHA-256 fingerprint of the certificate the remote presented ("AB:CD:.."), for pinning;
     * SN_ERR_UNAVAILABLE when it presented none. */
    sn_err (*peer_fingerprint)(const sn_tls_session *s, char out[96]);
    /* The certificate chain the remote presented, leaf first (a new reference), also after a
     * failed verification; NULL when it presented none. Optional (NULL: the peer certificate
     * getters return NULL), as is chain_info (NULL: SN_ERR_UNAVAILABLE). A backend that does
     * not call config params' keylog leaves out SN_TLS_CAP_KEYLOG; trace may be ignored. */
    sn_tls_chain *(*peer_chain)(const sn_tls_session *s);
    /* Subject, issuer, names, validity and fingerprint of the chain's certificate `index`. */
    sn_err (*chain_info)(const sn_tls_chain *chain, int index, sn_x509_info *out);
    /* Negotiated protocol and cipher with the suite's IANA name, the same on every backend,
     * e.g. "DTLSv1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256". */
    const char *(*describe)(const sn_tls_session *s);
    /* True once a handshake finished by resuming an earlier session (abbreviated). Optional
     * (NULL: never; a backend without SN_TLS_CAP_TICKETS). */
    bool (*session_resumed)(const sn_tls_session *s);
    /* Datagram server, during the handshake: true once the session could hold keys for the
     * client's next epoch (it has read the client's key exchange, or resumes a session), so a
     * record of that epoch can be used rather than only buffered. Optional (NULL: the DTLS
     * layer bounds such records by count alone). */
    bool (*peer_next_epoch_possible)(const sn_tls_session *s);
} sn_tls_backend;

/* The backend this build uses. */
const sn_tls_backend *sn_tls_backend_get(void);

/* SN_OK when the backend has every bit of `caps`; else SN_ERR_UNAVAILABLE with "<backend> does
 * not support <what>". */
sn_err sn_tls_require(unsigned caps, const char *what);

#endif
