/* The clients' options and messages (issue 12, item 4), run as processes against sealnet's own
 * servers and real peers (openssl s_server/s_client -dtls1_2, gnutls-serv --udp): HOST:PORT,
 * --pin checked up front and enough alone, the printed fingerprint, --showcerts, --trace with
 * retransmissions, --keylog / SSLKEYLOGFILE equal to openssl s_server's -keylogfile (and, when
 * tshark is installed, a loopback capture decrypted with it), --json, --mtu, messages that name
 * the cause and the fix, exit 130 on Ctrl-C, lines, over-long lines, the summary, keygen --cn,
 * --save-cert without --force, the bench table, and --help against the man page.
 *
 * argv[1] (from CTest) is the sealnet binary; without it, $SN_BUILD_DIR/tools/sealnet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sealnet/sealnet.h>

#include "testutil.h"

static char sealnet_bin[4096];
static char *tmp;

/* ---- helpers ---------------------------------------------------------------------------- */

static sn_test_proc *spawn(const char *const args[])
{
    const char *argv[40];
    int n = 0;
    argv[n++] = sealnet_bin;
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    return p;
}

/* Runs sealnet with args and stdin_data; its exit code, its output in *out (caller frees). */
static int run(const char *const args[], const char *stdin_data, int timeout_ms, char **out)
{
    sn_test_proc *p = spawn(args);
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

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* A sealnet server; its port from "listening on udp|tcp port N". */
static sn_test_proc *start_server(const char *const args[], int *port)
{
    sn_test_proc *p = spawn(args);
    if (!sn_test_proc_wait_for(p, "\nmode:", 20000)) {
        fprintf(stderr, "server output:\n%s\n", sn_test_proc_output(p));
        fail_msg("server did not start");
    }
    const char *at = strstr(sn_test_proc_output(p), " port ");
    assert_non_null(at);
    *port = atoi(at + strlen(" port "));
    assert_in_range(*port, 1, 65535);
    return p;
}

/* The fingerprint a sealnet server printed. */
static void server_fingerprint(sn_test_proc *srv, char fp[96])
{
    const char *at = strstr(sn_test_proc_output(srv), "certificate SHA-256 fingerprint: ");
    assert_non_null(at);
    assert_int_equal(sscanf(at + strlen("certificate SHA-256 fingerprint: "), "%95s", fp), 1);
    assert_int_equal(strlen(fp), 95);
}

/* The test's key and certificate for CN=localhost (keygen), once. */
static void credentials(char **key, char **cert)
{
    *key = sn_test_path(tmp, "srv.key");
    *cert = sn_test_path(tmp, "srv.crt");
    if (access(*cert, R_OK) == 0) return;
    assert_int_equal(run((const char *[]){"keygen", "--cn", "localhost", "--key", *key, "--cert",
                                          *cert, "--force", NULL},
                         NULL, 30000, NULL),
                     0);
}

static sn_test_proc *start_openssl_dtls_server(const char *key, const char *cert,
                                               const char *keylog, int *port)
{
    const char *argv[] = {
        "openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:0",
        "-cert",   cert,       "-key",     key,       keylog ? "-keylogfile" : NULL,
        keylog,    NULL};
    sn_test_proc *p = sn_test_spawn(argv);
    assert_non_null(p);
    const char *a = NULL;
    uint64_t end = sn_test_now_ms() + 20000;
    while (sn_test_now_ms() < end) {
        sn_test_proc_wait_for(p, "ACCEPT", 100);
        a = strstr(sn_test_proc_output(p), "ACCEPT 127.0.0.1:");
        if (a && strchr(a, '\n')) break;
        a = NULL;
    }
    if (!a) fail_msg("openssl s_server did not start:\n%s", sn_test_proc_output(p));
    *port = atoi(a + strlen("ACCEPT 127.0.0.1:"));
    assert_in_range(*port, 1, 65535);
    return p;
}

/* A UDP socket that is bound but never answers (no ICMP either): handshakes wait on it. */
static int silent_udp(int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A TCP listener (the kernel completes connects; nobody answers unless `reply` is given, which
 * a child process sends to the first client after reading its first bytes). */
static int tcp_listener(int *port, const char *reply, pid_t *child)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    *child = -1;
    if (reply) {
        *child = fork();
        assert_true(*child >= 0);
        if (*child == 0) {
            int c = accept(fd, NULL, NULL);
            char buf[2048];
            if (c >= 0 && read(c, buf, sizeof buf) > 0) {
                ssize_t w = write(c, reply, strlen(reply));
                (void)w;
            }
            sleep(5);
            _exit(0);
        }
    }
    return fd;
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

/* ---- addresses, pins, fingerprints ------------------------------------------------------ */

static void clients_accept_host_colon_port(void **state)
{
    (void)state;
    const char *const kinds[][2] = {{"dtls-server", "dtls-client"}, {"tls-server", "tls-client"}};
    for (int k = 0; k < 2; k++) {
        int port;
        sn_test_proc *srv = start_server(
            (const char *[]){kinds[k][0], "--port", "0", "--echo", "--seconds", "60", NULL}, &port);
        char hp[64], v6[64];
        snprintf(hp, sizeof hp, "localhost:%d", port);
        snprintf(v6, sizeof v6, "[::1]:%d", port);
        char *out;
        int rc = run((const char *[]){kinds[k][1], hp, "--insecure", NULL}, "colon\n", 30000, &out);
        if (rc != 0 || !strstr(out, "< colon"))
            fail_msg("%s %s: rc %d:\n%s", kinds[k][1], hp, rc, out);
        free(out);
        /* [v6]:PORT; the servers listen dual-stack by default. */
        rc = run((const char *[]){kinds[k][1], v6, "--insecure", NULL}, "six\n", 30000, &out);
        if (rc != 0 || !strstr(out, "< six"))
            fail_msg("%s %s: rc %d:\n%s", kinds[k][1], v6, rc, out);
        free(out);
        /* The port twice is a usage error. */
        char p2[16];
        snprintf(p2, sizeof p2, "%d", port);
        rc = run((const char *[]){kinds[k][1], hp, p2, NULL}, NULL, 20000, &out);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(out, "port is given twice"));
        free(out);
        assert_int_equal(sn_test_proc_stop(srv), 0);
    }
}

static void pin_is_checked_up_front_and_enough_alone(void **state)
{
    (void)state;
    /* A malformed pin: exit 2 with one line, before any network traffic (port 9: nothing). */
    static const char *const bad[] = {"abc", "AB:CD", "zz11",
                                      "00112233445566778899aabbccddeeff0011"
                                      "2233445566778899aabbccddeeff0g"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out;
        int rc = run((const char *[]){"dtls-client", "127.0.0.1:9", "--pin", bad[i], NULL}, NULL,
                     20000, &out);
        if (rc != 2 || !strstr(out, "--pin wants a SHA-256 fingerprint") || count(out, "\n") != 1 ||
            strstr(out, "connecting"))
            fail_msg("--pin %s: rc %d:\n%s", bad[i], rc, out);
        free(out);
    }
    /* A good pin alone, without --insecure or --ca: trusted, and said so. */
    const char *const kinds[][2] = {{"dtls-server", "dtls-client"}, {"tls-server", "tls-client"}};
    for (int k = 0; k < 2; k++) {
        int port;
        sn_test_proc *srv = start_server(
            (const char *[]){kinds[k][0], "--port", "0", "--echo", "--seconds", "60", NULL}, &port);
        char fp[96], hp[32], lower[96];
        server_fingerprint(srv, fp);
        snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
        char *out;
        int rc = run((const char *[]){kinds[k][1], hp, "--pin", fp, NULL}, "pinned\n", 30000, &out);
        if (rc != 0 || !strstr(out, "< pinned") || !strstr(out, "matches --pin"))
            fail_msg("%s --pin alone: rc %d:\n%s", kinds[k][1], rc, out);
        /* The client prints the server's fingerprint: pinning needs no second tool. */
        char want[160];
        snprintf(want, sizeof want, "server certificate SHA-256 fingerprint: %s", fp);
        assert_non_null(strstr(out, want));
        free(out);
        /* Lower case without colons is the same pin. */
        size_t n = 0;
        for (const char *p = fp; *p; p++)
            if (*p != ':') lower[n++] = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
        lower[n] = '\0';
        rc = run((const char *[]){kinds[k][1], hp, "--pin", lower, NULL}, "again\n", 30000, &out);
        if (rc != 0 || !strstr(out, "< again")) fail_msg("lower-case pin: rc %d:\n%s", rc, out);
        free(out);
        /* A well-formed pin of another certificate: refused before any data. */
        lower[0] = lower[0] == 'a' ? 'b' : 'a';
        rc = run((const char *[]){kinds[k][1], hp, "--pin", lower, NULL}, "never\n", 30000, &out);
        if (rc != 1 || !strstr(out, "pin mismatch") || strstr(out, "< never"))
            fail_msg("wrong pin: rc %d:\n%s", rc, out);
        free(out);
        assert_int_equal(sn_test_proc_stop(srv), 0);
    }
}

/* ---- --showcerts, messages -------------------------------------------------------------- */

static void showcerts_against_openssl_and_gnutls(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("peer chain")) skip(); /* docs/backends.md */
    if (!sn_test_have("openssl")) skip();
    char *key, *cert;
    credentials(&key, &cert);
    char *want_fp = sn_test_sh_output("openssl x509 -noout -fingerprint -sha256 -in '%s'", cert);
    assert_non_null(want_fp);
    char *eq = strchr(want_fp, '=');
    assert_non_null(eq);
    eq[1 + 95] = '\0';
    for (int peer = 0; peer < 2; peer++) {
        int port;
        sn_test_proc *srv;
        if (peer == 0) {
            srv = start_openssl_dtls_server(key, cert, NULL, &port);
        } else {
            if (!sn_test_have("gnutls-serv")) break;
            const char *argv[] = {"gnutls-serv", "--udp", "--echo", "-p", "0", NULL};
            (void)argv;
            /* gnutls-serv needs a fixed port: take a free one, retry if it is taken. */
            srv = NULL;
            for (int attempt = 0; attempt < 5 && !srv; attempt++) {
                int fd = silent_udp(&port);
                close(fd);
                char ps[16];
                snprintf(ps, sizeof ps, "%d", port);
                const char *gargv[] = {"gnutls-serv",    "--udp", "--echo",        "-p", ps,
                                       "--x509certfile", cert,    "--x509keyfile", key,  NULL};
                srv = sn_test_spawn(gargv);
                if (!sn_test_proc_wait_for(srv, "done", 10000)) {
                    sn_test_proc_stop(srv);
                    srv = NULL;
                }
            }
            assert_non_null(srv);
        }
        char hp[32];
        snprintf(hp, sizeof hp, "localhost:%d", port);
        char *out;
        int rc = run((const char *[]){"dtls-client", hp, "--ca", cert, "--showcerts", NULL}, "hi\n",
                     30000, &out);
        if (rc != 0 || !strstr(out, "certificate 0") || !strstr(out, "subject:  CN=localhost") ||
            !strstr(out, "issuer:   CN=localhost") || !strstr(out, "names:    DNS:localhost") ||
            !strstr(out, "valid:    ") || !strstr(out, " UTC to ") || !strstr(out, eq + 1))
            fail_msg("--showcerts against %s: rc %d (want %s):\n%s",
                     peer ? "gnutls-serv" : "openssl s_server", rc, eq + 1, out);
        free(out);
        sn_test_proc_stop(srv);
    }
    free(want_fp);
    free(key);
    free(cert);
}

