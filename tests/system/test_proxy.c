/* `sealnet proxy` run as a process in front of a plain UDP echo backend that lives in this test
 * (a thread): real DTLS clients (sealnet dtls-client, openssl s_client, gnutls-cli, in-process
 * sealnet clients) get their echoes; 200 concurrent sessions get only their own data; PROXY v2
 * headers parsed by an independent parser (python3's struct); the reverse mode carries a plain
 * UDP client to openssl s_server; idle timeout and a backend that is down; the metrics endpoint
 * scraped over HTTP (and SIGUSR1) against the traffic sent, also for dtls-server; hostile input
 * from clients and from the backend. Also the PROXY v2 encoder's bytes (tools/proxy_protocol.c).
 *
 * argv[1] (from CTest) is the sealnet binary. Loopback only, every port ephemeral. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "dtls_fixture.h"
#include "proxy_protocol.h"
#include "test_robust_util.h"

#define HANDSHAKE_MS 30000
#define DATA_MS      15000

static char sealnet_bin[4096];
static char *tmp, *key_path, *cert_path;
static sn_tls_options *client_opts;

/* ---- processes and backends that a failed test must not leave behind ---------------------- */

#define MAX_TRACKED 16
static sn_test_proc *tracked[MAX_TRACKED];
/* The backend a test runs, stopped by cleanup_each when the test fails half-way. Tests keep
 * their backend in static storage, not on their stack: a failed assertion leaves the test
 * function, and the backend's thread and this pointer must not outlive the object. */
static struct backend *tracked_backend;

static sn_test_proc *spawn_tracked(const char *const argv[])
{
    sn_test_proc *p = sn_test_spawn(argv);
    for (int i = 0; p && i < MAX_TRACKED; i++)
        if (!tracked[i]) {
            tracked[i] = p;
            break;
        }
    return p;
}

static int stop_proc(sn_test_proc *p)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i] == p) tracked[i] = NULL;
    return sn_test_proc_stop(p);
}

/* ---- the backend: a plain UDP server in a thread ------------------------------------------ */

typedef enum be_mode {
    BE_ECHO,     /* echo (a PROXY v2 header is stripped first) */
    BE_OVERSIZE, /* a 4000-byte datagram first, then the echo */
    BE_GARBAGE,  /* five random datagrams instead of the echo */
    BE_FLOOD     /* "flood...": 20000 datagrams back; anything else: echo */
} be_mode;

#define BE_MAX_REC   64
#define BE_MAX_SRC   1024
#define FLOOD_COUNT  20000
#define GARBAGE_EACH 5

typedef struct backend {
    int fd, port;
    be_mode mode;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    uint8_t *rec[BE_MAX_REC];
    size_t rec_len[BE_MAX_REC];
    int nrec;
    int src[BE_MAX_SRC];
    int nsrc;
    atomic_ulong received;
} backend;

static void be_note(backend *b, const uint8_t *d, size_t len, int from_port)
{
    pthread_mutex_lock(&b->mu);
    if (b->nrec < BE_MAX_REC) {
        b->rec[b->nrec] = malloc(len ? len : 1);
        memcpy(b->rec[b->nrec], d, len);
        b->rec_len[b->nrec++] = len;
    }
    bool seen = false;
    for (int i = 0; i < b->nsrc && !seen; i++)
        seen = b->src[i] == from_port;
    if (!seen && b->nsrc < BE_MAX_SRC) b->src[b->nsrc++] = from_port;
    pthread_mutex_unlock(&b->mu);
}

static void *be_main(void *arg)
{
    backend *b = arg;
    static uint8_t buf[70000];
    fx_rng rng;
    fx_rng_seed(&rng, 77);
    while (!atomic_load(&b->stop)) {
        if (!rb_wait(b->fd, 20)) continue;
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(b->fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0) continue;
        atomic_fetch_add(&b->received, 1);
        be_note(b, buf, (size_t)n, ntohs(from.sin_port));
        const uint8_t *d = buf;
        size_t len = (size_t)n;
        if (len >= 16 && memcmp(d, pp2_signature, 12) == 0) {
            size_t h = 16 + ((size_t)d[14] << 8 | d[15]);
            if (h <= len) {
                d += h;
                len -= h;
            }
        }
        switch (b->mode) {
        case BE_OVERSIZE: {
            static uint8_t big[4000];
            memset(big, 'B', sizeof big);
            sendto(b->fd, big, sizeof big, 0, (struct sockaddr *)&from, fl);
            sendto(b->fd, d, len, 0, (struct sockaddr *)&from, fl);
            break;
        }
        case BE_GARBAGE:
            for (int i = 0; i < GARBAGE_EACH; i++) {
                uint8_t g[1000];
                size_t gl = 1 + fx_rng_below(&rng, sizeof g);
                fx_rng_fill(&rng, g, gl);
                sendto(b->fd, g, gl, 0, (struct sockaddr *)&from, fl);
            }
            break;
        case BE_FLOOD:
            if (len >= 5 && memcmp(d, "flood", 5) == 0) {
                uint8_t f[100];
                memset(f, 'F', sizeof f);
                for (int i = 0; i < FLOOD_COUNT; i++)
                    sendto(b->fd, f, sizeof f, MSG_DONTWAIT, (struct sockaddr *)&from, fl);
                break;
            }
            sendto(b->fd, d, len, 0, (struct sockaddr *)&from, fl);
            break;
        default:
            sendto(b->fd, d, len, 0, (struct sockaddr *)&from, fl);
            break;
        }
    }
    return NULL;
}

