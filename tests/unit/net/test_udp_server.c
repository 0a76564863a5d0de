/* sn_udp_server: routing, pending limit and expiry, batching, stats, detaching, 500 clients.
 * Loopback only, ephemeral ports, every wait bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "test_hooks.h"
#include "testutil.h"
#include "udp_internal.h"
#include "udp_transport.h"

static sn_udp_server *listening(const char *addr)
{
    sn_udp_server *s = sn_udp_server_new();
    assert_non_null(s);
    assert_int_equal(sn_udp_server_listen(s, 0, addr), SN_OK);
    assert_true(sn_udp_server_is_listening(s));
    assert_true(sn_udp_server_get_local_port(s) > 0);
    return s;
}

static sn_udp_peer *client_of(const sn_udp_server *s, const char *host)
{
    sn_udp_peer *c = sn_udp_peer_new();
    assert_non_null(c);
    assert_int_equal(sn_udp_peer_connect_to_host(c, host, sn_udp_server_get_local_port(s)), SN_OK);
    return c;
}

/* Polls until the server has read `n` datagrams in total (bounded). */
static void poll_until_received(sn_udp_server *s, uint64_t n)
{
    uint64_t t0 = sn_test_now_ms();
    sn_udp_server_stats st;
    for (;;) {
        assert_int_equal(sn_udp_server_poll(s), SN_OK);
        sn_udp_server_get_stats(s, &st);
        if (st.datagrams_received >= n) return;
        assert_true(sn_test_now_ms() - t0 < 5000);
        sn_test_sleep_ms(1);
    }
}

static sn_udp_peer *take_one(sn_udp_server *s)
{
    uint64_t t0 = sn_test_now_ms();
    while (!sn_udp_server_is_connection_available(s)) {
        assert_int_equal(sn_udp_server_poll(s), SN_OK);
        assert_true(sn_test_now_ms() - t0 < 5000);
        sn_test_sleep_ms(1);
    }
    sn_udp_peer *p = sn_udp_server_take_connection(s);
    assert_non_null(p);
    return p;
}

