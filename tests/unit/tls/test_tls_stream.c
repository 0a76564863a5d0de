/* sn_tls_stream between a client and a server in this process over loopback TCP: handshake
 * states, verification outcomes, data both ways, close_notify and truncation, parameter and
 * ownership rules, partial writes to a peer that never reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>

#include "backend.h"
#include "core.h"
#include "test_tls_util.h"

/* Reads from the stream (polling it and `other`) until want bytes arrived or timeout. */
static size_t read_n(sn_tls_stream *s, sn_tls_stream *other, void *buf, size_t want, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    size_t got = 0;
    while (got < want && sn_test_now_ms() < end) {
        sn_tls_stream_poll(s);
        if (other) sn_tls_stream_poll(other);
        size_t n = 0;
        if (sn_tls_stream_get_partial_data(s, (uint8_t *)buf + got, want - got, &n) != SN_OK) break;
        got += n;
        if (!n) sn_test_sleep_ms(1);
    }
    return got;
}

static void handshake_and_exchange(void **state)
{
    (void)state;
    tcp_pair t;
    tcp_pair_open(&t, true);
    sn_tls_stream *c = sn_tls_stream_new(), *s = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_DISCONNECTED);
    assert_null(sn_tls_stream_get_stream(c));
    assert_int_equal(sn_tls_stream_accept_stream(s, t.server_side, certs->server), SN_OK);
    assert_ptr_equal(sn_tls_stream_get_stream(s), t.server_side);
    /* The server stays HANDSHAKING while the client has not even started. */
    for (int i = 0; i < 20; i++) {
        sn_tls_stream_poll(s);
        sn_test_sleep_ms(1);
    }
    assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_HANDSHAKING);
    assert_int_equal(sn_tls_stream_connect_to_stream(c, t.client, "localhost", certs->client),
                     SN_OK);
    assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_HANDSHAKING);
    /* accept_stream: HANDSHAKING until the handshake really finished, i.e. until the client's
     * Finished has arrived; the client is CONNECTED first (TLS 1.3). */
    uint64_t end = sn_test_now_ms() + 5000;
    while (sn_tls_stream_get_status(c) != SN_TLS_STATUS_CONNECTED && sn_test_now_ms() < end) {
        sn_tls_stream_poll(s);
        sn_tls_stream_poll(c);
        if (sn_tls_stream_get_status(c) != SN_TLS_STATUS_CONNECTED) sn_test_sleep_ms(1);
    }
    assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_CONNECTED);
    if (tls_backend_has_tls13()) {
        assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_HANDSHAKING);
        assert_int_equal(tls_poll_until_not(s, c, SN_TLS_STATUS_HANDSHAKING, 3000),
                         SN_TLS_STATUS_CONNECTED);
        assert_non_null(strstr(sn_tls_stream_get_protocol_description(c), "TLSv1.3"));
    } else {
        /* TLS 1.2: the server's Finished is the last message, so it was CONNECTED first. */
        assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_CONNECTED);
        assert_non_null(strstr(sn_tls_stream_get_protocol_description(c), "TLSv1.2"));
    }
    assert_string_equal(sn_tls_stream_get_error_message(c), "");
    /* The client can pin the server: it saw exactly the certificate the server holds. */
    char *fp = sn_x509_cert_get_fingerprint_sha256(certs->cert);
    assert_string_equal(sn_tls_stream_get_peer_fingerprint_sha256(c), fp);
    sn_free(fp);
    assert_string_equal(sn_tls_stream_get_peer_fingerprint_sha256(s), "");

    assert_int_equal(sn_tls_stream_put_data(c, "ping", 4), SN_OK);
    uint64_t until = sn_test_now_ms() + 2000;
    while (sn_tls_stream_get_available_bytes(s) < 4 && sn_test_now_ms() < until) {
        sn_tls_stream_poll(s);
        sn_test_sleep_ms(1);
    }
    assert_int_equal(sn_tls_stream_get_available_bytes(s), 4);
    char buf[16] = {0};
    assert_int_equal(sn_tls_stream_get_data(s, buf, 4), SN_OK);
    assert_string_equal(buf, "ping");
    assert_int_equal(sn_tls_stream_get_available_bytes(s), 0);
    size_t n = 99;
    assert_int_equal(sn_tls_stream_get_partial_data(s, buf, sizeof buf, &n), SN_OK);
    assert_int_equal(n, 0);
    size_t sent = 0;
    assert_int_equal(sn_tls_stream_put_partial_data(s, "pong!", 5, &sent), SN_OK);
    assert_int_equal(sent, 5);
    memset(buf, 0, sizeof buf);
    assert_int_equal(sn_tls_stream_get_data(c, buf, 5), SN_OK);
    assert_string_equal(buf, "pong!");
    sn_tls_stream_free(c);
    sn_tls_stream_free(s);
    sn_tcp_server_free(t.srv);
}