static void messages_name_the_cause_and_the_fix(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("peer chain")) skip(); /* docs/backends.md */
    char *key, *cert;
    credentials(&key, &cert);
    int port;
    sn_test_proc *srv = start_server((const char *[]){"tls-server", "--port", "0", "--key", key,
                                                      "--cert", cert, "--seconds", "60", NULL},
                                     &port);
    char hp[32], fp[96];
    server_fingerprint(srv, fp);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    char *out;
    /* A name the certificate does not carry: the names it does carry, and the fix. */
    int rc = run((const char *[]){"tls-client", hp, "--ca", cert, NULL}, "x\n", 30000, &out);
    if (rc != 1 || !strstr(out, "hostname mismatch") || !strstr(out, "it names DNS:localhost") ||
        !strstr(out, "--name localhost"))
        fail_msg("hostname mismatch: rc %d:\n%s", rc, out);
    free(out);
    /* An unknown self-signed certificate: who it is, and how to trust it (--pin FP). */
    rc = run((const char *[]){"tls-client", "localhost", hp + strlen("127.0.0.1:"), NULL}, "x\n",
             30000, &out);
    if (rc != 1 || !strstr(out, "self-signed certificate (CN=localhost") ||
        !strstr(out, "--pin ") || !strstr(out, fp))
        fail_msg("self-signed: rc %d:\n%s", rc, out);
    free(out);
    assert_int_equal(sn_test_proc_stop(srv), 0);

    /* An expired certificate: its date. */
    sn_crypto_key *k = sn_crypto_generate_ec("P-256");
    sn_x509_cert *c = sn_crypto_generate_self_signed_certificate(
        k, "CN=localhost", "20200101000000", "20210102030405");
    assert_non_null(c);
    char *ek = sn_test_path(tmp, "expired.key"), *ec = sn_test_path(tmp, "expired.crt");
    assert_int_equal(sn_crypto_key_save(k, ek, false), SN_OK);
    assert_int_equal(sn_x509_cert_save(c, ec), SN_OK);
    sn_crypto_key_free(k);
    sn_x509_cert_free(c);
    srv = start_server((const char *[]){"dtls-server", "--port", "0", "--key", ek, "--cert", ec,
                                        "--seconds", "60", NULL},
                       &port);
    snprintf(hp, sizeof hp, "localhost:%d", port);
    rc = run((const char *[]){"dtls-client", hp, "--ca", ec, NULL}, "x\n", 30000, &out);
    if (rc != 1 || !strstr(out, "certificate has expired") ||
        !strstr(out, "expired on 2021-01-02 03:04:05 UTC"))
        fail_msg("expired: rc %d:\n%s", rc, out);
    free(out);
    assert_int_equal(sn_test_proc_stop(srv), 0);
    free(ek);
    free(ec);

    /* Something that is not TLS: what it sent instead of "wrong version number". */
    pid_t child;
    int fd = tcp_listener(&port, "HTTP/1.1 400 Bad Request\r\n\r\n", &child);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    rc = run((const char *[]){"tls-client", hp, "--insecure", "--timeout", "10", NULL}, NULL, 30000,
             &out);
    if (rc != 1 || !strstr(out, "the server does not speak TLS (got \"HTTP/1.1 400") ||
        strstr(out, "wrong version number"))
        fail_msg("not TLS: rc %d:\n%s", rc, out);
    free(out);
    close(fd);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    /* A CA file that is not there: the file and what --ca wants. */
    rc = run((const char *[]){"dtls-client", "127.0.0.1:9", "--ca", "/nonexistent/ca.pem", NULL},
             NULL, 20000, &out);
    if (rc != 1 || !strstr(out, "/nonexistent/ca.pem") || !strstr(out, "--save-cert"))
        fail_msg("missing --ca: rc %d:\n%s", rc, out);
    free(out);
    free(key);
    free(cert);
}

