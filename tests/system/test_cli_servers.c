/* The `sealnet` servers and tls-client against hostile peers, run as processes (issue 16):
 *  - a client that writes megabytes and never reads does not freeze `tls-server --echo`;
 *  - a client that streams does not starve the others of `tls-server --hello`, and tls-client
 *    exits on SIGINT while a server streams at it;
 *  - out of descriptors (RLIMIT_NOFILE 128, 124 idle clients) tls-server neither spins nor locks
 *    out a new client once --idle or --max-clients act;
 *  - the classic dtls-server keeps taking legitimate clients while one address opens silent
 *    handshakes, and counts the ones it evicts.
 * Each server must also stop on SIGINT within a bounded time whatever its peers do.
 *
 * A thread reads each child's output as it comes (a child blocked on a full pipe would prove
 * nothing) and keeps only its log lines: received data lines ("... says: ...", "< ...") are
 * counted, not stored.
 *
 * argv[1] (from CTest) is the sealnet binary; without it, $SN_BUILD_DIR/tools/sealnet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sealnet/sealnet.h>

#include "test_dtls_wire.h"
#include "testutil.h"

#define WAIT_MS 20000
/* A signal must end a server or client within this (the loops promise 100 ms; the rest is a
 * loaded machine, ASan's exit work, and the close_notify to every client). */
#define STOP_MS 3000

static char sealnet_bin[4096];
static sn_tls_options *client_opts; /* verifies nothing: the servers make their own certificate */

/* ---- a child process whose output a thread drains -------------------------------------- */

typedef struct child {
    pid_t pid;
    int in_fd, out_fd;
    pthread_t reader;
    pthread_mutex_t lock;
    char *log; /* log lines only */
    size_t len, cap;
    unsigned long data_lines; /* lines of received data, counted */
    bool in_data;             /* the line being read is data (it was longer than a piece) */
    char line[8192];          /* the reader's line being assembled */
    bool exited;
    int status;
} child;

/* One line, or a piece of a long one (`more` when the line goes on). */
static void child_keep(child *c, const char *line, size_t len, bool more)
{
    pthread_mutex_lock(&c->lock);
    bool data = c->in_data || strstr(line, " says: ") || strncmp(line, "< ", 2) == 0;
    c->in_data = data && more;
    if (data) {
        c->data_lines++;
    } else {
        if (c->len + len + 2 > c->cap) {
            c->cap = (c->len + len + 2) * 2;
            c->log = realloc(c->log, c->cap);
        }
        memcpy(c->log + c->len, line, len);
        c->len += len;
        if (!more) c->log[c->len++] = '\n';
        c->log[c->len] = '\0';
    }
    pthread_mutex_unlock(&c->lock);
}

static void *child_read(void *arg)
{
    child *c = arg;
    char *line = c->line;
    size_t n = 0;
    char buf[65536];
    for (;;) {
        ssize_t r = read(c->out_fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] == '\n' || n == sizeof c->line - 1) {
                line[n] = '\0';
                child_keep(c, line, n, buf[i] != '\n');
                n = 0;
                if (buf[i] == '\n') continue;
            }
            line[n++] = buf[i];
        }
    }
    if (n) {
        line[n] = '\0';
        child_keep(c, line, n, false);
    }
    return NULL;
}

/* Every child alive, so that a failed test (cmocka jumps out of it) leaves none running. */
static child *alive[8];

static void child_free(child *c);

/* The streaming thread of a test, stopped and joined by kill_leftovers when the test failed. */
static volatile bool *streamer_stop;
static pthread_t streamer_thread;

static int kill_leftovers(void **state)
{
    (void)state;
    if (streamer_stop) {
        *streamer_stop = true;
        pthread_join(streamer_thread, NULL);
        streamer_stop = NULL;
    }
    for (size_t i = 0; i < sizeof alive / sizeof alive[0]; i++)
        if (alive[i]) child_free(alive[i]);
    return 0;
}

/* Starts sealnet with args (NULL-terminated), stdin a pipe left open, RLIMIT_NOFILE set to
 * nofile when > 0. */