static void basic_exchange_and_locks(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    assert_int_equal(sn_udp_server_get_max_pending_connections(s), 16);
    assert_null(sn_udp_server_take_connection(s));
    sn_udp_peer *c = client_of(s, "127.0.0.1");
    assert_int_equal(sn_udp_peer_put_packet(c, "ping", 4), SN_OK);
    sn_udp_peer *p = take_one(s);
    assert_true(sn_udp_peer_is_server_owned(p));
    assert_true(sn_udp_peer_is_bound(p));
    assert_int_equal(sn_udp_peer_get_fd(p), sn_udp_server_get_fd(s));
    assert_int_equal(sn_udp_peer_get_local_port(p), sn_udp_server_get_local_port(s));
    /* Godot's ERR_LOCKED cases. */
    assert_int_equal(sn_udp_peer_bind(p, 0, NULL, 0), SN_ERR_LOCKED);
    assert_int_equal(sn_udp_peer_connect_to_host(p, "127.0.0.1", 9), SN_ERR_LOCKED);
    assert_int_equal(sn_udp_peer_set_dest_address(p, "127.0.0.1", 9), SN_ERR_LOCKED);
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "239.1.1.1", NULL), SN_ERR_LOCKED);
    /* DTLS contract: pump is a no-op, the queue is what the server routed. */
    assert_int_equal(sn_udp_peer_pump(p), SN_OK);
    size_t len;
    const uint8_t *d = sn_udp_peer_peek(p, &len);
    assert_non_null(d);
    assert_int_equal(len, 4);
    assert_memory_equal(d, "ping", 4);
    sn_addr r;
    assert_true(sn_udp_peer_remote(p, &r));
    char ip[SN_IP_STRLEN];
    int port;
    sn_net_format((struct sockaddr *)&r.ss, ip, &port);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(port, sn_udp_peer_get_local_port(c));
    char buf[16];
    assert_int_equal(sn_udp_peer_get_packet(p, buf, sizeof buf, &len), SN_OK);
    assert_string_equal(sn_udp_peer_get_packet_ip(p), "127.0.0.1");
    assert_int_equal(sn_udp_peer_get_packet_port(p), sn_udp_peer_get_local_port(c));
    /* The reply leaves from the server's port. */
    assert_int_equal(sn_udp_peer_put_packet(p, "pong", 4), SN_OK);
    assert_int_equal(sn_udp_peer_wait(c, 2000), SN_OK);
    assert_int_equal(sn_udp_peer_get_packet(c, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "pong", 4);
    assert_int_equal(sn_udp_peer_get_packet_port(c), sn_udp_server_get_local_port(s));
    /* wait() on a server-owned peer drives the server. */
    assert_int_equal(sn_udp_peer_put_packet(c, "again", 5), SN_OK);
    assert_int_equal(sn_udp_peer_wait(p, 2000), SN_OK);
    assert_int_equal(sn_udp_peer_get_available_packet_count(p), 1);
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

static void zero_length_and_largest_datagram(void **state)
{
    (void)state;
    sn_udp_server *s = listening("::1");
    sn_udp_peer *c = client_of(s, "::1");
    assert_int_equal(sn_udp_peer_put_packet(c, NULL, 0), SN_OK);
    size_t big = 65507;
    unsigned char *out = malloc(big), *in = malloc(big);
    for (size_t i = 0; i < big; i++)
        out[i] = (unsigned char)(i ^ (i >> 8));
    assert_int_equal(sn_udp_peer_put_packet(c, out, big), SN_OK);
    poll_until_received(s, 2);
    sn_udp_peer *p = sn_udp_server_take_connection(s);
    assert_non_null(p);
    assert_int_equal(sn_udp_peer_get_available_packet_count(p), 2);
    size_t len = 1;
    assert_int_equal(sn_udp_peer_get_packet(p, in, big, &len), SN_OK);
    assert_int_equal(len, 0);
    assert_string_equal(sn_udp_peer_get_packet_ip(p), "::1");
    assert_int_equal(sn_udp_peer_get_packet(p, in, 10, &len), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(len, big);
    assert_int_equal(sn_udp_peer_get_packet(p, in, big, &len), SN_OK);
    assert_int_equal(len, big);
    assert_memory_equal(in, out, big);
    /* Long datagrams are stored in two parts; peek (the DTLS path) still sees one piece, and
     * lengths around the split point come out whole. */
    size_t sizes[] = {SN_UDP_POOL_HEAD - 1, SN_UDP_POOL_HEAD, SN_UDP_POOL_HEAD + 1, 5000};
    for (size_t k = 0; k < 4; k++)
        assert_int_equal(sn_udp_peer_put_packet(c, out + k, sizes[k]), SN_OK);
    poll_until_received(s, 6);
    for (size_t k = 0; k < 4; k++) {
        const uint8_t *d = sn_udp_peer_peek(p, &len);
        assert_non_null(d);
        assert_int_equal(len, sizes[k]);
        assert_memory_equal(d, out + k, sizes[k]);
        if (k % 2) {
            sn_udp_peer_drop(p);
        } else {
            assert_int_equal(sn_udp_peer_get_packet(p, in, big, &len), SN_OK);
            assert_memory_equal(in, out + k, sizes[k]);
        }
    }
    assert_null(sn_udp_peer_peek(p, &len));
    free(in);
    free(out);
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

/* 500 clients, each sends its id; the reply through its taken peer must reach it alone. */
static void five_hundred_clients_demux(void **state)
{
    (void)state;
    enum { N = 500 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sn_udp_server *s = listening("*"); /* dual-stack: IPv4 clients arrive IPv4-mapped */
    sn_udp_server_set_max_pending_connections(s, N);
    sn_udp_peer **cl = calloc(N, sizeof *cl), **taken = calloc(N, sizeof *taken);
    for (int i = 0; i < N; i++)
        cl[i] = client_of(s, i % 2 ? "127.0.0.1" : "::1");
    /* In waves so the kernel buffer never overflows. */
    size_t ntaken = 0;
    for (int i = 0; i < N; i++) {
        uint32_t id = (uint32_t)i;
        assert_int_equal(sn_udp_peer_put_packet(cl[i], &id, sizeof id), SN_OK);
        if (i % 50 == 49) {
            poll_until_received(s, (uint64_t)i + 1);
            sn_udp_peer *p;
            while ((p = sn_udp_server_take_connection(s)))
                taken[ntaken++] = p;
        }
    }
    assert_int_equal(ntaken, N);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_opened, N);
    assert_int_equal(st.taken_now, N);
    assert_int_equal(st.datagrams_routed, N);
    /* Every taken peer answers with what it received, twice the id plus a marker. */
    for (size_t k = 0; k < ntaken; k++) {
        uint32_t id, reply[2];
        size_t len;
        assert_int_equal(sn_udp_peer_get_packet(taken[k], &id, sizeof id, &len), SN_OK);
        assert_int_equal(len, sizeof id);
        reply[0] = id;
        reply[1] = id ^ 0xa5a5a5a5u;
        assert_int_equal(sn_udp_peer_put_packet(taken[k], reply, sizeof reply), SN_OK);
        if (k % 50 == 49) sn_test_sleep_ms(1);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(sn_udp_peer_wait(cl[i], 2000), SN_OK);
        uint32_t reply[2];
        size_t len;
        assert_int_equal(sn_udp_peer_get_packet(cl[i], reply, sizeof reply, &len), SN_OK);
        assert_int_equal(len, sizeof reply);
        assert_int_equal(reply[0], (uint32_t)i);
        assert_int_equal(reply[1], (uint32_t)i ^ 0xa5a5a5a5u);
        assert_int_equal(sn_udp_peer_get_available_packet_count(cl[i]), 0);
    }
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_sent, N);
    for (size_t k = 0; k < ntaken; k++)
        sn_udp_peer_free(taken[k]);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.taken_now, 0);
    for (int i = 0; i < N; i++)
        sn_udp_peer_free(cl[i]);
    free(cl);
    free(taken);
    sn_udp_server_free(s);
}

static int port_of(sn_udp_peer *p)
{
    return sn_udp_peer_get_local_port(p);
}

static int remote_port(sn_udp_peer *p)
{
    sn_addr r;
    assert_true(sn_udp_peer_remote(p, &r));
    char ip[SN_IP_STRLEN];
    int port;
    sn_net_format((struct sockaddr *)&r.ss, ip, &port);
    return port;
}

static void pending_limit_and_setter(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    sn_udp_server_set_max_pending_connections(s, 2);
    sn_udp_peer *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = client_of(s, "127.0.0.1");
        assert_int_equal(sn_udp_peer_put_packet(c[i], "hi", 2), SN_OK);
        poll_until_received(s, (uint64_t)i + 1); /* keep arrival order */
    }
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_now, 2);
    assert_int_equal(st.pending_opened, 2);
    assert_int_equal(st.dropped_pending_full, 2);
    /* Raising the limit keeps what is pending (Godot's setter deletes it all). */
    sn_udp_server_set_max_pending_connections(s, 3);
    assert_int_equal(sn_udp_server_get_max_pending_connections(s), 3);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_now, 2);
    assert_int_equal(sn_udp_peer_put_packet(c[2], "hi", 2), SN_OK);
    poll_until_received(s, 5);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_now, 3);
    /* Lowering it drops the newest: the oldest (c[0]) remains. */
    sn_udp_server_set_max_pending_connections(s, 1);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_now, 1);
    assert_int_equal(st.pending_discarded, 2);
    sn_udp_peer *p = sn_udp_server_take_connection(s);
    assert_non_null(p);
    assert_int_equal(remote_port(p), port_of(c[0]));
    assert_null(sn_udp_server_take_connection(s));
    assert_false(sn_udp_server_is_connection_available(s));
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_taken, 1);
    /* Limit 0: nothing new is accepted. */
    sn_udp_server_set_max_pending_connections(s, -3);
    assert_int_equal(sn_udp_server_get_max_pending_connections(s), 0);
    assert_int_equal(sn_udp_peer_put_packet(c[3], "hi", 2), SN_OK);
    poll_until_received(s, 6);
    assert_false(sn_udp_server_is_connection_available(s));
    sn_udp_peer_free(p);
    for (int i = 0; i < 4; i++)
        sn_udp_peer_free(c[i]);
    sn_udp_server_free(s);
}

