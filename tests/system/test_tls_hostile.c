/* sn_tls_stream against hostile or broken remotes: garbage instead of a handshake, a remote
 * that stalls mid-handshake (handshake timeout), a connection cut in the middle of a record, a
 * tampered record, a reset. Every case ends in a definite status with a message, never a hang
 * or a crash. Raw sockets and a small in-process relay play the remote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "test_tls_util.h"

static int raw_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static int raw_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 3000), 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* A client stream connecting to a raw server of ours: *lfd listens, *raw is the accepted socket.
 * timeout_ms > 0 sets the handshake timeout; opts as connect_to_stream. */
static sn_tls_stream *connect_to_raw(int *lfd, int *raw, int timeout_ms, const sn_tls_options *opts)
{
    int port;
    *lfd = raw_listen(&port);
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", port), SN_OK);
    sn_tls_stream *c = sn_tls_stream_new();
    if (timeout_ms > 0)
        assert_int_equal(sn_tls_stream_set_handshake_timeout_ms(c, timeout_ms), SN_OK);
    assert_int_equal(sn_tls_stream_connect_to_stream(c, tcp, "localhost", opts), SN_OK);
    *raw = raw_accept(*lfd);
    return c;
}

/* A server stream accepting a raw client of ours; returns the raw client's fd. */
static sn_tls_stream *accept_raw(sn_tcp_server **srv, int *raw)
{
    *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(*srv, 0, "127.0.0.1"), SN_OK);
    *raw = raw_connect(sn_tcp_server_get_local_port(*srv));
    sn_tls_stream *s = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_accept_stream(s, tls_take(*srv), certs->server), SN_OK);
    return s;
}

static void garbage_instead_of_client_hello(void **state)
{
    (void)state;
    static const uint8_t huge_record[] = {0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7};
    static const uint8_t bad_type[] = {0x99, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5};
    static const uint8_t alert_first[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
    uint8_t noise[200];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)(i * 73 + 11);
    const struct {
        const void *data;
        size_t len;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 36},
        {huge_record, sizeof huge_record},
        {bad_type, sizeof bad_type},
        {alert_first, sizeof alert_first},
        {noise, sizeof noise},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        sn_tcp_server *srv;
        int raw;
        sn_tls_stream *s = accept_raw(&srv, &raw);
        assert_int_equal(send(raw, cases[i].data, cases[i].len, MSG_NOSIGNAL),
                         (ssize_t)cases[i].len);
        assert_int_equal(tls_poll_until_not(s, NULL, SN_TLS_STATUS_HANDSHAKING, 3000),
                         SN_TLS_STATUS_ERROR);
        const char *msg = sn_tls_stream_get_error_message(s);
        print_message("garbage %zu: %s\n", i, msg);
        assert_true(strlen(msg) > 10);
        assert_int_equal(sn_tcp_peer_get_status(sn_tls_stream_get_stream(s)), SN_TCP_STATUS_NONE);
        sn_tls_stream_free(s);
        sn_tcp_server_free(srv);
        close(raw);
    }
}

/* A client whose "server" answers the ClientHello with an HTTP error page. */
static void garbage_instead_of_server_hello(void **state)
{
    (void)state;
    int lfd, raw;
    sn_tls_stream *c = connect_to_raw(&lfd, &raw, 0, certs->client);
    const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    uint8_t hello[4096];
    /* Wait for the ClientHello, then answer with HTTP. */
    uint64_t end = sn_test_now_ms() + 3000;
    ssize_t got = -1;
    while (got <= 0 && sn_test_now_ms() < end) {
        sn_tls_stream_poll(c);
        got = recv(raw, hello, sizeof hello, MSG_DONTWAIT);
        sn_test_sleep_ms(1);
    }
    assert_true(got > 5);
    assert_int_equal(hello[0], 0x16); /* a handshake record */
    send(raw, reply, sizeof reply - 1, MSG_NOSIGNAL);
    assert_int_equal(tls_poll_until_not(c, NULL, SN_TLS_STATUS_HANDSHAKING, 3000),
                     SN_TLS_STATUS_ERROR);
    print_message("http reply: %s\n", sn_tls_stream_get_error_message(c));
    assert_true(strlen(sn_tls_stream_get_error_message(c)) > 10);
    sn_tls_stream_free(c);
    close(raw);
    close(lfd);
}

