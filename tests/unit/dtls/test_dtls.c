/* DTLS client and server on loopback: the cookie flow, statuses, verification cases,
 * close_notify, packet limits and timeouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dtls_fixture.h"
#include "dtls_internal.h" /* sn_dtls_peer_session_steps */
#include "test_dtls_server.h"
#include "testutil.h"
#include <sealnet/sealnet.h>

#define MAX_SERVER_PEERS 64

typedef struct env {
    sn_tls_options *server_options;
    sn_x509_cert *cert; /* trusted by clients that verify */
    sn_udp_server *udp;
    sn_dtls_server *dtls;
    sn_dtls_peer *peers[MAX_SERVER_PEERS];
    int npeers;
} env;

static sn_crypto_key *g_key;
static sn_x509_cert *g_cert;

static int group_setup(void **state)
{
    (void)state;
    g_key = sn_crypto_generate_ec("P-256");
    g_cert = g_key ? sn_crypto_generate_self_signed_certificate(g_key, "CN=localhost,O=test,C=IT",
                                                                NULL, NULL)
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

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    e->server_options = sn_tls_options_server(g_key, g_cert);
    e->udp = sn_udp_server_new();
    e->dtls = sn_dtls_server_new();
    if (!e->server_options || sn_udp_server_listen(e->udp, 0, "127.0.0.1") != SN_OK ||
        sn_dtls_server_setup(e->dtls, e->server_options) != SN_OK)
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    for (int i = 0; i < e->npeers; i++)
        sn_dtls_peer_free(e->peers[i]);
    sn_dtls_server_free(e->dtls);
    sn_udp_server_free(e->udp);
    sn_tls_options_free(e->server_options);
    free(e);
    return 0;
}

/* One frame of the seed server loop: take new connections, keep the handshaking ones. */
static void server_step(env *e)
{
    sn_test_dtls_server_step(e->udp, e->dtls, e->peers, &e->npeers, MAX_SERVER_PEERS, NULL, NULL);
}

static sn_dtls_peer *connect_client(env *e, const char *hostname, const sn_tls_options *opts,
                                    const sn_dtls_settings *settings)
{
    sn_udp_peer *udp = sn_udp_peer_new();
    assert_int_equal(
        sn_udp_peer_connect_to_host(udp, "127.0.0.1", sn_udp_server_get_local_port(e->udp)), SN_OK);
    sn_dtls_peer *c = sn_dtls_peer_new();
    if (settings) assert_int_equal(sn_dtls_peer_set_settings(c, settings), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, udp, hostname, opts), SN_OK);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_HANDSHAKING);
    return c;
}

/* Runs server and clients until every client has left HANDSHAKING or the deadline passes. */
static void run_until_settled(env *e, sn_dtls_peer **clients, int n, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (sn_test_now_ms() < end) {
        server_step(e);
        int pending = 0;
        for (int i = 0; i < n; i++) {
            sn_dtls_peer_poll(clients[i]);
            pending += sn_dtls_peer_get_status(clients[i]) == SN_DTLS_STATUS_HANDSHAKING;
        }
        for (int i = 0; i < e->npeers; i++)
            pending += sn_dtls_peer_get_status(e->peers[i]) == SN_DTLS_STATUS_HANDSHAKING;
        if (!pending) return;
        sn_test_sleep_ms(1);
    }
}

static void run_for(env *e, sn_dtls_peer **clients, int n, int ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)ms;
    while (sn_test_now_ms() < end) {
        server_step(e);
        for (int i = 0; i < n; i++)
            sn_dtls_peer_poll(clients[i]);
        sn_test_sleep_ms(1);
    }
}

static sn_tls_options *trusting(const char *override)
{
    return sn_tls_options_client(g_cert, override);
}

