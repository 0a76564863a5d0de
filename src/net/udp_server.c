/* sn_udp_server: Godot's UDPServer with batched reads, O(1) routing and a ready list.
 *
 * poll() drains the socket with recvmmsg (batch per syscall, bounded per call) straight into
 * slots that become queue nodes, and routes each datagram through the hub's address table
 * (udp_hub.c). A taken peer that receives a datagram joins the ready list, so whoever polls the
 * peers (the DTLS layer, the host) visits only those with work instead of scanning them all.
 */
#include "udp_internal.h"
#include "udp_sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct sn_udp_server {
    sn_udp_hub hub; /* socket, address table, lists, ready list, counters: shared with peers */
    int max_pending;
    int pending_timeout_ms;
    size_t q_packets, q_bytes;
    unsigned batch, cap;
    size_t max_dgram;
    int rcvbuf;
    bool reuse_port;  /* SO_REUSEPORT at the next listen (sn_udp_server_set_reuse_port) */
    bool no_batching; /* sn_udp_server_set_send_batching(false): corking does nothing */
    sn_udp_rx *rx;
    sn_udp_pool *pool;
};

/* Removes a pending connection the program never saw. */
static void discard_pending(sn_udp_server *s, sn_udp_peer *p)
{
    sn_udp_hub_forget(&s->hub, p);
    sn_udp_peer_free_pending(p);
}

sn_udp_peer *sn_udp_server_lookup(const sn_udp_server *s, const struct sockaddr *sa)
{
    if (!s || !sa) return NULL;
    sn_udp_key key;
    sn_udp_key_from(sa, &key);
    return sn_udp_hub_find(&s->hub, &key, sn_udp_hub_hash(&s->hub, &key));
}

static sn_err poll_hub(sn_udp_hub *hub)
{
    /* The hub is the server's first member. */
    return sn_udp_server_poll((sn_udp_server *)(void *)hub);
}

/* ---- life cycle ----------------------------------------------------------------------- */

sn_udp_server *sn_udp_server_new(void)
{
    sn_udp_server *s = sn_calloc(1, sizeof *s);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory creating a UDP server");
    s->hub.fd = -1;
    s->hub.poll = poll_hub;
    s->max_pending = SN_UDP_DEFAULT_MAX_PENDING;
    s->pending_timeout_ms = SN_UDP_DEFAULT_PENDING_TIMEOUT_MS;
    s->q_packets = SN_UDP_DEFAULT_QUEUE_PACKETS;
    s->q_bytes = SN_UDP_DEFAULT_QUEUE_BYTES;
    s->batch = SN_UDP_DEFAULT_BATCH;
    s->cap = SN_UDP_DEFAULT_POLL_CAP;
    s->max_dgram = SN_UDP_DEFAULT_SLOT;
    if (getrandom(s->hub.key, sizeof s->hub.key, 0) != (ssize_t)sizeof s->hub.key) {
        /* No entropy source: still keyed per process and per object, weaker but working. */
        s->hub.key[0] = sn_now_ms() ^ (uint64_t)(uintptr_t)s;
        s->hub.key[1] = (uint64_t)(unsigned)getpid() * 0x9e3779b97f4a7c15ULL;
    }
    return s;
}

static void apply_rcvbuf(sn_udp_server *s)
{
    if (s->hub.fd < 0 || s->rcvbuf <= 0) return;
    int want = s->rcvbuf, got = 0;
    socklen_t sl = sizeof got;
    setsockopt(s->hub.fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    /* The kernel reports twice what it grants; below the request means rmem_max capped it. */
    if (getsockopt(s->hub.fd, SOL_SOCKET, SO_RCVBUF, &got, &sl) == 0 && got / 2 < want)
        setsockopt(s->hub.fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want);
}

void sn_udp_server_stop(sn_udp_server *s)
{
    if (!s) return;
    sn_udp_hub *hub = &s->hub;
    sn_udp_sendq_flush(hub); /* what the peers queued still leaves */
    sn_udp_sendq_free(hub);
    while (hub->pend_head) {
        hub->st.pending_discarded++;
        discard_pending(s, hub->pend_head);
    }
    while (hub->taken_head) {
        sn_udp_peer *p = hub->taken_head;
        sn_udp_hub_forget(hub, p);
        sn_udp_peer_detach(p);
    }
    sn_free(hub->table);
    hub->table = NULL;
    hub->tcap = hub->tcount = 0;
    sn_udp_rx_free(s->rx);
    s->rx = NULL;
    /* Datagrams still queued on detached peers keep their blocks; the pool goes with the last. */
    sn_udp_pool_release(s->pool);
    s->pool = NULL;
    sn_udp_sys_close(hub->fd);
    hub->fd = -1;
    hub->port = 0;
}

void sn_udp_server_free(sn_udp_server *s)
{
    if (!s) return;
    sn_udp_server_stop(s);
    sn_free(s);
}

sn_err sn_udp_server_listen(sn_udp_server *s, int port, const char *bind_address)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "listen: server is NULL");
    if (s->hub.fd >= 0)
        return sn_fail(SN_ERR_ALREADY_IN_USE, "listen: server is already listening");
    sn_err e;
    int fd = sn_net_open_bound(SOCK_DGRAM, port, bind_address,
                               s->reuse_port ? SN_NET_REUSE_PORT : 0, &e);
    if (fd < 0) return e;
    s->hub.fd = fd;
    sn_udp_sys_forget(fd);
    s->hub.port = sn_net_local_port(fd);
    apply_rcvbuf(s);
    return SN_OK;
}

