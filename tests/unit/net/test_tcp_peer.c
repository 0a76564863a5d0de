/* sn_tcp_peer and sn_tcp_server on loopback: connect, data both ways, partial I/O that never
 * blocks, remote close and reset, connect failures and timeouts, no SIGPIPE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "testutil.h"

/* Polls the peer until its status leaves `from` or timeout_ms passes; the final status. */
static sn_tcp_status poll_until_not(sn_tcp_peer *p, sn_tcp_status from, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (sn_tcp_peer_get_status(p) == from && sn_test_now_ms() < end) {
        sn_tcp_peer_poll(p);
        if (sn_tcp_peer_get_status(p) == from) sn_test_sleep_ms(2);
    }
    return sn_tcp_peer_get_status(p);
}

/* Waits until the server has a connection and takes it. */
static sn_tcp_peer *take(sn_tcp_server *srv)
{
    uint64_t end = sn_test_now_ms() + 3000;
    while (!sn_tcp_server_is_connection_available(srv) && sn_test_now_ms() < end)
        sn_test_sleep_ms(2);
    return sn_tcp_server_take_connection(srv);
}

typedef struct pair {
    sn_tcp_server *srv;
    sn_tcp_peer *client, *server_side;
} pair;

static void pair_open(pair *pr, const char *listen_addr, const char *connect_host)
{
    pr->srv = sn_tcp_server_new();
    assert_non_null(pr->srv);
    assert_int_equal(sn_tcp_server_listen(pr->srv, 0, listen_addr), SN_OK);
    int port = sn_tcp_server_get_local_port(pr->srv);
    assert_true(port > 0);
    pr->client = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_connect_to_host(pr->client, connect_host, port), SN_OK);
    assert_int_equal(poll_until_not(pr->client, SN_TCP_STATUS_CONNECTING, 3000),
                     SN_TCP_STATUS_CONNECTED);
    pr->server_side = take(pr->srv);
    assert_non_null(pr->server_side);
    assert_int_equal(sn_tcp_peer_get_status(pr->server_side), SN_TCP_STATUS_CONNECTED);
}

static void pair_close(pair *pr)
{
    sn_tcp_peer_free(pr->client);
    sn_tcp_peer_free(pr->server_side);
    sn_tcp_server_free(pr->srv);
}

static void server_listen_and_ports(void **state)
{
    (void)state;
    sn_tcp_server *s = sn_tcp_server_new();
    assert_false(sn_tcp_server_is_listening(s));
    assert_int_equal(sn_tcp_server_get_local_port(s), 0);
    assert_null(sn_tcp_server_take_connection(s));
    assert_int_equal(sn_tcp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    assert_true(sn_tcp_server_is_listening(s));
    int port = sn_tcp_server_get_local_port(s);
    assert_true(port > 0);
    assert_true(sn_tcp_server_get_fd(s) >= 0);
    assert_false(sn_tcp_server_is_connection_available(s));
    assert_null(sn_tcp_server_take_connection(s));
    assert_non_null(strstr(sn_last_error_message(), "no connection"));
    /* Listening twice is refused, and so is a port someone else listens on. */
    assert_int_equal(sn_tcp_server_listen(s, 0, "127.0.0.1"), SN_ERR_ALREADY_IN_USE);
    sn_tcp_server *other = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(other, port, "127.0.0.1"), SN_ERR_ALREADY_IN_USE);
    char want[32];
    snprintf(want, sizeof want, "%d", port);
    assert_non_null(strstr(sn_last_error_message(), want));
    assert_int_equal(sn_tcp_server_listen(other, 70000, NULL), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_tcp_server_listen(other, 0, "not-an-ip"), SN_ERR_INVALID_PARAMETER);
    sn_tcp_server_stop(s);
    assert_false(sn_tcp_server_is_listening(s));
    assert_int_equal(sn_tcp_server_get_fd(s), -1);
    /* SO_REUSEADDR: the port can be listened on again right away. */
    assert_int_equal(sn_tcp_server_listen(other, port, "127.0.0.1"), SN_OK);
    sn_tcp_server_free(other);
    sn_tcp_server_free(s);
    sn_tcp_server_free(NULL);
    sn_tcp_peer_free(NULL);
}

