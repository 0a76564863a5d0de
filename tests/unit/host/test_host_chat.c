/* The chat examples as processes: command dispatch (move, attack, chat broadcast), the idle
 * timeout of a client that goes silent, and graceful shutdown on SIGINT (every client sees its
 * DISCONNECT as CLOSED). Bounded: the programs get --seconds and every wait has a timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/sealnet.h>

#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char server_path[512], client_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(server_path, sizeof server_path, "%s/examples/chat_server", sn_test_build_dir());
    snprintf(client_path, sizeof client_path, "%s/examples/chat_client", sn_test_build_dir());
    return 0;
}

static sn_test_proc *start_server(int *port)
{
    const char *argv[] = {server_path, "--seconds",      "30",  "--idle-ms",
                          "800",       "--keepalive-ms", "200", NULL};
    sn_test_proc *s = sn_test_spawn(argv);
    assert_non_null(s);
    assert_true(sn_test_proc_wait_for(s, "listening on port ", 10000));
    const char *o = strstr(sn_test_proc_output(s), "listening on port ");
    *port = atoi(o + strlen("listening on port "));
    assert_true(*port > 0);
    return s;
}

static void chat_dispatch_timeout_and_shutdown(void **state)
{
    (void)state;
    int port;
    sn_test_proc *srv = start_server(&port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);

    /* Two players chat; each must see all six lines (its own included: broadcast to all). */
    const char *a_argv[] = {
        client_path, "--port",           ps,     "--name",   "alice", "--messages",
        "3",         "--interval-ms",    "50",   "--expect", "6",     "--seconds",
        "20",        "--start-delay-ms", "1500", "--move",   "3,4",   NULL};
    const char *b_argv[] = {
        client_path, "--port",           ps,     "--name",   "bob", "--messages",
        "3",         "--interval-ms",    "50",   "--expect", "6",   "--seconds",
        "20",        "--start-delay-ms", "1500", "--attack", "1",   NULL};
    sn_test_proc *a = sn_test_spawn(a_argv);
    sn_test_proc *b = sn_test_spawn(b_argv);
    assert_true(sn_test_proc_wait_for(a, "done: sent 3, received 6", 15000));
    assert_true(sn_test_proc_wait_for(b, "done: sent 3, received 6", 15000));
    assert_int_equal(sn_test_proc_wait_exit(a, 5000), 0);
    assert_int_equal(sn_test_proc_wait_exit(b, 5000), 0);
    const char *ao = sn_test_proc_output(a);
    assert_non_null(strstr(ao, "chat: bob: message 2"));
    assert_non_null(strstr(ao, "chat: alice: message 1"));
    /* Server side: names, chat, attack and move dispatched on the first byte. */
    assert_true(sn_test_proc_wait_for(srv, "alice moves to (3, 4)", 5000));
    assert_true(sn_test_proc_wait_for(srv, "bob attacks", 5000));
    assert_true(sn_test_proc_wait_for(srv, "bob says: message 3", 5000));
    assert_true(sn_test_proc_wait_for(srv, "alice disconnected (CLOSED", 5000));
    sn_test_proc_stop(a);
    sn_test_proc_stop(b);

    /* A client that stops servicing its host is dropped by the server's idle timeout. */
    const char *z_argv[] = {client_path, "--port",   ps,          "--name", "zed", "--messages",
                            "1",         "--freeze", "--seconds", "6",      NULL};
    sn_test_proc *z = sn_test_spawn(z_argv);
    assert_true(sn_test_proc_wait_for(z, "freezing", 10000));
    assert_true(sn_test_proc_wait_for(srv, "zed disconnected (TIMEOUT", 5000));
    sn_test_proc_stop(z);

    /* A waiting client, then SIGINT on the server: it closes everyone and exits cleanly. */
    const char *w_argv[] = {client_path, "--port", ps, "--name", "wait", "--seconds", "20", NULL};
    sn_test_proc *w = sn_test_spawn(w_argv);
    assert_true(sn_test_proc_wait_for(w, "connected to", 10000));
    assert_true(sn_test_proc_wait_for(srv, "is now called wait", 5000));
    kill(sn_test_proc_pid(srv), SIGINT);
    assert_int_equal(sn_test_proc_wait_exit(srv, 5000), 0);
    assert_non_null(strstr(sn_test_proc_output(srv), "shutting down: closing 1 players"));
    assert_true(sn_test_proc_wait_for(w, "disconnected (CLOSED", 3000));
    assert_int_equal(sn_test_proc_wait_exit(w, 3000), 0);
    sn_test_proc_stop(w);
    sn_test_proc_stop(srv);
}

