/* A TLS server in the Godot style: a TCPServer whose connections are upgraded with
 * accept_stream, every client polled from one loop. Greets each client with
 * "Hello from the server!\n" once its handshake has finished and logs what it sends; serves
 * several clients at once and drops those that leave.
 *
 *   tls_server [--port N] [--key FILE --cert FILE] [--max-clients N] [--seconds N]
 *              [--save-cert FILE]
 *
 * --port 0 picks a free port (printed). Without --key/--cert a P-256 key and a self-signed
 * certificate for CN=localhost are generated (--save-cert writes it out for clients to trust).
 * --max-clients refuses connections beyond N at once (default 64); --seconds stops after N s
 * (default: run until Ctrl-C). Stopping closes every client with close_notify. */
#include <sealnet/sealnet.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: tls_server [--port N] [--key FILE --cert FILE] [--max-clients N] "
                    "[--seconds N] [--save-cert FILE]\n");
    return 2;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef struct client {
    int id;
    sn_tls_stream *tls;
    bool greeted;
    char from[80];
} client;

/* Key and certificate: loaded, or generated on the spot. */
static sn_tls_options *server_options(const char *key_path, const char *cert_path,
                                      const char *save_cert)
{
    sn_crypto_key *key = NULL;
    sn_x509_cert *cert = NULL;
    if (key_path) {
        key = sn_crypto_key_new();
        cert = sn_x509_cert_new();
        if (sn_crypto_key_load(key, key_path, false) != SN_OK ||
            sn_x509_cert_load(cert, cert_path) != SN_OK) {
            fprintf(stderr, "tls_server: %s\n", sn_last_error_message());
            goto out;
        }
    } else {
        key = sn_crypto_generate_ec(NULL);
        cert = key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost,O=sealnet", NULL,
                                                                NULL)
                   : NULL;
        if (!cert) {
            fprintf(stderr, "tls_server: cannot generate a certificate: %s\n",
                    sn_last_error_message());
            goto out;
        }
        printf("Generated a self-signed certificate for CN=localhost\n");
    }
    if (save_cert && sn_x509_cert_save(cert, save_cert) != SN_OK) {
        fprintf(stderr, "tls_server: %s\n", sn_last_error_message());
        goto out;
    }
    sn_tls_options *options = sn_tls_options_server(key, cert); /* keeps its own references */
    if (!options) fprintf(stderr, "tls_server: %s\n", sn_last_error_message());
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    return options;
out:
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *key_path = NULL, *cert_path = NULL, *save_cert = NULL;
    int port = 4443, max_clients = 64, seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key_path = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert_path = argv[++i];
        else if (!strcmp(argv[i], "--max-clients") && i + 1 < argc)
            max_clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--save-cert") && i + 1 < argc)
            save_cert = argv[++i];
        else
            return usage();
    }
    if (!key_path != !cert_path || max_clients < 1) return usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    sn_tls_options *options = server_options(key_path, cert_path, save_cert);
    if (!options) return 1;
    sn_tcp_server *server = sn_tcp_server_new();
    if (sn_tcp_server_listen(server, port, "*") != SN_OK) {
        fprintf(stderr, "tls_server: %s\n", sn_last_error_message());
        sn_tcp_server_free(server);
        sn_tls_options_free(options);
        return 1;
    }
    printf("Listening on port %d\n", sn_tcp_server_get_local_port(server));

    client *clients = calloc((size_t)max_clients, sizeof *clients);
    struct pollfd *fds = calloc((size_t)max_clients + 1, sizeof *fds);
    int count = 0, next_id = 1;
    uint64_t end = seconds > 0 ? now_ms() + (uint64_t)seconds * 1000u : 0;
    while (!stop && (!end || now_ms() < end)) {
        /* Sleep until a socket has something (or 50 ms for the handshake timers). */
        fds[0] = (struct pollfd){sn_tcp_server_get_fd(server), POLLIN, 0};
        for (int i = 0; i < count; i++)
            fds[i + 1] = (struct pollfd){
                sn_tcp_peer_get_fd(sn_tls_stream_get_stream(clients[i].tls)), POLLIN, 0};
        poll(fds, (nfds_t)count + 1, 50);

        while (sn_tcp_server_is_connection_available(server)) {
            sn_tcp_peer *tcp = sn_tcp_server_take_connection(server);
            if (!tcp) break;
            if (count == max_clients) {
                printf("Refusing %s:%d: %d clients already\n", sn_tcp_peer_get_connected_host(tcp),
                       sn_tcp_peer_get_connected_port(tcp), max_clients);
                sn_tcp_peer_free(tcp);
                continue;
            }
            client *c = &clients[count];
            memset(c, 0, sizeof *c);
            c->id = next_id++;
            snprintf(c->from, sizeof c->from, "%s:%d", sn_tcp_peer_get_connected_host(tcp),
                     sn_tcp_peer_get_connected_port(tcp));
            c->tls = sn_tls_stream_new();
            if (!c->tls || sn_tls_stream_accept_stream(c->tls, tcp, options) != SN_OK) {
                printf("Client %d from %s: %s\n", c->id, c->from, sn_last_error_message());
                sn_tls_stream_free(c->tls);
                continue;
            }
            count++;
        }

        for (int i = 0; i < count; i++) {
            client *c = &clients[i];
            sn_tls_stream_poll(c->tls);
            sn_tls_status st = sn_tls_stream_get_status(c->tls);
            if (st == SN_TLS_STATUS_CONNECTED && !c->greeted) {
                printf("Client %d connected from %s (%s)\n", c->id, c->from,
                       sn_tls_stream_get_protocol_description(c->tls));
                static const char hello[] = "Hello from the server!\n";
                sn_tls_stream_put_data(c->tls, hello, sizeof hello - 1);
                c->greeted = true;
            }
            char buf[4096];
            size_t n = 0;
            while (sn_tls_stream_get_partial_data(c->tls, buf, sizeof buf, &n) == SN_OK && n > 0)
                printf("Client %d: %.*s%s", c->id, (int)n, buf, buf[n - 1] == '\n' ? "" : "\n");
            st = sn_tls_stream_get_status(c->tls);
            if (st == SN_TLS_STATUS_CONNECTED || st == SN_TLS_STATUS_HANDSHAKING) continue;
            const char *why = sn_tls_stream_get_error_message(c->tls);
            if (st == SN_TLS_STATUS_DISCONNECTED)
                printf("Client %d disconnected%s%s\n", c->id, why[0] ? ": " : "", why);
            else
                printf("Client %d error: %s\n", c->id, why);
            sn_tls_stream_free(c->tls);
            clients[i--] = clients[--count]; /* drop it; look at the one moved here */
        }
    }
    for (int i = 0; i < count; i++)
        sn_tls_stream_free(clients[i].tls); /* close_notify */
    printf("Server stopped (%d client%s closed)\n", count, count == 1 ? "" : "s");
    free(clients);
    free(fds);
    sn_tcp_server_free(server);
    sn_tls_options_free(options);
    return 0;
}