/* ---- --trace ----------------------------------------------------------------------------- */

static void trace_shows_flights_and_retransmissions(void **state)
{
    (void)state;
    if (!sn_test_have("openssl")) skip();
    char *key, *cert;
    credentials(&key, &cert);
    int port;
    sn_test_proc *srv = start_openssl_dtls_server(key, cert, NULL, &port);
    char hp[32];
    snprintf(hp, sizeof hp, "localhost:%d", port);
    char *out;
    int rc =
        run((const char *[]){"dtls-client", hp, "--ca", cert, "--trace", NULL}, "t\n", 30000, &out);
    if (rc != 0 || !strstr(out, "flight 1 sent") || !strstr(out, ">>> ClientHello (handshake") ||
        !strstr(out, "<<< ServerHello") || !strstr(out, "<<< Certificate") ||
        !strstr(out, "<<< ServerHelloDone") || !strstr(out, ">>> ClientKeyExchange") ||
        !strstr(out, ">>> ChangeCipherSpec") || !strstr(out, "<<< Finished") ||
        !strstr(out, "connected: DTLSv1.2") || !strstr(out, ">>> close_notify (warning) (alert"))
        fail_msg("--trace: rc %d:\n%s", rc, out);
    free(out);
    sn_test_proc_stop(srv);

    /* TLS over a stream (1.3 on OpenSSL, 1.2 on mbed TLS): the messages both versions have. */
    srv = start_server((const char *[]){"tls-server", "--port", "0", "--key", key, "--cert", cert,
                                        "--echo", "--seconds", "60", NULL},
                       &port);
    snprintf(hp, sizeof hp, "localhost:%d", port);
    rc = run((const char *[]){"tls-client", hp, "--ca", cert, "--trace", NULL}, "s\n", 30000, &out);
    if (rc != 0 || !strstr(out, "flight 1 sent") || !strstr(out, ">>> ClientHello (handshake") ||
        !strstr(out, "<<< ServerHello (handshake") || !strstr(out, "<<< Certificate (handshake") ||
        !strstr(out, "<<< Finished (handshake") || !strstr(out, ">>> Finished (handshake") ||
        !strstr(out, "connected: TLSv1.") || !strstr(out, ">>> close_notify (warning) (alert") ||
        strstr(out, "unknown"))
        fail_msg("tls-client --trace: rc %d:\n%s", rc, out);
    free(out);
    assert_int_equal(sn_test_proc_stop(srv), 0);

    /* Nobody answers: the ClientHello goes out again after 1 s, marked as such. */
    int fd = silent_udp(&port);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    rc = run((const char *[]){"dtls-client", hp, "--insecure", "--trace", "--timeout", "3", NULL},
             NULL, 30000, &out);
    if (rc != 1 || count(out, ">>> ClientHello") < 2 || !strstr(out, "[retransmitted]") ||
        !strstr(out, "again (retransmission") || !strstr(out, "timed out"))
        fail_msg("--trace retransmission: rc %d:\n%s", rc, out);
    free(out);
    close(fd);
    free(key);
    free(cert);
}

/* ---- --keylog ---------------------------------------------------------------------------- */

/* The CLIENT_RANDOM lines of a key log file, in order (malloc'd, "" when none). */
static char *client_random_lines(const char *path)
{
    size_t len;
    char *all = sn_test_read_file(path, &len);
    char *out = calloc(1, len + 1);
    if (!all) return out;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "CLIENT_RANDOM ", 14)) strcat(strcat(out, line), "\n");
    free(all);
    return out;
}

