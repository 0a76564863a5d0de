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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(half_open_cap_with_junk_queued_first),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
