/* DTLS interoperability and certificate verification.
 *
 * Real peers over loopback, both directions: our in-process server with `openssl s_client` and
 * `gnutls-cli --udp`, our in-process client with `openssl s_server` and `gnutls-serv --udp`,
 * each with a P-256 and an RSA-2048 certificate made by the openssl command. Then the
 * verification matrix between a sealnet client and a sealnet server: trusted/untrusted chain,
 * right/wrong name, unsafe options, and what the server sees when the client refuses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtls_fixture.h"

#define HANDSHAKE_MS 15000 /* generous: the machine is shared with other builds */
#define DATA_MS      10000

typedef struct cert_set {
    char *key, *crt;
    sn_tls_options *server;
    sn_x509_cert *trusted;
} cert_set;

static char *tmp;
static cert_set ec, rsa;

static int make_set(const char *kind, cert_set *c)
{
    if (!fx_make_cert(tmp, kind, &c->key, &c->crt)) return -1;
    c->server = fx_server_options(c->key, c->crt);
    c->trusted = fx_load_cert(c->crt);
    return c->server && c->trusted ? 0 : -1;
}

static int group_setup(void **state)
{
    (void)state;
    tmp = sn_test_tmpdir();
    if (!tmp || make_set("ec", &ec) != 0 || make_set("rsa", &rsa) != 0) return -1;
    return 0;
}

static void free_set(cert_set *c)
{
    free(c->key);
    free(c->crt);
    sn_tls_options_free(c->server);
    sn_x509_cert_free(c->trusted);
}

static int group_teardown(void **state)
{
    (void)state;
    free_set(&ec);
    free_set(&rsa);
    sn_test_rmtree(tmp);
    free(tmp);
    return 0;
}

/* Output of a child checked from inside the loop: the world keeps turning while we wait. */
static bool has_output(sn_test_proc *p, const char *needle)
{
    return strstr(sn_test_proc_output(p), needle) != NULL;
}

static void dump_on_failure(sn_test_proc *p, const char *what)
{
    print_message("--- %s output ---\n%s\n--- end ---\n", what, sn_test_proc_output(p));
}

/* The packet waiting on p equals text. */
static void expect_packet(sn_dtls_peer *p, const char *text)
{
    char buf[2048];
    size_t len = 0;
    assert_int_equal(sn_dtls_peer_get_packet(p, buf, sizeof buf, &len), SN_OK);
    if (len != strlen(text) || memcmp(buf, text, len) != 0) {
        print_error("got %zu bytes \"%.*s\", expected \"%s\"\n", len, (int)len, buf, text);
        fail();
    }
}

static const char *expected_auth(const cert_set *c)
{
    /* IANA suite names, the same on every backend. */
    return c == &ec ? "TLS_ECDHE_ECDSA_WITH_" : "TLS_ECDHE_RSA_WITH_";
}

/* --- our server, their client ---------------------------------------------------------------- */