static void be_start(backend *b, be_mode mode)
{
    memset(b, 0, sizeof *b);
    b->mode = mode;
    b->fd = rb_socket("127.0.0.1", 0);
    assert_true(b->fd >= 0);
    int big = 4 << 20;
    setsockopt(b->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    /* Bursts from many sessions at once: as much receive buffer as we may have. */
    if (setsockopt(b->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0)
        setsockopt(b->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    b->port = rb_port(b->fd);
    pthread_mutex_init(&b->mu, NULL);
    assert_int_equal(pthread_create(&b->th, NULL, be_main, b), 0);
    tracked_backend = b;
}

static void be_stop(backend *b)
{
    tracked_backend = NULL;
    atomic_store(&b->stop, 1);
    pthread_join(b->th, NULL);
    close(b->fd);
    for (int i = 0; i < b->nrec; i++)
        free(b->rec[i]);
    pthread_mutex_destroy(&b->mu);
}

/* ---- the proxy process ------------------------------------------------------------------- */

static void dump(sn_test_proc *p, const char *what)
{
    sn_test_proc_drain(p);
    fprintf(stderr, "---- %s output ----\n%s\n----\n", what, sn_test_proc_output(p));
}

static int number_after(sn_test_proc *p, const char *needle)
{
    const char *at = strstr(sn_test_proc_output(p), needle);
    return at ? atoi(at + strlen(needle)) : 0;
}

/* Starts `sealnet proxy ARGS...` and reads its port (and the metrics port when asked). */
static sn_test_proc *start_sealnet(const char *const args[], int *port, int *metrics_port)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = sealnet_bin;
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    sn_test_proc *p = spawn_tracked(argv);
    assert_non_null(p);
    if (!sn_test_proc_wait_for(p, "\nmode:", 30000)) {
        dump(p, args[0]);
        fail_msg("%s did not start", args[0]);
    }
    *port = number_after(p, "listening on udp port ");
    assert_in_range(*port, 1, 65535);
    if (metrics_port) {
        *metrics_port = number_after(p, "metrics on http://127.0.0.1:");
        assert_in_range(*metrics_port, 1, 65535);
    }
    return p;
}

static sn_test_proc *start_proxy(int backend_port, const char *const extra[], int *port,
                                 int *metrics_port)
{
    char to[64];
    snprintf(to, sizeof to, "127.0.0.1:%d", backend_port);
    const char *args[40] = {"proxy", "--listen", "127.0.0.1:0", "--to",   to,
                            "--key", key_path,   "--cert",      cert_path};
    int n = 9;
    if (metrics_port) {
        args[n++] = "--metrics";
        args[n++] = "127.0.0.1:0";
    }
    for (int i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return start_sealnet(args, port, metrics_port);
}

static void assert_alive(sn_test_proc *p)
{
    if (sn_test_proc_wait_exit(p, 0) != -1) {
        dump(p, "proxy");
        fail_msg("the proxy exited");
    }
}

/* ---- in-process DTLS clients -------------------------------------------------------------- */

static sn_dtls_peer *dtls_connect(const char *ip, int port, int *local_port)
{
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(u, ip, port), SN_OK);
    if (local_port) *local_port = sn_udp_peer_get_local_port(u);
    sn_dtls_peer *p = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_connect_to_peer(p, u, "localhost", client_opts), SN_OK);
    uint64_t end = sn_test_now_ms() + HANDSHAKE_MS;
    while (sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING && sn_test_now_ms() < end) {
        rb_wait(sn_dtls_peer_get_fd(p), 10);
        sn_dtls_peer_poll(p);
    }
    if (sn_dtls_peer_get_status(p) != SN_DTLS_STATUS_CONNECTED)
        fail_msg("handshake through the proxy: status %d, %s", sn_dtls_peer_get_status(p),
                 sn_dtls_peer_get_error_message(p));
    return p;
}

/* The next packet within ms; false when none came (or the session ended). */
static bool dtls_recv(sn_dtls_peer *p, uint8_t *buf, size_t cap, size_t *len, int ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)ms;
    for (;;) {
        sn_dtls_peer_poll(p);
        if (sn_dtls_peer_get_packet(p, buf, cap, len) == SN_OK) return true;
        if (sn_dtls_peer_get_status(p) != SN_DTLS_STATUS_CONNECTED || sn_test_now_ms() >= end)
            return false;
        rb_wait(sn_dtls_peer_get_fd(p), 10);
    }
}

/* Sends msg up to `sends` times, each waiting up to wait_ms for the echo, and checks it; the
 * session must stay up between sends. One send is the rule. After a burst from the client's own
 * address more are needed: the proxy's queue for one peer holds 256 datagrams
 * (SN_UDP_DEFAULT_QUEUE_PACKETS), so when the proxy was descheduled for the whole burst it drops,
 * and counts, what comes past that, possibly the next real datagram too. DTLS does not resend
 * application data; a client does. */
static void echo_sends(sn_dtls_peer *p, const char *msg, int sends, int wait_ms)
{
    uint8_t buf[2048];
    size_t len;
    for (int attempt = 0; attempt < sends; attempt++) {
        if (attempt > 0) assert_int_equal(sn_dtls_peer_get_status(p), SN_DTLS_STATUS_CONNECTED);
        assert_int_equal(sn_dtls_peer_put_packet(p, msg, strlen(msg)), SN_OK);
        if (dtls_recv(p, buf, sizeof buf, &len, wait_ms)) {
            assert_int_equal(len, strlen(msg));
            assert_memory_equal(buf, msg, len);
            return;
        }
    }
    fail_msg("no echo of '%s' (%d send%s)", msg, sends, sends == 1 ? "" : "s");
}

static void echo_once(sn_dtls_peer *p, const char *msg)
{
    echo_sends(p, msg, 1, DATA_MS);
}

/* Waits until the proxy ends the session (close_notify): DISCONNECTED. */
static bool wait_closed(sn_dtls_peer *p, int ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)ms;
    while (sn_test_now_ms() < end) {
        sn_dtls_peer_poll(p);
        if (sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_DISCONNECTED) return true;
        rb_wait(sn_dtls_peer_get_fd(p), 20);
    }
    return false;
}

/* ---- HTTP and the exposition format ------------------------------------------------------- */

