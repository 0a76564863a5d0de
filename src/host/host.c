/* sn_host: the server tutorial's loop as one event-driven object (ENet's model over DTLS).
 *
 * What is where:
 * - Every peer lives in `peers` (for broadcast, stats and shutdown) and in an id table (for
 *   sn_host_find_peer). Peers are freed only at the start of the service call after their
 *   DISCONNECT (or silently, for incoming handshakes that never became connections), so every
 *   pointer handed out in an event stays valid until the next service call.
 * - I/O readiness: one epoll set holds the UDP server's socket and the socket of each outgoing
 *   peer (a client DTLS peer has its own connected socket). Incoming peers share the server's
 *   socket: after sn_udp_server_poll we look for the taken UDP peers that received datagrams,
 *   stopping as soon as every routed datagram is accounted for (see scan_incoming).
 * - Timers: a binary min-heap of peers keyed by their next wake-up (handshake retransmission,
 *   idle deadline, keepalive). Keys are only moved earlier eagerly; a peer that wakes too early
 *   recomputes its deadline and goes back in, so per-packet work never touches the heap.
 * - Events: peers with something to tell the program sit in a FIFO ("deliver list"). Service
 *   takes one event from its head and moves the peer to the tail when it has more, so delivery
 *   is round-robin across peers. CONNECT, then packets, then DISCONNECT, per peer.
 * - Keepalives are application records with a reserved 13-byte form (docs/host.md); they are
 *   consumed when the peer's packets are read for delivery and never reach the program.
 */
#include "dtls_internal.h"

#include <sealnet/host.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* ---- keepalive wire format ------------------------------------------------------------- */

#define KA_LEN  13
#define KA_PING 0x01
#define KA_PONG 0x02
static const uint8_t ka_magic[4] = {0xFF, 'S', 'N', 'K'};
/* Besides pinging when idle, ping at least every KA_RTT_FACTOR intervals for a fresh RTT. */
#define KA_RTT_FACTOR 4

#define MAX_EPOLL_EVENTS 256
#define RX_CAP           (16384 + 64) /* one DTLS record's plaintext at most */
#define PENDING_CAP      1024         /* the UDP server routes up to 1024 datagrams per poll */
#define NO_HEAP          SIZE_MAX

typedef enum pstate {
    PS_HANDSHAKING,
    PS_CONNECTED,
    PS_ZOMBIE, /* transport gone; remaining packets and the DISCONNECT wait for delivery */
    PS_DEAD    /* nothing left to deliver: freed at the next service call */
} pstate;

struct sn_host_peer {
    sn_host *host;
    uint32_t id;
    pstate state;
    bool outgoing;
    bool connect_pending;    /* CONNECT queued, not delivered */
    bool announced;          /* CONNECT delivered */
    bool disconnect_pending; /* DISCONNECT queued, not delivered */
    sn_dtls_peer *dtls;
    /* WORKAROUND (see report): the UDP peer the DTLS peer owns, needed to see whether routed
     * datagrams wait for it without polling it. Valid exactly while the DTLS status is
     * HANDSHAKING or CONNECTED (the DTLS peer frees it on any other transition); cleared the
     * moment we see another status. A UDP-server "ready list" would make this unnecessary. */
    sn_udp_peer *udp;
    int fd; /* outgoing: the socket registered in epoll; -1 otherwise */
    void *user;
    int keepalive_ms;
    uint64_t last_send_ms, last_ping_ms;
    double srtt_ms, rttvar_ms; /* < 0: no sample */
    uint64_t wake_ms;
    size_t heap_idx;
    size_t index;   /* in host->peers */
    size_t inc_idx; /* in host->inc_udp while an incoming peer has its UDP peer; else NO_HEAP */
    sn_host_peer *dprev, *dnext;
    bool in_deliver;
    sn_host_peer *next_dead;
    sn_host_disconnect_reason reason;
    char ip[SN_IP_STRLEN];
    int port;
    char message[256];
};

struct sn_host {
    sn_host_config cfg;
    sn_dtls_settings dtls_settings;
    sn_udp_server *udp;
    sn_dtls_server *dtls;
    int epfd;
    uint32_t next_id;

    sn_host_peer **peers;
    size_t npeers, cap_peers;
    sn_host_peer **heap;
    size_t nheap, cap_heap;
    sn_host_peer **ids; /* open addressing by id, linear probing */
    size_t cap_ids, nids;
    sn_host_peer *dhead, *dtail;
    sn_host_peer *dead;

    /* Incoming peers that have a UDP peer, as two dense arrays: the scan for routed datagrams
     * walks inc_udp and touches one UDP peer per step, nothing else. */
    sn_udp_peer **inc_udp;
    sn_host_peer **inc_peer;
    size_t ninc, cap_inc, cap_inc2;
    size_t cold_cursor; /* where the next look at the cold part starts (round-robin) */
    size_t nhot;        /* inc[0..nhot) received datagrams in this epoch */
    uint64_t hot_epoch_ms;
    uint64_t last_routed;
    int64_t outstanding; /* routed datagrams not yet found in a peer's queue */
    bool more_work;

    size_t n_handshaking, n_connected, n_half_open;
    sn_host_stats st;
    uint64_t gone_queue_full, gone_oversize; /* DTLS counters of freed peers */