static void server_with_client(const cert_set *c, const char *client_name,
                               const char *const *argv_template, const char *ready_hint)
{
    fx_server srv;
    assert_true(fx_server_start(&srv, c->server, NULL));
    char port[16], connect[32];
    snprintf(port, sizeof port, "%d", srv.port);
    snprintf(connect, sizeof connect, "127.0.0.1:%d", srv.port);
    const char *argv[24];
    int n = 0;
    for (; argv_template[n]; n++) {
        assert_true(n < 23);
        const char *a = argv_template[n];
        argv[n] = !strcmp(a, "@PORT")      ? port
                  : !strcmp(a, "@CA")      ? c->crt
                  : !strcmp(a, "@CONNECT") ? connect
                                           : a;
    }
    argv[n] = NULL;
    sn_test_proc *proc = sn_test_spawn(argv);
    assert_non_null(proc);

    fx_world w;
    fx_world_init(&w, &srv, NULL);
    uint64_t t0 = sn_test_now_ms();
    FX_ASSERT_WITHIN(
        &w, srv.npeers > 0 && sn_dtls_peer_get_status(srv.peers[0]) != SN_DTLS_STATUS_HANDSHAKING,
        HANDSHAKE_MS);
    sn_dtls_peer *peer = srv.peers[0];
    if (sn_dtls_peer_get_status(peer) != SN_DTLS_STATUS_CONNECTED) {
        dump_on_failure(proc, client_name);
        print_error("server peer: status %d, %s\n", sn_dtls_peer_get_status(peer),
                    sn_dtls_peer_get_error_message(peer));
    }
    assert_int_equal(sn_dtls_peer_get_status(peer), SN_DTLS_STATUS_CONNECTED);
    assert_non_null(strstr(sn_dtls_peer_get_cipher(peer), "DTLSv1.2"));
    assert_non_null(strstr(sn_dtls_peer_get_cipher(peer), expected_auth(c)));
    /* The cookie round trip happened: one peer came out not handshaking. */
    sn_dtls_server_stats st;
    sn_dtls_server_get_stats(srv.dtls, &st);
    assert_true(st.cookies_sent >= 1);
    assert_int_equal(st.handshakes_started, 1);
    print_message("%s -> sealnet server (%s): connected in %llu ms, %s\n", client_name,
                  c == &ec ? "P-256" : "RSA-2048", (unsigned long long)(sn_test_now_ms() - t0),
                  sn_dtls_peer_get_cipher(peer));

    /* Their client sends each stdin line with its newline: one datagram. */
    if (ready_hint) FX_ASSERT_WITHIN(&w, has_output(proc, ready_hint), DATA_MS);
    static const char hello[] = "hello from the other side\n";
    assert_true(sn_test_proc_write(proc, hello, sizeof hello - 1));
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(peer) > 0, DATA_MS);
    expect_packet(peer, hello);

    static const char reply[] = "reply from sealnet 8d1f\n";
    assert_int_equal(sn_dtls_peer_put_packet(peer, reply, sizeof reply - 1), SN_OK);
    FX_ASSERT_WITHIN(&w, has_output(proc, "reply from sealnet 8d1f"), DATA_MS);
    assert_int_equal(sn_dtls_peer_get_status(peer), SN_DTLS_STATUS_CONNECTED);

    sn_test_proc_stop(proc);
    fx_server_stop(&srv);
}

static const char *const openssl_client_argv[] = {
    "openssl", "s_client", "-dtls1_2",         "-connect",  "@CONNECT",
    "-CAfile", "@CA",      "-verify_hostname", "localhost", "-verify_return_error",
    "-quiet",  NULL};
static const char *const gnutls_client_argv[] = {
    "gnutls-cli", "--udp", "--x509cafile", "@CA",       "--verify-hostname",
    "localhost",  "-p",    "@PORT",        "127.0.0.1", NULL};

static void test_server_openssl_client_ec(void **state)
{
    (void)state;
    server_with_client(&ec, "openssl s_client", openssl_client_argv, NULL);
}
static void test_server_openssl_client_rsa(void **state)
{
    (void)state;
    server_with_client(&rsa, "openssl s_client", openssl_client_argv, NULL);
}
static void test_server_gnutls_client_ec(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-cli")) skip();
    server_with_client(&ec, "gnutls-cli", gnutls_client_argv, "Handshake was completed");
}
static void test_server_gnutls_client_rsa(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-cli")) skip();
    server_with_client(&rsa, "gnutls-cli", gnutls_client_argv, "Handshake was completed");
}

/* Their client refuses our certificate (it trusts another one): our server's peer ends in
 * ERROR, naming the alert when the client sends one, or the timeout when it just leaves. */
static void server_rejected_by(const char *client_name, const char *const *argv_template,
                               bool sends_alert)
{
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.handshake_timeout_ms = 3000;
    fx_server srv;
    assert_true(fx_server_start(&srv, ec.server, &set));
    char port[16], connect[32];
    snprintf(port, sizeof port, "%d", srv.port);
    snprintf(connect, sizeof connect, "127.0.0.1:%d", srv.port);
    const char *argv[24];
    int n = 0;
    for (; argv_template[n]; n++) {
        const char *a = argv_template[n];
        argv[n] = !strcmp(a, "@PORT")      ? port
                  : !strcmp(a, "@CA")      ? rsa.crt /* not the server's */
                  : !strcmp(a, "@CONNECT") ? connect
                                           : a;
    }
    argv[n] = NULL;
    sn_test_proc *proc = sn_test_spawn(argv);
    assert_non_null(proc);
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    FX_ASSERT_WITHIN(
        &w, srv.npeers > 0 && sn_dtls_peer_get_status(srv.peers[0]) != SN_DTLS_STATUS_HANDSHAKING,
        HANDSHAKE_MS);
    sn_dtls_peer *peer = srv.peers[0];
    print_message("%s refused our certificate; server peer: status %d \"%s\"\n", client_name,
                  sn_dtls_peer_get_status(peer), sn_dtls_peer_get_error_message(peer));
    assert_int_equal(sn_dtls_peer_get_status(peer), SN_DTLS_STATUS_ERROR);
    const char *msg = sn_dtls_peer_get_error_message(peer);
    if (sends_alert)
        assert_non_null(strstr(msg, "peer sent alert: "));
    else
        assert_true(strstr(msg, "peer sent alert: ") || strstr(msg, "timed out"));
    sn_test_proc_stop(proc);
    fx_server_stop(&srv);
}