/* GET path from 127.0.0.1:port; the whole response (malloc'd), NULL on failure. */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return NULL;
    }
    char req[256];
    int rl = snprintf(req, sizeof req,
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)rl) != rl) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    uint64_t end = sn_test_now_ms() + 10000;
    while (sn_test_now_ms() < end) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) continue;
        if (len + 1 >= cap) out = realloc(out, cap *= 2);
        ssize_t r = read(fd, out + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

/* Checks the exposition text line by line: HELP/TYPE comments, every sample's family declared
 * with a TYPE before it, counters named *_total, labels as name="value", values numbers. */
static void assert_well_formed(const char *body)
{
    char typed[128][96];
    char types[128][16];
    int ntyped = 0, samples = 0;
    const char *line = body;
    while (*line) {
        const char *eol = strchr(line, '\n');
        if (!eol) fail_msg("exposition text does not end in a newline");
        size_t n = (size_t)(eol - line);
        char l[512];
        assert_true(n < sizeof l);
        memcpy(l, line, n);
        l[n] = '\0';
        if (strncmp(l, "# HELP ", 7) == 0) {
            const char *sp = strchr(l + 7, ' ');
            assert_non_null(sp);
            assert_true(name_ok(l + 7, (size_t)(sp - (l + 7))));
        } else if (strncmp(l, "# TYPE ", 7) == 0) {
            char name[96], type[16];
            assert_int_equal(sscanf(l + 7, "%95s %15s", name, type), 2);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
            if (strcmp(type, "counter") == 0) {
                size_t nl = strlen(name);
                assert_true(nl > 6 && strcmp(name + nl - 6, "_total") == 0);
            }
            assert_true(ntyped < 128);
            snprintf(typed[ntyped], sizeof typed[0], "%s", name);
            snprintf(types[ntyped++], sizeof types[0], "%s", type);
        } else {
            size_t nl = strcspn(l, "{ ");
            if (!name_ok(l, nl)) fail_msg("bad sample line '%s'", l);
            bool declared = false;
            for (int i = 0; i < ntyped && !declared; i++)
                declared = strlen(typed[i]) == nl && strncmp(typed[i], l, nl) == 0;
            if (!declared) fail_msg("sample before its # TYPE: '%s'", l);
            const char *v = l + nl;
            if (*v == '{') {
                const char *close = strchr(v, '}');
                assert_non_null(close);
                /* name="value" pairs */
                char lab[128];
                assert_true((size_t)(close - v - 1) < sizeof lab);
                memcpy(lab, v + 1, (size_t)(close - v - 1));
                lab[close - v - 1] = '\0';
                const char *eq = strchr(lab, '=');
                assert_non_null(eq);
                assert_true(name_ok(lab, (size_t)(eq - lab)));
                assert_true(eq[1] == '"' && lab[strlen(lab) - 1] == '"');
                v = close + 1;
            }
            assert_true(*v == ' ');
            char *end;
            strtod(v + 1, &end);
            if (end == v + 1 || *end) fail_msg("bad value in '%s'", l);
            samples++;
        }
        line = eol + 1;
    }
    assert_true(samples > 20);
}

/* The value of the sample "name" or "name{labels}"; fails when absent. */
static unsigned long long metric(const char *body, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, sample, n) == 0 && l[n] == ' ') return strtoull(l + n + 1, NULL, 10);
    }
    fail_msg("metric %s missing", sample);
    return 0;
}

static char *scrape(int mport)
{
    char *r = http_get(mport, "/metrics");
    assert_non_null(r);
    if (strncmp(r, "HTTP/1.1 200", 12) != 0 && strncmp(r, "HTTP/1.0 200", 12) != 0)
        fail_msg("scrape: %s", r);
    assert_non_null(strstr(r, "text/plain; version=0.0.4"));
    char *body = strstr(r, "\r\n\r\n");
    assert_non_null(body);
    char *copy = strdup(body + 4);
    free(r);
    return copy;
}

/* ---- setup -------------------------------------------------------------------------------- */

/* After each test, also one that failed half-way: no process or backend thread survives it. */
static int cleanup_each(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked[i]) stop_proc(tracked[i]);
    if (tracked_backend) be_stop(tracked_backend);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    tmp = sn_test_tmpdir();
    if (!tmp || !fx_make_cert(tmp, "ec", &key_path, &cert_path)) return -1;
    sn_x509_cert *ca = fx_load_cert(cert_path);
    client_opts = sn_tls_options_client(ca, NULL);
    sn_x509_cert_free(ca);
    signal(SIGPIPE, SIG_IGN);
    rb_raise_nofile(4096);
    return client_opts ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sn_tls_options_free(client_opts);
    sn_test_rmtree(tmp);
    free(tmp);
    free(key_path);
    free(cert_path);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void pp2_encoder_bytes(void **state)
{
    (void)state;
    uint8_t h[PP2_MAX_HEADER];
    assert_int_equal(pp2_encode_dgram("192.0.2.7", 4660, "198.51.100.1", 443, h), 28);
    static const uint8_t want4[28] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                      0x54, 0x0A, 0x21, 0x12, 0x00, 0x0C, 192,  0,    2,    7,
                                      198,  51,   100,  1,    0x12, 0x34, 0x01, 0xBB};
    assert_memory_equal(h, want4, 28);
    /* IPv4 client on a dual-stack wildcard: IPv4 header, destination unspecified. */
    assert_int_equal(pp2_encode_dgram("10.1.2.3", 1, "::", 4433, h), 28);
    assert_int_equal(h[13], 0x12);
    static const uint8_t zero4[4] = {0, 0, 0, 0};
    assert_memory_equal(h + 20, zero4, 4);
    /* IPv4-mapped source is IPv4. */
    assert_int_equal(pp2_encode_dgram("::ffff:10.1.2.3", 1, "::", 4433, h), 28);
    static const uint8_t src4[4] = {10, 1, 2, 3};
    assert_memory_equal(h + 16, src4, 4);
    assert_int_equal(pp2_encode_dgram("2001:db8::1", 65535, "::1", 4433, h), 52);
    assert_int_equal(h[13], 0x22);
    assert_int_equal(h[14] << 8 | h[15], 36);
    assert_int_equal(h[16], 0x20);
    assert_int_equal(h[16 + 16 + 15], 1);
    assert_int_equal(h[48] << 8 | h[49], 65535);
    assert_int_equal(h[50] << 8 | h[51], 4433);
    assert_int_equal(pp2_encode_dgram("not-an-ip", 1, "::1", 2, h), 0);
    assert_int_equal(pp2_encode_dgram("127.0.0.1", 70000, "::1", 2, h), 0);
}

