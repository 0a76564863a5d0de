/* TLS session resumption (TLS 1.3 tickets after the handshake, TLS 1.2 tickets in it): full, then
 * resumed with the same client options, across a key rotation; a server without ticket keys, or
 * with other keys, gives full handshakes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "test_tls_util.h"

static char g_protocol[96]; /* the last connection's protocol description */

/* One connection to srv with client options co: handshake, a round trip (the client reads, so
 * it takes in the tickets the server sent after the handshake), close. Returns resumed. */
static bool one_connection(sn_tcp_server *srv, const sn_tls_options *so, const sn_tls_options *co)
{
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    assert_int_equal(
        sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", sn_tcp_server_get_local_port(srv)), SN_OK);
    sn_tcp_peer *side = tls_take(srv);
    assert_non_null(side);
    sn_tls_stream *c = sn_tls_stream_new(), *s = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_accept_stream(s, side, so), SN_OK);
    assert_int_equal(sn_tls_stream_connect_to_stream(c, tcp, "localhost", co), SN_OK);
    assert_false(sn_tls_stream_is_session_resumed(c)); /* not before the handshake */
    tls_pump_handshake(c, s, 5000);
    assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_put_data(s, "hi", 2), SN_OK);
    char buf[2];
    assert_int_equal(sn_tls_stream_get_data(c, buf, 2), SN_OK);
    bool resumed = sn_tls_stream_is_session_resumed(c);
    assert_int_equal(resumed, sn_tls_stream_is_session_resumed(s));
    assert_string_not_equal(sn_tls_stream_get_peer_fingerprint_sha256(c), "");
    snprintf(g_protocol, sizeof g_protocol, "%s", sn_tls_stream_get_protocol_description(c));
    sn_tls_stream_free(c);
    sn_tls_stream_free(s);
    return resumed;
}

/* Server options with ticket keys (written to keys; key_xor makes each test's own), a client
 * trusting them, a listening TCP server and the first, full handshake done. */
static sn_tcp_server *start_ticketed(uint8_t keys[SN_TICKET_KEY_SIZE], uint8_t key_xor,
                                     sn_tls_options **so, sn_tls_options **co)
{
    for (size_t i = 0; i < SN_TICKET_KEY_SIZE; i++)
        keys[i] = (uint8_t)(i ^ key_xor);
    *so = sn_tls_options_server(certs->key, certs->cert);
    assert_int_equal(sn_tls_options_set_ticket_keys(*so, keys, SN_TICKET_KEY_SIZE), SN_OK);
    *co = sn_tls_options_client(certs->cert, NULL);
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    assert_false(one_connection(srv, *so, *co));
    return srv;
}