sn_err sn_udp_server_set_reuse_port(sn_udp_server *s, bool enabled)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_reuse_port: server is NULL");
    if (s->hub.fd >= 0)
        return sn_fail(SN_ERR_ALREADY_IN_USE,
                       "set_reuse_port: the server is already listening (set it before listen)");
    s->reuse_port = enabled;
    return SN_OK;
}

bool sn_udp_server_get_reuse_port(const sn_udp_server *s)
{
    return s && s->reuse_port;
}

bool sn_udp_server_is_listening(const sn_udp_server *s)
{
    return s && s->hub.fd >= 0;
}

int sn_udp_server_get_local_port(const sn_udp_server *s)
{
    return s && s->hub.fd >= 0 ? s->hub.port : 0;
}

int sn_udp_server_get_fd(const sn_udp_server *s)
{
    return s ? s->hub.fd : -1;
}

sn_udp_peer *sn_udp_server_pop_ready(sn_udp_server *s)
{
    return s ? sn_udp_hub_ready_pop(&s->hub) : NULL;
}

size_t sn_udp_server_ready_count(const sn_udp_server *s)
{
    return s ? s->hub.ready_count : 0;
}

void sn_udp_server_set_send_batching(sn_udp_server *s, bool enabled)
{
    if (!s) return;
    if (!enabled) sn_udp_server_set_corked(s, false);
    s->no_batching = !enabled;
}

void sn_udp_server_set_corked(sn_udp_server *s, bool corked)
{
    if (!s || s->hub.corked == corked || (corked && s->no_batching)) return;
    if (!corked) sn_udp_sendq_flush(&s->hub);
    s->hub.corked = corked;
}

bool sn_udp_server_is_corked(const sn_udp_server *s)
{
    return s && s->hub.corked;
}

void sn_udp_server_flush(sn_udp_server *s)
{
    if (s) sn_udp_sendq_flush(&s->hub);
}

size_t sn_udp_server_queued_sends(const sn_udp_server *s)
{
    return s ? sn_udp_sendq_count(&s->hub) : 0;
}

/* ---- poll ----------------------------------------------------------------------------- */

static SN_UDP_OUT_OF_LINE void expire(sn_udp_server *s, uint64_t now)
{
    if (s->pending_timeout_ms <= 0) return;
    sn_udp_hub *hub = &s->hub;
    while (hub->pend_head && now - hub->pend_head->created_ms >= (uint64_t)s->pending_timeout_ms) {
        hub->st.pending_expired++;
        discard_pending(s, hub->pend_head);
    }
}

/* Routes datagram i to its peer, opening a pending connection for a new source. */
static void route(sn_udp_server *s, unsigned i, const sn_udp_key *key, uint64_t h, uint64_t now)
{
    sn_udp_rx *rx = s->rx;
    size_t len = sn_udp_rx_len(rx, i);
    const sn_udp_pkt *slot = rx->slots[i];
    sn_udp_hub *hub = &s->hub;
    sn_udp_peer *p = sn_udp_hub_find(hub, key, h);
    if (!p) {
        if (hub->pend_count >= (size_t)s->max_pending) {
            hub->st.dropped_pending_full++;
            return;
        }
        p = sn_udp_peer_new_owned(hub, &slot->from, rx->msgs[i].msg_hdr.msg_namelen, s->q_packets,
                                  s->q_bytes);
        if (p) {
            p->hash = h;
            if (!sn_udp_hub_insert(hub, p)) {
                sn_udp_peer_free_pending(p);
                p = NULL;
            }
        }
        if (!p) {
            hub->st.dropped_no_memory++;
            return;
        }
        p->created_ms = now;
        sn_udp_hub_pending_append(hub, p);
        hub->st.pending_opened++;
    }
    if (p->q.count >= p->max_packets || p->q.bytes + len > p->max_bytes) {
        p->stats.dropped_queue_full++;
        hub->st.dropped_queue_full++;
        return;
    }
    sn_udp_queue_push(&p->q, sn_udp_rx_take(rx, i));
    p->stats.datagrams_received++;
    p->stats.bytes_received += len;
    hub->st.datagrams_routed++;
    if (!p->pending) sn_udp_hub_ready_push(hub, p);
}