static child *child_start(const char *const args[], long nofile)
{
    const char *argv[40];
    int k = 0;
    argv[k++] = sealnet_bin;
    for (int i = 0; args[i] && k < 39; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (nofile > 0) {
            struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(126);
        }
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    child *c = calloc(1, sizeof *c);
    c->pid = pid;
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->cap = 4096;
    c->log = calloc(1, c->cap);
    pthread_mutex_init(&c->lock, NULL);
    assert_int_equal(pthread_create(&c->reader, NULL, child_read, c), 0);
    for (size_t i = 0; i < sizeof alive / sizeof alive[0]; i++)
        if (!alive[i]) {
            alive[i] = c;
            break;
        }
    return c;
}

static bool child_has(child *c, const char *needle)
{
    pthread_mutex_lock(&c->lock);
    bool found = strstr(c->log, needle) != NULL;
    pthread_mutex_unlock(&c->lock);
    return found;
}

static unsigned long child_data_lines(child *c)
{
    pthread_mutex_lock(&c->lock);
    unsigned long n = c->data_lines;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* A copy of the log (caller frees). */
static char *child_log(child *c)
{
    pthread_mutex_lock(&c->lock);
    char *s = strdup(c->log);
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void child_dump(child *c, const char *why)
{
    char *s = child_log(c);
    fprintf(stderr, "%s; the child's log so far (%lu data lines not shown):\n%s\n", why,
            child_data_lines(c), s);
    free(s);
}

static bool child_wait_for(child *c, const char *needle, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (!child_has(c, needle)) {
        if (sn_test_now_ms() >= end) return false;
        sn_test_sleep_ms(10);
    }
    return true;
}

/* Waits for the child to exit: its exit code (128+signal), -1 on timeout. */
static int child_wait_exit(child *c, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (!c->exited) {
        if (waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
            c->exited = true;
            break;
        }
        if (sn_test_now_ms() >= end) return -1;
        sn_test_sleep_ms(5);
    }
    if (WIFEXITED(c->status)) return WEXITSTATUS(c->status);
    return WIFSIGNALED(c->status) ? 128 + WTERMSIG(c->status) : -1;
}

/* Sends sig and measures how long the child takes to exit with `want` (servers stop cleanly
 * with 0; an interrupted client says so with 128 + the signal); fails the test beyond STOP_MS. */
static void child_signal_expect_status(child *c, int sig, const char *what, int want)
{
    uint64_t t0 = sn_test_now_ms();
    kill(c->pid, sig);
    int rc = child_wait_exit(c, STOP_MS);
    uint64_t took = sn_test_now_ms() - t0;
    print_message("%s: exit %d %llu ms after %s\n", what, rc, (unsigned long long)took,
                  sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (rc != want) {
        child_dump(c, "did not exit as expected in time");
        fail_msg("%s: exit status %d (-1: still running %d ms after the signal)", what, rc,
                 STOP_MS);
    }
}

static void child_signal_expect_exit(child *c, int sig, const char *what)
{
    child_signal_expect_status(c, sig, what, 0);
}

static void child_free(child *c)
{
    if (!c) return;
    for (size_t i = 0; i < sizeof alive / sizeof alive[0]; i++)
        if (alive[i] == c) alive[i] = NULL;
    if (!c->exited) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &c->status, 0);
    }
    close(c->in_fd);
    pthread_join(c->reader, NULL); /* the pipe closes with the child */
    close(c->out_fd);
    pthread_mutex_destroy(&c->lock);
    free(c->log);
    free(c);
}

/* CPU seconds (user + system) the process has used, from /proc. */
static double cpu_seconds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    size_t len;
    char *s = sn_test_read_file(path, &len);
    assert_non_null(s);
    /* Fields after the command name (which may hold spaces) start after the last ')'. */
    char *p = strrchr(s, ')');
    assert_non_null(p);
    unsigned long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14) ut = strtoul(tok, NULL, 10);
        if (field == 15) {
            st = strtoul(tok, NULL, 10);
            break;
        }
    }
    free(s);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Starts a server and reads its port from "listening on <proto> port N". */
static child *server_start(const char *const args[], long nofile, int *port)
{
    child *c = child_start(args, nofile);
    const char *needle =
        strcmp(args[0], "tls-server") == 0 ? "listening on tcp port " : "listening on udp port ";
    if (!child_wait_for(c, needle, WAIT_MS) || !child_wait_for(c, "\nmode:", 5000)) {
        child_dump(c, "no port");
        fail_msg("%s did not start", args[0]);
    }
    char *log = child_log(c);
    *port = atoi(strstr(log, needle) + strlen(needle));
    free(log);
    assert_in_range(*port, 1, 65535);
    return c;
}

/* ---- in-process TLS clients ------------------------------------------------------------- */

typedef struct tclient {
    sn_tls_stream *s;
    char got[256];
    size_t got_len;
} tclient;

