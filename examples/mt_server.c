/* A chat server on every core: sn_workers runs one sn_host per thread on one UDP port
 * (SO_REUSEPORT), each with its own TLS context; every packet a client sends is relayed to
 * every client of every worker with sn_workers_broadcast, and the main thread announces the
 * time every few seconds the same way. Session tickets and the cookie secret come from files
 * (created when missing), so a second copy of this server on another machine, given the same
 * files, resumes this one's clients (docs/scaling.md).
 *
 *   mt_server [--port N] [--workers N (0: one per CPU)] [--tickets FILE] [--cookies FILE]
 *             [--save-cert FILE] [--seconds N]
 *
 * Try it:  mt_server --save-cert c.pem &  then, twice,
 *          sealnet dtls-client 127.0.0.1 4242 --ca c.pem --name localhost */
#include <sealnet/sealnet.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig, stop = 1;
}

static atomic_int online;

/* Runs on the worker's own thread: only this worker's host and peers are touched here. */
static void on_event(sn_workers *w, int worker, sn_host *host, const sn_host_event *ev, void *user)
{
    (void)host, (void)user;
    switch (ev->type) {
    case SN_HOST_EVENT_CONNECT:
        atomic_fetch_add(&online, 1);
        printf("worker %d: %s:%d joined (%s)\n", worker, sn_host_peer_get_address(ev->peer),
               sn_host_peer_get_port(ev->peer),
               sn_host_peer_is_session_resumed(ev->peer) ? "resumed" : "full handshake");
        break;
    case SN_HOST_EVENT_RECEIVE:
        /* To everyone on every worker (the sender too): the other workers' peers are theirs,
         * so the message goes through their inboxes. */
        sn_workers_broadcast(w, ev->data, ev->len);
        break;
    case SN_HOST_EVENT_DISCONNECT:
        atomic_fetch_sub(&online, 1);
        printf("worker %d: %s:%d left (%s)\n", worker, sn_host_peer_get_address(ev->peer),
               sn_host_peer_get_port(ev->peer), sn_host_disconnect_reason_string(ev->reason));
        break;
    default:
        break;
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int port = 4242, workers = 0, seconds = 0;
    const char *tickets = "mt_server.tickets", *cookies = "mt_server.cookie", *save = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers"))
            workers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tickets"))
            tickets = argv[i + 1];
        else if (!strcmp(argv[i], "--cookies"))
            cookies = argv[i + 1];
        else if (!strcmp(argv[i], "--save-cert"))
            save = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    if (!cert || (save && sn_x509_cert_save(cert, save) != SN_OK)) {
        fprintf(stderr, "credentials: %s\n", sn_last_error_message());
        return 1;
    }

    sn_workers_config cfg;
    sn_workers_default_config(&cfg);
    cfg.workers = workers;
    cfg.host.port = port;
    cfg.host.keepalive_interval_ms = 0; /* plain DTLS clients (sealnet dtls-client, Godot) */
    cfg.key = key;
    cfg.cert = cert;
    cfg.ticket_key_file = tickets;
    cfg.cookie_secret_file = cookies;
    cfg.on_event = on_event;
    sn_workers *w = sn_workers_start(&cfg);
    /* The workers built their own TLS contexts: the key and certificate are no longer needed. */
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    if (!w) {
        fprintf(stderr, "cannot start: %s\n", sn_last_error_message());
        return 1;
    }
    printf("listening on udp port %d with %d workers\n", sn_workers_get_port(w),
           sn_workers_count(w));
    fflush(stdout);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    time_t started = time(NULL), last = started;
    while (!stop && !sn_workers_stopped(w) && (!seconds || time(NULL) - started < seconds)) {
        sn_workers_wait(w, 200);
        if (time(NULL) - last >= 5) {
            last = time(NULL);
            char news[64];
            int n = snprintf(news, sizeof news, "server: %d online", atomic_load(&online));
            sn_workers_broadcast(w, news, (size_t)n); /* from this (non-worker) thread */
        }
    }
    if (*sn_workers_get_error(w)) fprintf(stderr, "stopped: %s\n", sn_workers_get_error(w));
    for (int i = 0; i < sn_workers_count(w); i++) {
        sn_workers_stats st;
        sn_workers_get_stats(w, i, &st);
        printf("worker %d: %llu handshakes, %llu packets in, %.3f s CPU\n", i,
               (unsigned long long)st.host.handshakes_completed,
               (unsigned long long)st.host.packets_received, (double)st.cpu_ns / 1e9);
    }
    sn_workers_free(w); /* stops every worker: close_notify to every client */
    return 0;
}
