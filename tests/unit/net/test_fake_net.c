/* The in-memory datagram network of tests/support (test_net.h) behind the UDP transport hook:
 * a UDP server and a connected UDP peer exchange datagrams with fake endpoints, the kernel's
 * connected-socket filter and queue limits are reproduced, and nothing touches the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/sealnet.h>

#include "test_net.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int install(void **state)
{
    (void)state;
    sn_test_net_install();
    return 0;
}

static int uninstall(void **state)
{
    (void)state;
    sn_test_net_remove();
    return 0;
}

static void server_and_fake_client(void **state)
{
    (void)state;
    sn_udp_server *s = sn_udp_server_new();
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    sn_test_addr server = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_udp_server_get_local_port(s));
    sn_test_addr client = sn_test_addr_v4(127, 0, 0, 7, 40000);
    assert_true(sn_test_net_inject(&client, &server, "ping", 4));
    assert_int_equal(sn_test_net_queued_to(&server), 1);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    assert_true(sn_udp_server_is_connection_available(s));
    sn_udp_peer *p = sn_udp_server_take_connection(s);
    assert_non_null(p);
    uint8_t buf[16];
    size_t len;
    assert_int_equal(sn_udp_peer_get_packet(p, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "ping", 4);
    assert_string_equal(sn_udp_peer_get_packet_ip(p), "127.0.0.7");
    assert_int_equal(sn_udp_peer_get_packet_port(p), 40000);
    /* The answer waits for the fake client, from the server's address. */
    assert_int_equal(sn_udp_peer_put_packet(p, "pong", 4), SN_OK);
    sn_test_addr from;
    assert_int_equal(sn_test_net_take(&client, buf, sizeof buf, &from), 4);
    assert_memory_equal(buf, "pong", 4);
    assert_true(sn_test_addr_equal(&from, &server));
    assert_int_equal(sn_test_net_take(&client, buf, sizeof buf, &from), -1);
    sn_udp_peer_free(p);
    sn_udp_server_free(s);
}

static void connected_peer_filters_sources(void **state)
{
    (void)state;
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(u, "127.0.0.1", 9), SN_OK);
    sn_test_addr self = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_udp_peer_get_local_port(u));
    sn_test_addr remote = sn_test_addr_v4(127, 0, 0, 1, 9);
    sn_test_addr stranger = sn_test_addr_v4(127, 0, 0, 2, 9);
    assert_true(sn_test_net_inject(&stranger, &self, "spoof", 5));
    assert_true(sn_test_net_inject(&remote, &self, "real", 4));
    uint8_t buf[16];
    size_t len;
    sn_err e = SN_ERR_UNAVAILABLE;
    for (int i = 0; i < 3 && e != SN_OK; i++) { /* a read is what pumps the socket */
        sn_udp_peer_wait(u, 0);
        e = sn_udp_peer_get_packet(u, buf, sizeof buf, &len);
    }
    assert_int_equal(e, SN_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "real", 4);
    assert_int_equal(sn_udp_peer_get_packet(u, buf, sizeof buf, &len), SN_ERR_UNAVAILABLE);
    sn_test_net_stats st;
    sn_test_net_get_stats(&st);
    assert_int_equal(st.dropped_filter, 1);
    /* What the peer sends goes to its connected address. */
    assert_int_equal(sn_udp_peer_put_packet(u, "out", 3), SN_OK);
    assert_int_equal(sn_test_net_queued_to(&remote), 1);
    sn_udp_peer_free(u);
}

static void queues_are_bounded(void **state)
{
    (void)state;
    sn_test_net_set_limits(2, 8192);
    sn_test_addr a = sn_test_addr_v4(127, 0, 0, 3, 1), b = sn_test_addr_v4(127, 0, 0, 4, 2);
    assert_true(sn_test_net_inject(&a, &b, "1", 1));
    assert_true(sn_test_net_inject(&a, &b, "2", 1));
    assert_false(sn_test_net_inject(&a, &b, "3", 1));
    sn_test_net_stats st;
    sn_test_net_get_stats(&st);
    assert_int_equal(st.dropped_full, 1);
    assert_int_equal(sn_test_net_queued(), 2);
    sn_test_net_reset();
    assert_int_equal(sn_test_net_queued(), 0);
    sn_test_net_set_limits(256, 8192);
}

/* The network's drops are what the server's and a peer's dropped_kernel report (no getsockopt
 * under an override that counts its own drops), and a transport's drops() is asked for them. */