/* With --cert/--key on the server and --ca on the client the certificate is verified (and a
 * client trusting another CA fails with a certificate error, not a timeout). */
static void chat_verified_certificate(void **state)
{
    (void)state;
    char *dir = sn_test_tmpdir();
    char *key_path = sn_test_path(dir, "server.key"), *cert_path = sn_test_path(dir, "server.crt");
    char *other_path = sn_test_path(dir, "other.crt");
    sn_crypto_key *key = sn_crypto_generate_ec("P-256"), *other = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL);
    sn_x509_cert *ocert =
        sn_crypto_generate_self_signed_certificate(other, "CN=localhost", NULL, NULL);
    assert_int_equal(sn_crypto_key_save(key, key_path, false), SN_OK);
    assert_int_equal(sn_x509_cert_save(cert, cert_path), SN_OK);
    assert_int_equal(sn_x509_cert_save(ocert, other_path), SN_OK);
    sn_crypto_key_free(key);
    sn_crypto_key_free(other);
    sn_x509_cert_free(cert);
    sn_x509_cert_free(ocert);

    const char *s_argv[] = {server_path, "--seconds", "20",     "--cert",
                            cert_path,   "--key",     key_path, NULL};
    sn_test_proc *srv = sn_test_spawn(s_argv);
    assert_true(sn_test_proc_wait_for(srv, "listening on port ", 10000));
    char ps[16];
    snprintf(ps, sizeof ps, "%d",
             atoi(strstr(sn_test_proc_output(srv), "listening on port ") + 18));
    const char *ok_argv[] = {client_path,  "--port",    ps,           "--ca", cert_path,
                             "--hostname", "localhost", "--messages", "1",    "--expect",
                             "1",          "--seconds", "15",         NULL};
    sn_test_proc *ok = sn_test_spawn(ok_argv);
    assert_true(sn_test_proc_wait_for(ok, "done: sent 1, received 1", 10000));
    assert_int_equal(sn_test_proc_wait_exit(ok, 5000), 0);
    const char *bad_argv[] = {client_path, "--port",    ps,   "--ca",
                              other_path,  "--seconds", "15", NULL};
    sn_test_proc *bad = sn_test_spawn(bad_argv);
    assert_true(sn_test_proc_wait_for(bad, "disconnected (HANDSHAKE_FAILED", 5000));
    assert_non_null(strstr(sn_test_proc_output(bad), "certificate"));
    assert_int_equal(sn_test_proc_wait_exit(bad, 5000), 3);
    sn_test_proc_stop(ok);
    sn_test_proc_stop(bad);
    kill(sn_test_proc_pid(srv), SIGINT);
    assert_int_equal(sn_test_proc_wait_exit(srv, 5000), 0);
    sn_test_proc_stop(srv);
    sn_test_rmtree(dir);
    free(dir);
    free(key_path);
    free(cert_path);
    free(other_path);
}

/* Bad usage is reported, not crashed on. */
static void chat_usage(void **state)
{
    (void)state;
    const char *argv[] = {client_path, NULL};
    sn_test_proc *c = sn_test_spawn(argv);
    assert_non_null(c);
    assert_int_equal(sn_test_proc_wait_exit(c, 5000), 2);
    assert_non_null(strstr(sn_test_proc_output(c), "--port is required"));
    sn_test_proc_stop(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_dispatch_timeout_and_shutdown),
        cmocka_unit_test(chat_verified_certificate),
        cmocka_unit_test(chat_usage),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
