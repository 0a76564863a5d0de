/* The `sealnet` command run as a process: keygen, DTLS and TLS client/server exchanges over
 * loopback, --help and bad arguments for every subcommand, failures with clear messages,
 * version, and the bench table from a stand-in benchmark program.
 *
 * argv[1] (from CTest) is the sealnet binary; without it, $SN_BUILD_DIR/tools/sealnet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sealnet/sealnet.h>

#include "testutil.h"

static char sealnet_bin[4096];
static char *tmp;

/* Runs sealnet with args, feeding stdin_data (then closing stdin); returns the exit code and the
 * combined output in *out (caller frees). Fails the test if it does not exit within timeout. */
static int run(const char *const args[], const char *stdin_data, int timeout_ms, char **out)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = sealnet_bin;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    if (stdin_data) sn_test_proc_write(p, stdin_data, strlen(stdin_data));
    sn_test_proc_close_stdin(p);
    int rc = sn_test_proc_wait_exit(p, timeout_ms);
    sn_test_proc_drain(p);
    char *o = strdup(sn_test_proc_output(p));
    if (rc < 0) fprintf(stderr, "still running after %d ms; output so far:\n%s\n", timeout_ms, o);
    sn_test_proc_stop(p);
    assert_int_not_equal(rc, -1);
    if (out)
        *out = o;
    else
        free(o);
    return rc;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n') n++;
    return n;
}

/* Starts a server subcommand and reads the port it prints ("listening on udp port N"). */
static sn_test_proc *start_server(const char *const args[], const char *needle, int *port)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = sealnet_bin;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    if (!sn_test_proc_wait_for(p, needle, 20000) || !sn_test_proc_wait_for(p, "\nmode:", 5000)) {
        fprintf(stderr, "server output:\n%s\n", sn_test_proc_output(p));
        fail_msg("server did not print '%s'", needle);
    }
    const char *at = strstr(sn_test_proc_output(p), needle);
    *port = atoi(at + strlen(needle));
    assert_in_range(*port, 1, 65535);
    return p;
}

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

/* ---- version and help ----------------------------------------------------------------- */

static void version_prints_library_version(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(run((const char *[]){"version", NULL}, NULL, 20000, &out), 0);
    char want[256];
    snprintf(want, sizeof want, "sealnet %s\n", sn_version());
    assert_string_equal(out, want);
#ifdef SN_TEST_BACKEND_OPENSSL
    assert_non_null(strstr(out, "OpenSSL"));
#else
    assert_non_null(strstr(out, "mbed TLS"));
#endif
    free(out);
}

static void help_for_every_subcommand(void **state)
{
    (void)state;
    static const char *cmds[] = {"keygen",     "dtls-server", "dtls-client", "tls-server",
                                 "tls-client", "bench",       "version"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out;
        int rc = run((const char *[]){cmds[i], "--help", NULL}, NULL, 20000, &out);
        char want[64];
        snprintf(want, sizeof want, "usage: sealnet %s", cmds[i]);
        if (rc != 0 || !strstr(out, want))
            fail_msg("%s --help: rc %d, output:\n%s", cmds[i], rc, out);
        free(out);
    }
    char *out;
    assert_int_equal(run((const char *[]){"--help", NULL}, NULL, 20000, &out), 0);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        assert_non_null(strstr(out, cmds[i]));
    free(out);
}

/* ---- bad arguments: exit 2, one line naming the fault ---------------------------------- */

