/* sealnet dtls-server / dtls-client: Godot's classic DTLS loop as a command. */
#include "cli.h"
#include "metrics.h"

#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HELLO_REPLY "Hello DTLS client"

/* ---- server --------------------------------------------------------------------------- */

static void server_help(void)
{
    printf("usage: sealnet dtls-server [--port N] [--bind ADDR] [--key FILE --cert FILE]\n"
           "                           [--save-cert FILE] [--echo | --hello] [--idle SEC]\n"
           "                           [--max-clients N] [--max-half-open N] [--seconds N]\n"
           "                           [--host] [--metrics ADDR:PORT] [--workers N|auto]\n"
           "                           [--ticket-key-file FILE] [--cookie-secret-file FILE]\n"
           "                           [--force] [--keylog FILE] [--trace]\n"
           "\n"
           "Runs a DTLS 1.2 server with Godot's loop: a UDP server hands each new address to the\n"
           "DTLS server (stateless cookie exchange), peers not HANDSHAKING are skipped, and every\n"
           "peer is polled. Without --key/--cert it generates an EC P-256 key and a self-signed\n"
           "certificate for CN=localhost and prints its SHA-256 fingerprint.\n"
           "\n"
           "  --port N       UDP port to listen on (default 4242; 0: any free port)\n"
           "  --bind ADDR    local address (default '*': every address, IPv6 dual-stack)\n"
           "  --key FILE     PEM private key (with --cert)\n"
           "  --cert FILE    PEM certificate or chain, leaf first (with --key)\n"
           "  --hello        answer every packet with \"" HELLO_REPLY "\" (default)\n"
           "  --echo         send every packet back unchanged\n"
           "  --idle SEC     disconnect a client silent for SEC seconds (default 60; 0: never)\n"
           "  --max-clients N  peers at once, handshaking or connected (default 4096); beyond\n"
           "                 it new handshakes are refused\n"
           "  --max-half-open N  handshakes in progress at once (default 256); when full, a new\n"
           "                 cookie-proven client evicts the oldest (classic loop), or waits\n"
           "                 for a slot (--host)\n"
           "  --host         run on the host API (sn_host: events, idle timeout) instead of\n"
           "                 the classic loop\n"
           "  --metrics A:P  serve the host's counters in the Prometheus format at\n"
           "                 http://A:P/metrics (implies --host); kill -USR1 prints them\n"
           "  --save-cert F  write the server's certificate to F (PEM), for clients' --ca\n"
           "  --force        let --save-cert replace an existing file\n"
           "  --keylog FILE  append session secrets to FILE (NSS key log format, for Wireshark;\n"
           "                 default: $SSLKEYLOGFILE when set)\n"
           "  --trace        print every handshake message sent and received\n"
           "  --seconds N    stop after N seconds (default 0: run until SIGINT/SIGTERM)\n"
           "  --workers N    N threads on one port, one SO_REUSEPORT socket and TLS context\n"
           "                 each (host API); 'auto': one per CPU (default 1)\n"
           "  --ticket-key-file FILE   session-ticket keys (resumption), shared by every\n"
           "                 server given the same file; created with a fresh key when missing\n"
           "  --cookie-secret-file FILE  cookie secret shared likewise (docs/scaling.md)\n"
           "\n"
           "Prints \"listening on udp port N\", then one line per connect, disconnect (with the\n"
           "reason) and packet; on a terminal also a status line every second.\n");
}

/* Packets read from one peer per loop turn, so that a flooding peer cannot starve the others
 * or keep the loop from seeing a signal. */
#define PACKET_BUDGET 64
/* Longest sleep of the classic loop (the resolution of --seconds); signals wake it at once. */
#define LOOP_WAIT_MS 50
/* Quiet peers are looked at (--idle) this often, not every turn. */
#define SWEEP_MS 200

typedef struct srv_peer {
    sn_dtls_peer *dtls;
    sn_dtls_status last;
    uint64_t started_ms; /* when its cookie-proven handshake began */
    char who[80];
} srv_peer;

/* The same server on sn_host: the host owns the sockets and peers and hands out events. */
static void render_host(metrics_text *t, void *host)
{
    sn_host_stats st;
    sn_host_get_stats(host, &st);
    metrics_host_stats(t, &st);
}

