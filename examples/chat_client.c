/* chat_client: a player for chat_server, on a client-only sn_host.
 *
 * The same three events as the server: CONNECT, RECEIVE (dispatched on the first byte),
 * DISCONNECT (with the reason). Reconnecting is a new sn_host_connect after a DISCONNECT.
 *
 *   chat_client --port N [--host ADDR] [--hostname NAME] [--ca FILE] [--name NAME]
 *               [--messages N] [--interval-ms N] [--move X,Y] [--attack ID] [--expect N]
 *               [--seconds N] [--keepalive-ms N] [--reconnect-ms N] [--freeze]
 *               [--start-delay-ms N]
 * --ca verifies the server against FILE (name: --hostname, default "localhost"); without it the
 * client accepts any certificate (sn_tls_options_client_unsafe). --expect N: exit once N chat
 * lines were received and every message was sent. --freeze: after sending, stop servicing the
 * host (a client that goes silent, to watch the server's idle timeout). --reconnect-ms: connect
 * again that long after a disconnect instead of exiting. --start-delay-ms: wait that long after
 * connecting before the first message (so that other players have joined).
 */
#include <sealnet/sealnet.h>
#include <sealnet/host.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD_MOVE   0x01
#define CMD_ATTACK 0x02
#define CMD_CHAT   0x03
#define CMD_NAME   0x04

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t get_u32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_u32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static void on_packet(const uint8_t *d, size_t len, int *chats)
{
    if (len == 0) return;
    switch (d[0]) {
    case CMD_CHAT:
        printf("chat: %.*s\n", (int)(len - 1), (const char *)d + 1);
        (*chats)++;
        break;
    case CMD_MOVE:
        if (len >= 9)
            printf("moved: player %u to (%d, %d)\n", get_u32(d + 1),
                   (int16_t)(uint16_t)(d[5] << 8 | d[6]), (int16_t)(uint16_t)(d[7] << 8 | d[8]));
        break;
    case CMD_ATTACK:
        if (len >= 9)
            printf("attack: player %u attacks player %u\n", get_u32(d + 1), get_u32(d + 5));
        break;
    default:
        printf("unknown packet 0x%02x (%zu bytes)\n", d[0], len);
    }
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *hostname = "localhost", *ca_path = NULL, *name = NULL;
    int port = 0, messages = 0, interval = 200, expect = -1, seconds = 0, reconnect_ms = 0;
    int keepalive = -1, move_x = 0, move_y = 0, start_delay = 0;
    long attack = -1;
    bool do_move = false, freeze = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port") && v)
            port = atoi(v), i++;
        else if (!strcmp(a, "--host") && v)
            addr = v, i++;
        else if (!strcmp(a, "--hostname") && v)
            hostname = v, i++;
        else if (!strcmp(a, "--ca") && v)
            ca_path = v, i++;
        else if (!strcmp(a, "--name") && v)
            name = v, i++;
        else if (!strcmp(a, "--messages") && v)
            messages = atoi(v), i++;
        else if (!strcmp(a, "--interval-ms") && v)
            interval = atoi(v), i++;
        else if (!strcmp(a, "--expect") && v)
            expect = atoi(v), i++;
        else if (!strcmp(a, "--seconds") && v)
            seconds = atoi(v), i++;
        else if (!strcmp(a, "--keepalive-ms") && v)
            keepalive = atoi(v), i++;
        else if (!strcmp(a, "--start-delay-ms") && v)
            start_delay = atoi(v), i++;
        else if (!strcmp(a, "--reconnect-ms") && v)
            reconnect_ms = atoi(v), i++;
        else if (!strcmp(a, "--move") && v && sscanf(v, "%d,%d", &move_x, &move_y) == 2)
            do_move = true, i++;
        else if (!strcmp(a, "--attack") && v)
            attack = atol(v), i++;
        else if (!strcmp(a, "--freeze"))
            freeze = true;
        else {
            fprintf(stderr,
                    "usage: %s --port N [--host ADDR] [--hostname NAME] [--ca FILE] [--name NAME]\n"
                    "          [--messages N] [--interval-ms N] [--move X,Y] [--attack ID]\n"
                    "          [--expect N] [--seconds N] [--keepalive-ms N] [--reconnect-ms N]\n"
                    "          [--freeze] [--start-delay-ms N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0) {
        fprintf(stderr, "chat_client: --port is required\n");
        return 2;
    }

    sn_tls_options *opts;
    if (ca_path) {
        sn_x509_cert *ca = sn_x509_cert_new();
        if (sn_x509_cert_load(ca, ca_path) != SN_OK) {
            fprintf(stderr, "chat_client: %s\n", sn_last_error_message());
            sn_x509_cert_free(ca);
            return 1;
        }
        opts = sn_tls_options_client(ca, NULL);
        sn_x509_cert_free(ca);
    } else {
        opts = sn_tls_options_client_unsafe(NULL);
    }
    if (!opts) {
        fprintf(stderr, "chat_client: %s\n", sn_last_error_message());
        return 1;
    }
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    if (keepalive >= 0) cfg.keepalive_interval_ms = keepalive;
    sn_host *host = sn_host_create(&cfg);
    if (!host) {
        fprintf(stderr, "chat_client: %s\n", sn_last_error_message());
        sn_tls_options_free(opts);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    sn_host_peer *server = sn_host_connect(host, addr, port, hostname, opts);
    if (!server) {
        fprintf(stderr, "chat_client: %s\n", sn_last_error_message());
        sn_host_free(host);
        sn_tls_options_free(opts);
        return 1;
    }
    uint64_t end = seconds > 0 ? now_ms() + (uint64_t)seconds * 1000u : 0, next_send = 0;
    uint64_t reconnect_at = 0;
    int sent = 0, chats = 0, status = 0;
    bool connected = false, extras_done = false;
    while (!stop && (!end || now_ms() < end)) {
        if (reconnect_at && now_ms() >= reconnect_at) {
            reconnect_at = 0;
            printf("reconnecting\n");
            server = sn_host_connect(host, addr, port, hostname, opts);
            if (!server) {
                fprintf(stderr, "chat_client: %s\n", sn_last_error_message());
                status = 1;
                break;
            }
        }
        if (connected && sent < messages && now_ms() >= next_send) {
            char text[300];
            int n = snprintf(text + 1, sizeof text - 1, "message %d", sent + 1);
            text[0] = CMD_CHAT;
            if (sn_host_peer_send(server, text, (size_t)n + 1) == SN_OK) sent++;
            next_send = now_ms() + (uint64_t)interval;
        }
        if (connected && sent >= messages && !extras_done) {
            extras_done = true;
            if (do_move) {
                uint8_t m[5] = {CMD_MOVE, (uint8_t)((move_x >> 8) & 0xFF), (uint8_t)(move_x & 0xFF),
                                (uint8_t)((move_y >> 8) & 0xFF), (uint8_t)(move_y & 0xFF)};
                sn_host_peer_send(server, m, sizeof m);
            }
            if (attack >= 0) {
                uint8_t m[5] = {CMD_ATTACK};
                put_u32(m + 1, (uint32_t)attack);
                sn_host_peer_send(server, m, sizeof m);
            }
            if (freeze) {
                printf("freezing: no more service calls\n");
                fflush(stdout);
                while (!stop && (!end || now_ms() < end))
                    usleep(50 * 1000);
                break;
            }
        }
        if (connected && expect >= 0 && chats >= expect && sent >= messages) {
            printf("done: sent %d, received %d chat lines\n", sent, chats);
            break;
        }
        sn_host_event ev;
        int r = sn_host_service(host, &ev, 50);
        if (r < 0) {
            fprintf(stderr, "chat_client: %s\n", sn_last_error_message());
            status = 1;
            break;
        }
        if (r == 0) continue;
        switch (ev.type) {
        case SN_HOST_EVENT_CONNECT:
            connected = true;
            next_send = now_ms() + (uint64_t)start_delay;
            printf("connected to %s:%d (%s)\n", sn_host_peer_get_address(ev.peer),
                   sn_host_peer_get_port(ev.peer), sn_host_peer_get_cipher(ev.peer));
            if (name) {
                char m[64];
                int n = snprintf(m + 1, sizeof m - 1, "%s", name);
                m[0] = CMD_NAME;
                sn_host_peer_send(ev.peer, m, (size_t)n + 1);
            }
            break;
        case SN_HOST_EVENT_RECEIVE:
            on_packet(ev.data, ev.len, &chats);
            break;
        case SN_HOST_EVENT_DISCONNECT:
            connected = false;
            printf("disconnected (%s: %s)\n", sn_host_disconnect_reason_string(ev.reason),
                   ev.message);
            server = NULL;
            if (reconnect_ms > 0) {
                reconnect_at = now_ms() + (uint64_t)reconnect_ms;
            } else {
                fflush(stdout);
                sn_host_free(host);
                sn_tls_options_free(opts);
                return ev.reason == SN_HOST_DISCONNECT_CLOSED ? 0 : 3;
            }
            break;
        default:
            break;
        }
        fflush(stdout);
    }
    if (server && connected && sn_host_peer_get_rtt_ms(server) >= 0)
        printf("rtt %.3f ms\n", sn_host_peer_get_rtt_ms(server));
    printf("bye\n");
    fflush(stdout);
    sn_host_free(host); /* close_notify to the server */
    sn_tls_options_free(opts);
    return status;
}