/* Godot fails here; sealnet starts the handshake once TCP is up. */
static void connect_while_tcp_connecting(void **state)
{
    (void)state;
    tcp_pair t;
    tcp_pair_open(&t, false);
    sn_tls_stream *c = sn_tls_stream_new(), *s = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_connect_to_stream(c, t.client, "localhost", certs->client),
                     SN_OK);
    assert_int_equal(sn_tls_stream_accept_stream(s, t.server_side, certs->server), SN_OK);
    tls_pump_handshake(c, s, 5000);
    assert_int_equal(sn_tls_stream_get_status(c), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tcp_peer_get_status(sn_tls_stream_get_stream(c)), SN_TCP_STATUS_CONNECTED);
    sn_tls_stream_free(c);
    sn_tls_stream_free(s);
    sn_tcp_server_free(t.srv);

    /* A TCP connect that fails shows as ERROR naming the TCP cause. */
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    int port = sn_tcp_server_get_local_port(srv);
    sn_tcp_server_free(srv); /* nobody listens there now */
    sn_tcp_peer *tcp = sn_tcp_peer_new();
    sn_err e = sn_tcp_peer_connect_to_host(tcp, "127.0.0.1", port);
    c = sn_tls_stream_new();
    if (e == SN_OK) {
        assert_int_equal(sn_tls_stream_connect_to_stream(c, tcp, "localhost", certs->client),
                         SN_OK);
        assert_int_equal(tls_poll_until_not(c, NULL, SN_TLS_STATUS_HANDSHAKING, 3000),
                         SN_TLS_STATUS_ERROR);
        assert_non_null(strstr(sn_tls_stream_get_error_message(c), "refused"));
    } else {
        sn_tcp_peer_free(tcp);
    }
    sn_tls_stream_free(c);
}

typedef struct verify_case {
    const char *what;
    const char *name; /* common name given to connect_to_stream */
    int opts;         /* 0 NULL (system CAs), 1 client(cert), 2 client_unsafe(NULL),
                         3 client_unsafe(cert), 4 client(cert, "localhost"),
                         5 client(other cert), 6 client_unsafe(other cert) */
    sn_tls_status want;
    const char *message; /* part of the client's error message, or NULL */
} verify_case;

static void verification(void **state)
{
    (void)state;
    const verify_case cases[] = {
        {"trusted, right name", "localhost", 1, SN_TLS_STATUS_CONNECTED, NULL},
        {"trusted, IP in SAN", "127.0.0.1", 1, SN_TLS_STATUS_CONNECTED, NULL},
        {"trusted, wrong name", "example.com", 1, SN_TLS_STATUS_ERROR_HOSTNAME_MISMATCH,
         "example.com"},
        {"untrusted, default options", "localhost", 0, SN_TLS_STATUS_ERROR,
         "certificate verify failed"},
        {"untrusted, wrong name: chain first", "example.com", 0, SN_TLS_STATUS_ERROR,
         "certificate verify failed"},
        {"other CA", "localhost", 5, SN_TLS_STATUS_ERROR, "certificate verify failed"},
        {"unsafe, verify nothing", "whatever", 2, SN_TLS_STATUS_CONNECTED, NULL},
        {"unsafe with chain, wrong name", "example.com", 3, SN_TLS_STATUS_CONNECTED, NULL},
        {"unsafe with other chain", "localhost", 6, SN_TLS_STATUS_ERROR,
         "certificate verify failed"},
        {"override wins over the given name", "example.com", 4, SN_TLS_STATUS_CONNECTED, NULL},
    };
    sn_tls_options *opts[7] = {
        NULL,
        sn_tls_options_client(certs->cert, NULL),
        sn_tls_options_client_unsafe(NULL),
        sn_tls_options_client_unsafe(certs->cert),
        sn_tls_options_client(certs->cert, "localhost"),
        sn_tls_options_client(certs->other, NULL),
        sn_tls_options_client_unsafe(certs->other),
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        const verify_case *vc = &cases[i];
        tls_pair p;
        tls_pair_open_with(&p, certs, vc->name, opts[vc->opts]);
        sn_tls_status got = sn_tls_stream_get_status(p.client);
        if (got != vc->want)
            fail_msg("%s: status %d, want %d (%s)", vc->what, got, vc->want,
                     sn_tls_stream_get_error_message(p.client));
        if (vc->message && !strstr(sn_tls_stream_get_error_message(p.client), vc->message))
            fail_msg("%s: message '%s' lacks '%s'", vc->what,
                     sn_tls_stream_get_error_message(p.client), vc->message);
        if (vc->want == SN_TLS_STATUS_CONNECTED) {
            assert_int_equal(sn_tls_stream_get_status(p.server), SN_TLS_STATUS_CONNECTED);
        } else {
            /* The server hears the client's alert and fails too, never CONNECTED. */
            assert_int_equal(tls_poll_until_not(p.server, NULL, SN_TLS_STATUS_HANDSHAKING, 3000),
                             SN_TLS_STATUS_ERROR);
            assert_true(strlen(sn_tls_stream_get_error_message(p.server)) > 0);
            /* The TCP connection underneath is closed. */
            assert_int_equal(sn_tcp_peer_get_status(sn_tls_stream_get_stream(p.client)),
                             SN_TCP_STATUS_NONE);
        }
        tls_pair_close(&p);
    }
    for (size_t i = 0; i < SN_ARRAY_LEN(opts); i++)
        sn_tls_options_free(opts[i]);
}

