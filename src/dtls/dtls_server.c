/* sn_dtls_server: Godot's DTLSServer. Answers cookie-less ClientHellos without any TLS state
 * and builds a session only for a ClientHello that carries a valid cookie. */
#include "dtls_internal.h"

#include <string.h>

struct sn_dtls_server {
    sn_tls_config *config;   /* shared by every peer taken; NULL until setup */
    sn_dtls_cookie_jar *jar; /* shared with the peers, for ClientHellos on their address */
    sn_dtls_settings settings;
    sn_dtls_server_stats stats;
    bool shared_secret; /* the program set the cookie secret (kept across setup) */
    uint8_t secret[SN_DTLS_SECRET_LEN];
    sn_dtls_admit_fn admit; /* set by a host, which keeps its own table; NULL: `half` */
    void *admit_user;
    sn_dtls_half_table *half; /* the half-open peers taken (shared with them) */
};

void sn_dtls_server_set_admit(sn_dtls_server *s, sn_dtls_admit_fn fn, void *user)
{
    if (!s) return;
    s->admit = fn;
    s->admit_user = user;
}

sn_dtls_server *sn_dtls_server_new(void)
{
    sn_dtls_server *s = sn_calloc(1, sizeof *s);
    if (!s || !(s->half = sn_dtls_half_new())) {
        sn_free(s);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    sn_dtls_default_settings(&s->settings);
    sn_dtls_half_set_limits(s->half, s->settings.max_half_open,
                            s->settings.max_half_open_per_source);
    return s;
}

void sn_dtls_server_free(sn_dtls_server *s)
{
    if (!s) return;
    sn_tls_backend_get()->config_unref(s->config);
    sn_dtls_jar_unref(s->jar);
    memset(s->secret, 0, sizeof s->secret);
    sn_dtls_half_unref(s->half);
    sn_free(s);
}

sn_err sn_dtls_server_set_cookie_secret(sn_dtls_server *s, const uint8_t *secret, size_t len)
{
    if (!s || !secret) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_cookie_secret: NULL argument");
    if (len != SN_DTLS_SECRET_LEN)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "cookie secret: %zu bytes given; it must be exactly %d", len,
                       SN_DTLS_SECRET_LEN);
    memcpy(s->secret, secret, SN_DTLS_SECRET_LEN);
    s->shared_secret = true;
    if (s->jar) sn_dtls_jar_set_secret(s->jar, secret);
    return SN_OK;
}

sn_err sn_dtls_load_cookie_secret_file(const char *path, uint8_t out[32])
{
    if (!out) return sn_fail(SN_ERR_INVALID_PARAMETER, "load_cookie_secret_file: NULL argument");
    size_t n = 0;
    return sn_secret_file_load(path, "cookie secret", SN_DTLS_SECRET_LEN, 1, true, out, &n);
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
    sn_dtls_cookie_jar *jar = sn_dtls_jar_new(s->settings.cookie_lifetime_ms);
    if (!jar) return sn_fail(SN_FAILED, "cannot create the cookie secret");
    if (s->shared_secret) sn_dtls_jar_set_secret(jar, s->secret);
    const sn_tls_backend *b = sn_tls_backend_get();
    b->config_unref(s->config);
    s->config = b->config_ref(config);
    sn_dtls_jar_unref(s->jar);
    s->jar = jar;
    memset(&s->stats, 0, sizeof s->stats);
    return SN_OK;
}

sn_err sn_dtls_server_set_settings(sn_dtls_server *s, const sn_dtls_settings *settings)
{
    if (!s || !settings) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    if (!sn_dtls_settings_valid(settings))
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "dtls settings out of range (mtu 512..65507, retransmit 10..60000 ms, "
                       "handshake timeout >= 100 ms, cookie lifetime >= 1000 ms, queue >= 1)");
    s->settings = *settings;
    sn_dtls_half_set_limits(s->half, settings->max_half_open, settings->max_half_open_per_source);
    if (s->jar) sn_dtls_jar_set_lifetime(s->jar, settings->cookie_lifetime_ms);
    return SN_OK;
}

void sn_dtls_server_get_settings(const sn_dtls_server *s, sn_dtls_settings *out)
{
    if (s && out) *out = s->settings;
}

void sn_dtls_server_get_stats(const sn_dtls_server *s, sn_dtls_server_stats *out)
{
    if (!s || !out) return;
    *out = s->stats;
    sn_dtls_half_stats(s->half, out);
    out->secret_rotations = s->jar ? sn_dtls_jar_rotations(s->jar) : 0;
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
        if (sn_dtls_jar_check(s->jar, &addr, hello.cookie, hello.cookie_len)) {
            bool room = s->admit ? s->admit(s->admit_user, &addr)
                                 : sn_dtls_half_admit(s->half, &addr, sn_now_ms());
            if (!room) {
                sn_udp_peer_free(udp);
                return sn_dtls_peer_new_failed("no room for another half-open handshake "
                                               "(dropped; the client retransmits)");
            }
            s->stats.handshakes_started++;
            /* The hello's fields point into the queued datagram, which stays queued: the
             * session reads it as its first datagram. */
            sn_dtls_peer *p = sn_dtls_peer_new_server(s->config, &s->settings, udp, &hello, s->jar);
            if (!s->admit && p && sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING)
                sn_dtls_peer_join_half(p, s->half, &addr);
            return p;
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
    if (sn_dtls_send_hello_verify(s->jar, udp, &addr, &last)) s->stats.cookies_sent++;
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
