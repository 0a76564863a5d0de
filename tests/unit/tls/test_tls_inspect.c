/* What a session shows of itself, in-process and on every backend: the key log lines of both
 * ends of one connection are the same lines, the trace names the same messages in the order
 * each end saw them, one session pointer per connection, and the chain the server presented is
 * there (with its text) also after the client refused it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>

#include "testutil.h"
#include "test_tls_util.h"

typedef struct lines {
    char text[4096];
    int count;
} lines;

static void keylog_line(void *user, const char *line)
{
    lines *l = user;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof l->text - used, "%s\n", line);
    l->count++;
}

typedef struct trace_log {
    char text[8192];
    const void *session;
    bool one_session;
    int events;
} trace_log;

static void on_trace(void *user, const sn_tls_trace_event *ev)
{
    trace_log *t = user;
    if (!t->session) t->session = ev->session;
    if (ev->session != t->session) t->one_session = false;
    size_t used = strlen(t->text);
    snprintf(t->text + used, sizeof t->text - used, "%s %s (%s, %zu)%s\n", ev->sent ? ">>>" : "<<<",
             ev->message, ev->content, ev->length, ev->retransmission ? " again" : "");
    t->events++;
}

static void keylog_and_trace_of_one_connection(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("keylog")) skip();
    static lines client_keys, server_keys;
    static trace_log client_trace = {.one_session = true}, server_trace = {.one_session = true};
    sn_tls_options *so = sn_tls_options_server(certs->key, certs->cert);
    sn_tls_options *co = sn_tls_options_client(certs->cert, NULL);
    assert_int_equal(sn_tls_options_set_keylog_callback(so, keylog_line, &server_keys), SN_OK);
    assert_int_equal(sn_tls_options_set_keylog_callback(co, keylog_line, &client_keys), SN_OK);
    assert_int_equal(sn_tls_options_set_trace_callback(so, on_trace, &server_trace), SN_OK);
    assert_int_equal(sn_tls_options_set_trace_callback(co, on_trace, &client_trace), SN_OK);

    tcp_pair t;
    tcp_pair_open(&t, false);
    sn_tls_stream *c = sn_tls_stream_new(), *s = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_accept_stream(s, t.server_side, so), SN_OK);
    assert_int_equal(sn_tls_stream_connect_to_stream(c, t.client, "localhost", co), SN_OK);
    tls_pump_handshake(c, s, 10000);
    assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_put_data(s, "hi", 2), SN_OK);
    char buf[2];
    assert_int_equal(sn_tls_stream_get_data(c, buf, 2), SN_OK);

    /* The same secrets on both ends: NSS lines "LABEL <client random> <secret>". */
    assert_true(client_keys.count >= 1);
    assert_int_equal(client_keys.count, server_keys.count);
    char copy[sizeof client_keys.text];
    memcpy(copy, client_keys.text, sizeof copy);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) /* order may differ */
        if (!strstr(server_keys.text, line))
            fail_msg("the server did not log %s:\n%s", line, server_keys.text);
    if (strncmp(sn_tls_stream_get_protocol_description(c), "TLSv1.2", 7) == 0) {
        assert_int_equal(client_keys.count, 1);
        assert_int_equal(strlen(client_keys.text), 14 + 64 + 1 + 96 + 1);
        assert_memory_equal(client_keys.text, "CLIENT_RANDOM ", 14);
    }

    /* Each end's view, in order; the messages every TLS version has. */
    assert_true(client_trace.one_session);
    assert_true(server_trace.one_session);
    assert_ptr_not_equal(client_trace.session, server_trace.session);
    const char *ct = client_trace.text, *st = server_trace.text;
    if (strncmp(ct, ">>> ClientHello (handshake, ", 28) != 0 ||
        strncmp(st, "<<< ClientHello (handshake, ", 28) != 0 ||
        !strstr(ct, "<<< ServerHello (handshake") || !strstr(st, ">>> ServerHello (handshake") ||
        !strstr(ct, "<<< Certificate (handshake") || !strstr(st, ">>> Certificate (handshake") ||
        strstr(ct, "<<< ServerHello") > strstr(ct, "<<< Certificate") ||
        !strstr(ct, ">>> Finished (handshake") || !strstr(ct, "<<< Finished (handshake") ||
        !strstr(st, ">>> Finished (handshake") || !strstr(st, "<<< Finished (handshake") ||
        strstr(ct, "unknown") || strstr(st, "unknown") || strstr(ct, " again"))
        fail_msg("trace:\nclient:\n%s\nserver:\n%s", ct, st);
    /* The ClientHello is as long on both ends. */
    assert_int_equal(atoi(ct + 28), atoi(st + 28));

    /* close_notify: sent by one end, received by the other, named as such. */
    sn_tls_stream_disconnect_from_stream(c);
    tls_poll_until_not(s, NULL, SN_TLS_STATUS_CONNECTED, 5000);
    if (!strstr(client_trace.text, ">>> close_notify (warning) (alert, 2)") ||
        !strstr(server_trace.text, "<<< close_notify (warning) (alert, 2)"))
        fail_msg("close_notify:\nclient:\n%s\nserver:\n%s", client_trace.text, server_trace.text);
    sn_tls_stream_free(c);
    sn_tls_stream_free(s);
    sn_tcp_server_free(t.srv);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

static void peer_chain_after_a_refused_certificate(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("peer chain")) skip();
    /* The client trusts another certificate with the same name: the server's is refused. */
    sn_tls_options *co = sn_tls_options_client(certs->other, NULL);
    tls_pair p;
    tls_pair_open_with(&p, certs, "localhost", co);
    assert_int_equal(sn_tls_stream_get_status(p.client), SN_TLS_STATUS_ERROR);
    const char *why = sn_tls_stream_get_error_message(p.client);
    if (!strstr(why, "certificate verify failed: self-signed certificate (CN=localhost, issued by "
                     "CN=localhost)"))
        fail_msg("message: %s", why);
    sn_x509_cert *chain = sn_tls_stream_get_peer_certificate(p.client);
    assert_non_null(chain);
    assert_int_equal(sn_x509_cert_get_count(chain), 1);
    sn_x509_info info;
    assert_int_equal(sn_x509_cert_get_info(chain, 0, &info), SN_OK);
    assert_string_equal(info.subject, "CN=localhost");
    assert_string_equal(info.names, "DNS:localhost, IP:127.0.0.1");
    char *want = sn_x509_cert_get_fingerprint_sha256(certs->cert);
    assert_string_equal(info.fingerprint_sha256, want);
    sn_free(want);
    sn_x509_cert_free(chain);
    tls_pair_close(&p);
    sn_tls_options_free(co);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keylog_and_trace_of_one_connection),
        cmocka_unit_test(peer_chain_after_a_refused_certificate),
    };
    if (!sn_test_have("openssl")) {
        fprintf(stderr, "SKIP: the openssl command is needed to make test certificates\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
