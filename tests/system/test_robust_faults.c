/* Resource errors: running out of file descriptors, a full socket send buffer, and allocation
 * failures injected with sn_test_fail_alloc_after() swept over every allocation of object
 * creation, listen, take_connection, key generation and a full DTLS handshake. Each must
 * surface as an error with a message (or be absorbed, e.g. a dropped datagram that the
 * handshake retransmits), never as a crash or a leak (LeakSanitizer checks at exit).
 *
 * Only the library's own allocations (sn_malloc & co.) are hooked: OpenSSL allocates through
 * its own CRYPTO_malloc, which these sweeps do not fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>

#include "testutil.h"
#include "core.h" /* sn_malloc */
#include "test_dtls_server.h"
#include "test_robust_util.h"

static rb_fixture fx;

static int group_setup(void **state)
{
    (void)state;
    return rb_fixture_setup(&fx, "CN=localhost");
}

static int group_teardown(void **state)
{
    (void)state;
    rb_fixture_teardown(&fx);
    return 0;
}

/* ---- send interposition: the kernel's EAGAIN on demand ------------------------------------- *
 * On loopback a UDP send never finds the send buffer full (the loopback driver releases the
 * sender's buffer space before the receiver sees the datagram), so SN_ERR_BUSY cannot be provoked
 * for real here. These wrappers make send()/sendto() on one chosen descriptor fail with EAGAIN,
 * exactly what a full buffer on a real interface gives. */
static int g_busy_fd = -1;
static int g_busy_count; /* sends refused so far */

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, const void *, size_t, int);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "send");
    if (fd == g_busy_fd) {
        g_busy_count++;
        errno = EAGAIN;
        return -1;
    }
    return real(fd, buf, len, flags);
}

/* glibc's own prototype (a transparent union for the address under _GNU_SOURCE). */
ssize_t sendto(int fd, const void *buf, size_t len, int flags, __CONST_SOCKADDR_ARG to,
               socklen_t tolen)
{
    static ssize_t (*real)(int, const void *, size_t, int, __CONST_SOCKADDR_ARG, socklen_t);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "sendto");
    if (fd == g_busy_fd) {
        g_busy_count++;
        errno = EAGAIN;
        return -1;
    }
    return real(fd, buf, len, flags, to, tolen);
}

/* ---- file descriptors ---------------------------------------------------------------------- */

