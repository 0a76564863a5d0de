/* sealnet tls-server / tls-client: TLS over TCP (Godot: TCPServer + StreamPeerTLS). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* What one client may get per loop turn. Reading until its socket is empty would let one
 * streaming client starve the others and keep the loop from seeing a signal. */
#define READ_BUDGET (64u * 1024u)
/* Replies a client may leave unread (our queue plus the stream's unsent record) before it is
 * closed: one that sends without reading must neither block the loop nor grow memory without
 * bound. A client that reads while it sends stays far below it. */
#define MAX_BACKLOG (1024u * 1024u)
/* Connections taken per loop turn: each costs a handshake. */
#define ACCEPT_BUDGET 32
/* Descriptors left over beyond the default --max-clients: the listening socket, stdio, and what
 * the TLS library and the system open. */
#define FD_RESERVE 32
/* Longest sleep of the loop: the resolution of --seconds. Signals wake it at once. */
#define LOOP_WAIT_MS 50
/* Clients whose socket is quiet are looked at (timeouts, --idle) this often, not every turn:
 * idle clients then cost next to nothing. */
#define SWEEP_MS 200

static void server_help(void)
{
    printf("usage: sealnet tls-server [--port N] [--bind ADDR] [--key FILE --cert FILE]\n"
           "                          [--save-cert FILE] [--echo | --hello] [--idle SEC]\n"
           "                          [--max-clients N] [--seconds N] [--ticket-key-file FILE]\n"
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
           "  --idle SEC     disconnect a client that moved no byte for SEC seconds, handshake\n"
           "                 included (default 60; 0: never)\n"
           "  --max-clients N  clients at once; beyond it new connections wait in the kernel's\n"
           "                 queue (default: the descriptor limit less %d)\n"
           "  --save-cert F  write the server's certificate to F (PEM), for clients' --ca\n"
           "  --force        let --save-cert replace an existing file\n"
           "  --keylog FILE  append session secrets to FILE (NSS key log format, for Wireshark;\n"
           "                 default: $SSLKEYLOGFILE when set)\n"
           "  --trace        print every handshake message sent and received\n"
           "  --seconds N    stop after N seconds (default 0: run until SIGINT/SIGTERM)\n"
           "  --ticket-key-file FILE  session-ticket keys (resumption; docs/scaling.md);\n"
           "                 created with a fresh key when missing\n"
           "\n"
           "Nothing blocks: each client gets at most %u KiB of reading per turn, and a client\n"
           "that leaves more than %u KiB of replies unread is disconnected. Out of descriptors,\n"
           "the server stops accepting until a client leaves.\n"
           "\n"
           "Prints \"listening on tcp port N\", then one line per connect, disconnect (with the\n"
           "reason) and line received; on a terminal also a status line every second.\n",
           FD_RESERVE, READ_BUDGET / 1024u, MAX_BACKLOG / 1024u);
}

typedef struct tls_client {
    sn_tls_stream *s;
    sn_tls_status last;
    char who[80];
    uint64_t last_progress_ms; /* accepted, or last byte moved either way */
    bool due;                  /* its turn comes this time round: socket ready, new, or busy */
    bool busy;                 /* work left over from its budget */
    uint8_t *out;              /* replies not yet taken by the stream: out[head, head + len) */
    size_t head, len, cap;
    line_buf lines;
} tls_client;

/* Queues replies; false when out of memory. The caller bounds the queue (MAX_BACKLOG). */
static bool client_queue(tls_client *tc, const void *data, size_t len)
{
    if (tc->head + tc->len + len > tc->cap) {
        if (tc->len) memmove(tc->out, tc->out + tc->head, tc->len);
        tc->head = 0;
        if (tc->len + len > tc->cap) {
            size_t ncap = tc->cap ? tc->cap : 16384;
            while (ncap < tc->len + len)
                ncap *= 2;
            uint8_t *n = realloc(tc->out, ncap);
            if (!n) return false;
            tc->out = n;
            tc->cap = ncap;
        }
    }
    memcpy(tc->out + tc->head + tc->len, data, len);
    tc->len += len;
    return true;
}

