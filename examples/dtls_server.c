/* The Godot DTLS server seed, in C: listen on UDP, hand each new connection to the DTLS server,
 * skip the ones that are not handshaking (the cookie round trip), poll every peer, and answer
 * every packet with "Hello DTLS client".
 *
 *   dtls_server [--port N] [--key FILE --cert FILE] [--save-cert FILE] [--seconds N]
 *
 * Without --key/--cert it generates a P-256 key and a self-signed certificate for "localhost";
 * --save-cert writes that certificate so a client can trust it (dtls_client --ca FILE). */
#include <sealnet/sealnet.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEERS 64

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig, stop = 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: dtls_server [--port N] [--key FILE --cert FILE] [--save-cert FILE] "
                    "[--seconds N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int port = 4242, seconds = 0;
    const char *key_path = NULL, *cert_path = NULL, *save_cert = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key_path = argv[++i];
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            cert_path = argv[++i];
        else if (!strcmp(argv[i], "--save-cert") && i + 1 < argc)
            save_cert = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atoi(argv[++i]);
        else
            return usage();
    }
    if (!key_path != !cert_path) return usage();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    sn_crypto_key *key = sn_crypto_key_new();
    sn_x509_cert *cert = NULL;
    if (key_path) {
        cert = sn_x509_cert_new();
        if (sn_crypto_key_load(key, key_path, false) != SN_OK ||
            sn_x509_cert_load(cert, cert_path) != SN_OK) {
            fprintf(stderr, "dtls_server: %s\n", sn_last_error_message());
            return 1;
        }
    } else {
        sn_crypto_key_free(key);
        key = sn_crypto_generate_ec("P-256");
        cert = key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost,O=sealnet,C=IT",
                                                                NULL, NULL)
                   : NULL;
        if (!cert) {
            fprintf(stderr, "dtls_server: %s\n", sn_last_error_message());
            return 1;
        }
        if (save_cert && sn_x509_cert_save(cert, save_cert) != SN_OK) {
            fprintf(stderr, "dtls_server: %s\n", sn_last_error_message());
            return 1;
        }
    }
    sn_tls_options *options = sn_tls_options_server(key, cert);
    sn_crypto_key_free(key); /* the options keep their own references */
    sn_x509_cert_free(cert);

    sn_udp_server *udp = sn_udp_server_new();
    sn_dtls_server *dtls = sn_dtls_server_new();
    if (!options || sn_udp_server_listen(udp, port, "127.0.0.1") != SN_OK ||
        sn_dtls_server_setup(dtls, options) != SN_OK) {
        fprintf(stderr, "dtls_server: %s\n", sn_last_error_message());
        return 1;
    }
    printf("Listening on port %d\n", sn_udp_server_get_local_port(udp));
    fflush(stdout);

    sn_dtls_peer *peers[MAX_PEERS];
    int npeers = 0;
    uint64_t deadline = seconds > 0 ? sn_dtls_now_ms() + (uint64_t)seconds * 1000u : 0;
    while (!stop && (!deadline || sn_dtls_now_ms() < deadline)) {
        /* Sleep until the socket has something or a peer's timer is due. */
        int wait_ms = 100;
        for (int i = 0; i < npeers; i++) {
            int t = sn_dtls_peer_next_timeout_ms(peers[i]);
            if (t >= 0 && t < wait_ms) wait_ms = t;
        }
        struct pollfd pfd = {sn_udp_server_get_fd(udp), POLLIN, 0};
        poll(&pfd, 1, wait_ms);

        sn_udp_server_poll(udp);
        while (sn_udp_server_is_connection_available(udp)) {
            sn_dtls_peer *peer =
                sn_dtls_server_take_connection(dtls, sn_udp_server_take_connection(udp));
            if (sn_dtls_peer_get_status(peer) != SN_DTLS_STATUS_HANDSHAKING ||
                npeers == MAX_PEERS) {
                sn_dtls_peer_free(peer); /* normal: half of the connections are cookie requests */
                continue;
            }
            printf("Peer connected!\n");
            peers[npeers++] = peer;
        }
        for (int i = 0; i < npeers; i++) {
            sn_dtls_peer *p = peers[i];
            sn_dtls_peer_poll(p);
            sn_dtls_status st = sn_dtls_peer_get_status(p);
            if (st == SN_DTLS_STATUS_CONNECTED) {
                char buf[2048];
                size_t len;
                while (sn_dtls_peer_get_packet(p, buf, sizeof buf - 1, &len) == SN_OK) {
                    buf[len] = '\0';
                    printf("Peer %s:%d sent: %s\n", sn_dtls_peer_get_packet_ip(p),
                           sn_dtls_peer_get_packet_port(p), buf);
                    static const char hello[] = "Hello DTLS client";
                    sn_dtls_peer_put_packet(p, hello, sizeof hello - 1);
                }
            } else if (st != SN_DTLS_STATUS_HANDSHAKING) {
                printf("Peer %s:%d gone: %s\n", sn_dtls_peer_get_packet_ip(p),
                       sn_dtls_peer_get_packet_port(p), sn_dtls_peer_get_error_message(p));
                sn_dtls_peer_free(p);
                peers[i--] = peers[--npeers];
            }
        }
        fflush(stdout);
    }
    for (int i = 0; i < npeers; i++)
        sn_dtls_peer_free(peers[i]); /* close_notify to each */
    sn_dtls_server_free(dtls);
    sn_udp_server_free(udp);
    sn_tls_options_free(options);
    return 0;
}