static void bad_arguments_exit_2_with_one_line(void **state)
{
    (void)state;
    static const struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{NULL}, "usage: sealnet"},
        {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
        {{"keygen", "--bogus", NULL}, "unknown option '--bogus'"},
        {{"keygen", "--key", "k.pem", NULL}, "required"},
        {{"keygen", "--rsa", "512", "--key", "a", "--cert", "b", NULL}, "--rsa"},
        {{"keygen", "--ec", "X25519", "--key", "a", "--cert", "b", NULL}, "P-256 or P-384"},
        {{"keygen", "--days", "-3", "--key", "a", "--cert", "b", NULL}, "--days"},
        {{"dtls-server", "--port", "70000", NULL}, "--port"},
        {{"dtls-server", "--port", NULL}, "needs a value"},
        {{"dtls-server", "--echo", "--hello", NULL}, "exclude"},
        {{"dtls-server", "--key", "only.pem", NULL}, "--key and --cert go together"},
        {{"dtls-client", NULL}, "HOST and PORT are required"},
        {{"dtls-client", "127.0.0.1", "notaport", NULL}, "PORT"},
        {{"dtls-client", "127.0.0.1", "9", "--ca", "x", "--insecure", NULL}, "exclude"},
        {{"dtls-client", "127.0.0.1", "9", "--timeout", "0", NULL}, "--timeout"},
        {{"tls-server", "--seconds", "x", NULL}, "--seconds"},
        {{"tls-server", "--host", NULL}, "unknown option '--host'"},
        {{"tls-server", "--max-clients", "0", NULL}, "--max-clients wants"},
        {{"dtls-server", "--idle", "soon", NULL}, "--idle wants"},
        {{"tls-client", "127.0.0.1", NULL}, "HOST and PORT are required"},
        {{"tls-client", "a", "1", "extra", NULL}, "unexpected argument 'extra'"},
        {{"bench", "quantum", NULL}, "unknown benchmark 'quantum'"},
        {{"bench", "--seconds", "0", NULL}, "--seconds"},
        {{"version", "now", NULL}, "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        int rc = run(cases[i].args, NULL, 20000, &out);
        bool one_line = i == 0 || count_lines(out) == 1; /* no command: the usage summary */
        if (rc != 2 || !strstr(out, cases[i].says) || !one_line)
            fail_msg("case %zu (%s ...): rc %d, output:\n%s", i,
                     cases[i].args[0] ? cases[i].args[0] : "(none)", rc, out);
        free(out);
    }
}

/* ---- keygen --------------------------------------------------------------------------- */

static void keygen_writes_parseable_pem_and_refuses_overwrite(void **state)
{
    (void)state;
    char *key = sn_test_path(tmp, "kg.key"), *cert = sn_test_path(tmp, "kg.crt");
    char *out;
    int rc = run((const char *[]){"keygen", "--cn", "demo.example", "--days", "30", "--key", key,
                                  "--cert", cert, NULL},
                 NULL, 30000, &out);
    if (rc != 0) fail_msg("keygen: rc %d:\n%s", rc, out);
    assert_non_null(strstr(out, "SHA-256 fingerprint: "));
    free(out);

    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* a private key is not world-readable */

    /* The library reads them back and they match. */
    sn_crypto_key *k = sn_crypto_key_new();
    sn_x509_cert *c = sn_x509_cert_new();
    assert_int_equal(sn_crypto_key_load(k, key, false), SN_OK);
    assert_int_equal(sn_x509_cert_load(c, cert), SN_OK);
    sn_tls_options *o = sn_tls_options_server(k, c);
    assert_non_null(o);
    sn_tls_options_free(o);
    sn_crypto_key_free(k);
    sn_x509_cert_free(c);

    if (sn_test_have("openssl")) {
        char *text = sn_test_sh_output("openssl x509 -noout -text -in '%s' 2>&1", cert);
        assert_non_null(text);
        assert_non_null(strstr(text, "CN = demo.example"));
        assert_non_null(strstr(text, "DNS:demo.example"));
        assert_non_null(strstr(text, "id-ecPublicKey"));
        free(text);
        assert_int_equal(sn_test_sh("openssl pkey -noout -in '%s'", key), 0);
        /* --days 30: expires within 31 days, not within 29. */
        assert_int_equal(
            sn_test_sh("openssl x509 -noout -checkend %d -in '%s' >/dev/null", 29 * 86400, cert),
            0);
        assert_int_not_equal(
            sn_test_sh("openssl x509 -noout -checkend %d -in '%s' >/dev/null", 31 * 86400, cert),
            0);
    }

    size_t len0;
    char *before = sn_test_read_file(cert, &len0);
    rc = run((const char *[]){"keygen", "--key", key, "--cert", cert, NULL}, NULL, 30000, &out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "refusing to overwrite"));
    assert_int_equal(count_lines(out), 1);
    free(out);
    size_t len1;
    char *after = sn_test_read_file(cert, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0); /* untouched */
    free(after);

    rc = run(
        (const char *[]){"keygen", "--rsa", "2048", "--key", key, "--cert", cert, "--force", NULL},
        NULL, 60000, &out);
    if (rc != 0) fail_msg("keygen --force: rc %d:\n%s", rc, out);
    free(out);
    after = sn_test_read_file(cert, &len1);
    assert_true(len0 != len1 || memcmp(before, after, len0) != 0); /* replaced */
    if (sn_test_have("openssl")) {
        char *text = sn_test_sh_output("openssl x509 -noout -text -in '%s' 2>&1", cert);
        assert_non_null(strstr(text, "rsaEncryption"));
        assert_non_null(strstr(text, "(2048 bit)"));
        free(text);
    }
    free(before);
    free(after);
    free(key);
    free(cert);
}

