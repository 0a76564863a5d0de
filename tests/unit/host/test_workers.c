/* sn_workers: N hosts on one port (SO_REUSEPORT), one thread each. Clients (client-only hosts on
 * this thread) connect and get echoes; a broadcast from another thread reaches every peer of
 * every worker; a reconnect resumes on whichever worker it lands; stop from another thread
 * ends every worker with close_notify; a worker that cannot start stops them all with the
 * reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/sealnet.h>

#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NCLIENTS 8

static sn_crypto_key *key;
static sn_x509_cert *cert;

static int setup(void **state)
{
    (void)state;
    key = sn_crypto_generate_ec("P-256");
    cert = key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    return cert ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    return 0;
}

static atomic_int connects, receives, disconnects;

/* Echo on the worker's thread; counts what the workers saw. */
static void on_event(sn_workers *w, int worker, sn_host *host, const sn_host_event *ev, void *user)
{
    (void)w, (void)host, (void)user;
    assert_true(worker >= 0 && worker < 2);
    if (ev->type == SN_HOST_EVENT_CONNECT) atomic_fetch_add(&connects, 1);
    if (ev->type == SN_HOST_EVENT_DISCONNECT) atomic_fetch_add(&disconnects, 1);
    if (ev->type == SN_HOST_EVENT_RECEIVE) {
        atomic_fetch_add(&receives, 1);
        sn_host_peer_send(ev->peer, ev->data, ev->len);
    }
}

typedef struct client {
    sn_host *host;
    sn_host_peer *peer;
    bool connected, closed;
    int got_echo, got_news;
} client;

/* Services every client once (non-blocking) and records their events. */
static void step(client *c, int n)
{
    for (int i = 0; i < n; i++) {
        sn_host_event ev;
        while (sn_host_service(c[i].host, &ev, 0) > 0) {
            if (ev.type == SN_HOST_EVENT_CONNECT) c[i].connected = true;
            if (ev.type == SN_HOST_EVENT_DISCONNECT) c[i].closed = true;
            if (ev.type == SN_HOST_EVENT_RECEIVE && ev.len == 4 && !memcmp(ev.data, "ping", 4))
                c[i].got_echo++;
            if (ev.type == SN_HOST_EVENT_RECEIVE && ev.len == 4 && !memcmp(ev.data, "news", 4))
                c[i].got_news++;
        }
    }
    sn_test_sleep_ms(2);
}

#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        uint64_t end_ = sn_test_now_ms() + (ms);                                                   \
        while (!(cond) && sn_test_now_ms() < end_)                                                 \
            step(c, NCLIENTS);                                                                     \
        if (!(cond)) fail_msg("not within %d ms: %s", (int)(ms), #cond);                           \
    } while (0)

static bool all(const client *c, int n, int what)
{
    for (int i = 0; i < n; i++) {
        if (what == 0 && !c[i].connected) return false;
        if (what == 1 && c[i].got_echo < 1) return false;
        if (what == 2 && c[i].got_news < 1) return false;
        if (what == 3 && !c[i].closed) return false;
    }
    return true;
}

static void *stopper(void *arg)
{
    sn_workers_stop(arg);
    return NULL;
}

