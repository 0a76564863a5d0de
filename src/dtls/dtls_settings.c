/* The DTLS layer's settings: their defaults (the one source for every layer above) and limits. */
#include "dtls_internal.h"

void sn_dtls_default_settings(sn_dtls_settings *out)
{
    if (!out) return;
    out->mtu = 1200;
    out->retransmit_initial_ms = 1000;
    out->handshake_timeout_ms = 30000;
    out->cookie_lifetime_ms = 60000;
    out->max_queued_packets = 1024;
    out->max_half_open = 256;
    out->max_half_open_per_source = 64;
}

bool sn_dtls_settings_valid(const sn_dtls_settings *s)
{
    return s && s->mtu >= 512 && s->mtu <= 65507 && s->retransmit_initial_ms >= 10 &&
           s->retransmit_initial_ms <= 60000 && s->handshake_timeout_ms >= 100 &&
           s->cookie_lifetime_ms >= 1000 && s->max_queued_packets >= 1 && s->max_half_open >= 0 &&
           s->max_half_open_per_source >= 0;
}

uint64_t sn_dtls_now_ms(void)
{
    return sn_now_ms();
}