static void cookie_flow_connects_and_counts_packets(void **state)
{
    env *e = *state;
    sn_tls_options *opts = trusting(NULL);
    sn_dtls_peer *c = connect_client(e, "localhost", opts, NULL);
    run_until_settled(e, &c, 1, 10000);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(e->npeers, 1);
    assert_int_equal(sn_dtls_peer_get_status(e->peers[0]), SN_DTLS_STATUS_CONNECTED);
    assert_non_null(strstr(sn_dtls_peer_get_cipher(c), "DTLSv1.2"));
    /* The client can pin the server: it saw exactly the certificate the server holds. */
    char *fp = sn_x509_cert_get_fingerprint_sha256(g_cert);
    assert_string_equal(sn_dtls_peer_get_peer_fingerprint_sha256(c), fp);
    sn_free(fp);
    assert_string_equal(sn_dtls_peer_get_peer_fingerprint_sha256(e->peers[0]),
                        ""); /* no client cert */

    sn_dtls_server_stats st;
    sn_dtls_server_get_stats(e->dtls, &st);
    assert_int_equal(st.cookies_sent, 1); /* the first hello was answered statelessly */
    assert_int_equal(st.handshakes_started, 1);

    /* Five packets arrive; a single poll decrypts all of them (Godot: one per poll). */
    char msg[32];
    for (int i = 0; i < 5; i++) {
        snprintf(msg, sizeof msg, "packet %d", i);
        assert_int_equal(sn_dtls_peer_put_packet(c, msg, strlen(msg)), SN_OK);
    }
    sn_test_sleep_ms(50);
    sn_udp_server_poll(e->udp);
    sn_dtls_peer_poll(e->peers[0]);
    assert_int_equal(sn_dtls_peer_get_available_packet_count(e->peers[0]), 5);
    for (int i = 0; i < 5; i++) {
        char buf[64];
        size_t len = 0;
        assert_int_equal(sn_dtls_peer_get_packet(e->peers[0], buf, sizeof buf, &len), SN_OK);
        snprintf(msg, sizeof msg, "packet %d", i);
        assert_int_equal(len, strlen(msg));
        assert_memory_equal(buf, msg, len);
    }
    size_t len;
    char buf[8];
    assert_int_equal(sn_dtls_peer_get_packet(e->peers[0], buf, sizeof buf, &len),
                     SN_ERR_UNAVAILABLE);
    assert_string_equal(sn_dtls_peer_get_packet_ip(e->peers[0]), "127.0.0.1");
    assert_string_equal(sn_dtls_peer_get_packet_ip(c), "127.0.0.1");
    assert_int_equal(sn_dtls_peer_get_packet_port(c), sn_udp_server_get_local_port(e->udp));
    assert_true(sn_dtls_peer_get_last_packet_time_ms(e->peers[0]) > 0);

    /* And the other way, with a too-small buffer first: the packet stays queued. */
    assert_int_equal(sn_dtls_peer_put_packet(e->peers[0], "Hello DTLS client", 17), SN_OK);
    run_for(e, &c, 1, 50);
    assert_int_equal(sn_dtls_peer_get_packet(c, buf, 4, &len), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(len, 17);
    char big[64];
    assert_int_equal(sn_dtls_peer_get_packet(c, big, sizeof big, &len), SN_OK);
    assert_memory_equal(big, "Hello DTLS client", 17);
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
}

static sn_dtls_status connect_status(env *e, const char *hostname, sn_tls_options *opts,
                                     char *message, size_t cap)
{
    sn_dtls_peer *c = connect_client(e, hostname, opts, NULL);
    run_until_settled(e, &c, 1, 10000);
    sn_dtls_status st = sn_dtls_peer_get_status(c);
    snprintf(message, cap, "%s", sn_dtls_peer_get_error_message(c));
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
    return st;
}

static void verification_cases(void **state)
{
    env *e = *state;
    char msg[320];
    assert_int_equal(connect_status(e, "localhost", trusting(NULL), msg, sizeof msg),
                     SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(connect_status(e, "otherhost", trusting(NULL), msg, sizeof msg),
                     SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH);
    assert_non_null(strstr(msg, "otherhost"));
    /* The override is what the certificate must name, whatever the connect call says. */
    assert_int_equal(connect_status(e, "otherhost", trusting("localhost"), msg, sizeof msg),
                     SN_DTLS_STATUS_CONNECTED);
    /* Default options trust the system CAs, which do not include our self-signed cert. */
    assert_int_equal(
        connect_status(e, "localhost", sn_tls_options_client(NULL, NULL), msg, sizeof msg),
        SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(msg, "certificate verify failed"));
    assert_int_equal(
        connect_status(e, "anything", sn_tls_options_client_unsafe(NULL), msg, sizeof msg),
        SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(
        connect_status(e, "wrongname", sn_tls_options_client_unsafe(g_cert), msg, sizeof msg),
        SN_DTLS_STATUS_CONNECTED);
    /* A chain that does not verify is refused by client_unsafe(chain) too. */
    sn_crypto_key *k2 = sn_crypto_generate_ec("P-256");
    sn_x509_cert *other =
        sn_crypto_generate_self_signed_certificate(k2, "CN=localhost", NULL, NULL);
    assert_int_equal(
        connect_status(e, "localhost", sn_tls_options_client_unsafe(other), msg, sizeof msg),
        SN_DTLS_STATUS_ERROR);
    sn_x509_cert_free(other);
    sn_crypto_key_free(k2);
    /* Server peers of failed clients end in ERROR naming the alert they got. */
    bool saw_alert = false;
    for (int i = 0; i < e->npeers; i++)
        if (sn_dtls_peer_get_status(e->peers[i]) == SN_DTLS_STATUS_ERROR &&
            strstr(sn_dtls_peer_get_error_message(e->peers[i]), "peer sent alert"))
            saw_alert = true;
    assert_true(saw_alert);
}

static void close_notify_keeps_decrypted_packets(void **state)
{
    env *e = *state;
    sn_tls_options *opts = trusting(NULL);
    sn_dtls_peer *c = connect_client(e, "localhost", opts, NULL);
    run_until_settled(e, &c, 1, 10000);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sn_dtls_peer_put_packet(c, "bye", 3), SN_OK);
    sn_dtls_peer_disconnect_from_peer(c);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_DISCONNECTED);
    assert_int_equal(sn_dtls_peer_put_packet(c, "x", 1), SN_ERR_UNCONFIGURED);
    run_for(e, NULL, 0, 100);
    assert_int_equal(sn_dtls_peer_get_status(e->peers[0]), SN_DTLS_STATUS_DISCONNECTED);
    assert_int_equal(sn_dtls_peer_get_available_packet_count(e->peers[0]), 3);
    char buf[8];
    size_t len;
    assert_int_equal(sn_dtls_peer_get_packet(e->peers[0], buf, sizeof buf, &len), SN_OK);
    assert_memory_equal(buf, "bye", 3);
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
}

static void oversize_packet_is_refused_and_session_stays_up(void **state)
{
    env *e = *state;
    sn_tls_options *opts = trusting(NULL);
    sn_dtls_peer *c = connect_client(e, "localhost", opts, NULL);
    run_until_settled(e, &c, 1, 10000);
    int max = sn_dtls_peer_get_max_packet_size(c);
    assert_true(max > 1000 && max < 1200); /* 1200-byte MTU minus record overhead */
    uint8_t *big = calloc(1, (size_t)max + 1);
    assert_int_equal(sn_dtls_peer_put_packet(c, big, (size_t)max + 1),
                     SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    memset(big, 0x42, (size_t)max);
    assert_int_equal(sn_dtls_peer_put_packet(c, big, (size_t)max), SN_OK);
    run_for(e, &c, 1, 100);
    uint8_t got[2048];
    size_t len = 0;
    assert_int_equal(sn_dtls_peer_get_packet(e->peers[0], got, sizeof got, &len), SN_OK);
    assert_int_equal(len, (size_t)max);
    assert_memory_equal(got, big, len);
    free(big);
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
}

/* A DTLS client (retransmitting every 100 ms at first) connecting to *silent, a bound UDP peer
 * that never answers; *client_port is the client's port, *opts its options (the caller frees
 * the three). */
static sn_dtls_peer *client_to_silence(int handshake_timeout_ms, sn_udp_peer **silent,
                                       int *client_port, sn_tls_options **opts)
{
    *silent = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(*silent, 0, "127.0.0.1", 0), SN_OK);
    sn_udp_peer *udp = sn_udp_peer_new();
    assert_int_equal(
        sn_udp_peer_connect_to_host(udp, "127.0.0.1", sn_udp_peer_get_local_port(*silent)), SN_OK);
    *client_port = sn_udp_peer_get_local_port(udp);
    sn_dtls_settings s;
    sn_dtls_default_settings(&s);
    s.handshake_timeout_ms = handshake_timeout_ms;
    s.retransmit_initial_ms = 100;
    sn_dtls_peer *c = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_set_settings(c, &s), SN_OK);
    *opts = sn_tls_options_client_unsafe(NULL);
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, udp, "localhost", *opts), SN_OK);
    return c;
}