static void echo_for_sealnet_openssl_and_gnutls_clients(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_ECHO);
    int port;
    sn_test_proc *px = start_proxy(b.port, NULL, &port, NULL);
    char ports[16], connect[64];
    snprintf(ports, sizeof ports, "%d", port);
    snprintf(connect, sizeof connect, "127.0.0.1:%d", port);

    /* sealnet dtls-client */
    const char *sc[] = {sealnet_bin, "dtls-client", "127.0.0.1", ports,  "--ca", cert_path,
                        "--name",    "localhost",   "--wait",    "1500", NULL};
    sn_test_proc *c = spawn_tracked(sc);
    assert_non_null(c);
    sn_test_proc_write(c, "one from sealnet\ntwo from sealnet\n", 34);
    sn_test_proc_close_stdin(c);
    int rc = sn_test_proc_wait_exit(c, 60000);
    sn_test_proc_drain(c);
    if (rc != 0 || !strstr(sn_test_proc_output(c), "< one from sealnet") ||
        !strstr(sn_test_proc_output(c), "< two from sealnet")) {
        dump(c, "dtls-client");
        dump(px, "proxy");
        fail_msg("sealnet dtls-client got no echoes (rc %d)", rc);
    }
    stop_proc(c);

    /* openssl s_client -dtls1_2 */
    const char *oc[] = {
        "openssl", "s_client", "-dtls1_2",         "-connect",  connect,
        "-CAfile", cert_path,  "-verify_hostname", "localhost", "-verify_return_error",
        "-quiet",  NULL};
    c = spawn_tracked(oc);
    assert_non_null(c);
    uint64_t end = sn_test_now_ms() + HANDSHAKE_MS;
    bool got = false;
    /* s_client reads stdin only once connected: resend until the echo shows. */
    while (!got && sn_test_now_ms() < end) {
        sn_test_proc_write(c, "hello from openssl\n", 19);
        got = sn_test_proc_wait_for(c, "hello from openssl", 1000);
    }
    if (!got) {
        dump(c, "openssl s_client");
        dump(px, "proxy");
        fail_msg("openssl s_client got no echo");
    }
    stop_proc(c);

    /* gnutls-cli --udp */
    if (sn_test_have("gnutls-cli")) {
        const char *gc[] = {"gnutls-cli", "--udp", "--x509cafile", cert_path,   "--verify-hostname",
                            "localhost",  "-p",    ports,          "127.0.0.1", NULL};
        c = spawn_tracked(gc);
        assert_non_null(c);
        if (!sn_test_proc_wait_for(c, "Handshake was completed", HANDSHAKE_MS)) {
            dump(c, "gnutls-cli");
            fail_msg("gnutls-cli did not connect");
        }
        sn_test_proc_write(c, "hello from gnutls\n", 18);
        if (!sn_test_proc_wait_for(c, "hello from gnutls", DATA_MS)) {
            dump(c, "gnutls-cli");
            dump(px, "proxy");
            fail_msg("gnutls-cli got no echo");
        }
        stop_proc(c);
    } else {
        fail_msg("gnutls-cli missing: scripts/deps.sh test installs gnutls-bin");
    }
    assert_alive(px);
    stop_proc(px);
    /* Three clients, three sessions, each with its own source port at the backend. */
    assert_true(b.nsrc >= 3);
    be_stop(&b);
}

#define MANY     200
#define PER_PEER 3

static void two_hundred_sessions_get_only_their_own_data(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_ECHO);
    int port;
    sn_test_proc *px = start_proxy(
        b.port, (const char *[]){"--max-sessions", "400", "--idle", "600", NULL}, &port, NULL);
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    cfg.keepalive_interval_ms = 0;
    cfg.idle_timeout_ms = 0;
    cfg.handshake_timeout_ms = 60000;
    sn_host *h = sn_host_create(&cfg);
    assert_non_null(h);
    static int ids[MANY], got[MANY];
    memset(got, 0, sizeof got);
    for (int i = 0; i < MANY; i++) {
        ids[i] = i;
        sn_host_peer *p = sn_host_connect(h, "127.0.0.1", port, "localhost", client_opts);
        assert_non_null(p);
        sn_host_peer_set_user_data(p, &ids[i]);
    }
    /* UDP may lose a datagram under load (the backend's socket buffer): a client resends the
     * packets whose echo has not come back every 2 s; what counts is which packets come back,
     * and that no client ever sees another's. */
    static sn_host_peer *handles[MANY];
    int connected = 0, received = 0, wrong = 0;
    uint64_t t0 = sn_test_now_ms(), all_connected_ms = 0, next_resend = t0 + 5000;
    uint64_t end = t0 + 120000;
    sn_host_event ev;
    while ((connected < MANY || received < MANY * PER_PEER) && sn_test_now_ms() < end) {
        if (connected == MANY && sn_test_now_ms() >= next_resend) {
            for (int i = 0; i < MANY; i++)
                for (int k = 0; k < PER_PEER; k++)
                    if (!(got[i] & (1 << k))) {
                        char msg[64];
                        int ml = snprintf(msg, sizeof msg, "client-%03d-packet-%d", i, k);
                        sn_host_peer_send(handles[i], msg, (size_t)ml);
                    }
            next_resend = sn_test_now_ms() + 2000;
        }
        if (sn_host_service(h, &ev, 20) <= 0) continue;
        int id = ev.user_data ? *(int *)ev.user_data : -1;
        if (ev.type == SN_HOST_EVENT_CONNECT) {
            connected++;
            handles[id] = ev.peer;
            if (connected == MANY) all_connected_ms = sn_test_now_ms() - t0;
            for (int k = 0; k < PER_PEER; k++) {
                char msg[64];
                int ml = snprintf(msg, sizeof msg, "client-%03d-packet-%d", id, k);
                assert_int_equal(sn_host_peer_send(ev.peer, msg, (size_t)ml), SN_OK);
            }
        } else if (ev.type == SN_HOST_EVENT_RECEIVE) {
            char want[32];
            snprintf(want, sizeof want, "client-%03d-packet-", id);
            size_t wl = strlen(want);
            if (ev.len != wl + 1 || memcmp(ev.data, want, wl) != 0 || ev.data[wl] < '0' ||
                ev.data[wl] >= '0' + PER_PEER) {
                wrong++;
            } else {
                int bit = 1 << (ev.data[wl] - '0');
                if (!(got[id] & bit)) received++;
                got[id] |= bit;
            }
        } else if (ev.type == SN_HOST_EVENT_DISCONNECT) {
            sn_test_sleep_ms(1000); /* the proxy logs a close after sending close_notify */
            dump(px, "proxy");
            fail_msg("client %d disconnected: %s %s", id,
                     sn_host_disconnect_reason_string(ev.reason), ev.message);
        }
    }
    print_message("%d sessions connected in %llu ms, all echoed in %llu ms\n", connected,
                  (unsigned long long)all_connected_ms,
                  (unsigned long long)(sn_test_now_ms() - t0));
    if (connected < MANY || received < MANY * PER_PEER) {
        kill(sn_test_proc_pid(px), SIGUSR1);
        sn_test_proc_wait_for(px, "# end of metrics", 5000);
        dump(px, "proxy");
        int missing = 0;
        for (int i = 0; i < MANY; i++)
            if (got[i] != (1 << PER_PEER) - 1) {
                print_message("client %d: echoes %#x\n", i, got[i]);
                missing++;
            }
        print_message("backend received %lu datagrams, %d clients short\n",
                      (unsigned long)atomic_load(&b.received), missing);
    }
    assert_int_equal(connected, MANY);
    assert_int_equal(wrong, 0);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(got[i], (1 << PER_PEER) - 1);
    /* One backend source port per session. */
    pthread_mutex_lock(&b.mu);
    int nsrc = b.nsrc;
    pthread_mutex_unlock(&b.mu);
    assert_int_equal(nsrc, MANY);
    sn_host_free(h);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static const char pp2_parser_py[] =
    "import struct, sys\n"
    "SIG = b'\\r\\n\\r\\n\\x00\\r\\nQUIT\\n'\n"
    "for line in open(sys.argv[1]):\n"
    "    d = bytes.fromhex(line.strip())\n"
    "    if not d.startswith(SIG):\n"
    "        print('RAW', d.decode()); continue\n"
    "    ver_cmd, fam, ln = struct.unpack('!BBH', d[12:16])\n"
    "    body = d[16:16 + ln]\n"
    "    if fam == 0x12:\n"
    "        s, t, sp, tp = struct.unpack('!4s4sHH', body[:12]); import socket\n"
    "        s, t = socket.inet_ntop(socket.AF_INET, s), socket.inet_ntop(socket.AF_INET, t)\n"
    "    elif fam == 0x22:\n"
    "        s, t, sp, tp = struct.unpack('!16s16sHH', body[:36]); import socket\n"
    "        s, t = socket.inet_ntop(socket.AF_INET6, s), socket.inet_ntop(socket.AF_INET6, t)\n"
    "    else:\n"
    "        print('BADFAM', hex(fam)); continue\n"
    "    print('PP ver_cmd=%#x fam=%#x src=%s:%d dst=%s:%d payload=%s' % (ver_cmd, fam, s, sp, t,"
    " tp, d[16 + ln:].decode()))\n";

