/* sn_tls_stream next to bare OpenSSL, over TCP loopback, client and server in two threads.
 *
 *   build/bench/tls_stream [--seconds S] [--rounds R] [--chunk BYTES]
 *
 * Two measurements, each run R times (default 3) for S seconds (default 2) per implementation,
 * alternating, and reported as the median:
 *  - bulk throughput, one direction: the client writes CHUNK-byte pieces (default 64 KiB) with
 *    sn_tls_stream_put_data, the server reads with sn_tls_stream_get_partial_data and waits with
 *    poll(2) when nothing is there (the Godot-style loop); bare OpenSSL: blocking sockets,
 *    SSL_write / SSL_read of the same sizes.
 *  - full handshakes per second, sequential: TCP connect, TLS handshake with the certificate
 *    verified against the same trust anchor and name, close_notify, close; bare OpenSSL does the
 *    same with SSL_connect / SSL_accept / SSL_shutdown.
 * Fair by construction: same key and certificate (ECDSA P-256), TLS 1.3 on both sides, the same
 * suite (the negotiated one is printed for both), no session tickets or resumption on either.
 * Prints a markdown table. */
#include <sealnet/sealnet.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double seconds = 2.0;
static int rounds = 3;
static size_t chunk = 65536;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds used by the whole process (both threads of a measurement) so far. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "tls_stream bench: %s: %s\n", what, why);
    exit(1);
}

/* --- shared material ------------------------------------------------------------------------- */

static sn_tls_options *sn_server_opts, *sn_client_opts;
static SSL_CTX *bare_server_ctx, *bare_client_ctx;
static char sn_cipher[96], bare_cipher[96];

static void make_material(void)
{
    sn_crypto_key *key = sn_crypto_generate_ec(NULL);
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    if (!cert) die("certificate", sn_last_error_message());
    sn_server_opts = sn_tls_options_server(key, cert);
    sn_client_opts = sn_tls_options_client(cert, NULL);
    if (!sn_server_opts || !sn_client_opts) die("options", sn_last_error_message());

    /* The very same key and certificate for the bare contexts, through PEM. */
    char *key_pem = sn_crypto_key_save_to_string(key, false);
    char *cert_pem = sn_x509_cert_save_to_string(cert);
    BIO *kb = BIO_new_mem_buf(key_pem, -1), *cb = BIO_new_mem_buf(cert_pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    X509 *x509 = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    if (!pkey || !x509) die("PEM", "cannot read back the generated key or certificate");
    bare_server_ctx = SSL_CTX_new(TLS_server_method());
    bare_client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX *both[] = {bare_server_ctx, bare_client_ctx};
    for (int i = 0; i < 2; i++) {
        SSL_CTX_set_min_proto_version(both[i], TLS1_3_VERSION);
        SSL_CTX_set_session_cache_mode(both[i], SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(both[i], 0);
        SSL_CTX_set_options(both[i], SSL_OP_NO_TICKET);
    }
    SSL_CTX_use_certificate(bare_server_ctx, x509);
    SSL_CTX_use_PrivateKey(bare_server_ctx, pkey);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(bare_client_ctx), x509);
    SSL_CTX_set_verify(bare_client_ctx, SSL_VERIFY_PEER, NULL);
    EVP_PKEY_free(pkey);
    X509_free(x509);
    BIO_free(kb);
    BIO_free(cb);
    sn_free(key_pem);
    sn_free(cert_pem);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
}

/* --- plain sockets for the bare side --------------------------------------------------------- */

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0)
        die("listen", "bind/listen failed");
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect", "failed");
    return fd;
}

/* Accepts with a timeout so that a server thread can notice the end. -1 when none. */
static int accept_wait(int lfd, int timeout_ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) return -1;
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* --- sealnet helpers ------------------------------------------------------------------------- */

/* Waits on the stream's socket for what it needs next, then polls it. */
static void sn_wait_poll(sn_tls_stream *s, int timeout_ms)
{
    sn_tcp_peer *tcp = sn_tls_stream_get_stream(s);
    short ev = sn_tcp_peer_get_status(tcp) == SN_TCP_STATUS_CONNECTING ? POLLOUT : POLLIN;
    struct pollfd p = {.fd = sn_tcp_peer_get_fd(tcp), .events = ev};
    if (p.fd >= 0) poll(&p, 1, timeout_ms);
    sn_tls_stream_poll(s);
}