static void handshake_times_out_against_silence(void **state)
{
    (void)state;
    sn_udp_peer *silent;
    sn_tls_options *opts;
    int client_port;
    sn_dtls_peer *c = client_to_silence(400, &silent, &client_port, &opts);
    uint64_t start = sn_test_now_ms();
    while (sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() - start < 5000) {
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(5);
    }
    uint64_t took = sn_test_now_ms() - start;
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(c), "timed out"));
    assert_true(took >= 350 && took < 2000);
    /* It retransmitted: the silent side saw the ClientHello more than once. */
    assert_true(sn_udp_peer_get_available_packet_count(silent) >= 2);
    sn_dtls_peer_free(c);
    sn_udp_peer_free(silent);
    sn_tls_options_free(opts);
}

/* A handshaking peer polled with nothing new (or only junk) does not step its TLS session (no
 * trip through the library per poll), yet its retransmission timer still fires and a datagram
 * with a record in it is handed to the session at the next poll. */
static void idle_handshake_polls_skip_the_session(void **state)
{
    (void)state;
    sn_udp_peer *silent;
    sn_tls_options *opts;
    int client_port;
    sn_dtls_peer *c = client_to_silence(20000, &silent, &client_port, &opts);
    /* connect_to_peer stepped once: the ClientHello went out. */
    assert_int_equal(sn_dtls_peer_session_steps(c), 1);
    for (int i = 0; i < 200; i++)
        sn_dtls_peer_poll(c);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_HANDSHAKING);
    assert_int_equal(sn_dtls_peer_session_steps(c), 1);
    /* The timer still retransmits the hello. */
    uint64_t start = sn_test_now_ms();
    while (sn_udp_peer_get_available_packet_count(silent) < 2 && sn_test_now_ms() - start < 5000) {
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(5);
    }
    assert_true(sn_udp_peer_get_available_packet_count(silent) >= 2);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_HANDSHAKING);
    /* A datagram with no acceptable record (unknown content type) is dropped and counted
     * without a step. */
    uint64_t steps = sn_dtls_peer_session_steps(c);
    assert_int_equal(sn_udp_peer_set_dest_address(silent, "127.0.0.1", client_port), SN_OK);
    static const uint8_t garbage[] = {99, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0};
    assert_int_equal(sn_udp_peer_put_packet(silent, garbage, sizeof garbage), SN_OK);
    sn_dtls_peer_stats st;
    start = sn_test_now_ms();
    do {
        sn_dtls_peer_poll(c);
        sn_dtls_peer_get_stats(c, &st);
        sn_test_sleep_ms(2);
    } while (st.dropped_invalid == 0 && sn_test_now_ms() - start < 5000);
    assert_int_equal(st.dropped_invalid, 1);
    assert_int_equal(sn_dtls_peer_session_steps(c), steps);
    /* A datagram that arrives reaches the session: a (plaintext, epoch 0) handshake record
     * with a message the client cannot use, which the session must look at. */
    static const uint8_t junk[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 12,
                                   0,  0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(sn_udp_peer_put_packet(silent, junk, sizeof junk), SN_OK);
    start = sn_test_now_ms();
    while (sn_dtls_peer_session_steps(c) == steps && sn_test_now_ms() - start < 5000) {
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(2);
    }
    assert_true(sn_dtls_peer_session_steps(c) > steps);
    sn_dtls_peer_free(c);
    sn_udp_peer_free(silent);
    sn_tls_options_free(opts);
}

