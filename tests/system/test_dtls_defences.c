/* Issue 16, defects 4-9 (library side): what an attacker on loopback did to the DTLS server
 * paths and clients, each as a regression test that failed on the code before the fix.
 *
 * - half-open handshakes: the cap holds whatever an address queues before its cookie hello
 *   (defect 5); a per-source limit; legitimate clients get in while one address, or 50
 *   addresses, open 100 silent cookie-proven handshakes per second (defect 4);
 * - memory per half-open session stays under 64 KiB whatever the peer sends (defect 6);
 * - spoofing: a forged plaintext alert does not end a handshake whose peer keeps talking, a
 *   genuine one still ends it within a second (defect 8); a client answers a bounded number of
 *   HelloVerifyRequests (defect 9);
 * - honest reasons: a too-large handshake message, a client restart (defect 9).
 *
 * Attackers are plain UDP sockets bound to 127.0.0.x (several source addresses on loopback)
 * replaying a ClientHello captured from a sealnet client, with the cookie the server handed
 * them: each one a cookie-proven handshake that then goes silent or sends what the test says.
 *
 * Memory is counted by an allocator installed before anything else (sn_set_allocator routes
 * OpenSSL's allocations through it too), so the figures are exact heap bytes in any build. */
#include <setjmp.h>
#include <stddef.h>
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer's count of the heap in use (sanitizer/allocator_interface.h). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dtls_fixture.h"
#include "test_dtls_wire.h"
#include "test_hooks.h"

#include <sealnet/host.h>

#define WAIT_MS 10000

static char *tmp;
static char *key_path, *crt_path;
static sn_tls_options *server_opts, *client_opts;
static uint8_t hello[2048];
static size_t hello_len;

/* ---- a counting allocator (bytes live) ------------------------------------------------------ */

static atomic_size_t heap_live;
typedef union hdr {
    size_t n;
    max_align_t align;
} hdr;

static void *count_malloc(size_t n, void *user)
{
    (void)user;
    hdr *h = malloc(sizeof *h + n);
    if (!h) return NULL;
    h->n = n;
    atomic_fetch_add(&heap_live, n);
    return h + 1;
}
static void *count_realloc(void *p, size_t n, void *user)
{
    if (!p) return count_malloc(n, user);
    hdr *h = (hdr *)p - 1;
    size_t old = h->n;
    hdr *g = realloc(h, sizeof *g + n);
    if (!g) return NULL;
    g->n = n;
    atomic_fetch_add(&heap_live, n);
    atomic_fetch_sub(&heap_live, old);
    return g + 1;
}
static void count_free(void *p, void *user)
{
    (void)user;
    if (!p) return;
    hdr *h = (hdr *)p - 1;
    atomic_fetch_sub(&heap_live, h->n);
    free(h);
}

/* ---- attackers: raw sockets on 127.0.0.x ---------------------------------------------------- */

/* Events of a host, drained without blocking; CONNECTs counted. */
typedef struct served {
    int connects, disconnects;
    sn_host_disconnect_reason last_reason;
    char last_message[256];
} served;

static void serve(sn_host *h, served *s)
{
    sn_host_event ev;
    while (sn_host_service(h, &ev, 0) > 0) {
        if (ev.type == SN_HOST_EVENT_CONNECT) s->connects++;
        if (ev.type == SN_HOST_EVENT_DISCONNECT) {
            s->disconnects++;
            s->last_reason = ev.reason;
            snprintf(s->last_message, sizeof s->last_message, "%s", ev.message);
        }
    }
}

/* A cookie-proven handshake from a fresh socket on `ip`: the cookie round trip, then the
 * opening datagrams `pre` (junk, a cookie-less hello...) and the cookie hello in one burst.
 * Returns the socket (still open). */
static int prove_cookie(sn_host *srv, served *s, int port, const char *ip, uint8_t cookie[32])
{
    int fd = sn_test_udp_socket_on(ip);
    sn_test_udp_send_to(fd, port, hello, hello_len);
    uint8_t buf[2048];
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    for (;;) {
        serve(srv, s);
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (sn_test_is_sealnet_hvr(buf, (size_t)r)) break;
        if (sn_test_now_ms() > end) fail_msg("no HelloVerifyRequest for %s", ip);
        struct pollfd pfd = {fd, POLLIN, 0};
        poll(&pfd, 1, 2);
    }
    memcpy(cookie, buf + 28, 32);
    return fd;
}

static void send_cookie_hello(int fd, int port, const uint8_t cookie[32])
{
    uint8_t ch[2200];
    size_t n = sn_test_hello_with_cookie(hello, hello_len, cookie, 32, ch, sizeof ch);
    sn_test_udp_send_to(fd, port, ch, n);
}

static sn_host *server_host(sn_host_config *c)
{
    c->server_options = server_opts;
    c->port = 0;
    c->bind_address = "127.0.0.1";
    sn_host *h = sn_host_create(c);
    assert_non_null(h);
    return h;
}

/* ---- defect 5: the cap holds whatever else an address queued ------------------------------- */

/* Each attacker queues junk and a cookie-less hello ahead of its cookie hello: the old check
 * looked at the first queued datagram only, so with the cap at 4, 40 of 40 sessions opened. */
