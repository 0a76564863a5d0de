/* sn_udp_peer on its own socket: echo over IPv4 and IPv6, sizes, bad input, ICMP errors, the
 * internal reading contract used by DTLS. Loopback only, ephemeral ports, bounded waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "udp_internal.h"

static sn_udp_peer *bound_peer(const char *addr)
{
    sn_udp_peer *p = sn_udp_peer_new();
    assert_non_null(p);
    assert_int_equal(sn_udp_peer_bind(p, 0, addr, 0), SN_OK);
    assert_true(sn_udp_peer_is_bound(p));
    assert_true(sn_udp_peer_get_local_port(p) > 0);
    return p;
}

static void echo_between(const char *bind_a, const char *bind_b, const char *dest_ip,
                         const char *expect_ip)
{
    sn_udp_peer *a = bound_peer(bind_a), *b = bound_peer(bind_b);
    assert_int_equal(sn_udp_peer_set_dest_address(a, dest_ip, sn_udp_peer_get_local_port(b)),
                     SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, "hello", 5), SN_OK);
    assert_int_equal(sn_udp_peer_wait(b, 2000), SN_OK);
    assert_int_equal(sn_udp_peer_get_available_packet_count(b), 1);
    char buf[64];
    size_t len = 0;
    assert_int_equal(sn_udp_peer_get_packet(b, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_string_equal(sn_udp_peer_get_packet_ip(b), expect_ip);
    assert_int_equal(sn_udp_peer_get_packet_port(b), sn_udp_peer_get_local_port(a));
    /* Reply to where it came from. */
    assert_int_equal(sn_udp_peer_set_dest_address(b, sn_udp_peer_get_packet_ip(b),
                                                  sn_udp_peer_get_packet_port(b)),
                     SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(b, "world!", 6), SN_OK);
    assert_int_equal(sn_udp_peer_wait(a, 2000), SN_OK);
    assert_int_equal(sn_udp_peer_get_packet(a, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "world!", 6);
    assert_int_equal(sn_udp_peer_get_packet_port(a), sn_udp_peer_get_local_port(b));
    sn_udp_peer_stats st;
    sn_udp_peer_get_stats(a, &st);
    assert_int_equal(st.datagrams_sent, 1);
    assert_int_equal(st.bytes_sent, 5);
    assert_int_equal(st.datagrams_received, 1);
    assert_int_equal(st.bytes_received, 6);
    sn_udp_peer_free(a);
    sn_udp_peer_free(b);
}

static void echo_ipv4(void **state)
{
    (void)state;
    echo_between("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1");
}

static void echo_ipv6(void **state)
{
    (void)state;
    echo_between("::1", "::1", "::1", "::1");
}

/* A dual-stack socket sends to a plain IPv4 destination; the receiver sees a dotted quad. */
static void echo_dual_stack_to_ipv4(void **state)
{
    (void)state;
    echo_between("*", NULL, "127.0.0.1", "127.0.0.1");
}