static int run_host_server(const sn_tls_options *o, const cli_server_args *a,
                           const uint8_t *cookie_secret)
{
    const long port = a->port, idle = a->idle, seconds = a->seconds;
    const bool echo = a->echo;
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    cfg.cookie_secret = cookie_secret;
    cfg.bind_address = a->bind;
    cfg.port = (int)port;
    cfg.server_options = o;
    cfg.idle_timeout_ms = (int)(idle * 1000);
    if (a->max_clients) cfg.max_peers = (int)a->max_clients;
    if (a->max_half_open) cfg.max_half_open = (int)a->max_half_open;
    /* Plain DTLS clients (sealnet dtls-client, Godot) do not answer the host's pings: no
     * keepalives, so that they see only application packets. */
    cfg.keepalive_interval_ms = 0;
    sn_host *h = sn_host_create(&cfg);
    if (!h) return cli_fail("cannot listen on udp port %ld: %s", port, sn_last_error_message());
    cli_install_signals();
    printf("listening on udp port %d\n", sn_host_get_port(h));
    metrics *m = metrics_start(a->metrics, render_host, h);
    if (!m) {
        sn_host_free(h);
        return CLI_FAIL;
    }
    printf("mode: %s, host API\n", echo ? "echo" : "hello (answers \"" HELLO_REPLY "\")");
    fflush(stdout);

    bool tty = isatty(1);
    uint64_t deadline = seconds ? cli_now_ms() + (uint64_t)seconds * 1000u : 0;
    uint64_t next_status = cli_now_ms() + 1000;
    sn_host_stats last;
    sn_host_get_stats(h, &last);
    int rc = CLI_OK;
    while (!cli_stopping() && (!deadline || cli_now_ms() < deadline)) {
        sn_host_event ev;
        int r = sn_host_service(h, &ev, 50);
        metrics_poll(m);
        if (r < 0) {
            rc = cli_fail("host failed: %s", sn_last_error_message());
            break;
        }
        if (r > 0) {
            char who[80];
            cli_format_addr(sn_host_peer_get_address(ev.peer), sn_host_peer_get_port(ev.peer), who,
                            sizeof who);
            switch (ev.type) {
            case SN_HOST_EVENT_CONNECT:
                cli_log("%s connected (%s)", who, sn_host_peer_get_cipher(ev.peer));
                break;
            case SN_HOST_EVENT_RECEIVE: {
                printf("[%8.3f] %s says: ", cli_elapsed(), who);
                cli_print_payload(stdout, ev.data, ev.len);
                sn_err e = echo ? sn_host_peer_send(ev.peer, ev.data, ev.len)
                                : sn_host_peer_send(ev.peer, HELLO_REPLY, strlen(HELLO_REPLY));
                if (e != SN_OK) cli_log("%s: reply not sent: %s", who, sn_last_error_message());
                break;
            }
            case SN_HOST_EVENT_DISCONNECT:
                if (ev.reason == SN_HOST_DISCONNECT_TIMEOUT)
                    cli_log("%s disconnected: silent for %ld s (--idle)", who, idle);
                else
                    cli_log("%s disconnected: %s%s%s", who,
                            ev.reason == SN_HOST_DISCONNECT_CLOSED
                                ? "closed by the client (close_notify)"
                                : sn_host_disconnect_reason_string(ev.reason),
                            *ev.message && ev.reason != SN_HOST_DISCONNECT_CLOSED ? ": " : "",
                            ev.reason != SN_HOST_DISCONNECT_CLOSED ? ev.message : "");
                break;
            default:
                break;
            }
        }
        uint64_t now = cli_now_ms();
        if (now >= next_status) {
            sn_host_stats st;
            sn_host_get_stats(h, &st);
            if (tty)
                cli_log("status: %llu peers (%llu handshaking), %llu packets/s in, %llu "
                        "packets/s out, %llu handshakes/s, %llu cookies sent, %llu failed "
                        "handshakes, %llu idle timeouts",
                        (unsigned long long)st.peers_connected_now,
                        (unsigned long long)st.peers_handshaking_now,
                        (unsigned long long)(st.packets_received - last.packets_received),
                        (unsigned long long)(st.packets_sent - last.packets_sent),
                        (unsigned long long)(st.handshakes_completed - last.handshakes_completed),
                        (unsigned long long)st.cookies_sent,
                        (unsigned long long)st.handshakes_failed,
                        (unsigned long long)st.idle_timeouts);
            last = st;
            next_status = now + 1000;
        }
    }
    sn_host_stats st;
    sn_host_get_stats(h, &st);
    cli_log("stopping: %llu handshakes, %llu packets in, %llu packets out",
            (unsigned long long)st.handshakes_completed, (unsigned long long)st.packets_received,
            (unsigned long long)st.packets_sent);
    metrics_stop(m);
    sn_host_free(h); /* close_notify to every connected client */
    return rc;
}