    struct epoll_event evs[MAX_EPOLL_EVENTS];
    uint8_t rx[RX_CAP];
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- containers ------------------------------------------------------------------------ */

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *a = sn_realloc(*arr, n * elem);
    if (!a) return false;
    *arr = a;
    *cap = n;
    return true;
}

/* Min-heap on wake_ms. */
static bool heap_less(const sn_host *h, size_t a, size_t b)
{
    return h->heap[a]->wake_ms < h->heap[b]->wake_ms;
}

static void heap_swap(sn_host *h, size_t a, size_t b)
{
    sn_host_peer *t = h->heap[a];
    h->heap[a] = h->heap[b];
    h->heap[b] = t;
    h->heap[a]->heap_idx = a;
    h->heap[b]->heap_idx = b;
}

static void heap_up(sn_host *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(h, i, parent)) break;
        heap_swap(h, i, parent);
        i = parent;
    }
}

static void heap_down(sn_host *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->nheap && heap_less(h, l, m)) m = l;
        if (r < h->nheap && heap_less(h, r, m)) m = r;
        if (m == i) break;
        heap_swap(h, i, m);
        i = m;
    }
}

static void heap_remove(sn_host *h, sn_host_peer *p)
{
    size_t i = p->heap_idx;
    if (i == NO_HEAP) return;
    p->heap_idx = NO_HEAP;
    h->nheap--;
    if (i == h->nheap) return;
    h->heap[i] = h->heap[h->nheap];
    h->heap[i]->heap_idx = i;
    heap_up(h, i);
    heap_down(h, h->heap[i]->heap_idx);
}

/* Sets the peer's wake-up to `when`, inserting it when needed. Returns false only when out of
 * memory (the peer then simply has no timer; it is still serviced on I/O). */
static bool heap_set(sn_host *h, sn_host_peer *p, uint64_t when)
{
    if (p->heap_idx == NO_HEAP) {
        if (!grow((void **)&h->heap, &h->cap_heap, h->nheap + 1, sizeof *h->heap)) return false;
        p->heap_idx = h->nheap;
        h->heap[h->nheap++] = p;
        p->wake_ms = when;
        heap_up(h, p->heap_idx);
        return true;
    }
    uint64_t old = p->wake_ms;
    p->wake_ms = when;
    if (when < old)
        heap_up(h, p->heap_idx);
    else
        heap_down(h, p->heap_idx);
    return true;
}

/* Only ever brings a wake-up forward: cheap enough to call after every packet. */
static void heap_earlier(sn_host *h, sn_host_peer *p, uint64_t when)
{
    if (p->heap_idx == NO_HEAP || when < p->wake_ms) heap_set(h, p, when);
}

static size_t id_slot(uint32_t id, size_t cap)
{
    return (size_t)((id * 2654435761u) & (cap - 1));
}

static bool ids_insert(sn_host *h, sn_host_peer *p)
{
    if ((h->nids + 1) * 2 > h->cap_ids) {
        size_t ncap = h->cap_ids ? h->cap_ids * 2 : 64;
        sn_host_peer **n = sn_calloc(ncap, sizeof *n);
        if (!n) return false;
        for (size_t i = 0; i < h->cap_ids; i++) {
            sn_host_peer *q = h->ids[i];
            if (!q) continue;
            size_t j = id_slot(q->id, ncap);
            while (n[j])
                j = (j + 1) & (ncap - 1);
            n[j] = q;
        }
        sn_free(h->ids);
        h->ids = n;
        h->cap_ids = ncap;
    }
    size_t j = id_slot(p->id, h->cap_ids);
    while (h->ids[j])
        j = (j + 1) & (h->cap_ids - 1);
    h->ids[j] = p;
    h->nids++;
    return true;
}

static void ids_remove(sn_host *h, const sn_host_peer *p)
{
    if (!h->cap_ids) return;
    size_t mask = h->cap_ids - 1, i = id_slot(p->id, h->cap_ids);
    while (h->ids[i] && h->ids[i] != p)
        i = (i + 1) & mask;
    if (!h->ids[i]) return;
    h->ids[i] = NULL;
    h->nids--;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    for (size_t j = (i + 1) & mask; h->ids[j]; j = (j + 1) & mask) {
        size_t home = id_slot(h->ids[j]->id, h->cap_ids);
        bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            h->ids[i] = h->ids[j];
            h->ids[j] = NULL;
            i = j;
        }
    }
}

/* Deliver list: doubly linked so a peer can leave it from anywhere. */
static void deliver_push(sn_host *h, sn_host_peer *p)
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

static void deliver_unlink(sn_host *h, sn_host_peer *p)
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

/* ---- peer state changes ------------------------------------------------------------------ */

static bool inc_add(sn_host *h, sn_host_peer *p)
{
    if (!grow((void **)&h->inc_udp, &h->cap_inc, h->ninc + 1, sizeof *h->inc_udp) ||
        !grow((void **)&h->inc_peer, &h->cap_inc2, h->ninc + 1, sizeof *h->inc_peer))
        return false;
    p->inc_idx = h->ninc;
    h->inc_udp[h->ninc] = p->udp;
    h->inc_peer[h->ninc] = p;
    h->ninc++;
    return true;
}

/* The UDP peer is gone (freed by the DTLS peer) or about to be: forget it everywhere. */
static void drop_udp(sn_host *h, sn_host_peer *p)
{
    p->udp = NULL;
    size_t i = p->inc_idx;
    if (i == NO_HEAP) return;
    p->inc_idx = NO_HEAP;
    h->ninc--;
    if (i == h->ninc) return;
    h->inc_udp[i] = h->inc_udp[h->ninc];
    h->inc_peer[i] = h->inc_peer[h->ninc];
    h->inc_peer[i]->inc_idx = i;
}

