/* DTLS 1.2 session resumption with session tickets (RFC 5077): full then resumed handshakes,
 * key rotation (previous key still resumes, an unknown key falls back and is counted), forged
 * tickets (never resume, never crash), servers without keys, the shared cookie secret and the
 * ticket/cookie files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "dtls_fixture.h"
#include "dtls_internal.h"

static sn_crypto_key *g_key;
static sn_x509_cert *g_cert;
static uint8_t g_keys[2 * SN_TICKET_KEY_SIZE]; /* two distinct ticket keys */

static int group_setup(void **state)
{
    (void)state;
    g_key = sn_crypto_generate_ec("P-256");
    g_cert = g_key ? sn_crypto_generate_self_signed_certificate(g_key, "CN=localhost,O=test,C=IT",
                                                                NULL, NULL)
                   : NULL;
    for (size_t i = 0; i < sizeof g_keys; i++)
        g_keys[i] = (uint8_t)(i * 7 + 3);
    return g_cert ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sn_crypto_key_free(g_key);
    sn_x509_cert_free(g_cert);
    return 0;
}

/* Connects once through `relay` (or straight) and returns whether it resumed; asserts that it
 * connected. */
static bool connect_once(fx_server *srv, fx_relay *relay, const sn_tls_options *client)
{
    fx_world w;
    fx_world_init(&w, srv, relay);
    sn_dtls_peer *c = fx_client_connect(relay ? relay->port : srv->port, "localhost", client, NULL);
    assert_non_null(c);
    fx_world_add_client(&w, c);
    uint64_t end = sn_test_now_ms() + 10000;
    while (sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_HANDSHAKING && sn_test_now_ms() < end)
        fx_world_step(&w, 5);
    if (sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_CONNECTED) {
        sn_dtls_peer *s = fx_server_last_peer(srv);
        print_error("client: status %u '%s'; server peers %d, last: status %d '%s'; refused %llu "
                    "'%s'\n",
                    sn_dtls_peer_get_status(c), sn_dtls_peer_get_error_message(c), srv->npeers,
                    s ? (int)sn_dtls_peer_get_status(s) : -1,
                    s ? sn_dtls_peer_get_error_message(s) : "",
                    (unsigned long long)srv->not_handshaking, srv->last_refused);
        fail();
    }
    /* Data flows both ways on the resumed keys too. */
    assert_int_equal(sn_dtls_peer_put_packet(c, "ping", 4), SN_OK);
    sn_dtls_peer *s = fx_server_last_peer(srv);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(s) > 0, 5000);
    bool resumed = sn_dtls_peer_is_session_resumed(c);
    assert_int_equal(resumed, sn_dtls_peer_is_session_resumed(s));
    /* The certificate is known on a resumed session too (pinning keeps working). */
    assert_string_not_equal(sn_dtls_peer_get_peer_fingerprint_sha256(c), "");
    sn_dtls_peer_free(c);
    return resumed;
}

static sn_tls_options *server_with_keys(const uint8_t *keys, size_t len)
{
    sn_tls_options *o = sn_tls_options_server(g_key, g_cert);
    assert_non_null(o);
    if (keys) assert_int_equal(sn_tls_options_set_ticket_keys(o, keys, len), SN_OK);
    return o;
}

