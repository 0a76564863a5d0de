/* Helpers shared by the TLS stream tests (header-only; included by tests/unit/tls/test_tls_*.c and
 * tests/system/test_tls_*.c). Certificates come from the `openssl` command in a temp dir, so the
 * tests depend on nothing but the stream itself; keys and certificates are then loaded through the
 * public API. */
#ifndef SN_TEST_TLS_UTIL_H
#define SN_TEST_TLS_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sealnet/sealnet.h>

#include "testutil.h"
#include "backend.h"

typedef struct tls_certs {
    char *dir;
    char *key_path, *cert_path;   /* CN=localhost, SAN DNS:localhost, IP:127.0.0.1 */
    char *other_key, *other_cert; /* a second, unrelated self-signed CN=localhost */
    sn_crypto_key *key;
    sn_x509_cert *cert;
    sn_x509_cert *other;
    sn_tls_options *server; /* key + cert */
    sn_tls_options *client; /* trusts cert */
} tls_certs;

static inline bool tls_make_cert(const char *dir, const char *name)
{
    return sn_test_sh("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                      "-nodes -subj /CN=localhost "
                      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 "
                      "-keyout %s.key -out %s.crt >/dev/null 2>&1",
                      dir, name, name) == 0;
}

/* NULL when the openssl command is missing (the caller skips). */
static inline tls_certs *tls_certs_new(void)
{
    if (!sn_test_have("openssl")) return NULL;
    tls_certs *c = calloc(1, sizeof *c);
    c->dir = sn_test_tmpdir();
    if (!tls_make_cert(c->dir, "server") || !tls_make_cert(c->dir, "other")) {
        fprintf(stderr, "cannot generate certificates with openssl\n");
        abort();
    }
    c->key_path = sn_test_path(c->dir, "server.key");
    c->cert_path = sn_test_path(c->dir, "server.crt");
    c->other_key = sn_test_path(c->dir, "other.key");
    c->other_cert = sn_test_path(c->dir, "other.crt");
    c->key = sn_crypto_key_new();
    c->cert = sn_x509_cert_new();
    c->other = sn_x509_cert_new();
    if (sn_crypto_key_load(c->key, c->key_path, false) != SN_OK ||
        sn_x509_cert_load(c->cert, c->cert_path) != SN_OK ||
        sn_x509_cert_load(c->other, c->other_cert) != SN_OK) {
        fprintf(stderr, "cannot load the certificates: %s\n", sn_last_error_message());
        abort();
    }
    c->server = sn_tls_options_server(c->key, c->cert);
    c->client = sn_tls_options_client(c->cert, NULL);
    if (!c->server || !c->client) {
        fprintf(stderr, "cannot build options: %s\n", sn_last_error_message());
        abort();
    }
    return c;
}

static inline void tls_certs_free(tls_certs *c);

/* The certificates of one test program, made by the cmocka group setup below. NULL when the
 * openssl command is missing. */
static tls_certs *certs;

/* cmocka group setup/teardown. */
static inline int tls_group_setup(void **state)
{
    (void)state;
    certs = tls_certs_new();
    return 0;
}

static inline int tls_group_teardown(void **state)
{
    (void)state;
    tls_certs_free(certs);
    return 0;
}

static inline void tls_certs_free(tls_certs *c)
{
    if (!c) return;
    sn_tls_options_free(c->server);
    sn_tls_options_free(c->client);
    sn_crypto_key_free(c->key);
    sn_x509_cert_free(c->cert);
    sn_x509_cert_free(c->other);
    sn_test_rmtree(c->dir);
    free(c->dir);
    free(c->key_path);
    free(c->cert_path);
    free(c->other_key);
    free(c->other_cert);
    free(c);
}

/* A connected TCP pair on loopback: the client side may still be CONNECTING when returned if
 * `wait_connected` is false. */
typedef struct tcp_pair {
    sn_tcp_server *srv;
    sn_tcp_peer *client, *server_side;
} tcp_pair;

static inline sn_tcp_peer *tls_take(sn_tcp_server *srv)
{
    uint64_t end = sn_test_now_ms() + 3000;
    while (!sn_tcp_server_is_connection_available(srv) && sn_test_now_ms() < end)
        sn_test_sleep_ms(1);
    return sn_tcp_server_take_connection(srv);
}

static inline void tcp_pair_open(tcp_pair *p, bool wait_connected)
{
    p->srv = sn_tcp_server_new();
    if (sn_tcp_server_listen(p->srv, 0, "127.0.0.1") != SN_OK) abort();
    p->client = sn_tcp_peer_new();
    if (sn_tcp_peer_connect_to_host(p->client, "127.0.0.1", sn_tcp_server_get_local_port(p->srv)) !=
        SN_OK)
        abort();
    if (wait_connected) {
        uint64_t end = sn_test_now_ms() + 3000;
        while (sn_tcp_peer_get_status(p->client) == SN_TCP_STATUS_CONNECTING &&
               sn_test_now_ms() < end) {
            sn_tcp_peer_poll(p->client);
            sn_test_sleep_ms(1);
        }
    }
    p->server_side = tls_take(p->srv);
    if (!p->server_side) abort();
}

/* Polls both streams until neither is HANDSHAKING or timeout_ms passes. */
/* Whether this build's TLS backend speaks TLS 1.3 on streams (mbed TLS 2.28 does not): the
 * TLS 1.3 cases then check that the handshake fails cleanly instead. */
static inline bool tls_backend_has_tls13(void)
{
    return (sn_tls_backend_get()->caps & SN_TLS_CAP_TLS13) != 0;
}

static inline void tls_pump_handshake(sn_tls_stream *a, sn_tls_stream *b, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while ((sn_tls_stream_get_status(a) == SN_TLS_STATUS_HANDSHAKING ||
            (b && sn_tls_stream_get_status(b) == SN_TLS_STATUS_HANDSHAKING)) &&
           sn_test_now_ms() < end) {
        sn_tls_stream_poll(a);
        if (b) sn_tls_stream_poll(b);
        sn_test_sleep_ms(1);
    }
}

/* Polls s (and other, when given) until s leaves status `from` or timeout_ms passes. */
static inline sn_tls_status tls_poll_until_not(sn_tls_stream *s, sn_tls_stream *other,
                                               sn_tls_status from, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    while (sn_tls_stream_get_status(s) == from && sn_test_now_ms() < end) {
        sn_tls_stream_poll(s);
        if (other) sn_tls_stream_poll(other);
        sn_test_sleep_ms(1);
    }
    return sn_tls_stream_get_status(s);
}

/* A client and a server stream connected to each other over loopback (handshake pumped). */
typedef struct tls_pair {
    sn_tcp_server *srv;
    sn_tls_stream *client, *server;
} tls_pair;

static inline void tls_pair_open_with(tls_pair *p, const tls_certs *c, const char *name,
                                      const sn_tls_options *client_opts)
{
    tcp_pair t;
    tcp_pair_open(&t, false);
    p->srv = t.srv;
    p->client = sn_tls_stream_new();
    p->server = sn_tls_stream_new();
    if (sn_tls_stream_connect_to_stream(p->client, t.client, name, client_opts) != SN_OK ||
        sn_tls_stream_accept_stream(p->server, t.server_side, c->server) != SN_OK) {
        fprintf(stderr, "cannot start TLS: %s\n", sn_last_error_message());
        abort();
    }
    tls_pump_handshake(p->client, p->server, 5000);
}

static inline void tls_pair_close(tls_pair *p)
{
    sn_tls_stream_free(p->client);
    sn_tls_stream_free(p->server);
    sn_tcp_server_free(p->srv);
}

#endif
