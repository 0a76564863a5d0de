/* DTLS over a lossy path: a relay between a sealnet client and a sealnet server drops 30% of
 * the datagrams both ways (seeded PRNG) and reorders some (holds one back and sends it after the
 * next). Handshakes must still complete, every application packet that arrives must be intact
 * and delivered once, and no datagram may exceed the configured MTU: with an RSA-2048
 * certificate and an MTU of 600 the server's flight has to be fragmented. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "dtls_fixture.h"

#define MTU     600
#define PACKETS 200

static char *tmp;
static char *rsa_key, *rsa_crt, *ec_key, *ec_crt;
static sn_tls_options *rsa_server, *ec_server;
static sn_x509_cert *rsa_trusted, *ec_trusted;

static int group_setup(void **state)
{
    (void)state;
    tmp = sn_test_tmpdir();
    if (!tmp || !fx_make_cert(tmp, "rsa", &rsa_key, &rsa_crt) ||
        !fx_make_cert(tmp, "ec", &ec_key, &ec_crt))
        return -1;
    rsa_server = fx_server_options(rsa_key, rsa_crt);
    ec_server = fx_server_options(ec_key, ec_crt);
    rsa_trusted = fx_load_cert(rsa_crt);
    ec_trusted = fx_load_cert(ec_crt);
    return rsa_server && ec_server && rsa_trusted && ec_trusted ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    sn_tls_options_free(rsa_server);
    sn_tls_options_free(ec_server);
    sn_x509_cert_free(rsa_trusted);
    sn_x509_cert_free(ec_trusted);
    free(rsa_key), free(rsa_crt), free(ec_key), free(ec_crt);
    sn_test_rmtree(tmp);
    free(tmp);
    return 0;
}

/* Reads every packet waiting on p: each must be intact and new. Returns how many. */
static int drain_checked(sn_dtls_peer *p, bool *seen, uint32_t max_seq, sn_dtls_peer *echo_to,
                         int *echo_busy)
{
    uint8_t buf[2048];
    size_t len;
    int n = 0;
    while (sn_dtls_peer_get_packet(p, buf, sizeof buf, &len) == SN_OK) {
        uint32_t seq = 0;
        if (!fx_packet_check(buf, len, &seq)) {
            print_error("corrupted packet of %zu bytes\n", len);
            fail();
        }
        if (seq >= max_seq || seen[seq]) {
            print_error("packet %u delivered twice (or out of range)\n", seq);
            fail();
        }
        seen[seq] = true;
        n++;
        if (echo_to) {
            sn_err e = sn_dtls_peer_put_packet(echo_to, buf, len);
            if (e == SN_ERR_BUSY)
                (*echo_busy)++;
            else
                assert_int_equal(e, SN_OK);
        }
    }
    return n;
}

typedef struct lossy_result {
    uint64_t handshake_ms;
    int sent, at_server, echoed_back;
    uint64_t dropped[2], reordered[2], seen[2];
    size_t max_len[2];
} lossy_result;