static void drops_reported_as_dropped_kernel(void **state)
{
    (void)state;
    sn_test_net_set_limits(2, 8192);
    sn_udp_server *s = sn_udp_server_new();
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    sn_test_addr server = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_udp_server_get_local_port(s));
    sn_test_addr client = sn_test_addr_v4(127, 0, 0, 7, 40000);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.dropped_kernel, 0);
    for (int i = 0; i < 5; i++)
        sn_test_net_inject(&client, &server, "x", 1);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.dropped_kernel, 3);
    assert_int_equal(sn_udp_server_poll(s), SN_OK);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.datagrams_received, 2);
    assert_int_equal(st.dropped_kernel, 3);

    /* A standalone peer: only its own address's drops count. */
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(u, 0, "127.0.0.1", 0), SN_OK);
    sn_test_addr self = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_udp_peer_get_local_port(u));
    for (int i = 0; i < 4; i++)
        sn_test_net_inject(&client, &self, "y", 1);
    sn_udp_peer_stats ps;
    sn_udp_peer_get_stats(u, &ps);
    assert_int_equal(ps.dropped_kernel, 2);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.dropped_kernel, 3);
    sn_udp_peer_free(u);
    sn_udp_server_free(s);
    sn_test_net_set_limits(256, 8192);
}

static int drops_asked;
static long null_send(void *user, int fd, const void *buf, size_t len, const struct sockaddr *to,
                      unsigned to_len)
{
    (void)user, (void)fd, (void)buf, (void)to, (void)to_len;
    return (long)len;
}
static long null_recv(void *user, int fd, void *buf, size_t cap, struct sockaddr *from,
                      unsigned *from_len)
{
    (void)user, (void)fd, (void)buf, (void)cap, (void)from, (void)from_len;
    errno = EAGAIN;
    return -1;
}
static uint64_t fixed_drops(void *user, int fd)
{
    (void)fd;
    drops_asked++;
    return *(const uint64_t *)user;
}

static void transport_drops_function(void **state)
{
    (void)state;
    static const uint64_t n = 42;
    sn_udp_transport t = {
        .send = null_send, .recv = null_recv, .drops = fixed_drops, .user = (void *)(uintptr_t)&n};
    assert_int_equal(sn_set_udp_transport(&t), SN_OK);
    sn_udp_server *s = sn_udp_server_new();
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    sn_udp_server_stats st;
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.dropped_kernel, 42);
    assert_int_equal(drops_asked, 1);
    sn_udp_server_free(s);
    /* Without drops() the kernel's counter is read again (nothing dropped on this socket). */
    t.drops = NULL;
    assert_int_equal(sn_set_udp_transport(&t), SN_OK);
    s = sn_udp_server_new();
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    sn_udp_server_get_stats(s, &st);
    assert_int_equal(st.dropped_kernel, 0);
    assert_int_equal(drops_asked, 1);
    sn_udp_server_free(s);
    sn_test_net_install(); /* back to the network for the teardown */
}

/* get_packet_ip formats an address once while datagrams keep coming from it; a new address, or
 * one seen again after another, is formatted afresh, and the port is always the datagram's. */
static void packet_source_follows_each_datagram(void **state)
{
    (void)state;
    sn_udp_peer *u = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(u, 0, "127.0.0.1", 0), SN_OK);
    sn_test_addr self = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_udp_peer_get_local_port(u));
    static const struct {
        uint8_t host;
        uint16_t port;
        bool ask_ip;
    } from[] = {{7, 1000, true}, {7, 1001, true}, {8, 1002, false}, {7, 1003, true},
                {8, 1004, true}, {8, 1005, true}, {9, 1006, false}, {9, 1007, true}};
    enum { N = sizeof from / sizeof from[0] };
    for (int i = 0; i < N; i++) {
        sn_test_addr a = sn_test_addr_v4(127, 0, 0, from[i].host, from[i].port);
        assert_true(sn_test_net_inject(&a, &self, "d", 1));
    }
    uint8_t buf[4];
    size_t len;
    char want[16];
    for (int i = 0; i < N; i++) {
        assert_int_equal(sn_udp_peer_get_packet(u, buf, sizeof buf, &len), SN_OK);
        assert_int_equal(sn_udp_peer_get_packet_port(u), from[i].port);
        if (!from[i].ask_ip) continue;
        snprintf(want, sizeof want, "127.0.0.%d", from[i].host);
        assert_string_equal(sn_udp_peer_get_packet_ip(u), want);
        assert_string_equal(sn_udp_peer_get_packet_ip(u), want);
    }
    sn_udp_peer_free(u);
}

