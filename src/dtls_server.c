/* sn_dtls_server: Godot's DTLSServer. Answers cookie-less ClientHellos without any TLS state
 * and builds a session only for a ClientHello that carries a valid cookie. */
#include "dtls_internal.h"

#include <string.h>

struct sn_dtls_server {
    sn_tls_config *config; /* shared by every peer taken; NULL until setup */
    sn_dtls_settings settings;
    sn_dtls_server_stats stats;
    uint8_t secret[SN_DTLS_SECRET_LEN], previous[SN_DTLS_SECRET_LEN];
    bool has_previous;
    uint64_t secret_born_ms;
};

void sn_dtls_default_settings(sn_dtls_settings *out)
{
    if (!out) return;
    out->mtu = 1200;
    out->retransmit_initial_ms = 1000;
    out->handshake_timeout_ms = 30000;
    out->cookie_lifetime_ms = 60000;
    out->max_queued_packets = 1024;
}

bool sn_dtls_settings_valid(const sn_dtls_settings *s)
{
    return s && s->mtu >= 256 && s->mtu <= 65507 && s->retransmit_initial_ms >= 10 &&
           s->retransmit_initial_ms <= 60000 && s->handshake_timeout_ms >= 100 &&
           s->cookie_lifetime_ms >= 1000 && s->max_queued_packets >= 1;
}

uint64_t sn_dtls_now_ms(void)
{
    return sn_now_ms();
}

sn_dtls_server *sn_dtls_server_new(void)
{
    sn_dtls_server *s = sn_calloc(1, sizeof *s);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    sn_dtls_default_settings(&s->settings);
    return s;
}

void sn_dtls_server_free(sn_dtls_server *s)
{
    if (!s) return;
    sn_tls_backend_get()->config_unref(s->config);
    /* The secret is what makes cookies unforgeable: do not leave it in freed memory. */
    memset(s, 0, sizeof *s);
    free(s);
}

static sn_err new_secret(sn_dtls_server *s)
{
    if (s->config) {
        memcpy(s->previous, s->secret, sizeof s->secret);
        s->has_previous = true;
    }
    s->secret_born_ms = sn_now_ms();
    s->stats.secret_rotations++;
    return sn_tls_backend_get()->random_bytes(s->secret, sizeof s->secret);
}

sn_err sn_dtls_server_setup(sn_dtls_server *s, const sn_tls_options *server_options)
{
    if (!s || !server_options)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "dtls server setup: NULL argument");
    if (!sn_tls_options_is_server(server_options))
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "dtls server setup needs server options (sn_tls_options_server)");
    sn_tls_config *config = sn_tls_options_get_config(server_options, true);
    if (!config) return SN_FAILED; /* message already recorded */
    const sn_tls_backend *b = sn_tls_backend_get();
    b->config_unref(s->config);
    s->config = b->config_ref(config);
    s->has_previous = false;
    memset(&s->stats, 0, sizeof s->stats);
    sn_err e = new_secret(s);
    s->has_previous = false;
    return e;
}

sn_err sn_dtls_server_set_settings(sn_dtls_server *s, const sn_dtls_settings *settings)
{
    if (!s || !settings) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    if (!sn_dtls_settings_valid(settings))
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "dtls settings out of range (mtu 256..65507, retransmit 10..60000 ms, "
                       "handshake timeout >= 100 ms, cookie lifetime >= 1000 ms, queue >= 1)");
    s->settings = *settings;
    return SN_OK;
}

void sn_dtls_server_get_settings(const sn_dtls_server *s, sn_dtls_settings *out)
{
    if (s && out) *out = s->settings;
}

void sn_dtls_server_get_stats(const sn_dtls_server *s, sn_dtls_server_stats *out)
{
    if (s && out) *out = s->stats;
}

/* Secrets rotate every cookie lifetime; a cookie made under the previous one still passes, so
 * no client loses its handshake to a rotation. */
static void maybe_rotate(sn_dtls_server *s, uint64_t now)
{
    if (now - s->secret_born_ms >= (uint64_t)s->settings.cookie_lifetime_ms) new_secret(s);
}

