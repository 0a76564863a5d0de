/* Test support for the DTLS interoperability, hostile and lossy tests: certificates made with
 * the `openssl` command, an in-process sealnet DTLS server and clients driven from one loop, and
 * a UDP relay that sits between a client and the server and can drop, reorder, duplicate,
 * capture, inject and black-hole datagrams. Everything is public API; every wait is bounded. */
#ifndef SN_DTLS_FIXTURE_H
#define SN_DTLS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sealnet/sealnet.h>

#include "testutil.h"

/* --- deterministic PRNG (xorshift64*) -------------------------------------------------------- */
typedef struct fx_rng {
    uint64_t s;
} fx_rng;
void fx_rng_seed(fx_rng *r, uint64_t seed);
uint64_t fx_rng_next(fx_rng *r);
/* Uniform in [0, n). */
uint32_t fx_rng_below(fx_rng *r, uint32_t n);
void fx_rng_fill(fx_rng *r, void *buf, size_t len);

/* --- certificates --------------------------------------------------------------------------- */
/* A self-signed certificate for CN=localhost with subjectAltName=DNS:localhost, made by the
 * openssl command in dir. kind: "ec" (P-256) or "rsa" (RSA-2048). Paths are malloc'd. */
bool fx_make_cert(const char *dir, const char *kind, char **key_path, char **cert_path);
/* Server options from the two files (NULL on failure, with a printed reason). */
sn_tls_options *fx_server_options(const char *key_path, const char *cert_path);
/* The certificate file as a trusted chain (NULL on failure). */
sn_x509_cert *fx_load_cert(const char *cert_path);

/* --- in-process server ---------------------------------------------------------------------- */
#define FX_MAX_PEERS 16
typedef struct fx_server {
    sn_udp_server *udp;
    sn_dtls_server *dtls;
    int port;
    /* Peers that came out of take_connection HANDSHAKING, in order; never removed, so a test can
     * look at the ones that failed. Extra peers beyond FX_MAX_PEERS are freed and counted. */
    sn_dtls_peer *peers[FX_MAX_PEERS];
    int npeers;
    uint64_t not_handshaking; /* peers freed right away (cookie round trips, garbage) */
    char last_refused[320];   /* the error message of the last of those */
    uint64_t overflow;
} fx_server;

/* Listens on 127.0.0.1:0 and sets up the DTLS server. settings NULL: defaults. */
bool fx_server_start(fx_server *s, const sn_tls_options *opts, const sn_dtls_settings *settings);
/* One round: poll the UDP server, take every connection, poll every peer. */
void fx_server_step(fx_server *s);
void fx_server_stop(fx_server *s);
/* The newest peer, or NULL. */
sn_dtls_peer *fx_server_last_peer(const fx_server *s);

/* A client peer connecting to 127.0.0.1:port as `hostname` (NULL on failure, reason printed).
 * settings NULL: defaults. */
sn_dtls_peer *fx_client_connect(int port, const char *hostname, const sn_tls_options *opts,
                                const sn_dtls_settings *settings);

/* --- relay ---------------------------------------------------------------------------------- */
enum { FX_C2S = 0, FX_S2C = 1 };

typedef struct fx_dgram {
    int dir;
    size_t len;
    uint8_t *data;
} fx_dgram;

typedef struct fx_relay {
    int front_fd; /* the client sends here (127.0.0.1:port) */
    int back_fd;  /* connected to the server; the server sees the client as this socket */
    int port;
    uint8_t client_addr[128];
    unsigned client_len;
    bool have_client;
    fx_rng rng;
    /* Policy, per direction. */
    int drop_pct[2];    /* probability of dropping a datagram */
    int reorder_pct[2]; /* probability of holding a datagram back until the next one passes */
    long pass_limit[2]; /* forward at most this many, then drop everything (-1: no limit) */
    bool blackhole;     /* drop everything, both ways */
    int dup_app[2];     /* duplicate the next N application-data datagrams */
    /* Drops the datagrams for which it returns true (after the checks above). */
    bool (*filter)(int dir, const uint8_t *d, size_t len);
    bool capture; /* keep a copy of every datagram seen */
    /* Held datagram for reordering. */
    uint8_t *held[2];
    size_t held_len[2];
    uint64_t held_ms[2];
    /* Counters. */
    uint64_t seen[2], forwarded[2], dropped[2], reordered[2], duplicated[2], injected[2];
    /* Datagrams carrying a protected record (epoch > 0): during a handshake, the Finished. */
    uint64_t protected_seen[2], protected_dropped[2];
    size_t max_len[2];
    fx_dgram *caps;
    size_t ncaps, capcap;
} fx_relay;

