/* A host peer's life: its states (handshaking, connected, zombie, dead), what a DTLS poll or a
 * timer changes, failures turned into events, and the public per-peer calls. */
#include "host_internal.h"

#include <stdio.h>
#include <string.h>

uint64_t sn_host_min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- peer state changes ------------------------------------------------------------------ */

void sn_host_count_leave(sn_host *h, sn_host_peer *p)
{
    if (p->state == PS_HANDSHAKING) {
        h->n_handshaking--;
        if (!p->outgoing) {
            h->n_half_open--;
            sn_host_halfopen_remove(h, p);
        }
    } else if (p->state == PS_CONNECTED) {
        h->n_connected--;
    }
}

void sn_host_mark_dead(sn_host *h, sn_host_peer *p)
{
    sn_host_count_leave(h, p);
    p->state = PS_DEAD;
    sn_host_heap_remove(h, p);
    sn_host_deliver_unlink(h, p);
    p->next_dead = h->dead;
    h->dead = p;
}

/* The transport is gone (or going): remaining packets, then one DISCONNECT. */
void sn_host_to_zombie(sn_host *h, sn_host_peer *p, sn_host_disconnect_reason reason,
                       const char *message)
{
    sn_host_count_leave(h, p);
    p->state = PS_ZOMBIE;
    p->fd = -1; /* closed with the UDP peer, which also took it out of the epoll set */
    sn_host_heap_remove(h, p);
    p->reason = reason;
    snprintf(p->message, sizeof p->message, "%s", message ? message : "");
    p->disconnect_pending = true;
    sn_host_deliver_push(h, p);
}

void sn_host_handshake_failed(sn_host *h, sn_host_peer *p, sn_host_disconnect_reason reason,
                              const char *message)
{
    h->st.handshakes_failed++;
    sn_log(SN_LOG_INFO, "host: handshake with %s:%d failed: %s", p->ip, p->port, message);
    if (p->outgoing) {
        sn_host_to_zombie(h, p, reason, message);
    } else {
        /* The program never heard of this peer: no event, just the counter. */
        sn_host_mark_dead(h, p);
    }
}

/* A send that failed for good (the DTLS peer gave up its session): DISCONNECT ERROR with the
 * reason, e.g. "send failed: Operation not permitted". */
void sn_host_send_failed(sn_host *h, sn_host_peer *p)
{
    if (p->state != PS_CONNECTED || sn_dtls_peer_get_status(p->dtls) == SN_DTLS_STATUS_CONNECTED)
        return;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", sn_dtls_peer_get_error_message(p->dtls));
    sn_host_to_zombie(h, p, SN_HOST_DISCONNECT_ERROR, msg);
}

void sn_host_became_connected(sn_host *h, sn_host_peer *p, uint64_t now)
{
    sn_host_count_leave(h, p);
    p->state = PS_CONNECTED;
    h->n_connected++;
    h->st.handshakes_completed++;
    p->connect_pending = true;
    p->last_send_ms = p->last_ping_ms = now;
    sn_host_deliver_push(h, p);
    /* An early ping gives an RTT figure right away. */
    if (p->keepalive_ms > 0) sn_host_send_ping(h, p, now);
    if (p->state == PS_CONNECTED) sn_host_heap_set(h, p, sn_host_connected_wake(h, p, now));
}

/* What a DTLS poll changed. */
void sn_host_after_poll(sn_host *h, sn_host_peer *p, uint64_t now)
{
    sn_dtls_status st = sn_dtls_peer_get_status(p->dtls);
    if (p->state == PS_HANDSHAKING) {
        if (st == SN_DTLS_STATUS_HANDSHAKING) {
            int t = sn_dtls_peer_next_timeout_ms(p->dtls);
            uint64_t when = now + (uint64_t)(t >= 0 ? t : h->cfg.handshake_timeout_ms);
            if (!p->outgoing) when = sn_host_min_u64(when, sn_host_halfopen_deadline(h, p));
            sn_host_heap_set(h, p, when);
            return;
        }
        if (st != SN_DTLS_STATUS_CONNECTED) {
            /* The DTLS client gives up early on ICMP port unreachable; it says so only in its
             * message, so that is what tells REFUSED from other failures. */
            const char *why = sn_dtls_peer_get_error_message(p->dtls);
            sn_host_handshake_failed(h, p,
                                     strncmp(why, "connection refused", 18) == 0
                                         ? SN_HOST_DISCONNECT_REFUSED
                                         : SN_HOST_DISCONNECT_HANDSHAKE_FAILED,
                                     why);
            return;
        }
        sn_host_became_connected(h, p, now);
    }
    if (p->state != PS_CONNECTED) return;
    if (sn_dtls_peer_get_available_packet_count(p->dtls) > 0) sn_host_deliver_push(h, p);
    if (st != SN_DTLS_STATUS_CONNECTED) {
        sn_host_disconnect_reason why =
            sn_dtls_peer_remote_restarted(p->dtls) ? SN_HOST_DISCONNECT_RESTARTED
            : st == SN_DTLS_STATUS_DISCONNECTED    ? SN_HOST_DISCONNECT_CLOSED
                                                   : SN_HOST_DISCONNECT_ERROR;
        sn_host_to_zombie(h, p, why, sn_dtls_peer_get_error_message(p->dtls));
    }
}

