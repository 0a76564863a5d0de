#include <sealnet/sealnet.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL);
    sn_tls_options *opts = sn_tls_options_server(key, cert);
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    cfg.port = argc > 1 ? atoi(argv[1]) : 4242;
    cfg.server_options = opts;
    cfg.keepalive_interval_ms = 0; /* plain DTLS clients (Godot's) do not answer pings */
    sn_host *host = opts ? sn_host_create(&cfg) : NULL;
    if (!host) return fprintf(stderr, "%s\n", sn_last_error_message()), 1;
    printf("listening on udp port %d\n", sn_host_get_port(host)), fflush(stdout);
    for (sn_host_event ev;;) /* peers, cookies, idle timeouts: the host's job */
        if (sn_host_service(host, &ev, 1000) > 0 && ev.type == SN_HOST_EVENT_RECEIVE)
            sn_host_peer_send(ev.peer, "Hello DTLS client", 17);
}
