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
 * After each operation both ends are polled and read, in rounds until nothing is left to move
 * (no bytes or EOF waiting on a live stream's socket, nothing decrypted or stashed), at most 4.
 *
 * Invariants (abort on violation): the status is a known value; ERROR carries a message; once
 * ended (DISCONNECTED / ERROR after having started) it never comes back; a real client's bytes
 * reach the server's reader exactly, in order, while no raw byte was injected; reads and writes
 * give documented errors only; memory held stays under a bound per session.
 *
 * What lives across inputs: the options, key and certificate and the TLS contexts behind them,
 * and a session ticket in the client options. The server has fixed ticket keys and the client
 * always connects as "localhost" from the same address and port, so a real client resumes (no
 * certificate to decode or verify, no signature; TLS 1.3 still does its key exchange). The
 * ticket comes from one full handshake before the first input that needs it and outlives
 * clients that fail (the backend keeps TLS 1.3 tickets apart from the connections using them),
 * and each resumed handshake brings a fresh one, so every input with a real client starts the
 * same way: a connected stream pair as a resumed handshake leaves it. Each input makes its own
 * socket pair and streams, except that a real-client input that leaves its pair exactly as a
 * new one would be hands it to the next real-client input (see `kept`). Replayed alone
 * (`fuzz_tls_server -runs=0 FILE`) an input gets a new pair and meets the same state.
 * FUZZ_STATS=1 prints the warm-ups, full and resumed handshakes and reused pairs. */
#include "fuzz_common.h"
#include "tcp_internal.h" /* sn_tcp_peer_from_accepted: white-box, as tests do */

#include <poll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <sys/socket.h>

static sn_tls_options *server_opts, *client_opts;
static size_t session_bound = 192 * 1024; /* bytes per stream (TLS state and 16 KiB buffers) */
static int debug;
static bool tickets;     /* the backend resumes sessions from tickets */
static bool have_ticket; /* the client options hold a ticket the server will take */
/* FUZZ_STATS=1: what the inputs cost, printed after 2^k inputs (libFuzzer exits without
 * running atexit handlers): counts, and the thread CPU time of each kind of input (raw inputs
 * the server answered, i.e. it parsed a ClientHello and wrote its flight, or not; real-client
 * inputs on a new pair, whose handshake is timed apart, or on a kept pair). */
static bool stats;
static uint64_t inputs, warmups, handshakes_full, handshakes_resumed, pairs_reused, rounds;
enum { K_RAW, K_RAW_ANSWERED, K_REAL_NEW, K_REAL_KEPT, K_HANDSHAKE, K_COUNT };
static uint64_t kind_n[K_COUNT], kind_ns[K_COUNT];
static size_t answered; /* bytes this raw input's server wrote (a flight: > 200, an alert: 7) */

static uint64_t cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void print_stats(void)
{
    static const char *const names[K_COUNT] = {"raw", "raw answered with a flight",
                                               "real-client new pair", "real-client kept pair",
                                               "of which handshake"};
    fprintf(stderr,
            "fuzz_tls_server: %llu inputs, %llu warm-up handshakes, real-client handshakes: %llu "
            "full, %llu resumed, %llu pairs reused, %llu poll rounds; CPU us per input:",
            (unsigned long long)inputs, (unsigned long long)warmups,
            (unsigned long long)handshakes_full, (unsigned long long)handshakes_resumed,
            (unsigned long long)pairs_reused, (unsigned long long)rounds);
    for (int k = 0; k < K_COUNT; k++)
        fprintf(stderr, " %s %llu x %.1f;", names[k], (unsigned long long)kind_n[k],
                kind_n[k] ? (double)kind_ns[k] / (double)kind_n[k] / 1000.0 : 0.0);
    fputc('\n', stderr);
}

static void setup(void)
{
    fuzz_platform_init();
    debug = getenv("FUZZ_DEBUG") != NULL;
    server_opts = fuzz_server_options();
    client_opts = sn_tls_options_client_unsafe(NULL);
    FUZZ_CHECK(client_opts);
    tickets = fuzz_fixed_ticket_keys(server_opts);
    stats = getenv("FUZZ_STATS") != NULL;
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
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        answered += (size_t)n;
}

/* Whether another round of step could change anything: a live stream has bytes (or an EOF)
 * waiting on its socket, decrypted bytes unread, or a record it could not flush. A round
 * without any of these polls and reads sockets that have nothing (what the rounds after the
 * exchange settled used to do, several system calls and TLS library calls each). */
static bool busy(const end *srv, const end *cli)
{
    struct pollfd p[2];
    nfds_t n = 0;
    const end *ends[2] = {srv, cli};
    for (int i = 0; i < 2; i++) {
        sn_tls_stream *s = ends[i]->s;
        if (!s) continue;
        sn_tls_status st = sn_tls_stream_get_status(s);
        if (st != SN_TLS_STATUS_HANDSHAKING && st != SN_TLS_STATUS_CONNECTED) continue;
        if (sn_tls_stream_get_unsent_bytes(s) || sn_tls_stream_get_available_bytes(s) > 0)
            return true;
        int fd = sn_tcp_peer_get_fd(sn_tls_stream_get_stream(s));
        if (fd >= 0) p[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    return n && poll(p, n, 0) > 0;
}

/* Up to 4 rounds of: poll and read the server, then the client (or drain the raw end); rounds
 * stop early once nothing is left to move (busy), as further rounds would find nothing. */
static void step(end *srv, end *cli, int raw_fd)
{
    for (int k = 0; k < 4; k++) {
        if (k && !busy(srv, cli)) break;
        rounds++;
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

/* A server stream on one end of a fresh socket pair (sv[0]); with a client, a client stream
 * owning the other end, the handshake done. */
static void open_pair(end *srv, end *cli, int sv[2], bool with_client, bool short_timeout)
{
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    /* Always the same remote: the client's ticket is kept under "localhost:40000". */
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(40000)};
    remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *srv = (end){0};
    *cli = (end){0};
    srv->s = sn_tls_stream_new();
    FUZZ_CHECK(srv->s);
    sn_tcp_peer *tcp = sn_tcp_peer_from_accepted(sv[0], (const struct sockaddr *)&remote);
    FUZZ_CHECK(tcp);
    FUZZ_CHECK(sn_tls_stream_accept_stream(srv->s, tcp, server_opts) == SN_OK);
    if (short_timeout) FUZZ_CHECK(sn_tls_stream_set_handshake_timeout_ms(srv->s, 1000) == SN_OK);
    check_status(srv);
    if (!with_client) return;
    cli->s = sn_tls_stream_new();
    sn_tcp_peer *ct = sn_tcp_peer_from_accepted(sv[1], (const struct sockaddr *)&remote);
    FUZZ_CHECK(cli->s && ct);
    FUZZ_CHECK(sn_tls_stream_connect_to_stream(cli->s, ct, "localhost", client_opts) == SN_OK);
    /* sv[1] stays usable: the client's TCP peer owns it, the harness writes beside it */
    for (int k = 0; k < 8 && (sn_tls_stream_get_status(srv->s) == SN_TLS_STATUS_HANDSHAKING ||
                              sn_tls_stream_get_status(cli->s) == SN_TLS_STATUS_HANDSHAKING);
         k++)
        step(srv, cli, -1);
    FUZZ_CHECK(sn_tls_stream_get_status(srv->s) == SN_TLS_STATUS_CONNECTED);
    FUZZ_CHECK(sn_tls_stream_get_status(cli->s) == SN_TLS_STATUS_CONNECTED);
    if (sn_tls_stream_is_session_resumed(cli->s))
        handshakes_resumed++;
    else
        handshakes_full++;
}

/* One full handshake whose ticket (TLS 1.3 sends it after the handshake: the client reads it
 * in step) the next real client resumes from. */
static void warm_up(void)
{
    end srv, cli;
    int sv[2];
    warmups++;
    open_pair(&srv, &cli, sv, true, false);
    step(&srv, &cli, -1);
    sn_tls_stream_free(srv.s);
    sn_tls_stream_free(cli.s); /* closes sv[1], after its close_notify */
    have_ticket = true;
}

/* A real-client input that leaves its pair as a new one would be (both ends connected, every
 * byte sent read, nothing buffered or in flight, no raw byte ever injected, nothing closed)
 * hands it to the next real-client input instead of freeing it: a TLS 1.3 handshake, resumed
 * or not, costs more than most inputs (key exchange, key schedule). What differs from a new
 * pair is invisible to the script: record sequence numbers, and the manual clock, which
 * matters only while handshaking. The memory base is the one from before the pair existed, as
 * for a new pair, so a replay alone checks the same bound. */
static struct {
    end srv, cli;
    int sv[2];
    size_t base;
} kept;

static bool clean(end *srv, end *cli, const int sv[2], bool raw_open)
{
    if (!cli->s || !exact || !raw_open || expect_len) return false;
    if (sn_tls_stream_get_status(srv->s) != SN_TLS_STATUS_CONNECTED ||
        sn_tls_stream_get_status(cli->s) != SN_TLS_STATUS_CONNECTED)
        return false;
    if (sn_tls_stream_get_available_bytes(srv->s) || sn_tls_stream_get_available_bytes(cli->s) ||
        sn_tls_stream_get_unsent_bytes(srv->s) || sn_tls_stream_get_unsent_bytes(cli->s))
        return false;
    int q0 = 0, q1 = 0;
    if (ioctl(sv[0], FIONREAD, &q0) != 0 || ioctl(sv[1], FIONREAD, &q1) != 0) return false;
    return q0 == 0 && q1 == 0;
}

static int kind_now; /* FUZZ_STATS: the kind of the input running (-1: none) */

static void one_input(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, data + size};
    uint8_t ctl;
    if (!fuzz_u8(&r, &ctl)) return;
    kind_now = ctl & 1 ? K_REAL_NEW : K_RAW;
    if ((ctl & 1) && tickets && !have_ticket) warm_up();
    size_t base = fuzz_mem_live();

    int sv[2];
    end srv, cli;
    expect_len = 0;
    exact = true;
    if ((ctl & 1) && kept.srv.s) {
        /* The pair the last real-client input left clean: what a new one would be. */
        srv = kept.srv;
        cli = kept.cli;
        sv[0] = kept.sv[0];
        sv[1] = kept.sv[1];
        base = kept.base;
        kept.srv.s = NULL;
        pairs_reused++;
        kind_now = K_REAL_KEPT;
    } else {
        uint64_t t0 = stats && (ctl & 1) ? cpu_ns() : 0;
        open_pair(&srv, &cli, sv, ctl & 1, ctl & 2);
        /* The ticket outlives clients that failed (the backend keeps TLS 1.3 tickets apart from
         * the connections that use them: test_tls_resume.c), so this resumed; not an invariant
         * here, as OpenSSL ages tickets by the wall clock (7200 s). FUZZ_STATS counts both. */
        if (cli.s) step(&srv, &cli, -1); /* as a kept pair: the tickets read */
        if (t0) {
            kind_n[K_HANDSHAKE]++;
            kind_ns[K_HANDSHAKE] += cpu_ns() - t0;
        }
    }
    int raw_fd = sv[1];

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
    if (clean(&srv, &cli, sv, raw_open)) {
        kept.srv = srv;
        kept.cli = cli;
        kept.sv[0] = sv[0];
        kept.sv[1] = sv[1];
        kept.base = base;
        return;
    }
    sn_tls_stream_free(srv.s);
    if (cli.s)
        sn_tls_stream_free(cli.s); /* closes sv[1] */
    else
        close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server_opts) setup();
    inputs++;
    if (!stats) {
        one_input(data, size);
        return 0;
    }
    if ((inputs & (inputs - 1)) == 0) print_stats();
    uint64_t t0 = cpu_ns();
    kind_now = -1;
    answered = 0;
    one_input(data, size);
    if (kind_now >= 0) {
        if (kind_now == K_RAW && answered > 200) kind_now = K_RAW_ANSWERED;
        kind_n[kind_now]++;
        kind_ns[kind_now] += cpu_ns() - t0;
    }
    return 0;
}