static void run_lossy(uint64_t seed, const sn_tls_options *server_opts, sn_x509_cert *trusted,
                      int mtu, int drop_pct, int reorder_pct, lossy_result *res)
{
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.mtu = mtu;
    set.retransmit_initial_ms = 100;
    set.handshake_timeout_ms = 25000;

    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, server_opts, &set));
    assert_true(fx_relay_start(&relay, srv.port, seed));
    relay.drop_pct[FX_C2S] = relay.drop_pct[FX_S2C] = drop_pct;
    relay.reorder_pct[FX_C2S] = relay.reorder_pct[FX_S2C] = reorder_pct;
    sn_tls_options *copts = sn_tls_options_client(trusted, NULL);
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", copts, &set);
    sn_tls_options_free(copts);
    assert_non_null(cl);

    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    uint64_t t0 = sn_test_now_ms();
    FX_ASSERT_WITHIN(&w,
                     sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING && srv.npeers > 0 &&
                         sn_dtls_peer_get_status(fx_server_last_peer(&srv)) !=
                             SN_DTLS_STATUS_HANDSHAKING,
                     30000);
    res->handshake_ms = sn_test_now_ms() - t0;
    sn_dtls_peer *sp = fx_server_last_peer(&srv);
    if (sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_CONNECTED ||
        sn_dtls_peer_get_status(sp) != SN_DTLS_STATUS_CONNECTED)
        print_error("seed %llu: client %d \"%s\", server %d \"%s\"\n", (unsigned long long)seed,
                    sn_dtls_peer_get_status(cl), sn_dtls_peer_get_error_message(cl),
                    sn_dtls_peer_get_status(sp), sn_dtls_peer_get_error_message(sp));
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_CONNECTED);
    /* Every connected peer the server holds is this client's (retransmitted ClientHellos must
     * not open second sessions that linger). */
    for (int i = 0; i < srv.npeers - 1; i++)
        if (sn_dtls_peer_get_status(srv.peers[i]) == SN_DTLS_STATUS_CONNECTED)
            fail_msg("a second server peer is CONNECTED for the same client");

    /* The payload limit follows the MTU, and one byte more is refused without harm. */
    int max = sn_dtls_peer_get_max_packet_size(cl);
    assert_true(max > 0 && max <= mtu - 29);
    uint8_t big[65536];
    memset(big, 0x5a, sizeof big);
    assert_int_equal(sn_dtls_peer_put_packet(cl, big, (size_t)max + 1),
                     SN_ERR_PARAMETER_RANGE_ERROR);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);

    /* Data: the client sends numbered packets of random sizes up to the maximum, the server
     * echoes each one it gets. */
    fx_rng rng;
    fx_rng_seed(&rng, seed * 7919u + 1);
    bool *at_server = calloc(PACKETS, sizeof(bool)), *back = calloc(PACKETS, sizeof(bool));
    uint8_t pkt[2048];
    int sent = 0, busy = 0, echo_busy = 0, got = 0, echoed = 0;
    uint64_t end = sn_test_now_ms() + 20000;
    while (sent < PACKETS && sn_test_now_ms() < end) {
        for (int k = 0; k < 8 && sent < PACKETS; k++) {
            size_t len = 12 + fx_rng_below(&rng, (uint32_t)max - 11);
            if (sent == 0) len = (size_t)max; /* the largest must fit the MTU as well */
            fx_packet_make((uint32_t)sent, &rng, len, pkt);
            sn_err e = sn_dtls_peer_put_packet(cl, pkt, len);
            if (e == SN_ERR_BUSY) {
                busy++;
                break;
            }
            assert_int_equal(e, SN_OK);
            sent++;
        }
        fx_world_step(&w, 2);
        got += drain_checked(sp, at_server, PACKETS, sp, &echo_busy);
        echoed += drain_checked(cl, back, PACKETS, NULL, NULL);
    }
    assert_int_equal(sent, PACKETS);
    /* Let the stragglers (held-back datagrams) arrive. */
    uint64_t quiet_end = sn_test_now_ms() + 400;
    while (sn_test_now_ms() < quiet_end) {
        fx_world_step(&w, 5);
        got += drain_checked(sp, at_server, PACKETS, sp, &echo_busy);
        echoed += drain_checked(cl, back, PACKETS, NULL, NULL);
    }
    /* Echoes are a subset of what reached the server. */
    for (int i = 0; i < PACKETS; i++)
        if (back[i] && !at_server[i]) fail_msg("echo of packet %d that the server never got", i);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_CONNECTED);

    /* The relay never carried a datagram larger than the MTU, either way. */
    if (relay.max_len[FX_C2S] > (size_t)mtu || relay.max_len[FX_S2C] > (size_t)mtu)
        print_error("largest datagram: client->server %zu, server->client %zu (mtu %d)\n",
                    relay.max_len[FX_C2S], relay.max_len[FX_S2C], mtu);
    assert_true(relay.max_len[FX_C2S] <= (size_t)mtu);
    assert_true(relay.max_len[FX_S2C] <= (size_t)mtu);
    /* Loss happened for real, and the peers' counters agree with what arrived. */
    if (drop_pct > 0) assert_true(relay.dropped[FX_C2S] > 0 && relay.dropped[FX_S2C] > 0);
    sn_dtls_peer_stats cs, ss;
    sn_dtls_peer_get_stats(cl, &cs);
    sn_dtls_peer_get_stats(sp, &ss);
    assert_int_equal(cs.packets_sent, (uint64_t)sent);
    assert_int_equal(ss.packets_received, (uint64_t)got);
    assert_int_equal(cs.packets_received, (uint64_t)echoed);
    /* 30% loss each way: about 70% arrive, 49% make the round trip. Far below that means
     * something other than the relay is losing packets. */
    if (drop_pct <= 30) {
        assert_true(got >= PACKETS * 45 / 100);
        assert_true(echoed >= PACKETS * 25 / 100);
    }

    res->sent = sent;
    res->at_server = got;
    res->echoed_back = echoed;
    for (int d = 0; d < 2; d++) {
        res->dropped[d] = relay.dropped[d];
        res->reordered[d] = relay.reordered[d];
        res->seen[d] = relay.seen[d];
        res->max_len[d] = relay.max_len[d];
    }
    print_message("seed %llu mtu %d loss %d%% reorder %d%%: handshake %llu ms; relay c->s seen "
                  "%llu dropped %llu reordered %llu max %zu; s->c seen %llu dropped %llu "
                  "reordered %llu max %zu; data %d sent, %d arrived, %d echoed (busy %d/%d)\n",
                  (unsigned long long)seed, mtu, drop_pct, reorder_pct,
                  (unsigned long long)res->handshake_ms, (unsigned long long)relay.seen[0],
                  (unsigned long long)relay.dropped[0], (unsigned long long)relay.reordered[0],
                  relay.max_len[0], (unsigned long long)relay.seen[1],
                  (unsigned long long)relay.dropped[1], (unsigned long long)relay.reordered[1],
                  relay.max_len[1], sent, got, echoed, busy, echo_busy);
    free(at_server);
    free(back);
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