/* Adds what the DTLS peer dropped since last time to the host's running sums. */
void sn_host_count_drops(sn_host *h, sn_host_peer *p)
{
    sn_dtls_peer_stats ds;
    sn_dtls_peer_get_stats(p->dtls, &ds);
    h->st.dropped_queue_full += ds.dropped_queue_full - p->seen_queue_full;
    h->st.dropped_malformed += ds.dropped_oversize - p->seen_oversize;
    p->seen_queue_full = ds.dropped_queue_full;
    p->seen_oversize = ds.dropped_oversize;
}

void sn_host_poll_peer(sn_host *h, sn_host_peer *p, uint64_t now)
{
    sn_dtls_peer_poll(p->dtls);
    sn_host_count_drops(h, p);
    sn_host_after_poll(h, p, now);
}

void sn_host_on_timer(sn_host *h, sn_host_peer *p, uint64_t now)
{
    if (p->state == PS_HANDSHAKING) {
        if (!p->outgoing && sn_host_halfopen_deadline(h, p) <= now) {
            /* Only reached before handshake_timeout_ms while the table is under pressure. */
            h->st.half_open_pressure_timeouts++;
            sn_dtls_peer_disconnect_from_peer(p->dtls);
            sn_host_handshake_failed(h, p, SN_HOST_DISCONNECT_HANDSHAKE_FAILED,
                                     "half-open handshake timed out (the server is under "
                                     "pressure)");
            return;
        }
        sn_host_poll_peer(h, p, now); /* retransmission or handshake timeout */
        return;
    }
    if (p->state != PS_CONNECTED) return;
    /* Datagrams not polled yet (the budget ran out) count as life: read them first. */
    if (sn_dtls_peer_has_input(p->dtls)) {
        sn_host_poll_peer(h, p, now);
        if (p->state != PS_CONNECTED) return;
    }
    /* Deadlines as `stamp + interval <= now`: a stamp may be a little later than `now`, taken
     * when this round began, and unsigned subtraction would wrap. */
    if (h->cfg.idle_timeout_ms > 0 &&
        sn_dtls_peer_get_last_packet_time_ms(p->dtls) + (uint64_t)h->cfg.idle_timeout_ms <= now) {
        char msg[96];
        snprintf(msg, sizeof msg, "no packet for %d ms (idle timeout)", h->cfg.idle_timeout_ms);
        h->st.idle_timeouts++;
        sn_dtls_peer_disconnect_from_peer(p->dtls); /* close_notify, in case it still listens */
        sn_host_to_zombie(h, p, SN_HOST_DISCONNECT_TIMEOUT, msg);
        return;
    }
    if (sn_dtls_peer_next_timeout_ms(p->dtls) == 0) {
        sn_host_poll_peer(h, p, now);
        if (p->state != PS_CONNECTED) return;
    }
    if (p->keepalive_ms > 0) {
        uint64_t ka = (uint64_t)p->keepalive_ms;
        if (p->last_send_ms + ka <= now || p->last_ping_ms + ka * KA_RTT_FACTOR <= now)
            sn_host_send_ping(h, p, now);
        if (p->state != PS_CONNECTED) return;
    }
    sn_host_heap_set(h, p, sn_host_connected_wake(h, p, now));
}

/* ---- peers --------------------------------------------------------------------------------- */

sn_host_peer *sn_host_new_peer(sn_host *h, bool outgoing)
{
    if (!sn_host_grow((void **)&h->peers, &h->cap_peers, h->npeers + 1, sizeof *h->peers))
        return NULL;
    sn_host_peer *p = sn_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->host = h;
    p->id = h->next_id++;
    if (h->next_id == 0) h->next_id = 1; /* 2^32 peers later; 0 stays "no peer" */
    if (!sn_host_ids_insert(h, p)) {
        sn_free(p);
        return NULL;
    }
    p->outgoing = outgoing;
    if (outgoing) h->n_outgoing++;
    p->fd = -1;
    p->heap_idx = NO_HEAP;
    p->keepalive_ms = h->cfg.keepalive_interval_ms;
    p->srtt_ms = p->rttvar_ms = -1;
    p->index = h->npeers;
    h->peers[h->npeers++] = p;
    return p;
}

void sn_host_release_peer(sn_host *h, sn_host_peer *p)
{
    if (p->dtls) sn_host_count_drops(h, p);
    sn_dtls_peer_free(p->dtls); /* close_notify when still connected */
    sn_host_ids_remove(h, p);
    if (p->outgoing) h->n_outgoing--;
    size_t i = p->index;
    h->peers[i] = h->peers[--h->npeers];
    h->peers[i]->index = i;
    sn_free(p);
}