static void test_cap_whatever_is_queued(void **state)
{
    (void)state;
    enum { ATTACKERS = 40, CAP = 4 };
    sn_host_config c;
    sn_host_default_config(&c);
    c.max_half_open = CAP;
    sn_host *srv = server_host(&c);
    int port = sn_host_get_port(srv);
    served s = {0};
    int fds[ATTACKERS];
    uint8_t cookies[ATTACKERS][32];
    for (int i = 0; i < ATTACKERS; i++)
        fds[i] = prove_cookie(srv, &s, port, "127.0.0.1", cookies[i]);
    /* All at once: junk, a cookie-less hello, the cookie hello, a second copy of it. */
    for (int i = 0; i < ATTACKERS; i++) {
        sn_test_udp_send_to(fds[i], port, "junk", 4);
        sn_test_udp_send_to(fds[i], port, hello, hello_len);
        send_cookie_hello(fds[i], port, cookies[i]);
        send_cookie_hello(fds[i], port, cookies[i]);
    }
    sn_host_stats st;
    for (int k = 0; k < 50; k++) {
        serve(srv, &s);
        sn_host_get_stats(srv, &st);
        assert_true(st.incoming_half_open_now <= CAP);
        sn_test_sleep_ms(5);
    }
    sn_host_get_stats(srv, &st);
    print_message(
        "cap %d: half-open peak %llu, started %llu, dropped %llu, evicted %llu\n", CAP,
        (unsigned long long)st.incoming_half_open_peak, (unsigned long long)st.handshakes_started,
        (unsigned long long)st.dropped_half_open, (unsigned long long)st.evicted_half_open);
    assert_int_equal(st.incoming_half_open_peak, CAP);
    assert_int_equal(st.handshakes_started, CAP);
    assert_true(st.dropped_half_open >= ATTACKERS - CAP);
    for (int i = 0; i < ATTACKERS; i++)
        close(fds[i]);
    sn_host_free(srv);
}

/* ---- per-source limit ------------------------------------------------------------------------ */

static void test_per_source_limit(void **state)
{
    (void)state;
    enum { FROM_ONE = 30, PER_SOURCE = 8, OTHERS = 5 };
    sn_host_config c;
    sn_host_default_config(&c);
    c.max_half_open_per_source = PER_SOURCE;
    sn_host *srv = server_host(&c);
    int port = sn_host_get_port(srv);
    served s = {0};
    int fds[FROM_ONE + OTHERS];
    for (int i = 0; i < FROM_ONE + OTHERS; i++) {
        uint8_t cookie[32];
        const char *ip = i < FROM_ONE ? "127.0.0.2" : "127.0.0.3";
        fds[i] = prove_cookie(srv, &s, port, ip, cookie);
        send_cookie_hello(fds[i], port, cookie);
        for (int k = 0; k < 3; k++) {
            serve(srv, &s);
            sn_test_sleep_ms(1);
        }
    }
    for (int k = 0; k < 20; k++) {
        serve(srv, &s);
        sn_test_sleep_ms(5);
    }
    sn_host_stats st;
    sn_host_get_stats(srv, &st);
    print_message("per source %d: half-open %llu, dropped (source) %llu\n", PER_SOURCE,
                  (unsigned long long)st.incoming_half_open_now,
                  (unsigned long long)st.dropped_half_open_source);
    /* 127.0.0.2 holds PER_SOURCE slots, 127.0.0.3 got all of its own in. */
    assert_int_equal(st.incoming_half_open_now, PER_SOURCE + OTHERS);
    assert_int_equal(st.dropped_half_open_source, FROM_ONE - PER_SOURCE);
    for (int i = 0; i < FROM_ONE + OTHERS; i++)
        close(fds[i]);
    sn_host_free(srv);
}

/* ---- defect 4: legitimate clients under a flood of silent handshakes ------------------------ */

typedef struct flood {
    int port;
    int nips;
    int rate; /* cookie-proven handshakes per second, all sources together */
    int fds[64];
    uint64_t born[64];
    int nfds;
    uint64_t next_ms;
    unsigned ip_i;
    uint64_t opened, proven;
} flood;

static void flood_step(flood *f)
{
    uint64_t now = sn_test_now_ms();
    uint64_t gap = 1000 / (uint64_t)f->rate;
    while (now >= f->next_ms && f->nfds < 64) {
        char ip[32];
        snprintf(ip, sizeof ip, "127.0.0.%u", 10 + f->ip_i++ % (unsigned)f->nips);
        int fd = sn_test_udp_socket_on(ip);
        sn_test_udp_send_to(fd, f->port, hello, hello_len);
        f->fds[f->nfds] = fd;
        f->born[f->nfds++] = now;
        f->opened++;
        f->next_ms += gap;
    }
    for (int i = 0; i < f->nfds;) {
        uint8_t buf[2048];
        ssize_t r = recv(f->fds[i], buf, sizeof buf, 0);
        bool done = false;
        if (sn_test_is_sealnet_hvr(buf, (size_t)r)) {
            uint8_t cookie[32];
            memcpy(cookie, buf + 28, 32);
            send_cookie_hello(f->fds[i], f->port, cookie);
            f->proven++;
            done = true; /* and silent from now on */
        } else if (now - f->born[i] > 3000) {
            done = true;
        }
        if (done) {
            close(f->fds[i]);
            f->fds[i] = f->fds[f->nfds - 1];
            f->born[i] = f->born[--f->nfds];
        } else {
            i++;
        }
    }
}

