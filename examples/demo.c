/* `make demo`: sealnet's main job in one process, on built-in defaults, in a few seconds.
 *
 * A DTLS server with a freshly generated certificate and three clients on loopback, all driven
 * from one loop the way a Godot game drives them from _process():
 *   1. each client verifies the server's certificate and name ("localhost") and connects;
 *   2. each sends the seed's "The answer is... 42!" and gets "Hello DTLS client" back;
 *   3. the server broadcasts one message to every client;
 *   4. one client goes silent and the server drops it after a 1.5 s idle timeout, while the
 *      others keep talking and stay connected;
 *   5. a TLS client greets a TLS server ("Hello from the server!" / "ack");
 *   6. everything shuts down cleanly (close_notify seen by the server);
 *   7. the host API (sn_host) does the same without a hand-written loop: two clients connect,
 *      one broadcast reaches both, and a client whose loop hangs is timed out by the host's
 *      keepalive-fed idle timer while the other stays connected.
 * Every line of the transcript is printed when the event has been observed (a message when it
 * was received, not when it was sent). Exit status 0 only if every step happened.
 */
#include <sealnet/sealnet.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NCLIENTS        3
#define IDLE_TIMEOUT_MS 1500
#define STEP_TIMEOUT_MS 10000
#define ANSWER          "The answer is... 42!"
#define HELLO           "Hello DTLS client"
#define HEARTBEAT       "still here"
#define GREETING        "Hello from the server!\n"

static const char *names[NCLIENTS] = {"alice", "bob", "carol"};
enum { SILENT = 2 }; /* carol goes quiet */

typedef struct client_state {
    const char *name;
    int local_port;
    sn_dtls_peer *dtls;
    bool connected, got_hello, got_broadcast, saw_disconnect;
} client_state;

typedef struct server_peer {
    sn_dtls_peer *dtls;
    int who; /* index into clients, -1 until known */
    bool announced, got_answer, timed_out, gone;
} server_peer;

static client_state clients[NCLIENTS];
static server_peer speers[16];
static int nspeers;
static sn_udp_server *udp_server;
static sn_dtls_server *dtls_server;
static bool idle_check;
static uint64_t idle_check_start; /* silence counts from here at the earliest */
static int heartbeats_seen, clean_disconnects;
static char broadcast_msg[64];
static struct timespec t0;