/* RSA-2048 at MTU 600: the certificate alone does not fit one datagram. */
static void test_lossy_rsa_mtu600(void **state)
{
    (void)state;
    static const uint64_t seeds[] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        lossy_result r;
        run_lossy(seeds[i], rsa_server, rsa_trusted, MTU, 30, 10, &r);
        /* The server's flight went out in several datagrams, none above the MTU. */
        assert_true(r.seen[FX_S2C] >= 3);
    }
}

/* P-256 at the smallest MTU the settings allow (512), with more reordering. */
static void test_lossy_ec_mtu512(void **state)
{
    (void)state;
    lossy_result r;
    run_lossy(11, ec_server, ec_trusted, 512, 30, 25, &r);
}

/* No loss: the same checks, as a baseline (every packet arrives, in one round trip each). */
static void test_lossless_baseline(void **state)
{
    (void)state;
    lossy_result r;
    run_lossy(5, rsa_server, rsa_trusted, MTU, 0, 0, &r);
    assert_int_equal(r.at_server, PACKETS);
    assert_int_equal(r.echoed_back, PACKETS);
}

/* Packets of every size around the UDP layer's internal boundaries (a 2 KiB receive block holds
 * up to 1984 bytes; longer datagrams continue in an overflow part) and up to the largest that
 * fits an MTU of 9000, both ways, each checked byte for byte. */
static void test_sizes_large_mtu(void **state)
{
    (void)state;
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.mtu = 9000;
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, ec_server, &set));
    assert_true(fx_relay_start(&relay, srv.port, 8));
    sn_tls_options *copts = sn_tls_options_client(ec_trusted, NULL);
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", copts, &set);
    sn_tls_options_free(copts);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w,
                     sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED && srv.npeers == 1 &&
                         sn_dtls_peer_get_status(srv.peers[0]) == SN_DTLS_STATUS_CONNECTED,
                     10000);
    sn_dtls_peer *sp = srv.peers[0];
    int max = sn_dtls_peer_get_max_packet_size(cl);
    assert_true(max > 8900 && max <= 9000 - 29);
    assert_int_equal(sn_dtls_peer_get_max_packet_size(sp), max);
    size_t sizes[64];
    int n = 0;
    for (size_t s = 1930; s <= 2010; s += 8) /* the datagram is the payload + 37 bytes */
        sizes[n++] = s;
    sizes[n++] = 12, sizes[n++] = 1024, sizes[n++] = 4000, sizes[n++] = 4096 - 37;
    sizes[n++] = 4096 - 36, sizes[n++] = 8192, sizes[n++] = (size_t)max - 1,
    sizes[n++] = (size_t)max;
    fx_rng rng;
    fx_rng_seed(&rng, 9000);
    static uint8_t pkt[9000], back[9000];
    for (int dir = 0; dir < 2; dir++) {
        sn_dtls_peer *from = dir == FX_C2S ? cl : sp, *to = dir == FX_C2S ? sp : cl;
        for (int i = 0; i < n; i++) {
            size_t len = fx_packet_make((uint32_t)i, &rng, sizes[i], pkt), got = 0;
            assert_int_equal(sn_dtls_peer_put_packet(from, pkt, len), SN_OK);
            FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(to) > 0, 10000);
            assert_int_equal(sn_dtls_peer_get_packet(to, back, sizeof back, &got), SN_OK);
            uint32_t seq;
            if (got != len || !fx_packet_check(back, got, &seq) || seq != (uint32_t)i)
                fail_msg("%s: a %zu-byte packet came back as %zu bytes%s",
                         dir == FX_C2S ? "to the server" : "to the client", len, got,
                         got == len ? " with different content" : "");
        }
    }
    assert_int_equal(sn_dtls_peer_put_packet(cl, pkt, (size_t)max + 1),
                     SN_ERR_PARAMETER_RANGE_ERROR);
    assert_true(relay.max_len[FX_C2S] <= 9000 && relay.max_len[FX_S2C] <= 9000);
    assert_int_equal(relay.max_len[FX_C2S], (size_t)max + 37);
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

/* sp[i]: the connected server peer whose remote port is relay i's server-facing port.
 * Returns how many were found. */
static int match_peers(const fx_server *srv, const fx_relay *relays, int n, sn_dtls_peer **sp)
{
    int found = 0;
    for (int i = 0; i < n; i++) {
        sp[i] = NULL;
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        if (getsockname(relays[i].back_fd, (struct sockaddr *)&a, &al) != 0) continue;
        for (int k = 0; k < srv->npeers; k++)
            if (sn_dtls_peer_get_status(srv->peers[k]) == SN_DTLS_STATUS_CONNECTED &&
                sn_dtls_peer_get_packet_port(srv->peers[k]) == ntohs(a.sin_port))
                sp[i] = srv->peers[k];
        found += sp[i] != NULL;
    }
    return found;
}