static bool cookie_ok(sn_dtls_server *s, uint32_t now_s, const sn_addr *addr, const uint8_t *c,
                      size_t len)
{
    uint32_t life = (uint32_t)((s->settings.cookie_lifetime_ms + 999) / 1000);
    return sn_dtls_check_cookie(s->secret, now_s, life, addr, c, len) ||
           (s->has_previous && sn_dtls_check_cookie(s->previous, now_s, life, addr, c, len));
}

sn_dtls_peer *sn_dtls_server_take_connection(sn_dtls_server *s, sn_udp_peer *udp)
{
    if (!s || !udp) {
        sn_udp_peer_free(udp);
        sn_fail(SN_ERR_INVALID_PARAMETER, "dtls take_connection: NULL argument");
        return sn_dtls_peer_new_failed("NULL argument to take_connection");
    }
    if (!s->config) {
        sn_udp_peer_free(udp);
        sn_fail(SN_ERR_UNCONFIGURED, "dtls server is not set up");
        return sn_dtls_peer_new_failed("dtls server is not set up");
    }
    sn_addr addr;
    if (!sn_udp_peer_remote(udp, &addr)) {
        sn_udp_peer_free(udp);
        return sn_dtls_peer_new_failed("udp peer has no remote address");
    }
    uint64_t now = sn_now_ms();
    maybe_rotate(s, now);
    uint32_t now_s = (uint32_t)(now / 1000);

    /* Look through what the address sent for a ClientHello with a valid cookie; remember the
     * last cookie-less one to answer. Everything before the good one is dropped. */
    sn_dtls_hello hello, last;
    bool have_last = false;
    const uint8_t *d;
    size_t len;
    while ((d = sn_udp_peer_peek(udp, &len))) {
        if (!sn_dtls_parse_client_hello(d, len, &hello)) {
            s->stats.malformed_dropped++;
            sn_udp_peer_drop(udp);
            continue;
        }
        s->stats.hellos_received++;
        if (hello.cookie_len == 0) {
            last = hello;
            have_last = true;
            sn_udp_peer_drop(udp);
            continue;
        }
        if (cookie_ok(s, now_s, &addr, hello.cookie, hello.cookie_len)) {
            uint8_t cookie[SN_DTLS_COOKIE_LEN];
            memcpy(cookie, hello.cookie, sizeof cookie);
            s->stats.handshakes_started++;
            return sn_dtls_peer_new_server(s->config, &s->settings, udp, cookie, sizeof cookie);
        }
        /* Wrong, forged or expired: answer with a fresh cookie, as RFC 6347 4.2.1 suggests. */
        s->stats.cookies_rejected++;
        last = hello;
        have_last = true;
        sn_udp_peer_drop(udp);
    }
    if (!have_last) {
        sn_udp_peer_free(udp);
        return sn_dtls_peer_new_failed("no DTLS ClientHello from this address (dropped)");
    }
    uint8_t cookie[SN_DTLS_COOKIE_LEN], hvr[SN_DTLS_HVR_MAX];
    sn_dtls_make_cookie(s->secret, now_s, &addr, cookie);
    size_t n = sn_dtls_build_hello_verify(&last, cookie, sizeof cookie, hvr);
    if (sn_udp_peer_put_packet(udp, hvr, n) == SN_OK) s->stats.cookies_sent++;
    /* Freeing unregisters the address: the retry with the cookie opens a new connection. */
    sn_udp_peer_free(udp);
    return sn_dtls_peer_new_failed("HelloVerifyRequest sent; the client retries with a cookie");
}

void sn_dtls_server_refuse(sn_udp_peer *udp)
{
    const uint8_t *d;
    size_t len;
    sn_dtls_hello hello;
    bool answered = false;
    while (!answered && (d = sn_udp_peer_peek(udp, &len))) {
        if (sn_dtls_parse_client_hello(d, len, &hello)) {
            uint8_t alert[15];
            size_t n = sn_dtls_build_alert(&hello, 40 /* handshake_failure */, alert);
            sn_udp_peer_put_packet(udp, alert, n);
            answered = true;
        }
        sn_udp_peer_drop(udp);
    }
    sn_udp_peer_free(udp);
}
