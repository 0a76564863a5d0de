/* sn_host: the server tutorial's loop as one event-driven object (ENet's model over DTLS).
 *
 * What is where:
 * - Every peer lives in `peers` (for broadcast, stats and shutdown) and in an id table (for
 *   sn_host_find_peer). Peers are freed only at the start of the service call after their
 *   DISCONNECT (or silently, for incoming handshakes that never became connections), so every
 *   pointer handed out in an event stays valid until the next service call.
 * - I/O readiness: one epoll set holds the UDP server's socket and the socket of each outgoing
 *   peer (a client DTLS peer has its own connected socket). Incoming peers share the server's
 *   socket: sn_udp_server_poll puts every one that received datagrams on the server's ready
 *   list, tagged with its host peer, and the host polls exactly those. Nothing is scanned; the
 *   host holds no pointer to any UDP peer (the DTLS peer owns it).
 * - Timers: a binary min-heap of peers keyed by their next wake-up (handshake retransmission,
 *   idle deadline, keepalive). Keys are only moved earlier eagerly; a peer that wakes too early
 *   recomputes its deadline and goes back in, so per-packet work never touches the heap.
 * - Events: peers with something to tell the program sit in a FIFO ("deliver list"). Service
 *   takes one event from its head and moves the peer to the tail when it has more, so delivery
 *   is round-robin across peers. CONNECT, then packets, then DISCONNECT, per peer.
 * - Keepalives are application records with a reserved 13-byte form (docs/host.md); they are
 *   consumed when the peer's packets are read for delivery and never reach the program.
 */
#include "host_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
    /* The half-open limits are applied by the DTLS server's admit hook, where a session would
     * be created (sn_host_halfopen_admit), whatever else this address queued. */
    sn_addr addr;
    bool have_addr = sn_udp_peer_remote(udp, &addr);
    sn_dtls_peer *dp = sn_dtls_server_take_connection(h->dtls, udp);
    if (!dp) return; /* out of memory; udp already freed */
    if (sn_dtls_peer_get_status(dp) != SN_DTLS_STATUS_HANDSHAKING) {
        sn_dtls_peer_free(dp); /* HelloVerifyRequest sent, or not a ClientHello */
        return;
    }
    if (h->n_half_open >= (size_t)h->cfg.max_half_open) {
        /* The peek above saw only the first datagram: a cookie hello queued behind junk
         * opened a session anyway. The cap holds where the session is created (found by
         * fuzz_host, fuzz/regressions/fuzz_host/junk_then_cookie). */
        h->st.dropped_half_open++;
        sn_dtls_peer_free(dp);
        return;
    }
    sn_host_peer *p = sn_host_new_peer(h, false);
    if (!p) {
        sn_dtls_peer_free(dp);
        return;
    }
    p->dtls = dp;
    sn_dtls_peer_set_ready_tag(dp, p); /* the server's ready list now names this peer */
    snprintf(p->ip, sizeof p->ip, "%s", sn_dtls_peer_get_packet_ip(dp));
    p->port = sn_dtls_peer_get_packet_port(dp);
    p->state = PS_HANDSHAKING;
    p->started_ms = now;
    h->n_handshaking++;
    if (have_addr) sn_host_halfopen_add(h, p, &addr);
    h->n_half_open++;
    sn_host_halfopen_added(h);
    h->st.handshakes_started++;
    sn_host_after_poll(h, p, now); /* take_connection already processed the ClientHello */
}

/* Reads the server socket (when it is readable or its pending table has a timer due), accepts
 * new addresses, then polls the incoming peers on the ready list, within the budget. */
static void server_io(sn_host *h, uint64_t now, int *budget, bool readable)
{
    if (readable && sn_udp_server_poll(h->udp) != SN_OK) return;
    while (sn_udp_server_is_connection_available(h->udp)) {
        if (*budget <= 0) {
            h->more_work = true;
            break;
        }
        sn_udp_peer *udp = sn_udp_server_take_connection(h->udp);
        if (!udp) break;
        (*budget)--;
        accept_one(h, udp, now);
    }
    while (*budget > 0) {
        sn_udp_peer *ready = sn_udp_server_pop_ready(h->udp);
        if (!ready) break;
        sn_host_peer *p = sn_udp_peer_ready_tag(ready);
        if (!p || (p->state != PS_HANDSHAKING && p->state != PS_CONNECTED)) continue;
        (*budget)--;
        sn_host_poll_peer(h, p, now); /* may free `ready`: not used after this */
    }
    if (sn_udp_server_ready_count(h->udp) > 0) h->more_work = true;
}

/* ---- send batching ------------------------------------------------------------------------- */

/* The server socket's send queue (docs/host.md, "Send batching"): from the start of a service
 * pass until a service call returns without an event, the server is corked, so the program's
 * replies to one pass's events, and what the host itself sends during its I/O and timer rounds,
 * leave in one sendmmsg per flush rather than one sendto each. A flush comes before every
 * epoll_wait (nothing waits while the host sleeps) and after every I/O round. */