/* The key and certificate every exchange test uses (CN=localhost). */
static void make_credentials(char **key, char **cert)
{
    *key = sn_test_path(tmp, "srv.key");
    *cert = sn_test_path(tmp, "srv.crt");
    if (access(*cert, R_OK) == 0) return;
    assert_int_equal(run((const char *[]){"keygen", "--cn", "localhost", "--key", *key, "--cert",
                                          *cert, "--force", NULL},
                         NULL, 30000, NULL),
                     0);
}

/* ---- DTLS ----------------------------------------------------------------------------- */

static void dtls_server_and_client_exchange_lines(void **state)
{
    (void)state;
    char *key, *cert;
    make_credentials(&key, &cert);
    char port_s[16];
    int port;

    /* Hello mode with the keygen'd certificate; the client verifies it and its name. */
    sn_test_proc *srv =
        start_server((const char *[]){"dtls-server", "--port", "0", "--bind", "127.0.0.1", "--key",
                                      key, "--cert", cert, "--seconds", "60", NULL},
                     "listening on udp port ", &port);
    snprintf(port_s, sizeof port_s, "%d", port);
    char *out;
    int rc = run((const char *[]){"dtls-client", "127.0.0.1", port_s, "--ca", cert, "--name",
                                  "localhost", "--wait", "700", NULL},
                 "The answer is... 42!\n", 30000, &out);
    if (rc != 0 || !strstr(out, "connected: DTLSv1.2") || !strstr(out, "< Hello DTLS client"))
        fail_msg("dtls-client: rc %d:\n%s", rc, out);
    free(out);
    assert_true(sn_test_proc_wait_for(srv, "says: The answer is... 42!", 10000));
    assert_true(sn_test_proc_wait_for(srv, "disconnected", 10000));

    /* Verification against the system CAs fails, with the reason. */
    rc = run((const char *[]){"dtls-client", "127.0.0.1", port_s, "--timeout", "10", NULL}, "x\n",
             30000, &out);
    if (rc != 1 || !strstr(out, "handshake failed: certificate verify failed") ||
        count_lines(out) != 2)
        fail_msg("unverifiable server: rc %d:\n%s", rc, out);
    free(out);

    /* A name the certificate does not carry. */
    rc = run((const char *[]){"dtls-client", "127.0.0.1", port_s, "--ca", cert, "--name",
                              "other.example", NULL},
             "x\n", 30000, &out);
    if (rc != 1 || !strstr(out, "handshake failed") || !strstr(out, "other.example"))
        fail_msg("name mismatch: rc %d:\n%s", rc, out);
    free(out);
    sn_test_proc_stop(srv);

    free(key);
    free(cert);
}

/* Echo mode with a generated certificate (the server prints its fingerprint), on the classic
 * loop and on the host API. */
static void dtls_echo_server_both_loops(void **state)
{
    (void)state;
    char *saved = sn_test_path(tmp, "generated.crt");
    for (int round = 0; round < 2; round++) {
        int port;
        unlink(saved);
        /* --save-cert: the generated certificate, for the client's --ca. */
        sn_test_proc *srv =
            start_server((const char *[]){"dtls-server", "--port", "0", "--echo", "--seconds", "60",
                                          "--save-cert", saved, round ? "--host" : NULL, NULL},
                         "listening on udp port ", &port);
        assert_non_null(strstr(sn_test_proc_output(srv), "certificate SHA-256 fingerprint: "));
        if (round) assert_non_null(strstr(sn_test_proc_output(srv), "host API"));
        char port_s[16];
        snprintf(port_s, sizeof port_s, "%d", port);
        char *out;
        int rc = run((const char *[]){"dtls-client", "127.0.0.1", port_s, "--ca", saved, "--name",
                                      "localhost", NULL},
                     "alpha\n\nbeta gamma\n", 30000, &out);
        /* The empty line is skipped, not an error. */
        if (rc != 0 || !strstr(out, "< alpha\n") || !strstr(out, "< beta gamma\n") ||
            strstr(out, "not sent"))
            fail_msg("echo (%s): rc %d:\n%s", round ? "host" : "classic", rc, out);
        free(out);
        assert_true(sn_test_proc_wait_for(srv, "says: beta gamma", 10000));
        assert_true(sn_test_proc_wait_for(srv, "disconnected: closed by the client", 10000));
        /* SIGTERM: a clean stop with a summary. */
        assert_int_equal(sn_test_proc_stop(srv), 0);
    }
    free(saved);
}

