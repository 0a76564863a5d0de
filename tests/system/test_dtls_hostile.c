/* DTLS under hostile conditions. Real datagrams are captured by running a sealnet client and
 * server through a relay (tests/support/dtls_fixture.c) and then cut, replayed, re-labelled or
 * replaced with garbage; a ClientHello flood comes from 50 source sockets; clients vanish in and
 * after the handshake. Nothing may crash or leak (ASan/LSan), a session must survive whatever an
 * off-path attacker sends it, and drops must show in counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dtls_fixture.h"
#include "test_dtls_wire.h"
#include "test_hooks.h"

/* The flood's RSS check measures the library's memory, not ASan's quarantine of freed blocks:
 * with the default quarantine (256 MiB) every freed peer object stays resident until the
 * quarantine is full, and RSS climbs by megabytes long after the library has reached its steady
 * state (measured: +2.6 MiB over 8,000 hellos with a 4 MiB quarantine, +64 KiB with 1 MiB, flat
 * afterwards up to 100,000). A 1 MiB quarantine keeps use-after-free detection for recent frees
 * and fills within the warm-up. ASAN_OPTIONS from the environment still override this. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=1:thread_local_quarantine_size_kb=64";
}

#define WAIT_MS 10000
/* AES-GCM's explicit nonce (8) and tag (16): the shortest body of a protected record. */
#define MIN_AEAD_BODY 24

static char *tmp;
static char *key_path, *crt_path;
static sn_tls_options *server_opts, *client_opts;

static int group_setup(void **state)
{
    (void)state;
    tmp = sn_test_tmpdir();
    if (!tmp || !fx_make_cert(tmp, "ec", &key_path, &crt_path)) return -1;
    server_opts = fx_server_options(key_path, crt_path);
    sn_x509_cert *trusted = fx_load_cert(crt_path);
    client_opts = trusted ? sn_tls_options_client(trusted, NULL) : NULL;
    sn_x509_cert_free(trusted);
    return server_opts && client_opts ? 0 : -1;
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

static void fast_settings(sn_dtls_settings *s)
{
    sn_dtls_default_settings(s);
    s->retransmit_initial_ms = 100;
    s->handshake_timeout_ms = 10000;
}

/* Datagrams waiting on fd: counted, and the HelloVerifyRequests among them checked. */
/* Counts the datagrams waiting on fd (and, with hvr_ok, the proper HelloVerifyRequests among
 * them). With from_port, only datagrams from that loopback port count: an ephemeral port can be
 * one that another test process's DTLS peer is still retransmitting to. */
static int drain_raw_from(int fd, int *hvr_ok, int from_port)
{
    uint8_t buf[2048];
    int n = 0;
    for (;;) {
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t r = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (r < 0) break;
        if (from_port && (flen < sizeof from || ntohs(from.sin_port) != from_port)) continue;
        n++;
        /* record(13) + handshake header(12) + version(2) + cookie length(1) + cookie */
        if (hvr_ok && sn_test_is_sealnet_hvr(buf, (size_t)r)) (*hvr_ok)++;
    }
    return n;
}

static int drain_raw(int fd, int *hvr_ok)
{
    return drain_raw_from(fd, hvr_ok, 0);
}

/* --- a connected pair through a relay -------------------------------------------------------- */

typedef struct pair {
    fx_server srv;
    fx_relay relay;
    fx_world w;
    sn_dtls_peer *client, *server;
} pair;

static void pair_start(pair *p, const sn_dtls_settings *set)
{
    sn_dtls_settings d;
    if (!set) fast_settings(&d), set = &d;
    assert_true(fx_server_start(&p->srv, server_opts, set));
    assert_true(fx_relay_start(&p->relay, p->srv.port, 42));
    p->relay.capture = true;
    p->client = fx_client_connect(p->relay.port, "localhost", client_opts, set);
    assert_non_null(p->client);
    fx_world_init(&p->w, &p->srv, &p->relay);
    fx_world_add_client(&p->w, p->client);
    FX_ASSERT_WITHIN(&p->w,
                     sn_dtls_peer_get_status(p->client) == SN_DTLS_STATUS_CONNECTED &&
                         p->srv.npeers == 1 &&
                         sn_dtls_peer_get_status(p->srv.peers[0]) == SN_DTLS_STATUS_CONNECTED,
                     WAIT_MS);
    p->server = p->srv.peers[0];
}

static void pair_stop(pair *p)
{
    sn_dtls_peer_free(p->client);
    fx_server_stop(&p->srv);
    fx_relay_stop(&p->relay);
}

static sn_dtls_peer *sender_of(pair *p, int dir)
{
    return dir == FX_C2S ? p->client : p->server;
}
static sn_dtls_peer *receiver_of(pair *p, int dir)
{
    return dir == FX_C2S ? p->server : p->client;
}

static uint64_t received(sn_dtls_peer *peer)
{
    sn_dtls_peer_stats st;
    sn_dtls_peer_get_stats(peer, &st);
    return st.packets_received;
}

/* Sends text over the session in dir and waits for exactly that packet at the other end. */
static void roundtrip(pair *p, int dir, const char *text)
{
    sn_dtls_peer *to = receiver_of(p, dir);
    assert_int_equal(sn_dtls_peer_put_packet(sender_of(p, dir), text, strlen(text)), SN_OK);
    FX_ASSERT_WITHIN(&p->w, sn_dtls_peer_get_available_packet_count(to) > 0, WAIT_MS);
    char buf[2048];
    size_t len;
    assert_int_equal(sn_dtls_peer_get_packet(to, buf, sizeof buf, &len), SN_OK);
    if (len != strlen(text) || memcmp(buf, text, len) != 0)
        fail_msg("got \"%.*s\", expected \"%s\"", (int)len, buf, text);
}

/* Sends text in dir while the relay drops it, and returns a copy of the record captured on the
 * way (application data, never delivered, so still fresh for the receiver). */
static fx_dgram capture_undelivered(pair *p, int dir, const char *text)
{
    uint64_t seen = p->relay.seen[dir];
    p->relay.drop_pct[dir] = 100;
    assert_int_equal(sn_dtls_peer_put_packet(sender_of(p, dir), text, strlen(text)), SN_OK);
    FX_ASSERT_WITHIN(&p->w, p->relay.seen[dir] > seen, WAIT_MS);
    p->relay.drop_pct[dir] = 0;
    const fx_dgram *g = fx_relay_last_capture(&p->relay, dir, 23);
    assert_non_null(g);
    fx_dgram copy = {dir, g->len, malloc(g->len)};
    memcpy(copy.data, g->data, g->len);
    return copy;
}

/* Lets whatever is in flight land: 150 ms of stepping. */
static void settle(pair *p)
{
    fx_world_run_for(&p->w, 150);
}

static void expect_still_up(pair *p)
{
    if (sn_dtls_peer_get_status(p->client) != SN_DTLS_STATUS_CONNECTED ||
        sn_dtls_peer_get_status(p->server) != SN_DTLS_STATUS_CONNECTED)
        print_error("session went down: client %d \"%s\", server peer %d \"%s\"\n",
                    sn_dtls_peer_get_status(p->client), sn_dtls_peer_get_error_message(p->client),
                    sn_dtls_peer_get_status(p->server), sn_dtls_peer_get_error_message(p->server));
    assert_int_equal(sn_dtls_peer_get_status(p->client), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_get_status(p->server), SN_DTLS_STATUS_CONNECTED);
}

/* --- garbage to the server port -------------------------------------------------------------- */

static uint64_t udp_drops(const sn_udp_server_stats *u)
{
    return u->dropped_pending_full + u->dropped_queue_full + u->dropped_oversize +
           u->dropped_no_memory + u->dropped_kernel;
}

/* Everything sent to the server port is accounted for: a usable ClientHello, a malformed
 * first datagram, or a UDP-level drop. */
static uint64_t accounted(fx_server *s)
{
    sn_dtls_server_stats d;
    sn_udp_server_stats u;
    sn_dtls_server_get_stats(s->dtls, &d);
    sn_udp_server_get_stats(s->udp, &u);
    return d.hellos_received + d.malformed_dropped + udp_drops(&u);
}

static void test_garbage_to_server_port(void **state)
{
    (void)state;
    uint8_t hello[2048];
    size_t hello_len = sn_test_capture_client_hello(client_opts, hello, sizeof hello);
    fx_server srv;
    sn_dtls_settings set;
    fast_settings(&set);
    assert_true(fx_server_start(&srv, server_opts, &set));
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    fx_rng rng;
    fx_rng_seed(&rng, 2024);
    enum { SOCKS = 8, ROUNDS = 60 };
    int fds[SOCKS];
    for (int i = 0; i < SOCKS; i++)
        fds[i] = sn_test_udp_socket_on(NULL);
    uint8_t d[4096];
    uint64_t sent = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < SOCKS; i++) {
            size_t len;
            switch (fx_rng_below(&rng, 4)) {
            case 0: /* random bytes, random length, empty included */
                len = fx_rng_below(&rng, 1500);
                fx_rng_fill(&rng, d, len);
                break;
            case 1: /* a real ClientHello cut anywhere */
                len = fx_rng_below(&rng, (uint32_t)hello_len);
                memcpy(d, hello, len);
                break;
            case 2: /* a real ClientHello with a few bytes changed */
                memcpy(d, hello, hello_len);
                len = hello_len;
                for (int k = 0, m = 1 + (int)fx_rng_below(&rng, 4); k < m; k++)
                    d[fx_rng_below(&rng, (uint32_t)len)] = (uint8_t)fx_rng_next(&rng);
                break;
            default: /* a record header in front of random bytes */
                len = 13 + fx_rng_below(&rng, 600);
                fx_rng_fill(&rng, d, len);
                d[0] = 22, d[1] = 0xfe, d[2] = 0xfd, d[3] = d[4] = 0;
                break;
            }
            sn_test_udp_send_to(fds[i], srv.port, d, len);
            sent++;
        }
        FX_ASSERT_WITHIN(&w, accounted(&srv) == sent, WAIT_MS);
    }
    sn_dtls_server_stats st;
    sn_udp_server_stats us;
    sn_dtls_server_get_stats(srv.dtls, &st);
    sn_udp_server_get_stats(srv.udp, &us);
    print_message("garbage: %llu sent; %llu malformed, %llu parsed as hellos (%llu cookies "
                  "sent, %llu rejected), %llu dropped by UDP; kernel drops %ld\n",
                  (unsigned long long)sent, (unsigned long long)st.malformed_dropped,
                  (unsigned long long)st.hellos_received, (unsigned long long)st.cookies_sent,
                  (unsigned long long)st.cookies_rejected, (unsigned long long)udp_drops(&us),
                  fx_kernel_udp_drops(srv.port));
    assert_true(st.malformed_dropped > sent / 2);
    assert_int_equal(st.handshakes_started, 0);
    assert_int_equal(srv.npeers, 0);
    /* Garbage gets no answer (no amplification); mutated hellos that still parse get at most
     * one HelloVerifyRequest each, of the size of a HelloVerifyRequest. */
    int answers = 0, hvr_ok = 0;
    for (int i = 0; i < SOCKS; i++)
        answers += drain_raw_from(fds[i], &hvr_ok, srv.port);
    assert_int_equal((uint64_t)answers, st.cookies_sent);
    assert_int_equal(answers, hvr_ok);
    for (int i = 0; i < SOCKS; i++)
        close(fds[i]);

    /* The server is none the worse for it. */
    sn_dtls_peer *cl = fx_client_connect(srv.port, "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w,
                     sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED && srv.npeers == 1 &&
                         sn_dtls_peer_get_status(srv.peers[0]) == SN_DTLS_STATUS_CONNECTED,
                     WAIT_MS);
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
}