int cmd_dtls_server(int argc, char **argv)
{
    cli_server_args a;
    int rc = cli_parse_server_args(argc, argv, true, 4242, server_help, &a);
    if (rc != CLI_CONTINUE) return rc;
    const long port = a.port, seconds = a.seconds, idle = a.idle;
    const char *bind = a.bind;
    const bool echo = a.echo;
    /* The host's defaults are the classic loop's too: one source for each. */
    sn_host_config defaults;
    sn_host_default_config(&defaults);
    const size_t max_clients = (size_t)(a.max_clients ? a.max_clients : defaults.max_peers);
    const size_t max_half_open =
        (size_t)(a.max_half_open ? a.max_half_open : defaults.max_half_open);

    sn_crypto_key *key;
    sn_x509_cert *cert;
    rc = cli_server_credentials(a.key_path, a.cert_path, a.save_cert, &key, &cert);
    if (rc != CLI_OK) return rc;
    if (a.workers != 1) { /* --workers: sn_workers, each with its own TLS context */
        rc = cli_scale_server(&a, key, cert);
        sn_crypto_key_free(key);
        sn_x509_cert_free(cert);
        return rc;
    }
    sn_tls_options *opts_srv = cli_server_options(&a, key, cert);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    if (!opts_srv) return CLI_FAIL;
    uint8_t secret[32];
    if ((a.ticket_key_file && !cli_load_ticket_keys(opts_srv, a.ticket_key_file)) ||
        (a.cookie_secret_file && !cli_load_cookie_secret(a.cookie_secret_file, secret))) {
        sn_tls_options_free(opts_srv);
        return CLI_FAIL;
    }
    const uint8_t *shared_secret = a.cookie_secret_file ? secret : NULL;
    if (a.use_host) {
        rc = run_host_server(opts_srv, &a, shared_secret);
        sn_tls_options_free(opts_srv);
        return rc;
    }

    rc = CLI_FAIL;
    srv_peer *peers = NULL;
    size_t npeers = 0, cap = 0;
    sn_udp_server *udp = sn_udp_server_new();
    sn_dtls_server *dtls = sn_dtls_server_new();
    if (!udp || !dtls) {
        cli_fail("out of memory");
        goto out;
    }
    sn_err listen_err = sn_udp_server_listen(udp, (int)port, bind);
    if (listen_err != SN_OK) {
        /* "udp port N already in use" says it all; other causes need the port for context. */
        if (listen_err == SN_ERR_ALREADY_IN_USE)
            cli_fail("%s", sn_last_error_message());
        else
            cli_fail("cannot listen on udp port %ld: %s", port, sn_last_error_message());
        goto out;
    }
    if (sn_dtls_server_setup(dtls, opts_srv) != SN_OK ||
        (shared_secret && sn_dtls_server_set_cookie_secret(dtls, shared_secret, 32) != SN_OK)) {
        cli_fail("cannot set up DTLS: %s", sn_last_error_message());
        goto out;
    }
    cli_install_signals();
    printf("listening on udp port %d\n", sn_udp_server_get_local_port(udp));
    printf("mode: %s\n", echo ? "echo" : "hello (answers \"" HELLO_REPLY "\")");
    fflush(stdout);

    bool tty = isatty(1);
    uint64_t deadline = seconds ? cli_now_ms() + (uint64_t)seconds * 1000u : 0;
    uint64_t next_status = cli_now_ms() + 1000;
    uint64_t pk_in = 0, pk_out = 0, hs = 0, hs_fail = 0;
    uint64_t last_in = 0, last_out = 0, last_hs = 0;
    /* Handshakes evicted at --max-half-open, refused at --max-clients. */
    uint64_t evicted = 0, refused = 0;
    size_t half_open = 0; /* peers HANDSHAKING */
    bool logged_evict = false, logged_full = false;
    bool busy = false; /* a peer has packets left over from its budget: do not sleep */
    uint64_t next_sweep = 0;
    char buf[65536];

    while (!cli_stopping() && (!deadline || cli_now_ms() < deadline)) {
        int wait_ms = busy ? 0 : LOOP_WAIT_MS;
        bool timer = false; /* a peer's retransmission or timeout falls due */
        for (size_t i = 0; i < npeers && wait_ms > 0; i++) {
            int t = sn_dtls_peer_next_timeout_ms(peers[i].dtls);
            if (t >= 0 && t < wait_ms) {
                wait_ms = t;
                timer = true;
            }
        }
        struct pollfd pfd = {sn_udp_server_get_fd(udp), POLLIN, 0};
        int ready = poll(&pfd, 1, wait_ms); /* EINTR on a signal */
        /* Every peer gets a turn when datagrams came (the UDP server routes them to peers this
         * loop cannot tell apart), a timer fell due, a peer had work left, or at each sweep
         * (--idle); otherwise silent peers cost nothing. */
        uint64_t turn_ms = cli_now_ms();
        bool sweep = busy || ready != 0 || timer || turn_ms >= next_sweep;
        if (turn_ms >= next_sweep) next_sweep = turn_ms + SWEEP_MS;
        busy = false;

        sn_udp_server_poll(udp);
        while (sn_udp_server_is_connection_available(udp)) {
            sn_udp_peer *u = sn_udp_server_take_connection(udp);
            if (!u) break;
            sn_dtls_peer *p = sn_dtls_server_take_connection(dtls, u);
            if (!p) continue;
            /* As in Godot: the first ClientHello of a client only earns a cookie. */
            if (sn_dtls_peer_get_status(p) != SN_DTLS_STATUS_HANDSHAKING) {
                sn_dtls_peer_free(p);
                continue;
            }
            if (npeers >= max_clients) {
                /* No alert: the client's handshake times out, as with a lost hello. */
                refused++;
                if (!logged_full)
                    cli_log("%zu peers (--max-clients): new handshakes refused (logged once, "
                            "counted in the stopping line)",
                            npeers);
                logged_full = true;
                sn_dtls_peer_free(p);
                continue;
            }
            if (half_open >= max_half_open) {
                /* Silent handshakes from anyone who can earn a cookie would otherwise fill the
                 * table and cost CPU every turn; a legitimate handshake finishes in a few round
                 * trips, long before it becomes the oldest. */
                size_t oldest = npeers;
                for (size_t i = 0; i < npeers; i++)
                    if (peers[i].last == SN_DTLS_STATUS_HANDSHAKING &&
                        (oldest == npeers || peers[i].started_ms < peers[oldest].started_ms))
                        oldest = i;
                if (oldest < npeers) {
                    evicted++;
                    if (!logged_evict)
                        cli_log("%zu handshakes in progress (--max-half-open): evicting the "
                                "oldest, %s (logged once, counted in the stopping line)",
                                half_open, peers[oldest].who);
                    logged_evict = true;
                    sn_dtls_peer_free(peers[oldest].dtls);
                    peers[oldest] = peers[--npeers];
                    half_open--;
                }
            }
            if (npeers == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                srv_peer *np = realloc(peers, ncap * sizeof *np);
                if (!np) {
                    sn_dtls_peer_free(p);
                    continue;
                }
                peers = np;
                cap = ncap;
            }
            srv_peer *sp = &peers[npeers++];
            sp->dtls = p;
            sp->last = SN_DTLS_STATUS_HANDSHAKING;
            sp->started_ms = cli_now_ms();
            half_open++;
            cli_format_addr(sn_dtls_peer_get_packet_ip(p), sn_dtls_peer_get_packet_port(p), sp->who,
                            sizeof sp->who);
        }

        /* A signal is honoured between two peers: each peer's turn is bounded. */
        for (size_t i = 0; sweep && i < npeers && !cli_stopping();) {
            srv_peer *sp = &peers[i];
            sn_dtls_peer_poll(sp->dtls);
            sn_dtls_status st = sn_dtls_peer_get_status(sp->dtls);
            if (st != sp->last && sp->last == SN_DTLS_STATUS_HANDSHAKING) half_open--;
            if (st != sp->last) {
                if (st == SN_DTLS_STATUS_CONNECTED) {
                    hs++;
                    cli_log("%s connected (%s)", sp->who, sn_dtls_peer_get_cipher(sp->dtls));
                } else if (sp->last == SN_DTLS_STATUS_HANDSHAKING) {
                    hs_fail++;
                    cli_log("%s handshake failed: %s", sp->who,
                            sn_dtls_peer_get_error_message(sp->dtls));
                }
            }
            size_t len;
            int budget = PACKET_BUDGET;
            while (budget > 0 &&
                   sn_dtls_peer_get_packet(sp->dtls, buf, sizeof buf, &len) == SN_OK) {
                budget--;
                pk_in++;
                printf("[%8.3f] %s says: ", cli_elapsed(), sp->who);
                cli_print_payload(stdout, buf, len);
                const void *reply = echo ? (const void *)buf : HELLO_REPLY;
                size_t rlen = echo ? len : strlen(HELLO_REPLY);
                sn_err e = sn_dtls_peer_put_packet(sp->dtls, reply, rlen);
                if (e == SN_OK)
                    pk_out++;
                else
                    cli_log("%s: reply not sent: %s", sp->who, sn_last_error_message());
            }
            if (sn_dtls_peer_get_available_packet_count(sp->dtls) > 0) busy = true;
            /* Godot keeps a vanished client CONNECTED forever; a server must not. */
            if (st == SN_DTLS_STATUS_CONNECTED && idle > 0 &&
                sn_dtls_now_ms() - sn_dtls_peer_get_last_packet_time_ms(sp->dtls) >
                    (uint64_t)idle * 1000u) {
                cli_log("%s disconnected: silent for %ld s (--idle)", sp->who, idle);
                sn_dtls_peer_free(sp->dtls); /* close_notify */
                peers[i] = peers[--npeers];
                continue;
            }
            if (st == SN_DTLS_STATUS_CONNECTED || st == SN_DTLS_STATUS_HANDSHAKING) {
                sp->last = st;
                i++;
                continue;
            }
            if (sp->last == SN_DTLS_STATUS_CONNECTED) {
                /* DISCONNECTED is the client's close_notify, unless the peer says otherwise (a
                 * client that restarted on the same address and port); ERROR carries the
                 * reason. */
                const char *why = sn_dtls_peer_get_error_message(sp->dtls);
                bool closed = !*why || (st == SN_DTLS_STATUS_DISCONNECTED &&
                                        strstr(why, "closed the connection"));
                cli_log("%s disconnected: %s", sp->who,
                        closed ? "closed by the client (close_notify)" : why);
            }
            sn_dtls_peer_free(sp->dtls);
            peers[i] = peers[--npeers];
        }

        uint64_t now = cli_now_ms();
        if (now >= next_status) {
            if (tty) {
                sn_dtls_server_stats ds;
                sn_dtls_server_get_stats(dtls, &ds);
                cli_log("status: %zu peers (%zu handshaking), %llu packets/s in, %llu packets/s "
                        "out, %llu handshakes/s, %llu cookies sent, %llu failed handshakes, "
                        "%llu half-open evicted",
                        npeers, half_open, (unsigned long long)(pk_in - last_in),
                        (unsigned long long)(pk_out - last_out), (unsigned long long)(hs - last_hs),
                        (unsigned long long)ds.cookies_sent, (unsigned long long)hs_fail,
                        (unsigned long long)evicted);
            }
            last_in = pk_in;
            last_out = pk_out;
            last_hs = hs;
            next_status = now + 1000;
        }
    }
    cli_log("stopping: %llu handshakes, %llu packets in, %llu packets out; %llu half-open "
            "handshakes evicted (--max-half-open %zu), %llu refused (--max-clients %zu)",
            (unsigned long long)hs, (unsigned long long)pk_in, (unsigned long long)pk_out,
            (unsigned long long)evicted, max_half_open, (unsigned long long)refused, max_clients);
    rc = CLI_OK;
out:
    for (size_t i = 0; i < npeers; i++)
        sn_dtls_peer_free(peers[i].dtls); /* close_notify to every connected client */
    free(peers);
    sn_dtls_server_free(dtls);
    sn_udp_server_free(udp);
    sn_tls_options_free(opts_srv);
    return rc;
}

