/* sealnet tls-server / tls-client: TLS over TCP (Godot: TCPServer + StreamPeerTLS). */
#include "cli.h"

#include <errno.h>
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
           "                          [--force] [--keylog FILE] [--trace]\n"
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
           "  --force        let --save-cert replace an existing file\n"
           "  --keylog FILE  append session secrets to FILE (NSS key log format, for Wireshark;\n"
           "                 default: $SSLKEYLOGFILE when set)\n"
           "  --trace        print every handshake message sent and received\n"
           "  --seconds N    stop after N seconds (default 0: run until SIGINT/SIGTERM)\n"
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
    sn_tls_options *o = cli_server_options(&a, key, cert);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    if (!o) return CLI_FAIL;

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
    printf("usage: sealnet tls-client HOST PORT | HOST:PORT | [IPV6]:PORT\n"
           "                          [--ca FILE | --insecure] [--name HOST] [--pin SHA256]\n"
           "                          [--showcerts] [--trace] [--keylog FILE] [--json]\n"
           "                          [--timeout SEC] [--wait MS]\n"
           "\n"
           "Connects over TCP, upgrades to TLS (1.2 or 1.3), prints the handshake result\n"
           "(protocol and cipher) and the server's certificate fingerprint, then sends stdin\n"
           "as it comes (every line with its newline) and prints every line received, however\n"
           "the server splits it into records. Exits when stdin closes (after --wait ms without\n"
           "traffic, to print the replies) or when the server disconnects; with piped input it\n"
           "ends with a summary of what was sent and received.\n"
           "\n"
           "%s"
           "\n"
           "--timeout bounds the TCP connect and the handshake separately.\n"
           "Exit status: 0 done, 1 connection or handshake failure (reason on stderr), 2 bad\n"
           "arguments, 130 interrupted (Ctrl-C).\n",
           cli_client_options_help);
}

int cmd_tls_client(int argc, char **argv)
{
    cli_client c;
    memset(&c, 0, sizeof c);
    c.kind = "TLS";
    int rc = cli_parse_client_args(argc, argv, false, client_help, &c.a);
    if (rc != CLI_CONTINUE) return rc;
    const cli_client_args *a = &c.a;

    sn_tls_options *o = cli_client_options(&c);
    if (!o) return CLI_FAIL;
    rc = CLI_FAIL;
    bool connected = false;
    sn_tls_stream *s = sn_tls_stream_new();
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    if (!s || !tcp) {
        sn_tcp_peer_free(tcp);
        cli_fail("out of memory");
        goto out;
    }
    cli_install_signals();
    cli_client_connecting(&c);
    sn_tcp_peer_set_connect_timeout_ms(tcp, (int)(a->timeout * 1000));
    sn_tcp_peer_set_no_delay(tcp, true);
    if (sn_tcp_peer_connect_to_host(tcp, a->host, (int)a->port) != SN_OK) {
        sn_tcp_peer_free(tcp);
        if (cli_stopping()) {
            rc = cli_client_interrupted(&c, true);
            goto out;
        }
        cli_fail("cannot connect to %s port %ld: %s", a->host, a->port, sn_last_error_message());
        goto out;
    }
    sn_tls_stream_set_handshake_timeout_ms(s, (int)(a->timeout * 1000));
    if (sn_tls_stream_connect_to_stream(s, tcp, a->name ? a->name : a->host, o) != SN_OK) {
        cli_fail("cannot start TLS: %s", sn_last_error_message());
        goto out;
    }

    uint64_t last_activity = cli_now_ms();
    /* Stdin goes out as it comes: a stream has no packet size, so no line is too long. */
    char in[16384];
    size_t in_len = 0, in_pos = 0;
    bool in_eof = false, ended_with_newline = true;
    char buf[16384];
    while (!cli_stopping()) {
        struct pollfd pfd[2];
        nfds_t nfds = 0;
        int fd = sn_tcp_peer_get_fd(sn_tls_stream_get_stream(s));
        if (fd >= 0) pfd[nfds++] = (struct pollfd){fd, POLLIN, 0};
        if (!in_eof && connected && in_pos == in_len) pfd[nfds++] = (struct pollfd){0, POLLIN, 0};
        poll(pfd, nfds, 50);

        sn_tls_stream_poll(s);
        sn_tls_status st = sn_tls_stream_get_status(s);
        if (st == SN_TLS_STATUS_HANDSHAKING) continue;
        if (st == SN_TLS_STATUS_ERROR || st == SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH) {
            cli_client_received(&c, "", 0, true);
            sn_x509_cert *chain = sn_tls_stream_get_peer_certificate(s);
            cli_client_failed(&c, connected, sn_tls_stream_get_error_message(s), chain);
            sn_x509_cert_free(chain);
            goto out;
        }
        if (!connected && st == SN_TLS_STATUS_CONNECTED) {
            sn_x509_cert *chain = sn_tls_stream_get_peer_certificate(s);
            bool ok = cli_client_connected(&c, sn_tls_stream_get_protocol_description(s),
                                           sn_tls_stream_get_peer_fingerprint_sha256(s), chain, 0);
            sn_x509_cert_free(chain);
            if (!ok) goto out;
            connected = true;
            last_activity = cli_now_ms();
        }
        for (;;) {
            size_t got = 0;
            if (sn_tls_stream_get_partial_data(s, buf, sizeof buf, &got) != SN_OK || got == 0)
                break;
            cli_client_received(&c, buf, got, false);
            last_activity = cli_now_ms();
        }
        if (sn_tls_stream_get_status(s) == SN_TLS_STATUS_DISCONNECTED) {
            cli_client_received(&c, "", 0, true);
            const char *why = sn_tls_stream_get_error_message(s);
            cli_client_disconnected(&c, *why ? why : "closed by the server (close_notify)");
            rc = *why ? CLI_FAIL : CLI_OK;
            goto out;
        }
        if (in_pos == in_len && !in_eof) {
            cli_stdin_nonblocking(); /* the loop must go on printing what the server sends */
            ssize_t n = read(0, in, sizeof in);
            if (n > 0) {
                in_len = (size_t)n;
                in_pos = 0;
                for (ssize_t i = 0; i < n; i++)
                    if (in[i] == '\n') c.sent++;
                ended_with_newline = in[n - 1] == '\n';
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                in_eof = true;
                if (!ended_with_newline) {
                    /* The last line goes out with its newline, as every other. */
                    in[0] = '\n';
                    in_len = 1;
                    in_pos = 0;
                    c.sent++;
                    ended_with_newline = true;
                }
            }
        }
        if (in_pos < in_len) {
            size_t sent = 0;
            sn_err e = sn_tls_stream_put_partial_data(s, in + in_pos, in_len - in_pos, &sent);
            if (e != SN_OK && e != SN_ERR_BUSY) {
                cli_fail("send failed: %s", sn_last_error_message());
                goto out;
            }
            in_pos += sent;
            c.sent_bytes += sent;
            last_activity = cli_now_ms();
        }
        if (in_eof && in_pos == in_len && cli_now_ms() - last_activity >= (uint64_t)a->wait_ms) {
            cli_client_received(&c, "", 0, true);
            rc = CLI_OK;
            break;
        }
    }
    if (cli_stopping()) rc = cli_client_interrupted(&c, !connected);
out:
    if (connected) cli_client_summary(&c);
    sn_tls_stream_free(s); /* close_notify when connected */
    sn_tls_options_free(o);
    return rc;
}