/* --pin: the fingerprint a server prints is what a client can pin (with --insecure, instead of
 * a CA); any other fingerprint is refused before a packet is sent. */
static void clients_pin_the_printed_fingerprint(void **state)
{
    (void)state;
    const char *const kinds[][2] = {{"dtls-server", "dtls-client"}, {"tls-server", "tls-client"}};
    for (int k = 0; k < 2; k++) {
        int port;
        sn_test_proc *srv = start_server(
            (const char *[]){kinds[k][0], "--port", "0", "--echo", "--seconds", "60", NULL},
            k ? "listening on tcp port " : "listening on udp port ", &port);
        const char *at = strstr(sn_test_proc_output(srv), "certificate SHA-256 fingerprint: ");
        assert_non_null(at);
        char fp[96];
        assert_int_equal(sscanf(at + strlen("certificate SHA-256 fingerprint: "), "%95s", fp), 1);
        assert_int_equal(strlen(fp), 95);
        char port_s[16], wrong[96];
        snprintf(port_s, sizeof port_s, "%d", port);
        char *out;
        int rc =
            run((const char *[]){kinds[k][1], "127.0.0.1", port_s, "--insecure", "--pin", fp, NULL},
                "pinned\n", 30000, &out);
        if (rc != 0 || !strstr(out, "< pinned"))
            fail_msg("%s --pin: rc %d:\n%s", kinds[k][1], rc, out);
        free(out);
        snprintf(wrong, sizeof wrong, "%s", fp);
        wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
        rc = run(
            (const char *[]){kinds[k][1], "127.0.0.1", port_s, "--insecure", "--pin", wrong, NULL},
            "never\n", 30000, &out);
        if (rc != 1 || !strstr(out, "pin mismatch") || strstr(out, "< never"))
            fail_msg("%s with a wrong pin: rc %d:\n%s", kinds[k][1], rc, out);
        free(out);
        assert_int_equal(sn_test_proc_stop(srv), 0);
    }
}

/* --idle: a client that stays connected but silent is dropped, and told so (close_notify). */
static void dtls_server_drops_idle_clients(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        int port;
        sn_test_proc *srv =
            start_server((const char *[]){"dtls-server", "--port", "0", "--idle", "1", "--seconds",
                                          "60", round ? "--host" : NULL, NULL},
                         "listening on udp port ", &port);
        char port_s[16];
        snprintf(port_s, sizeof port_s, "%d", port);
        const char *argv[] = {sealnet_bin, "dtls-client", "127.0.0.1", port_s, "--insecure", NULL};
        sn_test_proc *cli = sn_test_spawn(argv); /* stdin stays open: the client never sends */
        assert_non_null(cli);
        assert_true(sn_test_proc_wait_for(cli, "connected: ", 20000));
        uint64_t t0 = sn_test_now_ms();
        if (!sn_test_proc_wait_for(srv, "disconnected: silent for 1 s (--idle)", 10000))
            fail_msg("no idle timeout (%s):\n%s", round ? "host" : "classic",
                     sn_test_proc_output(srv));
        assert_true(sn_test_now_ms() - t0 >= 500); /* not before it was idle */
        assert_true(sn_test_proc_wait_for(cli, "disconnected: ", 10000));
        assert_int_equal(sn_test_proc_wait_exit(cli, 10000), 0);
        sn_test_proc_stop(cli);
        assert_int_equal(sn_test_proc_stop(srv), 0);
    }
}

/* A port nobody listens on: bind one, note it, close it. */
static int closed_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void dtls_client_to_closed_port_fails_clearly(void **state)
{
    (void)state;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", closed_udp_port());
    uint64_t t0 = sn_test_now_ms();
    char *out;
    int rc = run(
        (const char *[]){"dtls-client", "127.0.0.1", port_s, "--insecure", "--timeout", "3", NULL},
        NULL, 20000, &out);
    uint64_t took = sn_test_now_ms() - t0;
    if (rc != 1 || !strstr(out, "handshake failed") || took > 8000)
        fail_msg("closed port: rc %d after %llu ms:\n%s", rc, (unsigned long long)took, out);
    /* Either the ICMP answer or the timeout, named as such. */
    assert_true(strstr(out, "connection refused") || strstr(out, "timed out"));
    free(out);
}

