/* fuzz_dtls_server: a DTLS server fed arbitrary datagrams through the public API
 * (in-memory network -> sn_udp_server -> sn_dtls_server_take_connection -> sn_dtls_peer_poll),
 * run like the Godot seed server.
 *
 * Control byte:
 *   bit 0  splice: the first datagram is a ClientHello template; the harness sends it, reads the
 *          HelloVerifyRequest the server answers with, puts that (valid) cookie into the
 *          template and sends it again, so the rest of the input reaches OpenSSL's handshake
 *          state machine behind a HANDSHAKING peer instead of stopping at the cookie check.
 *   bits 1-2  number of source addresses (1..4); datagram i comes from source i % n.
 *   bit 3  small MTU (512, the floor) for the peers.
 * Then datagrams as in fuzz_common.h. No sockets carry them (fuzz_common.h): each datagram is
 * in the server's queue when it is polled, so one step handles it. */
#include "fuzz_common.h"
#include "dtls_internal.h" /* sn_dtls_peer_has_input */
#include "test_dtls_server.h"

enum { SOURCES = 4, MAX_PEERS = 16 };

static sn_udp_server *udp;
static sn_dtls_server *dtls;
static sn_test_addr server_addr;
static sn_test_addr sources[SOURCES];
static sn_dtls_peer *peers[MAX_PEERS];
static int npeers;

static void setup(void)
{
    fuzz_platform_init();
    /* One socket, bound here, never connected or closed: its name can be cached. */
    sn_test_net_cache_names(true);
    sn_tls_options *opts = fuzz_server_options();
    udp = sn_udp_server_new();
    dtls = sn_dtls_server_new();
    FUZZ_CHECK(sn_udp_server_listen(udp, 0, "127.0.0.1") == SN_OK);
    FUZZ_CHECK(sn_dtls_server_setup(dtls, opts) == SN_OK);
    sn_udp_server_set_max_pending_connections(udp, 64);
    server_addr = fuzz_addr(1, sn_udp_server_get_local_port(udp));
    sn_tls_options_free(opts); /* the server keeps its own reference */
    for (int i = 0; i < SOURCES; i++)
        sources[i] = fuzz_addr(1 + i, 40000 + i);
}

/* A taken peer that was not kept: a cookie exchange or a refusal, with its reason. */
static void check_dropped(sn_dtls_peer *p, void *user)
{
    (void)user;
    sn_dtls_status st = sn_dtls_peer_get_status(p);
    FUZZ_CHECK(st == SN_DTLS_STATUS_HANDSHAKING || st == SN_DTLS_STATUS_ERROR);
    FUZZ_CHECK(st == SN_DTLS_STATUS_HANDSHAKING || *sn_dtls_peer_get_error_message(p));
}

/* One frame of the seed server: poll, take every new connection, poll every peer. */
static void server_step(void)
{
    sn_test_dtls_server_step(udp, dtls, peers, &npeers, MAX_PEERS, check_dropped, NULL);
    for (int i = 0; i < npeers; i++) {
        sn_dtls_status st = sn_dtls_peer_get_status(peers[i]);
        FUZZ_CHECK(st <= SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH);
        static uint8_t buf[2048];
        size_t len;
        while (sn_dtls_peer_get_packet(peers[i], buf, sizeof buf, &len) == SN_OK)
            sn_dtls_peer_put_packet(peers[i], buf, len);
    }
}

/* Drops what the server said to the sources (nobody reads it but the cookie exchange, which
 * takes it first). Left queued, it would make every later read of the in-memory network look
 * up the server socket's address (two system calls) only to find nothing for it. */
static void forget_answers(void)
{
    uint8_t buf[1];
    for (int k = 0; k < SOURCES; k++)
        while (sn_test_net_take(&sources[k], buf, sizeof buf, NULL) >= 0) {
        }
}

/* Whether a server step has anything to act on: a datagram on its way to the server, a
 * connection waiting to be taken, or input queued for (or buffered in) a peer, or a peer whose
 * session is still working through what it holds (OpenSSL may take several steps, without
 * reading, over a malformed record). Without any, a step changes nothing (the clock is
 * manual). */