/* --- garbage to an established session ------------------------------------------------------- */

static void garbage_into_session(pair *p, int dir)
{
    fx_rng rng;
    fx_rng_seed(&rng, 77u + (unsigned)dir);
    sn_dtls_peer *victim = receiver_of(p, dir);
    fx_dgram rec = capture_undelivered(p, dir, "fresh record");
    uint64_t before = received(victim);
    uint64_t last = sn_dtls_peer_get_last_packet_time_ms(victim);
    fx_world_run_for(&p->w, 20); /* so that a wrongly updated timestamp would differ */
    uint8_t d[2048];
    for (int i = 0; i < 400; i++) {
        size_t len;
        if (i % 4 == 0) { /* random bytes */
            len = fx_rng_below(&rng, 1400);
            fx_rng_fill(&rng, d, len);
        } else if (i % 4 == 1) {
            /* A well-formed header for epoch 1 (any content type: application data, handshake,
             * alert, change_cipher_spec, unknown ones) in front of a random body long enough
             * for the AEAD overhead (shorter bodies: test_short_records). */
            static const uint8_t types[] = {23, 23, 23, 22, 21, 20, 24, 25, 0, 99, 255};
            len = 13 + MIN_AEAD_BODY + fx_rng_below(&rng, 1200);
            fx_rng_fill(&rng, d, len);
            d[0] = types[fx_rng_below(&rng, sizeof types)];
            d[1] = 0xfe, d[2] = 0xfd, d[3] = 0, d[4] = 1;
            d[11] = (uint8_t)((len - 13) >> 8), d[12] = (uint8_t)(len - 13);
        } else { /* the fresh record with one byte changed: fails authentication */
            memcpy(d, rec.data, rec.len);
            len = rec.len;
            size_t at = 13 + fx_rng_below(&rng, (uint32_t)(len - 13)); /* never the header */
            d[at] ^= (uint8_t)(1 + fx_rng_below(&rng, 255));
        }
        assert_true(fx_relay_inject(&p->relay, dir, d, len));
        if (i % 50 == 49) fx_world_step(&p->w, 0);
    }
    settle(p);
    expect_still_up(p);
    assert_int_equal(received(victim), before);
    assert_int_equal(sn_dtls_peer_get_available_packet_count(victim), 0);
    /* Only an authenticated record moves the clock. */
    assert_int_equal(sn_dtls_peer_get_last_packet_time_ms(victim), last);
    /* The untouched record still goes through: nothing above disturbed the session state. */
    assert_true(fx_relay_inject(&p->relay, dir, rec.data, rec.len));
    FX_ASSERT_WITHIN(&p->w, received(victim) == before + 1, WAIT_MS);
    assert_true(sn_dtls_peer_get_last_packet_time_ms(victim) > last);
    free(rec.data);
    sn_dtls_peer_get_packet(victim, d, sizeof d, &(size_t){0});
    roundtrip(p, dir, "after the garbage");
}

static void test_garbage_to_session(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    garbage_into_session(&p, FX_C2S);
    garbage_into_session(&p, FX_S2C);
    expect_still_up(&p);
    pair_stop(&p);
}

/* --- truncated records ----------------------------------------------------------------------- */