static void flood_stop(flood *f)
{
    for (int i = 0; i < f->nfds; i++)
        close(f->fds[i]);
    f->nfds = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs a flood of `rate` silent cookie-proven handshakes per second from `nips` addresses
 * (127.0.0.10...) against a host at default settings; after the table had time to fill,
 * CLIENTS legitimate clients connect one after the other. Each must connect; the times are
 * printed (the goal is <= 2 s) and asserted far below the 10 s handshake timeout that every
 * client hit before the fix. */
static void legit_clients_under_flood(int nips, int rate)
{
    enum { CLIENTS = 6 };
    sn_host_config c;
    sn_host_default_config(&c);
    c.handshake_timeout_ms = 10000;
    sn_host *srv = server_host(&c);
    served s = {0};
    flood f = {.port = sn_host_get_port(srv), .nips = nips, .rate = rate};
    f.next_ms = sn_test_now_ms();
    sn_host *cli = sn_host_create(NULL);
    assert_non_null(cli);
    served sc = {0};
    /* Warm-up: at least 4 s, which fills the 256-slot table at 100/s (and one source's 64), and
     * longer (up to 15 s) when the machine is too loaded for the flood to keep its rate: the
     * clients must meet a table the flood holds. */
    const uint64_t fill =
        nips == 1 ? (uint64_t)c.max_half_open_per_source : (uint64_t)c.max_half_open * 3 / 4;
    uint64_t warm_start = sn_test_now_ms();
    sn_host_stats st;
    for (;;) {
        flood_step(&f);
        serve(srv, &s);
        sn_test_sleep_ms(1);
        uint64_t waited = sn_test_now_ms() - warm_start;
        if (waited < 4000) continue;
        sn_host_get_stats(srv, &st);
        if (st.incoming_half_open_now >= fill || waited >= 15000) break;
    }
    uint64_t full_before = st.incoming_half_open_now;
    uint64_t times[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        uint64_t t0 = sn_test_now_ms();
        int want = sc.connects + 1;
        assert_non_null(sn_host_connect(cli, "127.0.0.1", f.port, "localhost", client_opts));
        while (sc.connects < want && sc.disconnects == 0 && sn_test_now_ms() - t0 < 12000) {
            flood_step(&f);
            serve(srv, &s);
            serve(cli, &sc);
            sn_test_sleep_ms(1);
        }
        times[i] = sn_test_now_ms() - t0;
        if (sc.connects < want)
            fail_msg("client %d did not connect: %s (after %llu ms)", i, sc.last_message,
                     (unsigned long long)times[i]);
    }
    sn_host_get_stats(srv, &st);
    uint64_t sorted[CLIENTS];
    memcpy(sorted, times, sizeof times);
    qsort(sorted, CLIENTS, sizeof *sorted, cmp_u64);
    print_message(
        "flood %d/s from %d address(es): %llu proven, half-open %llu before the "
        "clients (peak %llu), evicted %llu, dropped %llu (source %llu), "
        "pressure timeouts %llu; clients connected in min %llu / median %llu / max "
        "%llu ms\n",
        rate, nips, (unsigned long long)f.proven, (unsigned long long)full_before,
        (unsigned long long)st.incoming_half_open_peak, (unsigned long long)st.evicted_half_open,
        (unsigned long long)st.dropped_half_open, (unsigned long long)st.dropped_half_open_source,
        (unsigned long long)st.half_open_pressure_timeouts, (unsigned long long)sorted[0],
        (unsigned long long)sorted[CLIENTS / 2], (unsigned long long)sorted[CLIENTS - 1]);
    assert_true(st.incoming_half_open_peak <= (uint64_t)c.max_half_open);
    assert_int_equal(s.connects, CLIENTS);
    /* The flood held its share of the table throughout (the test measured under pressure). */
    assert_true(full_before >= fill);
    for (int i = 0; i < CLIENTS; i++)
        assert_true(times[i] < 5000); /* goal 2 s; bound generous for a loaded ASan machine */
    flood_stop(&f);
    sn_host_free(cli);
    sn_host_free(srv);
}

static void test_legit_clients_one_address_flood(void **state)
{
    (void)state;
    legit_clients_under_flood(1, 100);
}

static void test_legit_clients_fifty_address_flood(void **state)
{
    (void)state;
    legit_clients_under_flood(50, 100);
}

/* Faster than the table turns over (500/s against 256 slots: every slot younger than the 1 s
 * a handshake is protected for): fairness between sources lets the clients in. */
static void test_legit_clients_fast_fifty_address_flood(void **state)
{
    (void)state;
    legit_clients_under_flood(50, 500);
}

/* ---- defect 6: memory per half-open session ------------------------------------------------- */

static size_t put_record(uint8_t *out, uint8_t type, unsigned epoch, uint64_t seq,
                         const uint8_t *body, size_t len)
{
    out[0] = type, out[1] = 0xfe, out[2] = 0xfd;
    out[3] = (uint8_t)(epoch >> 8), out[4] = (uint8_t)epoch;
    for (int i = 0; i < 6; i++)
        out[5 + i] = (uint8_t)(seq >> (8 * (5 - i)));
    out[11] = (uint8_t)(len >> 8), out[12] = (uint8_t)len;
    memcpy(out + 13, body, len);
    return 13 + len;
}

/* After its cookie hello: 11 one-byte fragments, each declaring a 100 KiB handshake message of
 * its own message_seq, and 100 records of the next epoch. */
static void send_hoarding(int fd, int port, fx_rng *rng)
{
    uint8_t d[256], body[64];
    static const uint8_t types[] = {11, 16, 15, 11, 16, 20, 11, 16, 15, 11, 16};
    for (int i = 0; i < 11; i++) {
        size_t msg = 100 * 1024;
        body[0] = types[i];
        body[1] = (uint8_t)(msg >> 16), body[2] = (uint8_t)(msg >> 8), body[3] = (uint8_t)msg;
        body[4] = 0, body[5] = (uint8_t)(1 + i);              /* message_seq: ahead, one each */
        body[6] = 0, body[7] = 0, body[8] = (uint8_t)(i * 7); /* fragment offset */
        body[9] = 0, body[10] = 0, body[11] = 1;              /* fragment length 1 */
        body[12] = 0xab;
        sn_test_udp_send_to(fd, port, d, put_record(d, 22, 0, 10 + (uint64_t)i, body, 13));
    }
    for (int i = 0; i < 100; i++) {
        fx_rng_fill(rng, body, 48);
        sn_test_udp_send_to(fd, port, d,
                            put_record(d, (uint8_t)(i % 2 ? 23 : 22), 1, (uint64_t)i, body, 48));
    }
}

/* Heap in use: the counting allocator when the TLS library's allocations go through it
 * (OpenSSL), else AddressSanitizer's own count of the whole heap (mbed TLS from Debian has no
 * allocation hooks); 0 without either. */
static size_t heap_now(void)
{
    if (sn_allocator_covers_backend()) return atomic_load(&heap_live);
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    return 0;
#endif
}

/* Heap bytes per half-open session: N sessions opened (cookie-proven), each sending `hoard`
 * or nothing, processed by the server; the growth divided by N. */
static size_t bytes_per_session(bool hoard)
{
    enum { N = 40 };
    sn_host_config c;
    sn_host_default_config(&c);
    c.handshake_timeout_ms = 60000;
    c.pressure_handshake_timeout_ms = 60000;
    sn_host *srv = server_host(&c);
    int port = sn_host_get_port(srv);
    served s = {0};
    fx_rng rng;
    fx_rng_seed(&rng, 16);
    int fds[N + 1];
    uint8_t cookie[32];
    /* One session first, so one-time allocations (contexts, tables) are out of the figure. */
    fds[N] = prove_cookie(srv, &s, port, "127.0.0.1", cookie);
    send_cookie_hello(fds[N], port, cookie);
    if (hoard) send_hoarding(fds[N], port, &rng);
    for (int k = 0; k < 40; k++) {
        serve(srv, &s);
        sn_test_sleep_ms(2);
    }
    /* The cookie round trips of the N sessions to come, before the baseline. */
    uint8_t cookies[N][32];
    for (int i = 0; i < N; i++)
        fds[i] = prove_cookie(srv, &s, port, i % 2 ? "127.0.0.4" : "127.0.0.5", cookies[i]);
    for (int k = 0; k < 20; k++) {
        serve(srv, &s);
        sn_test_sleep_ms(2);
    }
    size_t before = heap_now();
    for (int i = 0; i < N; i++) {
        send_cookie_hello(fds[i], port, cookies[i]);
        if (hoard) send_hoarding(fds[i], port, &rng);
        serve(srv, &s);
    }
    for (int k = 0; k < 150; k++) {
        serve(srv, &s);
        sn_test_sleep_ms(2);
    }
    size_t after = heap_now();
    sn_host_stats st;
    sn_host_get_stats(srv, &st);
    assert_int_equal(st.incoming_half_open_now, N + 1);
    for (int i = 0; i <= N; i++)
        close(fds[i]);
    sn_host_free(srv);
    return after > before ? (after - before) / N : 0;
}

static void test_memory_per_half_open_session(void **state)
{
    (void)state;
#if !defined(__SANITIZE_ADDRESS__)
    if (!sn_allocator_covers_backend()) {
        print_message("no way to count the TLS library's heap in this build: skipped\n");
        skip();
    }
#endif
    size_t quiet = bytes_per_session(false);
    size_t hoarding = bytes_per_session(true);
    print_message("heap per half-open session: %zu bytes silent, %zu bytes after 11 fragments "
                  "declaring 100 KiB + 100 next-epoch records (bound 65536)\n",
                  quiet, hoarding);
    assert_true(quiet > 0);
    assert_true(hoarding <= 64 * 1024);
}

/* ---- defect 8: spoofed and genuine alerts during the handshake ------------------------------ */

static fx_relay *spoof_relay;
static int spoof_dir;           /* FX_C2S: alerts to the server; else to the client */
static int spoof_at;            /* inject before the n-th datagram of that direction (1-based) */
static int spoof_seen;          /* datagrams of that direction so far */
static bool spoof_then_silence; /* drop the real datagram and everything after it */
static uint64_t spoof_ms;

static const uint8_t fatal_alert[15] = {21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2, 2, 40};

static bool spoof_filter(int dir, const uint8_t *d, size_t len)
{
    (void)d, (void)len;
    if (dir != spoof_dir) return spoof_then_silence && spoof_ms; /* silence: both ways */
    if (++spoof_seen == spoof_at) {
        fx_relay_inject(spoof_relay, dir, fatal_alert, sizeof fatal_alert);
        spoof_ms = sn_test_now_ms();
    }
    return spoof_then_silence && spoof_ms;
}

/* Runs a handshake through a relay that injects a plaintext fatal alert from the other side's
 * address; returns the client and server statuses through the pointers. */
static void handshake_with_spoof(int dir, int at, bool silence, sn_dtls_status *cst,
                                 sn_dtls_status *sst, char *why, size_t why_cap,
                                 uint64_t *failed_after)
{
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.retransmit_initial_ms = 300;
    set.handshake_timeout_ms = 8000;
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, server_opts, &set));
    assert_true(fx_relay_start(&relay, srv.port, 8));
    spoof_relay = &relay;
    spoof_dir = dir, spoof_at = at, spoof_seen = 0, spoof_then_silence = silence, spoof_ms = 0;
    relay.filter = spoof_filter;
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    *failed_after = 0;
    for (;;) {
        fx_world_step(&w, 5);
        sn_dtls_peer *sp = fx_server_last_peer(&srv);
        sn_dtls_peer *victim = dir == FX_C2S ? sp : cl;
        if (silence && victim && spoof_ms && !*failed_after &&
            sn_dtls_peer_get_status(victim) != SN_DTLS_STATUS_HANDSHAKING)
            *failed_after = sn_test_now_ms() - spoof_ms;
        bool cdone = sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING;
        bool sdone = sp && sn_dtls_peer_get_status(sp) != SN_DTLS_STATUS_HANDSHAKING;
        if ((cdone && sdone) || (silence && *failed_after) || sn_test_now_ms() > end) break;
    }
    sn_dtls_peer *sp = fx_server_last_peer(&srv);
    *cst = sn_dtls_peer_get_status(cl);
    *sst = sp ? sn_dtls_peer_get_status(sp) : SN_DTLS_STATUS_DISCONNECTED;
    sn_dtls_peer *victim = dir == FX_C2S ? sp : cl;
    snprintf(why, why_cap, "%s", victim ? sn_dtls_peer_get_error_message(victim) : "");
    relay.filter = NULL;
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