static void connected_peer_filters_and_locks(void **state)
{
    (void)state;
    sn_udp_peer *srv = bound_peer("127.0.0.1"), *other = bound_peer("127.0.0.1");
    sn_udp_peer *c = sn_udp_peer_new();
    assert_false(sn_udp_peer_is_bound(c));
    assert_int_equal(sn_udp_peer_get_local_port(c), 0);
    /* A host name, resolved; the peer binds an ephemeral port itself. */
    assert_int_equal(sn_udp_peer_connect_to_host(c, "localhost", sn_udp_peer_get_local_port(srv)),
                     SN_OK);
    assert_true(sn_udp_peer_is_bound(c));
    assert_true(sn_udp_peer_is_socket_connected(c));
    assert_int_equal(sn_udp_peer_set_dest_address(c, "127.0.0.1", 9), SN_ERR_LOCKED);
    int cport = sn_udp_peer_get_local_port(c);
    assert_true(cport > 0);
    /* Only the connected address gets through. */
    assert_int_equal(sn_udp_peer_set_dest_address(other, "127.0.0.1", cport), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(other, "intruder", 8), SN_OK);
    assert_int_equal(sn_udp_peer_set_dest_address(srv, "127.0.0.1", cport), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(srv, "ok", 2), SN_OK);
    assert_int_equal(sn_udp_peer_wait(c, 2000), SN_OK);
    sn_test_sleep_ms(20);
    assert_int_equal(sn_udp_peer_get_available_packet_count(c), 1);
    char buf[16];
    size_t len;
    assert_int_equal(sn_udp_peer_get_packet(c, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(buf, "ok", 2);
    /* The connected peer sends to its remote. */
    assert_int_equal(sn_udp_peer_put_packet(c, "back", 4), SN_OK);
    assert_int_equal(sn_udp_peer_wait(srv, 2000), SN_OK);
    assert_int_equal(sn_udp_peer_get_packet(srv, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, 4);
    assert_int_equal(sn_udp_peer_get_packet_port(srv), cport);
    sn_udp_peer_free(c);
    sn_udp_peer_free(srv);
    sn_udp_peer_free(other);
}

static void sizes_zero_max_and_small_buffers(void **state)
{
    (void)state;
    sn_udp_peer *a = bound_peer("127.0.0.1"), *b = bound_peer("127.0.0.1");
    assert_int_equal(sn_udp_peer_set_dest_address(a, "127.0.0.1", sn_udp_peer_get_local_port(b)),
                     SN_OK);
    /* Zero-length datagram: a real, empty packet. */
    assert_int_equal(sn_udp_peer_put_packet(a, NULL, 0), SN_OK);
    assert_int_equal(sn_udp_peer_wait(b, 2000), SN_OK);
    assert_int_equal(sn_udp_peer_get_available_packet_count(b), 1);
    size_t len = 99;
    char small[8];
    assert_int_equal(sn_udp_peer_get_packet(b, small, sizeof small, &len), SN_OK);
    assert_int_equal(len, 0);
    assert_int_equal(sn_udp_peer_get_available_packet_count(b), 0);

    /* The largest datagram. */
    size_t big = 65507;
    unsigned char *out = malloc(big), *in = malloc(big);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < big; i++)
        out[i] = (unsigned char)(i * 7 + 3);
    assert_int_equal(sn_udp_peer_put_packet(a, out, big), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, out, big + 1), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_non_null(strstr(sn_last_error_message(), "65508"));
    assert_int_equal(sn_udp_peer_wait(b, 2000), SN_OK);
    /* Too small a buffer: error, size reported, datagram still queued. */
    assert_int_equal(sn_udp_peer_get_packet(b, in, 100, &len), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(len, big);
    assert_non_null(strstr(sn_last_error_message(), "65507"));
    assert_int_equal(sn_udp_peer_get_available_packet_count(b), 1);
    assert_int_equal(sn_udp_peer_get_packet(b, in, big, &len), SN_OK);
    assert_int_equal(len, big);
    assert_memory_equal(in, out, big);
    assert_int_equal(sn_udp_peer_get_packet(b, in, big, &len), SN_ERR_UNAVAILABLE);
    free(out);
    free(in);
    sn_udp_peer_free(a);
    sn_udp_peer_free(b);
}

static void bad_input(void **state)
{
    (void)state;
    sn_udp_peer *p = sn_udp_peer_new();
    char buf[8];
    size_t len;
    /* NULL arguments. */
    assert_int_equal(sn_udp_peer_bind(NULL, 0, NULL, 0), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_connect_to_host(p, NULL, 1), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_set_dest_address(p, NULL, 1), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_put_packet(NULL, "x", 1), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_put_packet(p, NULL, 1), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_get_packet(p, buf, sizeof buf, NULL), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_get_packet(NULL, buf, sizeof buf, &len), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_get_packet(p, NULL, 8, &len), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_wait(NULL, 0), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_join_multicast_group(NULL, "239.1.1.1", NULL),
                     SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_set_broadcast_enabled(NULL, true), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_get_available_packet_count(NULL), 0);
    assert_string_equal(sn_udp_peer_get_packet_ip(NULL), "");
    assert_string_equal(sn_udp_peer_get_packet_ip(p), "");
    assert_int_equal(sn_udp_peer_get_packet_port(p), 0);
    assert_int_equal(sn_udp_peer_get_fd(NULL), -1);
    sn_udp_peer_free(NULL);
    sn_udp_peer_close(NULL);
    /* Ports out of range. */
    assert_int_equal(sn_udp_peer_bind(p, -1, NULL, 0), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_peer_bind(p, 65536, NULL, 0), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_non_null(strstr(sn_last_error_message(), "65536"));
    assert_int_equal(sn_udp_peer_connect_to_host(p, "127.0.0.1", 0), SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_peer_connect_to_host(p, "127.0.0.1", 70000),
                     SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_peer_set_dest_address(p, "127.0.0.1", -5),
                     SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_udp_peer_bind(p, 0, NULL, -1), SN_ERR_PARAMETER_RANGE_ERROR);
    /* Invalid addresses and names. */
    assert_int_equal(sn_udp_peer_bind(p, 0, "not-an-ip", 0), SN_ERR_INVALID_PARAMETER);
    assert_non_null(strstr(sn_last_error_message(), "not-an-ip"));
    assert_int_equal(sn_udp_peer_bind(p, 0, "300.1.1.1", 0), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_connect_to_host(p, "nonexistent.invalid", 4242),
                     SN_ERR_CANT_RESOLVE);
    assert_non_null(strstr(sn_last_error_message(), "nonexistent.invalid"));
    assert_int_equal(sn_udp_peer_set_dest_address(p, "nonexistent.invalid", 4242),
                     SN_ERR_CANT_RESOLVE);
    assert_false(sn_udp_peer_is_bound(p));
    /* Nothing to send to, nothing to read, no socket to wait on. */
    assert_int_equal(sn_udp_peer_put_packet(p, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_peer_get_packet(p, buf, sizeof buf, &len), SN_ERR_UNAVAILABLE);
    assert_int_equal(sn_udp_peer_wait(p, 10), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "239.1.1.1", NULL), SN_ERR_UNCONFIGURED);

    /* Bound twice; timeouts; wait range. */
    assert_int_equal(sn_udp_peer_bind(p, 0, "127.0.0.1", 0), SN_OK);
    assert_int_equal(sn_udp_peer_bind(p, 0, "127.0.0.1", 0), SN_ERR_ALREADY_IN_USE);
    uint64_t t0 = sn_test_now_ms();
    assert_int_equal(sn_udp_peer_wait(p, 50), SN_ERR_TIMEOUT);
    assert_true(sn_test_now_ms() - t0 >= 45);
    assert_int_equal(sn_udp_peer_wait(p, -2), SN_ERR_PARAMETER_RANGE_ERROR);

    /* A port held by another socket (without SO_REUSEADDR). */
    int port = sn_udp_peer_get_local_port(p);
    sn_udp_peer *q = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_bind(q, port, "127.0.0.1", 0), SN_ERR_ALREADY_IN_USE);
    char want[32];
    snprintf(want, sizeof want, "port %d", port);
    assert_non_null(strstr(sn_last_error_message(), want));
    /* And the server, which does use SO_REUSEADDR, cannot share it either. */
    sn_udp_server *s = sn_udp_server_new();
    assert_int_equal(sn_udp_server_listen(s, port, "127.0.0.1"), SN_ERR_ALREADY_IN_USE);
    assert_non_null(strstr(sn_last_error_message(), want));
    sn_udp_server_free(s);

    /* Closed peer: no destination, no data; it can be bound again. */
    sn_udp_peer_close(p);
    assert_false(sn_udp_peer_is_bound(p));
    assert_int_equal(sn_udp_peer_put_packet(p, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_udp_peer_get_local_port(p), 0);
    assert_int_equal(sn_udp_peer_bind(q, port, "127.0.0.1", 0), SN_OK);
    assert_int_equal(sn_udp_peer_bind(p, 0, "127.0.0.1", 0), SN_OK);
    sn_udp_peer_free(q);
    sn_udp_peer_free(p);
}

static void sockets_nonblocking_cloexec(void **state)
{
    (void)state;
    sn_udp_peer *p = bound_peer(NULL);
    int fd = sn_udp_peer_get_fd(p);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    sn_udp_peer_free(p);
}

/* ICMP port unreachable on a connected peer is counted, not fatal. */
static void icmp_refused_is_not_fatal(void **state)
{
    (void)state;
    sn_udp_peer *gone = bound_peer("127.0.0.1");
    int port = sn_udp_peer_get_local_port(gone);
    sn_udp_peer_close(gone);
    sn_udp_peer *c = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(c, "127.0.0.1", port), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(c, "anyone?", 7), SN_OK);
    sn_test_sleep_ms(50);
    /* The error surfaces while reading; nothing arrives, and the peer stays usable. */
    assert_int_equal(sn_udp_peer_get_available_packet_count(c), 0);
    sn_udp_peer_stats st;
    sn_udp_peer_get_stats(c, &st);
    assert_int_equal(st.icmp_refused, 1);
    /* The syscall-free view the DTLS client reads on every poll says the same. */
    sn_udp_peer_stats counters;
    sn_udp_peer_get_counters(c, &counters);
    assert_int_equal(counters.icmp_refused, 1);
    assert_int_equal(counters.datagrams_received, st.datagrams_received);
    assert_int_equal(counters.dropped_kernel, 0);
    sn_udp_peer_get_counters(NULL, &counters);
    assert_int_equal(counters.icmp_refused, 0);
    /* Another unanswered send, then the error is reported by the next send, which still goes. */
    assert_int_equal(sn_udp_peer_put_packet(c, "again", 5), SN_OK);
    sn_test_sleep_ms(50);
    if (sn_udp_peer_bind(gone, port, "127.0.0.1", 0) == SN_OK) {
        assert_int_equal(sn_udp_peer_put_packet(c, "now", 3), SN_OK);
        sn_udp_peer_get_stats(c, &st);
        assert_int_equal(st.icmp_refused, 2);
        assert_int_equal(sn_udp_peer_wait(gone, 2000), SN_OK);
        char buf[8];
        size_t len;
        assert_int_equal(sn_udp_peer_get_packet(gone, buf, sizeof buf, &len), SN_OK);
        assert_int_equal(len, 3);
        assert_int_equal(
            sn_udp_peer_set_dest_address(gone, "127.0.0.1", sn_udp_peer_get_local_port(c)), SN_OK);
        assert_int_equal(sn_udp_peer_put_packet(gone, "here", 4), SN_OK);
        assert_int_equal(sn_udp_peer_wait(c, 2000), SN_OK);
        assert_int_equal(sn_udp_peer_get_packet(c, buf, sizeof buf, &len), SN_OK);
        assert_int_equal(len, 4);
    } else {
        print_message("port %d taken by someone else meanwhile; skipped the recovery half\n", port);
    }
    sn_udp_peer_free(c);
    sn_udp_peer_free(gone);
}

static void standalone_queue_bound(void **state)
{
    (void)state;
    sn_udp_peer *a = bound_peer("127.0.0.1"), *b = bound_peer("127.0.0.1");
    assert_int_equal(sn_udp_peer_set_queue_limits(b, 3, 0), SN_OK);
    assert_int_equal(sn_udp_peer_set_dest_address(a, "127.0.0.1", sn_udp_peer_get_local_port(b)),
                     SN_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sn_udp_peer_put_packet(a, &i, sizeof i), SN_OK);
    sn_test_sleep_ms(30);
    assert_int_equal(sn_udp_peer_get_available_packet_count(b), 3);
    sn_udp_peer_stats st;
    sn_udp_peer_get_stats(b, &st);
    assert_int_equal(st.dropped_queue_full, 2);
    /* The oldest are kept, in order. */
    for (int i = 0; i < 3; i++) {
        int v = -1;
        size_t len;
        assert_int_equal(sn_udp_peer_get_packet(b, &v, sizeof v, &len), SN_OK);
        assert_int_equal(v, i);
    }
    /* Byte bound. */
    assert_int_equal(sn_udp_peer_set_queue_limits(b, 100, 1000), SN_OK);
    char blob[600] = {0};
    assert_int_equal(sn_udp_peer_put_packet(a, blob, sizeof blob), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, blob, sizeof blob), SN_OK);
    sn_test_sleep_ms(30);
    assert_int_equal(sn_udp_peer_get_available_packet_count(b), 1);
    sn_udp_peer_get_stats(b, &st);
    assert_int_equal(st.dropped_queue_full, 3);
    sn_udp_peer_free(a);
    sn_udp_peer_free(b);
}

/* What the DTLS layer relies on: pump, peek, drop, remote, is_server_owned. */
static void dtls_contract_standalone(void **state)
{
    (void)state;
    sn_udp_peer *a = bound_peer("127.0.0.1"), *c = sn_udp_peer_new();
    sn_addr r;
    assert_false(sn_udp_peer_remote(c, &r));
    assert_int_equal(sn_udp_peer_connect_to_host(c, "127.0.0.1", sn_udp_peer_get_local_port(a)),
                     SN_OK);
    assert_true(sn_udp_peer_remote(c, &r));
    char ip[SN_IP_STRLEN];
    int port;
    sn_net_format((struct sockaddr *)&r.ss, ip, &port);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(port, sn_udp_peer_get_local_port(a));
    assert_false(sn_udp_peer_is_server_owned(c));
    assert_int_equal(sn_udp_peer_set_dest_address(a, "127.0.0.1", sn_udp_peer_get_local_port(c)),
                     SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, "one", 3), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, "", 0), SN_OK);
    assert_int_equal(sn_udp_peer_put_packet(a, "three", 5), SN_OK);
    sn_test_sleep_ms(30);
    size_t len = 99;
    assert_null(sn_udp_peer_peek(c, &len)); /* nothing before pumping */
    assert_int_equal(len, 0);
    assert_int_equal(sn_udp_peer_pump(c), SN_OK);
    const uint8_t *d = sn_udp_peer_peek(c, &len);
    assert_non_null(d);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "one", 3);
    sn_udp_peer_drop(c);
    d = sn_udp_peer_peek(c, &len);
    assert_non_null(d); /* an empty datagram is still a datagram */
    assert_int_equal(len, 0);
    sn_udp_peer_drop(c);
    d = sn_udp_peer_peek(c, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(d, "three", 5);
    sn_udp_peer_drop(c);
    assert_null(sn_udp_peer_peek(c, &len));
    sn_udp_peer_drop(c); /* no-op */
    sn_udp_peer_free(c);
    sn_udp_peer_free(a);
}