/* Eight clients at once, each behind its own lossy relay (30% loss each way, reordering, its own
 * seed): every handshake completes, every packet that arrives is intact, reaches the right peer
 * and arrives once; the server ends with exactly eight sessions. */
static void test_lossy_many_clients(void **state)
{
    (void)state;
    enum { N = 8, PER = 40 };
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.mtu = MTU;
    set.retransmit_initial_ms = 100;
    set.handshake_timeout_ms = 25000;
    fx_server srv;
    assert_true(fx_server_start(&srv, rsa_server, &set));
    fx_relay relays[N];
    sn_dtls_peer *cl[N];
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    sn_tls_options *copts = sn_tls_options_client(rsa_trusted, NULL);
    for (int i = 0; i < N; i++) {
        assert_true(fx_relay_start(&relays[i], srv.port, 100u + (unsigned)i));
        relays[i].drop_pct[FX_C2S] = relays[i].drop_pct[FX_S2C] = 30;
        relays[i].reorder_pct[FX_C2S] = relays[i].reorder_pct[FX_S2C] = 10;
        w.more_relays[w.nmore_relays++] = &relays[i];
        cl[i] = fx_client_connect(relays[i].port, "localhost", copts, &set);
        assert_non_null(cl[i]);
        fx_world_add_client(&w, cl[i]);
    }
    sn_tls_options_free(copts);
    uint64_t t0 = sn_test_now_ms();
    bool all = false;
    for (uint64_t end = t0 + 30000; !all && sn_test_now_ms() < end;) {
        fx_world_step(&w, 5);
        all = true;
        for (int i = 0; i < N; i++)
            all = all && sn_dtls_peer_get_status(cl[i]) != SN_DTLS_STATUS_HANDSHAKING;
    }
    for (int i = 0; i < N; i++)
        if (sn_dtls_peer_get_status(cl[i]) != SN_DTLS_STATUS_CONNECTED)
            fail_msg("client %d: status %d \"%s\"", i, sn_dtls_peer_get_status(cl[i]),
                     sn_dtls_peer_get_error_message(cl[i]));
    uint64_t hs_ms = sn_test_now_ms() - t0;
    /* Which server peer belongs to which client: by the relay's port, as the server sees it. */
    sn_dtls_peer *sp[N];
    FX_ASSERT_WITHIN(&w, match_peers(&srv, relays, N, sp) == N, 10000);
    /* Each client sends numbered packets that carry its index; each server peer must see only
     * its own client's, intact and once. */
    fx_rng rng;
    fx_rng_seed(&rng, 77);
    uint8_t pkt[700];
    bool seen[N][PER];
    memset(seen, 0, sizeof seen);
    int got = 0;
    for (int k = 0; k < PER; k++) {
        for (int i = 0; i < N; i++) {
            size_t len =
                fx_packet_make((uint32_t)(i * 1000 + k), &rng, 12 + fx_rng_below(&rng, 500), pkt);
            sn_err e = sn_dtls_peer_put_packet(cl[i], pkt, len);
            assert_true(e == SN_OK || e == SN_ERR_BUSY);
        }
        fx_world_step(&w, 2);
        for (int i = 0; i < N; i++) {
            size_t len;
            uint32_t seq;
            while (sn_dtls_peer_get_packet(sp[i], pkt, sizeof pkt, &len) == SN_OK) {
                if (!fx_packet_check(pkt, len, &seq)) fail_msg("peer %d: corrupted packet", i);
                if (seq / 1000 != (uint32_t)i)
                    fail_msg("peer %d got a packet of client %u", i, seq / 1000);
                if (seen[i][seq % 1000]) fail_msg("peer %d: packet %u twice", i, seq % 1000);
                seen[i][seq % 1000] = true;
                got++;
            }
        }
    }
    fx_world_run_for(&w, 300);
    for (int i = 0; i < N; i++) {
        size_t len;
        uint32_t seq;
        while (sn_dtls_peer_get_packet(sp[i], pkt, sizeof pkt, &len) == SN_OK) {
            assert_true(fx_packet_check(pkt, len, &seq));
            assert_int_equal(seq / 1000, (uint32_t)i);
            assert_false(seen[i][seq % 1000]);
            seen[i][seq % 1000] = true;
            got++;
        }
    }
    int connected = 0;
    for (int k = 0; k < srv.npeers; k++)
        connected += sn_dtls_peer_get_status(srv.peers[k]) == SN_DTLS_STATUS_CONNECTED;
    print_message("%d lossy clients: all connected in %llu ms; %d of %d packets arrived; server "
                  "peers %d (connected %d, not handshaking %llu)\n",
                  N, (unsigned long long)hs_ms, got, N * PER, srv.npeers, connected,
                  (unsigned long long)srv.not_handshaking);
    assert_int_equal(connected, N);
    assert_true(got >= N * PER * 45 / 100);
    for (int i = 0; i < N; i++)
        sn_dtls_peer_free(cl[i]);
    fx_server_stop(&srv);
    for (int i = 0; i < N; i++)
        fx_relay_stop(&relays[i]);
}

