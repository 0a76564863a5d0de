/* sealnet tls-server / tls-client: TLS over TCP (Godot: TCPServer + StreamPeerTLS). */
#include "cli.h"

#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GREETING "Hello from the server!\n"

/* Prints each complete line of a byte stream with a prefix; keeps the unterminated rest. */
typedef struct line_buf {
    char data[16384];
    size_t len;
} line_buf;

static void line_buf_add(line_buf *lb, const char *prefix, const char *data, size_t len, bool flush)
{
    while (len > 0 || flush) {
        size_t room = sizeof lb->data - lb->len;
        size_t take = len < room ? len : room;
        memcpy(lb->data + lb->len, data, take);
        lb->len += take;
        data += take;
        len -= take;
        char *start = lb->data;
        char *nl;
        while ((nl = memchr(start, '\n', lb->len - (size_t)(start - lb->data)))) {
            printf("%s", prefix);
            cli_print_payload(stdout, start, (size_t)(nl - start));
            start = nl + 1;
        }
        size_t rest = lb->len - (size_t)(start - lb->data);
        if ((flush && len == 0) || rest == sizeof lb->data) {
            if (rest > 0) {
                printf("%s", prefix);
                cli_print_payload(stdout, start, rest);
            }
            rest = 0;
            start = lb->data + lb->len;
        }
        memmove(lb->data, start, rest);
        lb->len = rest;
        if (flush && len == 0) break;
    }
}

/* ---- server --------------------------------------------------------------------------- */

static void server_help(void)
{
    printf("usage: sealnet tls-server [--port N] [--bind ADDR] [--key FILE --cert FILE]\n"
           "                          [--save-cert FILE] [--echo | --hello] [--seconds N]\n"
           "                          [--ticket-key-file FILE]\n"
           "\n"
           "Runs a TLS (1.2/1.3) server over TCP. Without --key/--cert it generates an EC P-256\n"
           "key and a self-signed certificate for CN=localhost and prints its SHA-256\n"
           "fingerprint.\n"
           "\n"
           "  --port N       TCP port to listen on (default 4243; 0: any free port)\n"
           "  --bind ADDR    local address (default '*': every address, IPv6 dual-stack)\n"
           "  --key FILE     PEM private key (with --cert)\n"
           "  --cert FILE    PEM certificate or chain, leaf first (with --key)\n"
           "  --hello        greet every client with \"Hello from the server!\" (default)\n"
           "  --echo         send every byte back unchanged\n"
           "  --save-cert F  write the server's certificate to F (PEM), for clients' --ca\n"
           "  --seconds N    stop after N seconds (default 0: run until SIGINT/SIGTERM)\n"
           "  --ticket-key-file FILE  session-ticket keys (resumption; docs/scaling.md);\n"
           "                 created with a fresh key when missing\n"
           "\n"
           "Prints \"listening on tcp port N\", then one line per connect, disconnect (with the\n"
           "reason) and line received; on a terminal also a status line every second.\n");
}

typedef struct tls_client {
    sn_tls_stream *s;
    sn_tls_status last;
    char who[80];
    line_buf lines;
} tls_client;

