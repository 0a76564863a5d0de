/* Keepalives: application records with a reserved 13-byte form (docs/host.md), sent when a
 * peer has been quiet, answered with a pong, and timed for the RTT. They never reach the
 * program. */
#include "host_internal.h"

#include <string.h>

static const uint8_t ka_magic[4] = {0xFF, 'S', 'N', 'K'};

uint64_t sn_host_connected_wake(const sn_host *h, sn_host_peer *p, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    if (h->cfg.idle_timeout_ms > 0)
        next = sn_dtls_peer_get_last_packet_time_ms(p->dtls) + (uint64_t)h->cfg.idle_timeout_ms;
    if (p->keepalive_ms > 0) {
        uint64_t ka = (uint64_t)p->keepalive_ms;
        next = sn_host_min_u64(next, p->last_send_ms + ka);
        next = sn_host_min_u64(next, p->last_ping_ms + ka * KA_RTT_FACTOR);
    }
    int t = sn_dtls_peer_next_timeout_ms(p->dtls);
    /* A connected session rarely has a timer (a final flight to resend); never spin on one. */
    if (t >= 0) next = sn_host_min_u64(next, now + (uint64_t)(t < 10 ? 10 : t));
    return next;
}

void sn_host_send_ping(sn_host *h, sn_host_peer *p, uint64_t now)
{
    uint8_t b[KA_LEN];
    memcpy(b, ka_magic, 4);
    b[4] = KA_PING;
    uint64_t ts = sn_clock_now_us();
    for (int i = 0; i < 8; i++)
        b[5 + i] = (uint8_t)(ts >> (56 - 8 * i));
    if (sn_dtls_peer_put_packet(p->dtls, b, sizeof b) == SN_OK) {
        p->last_send_ms = p->last_ping_ms = now;
        h->st.keepalives_sent++;
    } else {
        /* Busy socket: try again at the next interval rather than at once, which would spin. */
        p->last_send_ms = p->last_ping_ms = now;
        sn_host_send_failed(h, p);
    }
}

void sn_host_on_keepalive(sn_host *h, sn_host_peer *p, const uint8_t *b)
{
    h->st.keepalives_received++;
    if (b[4] == KA_PING) {
        if (p->state != PS_CONNECTED) return;
        uint8_t pong[KA_LEN];
        memcpy(pong, b, KA_LEN);
        pong[4] = KA_PONG;
        if (sn_dtls_peer_put_packet(p->dtls, pong, sizeof pong) == SN_OK) {
            p->last_send_ms = sn_now_ms();
            h->st.keepalives_sent++;
        } else {
            sn_host_send_failed(h, p);
        }
        return;
    }
    uint64_t ts = 0;
    for (int i = 0; i < 8; i++)
        ts = (ts << 8) | b[5 + i];
    uint64_t t = sn_clock_now_us();
    if (ts > t) return; /* not ours */
    double sample = (double)(t - ts) / 1000.0;
    if (p->srtt_ms < 0) {
        p->srtt_ms = sample;
        p->rttvar_ms = sample / 2;
    } else { /* RFC 6298 smoothing */
        double dev = sample > p->srtt_ms ? sample - p->srtt_ms : p->srtt_ms - sample;
        p->rttvar_ms = 0.75 * p->rttvar_ms + 0.25 * dev;
        p->srtt_ms = 0.875 * p->srtt_ms + 0.125 * sample;
    }
}

bool sn_host_is_keepalive(const uint8_t *b, size_t len)
{
    return len == KA_LEN && memcmp(b, ka_magic, 4) == 0 && (b[4] == KA_PING || b[4] == KA_PONG);
}