/* The network caches socket names; sealnet's forget() keeps them right when a descriptor is
 * closed and its number reused by a socket on another port, and when a bound socket connects. */
static void names_follow_close_reuse_and_connect(void **state)
{
    (void)state;
    sn_test_addr stranger = sn_test_addr_v4(127, 0, 0, 2, 9),
                 remote = sn_test_addr_v4(127, 0, 0, 3, 9);
    uint8_t buf[8];
    size_t len;
    sn_udp_peer *a = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(a, 0, "127.0.0.1", 0), SN_OK);
    int fd = sn_udp_peer_get_fd(a);
    sn_test_addr at_a = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_udp_peer_get_local_port(a));
    assert_true(sn_test_net_inject(&stranger, &at_a, "a", 1));
    assert_int_equal(sn_udp_peer_get_packet(a, buf, sizeof buf, &len), SN_OK); /* names cached */
    sn_udp_peer_free(a);

    sn_udp_peer *b = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(b, 0, "127.0.0.1", 0), SN_OK);
    assert_int_equal(sn_udp_peer_get_fd(b), fd); /* the number is reused */
    sn_test_addr at_b = sn_test_addr_v4(127, 0, 0, 1, (uint16_t)sn_udp_peer_get_local_port(b));
    assert_false(sn_test_addr_equal(&at_a, &at_b));
    assert_true(sn_test_net_inject(&stranger, &at_b, "b", 1));
    assert_int_equal(sn_udp_peer_get_packet(b, buf, sizeof buf, &len), SN_OK);
    assert_memory_equal(buf, "b", 1);

    /* Connected after its names were cached: it now reads only from its peer. */
    assert_int_equal(sn_udp_peer_connect_to_host(b, "127.0.0.3", 9), SN_OK);
    assert_true(sn_test_net_inject(&stranger, &at_b, "x", 1));
    assert_true(sn_test_net_inject(&remote, &at_b, "r", 1));
    assert_int_equal(sn_udp_peer_get_packet(b, buf, sizeof buf, &len), SN_OK);
    assert_memory_equal(buf, "r", 1);
    sn_test_net_stats st;
    sn_test_net_get_stats(&st);
    assert_int_equal(st.dropped_filter, 1);
    sn_udp_peer_free(b);
}

static int forgets;
static void count_forget(void *user, int fd)
{
    (void)user;
    assert_true(fd >= 0);
    forgets++;
}

/* forget() is called after a bind and a connect and before a close, for peers and servers. */
static void transport_told_of_socket_changes(void **state)
{
    (void)state;
    sn_udp_transport t = {.send = null_send, .recv = null_recv, .forget = count_forget};
    assert_int_equal(sn_set_udp_transport(&t), SN_OK);
    forgets = 0;
    sn_udp_peer *p = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(p, 0, "127.0.0.1", 0), SN_OK);
    assert_int_equal(forgets, 1);
    assert_int_equal(sn_udp_peer_connect_to_host(p, "127.0.0.1", 9), SN_OK);
    assert_int_equal(forgets, 2);
    sn_udp_peer_close(p);
    assert_int_equal(forgets, 3);
    sn_udp_peer_free(p);
    assert_int_equal(forgets, 3);
    sn_udp_server *s = sn_udp_server_new();
    assert_int_equal(sn_udp_server_listen(s, 0, "127.0.0.1"), SN_OK);
    assert_int_equal(forgets, 4);
    sn_udp_server_free(s);
    assert_int_equal(forgets, 5);
    sn_test_net_install();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(server_and_fake_client, install, uninstall),
        cmocka_unit_test_setup_teardown(connected_peer_filters_sources, install, uninstall),
        cmocka_unit_test_setup_teardown(queues_are_bounded, install, uninstall),
        cmocka_unit_test_setup_teardown(drops_reported_as_dropped_kernel, install, uninstall),
        cmocka_unit_test_setup_teardown(transport_drops_function, install, uninstall),
        cmocka_unit_test_setup_teardown(packet_source_follows_each_datagram, install, uninstall),
        cmocka_unit_test_setup_teardown(names_follow_close_reuse_and_connect, install, uninstall),
        cmocka_unit_test_setup_teardown(transport_told_of_socket_changes, install, uninstall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