static void pending_expiry(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    assert_int_equal(sn_udp_server_get_pending_timeout_ms(s), 10000);
    sn_udp_server_set_pending_timeout_ms(s, 100);
    assert_int_equal(sn_udp_server_next_timeout_ms(s), -1);
    sn_udp_peer *c = client_of(s, "127.0.0.1");
    assert_int_equal(sn_udp_peer_put_packet(c, "a", 1), SN_OK);
    poll_until_received(s, 1);
    assert_true(sn_udp_server_is_connection_available(s));
    int t = sn_udp_server_next_timeout_ms(s);
    assert_true(t > 0 && t <= 100);
    sn_test_sleep_ms(130);
    assert_int_equal(sn_udp_server_next_timeout_ms(s), 0);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    assert_false(sn_udp_server_is_connection_available(s));
    assert_int_equal(sn_udp_server_next_timeout_ms(s), -1);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_expired, 1);
    assert_int_equal(st.pending_now, 0);
    /* The address is free again: a new pending connection, with only the new datagram. */
    assert_int_equal(sn_udp_peer_put_packet(c, "b", 1), SN_OK);
    sn_udp_peer *p = take_one(s);
    char buf[4];
    size_t len;
    assert_int_equal(sn_udp_peer_get_packet(p, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(buf[0], 'b');
    assert_int_equal(sn_udp_peer_get_available_packet_count(p), 0);
    /* Taken peers never expire. */
    sn_test_sleep_ms(130);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(c, "c", 1), SN_OK);
    poll_until_received(s, 3);
    assert_int_equal(sn_udp_peer_get_available_packet_count(p), 1);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_opened, 2);
    assert_int_equal(st.pending_expired, 1);
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

/* Freeing (or closing) a taken peer unregisters its address: the next datagram is a new
 * pending connection (what the DTLS cookie exchange relies on). */
static void freed_peer_reopens_as_pending(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    sn_udp_peer *c = client_of(s, "127.0.0.1");
    assert_int_equal(sn_udp_peer_put_packet(c, "1", 1), SN_OK);
    sn_udp_peer *p = take_one(s);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(c))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_ptr_equal(sn_udp_server_lookup(s, (struct sockaddr *)&a), p);
    sn_udp_peer_free(p);
    assert_null(sn_udp_server_lookup(s, (struct sockaddr *)&a));
    assert_false(sn_udp_server_is_connection_available(s));
    assert_int_equal(sn_udp_peer_put_packet(c, "2", 1), SN_OK);
    p = take_one(s);
    assert_int_equal(remote_port(p), port_of(c));
    /* close() works the same and leaves a standalone peer that can be bound. */
    sn_udp_peer_close(p);
    assert_false(sn_udp_peer_is_server_owned(p));
    assert_null(sn_udp_server_lookup(s, (struct sockaddr *)&a));
    assert_int_equal(sn_udp_peer_put_packet(p, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_peer_bind(p, 0, "127.0.0.1", 0), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(c, "3", 1), SN_OK);
    sn_udp_peer *p2 = take_one(s);
    assert_ptr_not_equal(p2, NULL);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_opened, 3);
    sn_udp_peer_free(p2);
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