static void keylog_equals_openssl_s_server(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("keylog")) skip(); /* docs/backends.md */
    if (!sn_test_have("openssl")) skip();
    char *key, *cert;
    credentials(&key, &cert);
    char *srv_log = sn_test_path(tmp, "server.keylog");
    char *cli_log = sn_test_path(tmp, "client.keylog");
    char *env_log = sn_test_path(tmp, "env.keylog");
    int port;
    sn_test_proc *srv = start_openssl_dtls_server(key, cert, srv_log, &port);
    char hp[32];
    snprintf(hp, sizeof hp, "localhost:%d", port);
    char *out;
    int rc = run((const char *[]){"dtls-client", hp, "--ca", cert, "--keylog", cli_log, NULL},
                 "k\n", 30000, &out);
    if (rc != 0 || !strstr(out, "connected")) fail_msg("--keylog: rc %d:\n%s", rc, out);
    free(out);
    struct stat st;
    assert_int_equal(stat(cli_log, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* secrets: the owner's only */
    char *mine = client_random_lines(cli_log);
    char *theirs = client_random_lines(srv_log);
    /* "CLIENT_RANDOM <64 hex> <96 hex>": the same line on both sides of the session. */
    if (strlen(mine) != 14 + 64 + 1 + 96 + 1 || strcmp(mine, theirs) != 0)
        fail_msg("key log lines differ:\nsealnet: %s\nopenssl: %s", mine, theirs);
    free(mine);

    /* SSLKEYLOGFILE, as browsers and curl honour it. */
    setenv("SSLKEYLOGFILE", env_log, 1);
    rc = run((const char *[]){"dtls-client", hp, "--ca", cert, NULL}, "k2\n", 30000, &out);
    unsetenv("SSLKEYLOGFILE");
    if (rc != 0 || !strstr(out, env_log)) fail_msg("SSLKEYLOGFILE: rc %d:\n%s", rc, out);
    free(out);
    sn_test_proc_stop(srv);
    char *env_lines = client_random_lines(env_log);
    char *all_theirs = client_random_lines(srv_log);
    assert_int_equal(strlen(env_lines), 14 + 64 + 1 + 96 + 1);
    assert_non_null(strstr(all_theirs, env_lines)); /* the server's second session */
    assert_null(strstr(theirs, env_lines));         /* not the first one again */
    free(env_lines);
    free(all_theirs);
    free(theirs);

    /* An unwritable key log: the file and the fix, exit 1. */
    rc = run((const char *[]){"dtls-client", hp, "--keylog", "/nonexistent/dir/k.log", NULL}, NULL,
             20000, &out);
    if (rc != 1 || !strstr(out, "/nonexistent/dir/k.log") || !strstr(out, "writable"))
        fail_msg("bad --keylog: rc %d:\n%s", rc, out);
    free(out);

    /* The library option: set before first use, refused after. */
    sn_tls_options *o = sn_tls_options_client_unsafe(NULL);
    assert_int_equal(sn_tls_options_set_keylog_file(o, cli_log), SN_OK);
    sn_dtls_peer *p = sn_dtls_peer_new();
    sn_udp_peer *u = sn_udp_peer_new();
    int fd = silent_udp(&port);
    assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", port), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(p, u, "x", o), SN_OK);
    assert_int_equal(sn_tls_options_set_keylog_file(o, NULL), SN_ERR_LOCKED);
    assert_int_equal(sn_tls_options_set_trace_callback(o, NULL, NULL), SN_ERR_LOCKED);
    sn_dtls_peer_free(p);
    sn_tls_options_free(o);
    close(fd);

    free(srv_log);
    free(cli_log);
    free(env_log);
    free(key);
    free(cert);
}

/* The servers' --keylog and --trace against real clients: openssl s_client -dtls1_2 writes the
 * same key log line as sealnet dtls-server for a session; gnutls-cli --udp is traced. */
static void server_keylog_and_trace_with_real_clients(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("keylog")) skip(); /* docs/backends.md */
    if (!sn_test_have("openssl")) skip();
    char *key, *cert;
    credentials(&key, &cert);
    char *srv_log = sn_test_path(tmp, "dtls-server.keylog");
    char *cli_log = sn_test_path(tmp, "s_client.keylog");
    int port;
    sn_test_proc *srv =
        start_server((const char *[]){"dtls-server", "--port", "0", "--bind", "127.0.0.1", "--key",
                                      key, "--cert", cert, "--echo", "--keylog", srv_log, "--trace",
                                      "--seconds", "60", NULL},
                     &port);
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", port);
    const char *oargv[] = {"openssl",   "s_client",
                           "-dtls1_2",  "-connect",
                           connect,     "-CAfile",
                           cert,        "-verify_hostname",
                           "localhost", "-verify_return_error",
                           "-quiet",    "-keylogfile",
                           cli_log,     NULL};
    sn_test_proc *oc = sn_test_spawn(oargv);
    assert_non_null(oc);
    if (!sn_test_proc_wait_for(srv, "connected", 20000))
        fail_msg("openssl s_client did not connect:\n%s\n%s", sn_test_proc_output(oc),
                 sn_test_proc_output(srv));
    sn_test_proc_write(oc, "from openssl\n", 13);
    if (!sn_test_proc_wait_for(oc, "from openssl", 10000))
        fail_msg("no echo:\n%s", sn_test_proc_output(oc));
    sn_test_proc_stop(oc);
    char *mine = client_random_lines(srv_log), *theirs = client_random_lines(cli_log);
    if (strlen(mine) != 14 + 64 + 1 + 96 + 1 || strcmp(mine, theirs) != 0)
        fail_msg("key log lines differ:\nsealnet: %s\nopenssl: %s", mine, theirs);
    free(mine);
    free(theirs);
    const char *o = sn_test_proc_output(srv);
    if (!strstr(o, ">>> ServerHello (handshake") || !strstr(o, ">>> Certificate") ||
        !strstr(o, "<<< ClientKeyExchange") || !strstr(o, "<<< Finished") ||
        !strstr(o, "writing session secrets to"))
        fail_msg("dtls-server --trace:\n%s", o);

    if (sn_test_have("gnutls-cli")) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        const char *gargv[] = {"gnutls-cli",        "--udp",     "--x509cafile", cert,
                               "--verify-hostname", "localhost", "-p",           ps,
                               "127.0.0.1",         NULL};
        sn_test_proc *gc = sn_test_spawn(gargv);
        assert_non_null(gc);
        if (!sn_test_proc_wait_for(gc, "Handshake was completed", 20000))
            fail_msg("gnutls-cli did not connect:\n%s", sn_test_proc_output(gc));
        sn_test_proc_write(gc, "from gnutls\n", 12);
        assert_true(sn_test_proc_wait_for(srv, "says: from gnutls", 10000));
        sn_test_proc_stop(gc);
        /* Two sessions, two key log lines. */
        char *lines = client_random_lines(srv_log);
        assert_int_equal(count(lines, "CLIENT_RANDOM "), 2);
        free(lines);
    }
    assert_int_equal(sn_test_proc_stop(srv), 0);
    free(srv_log);
    free(cli_log);
    free(key);
    free(cert);
}

/* tshark decrypts a loopback capture of a sealnet client session with the key log sealnet
 * wrote. Needs tshark and capture rights on lo (root or CAP_NET_RAW). */