static void cork(sn_host *h)
{
    if (h->udp) sn_udp_server_set_corked(h->udp, true);
}

/* A datagram that failed in the batch put its peer on the server's ready list: the next I/O
 * round polls it and turns the failure into that peer's DISCONNECT. */
static void flush_sends(sn_host *h)
{
    if (!h->udp) return;
    sn_udp_server_flush(h->udp);
    if (sn_udp_server_ready_count(h->udp) > 0) h->more_work = true;
}

static void uncork(sn_host *h)
{
    if (!h->udp) return;
    sn_udp_server_set_corked(h->udp, false);
    if (sn_udp_server_ready_count(h->udp) > 0) h->more_work = true;
}

/* One round of I/O and timers; sleeps up to wait_ms in epoll_wait first. */
static int io_step(sn_host *h, int wait_ms)
{
    flush_sends(h); /* before sleeping: the replies of the last pass go out now */
    if (wait_ms > 0) h->st.waits++;
    bool overridden = sn_udp_transport_is_overridden();
    /* An override's datagrams never wake epoll: look again every millisecond instead. */
    if (wait_ms != 0 && overridden) wait_ms = 1;
    int n = 0;
    bool server_ready = false;
    if (wait_ms == 0 && h->udp && h->n_outgoing == 0) {
        /* A look without waiting when the server's socket is the only one: its recvmmsg says
         * as much as epoll_wait would, and saves that system call on every wake-up. */
        server_ready = true;
    } else if (wait_ms == 0 && overridden) {
        /* Every datagram goes through the override, never a socket, so epoll has nothing to
         * say: every socket is looked at below instead, and the system call is saved. */
    } else if ((n = epoll_wait(h->epfd, h->evs, MAX_EPOLL_EVENTS, wait_ms)) < 0) {
        if (errno != EINTR) {
            sn_fail(SN_FAILED, "epoll_wait: %s", strerror(errno));
            return -1;
        }
        n = 0;
    }
    uint64_t now = sn_now_ms();
    int budget = h->cfg.max_work_per_service;
    h->more_work = false;
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
        sn_host_poll_peer(h, p, now);
    }
    if (overridden) {
        /* The transport override delivers what epoll cannot see: every socket may be
         * readable. O(outgoing peers), only while an override is installed (tests, fuzzing). */
        server_ready = true;
        for (size_t i = 0; i < h->npeers && budget > 0; i++) {
            sn_host_peer *p = h->peers[i];
            if (!p->outgoing || (p->state != PS_HANDSHAKING && p->state != PS_CONNECTED)) continue;
            budget--;
            sn_host_poll_peer(h, p, now);
        }
    }
    if (h->udp) {
        bool readable = server_ready || sn_udp_server_next_timeout_ms(h->udp) == 0;
        if (readable || sn_udp_server_ready_count(h->udp) > 0) server_io(h, now, &budget, readable);
    }
    while (h->nheap && h->heap[0]->wake_ms <= now) {
        if (budget <= 0) {
            h->more_work = true;
            break;
        }
        budget--;
        sn_host_peer *p = h->heap[0];
        sn_host_heap_remove(h, p);
        sn_host_on_timer(h, p, now);
    }
    flush_sends(h); /* handshake flights, pongs and pings of this round */
    return 0;
}

/* ---- public: host -------------------------------------------------------------------------- */

void sn_host_default_config(sn_host_config *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    out->bind_address = NULL;
    out->port = 0;
    out->server_options = NULL;
    sn_dtls_settings dtls; /* one source for the defaults the two layers share */
    sn_dtls_default_settings(&dtls);
    out->max_peers = 4096;
    out->max_half_open = dtls.max_half_open;
    out->max_half_open_per_source = dtls.max_half_open_per_source;
    out->pressure_handshake_timeout_ms = SN_DTLS_PRESSURE_TIMEOUT_MS;
    out->idle_timeout_ms = 30000;
    out->handshake_timeout_ms = dtls.handshake_timeout_ms;
    out->keepalive_interval_ms = 1000;
    out->mtu = dtls.mtu;
    out->max_work_per_service = 256;
    out->recv_buffer_size = 4 << 20;
}