static void connect_and_exchange(void **state)
{
    (void)state;
    pair pr;
    pair_open(&pr, "127.0.0.1", "127.0.0.1");
    assert_string_equal(sn_tcp_peer_get_connected_host(pr.client), "127.0.0.1");
    assert_int_equal(sn_tcp_peer_get_connected_port(pr.client),
                     sn_tcp_server_get_local_port(pr.srv));
    assert_string_equal(sn_tcp_peer_get_connected_host(pr.server_side), "127.0.0.1");
    assert_int_equal(sn_tcp_peer_get_connected_port(pr.server_side),
                     sn_tcp_peer_get_local_port(pr.client));
    assert_int_equal(sn_tcp_peer_set_no_delay(pr.client, true), SN_OK);

    assert_int_equal(sn_tcp_peer_put_data(pr.client, "hello", 5), SN_OK);
    uint64_t end = sn_test_now_ms() + 2000;
    while (sn_tcp_peer_get_available_bytes(pr.server_side) < 5 && sn_test_now_ms() < end)
        sn_test_sleep_ms(1);
    assert_int_equal(sn_tcp_peer_get_available_bytes(pr.server_side), 5);
    char buf[16] = {0};
    assert_int_equal(sn_tcp_peer_get_data(pr.server_side, buf, 5), SN_OK);
    assert_string_equal(buf, "hello");
    assert_int_equal(sn_tcp_peer_get_available_bytes(pr.server_side), 0);

    /* Partial read with nothing waiting: OK and 0 bytes, immediately. */
    size_t got = 99;
    uint64_t t0 = sn_test_now_ms();
    assert_int_equal(sn_tcp_peer_get_partial_data(pr.client, buf, sizeof buf, &got), SN_OK);
    assert_int_equal(got, 0);
    assert_true(sn_test_now_ms() - t0 < 1000); /* returns at once, never waits */

    size_t sent = 0;
    assert_int_equal(sn_tcp_peer_put_partial_data(pr.server_side, "world", 5, &sent), SN_OK);
    assert_int_equal(sent, 5);
    memset(buf, 0, sizeof buf);
    assert_int_equal(sn_tcp_peer_get_data(pr.client, buf, 5), SN_OK);
    assert_string_equal(buf, "world");

    sn_tcp_peer_disconnect_from_host(pr.client);
    assert_int_equal(sn_tcp_peer_get_status(pr.client), SN_TCP_STATUS_NONE);
    assert_string_equal(sn_tcp_peer_get_connected_host(pr.client), "");
    assert_int_equal(sn_tcp_peer_get_local_port(pr.client), 0);
    assert_int_equal(sn_tcp_peer_put_data(pr.client, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_tcp_peer_get_partial_data(pr.client, buf, 1, &got), SN_ERR_UNCONFIGURED);
    pair_close(&pr);
}

/* "*" listens dual-stack: both an IPv6 and an IPv4 client reach it; names resolve too. */
static void dual_stack_and_names(void **state)
{
    (void)state;
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "*"), SN_OK);
    int port = sn_tcp_server_get_local_port(srv);
    const char *hosts[] = {"::1", "127.0.0.1", "localhost"};
    for (size_t i = 0; i < SN_ARRAY_LEN(hosts); i++) {
        sn_tcp_peer *c = sn_tcp_peer_new();
        assert_int_equal(sn_tcp_peer_connect_to_host(c, hosts[i], port), SN_OK);
        assert_int_equal(poll_until_not(c, SN_TCP_STATUS_CONNECTING, 3000),
                         SN_TCP_STATUS_CONNECTED);
        sn_tcp_peer *s = take(srv);
        assert_non_null(s);
        /* The server sees an IPv4 client as a dotted quad, not ::ffff:127.0.0.1. */
        assert_string_equal(sn_tcp_peer_get_connected_host(s), i == 0 ? "::1" : "127.0.0.1");
        assert_int_equal(sn_tcp_peer_put_data(c, "ab", 2), SN_OK);
        char b[2];
        assert_int_equal(sn_tcp_peer_get_data(s, b, 2), SN_OK);
        assert_memory_equal(b, "ab", 2);
        sn_tcp_peer_free(c);
        sn_tcp_peer_free(s);
    }
    sn_tcp_server_free(srv);
}

