/* sealnet — Workers: one DTLS server on every core of a machine.
 *
 * N workers share one UDP port. Each has its own socket in an SO_REUSEPORT group (the kernel
 * spreads clients over them by a hash of the address 4-tuple, so a client stays on its worker),
 * its own thread running its own sn_host, and its own TLS context built from the same key and
 * certificate (OpenSSL 3.0 handshakes slow down when threads share one context). They share a
 * cookie secret, so any worker accepts a cookie another made, and session-ticket keys, so a
 * client that lands on another worker (or machine with the same keys) resumes. Nothing is
 * locked on the packet path: the only shared state is a per-worker inbox that other threads use
 * to ask for a broadcast or a stop.
 *
 *     sn_workers_config cfg;
 *     sn_workers_default_config(&cfg);
 *     cfg.workers = 0;               // one per CPU
 *     cfg.host.port = 4242;
 *     cfg.key = key; cfg.cert = cert;
 *     cfg.on_event = on_event;       // called on the worker's thread
 *     sn_workers *w = sn_workers_start(&cfg);
 *     ...
 *     sn_workers_broadcast(w, "news", 4);   // any thread
 *     sn_workers_free(w);                   // stops and joins every worker
 *
 * See docs/scaling.md for the model and the limits.
 */
#ifndef SEALNET_WORKERS_H
#define SEALNET_WORKERS_H

#include <sealnet/host.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_workers sn_workers;

/* Called on a worker's own thread for every event of its host; `host` belongs to that worker
 * (reply with sn_host_peer_send, broadcast to its peers with sn_host_broadcast). */
typedef void (*sn_workers_event_fn)(sn_workers *w, int worker, sn_host *host,
                                    const sn_host_event *event, void *user);

typedef struct sn_workers_config {
    int workers;                /* how many; default 1; 0: one per online CPU */
    sn_host_config host;        /* each worker's host: port (0: ephemeral, shared), bind_address,
                                   limits. server_options, reuse_port and cookie_secret are set by
                                   the workers */
    const sn_crypto_key *key;   /* server key and certificate (borrowed; each worker builds its */
    const sn_x509_cert *cert;   /* own TLS options from them) */
    const uint8_t *ticket_keys; /* session-ticket keys, 80 or 160 bytes (see
                                   sn_tls_options_set_ticket_keys); NULL: none */
    size_t ticket_keys_len;
    const char *ticket_key_file;    /* or a ticket-key file (created when missing); NULL: none */
    const uint8_t *cookie_secret;   /* 32 bytes; NULL: drawn once at start, shared by all */
    const char *cookie_secret_file; /* or a cookie-secret file (created when missing) */
    sn_workers_event_fn on_event;   /* NULL: events are consumed and dropped */
    void *user;
} sn_workers_config;

/* Per-worker counters: the host's (sn_host_stats), published by the worker every 100 ms and
 * when it stops, plus what the workers layer adds. */
typedef struct sn_workers_stats {
    sn_host_stats host;
    uint64_t broadcasts;      /* broadcast requests handled */
    uint64_t broadcast_sends; /* packets sent by them */
    uint64_t wakeups;         /* times the worker slept and woke */
    uint64_t cpu_ns;          /* CPU time of the worker's thread (user + system) */
} sn_workers_stats;

/* Fills *out with the defaults (1 worker, sn_host_default_config, no keys). */
SN_API void sn_workers_default_config(sn_workers_config *out);
/* Creates every worker's socket, TLS context and host on the calling thread, then starts the
 * threads. Any worker that cannot start stops the others: NULL with a message naming the worker
 * and the reason (port in use, SO_REUSEPORT missing, a corrupt key file, ...). */
SN_API sn_workers *sn_workers_start(const sn_workers_config *config);
/* Asks every worker to stop (any thread, also from on_event; returns at once). Workers send
 * close_notify to their peers and end their threads; sn_workers_free joins them. */
SN_API void sn_workers_stop(sn_workers *w);
/* True once every worker thread has ended (after a stop or a worker's fatal error). */
SN_API bool sn_workers_stopped(const sn_workers *w);
/* Waits up to timeout_ms (-1: forever) for every worker to end; true when they have. */
SN_API bool sn_workers_wait(sn_workers *w, int timeout_ms);
/* Stops, joins and frees. NULL is fine. Not from on_event (a worker cannot join itself):
 * call sn_workers_stop there and free from the thread that started them. */
SN_API void sn_workers_free(sn_workers *w);
/* Queues one packet for every connected peer of every worker (copied; any thread). Each worker
 * sends it from its own thread at its next turn (woken through an eventfd). Errors:
 * SN_ERR_INVALID_PARAMETER, SN_ERR_OUT_OF_MEMORY, SN_ERR_UNCONFIGURED (stopped). */
SN_API sn_err sn_workers_broadcast(sn_workers *w, const void *data, size_t len);
/* Rotates the session-ticket keys of every worker (80 or 160 bytes, as
 * sn_tls_options_set_ticket_keys; only when started with keys). Any thread. */
SN_API sn_err sn_workers_set_ticket_keys(sn_workers *w, const uint8_t *keys, size_t len);
SN_API int sn_workers_count(const sn_workers *w);
/* The port every worker listens on. */
SN_API int sn_workers_get_port(const sn_workers *w);
/* A worker's counters (any thread); zeroes for a bad index. */
SN_API void sn_workers_get_stats(const sn_workers *w, int worker, sn_workers_stats *out);
/* Ticket counters summed over every worker. */
SN_API void sn_workers_get_ticket_stats(const sn_workers *w, sn_tls_ticket_stats *out);
/* Why the workers stopped by themselves ("" after sn_workers_stop or while running). */
SN_API const char *sn_workers_get_error(const sn_workers *w);

#ifdef __cplusplus
}
#endif
#endif