static void keylog_decrypts_capture_with_tshark(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("keylog")) skip(); /* docs/backends.md */
    if (!sn_test_have("tshark")) {
        fprintf(stderr, "SKIP: tshark is not installed (scripts/deps.sh test installs it)\n");
        skip();
    }
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: capturing on lo needs root\n");
        skip();
    }
    char *key, *cert;
    credentials(&key, &cert);
    char *pcap = sn_test_path(tmp, "lo.pcapng"), *klog = sn_test_path(tmp, "ts.keylog");
    int port;
    sn_test_proc *srv =
        start_server((const char *[]){"dtls-server", "--port", "0", "--bind", "127.0.0.1", "--key",
                                      key, "--cert", cert, "--echo", "--seconds", "60", NULL},
                     &port);
    char filter[64], hp[32];
    snprintf(filter, sizeof filter, "udp port %d", port);
    snprintf(hp, sizeof hp, "localhost:%d", port);
    const char *cap_argv[] = {"tshark", "-i", "lo", "-f", filter, "-w", pcap, NULL};
    sn_test_proc *cap = sn_test_spawn(cap_argv);
    assert_non_null(cap);
    if (!sn_test_proc_wait_for(cap, "Capturing on", 20000)) {
        char *why = strdup(sn_test_proc_output(cap));
        sn_test_proc_stop(cap);
        sn_test_proc_stop(srv);
        fail_msg("tshark did not start:\n%s", why);
    }
    sn_test_sleep_ms(500);
    char *out;
    int rc = run((const char *[]){"dtls-client", hp, "--ca", cert, "--keylog", klog, NULL},
                 "decrypt me please\n", 30000, &out);
    sn_test_sleep_ms(500);
    kill(sn_test_proc_pid(cap), SIGINT);
    sn_test_proc_wait_exit(cap, 10000);
    sn_test_proc_stop(cap);
    sn_test_proc_stop(srv);
    /* Asserted only now: a failure must not leave the capture running. */
    if (rc != 0) fail_msg("dtls-client under capture: rc %d:\n%s", rc, out);
    free(out);
    char *text = sn_test_sh_output(
        "tshark -r '%s' -o 'tls.keylog_file:%s' -d 'udp.port==%d,dtls' -Y dtls.app_data -T fields "
        "-e data.text -o data.show_as_text:TRUE 2>&1",
        pcap, klog, port);
    char *hex = sn_test_sh_output("tshark -r '%s' -o 'tls.keylog_file:%s' -d 'udp.port==%d,dtls' "
                                  "-x 2>&1",
                                  pcap, klog, port);
    assert_non_null(text);
    assert_non_null(hex);
    /* The decrypted record shows the line in the hex dump's text column (without the key log
     * it would not). */
    if (!strstr(hex, "decrypt me pleas") && !strstr(text, "decrypt me please"))
        fail_msg("tshark did not decrypt the capture:\n%s\n%s", text, hex);
    /* Without the key log the same capture shows no plaintext: the key log did it. */
    char *blind = sn_test_sh_output("tshark -r '%s' -o 'tls.keylog_file:/dev/null' -d "
                                    "'udp.port==%d,dtls' -x 2>&1",
                                    pcap, port);
    assert_non_null(blind);
    assert_null(strstr(blind, "decrypt me pleas"));
    free(blind);
    free(text);
    free(hex);
    free(pcap);
    free(klog);
    free(key);
    free(cert);
}

/* ---- --json, --mtu ------------------------------------------------------------------------ */

static void json_is_one_object_per_line(void **state)
{
    (void)state;
    if (sn_test_backend_lacks("peer chain")) skip(); /* docs/backends.md */
    int port;
    sn_test_proc *srv = start_server(
        (const char *[]){"dtls-server", "--port", "0", "--echo", "--seconds", "60", NULL}, &port);
    char hp[32];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    char *out;
    int rc = run(
        (const char *[]){"dtls-client", hp, "--insecure", "--json", "--trace", "--showcerts", NULL},
        "one \"quoted\"\ntwo\\back\n", 30000, &out);
    assert_int_equal(rc, 0);
    /* Every line is one JSON object (stderr is empty on success). */
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (line[0] != '{' || line[strlen(line) - 1] != '}')
            fail_msg("not a JSON object line: %s", line);
    free(out);
    rc = run((const char *[]){"dtls-client", hp, "--insecure", "--json", NULL}, "x\n", 30000, &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "{\"event\":\"connecting\""));
    assert_non_null(strstr(out, "{\"event\":\"connected\""));
    assert_non_null(strstr(out, "\"data\":\"x\"}"));
    assert_non_null(strstr(out, "{\"event\":\"summary\""));
    free(out);
    if (sn_test_have("python3")) {
        /* A real JSON parser reads every line, escapes included. */
        char *file = sn_test_path(tmp, "json.out");
        assert_int_equal(sn_test_sh("printf 'one \"q\"\\ntab\\there\\n' | '%s' dtls-client %s "
                                    "--insecure --json --trace --showcerts > '%s'",
                                    sealnet_bin, hp, file),
                         0);
        assert_int_equal(sn_test_sh("python3 -c 'import json,sys\n"
                                    "n=[json.loads(l)[\"event\"] for l in open(sys.argv[1])]\n"
                                    "assert \"certificate\" in n and \"trace\" in n and "
                                    "\"packet\" in n, n' '%s'",
                                    file),
                         0);
        free(file);
    }
    assert_int_equal(sn_test_proc_stop(srv), 0);
}