static void count_leave(sn_host *h, sn_host_peer *p)
{
    if (p->state == PS_HANDSHAKING) {
        h->n_handshaking--;
        if (!p->outgoing) h->n_half_open--;
    } else if (p->state == PS_CONNECTED) {
        h->n_connected--;
    }
}

static void mark_dead(sn_host *h, sn_host_peer *p)
{
    drop_udp(h, p);
    count_leave(h, p);
    p->state = PS_DEAD;
    heap_remove(h, p);
    deliver_unlink(h, p);
    p->next_dead = h->dead;
    h->dead = p;
}

/* The transport is gone (or going): remaining packets, then one DISCONNECT. */
static void to_zombie(sn_host *h, sn_host_peer *p, sn_host_disconnect_reason reason,
                      const char *message)
{
    count_leave(h, p);
    p->state = PS_ZOMBIE;
    drop_udp(h, p);
    p->fd = -1; /* closed with the UDP peer, which also took it out of the epoll set */
    heap_remove(h, p);
    p->reason = reason;
    snprintf(p->message, sizeof p->message, "%s", message ? message : "");
    p->disconnect_pending = true;
    deliver_push(h, p);
}

static void handshake_failed(sn_host *h, sn_host_peer *p, sn_host_disconnect_reason reason,
                             const char *message)
{
    h->st.handshakes_failed++;
    sn_log(SN_LOG_INFO, "host: handshake with %s:%d failed: %s", p->ip, p->port, message);
    if (p->outgoing) {
        to_zombie(h, p, reason, message);
    } else {
        /* The program never heard of this peer: no event, just the counter. */
        mark_dead(h, p);
    }
}

static uint64_t connected_wake(const sn_host *h, sn_host_peer *p, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    if (h->cfg.idle_timeout_ms > 0)
        next = sn_dtls_peer_get_last_packet_time_ms(p->dtls) + (uint64_t)h->cfg.idle_timeout_ms;
    if (p->keepalive_ms > 0) {
        uint64_t ka = (uint64_t)p->keepalive_ms;
        next = min_u64(next, p->last_send_ms + ka);
        next = min_u64(next, p->last_ping_ms + ka * KA_RTT_FACTOR);
    }
    int t = sn_dtls_peer_next_timeout_ms(p->dtls);
    /* A connected session rarely has a timer (a final flight to resend); never spin on one. */
    if (t >= 0) next = min_u64(next, now + (uint64_t)(t < 10 ? 10 : t));
    return next;
}

static void send_ping(sn_host *h, sn_host_peer *p, uint64_t now)
{
    uint8_t b[KA_LEN];
    memcpy(b, ka_magic, 4);
    b[4] = KA_PING;
    uint64_t ts = now_us();
    for (int i = 0; i < 8; i++)
        b[5 + i] = (uint8_t)(ts >> (56 - 8 * i));
    if (sn_dtls_peer_put_packet(p->dtls, b, sizeof b) == SN_OK) {
        p->last_send_ms = p->last_ping_ms = now;
        h->st.keepalives_sent++;
    } else {
        /* Busy socket (or a failing session, seen at the next poll): try again at the next
         * interval rather than at once, which would spin. */
        p->last_send_ms = p->last_ping_ms = now;
    }
}

static void became_connected(sn_host *h, sn_host_peer *p, uint64_t now)
{
    count_leave(h, p);
    p->state = PS_CONNECTED;
    h->n_connected++;
    h->st.handshakes_completed++;
    p->connect_pending = true;
    p->last_send_ms = p->last_ping_ms = now;
    deliver_push(h, p);
    /* An early ping gives an RTT figure right away. */
    if (p->keepalive_ms > 0) send_ping(h, p, now);
    heap_set(h, p, connected_wake(h, p, now));
}

/* What a DTLS poll changed. */
static void after_poll(sn_host *h, sn_host_peer *p, uint64_t now)
{
    sn_dtls_status st = sn_dtls_peer_get_status(p->dtls);
    if (p->state == PS_HANDSHAKING) {
        if (st == SN_DTLS_STATUS_HANDSHAKING) {
            int t = sn_dtls_peer_next_timeout_ms(p->dtls);
            uint64_t when = now + (uint64_t)(t >= 0 ? t : h->cfg.handshake_timeout_ms);
            heap_set(h, p, when);
            return;
        }
        if (st != SN_DTLS_STATUS_CONNECTED) {
            /* The DTLS client gives up early on ICMP port unreachable; it says so only in its
             * message, so that is what tells REFUSED from other failures. */
            const char *why = sn_dtls_peer_get_error_message(p->dtls);
            handshake_failed(h, p,
                             strncmp(why, "connection refused", 18) == 0
                                 ? SN_HOST_DISCONNECT_REFUSED
                                 : SN_HOST_DISCONNECT_HANDSHAKE_FAILED,
                             why);
            return;
        }
        became_connected(h, p, now);
    }
    if (p->state != PS_CONNECTED) return;
    if (sn_dtls_peer_get_available_packet_count(p->dtls) > 0) deliver_push(h, p);
    if (st != SN_DTLS_STATUS_CONNECTED) {
        sn_host_disconnect_reason why = st == SN_DTLS_STATUS_DISCONNECTED
                                            ? SN_HOST_DISCONNECT_CLOSED
                                            : SN_HOST_DISCONNECT_ERROR;
        to_zombie(h, p, why, sn_dtls_peer_get_error_message(p->dtls));
    }
}