/* Writes what the backend recorded as hex lines and runs the Python parser over it. */
static char *parse_recorded(backend *b)
{
    char *script = sn_test_path(tmp, "pp2.py");
    char *data = sn_test_path(tmp, "pp2.hex");
    assert_true(sn_test_write_file(script, pp2_parser_py, strlen(pp2_parser_py)));
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < b->nrec; i++) {
        for (size_t k = 0; k < b->rec_len[i]; k++)
            fprintf(f, "%02x", b->rec[i][k]);
        fputc('\n', f);
    }
    pthread_mutex_unlock(&b->mu);
    fclose(f);
    char *out = sn_test_sh_output("python3 '%s' '%s'", script, data);
    assert_non_null(out);
    free(script);
    free(data);
    return out;
}

static void proxy_protocol_v2(const char *ip, bool every)
{
    static backend b;
    be_start(&b, BE_ECHO);
    int port;
    char listen[64];
    snprintf(listen, sizeof listen, strchr(ip, ':') ? "[%s]:0" : "%s:0", ip);
    char to[64];
    snprintf(to, sizeof to, "127.0.0.1:%d", b.port);
    const char *args[] = {"proxy",   "--listen",
                          listen,    "--to",
                          to,        "--key",
                          key_path,  "--cert",
                          cert_path, "--proxy-protocol",
                          "v2",      every ? "--proxy-protocol-every" : NULL,
                          NULL};
    sn_test_proc *px = start_sealnet(args, &port, NULL);
    int local;
    sn_dtls_peer *c = dtls_connect(ip, port, &local);
    echo_once(c, "first");
    echo_once(c, "second");
    char *out = parse_recorded(&b);
    char want1[200], want2[200];
    const char *fam = strchr(ip, ':') ? "0x22" : "0x12";
    snprintf(want1, sizeof want1, "PP ver_cmd=0x21 fam=%s src=%s:%d dst=%s:%d payload=first\n", fam,
             ip, local, ip, port);
    if (every)
        snprintf(want2, sizeof want2, "PP ver_cmd=0x21 fam=%s src=%s:%d dst=%s:%d payload=second\n",
                 fam, ip, local, ip, port);
    else
        snprintf(want2, sizeof want2, "RAW second\n");
    char want[400];
    snprintf(want, sizeof want, "%s%s", want1, want2);
    if (strcmp(out, want) != 0) {
        dump(px, "proxy");
        fail_msg("parsed:\n%s\nwanted:\n%s", out, want);
    }
    free(out);
    sn_dtls_peer_free(c);
    stop_proc(px);
    be_stop(&b);
}

static void proxy_protocol_v2_first_datagram_ipv4(void **state)
{
    (void)state;
    proxy_protocol_v2("127.0.0.1", false);
}

static void proxy_protocol_v2_every_datagram_ipv6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
    if (probe >= 0) close(probe);
    if (!have_v6) {
        print_message("no IPv6 loopback here: the IPv6 header form is checked by the encoder "
                      "test only\n");
        proxy_protocol_v2("127.0.0.1", true);
        return;
    }
    proxy_protocol_v2("::1", true);
}