static void mtu_sets_the_packet_size(void **state)
{
    (void)state;
    int port;
    sn_test_proc *srv = start_server(
        (const char *[]){"dtls-server", "--port", "0", "--echo", "--seconds", "60", NULL}, &port);
    char hp[32];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    char *out;
    int rc = run((const char *[]){"dtls-client", hp, "--insecure", "--mtu", "600", NULL}, "m\n",
                 30000, &out);
    const char *at = strstr(out, "max packet ");
    if (rc != 0 || !at) fail_msg("--mtu 600: rc %d:\n%s", rc, out);
    int max = atoi(at + strlen("max packet "));
    assert_in_range(max, 500, 599); /* default 1200 gives 1163 */
    free(out);
    assert_int_equal(sn_test_proc_stop(srv), 0);
    assert_int_equal(
        run((const char *[]){"dtls-client", hp, "--mtu", "100", NULL}, NULL, 20000, NULL), 2);
    rc = run((const char *[]){"tls-client", hp, "--mtu", "600", NULL}, NULL, 20000, &out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--mtu applies to DTLS only"));
    free(out);

    /* Against gnutls-serv --udp: the handshake fragments to the small MTU. */
    if (sn_test_have("gnutls-serv") && sn_test_have("openssl")) {
        char *key, *cert;
        credentials(&key, &cert);
        sn_test_proc *g = NULL;
        for (int attempt = 0; attempt < 5 && !g; attempt++) {
            int fd = silent_udp(&port);
            close(fd);
            char ps[16];
            snprintf(ps, sizeof ps, "%d", port);
            const char *gargv[] = {
                "gnutls-serv",    "--udp", "--echo",        "-p", ps,  "--mtu=600",
                "--x509certfile", cert,    "--x509keyfile", key,  NULL};
            g = sn_test_spawn(gargv);
            if (!sn_test_proc_wait_for(g, "done", 10000)) {
                sn_test_proc_stop(g);
                g = NULL;
            }
        }
        assert_non_null(g);
        snprintf(hp, sizeof hp, "localhost:%d", port);
        rc = run((const char *[]){"dtls-client", hp, "--ca", cert, "--mtu", "600", NULL},
                 "via gnutls\n", 30000, &out);
        if (rc != 0 || !strstr(out, "< via gnutls"))
            fail_msg("gnutls-serv --mtu: rc %d:\n%s", rc, out);
        free(out);
        sn_test_proc_stop(g);
        free(key);
        free(cert);
    }
}

/* ---- exit codes, lines, summary ---------------------------------------------------------- */

static void ctrl_c_during_handshake_exits_130(void **state)
{
    (void)state;
    int port;
    int ufd = silent_udp(&port);
    char hp[32];
    snprintf(hp, sizeof hp, "%d", port);
    sn_test_proc *p = spawn((const char *[]){"dtls-client", "127.0.0.1", hp, "--insecure", NULL});
    assert_true(sn_test_proc_wait_for(p, "connecting", 20000));
    sn_test_sleep_ms(300);
    kill(sn_test_proc_pid(p), SIGINT);
    int rc = sn_test_proc_wait_exit(p, 10000);
    if (rc != 130 || !strstr(sn_test_proc_output(p), "interrupted") ||
        !strstr(sn_test_proc_output(p), "during the handshake"))
        fail_msg("dtls-client Ctrl-C: rc %d:\n%s", rc, sn_test_proc_output(p));
    sn_test_proc_stop(p);
    close(ufd);

    pid_t child;
    int tfd = tcp_listener(&port, NULL, &child); /* connects, never answers the ClientHello */
    snprintf(hp, sizeof hp, "%d", port);
    p = spawn((const char *[]){"tls-client", "127.0.0.1", hp, "--insecure", NULL});
    assert_true(sn_test_proc_wait_for(p, "connecting", 20000));
    sn_test_sleep_ms(300);
    kill(sn_test_proc_pid(p), SIGINT);
    rc = sn_test_proc_wait_exit(p, 10000);
    if (rc != 130 || !strstr(sn_test_proc_output(p), "during the handshake"))
        fail_msg("tls-client Ctrl-C: rc %d:\n%s", rc, sn_test_proc_output(p));
    sn_test_proc_stop(p);
    close(tfd);
}

static void lines_are_lines_on_both_clients(void **state)
{
    (void)state;
    /* TLS: the echo server returns what it got, record by record; the client prints lines. */
    int port;
    sn_test_proc *srv = start_server(
        (const char *[]){"tls-server", "--port", "0", "--echo", "--seconds", "60", NULL}, &port);
    char hp[32];
    snprintf(hp, sizeof hp, "%d", port);
    sn_test_proc *p = spawn((const char *[]){"tls-client", "127.0.0.1", hp, "--insecure", NULL});
    assert_true(sn_test_proc_wait_for(p, "connected", 20000));
    sn_test_proc_write(p, "hel", 3);
    sn_test_sleep_ms(300);
    sn_test_proc_write(p, "lo wor", 6);
    sn_test_sleep_ms(300);
    sn_test_proc_write(p, "ld\nsecond\n", 10);
    sn_test_proc_close_stdin(p);
    assert_int_equal(sn_test_proc_wait_exit(p, 20000), 0);
    const char *o = sn_test_proc_output(p);
    if (!strstr(o, "< hello world\n< second\n") || strstr(o, "< hel\n"))
        fail_msg("tls-client lines:\n%s", o);
    assert_true(sn_test_proc_wait_for(srv, "says: hello world", 10000));
    sn_test_proc_stop(p);
    assert_int_equal(sn_test_proc_stop(srv), 0);

    /* With stdin open and silent the client still prints what the server sends (a greeting):
     * reading stdin never blocks the loop. */
    srv =
        start_server((const char *[]){"tls-server", "--port", "0", "--seconds", "60", NULL}, &port);
    snprintf(hp, sizeof hp, "%d", port);
    p = spawn((const char *[]){"tls-client", "127.0.0.1", hp, "--insecure", NULL});
    if (!sn_test_proc_wait_for(p, "< Hello from the server!", 20000))
        fail_msg("greeting not printed while stdin is open:\n%s", sn_test_proc_output(p));
    sn_test_proc_close_stdin(p);
    assert_int_equal(sn_test_proc_wait_exit(p, 20000), 0);
    sn_test_proc_stop(p);
    assert_int_equal(sn_test_proc_stop(srv), 0);

    /* DTLS: one packet holding two lines (openssl s_server sends what it reads at once) is two
     * lines of output. */
    if (!sn_test_have("openssl")) return;
    char *key, *cert;
    credentials(&key, &cert);
    sn_test_proc *os = start_openssl_dtls_server(key, cert, NULL, &port);
    snprintf(hp, sizeof hp, "%d", port);
    p = spawn((const char *[]){"dtls-client", "localhost", hp, "--ca", cert, NULL});
    assert_true(sn_test_proc_wait_for(p, "connected", 20000));
    assert_true(sn_test_proc_wait_for(os, "CIPHER", 10000) ||
                sn_test_proc_wait_for(os, "Shared", 5000));
    sn_test_sleep_ms(200);
    sn_test_proc_write(os, "first line\nsecond line\n", 23);
    bool ok = sn_test_proc_wait_for(p, "< second line", 10000);
    sn_test_proc_close_stdin(p);
    sn_test_proc_wait_exit(p, 10000);
    if (!ok || !strstr(sn_test_proc_output(p), "< first line\n< second line\n"))
        fail_msg("dtls-client lines:\n%s", sn_test_proc_output(p));
    sn_test_proc_stop(p);
    sn_test_proc_stop(os);
    free(key);
    free(cert);
}

static void overlong_line_refused_once_and_summary(void **state)
{
    (void)state;
    int port;
    sn_test_proc *srv = start_server(
        (const char *[]){"dtls-server", "--port", "0", "--echo", "--seconds", "60", NULL}, &port);
    char hp[32];
    snprintf(hp, sizeof hp, "%d", port);
    size_t big = 100000;
    char *in = malloc(big + 64);
    strcpy(in, "before\n");
    memset(in + 7, 'x', big);
    strcpy(in + 7 + big, "\nafter\n");
    /* The 100,000-byte line overflows the pipe: write it from a child while the client reads. */
    sn_test_proc *p = spawn((const char *[]){"dtls-client", "127.0.0.1", hp, "--insecure", NULL});
    assert_true(sn_test_proc_wait_for(p, "connected", 20000));
    assert_true(sn_test_proc_write(p, in, strlen(in)));
    sn_test_proc_close_stdin(p);
    int rc = sn_test_proc_wait_exit(p, 30000);
    const char *o = sn_test_proc_output(p);
    if (rc != 1 || count(o, "not sent") != 1 || !strstr(o, "line 2 not sent: 100000 bytes") ||
        !strstr(o, "largest packet (1163 bytes") || !strstr(o, "< before") ||
        !strstr(o, "< after") ||
        !strstr(o, "summary: sent 2 packets (11 bytes), refused 1 (longer than a packet)") ||
        !strstr(o, "received 2 packets (11 bytes)"))
        fail_msg("over-long line: rc %d:\n%s", rc, o);
    sn_test_proc_stop(p);
    free(in);

    /* TLS: a long line is just a stream; the summary counts lines. */
    sn_test_proc *t = start_server(
        (const char *[]){"tls-server", "--port", "0", "--echo", "--seconds", "60", NULL}, &port);
    snprintf(hp, sizeof hp, "%d", port);
    char *out;
    rc = run((const char *[]){"tls-client", "127.0.0.1", hp, "--insecure", NULL}, "a\nb\nc", 30000,
             &out);
    if (rc != 0 || !strstr(out, "summary: sent 3 lines (6 bytes); received 3 lines (6 bytes)"))
        fail_msg("tls summary: rc %d:\n%s", rc, out);
    free(out);
    assert_int_equal(sn_test_proc_stop(t), 0);
    assert_int_equal(sn_test_proc_stop(srv), 0);
}

/* ---- keygen, --save-cert ------------------------------------------------------------------ */

static void keygen_cn_that_names_no_host(void **state)
{
    (void)state;
    char *key = sn_test_path(tmp, "game.key"), *cert = sn_test_path(tmp, "game.crt");
    char *out;
    int rc = run(
        (const char *[]){"keygen", "--cn", "my game,server=1", "--key", key, "--cert", cert, NULL},
        NULL, 30000, &out);
    if (rc != 2 || !strstr(out, "not a host name or IP address") || !strstr(out, "--no-san") ||
        access(key, F_OK) == 0 || access(cert, F_OK) == 0)
        fail_msg("keygen --cn 'my game,server=1': rc %d:\n%s", rc, out);
    free(out);
    rc = run((const char *[]){"keygen", "--cn", "my game,server=1", "--no-san", "--key", key,
                              "--cert", cert, NULL},
             NULL, 30000, &out);
    if (rc != 0 || !strstr(out, "subjectAltName: none")) fail_msg("--no-san: rc %d:\n%s", rc, out);
    free(out);
    if (sn_test_have("openssl")) {
        char *text = sn_test_sh_output("openssl x509 -noout -text -in '%s' 2>&1", cert);
        assert_non_null(strstr(text, "my game,server=1"));
        assert_null(strstr(text, "Subject Alternative Name"));
        free(text);
    }
    /* An IP address becomes an IP subjectAltName. */
    rc = run((const char *[]){"keygen", "--cn", "127.0.0.1", "--key", key, "--cert", cert,
                              "--force", NULL},
             NULL, 30000, &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "subjectAltName: IP:127.0.0.1"));
    free(out);
    free(key);
    free(cert);
}