static double elapsed(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void say(const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%5.2f s] %-7s ", elapsed(), who);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static bool is(const char *buf, size_t len, const char *text)
{
    return len == strlen(text) && memcmp(buf, text, len) == 0;
}

/* ---- one frame of the server and of every client -------------------------------------- */

static void server_frame(void)
{
    sn_udp_server_poll(udp_server);
    while (sn_udp_server_is_connection_available(udp_server)) {
        sn_dtls_peer *p =
            sn_dtls_server_take_connection(dtls_server, sn_udp_server_take_connection(udp_server));
        /* As in Godot: a ClientHello without a cookie only earns one; skip that peer. */
        if (!p || sn_dtls_peer_get_status(p) != SN_DTLS_STATUS_HANDSHAKING ||
            nspeers == (int)(sizeof speers / sizeof speers[0])) {
            sn_dtls_peer_free(p);
            continue;
        }
        speers[nspeers++] = (server_peer){p, -1, false, false, false, false};
    }
    char buf[1500];
    for (int i = 0; i < nspeers; i++) {
        server_peer *sp = &speers[i];
        if (sp->gone) continue;
        sn_dtls_peer_poll(sp->dtls);
        sn_dtls_status st = sn_dtls_peer_get_status(sp->dtls);
        if (st == SN_DTLS_STATUS_CONNECTED && !sp->announced) {
            sp->announced = true;
            for (int c = 0; c < NCLIENTS; c++)
                if (clients[c].local_port == sn_dtls_peer_get_packet_port(sp->dtls)) sp->who = c;
            say("server", "%s connected from %s:%d", sp->who >= 0 ? names[sp->who] : "someone",
                sn_dtls_peer_get_packet_ip(sp->dtls), sn_dtls_peer_get_packet_port(sp->dtls));
        }
        const char *who = sp->who >= 0 ? names[sp->who] : "someone";
        size_t len;
        while (sn_dtls_peer_get_packet(sp->dtls, buf, sizeof buf, &len) == SN_OK) {
            if (is(buf, len, HEARTBEAT)) {
                heartbeats_seen++;
                continue;
            }
            say(who, "-> server: \"%.*s\"", (int)len, buf);
            if (is(buf, len, ANSWER)) {
                sp->got_answer = true;
                sn_dtls_peer_put_packet(sp->dtls, HELLO, strlen(HELLO));
            }
        }
        uint64_t last = sn_dtls_peer_get_last_packet_time_ms(sp->dtls);
        if (last < idle_check_start) last = idle_check_start;
        if (st == SN_DTLS_STATUS_CONNECTED && idle_check &&
            sn_dtls_now_ms() - last > IDLE_TIMEOUT_MS) {
            say("server", "%s silent for %.1f s: dropping it (idle timeout)", who,
                IDLE_TIMEOUT_MS / 1000.0);
            sn_dtls_peer_disconnect_from_peer(sp->dtls); /* sends close_notify */
            sp->timed_out = sp->gone = true;
            continue;
        }
        if (sp->announced && st != SN_DTLS_STATUS_CONNECTED) {
            const char *why = sn_dtls_peer_get_error_message(sp->dtls);
            if (st == SN_DTLS_STATUS_DISCONNECTED) {
                say("server", "%s disconnected cleanly (close_notify)", who);
                clean_disconnects++;
            } else {
                say("server", "%s lost: %s", who, why);
            }
            sp->gone = true;
        }
    }
}

static void clients_frame(void)
{
    char buf[1500];
    for (int c = 0; c < NCLIENTS; c++) {
        client_state *cl = &clients[c];
        if (!cl->dtls) continue;
        sn_dtls_peer_poll(cl->dtls);
        sn_dtls_status st = sn_dtls_peer_get_status(cl->dtls);
        if (st == SN_DTLS_STATUS_CONNECTED && !cl->connected) {
            cl->connected = true;
            say(cl->name, "connected: %s, server certificate verified for \"localhost\"",
                sn_dtls_peer_get_cipher(cl->dtls));
        }
        size_t len;
        while (sn_dtls_peer_get_packet(cl->dtls, buf, sizeof buf, &len) == SN_OK) {
            say("server", "-> %s: \"%.*s\"", cl->name, (int)len, buf);
            if (is(buf, len, HELLO)) cl->got_hello = true;
            if (*broadcast_msg && is(buf, len, broadcast_msg)) cl->got_broadcast = true;
        }
        if (cl->connected && st != SN_DTLS_STATUS_CONNECTED && !cl->saw_disconnect) {
            cl->saw_disconnect = true;
            const char *why = sn_dtls_peer_get_error_message(cl->dtls);
            say(cl->name, "was disconnected by the server (%s)", *why ? why : "close_notify");
        } else if (st == SN_DTLS_STATUS_ERROR) {
            say(cl->name, "failed: %s", sn_dtls_peer_get_error_message(cl->dtls));
            sn_dtls_peer_free(cl->dtls);
            cl->dtls = NULL;
        }
    }
}

static void frame(void)
{
    server_frame();
    clients_frame();
    sleep_ms(2);
}

/* Runs frames until cond() holds or the step's time is up. */
static bool run_until(bool (*cond)(void), int timeout_ms)
{
    double end = elapsed() + timeout_ms / 1000.0;
    while (!cond()) {
        if (elapsed() > end) return false;
        frame();
    }
    return true;
}

static bool all_connected(void)
{
    for (int c = 0; c < NCLIENTS; c++)
        if (!clients[c].connected) return false;
    return true;
}

static bool all_answered(void)
{
    for (int c = 0; c < NCLIENTS; c++)
        if (!clients[c].got_hello) return false;
    for (int i = 0; i < nspeers; i++)
        if (speers[i].announced && !speers[i].got_answer) return false;
    return true;
}

static bool all_got_broadcast(void)
{
    for (int c = 0; c < NCLIENTS; c++)
        if (!clients[c].got_broadcast) return false;
    return true;
}

static bool silent_one_dropped(void)
{
    return clients[SILENT].saw_disconnect;
}

static bool all_gone(void)
{
    for (int i = 0; i < nspeers; i++)
        if (!speers[i].gone) return false;
    return true;
}

/* ---- the TLS part --------------------------------------------------------------------- */

static bool tls_step(const sn_crypto_key *key, const sn_x509_cert *cert)
{
    bool ok = false, greeted = false, acked = false;
    sn_tls_options *srv_opts = sn_tls_options_server(key, cert);
    sn_tls_options *cli_opts = sn_tls_options_client(cert, NULL);
    sn_tcp_server *tcp_server = sn_tcp_server_new();
    sn_tls_stream *tls_cli = sn_tls_stream_new(), *server = NULL;
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    if (!srv_opts || !cli_opts || !tcp_server || !tls_cli || !tcp ||
        sn_tcp_server_listen(tcp_server, 0, "127.0.0.1") != SN_OK) {
        say("demo", "TLS setup failed: %s", sn_last_error_message());
        sn_tcp_peer_free(tcp);
        goto out;
    }
    int port = sn_tcp_server_get_local_port(tcp_server);
    say("server", "TLS listening on 127.0.0.1 tcp port %d", port);
    if (sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", port) != SN_OK ||
        sn_tls_stream_connect_to_stream(tls_cli, tcp, "localhost", cli_opts) != SN_OK) {
        say("demo", "TLS connect failed: %s", sn_last_error_message());
        goto out;
    }
    double end = elapsed() + STEP_TIMEOUT_MS / 1000.0;
    char buf[256];
    size_t got;
    bool client_up = false, server_up = false;
    while (!(greeted && acked) && elapsed() < end) {
        if (!server && sn_tcp_server_is_connection_available(tcp_server)) {
            server = sn_tls_stream_new();
            if (!server ||
                sn_tls_stream_accept_stream(server, sn_tcp_server_take_connection(tcp_server),
                                            srv_opts) != SN_OK) {
                say("demo", "TLS accept failed: %s", sn_last_error_message());
                goto out;
            }
        }
        sn_tls_stream_poll(tls_cli);
        if (server) sn_tls_stream_poll(server);
        if (!server_up && server && sn_tls_stream_get_status(server) == SN_TLS_STATUS_CONNECTED) {
            server_up = true;
            sn_tls_stream_put_data(server, GREETING, strlen(GREETING));
        }
        if (!client_up && sn_tls_stream_get_status(tls_cli) == SN_TLS_STATUS_CONNECTED) {
            client_up = true;
            say("tls-cli", "connected: %s, certificate verified for \"localhost\"",
                sn_tls_stream_get_protocol_description(tls_cli));
        }
        if (sn_tls_stream_get_status(tls_cli) >= SN_TLS_STATUS_ERROR) {
            say("tls-cli", "failed: %s", sn_tls_stream_get_error_message(tls_cli));
            goto out;
        }
        if (client_up && !greeted &&
            sn_tls_stream_get_partial_data(tls_cli, buf, sizeof buf, &got) == SN_OK && got > 0) {
            say("server", "-> tls-cli: \"%.*s\"", (int)(got - (buf[got - 1] == '\n')), buf);
            greeted = is(buf, got, GREETING);
            if (greeted) sn_tls_stream_put_data(tls_cli, "ack", 3);
        }
        if (server_up && !acked &&
            sn_tls_stream_get_partial_data(server, buf, sizeof buf, &got) == SN_OK && got > 0) {
            say("tls-cli", "-> server: \"%.*s\"", (int)got, buf);
            acked = is(buf, got, "ack");
        }
        sleep_ms(2);
    }
    ok = greeted && acked;
out:
    sn_tls_stream_free(tls_cli);
    sn_tls_stream_free(server);
    sn_tcp_server_free(tcp_server);
    sn_tls_options_free(srv_opts);
    sn_tls_options_free(cli_opts);
    return ok;
}

/* ---- the host API: the same patterns without a hand-written loop ----------------------- */

#define HOST_IDLE_MS      1200
#define HOST_KEEPALIVE_MS 200

typedef struct host_client {
    const char *name;
    sn_host *host;
    sn_host_peer *peer;
    bool connected, got_broadcast, frozen;
} host_client;

/* Services a host without waiting; returns the next event's type (NONE when there is none). */
static sn_host_event_type next_event(sn_host *h, sn_host_event *ev)
{
    return sn_host_service(h, ev, 0) > 0 ? ev->type : SN_HOST_EVENT_NONE;
}

static bool host_step(const sn_tls_options *srv_opts, const sn_tls_options *cli_opts)
{
    bool ok = false;
    host_client hc[2] = {{"dave", NULL, NULL, false, false, false},
                         {"erin", NULL, NULL, false, false, false}};
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    cfg.bind_address = "127.0.0.1";
    cfg.server_options = srv_opts;
    cfg.idle_timeout_ms = HOST_IDLE_MS;
    cfg.keepalive_interval_ms = HOST_KEEPALIVE_MS;
    sn_host *server = sn_host_create(&cfg);
    if (!server) {
        say("host", "cannot start: %s", sn_last_error_message());
        return false;
    }
    say("host",
        "sn_host listening on 127.0.0.1 udp port %d (idle timeout %.1f s, keepalive "
        "%.1f s)",
        sn_host_get_port(server), HOST_IDLE_MS / 1000.0, HOST_KEEPALIVE_MS / 1000.0);
    sn_host_config ccfg;
    sn_host_default_config(&ccfg); /* client-only: no server options */
    ccfg.keepalive_interval_ms = HOST_KEEPALIVE_MS;
    for (int i = 0; i < 2; i++) {
        hc[i].host = sn_host_create(&ccfg);
        hc[i].peer = hc[i].host ? sn_host_connect(hc[i].host, "127.0.0.1", sn_host_get_port(server),
                                                  "localhost", cli_opts)
                                : NULL;
        if (!hc[i].peer) {
            say(hc[i].name, "cannot connect: %s", sn_last_error_message());
            goto out;
        }
    }

    enum { CONNECTING, BROADCAST, FREEZE, DONE } phase = CONNECTING;
    int server_connects = 0, names_known = 0;
    bool dave_timed_out = false;
    char msg[64];
    double end = elapsed() + STEP_TIMEOUT_MS / 1000.0, frozen_at = 0;
    while (phase != DONE && elapsed() < end) {
        sn_host_event ev;
        sn_host_event_type t;
        /* The server: every event of this frame. */
        while ((t = next_event(server, &ev)) != SN_HOST_EVENT_NONE) {
            const char *who = ev.user_data ? (const char *)ev.user_data : "a client";
            if (t == SN_HOST_EVENT_CONNECT) {
                server_connects++;
            } else if (t == SN_HOST_EVENT_RECEIVE && ev.len == 4) {
                /* Each client introduces itself; the host keeps the name with the peer. */
                for (int i = 0; i < 2; i++)
                    if (memcmp(ev.data, hc[i].name, 4) == 0) {
                        sn_host_peer_set_user_data(ev.peer, (void *)hc[i].name);
                        say(hc[i].name, "-> host: \"%s\"", hc[i].name);
                        names_known++;
                    }
            } else if (t == SN_HOST_EVENT_DISCONNECT) {
                if (ev.reason == SN_HOST_DISCONNECT_TIMEOUT)
                    say("host", "%s dropped %.1f s after it went quiet: %s", who,
                        elapsed() - frozen_at, ev.message);
                else
                    say("host", "%s disconnected: %s (%s)", who,
                        sn_host_disconnect_reason_string(ev.reason), ev.message);
                if (ev.reason == SN_HOST_DISCONNECT_TIMEOUT && ev.user_data == hc[0].name)
                    dave_timed_out = true;
            }
        }
        /* The clients, except a frozen one (its process hung: nothing is serviced). */
        for (int i = 0; i < 2; i++) {
            if (hc[i].frozen) continue;
            while ((t = next_event(hc[i].host, &ev)) != SN_HOST_EVENT_NONE) {
                if (t == SN_HOST_EVENT_CONNECT) {
                    hc[i].connected = true;
                    say(hc[i].name, "connected through sn_host: %s",
                        sn_host_peer_get_cipher(ev.peer));
                    sn_host_peer_send(ev.peer, hc[i].name, 4);
                } else if (t == SN_HOST_EVENT_RECEIVE) {
                    say("host", "-> %s: \"%.*s\"", hc[i].name, (int)ev.len, ev.data);
                    if (phase == BROADCAST && ev.len == strlen(msg) &&
                        memcmp(ev.data, msg, ev.len) == 0)
                        hc[i].got_broadcast = true;
                } else if (t == SN_HOST_EVENT_DISCONNECT) {
                    say(hc[i].name, "lost the host: %s", ev.message);
                }
            }
        }
        if (phase == CONNECTING && server_connects == 2 && names_known == 2 && hc[0].connected &&
            hc[1].connected) {
            snprintf(msg, sizeof msg, "host broadcast at %.2f s", elapsed());
            int n = sn_host_broadcast(server, msg, strlen(msg), NULL);
            say("host", "sn_host_broadcast sent \"%s\" to %d peers", msg, n);
            phase = BROADCAST;
        } else if (phase == BROADCAST && hc[0].got_broadcast && hc[1].got_broadcast) {
            say("dave", "stops responding (his loop hangs: no keepalives, nothing)");
            hc[0].frozen = true;
            frozen_at = elapsed();
            phase = FREEZE;
        } else if (phase == FREEZE && dave_timed_out) {
            bool erin_up = sn_host_peer_get_state(hc[1].peer) == SN_HOST_PEER_CONNECTED &&
                           sn_host_peer_count(server, SN_HOST_PEER_CONNECTED) == 1;
            if (erin_up)
                say("demo", "erin still connected (keepalives every %.1f s, rtt %.2f ms)",
                    HOST_KEEPALIVE_MS / 1000.0, sn_host_peer_get_rtt_ms(hc[1].peer));
            ok = erin_up;
            phase = DONE;
        }
        sleep_ms(2);
    }
out:
    sn_host_free(server);
    for (int i = 0; i < 2; i++)
        sn_host_free(hc[i].host);
    return ok;
}

/* ---- the script ----------------------------------------------------------------------- */

int main(void)
{
    clock_gettime(CLOCK_MONOTONIC, &t0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("sealnet demo: %s\n", sn_version());

    static const char *step_names[] = {
        "certificate generated", "DTLS server listening",    "3 clients connected (verified)",
        "42 answered 3 times",   "broadcast reached 3 of 3", "silent client timed out",
        "TLS greeting and ack",  "clean shutdown",           "host API: broadcast and timeout",
    };
    enum { NSTEPS = sizeof step_names / sizeof step_names[0] };
    bool done[NSTEPS] = {false};
    int step = 0;

    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert = key ? sn_crypto_generate_self_signed_certificate(
                                   key, "CN=localhost,O=sealnet demo", NULL, NULL)
                             : NULL;
    sn_tls_options *srv_opts = cert ? sn_tls_options_server(key, cert) : NULL;
    sn_tls_options *cli_opts = cert ? sn_tls_options_client(cert, NULL) : NULL;
    if (!srv_opts || !cli_opts) {
        say("demo", "cannot make credentials: %s", sn_last_error_message());
        goto summary;
    }
    char *fp = sn_x509_cert_get_fingerprint_sha256(cert);
    say("demo", "generated an EC P-256 key and a self-signed certificate for CN=localhost");
    say("demo", "certificate SHA-256 %.23s...", fp ? fp : "?");
    sn_free(fp);
    done[step++] = true;

    /* 2. The server: Godot's UDPServer + DTLSServer pair. */
    udp_server = sn_udp_server_new();
    dtls_server = sn_dtls_server_new();
    if (sn_udp_server_listen(udp_server, 0, "127.0.0.1") != SN_OK ||
        sn_dtls_server_setup(dtls_server, srv_opts) != SN_OK) {
        say("server", "cannot start: %s", sn_last_error_message());
        goto summary;
    }
    int port = sn_udp_server_get_local_port(udp_server);
    say("server", "DTLS listening on 127.0.0.1 udp port %d", port);
    done[step++] = true;

    /* 3. Three clients, each verifying the certificate and the name "localhost". */
    for (int c = 0; c < NCLIENTS; c++) {
        client_state *cl = &clients[c];
        cl->name = names[c];
        sn_udp_peer *udp = sn_udp_peer_new();
        cl->dtls = sn_dtls_peer_new();
        if (!udp || !cl->dtls || sn_udp_peer_connect_to_host(udp, "127.0.0.1", port) != SN_OK) {
            say(cl->name, "cannot open a socket: %s", sn_last_error_message());
            sn_udp_peer_free(udp);
            goto summary;
        }
        cl->local_port = sn_udp_peer_get_local_port(udp);
        if (sn_dtls_peer_connect_to_peer(cl->dtls, udp, "localhost", cli_opts) != SN_OK) {
            say(cl->name, "cannot start the handshake: %s", sn_last_error_message());
            goto summary;
        }
    }
    if (!run_until(all_connected, STEP_TIMEOUT_MS)) goto summary;
    done[step++] = true;

    /* 4. The seed's exchange. */
    for (int c = 0; c < NCLIENTS; c++)
        sn_dtls_peer_put_packet(clients[c].dtls, ANSWER, strlen(ANSWER));
    if (!run_until(all_answered, STEP_TIMEOUT_MS)) goto summary;
    done[step++] = true;

    /* 5. A broadcast: one message to every connected peer. */
    snprintf(broadcast_msg, sizeof broadcast_msg, "broadcast at %.2f s: %d players online",
             elapsed(), NCLIENTS);
    for (int i = 0; i < nspeers; i++)
        if (!speers[i].gone && sn_dtls_peer_get_status(speers[i].dtls) == SN_DTLS_STATUS_CONNECTED)
            sn_dtls_peer_put_packet(speers[i].dtls, broadcast_msg, strlen(broadcast_msg));
    if (!run_until(all_got_broadcast, STEP_TIMEOUT_MS)) goto summary;
    done[step++] = true;

    /* 6. carol goes quiet; alice and bob send a heartbeat every 300 ms. */
    say("carol", "goes silent");
    idle_check = true;
    idle_check_start = sn_dtls_now_ms();
    double end = elapsed() + STEP_TIMEOUT_MS / 1000.0, next_beat = 0;
    while (!silent_one_dropped() && elapsed() < end) {
        if (elapsed() >= next_beat) {
            for (int c = 0; c < NCLIENTS; c++)
                if (c != SILENT && clients[c].dtls)
                    sn_dtls_peer_put_packet(clients[c].dtls, HEARTBEAT, strlen(HEARTBEAT));
            next_beat = elapsed() + 0.3;
        }
        frame();
    }
    int still_up = 0, timed_out = 0;
    for (int i = 0; i < nspeers; i++) {
        if (speers[i].timed_out) timed_out += speers[i].who == SILENT ? 1 : 100;
        if (!speers[i].gone) still_up++;
    }
    if (silent_one_dropped() && timed_out == 1 && still_up == NCLIENTS - 1) {
        say("demo", "alice and bob still connected (%d heartbeats received)", heartbeats_seen);
        done[step++] = true;
    } else {
        say("demo", "idle timeout step went wrong: %d peers up, timeout mark %d", still_up,
            timed_out);
        goto summary;
    }

    /* 7. TLS over TCP. */
    if (!tls_step(key, cert)) goto summary;
    done[step++] = true;

    /* 8. Shutdown: the clients close; the server sees close_notify from each. */
    for (int c = 0; c < NCLIENTS; c++) {
        if (c == SILENT) continue;
        say(clients[c].name, "disconnects");
        clients[c].saw_disconnect = true; /* its own doing: nothing to report on its side */
        sn_dtls_peer_disconnect_from_peer(clients[c].dtls);
    }
    if (!run_until(all_gone, STEP_TIMEOUT_MS) || clean_disconnects != NCLIENTS - 1) goto summary;
    done[step++] = true;

    /* 9. The host API does steps 3 to 6 by itself: events instead of a hand-written loop. */
    if (host_step(srv_opts, cli_opts)) done[step++] = true;

summary:;
    int passed = 0;
    for (int i = 0; i < NSTEPS; i++)
        passed += done[i];
    for (int c = 0; c < NCLIENTS; c++)
        sn_dtls_peer_free(clients[c].dtls);
    for (int i = 0; i < nspeers; i++)
        sn_dtls_peer_free(speers[i].dtls);
    sn_dtls_server_free(dtls_server);
    sn_udp_server_free(udp_server);
    sn_tls_options_free(srv_opts);
    sn_tls_options_free(cli_opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    if (passed == NSTEPS) {
        printf("demo: all %d steps passed in %.1f s\n", NSTEPS, elapsed());
        return 0;
    }
    printf("demo: FAILED at step %d (%s): %d of %d steps passed in %.1f s\n", passed + 1,
           step_names[passed], passed, NSTEPS, elapsed());
    return 1;
}
