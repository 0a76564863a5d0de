/* Events: the deliver list (a FIFO of peers with something to tell the program, round-robin
 * across peers: CONNECT, then packets, then DISCONNECT) and the event names. */
#include "host_internal.h"

#include <string.h>

/* Deliver list: doubly linked so a peer can leave it from anywhere. */
void sn_host_deliver_push(sn_host *h, sn_host_peer *p)
{
    if (p->in_deliver) return;
    p->in_deliver = true;
    p->dnext = NULL;
    p->dprev = h->dtail;
    if (h->dtail)
        h->dtail->dnext = p;
    else
        h->dhead = p;
    h->dtail = p;
}

void sn_host_deliver_unlink(sn_host *h, sn_host_peer *p)
{
    if (!p->in_deliver) return;
    if (p->dprev)
        p->dprev->dnext = p->dnext;
    else
        h->dhead = p->dnext;
    if (p->dnext)
        p->dnext->dprev = p->dprev;
    else
        h->dtail = p->dprev;
    p->dprev = p->dnext = NULL;
    p->in_deliver = false;
}

/* ---- events ---------------------------------------------------------------------------------- */

static bool has_more(const sn_host_peer *p)
{
    return p->connect_pending || p->disconnect_pending ||
           sn_dtls_peer_get_available_packet_count(p->dtls) > 0;
}

static void fill(sn_host_event *ev, sn_host_event_type type, sn_host_peer *p)
{
    ev->type = type;
    ev->peer = p;
    ev->peer_id = p->id;
    ev->user_data = p->user;
    ev->data = NULL;
    ev->len = 0;
    ev->reason = SN_HOST_DISCONNECT_NONE;
    ev->message = "";
}

bool sn_host_deliver(sn_host *h, sn_host_event *ev)
{
    sn_host_peer *p;
    while ((p = h->dhead)) {
        sn_host_deliver_unlink(h, p);
        if (p->state == PS_DEAD) continue;
        if (p->connect_pending) {
            p->connect_pending = false;
            p->announced = true;
            fill(ev, SN_HOST_EVENT_CONNECT, p);
            if (has_more(p)) sn_host_deliver_push(h, p);
            return true;
        }
        /* Count first: get_packet on an empty queue would format an error message. */
        while (sn_dtls_peer_get_available_packet_count(p->dtls) > 0) {
            size_t len = 0;
            if (sn_dtls_peer_get_packet(p->dtls, h->rx, sizeof h->rx, &len) != SN_OK) break;
            if (sn_host_is_keepalive(h->rx, len)) {
                sn_host_on_keepalive(h, p, h->rx);
                continue;
            }
            fill(ev, SN_HOST_EVENT_RECEIVE, p);
            ev->data = h->rx;
            ev->len = len;
            h->st.packets_received++;
            h->st.bytes_received += len;
            if (has_more(p)) sn_host_deliver_push(h, p);
            return true;
        }
        if (p->disconnect_pending) {
            p->disconnect_pending = false;
            fill(ev, SN_HOST_EVENT_DISCONNECT, p);
            ev->reason = p->reason;
            ev->message = p->message;
            h->st.disconnects++;
            sn_host_mark_dead(h, p);
            return true;
        }
    }
    return false;
}

const char *sn_host_event_type_string(sn_host_event_type t)
{
    switch (t) {
    case SN_HOST_EVENT_NONE:
        return "NONE";
    case SN_HOST_EVENT_CONNECT:
        return "CONNECT";
    case SN_HOST_EVENT_RECEIVE:
        return "RECEIVE";
    case SN_HOST_EVENT_DISCONNECT:
        return "DISCONNECT";
    }
    return "UNKNOWN";
}

const char *sn_host_disconnect_reason_string(sn_host_disconnect_reason r)
{
    switch (r) {
    case SN_HOST_DISCONNECT_NONE:
        return "NONE";
    case SN_HOST_DISCONNECT_CLOSED:
        return "CLOSED";
    case SN_HOST_DISCONNECT_TIMEOUT:
        return "TIMEOUT";
    case SN_HOST_DISCONNECT_HANDSHAKE_FAILED:
        return "HANDSHAKE_FAILED";
    case SN_HOST_DISCONNECT_KICKED:
        return "KICKED";
    case SN_HOST_DISCONNECT_REFUSED:
        return "REFUSED";
    case SN_HOST_DISCONNECT_ERROR:
        return "ERROR";
    case SN_HOST_DISCONNECT_RESTARTED:
        return "RESTARTED";
    }
    return "UNKNOWN";
}
