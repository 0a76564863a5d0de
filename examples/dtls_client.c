/* The Godot DTLS client seed, in C: connect a UDP peer, start DTLS over it, poll every frame, and
 * once connected send "The answer is... 42!" and print what comes back.
 *
 *   dtls_client [HOST] [PORT] [--ca FILE | --insecure] [--name NAME] [--timeout SECONDS]
 *
 * Defaults: 127.0.0.1 4242, verification against the system CAs, name = HOST. */
#include <sealnet/sealnet.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: dtls_client [HOST] [PORT] [--ca FILE | --insecure] [--name NAME] "
                    "[--timeout SECONDS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *ca = NULL, *name = NULL;
    int port = 4242, timeout_s = 10, positional = 0;
    bool insecure = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ca") && i + 1 < argc)
            ca = argv[++i];
        else if (!strcmp(argv[i], "--insecure"))
            insecure = true;
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_s = atoi(argv[++i]);
        else if (argv[i][0] != '-' && positional == 0)
            host = argv[i], positional++;
        else if (argv[i][0] != '-' && positional == 1)
            port = atoi(argv[i]), positional++;
        else
            return usage();
    }

    sn_x509_cert *trusted = NULL;
    if (ca) {
        trusted = sn_x509_cert_new();
        if (sn_x509_cert_load(trusted, ca) != SN_OK) {
            fprintf(stderr, "dtls_client: %s\n", sn_last_error_message());
            return 1;
        }
    }
    sn_tls_options *options =
        insecure ? sn_tls_options_client_unsafe(NULL) : sn_tls_options_client(trusted, NULL);
    sn_x509_cert_free(trusted);

    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *dtls = sn_dtls_peer_new();
    if (!options || sn_udp_peer_connect_to_host(udp, host, port) != SN_OK ||
        sn_dtls_peer_connect_to_peer(dtls, udp, name ? name : host, options) != SN_OK) {
        fprintf(stderr, "dtls_client: %s\n", sn_last_error_message());
        return 1;
    }
    sn_tls_options_free(options);

    bool sent = false;
    int status = 1;
    uint64_t deadline = sn_dtls_now_ms() + (uint64_t)timeout_s * 1000u;
    while (sn_dtls_now_ms() < deadline) {
        int wait_ms = sn_dtls_peer_next_timeout_ms(dtls);
        struct pollfd pfd = {sn_dtls_peer_get_fd(dtls), POLLIN, 0};
        poll(&pfd, pfd.fd >= 0 ? 1 : 0, wait_ms < 0 || wait_ms > 100 ? 100 : wait_ms);
        sn_dtls_peer_poll(dtls);
        sn_dtls_status st = sn_dtls_peer_get_status(dtls);
        if (st == SN_DTLS_STATUS_CONNECTED && !sent) {
            printf("Connected (%s)\n", sn_dtls_peer_get_cipher(dtls));
            static const char answer[] = "The answer is... 42!";
            sn_dtls_peer_put_packet(dtls, answer, sizeof answer - 1);
            sent = true;
        }
        char buf[2048];
        size_t len;
        if (sn_dtls_peer_get_packet(dtls, buf, sizeof buf - 1, &len) == SN_OK) {
            buf[len] = '\0';
            printf("Connected: %s\n", buf);
            status = 0;
            break;
        }
        if (st != SN_DTLS_STATUS_CONNECTED && st != SN_DTLS_STATUS_HANDSHAKING) {
            fprintf(stderr, "dtls_client: %s (status %d)\n", sn_dtls_peer_get_error_message(dtls),
                    (int)st);
            status = 1;
            break;
        }
    }
    if (status && sn_dtls_now_ms() >= deadline)
        fprintf(stderr, "dtls_client: no answer within %d s\n", timeout_s);
    sn_dtls_peer_free(dtls); /* close_notify */
    return status;
}