/* close_notify: DISCONNECTED quietly, and what was sent before it is still read. */
static void close_notify_is_quiet(void **state)
{
    (void)state;
    tls_pair p;
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    assert_int_equal(sn_tls_stream_get_status(p.server), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_put_data(p.client, "last words", 10), SN_OK);
    sn_tls_stream_disconnect_from_stream(p.client);
    assert_int_equal(sn_tls_stream_get_status(p.client), SN_TLS_STATUS_DISCONNECTED);
    assert_int_equal(sn_tls_stream_put_data(p.client, "x", 1), SN_ERR_UNCONFIGURED);
    assert_int_equal(tls_poll_until_not(p.server, NULL, SN_TLS_STATUS_CONNECTED, 3000),
                     SN_TLS_STATUS_DISCONNECTED);
    assert_string_equal(sn_tls_stream_get_error_message(p.server), "");
    char buf[16] = {0};
    size_t n = 0;
    assert_int_equal(sn_tls_stream_get_partial_data(p.server, buf, sizeof buf, &n), SN_OK);
    assert_int_equal(n, 10);
    assert_string_equal(buf, "last words");
    assert_int_equal(sn_tls_stream_get_partial_data(p.server, buf, sizeof buf, &n),
                     SN_ERR_UNCONFIGURED);
    tls_pair_close(&p);

    /* Freeing a connected stream sends close_notify too. */
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    sn_tls_stream_free(p.server);
    p.server = NULL;
    assert_int_equal(tls_poll_until_not(p.client, NULL, SN_TLS_STATUS_CONNECTED, 3000),
                     SN_TLS_STATUS_DISCONNECTED);
    assert_string_equal(sn_tls_stream_get_error_message(p.client), "");
    tls_pair_close(&p);
}

/* A remote that closes TCP without close_notify: DISCONNECTED, and the message says so. */
static void truncation_is_reported(void **state)
{
    (void)state;
    tls_pair p;
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    assert_int_equal(sn_tls_stream_get_status(p.server), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_put_data(p.server, "partial", 7), SN_OK);
    sn_tcp_peer_disconnect_from_host(sn_tls_stream_get_stream(p.server));
    char buf[16] = {0};
    assert_int_equal(read_n(p.client, NULL, buf, 7, 2000), 7);
    assert_string_equal(buf, "partial");
    assert_int_equal(tls_poll_until_not(p.client, NULL, SN_TLS_STATUS_CONNECTED, 3000),
                     SN_TLS_STATUS_DISCONNECTED);
    assert_non_null(strstr(sn_tls_stream_get_error_message(p.client), "truncated"));
    tls_pair_close(&p);

    /* get_data waiting for more reports the end as EOF. */
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    assert_int_equal(sn_tls_stream_put_data(p.server, "abc", 3), SN_OK);
    sn_tcp_peer_disconnect_from_host(sn_tls_stream_get_stream(p.server));
    sn_tcp_peer_set_blocking_timeout_ms(sn_tls_stream_get_stream(p.client), 3000);
    assert_int_equal(sn_tls_stream_get_data(p.client, buf, 10), SN_ERR_FILE_EOF);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(sn_tls_stream_get_status(p.client), SN_TLS_STATUS_DISCONNECTED);
    tls_pair_close(&p);
}