static void truncated_into_session(pair *p, int dir)
{
    sn_dtls_peer *victim = receiver_of(p, dir);
    fx_dgram rec = capture_undelivered(p, dir, "a record to be cut into pieces");
    uint64_t before = received(victim);
    /* Cut anywhere: the header's length then claims more than the datagram holds. (An empty
     * datagram and a header claiming a too-short body are test_empty_datagram and
     * test_short_records.) */
    const size_t cuts[] = {1, 2, 5, 12, 13, 14, 20, 21, 29, 37, rec.len - 16, rec.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
        assert_true(fx_relay_inject(&p->relay, dir, rec.data, cuts[i]));
    /* The whole record, its header claiming far more. */
    uint8_t d[2048];
    memcpy(d, rec.data, rec.len);
    d[11] = 0x40, d[12] = 0x00;
    assert_true(fx_relay_inject(&p->relay, dir, d, rec.len));
    /* The header claiming less than is there, but still room for nonce and tag: the body is
     * cut and fails authentication. */
    memcpy(d, rec.data, rec.len);
    d[11] = 0, d[12] = MIN_AEAD_BODY;
    assert_true(fx_relay_inject(&p->relay, dir, d, rec.len));
    /* A handshake record cut short, as if a retransmitted flight were mangled. */
    const fx_dgram *hs = fx_relay_last_capture(&p->relay, dir, 22);
    if (hs) assert_true(fx_relay_inject(&p->relay, dir, hs->data, hs->len / 2));
    settle(p);
    expect_still_up(p);
    assert_int_equal(received(victim), before);
    /* The whole record is still good. */
    assert_true(fx_relay_inject(&p->relay, dir, rec.data, rec.len));
    FX_ASSERT_WITHIN(&p->w, received(victim) == before + 1, WAIT_MS);
    size_t len;
    assert_int_equal(sn_dtls_peer_get_packet(victim, d, sizeof d, &len), SN_OK);
    assert_int_equal(len, strlen("a record to be cut into pieces"));
    free(rec.data);
}

static void test_truncated_records(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    truncated_into_session(&p, FX_C2S);
    truncated_into_session(&p, FX_S2C);
    roundtrip(&p, FX_C2S, "still fine");
    roundtrip(&p, FX_S2C, "still fine too");
    pair_stop(&p);
}

/* --- records shorter than the AEAD overhead; empty datagrams (KNOWN LIBRARY BUGS) ------------- */

/* REGRESSION (was a bug, now fixed): a protected record (epoch 1) whose body is 1..23 bytes,
 * shorter than the AEAD overhead (explicit nonce 8 + tag 16 with AES-GCM), is not silently
 * discarded: OpenSSL 3.0 raises a fatal internal_error while setting up the decryption
 * (EVP_CTRL_AEAD_TLS1_AAD refuses the length; openssl/openssl#25290, #25389), the peer goes to
 * ERROR and sends the alert, which ends the other side too. Anyone who can put one 14..36-byte
 * datagram with the peer's source address on the wire ends the session, in either direction.
 * sealnet feeds every datagram to OpenSSL as is (src/dtls/dtls_peer.c io_recv, lines 67-87); it has
 * to drop such records itself (RFC 6347 4.1.2.7: invalid records SHOULD be silently discarded):
 * walk the records of each datagram and drop those with epoch > 0 whose length is below the
 * negotiated suite's overhead (24 for AES-GCM, 16 for ChaCha20-Poly1305). (Also, the victim's
 * message then reads "TLS handshake failed: unknown TLS error" for a session that was long
 * established: fail() in src/backend/openssl/openssl_session.c is called with
 * in_handshake = !SSL_is_init_finished(), which is false again once OpenSSL is in its error
 * state, and the OpenSSL error queue is empty by then.) */
/* Injects one record with the captured header (epoch 1, a fresh sequence number) and a body of
 * `body` bytes, its length field telling the truth. True when the session survived it. */
static bool short_record_survived(pair *p, int dir, size_t body, char *why, size_t why_cap)
{
    sn_dtls_peer *victim = receiver_of(p, dir);
    fx_dgram rec = capture_undelivered(p, dir, "short record test");
    uint64_t before = received(victim);
    uint8_t d[64];
    memcpy(d, rec.data, 13 + body);
    d[11] = 0, d[12] = (uint8_t)body;
    assert_true(fx_relay_inject(&p->relay, dir, d, 13 + body));
    fx_world_run_for(&p->w, 30);
    bool up = sn_dtls_peer_get_status(p->client) == SN_DTLS_STATUS_CONNECTED &&
              sn_dtls_peer_get_status(p->server) == SN_DTLS_STATUS_CONNECTED;
    if (!up) {
        snprintf(why, why_cap, "receiver \"%s\", sender \"%s\"",
                 sn_dtls_peer_get_error_message(victim),
                 sn_dtls_peer_get_error_message(sender_of(p, dir)));
    } else {
        /* Nothing delivered for it, and the real record still passes. */
        assert_int_equal(received(victim), before);
        assert_true(fx_relay_inject(&p->relay, dir, rec.data, rec.len));
        FX_ASSERT_WITHIN(&p->w, received(victim) == before + 1, WAIT_MS);
        sn_dtls_peer_get_packet(victim, d, sizeof d, &(size_t){0});
    }
    free(rec.data);
    return up;
}

static void test_short_records(void **state)
{
    (void)state;
    char killed[2][256] = {"", ""}, why[320] = "";
    int nkilled = 0;
    for (int dir = 0; dir < 2; dir++) {
        for (size_t body = 0; body < MIN_AEAD_BODY; body++) {
            pair p; /* a fresh session for every length: a killed one stays dead */
            pair_start(&p, NULL);
            if (!short_record_survived(&p, dir, body, why, sizeof why)) {
                size_t l = strlen(killed[dir]);
                snprintf(killed[dir] + l, sizeof killed[dir] - l, " %zu", body);
                nkilled++;
            }
            pair_stop(&p);
        }
    }
    if (nkilled)
        fail_msg("protected records with a short body ended the session: to the server, body "
                 "lengths:%s; to the client:%s (last: %s)",
                 killed[0], killed[1], why);
}

/* REGRESSION (was a bug, now fixed): an empty UDP datagram ends the session, on either side.
 * io_recv (src/dtls/dtls_peer.c:67-87) copies the 0-byte datagram and returns 0 (it also reads d[0]
 * of the empty datagram at line 73 first); the BIO read
 * (src/backend/openssl/openssl_session.c:95-96) passes that 0 to OpenSSL as a read of nothing
 * without a retry flag, which OpenSSL takes as a failed read: SSL_read fails and the peer goes to
 * ERROR with "TLS session failed: unknown TLS error". One spoofed empty datagram is enough.
 * Expected: dropped (and counted), the session unaffected. */
static void test_empty_datagram(void **state)
{
    (void)state;
    pair p;
    char failures[2][400] = {"", ""};
    for (int dir = 0; dir < 2; dir++) {
        pair_start(&p, NULL);
        sn_dtls_peer *victim = receiver_of(&p, dir);
        uint64_t before = received(victim);
        assert_true(fx_relay_inject(&p.relay, dir, "", 0));
        settle(&p);
        if (sn_dtls_peer_get_status(victim) != SN_DTLS_STATUS_CONNECTED) {
            snprintf(failures[dir], sizeof failures[dir],
                     "%s: one empty datagram ended the session: status %d \"%s\"; ",
                     dir == FX_C2S ? "server peer" : "client", sn_dtls_peer_get_status(victim),
                     sn_dtls_peer_get_error_message(victim));
        } else {
            assert_int_equal(received(victim), before);
            roundtrip(&p, dir, "after the empty datagram");
        }
        pair_stop(&p);
    }
    if (failures[0][0] || failures[1][0]) fail_msg("%s%s", failures[0], failures[1]);
}

/* --- who sent the alert ---------------------------------------------------------------------- */

/* Lets through the ClientHellos only: the real client's later flights (and any alert of its)
 * never reach the server. */
static bool client_hellos_only(int dir, const uint8_t *d, size_t len)
{
    if (dir == FX_S2C) return false;
    return !(len > 13 && d[0] == 22 && d[3] == 0 && d[4] == 0 && d[13] == 1);
}

/* Regression test (found here, fixed in int e6a68bc): when OUR side aborts a handshake and
 * SENDS a fatal alert, its error message said "peer sent alert: <ours>", because the info
 * callback (src/backend/openssl/openssl_session.c) tested `where & SSL_CB_READ_ALERT` and
 * SSL_CB_WRITE_ALERT shares the SSL_CB_ALERT bit. Scenario: the server gets a forged
 * ClientKeyExchange whose point length byte claims more than follows, from the client's
 * address, while the real client's flights are held back by the relay; the client sends no
 * alert at all, so the server's message must name its own failure. */
static void test_alert_attribution(void **state)
{
    (void)state;
    sn_dtls_settings set;
    fast_settings(&set);
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, server_opts, &set));
    assert_true(fx_relay_start(&relay, srv.port, 3));
    relay.filter = client_hellos_only;
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w, srv.npeers == 1, WAIT_MS);
    sn_dtls_peer *sp = srv.peers[0];
    /* Record: handshake, DTLS 1.2, epoch 0, sequence 100, length 12 + 5.
     * Handshake: client_key_exchange (16), length 5, message_seq 2, offset 0, fragment 5.
     * Body: a point length of 5 followed by 4 bytes. */
    static const uint8_t cke[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 100, 0, 17, 16, 0,
                                  0,  5,    0,    2, 0, 0, 0, 0, 0, 5, 5,   1, 2,  3,  4};
    assert_true(fx_relay_inject(&relay, FX_C2S, cke, sizeof cke));
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(sp) != SN_DTLS_STATUS_HANDSHAKING, WAIT_MS);
    const char *msg = sn_dtls_peer_get_error_message(sp);
    print_message("server peer after a malformed ClientKeyExchange: status %d \"%s\"; alerts "
                  "from the client that reached the server: none (relay passed %llu of %llu "
                  "client datagrams, all ClientHellos)\n",
                  sn_dtls_peer_get_status(sp), msg, (unsigned long long)relay.forwarded[FX_C2S],
                  (unsigned long long)relay.seen[FX_C2S]);
    assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_ERROR);
    /* The server sent an alert back (the client got it). */
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, WAIT_MS);
    print_message("client: status %d \"%s\"\n", sn_dtls_peer_get_status(cl),
                  sn_dtls_peer_get_error_message(cl));
    char copy[320];
    snprintf(copy, sizeof copy, "%s", msg);
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
    if (strstr(copy, "peer sent alert"))
        fail_msg("the server peer blames the client for an alert the server itself sent: \"%s\"",
                 copy);
}

/* --- oversize datagrams ---------------------------------------------------------------------- */

static uint64_t dropped_oversize(sn_dtls_peer *peer)
{
    sn_dtls_peer_stats st;
    sn_dtls_peer_get_stats(peer, &st);
    return st.dropped_oversize;
}

static void test_oversize_datagrams(void **state)
{
    (void)state;
    static uint8_t big[65507];
    fx_rng rng;
    fx_rng_seed(&rng, 65507);
    fx_rng_fill(&rng, big, sizeof big);
    pair p;
    pair_start(&p, NULL);

    /* To the server port from a new address: a first datagram that is no ClientHello. */
    uint64_t acc = accounted(&p.srv);
    int fd = sn_test_udp_socket_on(NULL);
    sn_test_udp_send_to(fd, p.srv.port, big, sizeof big);
    big[0] = 22, big[1] = 0xfe, big[2] = 0xfd, big[3] = big[4] = 0, big[13] = 1;
    sn_test_udp_send_to(fd, p.srv.port, big, sizeof big); /* looks like a hello, is not one */
    FX_ASSERT_WITHIN(&p.w, accounted(&p.srv) == acc + 2, WAIT_MS);
    assert_int_equal(drain_raw(fd, NULL), 0);
    close(fd);

    /* Into the session, both ways: larger than any DTLS record, dropped and counted. */
    const size_t sizes[] = {sizeof big, 20000, 16384 + 2048 + 13 + 1};
    for (int dir = 0; dir < 2; dir++) {
        sn_dtls_peer *victim = receiver_of(&p, dir);
        uint64_t before = received(victim), over = dropped_oversize(victim);
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            big[0] = 23, big[1] = 0xfe, big[2] = 0xfd, big[3] = 0, big[4] = 1;
            assert_true(fx_relay_inject(&p.relay, dir, big, sizes[i]));
        }
        /* Just under the limit: handed to the TLS library, which rejects it as a record. */
        assert_true(fx_relay_inject(&p.relay, dir, big, 16384 + 13));
        settle(&p);
        expect_still_up(&p);
        assert_int_equal(received(victim), before);
        uint64_t counted = dropped_oversize(victim) - over;
        if (counted < 1)
            fail_msg("%s: %zu-byte datagrams dropped without a count (dropped_oversize %llu)",
                     dir == FX_C2S ? "server peer" : "client", sizeof big,
                     (unsigned long long)counted);
        print_message("%s: oversize datagrams counted: %llu of %zu\n",
                      dir == FX_C2S ? "server peer" : "client", (unsigned long long)counted,
                      sizeof sizes / sizeof *sizes);
        roundtrip(&p, dir, "after the big ones");
    }
    pair_stop(&p);
}

/* --- replayed records ------------------------------------------------------------------------ */

