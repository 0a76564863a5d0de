/* sn_udp_server: Godot's UDPServer with batched reads and O(1) routing.
 *
 * poll() drains the socket with recvmmsg (batch per syscall, bounded per call) straight into
 * slots that become queue nodes, and routes each datagram through an open-addressing table
 * keyed by (address, port). The table hashes with SipHash-1-3 under a per-server random key, so
 * remote senders cannot choose addresses that collide.
 */
#include "udp_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

typedef struct sn_udp_slot {
    uint64_t hash;
    sn_udp_peer *p; /* NULL: empty */
} sn_udp_slot;

struct sn_udp_server {
    int fd;
    int port;
    int max_pending;
    int pending_timeout_ms;
    size_t q_packets, q_bytes;
    unsigned batch, cap;
    size_t max_dgram;
    int rcvbuf;
    bool reuse_port;
    sn_udp_rx *rx;
    sn_udp_pool *pool;
    sn_udp_slot *table;
    size_t tcap, tcount;
    uint64_t key[2];
    sn_udp_peer *pend_head, *pend_tail;
    size_t pend_count;
    sn_udp_peer *taken_head;
    size_t taken_count;
    sn_udp_server_stats st;
};

/* ---- hashing -------------------------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 of the 24-byte key. */
static uint64_t key_hash(const sn_udp_server *s, const sn_udp_key *key)
{
    uint64_t m[3];
    _Static_assert(sizeof *key == sizeof m, "key is three words");
    memcpy(m, key, sizeof m);
    uint64_t v0 = s->key[0] ^ 0x736f6d6570736575ULL, v1 = s->key[1] ^ 0x646f72616e646f6dULL;
    uint64_t v2 = s->key[0] ^ 0x6c7967656e657261ULL, v3 = s->key[1] ^ 0x7465646279746573ULL;
    for (int i = 0; i < 3; i++) {
        v3 ^= m[i];
        SIPROUND;
        v0 ^= m[i];
    }
    uint64_t b = (uint64_t)24 << 56;
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- address table (linear probing, backward-shift deletion, load <= 1/2) -------------- */

static sn_udp_peer *table_find(const sn_udp_server *s, const sn_udp_key *key, uint64_t h)
{
    if (!s->tcap) return NULL;
    size_t mask = s->tcap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const sn_udp_slot *t = &s->table[i];
        if (!t->p) return NULL;
        if (t->hash == h && !memcmp(&t->p->key, key, sizeof *key)) return t->p;
    }
}

static void table_put(sn_udp_slot *table, size_t cap, uint64_t h, sn_udp_peer *p)
{
    size_t mask = cap - 1, i = (size_t)h & mask;
    while (table[i].p)
        i = (i + 1) & mask;
    table[i].hash = h;
    table[i].p = p;
}

static bool table_insert(sn_udp_server *s, sn_udp_peer *p)
{
    if ((s->tcount + 1) * 2 > s->tcap) {
        size_t ncap = s->tcap ? s->tcap * 2 : 64;
        sn_udp_slot *nt = sn_calloc(ncap, sizeof *nt);
        if (!nt) {
            /* Keep working at a higher load while there is room; never fill the table. */
            if ((s->tcount + 1) * 8 > s->tcap * 7) return false;
        } else {
            for (size_t i = 0; i < s->tcap; i++)
                if (s->table[i].p) table_put(nt, ncap, s->table[i].hash, s->table[i].p);
            sn_free(s->table);
            s->table = nt;
            s->tcap = ncap;
        }
    }
    table_put(s->table, s->tcap, p->hash, p);
    s->tcount++;
    return true;
}

