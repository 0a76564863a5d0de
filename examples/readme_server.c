#include <sealnet/sealnet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL);
    sn_tls_options *opts = sn_tls_options_server(key, cert);
    sn_udp_server *udp = sn_udp_server_new();
    sn_dtls_server *dtls = sn_dtls_server_new();
    sn_dtls_peer *peers[256];
    int n = 0;
    if (!opts || sn_udp_server_listen(udp, argc > 1 ? atoi(argv[1]) : 4242, "*") != SN_OK ||
        sn_dtls_server_setup(dtls, opts) != SN_OK)
        return fprintf(stderr, "%s\n", sn_last_error_message()), 1;
    printf("listening on udp port %d\n", sn_udp_server_get_local_port(udp)), fflush(stdout);
    for (;;) { /* one frame */
        poll(&(struct pollfd){sn_udp_server_get_fd(udp), POLLIN, 0}, 1, 10);
        sn_udp_server_poll(udp);
        while (sn_udp_server_is_connection_available(udp)) {
            sn_dtls_peer *p =
                sn_dtls_server_take_connection(dtls, sn_udp_server_take_connection(udp));
            if (sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING && n < 256)
                peers[n++] = p; /* the others only got a cookie: skip them, as in Godot */
            else
                sn_dtls_peer_free(p);
        }
        for (int i = 0; i < n; i++) {
            char buf[1500];
            size_t len;
            sn_dtls_peer_poll(peers[i]);
            while (sn_dtls_peer_get_packet(peers[i], buf, sizeof buf, &len) == SN_OK)
                sn_dtls_peer_put_packet(peers[i], "Hello DTLS client", 17);
            if (sn_dtls_peer_get_status(peers[i]) > SN_DTLS_STATUS_CONNECTED ||
                sn_dtls_peer_get_status(peers[i]) == SN_DTLS_STATUS_DISCONNECTED)
                sn_dtls_peer_free(peers[i]), peers[i--] = peers[--n];
        }
    }
}
