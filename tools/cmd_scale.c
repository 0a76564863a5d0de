/* Scale-out parts of dtls-server / dtls-client (docs/scaling.md): a server on N worker threads
 * sharing one port, the shared secret files, and a client that reconnects and says whether
 * each connection resumed its session. */
#include "cli.h"

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HELLO_REPLY "Hello DTLS client"

bool cli_load_cookie_secret(const char *path, uint8_t out[32])
{
    if (sn_dtls_load_cookie_secret_file(path, out) == SN_OK) return true;
    cli_fail("--cookie-secret-file: %s", sn_last_error_message());
    return false;
}

bool cli_load_ticket_keys(sn_tls_options *o, const char *path)
{
    if (sn_tls_options_load_ticket_key_file(o, path) == SN_OK) return true;
    cli_fail("--ticket-key-file: %s", sn_last_error_message());
    return false;
}

/* ---- server on workers ------------------------------------------------------------------- */

typedef struct scale_server {
    bool echo;
    long idle;
} scale_server;

static void on_event(sn_workers *w, int worker, sn_host *host, const sn_host_event *ev, void *user)
{
    (void)w;
    (void)host;
    const scale_server *s = user;
    char who[80];
    cli_format_addr(sn_host_peer_get_address(ev->peer), sn_host_peer_get_port(ev->peer), who,
                    sizeof who);
    switch (ev->type) {
    case SN_HOST_EVENT_CONNECT:
        cli_log("%s connected (%s, %s) [worker %d]", who, sn_host_peer_get_cipher(ev->peer),
                sn_host_peer_is_session_resumed(ev->peer) ? "resumed" : "full", worker);
        break;
    case SN_HOST_EVENT_RECEIVE: {
        /* One line per packet, written whole: workers print concurrently. */
        flockfile(stdout);
        printf("[%8.3f] %s says: ", cli_elapsed(), who);
        cli_print_payload(stdout, ev->data, ev->len);
        fflush(stdout);
        funlockfile(stdout);
        sn_err e = s->echo ? sn_host_peer_send(ev->peer, ev->data, ev->len)
                           : sn_host_peer_send(ev->peer, HELLO_REPLY, strlen(HELLO_REPLY));
        if (e != SN_OK) cli_log("%s: reply not sent: %s", who, sn_last_error_message());
        break;
    }
    case SN_HOST_EVENT_DISCONNECT:
        cli_log("%s disconnected: %s%s%s [worker %d]", who,
                sn_host_disconnect_reason_string(ev->reason), *ev->message ? ": " : "", ev->message,
                worker);
        break;
    default:
        break;
    }
}