static void closed_port_fails_fast_with_a_reason(void **state)
{
    (void)state;
    /* A port that was just free: nothing listens there. */
    sn_udp_peer *probe = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(probe, 0, "127.0.0.1", 0), SN_OK);
    int port = sn_udp_peer_get_local_port(probe);
    sn_udp_peer_free(probe);
    sn_udp_peer *udp = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", port), SN_OK);
    sn_dtls_settings s;
    sn_dtls_default_settings(&s);
    s.retransmit_initial_ms = 200;
    sn_dtls_peer *c = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_set_settings(c, &s), SN_OK);
    sn_tls_options *opts = sn_tls_options_client_unsafe(NULL);
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, udp, "localhost", opts), SN_OK);
    uint64_t start = sn_test_now_ms();
    while (sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() - start < 8000) {
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(5);
    }
    uint64_t took = sn_test_now_ms() - start;
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(c), "connection refused"));
    assert_non_null(strstr(sn_dtls_peer_get_error_message(c), "ICMP"));
    /* Not on the first refusals (one forged ICMP message must not end an attempt): only when
     * they persist across the hello's retransmissions for 2 s; and long before the 30 s
     * handshake timeout. */
    if (took < 2000 || took >= 6000) fail_msg("refused after %llu ms", (unsigned long long)took);
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
}

