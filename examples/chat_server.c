/* chat_server: the server tutorial's patterns on sn_host.
 *
 * One host owns every client; the program only reacts to events. Packets are dispatched on
 * their first byte, as in the tutorial:
 *   0x01 move   [int16 x][int16 y] (big-endian): stored, and announced to the other players as
 *               0x01 [uint32 id][int16 x][int16 y]
 *   0x02 attack [uint32 target id]: the target receives 0x02 [uint32 attacker][uint32 target],
 *               the attacker gets the same packet back as an acknowledgement
 *   0x03 chat   [text]: broadcast to everyone (sender included) as 0x03 "name: text"
 *   0x04 name   [text]: sets the player's name
 * Silent clients are dropped by the host's idle timeout; SIGINT/SIGTERM closes every client
 * with close_notify before exiting.
 *
 *   chat_server [--port N] [--bind ADDR] [--cert FILE --key FILE] [--seconds N]
 *               [--idle-ms N] [--keepalive-ms N] [--max-peers N]
 * Without --cert/--key it generates a P-256 key and a self-signed certificate (CN=localhost).
 * Prints "listening on port N" once ready (port 0, the default, picks a free one).
 */
#include <sealnet/sealnet.h>
#include <sealnet/host.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD_MOVE   0x01
#define CMD_ATTACK 0x02
#define CMD_CHAT   0x03
#define CMD_NAME   0x04

typedef struct player {
    char name[32];
    int x, y;
} player;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void put_u32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int get_i16(const uint8_t *b)
{
    return (int16_t)(uint16_t)(b[0] << 8 | b[1]);
}

static void handle_packet(sn_host *host, sn_host_peer *peer, const uint8_t *d, size_t len)
{
    player *pl = sn_host_peer_get_user_data(peer);
    uint32_t id = sn_host_peer_get_id(peer);
    if (len == 0) return;
    switch (d[0]) {
    case CMD_MOVE: {
        if (len < 5) break;
        pl->x = get_i16(d + 1);
        pl->y = get_i16(d + 3);
        printf("%s moves to (%d, %d)\n", pl->name, pl->x, pl->y);
        uint8_t out[9] = {CMD_MOVE};
        put_u32(out + 1, id);
        memcpy(out + 5, d + 1, 4);
        sn_host_broadcast(host, out, sizeof out, peer);
        break;
    }
    case CMD_ATTACK: {
        if (len < 5) break;
        uint32_t target = get_u32(d + 1);
        sn_host_peer *victim = sn_host_find_peer(host, target);
        uint8_t out[9] = {CMD_ATTACK};
        put_u32(out + 1, id);
        put_u32(out + 5, target);
        if (victim && sn_host_peer_get_state(victim) == SN_HOST_PEER_CONNECTED) {
            printf("%s attacks player %u\n", pl->name, target);
            sn_host_peer_send(victim, out, sizeof out);
        } else {
            printf("%s attacks nobody (no player %u)\n", pl->name, target);
        }
        sn_host_peer_send(peer, out, sizeof out);
        break;
    }
    case CMD_CHAT: {
        char text[512];
        size_t n = len - 1 < 400 ? len - 1 : 400;
        uint8_t out[512];
        int m = snprintf(text, sizeof text, "%s: %.*s", pl->name, (int)n, (const char *)d + 1);
        if (m < 0) break;
        printf("%s says: %.*s\n", pl->name, (int)n, (const char *)d + 1);
        out[0] = CMD_CHAT;
        memcpy(out + 1, text, (size_t)m);
        int sent = sn_host_broadcast(host, out, (size_t)m + 1, NULL);
        printf("  (to %d players)\n", sent);
        break;
    }
    case CMD_NAME: {
        size_t n = len - 1 < sizeof pl->name - 1 ? len - 1 : sizeof pl->name - 1;
        char old[32];
        snprintf(old, sizeof old, "%s", pl->name);
        memcpy(pl->name, d + 1, n);
        pl->name[n] = '\0';
        printf("%s is now called %s\n", old, pl->name);
        break;
    }
    default:
        printf("%s sent unknown command 0x%02x (%zu bytes)\n", pl->name, d[0], len);
    }
}