/* ---- client --------------------------------------------------------------------------- */

static void client_help(void)
{
    printf("usage: sealnet dtls-client HOST PORT | HOST:PORT | [IPV6]:PORT\n"
           "                           [--ca FILE | --insecure] [--name HOST] [--pin SHA256]\n"
           "                           [--showcerts] [--trace] [--keylog FILE] [--json]\n"
           "                           [--mtu BYTES] [--timeout SEC] [--wait MS] [--idle SEC]\n"
           "                           [--reconnect N [--interval MS]]\n"
           "\n"
           "Connects to a DTLS 1.2 server, prints the handshake result (protocol, cipher, largest\n"
           "packet) and the server's certificate fingerprint, then sends every non-empty line\n"
           "read from stdin as one packet and prints every line of every packet received.\n"
           "Exits when stdin closes (after --wait ms without traffic, to print the replies) or\n"
           "when the server disconnects; with piped input it ends with a summary of what was\n"
           "sent, refused and received. A line longer than a packet is not sent (exit 1).\n"
           "\n"
           "%s"
           "  --mtu BYTES    UDP payload bytes per datagram, 512..65507 (default 1200)\n"
           "  --idle SEC     give up when the server has sent nothing for SEC seconds (default\n"
           "                 0: never); a server that is gone altogether is noticed sooner when\n"
           "                 packets are being sent (ICMP port unreachable for 2 s)\n"
           "  --reconnect N  read stdin to its end, then connect N + 1 times from one local port\n"
           "                 (--interval MS apart, default 200), sending every line and waiting\n"
           "                 for as many replies each time; prints 'connection K: resumed' or\n"
           "                 'full' (session resumption) or why it failed; after a failure\n"
           "                 the next connection uses a new local port\n"
           "\n"
           "Exit status: 0 done, 1 handshake or connection failure, or a line not sent (reason\n"
           "on stderr), 2 bad arguments, 130 interrupted (Ctrl-C).\n",
           cli_client_options_help);
}