static void bind_before_connect(void **state)
{
    (void)state;
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    sn_tcp_peer *c = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_bind(c, 0, "127.0.0.1"), SN_OK);
    int local = sn_tcp_peer_get_local_port(c);
    assert_true(local > 0);
    assert_int_equal(sn_tcp_peer_bind(c, 0, "127.0.0.1"), SN_ERR_ALREADY_IN_USE);
    assert_int_equal(sn_tcp_peer_connect_to_host(c, "127.0.0.1", sn_tcp_server_get_local_port(srv)),
                     SN_OK);
    assert_int_equal(poll_until_not(c, SN_TCP_STATUS_CONNECTING, 3000), SN_TCP_STATUS_CONNECTED);
    assert_int_equal(sn_tcp_peer_get_local_port(c), local);
    sn_tcp_peer *s = take(srv);
    assert_int_equal(sn_tcp_peer_get_connected_port(s), local);
    assert_int_equal(sn_tcp_peer_connect_to_host(c, "127.0.0.1", 1), SN_ERR_ALREADY_IN_USE);
    sn_tcp_peer_free(s);
    sn_tcp_peer_free(c);
    sn_tcp_server_free(srv);
}

static void connect_failures(void **state)
{
    (void)state;
    sn_tcp_peer *c = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_connect_to_host(c, "127.0.0.1", 0), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_tcp_peer_connect_to_host(c, "127.0.0.1", 65536),
                     SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_tcp_peer_connect_to_host(c, NULL, 80), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tcp_peer_connect_to_host(c, "nope.invalid", 80), SN_ERR_CANT_RESOLVE);
    assert_non_null(strstr(sn_last_error_message(), "nope.invalid"));
    assert_int_equal(sn_tcp_peer_get_status(c), SN_TCP_STATUS_ERROR);
    assert_non_null(strstr(sn_tcp_peer_get_error_message(c), "nope.invalid"));

    /* A port with a bound socket that does not listen: the connect is refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    int port = ntohs(a.sin_port);
    /* A peer in ERROR may connect again. */
    sn_err e = sn_tcp_peer_connect_to_host(c, "127.0.0.1", port);
    if (e == SN_OK) {
        assert_int_equal(poll_until_not(c, SN_TCP_STATUS_CONNECTING, 3000), SN_TCP_STATUS_ERROR);
    } else {
        assert_int_equal(e, SN_ERR_CANT_CONNECT);
    }
    assert_int_equal(sn_tcp_peer_get_status(c), SN_TCP_STATUS_ERROR);
    assert_non_null(strstr(sn_tcp_peer_get_error_message(c), "refused"));
    char want[32];
    snprintf(want, sizeof want, ":%d", port);
    assert_non_null(strstr(sn_tcp_peer_get_error_message(c), want));
    close(fd);
    sn_tcp_peer_free(c);
}

/* A listener whose accept queue is full drops SYNs, so a connect hangs: the connect timeout
 * turns that into ERROR. */
static void connect_timeout(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    socklen_t len = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &len);
    int port = ntohs(a.sin_port);
    /* Fill the accept queue (never accepted). */
    sn_tcp_peer *fill[4];
    for (size_t i = 0; i < SN_ARRAY_LEN(fill); i++) {
        fill[i] = sn_tcp_peer_new();
        sn_tcp_peer_connect_to_host(fill[i], "127.0.0.1", port);
    }
    sn_test_sleep_ms(50);
    sn_tcp_peer *c = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_set_connect_timeout_ms(c, 300), SN_OK);
    assert_int_equal(sn_tcp_peer_connect_to_host(c, "127.0.0.1", port), SN_OK);
    assert_int_equal(sn_tcp_peer_get_status(c), SN_TCP_STATUS_CONNECTING);
    assert_string_equal(sn_tcp_peer_get_connected_host(c), "127.0.0.1");
    uint64_t t0 = sn_test_now_ms();
    sn_tcp_status st = poll_until_not(c, SN_TCP_STATUS_CONNECTING, 5000);
    uint64_t took = sn_test_now_ms() - t0;
    assert_int_equal(st, SN_TCP_STATUS_ERROR);
    assert_non_null(strstr(sn_tcp_peer_get_error_message(c), "timed out after 0.3 s"));
    assert_true(took >= 250 && took < 2000);
    sn_tcp_peer_free(c);
    for (size_t i = 0; i < SN_ARRAY_LEN(fill); i++)
        sn_tcp_peer_free(fill[i]);
    close(lfd);
}