/* Routes a batch in three passes so that memory latency overlaps instead of adding up with many
 * peers: hash every source and prefetch its table slot; find the slot whose hash matches and
 * prefetch that peer's first cache lines; then look up (now from cache) and queue. */
#define SN_UDP_ROUTE_CHUNK 64

/* The first two passes for datagrams [base, base + m): keys, hashes and prefetches. Decides
 * nothing (the hash is keyed per server at random, so how far a probe goes differs from run to
 * run): out of line, and left uninstrumented by the fuzz builds. */
static SN_UDP_OUT_OF_LINE void route_prefetch(const sn_udp_server *s, unsigned base, unsigned m,
                                              sn_udp_key *keys, uint64_t *hashes)
{
    const sn_udp_rx *rx = s->rx;
    const sn_udp_hub *hub = &s->hub;
    size_t mask = hub->tcap ? hub->tcap - 1 : 0;
    for (unsigned i = 0; i < m; i++) {
        sn_udp_key_from(&rx->slots[base + i]->from.sa, &keys[i]);
        hashes[i] = sn_udp_hub_hash(hub, &keys[i]);
        if (hub->tcap) __builtin_prefetch(&hub->table[(size_t)hashes[i] & mask]);
    }
    if (hub->tcap)
        for (unsigned i = 0; i < m; i++)
            for (size_t j = (size_t)hashes[i] & mask;; j = (j + 1) & mask) {
                const sn_udp_slot *t = &hub->table[j];
                if (!t->p) break;
                if (t->hash == hashes[i]) {
                    __builtin_prefetch(t->p, 1);
                    __builtin_prefetch((const char *)t->p + 64, 1);
                    __builtin_prefetch((const char *)t->p + 128, 1);
                    break;
                }
            }
}

static SN_UDP_OUT_OF_LINE void route_batch(sn_udp_server *s, unsigned n, uint64_t now)
{
    sn_udp_rx *rx = s->rx;
    sn_udp_key keys[SN_UDP_ROUTE_CHUNK];
    uint64_t hashes[SN_UDP_ROUTE_CHUNK];
    for (unsigned base = 0; base < n; base += SN_UDP_ROUTE_CHUNK) {
        unsigned m = n - base < SN_UDP_ROUTE_CHUNK ? n - base : SN_UDP_ROUTE_CHUNK;
        route_prefetch(s, base, m, keys, hashes);
        for (unsigned i = 0; i < m; i++) {
            unsigned k = base + i;
            s->hub.st.datagrams_received++;
            if (sn_udp_rx_truncated(rx, k)) {
                s->hub.st.dropped_oversize++;
                continue;
            }
            s->hub.st.bytes_received += sn_udp_rx_len(rx, k);
            route(s, k, &keys[i], hashes[i], now);
        }
    }
}

/* Free chunks the pool keeps: enough for one poll's worth of datagrams plus the slots, so a
 * steady flow reuses memory instead of mapping and faulting it in again. */
static size_t keep_chunks(const sn_udp_server *s)
{
    return (s->cap + s->batch) / SN_UDP_POOL_CHUNK_BLOCKS + 1;
}

sn_err sn_udp_server_poll(sn_udp_server *s)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "poll: server is NULL");
    if (s->hub.fd < 0) return sn_fail(SN_ERR_UNCONFIGURED, "poll: server is not listening");
    uint64_t now = sn_now_ms();
    expire(s, now);
    if (!s->pool && !(s->pool = sn_udp_pool_new(keep_chunks(s))))
        return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory for UDP receive buffers");
    if (!s->rx && !(s->rx = sn_udp_rx_new(s->batch, s->max_dgram, s->pool)))
        return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory for UDP receive buffers");
    unsigned total = 0;
    while (total < s->cap) {
        unsigned want = s->cap - total < s->batch ? s->cap - total : s->batch;
        int r = sn_udp_rx_recv(s->rx, s->hub.fd, want);
        if (r < 0 && errno == ENOMEM)
            return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory for UDP receive buffers");
        s->hub.st.recv_syscalls++;
        if (r < 0) {
            /* ICMP errors and the like are reported per socket, not per peer: note and stop. */
            s->hub.st.recv_errors++;
            break;
        }
        route_batch(s, (unsigned)r, now);
        total += (unsigned)r;
        if ((unsigned)r < want) break;
    }
    if (total >= s->cap) s->hub.st.polls_capped++;
    return SN_OK;
}