static void server_freed_before_peers(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    sn_udp_peer *c1 = client_of(s, "127.0.0.1"), *c2 = client_of(s, "127.0.0.1");
    assert_int_equal(sn_udp_peer_put_packet(c1, "a1", 2), SN_OK);
    poll_until_received(s, 1);
    assert_int_equal(sn_udp_peer_put_packet(c2, "b1", 2), SN_OK);
    poll_until_received(s, 2);
    sn_udp_peer *p1 = sn_udp_server_take_connection(s), *p2 = sn_udp_server_take_connection(s);
    assert_non_null(p1);
    assert_non_null(p2);
    assert_int_equal(sn_udp_peer_put_packet(c1, "a2", 2), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(c2, "b2", 2), SN_OK); /* pending one too */
    sn_udp_peer *c3 = client_of(s, "127.0.0.1");
    assert_int_equal(sn_udp_peer_put_packet(c3, "c1", 2), SN_OK);
    poll_until_received(s, 5);
    assert_true(sn_udp_server_is_connection_available(s));
    sn_udp_server_free(s);
    /* Detached: sends fail, reads return what was queued, then nothing. */
    assert_int_equal(sn_udp_peer_put_packet(p1, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_peer_get_fd(p1), -1);
    assert_int_equal(sn_udp_peer_get_local_port(p1), 0);
    assert_false(sn_udp_peer_is_bound(p1));
    assert_int_equal(sn_udp_peer_get_available_packet_count(p1), 2);
    char buf[4];
    size_t len;
    assert_int_equal(sn_udp_peer_get_packet(p1, buf, sizeof buf, &len), SN_OK);
    assert_memory_equal(buf, "a1", 2);
    assert_int_equal(sn_udp_peer_get_packet(p1, buf, sizeof buf, &len), SN_OK);
    assert_memory_equal(buf, "a2", 2);
    assert_int_equal(sn_udp_peer_get_packet(p1, buf, sizeof buf, &len), SN_ERR_UNAVAILABLE);
    assert_int_equal(sn_udp_peer_wait(p1, 10), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_peer_bind(p1, 0, NULL, 0), SN_ERR_LOCKED);
    sn_udp_peer_free(p1);
    /* p2 keeps its queue until freed (ASan checks nothing dangles). */
    assert_int_equal(sn_udp_peer_get_available_packet_count(p2), 2);
    sn_udp_peer_close(p2);
    assert_int_equal(sn_udp_peer_get_available_packet_count(p2), 0);
    sn_udp_peer_free(p2);
    sn_udp_peer_free(c1);
    sn_udp_peer_free(c2);
    sn_udp_peer_free(c3);
}

static void stop_and_listen_again(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    sn_udp_peer *c = client_of(s, "127.0.0.1");
    assert_int_equal(sn_udp_peer_put_packet(c, "a", 1), SN_OK);
    sn_udp_peer *p = take_one(s);
    sn_udp_server_stop(s);
    assert_false(sn_udp_server_is_listening(s));
    assert_int_equal(sn_udp_server_get_local_port(s), 0);
    assert_int_equal(sn_udp_server_get_fd(s), -1);
    assert_int_equal(sn_udp_server_poll(s), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_peer_put_packet(p, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    /* The old peer stays detached from the new socket. */
    assert_int_equal(sn_udp_peer_put_packet(p, "x", 1), SN_ERR_UNCONFIGURED);
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

/* One poll reads many batches up to its cap; the rest waits for the next poll. */
static void batching_and_cap(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    assert_int_equal(sn_udp_server_set_recv_buffer_size(s, 4 << 20), SN_OK);
    sn_udp_peer *c = client_of(s, "127.0.0.1");
    /* Defaults: 64 per recvmmsg, 1024 per poll. 1000 datagrams: 15 full batches + 40. Fewer if
     * the kernel would not grant the buffer (unprivileged, small rmem_max): every datagram must
     * be queued before the poll for the syscall count to be exact. */
    int rcvbuf = 0;
    socklen_t sl = sizeof rcvbuf;
    assert_int_equal(getsockopt(sn_udp_server_get_fd(s), SOL_SOCKET, SO_RCVBUF, &rcvbuf, &sl), 0);
    uint32_t n = (uint32_t)rcvbuf / 2048 < 1000 ? (uint32_t)rcvbuf / 2048 : 1000;
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(sn_udp_peer_put_packet(c, &i, sizeof i), SN_OK);
    sn_test_sleep_ms(50);
    assert_int_equal(sn_udp_server_set_queue_limits(s, 2000, 0), SN_OK);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_received, n);
    assert_int_equal(st.datagrams_routed, n);
    /* Full batches, then one short (or empty) read that ends the poll. */
    assert_int_equal(st.recv_syscalls, n / 64 + 1);
    assert_int_equal(st.polls_capped, 0);
    sn_udp_peer *p = sn_udp_server_take_connection(s);
    assert_int_equal(sn_udp_peer_get_available_packet_count(p), n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v;
        size_t len;
        assert_int_equal(sn_udp_peer_get_packet(p, &v, sizeof v, &len), SN_OK);
        assert_int_equal(v, i);
    }
    uint64_t calls0 = st.recv_syscalls, got0 = st.datagrams_received;
    /* Batch 64, cap 100: 150 datagrams take two polls. */
    assert_int_equal(sn_udp_server_set_poll_limits(s, 64, 100), SN_OK);
    for (uint32_t i = 0; i < 150; i++)
        assert_int_equal(sn_udp_peer_put_packet(c, &i, sizeof i), SN_OK);
    sn_test_sleep_ms(50);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_received, got0 + 100);
    assert_int_equal(st.recv_syscalls, calls0 + 2); /* 64 + 36 */
    assert_int_equal(st.polls_capped, 1);
    assert_int_equal(sn_udp_peer_get_available_packet_count(p), 100);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_received, got0 + 150);
    assert_int_equal(st.recv_syscalls, calls0 + 3);
    assert_int_equal(sn_udp_peer_get_available_packet_count(p), 150);
    /* Range checks. */
    assert_int_equal(sn_udp_server_set_poll_limits(s, 0, 10), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_server_set_poll_limits(s, 2000, 4000), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_server_set_poll_limits(s, 64, 10), SN_ERR_PARAMETER_RANGE_ERROR);
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

/* Every counter in a controlled exchange. */
static void stats_exact(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    sn_udp_server_set_max_pending_connections(s, 1);
    assert_int_equal(sn_udp_server_set_queue_limits(s, 2, 0), SN_OK);
    assert_int_equal(sn_udp_server_set_max_datagram_size(s, 100), SN_OK);
    assert_int_equal(sn_udp_server_set_max_datagram_size(s, 0), SN_ERR_PARAMETER_RANGE_ERROR);
    sn_udp_peer *a = client_of(s, "127.0.0.1"), *b = client_of(s, "127.0.0.1");
    char d[200] = {0};
    assert_int_equal(sn_udp_peer_put_packet(a, d, 10), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, d, 11), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, d, 12), SN_OK);  /* queue full */
    assert_int_equal(sn_udp_peer_put_packet(a, d, 200), SN_OK); /* oversize */
    assert_int_equal(sn_udp_peer_put_packet(b, d, 5), SN_OK);   /* pending full */
    sn_test_sleep_ms(30);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_received, 5);
    assert_int_equal(st.bytes_received, 10 + 11 + 12 + 5);
    assert_int_equal(st.datagrams_routed, 2);
    assert_int_equal(st.dropped_queue_full, 1);
    assert_int_equal(st.dropped_oversize, 1);
    assert_int_equal(st.dropped_pending_full, 1);
    assert_int_equal(st.dropped_no_memory, 0);
    assert_int_equal(st.pending_opened, 1);
    assert_int_equal(st.pending_now, 1);
    assert_int_equal(st.recv_syscalls, 1);
    assert_int_equal(st.recv_errors, 0);
    assert_int_equal(st.polls_capped, 0);
    assert_true(st.table_capacity >= 2);
    sn_udp_peer *p = sn_udp_server_take_connection(s);
    sn_udp_peer_stats ps;
    sn_udp_peer_get_stats(p, &ps);
    assert_int_equal(ps.datagrams_received, 2);
    assert_int_equal(ps.bytes_received, 21);
    assert_int_equal(ps.dropped_queue_full, 1);
    assert_int_equal(sn_udp_peer_put_packet(p, d, 7), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(p, d, 8), SN_OK);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_sent, 2);
    assert_int_equal(st.bytes_sent, 15);
    assert_int_equal(st.pending_taken, 1);
    assert_int_equal(st.pending_now, 0);
    assert_int_equal(st.taken_now, 1);
    sn_udp_peer_free(p);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.taken_now, 0);
    sn_udp_peer_free(a);
    sn_udp_peer_free(b);
    sn_udp_server_free(s);
    sn_udp_server_get_stats(NULL, &st);
    assert_int_equal(st.datagrams_received, 0);
}