static void replay_in(pair *p, int dir)
{
    sn_dtls_peer *victim = receiver_of(p, dir);
    char buf[256];
    size_t len;
    /* The relay sends the next application datagram twice: delivered once. */
    uint64_t before = received(victim);
    p->relay.dup_app[dir] = 1;
    assert_int_equal(sn_dtls_peer_put_packet(sender_of(p, dir), "once", 4), SN_OK);
    FX_ASSERT_WITHIN(&p->w, p->relay.duplicated[dir] >= 1, WAIT_MS);
    settle(p);
    assert_int_equal(received(victim), before + 1);
    assert_int_equal(sn_dtls_peer_get_available_packet_count(victim), 1);
    assert_int_equal(sn_dtls_peer_get_packet(victim, buf, sizeof buf, &len), SN_OK);
    const fx_dgram *g = fx_relay_last_capture(&p->relay, dir, 23);
    assert_non_null(g);
    fx_dgram old = {dir, g->len, malloc(g->len)};
    memcpy(old.data, g->data, g->len);
    /* Replayed later, within the window and after it has moved past (70 newer records). */
    assert_true(fx_relay_inject(&p->relay, dir, old.data, old.len));
    settle(p);
    assert_int_equal(received(victim), before + 1);
    for (int i = 0; i < 70; i++) {
        snprintf(buf, sizeof buf, "filler %d", i);
        assert_int_equal(sn_dtls_peer_put_packet(sender_of(p, dir), buf, strlen(buf)), SN_OK);
        if (i % 10 == 9) fx_world_step(&p->w, 0);
    }
    FX_ASSERT_WITHIN(&p->w, received(victim) == before + 71, WAIT_MS);
    for (int i = 0; i < 5; i++)
        assert_true(fx_relay_inject(&p->relay, dir, old.data, old.len));
    settle(p);
    assert_int_equal(received(victim), before + 71);
    while (sn_dtls_peer_get_packet(victim, buf, sizeof buf, &len) == SN_OK) {
    }
    free(old.data);
}

static void test_replayed_records(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    replay_in(&p, FX_C2S);
    replay_in(&p, FX_S2C);
    expect_still_up(&p);
    pair_stop(&p);
}

/* Two records in one datagram are both delivered, in order; a record followed by junk is
 * delivered and the junk dropped (RFC 6347 4.1.2.7 discards invalid records, not the valid ones
 * before them: a filter in front of OpenSSL should cut a datagram at its first bad record
 * rather than drop it whole). */
static void coalesced_in(pair *p, int dir)
{
    sn_dtls_peer *victim = receiver_of(p, dir);
    fx_dgram a = capture_undelivered(p, dir, "first of two");
    fx_dgram b = capture_undelivered(p, dir, "second of two");
    fx_dgram c = capture_undelivered(p, dir, "followed by junk");
    uint64_t before = received(victim);
    uint8_t d[4096];
    memcpy(d, a.data, a.len);
    memcpy(d + a.len, b.data, b.len);
    assert_true(fx_relay_inject(&p->relay, dir, d, a.len + b.len));
    FX_ASSERT_WITHIN(&p->w, received(victim) == before + 2, WAIT_MS);
    memcpy(d, c.data, c.len);
    fx_rng rng;
    fx_rng_seed(&rng, 12);
    fx_rng_fill(&rng, d + c.len, 100);
    assert_true(fx_relay_inject(&p->relay, dir, d, c.len + 100));
    FX_ASSERT_WITHIN(&p->w, received(victim) == before + 3, WAIT_MS);
    settle(p);
    expect_still_up(p);
    assert_int_equal(received(victim), before + 3);
    const char *want[] = {"first of two", "second of two", "followed by junk"};
    for (int i = 0; i < 3; i++) {
        size_t len;
        assert_int_equal(sn_dtls_peer_get_packet(victim, d, sizeof d, &len), SN_OK);
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(d, want[i], len);
    }
    free(a.data);
    free(b.data);
    free(c.data);
}

static void test_coalesced_records(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    coalesced_in(&p, FX_C2S);
    coalesced_in(&p, FX_S2C);
    pair_stop(&p);
}

/* --- records for a wrong epoch --------------------------------------------------------------- */

static void wrong_epoch_in(pair *p, int dir)
{
    sn_dtls_peer *victim = receiver_of(p, dir);
    fx_dgram rec = capture_undelivered(p, dir, "epoch test");
    assert_int_equal(rec.data[3] << 8 | rec.data[4], 1); /* application data: epoch 1 */
    uint64_t before = received(victim);
    const uint16_t epochs[] = {0, 2, 3, 0x0100, 0xffff};
    uint8_t d[2048];
    for (size_t i = 0; i < sizeof epochs / sizeof *epochs; i++) {
        memcpy(d, rec.data, rec.len);
        d[3] = (uint8_t)(epochs[i] >> 8), d[4] = (uint8_t)epochs[i];
        assert_true(fx_relay_inject(&p->relay, dir, d, rec.len));
        /* The same as a handshake record (type 22) and as an alert (21) in the wrong epoch. */
        d[0] = 22;
        assert_true(fx_relay_inject(&p->relay, dir, d, rec.len));
        d[0] = 21;
        assert_true(fx_relay_inject(&p->relay, dir, d, rec.len));
    }
    /* The sequence number rewritten far ahead (fails authentication: it must not move the
     * replay window, or every genuine record after it would count as old). */
    memcpy(d, rec.data, rec.len);
    memset(d + 5, 0xff, 6);
    assert_true(fx_relay_inject(&p->relay, dir, d, rec.len));
    d[5] = 0x00, d[6] = 0x01;
    assert_true(fx_relay_inject(&p->relay, dir, d, rec.len));
    settle(p);
    expect_still_up(p);
    assert_int_equal(received(victim), before);
    /* With the right epoch and sequence number the very same bytes are accepted: the header
     * alone made the difference. */
    assert_true(fx_relay_inject(&p->relay, dir, rec.data, rec.len));
    FX_ASSERT_WITHIN(&p->w, received(victim) == before + 1, WAIT_MS);
    size_t len;
    assert_int_equal(sn_dtls_peer_get_packet(victim, d, sizeof d, &len), SN_OK);
    assert_int_equal(len, 10);
    assert_memory_equal(d, "epoch test", 10);
    free(rec.data);
}

static void test_wrong_epoch_records(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    wrong_epoch_in(&p, FX_C2S);
    wrong_epoch_in(&p, FX_S2C);
    roundtrip(&p, FX_C2S, "after the epochs");
    pair_stop(&p);
}

/* --- cookies --------------------------------------------------------------------------------- */

/* A cookie is bound to the address it was sent to: the same ClientHello with a valid cookie
 * opens a handshake from that address and is refused from another. */
static void test_cookie_bound_to_address(void **state)
{
    (void)state;
    uint8_t hello[2048], withc[2048], hvr[256];
    size_t hello_len = sn_test_capture_client_hello(client_opts, hello, sizeof hello);
    fx_server srv;
    assert_true(fx_server_start(&srv, server_opts, NULL));
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    int a = sn_test_udp_socket_on(NULL), b = sn_test_udp_socket_on(NULL);
    sn_test_udp_send_to(a, srv.port, hello, hello_len);
    ssize_t n = -1;
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    while (n < 0 && sn_test_now_ms() < end) {
        fx_world_step(&w, 5);
        n = recv(a, hvr, sizeof hvr, 0);
    }
    assert_int_equal(n, 28 + 32);
    assert_int_equal(hvr[13], 3); /* HelloVerifyRequest */
    size_t wl = sn_test_hello_with_cookie(hello, hello_len, hvr + 28, hvr[27], withc, sizeof withc);

    sn_dtls_server_stats st;
    sn_test_udp_send_to(b, srv.port, withc, wl); /* someone else's cookie */
    FX_ASSERT_WITHIN(&w, (sn_dtls_server_get_stats(srv.dtls, &st), st.cookies_rejected == 1),
                     WAIT_MS);
    assert_int_equal(srv.npeers, 0);
    /* A forged cookie of the right length, and one of the wrong length. */
    uint8_t forged[32];
    memset(forged, 0xa5, sizeof forged);
    wl = sn_test_hello_with_cookie(hello, hello_len, forged, sizeof forged, withc, sizeof withc);
    sn_test_udp_send_to(a, srv.port, withc, wl);
    wl = sn_test_hello_with_cookie(hello, hello_len, forged, 20, withc, sizeof withc);
    sn_test_udp_send_to(a, srv.port, withc, wl);
    FX_ASSERT_WITHIN(&w, (sn_dtls_server_get_stats(srv.dtls, &st), st.cookies_rejected == 3),
                     WAIT_MS);
    assert_int_equal(srv.npeers, 0);
    assert_int_equal(st.handshakes_started, 0);
    /* The rightful owner. */
    wl = sn_test_hello_with_cookie(hello, hello_len, hvr + 28, hvr[27], withc, sizeof withc);
    sn_test_udp_send_to(a, srv.port, withc, wl);
    FX_ASSERT_WITHIN(&w, srv.npeers == 1, WAIT_MS);
    sn_dtls_server_get_stats(srv.dtls, &st);
    assert_int_equal(st.handshakes_started, 1);
    assert_int_equal(sn_dtls_peer_get_status(srv.peers[0]), SN_DTLS_STATUS_HANDSHAKING);
    close(a);
    close(b);
    fx_server_stop(&srv);
}

/* 20,000 cookie-less (and some forged-cookie) ClientHellos from 50 source sockets: each one is
 * answered statelessly or dropped and counted, the server holds no state for them afterwards
 * and its memory does not grow. */