static void reverse_mode_to_openssl_s_server(void **state)
{
    (void)state;
    const char *sv[] = {"openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:0",
                        "-cert",   cert_path,  "-key",     key_path,  NULL};
    sn_test_proc *srv = spawn_tracked(sv);
    assert_non_null(srv);
    const char *a = NULL;
    uint64_t end = sn_test_now_ms() + HANDSHAKE_MS;
    while (sn_test_now_ms() < end) {
        sn_test_proc_wait_for(srv, "ACCEPT", 100);
        a = strstr(sn_test_proc_output(srv), "ACCEPT 127.0.0.1:");
        if (a && strchr(a, '\n')) break;
        a = NULL;
    }
    if (!a) dump(srv, "openssl s_server");
    assert_non_null(a);
    int sport = atoi(a + strlen("ACCEPT 127.0.0.1:"));
    char conn[64];
    snprintf(conn, sizeof conn, "127.0.0.1:%d", sport);
    int port, mport;
    sn_test_proc *px = start_sealnet(
        (const char *[]){"proxy", "--listen-plain", "127.0.0.1:0", "--connect", conn, "--ca",
                         cert_path, "--name", "localhost", "--metrics", "127.0.0.1:0", NULL},
        &port, &mport);
    int fd = rb_socket("127.0.0.1", 0);
    /* An oversize datagram first (it waits for the handshake, then is refused), then data. */
    static uint8_t big[5000];
    memset(big, 'x', sizeof big);
    assert_true(rb_send(fd, port, big, sizeof big));
    static const char hello[] = "hello through the reverse proxy\n";
    assert_true(rb_send(fd, port, hello, sizeof hello - 1));
    if (!sn_test_proc_wait_for(srv, "hello through the reverse proxy", HANDSHAKE_MS)) {
        dump(srv, "openssl s_server");
        dump(px, "proxy");
        fail_msg("s_server did not get the plain client's datagram");
    }
    /* Lines starting with Q/q are s_server commands: avoid them. */
    static const char reply[] = "reply from s_server\n";
    assert_true(sn_test_proc_write(srv, reply, sizeof reply - 1));
    uint8_t buf[2048];
    ssize_t n = -1;
    end = sn_test_now_ms() + DATA_MS;
    while (n < 0 && sn_test_now_ms() < end)
        if (rb_wait(fd, 100)) n = rb_recv(fd, buf, sizeof buf, NULL);
    if (n < 0) dump(px, "proxy");
    assert_int_equal(n, (ssize_t)(sizeof reply - 1));
    assert_memory_equal(buf, reply, sizeof reply - 1);
    char *m = scrape(mport);
    assert_well_formed(m);
    assert_int_equal(metric(m, "sealnet_proxy_sessions_opened_total"), 1);
    assert_int_equal(metric(m, "sealnet_proxy_upstream_datagrams_total"), 1);
    assert_int_equal(metric(m, "sealnet_proxy_downstream_datagrams_total"), 1);
    assert_int_equal(metric(m, "sealnet_proxy_dropped_total{reason=\"oversize\"}"), 1);
    assert_int_equal(metric(m, "sealnet_host_handshakes_completed_total"), 1);
    free(m);
    close(fd);
    assert_alive(px);
    stop_proc(px);
    stop_proc(srv);
}

static void idle_timeout_ends_the_session_with_close_notify(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_ECHO);
    int port;
    sn_test_proc *px = start_proxy(b.port, (const char *[]){"--idle", "1", NULL}, &port, NULL);
    sn_dtls_peer *c = dtls_connect("127.0.0.1", port, NULL);
    echo_once(c, "before the silence");
    uint64_t t0 = sn_test_now_ms();
    if (!wait_closed(c, 15000)) {
        dump(px, "proxy");
        fail_msg("the idle session was not closed");
    }
    /* Not before --idle: at least ~1 s of silence (the clock's granularity aside). */
    assert_true(sn_test_now_ms() - t0 >= 900);
    assert_true(sn_test_proc_wait_for(px, "idle (--idle)", 5000));
    sn_dtls_peer_free(c);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static void backend_down_closes_the_client_session(void **state)
{
    (void)state;
    int gone = rb_socket("127.0.0.1", 0);
    int dead_port = rb_port(gone);
    close(gone); /* nothing listens there now: ICMP port unreachable */
    int port, mport;
    sn_test_proc *px = start_proxy(dead_port, NULL, &port, &mport);
    sn_dtls_peer *c = dtls_connect("127.0.0.1", port, NULL);
    assert_int_equal(sn_dtls_peer_put_packet(c, "anyone there?", 13), SN_OK);
    if (!wait_closed(c, 15000)) {
        dump(px, "proxy");
        fail_msg("the client was not told that the backend is down");
    }
    assert_true(sn_test_proc_wait_for(px, "backend unreachable", 5000));
    char *m = scrape(mport);
    assert_int_equal(metric(m, "sealnet_proxy_sessions_closed_total{reason=\"unreachable\"}"), 1);
    assert_int_equal(metric(m, "sealnet_proxy_sessions"), 0);
    free(m);
    sn_dtls_peer_free(c);
    /* A second client is still served the same way: the proxy itself is fine. */
    c = dtls_connect("127.0.0.1", port, NULL);
    sn_dtls_peer_free(c);
    assert_alive(px);
    stop_proc(px);
}

#define M_CLIENTS 3
#define M_EACH    10

static void metrics_match_the_traffic(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_ECHO);
    int port, mport;
    sn_test_proc *px = start_proxy(b.port, NULL, &port, &mport);
    sn_dtls_peer *c[M_CLIENTS];
    size_t bytes = 0;
    for (int i = 0; i < M_CLIENTS; i++) {
        c[i] = dtls_connect("127.0.0.1", port, NULL);
        for (int k = 0; k < M_EACH; k++) {
            char msg[32];
            snprintf(msg, sizeof msg, "metrics %d.%d", i, k);
            echo_once(c[i], msg);
            bytes += strlen(msg);
        }
    }
    sn_dtls_peer_free(c[0]); /* close_notify: one session closed by the client */
    uint64_t end = sn_test_now_ms() + DATA_MS;
    char *m = NULL;
    for (;;) {
        m = scrape(mport);
        if (metric(m, "sealnet_proxy_sessions") == M_CLIENTS - 1 || sn_test_now_ms() > end) break;
        free(m);
        sn_test_sleep_ms(50);
    }
    assert_well_formed(m);
    const unsigned long long n = M_CLIENTS * M_EACH;
    assert_int_equal(metric(m, "sealnet_proxy_upstream_datagrams_total"), n);
    assert_int_equal(metric(m, "sealnet_proxy_downstream_datagrams_total"), n);
    assert_int_equal(metric(m, "sealnet_proxy_upstream_bytes_total"), bytes);
    assert_int_equal(metric(m, "sealnet_proxy_downstream_bytes_total"), bytes);
    assert_int_equal(metric(m, "sealnet_host_packets_received_total"), n);
    assert_int_equal(metric(m, "sealnet_host_packets_sent_total"), n);
    assert_int_equal(metric(m, "sealnet_host_bytes_received_total"), bytes);
    assert_int_equal(metric(m, "sealnet_host_handshakes_completed_total"), M_CLIENTS);
    assert_int_equal(metric(m, "sealnet_proxy_sessions_opened_total"), M_CLIENTS);
    assert_int_equal(metric(m, "sealnet_proxy_sessions"), M_CLIENTS - 1);
    assert_int_equal(metric(m, "sealnet_host_peers_connected"), M_CLIENTS - 1);
    assert_int_equal(metric(m, "sealnet_proxy_sessions_closed_total{reason=\"close_notify\"}"), 1);
    assert_int_equal(metric(m, "sealnet_proxy_dropped_total{reason=\"oversize\"}"), 0);
    assert_int_equal(metric(m, "sealnet_proxy_dropped_total{reason=\"queue_full\"}"), 0);
    free(m);

    char *r = http_get(mport, "/");
    assert_non_null(r);
    assert_non_null(strstr(r, " 404 "));
    free(r);

    /* SIGUSR1 prints the same text on stdout. */
    kill(sn_test_proc_pid(px), SIGUSR1);
    assert_true(sn_test_proc_wait_for(px, "# end of metrics", 10000));
    char line[128];
    snprintf(line, sizeof line, "sealnet_proxy_upstream_datagrams_total %llu\n", n);
    assert_non_null(strstr(sn_test_proc_output(px), line));

    for (int i = 1; i < M_CLIENTS; i++)
        sn_dtls_peer_free(c[i]);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static void dtls_server_serves_metrics_too(void **state)
{
    (void)state;
    int port, mport;
    sn_test_proc *srv = start_sealnet(
        (const char *[]){"dtls-server", "--port", "0", "--bind", "127.0.0.1", "--echo", "--key",
                         key_path, "--cert", cert_path, "--metrics", "127.0.0.1:0", NULL},
        &port, &mport);
    sn_dtls_peer *c = dtls_connect("127.0.0.1", port, NULL);
    echo_once(c, "one");
    echo_once(c, "two");
    char *m = scrape(mport);
    assert_well_formed(m);
    assert_int_equal(metric(m, "sealnet_host_packets_received_total"), 2);
    assert_int_equal(metric(m, "sealnet_host_packets_sent_total"), 2);
    assert_int_equal(metric(m, "sealnet_host_peers_connected"), 1);
    free(m);
    sn_dtls_peer_free(c);
    stop_proc(srv);
}