/* REGRESSION (was a bug, now fixed): a ClientHello that does not fit the MTU never gets through.
 * With an MTU the settings accept (256) and a 130-character host name (SNI; client_unsafe, so
 * the certificate does not matter), the client's ClientHello with its cookie is ~330 bytes;
 * OpenSSL fragments it to the MTU, and the server's stateless hello parser
 * (sn_dtls_parse_client_hello, src/dtls/dtls_hello.c: "a whole ClientHello in one fragment") drops
 * every fragment as malformed: the client times out, the server counts malformed_dropped.
 * Measured (no loss): MTU 256 fails with a 130-character name, 304 with 130, 352 and 400 with
 * 240; 20-character names always work; the default 1200 always works. (OpenSSL's own
 * DTLSv1_listen refuses fragmented ClientHellos too, so reassembling them statelessly is not the
 * only fix.) Expected: either the settings refuse an MTU too small for a ClientHello (e.g. a
 * minimum of 512: ~190 bytes of hello + 255 of SNI + 32 of cookie + 13 of header), or the
 * handshake completes; never a silent timeout. */
static void test_small_mtu_long_hostname(void **state)
{
    (void)state;
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    /* Fixed by refusing MTUs below 512 up front; at 512 a 240-character name fits. */
    set.mtu = 256;
    assert_int_equal(sn_dtls_server_set_settings(NULL, &set), SN_ERR_INVALID_PARAMETER);
    sn_dtls_server *probe = sn_dtls_server_new();
    assert_int_equal(sn_dtls_server_set_settings(probe, &set), SN_ERR_PARAMETER_RANGE_ERROR);
    sn_dtls_server_free(probe);
    set.mtu = 512;
    set.retransmit_initial_ms = 100;
    set.handshake_timeout_ms = 3000;
    fx_server srv;
    memset(&srv, 0, sizeof srv);
    srv.udp = sn_udp_server_new();
    srv.dtls = sn_dtls_server_new();
    assert_int_equal(sn_udp_server_listen(srv.udp, 0, "127.0.0.1"), SN_OK);
    assert_int_equal(sn_dtls_server_setup(srv.dtls, ec_server), SN_OK);
    srv.port = sn_udp_server_get_local_port(srv.udp);
    sn_err e = sn_dtls_server_set_settings(srv.dtls, &set);
    assert_int_equal(e, SN_OK);
    fx_relay relay;
    assert_true(fx_relay_start(&relay, srv.port, 1));
    char name[241];
    memset(name, 'a', 240);
    name[240] = '\0';
    name[60] = name[120] = name[180] = '.';
    sn_tls_options *co = sn_tls_options_client_unsafe(NULL);
    sn_dtls_peer *cl = fx_client_connect(relay.port, name, co, &set);
    sn_tls_options_free(co);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, 10000);
    sn_dtls_status st = sn_dtls_peer_get_status(cl);
    char msg[320];
    snprintf(msg, sizeof msg, "%s", sn_dtls_peer_get_error_message(cl));
    sn_dtls_server_stats ss;
    sn_dtls_server_get_stats(srv.dtls, &ss);
    size_t biggest = relay.max_len[FX_C2S];
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
    if (st != SN_DTLS_STATUS_CONNECTED)
        fail_msg("MTU 512 with a 240-character host name: client status %d \"%s\"; the server "
                 "dropped %llu datagrams as malformed and saw %llu usable hellos (largest "
                 "client datagram %zu bytes: the hello was fragmented)",
                 st, msg, (unsigned long long)ss.malformed_dropped,
                 (unsigned long long)ss.hellos_received, biggest);
}

/* --- the same loss between sealnet and GnuTLS, each way -------------------------------------- */

#define FOREIGN_LOSS 25

static bool has_output(sn_test_proc *p, const char *needle)
{
    return strstr(sn_test_proc_output(p), needle) != NULL;
}

/* gnutls-cli through the lossy relay to our server, both at MTU 600 with RSA-2048: GnuTLS must
 * reassemble our fragmented flight from what survives, and we theirs. Data flows once the loss
 * is switched off (gnutls-cli sends each line once). */