static sn_tls_stream *sn_accept_one(sn_tcp_server *srv, int timeout_ms)
{
    struct pollfd p = {.fd = sn_tcp_server_get_fd(srv), .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) return NULL;
    sn_tcp_peer *tcp = sn_tcp_server_take_connection(srv);
    if (!tcp) return NULL;
    sn_tls_stream *s = sn_tls_stream_new();
    if (sn_tls_stream_accept_stream(s, tcp, sn_server_opts) != SN_OK)
        die("accept_stream", sn_last_error_message());
    while (sn_tls_stream_get_status(s) == SN_TLS_STATUS_HANDSHAKING)
        sn_wait_poll(s, 100);
    return s;
}

static sn_tls_stream *sn_connect_one(int port)
{
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    sn_tls_stream *s = sn_tls_stream_new();
    if (sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", port) != SN_OK ||
        sn_tls_stream_connect_to_stream(s, tcp, "localhost", sn_client_opts) != SN_OK)
        die("connect", sn_last_error_message());
    while (sn_tls_stream_get_status(s) == SN_TLS_STATUS_HANDSHAKING)
        sn_wait_poll(s, 100);
    if (sn_tls_stream_get_status(s) != SN_TLS_STATUS_CONNECTED)
        die(sn_tls_stream_get_status(s) == SN_TLS_STATUS_DISCONNECTED ? "handshake (closed)"
                                                                      : "handshake",
            sn_tls_stream_get_error_message(s));
    return s;
}

/* --- bulk ------------------------------------------------------------------------------------ */

typedef struct bulk {
    int port;
    void *listener; /* sn_tcp_server * or int * */
    atomic_bool stop;
    double mbytes_per_s;
    double cpu_per_gb; /* CPU seconds (both threads) per GB moved */
} bulk;

static void *sn_bulk_sender(void *arg)
{
    bulk *b = arg;
    sn_tls_stream *s = sn_connect_one(b->port);
    snprintf(sn_cipher, sizeof sn_cipher, "%s", sn_tls_stream_get_protocol_description(s));
    uint8_t *buf = calloc(1, chunk);
    while (!atomic_load(&b->stop))
        if (sn_tls_stream_put_data(s, buf, chunk) != SN_OK) break;
    sn_tls_stream_free(s);
    free(buf);
    return NULL;
}

static void sn_bulk(bulk *b)
{
    sn_tcp_server *srv = sn_tcp_server_new();
    if (sn_tcp_server_listen(srv, 0, "127.0.0.1") != SN_OK) die("listen", sn_last_error_message());
    b->port = sn_tcp_server_get_local_port(srv);
    atomic_store(&b->stop, false);
    pthread_t t;
    pthread_create(&t, NULL, sn_bulk_sender, b);
    sn_tls_stream *s = sn_accept_one(srv, 5000);
    if (!s || sn_tls_stream_get_status(s) != SN_TLS_STATUS_CONNECTED)
        die("bulk accept", s ? sn_tls_stream_get_error_message(s) : "no connection");
    uint8_t *buf = malloc(chunk);
    size_t total = 0;
    double t0 = now_s(), t1 = t0, c0 = cpu_s();
    while ((t1 = now_s()) - t0 < seconds) {
        size_t n = 0;
        if (sn_tls_stream_get_partial_data(s, buf, chunk, &n) != SN_OK) die("bulk read", "failed");
        total += n;
        if (!n) sn_wait_poll(s, 100);
    }
    b->cpu_per_gb = (cpu_s() - c0) / ((double)total / 1e9);
    atomic_store(&b->stop, true);
    /* Drain until the sender's close so that it never blocks forever. */
    for (;;) {
        size_t n = 0;
        if (sn_tls_stream_get_partial_data(s, buf, chunk, &n) != SN_OK) break;
        if (!n) sn_wait_poll(s, 100);
    }
    pthread_join(t, NULL);
    b->mbytes_per_s = (double)total / (t1 - t0) / 1e6;
    free(buf);
    sn_tls_stream_free(s);
    sn_tcp_server_free(srv);
}