static void hostile_garbage_before_and_after_the_handshake(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_ECHO);
    int port, mport;
    sn_test_proc *px = start_proxy(b.port, NULL, &port, &mport);
    fx_rng rng;
    fx_rng_seed(&rng, 15);
    int fd = rb_socket("127.0.0.1", 0);
    uint8_t g[1500];
    for (int i = 0; i < 300; i++) {
        size_t len = fx_rng_below(&rng, sizeof g);
        fx_rng_fill(&rng, g, len);
        if (i % 3 == 0 && len > 0) g[0] = 22; /* looks like a handshake record */
        rb_send(fd, port, g, len);
    }
    sn_dtls_peer *c = dtls_connect("127.0.0.1", port, NULL);
    echo_once(c, "after garbage before");
    /* Garbage from the client's own address and port, inside its session, all of it waiting
     * when the proxy next runs (stopped meanwhile, as a loaded machine may deschedule it): more
     * than the peer's queue holds, so the proxy drops and counts the rest. */
    int cfd = sn_dtls_peer_get_fd(c);
    kill(sn_test_proc_pid(px), SIGSTOP);
    for (int i = 0; i < 300; i++) {
        size_t len = 1 + fx_rng_below(&rng, sizeof g - 1);
        fx_rng_fill(&rng, g, len);
        if (i % 2 == 0) g[0] = 23; /* application data record type */
        (void)!send(cfd, g, len, 0);
    }
    kill(sn_test_proc_pid(px), SIGCONT);
    echo_sends(c, "after garbage after", 10, 1000);
    /* What did not fit the queue was counted, not lost silently. */
    char *m = scrape(mport);
    assert_true(metric(m, "sealnet_host_dropped_queue_full_total") > 0);
    free(m);
    sn_dtls_peer_free(c);
    close(fd);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static void hostile_hello_flood(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_ECHO);
    int port, mport;
    sn_test_proc *px =
        start_proxy(b.port, (const char *[]){"--max-half-open", "32", NULL}, &port, &mport);
    uint8_t hello[2048];
    size_t hl = rb_capture_client_hello(hello, sizeof hello);
    assert_true(hl > 60);
    int fds[50];
    for (int i = 0; i < 50; i++) {
        fds[i] = rb_socket("127.0.0.1", 0);
        assert_true(fds[i] >= 0);
    }
    for (int round = 0; round < 40; round++)
        for (int i = 0; i < 50; i++)
            rb_send(fds[i], port, hello, hl);
    /* A real client still gets in and through. */
    sn_dtls_peer *c = dtls_connect("127.0.0.1", port, NULL);
    echo_once(c, "through the flood");
    char *m = scrape(mport);
    assert_true(metric(m, "sealnet_host_cookies_sent_total") >= 50);
    assert_true(metric(m, "sealnet_proxy_sessions_opened_total") == 1);
    free(m);
    sn_dtls_peer_free(c);
    for (int i = 0; i < 50; i++)
        close(fds[i]);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static void hostile_oversize_datagrams(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_OVERSIZE);
    int port, mport;
    sn_test_proc *px = start_proxy(b.port, NULL, &port, &mport);
    /* A client's datagram larger than any record: dropped by the host. */
    int fd = rb_socket("127.0.0.1", 0);
    static uint8_t huge[60000];
    memset(huge, 22, sizeof huge);
    rb_send(fd, port, huge, sizeof huge);
    close(fd);
    sn_dtls_peer *c = dtls_connect("127.0.0.1", port, NULL);
    /* The backend answers each datagram with 4000 bytes (refused: more than the session's
     * maximum payload) and then the echo: the client sees only the echo. */
    echo_once(c, "small");
    int maxp = sn_dtls_peer_get_max_packet_size(c);
    assert_true(maxp > 1000 && maxp < 4000);
    char *full = malloc((size_t)maxp + 1);
    memset(full, 'm', (size_t)maxp);
    full[maxp] = '\0';
    echo_once(c, full); /* exactly the maximum passes both ways */
    free(full);
    char *m = scrape(mport);
    assert_int_equal(metric(m, "sealnet_proxy_dropped_total{reason=\"oversize\"}"), 2);
    assert_int_equal(metric(m, "sealnet_proxy_downstream_datagrams_total"), 2);
    free(m);
    sn_dtls_peer_free(c);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static void hostile_backend_garbage(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_GARBAGE);
    int port;
    sn_test_proc *px = start_proxy(b.port, NULL, &port, NULL);
    sn_dtls_peer *c = dtls_connect("127.0.0.1", port, NULL);
    assert_int_equal(sn_dtls_peer_put_packet(c, "x", 1), SN_OK);
    /* Whatever the backend says is opaque payload: it arrives, encrypted, as it was sent. */
    int n = 0;
    uint8_t buf[2048];
    size_t len;
    while (n < GARBAGE_EACH && dtls_recv(c, buf, sizeof buf, &len, DATA_MS))
        n++;
    assert_int_equal(n, GARBAGE_EACH);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    sn_dtls_peer_free(c);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static void hostile_backend_flood(void **state)
{
    (void)state;
    static backend b;
    be_start(&b, BE_FLOOD);
    int port, mport;
    sn_test_proc *px = start_proxy(b.port, (const char *[]){"--queue", "32", NULL}, &port, &mport);
    sn_dtls_peer *flooded = dtls_connect("127.0.0.1", port, NULL);
    sn_dtls_peer *other = dtls_connect("127.0.0.1", port, NULL);
    assert_int_equal(sn_dtls_peer_put_packet(flooded, "flood me", 8), SN_OK);
    /* While the backend floods one session, another is still answered. */
    uint64_t t0 = sn_test_now_ms();
    while (atomic_load(&b.received) < 1 && sn_test_now_ms() - t0 < DATA_MS)
        sn_test_sleep_ms(5);
    echo_once(other, "am I still served?");
    /* The flooded client reads what reached it; never more than was sent. */
    uint8_t buf[2048];
    size_t len;
    unsigned long long n = 0;
    while (dtls_recv(flooded, buf, sizeof buf, &len, 2000))
        n++;
    assert_true(n > 0 && n <= FLOOD_COUNT);
    char *m = scrape(mport);
    unsigned long long down = metric(m, "sealnet_proxy_downstream_datagrams_total");
    unsigned long long drops = metric(m, "sealnet_proxy_dropped_total{reason=\"queue_full\"}") +
                               metric(m, "sealnet_proxy_dropped_total{reason=\"send_busy\"}");
    print_message("backend flood of %d: %llu forwarded, %llu dropped and counted by the proxy, "
                  "%llu received by the client\n",
                  FLOOD_COUNT, down, drops, n);
    assert_true(down + drops <= FLOOD_COUNT + 1);
    assert_true(down >= n);
    free(m);
    sn_dtls_peer_free(flooded);
    sn_dtls_peer_free(other);
    assert_alive(px);
    stop_proc(px);
    be_stop(&b);
}