/* 127.0.0.1 and ::ffff:127.0.0.1 are one remote. */
static void mapped_and_plain_ipv4_one_key(void **state)
{
    (void)state;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(5000)};
    inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
    struct sockaddr_in6 m = {.sin6_family = AF_INET6, .sin6_port = htons(5000)};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_port = htons(5000)};
    inet_pton(AF_INET6, "::1", &lo6.sin6_addr);
    sn_udp_key k1, k2, k3;
    sn_udp_key_from((struct sockaddr *)&v4, &k1);
    sn_udp_key_from((struct sockaddr *)&m, &k2);
    sn_udp_key_from((struct sockaddr *)&lo6, &k3);
    assert_memory_equal(&k1, &k2, sizeof k1);
    assert_memory_not_equal(&k1, &k3, sizeof k1);
    v4.sin_port = htons(5001);
    sn_udp_key_from((struct sockaddr *)&v4, &k3);
    assert_memory_not_equal(&k1, &k3, sizeof k1);

    /* End to end: on a dual-stack server an IPv4 client arrives mapped; both spellings find it. */
    sn_udp_server *s = listening(NULL);
    sn_udp_peer *c = client_of(s, "127.0.0.1");
    assert_int_equal(sn_udp_peer_put_packet(c, "x", 1), SN_OK);
    sn_udp_peer *p = take_one(s);
    v4.sin_port = htons((uint16_t)port_of(c));
    m.sin6_port = v4.sin_port;
    assert_ptr_equal(sn_udp_server_lookup(s, (struct sockaddr *)&v4), p);
    assert_ptr_equal(sn_udp_server_lookup(s, (struct sockaddr *)&m), p);
    char buf[2];
    size_t len;
    assert_int_equal(sn_udp_peer_get_packet(p, buf, sizeof buf, &len), SN_OK);
    assert_string_equal(sn_udp_peer_get_packet_ip(p), "127.0.0.1");
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

static void server_bad_input(void **state)
{
    (void)state;
    sn_udp_server *s = sn_udp_server_new();
    assert_int_equal(sn_udp_server_poll(s), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_server_poll(NULL), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_server_listen(NULL, 0, NULL), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_server_listen(s, 65536, NULL), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_server_listen(s, -1, NULL), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_server_listen(s, 0, "bogus"), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_server_listen(s, 0, "192.0.2.1"), SN_ERR_INVALID_PARAMETER);
    assert_false(sn_udp_server_is_listening(s));
    assert_int_equal(sn_udp_server_get_local_port(s), 0);
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_ERR_ALREADY_IN_USE);
    assert_int_equal(sn_udp_server_set_recv_buffer_size(s, -1), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_server_set_queue_limits(NULL, 1, 1), SN_ERR_INVALID_PARAMETER);
    assert_null(sn_udp_server_take_connection(NULL));
    assert_false(sn_udp_server_is_connection_available(NULL));
    assert_int_equal(sn_udp_server_get_fd(NULL), -1);
    assert_int_equal(sn_udp_server_next_timeout_ms(NULL), -1);
    sn_udp_server_set_max_pending_connections(NULL, 3);
    sn_udp_server_stop(NULL);
    sn_udp_server_free(NULL);
    sn_udp_server_free(s);
}

/* Allocation failures while polling: reported or counted, never a crash, and the server keeps
 * working once memory is back. */
static void allocation_failures(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    sn_udp_peer *c1 = client_of(s, "127.0.0.1"), *c2 = client_of(s, "127.0.0.1");
    /* No receive buffers can be made: poll says so and reads nothing. */
    assert_int_equal(sn_udp_peer_put_packet(c1, "a", 1), SN_OK);
    sn_test_sleep_ms(20);
    sn_test_fail_alloc_after(0, true);
    assert_int_equal(sn_udp_server_poll(s), SN_ERR_OUT_OF_MEMORY);
    sn_test_fail_alloc_after(-1, false);
    poll_until_received(s, 1);
    /* Receive blocks exist now; the new connection's allocation fails: dropped and counted. */
    assert_int_equal(sn_udp_peer_put_packet(c2, "b", 1), SN_OK);
    sn_test_sleep_ms(20);
    sn_test_fail_alloc_after(0, true);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_test_fail_alloc_after(-1, false);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_received, 2);
    assert_int_equal(st.dropped_no_memory, 1);
    assert_int_equal(st.pending_now, 1);
    /* Memory is back: c2 is accepted on its next datagram. */
    assert_int_equal(sn_udp_peer_put_packet(c2, "c", 1), SN_OK);
    poll_until_received(s, 3);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.pending_now, 2);
    /* Failed object allocations are reported. */
    sn_test_fail_alloc_after(0, false);
    assert_null(sn_udp_server_new());
    sn_test_fail_alloc_after(0, false);
    assert_null(sn_udp_peer_new());
    sn_test_fail_alloc_after(-1, false);
    sn_udp_peer_free(c1);
    sn_udp_peer_free(c2);
    sn_udp_server_free(s);
}

/* Random traffic, takes, reads, frees and closes, then the server freed under live peers:
 * every datagram read is intact and comes from the address its peer is bound to, and the
 * counters add up. ASan checks the pool and the table. */