/* A connected client whose server vanished (its socket closed: the kernel answers with ICMP
 * port unreachable) says so once its sends have kept drawing refusals for 2 s, not before. */
static void server_gone_reported_after_icmp_persists(void **state)
{
    env *e = *state;
    sn_tls_options *opts = sn_tls_options_client_unsafe(NULL);
    sn_dtls_peer *c = connect_client(e, "localhost", opts, NULL);
    run_until_settled(e, &c, 1, 10000);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    sn_udp_server_stop(e->udp); /* the server process is gone: nothing listens on the port */
    uint64_t start = sn_test_now_ms(), next_send = start, flipped = 0;
    while (sn_test_now_ms() - start < 8000) {
        uint64_t now = sn_test_now_ms();
        if (now >= next_send) {
            sn_err r = sn_dtls_peer_put_packet(c, "anyone?", 7);
            if (r != SN_OK) break; /* not connected any more */
            next_send = now + 100;
        }
        sn_dtls_peer_poll(c);
        if (sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_CONNECTED) {
            flipped = sn_test_now_ms() - start;
            break;
        }
        sn_test_sleep_ms(5);
    }
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_ERROR);
    assert_string_equal(sn_dtls_peer_get_error_message(c),
                        "the server went away (ICMP port unreachable)");
    if (flipped < 2000) fail_msg("gave up after %llu ms", (unsigned long long)flipped);
    assert_int_equal(sn_dtls_peer_put_packet(c, "x", 1), SN_ERR_UNCONFIGURED);
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
}

/* Steps the server (echoing every packet back), the relay and the client once. */
static void echo_world_step(env *e, fx_relay *r, sn_dtls_peer *c)
{
    fx_relay_step(r);
    server_step(e);
    for (int i = 0; i < e->npeers; i++) {
        char buf[2048];
        size_t len;
        while (sn_dtls_peer_get_packet(e->peers[i], buf, sizeof buf, &len) == SN_OK)
            sn_dtls_peer_put_packet(e->peers[i], buf, len);
    }
    fx_relay_step(r);
    sn_dtls_peer_poll(c);
    sn_test_sleep_ms(2);
}

/* One ICMP port unreachable for the client, as a forged message (or a blip) would cause: the
 * relay's front socket closes, one client datagram is refused, the port opens again. */
static void one_refusal(fx_relay *r, sn_dtls_peer *c)
{
    close(r->front_fd);
    assert_int_equal(sn_dtls_peer_put_packet(c, "lost", 4), SN_OK);
    for (int i = 0; i < 20; i++) {
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(2);
    }
    r->front_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)r->port)};
    assert_int_equal(bind(r->front_fd, (struct sockaddr *)&a, sizeof a), 0);
}

/* Runs the echo world for ms, the client sending every 100 ms; returns the echoes it read. */
static int chat_for(env *e, fx_relay *r, sn_dtls_peer *c, int ms)
{
    int echoes = 0;
    uint64_t end = sn_test_now_ms() + (uint64_t)ms, next_send = 0;
    while (sn_test_now_ms() < end) {
        if (sn_test_now_ms() >= next_send) {
            assert_int_equal(sn_dtls_peer_put_packet(c, "ping", 4), SN_OK);
            next_send = sn_test_now_ms() + 100;
        }
        echo_world_step(e, r, c);
        char buf[64];
        size_t len;
        while (sn_dtls_peer_get_packet(c, buf, sizeof buf, &len) == SN_OK)
            echoes++;
        if (sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_CONNECTED)
            fail_msg("client lost the session: %s", sn_dtls_peer_get_error_message(c));
    }
    return echoes;
}