static void table_remove(sn_udp_server *s, const sn_udp_peer *p)
{
    if (!s->tcap) return;
    size_t mask = s->tcap - 1, i = (size_t)p->hash & mask;
    for (;; i = (i + 1) & mask) {
        if (!s->table[i].p) return; /* not registered */
        if (s->table[i].p == p) break;
    }
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->table[j].p) break;
        size_t k = (size_t)s->table[j].hash & mask;
        /* Entry j may stay when its home k lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        s->table[i] = s->table[j];
        i = j;
    }
    s->table[i].p = NULL;
    s->table[i].hash = 0;
    s->tcount--;
}

sn_udp_peer *sn_udp_server_lookup(const sn_udp_server *s, const struct sockaddr *sa)
{
    if (!s || !sa) return NULL;
    sn_udp_key key;
    sn_udp_key_from(sa, &key);
    return table_find(s, &key, key_hash(s, &key));
}

/* ---- lists ---------------------------------------------------------------------------- */

static void pending_unlink(sn_udp_server *s, sn_udp_peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        s->pend_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        s->pend_tail = p->prev;
    p->prev = p->next = NULL;
    s->pend_count--;
}

static void taken_unlink(sn_udp_server *s, sn_udp_peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        s->taken_head = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
    s->taken_count--;
}

/* Removes a pending connection the program never saw. */
static void discard_pending(sn_udp_server *s, sn_udp_peer *p)
{
    table_remove(s, p);
    pending_unlink(s, p);
    sn_udp_peer_free_pending(p);
}

void sn_udp_server_forget_peer(sn_udp_server *s, sn_udp_peer *p)
{
    table_remove(s, p);
    if (p->pending)
        pending_unlink(s, p);
    else
        taken_unlink(s, p);
}

int sn_udp_server_fd(const sn_udp_server *s)
{
    return s ? s->fd : -1;
}

void sn_udp_server_count_send(sn_udp_server *s, size_t bytes, sn_err result)
{
    if (!s) return;
    if (result == SN_OK) {
        s->st.datagrams_sent++;
        s->st.bytes_sent += bytes;
    } else if (result == SN_ERR_BUSY) {
        s->st.send_busy++;
    } else {
        s->st.send_errors++;
    }
}

/* ---- life cycle ----------------------------------------------------------------------- */

sn_udp_server *sn_udp_server_new(void)
{
    sn_udp_server *s = sn_calloc(1, sizeof *s);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory creating a UDP server");
    s->fd = -1;
    s->max_pending = SN_UDP_DEFAULT_MAX_PENDING;
    s->pending_timeout_ms = SN_UDP_DEFAULT_PENDING_TIMEOUT_MS;
    s->q_packets = SN_UDP_DEFAULT_QUEUE_PACKETS;
    s->q_bytes = SN_UDP_DEFAULT_QUEUE_BYTES;
    s->batch = SN_UDP_DEFAULT_BATCH;
    s->cap = SN_UDP_DEFAULT_POLL_CAP;
    s->max_dgram = SN_UDP_DEFAULT_SLOT;
    if (getrandom(s->key, sizeof s->key, 0) != (ssize_t)sizeof s->key) {
        /* No entropy source: still keyed per process and per object, weaker but working. */
        s->key[0] = sn_now_ms() ^ (uint64_t)(uintptr_t)s;
        s->key[1] = (uint64_t)(unsigned)getpid() * 0x9e3779b97f4a7c15ULL;
    }
    return s;
}

static void apply_rcvbuf(sn_udp_server *s)
{
    if (s->fd < 0 || s->rcvbuf <= 0) return;
    int want = s->rcvbuf, got = 0;
    socklen_t sl = sizeof got;
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    /* The kernel reports twice what it grants; below the request means rmem_max capped it. */
    if (getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &got, &sl) == 0 && got / 2 < want)
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want);
}

void sn_udp_server_stop(sn_udp_server *s)
{
    if (!s) return;
    while (s->pend_head) {
        s->st.pending_discarded++;
        discard_pending(s, s->pend_head);
    }
    while (s->taken_head) {
        sn_udp_peer *p = s->taken_head;
        table_remove(s, p);
        taken_unlink(s, p);
        sn_udp_peer_detach(p);
    }
    sn_free(s->table);
    s->table = NULL;
    s->tcap = s->tcount = 0;
    sn_udp_rx_free(s->rx);
    s->rx = NULL;
    /* Datagrams still queued on detached peers keep their blocks; the pool goes with the last. */
    sn_udp_pool_release(s->pool);
    s->pool = NULL;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->port = 0;
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
    if (s->fd >= 0) return sn_fail(SN_ERR_ALREADY_IN_USE, "listen: server is already listening");
    sn_err e;
    int fd =
        sn_net_open_bound_flags(SOCK_DGRAM, port, bind_address,
                                SN_NET_REUSE_ADDR | (s->reuse_port ? SN_NET_REUSE_PORT : 0u), &e);
    if (fd < 0) return e;
    s->fd = fd;
    s->port = sn_net_local_port(fd);
    apply_rcvbuf(s);
    return SN_OK;
}