static void test_server_rejected_by_openssl_client(void **state)
{
    (void)state;
    server_rejected_by("openssl s_client", openssl_client_argv, true);
}

static void test_server_rejected_by_gnutls_client(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-cli")) skip();
    server_rejected_by("gnutls-cli", gnutls_client_argv, true);
}

/* --- our client, their server ---------------------------------------------------------------- */

/* Connects our client to 127.0.0.1:port, sends a line, expects it in the server's output (or
 * echoed back when echo), then, unless echo, makes the server send a line through its stdin. */
static void client_with_server(const cert_set *c, const char *server_name, sn_test_proc *proc,
                               int port, bool echo)
{
    sn_tls_options *opts = sn_tls_options_client(c->trusted, NULL);
    assert_non_null(opts);
    sn_dtls_peer *cl = fx_client_connect(port, "localhost", opts, NULL);
    sn_tls_options_free(opts);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, NULL, NULL);
    fx_world_add_client(&w, cl);
    uint64_t t0 = sn_test_now_ms();
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, HANDSHAKE_MS);
    if (sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_CONNECTED) {
        dump_on_failure(proc, server_name);
        print_error("client: status %d, %s\n", sn_dtls_peer_get_status(cl),
                    sn_dtls_peer_get_error_message(cl));
    }
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    assert_non_null(strstr(sn_dtls_peer_get_cipher(cl), expected_auth(c)));
    print_message("sealnet client -> %s (%s): connected in %llu ms, %s\n", server_name,
                  c == &ec ? "P-256" : "RSA-2048", (unsigned long long)(sn_test_now_ms() - t0),
                  sn_dtls_peer_get_cipher(cl));

    static const char hello[] = "hello from sealnet 5e2a\n";
    assert_int_equal(sn_dtls_peer_put_packet(cl, hello, sizeof hello - 1), SN_OK);
    if (echo) {
        FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(cl) > 0, DATA_MS);
        expect_packet(cl, hello);
    } else {
        FX_ASSERT_WITHIN(&w, has_output(proc, "hello from sealnet 5e2a"), DATA_MS);
        /* Avoid lines starting with Q/q: s_server reads those as commands. */
        static const char reply[] = "reply from the server\n";
        assert_true(sn_test_proc_write(proc, reply, sizeof reply - 1));
        FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(cl) > 0, DATA_MS);
        expect_packet(cl, reply);
    }
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    sn_dtls_peer_free(cl);
}

static sn_test_proc *start_openssl_server(const cert_set *c, int *port)
{
    const char *argv[] = {"openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:0",
                          "-cert",   c->crt,     "-key",     c->key,    NULL};
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    /* "ACCEPT 127.0.0.1:PORT" followed by a newline once the number is complete. */
    const char *a = NULL;
    uint64_t end = sn_test_now_ms() + HANDSHAKE_MS;
    while (sn_test_now_ms() < end) {
        sn_test_proc_wait_for(p, "ACCEPT", 100);
        a = strstr(sn_test_proc_output(p), "ACCEPT 127.0.0.1:");
        if (a && strchr(a, '\n')) break;
        a = NULL;
    }
    if (!a) dump_on_failure(p, "openssl s_server");
    assert_non_null(a);
    *port = atoi(a + strlen("ACCEPT 127.0.0.1:"));
    assert_true(*port > 0 && *port < 65536);
    return p;
}

static void client_openssl_server(const cert_set *c)
{
    int port;
    sn_test_proc *p = start_openssl_server(c, &port);
    client_with_server(c, "openssl s_server", p, port, false);
    sn_test_proc_stop(p);
}

static void test_client_openssl_server_ec(void **state)
{
    (void)state;
    client_openssl_server(&ec);
}
static void test_client_openssl_server_rsa(void **state)
{
    (void)state;
    client_openssl_server(&rsa);
}