/* A remote close shows in poll once the data it sent has been read; get_data reports EOF. */
static void remote_close(void **state)
{
    (void)state;
    pair pr;
    pair_open(&pr, "127.0.0.1", "127.0.0.1");
    assert_int_equal(sn_tcp_peer_put_data(pr.server_side, "bye", 3), SN_OK);
    sn_tcp_peer_disconnect_from_host(pr.server_side);
    sn_test_sleep_ms(20);
    assert_int_equal(sn_tcp_peer_poll(pr.client), SN_OK);
    assert_int_equal(sn_tcp_peer_get_status(pr.client), SN_TCP_STATUS_CONNECTED);
    assert_int_equal(sn_tcp_peer_get_available_bytes(pr.client), 3);
    char b[8] = {0};
    assert_int_equal(sn_tcp_peer_get_data(pr.client, b, 8), SN_ERR_FILE_EOF);
    assert_memory_equal(b, "bye", 3);
    assert_int_equal(sn_tcp_peer_get_status(pr.client), SN_TCP_STATUS_NONE);
    assert_non_null(strstr(sn_tcp_peer_get_error_message(pr.client), "closed"));
    pair_close(&pr);

    /* Without unread data, poll alone notices. */
    pair_open(&pr, "127.0.0.1", "127.0.0.1");
    sn_tcp_peer_free(pr.server_side);
    pr.server_side = NULL;
    assert_int_equal(poll_until_not(pr.client, SN_TCP_STATUS_CONNECTED, 2000), SN_TCP_STATUS_NONE);
    size_t got;
    assert_int_equal(sn_tcp_peer_get_partial_data(pr.client, b, 8, &got), SN_ERR_UNCONFIGURED);
    pair_close(&pr);
}

/* A reset (SO_LINGER 0) ends in ERROR; writing to it returns an error and never raises
 * SIGPIPE (the default action would kill this test). */
static void reset_and_no_sigpipe(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL);
    pair pr;
    pair_open(&pr, "127.0.0.1", "127.0.0.1");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(sn_tcp_peer_get_fd(pr.server_side), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    sn_tcp_peer_free(pr.server_side);
    pr.server_side = NULL;
    sn_test_sleep_ms(20);
    char chunk[4096] = {0};
    sn_err e = SN_OK;
    for (int i = 0; i < 100 && e == SN_OK; i++)
        e = sn_tcp_peer_put_data(pr.client, chunk, sizeof chunk);
    assert_int_equal(e, SN_ERR_CONNECTION_ERROR);
    assert_int_equal(sn_tcp_peer_get_status(pr.client), SN_TCP_STATUS_ERROR);
    assert_true(strstr(sn_tcp_peer_get_error_message(pr.client), "reset") ||
                strstr(sn_tcp_peer_get_error_message(pr.client), "pipe"));
    pair_close(&pr);

    /* The same after a clean close: the second write hits EPIPE. */
    pair_open(&pr, "127.0.0.1", "127.0.0.1");
    sn_tcp_peer_free(pr.server_side);
    pr.server_side = NULL;
    sn_test_sleep_ms(20);
    e = SN_OK;
    for (int i = 0; i < 100 && e == SN_OK; i++) {
        e = sn_tcp_peer_put_data(pr.client, chunk, sizeof chunk);
        sn_test_sleep_ms(1);
    }
    assert_int_equal(e, SN_ERR_CONNECTION_ERROR);
    pair_close(&pr);
    signal(SIGPIPE, SIG_IGN);
}

/* A peer that never reads: partial writes fill the kernel buffers then return 0 at once;
 * put_data with a blocking timeout gives SN_ERR_TIMEOUT. */