bool sn_udp_server_is_listening(const sn_udp_server *s)
{
    return s && s->fd >= 0;
}

int sn_udp_server_get_local_port(const sn_udp_server *s)
{
    return s && s->fd >= 0 ? s->port : 0;
}

int sn_udp_server_get_fd(const sn_udp_server *s)
{
    return s ? s->fd : -1;
}

/* ---- poll ----------------------------------------------------------------------------- */

static void expire(sn_udp_server *s, uint64_t now)
{
    if (s->pending_timeout_ms <= 0) return;
    while (s->pend_head && now - s->pend_head->created_ms >= (uint64_t)s->pending_timeout_ms) {
        s->st.pending_expired++;
        discard_pending(s, s->pend_head);
    }
}

/* Routes datagram i to its peer, opening a pending connection for a new source. */
static void route(sn_udp_server *s, unsigned i, const sn_udp_key *key, uint64_t h, uint64_t now)
{
    sn_udp_rx *rx = s->rx;
    size_t len = sn_udp_rx_len(rx, i);
    const sn_udp_pkt *slot = rx->slots[i];
    sn_udp_peer *p = table_find(s, key, h);
    if (!p) {
        if (s->pend_count >= (size_t)s->max_pending) {
            s->st.dropped_pending_full++;
            return;
        }
        p = sn_udp_peer_new_owned(s, &slot->from, rx->msgs[i].msg_hdr.msg_namelen, s->q_packets,
                                  s->q_bytes);
        if (p) {
            p->hash = h;
            if (!table_insert(s, p)) {
                sn_udp_peer_free_pending(p);
                p = NULL;
            }
        }
        if (!p) {
            s->st.dropped_no_memory++;
            return;
        }
        p->created_ms = now;
        p->prev = s->pend_tail;
        if (s->pend_tail)
            s->pend_tail->next = p;
        else
            s->pend_head = p;
        s->pend_tail = p;
        s->pend_count++;
        s->st.pending_opened++;
    }
    if (p->q.count >= p->max_packets || p->q.bytes + len > p->max_bytes) {
        p->stats.dropped_queue_full++;
        s->st.dropped_queue_full++;
        return;
    }
    sn_udp_queue_push(&p->q, sn_udp_rx_take(rx, i));
    p->stats.datagrams_received++;
    p->stats.bytes_received += len;
    s->st.datagrams_routed++;
}

/* Routes a batch in three passes so that memory latency overlaps instead of adding up with many
 * peers: hash every source and prefetch its table slot; find the slot whose hash matches and
 * prefetch that peer's first cache lines; then look up (now from cache) and queue. */