bool sn_udp_server_is_connection_available(const sn_udp_server *s)
{
    return s && s->hub.pend_head != NULL;
}

sn_udp_peer *sn_udp_server_take_connection(sn_udp_server *s)
{
    if (!s || !s->hub.pend_head) return NULL;
    sn_udp_peer *p = s->hub.pend_head;
    sn_udp_hub_pending_unlink(&s->hub, p);
    sn_udp_hub_taken_push(&s->hub, p);
    s->hub.st.pending_taken++;
    return p;
}

/* ---- settings ------------------------------------------------------------------------- */

void sn_udp_server_set_max_pending_connections(sn_udp_server *s, int max)
{
    if (!s) return;
    if (max < 0) max = 0;
    s->max_pending = max;
    /* Unlike Godot's inverted loop: only the newest extras go. */
    while (s->hub.pend_count > (size_t)max) {
        s->hub.st.pending_discarded++;
        discard_pending(s, s->hub.pend_tail);
    }
}

int sn_udp_server_get_max_pending_connections(const sn_udp_server *s)
{
    return s ? s->max_pending : 0;
}

void sn_udp_server_set_pending_timeout_ms(sn_udp_server *s, int ms)
{
    if (s) s->pending_timeout_ms = ms;
}

int sn_udp_server_get_pending_timeout_ms(const sn_udp_server *s)
{
    return s ? s->pending_timeout_ms : 0;
}

int sn_udp_server_next_timeout_ms(const sn_udp_server *s)
{
    if (!s || s->hub.fd < 0 || !s->hub.pend_head || s->pending_timeout_ms <= 0) return -1;
    uint64_t due = s->hub.pend_head->created_ms + (uint64_t)s->pending_timeout_ms,
             now = sn_now_ms();
    return now >= due ? 0 : (int)(due - now);
}

sn_err sn_udp_server_set_queue_limits(sn_udp_server *s, size_t max_packets, size_t max_bytes)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_queue_limits: server is NULL");
    if (max_packets) s->q_packets = max_packets;
    if (max_bytes) s->q_bytes = max_bytes;
    return SN_OK;
}

sn_err sn_udp_server_set_poll_limits(sn_udp_server *s, int batch, int max_per_poll)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_poll_limits: server is NULL");
    if (batch < 1 || batch > SN_UDP_MAX_BATCH)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "batch %d out of range (1..%d)", batch,
                       SN_UDP_MAX_BATCH);
    if (max_per_poll < batch)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "per-poll cap %d below the batch size %d",
                       max_per_poll, batch);
    if ((unsigned)batch != s->batch && s->rx && !sn_udp_rx_set_batch(s->rx, (unsigned)batch)) {
        sn_udp_rx_free(s->rx);
        s->rx = NULL;
    }
    s->batch = (unsigned)batch;
    s->cap = (unsigned)max_per_poll;
    sn_udp_pool_set_keep(s->pool, keep_chunks(s));
    return SN_OK;
}

sn_err sn_udp_server_set_max_datagram_size(sn_udp_server *s, int size)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_max_datagram_size: server is NULL");
    if (size < 1 || size > 65535)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "datagram size %d out of range (1..65535)",
                       size);
    if ((size_t)size != s->max_dgram && s->rx && !sn_udp_rx_set_slot_cap(s->rx, (size_t)size)) {
        sn_udp_rx_free(s->rx);
        s->rx = NULL;
    }
    s->max_dgram = (size_t)size;
    return SN_OK;
}

sn_err sn_udp_server_set_recv_buffer_size(sn_udp_server *s, int bytes)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_recv_buffer_size: server is NULL");
    if (bytes < 0)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "receive buffer size %d is negative", bytes);
    s->rcvbuf = bytes;
    apply_rcvbuf(s);
    return SN_OK;
}

void sn_udp_server_get_stats(const sn_udp_server *s, sn_udp_server_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!s) return;
    *out = s->hub.st;
    out->pending_now = s->hub.pend_count;
    out->taken_now = s->hub.taken_count;
    out->table_capacity = s->hub.tcap;
    out->dropped_kernel = sn_udp_sys_drops(s->hub.fd);
}