int cmd_tls_server(int argc, char **argv)
{
    cli_server_args a;
    int rc = cli_parse_server_args(argc, argv, false, 4243, server_help, &a);
    if (rc != CLI_CONTINUE) return rc;
    const long port = a.port, seconds = a.seconds;
    const bool echo = a.echo;

    sn_crypto_key *key;
    sn_x509_cert *cert;
    rc = cli_server_credentials(a.key_path, a.cert_path, a.save_cert, &key, &cert);
    if (rc != CLI_OK) return rc;
    sn_tls_options *o = sn_tls_options_server(key, cert);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    if (!o) return cli_fail("key and certificate unusable: %s", sn_last_error_message());
    if (a.ticket_key_file && !cli_load_ticket_keys(o, a.ticket_key_file)) {
        sn_tls_options_free(o);
        return CLI_FAIL;
    }

    rc = CLI_FAIL;
    tls_client **clients = NULL;
    size_t n = 0, cap = 0;
    struct pollfd *pfds = NULL;
    sn_tcp_server *srv = sn_tcp_server_new();
    if (!srv) {
        cli_fail("out of memory");
        goto out;
    }
    if (sn_tcp_server_listen(srv, (int)port, a.bind) != SN_OK) {
        cli_fail("cannot listen on tcp port %ld: %s", port, sn_last_error_message());
        goto out;
    }
    cli_install_signals();
    printf("listening on tcp port %d\n", sn_tcp_server_get_local_port(srv));
    printf("mode: %s\n", echo ? "echo" : "hello (greets \"Hello from the server!\")");
    fflush(stdout);

    bool tty = isatty(1);
    uint64_t deadline = seconds ? cli_now_ms() + (uint64_t)seconds * 1000u : 0;
    uint64_t next_status = cli_now_ms() + 1000;
    uint64_t bytes_in = 0, hs = 0, last_in = 0, last_hs = 0;
    char buf[16384];
    while (!cli_stopping() && (!deadline || cli_now_ms() < deadline)) {
        struct pollfd *np = realloc(pfds, (n + 1) * sizeof *np);
        if (np) {
            pfds = np;
            nfds_t k = 0;
            pfds[k++] = (struct pollfd){sn_tcp_server_get_fd(srv), POLLIN, 0};
            for (size_t i = 0; i < n; i++) {
                int fd = sn_tcp_peer_get_fd(sn_tls_stream_get_stream(clients[i]->s));
                if (fd >= 0) pfds[k++] = (struct pollfd){fd, POLLIN, 0};
            }
            poll(pfds, k, 20);
        }

        while (sn_tcp_server_is_connection_available(srv)) {
            sn_tcp_peer *tcp = sn_tcp_server_take_connection(srv);
            if (!tcp) break;
            tls_client *tc = calloc(1, sizeof *tc);
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                tls_client **nc = realloc(clients, ncap * sizeof *nc);
                if (nc) {
                    clients = nc;
                    cap = ncap;
                }
            }
            if (!tc || n == cap || !(tc->s = sn_tls_stream_new())) {
                free(tc);
                sn_tcp_peer_free(tcp);
                continue;
            }
            cli_format_addr(sn_tcp_peer_get_connected_host(tcp),
                            sn_tcp_peer_get_connected_port(tcp), tc->who, sizeof tc->who);
            if (sn_tls_stream_accept_stream(tc->s, tcp, o) != SN_OK) {
                cli_log("%s: cannot start TLS: %s", tc->who, sn_last_error_message());
                sn_tls_stream_free(tc->s);
                free(tc);
                continue;
            }
            tc->last = SN_TLS_STATUS_HANDSHAKING;
            clients[n++] = tc;
        }

        for (size_t i = 0; i < n;) {
            tls_client *tc = clients[i];
            sn_tls_stream_poll(tc->s);
            sn_tls_status st = sn_tls_stream_get_status(tc->s);
            if (st != tc->last && st == SN_TLS_STATUS_CONNECTED) {
                hs++;
                cli_log("%s connected (%s)", tc->who,
                        sn_tls_stream_get_protocol_description(tc->s));
                if (!echo && sn_tls_stream_put_data(tc->s, GREETING, strlen(GREETING)) != SN_OK)
                    cli_log("%s: greeting not sent: %s", tc->who, sn_last_error_message());
            } else if (st != tc->last && tc->last == SN_TLS_STATUS_HANDSHAKING) {
                cli_log("%s handshake failed: %s", tc->who, sn_tls_stream_get_error_message(tc->s));
            }
            for (;;) {
                size_t got = 0;
                if (sn_tls_stream_get_partial_data(tc->s, buf, sizeof buf, &got) != SN_OK ||
                    got == 0)
                    break;
                bytes_in += got;
                char prefix[128];
                snprintf(prefix, sizeof prefix, "[%8.3f] %s says: ", cli_elapsed(), tc->who);
                line_buf_add(&tc->lines, prefix, buf, got, false);
                if (echo && sn_tls_stream_put_data(tc->s, buf, got) != SN_OK)
                    cli_log("%s: echo not sent: %s", tc->who, sn_last_error_message());
            }
            st = sn_tls_stream_get_status(tc->s);
            if (st == SN_TLS_STATUS_CONNECTED || st == SN_TLS_STATUS_HANDSHAKING) {
                tc->last = st;
                i++;
                continue;
            }
            if (tc->last == SN_TLS_STATUS_CONNECTED) {
                char prefix[128];
                snprintf(prefix, sizeof prefix, "[%8.3f] %s says: ", cli_elapsed(), tc->who);
                line_buf_add(&tc->lines, prefix, "", 0, true);
                const char *why = sn_tls_stream_get_error_message(tc->s);
                cli_log("%s disconnected: %s", tc->who,
                        *why ? why : "closed by the client (close_notify)");
            }
            sn_tls_stream_free(tc->s);
            free(tc);
            clients[i] = clients[--n];
        }

        uint64_t now = cli_now_ms();
        if (now >= next_status) {
            if (tty)
                cli_log("status: %zu clients, %llu bytes/s in, %llu handshakes/s", n,
                        (unsigned long long)(bytes_in - last_in),
                        (unsigned long long)(hs - last_hs));
            last_in = bytes_in;
            last_hs = hs;
            next_status = now + 1000;
        }
    }
    cli_log("stopping: %llu handshakes, %llu bytes in", (unsigned long long)hs,
            (unsigned long long)bytes_in);
    rc = CLI_OK;