/* Hands queued replies to the stream as far as the socket takes them, never waiting. The bytes
 * moved; a failure shows in the stream's status. */
static size_t client_flush(tls_client *tc)
{
    size_t moved = 0;
    while (tc->len > 0) {
        size_t sent = 0;
        if (sn_tls_stream_put_partial_data(tc->s, tc->out + tc->head, tc->len, &sent) != SN_OK ||
            sent == 0)
            break;
        tc->head += sent;
        tc->len -= sent;
        moved += sent;
    }
    if (tc->len == 0) tc->head = 0;
    return moved;
}

static size_t client_backlog(const tls_client *tc)
{
    return tc->len + sn_tls_stream_get_unsent_bytes(tc->s);
}

static void client_free(tls_client *tc)
{
    sn_tls_stream_free(tc->s); /* close_notify when connected; never waits */
    free(tc->out);
    free(tc);
}

/* The default --max-clients: what the descriptor limit leaves room for. */
static long default_max_clients(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > 1000000 + FD_RESERVE)
        return 1000000;
    return rl.rlim_cur > 2 * FD_RESERVE ? (long)rl.rlim_cur - FD_RESERVE : (long)rl.rlim_cur / 2;
}

int cmd_tls_server(int argc, char **argv)
{
    cli_server_args a;
    int rc = cli_parse_server_args(argc, argv, false, 4243, server_help, &a);
    if (rc != CLI_CONTINUE) return rc;
    const long port = a.port, seconds = a.seconds, idle = a.idle;
    const long max_clients = a.max_clients ? a.max_clients : default_max_clients();
    const bool echo = a.echo;

    sn_crypto_key *key;
    sn_x509_cert *cert;
    rc = cli_server_credentials(a.key_path, a.cert_path, a.save_cert, &key, &cert);
    if (rc != CLI_OK) return rc;
    sn_tls_options *o = cli_server_options(&a, key, cert);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    if (!o) return CLI_FAIL;
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
    /* Clients closed by this server, by reason, and the times accepting paused. */
    uint64_t closed_backlog = 0, closed_idle = 0, pauses_full = 0;
    bool full = false, logged_fd = false, logged_full = false;
    bool busy = false; /* a client has work left over from its budget: do not sleep */
    uint64_t next_sweep = 0;
    char buf[16384];
    while (!cli_stopping() && (!deadline || cli_now_ms() < deadline)) {
        struct pollfd *np = realloc(pfds, (n + 1) * sizeof *np);
        if (np) {
            pfds = np;
            nfds_t k = 0;
            /* Full, or out of descriptors: the listening socket stays readable while
             * connections wait, so it must leave the poll set or the loop spins. */
            if ((long)n < max_clients && !sn_tcp_server_is_accept_paused(srv))
                pfds[k++] = (struct pollfd){sn_tcp_server_get_fd(srv), POLLIN, 0};
            nfds_t first = k;
            for (size_t i = 0; i < n; i++) {
                int fd = sn_tcp_peer_get_fd(sn_tls_stream_get_stream(clients[i]->s));
                short ev = POLLIN;
                if (clients[i]->len || sn_tls_stream_get_unsent_bytes(clients[i]->s)) ev |= POLLOUT;
                pfds[k++] = (struct pollfd){fd, ev, 0}; /* fd -1: ignored by poll */
            }
            int ready = poll(pfds, k, busy ? 0 : LOOP_WAIT_MS); /* EINTR on a signal */
            for (size_t i = 0; i < n; i++)
                clients[i]->due = ready < 0 || pfds[first + i].revents || pfds[first + i].fd < 0 ||
                                  clients[i]->busy;
        } else {
            for (size_t i = 0; i < n; i++)
                clients[i]->due = true;
        }
        busy = false;
        if (cli_now_ms() >= next_sweep) {
            for (size_t i = 0; i < n; i++)
                clients[i]->due = true;
            next_sweep = cli_now_ms() + SWEEP_MS;
        }

        for (int taken = 0; taken < ACCEPT_BUDGET && (long)n < max_clients &&
                            sn_tcp_server_is_connection_available(srv);
             taken++) {
            sn_tcp_peer *tcp = sn_tcp_server_take_connection(srv);
            if (!tcp) {
                if (sn_tcp_server_is_accept_paused(srv)) {
                    if (!logged_fd)
                        cli_log("accept paused: %s; new clients wait until a client leaves "
                                "(logged once, counted in the stopping line)",
                                sn_last_error_message());
                    logged_fd = true;
                }
                break;
            }
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
                client_free(tc);
                continue;
            }
            tc->last = SN_TLS_STATUS_HANDSHAKING;
            tc->last_progress_ms = cli_now_ms();
            tc->due = true;
            clients[n++] = tc;
        }
        if ((long)n >= max_clients && !full) {
            pauses_full++;
            if (!logged_full)
                cli_log("%zu clients (--max-clients): new clients wait until one leaves (logged "
                        "once, counted in the stopping line)",
                        n);
            logged_full = true;
        }
        full = (long)n >= max_clients;

        /* A signal is honoured between two clients: each client's turn is bounded. */
        for (size_t i = 0; i < n && !cli_stopping();) {
            tls_client *tc = clients[i];
            if (!tc->due) {
                i++;
                continue;
            }
            tc->busy = false;
            uint64_t now = cli_now_ms();
            char why[128] = "";
            sn_tls_stream_poll(tc->s);
            sn_tls_status st = sn_tls_stream_get_status(tc->s);
            if (st != tc->last && st == SN_TLS_STATUS_CONNECTED) {
                hs++;
                tc->last_progress_ms = now;
                cli_log("%s connected (%s)", tc->who,
                        sn_tls_stream_get_protocol_description(tc->s));
                if (!echo && !client_queue(tc, GREETING, strlen(GREETING)))
                    snprintf(why, sizeof why, "out of memory for its replies");
            } else if (st != tc->last && tc->last == SN_TLS_STATUS_HANDSHAKING) {
                cli_log("%s handshake failed: %s", tc->who, sn_tls_stream_get_error_message(tc->s));
            }
            if (st == SN_TLS_STATUS_CONNECTED) {
                if (client_flush(tc) > 0) tc->last_progress_ms = now;
                size_t budget = READ_BUDGET;
                while (budget > 0 && !*why) {
                    size_t got = 0;
                    size_t want = budget < sizeof buf ? budget : sizeof buf;
                    if (sn_tls_stream_get_partial_data(tc->s, buf, want, &got) != SN_OK || got == 0)
                        break;
                    budget -= got;
                    bytes_in += got;
                    tc->last_progress_ms = now;
                    char prefix[128];
                    snprintf(prefix, sizeof prefix, "[%8.3f] %s says: ", cli_elapsed(), tc->who);
                    line_buf_add(&tc->lines, prefix, buf, got, false);
                    if (echo && !client_queue(tc, buf, got))
                        snprintf(why, sizeof why, "out of memory for its replies");
                }
                if (!*why && client_flush(tc) > 0) tc->last_progress_ms = now;
                if (!*why && client_backlog(tc) > MAX_BACKLOG) {
                    closed_backlog++;
                    snprintf(why, sizeof why, "not reading its replies (more than %u KiB unread)",
                             MAX_BACKLOG / 1024u);
                }
                /* Left over: bytes already decrypted or read ahead, which poll(2) cannot see. */
                if (budget == 0 || sn_tls_stream_get_available_bytes(tc->s) > 0)
                    busy = tc->busy = true;
            }
            st = sn_tls_stream_get_status(tc->s);
            if (!*why && idle > 0 &&
                (st == SN_TLS_STATUS_CONNECTED || st == SN_TLS_STATUS_HANDSHAKING) &&
                now - tc->last_progress_ms >= (uint64_t)idle * 1000u) {
                closed_idle++;
                snprintf(why, sizeof why, "silent for %ld s (--idle)%s", idle,
                         st == SN_TLS_STATUS_HANDSHAKING ? " during the handshake" : "");
            }
            if (!*why && (st == SN_TLS_STATUS_CONNECTED || st == SN_TLS_STATUS_HANDSHAKING)) {
                tc->last = st;
                i++;
                continue;
            }
            if (*why || tc->last == SN_TLS_STATUS_CONNECTED) {
                char prefix[128];
                snprintf(prefix, sizeof prefix, "[%8.3f] %s says: ", cli_elapsed(), tc->who);
                line_buf_add(&tc->lines, prefix, "", 0, true);
            }
            if (*why) {
                cli_log("%s disconnected: %s", tc->who, why);
            } else if (tc->last == SN_TLS_STATUS_CONNECTED) {
                const char *err = sn_tls_stream_get_error_message(tc->s);
                cli_log("%s disconnected: %s", tc->who,
                        *err ? err : "closed by the client (close_notify)");
            }
            client_free(tc);
            clients[i] = clients[--n];
            /* A descriptor is free again: accept what waits. */
            sn_tcp_server_resume_accepting(srv);
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
    sn_tcp_server_stats ts;
    sn_tcp_server_get_stats(srv, &ts);
    cli_log("stopping: %llu handshakes, %llu bytes in; closed %llu not reading, %llu idle; "
            "accept paused %llu times out of descriptors, %llu times full",
            (unsigned long long)hs, (unsigned long long)bytes_in,
            (unsigned long long)closed_backlog, (unsigned long long)closed_idle,
            (unsigned long long)ts.out_of_resources, (unsigned long long)pauses_full);
    rc = CLI_OK;
out:
    for (size_t i = 0; i < n; i++)
        client_free(clients[i]);
    free(clients);
    free(pfds);
    sn_tcp_server_free(srv);
    sn_tls_options_free(o);
    return rc;
}

/* ---- client --------------------------------------------------------------------------- */

/* Bytes read per turn of the client's loop (see the server's READ_BUDGET). */
#define CLIENT_READ_BUDGET (64u * 1024u)

static void client_help(void)
{
    printf("usage: sealnet tls-client HOST PORT | HOST:PORT | [IPV6]:PORT\n"
           "                          [--ca FILE | --insecure] [--name HOST] [--pin SHA256]\n"
           "                          [--showcerts] [--trace] [--keylog FILE] [--json]\n"
           "                          [--timeout SEC] [--wait MS] [--idle SEC]\n"
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
           "--timeout bounds the TCP connect and the handshake separately; --idle SEC gives up\n"
           "when the server has sent nothing for SEC seconds (default 0: never).\n"
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

    uint64_t last_activity = cli_now_ms(), last_heard = last_activity;
    /* Stdin goes out as it comes: a stream has no packet size, so no line is too long. */
    char in[16384];
    size_t in_len = 0, in_pos = 0;
    bool in_eof = false, ended_with_newline = true;
    char buf[16384];
    bool busy = false; /* reading stopped at the budget: do not sleep */
    while (!cli_stopping()) {
        struct pollfd pfd[2];
        nfds_t nfds = 0;
        int fd = sn_tcp_peer_get_fd(sn_tls_stream_get_stream(s));
        if (fd >= 0) pfd[nfds++] = (struct pollfd){fd, POLLIN, 0};
        if (!in_eof && connected && in_pos == in_len) pfd[nfds++] = (struct pollfd){0, POLLIN, 0};
        poll(pfd, nfds, busy ? 0 : 50);
        busy = false;

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
            last_activity = last_heard = cli_now_ms();
        }
        /* A bounded turn: a server that streams must not keep the loop from stdin, from
         * sending, or from seeing SIGINT/SIGTERM. */
        size_t budget = CLIENT_READ_BUDGET;
        while (budget > 0) {
            size_t got = 0, want = budget < sizeof buf ? budget : sizeof buf;
            if (sn_tls_stream_get_partial_data(s, buf, want, &got) != SN_OK || got == 0) break;
            budget -= got;
            cli_client_received(&c, buf, got, false);
            last_activity = last_heard = cli_now_ms();
        }
        if (connected && a->idle > 0 && cli_now_ms() - last_heard >= (uint64_t)a->idle * 1000u) {
            cli_client_received(&c, "", 0, true);
            cli_fail("disconnected: the server sent nothing for %ld s (--idle)", a->idle);
            goto out;
        }
        if (budget == 0 || sn_tls_stream_get_available_bytes(s) > 0) busy = true;
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