static void churn(void **state)
{
    (void)state;
    enum { NC = 48, ITER = 3000 };
    srand(12345);
    sn_udp_server *s = listening("*");
    assert_int_equal(sn_udp_server_set_recv_buffer_size(s, 4 << 20), SN_OK);
    sn_udp_server_set_max_pending_connections(s, 8);
    assert_int_equal(sn_udp_server_set_queue_limits(s, 6, 20000), SN_OK);
    sn_udp_peer *cl[NC], *taken[NC * 4];
    size_t ntaken = 0;
    int cport[NC];
    for (int i = 0; i < NC; i++) {
        cl[i] = client_of(s, i % 3 ? "127.0.0.1" : "::1");
        cport[i] = port_of(cl[i]);
    }
    static uint8_t buf[4000], in[4000];
    uint64_t reads = 0;
    for (int it = 0; it < ITER; it++) {
        int k = rand() % NC;
        size_t len = (size_t)(rand() % 8 == 0 ? rand() % 4000 : rand() % 200);
        if (len >= 8) {
            memcpy(buf, &k, sizeof k);
            memcpy(buf + 4, &it, sizeof it);
            for (size_t j = 8; j < len; j++)
                buf[j] = (uint8_t)(j * 31 + (size_t)k);
        }
        sn_err e = sn_udp_peer_put_packet(cl[k], buf, len);
        assert_true(e == SN_OK || e == SN_ERR_BUSY);
        if (it % 7 == 0) assert_int_equal(sn_udp_server_poll(s), SN_OK);
        if (rand() % 5 == 0 && ntaken < NC * 4) {
            sn_udp_peer *p = sn_udp_server_take_connection(s);
            if (p) taken[ntaken++] = p;
        }
        if (ntaken && rand() % 3 == 0) {
            size_t t = (size_t)rand() % ntaken;
            sn_udp_peer *p = taken[t];
            int port = remote_port(p);
            size_t got;
            if (rand() % 2) {
                const uint8_t *d = sn_udp_peer_peek(p, &got);
                if (d) {
                    if (got >= 8) {
                        int who;
                        memcpy(&who, d, sizeof who);
                        assert_int_equal(cport[who], port);
                        for (size_t j = 8; j < got; j++)
                            assert_int_equal(d[j], (uint8_t)(j * 31 + (size_t)who));
                    }
                    sn_udp_peer_drop(p);
                    reads++;
                }
            } else if (sn_udp_peer_get_packet(p, in, sizeof in, &got) == SN_OK) {
                if (got >= 8) {
                    int who;
                    memcpy(&who, in, sizeof who);
                    assert_int_equal(cport[who], port);
                    assert_int_equal(sn_udp_peer_get_packet_port(p), port);
                    for (size_t j = 8; j < got; j++)
                        assert_int_equal(in[j], (uint8_t)(j * 31 + (size_t)who));
                }
                reads++;
            }
        }
        if (ntaken && rand() % 25 == 0) {
            size_t t = (size_t)rand() % ntaken;
            if (rand() % 2)
                sn_udp_peer_free(taken[t]);
            else
                sn_udp_peer_close(taken[t]), sn_udp_peer_free(taken[t]);
            taken[t] = taken[--ntaken];
        }
    }
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_received, st.datagrams_routed + st.dropped_pending_full +
                                                st.dropped_queue_full + st.dropped_oversize +
                                                st.dropped_no_memory);
    assert_int_equal(st.taken_now, ntaken);
    assert_int_equal(st.pending_taken, st.pending_opened - st.pending_now - st.pending_expired -
                                           st.pending_discarded);
    assert_true(reads > 100);
    assert_true(st.dropped_queue_full > 0);
    assert_true(st.dropped_pending_full > 0);
    sn_udp_server_free(s);
    for (size_t t = 0; t < ntaken; t++) {
        size_t got;
        while (sn_udp_peer_get_packet(taken[t], in, sizeof in, &got) == SN_OK)
            ;
        sn_udp_peer_free(taken[t]);
    }
    for (int i = 0; i < NC; i++)
        sn_udp_peer_free(cl[i]);
}

/* A port another UDP server holds is refused with its number named, on an address and on the
 * wildcard: two servers never split one port's traffic by accident (Godot's SO_REUSEADDR would
 * let the second one bind). */
static void port_in_use_refused(void **state)
{
    (void)state;
    const char *addrs[] = {"127.0.0.1", "*"};
    for (size_t i = 0; i < 2; i++) {
        sn_udp_server *a = listening(addrs[i]);
        int port = sn_udp_server_get_local_port(a);
        sn_udp_server *b = sn_udp_server_new();
        assert_non_null(b);
        assert_int_equal(sn_udp_server_listen(b, port, addrs[i]), SN_ERR_ALREADY_IN_USE);
        char want[64];
        snprintf(want, sizeof want, "udp port %d already in use", port);
        assert_string_equal(sn_last_error_message(), want);
        assert_false(sn_udp_server_is_listening(b));
        /* A plain peer cannot take it either. */
        sn_udp_peer *p = sn_udp_peer_new();
        assert_int_equal(sn_udp_peer_bind(p, port, addrs[i], 0), SN_ERR_ALREADY_IN_USE);
        sn_udp_peer_free(p);
        /* Once the first one stops, the port is free again at once (no TIME_WAIT for UDP). */
        sn_udp_server_stop(a);
        assert_int_equal(sn_udp_server_listen(b, port, addrs[i]), SN_OK);
        sn_udp_server_free(a);
        sn_udp_server_free(b);
    }
}

/* Port sharing on purpose: both servers ask for it, both listen, and every client lands on
 * exactly one of them. Asking only on one side, or after listen, is refused. */
static void reuse_port_opt_in(void **state)
{
    (void)state;
    sn_udp_server *a = sn_udp_server_new(), *b = sn_udp_server_new(), *c = sn_udp_server_new();
    assert_false(sn_udp_server_get_reuse_port(a));
    assert_int_equal(sn_udp_server_set_reuse_port(a, true), SN_OK);
    assert_int_equal(sn_udp_server_set_reuse_port(b, true), SN_OK);
    assert_true(sn_udp_server_get_reuse_port(a));
    assert_int_equal(sn_udp_server_listen(a, 0, "127.0.0.1"), SN_OK);
    int port = sn_udp_server_get_local_port(a);
    assert_int_equal(sn_udp_server_set_reuse_port(a, false), SN_ERR_ALREADY_IN_USE);
    assert_int_equal(sn_udp_server_listen(b, port, "127.0.0.1"), SN_OK);
    assert_int_equal(sn_udp_server_get_local_port(b), port);
    /* c did not opt in: the port stays closed to it. */
    assert_int_equal(sn_udp_server_listen(c, port, "127.0.0.1"), SN_ERR_ALREADY_IN_USE);
    assert_int_equal(sn_udp_server_set_reuse_port(NULL, true), SN_ERR_INVALID_PARAMETER);

    enum { NCL = 16 };
    sn_udp_peer *cl[NCL];
    for (int i = 0; i < NCL; i++) {
        cl[i] = client_of(a, "127.0.0.1");
        assert_int_equal(sn_udp_peer_put_packet(cl[i], "hi", 2), SN_OK);
    }
    uint64_t t0 = sn_test_now_ms();
    sn_udp_server_stats sa, sb;
    for (;;) {
        assert_int_equal(sn_udp_server_poll(a), SN_OK);
        assert_int_equal(sn_udp_server_poll(b), SN_OK);
        sn_udp_server_get_stats(a, &sa);
        sn_udp_server_get_stats(b, &sb);
        if (sa.datagrams_received + sb.datagrams_received >= NCL) break;
        assert_true(sn_test_now_ms() - t0 < 5000);
        sn_test_sleep_ms(1);
    }
    assert_int_equal(sa.datagrams_received + sb.datagrams_received, NCL);
    for (int i = 0; i < NCL; i++)
        sn_udp_peer_free(cl[i]);
    sn_udp_server_free(a);
    sn_udp_server_free(b);
    sn_udp_server_free(c);
}