int cmd_dtls_client(int argc, char **argv)
{
    cli_client c;
    memset(&c, 0, sizeof c);
    c.datagram = true;
    c.kind = "DTLS";
    int rc = cli_parse_client_args(argc, argv, true, client_help, &c.a);
    if (rc != CLI_CONTINUE) return rc;
    const cli_client_args *a = &c.a;

    sn_tls_options *o = cli_client_options(&c);
    if (!o) return CLI_FAIL;
    if (a->reconnect) { /* one options object: later connections resume the session */
        rc = cli_reconnect_client(a, o);
        sn_tls_options_free(o);
        return rc;
    }
    rc = CLI_FAIL;
    bool connected = false;
    sn_dtls_peer *dtls = sn_dtls_peer_new();
    sn_udp_peer *udp = sn_udp_peer_new();
    cli_lines *in = calloc(1, sizeof *in);
    char *line = malloc(sizeof in->buf);
    char *buf = malloc(65536);
    if (!dtls || !udp || !in || !line || !buf) {
        sn_udp_peer_free(udp);
        cli_fail("out of memory");
        goto out;
    }
    if (sn_udp_peer_connect_to_host(udp, a->host, (int)a->port) != SN_OK) {
        sn_udp_peer_free(udp);
        cli_fail("cannot reach %s port %ld: %s", a->host, a->port, sn_last_error_message());
        goto out;
    }
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.handshake_timeout_ms = (int)(a->timeout * 1000);
    if (a->mtu) set.mtu = (int)a->mtu;
    sn_dtls_peer_set_settings(dtls, &set);
    cli_install_signals();
    cli_client_connecting(&c);
    if (sn_dtls_peer_connect_to_peer(dtls, udp, a->name ? a->name : a->host, o) != SN_OK) {
        cli_fail("cannot start the handshake: %s", sn_last_error_message());
        goto out;
    }

    uint64_t last_activity = cli_now_ms();
    size_t pending_len = 0;
    bool have_pending = false;
    int max_packet = 0;
    while (!cli_stopping()) {
        struct pollfd pfd[2];
        nfds_t nfds = 0;
        int fd = sn_dtls_peer_get_fd(dtls);
        if (fd >= 0) pfd[nfds++] = (struct pollfd){fd, POLLIN, 0};
        if (!in->eof && connected) pfd[nfds++] = (struct pollfd){0, POLLIN, 0};
        int t = sn_dtls_peer_next_timeout_ms(dtls);
        poll(pfd, nfds, t >= 0 && t < 50 ? t : 50);

        sn_dtls_peer_poll(dtls);
        sn_dtls_status st = sn_dtls_peer_get_status(dtls);
        /* A closed port ends the handshake at once (the library reads the ICMP answers):
         * "connection refused: nothing is listening on ...". */
        if (st == SN_DTLS_STATUS_HANDSHAKING) continue;
        if (st == SN_DTLS_STATUS_ERROR || st == SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH) {
            sn_x509_cert *chain = sn_dtls_peer_get_peer_certificate(dtls);
            cli_client_failed(&c, connected, sn_dtls_peer_get_error_message(dtls), chain);
            sn_x509_cert_free(chain);
            goto out;
        }
        if (!connected && st == SN_DTLS_STATUS_CONNECTED) {
            sn_x509_cert *chain = sn_dtls_peer_get_peer_certificate(dtls);
            max_packet = sn_dtls_peer_get_max_packet_size(dtls);
            bool ok = cli_client_connected(&c, sn_dtls_peer_get_cipher(dtls),
                                           sn_dtls_peer_get_peer_fingerprint_sha256(dtls), chain,
                                           max_packet);
            sn_x509_cert_free(chain);
            if (!ok) goto out;
            connected = true;
            last_activity = cli_now_ms();
        }
        size_t len;
        while (sn_dtls_peer_get_packet(dtls, buf, 65536, &len) == SN_OK) {
            cli_client_received(&c, buf, len, false);
            last_activity = cli_now_ms();
        }
        /* A server that went silent (killed, unplugged, behind a dead route) sends no
         * close_notify and may draw no ICMP either: --idle is the only way to notice. */
        if (st == SN_DTLS_STATUS_CONNECTED && a->idle > 0 &&
            sn_dtls_now_ms() - sn_dtls_peer_get_last_packet_time_ms(dtls) >=
                (uint64_t)a->idle * 1000u) {
            cli_fail("disconnected: the server sent nothing for %ld s (--idle)", a->idle);
            goto out;
        }
        if (st == SN_DTLS_STATUS_DISCONNECTED) {
            const char *why = sn_dtls_peer_get_error_message(dtls);
            cli_client_disconnected(&c, *why ? why : "closed by the server (close_notify)");
            /* The server ended the session (close_notify): not a failure of ours. */
            rc = c.refused_long ? CLI_FAIL : CLI_OK;
            goto out;
        }
        cli_lines_read(in);
        for (;;) {
            if (!have_pending) {
                bool too_long;
                if (!cli_lines_next(in, line, &pending_len, &too_long)) break;
                if (too_long || pending_len > (size_t)max_packet) {
                    cli_client_refused(&c, in->line_no, pending_len, max_packet);
                    continue;
                }
                if (pending_len == 0) continue; /* an empty line is no packet */
                have_pending = true;
            }
            sn_err e = sn_dtls_peer_put_packet(dtls, line, pending_len);
            if (e == SN_ERR_BUSY) {
                c.busy++;
                break; /* socket full: the same packet again next turn */
            }
            have_pending = false;
            last_activity = cli_now_ms();
            if (e != SN_OK) {
                cli_client_refused(&c, in->line_no, pending_len, max_packet);
                continue;
            }
            c.sent++;
            c.sent_bytes += pending_len;
        }
        if (in->eof && !have_pending && in->len == 0 && !in->discarding &&
            cli_now_ms() - last_activity >= (uint64_t)a->wait_ms) {
            rc = c.refused_long ? CLI_FAIL : CLI_OK;
            break;
        }
    }
    if (cli_stopping()) rc = cli_client_interrupted(&c, !connected);
out:
    if (connected) cli_client_summary(&c);
    sn_dtls_peer_free(dtls); /* close_notify when connected */
    sn_tls_options_free(o);
    free(in);
    free(line);
    free(buf);
    return rc;
}