static sn_test_proc *start_gnutls_server(const cert_set *c, int *port)
{
    sn_test_proc *p = fx_start_gnutls_server(c->crt, c->key, 0, HANDSHAKE_MS, port);
    if (!p) fail_msg("gnutls-serv did not start");
    return p;
}

static void client_gnutls_server(const cert_set *c)
{
    int port;
    sn_test_proc *p = start_gnutls_server(c, &port);
    client_with_server(c, "gnutls-serv", p, port, true);
    sn_test_proc_stop(p);
}

static void test_client_gnutls_server_ec(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-serv")) skip();
    client_gnutls_server(&ec);
}
static void test_client_gnutls_server_rsa(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-serv")) skip();
    client_gnutls_server(&rsa);
}

/* A foreign server whose certificate names "localhost", reached as another name: the chain is
 * valid, so this is exactly a hostname mismatch. */
static void test_client_gnutls_server_wrong_name(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-serv")) skip();
    int port;
    sn_test_proc *p = start_gnutls_server(&ec, &port);
    sn_tls_options *opts = sn_tls_options_client(ec.trusted, NULL);
    sn_dtls_peer *cl = fx_client_connect(port, "not-localhost.example", opts, NULL);
    sn_tls_options_free(opts);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, NULL, NULL);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, HANDSHAKE_MS);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(cl), "not-localhost.example"));
    sn_dtls_peer_free(cl);
    sn_test_proc_stop(p);
}

/* --- verification between a sealnet client and a sealnet server ------------------------------ */

typedef struct verify_run {
    fx_server srv;
    sn_dtls_peer *client;
    fx_world w;
} verify_run;

/* Runs a handshake with the given client options/name against a server with `server_set`
 * until the client leaves HANDSHAKING, and the server's peer too. */
static void verify_start(verify_run *v, const cert_set *server_set, sn_tls_options *client_opts,
                         const char *name)
{
    assert_true(fx_server_start(&v->srv, server_set->server, NULL));
    v->client = fx_client_connect(v->srv.port, name, client_opts, NULL);
    sn_tls_options_free(client_opts);
    assert_non_null(v->client);
    fx_world_init(&v->w, &v->srv, NULL);
    fx_world_add_client(&v->w, v->client);
    FX_ASSERT_WITHIN(&v->w, sn_dtls_peer_get_status(v->client) != SN_DTLS_STATUS_HANDSHAKING,
                     HANDSHAKE_MS);
}

static void verify_end(verify_run *v)
{
    sn_dtls_peer_free(v->client);
    fx_server_stop(&v->srv);
}

static void expect_status(sn_dtls_peer *p, sn_dtls_status want, const char *msg_part)
{
    sn_dtls_status got = sn_dtls_peer_get_status(p);
    const char *msg = sn_dtls_peer_get_error_message(p);
    if (got != want || (msg_part && !strstr(msg, msg_part))) {
        print_error("status %d (want %d), message \"%s\" (want it to contain \"%s\")\n", got, want,
                    msg, msg_part ? msg_part : "");
        fail();
    }
}

/* When the client refuses the server, the server's peer learns it from the client's alert. */
static void expect_server_saw_alert(verify_run *v)
{
    FX_ASSERT_WITHIN(&v->w,
                     v->srv.npeers == 1 &&
                         sn_dtls_peer_get_status(v->srv.peers[0]) != SN_DTLS_STATUS_HANDSHAKING,
                     HANDSHAKE_MS);
    expect_status(v->srv.peers[0], SN_DTLS_STATUS_ERROR, "peer sent alert: ");
    print_message("server peer: %s\n", sn_dtls_peer_get_error_message(v->srv.peers[0]));
}

static void expect_both_connected(verify_run *v)
{
    expect_status(v->client, SN_DTLS_STATUS_CONNECTED, NULL);
    FX_ASSERT_WITHIN(&v->w,
                     v->srv.npeers == 1 &&
                         sn_dtls_peer_get_status(v->srv.peers[0]) == SN_DTLS_STATUS_CONNECTED,
                     HANDSHAKE_MS);
    /* And the session carries data. */
    static const char ping[] = "ping";
    assert_int_equal(sn_dtls_peer_put_packet(v->client, ping, 4), SN_OK);
    FX_ASSERT_WITHIN(&v->w, sn_dtls_peer_get_available_packet_count(v->srv.peers[0]) == 1, DATA_MS);
    expect_packet(v->srv.peers[0], ping);
}