/* With an unsafe client (verification off, so OpenSSL's unenforced verify result reads
 * "self-signed certificate"), failures are still reported as what they are: a server gone
 * without close_notify as truncation, a server's fatal alert as that alert. */
static void unsafe_client_reports_the_real_cause(void **state)
{
    (void)state;
    sn_tls_options *unsafe = sn_tls_options_client_unsafe(NULL);
    tls_pair p;

    /* The server closes TCP without close_notify, as a killed process does. */
    tls_pair_open_with(&p, certs, "localhost", unsafe);
    assert_int_equal(sn_tls_stream_get_status(p.client), SN_TLS_STATUS_CONNECTED);
    sn_tcp_peer_disconnect_from_host(sn_tls_stream_get_stream(p.server));
    tls_poll_until_not(p.client, NULL, SN_TLS_STATUS_CONNECTED, 3000);
    const char *msg = sn_tls_stream_get_error_message(p.client);
    if (!strstr(msg, "truncated") || strstr(msg, "verify"))
        fail_msg("server gone: status %d, message '%s'", sn_tls_stream_get_status(p.client), msg);
    tls_pair_close(&p);

    /* A record the server cannot decrypt draws its fatal bad_record_mac alert. */
    tls_pair_open_with(&p, certs, "localhost", unsafe);
    static const uint8_t forged[5 + 32] = {23, 3, 3, 0, 32, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_int_equal(
        sn_tcp_peer_put_data(sn_tls_stream_get_stream(p.client), forged, sizeof forged), SN_OK);
    assert_int_equal(tls_poll_until_not(p.client, p.server, SN_TLS_STATUS_CONNECTED, 3000),
                     SN_TLS_STATUS_ERROR);
    msg = sn_tls_stream_get_error_message(p.client);
    if (!strstr(msg, "peer sent alert: bad_record_mac"))
        fail_msg("server's alert: message '%s'", msg);
    tls_pair_close(&p);
    sn_tls_options_free(unsafe);
}

/* A client declaring a 128 KiB ClientHello (OpenSSL's own ceiling) is refused with the reason as
 * soon as the message header is in. Before, OpenSSL reserved a buffer of the declared size and
 * waited for the rest, so every such connection held ~130 KiB for the whole handshake timeout
 * (found by fuzz_tls_server). The same with the header split over one-byte records. */
static void oversized_client_hello_refused(void **state)
{
    (void)state;
    sn_tcp_server *srv = sn_tcp_server_new();
    assert_int_equal(sn_tcp_server_listen(srv, 0, "127.0.0.1"), SN_OK);
    for (int split = 0; split < 2; split++) {
        sn_tcp_peer *raw = sn_tcp_peer_new();
        assert_int_equal(
            sn_tcp_peer_connect_to_host(raw, "127.0.0.1", sn_tcp_server_get_local_port(srv)),
            SN_OK);
        sn_tcp_peer *side = tls_take(srv);
        assert_non_null(side);
        sn_tls_stream *s = sn_tls_stream_new();
        assert_int_equal(sn_tls_stream_accept_stream(s, side, certs->server), SN_OK);
        /* A handshake record of 512 bytes opening a ClientHello of 0x020000 bytes. */
        static const uint8_t head[4] = {1, 2, 0, 0};
        uint8_t wire[4 * 6 + 5 + 512] = {0};
        size_t n = 0;
        if (split) {
            for (int i = 0; i < 4; i++) {
                const uint8_t rec[6] = {22, 3, 1, 0, 1, head[i]};
                memcpy(wire + n, rec, sizeof rec);
                n += sizeof rec;
            }
            const uint8_t rec[5] = {22, 3, 1, 2, 0};
            memcpy(wire + n, rec, sizeof rec);
            n += sizeof rec + 512;
        } else {
            const uint8_t rec[5] = {22, 3, 1, 2, 0};
            memcpy(wire, rec, sizeof rec);
            memcpy(wire + 5, head, sizeof head);
            n = 5 + 512;
        }
        uint64_t end = sn_test_now_ms() + 3000;
        while (sn_tcp_peer_get_status(raw) == SN_TCP_STATUS_CONNECTING && sn_test_now_ms() < end) {
            sn_tcp_peer_poll(raw);
            sn_test_sleep_ms(1);
        }
        assert_int_equal(sn_tcp_peer_put_data(raw, wire, n), SN_OK);
        assert_int_equal(tls_poll_until_not(s, NULL, SN_TLS_STATUS_HANDSHAKING, 3000),
                         SN_TLS_STATUS_ERROR);
        /* mbed TLS reads into a fixed 16 KiB buffer and refuses it in its own words. */
        const char *msg = sn_tls_stream_get_error_message(s);
        bool openssl = strcmp(sn_tls_backend_get()->name, "OpenSSL") == 0;
        if (openssl && (!strstr(msg, "131072-byte ClientHello") || !strstr(msg, "limit")))
            fail_msg("split %d: message '%s'", split, msg);
        sn_tls_stream_free(s);
        sn_tcp_peer_free(raw);
    }
    sn_tcp_server_free(srv);
}

static void arguments_and_ownership(void **state)
{
    (void)state;
    sn_tls_stream *s = sn_tls_stream_new();
    /* Every failing call still takes the TCP peer (ASan reports a leak otherwise). */
    assert_int_equal(sn_tls_stream_connect_to_stream(s, NULL, "x", NULL), SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tls_stream_connect_to_stream(NULL, sn_tcp_peer_new(), "x", NULL),
                     SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tls_stream_connect_to_stream(s, sn_tcp_peer_new(), "x", certs->server),
                     SN_ERR_INVALID_PARAMETER);
    assert_non_null(strstr(sn_last_error_message(), "client"));
    assert_int_equal(sn_tls_stream_accept_stream(s, sn_tcp_peer_new(), certs->client),
                     SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tls_stream_accept_stream(s, sn_tcp_peer_new(), NULL),
                     SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tls_stream_connect_to_stream(s, sn_tcp_peer_new(), "x", certs->client),
                     SN_ERR_UNCONFIGURED);
    assert_non_null(strstr(sn_last_error_message(), "not connected"));
    tcp_pair t;
    tcp_pair_open(&t, true);
    /* A verifying client needs a name. */
    assert_int_equal(sn_tls_stream_connect_to_stream(s, t.client, "", certs->client),
                     SN_ERR_INVALID_PARAMETER);
    assert_int_equal(sn_tls_stream_get_status(s), SN_TLS_STATUS_DISCONNECTED);
    /* That client's TCP peer is gone (freed): the server side sees the close. */
    assert_int_equal(sn_tls_stream_accept_stream(s, t.server_side, certs->server), SN_OK);
    assert_int_equal(tls_poll_until_not(s, NULL, SN_TLS_STATUS_HANDSHAKING, 3000),
                     SN_TLS_STATUS_ERROR);
    assert_non_null(strstr(sn_tls_stream_get_error_message(s), "closed"));
    sn_tcp_server_free(t.srv);
    tcp_pair_open(&t, true);
    sn_tls_stream *c = sn_tls_stream_new();
    assert_int_equal(sn_tls_stream_connect_to_stream(c, t.client, "localhost", certs->client),
                     SN_OK);
    assert_int_equal(sn_tls_stream_accept_stream(s, t.server_side, certs->server), SN_OK);
    assert_int_equal(sn_tls_stream_accept_stream(s, sn_tcp_peer_new(), certs->server),
                     SN_ERR_ALREADY_IN_USE);
    size_t n;
    char b[4];
    assert_int_equal(sn_tls_stream_put_partial_data(s, "x", 1, &n), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_tls_stream_get_partial_data(s, b, 4, &n), SN_ERR_UNCONFIGURED);
    assert_int_equal(sn_tls_stream_set_handshake_timeout_ms(s, 1000), SN_OK);
    sn_tls_stream_free(s);
    sn_tls_stream_free(c);
    sn_tcp_server_free(t.srv);
    sn_tls_stream_free(NULL);
    sn_tls_stream_poll(NULL);
    assert_int_equal(sn_tls_stream_get_status(NULL), SN_TLS_STATUS_DISCONNECTED);
}

/* Many small writes arrive complete and in order. */
static void many_small_writes(void **state)
{
    (void)state;
    tls_pair p;
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    enum { WRITES = 3000 };
    size_t total = 0;
    uint8_t msg[16];
    uint8_t *got = malloc(WRITES * 16);
    size_t have = 0;
    for (int i = 0; i < WRITES; i++) {
        size_t len = 1 + (size_t)i % 13;
        for (size_t k = 0; k < len; k++)
            msg[k] = (uint8_t)(total + k);
        assert_int_equal(sn_tls_stream_put_data(p.client, msg, len), SN_OK);
        total += len;
        if (i % 64 == 0) {
            size_t n = 0;
            sn_tls_stream_poll(p.server);
            assert_int_equal(
                sn_tls_stream_get_partial_data(p.server, got + have, WRITES * 16 - have, &n),
                SN_OK);
            have += n;
        }
    }
    have += read_n(p.server, p.client, got + have, total - have, 5000);
    assert_int_equal(have, total);
    for (size_t k = 0; k < total; k++)
        if (got[k] != (uint8_t)k) fail_msg("byte %zu differs", k);
    free(got);
    tls_pair_close(&p);
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 11);
}