static void fd_exhaustion_gives_clean_errors(void **state)
{
    (void)state;
    char *dir = sn_test_tmpdir();
    char *key_path = sn_test_path(dir, "key.pem"), *cert_path = sn_test_path(dir, "cert.pem");
    assert_int_equal(sn_crypto_key_save(fx.key, key_path, false), SN_OK);
    assert_int_equal(sn_x509_cert_save(fx.cert, cert_path), SN_OK);

    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = old;
    low.rlim_cur = 128;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fillers[128], nf = 0;
    for (int fd; nf < 128 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
        fillers[nf++] = fd;
    assert_int_equal(errno, EMFILE);

    sn_udp_peer *u = sn_udp_peer_new();
    sn_err e = sn_udp_peer_bind(u, 0, "127.0.0.1", 0);
    assert_int_not_equal(e, SN_OK);
    print_message("bind at EMFILE: %s: %s\n", sn_err_string(e), sn_last_error_message());
    assert_non_null(strstr(sn_last_error_message(), "open files"));
    assert_false(sn_udp_peer_is_bound(u));
    assert_int_not_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", 9), SN_OK);
    assert_non_null(strstr(sn_last_error_message(), "open files"));
    assert_int_not_equal(sn_udp_peer_set_dest_address(u, "127.0.0.1", 9), SN_ERR_BUG);
    assert_int_not_equal(sn_udp_peer_put_packet(u, "x", 1), SN_OK); /* binds lazily: fails */
    assert_true(*sn_last_error_message());

    sn_udp_server *srv = sn_udp_server_new();
    assert_int_not_equal(sn_udp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    assert_non_null(strstr(sn_last_error_message(), "open files"));
    assert_false(sn_udp_server_is_listening(srv));
    assert_int_equal(sn_udp_server_poll(srv), SN_ERR_UNCONFIGURED);

    sn_crypto_key *k = sn_crypto_key_new();
    e = sn_crypto_key_load(k, key_path, false);
    assert_int_equal(e, SN_ERR_CANT_OPEN);
    assert_non_null(strstr(sn_last_error_message(), "open files"));
    sn_x509_cert *c = sn_x509_cert_new();
    assert_int_equal(sn_x509_cert_load(c, cert_path), SN_ERR_CANT_OPEN);
    char *out_path = sn_test_path(dir, "out.pem");
    assert_int_equal(sn_crypto_key_save(fx.key, out_path, false), SN_ERR_CANT_CREATE);
    assert_non_null(strstr(sn_last_error_message(), "open files"));

    /* A DTLS client cannot start without a socket either. */
    sn_dtls_peer *d = sn_dtls_peer_new();
    sn_udp_peer *du = sn_udp_peer_new();
    assert_int_not_equal(sn_udp_peer_connect_to_host(du, "127.0.0.1", 9), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(d, du, "localhost", NULL),
                     SN_ERR_INVALID_PARAMETER); /* takes ownership, also on failure */

    /* Descriptors back: everything works again on the same objects. */
    for (int i = 0; i < nf; i++)
        close(fillers[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(sn_udp_peer_bind(u, 0, "127.0.0.1", 0), SN_OK);
    assert_int_equal(sn_udp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    assert_int_equal(sn_crypto_key_load(k, key_path, false), SN_OK);
    assert_int_equal(sn_x509_cert_load(c, cert_path), SN_OK);

    sn_dtls_peer_free(d);
    sn_x509_cert_free(c);
    sn_crypto_key_free(k);
    sn_udp_server_free(srv);
    sn_udp_peer_free(u);
    sn_test_rmtree(dir);
    free(dir);
    free(key_path);
    free(cert_path);
    free(out_path);
}

/* ---- full send buffer ---------------------------------------------------------------------- */

static void full_send_buffer_is_busy_not_a_crash(void **state)
{
    (void)state;
    int sink = rb_socket("127.0.0.1", 0);
    assert_true(sink >= 0);
    /* For real: smallest SO_SNDBUF, 2,000 datagrams of 60,000 bytes at a socket nobody reads. */
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", rb_port(sink)), SN_OK);
    int one = 1;
    assert_int_equal(setsockopt(sn_udp_peer_get_fd(u), SOL_SOCKET, SO_SNDBUF, &one, sizeof one), 0);
    static uint8_t big[60000];
    int ok = 0, busy = 0;
    for (int i = 0; i < 2000; i++) {
        sn_err e = sn_udp_peer_put_packet(u, big, sizeof big);
        assert_true(e == SN_OK || e == SN_ERR_BUSY);
        ok += e == SN_OK;
        busy += e == SN_ERR_BUSY;
    }
    sn_udp_peer_stats st;
    sn_udp_peer_get_stats(u, &st);
    assert_int_equal(st.send_busy, (uint64_t)busy);
    assert_int_equal(st.datagrams_sent, (uint64_t)ok);
    print_message("real blast on loopback: %d sent, %d busy\n", ok, busy);

    /* Injected EAGAIN: a standalone peer. */
    g_busy_fd = sn_udp_peer_get_fd(u);
    assert_int_equal(sn_udp_peer_put_packet(u, "x", 1), SN_ERR_BUSY);
    assert_non_null(strstr(sn_last_error_message(), "buffer full"));
    g_busy_fd = -1;
    sn_udp_peer_get_stats(u, &st);
    assert_int_equal(st.send_busy, (uint64_t)busy + 1);
    assert_int_equal(sn_udp_peer_put_packet(u, "x", 1), SN_OK);
    sn_udp_peer_free(u);

    /* A peer taken from a server (sends through the server's socket): counted on both. */
    sn_udp_server *srv = sn_udp_server_new();
    assert_int_equal(sn_udp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    assert_true(rb_send(sink, sn_udp_server_get_local_port(srv), "hi", 2));
    for (int i = 0; i < 100 && !sn_udp_server_is_connection_available(srv); i++) {
        rb_wait(sn_udp_server_get_fd(srv), 10);
        sn_udp_server_poll(srv);
    }
    sn_udp_peer *t = sn_udp_server_take_connection(srv);
    assert_non_null(t);
    g_busy_fd = sn_udp_server_get_fd(srv);
    assert_int_equal(sn_udp_peer_put_packet(t, "x", 1), SN_ERR_BUSY);
    g_busy_fd = -1;
    sn_udp_server_stats ss;
    sn_udp_server_get_stats(srv, &ss);
    assert_int_equal(ss.send_busy, 1);
    assert_int_equal(sn_udp_peer_put_packet(t, "x", 1), SN_OK);
    sn_udp_peer_free(t);

    /* DTLS: a handshake whose first flights meet a full buffer recovers by retransmission; a
     * connected peer's put_packet says BUSY, does not send, and the session stays up. */
    sn_tls_options *so = sn_tls_options_server(fx.key, fx.cert);
    sn_tls_options *co = sn_tls_options_client(fx.cert, NULL);
    sn_dtls_server *ds = sn_dtls_server_new();
    assert_int_equal(sn_dtls_server_setup(ds, so), SN_OK);
    sn_udp_peer *cu = sn_udp_peer_new();
    assert_int_equal(
        sn_udp_peer_connect_to_host(cu, "127.0.0.1", sn_udp_server_get_local_port(srv)), SN_OK);
    int client_fd = sn_udp_peer_get_fd(cu);
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.retransmit_initial_ms = 50;
    sn_dtls_peer *c = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_set_settings(c, &set), SN_OK);
    g_busy_fd = client_fd; /* the ClientHello cannot leave */
    g_busy_count = 0;
    assert_int_equal(sn_dtls_peer_connect_to_peer(c, cu, "localhost", co), SN_OK);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_HANDSHAKING);
    for (int i = 0; i < 30; i++) {
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(5);
    }
    assert_true(g_busy_count >= 1);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_HANDSHAKING);
    g_busy_fd = -1;
    sn_dtls_peer *sp = NULL;
    int nsp = 0;
    uint64_t end = sn_test_now_ms() + 3000;
    while (sn_test_now_ms() < end &&
           (!sp || sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_CONNECTED ||
            sn_dtls_peer_get_status(sp) != SN_DTLS_STATUS_CONNECTED)) {
        sn_test_dtls_server_step(srv, ds, &sp, &nsp, 1, NULL, NULL);
        sn_dtls_peer_poll(c);
        sn_test_sleep_ms(1);
    }
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    g_busy_fd = client_fd;
    assert_int_equal(sn_dtls_peer_put_packet(c, "lost", 4), SN_ERR_BUSY);
    assert_int_equal(sn_dtls_peer_put_packet(c, "lost", 4), SN_ERR_BUSY);
    g_busy_fd = -1;
    sn_dtls_peer_stats cs;
    sn_dtls_peer_get_stats(c, &cs);
    assert_true(cs.send_busy >= 2);
    assert_int_equal(cs.packets_sent, 0);
    assert_int_equal(sn_dtls_peer_get_status(c), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_put_packet(c, "kept", 4), SN_OK);
    char buf[16];
    size_t len = 0;
    end = sn_test_now_ms() + 2000;
    while (sn_test_now_ms() < end && sn_dtls_peer_get_available_packet_count(sp) == 0) {
        sn_udp_server_poll(srv);
        sn_dtls_peer_poll(sp);
        sn_test_sleep_ms(1);
    }
    assert_int_equal(sn_dtls_peer_get_packet(sp, buf, sizeof buf, &len), SN_OK);
    assert_memory_equal(buf, "kept", 4); /* the refused ones never went out */
    assert_int_equal(sn_dtls_peer_get_available_packet_count(sp), 0);

    sn_dtls_peer_free(c);
    sn_dtls_peer_free(sp);
    sn_dtls_server_free(ds);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
    sn_udp_server_free(srv);
    close(sink);
}

/* ---- allocation failures ------------------------------------------------------------------- */

/* How many library allocations op makes: arm the countdown high, run op, then count how many
 * probe allocations still succeed before it fires. */
static long count_allocs(void (*op)(void *ctx, bool *failed), void *ctx)
{
    const long L = 200000;
    bool failed = false;
    sn_test_fail_alloc_after(L, false);
    op(ctx, &failed);
    long probes = 0;
    for (void *p; (p = sn_malloc(1)) != NULL; probes++)
        free(p);
    sn_test_fail_alloc_after(-1, false);
    assert_false(failed);
    return L - probes;
}

typedef struct sweep_result {
    long allocs, runs, failed_cleanly, succeeded;
} sweep_result;

/* Runs op with the n-th allocation failing, for every n (stride for the slow ones), sticky and
 * not. op reports through *failed whether it saw an error (each error it checks has a message). */
static sweep_result sweep(const char *name, void (*op)(void *ctx, bool *failed), void *ctx,
                          long stride_sticky)
{
    sweep_result r = {count_allocs(op, ctx), 0, 0, 0};
    assert_true(r.allocs > 0);
    for (int sticky = 0; sticky < 2; sticky++) {
        long stride = sticky ? stride_sticky : 1;
        for (long n = 0; n < r.allocs; n += stride) {
            bool failed = false;
            sn_test_fail_alloc_after(n, sticky);
            op(ctx, &failed);
            sn_test_fail_alloc_after(-1, false);
            r.runs++;
            if (getenv("SWEEP_DEBUG"))
                print_message("  %s n=%ld sticky=%d: %s (%s)\n", name, n, sticky,
                              failed ? "failed" : "ok", sn_last_error_message());
            if (failed)
                r.failed_cleanly++;
            else
                r.succeeded++;
        }
    }
    print_message("%-22s %4ld allocations, %4ld runs: %4ld failed with a reason, %4ld absorbed\n",
                  name, r.allocs, r.runs, r.failed_cleanly, r.succeeded);
    /* Failing the very first allocation must be visible. */
    return r;
}

/* An error return must carry a message. */
#define EXPECT_REASON(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            assert_true(*sn_last_error_message());                                                 \
            *failed = true;                                                                        \
        }                                                                                          \
    } while (0)

static void op_objects(void *ctx, bool *failed)
{
    (void)ctx;
    sn_udp_peer *u = sn_udp_peer_new();
    EXPECT_REASON(u);
    sn_udp_server *s = sn_udp_server_new();
    EXPECT_REASON(s);
    sn_dtls_server *ds = sn_dtls_server_new();
    EXPECT_REASON(ds);
    sn_dtls_peer *dp = sn_dtls_peer_new();
    EXPECT_REASON(dp);
    sn_crypto_key *k = sn_crypto_key_new();
    EXPECT_REASON(k);
    sn_x509_cert *c = sn_x509_cert_new();
    EXPECT_REASON(c);
    sn_tls_options *so = sn_tls_options_server(fx.key, fx.cert);
    EXPECT_REASON(so);
    sn_tls_options *co = sn_tls_options_client(fx.cert, "localhost");
    EXPECT_REASON(co);
    sn_tls_options *uo = sn_tls_options_client_unsafe(NULL);
    EXPECT_REASON(uo);
    if (ds && so) EXPECT_REASON(sn_dtls_server_setup(ds, so) == SN_OK);
    sn_tls_options_free(uo);
    sn_tls_options_free(co);
    sn_tls_options_free(so);
    sn_x509_cert_free(c);
    sn_crypto_key_free(k);
    sn_dtls_peer_free(dp);
    sn_dtls_server_free(ds);
    sn_udp_server_free(s);
    sn_udp_peer_free(u);
}

/* UDP server: listen, datagrams from three sources, poll, take, read, answer. */
static void op_listen(void *ctx, bool *failed)
{
    int *src = ctx;
    sn_udp_server *s = sn_udp_server_new();
    EXPECT_REASON(s);
    if (!s) return;
    sn_err e = sn_udp_server_listen(s, 0, "127.0.0.1");
    EXPECT_REASON(e == SN_OK);
    if (e == SN_OK) {
        for (int i = 0; i < 3; i++)
            assert_true(rb_send(src[i], sn_udp_server_get_local_port(s), "ping", 4));
        sn_udp_server_stats st = {0};
        for (int i = 0; i < 50 && st.datagrams_received < 3; i++) {
            e = sn_udp_server_poll(s);
            EXPECT_REASON(e == SN_OK);
            sn_udp_server_get_stats(s, &st);
            if (st.datagrams_received < 3) rb_wait(sn_udp_server_get_fd(s), 2);
        }
        /* A datagram that could not get a peer is dropped and counted, not lost silently. */
        if (st.dropped_no_memory) *failed = true;
        assert_int_equal(st.datagrams_routed + st.dropped_no_memory, st.datagrams_received);
        sn_udp_peer *p;
        while ((p = sn_udp_server_take_connection(s))) {
            char buf[8];
            size_t len;
            assert_int_equal(sn_udp_peer_get_packet(p, buf, sizeof buf, &len), SN_OK);
            e = sn_udp_peer_put_packet(p, "pong", 4);
            assert_int_equal(e, SN_OK);
            sn_udp_peer_free(p);
        }
    }
    sn_udp_server_free(s);
    for (int i = 0; i < 3; i++)
        rb_drain(src[i]);
}

/* DTLS take_connection: a cookie-less hello (stateless answer), then the cookie exchange and a
 * hello with a valid cookie (a session). */
typedef struct take_ctx {
    sn_udp_server *udp;
    sn_dtls_server *dtls;
    int src;
    uint64_t drops0; /* dropped_no_memory when the run began */
} take_ctx;

static sn_dtls_peer *take_one(take_ctx *t, bool *failed)
{
    for (int i = 0; i < 100 && !sn_udp_server_is_connection_available(t->udp); i++) {
        sn_udp_server_stats st;
        sn_udp_server_get_stats(t->udp, &st);
        if (st.dropped_no_memory > t->drops0) { /* no memory for it: dropped, counted */
            *failed = true;
            return NULL;
        }
        rb_wait(sn_udp_server_get_fd(t->udp), 2);
        sn_err e = sn_udp_server_poll(t->udp);
        EXPECT_REASON(e == SN_OK); /* no receive buffers: the datagram waits in the kernel */
    }
    sn_udp_peer *u = sn_udp_server_take_connection(t->udp);
    if (!u) {
        assert_true(*failed);
        return NULL;
    }
    sn_dtls_peer *p = sn_dtls_server_take_connection(t->dtls, u);
    EXPECT_REASON(p); /* NULL only when out of memory */
    return p;
}

static void op_take(void *ctx, bool *failed)
{
    take_ctx *t = ctx;
    sn_udp_server_stats before;
    sn_udp_server_get_stats(t->udp, &before);
    t->drops0 = before.dropped_no_memory;
    assert_true(rb_send(t->src, sn_udp_server_get_local_port(t->udp), fx.hello, fx.hello_len));
    sn_dtls_peer *p = take_one(t, failed);
    uint8_t buf[2048], ch2[2048];
    ssize_t n = -1;
    if (p) {
        assert_int_equal(sn_dtls_peer_get_status(p), SN_DTLS_STATUS_ERROR);
        sn_dtls_peer_free(p);
        if (rb_wait(t->src, 100)) n = rb_recv(t->src, buf, sizeof buf, NULL);
    }
    const uint8_t *cookie;
    size_t cl;
    if (n > 0 && rb_hvr_cookie(buf, (size_t)n, &cookie, &cl)) {
        size_t m = rb_splice_cookie(fx.hello, fx.hello_len, cookie, cl, ch2, sizeof ch2);
        assert_true(rb_send(t->src, sn_udp_server_get_local_port(t->udp), ch2, m));
        p = take_one(t, failed);
        if (p) {
            sn_dtls_status st = sn_dtls_peer_get_status(p);
            if (st != SN_DTLS_STATUS_HANDSHAKING) {
                assert_int_equal(st, SN_DTLS_STATUS_ERROR);
                assert_true(*sn_dtls_peer_get_error_message(p));
                *failed = true;
            }
            sn_dtls_peer_free(p);
        }
    } else if (p || !*failed) {
        *failed = true; /* no HelloVerifyRequest came back */
    }
    /* Nothing left behind on the server between runs. */
    for (int i = 0; i < 5; i++) {
        sn_udp_server_poll(t->udp);
        while (sn_udp_server_is_connection_available(t->udp))
            sn_udp_peer_free(sn_udp_server_take_connection(t->udp));
    }
    rb_drain(t->src);
}

/* Key and certificate generation, PEM round trips. */
static void op_keys(void *ctx, bool *failed)
{
    (void)ctx;
    sn_crypto_key *k = sn_crypto_generate_ec("P-256");
    EXPECT_REASON(k);
    if (!k) return;
    sn_x509_cert *c = sn_crypto_generate_self_signed_certificate(k, "CN=a,O=b,C=IT", NULL, NULL);
    EXPECT_REASON(c);
    char *kp = sn_crypto_key_save_to_string(k, false);
    EXPECT_REASON(kp);
    char *cp = c ? sn_x509_cert_save_to_string(c) : NULL;
    if (c) EXPECT_REASON(cp);
    sn_crypto_key *k2 = sn_crypto_key_new();
    EXPECT_REASON(k2);
    if (k2 && kp) EXPECT_REASON(sn_crypto_key_load_from_string(k2, kp, false) == SN_OK);
    sn_x509_cert *c2 = sn_x509_cert_new();
    EXPECT_REASON(c2);
    if (c2 && cp) EXPECT_REASON(sn_x509_cert_load_from_string(c2, cp) == SN_OK);
    uint8_t rnd[16];
    EXPECT_REASON(sn_crypto_generate_random_bytes(rnd, sizeof rnd) == SN_OK);
    sn_x509_cert_free(c2);
    sn_crypto_key_free(k2);
    sn_free(cp);
    sn_free(kp);
    sn_x509_cert_free(c);
    sn_crypto_key_free(k);
}

/* A whole DTLS connection: server set up, client connects, one packet each way, close. */
static void op_handshake(void *ctx, bool *failed)
{
    (void)ctx;
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.retransmit_initial_ms = 20;
    set.handshake_timeout_ms = 250;
    sn_tls_options *so = sn_tls_options_server(fx.key, fx.cert);
    sn_tls_options *co = sn_tls_options_client(fx.cert, NULL);
    sn_udp_server *udp = sn_udp_server_new();
    sn_dtls_server *dtls = sn_dtls_server_new();
    sn_udp_peer *u = sn_udp_peer_new();
    sn_dtls_peer *c = sn_dtls_peer_new(), *sp = NULL;
    EXPECT_REASON(so && co && udp && dtls && u && c);
    bool up = so && co && udp && dtls && u && c;
    if (up) {
        sn_err e1 = sn_udp_server_listen(udp, 0, "127.0.0.1");
        sn_err e2 = sn_dtls_server_setup(dtls, so);
        EXPECT_REASON(e1 == SN_OK && e2 == SN_OK);
        sn_err e3 = sn_dtls_server_set_settings(dtls, &set);
        sn_err e4 = sn_dtls_peer_set_settings(c, &set);
        assert_true(e3 == SN_OK && e4 == SN_OK);
        up = e1 == SN_OK && e2 == SN_OK;
    }
    if (up) {
        sn_err e = sn_udp_peer_connect_to_host(u, "127.0.0.1", sn_udp_server_get_local_port(udp));
        EXPECT_REASON(e == SN_OK);
        if (e == SN_OK) {
            e = sn_dtls_peer_connect_to_peer(c, u, "localhost", co);
            u = NULL; /* owned by c now, also on failure */
            EXPECT_REASON(e == SN_OK);
            up = e == SN_OK;
        } else {
            up = false;
        }
    }
    bool sent = false, got = false;
    uint64_t end = sn_test_now_ms() + 1500;
    while (up && sn_test_now_ms() < end && !got) {
        sn_udp_server_poll(udp);
        while (sn_udp_server_is_connection_available(udp)) {
            sn_dtls_peer *p =
                sn_dtls_server_take_connection(dtls, sn_udp_server_take_connection(udp));
            EXPECT_REASON(p);
            if (p && !sp && sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING)
                sp = p;
            else
                sn_dtls_peer_free(p);
        }
        sn_dtls_peer_poll(sp);
        sn_dtls_peer_poll(c);
        uint8_t buf[64];
        size_t len;
        if (sp && sn_dtls_peer_get_packet(sp, buf, sizeof buf, &len) == SN_OK)
            sn_dtls_peer_put_packet(sp, buf, len);
        sn_dtls_status cs = sn_dtls_peer_get_status(c);
        if (cs == SN_DTLS_STATUS_CONNECTED && !sent)
            sent = sn_dtls_peer_put_packet(c, "hello", 5) == SN_OK;
        if (sent && sn_dtls_peer_get_packet(c, buf, sizeof buf, &len) == SN_OK) got = true;
        if (cs != SN_DTLS_STATUS_CONNECTED && cs != SN_DTLS_STATUS_HANDSHAKING) {
            assert_true(*sn_dtls_peer_get_error_message(c)); /* ended with a reason */
            break;
        }
        rb_wait(sn_udp_server_get_fd(udp), 1);
    }
    if (up && !got) {
        /* Did not make it (e.g. every later allocation failing): the client says why, or the
         * exchange simply did not finish in time (datagrams dropped for lack of memory). */
        *failed = true;
    }
    if (sp && sn_dtls_peer_get_status(sp) == SN_DTLS_STATUS_ERROR)
        assert_true(*sn_dtls_peer_get_error_message(sp));
    sn_dtls_peer_free(c);
    sn_dtls_peer_free(sp);
    sn_udp_peer_free(u);
    sn_dtls_server_free(dtls);
    sn_udp_server_free(udp);
    sn_tls_options_free(so);
    sn_tls_options_free(co);
}

static void allocation_failures_surface_as_errors(void **state)
{
    (void)state;
    sweep_result r = sweep("object creation", op_objects, NULL, 1);
    assert_true(r.failed_cleanly > 0);

    int src[3];
    for (int i = 0; i < 3; i++)
        assert_true((src[i] = rb_socket("127.0.0.1", 0)) >= 0);
    r = sweep("listen/poll/take", op_listen, src, 1);
    assert_true(r.failed_cleanly > 0);
    for (int i = 0; i < 3; i++)
        close(src[i]);

    take_ctx t = {sn_udp_server_new(), sn_dtls_server_new(), rb_socket("127.0.0.1", 0), 0};
    sn_tls_options *so = sn_tls_options_server(fx.key, fx.cert);
    assert_int_equal(sn_udp_server_listen(t.udp, 0, "127.0.0.1"), SN_OK);
    assert_int_equal(sn_dtls_server_setup(t.dtls, so), SN_OK);
    r = sweep("dtls take_connection", op_take, &t, 1);
    assert_true(r.failed_cleanly > 0 && r.succeeded > 0);
    sn_tls_options_free(so);
    sn_dtls_server_free(t.dtls);
    sn_udp_server_free(t.udp);
    close(t.src);

    r = sweep("key generation", op_keys, NULL, 1);
    assert_true(r.failed_cleanly > 0);

    r = sweep("full dtls handshake", op_handshake, NULL, 4);
    assert_true(r.failed_cleanly > 0 && r.succeeded > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fd_exhaustion_gives_clean_errors),
        cmocka_unit_test(full_send_buffer_is_busy_not_a_crash),
        cmocka_unit_test(allocation_failures_surface_as_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
