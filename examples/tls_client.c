/* The Godot TLS client seed, in C: connect TCP, upgrade it with connect_to_stream, print
 * "Connected to host." once connected, print every chunk of data received and answer "ack";
 * on a disconnect or an error print the reason and reconnect 3 s later.
 *
 *   tls_client HOST PORT [--ca FILE | --insecure] [--name NAME] [--retries N]
 *
 * --ca trusts the certificates in FILE (default: the system CAs); --insecure verifies nothing;
 * --name is the name the server's certificate must carry (default HOST); --retries bounds the
 * reconnections (default: forever, as the seed). Exit status: 0 when the last connection ended
 * normally, 1 after an error. Ctrl-C closes the connection with close_notify. */
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
    fprintf(stderr, "usage: tls_client HOST PORT [--ca FILE | --insecure] [--name NAME] "
                    "[--retries N]\n");
    return 2;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Starts a connection: TCP connect (it may still be in progress) upgraded to TLS right away. */
static sn_tls_stream *connect_tls(const char *host, int port, const char *name,
                                  const sn_tls_options *options)
{
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    sn_tls_stream *tls = sn_tls_stream_new();
    if (!tcp || !tls || sn_tcp_peer_connect_to_host(tcp, host, port) != SN_OK) {
        printf("Error: %s\n", sn_last_error_message());
        sn_tcp_peer_free(tcp);
        sn_tls_stream_free(tls);
        return NULL;
    }
    if (sn_tls_stream_connect_to_stream(tls, tcp, name, options) != SN_OK) { /* takes tcp */
        printf("Error: %s\n", sn_last_error_message());
        sn_tls_stream_free(tls);
        return NULL;
    }
    return tls;
}

int main(int argc, char **argv)
{
    const char *host = NULL, *ca = NULL, *name = NULL;
    int port = 0, retries = -1;
    bool insecure = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ca") && i + 1 < argc)
            ca = argv[++i];
        else if (!strcmp(argv[i], "--insecure"))
            insecure = true;
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--retries") && i + 1 < argc)
            retries = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !host)
            host = argv[i];
        else if (argv[i][0] != '-' && !port)
            port = atoi(argv[i]);
        else
            return usage();
    }
    if (!host || port <= 0 || (ca && insecure)) return usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    sn_x509_cert *trusted = NULL;
    if (ca) {
        trusted = sn_x509_cert_new();
        if (sn_x509_cert_load(trusted, ca) != SN_OK) {
            fprintf(stderr, "tls_client: %s\n", sn_last_error_message());
            return 1;
        }
    }
    /* NULL options: verify against the system CAs. */
    sn_tls_options *options = insecure  ? sn_tls_options_client_unsafe(NULL)
                              : trusted ? sn_tls_options_client(trusted, NULL)
                                        : NULL;
    sn_x509_cert_free(trusted);
    if ((insecure || ca) && !options) {
        fprintf(stderr, "tls_client: %s\n", sn_last_error_message());
        return 1;
    }

    int exit_code = 0;
    bool connecting = true; /* a connection is to be started (now or at reconnect_at) */
    uint64_t reconnect_at = 0;
    sn_tls_stream *tls = NULL;
    sn_tls_status last = SN_TLS_STATUS_DISCONNECTED;
    while (!stop) {
        if (!tls && connecting) {
            if (now_ms() < reconnect_at) {
                poll(NULL, 0, 50);
                continue;
            }
            connecting = false;
            last = SN_TLS_STATUS_HANDSHAKING;
            tls = connect_tls(host, port, name ? name : host, options);
            if (!tls) exit_code = 1; /* reported; retried below */
        }
        if (tls) {
            struct pollfd pfd = {sn_tcp_peer_get_fd(sn_tls_stream_get_stream(tls)), POLLIN, 0};
            poll(&pfd, pfd.fd >= 0 ? 1 : 0, 50);
            sn_tls_stream_poll(tls);
            sn_tls_status st = sn_tls_stream_get_status(tls);
            if (st == SN_TLS_STATUS_CONNECTED && last != SN_TLS_STATUS_CONNECTED)
                printf("Connected to host.\n");
            last = st;
            /* Data, also what arrived just before a close. */
            char buf[4096];
            size_t n = 0;
            while (sn_tls_stream_get_partial_data(tls, buf, sizeof buf, &n) == SN_OK && n > 0) {
                printf("Received: %.*s%s", (int)n, buf, buf[n - 1] == '\n' ? "" : "\n");
                if (sn_tls_stream_get_status(tls) == SN_TLS_STATUS_CONNECTED)
                    sn_tls_stream_put_data(tls, "ack", 3);
            }
            st = sn_tls_stream_get_status(tls);
            if (st == SN_TLS_STATUS_CONNECTED || st == SN_TLS_STATUS_HANDSHAKING) continue;
            const char *why = sn_tls_stream_get_error_message(tls);
            if (st == SN_TLS_STATUS_DISCONNECTED) {
                printf("Disconnected: %s\n", why[0] ? why : "the server closed the connection");
                exit_code = 0;
            } else {
                printf("Error%s: %s\n",
                       st == SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH ? " (hostname mismatch)" : "",
                       why);
                exit_code = 1;
            }
            sn_tls_stream_free(tls);
            tls = NULL;
        }
        /* The connection ended (or never started): reconnect in 3 s, as the seed does. */
        if (retries == 0) break;
        if (retries > 0) retries--;
        printf("Reconnecting in 3 s...\n");
        connecting = true;
        reconnect_at = now_ms() + 3000;
    }
    sn_tls_stream_free(tls); /* close_notify when still connected */
    sn_tls_options_free(options);
    return exit_code;
}
