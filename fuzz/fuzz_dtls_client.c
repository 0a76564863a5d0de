/* fuzz_dtls_client: a DTLS client (sn_dtls_peer over a connected sn_udp_peer) fed arbitrary
 * server flights from a fake server address on the in-memory network (fuzz_common.h).
 *
 * Control byte:
 *   bit 0  verify against a trusted certificate (the harness's own) instead of verifying nothing
 *          (client_unsafe(NULL) lets a fuzzed certificate through to the key exchange);
 *   bit 1  small MTU (512, the floor);
 *   bit 2  after the input, try to send and read application data.
 * Then datagrams as in fuzz_common.h; each goes to the client, which is polled after each. */
#include "fuzz_common.h"
#include "dtls_internal.h" /* sn_dtls_peer_has_input */

enum { SERVER_PORT = 4433 }; /* nothing is bound there: the harness plays the server */

static sn_tls_options *unsafe_opts, *trusting_opts;
static sn_test_addr server_addr;

static void setup(void)
{
    fuzz_platform_init();
    /* The client's socket is opened and connected at the start of an input, before its first
     * send, and closed at the end, after which the network is reset: the names can be cached. */
    sn_test_net_cache_names(true);
    server_addr = fuzz_addr(1, SERVER_PORT);
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    unsafe_opts = sn_tls_options_client_unsafe(NULL);
    trusting_opts = cert ? sn_tls_options_client(cert, NULL) : NULL;
    FUZZ_CHECK(unsafe_opts && trusting_opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
}

/* Drops what the client said (nobody plays it back). Not sn_test_net_reset: that would also
 * forget the socket names the network caches (see setup). */
static void forget_client_output(void)
{
    uint8_t buf[1];
    while (sn_test_net_take(&server_addr, buf, sizeof buf, NULL) >= 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!unsafe_opts) setup();
    static int debug = -1;
    if (debug < 0) debug = getenv("FUZZ_DEBUG") != NULL;
    fuzz_reader r = {data, data + size};
    uint8_t ctl;
    if (!fuzz_u8(&r, &ctl)) return 0;

    sn_udp_peer *u = sn_udp_peer_new();
    FUZZ_CHECK(u && sn_udp_peer_connect_to_host(u, "127.0.0.1", SERVER_PORT) == SN_OK);
    sn_test_addr client_addr = fuzz_addr(1, sn_udp_peer_get_local_port(u));
    sn_dtls_peer *c = sn_dtls_peer_new();
    FUZZ_CHECK(c);
    sn_dtls_settings s;
    sn_dtls_default_settings(&s);
    if (ctl & 2) s.mtu = 512;
    FUZZ_CHECK(sn_dtls_peer_set_settings(c, &s) == SN_OK);
    FUZZ_CHECK(sn_dtls_peer_connect_to_peer(c, u, "localhost",
                                            (ctl & 1) ? trusting_opts : unsafe_opts) == SN_OK);
    FUZZ_CHECK(sn_dtls_peer_get_status(c) == SN_DTLS_STATUS_HANDSHAKING);

    const uint8_t *d;
    size_t len;
    while (fuzz_datagram(&r, &d, &len)) {
        forget_client_output();
        /* One poll does not always finish with what an earlier (malformed) datagram left in
         * the TLS library's buffers: settle first, so that `before` is the state this datagram
         * meets: OpenSSL may need several steps, without reading, to work through a malformed
         * record it holds (a bogus ChangeCipherSpec took four). With nothing left (no datagram
         * queued, nothing buffered, the session waiting for input) a poll has nothing to act on
         * (the clock is manual): no settling then. */
        for (int k = 0; len == 0 && k < 64 && sn_dtls_peer_has_input(c); k++)
            sn_dtls_peer_poll(c);
        sn_dtls_status before = sn_dtls_peer_get_status(c);
        if (!sn_test_net_inject(&server_addr, &client_addr, d, len)) continue;
        sn_dtls_peer_poll(c);
        sn_dtls_status st = sn_dtls_peer_get_status(c);
        FUZZ_CHECK(st <= SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH);
        if (st == SN_DTLS_STATUS_ERROR || st == SN_DTLS_STATUS_ERROR_HOSTNAME_MISMATCH)
            FUZZ_CHECK(*sn_dtls_peer_get_error_message(c));
        if (debug)
            fprintf(stderr, "datagram %zu bytes: status %d -> %d %s\n", len, (int)before, (int)st,
                    sn_dtls_peer_get_error_message(c));
        /* No DTLS record is empty: an empty datagram (anyone can spoof one) changes nothing. */
        if (len == 0) FUZZ_CHECK(st == before);
    }
    if (ctl & 4) {
        static const char msg[] = "The answer is... 42!";
        sn_err e = sn_dtls_peer_put_packet(c, msg, sizeof msg - 1);
        FUZZ_CHECK(e == SN_OK || e == SN_ERR_UNCONFIGURED || e == SN_ERR_BUSY ||
                   e == SN_ERR_CONNECTION_ERROR);
        uint8_t buf[2048];
        while (sn_dtls_peer_get_packet(c, buf, sizeof buf, &len) == SN_OK) {
        }
        (void)sn_dtls_peer_get_max_packet_size(c);
        (void)sn_dtls_peer_get_cipher(c);
    }
    sn_dtls_peer_free(c);
    sn_test_net_reset();
    return 0;
}