int cli_scale_server(const cli_server_args *a, const sn_crypto_key *key, const sn_x509_cert *cert)
{
    scale_server s = {a->echo, a->idle};
    sn_workers_config cfg;
    sn_workers_default_config(&cfg);
    cfg.workers = (int)a->workers;
    cfg.host.bind_address = a->bind;
    cfg.host.port = (int)a->port;
    cfg.host.idle_timeout_ms = (int)(a->idle * 1000);
    /* Plain DTLS clients (sealnet dtls-client, Godot) do not answer the host's pings. */
    cfg.host.keepalive_interval_ms = 0;
    cfg.key = key;
    cfg.cert = cert;
    cfg.ticket_key_file = a->ticket_key_file;
    cfg.cookie_secret_file = a->cookie_secret_file;
    cfg.on_event = on_event;
    cfg.user = &s;
    sn_workers *w = sn_workers_start(&cfg);
    if (!w) return cli_fail("cannot start the workers: %s", sn_last_error_message());
    cli_install_signals();
    printf("listening on udp port %d\n", sn_workers_get_port(w));
    printf("mode: %s, %d workers (SO_REUSEPORT)%s%s\n",
           a->echo ? "echo" : "hello (answers \"" HELLO_REPLY "\")", sn_workers_count(w),
           a->ticket_key_file ? ", session tickets" : "",
           a->cookie_secret_file ? ", shared cookie secret" : "");
    fflush(stdout);
    uint64_t deadline = a->seconds ? cli_now_ms() + (uint64_t)a->seconds * 1000u : 0;
    bool tty = isatty(1);
    uint64_t next_status = cli_now_ms() + 1000, last_hs = 0, last_in = 0;
    int rc = CLI_OK;
    while (!cli_stopping() && (!deadline || cli_now_ms() < deadline)) {
        if (sn_workers_wait(w, 100)) {
            rc = cli_fail("workers stopped: %s", sn_workers_get_error(w));
            break;
        }
        if (!tty || cli_now_ms() < next_status) continue;
        /* On a terminal, a status line every second: the sums, and how even the workers are. */
        uint64_t peers = 0, hs = 0, in = 0, most = 0, least = UINT64_MAX;
        for (int i = 0; i < sn_workers_count(w); i++) {
            sn_workers_stats st;
            sn_workers_get_stats(w, i, &st);
            peers += st.host.peers_connected_now;
            hs += st.host.handshakes_completed;
            in += st.host.packets_received;
            if (st.host.peers_connected_now > most) most = st.host.peers_connected_now;
            if (st.host.peers_connected_now < least) least = st.host.peers_connected_now;
        }
        cli_log("status: %llu peers (%llu..%llu per worker), %llu handshakes/s, %llu packets/s in",
                (unsigned long long)peers, (unsigned long long)least, (unsigned long long)most,
                (unsigned long long)(hs - last_hs), (unsigned long long)(in - last_in));
        last_hs = hs;
        last_in = in;
        next_status = cli_now_ms() + 1000;
    }
    sn_workers_stop(w);
    sn_workers_wait(w, -1);
    sn_host_stats sum;
    memset(&sum, 0, sizeof sum);
    for (int i = 0; i < sn_workers_count(w); i++) {
        sn_workers_stats st;
        sn_workers_get_stats(w, i, &st);
        cli_log("worker %d: %llu handshakes, %llu packets in, %llu packets out", i,
                (unsigned long long)st.host.handshakes_completed,
                (unsigned long long)st.host.packets_received,
                (unsigned long long)st.host.packets_sent);
        sum.handshakes_completed += st.host.handshakes_completed;
        sum.packets_received += st.host.packets_received;
        sum.packets_sent += st.host.packets_sent;
    }
    sn_tls_ticket_stats t;
    sn_workers_get_ticket_stats(w, &t);
    cli_log("stopping: %llu handshakes (%llu resumed; tickets: %llu issued, %llu unknown key, "
            "%llu rejected), %llu packets in, %llu packets out",
            (unsigned long long)sum.handshakes_completed, (unsigned long long)t.resumed,
            (unsigned long long)t.issued, (unsigned long long)t.unknown_key,
            (unsigned long long)t.rejected, (unsigned long long)sum.packets_received,
            (unsigned long long)sum.packets_sent);
    sn_workers_free(w);
    return rc;
}

/* ---- client that reconnects ------------------------------------------------------------- */

/* One connection from local_port (0: any; set to the port used): handshake, every line sent,
 * the replies awaited. Prints "connection K: resumed|full (...)" or the failure. */
enum { CONN_FAILED = -1, CONN_FULL = 0, CONN_RESUMED = 1 };

