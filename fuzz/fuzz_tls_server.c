/* fuzz_tls_server: the server side of a TLS stream (sn_tls_stream_accept_stream) fed a fuzzed
 * byte stream, without a network.
 *
 * TCP has no transport hook, so the stream runs over a socketpair(AF_UNIX, SOCK_STREAM): the
 * server's end is wrapped as an accepted TCP peer (sn_tcp_peer_from_accepted, net layer), which
 * is exactly what sn_tcp_server_take_connection hands a real server; the harness owns the other
 * end. No port, no loopback, no listening socket; the clock is the manual one (fuzz_common.h).
 *
 * Control byte:
 *   bit 0  a real client: a client sn_tls_stream (verifying nothing) owns the other end and
 *          completes the handshake first, so the script reaches the record layer of a live
 *          session; otherwise the script's bytes are the client (ClientHello and on).
 *   bit 1  handshake timeout 1 s (the clock operation can reach it).
 * Then operations, each an op byte and a 2-byte length + bytes (fuzz_datagram):
 *   op%6 == 0  bytes written to the server's socket raw (the remote as an attacker)
 *           1  a real client sends the bytes (put_partial_data); in raw mode, as 0
 *           2  the clock advances bytes[0] * 100 ms
 *           3  the server sends the bytes back (put_partial_data)
 *           4  the remote closes its write side (shutdown) or, with a real client, says
 *              close_notify (bytes[0] odd) or drops the connection
 *           5  the server disconnects
 * After each operation both ends are polled and read.
 *
 * Invariants (abort on violation): the status is a known value; ERROR carries a message; once
 * ended (DISCONNECTED / ERROR after having started) it never comes back; a real client's bytes
 * reach the server's reader exactly, in order, while no raw byte was injected; reads and writes
 * give documented errors only; memory held stays under a bound per session. */
#include "fuzz_common.h"
#include "tcp_internal.h" /* sn_tcp_peer_from_accepted: white-box, as tests do */

#include <sys/socket.h>

static sn_tls_options *server_opts, *client_opts;
static size_t session_bound = 192 * 1024; /* bytes per stream (TLS state and 16 KiB buffers) */
static int debug;