/* A client that sends three bytes of a record header and then nothing. */
static void stall_mid_handshake_server_side(void **state)
{
    (void)state;
    sn_tcp_server *srv;
    int raw;
    sn_tls_stream *s = accept_raw(&srv, &raw);
    assert_int_equal(sn_tls_stream_set_handshake_timeout_ms(s, 500), SN_OK);
    send(raw, "\x16\x03\x01", 3, MSG_NOSIGNAL);
    uint64_t t0 = sn_test_now_ms();
    assert_int_equal(tls_poll_until_not(s, NULL, SN_TLS_STATUS_HANDSHAKING, 5000),
                     SN_TLS_STATUS_ERROR);
    uint64_t took = sn_test_now_ms() - t0;
    assert_true(took >= 400 && took < 2500);
    assert_string_equal(sn_tls_stream_get_error_message(s), "handshake timed out after 0.5 s");
    sn_tls_stream_free(s);
    sn_tcp_server_free(srv);
    close(raw);
}

/* A server that accepts TCP and never says a word. */
static void stall_mid_handshake_client_side(void **state)
{
    (void)state;
    int lfd, raw;
    sn_tls_stream *c = connect_to_raw(&lfd, &raw, 500, NULL);
    assert_int_equal(tls_poll_until_not(c, NULL, SN_TLS_STATUS_HANDSHAKING, 5000),
                     SN_TLS_STATUS_ERROR);
    assert_string_equal(sn_tls_stream_get_error_message(c), "handshake timed out after 0.5 s");
    sn_tls_stream_free(c);
    close(raw);
    close(lfd);
}

/* --- a relay between client and server, that can cut or tamper with the server's bytes ---- */

typedef struct relay {
    int lfd, port;
    int a, b;          /* client side, server side */
    size_t s2c_budget; /* server-to-client bytes still forwarded before cutting (SIZE_MAX) */
    bool flip_next;    /* corrupt a byte of the next server-to-client chunk */
} relay;

static void relay_open(relay *r)
{
    memset(r, 0, sizeof *r);
    r->lfd = raw_listen(&r->port);
    r->a = r->b = -1;
    r->s2c_budget = SIZE_MAX;
}

static void relay_connect(relay *r, int target_port)
{
    r->a = raw_accept(r->lfd);
    r->b = raw_connect(target_port);
    fcntl(r->a, F_SETFL, O_NONBLOCK);
    fcntl(r->b, F_SETFL, O_NONBLOCK);
}

static void relay_cut(relay *r)
{
    if (r->a >= 0) close(r->a);
    if (r->b >= 0) close(r->b);
    r->a = r->b = -1;
}

static void relay_pump(relay *r)
{
    if (r->a < 0) return;
    uint8_t buf[65536];
    ssize_t n = recv(r->a, buf, sizeof buf, 0);
    if (n > 0) send(r->b, buf, (size_t)n, MSG_NOSIGNAL);
    size_t cap = r->s2c_budget < sizeof buf ? r->s2c_budget : sizeof buf;
    n = cap ? recv(r->b, buf, cap, 0) : 0;
    if (n > 0) {
        if (r->flip_next && n > 10) {
            buf[n / 2] ^= 0x5a;
            r->flip_next = false;
        }
        send(r->a, buf, (size_t)n, MSG_NOSIGNAL);
        if (r->s2c_budget != SIZE_MAX) r->s2c_budget -= (size_t)n;
    }
    if (r->s2c_budget == 0) relay_cut(r);
}

typedef struct relayed {
    relay r;
    sn_tcp_server *srv;
    sn_tls_stream *client, *server;
} relayed;

static void relayed_open(relayed *x)
{
    relay_open(&x->r);
    x->srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(x->srv, 0, "127.0.0.1"), SN_OK);
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", x->r.port), SN_OK);
    relay_connect(&x->r, sn_tcp_server_get_local_port(x->srv));
    x->client = sn_tls_stream_new();
    x->server = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_connect_to_stream(x->client, tcp, "localhost", certs->client),
                     SN_OK);
    assert_int_equal(sn_tls_stream_accept_stream(x->server, tls_take(x->srv), certs->server),
                     SN_OK);
    uint64_t end = sn_test_now_ms() + 5000;
    while ((sn_tls_stream_get_status(x->client) != SN_TLS_STATUS_CONNECTED ||
            sn_tls_stream_get_status(x->server) != SN_TLS_STATUS_CONNECTED) &&
           sn_test_now_ms() < end) {
        relay_pump(&x->r);
        sn_tls_stream_poll(x->client);
        sn_tls_stream_poll(x->server);
        sn_test_sleep_ms(1);
    }
    assert_int_equal(sn_tls_stream_get_status(x->client), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_get_status(x->server), SN_TLS_STATUS_CONNECTED);
}