/* A forged alert "from the client" reaches the server after its session exists (right ahead of
 * the client's key exchange flight), and one "from the server" reaches the client ahead of the
 * server's flight: both handshakes complete. Before the fix the server's ended at once. */
static void test_spoofed_alert_does_not_end_handshake(void **state)
{
    (void)state;
    int dirs[] = {FX_C2S, FX_S2C};
    int ats[] = {3, 2};
    for (int i = 0; i < 2; i++) {
        sn_dtls_status c, s;
        char why[320];
        uint64_t after;
        handshake_with_spoof(dirs[i], ats[i], false, &c, &s, why, sizeof why, &after);
        print_message("spoofed alert to the %s: client %d, server %d\n",
                      i == 0 ? "server" : "client", c, s);
        assert_int_equal(c, SN_DTLS_STATUS_CONNECTED);
        assert_int_equal(s, SN_DTLS_STATUS_CONNECTED);
    }
}

/* The same alert followed by silence (the other side really gave up): the handshake ends
 * with the alert's reason within a second. */
static void test_genuine_alert_ends_handshake_within_1s(void **state)
{
    (void)state;
    sn_dtls_status c, s;
    char why[320];
    uint64_t after;
    handshake_with_spoof(FX_C2S, 3, true, &c, &s, why, sizeof why, &after);
    print_message("alert then silence: server peer %d \"%s\" after %llu ms\n", s, why,
                  (unsigned long long)after);
    assert_int_equal(s, SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(why, "alert"));
    assert_true(after > 0 && after <= 1000 + 250); /* 750 ms grace + one poll under load */
}

