/* fuzz_dtls_server: a DTLS server fed arbitrary datagrams through the public API
 * (loopback socket -> sn_udp_server -> sn_dtls_server_take_connection -> sn_dtls_peer_poll),
 * run like the Godot seed server.
 *
 * Control byte:
 *   bit 0  splice: the first datagram is a ClientHello template; the harness sends it, reads the
 *          HelloVerifyRequest the server answers with, puts that (valid) cookie into the
 *          template and sends it again, so the rest of the input reaches OpenSSL's handshake
 *          state machine behind a HANDSHAKING peer instead of stopping at the cookie check.
 *   bits 1-2  number of source sockets (1..4); datagram i leaves from socket i % n.
 *   bit 3  small MTU (512, the floor) for the peers.
 * Then datagrams as in fuzz_common.h. */
#include "fuzz_common.h"

enum { SOURCES = 4, MAX_PEERS = 16 };

static sn_udp_server *udp;
static sn_dtls_server *dtls;
static int port;
static int sources[SOURCES];
static sn_dtls_peer *peers[MAX_PEERS];
static int npeers;
static uint64_t sent_total;

static void setup(void)
{
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    sn_tls_options *opts = cert ? sn_tls_options_server(key, cert) : NULL;
    FUZZ_CHECK(opts);
    udp = sn_udp_server_new();
    dtls = sn_dtls_server_new();
    FUZZ_CHECK(sn_udp_server_listen(udp, 0, "127.0.0.1") == SN_OK);
    FUZZ_CHECK(sn_dtls_server_setup(dtls, opts) == SN_OK);
    sn_udp_server_set_max_pending_connections(udp, 64);
    port = sn_udp_server_get_local_port(udp);
    /* The server keeps its own references: everything else can go. */
    sn_tls_options_free(opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    for (int i = 0; i < SOURCES; i++) {
        char ip[16];
        snprintf(ip, sizeof ip, "127.0.0.%d", 1 + i);
        sources[i] = fuzz_udp_socket(ip, 0);
        FUZZ_CHECK(sources[i] >= 0);
    }
}

/* One frame of the seed server: poll, take every new connection, poll every peer. */
static void server_step(void)
{
    FUZZ_CHECK(sn_udp_server_poll(udp) == SN_OK);
    while (sn_udp_server_is_connection_available(udp)) {
        sn_dtls_peer *p = sn_dtls_server_take_connection(dtls, sn_udp_server_take_connection(udp));
        FUZZ_CHECK(p);
        sn_dtls_status st = sn_dtls_peer_get_status(p);
        FUZZ_CHECK(st == SN_DTLS_STATUS_HANDSHAKING || st == SN_DTLS_STATUS_ERROR);
        FUZZ_CHECK(st == SN_DTLS_STATUS_HANDSHAKING || *sn_dtls_peer_get_error_message(p));
        if (st == SN_DTLS_STATUS_HANDSHAKING && npeers < MAX_PEERS)
            peers[npeers++] = p;
        else
            sn_dtls_peer_free(p);
    }
    for (int i = 0; i < npeers; i++) {
        sn_dtls_peer_poll(peers[i]);
        sn_dtls_status st = sn_dtls_peer_get_status(peers[i]);
        FUZZ_CHECK(st <= SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH);
        uint8_t buf[2048];
        size_t len;
        while (sn_dtls_peer_get_packet(peers[i], buf, sizeof buf, &len) == SN_OK)
            sn_dtls_peer_put_packet(peers[i], buf, len);
    }
}

/* Steps until the UDP server has read everything sent (bounded). */
static void settle(void)
{
    for (int tries = 0; tries < 100; tries++) {
        server_step();
        sn_udp_server_stats st;
        sn_udp_server_get_stats(udp, &st);
        if (st.datagrams_received >= sent_total) return;
        fuzz_wait(sn_udp_server_get_fd(udp), 2);
    }
}

static void send_from(int k, const uint8_t *d, size_t len)
{
    if (fuzz_send_to(sources[k], port, d, len)) sent_total++;
}

/* Sends the template, waits for the HelloVerifyRequest and sends the template with its cookie. */
static void cookie_exchange(const uint8_t *ch, size_t len)
{
    send_from(0, ch, len);
    uint8_t buf[2048], spliced[4096];
    for (int tries = 0; tries < 50; tries++) {
        server_step();
        ssize_t n;
        while ((n = fuzz_recv(sources[0], buf, sizeof buf)) >= 0) {
            const uint8_t *cookie;
            size_t cookie_len;
            if (!fuzz_hvr_cookie(buf, (size_t)n, &cookie, &cookie_len)) continue;
            size_t m = fuzz_splice_cookie(ch, len, cookie, cookie_len, spliced, sizeof spliced);
            if (m) send_from(0, spliced, m);
            settle(); /* the HANDSHAKING peer exists before the rest of the input */
            return;
        }
        /* Everything sent has been read and handled, and the answer (sent synchronously on
         * loopback) is not there: none is coming. */
        sn_udp_server_stats st;
        sn_udp_server_get_stats(udp, &st);
        if (st.datagrams_received >= sent_total) return;
        fuzz_wait(sn_udp_server_get_fd(udp), 1);
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
    for (int i = 0; fuzz_datagram(&r, &d, &len); i++) {
        for (int k = 0; len == 0 && k < 3; k++)
            server_step(); /* settle what earlier datagrams left (see the client) */
        sn_dtls_status before[MAX_PEERS];
        int n_before = npeers;
        for (int k = 0; k < npeers; k++)
            before[k] = sn_dtls_peer_get_status(peers[k]);
        send_from(i % nsrc, d, len);
        server_step();
        /* No DTLS record is empty: an empty datagram (anyone can spoof one) changes nothing. */
        if (len == 0) {
            FUZZ_CHECK(npeers == n_before);
            for (int k = 0; k < npeers; k++)
                FUZZ_CHECK(sn_dtls_peer_get_status(peers[k]) == before[k]);
        }
    }
    settle();
    for (int i = 0; i < SOURCES; i++)
        fuzz_drain(sources[i]);

    for (int i = 0; i < npeers; i++)
        sn_dtls_peer_free(peers[i]);
    npeers = 0;
    while (sn_udp_server_is_connection_available(udp))
        sn_udp_peer_free(sn_udp_server_take_connection(udp));
    sn_udp_server_stats st;
    sn_udp_server_get_stats(udp, &st);
    FUZZ_CHECK(st.taken_now == 0 && st.pending_now == 0);
    if (getenv("FUZZ_DEBUG")) {
        sn_dtls_server_stats ds;
        sn_dtls_server_get_stats(dtls, &ds);
        fprintf(stderr, "hellos %llu cookies_sent %llu rejected %llu started %llu malformed %llu\n",
                (unsigned long long)ds.hellos_received, (unsigned long long)ds.cookies_sent,
                (unsigned long long)ds.cookies_rejected, (unsigned long long)ds.handshakes_started,
                (unsigned long long)ds.malformed_dropped);
    }
    return 0;
}