static void test_full_then_resumed(void **state)
{
    (void)state;
    sn_tls_options *so = server_with_keys(g_keys, SN_TICKET_KEY_SIZE);
    sn_tls_options *co = sn_tls_options_client(g_cert, NULL);
    fx_server srv;
    assert_true(fx_server_start(&srv, so, NULL));
    assert_false(connect_once(&srv, NULL, co));
    assert_true(connect_once(&srv, NULL, co));
    assert_true(connect_once(&srv, NULL, co));
    sn_tls_ticket_stats st;
    sn_tls_options_get_ticket_stats(so, &st);
    assert_int_equal(st.resumed, 2);
    assert_true(st.issued >= 1);
    assert_int_equal(st.unknown_key, 0);
    assert_int_equal(st.rejected, 0);
    /* Other client options hold no session: a full handshake. */
    sn_tls_options *other = sn_tls_options_client(g_cert, NULL);
    assert_false(connect_once(&srv, NULL, other));
    sn_tls_options_free(other);
    fx_server_stop(&srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

/* A server that restarts on the same address (or another machine taking it over) with the same
 * keys resumes the sessions of the one before: the ticket holds everything. */
static void test_resume_on_another_server(void **state)
{
    (void)state;
    sn_tls_options *a = server_with_keys(g_keys, SN_TICKET_KEY_SIZE);
    sn_tls_options *b = server_with_keys(g_keys, SN_TICKET_KEY_SIZE);
    sn_tls_options *co = sn_tls_options_client(g_cert, NULL);
    fx_server sa;
    assert_true(fx_server_start(&sa, a, NULL));
    int port = sa.port;
    assert_false(connect_once(&sa, NULL, co));
    fx_server_stop(&sa);
    fx_server sb;
    memset(&sb, 0, sizeof sb);
    sb.udp = sn_udp_server_new();
    sb.dtls = sn_dtls_server_new();
    assert_int_equal(sn_udp_server_listen(sb.udp, port, "127.0.0.1"), SN_OK);
    assert_int_equal(sn_dtls_server_setup(sb.dtls, b), SN_OK);
    sb.port = port;
    assert_true(connect_once(&sb, NULL, co));
    fx_server_stop(&sb);
    sn_tls_options_free(a);
    sn_tls_options_free(b);
    sn_tls_options_free(co);
}

/* A session the server ended with close_notify ended cleanly: the client resumes it next time.
 * (OpenSSL forgets a session freed before this side's own close_notify went out, so the client
 * used to pay a full handshake after every graceful close by the server.) */
static void test_resumes_after_server_closed(void **state)
{
    (void)state;
    sn_tls_options *so = server_with_keys(g_keys, SN_TICKET_KEY_SIZE);
    sn_tls_options *co = sn_tls_options_client(g_cert, NULL);
    fx_server srv;
    assert_true(fx_server_start(&srv, so, NULL));
    assert_false(connect_once(&srv, NULL, co));
    for (int round = 0; round < 2; round++) {
        fx_world w;
        fx_world_init(&w, &srv, NULL);
        sn_dtls_peer *c = fx_client_connect(srv.port, "localhost", co, NULL);
        assert_non_null(c);
        fx_world_add_client(&w, c);
        FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_HANDSHAKING, 10000);
        assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
        assert_true(sn_dtls_peer_is_session_resumed(c));
        /* Resumed: the client's Finished comes last, so the server connects after it. */
        sn_dtls_peer *sp = fx_server_last_peer(&srv);
        FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(sp) == SN_DTLS_STATUS_CONNECTED, 5000);
        sn_dtls_peer_disconnect_from_peer(sp); /* close_notify */
        FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_DISCONNECTED, 5000);
        sn_dtls_peer_free(c);
    }
    assert_true(connect_once(&srv, NULL, co));
    fx_server_stop(&srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

static void test_no_keys_no_resumption(void **state)
{
    (void)state;
    sn_tls_options *so = server_with_keys(NULL, 0);
    sn_tls_options *co = sn_tls_options_client(g_cert, NULL);
    fx_server srv;
    assert_true(fx_server_start(&srv, so, NULL));
    assert_false(connect_once(&srv, NULL, co));
    assert_false(connect_once(&srv, NULL, co));
    sn_tls_ticket_stats st;
    sn_tls_options_get_ticket_stats(so, &st);
    assert_int_equal(st.issued, 0);
    fx_server_stop(&srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

static void test_rotation(void **state)
{
    (void)state;
    uint8_t k1[SN_TICKET_KEY_SIZE], k2[SN_TICKET_KEY_SIZE], both[2 * SN_TICKET_KEY_SIZE];
    memcpy(k1, g_keys, sizeof k1);
    memcpy(k2, g_keys + SN_TICKET_KEY_SIZE, sizeof k2);
    memcpy(both, k2, sizeof k2);
    memcpy(both + SN_TICKET_KEY_SIZE, k1, sizeof k1);
    sn_tls_options *so = server_with_keys(k1, sizeof k1);
    sn_tls_options *co = sn_tls_options_client(g_cert, NULL);
    fx_server srv;
    assert_true(fx_server_start(&srv, so, NULL));
    assert_false(connect_once(&srv, NULL, co)); /* ticket under k1 */
    /* Rotate: k2 current, k1 previous. The k1 ticket still resumes (and is renewed). */
    assert_int_equal(sn_tls_options_set_ticket_keys(so, both, sizeof both), SN_OK);
    assert_true(connect_once(&srv, NULL, co));
    /* Retire k1 altogether after a ticket under it... the renewed ticket is under k2. */
    assert_int_equal(sn_tls_options_set_ticket_keys(so, k2, sizeof k2), SN_OK);
    assert_true(connect_once(&srv, NULL, co));
    /* A key the server never had: full handshake, counted, and a fresh ticket. */
    uint8_t k3[SN_TICKET_KEY_SIZE];
    memset(k3, 0x5a, sizeof k3);
    assert_int_equal(sn_tls_options_set_ticket_keys(so, k3, sizeof k3), SN_OK);
    assert_false(connect_once(&srv, NULL, co));
    sn_tls_ticket_stats st;
    sn_tls_options_get_ticket_stats(so, &st);
    assert_int_equal(st.unknown_key, 1);
    assert_true(connect_once(&srv, NULL, co));
    fx_server_stop(&srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

/* --- forged tickets: the relay rewrites the ticket inside every ClientHello ------------------ */

static fx_relay *g_relay;
static int g_forge_mode; /* 1: flip a byte of the encrypted state; 2: change the key name */
static int g_forged;

static bool forge_filter(int dir, const uint8_t *d, size_t len)
{
    if (dir != FX_C2S || len < 14 || d[0] != 22 || d[13] != 1) return false; /* ClientHellos */
    const uint8_t *name = memmem(d, len, g_keys, 16);
    if (!name) return false;
    uint8_t copy[2048];
    if (len > sizeof copy) return false;
    memcpy(copy, d, len);
    size_t at = (size_t)(name - d);
    if (g_forge_mode == 1 && at + 16 + 16 + 8 < len)
        copy[at + 16 + 16 + 4] ^= 0x40; /* inside the ciphertext, past the IV */
    else
        copy[at] ^= 0xff;
    g_forged++;
    fx_relay_inject(g_relay, FX_C2S, copy, len);
    return true; /* the original is dropped */
}

static void forged(int mode)
{
    sn_tls_options *so = server_with_keys(g_keys, SN_TICKET_KEY_SIZE);
    sn_tls_options *co = sn_tls_options_client(g_cert, NULL);
    fx_server srv;
    fx_relay r;
    assert_true(fx_server_start(&srv, so, NULL));
    assert_true(fx_relay_start(&r, srv.port, 7));
    g_relay = &r;
    g_forge_mode = mode;
    g_forged = 0;
    assert_false(connect_once(&srv, &r, co)); /* gets a ticket */
    r.filter = forge_filter;
    /* Offers it, rewritten on the way: the server must not resume it. (The rewrite also changes
     * the ClientHello the client hashed, so this handshake cannot finish either: it ends by
     * timeout or alert; what matters is what the server did with the ticket.) */
    fx_world w;
    fx_world_init(&w, &srv, &r);
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.handshake_timeout_ms = 3000;
    sn_dtls_peer *c = fx_client_connect(r.port, "localhost", co, &set);
    assert_non_null(c);
    fx_world_add_client(&w, c);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_HANDSHAKING, 10000);
    assert_int_not_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    sn_dtls_peer *s = fx_server_last_peer(&srv);
    assert_false(sn_dtls_peer_is_session_resumed(s));
    sn_dtls_peer_free(c);
    assert_true(g_forged >= 1);
    sn_tls_ticket_stats st;
    sn_tls_options_get_ticket_stats(so, &st);
    assert_int_equal(st.resumed, 0);
    if (mode == 2) assert_true(st.unknown_key >= 1);
    /* The good ticket is still the client's: without the forger it resumes. */
    r.filter = NULL;
    assert_true(connect_once(&srv, &r, co));
    fx_relay_stop(&r);
    fx_server_stop(&srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

static void test_forged_ticket_body(void **state)
{
    (void)state;
    forged(1);
}

static void test_forged_ticket_key_name(void **state)
{
    (void)state;
    forged(2);
}

/* --- API checks ------------------------------------------------------------------------------ */

static void test_ticket_key_api(void **state)
{
    (void)state;
    sn_tls_options *so = sn_tls_options_server(g_key, g_cert);
    sn_tls_options *co = sn_tls_options_client(g_cert, NULL);
    assert_int_equal(sn_tls_options_set_ticket_keys(so, g_keys, 79), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_tls_options_set_ticket_keys(so, g_keys, 240), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_tls_options_set_ticket_keys(co, g_keys, 80), SN_ERR_INVALID_PARAMETER);
    /* After the first connection a server without keys cannot start issuing tickets. */
    fx_server srv;
    assert_true(fx_server_start(&srv, so, NULL));
    assert_int_equal(sn_tls_options_set_ticket_keys(so, g_keys, 80), SN_ERR_ALREADY_IN_USE);
    fx_server_stop(&srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

static void test_files(void **state)
{
    (void)state;
    char *dir = sn_test_tmpdir();
    char *tk = sn_test_path(dir, "tickets.key"), *cs = sn_test_path(dir, "cookie.secret");
    sn_tls_options *a = sn_tls_options_server(g_key, g_cert);
    sn_tls_options *b = sn_tls_options_server(g_key, g_cert);
    /* Missing: created, 0600, one key; a second load reads the same key. */
    assert_int_equal(sn_tls_options_load_ticket_key_file(a, tk), SN_OK);
    struct stat st;
    assert_int_equal(stat(tk, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sn_tls_options_load_ticket_key_file(b, tk), SN_OK);
    uint8_t s1[32], s2[32];
    assert_int_equal(sn_dtls_load_cookie_secret_file(cs, s1), SN_OK);
    assert_int_equal(sn_dtls_load_cookie_secret_file(cs, s2), SN_OK);
    assert_memory_equal(s1, s2, 32);
    assert_int_equal(stat(cs, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* Corrupt files: refused with the file, the line and the fault named. */
    struct {
        const char *text, *needle;
    } bad[] = {
        {"# c\n0123\n", "line 2: 4 characters"},
        {"", "empty"},
        {"# only a comment\n", "holds no secret"},
        {"zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", "not a hex digit"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_true(sn_test_write_file(cs, bad[i].text, strlen(bad[i].text)));
        assert_int_not_equal(sn_dtls_load_cookie_secret_file(cs, s1), SN_OK);
        assert_non_null(strstr(sn_last_error_message(), "cookie.secret"));
        assert_non_null(strstr(sn_last_error_message(), bad[i].needle));
    }
    /* Two secrets where one is allowed. */
    char two[200];
    snprintf(two, sizeof two, "%064d\n%064d\n", 1, 2);
    assert_true(sn_test_write_file(cs, two, strlen(two)));
    assert_int_equal(sn_dtls_load_cookie_secret_file(cs, s1), SN_ERR_FILE_CORRUPT);
    assert_non_null(strstr(sn_last_error_message(), "line 2"));
    /* A short ticket key. */
    char shortkey[200];
    snprintf(shortkey, sizeof shortkey, "%0150d\n", 7);
    sn_tls_options *c = sn_tls_options_server(g_key, g_cert);
    assert_true(sn_test_write_file(tk, shortkey, strlen(shortkey)));
    assert_int_equal(sn_tls_options_load_ticket_key_file(c, tk), SN_ERR_FILE_CORRUPT);
    assert_non_null(strstr(sn_last_error_message(), "tickets.key"));
    assert_non_null(strstr(sn_last_error_message(), "160 hex digits"));
    sn_tls_options_free(a);
    sn_tls_options_free(b);
    sn_tls_options_free(c);
    sn_test_rmtree(dir);
    free(tk);
    free(cs);
    free(dir);
}

/* Two servers given one cookie secret accept each other's cookies; separate secrets do not. */
static void test_shared_cookie_secret(void **state)
{
    (void)state;
    uint8_t secret[32];
    memset(secret, 0x42, sizeof secret);
    sn_dtls_cookie_jar *a = sn_dtls_jar_new(60000), *b = sn_dtls_jar_new(60000);
    sn_dtls_cookie_jar *c = sn_dtls_jar_new(60000);
    sn_dtls_jar_set_secret(a, secret);
    sn_dtls_jar_set_secret(b, secret);
    sn_addr addr;
    assert_int_equal(sn_net_resolve("127.0.0.1", 5555, SOCK_DGRAM, AF_UNSPEC, &addr), SN_OK);
    uint8_t cookie[SN_DTLS_COOKIE_LEN];
    sn_dtls_jar_make(a, &addr, cookie);
    assert_true(sn_dtls_jar_check(b, &addr, cookie, sizeof cookie));
    assert_false(sn_dtls_jar_check(c, &addr, cookie, sizeof cookie));
    sn_dtls_jar_unref(a);
    sn_dtls_jar_unref(b);
    sn_dtls_jar_unref(c);

    sn_dtls_server *s = sn_dtls_server_new();
    assert_int_equal(sn_dtls_server_set_cookie_secret(s, secret, 31), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_dtls_server_set_cookie_secret(s, secret, 32), SN_OK);
    sn_dtls_server_free(s);
}

int main(void)
{
    /* A backend without session tickets refuses ticket keys (SN_ERR_UNAVAILABLE): skipped. */
    if (sn_test_backend_lacks("tickets")) return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_then_resumed),
        cmocka_unit_test(test_resume_on_another_server),
        cmocka_unit_test(test_resumes_after_server_closed),
        cmocka_unit_test(test_no_keys_no_resumption),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_forged_ticket_body),
        cmocka_unit_test(test_forged_ticket_key_name),
        cmocka_unit_test(test_ticket_key_api),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_shared_cookie_secret),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