int main(int argc, char **argv)
{
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    const char *cert_path = NULL, *key_path = NULL;
    int seconds = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port") && v)
            cfg.port = atoi(v), i++;
        else if (!strcmp(a, "--bind") && v)
            cfg.bind_address = v, i++;
        else if (!strcmp(a, "--cert") && v)
            cert_path = v, i++;
        else if (!strcmp(a, "--key") && v)
            key_path = v, i++;
        else if (!strcmp(a, "--seconds") && v)
            seconds = atoi(v), i++;
        else if (!strcmp(a, "--idle-ms") && v)
            cfg.idle_timeout_ms = atoi(v), i++;
        else if (!strcmp(a, "--keepalive-ms") && v)
            cfg.keepalive_interval_ms = atoi(v), i++;
        else if (!strcmp(a, "--max-peers") && v)
            cfg.max_peers = atoi(v), i++;
        else {
            fprintf(stderr,
                    "usage: %s [--port N] [--bind ADDR] [--cert FILE --key FILE] [--seconds N]\n"
                    "          [--idle-ms N] [--keepalive-ms N] [--max-peers N]\n",
                    argv[0]);
            return 2;
        }
    }

    sn_crypto_key *key = NULL;
    sn_x509_cert *cert = NULL;
    if (cert_path && key_path) {
        key = sn_crypto_key_new();
        cert = sn_x509_cert_new();
        if (sn_crypto_key_load(key, key_path, false) != SN_OK ||
            sn_x509_cert_load(cert, cert_path) != SN_OK) {
            fprintf(stderr, "chat_server: %s\n", sn_last_error_message());
            return 1;
        }
    } else {
        key = sn_crypto_generate_ec("P-256");
        cert = key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost,O=sealnet,C=IT",
                                                                NULL, NULL)
                   : NULL;
        if (!cert) {
            fprintf(stderr, "chat_server: %s\n", sn_last_error_message());
            return 1;
        }
    }
    sn_tls_options *opts = sn_tls_options_server(key, cert);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    if (!opts) {
        fprintf(stderr, "chat_server: %s\n", sn_last_error_message());
        return 1;
    }
    cfg.server_options = opts;
    sn_host *host = sn_host_create(&cfg);
    sn_tls_options_free(opts); /* the host keeps what it needs */
    if (!host) {
        fprintf(stderr, "chat_server: %s\n", sn_last_error_message());
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    printf("listening on port %d\n", sn_host_get_port(host));
    fflush(stdout);
    time_t end = seconds > 0 ? time(NULL) + seconds : 0;
    sn_host_event ev;
    while (!stop && (!end || time(NULL) < end)) {
        /* Sleeps up to 100 ms when idle: signals and --seconds are checked between calls. */
        int r = sn_host_service(host, &ev, 100);
        if (r < 0) {
            fprintf(stderr, "chat_server: %s\n", sn_last_error_message());
            break;
        }
        if (r == 0) continue;
        switch (ev.type) {
        case SN_HOST_EVENT_CONNECT: {
            player *pl = calloc(1, sizeof *pl);
            if (!pl) {
                sn_host_peer_disconnect(ev.peer);
                break;
            }
            snprintf(pl->name, sizeof pl->name, "player%u", ev.peer_id);
            sn_host_peer_set_user_data(ev.peer, pl);
            printf("%s connected from %s:%d (%s)\n", pl->name, sn_host_peer_get_address(ev.peer),
                   sn_host_peer_get_port(ev.peer), sn_host_peer_get_cipher(ev.peer));
            break;
        }
        case SN_HOST_EVENT_RECEIVE:
            handle_packet(host, ev.peer, ev.data, ev.len);
            break;
        case SN_HOST_EVENT_DISCONNECT: {
            player *pl = ev.user_data;
            printf("%s disconnected (%s: %s)\n", pl ? pl->name : "?",
                   sn_host_disconnect_reason_string(ev.reason), ev.message);
            free(pl);
            sn_host_peer_set_user_data(ev.peer, NULL); /* the handle lives until next service */
            break;
        }
        default:
            break;
        }
        fflush(stdout);
    }

    sn_host_stats st;
    sn_host_get_stats(host, &st);
    printf("shutting down: closing %llu players (handshakes %llu ok / %llu failed, packets %llu "
           "in / %llu out, idle timeouts %llu)\n",
           (unsigned long long)st.peers_connected_now, (unsigned long long)st.handshakes_completed,
           (unsigned long long)st.handshakes_failed, (unsigned long long)st.packets_received,
           (unsigned long long)st.packets_sent, (unsigned long long)st.idle_timeouts);
    /* Free the players' user data, then let the host send close_notify to each of them. */
    size_t n = sn_host_get_peers(host, NULL, 0);
    sn_host_peer **all = calloc(n ? n : 1, sizeof *all);
    if (all) {
        sn_host_get_peers(host, all, n);
        for (size_t i = 0; i < n; i++)
            free(sn_host_peer_get_user_data(all[i]));
        free(all);
    }
    sn_host_free(host);
    fflush(stdout);
    return 0;
}