/* ---- the ready list and the transport override -------------------------------------------- */

/* A scripted network for one server socket: datagrams the test queues are "received" from
 * made-up addresses; what the server sends is recorded. No packet touches the kernel. */
typedef struct scripted {
    int fd;
    struct {
        struct sockaddr_in from;
        char data[32];
        size_t len;
    } in[64];
    int nin, next;
    struct sockaddr_in sent_to[64];
    char sent[64][32];
    int nsent;
} scripted;
static scripted net;

static long scripted_send(void *user, int fd, const void *buf, size_t len,
                          const struct sockaddr *to, unsigned to_len)
{
    (void)user;
    assert_int_equal(fd, net.fd);
    assert_non_null(to);
    assert_true(to_len >= sizeof(struct sockaddr_in) && net.nsent < 64);
    memcpy(&net.sent_to[net.nsent], to, sizeof(struct sockaddr_in));
    snprintf(net.sent[net.nsent++], 32, "%.*s", (int)len, (const char *)buf);
    return (long)len;
}

static long scripted_recv(void *user, int fd, void *buf, size_t cap, struct sockaddr *from,
                          unsigned *from_len)
{
    (void)user;
    if (fd != net.fd || net.next >= net.nin) {
        errno = EAGAIN;
        return -1;
    }
    size_t len = net.in[net.next].len;
    memcpy(buf, net.in[net.next].data, len < cap ? len : cap);
    memcpy(from, &net.in[net.next].from, sizeof(struct sockaddr_in));
    *from_len = sizeof(struct sockaddr_in);
    net.next++;
    return (long)len;
}

static void script(int client, const char *text)
{
    int i = net.nin++;
    memset(&net.in[i].from, 0, sizeof net.in[i].from);
    net.in[i].from.sin_family = AF_INET;
    net.in[i].from.sin_port = htons((uint16_t)(40000 + client));
    net.in[i].from.sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)client); /* never sent to */
    net.in[i].len = (size_t)snprintf(net.in[i].data, sizeof net.in[i].data, "%s", text);
}

/* With an override, routing, pending connections, replies and the ready list work without any
 * network: deterministic, as tests and fuzz targets need. Taken peers that receive datagrams
 * join the ready list once each, in arrival order; a freed peer leaves it. */
static void ready_list_over_scripted_transport(void **state)
{
    (void)state;
    memset(&net, 0, sizeof net);
    static const sn_udp_transport t = {.send = scripted_send, .recv = scripted_recv};
    assert_int_equal(sn_set_udp_transport(&t), SN_OK);
    assert_true(sn_udp_transport_is_overridden());
    sn_udp_server *s = listening("127.0.0.1");
    net.fd = sn_udp_server_get_fd(s);
    for (int c = 1; c <= 3; c++)
        script(c, "hello");
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_udp_peer *peers[4] = {0};
    for (int c = 1; c <= 3; c++) {
        peers[c] = sn_udp_server_take_connection(s);
        assert_non_null(peers[c]);
        assert_int_equal(sn_udp_peer_get_packet_port(peers[c]), 0); /* nothing read yet */
        sn_udp_peer_set_ready_tag(peers[c], (void *)(uintptr_t)c);
    }
    /* Pending peers were never on the ready list. */
    assert_int_equal(sn_udp_server_ready_count(s), 0);
    assert_null(sn_udp_server_pop_ready(s));

    /* 3, 2, 3, 1 arrive: the list names 3, 2, 1 once each, in that order. */
    script(3, "a"), script(2, "b"), script(3, "c"), script(1, "d");
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    assert_int_equal(sn_udp_server_ready_count(s), 3);
    sn_udp_peer *r = sn_udp_server_pop_ready(s);
    assert_int_equal((uintptr_t)sn_udp_peer_ready_tag(r), 3);
    assert_int_equal(sn_udp_peer_get_available_packet_count(r), 3); /* hello, a, c */
    /* Freeing a peer that is on the list takes it off. */
    sn_udp_peer_free(peers[2]);
    peers[2] = NULL;
    r = sn_udp_server_pop_ready(s);
    assert_int_equal((uintptr_t)sn_udp_peer_ready_tag(r), 1);
    assert_null(sn_udp_server_pop_ready(s));
    assert_int_equal(sn_udp_server_ready_count(s), 0);

    /* Replies go through the override to the scripted addresses. */
    assert_int_equal(sn_udp_peer_put_packet(peers[1], "reply", 5), SN_OK);
    assert_int_equal(net.nsent, 1);
    assert_string_equal(net.sent[0], "reply");
    assert_int_equal(ntohs(net.sent_to[0].sin_port), 40001);
    /* A peer popped and not drained joins again with its next datagram. */
    script(3, "e");
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    assert_int_equal((uintptr_t)sn_udp_peer_ready_tag(sn_udp_server_pop_ready(s)), 3);

    sn_udp_peer_free(peers[1]);
    sn_udp_peer_free(peers[3]);
    sn_udp_server_free(s);
    assert_int_equal(sn_set_udp_transport(NULL), SN_OK);
    assert_false(sn_udp_transport_is_overridden());
}

/* A corked server queues its peers' sends and flushes them in one sendmmsg: through the kernel
 * (all arrive, one system call), and through the transport override with the middle datagram
 * failing for good: the other two still arrive, the failure is counted and becomes that peer's
 * send error (and puts it on the ready list), the neighbours have none. */