/* A relay in front of 127.0.0.1:server_port, no loss; false on socket errors. */
bool fx_relay_start(fx_relay *r, int server_port, uint64_t seed);
/* Moves whatever is waiting, applying the policy; releases held datagrams older than 150 ms. */
void fx_relay_step(fx_relay *r);
/* Sends a datagram as if it came from the client (FX_C2S) or from the server (FX_S2C). */
bool fx_relay_inject(fx_relay *r, int dir, const void *data, size_t len);
/* The newest captured datagram in dir whose first byte (record content type) is `type`
 * (23 application data, 22 handshake, 21 alert); NULL when none. */
const fx_dgram *fx_relay_last_capture(const fx_relay *r, int dir, uint8_t type);
void fx_relay_clear_captures(fx_relay *r);
void fx_relay_stop(fx_relay *r);

/* --- one loop for everything ---------------------------------------------------------------- */
#define FX_MAX_CLIENTS 8
typedef struct fx_world {
    fx_server *server;
    fx_relay *relay;
    sn_dtls_peer *clients[FX_MAX_CLIENTS];
    int nclients;
    int extra_fds[4]; /* more descriptors worth waking up for (e.g. a child's output); -1 */
    fx_relay *more_relays[FX_MAX_CLIENTS]; /* further relays, stepped like the first */
    int nmore_relays;
} fx_world;

void fx_world_init(fx_world *w, fx_server *server, fx_relay *relay);
void fx_world_add_client(fx_world *w, sn_dtls_peer *client);
/* Sleeps until a descriptor is readable, a timer is due or max_wait_ms passes, then steps the
 * relay, the server and every client (clients are polled but their packets left queued). */
void fx_world_step(fx_world *w, int max_wait_ms);

/* Steps the world until cond is true or ms pass; fails the test naming the condition. */
#define FX_ASSERT_WITHIN(w, cond, ms)                                                              \
    do {                                                                                           \
        uint64_t fx_end_ = sn_test_now_ms() + (uint64_t)(ms);                                      \
        bool fx_ok_;                                                                               \
        while (!(fx_ok_ = (cond)) && sn_test_now_ms() < fx_end_)                                   \
            fx_world_step((w), 5);                                                                 \
        if (!fx_ok_) {                                                                             \
            print_error("%s:%d: not true within %d ms: %s\n", __FILE__, __LINE__, (int)(ms),       \
                        #cond);                                                                    \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* First statement of a test that fails on a known library bug (described above the test):
 * SN_SKIP_KNOWN_BUGS=1 in the environment skips it, so that a run can show new regressions
 * while the known bugs are being fixed. */
#define FX_KNOWN_BUG()                                                                             \
    do {                                                                                           \
        const char *fx_skip_ = getenv("SN_SKIP_KNOWN_BUGS");                                       \
        if (fx_skip_ && *fx_skip_ && *fx_skip_ != '0') skip();                                     \
    } while (0)

/* Steps the world for ms milliseconds regardless. */
void fx_world_run_for(fx_world *w, int ms);

/* --- application packets with a sequence number and checksum ------------------------------- */
/* [seq u32][len u32][payload...][fnv1a-32 of all before]; len is the whole packet length. */
size_t fx_packet_make(uint32_t seq, fx_rng *rng, size_t len, uint8_t *out);
/* true and *seq when intact. */
bool fx_packet_check(const uint8_t *p, size_t len, uint32_t *seq);

/* --- foreign peers ------------------------------------------------------------------------- */
/* A UDP port that was free a moment ago on 127.0.0.1 (-1 on error). */
int fx_free_udp_port(void);
/* Starts `gnutls-serv --udp --echo` with the certificate on a free port (gnutls-serv cannot
 * report an ephemeral one: take a free one, start, retry on a collision) and waits until it
 * listens. mtu > 0 adds --mtu. NULL (reason printed) when it does not start within timeout_ms. */
sn_test_proc *fx_start_gnutls_server(const char *crt, const char *key, int mtu, int timeout_ms,
                                     int *port);

/* Current drops of the UDP socket bound to 127.0.0.1:port from /proc/net/udp (kernel receive
 * buffer overflows), -1 when not found. */
long fx_kernel_udp_drops(int port);

#endif