static void test_client_hello_flood(void **state)
{
    (void)state;
    enum { SOCKS = 50, WARMUP = 2000 };
    /* SN_FLOOD_TOTAL: a longer soak by hand (the RSS trace is printed every 10%). */
    const char *env = getenv("SN_FLOOD_TOTAL");
    const uint64_t TOTAL = env && atol(env) >= 2 * WARMUP ? (uint64_t)atol(env) : 20000;
    uint8_t hello[2048], forged_hello[2048], cookie[32];
    size_t hello_len = sn_test_capture_client_hello(client_opts, hello, sizeof hello);
    memset(cookie, 0x3c, sizeof cookie);
    size_t forged_len = sn_test_hello_with_cookie(hello, hello_len, cookie, sizeof cookie,
                                                  forged_hello, sizeof forged_hello);

    fx_server srv;
    assert_true(fx_server_start(&srv, server_opts, NULL));
    /* Phase 1: the pending limit fits every source, one hello per source per burst, so every
     * hello is answered. Phase 2: the default limit of 16 and two hellos per source per burst,
     * so the UDP server drops some and the DTLS server answers one per connection taken. */
    sn_udp_server_set_max_pending_connections(srv.udp, 64);
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    int fds[SOCKS];
    for (int i = 0; i < SOCKS; i++)
        fds[i] = sn_test_udp_socket_on(NULL);

    uint64_t t0 = sn_test_now_ms();
    long rss_warm = 0;
    uint64_t sent = 0, forged = 0;
    int answers = 0, hvr_ok = 0;
    sn_dtls_server_stats st;
    sn_udp_server_stats us;
    while (sent < TOTAL) {
        bool phase2 = sent >= TOTAL / 2;
        if (phase2 && sn_udp_server_get_max_pending_connections(srv.udp) != 16) {
            sn_dtls_server_get_stats(srv.dtls, &st);
            sn_udp_server_get_stats(srv.udp, &us);
            /* Phase 1 is exact: every hello was answered, nothing dropped. */
            assert_int_equal(st.hellos_received, sent);
            assert_int_equal(st.cookies_sent, sent);
            assert_int_equal(st.cookies_rejected, forged);
            assert_int_equal(udp_drops(&us), 0);
            sn_udp_server_set_max_pending_connections(srv.udp, 16);
        }
        int per_sock = phase2 ? 2 : 1;
        for (int k = 0; k < per_sock; k++)
            for (int i = 0; i < SOCKS && sent < TOTAL; i++) {
                bool f = sent % 10 == 9;
                sn_test_udp_send_to(fds[i], srv.port, f ? forged_hello : hello,
                                    f ? forged_len : hello_len);
                sent++;
                forged += f;
            }
        FX_ASSERT_WITHIN(&w, accounted(&srv) == sent, WAIT_MS);
        for (int i = 0; i < SOCKS; i++)
            answers += drain_raw_from(fds[i], &hvr_ok, srv.port);
        if (!rss_warm && sent >= WARMUP) rss_warm = sn_test_rss_kib();
        if (sent % (TOTAL / 10) < (uint64_t)(phase2 ? 2 * SOCKS : SOCKS))
            print_message("  flood: %llu sent, RSS %ld KiB\n", (unsigned long long)sent,
                          sn_test_rss_kib());
    }
    uint64_t elapsed = sn_test_now_ms() - t0;
    /* The last answers may still be in flight on loopback. */
    sn_dtls_server_get_stats(srv.dtls, &st);
    for (uint64_t end = sn_test_now_ms() + WAIT_MS;
         (uint64_t)answers < st.cookies_sent && sn_test_now_ms() < end;) {
        sn_test_sleep_ms(1);
        for (int i = 0; i < SOCKS; i++)
            answers += drain_raw_from(fds[i], &hvr_ok, srv.port);
    }
    long rss_end = sn_test_rss_kib();
    sn_dtls_server_get_stats(srv.dtls, &st);
    sn_udp_server_get_stats(srv.udp, &us);
    long kdrops = fx_kernel_udp_drops(srv.port);
    print_message("flood: %llu hellos (%llu forged cookies) in %llu ms; hellos_received %llu, "
                  "cookies_sent %llu, cookies_rejected %llu, malformed %llu, UDP drops: "
                  "pending_full %llu queue_full %llu; kernel drops %ld; answers received %d; "
                  "RSS %ld KiB after warm-up, %ld KiB at the end (%+ld)\n",
                  (unsigned long long)sent, (unsigned long long)forged, (unsigned long long)elapsed,
                  (unsigned long long)st.hellos_received, (unsigned long long)st.cookies_sent,
                  (unsigned long long)st.cookies_rejected, (unsigned long long)st.malformed_dropped,
                  (unsigned long long)us.dropped_pending_full,
                  (unsigned long long)us.dropped_queue_full, kdrops, answers, rss_warm, rss_end,
                  rss_end - rss_warm);
    /* Every datagram accounted for, none lost silently (the kernel dropped none either). */
    assert_int_equal(st.hellos_received + st.malformed_dropped + udp_drops(&us), TOTAL);
    assert_true(kdrops <= 0);
    assert_int_equal(st.malformed_dropped, 0);
    assert_true(us.dropped_pending_full > 0);
    assert_true(st.cookies_rejected > 0);
    /* Stateless: no handshake, no peer, nothing pending. */
    assert_int_equal(st.handshakes_started, 0);
    assert_int_equal(srv.npeers, 0);
    assert_int_equal(us.pending_now, 0);
    assert_int_equal(us.taken_now, 0);
    /* One answer per connection taken, each a proper HelloVerifyRequest, and no more. */
    assert_int_equal((uint64_t)answers, st.cookies_sent);
    assert_int_equal(answers, hvr_ok);
    assert_true(rss_end - rss_warm < 1024);
    for (int i = 0; i < SOCKS; i++)
        close(fds[i]);

    /* A real client still gets in. */
    sn_dtls_settings set;
    fast_settings(&set);
    sn_dtls_peer *cl = fx_client_connect(srv.port, "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED, WAIT_MS);
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
}

/* KNOWN GAP (fails until fixed): datagrams the kernel drops because the server socket's receive
 * buffer is full are lost without any sealnet counter saying so. A burst of 3,000 datagrams
 * to the server port while the program is busy (not polling) overflows the default buffer
 * (net.core.rmem_default, 208 KiB here); /proc/net/udp shows the kernel's drop count for the
 * socket, but sn_udp_server_stats has no field for it, so hellos_received + malformed_dropped +
 * the UDP drop counters fall short of what was sent. Expected: a counter fed by SO_RXQ_OVFL
 * (the kernel's cumulative drop count arrives as ancillary data with recvmmsg), e.g.
 * sn_udp_server_stats.dropped_kernel, so that nothing is lost silently. */
static void test_burst_beyond_socket_buffer(void **state)
{
    (void)state;
    fx_server srv;
    assert_true(fx_server_start(&srv, server_opts, NULL));
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    int fd = sn_test_udp_socket_on(NULL);
    enum { N = 3000 };
    uint8_t d[100];
    memset(d, 0x42, sizeof d); /* not a ClientHello */
    for (int i = 0; i < N; i++)
        sn_test_udp_send_to(fd, srv.port, d, sizeof d);
    /* Drain until nothing more arrives for 200 ms. */
    uint64_t last = accounted(&srv), quiet_since = sn_test_now_ms();
    while (sn_test_now_ms() - quiet_since < 200) {
        fx_world_step(&w, 10);
        uint64_t now = accounted(&srv);
        if (now != last) last = now, quiet_since = sn_test_now_ms();
    }
    long kdrops = fx_kernel_udp_drops(srv.port);
    sn_udp_server_stats us;
    sn_udp_server_get_stats(srv.udp, &us);
    close(fd);
    fx_server_stop(&srv);
    print_message("burst of %d: %llu accounted by sealnet (%llu read from the socket), kernel "
                  "receive-buffer drops %ld\n",
                  N, (unsigned long long)last, (unsigned long long)us.datagrams_received, kdrops);
    if (last != N)
        fail_msg("%llu of %d datagrams vanished without a sealnet counter (the kernel dropped "
                 "%ld: /proc/net/udp)",
                 (unsigned long long)(N - last), N, kdrops);
}

/* --- garbage and duplicates during the handshake --------------------------------------------- */

static fx_relay *meddling_relay;
static fx_rng meddling_rng;
/* Content type of the plaintext (epoch 0) record also injected before each real datagram; 0:
 * none. */
static uint8_t meddle_epoch0_type;

/* Before every real datagram: garbage from the same address, then the real one twice. */
static bool meddle(int dir, const uint8_t *d, size_t len)
{
    uint8_t g[1500];
    for (int k = 0; k < 3; k++) {
        size_t n;
        if (fx_rng_below(&meddling_rng, 2) == 0) { /* random bytes */
            n = 1 + fx_rng_below(&meddling_rng, 1200);
            fx_rng_fill(&meddling_rng, g, n);
        } else { /* a protected record (epoch 1) nobody can have keys for yet, or forged */
            n = 13 + MIN_AEAD_BODY + fx_rng_below(&meddling_rng, 300);
            fx_rng_fill(&meddling_rng, g, n);
            g[0] = (uint8_t)(20 + fx_rng_below(&meddling_rng, 4));
            g[1] = 0xfe, g[2] = 0xfd, g[3] = 0, g[4] = 1;
            g[11] = (uint8_t)((n - 13) >> 8), g[12] = (uint8_t)(n - 13);
        }
        fx_relay_inject(meddling_relay, dir, g, n);
    }
    if (meddle_epoch0_type) {
        /* A plaintext record of that type, sequence number far ahead, random body. */
        size_t n = 13 + 40;
        fx_rng_fill(&meddling_rng, g, n);
        g[0] = meddle_epoch0_type, g[1] = 0xfe, g[2] = 0xfd, g[3] = 0, g[4] = 0;
        g[5] = 0, g[6] = 0, g[7] = 0, g[8] = 0, g[9] = 0x10, g[10] = 0;
        g[11] = 0, g[12] = 40;
        fx_relay_inject(meddling_relay, dir, g, n);
    }
    fx_relay_inject(meddling_relay, dir, d, len); /* a duplicate, ahead of the original */
    return false;
}

/* Runs a handshake through the meddling relay; returns true when both sides connected (the
 * statuses are printed otherwise). */
static bool handshake_through_meddling(uint64_t seed, uint8_t epoch0_type)
{
    sn_dtls_settings set;
    fast_settings(&set);
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, server_opts, &set));
    assert_true(fx_relay_start(&relay, srv.port, seed));
    meddling_relay = &relay;
    fx_rng_seed(&meddling_rng, seed);
    meddle_epoch0_type = epoch0_type;
    relay.filter = meddle;
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    /* Until the client is done and the server holds no handshaking peer. */
    uint64_t end = sn_test_now_ms() + WAIT_MS;
    bool done = false;
    while (!done && sn_test_now_ms() < end) {
        fx_world_step(&w, 5);
        /* A client that failed may leave the server without any peer at all. */
        done = sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING;
        for (int i = 0; i < srv.npeers; i++)
            done = done && sn_dtls_peer_get_status(srv.peers[i]) != SN_DTLS_STATUS_HANDSHAKING;
    }
    sn_dtls_peer *sp = fx_server_last_peer(&srv);
    bool ok = done && sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_CONNECTED &&
              sn_dtls_peer_get_status(sp) == SN_DTLS_STATUS_CONNECTED;
    if (!ok)
        print_message("handshake through garbage (epoch-0 type %d): client %d \"%s\", server "
                      "peers %d, last %d \"%s\"\n",
                      epoch0_type, sn_dtls_peer_get_status(cl), sn_dtls_peer_get_error_message(cl),
                      srv.npeers, sp ? (int)sn_dtls_peer_get_status(sp) : -1,
                      sp ? sn_dtls_peer_get_error_message(sp) : "");
    if (ok) {
        /* One session only: the duplicated ClientHellos did not open a second one. */
        int connected = 0;
        for (int i = 0; i < srv.npeers; i++)
            connected += sn_dtls_peer_get_status(srv.peers[i]) == SN_DTLS_STATUS_CONNECTED;
        assert_int_equal(connected, 1);
        /* And data flows through the same meddling, each packet delivered once. */
        for (int i = 0; i < 20; i++) {
            char m[32];
            snprintf(m, sizeof m, "meddled %d", i);
            assert_int_equal(sn_dtls_peer_put_packet(cl, m, strlen(m)), SN_OK);
        }
        FX_ASSERT_WITHIN(&w, received(sp) == 20, WAIT_MS);
        fx_world_run_for(&w, 100);
        assert_int_equal(received(sp), 20);
        assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_CONNECTED);
    }
    relay.filter = NULL;
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
    return ok;
}