/* ---- defect 9: HelloVerifyRequests answered a bounded number of times ---------------------- */

static void test_endless_hello_verify_requests(void **state)
{
    (void)state;
    int fd = sn_test_udp_socket_on("127.0.0.1");
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.handshake_timeout_ms = 8000;
    sn_dtls_peer *cl = fx_client_connect(ntohs(a.sin_port), "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_rng rng;
    fx_rng_seed(&rng, 9);
    int hellos = 0;
    uint64_t t0 = sn_test_now_ms();
    while (sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() - t0 < WAIT_MS) {
        sn_dtls_peer_poll(cl);
        uint8_t buf[2048];
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t r = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (r > 25 && buf[0] == 22 && buf[13] == 1) {
            hellos++;
            /* A HelloVerifyRequest with a fresh cookie, echoing the hello's sequence numbers. */
            uint8_t h[13 + 12 + 3 + 32];
            memcpy(h, buf, 11);
            h[1] = 0xfe, h[2] = 0xff;
            h[11] = 0, h[12] = 12 + 3 + 32;
            h[13] = 3, h[14] = 0, h[15] = 0, h[16] = 35;
            h[17] = buf[17], h[18] = buf[18];
            h[19] = h[20] = h[21] = 0;
            h[22] = 0, h[23] = 0, h[24] = 35;
            h[25] = 0xfe, h[26] = 0xff, h[27] = 32;
            fx_rng_fill(&rng, h + 28, 32);
            sendto(fd, h, sizeof h, 0, (struct sockaddr *)&from, flen);
            continue;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        poll(&pfd, 1, 5);
    }
    uint64_t took = sn_test_now_ms() - t0;
    print_message("endless HelloVerifyRequests: client answered %d, ended after %llu ms: \"%s\"\n",
                  hellos, (unsigned long long)took, sn_dtls_peer_get_error_message(cl));
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(cl), "HelloVerifyRequests"));
    assert_true(hellos <= 10);
    assert_true(took < 3000);
    sn_dtls_peer_free(cl);
    close(fd);
}

/* ---- defect 9: a too-large handshake message is reported as such --------------------------- */

