/* The in-memory datagram network of tests/support (test_net.h) behind the UDP transport hook:
 * a UDP server and a connected UDP peer exchange datagrams with fake endpoints, the kernel's
 * connected-socket filter and queue limits are reproduced, and nothing touches the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sealnet/sealnet.h>

#include "test_net.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(server_and_fake_client, install, uninstall),
        cmocka_unit_test_setup_teardown(connected_peer_filters_sources, install, uninstall),
        cmocka_unit_test_setup_teardown(queues_are_bounded, install, uninstall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
