/* Scale-out as processes: session resumption against sealnet dtls-server with a ticket-key file
 * (openssl s_client -dtls1_2 -reconnect, -sess_out/-sess_in, gnutls-cli --udp --resume, sealnet
 * dtls-client --reconnect), forged and retired tickets, corrupt secret files, and
 * dtls-server --workers N on one port with shared secrets.
 *
 * argv[1] (from CTest) is the sealnet binary; without it, $SN_BUILD_DIR/tools/sealnet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char sealnet_bin[4096];
static char *tmp;

static int setup(void **state)
{
    (void)state;
    tmp = sn_test_tmpdir();
    return tmp ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sn_test_rmtree(tmp);
    free(tmp);
    return 0;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Starts `sealnet dtls-server --port 0 --echo --save-cert tmp/cert.pem` + extra args; reads the
 * port. */
static sn_test_proc *start_server(const char *const extra[], int *port)
{
    const char *argv[32];
    int n = 0;
    static char cert[4096];
    snprintf(cert, sizeof cert, "%s/cert.pem", tmp);
    argv[n++] = sealnet_bin;
    argv[n++] = "dtls-server";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--echo";
    argv[n++] = "--save-cert";
    argv[n++] = cert;
    argv[n++] = "--force"; /* every server of a test writes the same file */
    for (int i = 0; extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    const char *needle = "listening on udp port ";
    if (!sn_test_proc_wait_for(p, needle, 20000) || !sn_test_proc_wait_for(p, "\nmode:", 5000)) {
        fprintf(stderr, "server output:\n%s\n", sn_test_proc_output(p));
        fail_msg("server did not start");
    }
    *port = atoi(strstr(sn_test_proc_output(p), needle) + strlen(needle));
    assert_in_range(*port, 1, 65535);
    return p;
}

/* Stops the server (SIGTERM) and returns its whole output (caller frees). */
static char *stop_server(sn_test_proc *p)
{
    kill(sn_test_proc_pid(p), SIGTERM);
    sn_test_proc_wait_exit(p, 10000);
    sn_test_proc_drain(p);
    char *out = strdup(sn_test_proc_output(p));
    sn_test_proc_stop(p);
    return out;
}

static char *path(const char *name)
{
    char *p = sn_test_path(tmp, name);
    assert_non_null(p);
    return p;
}

static void openssl_reconnect_and_session_files(void **state)
{
    (void)state;
    char *tk = path("tickets.key");
    int port;
    /* On workers: their exit line has the ticket counters (and every connection may land on
     * either worker: they share the keys). */
    sn_test_proc *srv =
        start_server((const char *[]){"--workers", "2", "--ticket-key-file", tk, NULL}, &port);
    /* Created with a fresh key, owner-only. */
    struct stat st;
    assert_int_equal(stat(tk, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* -reconnect: one full handshake, then five resumed ones. */
    char *out = sn_test_sh_output("echo | timeout 30 openssl s_client -dtls1_2 -connect "
                                  "127.0.0.1:%d -CAfile %s/cert.pem -reconnect 2>&1",
                                  port, tmp);
    assert_non_null(out);
    if (count(out, "\nNew, ") != 1 || count(out, "\nReused, ") != 5)
        fail_msg("s_client -reconnect: want 1 New + 5 Reused:\n%s", out);
    free(out);

    /* -sess_out / -sess_in: a session saved by one process resumes in another. */
    out = sn_test_sh_output("echo | timeout 20 openssl s_client -dtls1_2 -connect 127.0.0.1:%d "
                            "-CAfile %s/cert.pem -sess_out %s/s.pem 2>&1; echo | timeout 20 "
                            "openssl s_client -dtls1_2 -connect 127.0.0.1:%d -CAfile %s/cert.pem "
                            "-sess_in %s/s.pem 2>&1",
                            port, tmp, tmp, port, tmp, tmp);
    assert_non_null(out);
    if (count(out, "\nNew, ") != 1 || count(out, "\nReused, ") != 1)
        fail_msg("-sess_out/-sess_in: want New then Reused:\n%s", out);
    free(out);

    /* A forged ticket: the saved session with one byte of its ticket flipped (past the 16-byte
     * key name and the IV) never resumes, and the server carries on. */
    char *keys = sn_test_read_file(tk, NULL);
    char *line = strchr(keys, '\n') + 1; /* after the comment line */
    char name_hex[33];
    memcpy(name_hex, line, 32);
    name_hex[32] = '\0';
    uint8_t name[16];
    for (int i = 0; i < 16; i++) {
        unsigned v;
        assert_int_equal(sscanf(name_hex + 2 * i, "%2x", &v), 1);
        name[i] = (uint8_t)v;
    }
    assert_int_equal(sn_test_sh("cd %s && openssl sess_id -in s.pem -outform DER -out s.der", tmp),
                     0);
    char *der_path = path("s.der"), *forged_path = path("f.der");
    size_t der_len = 0;
    uint8_t *der = (uint8_t *)sn_test_read_file(der_path, &der_len);
    assert_non_null(der);
    uint8_t *at = memmem(der, der_len, name, sizeof name);
    assert_non_null(at); /* the ticket starts with our key's name */
    assert_true(at + 40 < der + der_len);
    at[40] ^= 0x55;
    assert_true(sn_test_write_file(forged_path, der, der_len));
    assert_int_equal(sn_test_sh("cd %s && openssl sess_id -inform DER -in f.der -out f.pem", tmp),
                     0);
    free(der);
    free(der_path);
    free(forged_path);
    out = sn_test_sh_output("echo | timeout 20 openssl s_client -dtls1_2 -connect 127.0.0.1:%d "
                            "-CAfile %s/cert.pem -sess_in %s/f.pem 2>&1",
                            port, tmp, tmp);
    assert_non_null(out);
    if (count(out, "\nNew, ") != 1 || count(out, "\nReused, ") != 0)
        fail_msg("forged ticket: want a full handshake:\n%s", out);
    free(out);
    free(keys);
    char *log = stop_server(srv);
    /* 5 + 1 resumed; the forged ticket counted as rejected. */
    if (!strstr(log, "(6 resumed") || !strstr(log, "1 rejected")) {
        fprintf(stderr, "server output:\n%s\n", log);
        fail_msg("server counters: want 6 resumed, 1 rejected");
    }
    free(log);

    /* Another key file (keys rotated away): the old session is under an unknown key. */
    char *tk2 = path("other.key");
    srv = start_server((const char *[]){"--workers", "2", "--ticket-key-file", tk2, NULL}, &port);
    out = sn_test_sh_output("echo | timeout 20 openssl s_client -dtls1_2 -connect 127.0.0.1:%d "
                            "-CAfile %s/cert.pem -sess_in %s/s.pem 2>&1",
                            port, tmp, tmp);
    assert_non_null(out);
    if (count(out, "\nNew, ") != 1) fail_msg("retired key: want a full handshake:\n%s", out);
    free(out);
    log = stop_server(srv);
    if (!strstr(log, "1 unknown key")) fail_msg("server counters:\n%s", log);
    free(log);
    free(tk);
    free(tk2);
}

static void gnutls_resume(void **state)
{
    (void)state;
    char *tk = path("tickets.key");
    int port;
    sn_test_proc *srv = start_server((const char *[]){"--ticket-key-file", tk, NULL}, &port);
    char *out = sn_test_sh_output("timeout 30 gnutls-cli --udp --resume --insecure -p %d "
                                  "127.0.0.1 </dev/null 2>&1",
                                  port);
    assert_non_null(out);
    if (!strstr(out, "This is a resumed session")) fail_msg("gnutls-cli --resume:\n%s", out);
    free(out);
    free(stop_server(srv));
    free(tk);
}

/* sealnet's own client over a server on 2 workers with shared secrets; a client that does not
 * resume (Godot's PacketPeerDTLS never does: plain dtls-client) still works. */
static void sealnet_reconnect_on_workers(void **state)
{
    (void)state;
    char *tk = path("tickets.key"), *cs = path("cookie.secret");
    int port;
    sn_test_proc *srv = start_server((const char *[]){"--workers", "2", "--ticket-key-file", tk,
                                                      "--cookie-secret-file", cs, NULL},
                                     &port);
    assert_non_null(strstr(sn_test_proc_output(srv), "2 workers"));
    char *out = sn_test_sh_output("printf 'one\\ntwo\\n' | timeout 60 %s dtls-client 127.0.0.1 %d "
                                  "--ca %s/cert.pem --name localhost --reconnect 3 --interval 50 "
                                  "2>&1; echo rc=$?",
                                  sealnet_bin, port, tmp);
    assert_non_null(out);
    if (!strstr(out, "connection 1: full") || !strstr(out, "connection 4: resumed") ||
        !strstr(out, "done: 3 resumed, 1 full, 0 failed") || !strstr(out, "rc=0") ||
        count(out, "< one") != 4)
        fail_msg("dtls-client --reconnect:\n%s", out);
    free(out);
    out = sn_test_sh_output("printf 'plain\\n' | timeout 30 %s dtls-client 127.0.0.1 %d --ca "
                            "%s/cert.pem --name localhost --wait 500 2>&1; echo rc=$?",
                            sealnet_bin, port, tmp);
    if (!strstr(out, "< plain") || !strstr(out, "rc=0")) fail_msg("plain client:\n%s", out);
    free(out);
    char *log = stop_server(srv);
    if (!strstr(log, "3 resumed") || !strstr(log, "worker 1:")) fail_msg("server:\n%s", log);
    free(log);
    struct stat st;
    assert_int_equal(stat(cs, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(tk);
    free(cs);
}

/* Corrupt or short secret files stop the server at once with the file and the fault named. */
static void bad_secret_files_are_refused(void **state)
{
    (void)state;
    char *bad = path("bad.key");
    static const struct {
        const char *content, *flag, *says;
    } cases[] = {
        {"0123abcd\n", "--ticket-key-file", "line 1: 8 characters"},
        {"# nothing\n", "--cookie-secret-file", "holds no secret"},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
         "--cookie-secret-file", "not a hex digit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_true(sn_test_write_file(bad, cases[i].content, strlen(cases[i].content)));
        for (int workers = 1; workers <= 2; workers++) {
            char *out = sn_test_sh_output("timeout 20 %s dtls-server --port 0 --workers %d %s %s "
                                          "2>&1; echo rc=$?",
                                          sealnet_bin, workers, cases[i].flag, bad);
            assert_non_null(out);
            if (!strstr(out, "bad.key") || !strstr(out, cases[i].says) || !strstr(out, "rc=1"))
                fail_msg("%s '%s' (workers %d):\n%s", cases[i].flag, cases[i].content, workers,
                         out);
            free(out);
        }
    }
    char *out = sn_test_sh_output("%s dtls-server --workers zero 2>&1; echo rc=$?", sealnet_bin);
    assert_non_null(strstr(out, "--workers wants"));
    assert_non_null(strstr(out, "rc=2"));
    free(out);
    free(bad);
}

int main(int argc, char **argv)
{
    /* Resumption is the subject here: a backend without session tickets skips it. */
    if (sn_test_backend_lacks("tickets")) return 77;
    if (argc > 1)
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s", argv[1]);
    else
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s/tools/sealnet", sn_test_build_dir());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(openssl_reconnect_and_session_files, setup, teardown),
        cmocka_unit_test_setup_teardown(gnutls_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(sealnet_reconnect_on_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_secret_files_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