static void test_lossy_gnutls_client(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-cli")) skip();
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.mtu = MTU;
    set.retransmit_initial_ms = 100;
    set.handshake_timeout_ms = 40000;
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, rsa_server, &set));
    assert_true(fx_relay_start(&relay, srv.port, 21));
    relay.drop_pct[FX_C2S] = relay.drop_pct[FX_S2C] = FOREIGN_LOSS;
    relay.reorder_pct[FX_C2S] = relay.reorder_pct[FX_S2C] = 10;
    char port[16], mtu[32];
    snprintf(port, sizeof port, "%d", relay.port);
    snprintf(mtu, sizeof mtu, "--mtu=%d", MTU);
    const char *argv[] = {"gnutls-cli", "--udp", mtu,  "--x509cafile", rsa_crt, "--verify-hostname",
                          "localhost",  "-p",    port, "127.0.0.1",    NULL};
    sn_test_proc *proc = sn_test_spawn(argv);
    assert_non_null(proc);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    uint64_t t0 = sn_test_now_ms();
    FX_ASSERT_WITHIN(
        &w,
        (srv.npeers > 0 &&
         sn_dtls_peer_get_status(fx_server_last_peer(&srv)) == SN_DTLS_STATUS_CONNECTED &&
         has_output(proc, "Handshake was completed")) ||
            sn_test_proc_wait_exit(proc, 0) >= 0,
        45000);
    sn_dtls_peer *sp = fx_server_last_peer(&srv);
    if (!sp || sn_dtls_peer_get_status(sp) != SN_DTLS_STATUS_CONNECTED)
        print_error("gnutls-cli output:\n%s\nserver peer: %s\n", sn_test_proc_output(proc),
                    sp ? sn_dtls_peer_get_error_message(sp) : "(none)");
    assert_non_null(sp);
    assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_CONNECTED);
    print_message("gnutls-cli -> sealnet server through %d%% loss: handshake %llu ms; relay c->s "
                  "seen %llu dropped %llu max %zu, s->c seen %llu dropped %llu max %zu\n",
                  FOREIGN_LOSS, (unsigned long long)(sn_test_now_ms() - t0),
                  (unsigned long long)relay.seen[0], (unsigned long long)relay.dropped[0],
                  relay.max_len[0], (unsigned long long)relay.seen[1],
                  (unsigned long long)relay.dropped[1], relay.max_len[1]);
    assert_true(relay.max_len[FX_C2S] <= MTU && relay.max_len[FX_S2C] <= MTU);
    relay.drop_pct[FX_C2S] = relay.drop_pct[FX_S2C] = 0;
    static const char line[] = "through the storm\n";
    assert_true(sn_test_proc_write(proc, line, sizeof line - 1));
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(sp) > 0, 10000);
    char buf[256];
    size_t len;
    assert_int_equal(sn_dtls_peer_get_packet(sp, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, sizeof line - 1);
    assert_memory_equal(buf, line, len);
    assert_int_equal(sn_dtls_peer_put_packet(sp, "calm again 77\n", 14), SN_OK);
    FX_ASSERT_WITHIN(&w, has_output(proc, "calm again 77"), 10000);
    sn_test_proc_stop(proc);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

/* One handshake of our client through a fresh lossy relay (this seed) to a fresh gnutls-serv.
 * Returns the client once it left HANDSHAKING, connected or not; *all_finished_lost says the
 * relay dropped every copy of gnutls-serv's Finished (its only datagrams with a protected record
 * during the handshake) after it had sent at least two. *proc and *relay stay running for the
 * caller in either case. */
static sn_dtls_peer *lossy_gnutls_handshake(uint64_t seed, sn_test_proc **proc, fx_relay *relay,
                                            fx_world *w, bool *all_finished_lost)
{
    int gport;
    *proc = fx_start_gnutls_server(rsa_crt, rsa_key, MTU, 15000, &gport);
    assert_non_null(*proc);
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.mtu = MTU;
    set.retransmit_initial_ms = 100;
    set.handshake_timeout_ms = 40000;
    assert_true(fx_relay_start(relay, gport, seed));
    relay->drop_pct[FX_C2S] = relay->drop_pct[FX_S2C] = FOREIGN_LOSS;
    relay->reorder_pct[FX_C2S] = relay->reorder_pct[FX_S2C] = 10;
    sn_tls_options *copts = sn_tls_options_client(rsa_trusted, NULL);
    sn_dtls_peer *cl = fx_client_connect(relay->port, "localhost", copts, &set);
    sn_tls_options_free(copts);
    assert_non_null(cl);
    fx_world_init(w, NULL, relay);
    fx_world_add_client(w, cl);
    uint64_t t0 = sn_test_now_ms();
    FX_ASSERT_WITHIN(w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, 45000);
    print_message("seed %llu: sealnet client -> gnutls-serv through %d%% loss: %s after %llu ms; "
                  "relay c->s seen %llu dropped %llu max %zu, s->c seen %llu dropped %llu max "
                  "%zu; gnutls-serv's Finished sent %llu times, dropped %llu\n",
                  (unsigned long long)seed, FOREIGN_LOSS,
                  sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED ? "connected" : "failed",
                  (unsigned long long)(sn_test_now_ms() - t0), (unsigned long long)relay->seen[0],
                  (unsigned long long)relay->dropped[0], relay->max_len[0],
                  (unsigned long long)relay->seen[1], (unsigned long long)relay->dropped[1],
                  relay->max_len[1], (unsigned long long)relay->protected_seen[FX_S2C],
                  (unsigned long long)relay->protected_dropped[FX_S2C]);
    *all_finished_lost = relay->protected_seen[FX_S2C] >= 2 &&
                         relay->protected_dropped[FX_S2C] == relay->protected_seen[FX_S2C];
    return cl;
}

/* Our client through the lossy relay to gnutls-serv, both at MTU 600 with RSA-2048.
 *
 * gnutls-serv resends its last flight (ChangeCipherSpec and Finished, one datagram each) only
 * when a retransmission of ours arrives at least its own doubling timer (1 s, 2 s, 4 s...) after
 * its previous send: within the 40 s handshake timeout it sends its Finished about five times,
 * and when the relay's 25 % loss takes every copy (about 1 run in 100 for a random seed) no
 * client can finish, whatever its TLS library. Such a run proves nothing either way: it is
 * retried with another seed, at most twice; any other failure fails the test. (This case used
 * to be skipped on mbed TLS: with that backend's datagram sequence the seed it used, 22, dropped
 * all four copies in 11 of 12 runs, which gnutls-serv's log showed as "invalid decryption" of our
 * retransmitted epoch-0 records after it had finished: harmless, not a key mismatch. Seed 2
 * connects in ~2 s on both backends with datagrams lost both ways; so did each of seeds 1-21.) */
static void test_lossy_gnutls_server(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-serv")) skip();
    sn_test_proc *proc = NULL;
    fx_relay relay;
    fx_world w;
    sn_dtls_peer *cl = NULL;
    for (int attempt = 0; attempt < 3; attempt++) {
        bool all_finished_lost = false;
        cl = lossy_gnutls_handshake(2 + 1000u * (unsigned)attempt, &proc, &relay, &w,
                                    &all_finished_lost);
        if (sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED) break;
        if (!all_finished_lost) break;
        print_message("the relay dropped every copy of gnutls-serv's Finished: inconclusive, "
                      "trying another seed\n");
        sn_dtls_peer_free(cl);
        fx_relay_stop(&relay);
        sn_test_proc_stop(proc);
    }
    if (sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_CONNECTED) {
        print_error("client: %s\ngnutls-serv output:\n%s\n", sn_dtls_peer_get_error_message(cl),
                    sn_test_proc_output(proc));
        sn_dtls_peer_free(cl);
        fx_relay_stop(&relay);
        sn_test_proc_stop(proc); /* not left running after the test program */
        fail();
    }
    assert_true(relay.max_len[FX_C2S] <= MTU && relay.max_len[FX_S2C] <= MTU);
    /* The echo of a checked packet, with loss and reordering off (the server may still be
     * finishing, so resend until something comes back). gnutls-serv echoes in pieces of at most
     * 254 bytes: collect until the packet is whole. Reordering stays off so those pieces arrive
     * in order (one piece held back behind the next used to fail about 1 run in 10). */
    relay.drop_pct[FX_C2S] = relay.drop_pct[FX_S2C] = 0;
    relay.reorder_pct[FX_C2S] = relay.reorder_pct[FX_S2C] = 0;
    fx_rng rng;
    fx_rng_seed(&rng, 99);
    uint8_t pkt[600], back[1200];
    size_t len = fx_packet_make(4242, &rng, 300, pkt), have = 0, got = 0;
    uint32_t seq = 0;
    uint64_t end = sn_test_now_ms() + 10000;
    while (sn_test_now_ms() < end && have == 0) {
        assert_int_equal(sn_dtls_peer_put_packet(cl, pkt, len), SN_OK);
        uint64_t next = sn_test_now_ms() + 500;
        while (sn_test_now_ms() < next && sn_dtls_peer_get_available_packet_count(cl) == 0)
            fx_world_step(&w, 5);
        while (have < len &&
               sn_dtls_peer_get_packet(cl, back + have, sizeof back - have, &got) == SN_OK)
            have += got;
    }
    for (end = sn_test_now_ms() + 5000; have < len && sn_test_now_ms() < end;) {
        fx_world_step(&w, 5);
        while (have < len &&
               sn_dtls_peer_get_packet(cl, back + have, sizeof back - have, &got) == SN_OK)
            have += got;
    }
    assert_int_equal(have, len);
    assert_true(fx_packet_check(back, have, &seq));
    assert_int_equal(seq, 4242);
    sn_dtls_peer_free(cl);
    fx_relay_stop(&relay);
    sn_test_proc_stop(proc);
}

/* --- the last flight lost: deterministic, no random loss ----------------------------------- */

/* Drops the first two datagrams each way that carry a protected record: during a handshake,
 * the ones with each side's Finished. A peer that has sent its Finished learns of the loss only
 * from the other side's retransmission, and the side that finished last (the server) resends its
 * last flight only when the client's retransmission arrives. */
static int finished_dropped[2];

static bool drop_first_two_finished(int dir, const uint8_t *d, size_t len)
{
    bool protected_record = false;
    for (size_t off = 0; off + 13 <= len; off += 13 + ((size_t)d[off + 11] << 8 | d[off + 12]))
        protected_record = protected_record || d[off + 3] != 0 || d[off + 4] != 0;
    if (!protected_record || finished_dropped[dir] >= 2) return false;
    finished_dropped[dir]++;
    return true;
}

/* Both Finished datagrams lost twice, between sealnet client and sealnet server: the handshake
 * completes on both sides by retransmission and data flows both ways. */
static void test_finished_lost_twice_each_way(void **state)
{
    (void)state;
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.retransmit_initial_ms = 100;
    set.handshake_timeout_ms = 20000;
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, ec_server, &set));
    assert_true(fx_relay_start(&relay, srv.port, 31));
    memset(finished_dropped, 0, sizeof finished_dropped);
    relay.filter = drop_first_two_finished;
    sn_tls_options *copts = sn_tls_options_client(ec_trusted, NULL);
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", copts, &set);
    sn_tls_options_free(copts);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w,
                     sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING && srv.npeers > 0 &&
                         sn_dtls_peer_get_status(fx_server_last_peer(&srv)) !=
                             SN_DTLS_STATUS_HANDSHAKING,
                     25000);
    sn_dtls_peer *sp = fx_server_last_peer(&srv);
    if (sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_CONNECTED ||
        sn_dtls_peer_get_status(sp) != SN_DTLS_STATUS_CONNECTED)
        print_error("client %d \"%s\", server %d \"%s\"\n", sn_dtls_peer_get_status(cl),
                    sn_dtls_peer_get_error_message(cl), sn_dtls_peer_get_status(sp),
                    sn_dtls_peer_get_error_message(sp));
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(relay.protected_dropped[FX_C2S], 2);
    assert_int_equal(relay.protected_dropped[FX_S2C], 2);
    relay.filter = NULL;
    uint8_t buf[64];
    size_t len;
    assert_int_equal(sn_dtls_peer_put_packet(cl, "up", 2), SN_OK);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(sp) > 0, 5000);
    assert_int_equal(sn_dtls_peer_get_packet(sp, buf, sizeof buf, &len), SN_OK);
    assert_int_equal(len, 2);
    assert_int_equal(sn_dtls_peer_put_packet(sp, "down", 4), SN_OK);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_available_packet_count(cl) > 0, 5000);
    assert_int_equal(sn_dtls_peer_get_packet(cl, buf, sizeof buf, &len), SN_OK);
    assert_memory_equal(buf, "down", 4);
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