#define SN_UDP_ROUTE_CHUNK 64
static void route_batch(sn_udp_server *s, unsigned n, uint64_t now)
{
    sn_udp_rx *rx = s->rx;
    sn_udp_key keys[SN_UDP_ROUTE_CHUNK];
    uint64_t hashes[SN_UDP_ROUTE_CHUNK];
    for (unsigned base = 0; base < n; base += SN_UDP_ROUTE_CHUNK) {
        unsigned m = n - base < SN_UDP_ROUTE_CHUNK ? n - base : SN_UDP_ROUTE_CHUNK;
        size_t mask = s->tcap ? s->tcap - 1 : 0;
        for (unsigned i = 0; i < m; i++) {
            sn_udp_key_from(&rx->slots[base + i]->from.sa, &keys[i]);
            hashes[i] = key_hash(s, &keys[i]);
            if (s->tcap) __builtin_prefetch(&s->table[(size_t)hashes[i] & mask]);
        }
        if (s->tcap)
            for (unsigned i = 0; i < m; i++)
                for (size_t j = (size_t)hashes[i] & mask;; j = (j + 1) & mask) {
                    const sn_udp_slot *t = &s->table[j];
                    if (!t->p) break;
                    if (t->hash == hashes[i]) {
                        __builtin_prefetch(t->p, 1);
                        __builtin_prefetch((const char *)t->p + 64, 1);
                        __builtin_prefetch((const char *)t->p + 128, 1);
                        break;
                    }
                }
        for (unsigned i = 0; i < m; i++) {
            unsigned k = base + i;
            s->st.datagrams_received++;
            if (sn_udp_rx_truncated(rx, k)) {
                s->st.dropped_oversize++;
                continue;
            }
            s->st.bytes_received += sn_udp_rx_len(rx, k);
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
    if (s->fd < 0) return sn_fail(SN_ERR_UNCONFIGURED, "poll: server is not listening");
    uint64_t now = sn_now_ms();
    expire(s, now);
    if (!s->pool && !(s->pool = sn_udp_pool_new(keep_chunks(s))))
        return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory for UDP receive buffers");
    if (!s->rx && !(s->rx = sn_udp_rx_new(s->batch, s->max_dgram, s->pool)))
        return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory for UDP receive buffers");
    unsigned total = 0;
    while (total < s->cap) {
        unsigned want = s->cap - total < s->batch ? s->cap - total : s->batch;
        int r = sn_udp_rx_recv(s->rx, s->fd, want);
        if (r < 0 && errno == ENOMEM)
            return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory for UDP receive buffers");
        s->st.recv_syscalls++;
        if (r < 0) {
            /* ICMP errors and the like are reported per socket, not per peer: note and stop. */
            s->st.recv_errors++;
            break;
        }
        route_batch(s, (unsigned)r, now);
        total += (unsigned)r;
        if ((unsigned)r < want) break;
    }
    if (total >= s->cap) s->st.polls_capped++;
    return SN_OK;
}

bool sn_udp_server_is_connection_available(const sn_udp_server *s)
{
    return s && s->pend_head != NULL;
}

sn_udp_peer *sn_udp_server_take_connection(sn_udp_server *s)
{
    if (!s || !s->pend_head) return NULL;
    sn_udp_peer *p = s->pend_head;
    pending_unlink(s, p);
    p->pending = false;
    p->next = s->taken_head;
    if (s->taken_head) s->taken_head->prev = p;
    s->taken_head = p;
    s->taken_count++;
    s->st.pending_taken++;
    return p;
}

/* ---- settings ------------------------------------------------------------------------- */

void sn_udp_server_set_max_pending_connections(sn_udp_server *s, int max)
{
    if (!s) return;
    if (max < 0) max = 0;
    s->max_pending = max;
    /* Unlike Godot's inverted loop: only the newest extras go. */
    while (s->pend_count > (size_t)max) {
        s->st.pending_discarded++;
        discard_pending(s, s->pend_tail);
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
    if (!s || s->fd < 0 || !s->pend_head || s->pending_timeout_ms <= 0) return -1;
    uint64_t due = s->pend_head->created_ms + (uint64_t)s->pending_timeout_ms, now = sn_now_ms();
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
    if ((unsigned)batch != s->batch) {
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
    if ((size_t)size != s->max_dgram) {
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
    *out = s->st;
    out->pending_now = s->pend_count;
    out->taken_now = s->taken_count;
    out->table_capacity = s->tcap;
    out->dropped_kernel = sn_udp_kernel_drops(s->fd);
}

sn_err sn_udp_server_set_reuse_port(sn_udp_server *s, bool enable)
{
    if (!s) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_reuse_port: server is NULL");
    if (s->fd >= 0) return sn_fail(SN_ERR_ALREADY_IN_USE, "set_reuse_port: call it before listen");
    s->reuse_port = enable;
    return SN_OK;
}