static void bad_arguments(void **state)
{
    (void)state;
    static const struct {
        const char *args[10];
        const char *says;
    } cases[] = {
        {{"proxy", NULL}, "--listen"},
        {{"proxy", "--listen", "0", NULL}, "--to"},
        {{"proxy", "--listen", "0", "--to", "nohostport", NULL}, "HOST:PORT"},
        {{"proxy", "--listen", "0", "--to", "127.0.0.1:1", "--proxy-protocol", "v1", NULL}, "v2"},
        {{"proxy", "--listen", "0", "--to", "127.0.0.1:1", "--proxy-protocol-every", NULL},
         "needs --proxy-protocol"},
        {{"proxy", "--listen-plain", "0", NULL}, "--connect"},
        {{"proxy", "--listen-plain", "0", "--connect", "127.0.0.1:1", "--ca", "x", "--insecure",
          NULL},
         "exclude"},
        {{"proxy", "--listen-plain", "0", "--connect", "127.0.0.1:1", "--pin", "AB", NULL}, "--ca"},
        {{"proxy", "--listen", "0", "--listen-plain", "0", NULL}, "either"},
        {{"dtls-server", "--metrics", "nope:port", NULL}, "--metrics"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[16];
        int n = 0;
        argv[n++] = sealnet_bin;
        for (int k = 0; cases[i].args[k]; k++)
            argv[n++] = cases[i].args[k];
        argv[n] = NULL;
        sn_test_proc *p = spawn_tracked(argv);
        assert_non_null(p);
        sn_test_proc_close_stdin(p);
        int rc = sn_test_proc_wait_exit(p, 20000);
        sn_test_proc_drain(p);
        if (rc == 0 || rc == -1 || !strstr(sn_test_proc_output(p), cases[i].says))
            fail_msg("case %zu: rc %d, output:\n%s", i, rc, sn_test_proc_output(p));
        stop_proc(p);
    }
    /* --help: exit 0, the usage and every option the docs name. */
    const char *help[] = {sealnet_bin, "proxy", "--help", NULL};
    sn_test_proc *p = spawn_tracked(help);
    assert_non_null(p);
    assert_int_equal(sn_test_proc_wait_exit(p, 20000), 0);
    sn_test_proc_drain(p);
    static const char *const opts[] = {
        "usage: sealnet proxy", "--listen-plain", "--connect", "--proxy-protocol-every",
        "--max-half-open",      "--queue",        "--metrics", "--idle",
        "--max-sessions"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strstr(sn_test_proc_output(p), opts[i]))
            fail_msg("proxy --help does not mention %s", opts[i]);
    stop_proc(p);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s", argv[1]);
    else
        snprintf(sealnet_bin, sizeof sealnet_bin, "%s/tools/sealnet", sn_test_build_dir());
    /* SN_TEST_FILTER=name runs the matching tests only (while debugging). */
    if (getenv("SN_TEST_FILTER")) cmocka_set_test_filter(getenv("SN_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(pp2_encoder_bytes, cleanup_each),
        cmocka_unit_test_teardown(bad_arguments, cleanup_each),
        cmocka_unit_test_teardown(echo_for_sealnet_openssl_and_gnutls_clients, cleanup_each),
        cmocka_unit_test_teardown(two_hundred_sessions_get_only_their_own_data, cleanup_each),
        cmocka_unit_test_teardown(proxy_protocol_v2_first_datagram_ipv4, cleanup_each),
        cmocka_unit_test_teardown(proxy_protocol_v2_every_datagram_ipv6, cleanup_each),
        cmocka_unit_test_teardown(reverse_mode_to_openssl_s_server, cleanup_each),
        cmocka_unit_test_teardown(idle_timeout_ends_the_session_with_close_notify, cleanup_each),
        cmocka_unit_test_teardown(backend_down_closes_the_client_session, cleanup_each),
        cmocka_unit_test_teardown(metrics_match_the_traffic, cleanup_each),
        cmocka_unit_test_teardown(dtls_server_serves_metrics_too, cleanup_each),
        cmocka_unit_test_teardown(hostile_garbage_before_and_after_the_handshake, cleanup_each),
        cmocka_unit_test_teardown(hostile_hello_flood, cleanup_each),
        cmocka_unit_test_teardown(hostile_oversize_datagrams, cleanup_each),
        cmocka_unit_test_teardown(hostile_backend_garbage, cleanup_each),
        cmocka_unit_test_teardown(hostile_backend_flood, cleanup_each),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
