/* Where datagrams live between the kernel and get_packet: the server's block pool, the FIFO
 * queues, the recvmmsg receive batches and the routing key of an address (udp_internal.h says
 * how memory is laid out). Shared by udp_peer.c and udp_server.c. */
#include "udp_internal.h"
#include "udp_sys.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* ---- block pool ----------------------------------------------------------------------- */

/* A chunk of SN_UDP_POOL_CHUNK_BLOCKS blocks, mapped once. Returned blocks are kept as indexes
 * on a stack inside the chunk (not linked through the blocks: taking one must not read a cold
 * block). Blocks never used yet are handed out by `bump`, so a new chunk touches no page before
 * the kernel writes into it. */
typedef struct sn_udp_chunk {
    struct sn_udp_pool *pool;
    struct sn_udp_chunk *prev, *next; /* pool's list of chunks with a free block */
    uint8_t *mem;
    unsigned nfree, bump, top;
    uint16_t stack[SN_UDP_POOL_CHUNK_BLOCKS];
} sn_udp_chunk;

struct sn_udp_pool {
    sn_udp_chunk *partial;
    size_t chunks, empty, keep_empty;
    bool orphan;
};

#define CHUNK_BYTES ((size_t)SN_UDP_POOL_BLOCK * SN_UDP_POOL_CHUNK_BLOCKS)

sn_udp_pool *sn_udp_pool_new(size_t keep_empty)
{
    sn_udp_pool *pool = sn_calloc(1, sizeof *pool);
    if (pool) pool->keep_empty = keep_empty;
    return pool;
}

void sn_udp_pool_set_keep(sn_udp_pool *pool, size_t keep_empty)
{
    if (pool) pool->keep_empty = keep_empty;
}

static void chunk_link(sn_udp_pool *pool, sn_udp_chunk *c)
{
    c->prev = NULL;
    c->next = pool->partial;
    if (pool->partial) pool->partial->prev = c;
    pool->partial = c;
}

static void chunk_unlink(sn_udp_pool *pool, sn_udp_chunk *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pool->partial = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void chunk_destroy(sn_udp_pool *pool, sn_udp_chunk *c)
{
    chunk_unlink(pool, c);
    munmap(c->mem, CHUNK_BYTES);
    sn_free(c);
    pool->chunks--;
    pool->empty--;
}

static sn_udp_pkt *pool_alloc(sn_udp_pool *pool)
{
    sn_udp_chunk *c = pool->partial;
    if (!c) {
        c = sn_calloc(1, sizeof *c);
        if (!c) return NULL;
        void *mem =
            mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            sn_free(c);
            return NULL;
        }
        c->mem = mem;
        c->pool = pool;
        c->nfree = SN_UDP_POOL_CHUNK_BLOCKS;
        chunk_link(pool, c);
        pool->chunks++;
        pool->empty++;
    }
    if (c->nfree == SN_UDP_POOL_CHUNK_BLOCKS) pool->empty--;
    size_t idx = c->top ? c->stack[--c->top] : c->bump++;
    sn_udp_pkt *pkt = (sn_udp_pkt *)(void *)(c->mem + idx * SN_UDP_POOL_BLOCK);
    if (--c->nfree == 0) chunk_unlink(pool, c);
    pkt->chunk = c;
    pkt->ext = NULL;
    return pkt;
}

static void pool_free(sn_udp_pkt *pkt)
{
    sn_udp_chunk *c = pkt->chunk;
    sn_udp_pool *pool = c->pool;
    c->stack[c->top++] = (uint16_t)(((uint8_t *)pkt - c->mem) / SN_UDP_POOL_BLOCK);
    if (c->nfree++ == 0) chunk_link(pool, c);
    if (c->nfree < SN_UDP_POOL_CHUNK_BLOCKS) return;
    pool->empty++;
    if (pool->orphan || pool->empty > pool->keep_empty) chunk_destroy(pool, c);
    if (pool->orphan && pool->chunks == 0) sn_free(pool);
}