/* A peer that never reads: partial writes stop at the kernel's buffers (plus at most one record
 * inside the stream) and return 0 immediately; nothing is lost when the reader comes back. */
static void never_reading_peer(void **state)
{
    (void)state;
    tls_pair p;
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    static uint8_t chunk[100000];
    size_t total = 0;
    int zero_in_a_row = 0;
    long rss0 = sn_test_rss_kib();
    uint64_t t0 = sn_test_now_ms();
    while (zero_in_a_row < 50 && sn_test_now_ms() - t0 < 10000) {
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = pattern(total + k);
        size_t sent = 0;
        uint64_t c0 = sn_test_now_ms();
        assert_int_equal(sn_tls_stream_put_partial_data(p.client, chunk, sizeof chunk, &sent),
                         SN_OK);
        assert_true(sn_test_now_ms() - c0 < 1000); /* never blocks (a blocking call would hang) */
        total += sent;
        zero_in_a_row = sent ? 0 : zero_in_a_row + 1;
        sn_tls_stream_poll(p.client);
    }
    assert_int_equal(zero_in_a_row, 50);
    /* What the stream holds for the socket is visible without I/O: one record at most. */
    size_t unsent = sn_tls_stream_get_unsent_bytes(p.client);
    assert_in_range(unsent, 1, 16384);
    assert_int_equal(sn_tls_stream_get_unsent_bytes(p.server), 0);
    assert_int_equal(sn_tls_stream_get_unsent_bytes(NULL), 0);
    long grew = sn_test_rss_kib() - rss0;
    /* Bounded by the socket buffers, not by what the program tried to write (50 x 100 kB). */
    assert_true(total < 32u * 1024 * 1024);
    assert_true(grew < 16 * 1024);
    /* The reader comes back: every byte reported sent arrives, in order. */
    uint8_t *got = malloc(total);
    size_t have = 0;
    uint64_t end = sn_test_now_ms() + 10000;
    while (have < total && sn_test_now_ms() < end) {
        sn_tls_stream_poll(p.client); /* pushes out the stashed record */
        sn_tls_stream_poll(p.server);
        size_t n = 0;
        assert_int_equal(sn_tls_stream_get_partial_data(p.server, got + have, total - have, &n),
                         SN_OK);
        have += n;
    }
    assert_int_equal(have, total);
    assert_int_equal(sn_tls_stream_get_unsent_bytes(p.client), 0);
    for (size_t k = 0; k < total; k++)
        if (got[k] != pattern(k)) fail_msg("byte %zu differs", k);
    free(got);
    tls_pair_close(&p);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_and_exchange),
        cmocka_unit_test(connect_while_tcp_connecting),
        cmocka_unit_test(verification),
        cmocka_unit_test(close_notify_is_quiet),
        cmocka_unit_test(truncation_is_reported),
        cmocka_unit_test(arguments_and_ownership),
        cmocka_unit_test(many_small_writes),
        cmocka_unit_test(never_reading_peer),
        cmocka_unit_test(unsafe_client_reports_the_real_cause),
        cmocka_unit_test(oversized_client_hello_refused),
    };
    if (!sn_test_have("openssl")) {
        fprintf(stderr, "SKIP: the openssl command is needed to make test certificates\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