static void corked_sends_batch_and_report_failures(void **state)
{
    (void)state;
    for (int hooked = 0; hooked < 2; hooked++) {
        if (hooked) sn_test_transport_install();
        sn_udp_server *s = listening("127.0.0.1");
        sn_udp_peer *c[3], *p[3];
        for (int i = 0; i < 3; i++) {
            c[i] = client_of(s, "127.0.0.1");
            assert_int_equal(sn_udp_peer_put_packet(c[i], "hi", 2), SN_OK);
            p[i] = take_one(s);
            sn_udp_peer_set_ready_tag(p[i], (void *)(uintptr_t)(i + 1));
        }
        while (sn_udp_server_pop_ready(s)) {
        }
        sn_udp_server_set_corked(s, true);
        assert_true(sn_udp_server_is_corked(s));
        for (int i = 0; i < 3; i++) {
            char msg[8];
            snprintf(msg, sizeof msg, "r%d", i);
            /* Queued: SN_OK now, nothing on the wire yet. */
            assert_int_equal(sn_udp_peer_put_packet(p[i], msg, 2), SN_OK);
        }
        assert_int_equal(sn_udp_server_queued_sends(s), 3);
        assert_int_equal(sn_udp_peer_get_available_packet_count(c[0]), 0);
        if (hooked) sn_test_transport_fail_sends_to(remote_port(p[1]), EPERM);
        sn_udp_server_flush(s);
        assert_int_equal(sn_udp_server_queued_sends(s), 0);

        sn_udp_server_stats st;
        sn_udp_server_get_stats(s, &st);
        assert_true(st.send_batches >= 1);
        assert_int_equal(st.datagrams_sent, hooked ? 2 : 3);
        assert_int_equal(st.send_errors, hooked ? 1 : 0);
        for (int i = 0; i < 3; i++) {
            bool lost = hooked && i == 1;
            uint64_t t0 = sn_test_now_ms();
            while (!lost && sn_udp_peer_get_available_packet_count(c[i]) < 1) {
                assert_true(sn_test_now_ms() - t0 < 5000);
                sn_test_sleep_ms(1);
            }
            char buf[8];
            size_t len = 0;
            if (!lost) {
                assert_int_equal(sn_udp_peer_get_packet(c[i], buf, sizeof buf, &len), SN_OK);
                assert_int_equal(len, 2);
                assert_int_equal(buf[1], '0' + i);
            }
            char why[128] = "";
            assert_int_equal(sn_udp_peer_take_send_error(p[i], why, sizeof why), lost);
            if (lost) {
                assert_non_null(strstr(why, "Operation not permitted"));
                assert_false(sn_udp_peer_take_send_error(p[i], why, sizeof why)); /* once */
            }
        }
        /* The failed peer, and only it, is on the ready list for its consumer to hear. */
        if (hooked) {
            assert_int_equal((uintptr_t)sn_udp_peer_ready_tag(sn_udp_server_pop_ready(s)), 2);
            assert_null(sn_udp_server_pop_ready(s));
            sn_test_transport_fail_sends_to(0, 0);
        }
        /* A peer freed with a datagram queued: the datagram still leaves, nobody is told. */
        assert_int_equal(sn_udp_peer_put_packet(p[2], "zz", 2), SN_OK);
        sn_udp_peer_free(p[2]);
        sn_udp_server_set_corked(s, false); /* uncorking flushes */
        uint64_t t0 = sn_test_now_ms();
        while (sn_udp_peer_get_available_packet_count(c[2]) < 1) {
            assert_true(sn_test_now_ms() - t0 < 5000);
            sn_test_sleep_ms(1);
        }
        for (int i = 0; i < 3; i++)
            sn_udp_peer_free(c[i]);
        sn_udp_peer_free(p[0]);
        sn_udp_peer_free(p[1]);
        sn_udp_server_free(s);
        if (hooked) sn_test_transport_remove();
    }
}

/* The poll batch and the largest datagram change between polls (in place: down, back up, and
 * beyond what the receive slots were made for): every datagram that fits arrives intact, every
 * longer one is dropped and counted, in every combination. */
static void limits_changed_between_polls(void **state)
{
    (void)state;
    sn_udp_server *s = listening("127.0.0.1");
    sn_udp_peer *c = client_of(s, "127.0.0.1");
    static uint8_t out[8000], in[8000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 7 + 1);
    static const struct {
        int size;
        size_t fits, over; /* over 0: none sent */
        int batch, cap;
    } steps[] = {{100, 100, 101, 2, 3},      {4000, 4000, 4001, 64, 1024}, {65535, 7000, 0, 1, 1},
                 {100, 60, 3000, 16, 16},    {3000, 2500, 3001, 64, 1024}, {1, 1, 2, 4, 8},
                 {65535, 7999, 0, 64, 1024}, {2000, 1985, 2001, 3, 3}};
    sn_udp_peer *p = NULL;
    uint64_t sent = 0, oversize = 0;
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        assert_int_equal(sn_udp_server_set_poll_limits(s, steps[k].batch, steps[k].cap), SN_OK);
        assert_int_equal(sn_udp_server_set_max_datagram_size(s, steps[k].size), SN_OK);
        assert_int_equal(sn_udp_peer_put_packet(c, out, steps[k].fits), SN_OK);
        sent++;
        if (steps[k].over) {
            assert_int_equal(sn_udp_peer_put_packet(c, out, steps[k].over), SN_OK);
            sent++;
            oversize++;
        }
        poll_until_received(s, sent);
        if (!p) p = take_one(s);
        size_t len = 0;
        assert_int_equal(sn_udp_peer_get_packet(p, in, sizeof in, &len), SN_OK);
        assert_int_equal(len, steps[k].fits);
        assert_memory_equal(in, out, len);
        assert_int_equal(sn_udp_peer_get_packet(p, in, sizeof in, &len), SN_ERR_UNAVAILABLE);
        sn_udp_server_stats st;
        sn_udp_server_get_stats(s, &st);
        assert_int_equal(st.dropped_oversize, oversize);
        assert_int_equal(st.datagrams_routed, sent - oversize);
    }
    sn_udp_peer_free(p);
    sn_udp_peer_free(c);
    sn_udp_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basic_exchange_and_locks),
        cmocka_unit_test(zero_length_and_largest_datagram),
        cmocka_unit_test(five_hundred_clients_demux),
        cmocka_unit_test(pending_limit_and_setter),
        cmocka_unit_test(pending_expiry),
        cmocka_unit_test(freed_peer_reopens_as_pending),
        cmocka_unit_test(server_freed_before_peers),
        cmocka_unit_test(stop_and_listen_again),
        cmocka_unit_test(batching_and_cap),
        cmocka_unit_test(stats_exact),
        cmocka_unit_test(limits_changed_between_polls),
        cmocka_unit_test(mapped_and_plain_ipv4_one_key),
        cmocka_unit_test(server_bad_input),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(churn),
        cmocka_unit_test(port_in_use_refused),
        cmocka_unit_test(reuse_port_opt_in),
        cmocka_unit_test(ready_list_over_scripted_transport),
        cmocka_unit_test(corked_sends_batch_and_report_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