static void *bare_bulk_sender(void *arg)
{
    bulk *b = arg;
    int fd = connect_to(b->port);
    SSL *ssl = SSL_new(bare_client_ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1) die("bare connect", "handshake failed");
    snprintf(bare_cipher, sizeof bare_cipher, "%s %s", SSL_get_version(ssl),
             SSL_get_cipher_name(ssl));
    uint8_t *buf = calloc(1, chunk);
    while (!atomic_load(&b->stop))
        if (SSL_write(ssl, buf, (int)chunk) <= 0) break;
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    free(buf);
    return NULL;
}

static void bare_bulk(bulk *b)
{
    int lfd = listen_any(&b->port);
    atomic_store(&b->stop, false);
    pthread_t t;
    pthread_create(&t, NULL, bare_bulk_sender, b);
    int fd = accept_wait(lfd, 5000);
    SSL *ssl = SSL_new(bare_server_ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) die("bare accept", "handshake failed");
    uint8_t *buf = malloc(chunk);
    size_t total = 0;
    double t0 = now_s(), t1 = t0, c0 = cpu_s();
    while ((t1 = now_s()) - t0 < seconds) {
        int n = SSL_read(ssl, buf, (int)chunk);
        if (n <= 0) die("bare read", "failed");
        total += (size_t)n;
    }
    b->cpu_per_gb = (cpu_s() - c0) / ((double)total / 1e9);
    atomic_store(&b->stop, true);
    while (SSL_read(ssl, buf, (int)chunk) > 0) {
    }
    pthread_join(t, NULL);
    b->mbytes_per_s = (double)total / (t1 - t0) / 1e6;
    free(buf);
    SSL_free(ssl);
    close(fd);
    close(lfd);
}

/* --- handshakes ------------------------------------------------------------------------------ */

typedef struct hs {
    int port;
    atomic_bool stop;
    long server_done;
    double per_s;
    double cpu_ms; /* CPU milliseconds (both threads) per handshake */
} hs;

static void *sn_hs_server(void *arg)
{
    hs *h = arg;
    sn_tcp_server *srv = sn_tcp_server_new();
    if (sn_tcp_server_listen(srv, 0, "127.0.0.1") != SN_OK) die("listen", sn_last_error_message());
    h->port = sn_tcp_server_get_local_port(srv);
    atomic_store(&h->stop, false); /* port published */
    while (!atomic_load(&h->stop) || sn_tcp_server_is_connection_available(srv)) {
        sn_tls_stream *s = sn_accept_one(srv, 50);
        if (!s) continue;
        if (sn_tls_stream_get_status(s) == SN_TLS_STATUS_CONNECTED) h->server_done++;
        sn_tls_stream_free(s); /* close_notify */
    }
    sn_tcp_server_free(srv);
    return NULL;
}

static void sn_handshakes(hs *h)
{
    h->port = 0;
    h->server_done = 0;
    atomic_store(&h->stop, true);
    pthread_t t;
    pthread_create(&t, NULL, sn_hs_server, h);
    while (atomic_load(&h->stop))
        usleep(1000);
    long n = 0;
    double t0 = now_s(), t1 = t0, c0 = cpu_s();
    while ((t1 = now_s()) - t0 < seconds) {
        sn_tls_stream *s = sn_connect_one(h->port);
        sn_tls_stream_free(s); /* close_notify */
        n++;
    }
    h->cpu_ms = (cpu_s() - c0) * 1000.0 / (double)n;
    atomic_store(&h->stop, true);
    pthread_join(t, NULL);
    h->per_s = (double)n / (t1 - t0);
}