static void test_too_large_message_reported(void **state)
{
    (void)state;
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.handshake_timeout_ms = 1000;
    fx_server srv;
    assert_true(fx_server_start(&srv, server_opts, &set));
    int fd = sn_test_udp_socket_on("127.0.0.1");
    sn_test_udp_send_to(fd, srv.port, hello, hello_len);
    uint8_t buf[2048];
    ssize_t r = -1;
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    while (!sn_test_is_sealnet_hvr(buf, (size_t)r) && sn_test_now_ms() < end) {
        fx_server_step(&srv);
        sn_test_sleep_ms(2);
        r = recv(fd, buf, sizeof buf, 0);
    }
    assert_true(sn_test_is_sealnet_hvr(buf, (size_t)r));
    send_cookie_hello(fd, srv.port, buf + 28);
    /* A ClientKeyExchange declaring 100 KiB, its first byte only. */
    uint8_t body[13] = {16, 0x01, 0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 0x42};
    uint8_t d[64];
    sn_dtls_peer *sp = NULL;
    end = sn_test_now_ms() + WAIT_MS;
    while (!(sp = fx_server_last_peer(&srv)) && sn_test_now_ms() < end) {
        fx_server_step(&srv);
        sn_test_sleep_ms(2);
    }
    assert_non_null(sp);
    sn_test_udp_send_to(fd, srv.port, d, put_record(d, 22, 0, 5, body, sizeof body));
    while (sn_dtls_peer_get_status(sp) == SN_DTLS_STATUS_HANDSHAKING && sn_test_now_ms() < end) {
        fx_server_step(&srv);
        sn_test_sleep_ms(5);
    }
    const char *why = sn_dtls_peer_get_error_message(sp);
    print_message("oversized handshake message: \"%s\"\n", why);
    assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(why, "too large"));
    assert_null(strstr(why, "unknown TLS error"));
    sn_dtls_peer_stats ps;
    sn_dtls_peer_get_stats(sp, &ps);
    assert_true(ps.dropped_screened >= 1);
    close(fd);
    fx_server_stop(&srv);
}

/* ---- defect 9: a client restarting on the same address and port ----------------------------- */

static void test_restart_reported_as_restart(void **state)
{
    (void)state;
    sn_host_config c;
    sn_host_default_config(&c);
    c.keepalive_interval_ms = 0;
    sn_host *srv = server_host(&c);
    fx_relay relay;
    assert_true(fx_relay_start(&relay, sn_host_get_port(srv), 5));
    served s = {0};
    for (int round = 0; round < 2; round++) {
        sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", client_opts, NULL);
        assert_non_null(cl);
        uint64_t end = sn_test_now_ms() + WAIT_MS;
        while (s.connects < round + 1 && sn_test_now_ms() < end) {
            fx_relay_step(&relay);
            sn_dtls_peer_poll(cl);
            serve(srv, &s);
            sn_test_sleep_ms(1);
        }
        assert_int_equal(s.connects, round + 1);
        /* Gone without a close_notify reaching the server (a crash, a reboot). */
        relay.blackhole = true;
        sn_dtls_peer_free(cl);
        for (int k = 0; k < 20; k++) {
            fx_relay_step(&relay);
            sn_test_sleep_ms(1);
        }
        relay.blackhole = false;
    }
    uint64_t end = sn_test_now_ms() + 2000;
    while (s.disconnects < 1 && sn_test_now_ms() < end) {
        fx_relay_step(&relay);
        serve(srv, &s);
        sn_test_sleep_ms(1);
    }
    print_message("restart: reason %s, \"%s\"\n", sn_host_disconnect_reason_string(s.last_reason),
                  s.last_message);
    assert_int_equal(s.disconnects, 1);
    assert_int_equal(s.last_reason, SN_HOST_DISCONNECT_RESTARTED);
    assert_non_null(strstr(s.last_message, "restarted"));
    assert_null(strstr(s.last_message, "close_notify"));
    fx_relay_stop(&relay);
    sn_host_free(srv);
}

/* ---- shorter half-open timeouts under pressure (on the injected clock) -------------------- */

/* With the table at least half full, a half-open handshake ends at
 * pressure_handshake_timeout_ms instead of handshake_timeout_ms, oldest first, until the table
 * is below half again; below half, they keep their full timeout. */
static void test_pressure_shortens_half_open_timeout(void **state)
{
    (void)state;
    enum { CAP = 8, OPEN = 6 };
    sn_test_clock_install(7000000);
    sn_host_config c;
    sn_host_default_config(&c);
    c.max_half_open = CAP;
    c.handshake_timeout_ms = 20000;
    c.pressure_handshake_timeout_ms = 500;
    sn_host *srv = server_host(&c);
    int port = sn_host_get_port(srv);
    served s = {0};
    int fds[OPEN];
    uint64_t t0 = sn_test_clock_now_ms();
    for (int i = 0; i < OPEN; i++) {
        uint8_t cookie[32];
        fds[i] = prove_cookie(srv, &s, port, "127.0.0.9", cookie);
        send_cookie_hello(fds[i], port, cookie);
        for (int k = 0; k < 5; k++) {
            serve(srv, &s);
            sn_test_sleep_ms(1);
        }
    }
    sn_host_stats st;
    sn_host_get_stats(srv, &st);
    assert_int_equal(st.incoming_half_open_now, OPEN);
    uint64_t first_end = 0;
    for (int k = 0; k < 150; k++) { /* 1.5 s of injected time */
        serve(srv, &s);
        sn_host_get_stats(srv, &st);
        if (!first_end && st.half_open_pressure_timeouts) first_end = sn_test_clock_now_ms();
        sn_test_clock_advance(10);
    }
    print_message("under pressure: %d half-open, %llu ended at %llu ms of injected time, %llu "
                  "left with their full timeout\n",
                  OPEN, (unsigned long long)st.half_open_pressure_timeouts,
                  (unsigned long long)(first_end - t0),
                  (unsigned long long)st.incoming_half_open_now);
    /* 6, 5, 4 are at least half of 8: three end; 3 is below half: those stay. */
    assert_int_equal(st.half_open_pressure_timeouts, OPEN - (CAP / 2 - 1));
    assert_int_equal(st.incoming_half_open_now, CAP / 2 - 1);
    assert_true(first_end - t0 >= 500 && first_end - t0 <= 500 + 10);
    for (int i = 0; i < OPEN; i++)
        close(fds[i]);
    sn_host_free(srv);
    sn_test_clock_remove();
}