static void save_cert_refuses_to_overwrite(void **state)
{
    (void)state;
    char *file = sn_test_path(tmp, "keep.crt");
    assert_true(sn_test_write_file(file, "precious\n", 9));
    const char *const kinds[] = {"dtls-server", "tls-server"};
    for (int k = 0; k < 2; k++) {
        char *out;
        int rc = run(
            (const char *[]){kinds[k], "--port", "0", "--seconds", "1", "--save-cert", file, NULL},
            NULL, 20000, &out);
        if (rc != 1 || !strstr(out, "refusing to overwrite") || !strstr(out, "--force") ||
            strstr(out, "listening"))
            fail_msg("%s --save-cert existing: rc %d:\n%s", kinds[k], rc, out);
        free(out);
        size_t len;
        char *data = sn_test_read_file(file, &len);
        assert_string_equal(data, "precious\n");
        free(data);
    }
    char *out;
    int rc = run((const char *[]){"dtls-server", "--port", "0", "--seconds", "1", "--save-cert",
                                  file, "--force", NULL},
                 NULL, 30000, &out);
    if (rc != 0 || !strstr(out, "certificate written to")) fail_msg("--force: rc %d:\n%s", rc, out);
    free(out);
    size_t len;
    char *data = sn_test_read_file(file, &len);
    assert_non_null(strstr(data, "BEGIN CERTIFICATE"));
    free(data);
    free(file);
}

/* ---- bench ------------------------------------------------------------------------------- */

static void write_prog(const char *dir, const char *name, const char *script)
{
    char *p = sn_test_path(dir, name);
    assert_true(sn_test_write_file(p, script, strlen(script)));
    chmod(p, 0755);
    free(p);
}

static void bench_rows_have_ratio_target_and_time(void **state)
{
    (void)state;
    char *dir = sn_test_path(tmp, "bench2");
    assert_int_equal(sn_test_sh("mkdir -p '%s'", dir), 0);
    /* A stand-in "dtls" that echoes its arguments and prints a table like bench/dtls.c: the
     * baseline cell has a label, the targets are a ratio and an absolute value. */
    write_prog(dir, "dtls",
               "#!/bin/sh\n"
               "echo \"args: $*\" >&2\n"
               "echo \"| Measurement | sealnet | baseline | ratio | target | met |\"\n"
               "echo '|---|---:|---|---:|---|---|'\n"
               "echo '| Full handshakes/s | 548 /s | bare OpenSSL: 500 /s | 1.10× | ≥ 0.9× bare "
               "| yes |'\n"
               "echo '| Ping-pong round trips/s | 21.7 k/s | raw UDP: 43.5 k/s | 0.50× | ≥ 0.8× "
               "raw | **no** |'\n"
               "echo '| RSS per idle peer | 41.9 KiB | bare OpenSSL: 42.8 KiB | 0.98× | ≤ 64 KiB "
               "| yes |'\n"
               "echo '| Server CPU per handshake | 500 µs | bare OpenSSL: 400 µs | 1.25× | – | – "
               "|'\n"
               "case \"$*\" in *'--seconds 0.5 --repeat 1'*) echo 'budget ok: 1 yes';; esac\n");
    /* A stand-in "tls_stream" whose ratio is baseline/value on a cost row ("higher is better
     * for sealnet"): the target turns around with the ratio. */
    write_prog(dir, "tls_stream",
               "#!/bin/sh\n"
               "echo '| measurement | sealnet | bare OpenSSL | ratio | target |'\n"
               "echo '|---|---:|---:|---:|---:|'\n"
               "echo '| CPU per GB moved | 2.50 s | 2.00 s | 0.80 | >= 0.90 |'\n");
    write_prog(dir, "hmac_cookie",
               "#!/bin/sh\n"
               "[ \"$1\" = --seconds ] || exit 3\n"
               "echo 'backend hmac_sha256: 400 ns/op'\n"
               "echo 'OpenSSL HMAC():      4000 ns/op'\n");
    setenv("SEALNET_BENCH_DIR", dir, 1);
    char *out;
    int rc = run((const char *[]){"bench", "dtls", "tls", "--seconds", "1", "--markdown", NULL},
                 NULL, 30000, &out);
    if (rc != 0 ||
        !strstr(out, "| dtls | Full handshakes/s |  | 548 /s | bare OpenSSL: 500 /s | 1.10x | "
                     "higher | >= 0.90x | yes |") ||
        !strstr(out, "| 21.7 k/s | raw UDP: 43.5 k/s | 0.50x | higher | >= 0.80x | NO |") ||
        !strstr(out, "| 41.9 KiB | bare OpenSSL: 42.8 KiB | 0.98x | lower | <= 64 KiB | yes |") ||
        !strstr(out, "| 500 µs | bare OpenSSL: 400 µs | 1.25x | lower |  | no target |") ||
        !strstr(out, "| tls_stream | CPU per GB moved |  | 2.50 s | 2.00 s | 1.25x | lower | <= "
                     "1.11x | NO |") ||
        !strstr(out, "| dtls | budget ok | yes | 1 |"))
        fail_msg("bench rows: rc %d:\n%s", rc, out);
    free(out);
    /* "bench hmac" runs hmac_cookie, with the built-in target (no dearer than HMAC()). */
    rc = run((const char *[]){"bench", "hmac", "--seconds", "1", "--markdown", NULL}, NULL, 30000,
             &out);
    if (rc != 0 ||
        !strstr(out, "| hmac_cookie | backend hmac_sha256 | ns/op | 400 | 4000 | 0.10x | lower | "
                     "<= 1.00x | yes |") ||
        strstr(out, "| dtls |"))
        fail_msg("bench hmac: rc %d:\n%s", rc, out);
    free(out);
    rc = run((const char *[]){"bench", "quantum", NULL}, NULL, 30000, &out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "unknown benchmark 'quantum'"));
    assert_non_null(strstr(out, "hmac_cookie"));
    free(out);
    unsetenv("SEALNET_BENCH_DIR");
    free(dir);
}