void sn_udp_pool_release(sn_udp_pool *pool)
{
    if (!pool) return;
    pool->orphan = true;
    for (sn_udp_chunk *c = pool->partial, *n; c; c = n) {
        n = c->next;
        if (c->nfree == SN_UDP_POOL_CHUNK_BLOCKS) chunk_destroy(pool, c);
    }
    if (pool->chunks == 0) sn_free(pool);
}

void sn_udp_pkt_free(sn_udp_pkt *pkt)
{
    if (!pkt) return;
    sn_free(pkt->ext);
    if (pkt->chunk)
        pool_free(pkt);
    else
        sn_free(pkt);
}

/* ---- queue ---------------------------------------------------------------------------- */

void sn_udp_queue_push(sn_udp_queue *q, sn_udp_pkt *pkt)
{
    pkt->next = NULL;
    if (q->tail)
        q->tail->next = pkt;
    else
        q->head = pkt;
    q->tail = pkt;
    q->count++;
    q->bytes += pkt->len;
}

void sn_udp_queue_pop_free(sn_udp_queue *q)
{
    sn_udp_pkt *h = q->head;
    if (!h) return;
    q->head = h->next;
    if (!q->head) q->tail = NULL;
    q->count--;
    q->bytes -= h->len;
    sn_udp_pkt_free(h);
}

void sn_udp_queue_clear(sn_udp_queue *q)
{
    while (q->head)
        sn_udp_queue_pop_free(q);
}

/* ---- receive batches ------------------------------------------------------------------ */

sn_udp_rx *sn_udp_rx_new(unsigned batch, size_t slot_cap, sn_udp_pool *pool)
{
    sn_udp_rx *rx = sn_calloc(1, sizeof *rx);
    if (!rx) return NULL;
    rx->batch = rx->capacity = batch;
    rx->slot_cap = slot_cap;
    rx->over_len = slot_cap > SN_UDP_POOL_HEAD ? slot_cap - SN_UDP_POOL_HEAD : 0;
    rx->pool = pool;
    rx->slots = sn_calloc(batch, sizeof *rx->slots);
    rx->over = sn_calloc(batch, sizeof *rx->over);
    rx->msgs = sn_calloc(batch, sizeof *rx->msgs);
    rx->iov = sn_calloc((size_t)batch * 2, sizeof *rx->iov);
    if (!rx->slots || !rx->over || !rx->msgs || !rx->iov) {
        sn_udp_rx_free(rx);
        return NULL;
    }
    return rx;
}

void sn_udp_rx_free(sn_udp_rx *rx)
{
    if (!rx) return;
    for (unsigned i = 0; i < rx->capacity; i++) {
        if (rx->slots) sn_udp_pkt_free(rx->slots[i]);
        if (rx->over) sn_free(rx->over[i]);
    }
    sn_free(rx->slots);
    sn_free(rx->over);
    sn_free(rx->msgs);
    sn_free(rx->iov);
    sn_free(rx);
}

/* Makes slot n ready: a block, and in pool mode the overflow buffer when datagrams may be
 * longer than a block holds. */
static bool rx_ready(sn_udp_rx *rx, unsigned n)
{
    sn_udp_pkt *slot = rx->slots[n];
    if (!slot) {
        /* malloc mode: address space only, the kernel touches the pages it writes. */
        slot = rx->pool ? pool_alloc(rx->pool) : sn_malloc(sizeof *slot + rx->slot_cap);
        if (!slot) return false;
        if (!rx->pool) {
            slot->chunk = NULL;
            slot->ext = NULL;
        }
        rx->slots[n] = slot;
    }
    struct iovec *iov = &rx->iov[2 * n];
    size_t iovlen = 1;
    if (rx->pool && rx->slot_cap > SN_UDP_POOL_HEAD) {
        if (!rx->over[n] && !(rx->over[n] = sn_malloc(rx->over_len))) return false;
        iov[0].iov_base = slot->data;
        iov[0].iov_len = SN_UDP_POOL_HEAD;
        iov[1].iov_base = rx->over[n];
        iov[1].iov_len = rx->slot_cap - SN_UDP_POOL_HEAD;
        iovlen = 2;
    } else {
        iov[0].iov_base = slot->data;
        iov[0].iov_len = rx->slot_cap;
    }
    struct msghdr *h = &rx->msgs[n].msg_hdr;
    h->msg_name = &slot->from;
    h->msg_namelen = sizeof slot->from;
    h->msg_iov = iov;
    h->msg_iovlen = iovlen;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
    return true;
}