/* ---- the classic server path (sn_dtls_server, Godot's loop) ------------------------------- */

/* Godot's server loop: take connections, poll every peer, free the ones that ended. */
typedef struct classic {
    sn_udp_server *udp;
    sn_dtls_server *dtls;
    int port;
    sn_dtls_peer **peers;
    int n, cap;
    int connected;
} classic;

static void classic_start(classic *c, const sn_dtls_settings *set)
{
    memset(c, 0, sizeof *c);
    c->udp = sn_udp_server_new();
    c->dtls = sn_dtls_server_new();
    assert_int_equal(sn_udp_server_listen(c->udp, 0, "127.0.0.1"), SN_OK);
    sn_udp_server_set_max_pending_connections(c->udp, 1024);
    assert_int_equal(sn_dtls_server_set_settings(c->dtls, set), SN_OK);
    assert_int_equal(sn_dtls_server_setup(c->dtls, server_opts), SN_OK);
    c->port = sn_udp_server_get_local_port(c->udp);
    c->cap = 4096;
    c->peers = calloc((size_t)c->cap, sizeof *c->peers);
}

static void classic_step(classic *c)
{
    sn_udp_server_poll(c->udp);
    while (sn_udp_server_is_connection_available(c->udp)) {
        sn_dtls_peer *p =
            sn_dtls_server_take_connection(c->dtls, sn_udp_server_take_connection(c->udp));
        if (sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING && c->n < c->cap)
            c->peers[c->n++] = p;
        else
            sn_dtls_peer_free(p);
    }
    for (int i = 0; i < c->n;) {
        sn_dtls_peer *p = c->peers[i];
        sn_dtls_status before = sn_dtls_peer_get_status(p);
        sn_dtls_peer_poll(p);
        sn_dtls_status st = sn_dtls_peer_get_status(p);
        if (before == SN_DTLS_STATUS_HANDSHAKING && st == SN_DTLS_STATUS_CONNECTED) c->connected++;
        if (st != SN_DTLS_STATUS_HANDSHAKING && st != SN_DTLS_STATUS_CONNECTED) {
            sn_dtls_peer_free(p);
            c->peers[i] = c->peers[--c->n];
        } else {
            i++;
        }
    }
}

static void classic_stop(classic *c)
{
    for (int i = 0; i < c->n; i++)
        sn_dtls_peer_free(c->peers[i]);
    free(c->peers);
    sn_dtls_server_free(c->dtls);
    sn_udp_server_free(c->udp);
}

/* A cookie round trip against the classic server (stepped meanwhile). */
static int classic_cookie(classic *c, const char *ip, uint8_t cookie[32])
{
    int fd = sn_test_udp_socket_on(ip);
    sn_test_udp_send_to(fd, c->port, hello, hello_len);
    uint8_t buf[2048];
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    for (;;) {
        classic_step(c);
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (sn_test_is_sealnet_hvr(buf, (size_t)r)) break;
        if (sn_test_now_ms() > end) fail_msg("no HelloVerifyRequest for %s", ip);
        sn_test_sleep_ms(1);
    }
    memcpy(cookie, buf + 28, 32);
    return fd;
}

/* The classic server had no half-open cap at all (defect 9): now max_half_open holds whatever
 * each address queued, a source's limit holds, and after a second the oldest is evicted for a
 * newcomer (the evicted peer turns ERROR at its next poll and the loop frees it). */
static void test_classic_server_half_open_limits(void **state)
{
    (void)state;
    enum { ATTACKERS = 40, CAP = 4 };
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.max_half_open = CAP;
    set.max_half_open_per_source = 3;
    classic c;
    classic_start(&c, &set);
    int fds[ATTACKERS];
    uint8_t cookies[ATTACKERS][32];
    for (int i = 0; i < ATTACKERS; i++)
        fds[i] = classic_cookie(&c, i % 2 ? "127.0.0.6" : "127.0.0.7", cookies[i]);
    for (int i = 0; i < ATTACKERS; i++) {
        sn_test_udp_send_to(fds[i], c.port, "junk", 4);
        sn_test_udp_send_to(fds[i], c.port, hello, hello_len);
        send_cookie_hello(fds[i], c.port, cookies[i]);
    }
    sn_dtls_server_stats st;
    for (int k = 0; k < 50; k++) {
        classic_step(&c);
        sn_dtls_server_get_stats(c.dtls, &st);
        assert_true(st.half_open_now <= CAP);
        sn_test_sleep_ms(5);
    }
    sn_dtls_server_get_stats(c.dtls, &st);
    print_message("classic cap %d (3 per source): half-open %llu, started %llu, dropped %llu\n",
                  CAP, (unsigned long long)st.half_open_now,
                  (unsigned long long)st.handshakes_started,
                  (unsigned long long)st.half_open_dropped);
    assert_int_equal(st.half_open_now, CAP);
    assert_int_equal(st.handshakes_started, CAP);
    assert_int_equal(st.half_open_dropped, ATTACKERS - CAP);
    /* A second later a newcomer from a third address evicts the oldest. */
    sn_test_sleep_ms(1100);
    uint8_t cookie[32];
    int late = classic_cookie(&c, "127.0.0.8", cookie);
    send_cookie_hello(late, c.port, cookie);
    for (int k = 0; k < 20; k++) {
        classic_step(&c);
        sn_test_sleep_ms(2);
    }
    sn_dtls_server_get_stats(c.dtls, &st);
    assert_int_equal(st.half_open_evicted, 1);
    assert_int_equal(st.half_open_now, CAP);
    assert_int_equal(c.n, CAP); /* the evicted peer failed and the loop freed it */
    close(late);
    for (int i = 0; i < ATTACKERS; i++)
        close(fds[i]);
    classic_stop(&c);
}