static void never_reading_peer(void **state)
{
    (void)state;
    pair pr;
    pair_open(&pr, "127.0.0.1", "127.0.0.1");
    static char chunk[65536];
    size_t total = 0, sent = 1;
    uint64_t t0 = sn_test_now_ms();
    while (sent > 0 && sn_test_now_ms() - t0 < 5000) {
        assert_int_equal(sn_tcp_peer_put_partial_data(pr.client, chunk, sizeof chunk, &sent),
                         SN_OK);
        total += sent;
    }
    assert_int_equal(sent, 0);
    assert_true(total > 0 && total < 256u * 1024 * 1024);
    assert_int_equal(sn_tcp_peer_set_blocking_timeout_ms(pr.client, 200), SN_OK);
    t0 = sn_test_now_ms();
    assert_int_equal(sn_tcp_peer_put_data(pr.client, chunk, sizeof chunk), SN_ERR_TIMEOUT);
    assert_true(sn_test_now_ms() - t0 >= 150);
    assert_int_equal(sn_tcp_peer_get_status(pr.client), SN_TCP_STATUS_CONNECTED);
    /* Reading on the other side drains it; nothing was lost or reordered. */
    assert_int_equal(sn_tcp_peer_set_blocking_timeout_ms(pr.server_side, 2000), SN_OK);
    char b[1];
    assert_int_equal(sn_tcp_peer_get_data(pr.server_side, b, 1), SN_OK);
    assert_int_equal(sn_tcp_peer_get_data(pr.client, b, 1), SN_ERR_TIMEOUT);
    pair_close(&pr);
}

typedef struct bulk_arg {
    sn_tcp_peer *p;
    size_t len;
    sn_err result;
} bulk_arg;