static void poll_peer(sn_host *h, sn_host_peer *p, uint64_t now)
{
    sn_dtls_peer_poll(p->dtls);
    after_poll(h, p, now);
}

static void on_timer(sn_host *h, sn_host_peer *p, uint64_t now)
{
    if (p->state == PS_HANDSHAKING) {
        poll_peer(h, p, now); /* retransmission or handshake timeout */
        return;
    }
    if (p->state != PS_CONNECTED) return;
    /* Datagrams the scan has not reached yet (budget, resync) count as life: read them first. */
    if (p->udp && sn_udp_peer_peek(p->udp, NULL)) {
        poll_peer(h, p, now);
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
        to_zombie(h, p, SN_HOST_DISCONNECT_TIMEOUT, msg);
        return;
    }
    if (sn_dtls_peer_next_timeout_ms(p->dtls) == 0) {
        poll_peer(h, p, now);
        if (p->state != PS_CONNECTED) return;
    }
    if (p->keepalive_ms > 0) {
        uint64_t ka = (uint64_t)p->keepalive_ms;
        if (p->last_send_ms + ka <= now || p->last_ping_ms + ka * KA_RTT_FACTOR <= now)
            send_ping(h, p, now);
    }
    heap_set(h, p, connected_wake(h, p, now));
}

/* ---- peers --------------------------------------------------------------------------------- */

static sn_host_peer *peer_new(sn_host *h, bool outgoing)
{
    if (!grow((void **)&h->peers, &h->cap_peers, h->npeers + 1, sizeof *h->peers)) return NULL;
    sn_host_peer *p = sn_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->host = h;
    p->id = h->next_id++;
    if (h->next_id == 0) h->next_id = 1; /* 2^32 peers later; 0 stays "no peer" */
    if (!ids_insert(h, p)) {
        sn_free(p);
        return NULL;
    }
    p->outgoing = outgoing;
    p->fd = -1;
    p->heap_idx = NO_HEAP;
    p->inc_idx = NO_HEAP;
    p->keepalive_ms = h->cfg.keepalive_interval_ms;
    p->srtt_ms = p->rttvar_ms = -1;
    p->index = h->npeers;
    h->peers[h->npeers++] = p;
    return p;
}

static void peer_release(sn_host *h, sn_host_peer *p)
{
    sn_dtls_peer_stats ds;
    if (p->dtls) {
        sn_dtls_peer_get_stats(p->dtls, &ds);
        h->gone_queue_full += ds.dropped_queue_full;
        h->gone_oversize += ds.dropped_oversize;
    }
    sn_dtls_peer_free(p->dtls); /* close_notify when still connected */
    ids_remove(h, p);
    size_t i = p->index;
    h->peers[i] = h->peers[--h->npeers];
    h->peers[i]->index = i;
    sn_free(p);
}

static void free_dead(sn_host *h)
{
    while (h->dead) {
        sn_host_peer *p = h->dead;
        h->dead = p->next_dead;
        peer_release(h, p);
    }
}

/* ---- incoming connections ------------------------------------------------------------------ */

static void accept_one(sn_host *h, sn_udp_peer *udp, uint64_t now)
{
    size_t live = h->n_handshaking + h->n_connected;
    if (live >= (size_t)h->cfg.max_peers) {
        /* Stateless refusal: a fatal handshake_failure alert answering the ClientHello. */
        h->st.refused_full++;
        sn_dtls_server_refuse(udp);
        return;
    }
    size_t len;
    const uint8_t *d = sn_udp_peer_peek(udp, &len);
    sn_dtls_hello hello;
    if (d && h->n_half_open >= (size_t)h->cfg.max_half_open &&
        sn_dtls_parse_client_hello(d, len, &hello) && hello.cookie_len > 0) {
        /* This one would get a session: no room. Unanswered, the client retransmits. */
        h->st.dropped_half_open++;
        sn_udp_peer_free(udp);
        return;
    }
    sn_dtls_peer *dp = sn_dtls_server_take_connection(h->dtls, udp);
    if (!dp) return; /* out of memory; udp already freed */
    if (sn_dtls_peer_get_status(dp) != SN_DTLS_STATUS_HANDSHAKING) {
        sn_dtls_peer_free(dp); /* HelloVerifyRequest sent, or not a ClientHello */
        return;
    }
    sn_host_peer *p = peer_new(h, false);
    if (!p) {
        sn_dtls_peer_free(dp);
        return;
    }
    p->dtls = dp;
    p->udp = udp; /* see the WORKAROUND note in the struct */
    if (!inc_add(h, p)) {
        /* No room to track it: let it go rather than leave it unserviced. */
        peer_release(h, p);
        return;
    }
    snprintf(p->ip, sizeof p->ip, "%s", sn_dtls_peer_get_packet_ip(dp));
    p->port = sn_dtls_peer_get_packet_port(dp);
    p->state = PS_HANDSHAKING;
    h->n_handshaking++;
    h->n_half_open++;
    h->st.handshakes_started++;
    after_poll(h, p, now); /* take_connection already processed the ClientHello */
}