/* ICMP is not authenticated: two refusals 2.5 s apart, with authenticated echoes in between,
 * leave the session up (each refusal starts a new streak that the echoes end). */
static void spoofed_icmp_does_not_end_a_session(void **state)
{
    env *e = *state;
    fx_relay r;
    assert_true(fx_relay_start(&r, sn_udp_server_get_local_port(e->udp), 1));
    sn_udp_peer *udp = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", r.port), SN_OK);
    sn_tls_options *opts = sn_tls_options_client_unsafe(NULL);
    sn_dtls_peer *c = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, udp, "localhost", opts), SN_OK);
    uint64_t start = sn_test_now_ms();
    while (sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() - start < 10000)
        echo_world_step(e, &r, c);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    assert_true(chat_for(e, &r, c, 300) > 0);
    one_refusal(&r, c);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    assert_true(chat_for(e, &r, c, 2500) > 10);
    one_refusal(&r, c);
    assert_true(chat_for(e, &r, c, 700) > 2);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
    fx_relay_stop(&r);
}

/* An unsafe client (verification off: OpenSSL's unenforced verify result reads "self-signed
 * certificate") reports a server's fatal alert as that alert. `openssl s_server -Verify 1` wants
 * a client certificate, gets none, and ends the handshake with an alert after the client has
 * seen (and not checked) the server's certificate. */
static void unsafe_client_reports_a_fatal_alert_as_such(void **state)
{
    (void)state;
    if (!sn_test_have("openssl")) skip();
    char *dir = sn_test_tmpdir(), *key, *crt;
    assert_true(fx_make_cert(dir, "ec", &key, &crt));
    const char *argv[] = {"openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:0", "-cert",
                          crt,       "-key",     key,        "-Verify", "1",           NULL};
    sn_test_proc *srv = sn_test_spawn(argv);
    assert_non_null(srv);
    const char *a = NULL;
    uint64_t end = sn_test_now_ms() + 10000;
    while (sn_test_now_ms() < end) {
        sn_test_proc_wait_for(srv, "ACCEPT", 100);
        a = strstr(sn_test_proc_output(srv), "ACCEPT 127.0.0.1:");
        if (a && strchr(a, '\n')) break;
        a = NULL;
    }
    if (!a) fail_msg("openssl s_server did not start:\n%s", sn_test_proc_output(srv));
    int port = atoi(a + strlen("ACCEPT 127.0.0.1:"));
    sn_tls_options *opts = sn_tls_options_client_unsafe(NULL);
    sn_dtls_peer *c = fx_client_connect(port, "localhost", opts, NULL);
    assert_non_null(c);
    uint64_t start = sn_test_now_ms();
    while (sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() - start < 10000) {
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(2);
    }
    const char *msg = sn_dtls_peer_get_error_message(c);
    if (sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_ERROR || !strstr(msg, "peer sent alert: ") ||
        strstr(msg, "verify"))
        fail_msg("status %d, message '%s'", sn_dtls_peer_get_status(c), msg);
    sn_dtls_peer_free(c);
    sn_tls_options_free(opts);
    sn_test_proc_stop(srv);
    sn_test_rmtree(dir);
    free(dir);
    free(key);
    free(crt);
}