/* A legitimate client reaches a classic server at default settings while 50 addresses open 100
 * silent cookie-proven handshakes per second (before: the table had no bound and the loop's
 * CPU grew with it; now 256 at most, the oldest evicted). */
static void test_classic_server_legit_client_under_flood(void **state)
{
    (void)state;
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    classic c;
    classic_start(&c, &set);
    flood f = {.port = c.port, .nips = 50, .rate = 100};
    f.next_ms = sn_test_now_ms();
    /* Warm-up until the flood holds the table and has overflowed it (evicting), at least 4 s and
     * at most 15 s (a loaded machine slows the flood down: the client must meet a full table). */
    uint64_t warm_start = sn_test_now_ms();
    sn_dtls_server_stats st;
    for (;;) {
        flood_step(&f);
        classic_step(&c);
        sn_test_sleep_ms(1);
        uint64_t waited = sn_test_now_ms() - warm_start;
        if (waited < 4000) continue;
        sn_dtls_server_get_stats(c.dtls, &st);
        if ((st.half_open_now >= 192 && st.half_open_evicted > 0) || waited >= 15000) break;
    }
    uint64_t before = st.half_open_now;
    uint64_t t0 = sn_test_now_ms();
    sn_dtls_peer *cl = fx_client_connect(c.port, "localhost", client_opts, NULL);
    assert_non_null(cl);
    while (sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() - t0 < 12000) {
        flood_step(&f);
        classic_step(&c);
        sn_dtls_peer_poll(cl);
        sn_test_sleep_ms(1);
    }
    uint64_t took = sn_test_now_ms() - t0;
    sn_dtls_server_get_stats(c.dtls, &st);
    print_message("classic server, 50-address flood at 100/s: half-open %llu before the client, "
                  "evicted %llu; client: %s after %llu ms\n",
                  (unsigned long long)before, (unsigned long long)st.half_open_evicted,
                  sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED
                      ? "connected"
                      : sn_dtls_peer_get_error_message(cl),
                  (unsigned long long)took);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    assert_true(before >= 192 && st.half_open_now <= 256);
    assert_true(st.half_open_evicted > 0);
    assert_true(took < 5000);
    sn_dtls_peer_free(cl);
    flood_stop(&f);
    classic_stop(&c);
}

/* ---- setup ----------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    tmp = sn_test_tmpdir();
    if (!tmp || !fx_make_cert(tmp, "ec", &key_path, &crt_path)) return -1;
    server_opts = fx_server_options(key_path, crt_path);
    sn_x509_cert *trusted = fx_load_cert(crt_path);
    client_opts = trusted ? sn_tls_options_client(trusted, NULL) : NULL;
    sn_x509_cert_free(trusted);
    if (!server_opts || !client_opts) return -1;
    hello_len = sn_test_capture_client_hello(client_opts, hello, sizeof hello);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sn_tls_options_free(server_opts);
    sn_tls_options_free(client_opts);
    free(key_path);
    free(crt_path);
    sn_test_rmtree(tmp);
    free(tmp);
    return 0;
}

static int remove_clock(void **state)
{
    (void)state;
    sn_test_clock_remove();
    return 0;
}

int main(void)
{
    /* Before anything allocates: OpenSSL binds its allocator at its first allocation. */
    static const sn_allocator counting = {count_malloc, count_realloc, count_free, NULL};
    if (sn_set_allocator(&counting) != SN_OK) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_whatever_is_queued),
        cmocka_unit_test(test_per_source_limit),
        cmocka_unit_test(test_memory_per_half_open_session),
        cmocka_unit_test(test_spoofed_alert_does_not_end_handshake),
        cmocka_unit_test(test_genuine_alert_ends_handshake_within_1s),
        cmocka_unit_test(test_endless_hello_verify_requests),
        cmocka_unit_test(test_too_large_message_reported),
        cmocka_unit_test(test_restart_reported_as_restart),
        cmocka_unit_test(test_legit_clients_one_address_flood),
        cmocka_unit_test(test_legit_clients_fifty_address_flood),
        cmocka_unit_test(test_legit_clients_fast_fifty_address_flood),
        cmocka_unit_test_teardown(test_pressure_shortens_half_open_timeout, remove_clock),
        cmocka_unit_test(test_classic_server_half_open_limits),
        cmocka_unit_test(test_classic_server_legit_client_under_flood),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