/* A UDP port in use is refused (exit 1, the port named), never shared: the second server would
 * otherwise print "listening" and take part of the first one's traffic. */
static void dtls_server_on_a_busy_port_exits_1(void **state)
{
    (void)state;
    int port;
    sn_test_proc *srv =
        start_server((const char *[]){"dtls-server", "--port", "0", "--seconds", "60", NULL},
                     "listening on udp port ", &port);
    char port_s[16], want[64];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(want, sizeof want, "udp port %d already in use", port);
    char *out;
    int rc = run((const char *[]){"dtls-server", "--port", port_s, "--seconds", "5", NULL}, NULL,
                 30000, &out);
    if (rc != 1 || !strstr(out, want) || strstr(out, "listening on"))
        fail_msg("second server on port %d: rc %d:\n%s", port, rc, out);
    free(out);
    assert_int_equal(sn_test_proc_stop(srv), 0);
}

/* Sends a line to a running client every 200 ms until it exits; its exit code (-1: still
 * running after timeout_ms). */
static int feed_until_exit(sn_test_proc *cli, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (sn_test_now_ms() < end) {
        sn_test_proc_write(cli, "anyone there?\n", 14);
        int rc = sn_test_proc_wait_exit(cli, 200);
        if (rc >= 0) return rc;
    }
    return -1;
}

/* A server killed outright sends no close_notify; its port answers the client's packets with
 * ICMP port unreachable, and after 2 s of that the client says the server went away (exit 1). */
static void dtls_client_notices_a_killed_server(void **state)
{
    (void)state;
    int port;
    sn_test_proc *srv = start_server(
        (const char *[]){"dtls-server", "--port", "0", "--echo", "--seconds", "60", NULL},
        "listening on udp port ", &port);
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *argv[] = {sealnet_bin, "dtls-client", "127.0.0.1", port_s, "--insecure", NULL};
    sn_test_proc *cli = sn_test_spawn(argv);
    assert_non_null(cli);
    assert_true(sn_test_proc_wait_for(cli, "connected: ", 20000));
    assert_true(sn_test_proc_write(cli, "first\n", 6));
    assert_true(sn_test_proc_wait_for(cli, "< first", 10000));
    kill(sn_test_proc_pid(srv), SIGKILL);
    uint64_t t0 = sn_test_now_ms();
    int rc = feed_until_exit(cli, 20000);
    uint64_t took = sn_test_now_ms() - t0;
    sn_test_proc_drain(cli);
    const char *out = sn_test_proc_output(cli);
    if (rc != 1 || !strstr(out, "the server went away (ICMP port unreachable)") || took < 1900)
        fail_msg("client after the server's SIGKILL: rc %d after %llu ms:\n%s", rc,
                 (unsigned long long)took, out);
    sn_test_proc_stop(cli);
    sn_test_proc_stop(srv);
}

/* --idle: a server that is there but silent (stopped: no close_notify, no ICMP either) ends the
 * client after that many seconds, exit 1 with a line saying why. */
static void dtls_client_idle_ends_on_a_silent_server(void **state)
{
    (void)state;
    int port;
    sn_test_proc *srv = start_server(
        (const char *[]){"dtls-server", "--port", "0", "--echo", "--seconds", "60", NULL},
        "listening on udp port ", &port);
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *argv[] = {sealnet_bin,  "dtls-client", "127.0.0.1", port_s,
                          "--insecure", "--idle",      "2",         NULL};
    sn_test_proc *cli = sn_test_spawn(argv);
    assert_non_null(cli);
    assert_true(sn_test_proc_wait_for(cli, "connected: ", 20000));
    assert_true(sn_test_proc_write(cli, "first\n", 6));
    assert_true(sn_test_proc_wait_for(cli, "< first", 10000));
    kill(sn_test_proc_pid(srv), SIGSTOP);
    uint64_t t0 = sn_test_now_ms();
    int rc = feed_until_exit(cli, 20000);
    uint64_t took = sn_test_now_ms() - t0;
    kill(sn_test_proc_pid(srv), SIGCONT);
    sn_test_proc_drain(cli);
    const char *out = sn_test_proc_output(cli);
    if (rc != 1 || !strstr(out, "the server sent nothing for 2 s (--idle)") || took < 1000)
        fail_msg("client of a stopped server: rc %d after %llu ms:\n%s", rc,
                 (unsigned long long)took, out);
    sn_test_proc_stop(cli);
    assert_int_equal(sn_test_proc_stop(srv), 0);
}