static void tclient_start(tclient *t, int port)
{
    memset(t, 0, sizeof *t);
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    assert_non_null(tcp);
    assert_int_equal(sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", port), SN_OK);
    t->s = sn_tls_stream_new();
    assert_non_null(t->s);
    sn_tls_stream_set_handshake_timeout_ms(t->s, 60000);
    assert_int_equal(sn_tls_stream_connect_to_stream(t->s, tcp, "localhost", client_opts), SN_OK);
}

/* Polls and keeps the first bytes received. */
static void tclient_poll(tclient *t)
{
    sn_tls_stream_poll(t->s);
    if (sn_tls_stream_get_status(t->s) != SN_TLS_STATUS_CONNECTED) return;
    size_t n = 0;
    if (t->got_len < sizeof t->got - 1 &&
        sn_tls_stream_get_partial_data(t->s, t->got + t->got_len, sizeof t->got - 1 - t->got_len,
                                       &n) == SN_OK) {
        t->got_len += n;
        t->got[t->got_len] = '\0';
    }
}

static bool tclient_connected(const tclient *t)
{
    return sn_tls_stream_get_status(t->s) == SN_TLS_STATUS_CONNECTED;
}

static void tclient_free(tclient *t)
{
    sn_tls_stream_free(t->s);
    t->s = NULL;
}

/* ---- 1: a client that writes and never reads ------------------------------------------- */

#define HOG_BYTES (8u * 1024u * 1024u)
#define OTHERS    3

/* Old behaviour: the server blocked in sn_tls_stream_put_data echoing to the client that does
 * not read; the others' handshakes timed out and SIGINT was ignored. */
static void echo_server_survives_a_client_that_never_reads(void **state)
{
    (void)state;
    int port;
    child *srv = server_start(
        (const char *const[]){"tls-server", "--port", "0", "--bind", "127.0.0.1", "--echo", NULL},
        0, &port);
    tclient hog;
    tclient_start(&hog, port);
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    while (!tclient_connected(&hog) && sn_test_now_ms() < end) {
        sn_tls_stream_poll(hog.s);
        sn_test_sleep_ms(2);
    }
    assert_true(tclient_connected(&hog));

    /* The hog writes 8 MB (or until the server stops taking them) and reads nothing. */
    static char chunk[16384];
    memset(chunk, 'x', sizeof chunk);
    size_t sent = 0;
    uint64_t last_progress = sn_test_now_ms();
    end = sn_test_now_ms() + 30000;
    while (sent < HOG_BYTES && sn_test_now_ms() - last_progress < 2000 && sn_test_now_ms() < end &&
           tclient_connected(&hog)) {
        size_t n = 0;
        if (sn_tls_stream_put_partial_data(hog.s, chunk, sizeof chunk, &n) != SN_OK) break;
        if (n) {
            sent += n;
            last_progress = sn_test_now_ms();
        } else {
            struct pollfd pfd = {sn_tcp_peer_get_fd(sn_tls_stream_get_stream(hog.s)), POLLOUT, 0};
            poll(&pfd, 1, 10);
        }
    }
    print_message("the hog wrote %zu bytes without reading\n", sent);

    /* Others connect and get their echo while the hog keeps pushing. */
    tclient others[OTHERS];
    for (int i = 0; i < OTHERS; i++)
        tclient_start(&others[i], port);
    bool sent_ping[OTHERS] = {false};
    int done = 0;
    uint64_t t0 = sn_test_now_ms();
    end = t0 + WAIT_MS;
    while (done < OTHERS && sn_test_now_ms() < end) {
        size_t n = 0;
        if (tclient_connected(&hog)) sn_tls_stream_put_partial_data(hog.s, chunk, sizeof chunk, &n);
        done = 0;
        for (int i = 0; i < OTHERS; i++) {
            tclient_poll(&others[i]);
            if (tclient_connected(&others[i]) && !sent_ping[i]) {
                char line[32];
                snprintf(line, sizeof line, "ping %d\n", i);
                assert_int_equal(sn_tls_stream_put_data(others[i].s, line, strlen(line)), SN_OK);
                sent_ping[i] = true;
            }
            char want[32];
            snprintf(want, sizeof want, "ping %d\n", i);
            if (strstr(others[i].got, want)) done++;
        }
        sn_test_sleep_ms(2);
    }
    print_message("%d of %d other clients got their echo in %llu ms\n", done, OTHERS,
                  (unsigned long long)(sn_test_now_ms() - t0));
    if (done < OTHERS) child_dump(srv, "echoes missing");
    assert_int_equal(done, OTHERS);

    /* The hog is closed with a reason once its unread replies pass the bound. */
    end = sn_test_now_ms() + WAIT_MS;
    while (!child_has(srv, "disconnected: not reading its replies") && sn_test_now_ms() < end) {
        size_t n = 0;
        if (tclient_connected(&hog) &&
            sn_tls_stream_put_partial_data(hog.s, chunk, sizeof chunk, &n) != SN_OK)
            continue;
        sn_tls_stream_poll(hog.s);
        if (!n) sn_test_sleep_ms(5);
    }
    if (!child_has(srv, "disconnected: not reading its replies"))
        child_dump(srv, "the hog was not closed");
    assert_true(child_has(srv, "disconnected: not reading its replies"));

    child_signal_expect_exit(srv, SIGINT, "tls-server --echo");
    assert_true(child_has(srv, "closed 1 not reading"));
    for (int i = 0; i < OTHERS; i++)
        tclient_free(&others[i]);
    tclient_free(&hog);
    child_free(srv);
}

/* ---- 2: a client that streams; tls-client against a server that streams ------------------ */

typedef struct streamer {
    int port;
    volatile bool stop;
    sn_tls_stream *s;
    sn_tcp_server *listener; /* when the streamer is the server */
    size_t sent;
    bool ok;
} streamer;

static const char stream_line[] =
    "streaming streaming streaming streaming streaming streaming streaming streaming\n";

/* Writes lines as fast as the socket takes them until told to stop; reads nothing. */
static void stream_until_stopped(streamer *st)
{
    static char block[16384];
    for (size_t i = 0; i + sizeof stream_line - 1 <= sizeof block; i += sizeof stream_line - 1)
        memcpy(block + i, stream_line, sizeof stream_line - 1);
    size_t block_len = (sizeof block / (sizeof stream_line - 1)) * (sizeof stream_line - 1);
    while (!st->stop && sn_tls_stream_get_status(st->s) == SN_TLS_STATUS_CONNECTED) {
        size_t n = 0;
        if (sn_tls_stream_put_partial_data(st->s, block, block_len, &n) != SN_OK) break;
        st->sent += n;
        if (!n) {
            struct pollfd pfd = {sn_tcp_peer_get_fd(sn_tls_stream_get_stream(st->s)), POLLOUT, 0};
            poll(&pfd, 1, 10);
            sn_tls_stream_poll(st->s);
        }
    }
}

static void *stream_client(void *arg)
{
    streamer *st = arg;
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    st->s = sn_tls_stream_new();
    if (sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", st->port) != SN_OK ||
        sn_tls_stream_connect_to_stream(st->s, tcp, "localhost", client_opts) != SN_OK)
        return NULL;
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    while (sn_tls_stream_get_status(st->s) == SN_TLS_STATUS_HANDSHAKING && sn_test_now_ms() < end) {
        sn_tls_stream_poll(st->s);
        sn_test_sleep_ms(2);
    }
    st->ok = sn_tls_stream_get_status(st->s) == SN_TLS_STATUS_CONNECTED;
    stream_until_stopped(st);
    return NULL;
}

/* Old behaviour: the server's read loop ran until the streaming client's socket was empty,
 * which it never was: the others timed out. */
static void hello_server_not_starved_by_a_streaming_client(void **state)
{
    (void)state;
    int port;
    child *srv = server_start(
        (const char *const[]){"tls-server", "--port", "0", "--bind", "127.0.0.1", "--hello", NULL},
        0, &port);
    static streamer st;
    st = (streamer){.port = port};
    assert_int_equal(pthread_create(&streamer_thread, NULL, stream_client, &st), 0);
    streamer_stop = &st.stop;
    /* Let the stream run well ahead of the server before the others come. */
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    while (st.sent < 4u * 1024u * 1024u && sn_test_now_ms() < end)
        sn_test_sleep_ms(10);
    print_message("streamer connected: %d, %zu bytes sent\n", st.ok, st.sent);
    assert_true(st.ok);

    tclient others[OTHERS];
    for (int i = 0; i < OTHERS; i++)
        tclient_start(&others[i], port);
    int done = 0;
    uint64_t t0 = sn_test_now_ms();
    end = t0 + WAIT_MS;
    while (done < OTHERS && sn_test_now_ms() < end) {
        done = 0;
        for (int i = 0; i < OTHERS; i++) {
            tclient_poll(&others[i]);
            if (strstr(others[i].got, "Hello from the server!\n")) done++;
        }
        sn_test_sleep_ms(2);
    }
    print_message("%d of %d other clients greeted in %llu ms while the stream ran (%zu bytes)\n",
                  done, OTHERS, (unsigned long long)(sn_test_now_ms() - t0), st.sent);
    if (done < OTHERS) child_dump(srv, "greetings missing");
    assert_int_equal(done, OTHERS);
    assert_true(child_data_lines(srv) > 0); /* the stream was being read */

    child_signal_expect_exit(srv, SIGINT, "tls-server --hello, streamed at");
    st.stop = true;
    pthread_join(streamer_thread, NULL);
    streamer_stop = NULL;
    sn_tls_stream_free(st.s);
    for (int i = 0; i < OTHERS; i++)
        tclient_free(&others[i]);
    child_free(srv);
}

static void *stream_server(void *arg)
{
    streamer *st = arg;
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    sn_tcp_peer *tcp = NULL;
    while (!tcp && !st->stop && sn_test_now_ms() < end) {
        struct pollfd pfd = {sn_tcp_server_get_fd(st->listener), POLLIN, 0};
        poll(&pfd, 1, 20);
        if (sn_tcp_server_is_connection_available(st->listener))
            tcp = sn_tcp_server_take_connection(st->listener);
    }
    if (!tcp) return NULL;
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL);
    sn_tls_options *o = sn_tls_options_server(key, cert);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    st->s = sn_tls_stream_new();
    if (o && sn_tls_stream_accept_stream(st->s, tcp, o) == SN_OK) {
        while (sn_tls_stream_get_status(st->s) == SN_TLS_STATUS_HANDSHAKING &&
               sn_test_now_ms() < end) {
            sn_tls_stream_poll(st->s);
            sn_test_sleep_ms(2);
        }
        st->ok = sn_tls_stream_get_status(st->s) == SN_TLS_STATUS_CONNECTED;
        stream_until_stopped(st);
    }
    sn_tls_options_free(o);
    return NULL;
}