/* ---- --help and the man page -------------------------------------------------------------- */

/* The "--option" words of text, one per line in a static buffer: "--ca\n--insecure\n...". Man
 * page text has "\-\-ca". */
static void option_set(const char *text, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = text; *p; p++) {
        size_t skip = 0;
        if (p[0] == '-' && p[1] == '-' && (p == text || (p[-1] != '-' && p[-1] != '\\')))
            skip = 2;
        else if (!strncmp(p, "\\-\\-", 4))
            skip = 4;
        if (!skip) continue;
        const char *s = p + skip;
        size_t n = 0;
        while ((s[n] >= 'a' && s[n] <= 'z') || s[n] == '-' || s[n] == '\\')
            n++;
        char word[64] = "--";
        size_t w = 2;
        for (size_t i = 0; i < n && w + 1 < sizeof word; i++)
            if (s[i] != '\\') word[w++] = s[i];
        while (w > 2 && word[w - 1] == '-')
            w--;
        word[w] = '\0';
        p = s + n - 1;
        if (w <= 2) continue;
        char line[80];
        snprintf(line, sizeof line, "%s\n", word);
        if (!strstr(out, line) && strlen(out) + strlen(line) < cap) strcat(out, line);
    }
}

/* The options a text defines, not those it mentions: in --help the lines "  --opt ARG   what",
 * in the man page the ".B"/".BI" line after each ".TP". */
static void defined_options(const char *text, bool man, char *out, size_t cap)
{
    out[0] = '\0';
    char *copy = strdup(text);
    char *save = NULL;
    bool after_tp = false;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char part[256] = "";
        if (man) {
            if (after_tp && !strncmp(line, ".B", 2)) snprintf(part, sizeof part, "%s", line);
            after_tp = !strcmp(line, ".TP");
        } else if (!strncmp(line, "  --", 4)) {
            const char *gap = strstr(line + 2, "  ");
            snprintf(part, sizeof part, "%.*s", gap ? (int)(gap - line) : (int)strlen(line), line);
        }
        if (!*part) continue;
        char found[512];
        option_set(part, found, sizeof found);
        if (strlen(out) + strlen(found) < cap) strcat(out, found);
    }
    free(copy);
}

static bool set_has(const char *set, const char *opt)
{
    char line[80];
    snprintf(line, sizeof line, "%s\n", opt);
    return strstr(set, line) != NULL;
}

static void help_and_man_page_list_the_same_options(void **state)
{
    (void)state;
    char *man_path = sn_test_path(sn_test_source_dir(), "tools/sealnet.1");
    size_t len;
    char *man = sn_test_read_file(man_path, &len);
    assert_non_null(man);
    static const char *const cmds[] = {"keygen",     "dtls-server", "dtls-client",
                                       "tls-server", "tls-client",  "bench"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *help;
        assert_int_equal(run((const char *[]){cmds[i], "--help", NULL}, NULL, 20000, &help), 0);
        /* The command's part of COMMANDS: from ".B <cmd>" after ".TP" to the end of its options. */
        char head[64];
        snprintf(head, sizeof head, ".TP\n.B %s\n", cmds[i]);
        for (char *p = head; *p; p++)
            if (*p == '-' && p[-1] != '\\' && p[-1] != '.') {
                memmove(p + 1, p, strlen(p) + 1);
                *p++ = '\\';
            }
        const char *start = strstr(man, head);
        if (!start) fail_msg("the man page has no section '%s'", head);
        start += strlen(head);
        /* Each command's options are one .RS/.RE block. */
        const char *end = strstr(start, "\n.RE\n");
        char *section = strndup(start, end ? (size_t)(end - start) : strlen(start));
        static char in_help[4096], in_man[4096];
        defined_options(help, false, in_help, sizeof in_help);
        defined_options(section, true, in_man, sizeof in_man);
        if (!*in_help || !*in_man) fail_msg("%s: no options found", cmds[i]);
        for (char *o = strtok(in_help, "\n"); o; o = strtok(NULL, "\n"))
            if (!set_has(in_man, o) && strcmp(o, "--help") != 0)
                fail_msg("%s --help lists %s, the man page does not", cmds[i], o);
        defined_options(help, false, in_help, sizeof in_help);
        for (char *o = strtok(in_man, "\n"); o; o = strtok(NULL, "\n"))
            if (!set_has(in_help, o))
                fail_msg("the man page lists %s for %s, its --help does not", o, cmds[i]);
        /* What the man page lists, the command accepts ("--idle" was listed for tls-server). */
        defined_options(section, true, in_man, sizeof in_man);
        for (char *o = strtok(in_man, "\n"); o; o = strtok(NULL, "\n")) {
            char *out;
            /* A value, then "--help": nothing starts, whether the option takes a value or not. */
            int rc = run((const char *[]){cmds[i], o, "x", "--help", NULL}, NULL, 20000, &out);
            if (strstr(out, "unknown option"))
                fail_msg("the man page lists %s for %s, which refuses it (rc %d): %s", o, cmds[i],
                         rc, out);
            free(out);
        }
        free(section);
        free(help);
    }
    assert_non_null(strstr(man, "\\-\\-pin"));
    free(man);
    free(man_path);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s", argv[1]);
    else
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s/tools/sealnet", sn_test_build_dir());
    unsetenv("SSLKEYLOGFILE");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clients_accept_host_colon_port),
        cmocka_unit_test(pin_is_checked_up_front_and_enough_alone),
        cmocka_unit_test(showcerts_against_openssl_and_gnutls),
        cmocka_unit_test(messages_name_the_cause_and_the_fix),
        cmocka_unit_test(trace_shows_flights_and_retransmissions),
        cmocka_unit_test(keylog_equals_openssl_s_server),
        cmocka_unit_test(server_keylog_and_trace_with_real_clients),
        cmocka_unit_test(keylog_decrypts_capture_with_tshark),
        cmocka_unit_test(json_is_one_object_per_line),
        cmocka_unit_test(mtu_sets_the_packet_size),
        cmocka_unit_test(ctrl_c_during_handshake_exits_130),
        cmocka_unit_test(lines_are_lines_on_both_clients),
        cmocka_unit_test(overlong_line_refused_once_and_summary),
        cmocka_unit_test(keygen_cn_that_names_no_host),
        cmocka_unit_test(save_cert_refuses_to_overwrite),
        cmocka_unit_test(bench_rows_have_ratio_target_and_time),
        cmocka_unit_test(help_and_man_page_list_the_same_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