static void broadcast_and_multicast(void **state)
{
    (void)state;
    sn_udp_peer *p = sn_udp_peer_new();
    /* Remembered before binding, applied on bind. */
    assert_int_equal(sn_udp_peer_set_broadcast_enabled(p, true), SN_OK);
    assert_int_equal(sn_udp_peer_bind(p, 0, "0.0.0.0", 0), SN_OK);
    int v = 0;
    socklen_t sl = sizeof v;
    assert_int_equal(getsockopt(sn_udp_peer_get_fd(p), SOL_SOCKET, SO_BROADCAST, &v, &sl), 0);
    assert_int_equal(v, 1);
    assert_int_equal(sn_udp_peer_set_broadcast_enabled(p, false), SN_OK);
    assert_int_equal(getsockopt(sn_udp_peer_get_fd(p), SOL_SOCKET, SO_BROADCAST, &v, &sl), 0);
    assert_int_equal(v, 0);

    assert_int_equal(sn_udp_peer_join_multicast_group(p, "1.2.3.4", NULL),
                     SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "nope", NULL), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "", NULL), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "239.255.0.1", "nosuchif0"),
                     SN_ERR_INVALID_PARAMETER);
    assert_non_null(strstr(sn_last_error_message(), "nosuchif0"));
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "ff02::1:3", NULL),
                     SN_ERR_INVALID_PARAMETER); /* IPv6 group on an IPv4 socket */
    /* Joining on the loopback interface by name, then leaving. */
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "239.255.0.1", "lo"), SN_OK);
    assert_int_equal(sn_udp_peer_leave_multicast_group(p, "239.255.0.1", "lo"), SN_OK);
    assert_int_not_equal(sn_udp_peer_leave_multicast_group(p, "239.255.0.1", "lo"), SN_OK);
    sn_udp_peer_free(p);

    /* IPv6 and IPv4 groups on a dual-stack socket. */
    p = bound_peer(NULL);
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "ff02::1:3", "lo"), SN_OK);
    assert_int_equal(sn_udp_peer_leave_multicast_group(p, "ff02::1:3", "lo"), SN_OK);
    assert_int_equal(sn_udp_peer_join_multicast_group(p, "239.255.0.2", "lo"), SN_OK);
    assert_int_equal(sn_udp_peer_leave_multicast_group(p, "239.255.0.2", "lo"), SN_OK);
    sn_udp_peer_free(p);
}