static void misuse_is_refused_with_reasons(void **state)
{
    env *e = *state;
    sn_dtls_peer *c = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_DISCONNECTED);
    assert_int_equal(sn_dtls_peer_put_packet(c, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, NULL, "h", NULL), SN_ERR_INVALID_PARAMETER);
    sn_udp_peer *unconnected = sn_udp_peer_new();
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, unconnected, "h", NULL),
                     SN_ERR_INVALID_PARAMETER);
    assert_non_null(strstr(sn_last_error_message(), "connected"));
    sn_udp_peer *udp = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", 9), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, udp, "h", e->server_options),
                     SN_ERR_INVALID_PARAMETER);
    /* A verifying client needs a name to check; NULL and "" are refused up front. */
    const char *no_names[] = {NULL, ""};
    sn_tls_options *verifying = sn_tls_options_client(g_cert, NULL);
    assert_non_null(verifying);
    for (int i = 0; i < 2; i++) {
        sn_udp_peer *u = sn_udp_peer_new();
        assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", 9), SN_OK);
        assert_int_equal(sn_dtls_peer_connect_to_peer(c, u, no_names[i], verifying),
                         SN_ERR_INVALID_PARAMETER);
        assert_non_null(strstr(sn_last_error_message(), "hostname"));
        assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_DISCONNECTED);
    }
    sn_tls_options_free(verifying);
    sn_dtls_settings bad;
    sn_dtls_default_settings(&bad);
    bad.mtu = 10;
    assert_int_equal(sn_dtls_peer_set_settings(c, &bad), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_dtls_server_set_settings(e->dtls, &bad), SN_ERR_PARAMETER_RANGE_ERROR);
    sn_dtls_peer_free(c);
    sn_dtls_peer_free(NULL);
    sn_dtls_server_free(NULL);

    /* A server that was never set up refuses connections with a reason, and client options
     * cannot set one up. */
    sn_dtls_server *raw = sn_dtls_server_new();
    sn_tls_options *client = sn_tls_options_client_unsafe(NULL);
    assert_int_equal(sn_dtls_server_setup(raw, client), SN_ERR_INVALID_PARAMETER);
    sn_udp_peer *u = sn_udp_peer_new();
    sn_dtls_peer *p = sn_dtls_server_take_connection(raw, u);
    assert_int_equal(sn_dtls_peer_get_status(p), SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(p), "not set up"));
    sn_dtls_peer_free(p);
    sn_dtls_server_free(raw);
    sn_tls_options_free(client);
}

static void many_clients_and_a_silent_one(void **state)
{
    env *e = *state;
    enum { N = 40 };
    sn_tls_options *opts = trusting(NULL);
    sn_dtls_peer *c[N];
    for (int i = 0; i < N; i++)
        c[i] = connect_client(e, "localhost", opts, NULL);
    run_until_settled(e, c, N, 30000);
    for (int i = 0; i < N; i++)
        assert_int_equal(sn_dtls_peer_get_status(c[i]), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(e->npeers, N);
    /* Every client's packet reaches the server peer for its own address. */
    for (int i = 0; i < N; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "client %d", i);
        assert_int_equal(sn_dtls_peer_put_packet(c[i], msg, (size_t)n), SN_OK);
    }
    run_for(e, c, N, 200);
    int got = 0;
    for (int i = 0; i < e->npeers; i++) {
        char buf[32];
        size_t len;
        while (sn_dtls_peer_get_packet(e->peers[i], buf, sizeof buf - 1, &len) == SN_OK) {
            buf[len] = '\0';
            int id = atoi(buf + 7);
            assert_true(id >= 0 && id < N);
            got++;
        }
    }
    assert_int_equal(got, N);
    /* A client that goes silent: its server peer stays CONNECTED, and its last packet time
     * stops moving (an idle timeout is the host API's job). */
    uint64_t before = sn_dtls_peer_get_last_packet_time_ms(e->peers[0]);
    run_for(e, NULL, 0, 150);
    assert_int_equal(sn_dtls_peer_get_status(e->peers[0]), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_get_last_packet_time_ms(e->peers[0]), before);
    for (int i = 0; i < N; i++)
        sn_dtls_peer_free(c[i]);
    sn_tls_options_free(opts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cookie_flow_connects_and_counts_packets, setup, teardown),
        cmocka_unit_test_setup_teardown(verification_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(close_notify_keeps_decrypted_packets, setup, teardown),
        cmocka_unit_test_setup_teardown(oversize_packet_is_refused_and_session_stays_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(handshake_times_out_against_silence, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_handshake_polls_skip_the_session, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_port_fails_fast_with_a_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(server_gone_reported_after_icmp_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(spoofed_icmp_does_not_end_a_session, setup, teardown),
        cmocka_unit_test(unsafe_client_reports_a_fatal_alert_as_such),
        cmocka_unit_test_setup_teardown(misuse_is_refused_with_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(many_clients_and_a_silent_one, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