static uint8_t pattern(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void *bulk_sender(void *arg)
{
    bulk_arg *a = arg;
    uint8_t *buf = malloc(a->len);
    for (size_t i = 0; i < a->len; i++)
        buf[i] = pattern(i);
    a->result = sn_tcp_peer_put_data(a->p, buf, a->len);
    free(buf);
    return NULL;
}

/* Blocking put_data / get_data move 8 MiB intact between two threads. */
static void blocking_bulk(void **state)
{
    (void)state;
    pair pr;
    pair_open(&pr, "127.0.0.1", "127.0.0.1");
    bulk_arg a = {.p = pr.client, .len = 8u << 20, .result = SN_FAILED};
    pthread_t t;
    pthread_create(&t, NULL, bulk_sender, &a);
    uint8_t *buf = malloc(a.len);
    sn_tcp_peer_set_blocking_timeout_ms(pr.server_side, 20000);
    assert_int_equal(sn_tcp_peer_get_data(pr.server_side, buf, a.len), SN_OK);
    pthread_join(t, NULL);
    assert_int_equal(a.result, SN_OK);
    size_t bad = 0;
    for (size_t i = 0; i < a.len; i++)
        bad += buf[i] != pattern(i);
    assert_int_equal(bad, 0);
    free(buf);
    pair_close(&pr);
}

/* Several clients at once, each taken in order and talking independently. */
static void several_clients(void **state)
{
    (void)state;
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    int port = sn_tcp_server_get_local_port(srv);
    enum { N = 8 };
    sn_tcp_peer *c[N], *s[N];
    for (int i = 0; i < N; i++) {
        c[i] = sn_tcp_peer_new();
        assert_int_equal(sn_tcp_peer_connect_to_host(c[i], "127.0.0.1", port), SN_OK);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(poll_until_not(c[i], SN_TCP_STATUS_CONNECTING, 3000),
                         SN_TCP_STATUS_CONNECTED);
        s[i] = take(srv);
        assert_non_null(s[i]);
    }
    for (int i = 0; i < N; i++) {
        char msg = (char)('A' + i);
        assert_int_equal(sn_tcp_peer_put_data(c[i], &msg, 1), SN_OK);
    }
    /* Each server-side peer hears from the client whose local port it is connected to. */
    for (int i = 0; i < N; i++) {
        char got;
        assert_int_equal(sn_tcp_peer_get_data(s[i], &got, 1), SN_OK);
        int j = 0;
        while (j < N && sn_tcp_peer_get_local_port(c[j]) != sn_tcp_peer_get_connected_port(s[i]))
            j++;
        assert_true(j < N);
        assert_int_equal(got, 'A' + j);
    }
    for (int i = 0; i < N; i++) {
        sn_tcp_peer_free(c[i]);
        sn_tcp_peer_free(s[i]);
    }
    sn_tcp_server_free(srv);
}

/* Makes the next descriptor the process opens fail with EMFILE; returns the limit to restore. */
static struct rlimit exhaust_descriptors(void)
{
    struct rlimit old, rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(0); /* the number the next accept would get */
    assert_true(lowest >= 0);
    close(lowest);
    rl = old;
    rl.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    return old;
}

/* Out of descriptors, accept fails but the connection stays queued and the listening socket
 * readable: the server pauses (no connection "available", so a Godot-style loop does not spin)
 * until resume_accepting or the pause ends by itself, counts it, and then takes the connection. */
static void accept_out_of_descriptors(void **state)
{
    (void)state;
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    int port = sn_tcp_server_get_local_port(srv);
    sn_tcp_peer *c1 = sn_tcp_peer_new(), *c2 = sn_tcp_peer_new();
    assert_int_equal(sn_tcp_peer_connect_to_host(c1, "127.0.0.1", port), SN_OK);
    assert_int_equal(sn_tcp_peer_connect_to_host(c2, "127.0.0.1", port), SN_OK);
    assert_int_equal(poll_until_not(c1, SN_TCP_STATUS_CONNECTING, 3000), SN_TCP_STATUS_CONNECTED);
    assert_int_equal(poll_until_not(c2, SN_TCP_STATUS_CONNECTING, 3000), SN_TCP_STATUS_CONNECTED);
    uint64_t end = sn_test_now_ms() + 3000;
    while (!sn_tcp_server_is_connection_available(srv) && sn_test_now_ms() < end)
        sn_test_sleep_ms(2);

    struct rlimit old = exhaust_descriptors();
    sn_tcp_peer *none = sn_tcp_server_take_connection(srv);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_null(none);
    assert_non_null(strstr(sn_last_error_message(), "Too many open files"));
    assert_non_null(strstr(sn_last_error_message(), "accepting paused"));
    assert_true(sn_tcp_server_is_accept_paused(srv));
    assert_false(sn_tcp_server_is_connection_available(srv));
    assert_null(sn_tcp_server_take_connection(srv)); /* no accept(2) while paused */
    sn_tcp_server_stats st;
    sn_tcp_server_get_stats(srv, &st);
    assert_int_equal(st.out_of_resources, 1);
    assert_int_equal(st.accepted, 0);
    assert_true(st.paused_now);

    /* A descriptor freed: the program says so and the queued connection is taken. */
    sn_tcp_server_resume_accepting(srv);
    assert_false(sn_tcp_server_is_accept_paused(srv));
    assert_true(sn_tcp_server_is_connection_available(srv));
    sn_tcp_peer *s1 = sn_tcp_server_take_connection(srv);
    assert_non_null(s1);

    /* Without resume_accepting the pause ends by itself after a second. */
    old = exhaust_descriptors();
    none = sn_tcp_server_take_connection(srv);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_null(none);
    assert_true(sn_tcp_server_is_accept_paused(srv));
    uint64_t t0 = sn_test_now_ms();
    while (sn_tcp_server_is_accept_paused(srv) && sn_test_now_ms() - t0 < 5000)
        sn_test_sleep_ms(10);
    uint64_t paused = sn_test_now_ms() - t0;
    assert_in_range(paused, 500, 3000);
    sn_tcp_peer *s2 = take(srv);
    assert_non_null(s2);
    sn_tcp_server_get_stats(srv, &st);
    assert_int_equal(st.out_of_resources, 2);
    assert_int_equal(st.accepted, 2);
    assert_false(st.paused_now);

    sn_tcp_server_get_stats(NULL, &st);
    assert_int_equal(st.accepted, 0);
    assert_false(sn_tcp_server_is_accept_paused(NULL));
    sn_tcp_server_resume_accepting(NULL);
    sn_tcp_peer_free(s1);
    sn_tcp_peer_free(s2);
    sn_tcp_peer_free(c1);
    sn_tcp_peer_free(c2);
    sn_tcp_server_free(srv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_listen_and_ports),
        cmocka_unit_test(connect_and_exchange),
        cmocka_unit_test(dual_stack_and_names),
        cmocka_unit_test(bind_before_connect),
        cmocka_unit_test(connect_failures),
        cmocka_unit_test(connect_timeout),
        cmocka_unit_test(remote_close),
        cmocka_unit_test(reset_and_no_sigpipe),
        cmocka_unit_test(never_reading_peer),
        cmocka_unit_test(blocking_bulk),
        cmocka_unit_test(several_clients),
        cmocka_unit_test(accept_out_of_descriptors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