/* The same against gnutls-serv (the peer whose final-flight policy the lossy case above runs
 * into): our Finished and gnutls-serv's each lost twice, the handshake still completes. */
static void test_finished_lost_twice_gnutls_server(void **state)
{
    (void)state;
    if (!sn_test_have("gnutls-serv")) skip();
    int gport;
    sn_test_proc *proc = fx_start_gnutls_server(rsa_crt, rsa_key, MTU, 15000, &gport);
    assert_non_null(proc);
    sn_dtls_settings set;
    sn_dtls_default_settings(&set);
    set.mtu = MTU;
    set.retransmit_initial_ms = 100;
    set.handshake_timeout_ms = 30000;
    fx_relay relay;
    assert_true(fx_relay_start(&relay, gport, 32));
    memset(finished_dropped, 0, sizeof finished_dropped);
    relay.filter = drop_first_two_finished;
    sn_tls_options *copts = sn_tls_options_client(rsa_trusted, NULL);
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", copts, &set);
    sn_tls_options_free(copts);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, NULL, &relay);
    fx_world_add_client(&w, cl);
    uint64_t t0 = sn_test_now_ms();
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, 35000);
    sn_dtls_status st = sn_dtls_peer_get_status(cl);
    if (st != SN_DTLS_STATUS_CONNECTED)
        print_error("client: %s\ngnutls-serv output:\n%s\n", sn_dtls_peer_get_error_message(cl),
                    sn_test_proc_output(proc));
    print_message("gnutls-serv, each Finished lost twice: %s after %llu ms\n",
                  st == SN_DTLS_STATUS_CONNECTED ? "connected" : "failed",
                  (unsigned long long)(sn_test_now_ms() - t0));
    uint64_t dropped_c2s = relay.protected_dropped[FX_C2S],
             dropped_s2c = relay.protected_dropped[FX_S2C];
    sn_dtls_peer_free(cl);
    fx_relay_stop(&relay);
    sn_test_proc_stop(proc);
    assert_int_equal(st, SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(dropped_c2s, 2);
    assert_int_equal(dropped_s2c, 2);
}

int main(void)
{
    if (!sn_test_have("openssl")) {
        printf("openssl command not found: skipping\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lossless_baseline),
        cmocka_unit_test(test_lossy_rsa_mtu600),
        cmocka_unit_test(test_lossy_ec_mtu512),
        cmocka_unit_test(test_lossy_many_clients),
        cmocka_unit_test(test_sizes_large_mtu),
        cmocka_unit_test(test_small_mtu_long_hostname),
        cmocka_unit_test(test_lossy_gnutls_client),
        cmocka_unit_test(test_lossy_gnutls_server),
        cmocka_unit_test(test_finished_lost_twice_each_way),
        cmocka_unit_test(test_finished_lost_twice_gnutls_server),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