static void inc_swap(sn_host *h, size_t a, size_t b)
{
    sn_udp_peer *u = h->inc_udp[a];
    sn_host_peer *p = h->inc_peer[a];
    h->inc_udp[a] = h->inc_udp[b];
    h->inc_peer[a] = h->inc_peer[b];
    h->inc_udp[b] = u;
    h->inc_peer[b] = p;
    h->inc_peer[a]->inc_idx = a;
    h->inc_peer[b]->inc_idx = b;
}

/* Looks at slot i: polls the peer when datagrams wait for it. Returns true when slot i holds a
 * peer not looked at yet (the one there died and the last one moved in). */
static bool scan_slot(sn_host *h, size_t i, uint64_t now, int *budget)
{
    h->st.scan_steps++;
    if (!sn_udp_peer_peek(h->inc_udp[i], NULL)) return false;
    sn_host_peer *p = h->inc_peer[i];
    h->outstanding -= sn_udp_peer_get_available_packet_count(p->udp);
    (*budget)--;
    poll_peer(h, p, now);
    return p->inc_idx == NO_HEAP && i < h->ninc;
}

/* Finds the incoming peers whose UDP queue holds routed datagrams and polls them. Nothing
 * tells the host which peers those are (see docs/host.md), so:
 * - `outstanding` counts datagrams routed to taken peers and not yet found; scanning stops as
 *   soon as it reaches zero, so a quiet host does no work here;
 * - peers found with datagrams move to the front (the "hot" prefix, rebuilt every second) and
 *   are looked at first, so with a few active peers among many idle ones a scan costs about the
 *   number of active ones;
 * - the rest (the cold part) is walked round-robin with a step budget of max(1024, 64 per new
 *   datagram): per-datagram cost stays bounded with any number of peers; with more than 1024
 *   idle peers a cold peer's datagram may wait a few service calls to be found. */
static void scan_incoming(sn_host *h, uint64_t now, int *budget, uint64_t fresh)
{
    if (h->outstanding <= 0 || h->ninc == 0) {
        h->outstanding = 0;
        return;
    }
    if (now - h->hot_epoch_ms >= 1000) {
        h->hot_epoch_ms = now;
        h->nhot = 0;
    }
    if (h->nhot > h->ninc) h->nhot = h->ninc;
    for (size_t i = 0; i < h->nhot && h->outstanding > 0;) {
        if (*budget <= 0) {
            h->more_work = true;
            return;
        }
        if (!scan_slot(h, i, now, budget)) i++;
        if (h->nhot > h->ninc) h->nhot = h->ninc;
    }
    uint64_t steps = fresh * 64 > 1024 ? fresh * 64 : 1024;
    size_t cold = h->ninc - h->nhot, seen = 0, i = h->cold_cursor;
    while (seen < cold && h->outstanding > 0 && steps > 0 && h->ninc > h->nhot) {
        if (*budget <= 0) break;
        if (i >= h->ninc || i < h->nhot) i = h->nhot;
        seen++;
        steps--;
        if (!sn_udp_peer_peek(h->inc_udp[i], NULL)) {
            h->st.scan_steps++;
            i++;
            continue;
        }
        /* Into the hot prefix; slot i now holds the former first cold peer: look again. */
        inc_swap(h, i, h->nhot);
        size_t slot = h->nhot++;
        scan_slot(h, slot, now, budget);
        if (h->nhot > h->ninc) h->nhot = h->ninc;
    }
    h->cold_cursor = i;
    if (seen >= cold && steps > 0 && *budget > 0) h->outstanding = 0; /* all looked at */
    if (h->outstanding > 0) h->more_work = true;
}

static void server_io(sn_host *h, uint64_t now, int *budget)
{
    if (sn_udp_server_poll(h->udp) != SN_OK) return;
    sn_udp_server_stats us;
    sn_udp_server_get_stats(h->udp, &us);
    uint64_t fresh = us.datagrams_routed - h->last_routed;
    h->outstanding += (int64_t)fresh;
    h->last_routed = us.datagrams_routed;
    while (sn_udp_server_is_connection_available(h->udp)) {
        if (*budget <= 0) {
            h->more_work = true;
            break;
        }
        sn_udp_peer *udp = sn_udp_server_take_connection(h->udp);
        if (!udp) break;
        h->outstanding -= sn_udp_peer_get_available_packet_count(udp);
        (*budget)--;
        accept_one(h, udp, now);
    }
    scan_incoming(h, now, budget, fresh);
}