static void *bare_hs_server(void *arg)
{
    hs *h = arg;
    int port;
    int lfd = listen_any(&port);
    h->port = port;
    atomic_store(&h->stop, false);
    for (;;) {
        int fd = accept_wait(lfd, 50);
        if (fd < 0) {
            if (atomic_load(&h->stop)) break;
            continue;
        }
        SSL *ssl = SSL_new(bare_server_ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            h->server_done++;
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
    }
    close(lfd);
    return NULL;
}

static void bare_handshakes(hs *h)
{
    h->port = 0;
    h->server_done = 0;
    atomic_store(&h->stop, true);
    pthread_t t;
    pthread_create(&t, NULL, bare_hs_server, h);
    while (atomic_load(&h->stop))
        usleep(1000);
    long n = 0;
    double t0 = now_s(), t1 = t0, c0 = cpu_s();
    while ((t1 = now_s()) - t0 < seconds) {
        int fd = connect_to(h->port);
        SSL *ssl = SSL_new(bare_client_ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, "localhost");
        SSL_set1_host(ssl, "localhost");
        if (SSL_connect(ssl) != 1) die("bare handshake", "failed");
        SSL_shutdown(ssl);
        SSL_free(ssl);
        close(fd);
        n++;
    }
    h->cpu_ms = (cpu_s() - c0) * 1000.0 / (double)n;
    atomic_store(&h->stop, true);
    pthread_join(t, NULL);
    h->per_s = (double)n / (t1 - t0);
}

/* --- main ------------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: tls_stream [--seconds S] [--rounds R] [--chunk BYTES]\n");
            return 2;
        }
    }
    if (seconds <= 0 || rounds < 1 || rounds > 50 || chunk < 1 || chunk > (64u << 20)) return 2;
    make_material();

    double sn_bulk_v[50], bare_bulk_v[50], sn_hs_v[50], bare_hs_v[50];
    double sn_bcpu[50], bare_bcpu[50], sn_hcpu[50], bare_hcpu[50];
    for (int r = 0; r < rounds; r++) {
        bulk b;
        sn_bulk(&b);
        sn_bulk_v[r] = b.mbytes_per_s;
        sn_bcpu[r] = b.cpu_per_gb;
        bare_bulk(&b);
        bare_bulk_v[r] = b.mbytes_per_s;
        bare_bcpu[r] = b.cpu_per_gb;
        hs h;
        sn_handshakes(&h);
        sn_hs_v[r] = h.per_s;
        sn_hcpu[r] = h.cpu_ms;
        bare_handshakes(&h);
        bare_hs_v[r] = h.per_s;
        bare_hcpu[r] = h.cpu_ms;
        fprintf(stderr, "round %d: bulk %.0f / %.0f MB/s, handshakes %.0f / %.0f per s\n", r + 1,
                sn_bulk_v[r], bare_bulk_v[r], sn_hs_v[r], bare_hs_v[r]);
    }
    double sb = median(sn_bulk_v, rounds), bb = median(bare_bulk_v, rounds);
    double sh = median(sn_hs_v, rounds), bh = median(bare_hs_v, rounds);
    double sbc = median(sn_bcpu, rounds), bbc = median(bare_bcpu, rounds);
    double shc = median(sn_hcpu, rounds), bhc = median(bare_hcpu, rounds);

    printf("## sn_tls_stream vs bare OpenSSL (%s), TCP loopback, client and server threads\n\n",
           OpenSSL_version(OPENSSL_VERSION));
    printf("sealnet negotiated: %s; bare negotiated: %s. Median of %d rounds of %.1f s.\n\n",
           sn_cipher, bare_cipher, rounds, seconds);
    printf("| measurement | sealnet | bare OpenSSL | ratio | target |\n");
    printf("|---|---:|---:|---:|---:|\n");
    printf("| bulk throughput, %zu-byte writes, one direction | %.0f MB/s | %.0f MB/s | %.2f | "
           ">= 0.80 |\n",
           chunk, sb, bb, sb / bb);
    printf("| full handshakes per second (ECDSA P-256, verified, sequential) | %.0f | %.0f | %.2f "
           "| >= 0.90 |\n",
           sh, bh, sh / bh);
    /* CPU cost is steadier than wall-clock rates on a shared machine; ratio = bare / sealnet. */
    printf("| CPU per GB moved (both threads) | %.2f s | %.2f s | %.2f | >= 0.80 |\n", sbc, bbc,
           bbc / sbc);
    printf("| CPU per handshake (both threads) | %.2f ms | %.2f ms | %.2f | >= 0.90 |\n", shc, bhc,
           bhc / shc);
    printf("\nRatios: sealnet relative to bare OpenSSL, higher is better for sealnet.\n");
    sn_tls_options_free(sn_server_opts);
    sn_tls_options_free(sn_client_opts);
    SSL_CTX_free(bare_server_ctx);
    SSL_CTX_free(bare_client_ctx);
    return 0;
}
