/* A DTLS client that restarts on the same address and port mid-session (RFC 6347 4.2.8): the
 * client process dies without close_notify and a new one, behind the same NAT mapping, sends a
 * new ClientHello from the same address. Expected: the new handshake proceeds and the old server
 * session ends. And the hostile counterpart: a ClientHello without a valid cookie from an
 * established address (anyone can spoof one) must not end the session.
 *
 * The "NAT" is a relay: clients talk to the relay's client-side socket, and the relay talks to
 * the server from one fixed socket, so every client behind it has the same address and port as
 * far as the server can tell. The relay can black-hole the client side (a crash: the dying
 * client's close_notify never arrives). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_dtls_server.h"
#include "test_robust_util.h"

static sn_crypto_key *g_key;
static sn_x509_cert *g_cert;

static int group_setup(void **state)
{
    (void)state;
    g_key = sn_crypto_generate_ec("P-256");
    g_cert = g_key ? sn_crypto_generate_self_signed_certificate(g_key, "CN=localhost", NULL, NULL)
                   : NULL;
    return g_cert ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sn_crypto_key_free(g_key);
    sn_x509_cert_free(g_cert);
    return 0;
}

enum { MAXP = 8 };
typedef struct env {
    sn_tls_options *sopts, *copts;
    sn_udp_server *udp;
    sn_dtls_server *dtls;
    sn_dtls_peer *peers[MAXP]; /* every HANDSHAKING peer taken, kept (also once ended) */
    int npeers;
    int relay_c, relay_s; /* relay sockets: client side, server side */
    int client_port;      /* where the relay sends the server's datagrams */
    bool blackhole;       /* drop what clients send */
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    e->sopts = sn_tls_options_server(g_key, g_cert);
    e->copts = sn_tls_options_client(g_cert, NULL);
    e->udp = sn_udp_server_new();
    e->dtls = sn_dtls_server_new();
    if (!e->sopts || !e->copts || sn_udp_server_listen(e->udp, 0, "127.0.0.1") != SN_OK ||
        sn_dtls_server_setup(e->dtls, e->sopts) != SN_OK)
        return -1;
    e->relay_c = rb_socket("127.0.0.1", 0);
    e->relay_s = rb_socket("127.0.0.1", 0);
    *state = e;
    return e->relay_c >= 0 && e->relay_s >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
    env *e = *state;
    for (int i = 0; i < e->npeers; i++)
        sn_dtls_peer_free(e->peers[i]);
    sn_dtls_server_free(e->dtls);
    sn_udp_server_free(e->udp);
    sn_tls_options_free(e->sopts);
    sn_tls_options_free(e->copts);
    close(e->relay_c);
    close(e->relay_s);
    free(e);
    return 0;
}

static void relay_pump(env *e)
{
    uint8_t buf[4096];
    ssize_t n;
    int from;
    while ((n = rb_recv(e->relay_c, buf, sizeof buf, &from)) >= 0) {
        if (e->blackhole) continue;
        e->client_port = from;
        rb_send(e->relay_s, sn_udp_server_get_local_port(e->udp), buf, (size_t)n);
    }
    while ((n = rb_recv(e->relay_s, buf, sizeof buf, NULL)) >= 0)
        if (e->client_port) rb_send(e->relay_c, e->client_port, buf, (size_t)n);
}

/* Server loop plus relay; echoes what the connected peers receive. */
static void step(env *e)
{
    relay_pump(e);
    sn_test_dtls_server_step(e->udp, e->dtls, e->peers, &e->npeers, MAXP, NULL, NULL);
    for (int i = 0; i < e->npeers; i++) {
        uint8_t buf[256];
        size_t len;
        while (sn_dtls_peer_get_packet(e->peers[i], buf, sizeof buf, &len) == SN_OK)
            sn_dtls_peer_put_packet(e->peers[i], buf, len);
    }
    relay_pump(e);
}

static sn_dtls_peer *client_via_relay(env *e)
{
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", rb_port(e->relay_c)), SN_OK);
    sn_dtls_settings s;
    sn_dtls_default_settings(&s);
    s.retransmit_initial_ms = 100;
    sn_dtls_peer *c = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_set_settings(c, &s), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, u, "localhost", e->copts), SN_OK);
    return c;
}

/* Runs until c is CONNECTED and has its "msg" echoed back, or ms pass. */
static bool exchange(env *e, sn_dtls_peer *c, const char *msg, int ms)
{
    bool sent = false;
    uint64_t end = sn_test_now_ms() + (uint64_t)ms;
    while (sn_test_now_ms() < end) {
        step(e);
        sn_dtls_peer_poll(c);
        if (sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_CONNECTED && !sent)
            sent = sn_dtls_peer_put_packet(c, msg, strlen(msg)) == SN_OK;
        char buf[64];
        size_t len;
        if (sn_dtls_peer_get_packet(c, buf, sizeof buf, &len) == SN_OK)
            return len == strlen(msg) && !memcmp(buf, msg, len);
        rb_wait(e->relay_c, 2);
    }
    return false;
}