/* ---- TLS ------------------------------------------------------------------------------ */

static void tls_server_and_client_exchange_lines(void **state)
{
    (void)state;
    char *key, *cert;
    make_credentials(&key, &cert);
    char port_s[16];
    int port;
    sn_test_proc *srv = start_server((const char *[]){"tls-server", "--port", "0", "--key", key,
                                                      "--cert", cert, "--seconds", "60", NULL},
                                     "listening on tcp port ", &port);
    snprintf(port_s, sizeof port_s, "%d", port);
    char *out;
    int rc = run(
        (const char *[]){"tls-client", "localhost", port_s, "--ca", cert, "--wait", "700", NULL},
        "ack\nsecond line\n", 30000, &out);
    if (rc != 0 || !strstr(out, "connected: TLSv1.") || !strstr(out, "< Hello from the server!"))
        fail_msg("tls-client: rc %d:\n%s", rc, out);
    free(out);
    assert_true(sn_test_proc_wait_for(srv, "says: ack", 10000));
    assert_true(sn_test_proc_wait_for(srv, "says: second line", 10000));
    assert_true(sn_test_proc_wait_for(srv, "disconnected: closed by the client", 10000));

    /* An IP literal is not the name in the certificate. */
    rc = run((const char *[]){"tls-client", "127.0.0.1", port_s, "--ca", cert, NULL}, "x\n", 30000,
             &out);
    if (rc != 1 || !strstr(out, "handshake failed") || !strstr(out, "hostname mismatch"))
        fail_msg("hostname mismatch: rc %d:\n%s", rc, out);
    free(out);
    assert_int_equal(sn_test_proc_stop(srv), 0);

    char *saved = sn_test_path(tmp, "generated-tls.crt");
    srv = start_server((const char *[]){"tls-server", "--port", "0", "--echo", "--seconds", "60",
                                        "--save-cert", saved, NULL},
                       "listening on tcp port ", &port);
    snprintf(port_s, sizeof port_s, "%d", port);
    rc = run((const char *[]){"tls-client", "127.0.0.1", port_s, "--ca", saved, "--name",
                              "localhost", NULL},
             "echo me\nand me\n", 30000, &out);
    if (rc != 0 || !strstr(out, "< echo me\n") || !strstr(out, "< and me\n"))
        fail_msg("tls echo: rc %d:\n%s", rc, out);
    free(out);
    free(saved);
    assert_int_equal(sn_test_proc_stop(srv), 0);
    free(key);
    free(cert);
}

static void tls_client_to_closed_port_fails_clearly(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* bound, never listened: connecting is refused */
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", ntohs(a.sin_port));
    char *out;
    int rc = run(
        (const char *[]){"tls-client", "127.0.0.1", port_s, "--insecure", "--timeout", "3", NULL},
        NULL, 20000, &out);
    if (rc != 1 || !strstr(out, "refused")) fail_msg("closed tcp port: rc %d:\n%s", rc, out);
    free(out);
}

/* ---- bench: the table and the ratios, from a stand-in benchmark program ---------------- */