static sn_tls_status relayed_client_until_not_connected(relayed *x, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (sn_tls_stream_get_status(x->client) == SN_TLS_STATUS_CONNECTED &&
           sn_test_now_ms() < end) {
        relay_pump(&x->r);
        sn_tls_stream_poll(x->client);
        uint8_t sink[256];
        size_t n;
        sn_tls_stream_get_partial_data(x->client, sink, sizeof sink, &n);
        sn_test_sleep_ms(1);
    }
    return sn_tls_stream_get_status(x->client);
}

static void relayed_close(relayed *x)
{
    sn_tls_stream_free(x->client);
    sn_tls_stream_free(x->server);
    sn_tcp_server_free(x->srv);
    relay_cut(&x->r);
    close(x->r.lfd);
}

/* The connection dies 100 bytes into a 1000-byte record. */
static void cut_mid_record(void **state)
{
    (void)state;
    relayed x;
    relayed_open(&x);
    x.r.s2c_budget = 100;
    static uint8_t data[1000];
    assert_int_equal(sn_tls_stream_put_data(x.server, data, sizeof data), SN_OK);
    sn_tls_status st = relayed_client_until_not_connected(&x, 3000);
    const char *msg = sn_tls_stream_get_error_message(x.client);
    print_message("cut mid-record: status %d, %s\n", st, msg);
    assert_true(st == SN_TLS_STATUS_DISCONNECTED || st == SN_TLS_STATUS_ERROR);
    assert_non_null(strstr(msg, "truncated"));
    assert_int_equal(sn_tls_stream_get_available_bytes(x.client), 0);
    relayed_close(&x);
}

/* One flipped bit in a record: the record fails authentication. */
static void tampered_record(void **state)
{
    (void)state;
    relayed x;
    relayed_open(&x);
    x.r.flip_next = true;
    assert_int_equal(sn_tls_stream_put_data(x.server, "attack at dawn, attack at dawn", 30), SN_OK);
    assert_int_equal(relayed_client_until_not_connected(&x, 3000), SN_TLS_STATUS_ERROR);
    const char *msg = sn_tls_stream_get_error_message(x.client);
    print_message("tampered: %s\n", msg);
    assert_true(strstr(msg, "bad record mac") || strstr(msg, "bad_record_mac") ||
                strstr(msg, "decrypt"));
    relayed_close(&x);
}

/* A reset while connected: ERROR naming the transport's cause. */
static void reset_while_connected(void **state)
{
    (void)state;
    tls_pair p;
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    assert_int_equal(sn_tls_stream_get_status(p.server), SN_TLS_STATUS_CONNECTED);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int fd = sn_tcp_peer_get_fd(sn_tls_stream_get_stream(p.server));
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    sn_tcp_peer_disconnect_from_host(sn_tls_stream_get_stream(p.server));
    uint64_t end = sn_test_now_ms() + 3000;
    while (sn_tls_stream_get_status(p.client) == SN_TLS_STATUS_CONNECTED &&
           sn_test_now_ms() < end) {
        sn_tls_stream_poll(p.client);
        sn_test_sleep_ms(1);
    }
    const char *msg = sn_tls_stream_get_error_message(p.client);
    print_message("reset: status %d, %s\n", sn_tls_stream_get_status(p.client), msg);
    assert_int_equal(sn_tls_stream_get_status(p.client), SN_TLS_STATUS_ERROR);
    assert_non_null(strstr(msg, "reset"));
    /* Writing afterwards fails cleanly (and SIGPIPE stays away). */
    assert_int_equal(sn_tls_stream_put_data(p.client, "x", 1), SN_ERR_UNCONFIGURED);
    tls_pair_close(&p);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(garbage_instead_of_client_hello),
        cmocka_unit_test(garbage_instead_of_server_hello),
        cmocka_unit_test(stall_mid_handshake_server_side),
        cmocka_unit_test(stall_mid_handshake_client_side),
        cmocka_unit_test(cut_mid_record),
        cmocka_unit_test(tampered_record),
        cmocka_unit_test(reset_while_connected),
    };
    if (!sn_test_have("openssl")) {
        fprintf(stderr, "SKIP: the openssl command is needed to make test certificates\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
