/* fuzz_udp_route: the UDP server's receive-and-route path, through the public API.
 *
 * One sn_udp_server on 127.0.0.1 and a pool of sender addresses on 127.0.0.1-4 (fake endpoints
 * of the in-memory network, fuzz_common.h). The input is a
 * program of operations: send a datagram from sender k, poll, take a connection, free a taken
 * peer, read/answer on a taken peer, change limits. After every input the harness drains the
 * socket and checks the server's books: every datagram sent was received, and every datagram
 * received was routed or counted as dropped. Violations abort (a crash for libFuzzer).
 *
 * What lives across inputs: the server (its socket, port, address table, block pool and receive
 * slots) and the in-memory network's cached socket names. Every input ends with no peer pending
 * or taken (checked), the default limits set again, the network empty and the counters only
 * compared as totals since the server started (sent_total), so the next input meets the same
 * state as a fresh process: the table is empty (its capacity only changes how far probes go,
 * under a per-process random key anyway), and the pool and slots hold no datagram. A crash
 * reproduces with `fuzz_udp_route -runs=0 FILE`. */
#include "fuzz_common.h"

enum { SENDERS = 16, MAX_TAKEN = 32 };

static sn_udp_server *server;
static int port;
static sn_test_addr server_addr;
static sn_test_addr senders[SENDERS];
static int sender_port[SENDERS];
static char sender_ip[SENDERS][16]; /* "127.0.0.x", written once (not per datagram read) */
static sn_udp_peer *taken[MAX_TAKEN];
static int ntaken;
static uint64_t sent_total; /* datagrams the network accepted, since the server started */
static int max_pending = 16;

static void setup(void)
{
    fuzz_platform_init();
    /* One socket, bound here, never connected or closed: its name can be cached. */
    sn_test_net_cache_names(true);
    server = sn_udp_server_new();
    FUZZ_CHECK(server && sn_udp_server_listen(server, 0, "127.0.0.1") == SN_OK);
    sn_udp_server_set_recv_buffer_size(server, 4 << 20);
    port = sn_udp_server_get_local_port(server);
    server_addr = fuzz_addr(1, port);
    for (int i = 0; i < SENDERS; i++) {
        sender_port[i] = 50000 + i;
        senders[i] = fuzz_addr(1 + i % 4, sender_port[i]);
        snprintf(sender_ip[i], sizeof sender_ip[i], "127.0.0.%d", 1 + i % 4);
    }
}

static bool from_pool(const char *ip, int p)
{
    for (int i = 0; i < SENDERS; i++)
        if (sender_port[i] == p && !strcmp(ip, sender_ip[i])) return true;
    return false;
}

/* Polls until the network holds nothing more for the server (the poll limits may need several
 * polls), then checks the counters. The network never drops here (the harness drains before a
 * queue can fill), so dropped_kernel (the network's drops for the server's address) stays 0. */
static void drain_and_check(void)
{
    sn_udp_server_stats st;
    for (int tries = 0; tries < 200; tries++) {
        FUZZ_CHECK(sn_udp_server_poll(server) == SN_OK);
        if (sn_test_net_queued_to(&server_addr) == 0) break;
    }
    sn_udp_server_get_stats(server, &st);
    FUZZ_CHECK(st.datagrams_received == sent_total);
    FUZZ_CHECK(st.dropped_kernel == 0);
    FUZZ_CHECK(st.datagrams_routed + st.dropped_pending_full + st.dropped_queue_full +
                   st.dropped_oversize + st.dropped_no_memory ==
               st.datagrams_received);
    FUZZ_CHECK(st.pending_now <= (uint64_t)max_pending);
    FUZZ_CHECK(st.taken_now == (uint64_t)ntaken);
    FUZZ_CHECK(st.pending_opened ==
               st.pending_now + st.pending_taken + st.pending_expired + st.pending_discarded);
}

/* Drops the answers queued for the senders (nobody checks them). Left queued, they would make
 * every later read of the in-memory network look up the server socket's address (two system
 * calls) even when nothing is there for it. */
static void forget_answers(void)
{
    uint8_t buf[1];
    for (int i = 0; i < SENDERS; i++)
        while (sn_test_net_take(&senders[i], buf, sizeof buf, NULL) >= 0) {
        }
}