out:
    for (size_t i = 0; i < n; i++) {
        sn_tls_stream_free(clients[i]->s);
        free(clients[i]);
    }
    free(clients);
    free(pfds);
    sn_tcp_server_free(srv);
    sn_tls_options_free(o);
    return rc;
}

/* ---- client --------------------------------------------------------------------------- */

static void client_help(void)
{
    printf(
        "usage: sealnet tls-client HOST PORT [--ca FILE | --insecure] [--name HOST] [--pin "
        "SHA256]\n"
        "                          [--timeout SEC] [--wait MS]\n"
        "\n"
        "Connects over TCP, upgrades to TLS, prints the handshake result (protocol and\n"
        "cipher), then sends every line read from stdin (with its newline) and prints every\n"
        "line received. Exits when stdin closes (after --wait ms without traffic, to print\n"
        "the replies) or when the server disconnects.\n"
        "\n"
        "  --ca FILE      trust the certificate(s) in FILE instead of the system CAs\n"
        "  --insecure     verify nothing (the server's certificate is not checked)\n"
        "  --name HOST    the name the certificate must carry, also sent as SNI (default: HOST)\n"
        "  --pin SHA256   accept only a server certificate with this SHA-256 fingerprint\n"
        "                 (as dtls-server/tls-server print it); with --insecure it replaces\n"
        "                 CA verification\n"
        "  --timeout SEC  give up connecting + handshake after SEC seconds each (default 10)\n"
        "  --wait MS      after stdin closes, wait this long for replies (default 1000)\n"
        "\n"
        "Exit status: 0 done, 1 connection or handshake failure (reason on stderr), 2 bad\n"
        "arguments.\n");
}