static int one_connection(const cli_client_args *a, const sn_tls_options *o, int k, int *local_port,
                          char **lines, size_t nlines)
{
    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *dtls = sn_dtls_peer_new();
    int result = CONN_FAILED;
    if (!udp || !dtls) {
        sn_udp_peer_free(udp);
        sn_dtls_peer_free(dtls);
        cli_fail("out of memory");
        return CONN_FAILED;
    }
    /* The same local port every time: an L4 balancer hashing the client's address and port
     * keeps it on one backend for as long as that backend lives. */
    if ((*local_port && sn_udp_peer_bind(udp, *local_port, NULL, 0) != SN_OK) ||
        sn_udp_peer_connect_to_host(udp, a->host, (int)a->port) != SN_OK) {
        printf("connection %d failed: %s\n", k, sn_last_error_message());
        sn_udp_peer_free(udp);
        sn_dtls_peer_free(dtls);
        return CONN_FAILED;
    }
    *local_port = sn_udp_peer_get_local_port(udp);
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.handshake_timeout_ms = (int)(a->timeout * 1000);
    sn_dtls_peer_set_settings(dtls, &set);
    if (sn_dtls_peer_connect_to_peer(dtls, udp, a->name ? a->name : a->host, o) != SN_OK) {
        printf("connection %d failed: %s\n", k, sn_last_error_message());
        goto out;
    }
    while (!cli_stopping() && sn_dtls_peer_get_status(dtls) == SN_DTLS_STATUS_HANDSHAKING) {
        struct pollfd pfd = {sn_dtls_peer_get_fd(dtls), POLLIN, 0};
        int t = sn_dtls_peer_next_timeout_ms(dtls);
        poll(&pfd, 1, t >= 0 && t < 50 ? t : 50);
        sn_dtls_peer_poll(dtls);
    }
    if (sn_dtls_peer_get_status(dtls) != SN_DTLS_STATUS_CONNECTED) {
        printf("connection %d failed: %s\n", k, sn_dtls_peer_get_error_message(dtls));
        goto out;
    }
    if (!cli_check_pin(a, sn_dtls_peer_get_peer_fingerprint_sha256(dtls))) goto out;
    printf("connection %d: %s (%s)\n", k,
           sn_dtls_peer_is_session_resumed(dtls) ? "resumed" : "full",
           sn_dtls_peer_get_cipher(dtls));
    size_t replies = 0;
    for (size_t i = 0; i < nlines; i++)
        if (sn_dtls_peer_put_packet(dtls, lines[i], strlen(lines[i])) != SN_OK)
            printf("connection %d: not sent: %s\n", k, sn_last_error_message());
    uint64_t end = cli_now_ms() + (uint64_t)(nlines ? a->timeout * 1000 : 0);
    char buf[65536];
    while (replies < nlines && cli_now_ms() < end && !cli_stopping() &&
           sn_dtls_peer_get_status(dtls) == SN_DTLS_STATUS_CONNECTED) {
        struct pollfd pfd = {sn_dtls_peer_get_fd(dtls), POLLIN, 0};
        poll(&pfd, 1, 50);
        sn_dtls_peer_poll(dtls);
        size_t len;
        while (sn_dtls_peer_get_packet(dtls, buf, sizeof buf, &len) == SN_OK) {
            printf("< ");
            cli_print_payload(stdout, buf, len);
            replies++;
        }
    }
    if (replies == nlines)
        result = sn_dtls_peer_is_session_resumed(dtls) ? CONN_RESUMED : CONN_FULL;
    else
        printf("connection %d failed: %zu of %zu replies within %ld s\n", k, replies, nlines,
               a->timeout);
out:
    fflush(stdout);
    sn_dtls_peer_free(dtls); /* close_notify when connected; frees udp */
    return result;
}

int cli_reconnect_client(const cli_client_args *a, const sn_tls_options *o)
{
    /* stdin is read to its end first: every connection sends the same lines. */
    char **lines = NULL;
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0) continue;
        char **more = realloc(lines, (n + 1) * sizeof *lines);
        if (!more) break;
        lines = more;
        lines[n++] = strdup(line);
    }
    free(line);
    cli_install_signals();
    int local_port = 0;
    long counts[3] = {0, 0, 0}; /* failed, full, resumed */
    int last = CONN_FAILED;
    for (long k = 1; k <= a->reconnect + 1 && !cli_stopping(); k++) {
        if (k > 1) usleep((useconds_t)a->interval_ms * 1000u);
        last = one_connection(a, o, (int)k, &local_port, lines, n);
        counts[last + 1]++;
        /* After a failure, a new local port: a balancer that pinned this address and port to a
         * backend that died (nginx keeps a UDP session on its upstream while the client keeps
         * sending) hashes the new one afresh. */
        if (last == CONN_FAILED) local_port = 0;
    }
    printf("done: %ld resumed, %ld full, %ld failed\n", counts[2], counts[1], counts[0]);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    /* Success when the last connection worked: earlier failures (a backend that died) are
     * what reconnecting is for, and are counted above. */
    return last != CONN_FAILED ? CLI_OK : CLI_FAIL;
}