/* Old behaviour: tls-client's read loop ran until nothing was left, which never happened while
 * the server streamed: it ignored SIGINT and SIGTERM. */
static void tls_client_stops_on_signal_while_server_streams(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        int sig = round == 0 ? SIGINT : SIGTERM;
        static streamer st;
        st = (streamer){0};
        st.listener = sn_tcp_server_new();
        assert_int_equal(sn_tcp_server_listen(st.listener, 0, "127.0.0.1"), SN_OK);
        char port[16];
        snprintf(port, sizeof port, "%d", sn_tcp_server_get_local_port(st.listener));
        assert_int_equal(pthread_create(&streamer_thread, NULL, stream_server, &st), 0);
        streamer_stop = &st.stop;
        child *cl = child_start(
            (const char *const[]){"tls-client", "127.0.0.1", port, "--insecure", NULL}, 0);
        /* stdin stays open: only the signal may end it. */
        uint64_t end = sn_test_now_ms() + WAIT_MS;
        while ((child_data_lines(cl) < 20000 || st.sent < 8u * 1024u * 1024u) &&
               sn_test_now_ms() < end)
            sn_test_sleep_ms(10);
        print_message("tls-client printed %lu lines of %zu bytes streamed\n", child_data_lines(cl),
                      st.sent);
        if (!st.ok) child_dump(cl, "no stream");
        assert_true(st.ok);
        child_signal_expect_status(cl, sig, "tls-client, streamed at", 128 + sig);
        st.stop = true;
        pthread_join(streamer_thread, NULL);
        streamer_stop = NULL;
        sn_tls_stream_free(st.s);
        sn_tcp_server_free(st.listener);
        child_free(cl);
    }
}