static void bench_merges_tables_and_computes_ratios(void **state)
{
    (void)state;
    char *dir = sn_test_path(tmp, "bench");
    assert_int_equal(sn_test_sh("mkdir -p '%s'", dir), 0);
    char *prog = sn_test_path(dir, "udp_fake");
    const char *script = "#!/bin/sh\n"
                         "[ \"$1\" = --seconds ] || exit 3\n"
                         "echo 'fake udp bench'\n"
                         "echo '| path | pkt/s | ns/pkt |'\n"
                         "echo '|---|---:|---:|'\n"
                         "echo '| raw recvmmsg | 1000000 | 1000 |'\n"
                         "echo '| sealnet | 800000 | 1250 |'\n"
                         "echo\n"
                         "echo '| peers | server ns/dgram | bare ns/dgram | server/bare | vs 1 |'\n"
                         "echo '|---:|---:|---:|---:|---:|'\n"
                         "echo '| 10 | 4000 | 500 | 8.00x | 1.10x |'\n"
                         "echo 'udp_fake: 2 s per run, 64-byte packets, closed loop, and so on'\n"
                         "echo '| clients | host echo pkt/s | raw UDP echo pkt/s | host / raw | "
                         "host server CPU us/pkt (user) | raw server CPU us/pkt |'\n"
                         "echo '|---:|---:|---:|---:|---:|---:|'\n"
                         "echo '| 10 | 68000 | 100000 | 0.68 | 5.00 (1.28) | 4.00 |'\n";
    assert_true(sn_test_write_file(prog, script, strlen(script)));
    chmod(prog, 0755);
    char *other = sn_test_path(dir, "dtls_fake");
    const char *script2 = "#!/bin/sh\necho 'handshakes: 1234 /s'\n";
    assert_true(sn_test_write_file(other, script2, strlen(script2)));
    chmod(other, 0755);

    setenv("SEALNET_BENCH_DIR", dir, 1);
    char *out;
    int rc = run((const char *[]){"bench", "udp", "--seconds", "1", "--markdown", NULL}, NULL,
                 30000, &out);
    /* Baseline row and baseline column, each side by side with the ratio; the baseline row
     * itself and the program's own "server/bare" column are folded in, other ratios stay. */
    if (rc != 0 || !strstr(out, "| udp_fake | sealnet | pkt/s | 800000 | 1000000 | 0.80x |") ||
        !strstr(out, "| udp_fake | sealnet | ns/pkt | 1250 | 1000 | 1.25x |") ||
        !strstr(out, "| udp_fake | peers=10 | ns/dgram | 4000 | 500 | 8.00x |") ||
        !strstr(out, "| udp_fake | peers=10 | vs 1 | 1.10x |  |  |") ||
        !strstr(out, "| udp_fake | clients=10 | echo pkt/s | 68000 | 100000 | 0.68x |") ||
        !strstr(out, "| udp_fake | clients=10 | CPU us/pkt | 5.00 (1.28) | 4.00 | 1.25x |") ||
        strstr(out, "host / raw") || strstr(out, "per run") || strstr(out, "raw recvmmsg") ||
        strstr(out, "server/bare") || strstr(out, "dtls_fake"))
        fail_msg("bench udp: rc %d:\n%s", rc, out);
    free(out);
    rc = run((const char *[]){"bench", "--seconds", "1", NULL}, NULL, 30000, &out);
    if (rc != 0 || !strstr(out, "dtls_fake") || !strstr(out, "1234"))
        fail_msg("bench all: rc %d:\n%s", rc, out);
    free(out);
    unsetenv("SEALNET_BENCH_DIR");

    /* Without the variable: the build tree's bench/ beside tools/ (when benches are built). */
    char *built = sn_test_path(sn_test_build_dir(), "bench");
    struct stat st;
    if (stat(built, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = run((const char *[]){"bench", "--list", NULL}, NULL, 30000, &out);
        if (rc != 0 || !strstr(out, "/bench/")) fail_msg("bench --list: rc %d:\n%s", rc, out);
        free(out);
    }
    free(built);
    free(prog);
    free(other);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s", argv[1]);
    else
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s/tools/sealnet", sn_test_build_dir());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_prints_library_version),
        cmocka_unit_test(help_for_every_subcommand),
        cmocka_unit_test(bad_arguments_exit_2_with_one_line),
        cmocka_unit_test(keygen_writes_parseable_pem_and_refuses_overwrite),
        cmocka_unit_test(dtls_server_and_client_exchange_lines),
        cmocka_unit_test(clients_pin_the_printed_fingerprint),
        cmocka_unit_test(dtls_echo_server_both_loops),
        cmocka_unit_test(dtls_server_drops_idle_clients),
        cmocka_unit_test(dtls_client_to_closed_port_fails_clearly),
        cmocka_unit_test(dtls_server_on_a_busy_port_exits_1),
        cmocka_unit_test(dtls_client_notices_a_killed_server),
        cmocka_unit_test(dtls_client_idle_ends_on_a_silent_server),
        cmocka_unit_test(tls_server_and_client_exchange_lines),
        cmocka_unit_test(tls_client_to_closed_port_fails_clearly),
        cmocka_unit_test(bench_merges_tables_and_computes_ratios),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