static void test_verify_trusted_right_name(void **state)
{
    (void)state;
    verify_run v;
    verify_start(&v, &ec, sn_tls_options_client(ec.trusted, NULL), "localhost");
    expect_both_connected(&v);
    verify_end(&v);
}

static void test_verify_trusted_wrong_name(void **state)
{
    (void)state;
    verify_run v;
    verify_start(&v, &ec, sn_tls_options_client(ec.trusted, NULL), "wrong.example");
    expect_status(v.client, SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH, "wrong.example");
    expect_server_saw_alert(&v);
    verify_end(&v);
}

/* The common-name override is what is checked (and sent as SNI), not the name given. */
static void test_verify_override_name(void **state)
{
    (void)state;
    verify_run v;
    verify_start(&v, &ec, sn_tls_options_client(ec.trusted, "localhost"), "wrong.example");
    expect_both_connected(&v);
    verify_end(&v);
    verify_start(&v, &ec, sn_tls_options_client(ec.trusted, "other.example"), "localhost");
    expect_status(v.client, SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH, "other.example");
    verify_end(&v);
}

static void test_verify_untrusted_system_cas(void **state)
{
    (void)state;
    verify_run v;
    verify_start(&v, &ec, sn_tls_options_client(NULL, NULL), "localhost");
    expect_status(v.client, SN_DTLS_STATUS_ERROR, "certificate verify failed");
    expect_server_saw_alert(&v);
    verify_end(&v);
    /* NULL options mean the same thing. */
    assert_true(fx_server_start(&v.srv, ec.server, NULL));
    v.client = fx_client_connect(v.srv.port, "localhost", NULL, NULL);
    assert_non_null(v.client);
    fx_world_init(&v.w, &v.srv, NULL);
    fx_world_add_client(&v.w, v.client);
    FX_ASSERT_WITHIN(&v.w, sn_dtls_peer_get_status(v.client) != SN_DTLS_STATUS_HANDSHAKING,
                     HANDSHAKE_MS);
    expect_status(v.client, SN_DTLS_STATUS_ERROR, "certificate verify failed");
    verify_end(&v);
}

/* A trusted chain that is not the server's: ERROR, not a name mismatch. */
static void test_verify_other_chain(void **state)
{
    (void)state;
    verify_run v;
    verify_start(&v, &rsa, sn_tls_options_client(ec.trusted, NULL), "localhost");
    expect_status(v.client, SN_DTLS_STATUS_ERROR, "certificate verify failed");
    expect_server_saw_alert(&v);
    verify_end(&v);
}

static void test_verify_unsafe_null(void **state)
{
    (void)state;
    verify_run v;
    verify_start(&v, &rsa, sn_tls_options_client_unsafe(NULL), "anything.example");
    expect_both_connected(&v);
    verify_end(&v);
}

static void test_verify_unsafe_chain_wrong_name(void **state)
{
    (void)state;
    verify_run v;
    verify_start(&v, &ec, sn_tls_options_client_unsafe(ec.trusted), "wrong.example");
    expect_both_connected(&v);
    verify_end(&v);
    /* The chain is still verified. */
    verify_start(&v, &rsa, sn_tls_options_client_unsafe(ec.trusted), "localhost");
    expect_status(v.client, SN_DTLS_STATUS_ERROR, "certificate verify failed");
    verify_end(&v);
}

/* --- each allowed suite, with packets of exactly the largest size ------------------------------
 */

/* openssl s_client forcing one suite, through a relay: the session uses it, and a packet of
 * exactly sn_dtls_peer_get_max_packet_size() bytes fills a datagram of exactly the MTU
 * ("exact once connected"), one byte more is refused. */