/* One round of I/O and timers; sleeps up to wait_ms in epoll_wait first. */
static int io_step(sn_host *h, int wait_ms)
{
    if (wait_ms > 0) h->st.waits++;
    int n = epoll_wait(h->epfd, h->evs, MAX_EPOLL_EVENTS, wait_ms);
    if (n < 0) {
        if (errno != EINTR) {
            sn_fail(SN_FAILED, "epoll_wait: %s", strerror(errno));
            return -1;
        }
        n = 0;
    }
    uint64_t now = sn_now_ms();
    int budget = h->cfg.max_work_per_service;
    h->more_work = false;
    bool server_ready = false;
    for (int i = 0; i < n; i++) {
        void *ptr = h->evs[i].data.ptr;
        if (ptr == h) {
            server_ready = true;
            continue;
        }
        sn_host_peer *p = ptr;
        /* Frees are deferred, so p is valid; a peer that died earlier in this batch is skipped. */
        if (p->state != PS_HANDSHAKING && p->state != PS_CONNECTED) continue;
        if (budget <= 0) {
            h->more_work = true; /* level-triggered: epoll reports it again */
            continue;
        }
        budget--;
        poll_peer(h, p, now);
    }
    if (h->udp &&
        (server_ready || h->outstanding > 0 || sn_udp_server_next_timeout_ms(h->udp) == 0))
        server_io(h, now, &budget);
    while (h->nheap && h->heap[0]->wake_ms <= now) {
        if (budget <= 0) {
            h->more_work = true;
            break;
        }
        budget--;
        sn_host_peer *p = h->heap[0];
        heap_remove(h, p);
        on_timer(h, p, now);
    }
    return 0;
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

static void on_keepalive(sn_host *h, sn_host_peer *p, const uint8_t *b)
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
        }
        return;
    }
    uint64_t ts = 0;
    for (int i = 0; i < 8; i++)
        ts = (ts << 8) | b[5 + i];
    uint64_t t = now_us();
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

static bool is_keepalive(const uint8_t *b, size_t len)
{
    return len == KA_LEN && memcmp(b, ka_magic, 4) == 0 && (b[4] == KA_PING || b[4] == KA_PONG);
}

static bool deliver(sn_host *h, sn_host_event *ev)
{
    sn_host_peer *p;
    while ((p = h->dhead)) {
        deliver_unlink(h, p);
        if (p->state == PS_DEAD) continue;
        if (p->connect_pending) {
            p->connect_pending = false;
            p->announced = true;
            fill(ev, SN_HOST_EVENT_CONNECT, p);
            if (has_more(p)) deliver_push(h, p);
            return true;
        }
        /* Count first: get_packet on an empty queue would format an error message. */
        while (sn_dtls_peer_get_available_packet_count(p->dtls) > 0) {
            size_t len = 0;
            if (sn_dtls_peer_get_packet(p->dtls, h->rx, sizeof h->rx, &len) != SN_OK) break;
            if (is_keepalive(h->rx, len)) {
                on_keepalive(h, p, h->rx);
                continue;
            }
            fill(ev, SN_HOST_EVENT_RECEIVE, p);
            ev->data = h->rx;
            ev->len = len;
            h->st.packets_received++;
            h->st.bytes_received += len;
            if (has_more(p)) deliver_push(h, p);
            return true;
        }
        if (p->disconnect_pending) {
            p->disconnect_pending = false;
            fill(ev, SN_HOST_EVENT_DISCONNECT, p);
            ev->reason = p->reason;
            ev->message = p->message;
            h->st.disconnects++;
            mark_dead(h, p);
            return true;
        }
    }
    return false;
}

/* ---- public: host -------------------------------------------------------------------------- */

void sn_host_default_config(sn_host_config *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    out->bind_address = NULL;
    out->port = 0;
    out->server_options = NULL;
    out->max_peers = 4096;
    out->max_half_open = 256;
    out->idle_timeout_ms = 30000;
    out->handshake_timeout_ms = 10000;
    out->keepalive_interval_ms = 1000;
    out->mtu = 1200;
    out->max_work_per_service = 256;
    out->recv_buffer_size = 4 << 20;
}

static sn_err check_config(const sn_host_config *c)
{
    if (c->max_peers < 1) return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "max_peers must be >= 1");
    if (c->max_half_open < 1)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "max_half_open must be >= 1");
    if (c->idle_timeout_ms < 0)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "idle_timeout_ms must be >= 0 (0: never)");
    if (c->handshake_timeout_ms < 100)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "handshake_timeout_ms must be >= 100");
    if (c->keepalive_interval_ms < 0)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "keepalive_interval_ms must be >= 0 (0: off)");
    if (c->mtu < 256 || c->mtu > 65507)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "mtu %d out of range 256..65507", c->mtu);
    if (c->recv_buffer_size < 0)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "recv_buffer_size must be >= 0");
    if (c->max_work_per_service < 1)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "max_work_per_service must be >= 1");
    return SN_OK;
}

sn_host *sn_host_create(const sn_host_config *config)
{
    sn_host_config defaults;
    if (!config) {
        sn_host_default_config(&defaults);
        config = &defaults;
    }
    if (check_config(config) != SN_OK) return NULL;
    if (config->server_options && !sn_tls_options_is_server(config->server_options))
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "host server_options must be server options (sn_tls_options_server)");
    sn_host *h = sn_calloc(1, sizeof *h);
    if (!h) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    h->cfg = *config;
    h->cfg.server_options = NULL; /* borrowed: not kept */
    h->cfg.bind_address = NULL;
    h->cfg.cookie_secret = NULL; /* borrowed: copied into the DTLS server */
    h->next_id = 1;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0) {
        sn_fail(SN_ERR_CANT_CREATE, "epoll_create1: %s", strerror(errno));
        sn_free(h);
        return NULL;
    }
    sn_dtls_default_settings(&h->dtls_settings);
    h->dtls_settings.mtu = config->mtu;
    h->dtls_settings.handshake_timeout_ms = config->handshake_timeout_ms;
    if (config->server_options) {
        if (!(h->udp = sn_udp_server_new()) || !(h->dtls = sn_dtls_server_new())) goto fail;
        /* Best effort, before listen so it applies from the first datagram. */
        if (config->recv_buffer_size > 0)
            sn_udp_server_set_recv_buffer_size(h->udp, config->recv_buffer_size);
        if (config->reuse_port) sn_udp_server_set_reuse_port(h->udp, true);
        if (config->cookie_secret &&
            sn_dtls_server_set_cookie_secret(h->dtls, config->cookie_secret, 32) != SN_OK)
            goto fail;
        if (sn_udp_server_listen(h->udp, config->port, config->bind_address) != SN_OK) goto fail;
        sn_udp_server_set_max_pending_connections(h->udp, PENDING_CAP);
        if (sn_dtls_server_set_settings(h->dtls, &h->dtls_settings) != SN_OK) goto fail;
        if (sn_dtls_server_setup(h->dtls, config->server_options) != SN_OK) goto fail;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = h};
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, sn_udp_server_get_fd(h->udp), &ev) != 0) {
            sn_fail(SN_ERR_CANT_CREATE, "epoll_ctl: %s", strerror(errno));
            goto fail;
        }
    }
    return h;