static void echo_broadcast_resume_stop(void **state)
{
    (void)state;
    atomic_store(&connects, 0);
    atomic_store(&receives, 0);
    atomic_store(&disconnects, 0);
    uint8_t keys[SN_TICKET_KEY_SIZE];
    memset(keys, 0x33, sizeof keys);
    sn_workers_config cfg;
    sn_workers_default_config(&cfg);
    cfg.workers = 2;
    cfg.host.bind_address = "127.0.0.1";
    cfg.host.keepalive_interval_ms = 0;
    cfg.key = key;
    cfg.cert = cert;
    bool tickets = !sn_test_backend_lacks("tickets");
    if (tickets) {
        cfg.ticket_keys = keys;
        cfg.ticket_keys_len = sizeof keys;
    }
    cfg.on_event = on_event;
    sn_workers *w = sn_workers_start(&cfg);
    assert_non_null(w);
    assert_int_equal(sn_workers_count(w), 2);
    int port = sn_workers_get_port(w);
    assert_true(port > 0);

    sn_tls_options *co = sn_tls_options_client(cert, NULL);
    client c[NCLIENTS];
    memset(c, 0, sizeof c);
    for (int i = 0; i < NCLIENTS; i++) {
        sn_host_config hc;
        sn_host_default_config(&hc);
        hc.keepalive_interval_ms = 0;
        c[i].host = sn_host_create(&hc);
        assert_non_null(c[i].host);
        c[i].peer = sn_host_connect(c[i].host, "127.0.0.1", port, "localhost", co);
        assert_non_null(c[i].peer);
    }
    WAIT_FOR(all(c, NCLIENTS, 0), 20000);
    for (int i = 0; i < NCLIENTS; i++)
        assert_int_equal(sn_host_peer_send(c[i].peer, "ping", 4), SN_OK);
    WAIT_FOR(all(c, NCLIENTS, 1), 10000);

    /* A broadcast from this thread (not a worker's) reaches every peer of every worker. */
    assert_int_equal(sn_workers_broadcast(w, "news", 4), SN_OK);
    WAIT_FOR(all(c, NCLIENTS, 2), 10000);

    /* Counters are published by each worker (at most 100 ms old). */
    uint64_t handshakes = 0, bsends = 0;
    uint64_t end = sn_test_now_ms() + 5000;
    do {
        step(c, NCLIENTS);
        handshakes = bsends = 0;
        for (int i = 0; i < 2; i++) {
            sn_workers_stats st;
            sn_workers_get_stats(w, i, &st);
            handshakes += st.host.handshakes_completed;
            bsends += st.broadcast_sends;
        }
    } while ((handshakes < NCLIENTS || bsends < NCLIENTS) && sn_test_now_ms() < end);
    assert_int_equal(handshakes, NCLIENTS);
    assert_int_equal(bsends, NCLIENTS);

    /* Every client comes back with the same options: it resumes, on whichever worker. */
    for (int i = 0; i < NCLIENTS; i++) {
        sn_host_peer_disconnect(c[i].peer);
        c[i].connected = false;
        c[i].peer = sn_host_connect(c[i].host, "127.0.0.1", port, "localhost", co);
        assert_non_null(c[i].peer);
    }
    WAIT_FOR(all(c, NCLIENTS, 0), 20000);
    if (tickets) {
        for (int i = 0; i < NCLIENTS; i++)
            assert_true(sn_host_peer_is_session_resumed(c[i].peer));
        /* Workers publish their counters every 100 ms: wait for the last ones. */
        sn_tls_ticket_stats ts;
        uint64_t until = sn_test_now_ms() + 3000;
        do {
            sn_workers_get_ticket_stats(w, &ts);
            if (ts.resumed >= NCLIENTS) break;
            sn_test_sleep_ms(20);
        } while (sn_test_now_ms() < until);
        assert_int_equal(ts.resumed, NCLIENTS);
    }

    /* Stop from another thread: every worker ends and says goodbye (close_notify). */
    for (int i = 0; i < NCLIENTS; i++)
        c[i].closed = false;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper, w), 0);
    pthread_join(t, NULL);
    assert_true(sn_workers_wait(w, 10000));
    assert_true(sn_workers_stopped(w));
    WAIT_FOR(all(c, NCLIENTS, 3), 10000);
    assert_string_equal(sn_workers_get_error(w), "");
    assert_int_equal(sn_workers_broadcast(w, "late", 4), SN_ERR_UNCONFIGURED);
    sn_workers_free(w);
    for (int i = 0; i < NCLIENTS; i++)
        sn_host_free(c[i].host);
    sn_tls_options_free(co);
    assert_int_equal(atomic_load(&connects), 2 * NCLIENTS);
}

static void failing_start_stops_all(void **state)
{
    (void)state;
    /* A plain socket (no SO_REUSEPORT, no SO_REUSEADDR) holds the port: no worker can join. */
    int squatter = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(squatter, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(squatter, (struct sockaddr *)&sin, &sl), 0);
    sn_workers_config cfg;
    sn_workers_default_config(&cfg);
    cfg.workers = 3;
    cfg.host.bind_address = "127.0.0.1";
    cfg.host.port = ntohs(sin.sin_port);
    cfg.key = key;
    cfg.cert = cert;
    assert_null(sn_workers_start(&cfg));
    assert_non_null(strstr(sn_last_error_message(), "worker 0"));
    assert_non_null(strstr(sn_last_error_message(), "in use"));
    close(squatter);

    /* A corrupt ticket-key file: refused, naming the file. */
    char *dir = sn_test_tmpdir(), *bad = sn_test_path(dir, "bad.key");
    assert_true(sn_test_write_file(bad, "abc\n", 4));
    cfg.host.port = 0;
    cfg.ticket_key_file = bad;
    assert_null(sn_workers_start(&cfg));
    assert_non_null(strstr(sn_last_error_message(), "bad.key"));
    sn_test_rmtree(dir);
    free(bad);
    free(dir);

    cfg.ticket_key_file = NULL;
    cfg.key = NULL;
    assert_null(sn_workers_start(&cfg));
    cfg.key = key;
    cfg.workers = -1;
    assert_null(sn_workers_start(&cfg));
    /* auto: one per CPU */
    cfg.workers = 0;
    sn_workers *w = sn_workers_start(&cfg);
    assert_non_null(w);
    assert_true(sn_workers_count(w) >= 1);
    sn_workers_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_broadcast_resume_stop),
        cmocka_unit_test(failing_start_stops_all),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
