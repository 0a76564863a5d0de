/* sn_host: events in order, idle timeouts and keepalives, broadcast, max peers, the half-open
 * cap under a flood of unfinished handshakes, shutdown notification, ICMP refusal, and 200
 * clients exchanging messages. Loopback only, port 0, every wait bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/sealnet.h>
#include <sealnet/host.h>

#include "core.h"
#include "test_hooks.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static sn_crypto_key *key;
static sn_x509_cert *cert;
static sn_tls_options *server_opts, *client_opts;

static int setup(void **state)
{
    (void)state;
    key = sn_crypto_generate_ec("P-256");
    cert = key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    server_opts = cert ? sn_tls_options_server(key, cert) : NULL;
    client_opts = sn_tls_options_client_unsafe(NULL);
    if (!server_opts || !client_opts) {
        fprintf(stderr, "setup: %s\n", sn_last_error_message());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sn_tls_options_free(server_opts);
    sn_tls_options_free(client_opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    return 0;
}

/* A test on the injected clock or transport puts the real ones back even when it fails. */
static int remove_hooks(void **state)
{
    (void)state;
    sn_test_transport_fail_sends(-2, 0);
    sn_test_transport_fail_sends_to(0, 0);
    sn_test_transport_remove();
    sn_test_clock_remove();
    return 0;
}

/* ---- harness: record every event of every host ----------------------------------------- */

typedef struct rec {
    sn_host_event_type type;
    uint32_t id;
    sn_host_disconnect_reason reason;
    char data[64];
    size_t len;
    char msg[256];
    uint64_t at_ms;
} rec;

typedef struct evlog {
    rec *r;
    size_t n, cap;
    /* Called for each event (after recording), e.g. to echo. */
    void (*on)(sn_host *h, const sn_host_event *ev, void *user);
    void *user;
} evlog;

static void record(evlog *l, const sn_host_event *ev)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->r = realloc(l->r, l->cap * sizeof *l->r);
        assert_non_null(l->r);
    }
    rec *r = &l->r[l->n++];
    memset(r, 0, sizeof *r);
    r->type = ev->type;
    r->id = ev->peer_id;
    r->reason = ev->reason;
    r->len = ev->len;
    if (ev->len) memcpy(r->data, ev->data, ev->len < sizeof r->data ? ev->len : sizeof r->data);
    snprintf(r->msg, sizeof r->msg, "%s", ev->message ? ev->message : "");
    r->at_ms = sn_test_now_ms();
}

static size_t count(const evlog *l, sn_host_event_type t)
{
    size_t c = 0;
    for (size_t i = 0; i < l->n; i++)
        c += l->r[i].type == t;
    return c;
}

static const rec *find(const evlog *l, sn_host_event_type t, uint32_t id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->r[i].type == t && (id == 0 || l->r[i].id == id)) return &l->r[i];
    return NULL;
}

typedef bool (*cond_fn)(void *arg);

/* Services every host (NULL entries are skipped: a host "gone silent") until cond holds or ms
 * pass; sleeps in poll(2) on the hosts' epoll descriptors in between. Returns cond's value. */
static bool pump(sn_host **hosts, evlog **logs, int n, int ms, cond_fn cond, void *arg)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)ms;
    for (;;) {
        for (int i = 0; i < n; i++) {
            if (!hosts[i]) continue;
            sn_host_event ev;
            int r;
            while ((r = sn_host_service(hosts[i], &ev, 0)) > 0) {
                record(logs[i], &ev);
                if (logs[i]->on) logs[i]->on(hosts[i], &ev, logs[i]->user);
            }
            assert_int_equal(r, 0);
        }
        if (cond && cond(arg)) return true;
        uint64_t now = sn_test_now_ms();
        if (now >= end) return cond ? cond(arg) : true;
        struct pollfd pf[16];
        int np = 0, wait = (int)(end - now);
        for (int i = 0; i < n && np < 16; i++) {
            if (!hosts[i]) continue;
            pf[np].fd = sn_host_get_fd(hosts[i]);
            pf[np].events = POLLIN;
            np++;
            int t = sn_host_next_timeout_ms(hosts[i]);
            if (t >= 0 && t < wait) wait = t;
        }
        if (wait > 20) wait = 20;
        poll(pf, (nfds_t)np, wait);
    }
}

/* Like pump, on the injected clock: services every host, then moves the clock on by step_ms,
 * until cond holds or ms of injected time pass. Loopback delivery is synchronous, so nothing
 * waits in real time. Returns cond's value; *at gets the injected time it became true. */
static bool pump_fake(sn_host **hosts, evlog **logs, int n, uint64_t ms, uint64_t step_ms,
                      cond_fn cond, void *arg, uint64_t *at)
{
    uint64_t end = sn_test_clock_now_ms() + ms;
    for (;;) {
        for (int i = 0; i < n; i++) {
            if (!hosts[i]) continue;
            sn_host_event ev;
            int r;
            while ((r = sn_host_service(hosts[i], &ev, 0)) > 0) {
                record(logs[i], &ev);
                logs[i]->r[logs[i]->n - 1].at_ms = sn_test_clock_now_ms();
                if (logs[i]->on) logs[i]->on(hosts[i], &ev, logs[i]->user);
            }
            assert_int_equal(r, 0);
        }
        if (cond && cond(arg)) {
            if (at) *at = sn_test_clock_now_ms();
            return true;
        }
        if (sn_test_clock_now_ms() >= end) return cond ? false : true;
        sn_test_clock_advance(step_ms);
    }
}

static sn_host *server_host(sn_host_config *c)
{
    c->server_options = server_opts;
    c->bind_address = "127.0.0.1";
    c->port = 0;
    sn_host *h = sn_host_create(c);
    if (!h) fprintf(stderr, "server host: %s\n", sn_last_error_message());
    assert_non_null(h);
    assert_true(sn_host_get_port(h) > 0);
    return h;
}

static sn_host *client_host(int keepalive_ms)
{
    sn_host_config c;
    sn_host_default_config(&c);
    c.keepalive_interval_ms = keepalive_ms;
    sn_host *h = sn_host_create(&c);
    assert_non_null(h);
    assert_int_equal(sn_host_get_port(h), 0);
    return h;
}

typedef struct want {
    evlog *log;
    sn_host_event_type type;
    size_t n;
} want;

static bool have(void *arg)
{
    want *w = arg;
    return count(w->log, w->type) >= w->n;
}

typedef struct want2 {
    want a, b;
} want2;

static bool have2(void *arg)
{
    want2 *w = arg;
    return have(&w->a) && have(&w->b);
}