fail:
    sn_dtls_server_free(h->dtls);
    sn_udp_server_free(h->udp);
    close(h->epfd);
    sn_free(h);
    return NULL;
}

sn_host *sn_host_new(void)
{
    return sn_host_create(NULL);
}

void sn_host_free(sn_host *h)
{
    if (!h) return;
    /* Peers first: a server-side peer sends its close_notify through the server's socket. */
    while (h->npeers)
        peer_release(h, h->peers[h->npeers - 1]);
    sn_dtls_server_free(h->dtls);
    sn_udp_server_free(h->udp);
    close(h->epfd);
    sn_free(h->peers);
    sn_free(h->inc_udp);
    sn_free(h->inc_peer);
    sn_free(h->heap);
    sn_free(h->ids);
    sn_free(h);
}

int sn_host_get_port(const sn_host *h)
{
    return h && h->udp ? sn_udp_server_get_local_port(h->udp) : 0;
}

int sn_host_get_fd(const sn_host *h)
{
    return h ? h->epfd : -1;
}

int sn_host_next_timeout_ms(const sn_host *h)
{
    if (!h) return -1;
    if (h->dhead || h->more_work) return 0;
    int64_t best = -1;
    if (h->nheap) {
        uint64_t now = sn_now_ms(), w = h->heap[0]->wake_ms;
        best = w <= now ? 0 : (int64_t)(w - now);
    }
    if (h->udp) {
        int t = sn_udp_server_next_timeout_ms(h->udp);
        if (t >= 0 && (best < 0 || t < best)) best = t;
    }
    return best > INT_MAX ? INT_MAX : (int)best;
}

int sn_host_service(sn_host *h, sn_host_event *ev, int timeout_ms)
{
    if (!h || !ev) {
        sn_fail(SN_ERR_INVALID_PARAMETER, "sn_host_service: NULL argument");
        return -1;
    }
    memset(ev, 0, sizeof *ev);
    ev->message = "";
    h->st.service_calls++;
    free_dead(h);
    if (deliver(h, ev)) return 1;
    uint64_t start = sn_now_ms();
    int wait = 0;
    for (;;) {
        if (io_step(h, wait) < 0) return -1;
        if (deliver(h, ev)) return 1;
        uint64_t elapsed = sn_now_ms() - start;
        if (timeout_ms >= 0 && elapsed >= (uint64_t)timeout_ms) return 0;
        if (h->more_work) {
            wait = 0;
            continue;
        }
        int64_t remaining = timeout_ms < 0 ? INT_MAX : (int64_t)timeout_ms - (int64_t)elapsed;
        int t = sn_host_next_timeout_ms(h);
        wait = (int)(t >= 0 && t < remaining ? t : remaining);
    }
}

sn_host_peer *sn_host_connect(sn_host *h, const char *address, int port, const char *hostname,
                              const sn_tls_options *client_options)
{
    if (!h || !address || !*address)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER, "sn_host_connect: NULL host or address");
    if (sn_net_check_port(port, false) != SN_OK) return NULL;
    if (client_options && sn_tls_options_is_server(client_options))
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "sn_host_connect needs client options, not server options");
    uint64_t now = sn_now_ms();
    sn_host_peer *p = peer_new(h, true);
    if (!p) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(p->ip, sizeof p->ip, "%s", address);
    p->port = port;
    p->state = PS_HANDSHAKING; /* for the counters; left at once on failure below */
    h->n_handshaking++;
    if (h->n_handshaking + h->n_connected > (size_t)h->cfg.max_peers) {
        char msg[96];
        snprintf(msg, sizeof msg, "this host is full (max_peers %d)", h->cfg.max_peers);
        to_zombie(h, p, SN_HOST_DISCONNECT_REFUSED, msg);
        return p;
    }
    sn_udp_peer *udp = sn_udp_peer_new();
    if (!udp || sn_udp_peer_connect_to_host(udp, address, port) != SN_OK ||
        !(p->dtls = sn_dtls_peer_new())) {
        /* Bad address or no memory: the program's mistake, answered now. */
        sn_udp_peer_free(udp);
        char keep[256];
        snprintf(keep, sizeof keep, "%s", sn_last_error_message());
        p->udp = NULL;
        mark_dead(h, p);
        /* Not visible to the program: free it now rather than at the next service. */
        h->dead = p->next_dead;
        peer_release(h, p);
        return sn_fail_null(SN_ERR_CANT_CONNECT, "%s", keep);
    }
    sn_dtls_peer_set_settings(p->dtls, &h->dtls_settings);
    h->st.handshakes_started++;
    p->udp = udp; /* see the WORKAROUND note in the struct */
    if (sn_dtls_peer_connect_to_peer(p->dtls, udp, hostname ? hostname : address, client_options) !=
        SN_OK) {
        const char *why = sn_dtls_peer_get_error_message(p->dtls);
        handshake_failed(h, p, SN_HOST_DISCONNECT_HANDSHAKE_FAILED,
                         *why ? why : sn_last_error_message());
        return p;
    }
    snprintf(p->ip, sizeof p->ip, "%s", sn_dtls_peer_get_packet_ip(p->dtls));
    p->port = sn_dtls_peer_get_packet_port(p->dtls);
    if (sn_dtls_peer_get_status(p->dtls) == SN_DTLS_STATUS_HANDSHAKING) {
        p->fd = sn_dtls_peer_get_fd(p->dtls);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
        if (p->fd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, p->fd, &ev) != 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "cannot watch the socket: %s", strerror(errno));
            sn_dtls_peer_disconnect_from_peer(p->dtls);
            handshake_failed(h, p, SN_HOST_DISCONNECT_HANDSHAKE_FAILED, msg);
            return p;
        }
    }
    after_poll(h, p, now);
    return p;
}