static void setup(void)
{
    fuzz_platform_init();
    debug = getenv("FUZZ_DEBUG") != NULL;
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    server_opts = cert ? sn_tls_options_server(key, cert) : NULL;
    client_opts = sn_tls_options_client_unsafe(NULL);
    FUZZ_CHECK(server_opts && client_opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
}

typedef struct end {
    sn_tls_stream *s;
    sn_tls_status last;
    bool started, ended;
} end;

static void check_status(end *e)
{
    if (!e->s) return;
    sn_tls_status st = sn_tls_stream_get_status(e->s);
    FUZZ_CHECK(st <= SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH);
    if (st == SN_TLS_STATUS_ERROR || st == SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH)
        FUZZ_CHECK(*sn_tls_stream_get_error_message(e->s));
    if (e->ended) FUZZ_CHECK(st != SN_TLS_STATUS_HANDSHAKING && st != SN_TLS_STATUS_CONNECTED);
    if (st == SN_TLS_STATUS_HANDSHAKING || st == SN_TLS_STATUS_CONNECTED) e->started = true;
    if (e->started && st != SN_TLS_STATUS_HANDSHAKING && st != SN_TLS_STATUS_CONNECTED)
        e->ended = true;
    FUZZ_CHECK(sn_tls_stream_get_available_bytes(e->s) >= 0);
    e->last = st;
}

/* What the real client sent and the server has not read yet (only while no raw byte went in). */
static uint8_t expect[1 << 16];
static size_t expect_len;
static bool exact;

/* Reads what the server has; checks it against what the real client sent. */
static void server_read(end *srv)
{
    uint8_t buf[4096];
    for (int k = 0; k < 64; k++) {
        size_t got = 0;
        sn_err e = sn_tls_stream_get_partial_data(srv->s, buf, sizeof buf, &got);
        FUZZ_CHECK(e == SN_OK || e == SN_ERR_FILE_EOF || e == SN_ERR_CONNECTION_ERROR ||
                   e == SN_ERR_UNCONFIGURED);
        FUZZ_CHECK(got <= sizeof buf);
        if (got && exact) {
            FUZZ_CHECK(got <= expect_len && memcmp(buf, expect, got) == 0);
            memmove(expect, expect + got, expect_len - got);
            expect_len -= got;
        }
        if (e != SN_OK || got == 0) break;
    }
}

static void client_read(end *cli)
{
    uint8_t buf[4096];
    for (int k = 0; k < 64; k++) {
        size_t got = 0;
        sn_err e = sn_tls_stream_get_partial_data(cli->s, buf, sizeof buf, &got);
        if (e != SN_OK || got == 0) break;
    }
}

static void drain_fd(int fd)
{
    uint8_t buf[16384];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

static void step(end *srv, end *cli, int raw_fd)
{
    for (int k = 0; k < 4; k++) {
        sn_tls_stream_poll(srv->s);
        check_status(srv);
        server_read(srv);
        if (cli->s) {
            sn_tls_stream_poll(cli->s);
            check_status(cli);
            client_read(cli);
        } else if (raw_fd >= 0) {
            drain_fd(raw_fd); /* what the server said: not needed */
        }
    }
}

static void check_memory(size_t base, bool with_client)
{
    size_t live = fuzz_mem_live();
    size_t allowed = base + (with_client ? 2 : 1) * session_bound;
    if (debug) fprintf(stderr, "memory %zu over the base\n", live - base);
    FUZZ_CHECK(live <= allowed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server_opts) setup();
    fuzz_reader r = {data, data + size};
    uint8_t ctl;
    if (!fuzz_u8(&r, &ctl)) return 0;
    size_t base = fuzz_mem_live();

    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(40000)};
    remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    end srv = {0}, cli = {0};
    srv.s = sn_tls_stream_new();
    FUZZ_CHECK(srv.s);
    sn_tcp_peer *tcp = sn_tcp_peer_from_accepted(sv[0], (const struct sockaddr *)&remote);
    FUZZ_CHECK(tcp);
    FUZZ_CHECK(sn_tls_stream_accept_stream(srv.s, tcp, server_opts) == SN_OK);
    if (ctl & 2) FUZZ_CHECK(sn_tls_stream_set_handshake_timeout_ms(srv.s, 1000) == SN_OK);
    check_status(&srv);
    int raw_fd = sv[1];
    expect_len = 0;
    exact = true;
    if (ctl & 1) {
        cli.s = sn_tls_stream_new();
        sn_tcp_peer *ct = sn_tcp_peer_from_accepted(sv[1], (const struct sockaddr *)&remote);
        FUZZ_CHECK(cli.s && ct);
        FUZZ_CHECK(sn_tls_stream_connect_to_stream(cli.s, ct, "localhost", client_opts) == SN_OK);
        /* raw_fd stays usable: the client's TCP peer owns it, the harness writes beside it */
        for (int k = 0; k < 8 && (sn_tls_stream_get_status(srv.s) == SN_TLS_STATUS_HANDSHAKING ||
                                  sn_tls_stream_get_status(cli.s) == SN_TLS_STATUS_HANDSHAKING);
             k++)
            step(&srv, &cli, -1);
        FUZZ_CHECK(sn_tls_stream_get_status(srv.s) == SN_TLS_STATUS_CONNECTED);
        FUZZ_CHECK(sn_tls_stream_get_status(cli.s) == SN_TLS_STATUS_CONNECTED);
    }

    uint8_t op;
    const uint8_t *d;
    size_t len;
    bool raw_open = true;
    while (fuzz_u8(&r, &op) && fuzz_datagram(&r, &d, &len)) {
        int kind = op % 6;
        if (kind == 1 && !cli.s) kind = 0;
        switch (kind) {
        case 0:
            if (!raw_open) break;
            if (len && send(raw_fd, d, len, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) exact = false;
            break;
        case 1: {
            size_t sent = 0;
            sn_err e = sn_tls_stream_put_partial_data(cli.s, d, len, &sent);
            FUZZ_CHECK(e == SN_OK || e == SN_ERR_UNCONFIGURED || e == SN_ERR_CONNECTION_ERROR);
            FUZZ_CHECK(sent <= len);
            if (e == SN_OK && exact && expect_len + sent <= sizeof expect) {
                memcpy(expect + expect_len, d, sent);
                expect_len += sent;
            } else if (sent) {
                exact = false;
            }
            break;
        }
        case 2:
            sn_test_clock_advance(len ? (uint64_t)d[0] * 100 : 100);
            break;
        case 3: {
            size_t sent = 0;
            sn_err e = sn_tls_stream_put_partial_data(srv.s, d, len, &sent);
            FUZZ_CHECK(e == SN_OK || e == SN_ERR_UNCONFIGURED || e == SN_ERR_CONNECTION_ERROR);
            FUZZ_CHECK(sent <= len);
            break;
        }
        case 4:
            if (cli.s && len && (d[0] & 1)) {
                sn_tls_stream_disconnect_from_stream(cli.s);
                check_status(&cli);
                raw_open = false;
            } else if (raw_open) {
                shutdown(raw_fd, SHUT_WR);
                raw_open = false;
            }
            break;
        case 5: {
            /* As Godot: a failed stream keeps its ERROR (and its message); any other ends
             * DISCONNECTED. */
            sn_tls_status before = sn_tls_stream_get_status(srv.s);
            sn_tls_stream_disconnect_from_stream(srv.s);
            check_status(&srv);
            sn_tls_status after = sn_tls_stream_get_status(srv.s);
            FUZZ_CHECK(after == SN_TLS_STATUS_DISCONNECTED ||
                       (after == before && (before == SN_TLS_STATUS_ERROR ||
                                            before == SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH)));
            break;
        }
        }
        step(&srv, &cli, cli.s ? -1 : raw_fd);
        check_memory(base, cli.s != NULL);
        if (debug)
            fprintf(stderr, "op %d len %zu: server %d client %d %s\n", kind, len, (int)srv.last,
                    (int)cli.last, sn_tls_stream_get_error_message(srv.s));
    }
    sn_tls_stream_free(srv.s);
    if (cli.s)
        sn_tls_stream_free(cli.s); /* closes sv[1] */
    else
        close(sv[1]);
    return 0;
}
