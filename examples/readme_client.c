#include <sealnet/sealnet.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    sn_host *host = sn_host_new(); /* client-only: the host runs handshake, timers, keepalives */
    sn_tls_options *opts = sn_tls_options_client_unsafe(NULL); /* see docs: verify in real life */
    int port = argc > 1 ? atoi(argv[1]) : 4242;
    int rc = sn_host_connect(host, "127.0.0.1", port, "localhost", opts) ? 1 : 2;
    if (rc == 2) fprintf(stderr, "%s\n", sn_last_error_message());
    for (sn_host_event ev; rc == 1 && sn_host_service(host, &ev, 10000) > 0;) {
        if (ev.type == SN_HOST_EVENT_CONNECT)
            sn_host_peer_send(ev.peer, "The answer is... 42!", 20);
        if (ev.type == SN_HOST_EVENT_RECEIVE) rc = 0, printf("%.*s\n", (int)ev.len, ev.data);
        if (ev.type == SN_HOST_EVENT_DISCONNECT) rc = 2, fprintf(stderr, "%s\n", ev.message);
    }
    sn_host_free(host); /* sends close_notify */
    sn_tls_options_free(opts);
    return rc;
}