int sn_host_broadcast(sn_host *h, const void *data, size_t len, const sn_host_peer *except)
{
    if (!h || (!data && len)) {
        sn_fail(SN_ERR_INVALID_PARAMETER, "sn_host_broadcast: NULL argument");
        return -1;
    }
    int sent = 0;
    /* Indexes, not pointers: a send that fails fatally only changes state, never the array. */
    for (size_t i = 0; i < h->npeers; i++) {
        sn_host_peer *p = h->peers[i];
        if (p == except || p->state != PS_CONNECTED || !p->announced) continue;
        if (sn_host_peer_send(p, data, len) == SN_OK) sent++;
    }
    return sent;
}

sn_host_peer *sn_host_find_peer(const sn_host *h, uint32_t id)
{
    if (!h || !h->cap_ids || id == 0) return NULL;
    size_t mask = h->cap_ids - 1;
    for (size_t i = id_slot(id, h->cap_ids); h->ids[i]; i = (i + 1) & mask)
        if (h->ids[i]->id == id) return h->ids[i];
    return NULL;
}

size_t sn_host_get_peers(const sn_host *h, sn_host_peer **out, size_t cap)
{
    if (!h) return 0;
    for (size_t i = 0; i < h->npeers && i < cap && out; i++)
        out[i] = h->peers[i];
    return h->npeers;
}

size_t sn_host_peer_count(const sn_host *h, sn_host_peer_state state)
{
    if (!h) return 0;
    switch (state) {
    case SN_HOST_PEER_HANDSHAKING:
        return h->n_handshaking;
    case SN_HOST_PEER_CONNECTED:
        return h->n_connected;
    case SN_HOST_PEER_DISCONNECTED:
        return h->npeers - h->n_handshaking - h->n_connected;
    }
    return 0;
}

void sn_host_get_stats(const sn_host *h, sn_host_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!h) return;
    *out = h->st;
    out->peers_connected_now = h->n_connected;
    out->peers_handshaking_now = h->n_handshaking;
    out->incoming_half_open_now = h->n_half_open;
    out->dropped_queue_full += h->gone_queue_full;
    out->dropped_malformed += h->gone_oversize;
    for (size_t i = 0; i < h->npeers; i++) {
        sn_dtls_peer_stats ds;
        if (!h->peers[i]->dtls) continue;
        sn_dtls_peer_get_stats(h->peers[i]->dtls, &ds);
        out->dropped_queue_full += ds.dropped_queue_full;
        out->dropped_malformed += ds.dropped_oversize;
    }
    if (h->dtls) {
        sn_dtls_server_stats ds;
        sn_dtls_server_get_stats(h->dtls, &ds);
        out->cookies_sent = ds.cookies_sent;
        out->dropped_malformed += ds.malformed_dropped;
    }
    if (h->udp) {
        sn_udp_server_stats us;
        sn_udp_server_get_stats(h->udp, &us);
        out->dropped_queue_full += us.dropped_queue_full;
        out->dropped_malformed += us.dropped_oversize;
        out->dropped_pending_full = us.dropped_pending_full;
    }
}

/* ---- public: peers ------------------------------------------------------------------------- */

sn_err sn_host_peer_send(sn_host_peer *p, const void *data, size_t len)
{
    if (!p || (!data && len)) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    if (p->state != PS_CONNECTED)
        return sn_fail(SN_ERR_UNCONFIGURED, "peer %u is not connected", p->id);
    if (is_keepalive(data, len))
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
    if (sn_dtls_peer_get_status(p->dtls) != SN_DTLS_STATUS_CONNECTED) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", sn_dtls_peer_get_error_message(p->dtls));
        to_zombie(h, p, SN_HOST_DISCONNECT_ERROR, msg);
        return sn_fail(e, "%s", msg);
    }
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
        p->udp = NULL;
        mark_dead(h, p);
        return;
    }
    to_zombie(h, p, SN_HOST_DISCONNECT_KICKED, "disconnected by this program");
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
    if (p->state == PS_CONNECTED) heap_earlier(p->host, p, connected_wake(p->host, p, sn_now_ms()));
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
    }
    return "UNKNOWN";
}