static void echo(sn_host *h, const sn_host_event *ev, void *user)
{
    (void)h;
    (void)user;
    if (ev->type == SN_HOST_EVENT_RECEIVE)
        assert_int_equal(sn_host_peer_send(ev->peer, ev->data, ev->len), SN_OK);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* CONNECT, RECEIVE, DISCONNECT in that order on both sides; keepalives flow (RTT measured) but
 * never surface as RECEIVE; ids, lookups and handles behave. */
static void events_in_order(void **state)
{
    (void)state;
    sn_host_config c;
    sn_host_default_config(&c);
    c.keepalive_interval_ms = 50;
    sn_host *srv = server_host(&c);
    sn_host *cli = client_host(50);
    evlog ls = {0}, lc = {0};
    ls.on = echo;
    sn_host *hosts[] = {srv, cli};
    evlog *logs[] = {&ls, &lc};

    sn_host_peer *p =
        sn_host_connect(cli, "127.0.0.1", sn_host_get_port(srv), "localhost", client_opts);
    assert_non_null(p);
    uint32_t id = sn_host_peer_get_id(p);
    assert_true(id > 0);
    assert_true(sn_host_peer_is_outgoing(p));
    assert_ptr_equal(sn_host_find_peer(cli, id), p);
    int dummy = 7;
    sn_host_peer_set_user_data(p, &dummy);
    assert_int_equal(sn_host_peer_send(p, "x", 1), SN_ERR_UNCONFIGURED);

    want2 w = {{&ls, SN_HOST_EVENT_CONNECT, 1}, {&lc, SN_HOST_EVENT_CONNECT, 1}};
    assert_true(pump(hosts, logs, 2, 5000, have2, &w));
    assert_int_equal(lc.r[0].type, SN_HOST_EVENT_CONNECT);
    assert_int_equal(lc.r[0].id, id);
    assert_int_equal(sn_host_peer_get_state(p), SN_HOST_PEER_CONNECTED);
    assert_string_equal(sn_host_peer_get_address(p), "127.0.0.1");
    assert_int_equal(sn_host_peer_get_port(p), sn_host_get_port(srv));
    assert_non_null(strstr(sn_host_peer_get_cipher(p), "DTLS"));
    assert_int_equal(sn_host_peer_count(srv, SN_HOST_PEER_CONNECTED), 1);

    /* A reserved keepalive shape is refused, anything else goes. */
    uint8_t ka[13] = {0xFF, 'S', 'N', 'K', 0x01};
    assert_int_equal(sn_host_peer_send(p, ka, sizeof ka), SN_ERR_INVALID_PARAMETER);
    ka[4] = 0x03;
    assert_int_equal(sn_host_peer_send(p, ka, sizeof ka), SN_OK);
    assert_int_equal(sn_host_peer_send(p, "hello", 5), SN_OK);
    want w2 = {&lc, SN_HOST_EVENT_RECEIVE, 2};
    assert_true(pump(hosts, logs, 2, 5000, have, &w2));
    /* Let keepalives flow for a while: they must not show up as packets. */
    pump(hosts, logs, 2, 400, NULL, NULL);
    assert_int_equal(count(&ls, SN_HOST_EVENT_RECEIVE), 2);
    assert_int_equal(count(&lc, SN_HOST_EVENT_RECEIVE), 2);
    const rec *r = find(&lc, SN_HOST_EVENT_RECEIVE, id);
    assert_non_null(r);
    assert_int_equal(r->len, 13);
    assert_int_equal(lc.r[2].len, 5);
    assert_memory_equal(lc.r[2].data, "hello", 5);
    assert_true(sn_host_peer_get_rtt_ms(p) >= 0);
    assert_true(sn_host_peer_get_rtt_ms(p) < 1000);
    sn_host_stats st;
    sn_host_get_stats(cli, &st);
    assert_true(st.keepalives_received >= 2);
    assert_int_equal(st.packets_sent, 2);
    assert_int_equal(st.packets_received, 2);
    sn_host_get_stats(srv, &st);
    assert_int_equal(st.handshakes_completed, 1);
    assert_int_equal(st.peers_connected_now, 1);
    assert_true(st.cookies_sent >= 1);

    /* Kick from the client: KICKED here once, CLOSED on the server. */
    sn_host_peer_disconnect(p);
    sn_host_peer_disconnect(p); /* twice is harmless */
    assert_int_equal(sn_host_peer_get_state(p), SN_HOST_PEER_DISCONNECTED);
    want2 w3 = {{&ls, SN_HOST_EVENT_DISCONNECT, 1}, {&lc, SN_HOST_EVENT_DISCONNECT, 1}};
    assert_true(pump(hosts, logs, 2, 5000, have2, &w3));
    pump(hosts, logs, 2, 100, NULL, NULL);
    assert_int_equal(count(&lc, SN_HOST_EVENT_DISCONNECT), 1);
    assert_int_equal(count(&ls, SN_HOST_EVENT_DISCONNECT), 1);
    assert_int_equal(find(&lc, SN_HOST_EVENT_DISCONNECT, 0)->reason, SN_HOST_DISCONNECT_KICKED);
    assert_int_equal(find(&ls, SN_HOST_EVENT_DISCONNECT, 0)->reason, SN_HOST_DISCONNECT_CLOSED);
    /* Order on each side: CONNECT, RECEIVE..., DISCONNECT last. */
    assert_int_equal(ls.r[0].type, SN_HOST_EVENT_CONNECT);
    assert_int_equal(ls.r[ls.n - 1].type, SN_HOST_EVENT_DISCONNECT);
    assert_int_equal(lc.r[lc.n - 1].type, SN_HOST_EVENT_DISCONNECT);
    /* Once the DISCONNECT was delivered and service ran again, the handle is gone. */
    assert_null(sn_host_find_peer(cli, id));
    assert_int_equal(sn_host_peer_count(srv, SN_HOST_PEER_CONNECTED), 0);

    /* A new connection gets a new id, never the old one. */
    sn_host_peer *q = sn_host_connect(cli, "127.0.0.1", sn_host_get_port(srv), NULL, client_opts);
    assert_non_null(q);
    assert_true(sn_host_peer_get_id(q) > id);

    sn_host_free(cli);
    sn_host_free(srv);
    free(ls.r);
    free(lc.r);
}

/* A client that goes silent is timed out after idle_timeout; one that only keeps alive is not. */
static void idle_timeout_and_keepalive(void **state)
{
    (void)state;
    /* On the injected clock: the timers' arithmetic is checked to the step, whatever the load
     * on the machine. */
    sn_test_clock_install(1000000);
    sn_host_config c;
    sn_host_default_config(&c);
    c.idle_timeout_ms = 600;
    c.keepalive_interval_ms = 150;
    sn_host *srv = server_host(&c);
    sn_host *alive = client_host(150);
    sn_host *silent = client_host(150);
    evlog ls = {0}, la = {0}, lq = {0};
    sn_host *hosts[] = {srv, alive, silent};
    evlog *logs[] = {&ls, &la, &lq};
    int port = sn_host_get_port(srv);
    sn_host_peer *pa = sn_host_connect(alive, "127.0.0.1", port, NULL, client_opts);
    sn_host_peer *pq = sn_host_connect(silent, "127.0.0.1", port, NULL, client_opts);
    assert_non_null(pa);
    assert_non_null(pq);
    want w = {&ls, SN_HOST_EVENT_CONNECT, 2};
    assert_true(pump_fake(hosts, logs, 3, 100, 1, have, &w, NULL));
    want2 w2 = {{&la, SN_HOST_EVENT_CONNECT, 1}, {&lq, SN_HOST_EVENT_CONNECT, 1}};
    assert_true(pump_fake(hosts, logs, 3, 100, 1, have2, &w2, NULL));

    uint32_t silent_id = 0, alive_id = 0;
    /* The silent host stops being serviced from now on. */
    uint64_t silent_since = sn_test_clock_now_ms(), at = 0;
    hosts[2] = NULL;
    want w3 = {&ls, SN_HOST_EVENT_DISCONNECT, 1};
    assert_true(pump_fake(hosts, logs, 3, 3000, 5, have, &w3, &at));
    const rec *d = find(&ls, SN_HOST_EVENT_DISCONNECT, 0);
    assert_int_equal(d->reason, SN_HOST_DISCONNECT_TIMEOUT);
    assert_non_null(strstr(d->msg, "idle"));
    silent_id = d->id;
    uint64_t took = at - silent_since;
    print_message("idle timeout after %llu ms of injected time\n", (unsigned long long)took);
    /* Its last packet predates silent_since by at most one keepalive interval. */
    assert_true(took >= 600 - 150);
    assert_true(took <= 600 + 5);
    /* The kept-alive one survives several idle periods without sending any application data. */
    pump_fake(hosts, logs, 3, 1500, 5, NULL, NULL, NULL);
    for (size_t i = 0; i < ls.n; i++)
        if (ls.r[i].type == SN_HOST_EVENT_DISCONNECT)
            print_message("server DISCONNECT id %u %s: %s\n", ls.r[i].id,
                          sn_host_disconnect_reason_string(ls.r[i].reason), ls.r[i].msg);
    assert_int_equal(count(&ls, SN_HOST_EVENT_DISCONNECT), 1);
    assert_int_equal(count(&la, SN_HOST_EVENT_DISCONNECT), 0);
    for (size_t i = 0; i < ls.n; i++)
        if (ls.r[i].type == SN_HOST_EVENT_CONNECT && ls.r[i].id != silent_id) alive_id = ls.r[i].id;
    sn_host_peer *sa = sn_host_find_peer(srv, alive_id);
    assert_non_null(sa);
    assert_int_equal(sn_host_peer_get_state(sa), SN_HOST_PEER_CONNECTED);
    assert_true(sn_host_peer_get_rtt_ms(sa) >= 0);
    assert_true(sn_host_peer_get_rtt_ms(pa) >= 0);
    assert_true(sn_test_clock_now_ms() - sn_host_peer_get_last_packet_time_ms(sa) <= 150 + 5);
    sn_host_stats st;
    sn_host_get_stats(srv, &st);
    assert_int_equal(st.idle_timeouts, 1);
    assert_int_equal(st.packets_received, 0);
    /* 1.5 s of pings from the client every 150 ms, and pongs to the server's own pings. */
    assert_true(st.keepalives_received >= 10);

    /* The silent host, serviced again, learns it was dropped (close_notify from the server). */
    hosts[2] = silent;
    want w4 = {&lq, SN_HOST_EVENT_DISCONNECT, 1};
    assert_true(pump_fake(hosts, logs, 3, 1000, 5, have, &w4, NULL));
    assert_int_equal(find(&lq, SN_HOST_EVENT_DISCONNECT, 0)->reason, SN_HOST_DISCONNECT_CLOSED);

    sn_host_free(silent);
    sn_host_free(alive);
    sn_host_free(srv);
    sn_test_clock_remove();
    free(ls.r);
    free(la.r);
    free(lq.r);
}

/* A connected host peer whose sends start failing for good (a firewall REJECT rule makes
 * sendto fail with EPERM): the DTLS peer gives up its session, and the host turns that into one
 * DISCONNECT ERROR naming the cause, for every peer, and never touches the freed transport
 * again (the regression was a use-after-free on the next keepalive timer, caught by ASan). */
static void fatal_send_error_on_connected_peer(void **state)
{
    (void)state;
    sn_test_transport_install();
    sn_test_clock_install(5000000);
    sn_host_config c;
    sn_host_default_config(&c);
    c.keepalive_interval_ms = 100;
    sn_host *srv = server_host(&c);
    sn_host *c1 = client_host(100), *c2 = client_host(100);
    evlog ls = {0}, l1 = {0}, l2 = {0};
    sn_host *hosts[] = {srv, c1, c2};
    evlog *logs[] = {&ls, &l1, &l2};
    int port = sn_host_get_port(srv);
    assert_non_null(sn_host_connect(c1, "127.0.0.1", port, NULL, client_opts));
    assert_non_null(sn_host_connect(c2, "127.0.0.1", port, NULL, client_opts));
    want w = {&ls, SN_HOST_EVENT_CONNECT, 2};
    assert_true(pump_fake(hosts, logs, 3, 200, 1, have, &w, NULL));

    /* From now on every datagram the server sends fails with EPERM. */
    sn_host_peer *peers[2];
    assert_int_equal(sn_host_get_peers(srv, peers, 2), 2);
    int server_fd = -1;
    {
        /* The server's UDP socket is the one bound to its port. */
        for (int fd = 3; fd < 1024 && server_fd < 0; fd++) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            int type = 0;
            socklen_t tl = sizeof type;
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) continue;
            if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM)
                continue;
            int p = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                            : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            if (p == port) server_fd = fd;
        }
    }
    assert_true(server_fd >= 0);
    sn_test_transport_fail_sends(server_fd, EPERM);
    want wd = {&ls, SN_HOST_EVENT_DISCONNECT, 2};
    assert_true(pump_fake(hosts, logs, 3, 2000, 10, have, &wd, NULL));
    for (size_t i = 0; i < ls.n; i++) {
        if (ls.r[i].type != SN_HOST_EVENT_DISCONNECT) continue;
        print_message("server DISCONNECT %s: %s\n",
                      sn_host_disconnect_reason_string(ls.r[i].reason), ls.r[i].msg);
        assert_int_equal(ls.r[i].reason, SN_HOST_DISCONNECT_ERROR);
        assert_non_null(strstr(ls.r[i].msg, "Operation not permitted"));
    }
    assert_true(sn_test_transport_failed_sends() >= 2);
    /* Many more timer rounds: nothing may touch what the failed sessions released. */
    pump_fake(hosts, logs, 3, 1000, 10, NULL, NULL, NULL);
    assert_int_equal(count(&ls, SN_HOST_EVENT_DISCONNECT), 2);
    sn_host_stats st;
    sn_host_get_stats(srv, &st);
    assert_int_equal(st.peers_connected_now, 0);
    sn_test_transport_fail_sends(-2, 0);
    sn_host_free(c2);
    sn_host_free(c1);
    sn_host_free(srv);
    sn_test_clock_remove();
    sn_test_transport_remove();
    free(ls.r);
    free(l1.r);
    free(l2.r);
}