static void suite_case(const char *suite, const char *iana)
{
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, ec.server, NULL));
    assert_true(fx_relay_start(&relay, srv.port, 1));
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", relay.port);
    const char *argv[] = {
        "openssl", "s_client", "-dtls1_2", "-connect",         connect,     "-cipher",
        suite,     "-CAfile",  ec.crt,     "-verify_hostname", "localhost", "-verify_return_error",
        "-quiet",  NULL};
    sn_test_proc *proc = sn_test_spawn(argv);
    assert_non_null(proc);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    FX_ASSERT_WITHIN(
        &w, srv.npeers > 0 && sn_dtls_peer_get_status(srv.peers[0]) != SN_DTLS_STATUS_HANDSHAKING,
        HANDSHAKE_MS);
    sn_dtls_peer *peer = srv.peers[0];
    expect_status(peer, SN_DTLS_STATUS_CONNECTED, NULL);
    const char *cipher = sn_dtls_peer_get_cipher(peer);
    int max = sn_dtls_peer_get_max_packet_size(peer);
    print_message("%s: %s, largest packet %d at MTU 1200\n", suite, cipher, max);
    assert_non_null(strstr(cipher, iana));
    /* A line of exactly max bytes, its end marked so the client's output shows it whole. */
    char *line = malloc((size_t)max + 1);
    memset(line, 'x', (size_t)max);
    memcpy(line + max - 9, "END-OF-IT\n", 10);
    line[max - 1] = '\n';
    memcpy(line, "begin", 5);
    assert_int_equal(sn_dtls_peer_put_packet(peer, line, (size_t)max + 1),
                     SN_ERR_PARAMETER_RANGE_ERROR);
    size_t before = relay.max_len[FX_S2C];
    relay.max_len[FX_S2C] = 0;
    assert_int_equal(sn_dtls_peer_put_packet(peer, line, (size_t)max), SN_OK);
    FX_ASSERT_WITHIN(&w, has_output(proc, "END-OF-I"), DATA_MS);
    print_message("  datagram of the largest packet: %zu bytes (handshake's largest %zu)\n",
                  relay.max_len[FX_S2C], before);
    assert_int_equal(relay.max_len[FX_S2C], 1200);
    assert_int_equal(sn_dtls_peer_get_status(peer), SN_DTLS_STATUS_CONNECTED);
    free(line);
    sn_test_proc_stop(proc);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

static void test_suite_chacha20(void **state)
{
    (void)state;
    suite_case("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
}

static void test_suite_aes256_gcm(void **state)
{
    (void)state;
    suite_case("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
}

static void test_suite_aes128_gcm(void **state)
{
    (void)state;
    suite_case("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
}

/* Suites outside the policy (CBC, static RSA) are refused: the server's peer fails on the
 * ClientHello itself (so take_connection already returns it in ERROR, with the reason), and the
 * client gets a handshake_failure alert. */
static void test_suite_cbc_refused(void **state)
{
    (void)state;
    fx_server srv;
    assert_true(fx_server_start(&srv, rsa.server, NULL));
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", srv.port);
    const char *argv[] = {"openssl",
                          "s_client",
                          "-dtls1_2",
                          "-connect",
                          connect,
                          "-cipher",
                          "ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA256",
                          "-quiet",
                          NULL};
    sn_test_proc *proc = sn_test_spawn(argv);
    assert_non_null(proc);
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    sn_dtls_server_stats st;
    FX_ASSERT_WITHIN(&w,
                     (sn_dtls_server_get_stats(srv.dtls, &st), st.handshakes_started == 1) &&
                         has_output(proc, "alert"),
                     HANDSHAKE_MS);
    print_message("CBC-only client: server peer \"%s\"; client: %s", srv.last_refused,
                  strstr(sn_test_proc_output(proc), "alert"));
    assert_int_equal(srv.npeers, 0);
    assert_true(srv.last_refused[0] != '\0');
    assert_non_null(strstr(sn_test_proc_output(proc), "handshake failure"));
    sn_test_proc_stop(proc);
    fx_server_stop(&srv);
}

/* --- IPv6 and dual stack ---------------------------------------------------------------------- */

/* The server on `bind` ("::1" or "*"), a sealnet client to `host`, and, when given, openssl
 * s_client to `openssl_connect` ("[::1]:PORT" style, %d for the port). */
static void dual_stack_case(const char *bind, const char *host, const char *openssl_connect)
{
    if (sn_test_sh("ip -6 addr show lo 2>/dev/null | grep -q '::1'") != 0) skip();
    fx_server srv;
    memset(&srv, 0, sizeof srv);
    srv.udp = sn_udp_server_new();
    srv.dtls = sn_dtls_server_new();
    assert_int_equal(sn_udp_server_listen(srv.udp, 0, bind), SN_OK);
    assert_int_equal(sn_dtls_server_setup(srv.dtls, ec.server), SN_OK);
    srv.port = sn_udp_server_get_local_port(srv.udp);
    sn_udp_peer *udp = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, host, srv.port), SN_OK);
    sn_dtls_peer *cl = sn_dtls_peer_new();
    sn_tls_options *opts = sn_tls_options_client(ec.trusted, NULL);
    assert_int_equal(sn_dtls_peer_connect_to_peer(cl, udp, "localhost", opts), SN_OK);
    sn_tls_options_free(opts);
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w,
                     sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING && srv.npeers == 1 &&
                         sn_dtls_peer_get_status(srv.peers[0]) != SN_DTLS_STATUS_HANDSHAKING,
                     HANDSHAKE_MS);
    expect_status(cl, SN_DTLS_STATUS_CONNECTED, NULL);
    expect_status(srv.peers[0], SN_DTLS_STATUS_CONNECTED, NULL);
    /* The server reports the client's address as the client sees its own socket: a dotted quad
     * for IPv4 even on a dual-stack socket. */
    const char *ip = sn_dtls_peer_get_packet_ip(srv.peers[0]);
    if (strchr(host, ':'))
        assert_string_equal(ip, "::1");
    else
        assert_string_equal(ip, "127.0.0.1");
    assert_true(sn_dtls_peer_get_packet_port(srv.peers[0]) > 0);
    assert_int_equal(sn_dtls_peer_put_packet(cl, "v6?", 3), SN_OK);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(srv.peers[0]) == 1, DATA_MS);
    expect_packet(srv.peers[0], "v6?");
    sn_dtls_peer_free(cl);
    w.nclients = 0;

    if (openssl_connect) {
        char connect[64];
        snprintf(connect, sizeof connect, openssl_connect, srv.port);
        const char *argv[] = {
            "openssl", "s_client", "-dtls1_2",         "-connect",  connect,
            "-CAfile", ec.crt,     "-verify_hostname", "localhost", "-verify_return_error",
            "-quiet",  NULL};
        sn_test_proc *proc = sn_test_spawn(argv);
        assert_non_null(proc);
        FX_ASSERT_WITHIN(&w,
                         srv.npeers == 2 &&
                             sn_dtls_peer_get_status(srv.peers[1]) == SN_DTLS_STATUS_CONNECTED,
                         HANDSHAKE_MS);
        assert_true(sn_test_proc_write(proc, "over six\n", 9));
        FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(srv.peers[1]) == 1, DATA_MS);
        expect_packet(srv.peers[1], "over six\n");
        sn_test_proc_stop(proc);
    }
    fx_server_stop(&srv);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    dual_stack_case("::1", "::1", "[::1]:%d");
}