static void resumes_with_keys(void **state)
{
    (void)state;
    uint8_t keys[SN_TICKET_KEY_SIZE];
    sn_tls_options *so, *co;
    sn_tcp_server *srv = start_ticketed(keys, 0xa5, &so, &co);
    sn_tls_ticket_stats st;
    sn_tls_options_get_ticket_stats(so, &st);
    assert_true(st.issued >= 1);
    assert_true(one_connection(srv, so, co));
    assert_true(one_connection(srv, so, co));
    sn_tls_options_get_ticket_stats(so, &st);
    assert_int_equal(st.resumed, 2);
    /* TLS 1.3 tickets are single-use: every handshake brings a new one. A TLS 1.2 resumption
     * (mbed TLS 2.28 has no TLS 1.3) keeps its ticket while it is under the current key. */
    if (strncmp(g_protocol, "TLSv1.3 ", 8) == 0)
        assert_true(st.issued >= 3);
    else if (strncmp(g_protocol, "TLSv1.2 ", 8) == 0)
        assert_int_equal(st.issued, 1);
    else
        fail_msg("unexpected protocol '%s'", g_protocol);
    /* Rotation: a new current key, the old one kept as previous. The old ticket still resumes
     * and is renewed under the new key, which alone then resumes it. */
    uint8_t both[2 * SN_TICKET_KEY_SIZE];
    for (size_t i = 0; i < SN_TICKET_KEY_SIZE; i++)
        both[i] = (uint8_t)(i * 5 + 1);
    memcpy(both + SN_TICKET_KEY_SIZE, keys, sizeof keys);
    assert_int_equal(sn_tls_options_set_ticket_keys(so, both, sizeof both), SN_OK);
    assert_true(one_connection(srv, so, co));
    assert_int_equal(sn_tls_options_set_ticket_keys(so, both, SN_TICKET_KEY_SIZE), SN_OK);
    assert_true(one_connection(srv, so, co));
    sn_tls_options_get_ticket_stats(so, &st);
    assert_int_equal(st.resumed, 4);
    assert_int_equal(st.unknown_key, 0);
    assert_int_equal(st.rejected, 0);
    /* Another server (other keys) at the same address: full handshake, counted. */
    sn_tls_options *other = sn_tls_options_server(certs->key, certs->cert);
    keys[0] ^= 1;
    assert_int_equal(sn_tls_options_set_ticket_keys(other, keys, sizeof keys), SN_OK);
    assert_false(one_connection(srv, other, co));
    sn_tls_options_get_ticket_stats(other, &st);
    assert_int_equal(st.unknown_key, 1);
    /* A server without keys: full handshakes only. */
    assert_false(one_connection(srv, certs->server, co));
    assert_false(one_connection(srv, certs->server, co));
    sn_tls_options_free(other);
    sn_tcp_server_free(srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

/* A TLS 1.3 ticket outlives a connection that used it and then failed: the next connection
 * still resumes. (OpenSSL marks the session a failed connection holds as not resumable; the
 * saved ticket used to be that very object, so one dropped connection cost the next a full
 * handshake.) */
static void ticket_outlives_failed_connection(void **state)
{
    (void)state;
    uint8_t keys[SN_TICKET_KEY_SIZE];
    sn_tls_options *so, *co;
    sn_tcp_server *srv = start_ticketed(keys, 0x3c, &so, &co);
    for (int round = 0; round < 2; round++) {
        /* Resumes, reads (so it holds the server's fresh ticket too), then meets garbage in the
         * record stream: a fatal error on the client. */
        sn_tcp_peer *tcp = sn_tcp_peer_new();
        assert_int_equal(
            sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", sn_tcp_server_get_local_port(srv)),
            SN_OK);
        sn_tcp_peer *side = tls_take(srv);
        assert_non_null(side);
        sn_tls_stream *c = sn_tls_stream_new(), *s = sn_tls_stream_new();
        assert_int_equal(sn_tls_stream_accept_stream(s, side, so), SN_OK);
        assert_int_equal(sn_tls_stream_connect_to_stream(c, tcp, "localhost", co), SN_OK);
        tls_pump_handshake(c, s, 5000);
        assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_CONNECTED);
        assert_true(sn_tls_stream_is_session_resumed(c));
        assert_int_equal(sn_tls_stream_put_data(s, "hi", 2), SN_OK);
        char buf[2];
        assert_int_equal(sn_tls_stream_get_data(c, buf, 2), SN_OK);
        static const uint8_t junk[64] = {23, 3, 3, 0, 59, 1, 2, 3};
        assert_int_equal(sn_tcp_peer_put_data(side, junk, sizeof junk), SN_OK);
        uint64_t end = sn_test_now_ms() + 5000;
        while (sn_tls_stream_get_status(c) == SN_TLS_STATUS_CONNECTED && sn_test_now_ms() < end) {
            sn_tls_stream_poll(c);
            size_t got = 0;
            sn_tls_stream_get_partial_data(c, buf, sizeof buf, &got);
        }
        assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_ERROR);
        sn_tls_stream_free(c);
        sn_tls_stream_free(s);
    }
    assert_true(one_connection(srv, so, co));
    sn_tcp_server_free(srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

int main(void)
{
    /* A backend without session tickets refuses ticket keys (SN_ERR_UNAVAILABLE): skipped. */
    if (sn_test_backend_lacks("tickets")) return 77;
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resumes_with_keys),
        cmocka_unit_test(ticket_outlives_failed_connection),
    };
    if (!sn_test_have("openssl")) {
        fprintf(stderr, "SKIP: the openssl command is needed to make test certificates\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
