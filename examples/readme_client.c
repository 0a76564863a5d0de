#include <sealnet/sealnet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *dtls = sn_dtls_peer_new();
    sn_tls_options *opts = sn_tls_options_client_unsafe(NULL); /* see docs: verify in real life */
    if (sn_udp_peer_connect_to_host(udp, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 4242) != SN_OK ||
        sn_dtls_peer_connect_to_peer(dtls, udp, "localhost", opts) != SN_OK)
        return fprintf(stderr, "%s\n", sn_last_error_message()), 1;
    char buf[1500];
    size_t len;
    bool sent = false;
    while (sn_dtls_peer_get_packet(dtls, buf, sizeof buf, &len) != SN_OK) { /* one frame */
        poll(&(struct pollfd){sn_dtls_peer_get_fd(dtls), POLLIN, 0}, 1, 10);
        sn_dtls_peer_poll(dtls);
        sn_dtls_status st = sn_dtls_peer_get_status(dtls);
        if (st != SN_DTLS_STATUS_HANDSHAKING && st != SN_DTLS_STATUS_CONNECTED)
            return fprintf(stderr, "%s\n", sn_dtls_peer_get_error_message(dtls)), 1;
        if (st == SN_DTLS_STATUS_CONNECTED && !sent)
            sent = sn_dtls_peer_put_packet(dtls, "The answer is... 42!", 20) == SN_OK;
    }
    printf("%.*s\n", (int)len, buf);
    sn_dtls_peer_free(dtls);
    sn_tls_options_free(opts);
    return 0;
}