static void read_peer(sn_udp_peer *p, size_t cap, bool answer)
{
    static uint8_t
        buf[65536]; /* static: ASan would poison and unpoison 8 KiB of stack shadow per call */
    size_t len;
    int count = sn_udp_peer_get_available_packet_count(p);
    FUZZ_CHECK(count >= 0);
    int got = 0;
    for (;;) {
        sn_err e = sn_udp_peer_get_packet(p, buf, cap, &len);
        if (e == SN_ERR_UNAVAILABLE) break;
        if (e == SN_ERR_PARAMETER_RANGE_ERROR) {
            FUZZ_CHECK(len > cap); /* stays queued, tells its size */
            cap = sizeof buf;
            continue;
        }
        FUZZ_CHECK(e == SN_OK && len <= cap);
        got++;
        FUZZ_CHECK(from_pool(sn_udp_peer_get_packet_ip(p), sn_udp_peer_get_packet_port(p)));
        if (answer) {
            sn_err s = sn_udp_peer_put_packet(p, buf, len);
            FUZZ_CHECK(s == SN_OK || s == SN_ERR_BUSY);
        }
    }
    FUZZ_CHECK(got == count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server) setup();
    fuzz_reader r = {data, data + size};
    uint8_t op, a, b;
    unsigned unpolled = 0;
    while (fuzz_u8(&r, &op)) {
        switch (op & 7) {
        case 0:
        case 1:
        case 2: { /* send: sender, length (high bit of op: long datagram) */
            if (!fuzz_u8(&r, &a) || !fuzz_u8(&r, &b)) break;
            size_t len = (op & 0x80) ? (size_t)b * 32 : b;
            if (len > (size_t)(r.end - r.p)) len = (size_t)(r.end - r.p);
            if (sn_test_net_inject(&senders[a % SENDERS], &server_addr, r.p, len)) sent_total++;
            r.p += len;
            /* Keep the network's queue from overflowing: a loss would break the accounting. */
            if (++unpolled >= 16) {
                drain_and_check();
                unpolled = 0;
            }
            break;
        }
        case 3:
            drain_and_check();
            unpolled = 0;
            break;
        case 4: { /* take a connection; keep it or free it at once */
            sn_udp_peer *p = sn_udp_server_take_connection(server);
            if (!p) {
                FUZZ_CHECK(!sn_udp_server_is_connection_available(server));
                break;
            }
            FUZZ_CHECK(sn_udp_peer_get_local_port(p) == port);
            if ((op & 0x10) || ntaken == MAX_TAKEN)
                sn_udp_peer_free(p);
            else
                taken[ntaken++] = p;
            break;
        }
        case 5: /* free a taken peer */
            if (!fuzz_u8(&r, &a) || !ntaken) break;
            a = (uint8_t)(a % ntaken);
            if (op & 0x10) sn_udp_peer_close(taken[a]);
            sn_udp_peer_free(taken[a]);
            taken[a] = taken[--ntaken];
            break;
        case 6: /* read a taken peer with a buffer of some size, maybe answer */
            if (!fuzz_u8(&r, &a) || !fuzz_u8(&r, &b) || !ntaken) break;
            read_peer(taken[a % ntaken], (size_t)b * 8, op & 0x10);
            forget_answers();
            break;
        case 7: /* limits */
            if (!fuzz_u8(&r, &a) || !fuzz_u8(&r, &b)) break;
            switch ((op >> 3) & 3) {
            case 0:
                max_pending = a % 40;
                sn_udp_server_set_max_pending_connections(server, max_pending);
                FUZZ_CHECK(sn_udp_server_get_max_pending_connections(server) == max_pending);
                break;
            case 1:
                sn_udp_server_set_queue_limits(server, (size_t)(a % 8), (size_t)b * 64);
                break;
            case 2:
                FUZZ_CHECK(sn_udp_server_set_poll_limits(server, 1 + a % 16, 1 + a % 16 + b) ==
                           SN_OK);
                break;
            case 3:
                FUZZ_CHECK(sn_udp_server_set_max_datagram_size(server, 1 + a * 8) == SN_OK);
                break;
            }
            break;
        }
    }
    drain_and_check();
    for (int i = 0; i < ntaken; i++)
        read_peer(taken[i], 65536, false);

    /* Back to a clean state for the next input. */
    for (int i = 0; i < ntaken; i++)
        sn_udp_peer_free(taken[i]);
    ntaken = 0;
    while (sn_udp_server_is_connection_available(server))
        sn_udp_peer_free(sn_udp_server_take_connection(server));
    max_pending = 16;
    sn_udp_server_set_max_pending_connections(server, max_pending);
    sn_udp_server_set_queue_limits(server, 256, 256 * 1024);
    sn_udp_server_set_poll_limits(server, 64, 1024);
    sn_udp_server_set_max_datagram_size(server, 65535);
    sn_test_net_reset(); /* the answers sent to the senders */
    sn_udp_server_stats st;
    sn_udp_server_get_stats(server, &st);
    FUZZ_CHECK(st.pending_now == 0 && st.taken_now == 0);
    return 0;
}