/* ---- 3: out of descriptors -------------------------------------------------------------- */

#define IDLE_CLIENTS 124
#define NOFILE       128

/* Old behaviour: with the listening socket readable and accept failing with EMFILE, the loop
 * spun at 100 % of a core; with no --idle nor --max-clients, idle clients kept everyone out. */
static void out_of_descriptors(const char *max_clients, const char *needle)
{
    int port;
    child *srv = server_start((const char *const[]){"tls-server", "--port", "0", "--bind",
                                                    "127.0.0.1", "--hello", "--idle", "8",
                                                    "--max-clients", max_clients, NULL},
                              NOFILE, &port);
    static tclient idle[IDLE_CLIENTS];
    for (int i = 0; i < IDLE_CLIENTS; i++)
        tclient_start(&idle[i], port);
    int connected = 0;
    uint64_t end = sn_test_now_ms() + 40000;
    while (connected < IDLE_CLIENTS && !child_has(srv, needle) && sn_test_now_ms() < end) {
        connected = 0;
        for (int i = 0; i < IDLE_CLIENTS; i++) {
            sn_tls_stream_poll(idle[i].s);
            if (tclient_connected(&idle[i])) connected++;
        }
        sn_test_sleep_ms(5);
    }
    /* One more: the server is out of descriptors (or at --max-clients) now. */
    tclient fresh;
    tclient_start(&fresh, port);
    end = sn_test_now_ms() + WAIT_MS;
    while (!child_has(srv, needle) && sn_test_now_ms() < end) {
        for (int i = 0; i < IDLE_CLIENTS; i++)
            sn_tls_stream_poll(idle[i].s);
        sn_tls_stream_poll(fresh.s);
        sn_test_sleep_ms(5);
    }
    print_message("%d idle clients connected before the server said '%s'\n", connected, needle);
    if (!child_has(srv, needle)) child_dump(srv, "no pause logged");
    assert_true(child_has(srv, needle));

    /* Paused, the server must not spin on its readable listening socket. */
    double c0 = cpu_seconds(srv->pid);
    uint64_t t0 = sn_test_now_ms();
    sn_test_sleep_ms(2000);
    double used = cpu_seconds(srv->pid) - c0;
    double share = used * 1000.0 / (double)(sn_test_now_ms() - t0);
    print_message("server CPU while paused: %.2f s over %llu ms (%.0f %% of a core)\n", used,
                  (unsigned long long)(sn_test_now_ms() - t0), share * 100.0);
    assert_true(share < 0.5);

    /* --idle frees the slots; the new client gets in. */
    t0 = sn_test_now_ms();
    end = t0 + 40000;
    while (!strstr(fresh.got, "Hello from the server!") && sn_test_now_ms() < end) {
        tclient_poll(&fresh);
        sn_test_sleep_ms(5);
    }
    print_message("the new client was greeted %llu ms later\n",
                  (unsigned long long)(sn_test_now_ms() - t0));
    if (!strstr(fresh.got, "Hello from the server!")) child_dump(srv, "the new client got nothing");
    assert_non_null(strstr(fresh.got, "Hello from the server!"));
    assert_true(child_has(srv, "disconnected: silent for 8 s (--idle)"));

    child_signal_expect_exit(srv, SIGINT, "tls-server out of descriptors");
    char *log = child_log(srv);
    const char *stop = strstr(log, "stopping:");
    assert_non_null(stop);
    print_message("%s", stop);
    free(log);
    tclient_free(&fresh);
    for (int i = 0; i < IDLE_CLIENTS; i++)
        tclient_free(&idle[i]);
    child_free(srv);
}