static void test_dual_stack_ipv4_client(void **state)
{
    (void)state;
    dual_stack_case("*", "127.0.0.1", "127.0.0.1:%d");
}

static void test_dual_stack_ipv6_client(void **state)
{
    (void)state;
    dual_stack_case("*", "::1", NULL);
}

int main(void)
{
    if (!sn_test_have("openssl")) {
        printf("openssl command not found: skipping\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_openssl_client_ec),
        cmocka_unit_test(test_server_openssl_client_rsa),
        cmocka_unit_test(test_server_gnutls_client_ec),
        cmocka_unit_test(test_server_gnutls_client_rsa),
        cmocka_unit_test(test_server_rejected_by_openssl_client),
        cmocka_unit_test(test_server_rejected_by_gnutls_client),
        cmocka_unit_test(test_client_openssl_server_ec),
        cmocka_unit_test(test_client_openssl_server_rsa),
        cmocka_unit_test(test_client_gnutls_server_ec),
        cmocka_unit_test(test_client_gnutls_server_rsa),
        cmocka_unit_test(test_client_gnutls_server_wrong_name),
        cmocka_unit_test(test_verify_trusted_right_name),
        cmocka_unit_test(test_verify_trusted_wrong_name),
        cmocka_unit_test(test_verify_override_name),
        cmocka_unit_test(test_verify_untrusted_system_cas),
        cmocka_unit_test(test_verify_other_chain),
        cmocka_unit_test(test_verify_unsafe_null),
        cmocka_unit_test(test_verify_unsafe_chain_wrong_name),
        cmocka_unit_test(test_suite_chacha20),
        cmocka_unit_test(test_suite_aes256_gcm),
        cmocka_unit_test(test_suite_aes128_gcm),
        cmocka_unit_test(test_suite_cbc_refused),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_dual_stack_ipv4_client),
        cmocka_unit_test(test_dual_stack_ipv6_client),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