static void restart_on_same_address_replaces_the_session(void **state)
{
    env *e = *state;
    sn_dtls_peer *a = client_via_relay(e);
    assert_true(exchange(e, a, "from A", 3000));
    assert_int_equal(e->npeers, 1);
    sn_dtls_peer *old = e->peers[0];
    assert_int_equal(sn_dtls_peer_get_status(old), SN_DTLS_STATUS_CONNECTED);
    int old_port = sn_dtls_peer_get_packet_port(old);

    /* A dies: its close_notify is lost. */
    e->blackhole = true;
    sn_dtls_peer_free(a);
    relay_pump(e);
    e->blackhole = false;
    step(e);
    assert_int_equal(sn_dtls_peer_get_status(old), SN_DTLS_STATUS_CONNECTED);

    /* B starts on the same address and port (as the server sees it). */
    uint64_t t0 = sn_test_now_ms();
    sn_dtls_peer *b = client_via_relay(e);
    bool b_ok = exchange(e, b, "from B", 5000);
    uint64_t took = sn_test_now_ms() - t0;
    sn_dtls_server_stats ds;
    sn_dtls_server_get_stats(e->dtls, &ds);
    print_message("restart: B %s after %llu ms; old session status %d (%s); server peers %d, "
                  "handshakes started %llu, cookies sent %llu\n",
                  b_ok ? "connected" : "did NOT connect", (unsigned long long)took,
                  (int)sn_dtls_peer_get_status(old), sn_dtls_peer_get_error_message(old), e->npeers,
                  (unsigned long long)ds.handshakes_started, (unsigned long long)ds.cookies_sent);
    assert_true(b_ok);
    /* The old session ended, with a reason that says why. */
    assert_int_not_equal(sn_dtls_peer_get_status(old), SN_DTLS_STATUS_CONNECTED);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(old), "restart"));
    /* B is served by a new peer on the same address and port. */
    assert_int_equal(e->npeers, 2);
    assert_int_equal(sn_dtls_peer_get_status(e->peers[1]), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_get_packet_port(e->peers[1]), old_port);
    assert_int_equal(ds.handshakes_started, 2);
    assert_true(took < 3000);
    sn_dtls_peer_free(b);
}

/* A ClientHello on an established address without a valid cookie: answered with a
 * HelloVerifyRequest, the session is untouched. A stale/forged cookie likewise. */
static void spoofed_hello_on_established_address_changes_nothing(void **state)
{
    env *e = *state;
    sn_dtls_peer *a = client_via_relay(e);
    assert_true(exchange(e, a, "one", 3000));
    sn_dtls_peer *srv = e->peers[0];

    uint8_t hello[2048], forged[2048];
    size_t n = rb_capture_client_hello(hello, sizeof hello);
    assert_true(n > 60);
    uint8_t bad_cookie[32];
    memset(bad_cookie, 0x41, sizeof bad_cookie);
    size_t m = rb_splice_cookie(hello, n, bad_cookie, sizeof bad_cookie, forged, sizeof forged);
    assert_true(m > 0);
    /* From the relay's server-side socket: the established address itself. */
    int port = sn_udp_server_get_local_port(e->udp);
    assert_true(rb_send(e->relay_s, port, hello, n));
    assert_true(rb_send(e->relay_s, port, forged, m));
    int hvr = 0;
    uint64_t end = sn_test_now_ms() + 300;
    while (sn_test_now_ms() < end) {
        sn_udp_server_poll(e->udp);
        sn_dtls_peer_poll(srv);
        uint8_t buf[2048];
        ssize_t len;
        /* Read the relay's server side ourselves: the answers must not reach client A. */
        while ((len = rb_recv(e->relay_s, buf, sizeof buf, NULL)) >= 0) {
            const uint8_t *c;
            size_t cl;
            if (rb_hvr_cookie(buf, (size_t)len, &c, &cl)) hvr++;
        }
        sn_test_sleep_ms(2);
    }
    assert_int_equal(hvr, 2);
    assert_int_equal(sn_dtls_peer_get_status(srv), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(e->npeers, 1);
    /* And the session still carries data both ways. */
    assert_true(exchange(e, a, "two", 2000));
    assert_int_equal(e->npeers, 1);
    sn_dtls_peer_free(a);
}

/* The client dies mid-handshake (after its cookie exchange, while the server peer is
 * HANDSHAKING) and restarts from the same address: the half-done session ends at once instead of
 * waiting for the handshake timeout, and the new client connects. */
static void restart_during_handshake(void **state)
{
    env *e = *state;
    sn_dtls_peer *a = client_via_relay(e);
    uint64_t end = sn_test_now_ms() + 2000;
    while (e->npeers == 0 && sn_test_now_ms() < end) {
        step(e);
        sn_dtls_peer_poll(a);
        rb_wait(e->relay_c, 2);
    }
    assert_int_equal(e->npeers, 1);
    sn_dtls_peer *old = e->peers[0];
    /* A goes silent before finishing: everything it would still send is lost. */
    e->blackhole = true;
    step(e);
    sn_dtls_peer_free(a);
    relay_pump(e);
    e->blackhole = false;
    assert_int_equal(sn_dtls_peer_get_status(old), SN_DTLS_STATUS_HANDSHAKING);

    uint64_t t0 = sn_test_now_ms();
    sn_dtls_peer *b = client_via_relay(e);
    bool ok = exchange(e, b, "B after a half-done A", 5000);
    uint64_t took = sn_test_now_ms() - t0;
    print_message("restart mid-handshake: B %s in %llu ms; old peer %d (%s)\n",
                  ok ? "connected" : "did NOT connect", (unsigned long long)took,
                  (int)sn_dtls_peer_get_status(old), sn_dtls_peer_get_error_message(old));
    assert_true(ok);
    assert_int_not_equal(sn_dtls_peer_get_status(old), SN_DTLS_STATUS_HANDSHAKING);
    assert_int_not_equal(sn_dtls_peer_get_status(old), SN_DTLS_STATUS_CONNECTED);
    assert_true(took < 3000);
    sn_dtls_peer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(restart_on_same_address_replaces_the_session, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(spoofed_hello_on_established_address_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(restart_during_handshake, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