static void tls_server_out_of_descriptors_does_not_spin(void **state)
{
    (void)state;
    /* --max-clients above the descriptor limit: accept(2) itself fails with EMFILE. */
    out_of_descriptors("1000", "accept paused: cannot accept a connection: Too many open files");
}

static void tls_server_at_max_clients_waits(void **state)
{
    (void)state;
    out_of_descriptors("100", "100 clients (--max-clients)");
}

/* A TCP connection that never sends its ClientHello (slowloris at the handshake) is closed by
 * --idle with the reason, and the client sees the connection end. Old behaviour: tls-server had
 * no --idle and kept it for the whole handshake timeout (30 s). */
static void tls_server_idle_closes_a_silent_handshake(void **state)
{
    (void)state;
    int port;
    child *srv = server_start((const char *const[]){"tls-server", "--port", "0", "--bind",
                                                    "127.0.0.1", "--idle", "1", NULL},
                              0, &port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    uint64_t t0 = sn_test_now_ms();
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (!child_wait_for(srv, "silent for 1 s (--idle) during the handshake", WAIT_MS))
        child_dump(srv, "the silent handshake was not closed");
    assert_true(child_has(srv, "silent for 1 s (--idle) during the handshake"));
    struct pollfd pfd = {fd, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
    char b[64];
    assert_true(recv(fd, b, sizeof b, 0) <= 0); /* end of stream (or reset), no data */
    uint64_t took = sn_test_now_ms() - t0;
    print_message("silent handshake closed after %llu ms\n", (unsigned long long)took);
    assert_true(took >= 900);
    close(fd);
    child_signal_expect_exit(srv, SIGTERM, "tls-server --idle 1");
    assert_true(child_has(srv, "1 idle"));
    child_free(srv);
}

/* ---- 4: silent half-open DTLS handshakes against the classic loop ------------------------ */

/* One silent half-open handshake from a new source port of 127.0.0.1: earns a cookie, opens
 * the handshake with it, and never answers the server's flight. false when the server did not
 * answer the hello in time. */
static int silent_fds[512];
static int nsilent;

static bool open_silent_handshake(int port, const uint8_t *hello, size_t hello_len)
{
    if (nsilent == (int)(sizeof silent_fds / sizeof silent_fds[0])) return false;
    /* The socket stays open until the end, so that no ICMP error tells the server anything. */
    int fd = silent_fds[nsilent++] = sn_test_udp_socket_on(NULL);
    sn_test_udp_send_to(fd, port, hello, hello_len);
    uint8_t hvr[2048];
    struct pollfd pfd = {fd, POLLIN, 0};
    ssize_t n = poll(&pfd, 1, 5000) > 0 ? recv(fd, hvr, sizeof hvr, 0) : -1;
    bool ok = n >= 28 && hvr[0] == 22 && hvr[13] == 3 && (size_t)n >= 28u + hvr[27];
    if (ok) {
        uint8_t withc[2400];
        size_t wl =
            sn_test_hello_with_cookie(hello, hello_len, hvr + 28, hvr[27], withc, sizeof withc);
        sn_test_udp_send_to(fd, port, withc, wl);
    }
    return ok;
}

#define HALF_OPEN_CAP "16"
#define SILENT        200

/* Old behaviour: no cap, every silent handshake kept and polled every turn (3,000 from one
 * address: 67 % of a core); nothing counted. */
static void classic_dtls_server_caps_silent_half_open(void **state)
{
    (void)state;
    uint8_t hello[2048];
    size_t hello_len = sn_test_capture_client_hello(client_opts, hello, sizeof hello);
    int port;
    child *srv =
        server_start((const char *const[]){"dtls-server", "--port", "0", "--bind", "127.0.0.1",
                                           "--hello", "--max-half-open", HALF_OPEN_CAP, NULL},
                     0, &port);
    int opened = 0;
    for (int i = 0; i < SILENT; i++)
        opened += open_silent_handshake(port, hello, hello_len);
    print_message("%d silent half-open handshakes opened from 127.0.0.1\n", opened);
    assert_true(opened > SILENT / 2);
    assert_true(child_wait_for(srv, "(--max-half-open): evicting the oldest", WAIT_MS));

    double c0 = cpu_seconds(srv->pid);
    uint64_t t0 = sn_test_now_ms();
    /* A legitimate client connects while the attack goes on at 20 handshakes a second. */
    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *cl = sn_dtls_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", port), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(cl, udp, "localhost", client_opts), SN_OK);
    uint64_t next_attack = t0, end = t0 + WAIT_MS;
    bool replied = false, sent = false;
    while (!replied && sn_test_now_ms() < end) {
        if (sn_test_now_ms() >= next_attack) {
            opened += open_silent_handshake(port, hello, hello_len);
            next_attack += 50;
        }
        struct pollfd pfd = {sn_dtls_peer_get_fd(cl), POLLIN, 0};
        poll(&pfd, 1, 5);
        sn_dtls_peer_poll(cl);
        if (sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED && !sent) {
            assert_int_equal(sn_dtls_peer_put_packet(cl, "hi", 2), SN_OK);
            sent = true;
        }
        char buf[256];
        size_t len;
        if (sn_dtls_peer_get_packet(cl, buf, sizeof buf, &len) == SN_OK) replied = true;
    }
    uint64_t took = sn_test_now_ms() - t0;
    print_message("legitimate client: status %d, reply %d after %llu ms (%d silent sessions)\n",
                  sn_dtls_peer_get_status(cl), replied, (unsigned long long)took, opened);
    if (!replied) child_dump(srv, "no reply to the legitimate client");
    assert_true(replied);
    /* Keep attacking until 2 s have passed, to measure the server's CPU under the attack. */
    while (sn_test_now_ms() - t0 < 2000) {
        opened += open_silent_handshake(port, hello, hello_len);
        sn_test_sleep_ms(50);
    }
    double used = cpu_seconds(srv->pid) - c0;
    double share = used * 1000.0 / (double)(sn_test_now_ms() - t0);
    print_message("server CPU under the attack: %.0f %% of a core\n", share * 100.0);
    assert_true(share < 0.5);
    sn_dtls_peer_free(cl);

    child_signal_expect_exit(srv, SIGINT, "dtls-server (classic) under half-open attack");
    char *log = child_log(srv);
    const char *stop = strstr(log, "stopping:");
    assert_non_null(stop);
    print_message("%s", stop);
    const char *ev = strstr(stop, "packets out; ");
    assert_non_null(ev);
    long evicted = strtol(ev + strlen("packets out; "), NULL, 10);
    /* Every silent session beyond the cap was evicted (a few may have timed out instead). */
    assert_true(evicted >= opened - 2 * atoi(HALF_OPEN_CAP));
    free(log);
    child_free(srv);
    for (int i = 0; i < nsilent; i++)
        close(silent_fds[i]);
    nsilent = 0;
}

/* A DTLS client of the test, polled until CONNECTED or failed (or timeout_ms). */
static sn_dtls_peer *dtls_connect(int port, int handshake_timeout_ms)
{
    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *cl = sn_dtls_peer_new();
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.handshake_timeout_ms = handshake_timeout_ms;
    assert_int_equal(sn_dtls_peer_set_settings(cl, &set), SN_OK);
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", port), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(cl, udp, "localhost", client_opts), SN_OK);
    uint64_t end = sn_test_now_ms() + (uint64_t)handshake_timeout_ms + 5000;
    while (sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_HANDSHAKING && sn_test_now_ms() < end) {
        struct pollfd pfd = {sn_dtls_peer_get_fd(cl), POLLIN, 0};
        poll(&pfd, 1, 10);
        sn_dtls_peer_poll(cl);
    }
    return cl;
}

/* --max-clients on the classic loop: the peer beyond it is refused and counted; once a peer
 * leaves, a new one gets in. Old behaviour: no bound at all. */
static void classic_dtls_server_max_clients(void **state)
{
    (void)state;
    int port;
    child *srv = server_start((const char *const[]){"dtls-server", "--port", "0", "--bind",
                                                    "127.0.0.1", "--max-clients", "1", NULL},
                              0, &port);
    sn_dtls_peer *first = dtls_connect(port, 10000);
    assert_int_equal(sn_dtls_peer_get_status(first), SN_DTLS_STATUS_CONNECTED);
    sn_dtls_peer *second = dtls_connect(port, 1500);
    assert_int_equal(sn_dtls_peer_get_status(second), SN_DTLS_STATUS_ERROR);
    assert_true(child_wait_for(srv, "(--max-clients): new handshakes refused", WAIT_MS));
    sn_dtls_peer_free(first); /* close_notify: the slot frees */
    assert_true(child_wait_for(srv, "disconnected: closed by the client", WAIT_MS));
    sn_dtls_peer *third = dtls_connect(port, 10000);
    assert_int_equal(sn_dtls_peer_get_status(third), SN_DTLS_STATUS_CONNECTED);
    sn_dtls_peer_free(third);
    sn_dtls_peer_free(second);
    child_signal_expect_exit(srv, SIGINT, "dtls-server --max-clients 1");
    char *log = child_log(srv);
    const char *stop = strstr(log, "stopping:");
    assert_non_null(stop);
    print_message("%s", stop);
    /* "N refused": one per cookie-proven hello of the refused client (it may retransmit). */
    const char *ref = strstr(stop, " refused (--max-clients 1)");
    assert_non_null(ref);
    while (ref > stop && ref[-1] >= '0' && ref[-1] <= '9')
        ref--;
    assert_true(atoi(ref) >= 1);
    free(log);
    child_free(srv);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s", argv[1]);
    else
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s/tools/sealnet", sn_test_build_dir());
    signal(SIGPIPE, SIG_IGN);
    client_opts = sn_tls_options_client_unsafe(NULL);
    assert_non_null(client_opts);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(echo_server_survives_a_client_that_never_reads, kill_leftovers),
        cmocka_unit_test_teardown(hello_server_not_starved_by_a_streaming_client, kill_leftovers),
        cmocka_unit_test_teardown(tls_client_stops_on_signal_while_server_streams, kill_leftovers),
        cmocka_unit_test_teardown(tls_server_out_of_descriptors_does_not_spin, kill_leftovers),
        cmocka_unit_test_teardown(tls_server_at_max_clients_waits, kill_leftovers),
        cmocka_unit_test_teardown(tls_server_idle_closes_a_silent_handshake, kill_leftovers),
        cmocka_unit_test_teardown(classic_dtls_server_caps_silent_half_open, kill_leftovers),
        cmocka_unit_test_teardown(classic_dtls_server_max_clients, kill_leftovers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sn_tls_options_free(client_opts);
    return rc;
}