/* A handshake completes although every datagram of it comes with garbage from the same
 * address (random bytes, records for epoch 1 that cannot be decrypted) and a duplicate of
 * itself. */
static void test_garbage_during_handshake(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++)
        assert_true(handshake_through_meddling(seed, 0));
}

/* REGRESSION (was a bug, now fixed): a plaintext record with an unknown content type (not 20..23)
 * during the handshake is a fatal error in OpenSSL 3.0 (openssl/openssl#25840, #25389) instead
 * of being discarded (RFC 6347 4.1.2.7), so one spoofed datagram aborts the handshake. sealnet
 * can drop records of unknown types before OpenSSL sees them (src/dtls/dtls_peer.c io_recv).
 * (Forged plaintext alerts or handshake messages in epoch 0 cannot be told from real ones before
 * the Finished messages in DTLS 1.2; they are not tested here.) */
static void test_unknown_record_type_during_handshake(void **state)
{
    (void)state;
    assert_true(handshake_through_meddling(7, 99));
}

/* The client's ClientHello (with its valid cookie) replayed into the established session, from
 * the client's address: the session must not be torn down (renegotiation is off; a replayed
 * hello is old news). */
static void test_hello_replayed_into_session(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    /* The captures hold both ClientHellos; the second carries the cookie. */
    const fx_dgram *hellos[2] = {NULL, NULL};
    int nh = 0;
    for (size_t i = 0; i < p.relay.ncaps && nh < 2; i++) {
        const fx_dgram *g = &p.relay.caps[i];
        if (g->dir == FX_C2S && g->len > 13 && g->data[0] == 22 && g->data[13] == 1)
            hellos[nh++] = g;
    }
    assert_int_equal(nh, 2);
    uint64_t before = received(p.server);
    for (int k = 0; k < 2; k++)
        assert_true(fx_relay_inject(&p.relay, FX_C2S, hellos[k]->data, hellos[k]->len));
    settle(&p);
    expect_still_up(&p);
    assert_int_equal(received(p.server), before);
    roundtrip(&p, FX_C2S, "after the replayed hellos");
    roundtrip(&p, FX_S2C, "and back");
    sn_dtls_server_stats st;
    sn_dtls_server_get_stats(p.srv.dtls, &st);
    assert_int_equal(st.handshakes_started, 1);
    pair_stop(&p);
}

/* KNOWN WEAKNESS (fails until fixed): the ClientHello that carried the cookie, captured off the
 * wire and replayed from the client's address with any byte of its random changed, ends the
 * established session ("the remote restarted the session"), while the real client stays
 * CONNECTED and its packets are dropped as malformed first datagrams from then on. Anyone who
 * saw the handshake and can spoof the source address can do it for the whole cookie lifetime
 * (60 s by default). Diagnosis: handle_new_hello (src/dtls/dtls_peer.c:53-64, int 696b8ce) treats
 * any cookie valid for the address (sn_dtls_jar_check: address + age only) as proof of a
 * restart, including the cookie of the hello that opened this very session. RFC 6347 4.2.8 asks
 * for reachability demonstrated by completing a cookie exchange; a replayed cookie proves
 * nothing about the present. Expected: a new HelloVerifyRequest and the session kept, e.g. by
 * accepting for a restart only cookies minted after the session started (the cookie's time
 * field), or restart cookies with their own HMAC domain bound to the session. */
static void test_replayed_cookie_hello_with_new_random(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    const fx_dgram *cookie_hello = NULL;
    for (size_t i = 0; i < p.relay.ncaps; i++) {
        const fx_dgram *g = &p.relay.caps[i];
        if (g->dir == FX_C2S && g->len > 13 && g->data[0] == 22 && g->data[13] == 1)
            cookie_hello = g; /* the last ClientHello: the one with the cookie */
    }
    assert_non_null(cookie_hello);
    uint8_t m[2048];
    memcpy(m, cookie_hello->data, cookie_hello->len);
    m[13 + 12 + 2 + 5] ^= 1; /* one bit of the client random */
    assert_true(fx_relay_inject(&p.relay, FX_C2S, m, cookie_hello->len));
    settle(&p);
    sn_dtls_status st = sn_dtls_peer_get_status(p.server);
    char msg[320];
    snprintf(msg, sizeof msg, "%s", sn_dtls_peer_get_error_message(p.server));
    bool client_up = sn_dtls_peer_get_status(p.client) == SN_DTLS_STATUS_CONNECTED;
    if (st == SN_DTLS_STATUS_CONNECTED) roundtrip(&p, FX_C2S, "still here");
    pair_stop(&p);
    if (st != SN_DTLS_STATUS_CONNECTED)
        fail_msg("a replayed cookie ClientHello (random changed) ended the session: server peer "
                 "status %d \"%s\"; the real client is %s",
                 st, msg, client_up ? "still CONNECTED and now talks into the void" : "down too");
}

/* --- queue bounds: an application-data flood -------------------------------------------------- */

/* A peer that does not read: decrypted packets beyond max_queued_packets are dropped and
 * counted, and so are datagrams beyond the UDP queue; nothing else breaks. */
static void test_application_flood_bounded(void **state)
{
    (void)state;
    sn_dtls_settings set;
    fast_settings(&set);
    set.max_queued_packets = 10;
    pair p;
    pair_start(&p, &set);
    enum { N = 120 };
    for (int i = 0; i < N; i++) {
        char m[32];
        snprintf(m, sizeof m, "flood %03d", i);
        assert_int_equal(sn_dtls_peer_put_packet(p.client, m, strlen(m)), SN_OK);
        if (i % 20 == 19) fx_world_step(&p.w, 0);
    }
    sn_dtls_peer_stats st;
    FX_ASSERT_WITHIN(
        &p.w,
        (sn_dtls_peer_get_stats(p.server, &st), st.packets_received + st.dropped_queue_full == N),
        WAIT_MS);
    assert_int_equal(sn_dtls_peer_get_available_packet_count(p.server), 10);
    assert_int_equal(st.packets_received, 10);
    assert_int_equal(st.dropped_queue_full, N - 10);
    /* The oldest ones were kept, in order. */
    char buf[64];
    size_t len;
    for (int i = 0; i < 10; i++) {
        char m[32];
        snprintf(m, sizeof m, "flood %03d", i);
        assert_int_equal(sn_dtls_peer_get_packet(p.server, buf, sizeof buf, &len), SN_OK);
        assert_int_equal(len, strlen(m));
        assert_memory_equal(buf, m, len);
    }
    roundtrip(&p, FX_C2S, "room again");
    expect_still_up(&p);
    pair_stop(&p);
}

/* The server frees a connected peer; the client keeps sending. The next datagram from that
 * address opens a new pending connection, which is no ClientHello: dropped and counted. */