void sn_host_free_dead(sn_host *h)
{
    while (h->dead) {
        sn_host_peer *p = h->dead;
        h->dead = p->next_dead;
        sn_host_release_peer(h, p);
    }
}

/* ---- public: peers ------------------------------------------------------------------------- */

sn_err sn_host_peer_send(sn_host_peer *p, const void *data, size_t len)
{
    if (!p || (!data && len)) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    if (p->state != PS_CONNECTED)
        return sn_fail(SN_ERR_UNCONFIGURED, "peer %u is not connected", p->id);
    if (sn_host_is_keepalive(data, len))
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "a 13-byte packet starting with FF 53 4E 4B 01/02 is a reserved "
                       "keepalive (docs/host.md)");
    sn_host *h = p->host;
    sn_err e = sn_dtls_peer_put_packet(p->dtls, data, len);
    if (e == SN_OK) {
        p->last_send_ms = sn_now_ms();
        h->st.packets_sent++;
        h->st.bytes_sent += len;
        return SN_OK;
    }
    if (e == SN_ERR_BUSY) h->st.dropped_send_busy++;
    sn_host_send_failed(h, p); /* a session that died: DISCONNECT ERROR with its reason */
    if (p->state != PS_CONNECTED) return sn_fail(e, "%s", p->message);
    return e;
}

void sn_host_peer_disconnect(sn_host_peer *p)
{
    if (!p || (p->state != PS_HANDSHAKING && p->state != PS_CONNECTED)) return;
    sn_host *h = p->host;
    bool tell = p->outgoing || p->state == PS_CONNECTED;
    sn_dtls_peer_disconnect_from_peer(p->dtls); /* close_notify when connected */
    /* The program is done with this peer: what it has not read yet is dropped. */
    size_t len;
    while (sn_dtls_peer_get_available_packet_count(p->dtls) > 0 &&
           sn_dtls_peer_get_packet(p->dtls, h->rx, sizeof h->rx, &len) == SN_OK) {
    }
    p->connect_pending = false;
    if (!tell) {
        sn_host_mark_dead(h, p);
        return;
    }
    sn_host_to_zombie(h, p, SN_HOST_DISCONNECT_KICKED, "disconnected by this program");
}

uint32_t sn_host_peer_get_id(const sn_host_peer *p)
{
    return p ? p->id : 0;
}

sn_host_peer_state sn_host_peer_get_state(const sn_host_peer *p)
{
    if (!p) return SN_HOST_PEER_DISCONNECTED;
    switch (p->state) {
    case PS_HANDSHAKING:
        return SN_HOST_PEER_HANDSHAKING;
    case PS_CONNECTED:
        return SN_HOST_PEER_CONNECTED;
    default:
        return SN_HOST_PEER_DISCONNECTED;
    }
}

bool sn_host_peer_is_outgoing(const sn_host_peer *p)
{
    return p && p->outgoing;
}

const char *sn_host_peer_get_address(const sn_host_peer *p)
{
    return p ? p->ip : "";
}

int sn_host_peer_get_port(const sn_host_peer *p)
{
    return p ? p->port : 0;
}

uint64_t sn_host_peer_get_last_packet_time_ms(const sn_host_peer *p)
{
    return p && p->dtls ? sn_dtls_peer_get_last_packet_time_ms(p->dtls) : 0;
}

double sn_host_peer_get_rtt_ms(const sn_host_peer *p)
{
    return p ? p->srtt_ms : -1;
}

double sn_host_peer_get_rtt_var_ms(const sn_host_peer *p)
{
    return p ? p->rttvar_ms : -1;
}

void sn_host_peer_set_user_data(sn_host_peer *p, void *user)
{
    if (p) p->user = user;
}

void *sn_host_peer_get_user_data(const sn_host_peer *p)
{
    return p ? p->user : NULL;
}

void sn_host_peer_set_keepalive_interval_ms(sn_host_peer *p, int ms)
{
    if (!p || ms < 0) return;
    p->keepalive_ms = ms;
    if (p->state == PS_CONNECTED)
        sn_host_heap_earlier(p->host, p, sn_host_connected_wake(p->host, p, sn_now_ms()));
}

int sn_host_peer_get_max_packet_size(const sn_host_peer *p)
{
    return p && p->dtls ? sn_dtls_peer_get_max_packet_size(p->dtls) : 0;
}

const char *sn_host_peer_get_cipher(const sn_host_peer *p)
{
    return p && p->dtls ? sn_dtls_peer_get_cipher(p->dtls) : "";
}

bool sn_host_peer_is_session_resumed(const sn_host_peer *p)
{
    return p && p->dtls && sn_dtls_peer_is_session_resumed(p->dtls);
}
