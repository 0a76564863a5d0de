/* sn_host on the in-memory network (test_net.h) and the manual clock: scripted clients from
 * many addresses, no socket traffic. The half-open cap holds when junk is queued before a
 * cookie-carrying ClientHello from the same address (found by fuzz_host: the cap only looked at
 * the first queued datagram; fuzz/regressions/fuzz_host/junk_then_cookie). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/host.h>
#include <sealnet/sealnet.h>

#include "test_hooks.h"
#include "test_net.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static sn_crypto_key *key;
static sn_x509_cert *cert;
static sn_tls_options *server_opts, *client_opts;

static int setup(void **state)
{
    (void)state;
    key = sn_crypto_generate_ec("P-256");
    cert = key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    server_opts = cert ? sn_tls_options_server(key, cert) : NULL;
    client_opts = sn_tls_options_client_unsafe(NULL);
    if (!server_opts || !client_opts) return -1;
    sn_test_net_install();
    sn_test_clock_install(1000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sn_test_clock_remove();
    sn_test_net_remove();
    sn_tls_options_free(server_opts);
    sn_tls_options_free(client_opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    return 0;
}

/* A real client's first ClientHello (no cookie), captured from the network. */
static size_t client_hello(uint8_t *out, size_t cap)
{
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", 9), SN_OK);
    sn_dtls_peer *c = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, u, "localhost", client_opts), SN_OK);
    sn_test_addr dst = sn_test_addr_v4(127, 0, 0, 1, 9);
    for (int i = 0; i < 3 && !sn_test_net_queued_to(&dst); i++)
        sn_dtls_peer_poll(c);
    long n = sn_test_net_take(&dst, out, cap, NULL);
    assert_true(n > 0 && (size_t)n <= cap);
    sn_dtls_peer_free(c);
    sn_test_net_reset();
    return (size_t)n;
}

static void service(sn_host *h)
{
    sn_host_event ev;
    for (int i = 0; i < 16 && sn_host_service(h, &ev, 0) > 0; i++) {
    }
}

static void half_open_cap_with_junk_queued_first(void **state)
{
    (void)state;
    uint8_t ch[2048];
    size_t ch_len = client_hello(ch, sizeof ch);
    sn_host_config c;
    sn_host_default_config(&c);
    c.server_options = server_opts;
    c.bind_address = "127.0.0.1";
    c.max_half_open = 2;
    sn_host *h = sn_host_create(&c);
    assert_non_null(h);
    sn_test_addr server = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_host_get_port(h));
    static const uint8_t junk[13] = {0x17, 0xfe, 0xfd};
    for (int k = 0; k < 8; k++) {
        sn_test_addr src = sn_test_addr_v4(127, 0, 0, (uint8_t)(10 + k), 5000);
        assert_true(sn_test_net_inject(&src, &server, ch, ch_len));
        service(h);
        uint8_t hvr[512], spliced[4096];
        long n = sn_test_net_take(&src, hvr, sizeof hvr, NULL);
        const uint8_t *cookie;
        size_t cookie_len;
        assert_true(n > 0 && sn_test_dtls_hvr_cookie(hvr, (size_t)n, &cookie, &cookie_len));
        size_t m =
            sn_test_dtls_splice_cookie(ch, ch_len, cookie, cookie_len, spliced, sizeof spliced);
        assert_true(m > 0);
        /* Junk first, then the hello: both wait in the same poll. */
        assert_true(sn_test_net_inject(&src, &server, junk, sizeof junk));
        assert_true(sn_test_net_inject(&src, &server, spliced, m));
        service(h);
        sn_host_stats st;
        sn_host_get_stats(h, &st);
        assert_true(st.incoming_half_open_now <= 2);
    }
    sn_host_stats st;
    sn_host_get_stats(h, &st);
    assert_int_equal(st.incoming_half_open_now, 2);
    assert_int_equal(st.dropped_half_open, 6);
    sn_host_free(h);
}

/* Services h once without waiting; asserts the call did not fail. True when it gave an event. */
static bool poll_once(sn_host *h, sn_host_event *ev)
{
    int r = sn_host_service(h, ev, 0);
    assert_true(r == 0 || r == 1);
    return r == 1;
}

/* With a transport override every datagram goes through it, so a service call that does not
 * wait never asks epoll (a system call per call that can report nothing): a client host whose
 * epoll descriptor is not an epoll set any more (a pipe in its place) still connects, receives
 * and sends with timeout 0. */
static void override_poll_skips_epoll(void **state)
{
    (void)state;
    sn_host_config c;
    sn_host_default_config(&c);
    c.server_options = server_opts;
    c.bind_address = "127.0.0.1";
    sn_host *srv = sn_host_create(&c);
    sn_host *cli = sn_host_new();
    assert_non_null(srv);
    assert_non_null(cli);
    sn_host_peer *out =
        sn_host_connect(cli, "127.0.0.1", sn_host_get_port(srv), "localhost", client_opts);
    assert_non_null(out);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    int epfd = sn_host_get_fd(cli), saved = dup(epfd);
    assert_true(saved >= 0);
    assert_true(dup2(pipefd[0], epfd) == epfd);
    sn_host_event ev;
    bool cli_connected = false, srv_got = false, cli_got = false;
    for (int i = 0; i < 200 && !(srv_got && cli_got); i++) {
        while (poll_once(srv, &ev)) {
            if (ev.type == SN_HOST_EVENT_CONNECT)
                assert_int_equal(sn_host_peer_send(ev.peer, "pong", 4), SN_OK);
            if (ev.type == SN_HOST_EVENT_RECEIVE) srv_got = ev.len == 4;
        }
        while (poll_once(cli, &ev)) {
            if (ev.type == SN_HOST_EVENT_CONNECT) {
                cli_connected = true;
                assert_int_equal(sn_host_peer_send(ev.peer, "ping", 4), SN_OK);
            }
            if (ev.type == SN_HOST_EVENT_RECEIVE) cli_got = ev.len == 4;
        }
        sn_test_clock_advance(10);
    }
    assert_true(cli_connected);
    assert_true(srv_got);
    assert_true(cli_got);
    assert_true(dup2(saved, epfd) == epfd);
    close(saved);
    close(pipefd[0]);
    close(pipefd[1]);
    sn_host_free(cli);
    sn_host_free(srv);
    sn_test_net_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(half_open_cap_with_junk_queued_first),
        cmocka_unit_test(override_poll_skips_epoll),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