/* Broadcast reaches every connected peer exactly once; with `except`, all but that one. */
/* Replies to the events of one service pass leave together (one sendmmsg) at the next service
 * call; when the middle one of three fails for good (EPERM from the transport hook, addressed to
 * that client only), exactly that server peer gets DISCONNECT ERROR naming the cause, and the
 * other two clients get their replies and stay connected. */
static void batched_replies_one_fails(void **state)
{
    (void)state;
    sn_test_transport_install();
    sn_host_config c;
    sn_host_default_config(&c);
    c.keepalive_interval_ms = 0; /* only the replies travel */
    sn_host *srv = server_host(&c);
    sn_host *cl[3] = {client_host(0), client_host(0), client_host(0)};
    evlog ls = {0}, lc[3] = {{0}};
    sn_host *hosts[] = {srv, cl[0], cl[1], cl[2]};
    evlog *logs[] = {&ls, &lc[0], &lc[1], &lc[2]};
    int port = sn_host_get_port(srv);
    sn_host_peer *out[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(out[i] = sn_host_connect(cl[i], "127.0.0.1", port, NULL, client_opts));
    want w = {&ls, SN_HOST_EVENT_CONNECT, 3};
    assert_true(pump(hosts, logs, 4, 10000, have, &w));
    want wc = {&lc[2], SN_HOST_EVENT_CONNECT, 1};
    assert_true(pump(hosts, logs, 4, 10000, have, &wc));
    assert_true(pump(hosts, logs, 4, 50, NULL, NULL)); /* the last CONNECTs too */
    for (int i = 0; i < 3; i++)
        assert_int_equal(sn_host_peer_get_state(out[i]), SN_HOST_PEER_CONNECTED);

    /* All three requests wait in the server's socket before it services. */
    for (int i = 0; i < 3; i++) {
        char m[8];
        snprintf(m, sizeof m, "q%d", i);
        assert_int_equal(sn_host_peer_send(out[i], m, 2), SN_OK);
    }
    sn_host_event ev;
    uint32_t ids[3];
    for (int k = 0; k < 3; k++) {
        uint64_t t0 = sn_test_now_ms();
        int r;
        while ((r = sn_host_service(srv, &ev, 10)) == 0)
            assert_true(sn_test_now_ms() - t0 < 5000);
        assert_int_equal(r, 1);
        assert_int_equal(ev.type, SN_HOST_EVENT_RECEIVE);
        ids[k] = ev.peer_id;
        /* The second reply's destination refuses everything from now on. */
        if (k == 1) sn_test_transport_fail_sends_to(sn_host_peer_get_port(ev.peer), EPERM);
        /* Queued, so even the doomed reply is accepted: the failure comes with the flush. */
        assert_int_equal(sn_host_peer_send(ev.peer, "ok", 2), SN_OK);
        assert_int_equal(sn_host_next_timeout_ms(srv), 0);
    }
    assert_int_equal(sn_test_transport_failed_sends(), 0);

    want2 wd = {{&ls, SN_HOST_EVENT_DISCONNECT, 1}, {&lc[0], SN_HOST_EVENT_RECEIVE, 0}};
    assert_true(pump(hosts, logs, 4, 10000, have, &wd.a));
    const rec *d = find(&ls, SN_HOST_EVENT_DISCONNECT, 0);
    print_message("server DISCONNECT %u %s: %s\n", d->id,
                  sn_host_disconnect_reason_string(d->reason), d->msg);
    assert_int_equal(d->id, ids[1]);
    assert_int_equal(d->reason, SN_HOST_DISCONNECT_ERROR);
    assert_non_null(strstr(d->msg, "Operation not permitted"));
    /* sendmmsg reports a failure after the first message only by stopping there; the batch
     * retries that message alone to learn why: at most two attempts for the one datagram. */
    assert_in_range(sn_test_transport_failed_sends(), 1, 2);
    /* The other two replies arrived; their peers are still connected. */
    size_t replies = 0;
    for (int i = 0; i < 3; i++)
        replies += count(&lc[i], SN_HOST_EVENT_RECEIVE);
    for (int t = 0; t < 100 && replies < 2; t++) {
        assert_true(pump(hosts, logs, 4, 20, NULL, NULL));
        replies = 0;
        for (int i = 0; i < 3; i++)
            replies += count(&lc[i], SN_HOST_EVENT_RECEIVE);
    }
    assert_int_equal(replies, 2);
    assert_int_equal(count(&ls, SN_HOST_EVENT_DISCONNECT), 1);
    assert_int_equal(sn_host_peer_count(srv, SN_HOST_PEER_CONNECTED), 2);
    assert_non_null(sn_host_find_peer(srv, ids[0]));
    assert_non_null(sn_host_find_peer(srv, ids[2]));

    sn_test_transport_fail_sends_to(0, 0);
    for (int i = 0; i < 3; i++)
        sn_host_free(cl[i]);
    sn_host_free(srv);
    sn_test_transport_remove();
    free(ls.r);
    for (int i = 0; i < 3; i++)
        free(lc[i].r);
}

static void broadcast_once_each(void **state)
{
    (void)state;
    enum { N = 6 };
    sn_host_config c;
    sn_host_default_config(&c);
    sn_host *srv = server_host(&c);
    sn_host *cli = client_host(1000);
    evlog ls = {0}, lc = {0};
    sn_host *hosts[] = {srv, cli};
    evlog *logs[] = {&ls, &lc};
    uint32_t ids[N];
    for (int i = 0; i < N; i++) {
        sn_host_peer *p =
            sn_host_connect(cli, "127.0.0.1", sn_host_get_port(srv), NULL, client_opts);
        assert_non_null(p);
        ids[i] = sn_host_peer_get_id(p);
    }
    want2 w = {{&ls, SN_HOST_EVENT_CONNECT, N}, {&lc, SN_HOST_EVENT_CONNECT, N}};
    assert_true(pump(hosts, logs, 2, 10000, have2, &w));
    assert_int_equal(sn_host_broadcast(srv, "news", 4, NULL), N);
    sn_host_peer *except = sn_host_find_peer(srv, ls.r[0].id);
    assert_non_null(except);
    assert_int_equal(sn_host_broadcast(srv, "more", 4, except), N - 1);
    want w2 = {&lc, SN_HOST_EVENT_RECEIVE, 2 * N - 1};
    assert_true(pump(hosts, logs, 2, 5000, have, &w2));
    pump(hosts, logs, 2, 200, NULL, NULL);
    assert_int_equal(count(&lc, SN_HOST_EVENT_RECEIVE), 2 * N - 1);
    int news = 0, more = 0;
    for (int i = 0; i < N; i++) {
        int n_news = 0, n_more = 0;
        for (size_t k = 0; k < lc.n; k++) {
            if (lc.r[k].type != SN_HOST_EVENT_RECEIVE || lc.r[k].id != ids[i]) continue;
            n_news += memcmp(lc.r[k].data, "news", 4) == 0;
            n_more += memcmp(lc.r[k].data, "more", 4) == 0;
        }
        assert_int_equal(n_news, 1);
        assert_true(n_more <= 1);
        news += n_news;
        more += n_more;
    }
    assert_int_equal(news, N);
    assert_int_equal(more, N - 1);
    assert_int_equal(sn_host_broadcast(NULL, "x", 1, NULL), -1);
    sn_host_free(cli);
    sn_host_free(srv);
    free(ls.r);
    free(lc.r);
}

/* A full server refuses the next client with a handshake_failure alert: the client sees
 * DISCONNECT HANDSHAKE_FAILED within a second, far before its 10 s handshake timeout. A
 * plaintext alert is unauthenticated, so the client believes it once the server has said
 * nothing else for 750 ms (a spoofed alert is superseded by the real server's next datagram):
 * on the injected clock the refusal comes exactly then. */
static void max_peers_refuses_cleanly(void **state)
{
    (void)state;
    sn_test_clock_install(2000000);
    sn_host_config c;
    sn_host_default_config(&c);
    c.max_peers = 2;
    sn_host *srv = server_host(&c);
    sn_host *cli = client_host(1000);
    evlog ls = {0}, lc = {0};
    sn_host *hosts[] = {srv, cli};
    evlog *logs[] = {&ls, &lc};
    int port = sn_host_get_port(srv);
    for (int i = 0; i < 2; i++)
        assert_non_null(sn_host_connect(cli, "127.0.0.1", port, NULL, client_opts));
    want w = {&lc, SN_HOST_EVENT_CONNECT, 2};
    assert_true(pump_fake(hosts, logs, 2, 500, 1, have, &w, NULL));
    uint64_t t0 = sn_test_clock_now_ms(), at = 0;
    sn_host_peer *third = sn_host_connect(cli, "127.0.0.1", port, NULL, client_opts);
    assert_non_null(third);
    uint32_t id3 = sn_host_peer_get_id(third);
    want w2 = {&lc, SN_HOST_EVENT_DISCONNECT, 1};
    assert_true(pump_fake(hosts, logs, 2, 3000, 5, have, &w2, &at));
    const rec *d = find(&lc, SN_HOST_EVENT_DISCONNECT, 0);
    assert_int_equal(d->id, id3);
    assert_int_equal(d->reason, SN_HOST_DISCONNECT_HANDSHAKE_FAILED);
    assert_true(at - t0 >= 750 && at - t0 <= 1000);
    assert_non_null(strstr(d->msg, "handshake_failure"));
    print_message("refused client saw: %s (after %llu ms of injected time)\n", d->msg,
                  (unsigned long long)(at - t0));
    sn_host_stats st;
    sn_host_get_stats(srv, &st);
    assert_true(st.refused_full >= 1);
    assert_int_equal(st.peers_connected_now, 2);
    assert_int_equal(count(&ls, SN_HOST_EVENT_CONNECT), 2);
    sn_host_get_stats(cli, &st);
    assert_int_equal(st.handshakes_failed, 1);

    /* A full client host refuses its own connect the same way, as an event. */
    sn_host_config cc;
    sn_host_default_config(&cc);
    cc.max_peers = 1;
    sn_host *small = sn_host_create(&cc);
    evlog lm = {0};
    sn_host *h2[] = {srv, small};
    evlog *l2[] = {&ls, &lm};
    assert_non_null(sn_host_connect(small, "127.0.0.1", port, NULL, client_opts));
    sn_host_peer *extra = sn_host_connect(small, "127.0.0.1", port, NULL, client_opts);
    assert_non_null(extra);
    uint32_t extra_id = sn_host_peer_get_id(extra); /* the handle dies after its DISCONNECT */
    want w3 = {&lm, SN_HOST_EVENT_DISCONNECT, 1};
    assert_true(pump_fake(h2, l2, 2, 3000, 5, have, &w3, NULL));
    d = find(&lm, SN_HOST_EVENT_DISCONNECT, 0);
    assert_int_equal(d->id, extra_id);
    assert_int_equal(d->reason, SN_HOST_DISCONNECT_REFUSED);
    assert_non_null(strstr(d->msg, "full"));

    sn_host_free(small);
    sn_host_free(cli);
    sn_host_free(srv);
    free(ls.r);
    free(lc.r);
    free(lm.r);
}

/* Cookie-valid handshakes that never finish (sn_dtls_peer clients we stop polling) cannot hold
 * more than max_half_open slots; the extra ones, arriving while every slot is younger than 1 s
 * (never evicted), are dropped unanswered; when the half-open ones time out, a real client
 * waiting behind them gets in. (Eviction of older ones: tests/system/test_dtls_defences.c.) */
static void half_open_cap_under_flood(void **state)
{
    (void)state;
    enum { FLOOD = 12, CAP = 4 };
    sn_host_config c;
    sn_host_default_config(&c);
    c.max_half_open = CAP;
    c.handshake_timeout_ms = 1000;
    sn_host *srv = server_host(&c);
    evlog ls = {0};
    int port = sn_host_get_port(srv);
    sn_dtls_peer *flood[FLOOD];
    for (int i = 0; i < FLOOD; i++) {
        sn_udp_peer *u = sn_udp_peer_new();
        assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", port), SN_OK);
        flood[i] = sn_dtls_peer_new();
        assert_int_equal(sn_dtls_peer_connect_to_peer(flood[i], u, "localhost", client_opts),
                         SN_OK);
    }
    sn_host *hosts[] = {srv};
    evlog *logs[] = {&ls};
    /* Server answers the cookie-less hellos; each client resends once with its cookie. */
    pump(hosts, logs, 1, 150, NULL, NULL);
    for (int i = 0; i < FLOOD; i++)
        sn_dtls_peer_poll(flood[i]);
    sn_host_stats st;
    uint64_t max_half_open = 0;
    for (int k = 0; k < 10; k++) {
        pump(hosts, logs, 1, 20, NULL, NULL);
        sn_host_get_stats(srv, &st);
        if (st.incoming_half_open_now > max_half_open) max_half_open = st.incoming_half_open_now;
    }
    sn_host_get_stats(srv, &st);
    assert_true(st.cookies_sent >= FLOOD);
    assert_int_equal(max_half_open, CAP);
    assert_int_equal(st.dropped_half_open, FLOOD - CAP);
    assert_int_equal(st.handshakes_started, CAP);

    /* A real client now: its cookie hello is dropped while the slots are held, and it gets in
     * once they time out (1 s) and its ClientHello is retransmitted. */
    sn_host *cli = client_host(1000);
    evlog lc = {0};
    sn_host *h2[] = {srv, cli};
    evlog *l2[] = {&ls, &lc};
    assert_non_null(sn_host_connect(cli, "127.0.0.1", port, NULL, client_opts));
    for (int k = 0; k < 150; k++) {
        pump(h2, l2, 2, 20, NULL, NULL);
        sn_host_get_stats(srv, &st);
        assert_true(st.incoming_half_open_now <= CAP);
        if (count(&lc, SN_HOST_EVENT_CONNECT)) break;
    }
    assert_int_equal(count(&lc, SN_HOST_EVENT_CONNECT), 1);
    sn_host_get_stats(srv, &st);
    assert_true(st.handshakes_failed >= CAP); /* the flood's slots timed out */
    /* The flood never reached the program: one CONNECT on the server, no DISCONNECT. */
    assert_int_equal(count(&ls, SN_HOST_EVENT_CONNECT), 1);
    assert_int_equal(count(&ls, SN_HOST_EVENT_DISCONNECT), 0);

    for (int i = 0; i < FLOOD; i++)
        sn_dtls_peer_free(flood[i]);
    sn_host_free(cli);
    sn_host_free(srv);
    free(ls.r);
    free(lc.r);
}

/* Destroying a server host tells every client (DISCONNECT CLOSED, not a timeout). */
static void destroy_notifies_clients(void **state)
{
    (void)state;
    enum { N = 4 };
    sn_host_config c;
    sn_host_default_config(&c);
    sn_host *srv = server_host(&c);
    sn_host *cli = client_host(1000);
    evlog ls = {0}, lc = {0};
    sn_host *hosts[] = {srv, cli};
    evlog *logs[] = {&ls, &lc};
    for (int i = 0; i < N; i++)
        assert_non_null(
            sn_host_connect(cli, "127.0.0.1", sn_host_get_port(srv), NULL, client_opts));
    want2 w = {{&ls, SN_HOST_EVENT_CONNECT, N}, {&lc, SN_HOST_EVENT_CONNECT, N}};
    assert_true(pump(hosts, logs, 2, 10000, have2, &w));
    uint64_t t0 = sn_test_now_ms();
    sn_host_free(srv);
    hosts[0] = NULL;
    want w2 = {&lc, SN_HOST_EVENT_DISCONNECT, N};
    assert_true(pump(hosts, logs, 2, 3000, have, &w2));
    for (size_t i = 0; i < lc.n; i++)
        if (lc.r[i].type == SN_HOST_EVENT_DISCONNECT)
            assert_int_equal(lc.r[i].reason, SN_HOST_DISCONNECT_CLOSED);
    assert_true(sn_test_now_ms() - t0 < 1000);
    assert_int_equal(sn_host_peer_count(cli, SN_HOST_PEER_CONNECTED), 0);
    sn_host_free(cli);
    free(ls.r);
    free(lc.r);
}

/* Nothing listening: ICMP port unreachable ends the attempt with REFUSED once the refusals have
 * persisted across the hello's retransmissions for 2 s (one forged ICMP message must not end
 * it), long before the handshake timeout. */
static void connect_refused_by_icmp(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    close(fd); /* nobody listens there any more */
    sn_host *cli = client_host(1000);
    evlog lc = {0};
    sn_host *hosts[] = {cli};
    evlog *logs[] = {&lc};
    uint64_t t0 = sn_test_now_ms();
    assert_non_null(sn_host_connect(cli, "127.0.0.1", port, NULL, client_opts));
    want w = {&lc, SN_HOST_EVENT_DISCONNECT, 1};
    assert_true(pump(hosts, logs, 1, 8000, have, &w));
    const rec *d = find(&lc, SN_HOST_EVENT_DISCONNECT, 0);
    assert_int_equal(d->reason, SN_HOST_DISCONNECT_REFUSED);
    assert_non_null(strstr(d->msg, "ICMP"));
    assert_true(d->at_ms - t0 >= 2000 && d->at_ms - t0 < 6000);
    sn_host_free(cli);
    free(lc.r);
}

/* Bad arguments fail at once with a message. */
static void bad_arguments(void **state)
{
    (void)state;
    sn_host_config c;
    sn_host_default_config(&c);
    c.server_options = client_opts;
    assert_null(sn_host_create(&c));
    assert_non_null(strstr(sn_last_error_message(), "server options"));
    sn_host_default_config(&c);
    c.mtu = 10;
    assert_null(sn_host_create(&c));
    assert_non_null(strstr(sn_last_error_message(), "mtu"));
    sn_host *h = sn_host_new();
    assert_non_null(h);
    assert_null(sn_host_connect(h, "nope.invalid", 4242, NULL, client_opts));
    assert_non_null(strstr(sn_last_error_message(), "nope.invalid"));
    assert_null(sn_host_connect(h, "127.0.0.1", 0, NULL, client_opts));
    assert_null(sn_host_connect(h, "127.0.0.1", 4242, NULL, server_opts));
    assert_int_equal(sn_host_peer_count(h, SN_HOST_PEER_HANDSHAKING), 0);
    sn_host_event ev;
    assert_int_equal(sn_host_service(h, &ev, 0), 0);
    assert_int_equal(ev.type, SN_HOST_EVENT_NONE);
    assert_int_equal(sn_host_service(NULL, &ev, 0), -1);
    /* An idle host sleeps instead of spinning: one wait for a 100 ms service. */
    uint64_t t0 = sn_test_now_ms();
    assert_int_equal(sn_host_service(h, &ev, 100), 0);
    assert_true(sn_test_now_ms() - t0 >= 95);
    sn_host_stats st;
    sn_host_get_stats(h, &st);
    assert_true(st.waits <= 3);
    sn_host_free(h);
    sn_host_free(NULL);
    assert_string_equal(sn_host_disconnect_reason_string(SN_HOST_DISCONNECT_TIMEOUT), "TIMEOUT");
    assert_string_equal(sn_host_event_type_string(SN_HOST_EVENT_RECEIVE), "RECEIVE");
}

/* A plain DTLS peer (sn_dtls_peer, as a Godot client would be) talks to a host: it sees the
 * host's pings as 13-byte packets (the documented interop cost) until the program turns
 * keepalives off for that peer, and its own packets arrive as RECEIVE. */
static void plain_dtls_peer_interop(void **state)
{
    (void)state;
    sn_host_config c;
    sn_host_default_config(&c);
    c.keepalive_interval_ms = 50;
    sn_host *srv = server_host(&c);
    evlog ls = {0};
    sn_host *hosts[] = {srv};
    evlog *logs[] = {&ls};
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", sn_host_get_port(srv)), SN_OK);
    sn_dtls_peer *d = sn_dtls_peer_new();
    assert_int_equal(sn_dtls_peer_connect_to_peer(d, u, "localhost", client_opts), SN_OK);
    uint64_t end = sn_test_now_ms() + 5000;
    while (sn_dtls_peer_get_status(d) == SN_DTLS_STATUS_HANDSHAKING && sn_test_now_ms() < end) {
        pump(hosts, logs, 1, 10, NULL, NULL);
        sn_dtls_peer_poll(d);
    }
    assert_int_equal(sn_dtls_peer_get_status(d), SN_DTLS_STATUS_CONNECTED);
    want w = {&ls, SN_HOST_EVENT_CONNECT, 1};
    assert_true(pump(hosts, logs, 1, 2000, have, &w));
    /* Pings reach the plain peer as application data. */
    int pings = 0;
    for (int k = 0; k < 30; k++) {
        pump(hosts, logs, 1, 10, NULL, NULL);
        sn_dtls_peer_poll(d);
        uint8_t b[64];
        size_t len;
        while (sn_dtls_peer_get_available_packet_count(d) > 0 &&
               sn_dtls_peer_get_packet(d, b, sizeof b, &len) == SN_OK)
            if (len == 13 && b[0] == 0xFF && b[1] == 'S' && b[4] == 0x01) pings++;
    }
    assert_true(pings >= 2);
    /* Off for this peer: no more pings; its packets still arrive. */
    sn_host_peer *sp = sn_host_find_peer(srv, ls.r[0].id);
    assert_non_null(sp);
    sn_host_peer_set_keepalive_interval_ms(sp, 0);
    pump(hosts, logs, 1, 30, NULL, NULL);
    sn_dtls_peer_poll(d);
    size_t len;
    uint8_t b[64];
    while (sn_dtls_peer_get_available_packet_count(d) > 0)
        sn_dtls_peer_get_packet(d, b, sizeof b, &len);
    assert_int_equal(sn_dtls_peer_put_packet(d, "plain", 5), SN_OK);
    want w2 = {&ls, SN_HOST_EVENT_RECEIVE, 1};
    assert_true(pump(hosts, logs, 1, 2000, have, &w2));
    assert_memory_equal(find(&ls, SN_HOST_EVENT_RECEIVE, 0)->data, "plain", 5);
    int later = 0;
    for (int k = 0; k < 20; k++) {
        pump(hosts, logs, 1, 10, NULL, NULL);
        sn_dtls_peer_poll(d);
        later += sn_dtls_peer_get_available_packet_count(d);
    }
    assert_int_equal(later, 0);
    assert_true(sn_host_peer_get_rtt_ms(sp) < 0); /* a plain peer never answers pings */
    sn_dtls_peer_free(d);                         /* close_notify */
    want w3 = {&ls, SN_HOST_EVENT_DISCONNECT, 1};
    assert_true(pump(hosts, logs, 1, 2000, have, &w3));
    assert_int_equal(find(&ls, SN_HOST_EVENT_DISCONNECT, 0)->reason, SN_HOST_DISCONNECT_CLOSED);
    sn_host_free(srv);
    free(ls.r);
}

/* IPv6 loopback works the same (skipped when the machine has no ::1). */
static void ipv6_loopback(void **state)
{
    (void)state;
    sn_host_config c;
    sn_host_default_config(&c);
    c.server_options = server_opts;
    c.bind_address = "::1";
    sn_host *srv = sn_host_create(&c);
    if (!srv) {
        print_message("no IPv6 loopback here (%s): skipped\n", sn_last_error_message());
        skip();
    }
    sn_host *cli = client_host(1000);
    evlog ls = {0}, lc = {0};
    ls.on = echo;
    sn_host *hosts[] = {srv, cli};
    evlog *logs[] = {&ls, &lc};
    sn_host_peer *p = sn_host_connect(cli, "::1", sn_host_get_port(srv), NULL, client_opts);
    assert_non_null(p);
    want w = {&lc, SN_HOST_EVENT_CONNECT, 1};
    assert_true(pump(hosts, logs, 2, 5000, have, &w));
    assert_string_equal(sn_host_peer_get_address(p), "::1");
    assert_int_equal(sn_host_peer_send(p, "six", 3), SN_OK);
    want w2 = {&lc, SN_HOST_EVENT_RECEIVE, 1};
    assert_true(pump(hosts, logs, 2, 5000, have, &w2));
    sn_host_peer *sp = sn_host_find_peer(srv, ls.r[0].id);
    assert_non_null(sp);
    assert_string_equal(sn_host_peer_get_address(sp), "::1");
    sn_host_free(cli);
    sn_host_free(srv);
    free(ls.r);
    free(lc.r);
}

/* Allocation failures while creating, connecting and servicing end in NULL or in a
 * DISCONNECT, never in a crash or a leak. */
static void allocation_failures(void **state)
{
    (void)state;
    int created = 0;
    for (long n = 0; n < 40; n++) {
        sn_host_config c;
        sn_host_default_config(&c);
        c.server_options = server_opts;
        c.bind_address = "127.0.0.1";
        sn_test_fail_alloc_after(n, false);
        sn_host *h = sn_host_create(&c);
        if (!h) {
            sn_test_fail_alloc_after(-1, false);
            assert_true(strlen(sn_last_error_message()) > 0);
            continue;
        }
        created++;
        sn_host_peer *p = sn_host_connect(h, "127.0.0.1", sn_host_get_port(h), NULL, client_opts);
        sn_host_event ev;
        for (int k = 0; k < 5; k++)
            if (sn_host_service(h, &ev, 2) < 0) break;
        sn_test_fail_alloc_after(-1, false);
        (void)p;
        sn_host_free(h);
    }
    assert_true(created > 0);
}

/* 200 connections in one process all exchange messages with the server. */
typedef struct many {
    evlog *lc;
    size_t want;
} many;

static bool many_done(void *arg)
{
    many *m = arg;
    return count(m->lc, SN_HOST_EVENT_RECEIVE) >= m->want;
}

static void two_hundred_clients(void **state)
{
    (void)state;
    enum { N = 200 };
    /* All 200 handshakes run at once in this one thread, so they all finish near the end of
     * the total CPU they need: ~5 s on mbed TLS's portable ECC without other load (about 5x
     * OpenSSL's, docs/backends.md), more on a busy machine. The handshake timeout scales. */
#ifdef SN_TEST_BACKEND_MBEDTLS
    const int slow = 6;
#else
    const int slow = 1;
#endif
    sn_host_config c;
    sn_host_default_config(&c);
    c.handshake_timeout_ms *= slow;
    sn_host *srv = server_host(&c);
    sn_host_config cc;
    sn_host_default_config(&cc);
    cc.keepalive_interval_ms = 1000;
    cc.handshake_timeout_ms *= slow;
    sn_host *cli = sn_host_create(&cc);
    assert_non_null(cli);
    evlog ls = {0}, lc = {0};
    ls.on = echo;
    sn_host *hosts[] = {srv, cli};
    evlog *logs[] = {&ls, &lc};
    sn_host_peer *peers[N];
    for (int i = 0; i < N; i++) {
        peers[i] = sn_host_connect(cli, "127.0.0.1", sn_host_get_port(srv), NULL, client_opts);
        assert_non_null(peers[i]);
    }
    want2 w = {{&ls, SN_HOST_EVENT_CONNECT, N}, {&lc, SN_HOST_EVENT_CONNECT, N}};
    bool connected = pump(hosts, logs, 2, 60000 * slow, have2, &w);
    if (!connected) {
        sn_host_stats a, b;
        sn_host_get_stats(srv, &a);
        sn_host_get_stats(cli, &b);
        print_message(
            "server: connected %llu handshaking %llu started %llu completed %llu failed "
            "%llu cookies %llu dropped_half_open %llu; client: connected %llu "
            "handshaking %llu completed %llu failed %llu disconnects %llu\n",
            (unsigned long long)a.peers_connected_now, (unsigned long long)a.peers_handshaking_now,
            (unsigned long long)a.handshakes_started, (unsigned long long)a.handshakes_completed,
            (unsigned long long)a.handshakes_failed, (unsigned long long)a.cookies_sent,
            (unsigned long long)a.dropped_half_open, (unsigned long long)b.peers_connected_now,
            (unsigned long long)b.peers_handshaking_now, (unsigned long long)b.handshakes_completed,
            (unsigned long long)b.handshakes_failed, (unsigned long long)b.disconnects);
        for (size_t i = 0; i < lc.n; i++)
            if (lc.r[i].type == SN_HOST_EVENT_DISCONNECT) {
                print_message("first client disconnect: %s\n", lc.r[i].msg);
                break;
            }
    }
    assert_true(connected);
    assert_int_equal(count(&lc, SN_HOST_EVENT_DISCONNECT), 0);
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "from %d", i);
        assert_int_equal(sn_host_peer_send(peers[i], msg, (size_t)n), SN_OK);
    }
    many m = {&lc, N};
    bool ok = pump(hosts, logs, 2, 20000, many_done, &m);
    if (!ok) {
        sn_host_stats a, b;
        sn_host_get_stats(srv, &a);
        sn_host_get_stats(cli, &b);
        print_message(
            "server got %zu, client got %zu; srv rx %llu tx %llu qfull %llu malformed "
            "%llu; cli rx %llu tx %llu busy %llu qfull %llu\n",
            count(&ls, SN_HOST_EVENT_RECEIVE), count(&lc, SN_HOST_EVENT_RECEIVE),
            (unsigned long long)a.packets_received, (unsigned long long)a.packets_sent,
            (unsigned long long)a.dropped_queue_full, (unsigned long long)a.dropped_malformed,
            (unsigned long long)b.packets_received, (unsigned long long)b.packets_sent,
            (unsigned long long)b.dropped_send_busy, (unsigned long long)b.dropped_queue_full);
    }
    assert_true(ok);
    /* Every client got exactly its own message back. */
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "from %d", i);
        const rec *r = find(&lc, SN_HOST_EVENT_RECEIVE, sn_host_peer_get_id(peers[i]));
        assert_non_null(r);
        assert_int_equal(r->len, (size_t)n);
        assert_memory_equal(r->data, msg, (size_t)n);
    }
    /* And one broadcast reaches all 200. */
    assert_int_equal(sn_host_broadcast(srv, "all", 3, NULL), N);
    m.want = 2 * N;
    assert_true(pump(hosts, logs, 2, 20000, many_done, &m));
    sn_host_stats st;
    sn_host_get_stats(srv, &st);
    assert_int_equal(st.peers_connected_now, N);
    assert_int_equal(st.packets_received, N);
    assert_int_equal(st.packets_sent, 2 * N);
    sn_host_free(cli);
    sn_host_free(srv);
    free(ls.r);
    free(lc.r);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(events_in_order),
        cmocka_unit_test_teardown(idle_timeout_and_keepalive, remove_hooks),
        cmocka_unit_test_teardown(fatal_send_error_on_connected_peer, remove_hooks),
        cmocka_unit_test_teardown(batched_replies_one_fails, remove_hooks),
        cmocka_unit_test(broadcast_once_each),
        cmocka_unit_test_teardown(max_peers_refuses_cleanly, remove_hooks),
        cmocka_unit_test(half_open_cap_under_flood),
        cmocka_unit_test(destroy_notifies_clients),
        cmocka_unit_test(connect_refused_by_icmp),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(plain_dtls_peer_interop),
        cmocka_unit_test(ipv6_loopback),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(two_hundred_clients),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, setup, teardown);
}