static sn_err check_config(const sn_host_config *c)
{
    if (c->max_peers < 1) return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "max_peers must be >= 1");
    if (c->max_half_open < 1)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "max_half_open must be >= 1");
    if (c->max_half_open_per_source < 1)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "max_half_open_per_source must be >= 1");
    if (c->pressure_handshake_timeout_ms < 100)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "pressure_handshake_timeout_ms must be >= 100");
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
        if (!(h->udp = sn_udp_server_new()) || !(h->dtls = sn_dtls_server_new()) ||
            !sn_host_halfopen_init(h))
            goto fail;
        sn_dtls_server_set_admit(h->dtls, sn_host_halfopen_admit, h);
        /* Best effort, before listen so it applies from the first datagram. */
        if (config->recv_buffer_size > 0)
            sn_udp_server_set_recv_buffer_size(h->udp, config->recv_buffer_size);
        if (config->reuse_port && sn_udp_server_set_reuse_port(h->udp, true) != SN_OK) goto fail;
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
    sn_host_halfopen_free(h);
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
    uncork(h);
    /* Peers first: a server-side peer sends its close_notify through the server's socket. */
    while (h->npeers)
        sn_host_release_peer(h, h->peers[h->npeers - 1]);
    sn_dtls_server_free(h->dtls);
    sn_udp_server_free(h->udp);
    sn_host_halfopen_free(h);
    close(h->epfd);
    sn_free(h->peers);
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
    /* Queued sends leave at the next service call; failed ones are reported by it. */
    if (h->udp && (sn_udp_server_queued_sends(h->udp) || sn_udp_server_ready_count(h->udp)))
        return 0;
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
    sn_host_free_dead(h);
    /* Another event of the same pass: the replies to the previous ones stay queued. */
    if (sn_host_deliver(h, ev)) return 1;
    cork(h);
    /* The clock is read only for a timeout that needs it (a poll with 0 is the common call). */
    uint64_t start = timeout_ms > 0 ? sn_now_ms() : 0;
    int wait = 0;
    for (;;) {
        if (io_step(h, wait) < 0) {
            uncork(h);
            return -1;
        }
        if (sn_host_deliver(h, ev)) return 1; /* still corked: the program's replies queue */
        uint64_t elapsed = timeout_ms > 0 ? sn_now_ms() - start : 0;
        if (timeout_ms >= 0 && elapsed >= (uint64_t)timeout_ms) {
            uncork(h); /* no pass in progress: sends between service calls go out at once */
            return 0;
        }
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
    sn_host_peer *p = sn_host_new_peer(h, true);
    if (!p) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(p->ip, sizeof p->ip, "%s", address);
    p->port = port;
    p->state = PS_HANDSHAKING; /* for the counters; left at once on failure below */
    h->n_handshaking++;
    if (h->n_handshaking + h->n_connected > (size_t)h->cfg.max_peers) {
        char msg[96];
        snprintf(msg, sizeof msg, "this host is full (max_peers %d)", h->cfg.max_peers);
        sn_host_to_zombie(h, p, SN_HOST_DISCONNECT_REFUSED, msg);
        return p;
    }
    sn_udp_peer *udp = sn_udp_peer_new();
    if (!udp || sn_udp_peer_connect_to_host(udp, address, port) != SN_OK ||
        !(p->dtls = sn_dtls_peer_new())) {
        /* Bad address or no memory: the program's mistake, answered now. */
        sn_udp_peer_free(udp);
        char keep[256];
        snprintf(keep, sizeof keep, "%s", sn_last_error_message());
        sn_host_mark_dead(h, p);
        /* Not visible to the program: free it now rather than at the next service. */
        h->dead = p->next_dead;
        sn_host_release_peer(h, p);
        return sn_fail_null(SN_ERR_CANT_CONNECT, "%s", keep);
    }
    sn_dtls_peer_set_settings(p->dtls, &h->dtls_settings);
    h->st.handshakes_started++;
    if (sn_dtls_peer_connect_to_peer(p->dtls, udp, hostname ? hostname : address, client_options) !=
        SN_OK) {
        const char *why = sn_dtls_peer_get_error_message(p->dtls);
        sn_host_handshake_failed(h, p, SN_HOST_DISCONNECT_HANDSHAKE_FAILED,
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
            sn_host_handshake_failed(h, p, SN_HOST_DISCONNECT_HANDSHAKE_FAILED, msg);
            return p;
        }
    }
    sn_host_after_poll(h, p, now);
    return p;
}

int sn_host_broadcast(sn_host *h, const void *data, size_t len, const sn_host_peer *except)
{
    if (!h || (!data && len)) {
        sn_fail(SN_ERR_INVALID_PARAMETER, "sn_host_broadcast: NULL argument");
        return -1;
    }
    int sent = 0;
    /* One sendmmsg per 64 peers, unless a pass is in progress (then its flush sends them). */
    bool corked = h->udp && sn_udp_server_is_corked(h->udp);
    cork(h);
    /* Indexes, not pointers: a send that fails fatally only changes state, never the array. */
    for (size_t i = 0; i < h->npeers; i++) {
        sn_host_peer *p = h->peers[i];
        if (p == except || p->state != PS_CONNECTED || !p->announced) continue;
        if (sn_host_peer_send(p, data, len) == SN_OK) sent++;
    }
    if (!corked) uncork(h);
    return sent;
}

void sn_host_flush(sn_host *h)
{
    if (h) flush_sends(h);
}

sn_host_peer *sn_host_find_peer(const sn_host *h, uint32_t id)
{
    if (!h || !h->cap_ids || id == 0) return NULL;
    size_t mask = h->cap_ids - 1;
    for (size_t i = sn_host_id_slot(id, h->cap_ids); h->ids[i]; i = (i + 1) & mask)
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