static void test_data_after_server_forgot_peer(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    /* Forget it without a close_notify reaching the client. */
    p.relay.drop_pct[FX_S2C] = 100;
    sn_dtls_peer_free(p.server);
    p.srv.npeers = 0;
    p.server = NULL;
    fx_world_run_for(&p.w, 50);
    p.relay.drop_pct[FX_S2C] = 0;
    sn_dtls_server_stats before, after;
    sn_dtls_server_get_stats(p.srv.dtls, &before);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sn_dtls_peer_put_packet(p.client, "orphan", 6), SN_OK);
    FX_ASSERT_WITHIN(&p.w,
                     (sn_dtls_server_get_stats(p.srv.dtls, &after),
                      after.malformed_dropped >= before.malformed_dropped + 5),
                     WAIT_MS);
    assert_int_equal(after.handshakes_started, before.handshakes_started);
    assert_int_equal(p.srv.npeers, 0);
    pair_stop(&p);
}

/* REGRESSION (was a bug, now fixed): put_packet with 0 bytes ends the sender's session ("TLS
 * session failed: unknown TLS error"), without telling the other side. sn_ossl_write
 * (src/backend/openssl/openssl_session.c) calls SSL_write_ex(ssl, buf, 0, ...), which OpenSSL
 * refuses for num == 0 (returns 0 with nothing in the error queue); fail() turns that into a fatal
 * session failure and sn_dtls_peer_put_packet (src/dtls/dtls_peer.c) releases the transport.
 * Godot's PacketPeerDTLS returns OK for an empty put_packet. Expected: SN_OK (sending nothing, as
 * Godot, or an empty record) or a refusal with a reason; the session stays up either way. */
static void test_empty_packet(void **state)
{
    (void)state;
    char failure[400] = "";
    for (int dir = 0; dir < 2 && !failure[0]; dir++) {
        pair p;
        pair_start(&p, NULL);
        sn_dtls_peer *from = sender_of(&p, dir), *to = receiver_of(&p, dir);
        sn_err e = sn_dtls_peer_put_packet(from, "", 0);
        char why[320];
        snprintf(why, sizeof why, "%s", sn_last_error_message());
        if (sn_dtls_peer_get_status(from) != SN_DTLS_STATUS_CONNECTED) {
            snprintf(failure, sizeof failure,
                     "%s: put_packet of 0 bytes returned %s and ended the session: \"%s\"",
                     dir == FX_C2S ? "client" : "server peer", sn_err_string(e),
                     sn_dtls_peer_get_error_message(from));
        } else {
            if (e != SN_OK) assert_true(why[0] != '\0');
            /* At most one empty packet arrives before the next real one. */
            assert_int_equal(sn_dtls_peer_put_packet(from, "marker", 6), SN_OK);
            char buf[16];
            size_t len = 0;
            int empties = 0;
            for (;;) {
                FX_ASSERT_WITHIN(&p.w, sn_dtls_peer_get_available_packet_count(to) > 0, WAIT_MS);
                assert_int_equal(sn_dtls_peer_get_packet(to, buf, sizeof buf, &len), SN_OK);
                if (len != 0) break;
                empties++;
            }
            assert_int_equal(len, 6);
            assert_true(empties <= (e == SN_OK ? 1 : 0));
        }
        pair_stop(&p);
    }
    if (failure[0]) fail_msg("%s", failure);
}

/* --- lifetimes: the server objects go away before their peers ------------------------------ */

/* sn_dtls_server_free while a peer is connected: the peer keeps working, including the part
 * that needs the server's cookie secret (a new ClientHello on the peer's address gets a
 * HelloVerifyRequest). ASan would see a use after free here. */
static void test_dtls_server_freed_first(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    sn_dtls_server_free(p.srv.dtls);
    p.srv.dtls = NULL;
    roundtrip(&p, FX_C2S, "server object gone");
    roundtrip(&p, FX_S2C, "peer still here");
    /* A fresh cookie-less ClientHello (a new random) from the client's address. */
    uint8_t hello[2048];
    size_t n = sn_test_capture_client_hello(client_opts, hello, sizeof hello);
    uint64_t s2c = p.relay.seen[FX_S2C];
    assert_true(fx_relay_inject(&p.relay, FX_C2S, hello, n));
    FX_ASSERT_WITHIN(&p.w, p.relay.seen[FX_S2C] > s2c, WAIT_MS);
    const fx_dgram *hvr = fx_relay_last_capture(&p.relay, FX_S2C, 22);
    assert_non_null(hvr);
    assert_true(hvr->len == 28 + 32 && hvr->data[13] == 3);
    expect_still_up(&p);
    roundtrip(&p, FX_C2S, "after the hello");
    pair_stop(&p);
}

/* sn_udp_server_free while a DTLS peer taken from it is connected: the peer cannot send any
 * more; it must say so (an error and a message), never crash. */
static void test_udp_server_freed_first(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    sn_udp_server_free(p.srv.udp);
    p.srv.udp = NULL;
    sn_dtls_peer_poll(p.server);
    sn_err e = sn_dtls_peer_put_packet(p.server, "into nothing", 12);
    print_message("put_packet on a peer whose UDP server is gone: %s (%s); status %d \"%s\"\n",
                  sn_err_string(e), sn_last_error_message(), sn_dtls_peer_get_status(p.server),
                  sn_dtls_peer_get_error_message(p.server));
    assert_int_not_equal(e, SN_OK);
    assert_true(sn_last_error_message()[0] != '\0');
    sn_dtls_peer_poll(p.server);
    assert_int_equal(sn_dtls_peer_get_fd(p.server), -1);
    /* The client side is unaffected by any of this. */
    assert_int_equal(sn_dtls_peer_get_status(p.client), SN_DTLS_STATUS_CONNECTED);
    pair_stop(&p); /* frees the peer: its close_notify cannot go anywhere either */
}

/* A client peer that failed is reused for a new connection: nothing of the first attempt
 * (message, status, counters) leaks into the second. */
static void test_client_peer_reused_after_failure(void **state)
{
    (void)state;
    fx_server srv;
    sn_dtls_settings set;
    fast_settings(&set);
    assert_true(fx_server_start(&srv, server_opts, &set));
    fx_world w;
    fx_world_init(&w, &srv, NULL);
    sn_dtls_peer *cl = fx_client_connect(srv.port, "wrong.example", client_opts, &set);
    assert_non_null(cl);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, WAIT_MS);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH);
    sn_udp_peer *udp = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", srv.port), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(cl, udp, "localhost", client_opts), SN_OK);
    assert_string_equal(sn_dtls_peer_get_error_message(cl), "");
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(cl) != SN_DTLS_STATUS_HANDSHAKING, WAIT_MS);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    assert_string_equal(sn_dtls_peer_get_error_message(cl), "");
    sn_dtls_peer *sp = fx_server_last_peer(&srv);
    FX_ASSERT_WITHIN(&w, sn_dtls_peer_get_status(sp) == SN_DTLS_STATUS_CONNECTED, WAIT_MS);
    assert_int_equal(sn_dtls_peer_put_packet(cl, "second life", 11), SN_OK);
    FX_ASSERT_WITHIN(&w, received(sp) == 1, WAIT_MS);
    sn_dtls_peer_stats st;
    sn_dtls_peer_get_stats(cl, &st);
    assert_int_equal(st.packets_sent, 1);
    /* And a connected peer refuses a second connect without losing its session. */
    udp = sn_udp_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", srv.port), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(cl, udp, "localhost", client_opts),
                     SN_ERR_ALREADY_IN_USE);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_CONNECTED);
    sn_dtls_peer_free(cl);
    fx_server_stop(&srv);
}

/* --- a client that comes back from the same address and port -------------------------------- */

/* Two clients in turn behind one relay: the server sees both from the relay's address and port.
 * The first leaves with or without its close_notify reaching the server; the second must get a
 * new session (RFC 6347 4.2.8 for the case without), and the first server peer must end. */
static void restart_on_same_address(bool clean_close)
{
    sn_dtls_settings set;
    fast_settings(&set);
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, server_opts, &set));
    assert_true(fx_relay_start(&relay, srv.port, 4));
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    for (int round = 0; round < 2; round++) {
        sn_dtls_peer *c = fx_client_connect(relay.port, "localhost", client_opts, &set);
        assert_non_null(c);
        w.nclients = 0;
        fx_world_add_client(&w, c);
        FX_ASSERT_WITHIN(
            &w,
            sn_dtls_peer_get_status(c) != SN_DTLS_STATUS_HANDSHAKING && srv.npeers == round + 1 &&
                sn_dtls_peer_get_status(srv.peers[round]) != SN_DTLS_STATUS_HANDSHAKING,
            WAIT_MS);
        char why[320];
        snprintf(why, sizeof why, "%s", sn_dtls_peer_get_error_message(c));
        sn_dtls_status st = sn_dtls_peer_get_status(c);
        if (st == SN_DTLS_STATUS_CONNECTED) {
            assert_int_equal(sn_dtls_peer_put_packet(c, "hi", 2), SN_OK);
            FX_ASSERT_WITHIN(&w, received(srv.peers[round]) == 1, WAIT_MS);
        }
        /* Leave: with a close_notify that arrives, or behind a relay that lets nothing out. */
        relay.blackhole = !clean_close;
        sn_dtls_peer_free(c);
        w.nclients = 0;
        fx_world_run_for(&w, 50);
        relay.blackhole = false;
        if (st != SN_DTLS_STATUS_CONNECTED) fail_msg("round %d: client %d \"%s\"", round, st, why);
    }
    sn_dtls_status old = sn_dtls_peer_get_status(srv.peers[0]);
    print_message("restart (%s): old server peer %d \"%s\"\n",
                  clean_close ? "after close_notify" : "without close_notify", old,
                  sn_dtls_peer_get_error_message(srv.peers[0]));
    assert_int_not_equal(old, SN_DTLS_STATUS_CONNECTED);
    sn_dtls_server_stats st;
    sn_dtls_server_get_stats(srv.dtls, &st);
    assert_int_equal(st.handshakes_started, 2);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