static bool something_pending(void)
{
    if (sn_test_net_queued_to(&server_addr) > 0 || sn_udp_server_is_connection_available(udp))
        return true;
    for (int i = 0; i < npeers; i++)
        if (sn_dtls_peer_has_input(peers[i])) return true;
    return false;
}

static void send_from(int k, const uint8_t *d, size_t len)
{
    sn_test_net_inject(&sources[k], &server_addr, d, len);
}

/* Sends the template, reads the HelloVerifyRequest and sends the template with its cookie. */
static void cookie_exchange(const uint8_t *ch, size_t len)
{
    send_from(0, ch, len);
    server_step();
    uint8_t buf[2048], spliced[4096];
    long n;
    while ((n = sn_test_net_take(&sources[0], buf, sizeof buf, NULL)) >= 0) {
        const uint8_t *cookie;
        size_t cookie_len;
        if (!fuzz_hvr_cookie(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf, &cookie,
                             &cookie_len))
            continue;
        size_t m = fuzz_splice_cookie(ch, len, cookie, cookie_len, spliced, sizeof spliced);
        if (m) send_from(0, spliced, m);
        server_step(); /* the HANDSHAKING peer exists before the rest of the input */
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!udp) setup();
    fuzz_reader r = {data, data + size};
    uint8_t ctl;
    if (!fuzz_u8(&r, &ctl)) return 0;
    int nsrc = 1 + ((ctl >> 1) & 3);
    sn_dtls_settings s;
    sn_dtls_default_settings(&s);
    if (ctl & 8) s.mtu = 512;
    FUZZ_CHECK(sn_dtls_server_set_settings(dtls, &s) == SN_OK);

    const uint8_t *d;
    size_t len;
    if ((ctl & 1) && fuzz_datagram(&r, &d, &len)) cookie_exchange(d, len);
    forget_answers();
    for (int i = 0; fuzz_datagram(&r, &d, &len); i++) {
        for (int k = 0; len == 0 && k < 64 && something_pending(); k++)
            server_step(); /* settle what earlier datagrams left (see the client) */
        sn_dtls_status before[MAX_PEERS];
        int n_before = npeers;
        for (int k = 0; k < npeers; k++)
            before[k] = sn_dtls_peer_get_status(peers[k]);
        send_from(i % nsrc, d, len);
        server_step();
        forget_answers();
        /* No DTLS record is empty: an empty datagram (anyone can spoof one) changes nothing. */
        if (len == 0) {
            FUZZ_CHECK(npeers == n_before);
            for (int k = 0; k < npeers; k++)
                FUZZ_CHECK(sn_dtls_peer_get_status(peers[k]) == before[k]);
        }
    }
    server_step();
    sn_udp_server_stats st;
    /* Everything sent to the server was read: nothing is lost on the way. */
    FUZZ_CHECK(sn_test_net_queued_to(&server_addr) == 0);

    for (int i = 0; i < npeers; i++)
        sn_dtls_peer_free(peers[i]);
    npeers = 0;
    while (sn_udp_server_is_connection_available(udp))
        sn_udp_peer_free(sn_udp_server_take_connection(udp));
    sn_udp_server_get_stats(udp, &st);
    FUZZ_CHECK(st.taken_now == 0 && st.pending_now == 0);
    sn_test_net_reset();   /* what the server said to the sources */
    static int debug = -1; /* getenv once, not per input */
    if (debug < 0) debug = getenv("FUZZ_DEBUG") != NULL;
    if (debug) {
        sn_dtls_server_stats ds;
        sn_dtls_server_get_stats(dtls, &ds);
        fprintf(stderr, "hellos %llu cookies_sent %llu rejected %llu started %llu malformed %llu\n",
                (unsigned long long)ds.hellos_received, (unsigned long long)ds.cookies_sent,
                (unsigned long long)ds.cookies_rejected, (unsigned long long)ds.handshakes_started,
                (unsigned long long)ds.malformed_dropped);
    }
    return 0;
}