int cmd_tls_client(int argc, char **argv)
{
    cli_client_args a;
    int rc = cli_parse_client_args(argc, argv, client_help, &a);
    if (rc != CLI_CONTINUE) return rc;
    if (a.reconnect) return cli_usage_error("--reconnect is a dtls-client option");
    const char *host = a.host;
    const long port = a.port;

    sn_tls_options *o = cli_client_options(a.ca, a.insecure, a.name);
    if (!o) return CLI_FAIL;
    rc = CLI_FAIL;
    sn_tls_stream *s = sn_tls_stream_new();
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    if (!s || !tcp) {
        sn_tcp_peer_free(tcp);
        cli_fail("out of memory");
        goto out;
    }
    sn_tcp_peer_set_connect_timeout_ms(tcp, (int)(a.timeout * 1000));
    sn_tcp_peer_set_no_delay(tcp, true);
    if (sn_tcp_peer_connect_to_host(tcp, host, (int)port) != SN_OK) {
        sn_tcp_peer_free(tcp);
        cli_fail("cannot connect to %s port %ld: %s", host, port, sn_last_error_message());
        goto out;
    }
    sn_tls_stream_set_handshake_timeout_ms(s, (int)(a.timeout * 1000));
    if (sn_tls_stream_connect_to_stream(s, tcp, a.name ? a.name : host, o) != SN_OK) {
        cli_fail("cannot start TLS: %s", sn_last_error_message());
        goto out;
    }
    cli_install_signals();
    printf("connecting to %s port %ld (TLS, %s)\n", host, port,
           a.insecure ? "certificate not verified"
           : a.ca     ? "verified against --ca"
                      : "system CAs");
    fflush(stdout);

    cli_lines in;
    memset(&in, 0, sizeof in);
    line_buf lines;
    lines.len = 0;
    bool connected = false;
    uint64_t last_activity = cli_now_ms();
    char line[65537];
    char buf[16384];
    while (!cli_stopping()) {
        struct pollfd pfd[2];
        nfds_t nfds = 0;
        int fd = sn_tcp_peer_get_fd(sn_tls_stream_get_stream(s));
        if (fd >= 0) pfd[nfds++] = (struct pollfd){fd, POLLIN, 0};
        if (!in.eof && connected) pfd[nfds++] = (struct pollfd){0, POLLIN, 0};
        poll(pfd, nfds, 50);

        sn_tls_stream_poll(s);
        sn_tls_status st = sn_tls_stream_get_status(s);
        if (st == SN_TLS_STATUS_HANDSHAKING) continue;
        if (st == SN_TLS_STATUS_ERROR || st == SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH) {
            line_buf_add(&lines, "< ", "", 0, true);
            cli_fail("%s: %s", connected ? "connection failed" : "handshake failed",
                     sn_tls_stream_get_error_message(s));
            goto out;
        }
        if (!connected && st == SN_TLS_STATUS_CONNECTED) {
            if (!cli_check_pin(&a, sn_tls_stream_get_peer_fingerprint_sha256(s))) goto out;
            connected = true;
            printf("connected: %s\n", sn_tls_stream_get_protocol_description(s));
            fflush(stdout);
            last_activity = cli_now_ms();
        }
        for (;;) {
            size_t got = 0;
            if (sn_tls_stream_get_partial_data(s, buf, sizeof buf, &got) != SN_OK || got == 0)
                break;
            line_buf_add(&lines, "< ", buf, got, false);
            last_activity = cli_now_ms();
        }
        if (sn_tls_stream_get_status(s) == SN_TLS_STATUS_DISCONNECTED) {
            line_buf_add(&lines, "< ", "", 0, true);
            const char *why = sn_tls_stream_get_error_message(s);
            printf("disconnected: %s\n", *why ? why : "closed by the server (close_notify)");
            rc = *why ? CLI_FAIL : CLI_OK;
            goto out;
        }
        cli_lines_read(&in);
        size_t len;
        while (cli_lines_next(&in, line, sizeof line - 1, &len)) {
            line[len++] = '\n';
            if (sn_tls_stream_put_data(s, line, len) != SN_OK) {
                cli_fail("send failed: %s", sn_last_error_message());
                goto out;
            }
            last_activity = cli_now_ms();
        }
        if (in.eof && in.len == 0 && cli_now_ms() - last_activity >= (uint64_t)a.wait_ms) {
            line_buf_add(&lines, "< ", "", 0, true);
            rc = CLI_OK;
            break;
        }
    }
    if (cli_stopping()) rc = CLI_OK;
out:
    sn_tls_stream_free(s); /* close_notify when connected */
    sn_tls_options_free(o);
    return rc;
}
