/* The seed DTLS server loop (test_dtls_server.h). */
#include "test_dtls_server.h"

int sn_test_dtls_server_step(sn_udp_server *udp, sn_dtls_server *dtls, sn_dtls_peer **peers, int *n,
                             int cap, sn_test_drop_fn on_drop, void *user)
{
    int kept = 0;
    sn_udp_server_poll(udp);
    while (sn_udp_server_is_connection_available(udp)) {
        sn_dtls_peer *p = sn_dtls_server_take_connection(dtls, sn_udp_server_take_connection(udp));
        if (!p) continue;
        if (sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING && *n < cap) {
            peers[(*n)++] = p;
            kept++;
            continue;
        }
        if (on_drop) on_drop(p, user);
        sn_dtls_peer_free(p);
    }
    for (int i = 0; i < *n; i++)
        sn_dtls_peer_poll(peers[i]);
    return kept;
}