int sn_udp_rx_recv(sn_udp_rx *rx, int fd, unsigned want)
{
    if (want > rx->batch) want = rx->batch;
    unsigned n = 0;
    while (n < rx->written && rx_ready(rx, n))
        n++;
    if (n < rx->written)
        rx->ready = n; /* out of memory: the armed prefix ends here */
    else if (n < rx->ready)
        n = rx->ready;
    rx->written = 0;
    while (n < want && rx_ready(rx, n))
        n++;
    if (n > rx->ready) rx->ready = n;
    if (n > want) n = want;
    if (n == 0) {
        errno = ENOMEM;
        return -1;
    }
    int r = sn_udp_sys_recvmmsg(fd, rx->msgs, n);
    if (r > 0) rx->written = (unsigned)r; /* the kernel wrote into these */
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return r;
}

bool sn_udp_rx_truncated(const sn_udp_rx *rx, unsigned i)
{
    return (rx->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
}

size_t sn_udp_rx_len(const sn_udp_rx *rx, unsigned i)
{
    return rx->msgs[i].msg_len;
}

sn_udp_pkt *sn_udp_rx_take(sn_udp_rx *rx, unsigned i)
{
    sn_udp_pkt *slot = rx->slots[i];
    size_t len = rx->msgs[i].msg_len;
    rx->slots[i] = NULL;
    slot->len = len;
    if (rx->pool) {
        if (len > SN_UDP_POOL_HEAD) {
            /* The rest of a long datagram is in the overflow buffer: it becomes the node's
             * extension, shrunk in place to what it holds. */
            uint8_t *ext = rx->over[i];
            rx->over[i] = NULL;
            uint8_t *shrunk = sn_realloc(ext, len - SN_UDP_POOL_HEAD);
            slot->ext = shrunk ? shrunk : ext;
        }
        return slot;
    }
    /* Shrinking realloc splits the block in place (no copy); keep the big one if it fails. */
    sn_udp_pkt *shrunk = sn_realloc(slot, sizeof *slot + len);
    return shrunk ? shrunk : slot;
}

bool sn_udp_rx_set_batch(sn_udp_rx *rx, unsigned batch)
{
    if (batch < 1 || batch > rx->capacity) return false;
    /* Slots past the batch stay allocated (and armed ones stay armed): sn_udp_rx_recv never
     * passes more than `batch` of them to the kernel. */
    rx->batch = batch;
    return true;
}

bool sn_udp_rx_set_slot_cap(sn_udp_rx *rx, size_t slot_cap)
{
    if (slot_cap == rx->slot_cap) return true;
    /* malloc mode: the slots themselves would be too small. */
    if (slot_cap > rx->slot_cap && !rx->pool) return false;
    if (slot_cap > SN_UDP_POOL_HEAD && slot_cap - SN_UDP_POOL_HEAD > rx->over_len) {
        /* Pool mode, longer than the overflow buffers hold: each is made again at its next
         * arming. */
        for (unsigned i = 0; i < rx->capacity; i++) {
            sn_free(rx->over[i]);
            rx->over[i] = NULL;
        }
        rx->over_len = slot_cap - SN_UDP_POOL_HEAD;
    }
    /* Otherwise every buffer is big enough and is kept. Either way the armed slots' iovecs
     * carry the old lengths: count them all as written so the next read arms them again. */
    rx->slot_cap = slot_cap;
    if (rx->ready > rx->written) rx->written = rx->ready;
    return true;
}

/* ---- keys ----------------------------------------------------------------------------- */

void sn_udp_key_from(const struct sockaddr *sa, sn_udp_key *key)
{
    memset(key, 0, sizeof *key);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        key->addr[10] = 0xff;
        key->addr[11] = 0xff;
        memcpy(&key->addr[12], &v4->sin_addr, 4);
        key->port = v4->sin_port;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        memcpy(key->addr, &v6->sin6_addr, 16);
        key->port = v6->sin6_port;
        if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) key->scope = v6->sin6_scope_id;
    }
}