static void test_client_restarts_after_close(void **state)
{
    (void)state;
    restart_on_same_address(true);
}

static void test_client_restarts_without_close(void **state)
{
    (void)state;
    restart_on_same_address(false);
}

/* --- vanishing servers and clients ------------------------------------------------------------ */

/* The server answers nothing: the client gives up after its handshake timeout, says so, and
 * next_timeout_ms never promises a wake-up later than that deadline. The timeout is sealnet's
 * timer, so it runs on the injected clock and is checked to the step; the retransmissions are
 * OpenSSL's (real time), so every step also sleeps its length for real (real >= injected). */
static void test_server_never_answers(void **state)
{
    (void)state;
    enum { STEP = 10 };
    sn_test_clock_install(3000000);
    sn_dtls_settings set;
    fast_settings(&set);
    set.handshake_timeout_ms = 800;
    int sink = sn_test_udp_socket_on(NULL);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(sink, (struct sockaddr *)&a, &alen), 0);
    uint64_t t0 = sn_test_clock_now_ms(); /* the injected clock stands still until advanced */
    sn_dtls_peer *cl = fx_client_connect(ntohs(a.sin_port), "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, NULL, NULL);
    fx_world_add_client(&w, cl);
    uint64_t real_end = sn_test_now_ms() + WAIT_MS;
    while (sn_dtls_peer_get_status(cl) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() < real_end) {
        int t = sn_dtls_peer_next_timeout_ms(cl);
        uint64_t now = sn_test_clock_now_ms();
        assert_true(t >= 0);
        assert_true(now + (uint64_t)t <= t0 + 800);
        sn_test_sleep_ms(STEP);
        sn_test_clock_advance(STEP);
        fx_world_step(&w, 0);
    }
    uint64_t took = sn_test_clock_now_ms() - t0;
    sn_test_clock_remove();
    int hellos = drain_raw(sink, NULL);
    print_message("client gave up after %llu ms of injected time: \"%s\"; ClientHellos sent: %d\n",
                  (unsigned long long)took, sn_dtls_peer_get_error_message(cl), hellos);
    assert_int_equal(sn_dtls_peer_get_status(cl), SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(cl), "timed out"));
    assert_true(took >= 800 && took <= 800 + STEP); /* exactly at the deadline, to the step */
    assert_true(hellos >= 3); /* the first, then retransmissions at 100, 300, 700 ms (real) */
    sn_dtls_peer_free(cl);
    close(sink);
}

/* --- vanishing clients ----------------------------------------------------------------------- */

static bool hello_phase_only(int dir, const uint8_t *d, size_t len)
{
    uint8_t want = dir == FX_C2S ? 1 /* ClientHello */ : 3 /* HelloVerifyRequest */;
    bool pass = len > 13 && d[0] == 22 && d[3] == 0 && d[4] == 0 && d[13] == want;
    return !pass;
}

static void test_client_vanishes_mid_handshake(void **state)
{
    (void)state;
    sn_dtls_settings set;
    fast_settings(&set);
    set.handshake_timeout_ms = 1500;
    fx_server srv;
    fx_relay relay;
    assert_true(fx_server_start(&srv, server_opts, &set));
    assert_true(fx_relay_start(&relay, srv.port, 9));
    /* Let through ClientHellos and HelloVerifyRequests only: the server sends its flight and
     * never hears back. */
    relay.filter = hello_phase_only;
    sn_dtls_peer *cl = fx_client_connect(relay.port, "localhost", client_opts, &set);
    assert_non_null(cl);
    fx_world w;
    fx_world_init(&w, &srv, &relay);
    fx_world_add_client(&w, cl);
    FX_ASSERT_WITHIN(&w, srv.npeers == 1, WAIT_MS);
    /* From here on the handshake timeout (sealnet's timer) runs on the injected clock, checked
     * to the step; OpenSSL's retransmissions stay on real time, which each step also sleeps. */
    sn_dtls_peer *sp = srv.peers[0];
    uint64_t t0 = sn_clock_now_ms(); /* real still: the injected clock starts from it */
    sn_test_clock_install(t0);
    sn_dtls_peer_free(cl); /* gone without a word */
    w.nclients = 0;
    /* The peer's handshake began before t0 (real clock): its deadline is at most 1500 after. */
    uint64_t real_end = sn_test_now_ms() + WAIT_MS;
    while (sn_dtls_peer_get_status(sp) == SN_DTLS_STATUS_HANDSHAKING &&
           sn_test_now_ms() < real_end) {
        sn_test_sleep_ms(10);
        sn_test_clock_advance(10);
        fx_world_step(&w, 0);
    }
    uint64_t took = sn_test_clock_now_ms() - t0;
    sn_test_clock_remove();
    print_message("server peer after %llu ms of injected time: status %d \"%s\"; server "
                  "datagrams dropped by the relay: %llu\n",
                  (unsigned long long)took, sn_dtls_peer_get_status(sp),
                  sn_dtls_peer_get_error_message(sp), (unsigned long long)relay.dropped[FX_S2C]);
    assert_int_equal(sn_dtls_peer_get_status(sp), SN_DTLS_STATUS_ERROR);
    assert_non_null(strstr(sn_dtls_peer_get_error_message(sp), "timed out"));
    /* Never after the timeout; before it only by the time the handshake had run before t0. */
    assert_true(took <= 1500 + 10);
    assert_true(took + 500 >= 1500);
    /* The server retransmitted its flight meanwhile (100 ms, then doubling). */
    assert_true(relay.dropped[FX_S2C] >= 3);
    /* A failed peer is inert: polling it, sending on it and freeing it are all fine. */
    sn_dtls_peer_poll(sp);
    assert_int_equal(sn_dtls_peer_put_packet(sp, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_dtls_peer_get_fd(sp), -1);
    fx_server_stop(&srv);
    fx_relay_stop(&relay);
}

static void test_client_vanishes_after_connecting(void **state)
{
    (void)state;
    pair p;
    pair_start(&p, NULL);
    roundtrip(&p, FX_C2S, "first");
    uint64_t t1 = sn_dtls_peer_get_last_packet_time_ms(p.server);
    assert_true(t1 > 0);
    fx_world_run_for(&p.w, 30);
    roundtrip(&p, FX_C2S, "second");
    uint64_t t2 = sn_dtls_peer_get_last_packet_time_ms(p.server);
    assert_true(t2 > t1); /* it moves with traffic */

    /* The client disappears: the relay stops carrying anything (its close_notify included). */
    p.relay.blackhole = true;
    sn_dtls_peer_free(p.client);
    p.client = NULL;
    p.w.nclients = 0;
    fx_world_run_for(&p.w, 1200);
    assert_true(p.relay.dropped[FX_C2S] >= 1); /* the close_notify that never arrived */
    assert_int_equal(sn_dtls_peer_get_status(p.server), SN_DTLS_STATUS_CONNECTED);
    assert_int_equal(sn_dtls_peer_get_last_packet_time_ms(p.server), t2);
    assert_true(sn_dtls_now_ms() - t2 >= 1200);
    /* Sending still works from the server's side (the datagrams go nowhere). */
    assert_int_equal(sn_dtls_peer_put_packet(p.server, "anyone?", 7), SN_OK);
    /* An idle connected peer does not ask to be woken up in a tight loop. */
    int t = sn_dtls_peer_next_timeout_ms(p.server);
    assert_true(t < 0 || t >= 100);
    pair_stop(&p);
}

int main(void)
{
    if (!sn_test_have("openssl")) {
        printf("openssl command not found: skipping\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_to_server_port),
        cmocka_unit_test(test_garbage_to_session),
        cmocka_unit_test(test_truncated_records),
        cmocka_unit_test(test_short_records),
        cmocka_unit_test(test_empty_datagram),
        cmocka_unit_test(test_alert_attribution),
        cmocka_unit_test(test_oversize_datagrams),
        cmocka_unit_test(test_replayed_records),
        cmocka_unit_test(test_wrong_epoch_records),
        cmocka_unit_test(test_coalesced_records),
        cmocka_unit_test(test_cookie_bound_to_address),
        cmocka_unit_test(test_client_hello_flood),
        cmocka_unit_test(test_burst_beyond_socket_buffer),
        cmocka_unit_test(test_garbage_during_handshake),
        cmocka_unit_test(test_unknown_record_type_during_handshake),
        cmocka_unit_test(test_hello_replayed_into_session),
        cmocka_unit_test(test_replayed_cookie_hello_with_new_random),
        cmocka_unit_test(test_application_flood_bounded),
        cmocka_unit_test(test_data_after_server_forgot_peer),
        cmocka_unit_test(test_empty_packet),
        cmocka_unit_test(test_dtls_server_freed_first),
        cmocka_unit_test(test_udp_server_freed_first),
        cmocka_unit_test(test_client_peer_reused_after_failure),
        cmocka_unit_test(test_client_restarts_after_close),
        cmocka_unit_test(test_client_restarts_without_close),
        cmocka_unit_test(test_server_never_answers),
        cmocka_unit_test(test_client_vanishes_mid_handshake),
        cmocka_unit_test(test_client_vanishes_after_connecting),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