/* The local port is read once at bind (no system call per get_local_port) and is the socket's
 * own: bound explicitly or by connect_to_host, IPv4 and IPv6; 0 once closed. */
static void local_port_is_the_socket_port(void **state)
{
    (void)state;
    static const char *binds[] = {"127.0.0.1", "::1", "*"};
    for (size_t i = 0; i < sizeof binds / sizeof binds[0]; i++) {
        sn_udp_peer *p = bound_peer(binds[i]);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        assert_int_equal(getsockname(sn_udp_peer_get_fd(p), (struct sockaddr *)&ss, &sl), 0);
        int port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                           : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        assert_true(port > 0);
        assert_int_equal(sn_udp_peer_get_local_port(p), port);
        sn_udp_peer_close(p);
        assert_int_equal(sn_udp_peer_get_local_port(p), 0);
        sn_udp_peer_free(p);
    }
    sn_udp_peer *c = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(c, "127.0.0.1", 9), SN_OK);
    struct sockaddr_in in;
    socklen_t sl = sizeof in;
    assert_int_equal(getsockname(sn_udp_peer_get_fd(c), (struct sockaddr *)&in, &sl), 0);
    assert_int_equal(sn_udp_peer_get_local_port(c), ntohs(in.sin_port));
    /* Bound again after a close: the new socket's port. */
    sn_udp_peer_close(c);
    assert_int_equal(sn_udp_peer_bind(c, 0, "127.0.0.1", 0), SN_OK);
    sl = sizeof in;
    assert_int_equal(getsockname(sn_udp_peer_get_fd(c), (struct sockaddr *)&in, &sl), 0);
    assert_int_equal(sn_udp_peer_get_local_port(c), ntohs(in.sin_port));
    sn_udp_peer_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_ipv4),
        cmocka_unit_test(local_port_is_the_socket_port),
        cmocka_unit_test(echo_ipv6),
        cmocka_unit_test(echo_dual_stack_to_ipv4),
        cmocka_unit_test(connected_peer_filters_and_locks),
        cmocka_unit_test(sizes_zero_max_and_small_buffers),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(sockets_nonblocking_cloexec),
        cmocka_unit_test(icmp_refused_is_not_fatal),
        cmocka_unit_test(standalone_queue_bound),
        cmocka_unit_test(dtls_contract_standalone),
        cmocka_unit_test(broadcast_and_multicast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
