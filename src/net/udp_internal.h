/* Private structures shared by udp_peer.c and udp_server.c. Not installed.
 *
 * Memory model (see docs/udp.md): the kernel writes each datagram straight into the memory that
 * becomes its queue node. A server's slots are 2 KiB blocks from a per-server pool (plus an
 * overflow buffer for the rest of longer datagrams); a standalone peer's slots are 64 KiB malloc
 * blocks shrunk in place with realloc once the length is known. get_packet then copies once into
 * the caller's buffer.
 */
#ifndef SN_UDP_INTERNAL_H
#define SN_UDP_INTERNAL_H

#include "net.h"
#include "udp_transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Largest payload accepted by put_packet (IPv4 limit, also used for IPv6). */
#define SN_UDP_MAX_PAYLOAD 65507
/* Default receive capacity of one slot: a datagram longer than this is truncated and dropped. */
#define SN_UDP_DEFAULT_SLOT               65535
#define SN_UDP_DEFAULT_QUEUE_PACKETS      256
#define SN_UDP_DEFAULT_QUEUE_BYTES        (256u * 1024u)
#define SN_UDP_DEFAULT_MAX_PENDING        16
#define SN_UDP_DEFAULT_PENDING_TIMEOUT_MS 10000
#define SN_UDP_DEFAULT_BATCH              64
#define SN_UDP_MAX_BATCH                  1024
#define SN_UDP_DEFAULT_POLL_CAP           1024
/* Standalone peers read in smaller batches: they usually talk to one remote. */
#define SN_UDP_PEER_BATCH    8
#define SN_UDP_PEER_PUMP_CAP 256

/* The receive loops (sn_udp_server_poll, sn_udp_peer_pump) are plumbing: the same calls whatever
 * arrives. What a datagram or the clock decides (expiry, routing, drops) lives in functions kept
 * out of line, so that the fuzz builds can leave the loops uninstrumented
 * (fuzz/coverage-ignore.txt) and still instrument every decision. One call per poll and per
 * batch. */
#define SN_UDP_OUT_OF_LINE __attribute__((noinline))

/* Source address as recvmmsg writes it (big enough for IPv6). */
typedef union sn_udp_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} sn_udp_sockaddr;

struct sn_udp_chunk;

/* One queued datagram. The kernel wrote `data` (and `ext`) and `from` directly. */
typedef struct sn_udp_pkt {
    struct sn_udp_pkt *next;
    size_t len;                 /* whole payload */
    struct sn_udp_chunk *chunk; /* pool chunk holding this block; NULL: a malloc'd block */
    uint8_t *ext;               /* pooled blocks: payload beyond SN_UDP_POOL_HEAD, else NULL */
    sn_udp_sockaddr from;
    uint8_t data[];
} sn_udp_pkt;

/* Server receive slots come from a pool of fixed blocks (no allocator call per datagram, dense
 * memory). A block holds the header and up to SN_UDP_POOL_HEAD bytes; a longer datagram's rest
 * lands in a per-slot overflow buffer that becomes the node's `ext`. */
#define SN_UDP_POOL_BLOCK        2048
#define SN_UDP_POOL_HEAD         (SN_UDP_POOL_BLOCK - sizeof(sn_udp_pkt))
#define SN_UDP_POOL_CHUNK_BLOCKS 128
typedef struct sn_udp_pool sn_udp_pool;

/* Payload bytes stored in the block itself. */
static inline size_t sn_udp_pkt_head_len(const sn_udp_pkt *pkt)
{
    return pkt->ext ? SN_UDP_POOL_HEAD : pkt->len;
}
/* Releases a queued datagram (pool block or malloc'd block, and its overflow). */
void sn_udp_pkt_free(sn_udp_pkt *pkt);

/* A pool; NULL when out of memory. keep_empty: fully free chunks kept for reuse. */
sn_udp_pool *sn_udp_pool_new(size_t keep_empty);
void sn_udp_pool_set_keep(sn_udp_pool *pool, size_t keep_empty);
/* The owner lets go: the pool frees itself once every block is back. */
void sn_udp_pool_release(sn_udp_pool *pool);

/* FIFO of datagrams with its counts. */
typedef struct sn_udp_queue {
    sn_udp_pkt *head, *tail;
    size_t count, bytes;
} sn_udp_queue;

/* A batch of receive slots for recvmmsg. */
typedef struct sn_udp_rx {
    unsigned batch;    /* slots used per recvmmsg */
    unsigned capacity; /* slots allocated: batch may shrink and grow back within it */
    size_t slot_cap;   /* longest datagram accepted */
    sn_udp_pool *pool; /* NULL: slots are malloc'd at full size and shrunk with realloc */
    sn_udp_pkt **slots;
    uint8_t **over;  /* pool mode: overflow buffers of over_len bytes each */
    size_t over_len; /* >= slot_cap - SN_UDP_POOL_HEAD: kept when the slot shrinks */
    struct mmsghdr *msgs;
    struct iovec *iov; /* two per message */
    /* Slots [0, written) were filled by the last recvmmsg; [written, ready) are still armed
     * (the kernel touched none of them). The next call re-arms the first and skips the second:
     * a wake-up for one datagram re-arms one slot, not 64. */
    unsigned written, ready;
} sn_udp_rx;

/* Hash key of a remote: IPv6 bytes (IPv4 as IPv4-mapped), port, scope. 24 bytes. */
typedef struct sn_udp_key {
    uint8_t addr[16];
    uint32_t scope;
    uint16_t port;
    uint16_t zero;
} sn_udp_key;

typedef struct sn_udp_hub sn_udp_hub;
typedef struct sn_udp_sendq sn_udp_sendq;

struct sn_udp_peer {
    /* Hot while routing: the key, the queue and its bounds, the receive counters. Kept first so
     * they share the first cache lines (the server prefetches them). */
    sn_udp_key key; /* server-owned: the routing key */
    sn_udp_queue q;
    size_t max_packets, max_bytes;
    sn_udp_peer_stats stats;
    uint64_t hash;
    int fd;            /* own socket; -1 for server-owned, closed or unbound peers */
    int family;        /* of fd */
    int local_port;    /* of fd, read once at bind (the bound port never changes) */
    sn_udp_hub *hub;   /* the owning server's shared part; NULL when standalone or detached */
    bool server_owned; /* taken (or pending) from a server, even once detached */
    bool pending;      /* still in the server's pending list */
    bool connected;    /* fd connected to `remote` */
    bool has_remote;   /* `remote` is set (connected, destination, or server-routed) */
    bool broadcast;
    bool have_last;
    uint64_t created_ms;
    struct sn_udp_peer *prev, *next;   /* server's pending or taken list */
    struct sn_udp_peer *rprev, *rnext; /* server's ready list (taken peers with new datagrams) */
    bool in_ready;
    int send_err;    /* errno of a queued datagram that failed for good; 0: none (udp_sendq.c) */
    void *ready_tag; /* what the ready list hands the consumer (sn_udp_peer_set_ready_tag) */
    sn_udp_rx *rx;   /* standalone: lazily allocated */
    sn_addr remote;
    sn_udp_sockaddr last_from;
    char last_ip[SN_IP_STRLEN];
};

/* Queue helpers. */
void sn_udp_queue_push(sn_udp_queue *q, sn_udp_pkt *pkt);
void sn_udp_queue_pop_free(sn_udp_queue *q);
void sn_udp_queue_clear(sn_udp_queue *q);

/* Receive batches (pool NULL: malloc'd slots; else borrowed from the owner). */
sn_udp_rx *sn_udp_rx_new(unsigned batch, size_t slot_cap, sn_udp_pool *pool);
void sn_udp_rx_free(sn_udp_rx *rx);
/* Fills slots 0..n-1 (allocating missing ones) and calls recvmmsg once for up to `want`
 * datagrams. Returns the count, 0 when nothing is waiting, -1 with errno on another error. */
int sn_udp_rx_recv(sn_udp_rx *rx, int fd, unsigned want);
/* True when datagram i was truncated (longer than the slot). */
bool sn_udp_rx_truncated(const sn_udp_rx *rx, unsigned i);
size_t sn_udp_rx_len(const sn_udp_rx *rx, unsigned i);
/* Detaches slot i as a queue node shrunk to its datagram (the slot is refilled next time). */
sn_udp_pkt *sn_udp_rx_take(sn_udp_rx *rx, unsigned i);
/* Reconfigure a batch in place, keeping its slots and buffers: changing a server's limits back
 * and forth then allocates nothing. false when it cannot (a batch beyond the capacity; a larger
 * slot in malloc mode): free it and make a new one. */
bool sn_udp_rx_set_batch(sn_udp_rx *rx, unsigned batch);
bool sn_udp_rx_set_slot_cap(sn_udp_rx *rx, size_t slot_cap);

/* The routing key of an address: IPv4 and IPv4-mapped IPv6 give the same key. */
void sn_udp_key_from(const struct sockaddr *sa, sn_udp_key *key);

/* ---- the hub (udp_hub.c): what a server shares with the peers taken from it ------------ */

typedef struct sn_udp_slot {
    uint64_t hash;
    sn_udp_peer *p; /* NULL: empty */
} sn_udp_slot;

struct sn_udp_hub {
    int fd; /* the server's socket; -1 when not listening */
    int port;
    /* The server's poll, for a taken peer's wait(): set by the server (peers never call into
     * udp_server.c directly). */
    sn_err (*poll)(sn_udp_hub *hub);
    sn_udp_slot *table; /* open addressing, linear probing, backward-shift deletion */
    size_t tcap, tcount;
    uint64_t key[2]; /* SipHash key, random per server */
    sn_udp_peer *pend_head, *pend_tail;
    size_t pend_count;
    sn_udp_peer *taken_head;
    size_t taken_count;
    /* Taken peers that received datagrams since the consumer last took them off (ENet's
     * dispatch queue): a peer joins when routing queues a datagram for it and it is not on
     * the list; sn_udp_server_pop_ready takes it off. */
    sn_udp_peer *ready_head, *ready_tail;
    size_t ready_count;
    /* Corked (sn_udp_server_set_corked): the taken peers' sends wait in sendq and leave in one
     * sendmmsg at the flush. */
    bool corked;
    sn_udp_sendq *sendq; /* allocated at the first cork */
    sn_udp_server_stats st;
};

uint64_t sn_udp_hub_hash(const sn_udp_hub *hub, const sn_udp_key *key);
sn_udp_peer *sn_udp_hub_find(const sn_udp_hub *hub, const sn_udp_key *key, uint64_t hash);
/* false when the table cannot grow (out of memory and too full). */
bool sn_udp_hub_insert(sn_udp_hub *hub, sn_udp_peer *p);
void sn_udp_hub_pending_append(sn_udp_hub *hub, sn_udp_peer *p);
void sn_udp_hub_pending_unlink(sn_udp_hub *hub, sn_udp_peer *p);
void sn_udp_hub_taken_push(sn_udp_hub *hub, sn_udp_peer *p);
void sn_udp_hub_ready_push(sn_udp_hub *hub, sn_udp_peer *p);
sn_udp_peer *sn_udp_hub_ready_pop(sn_udp_hub *hub);
/* Unregisters a peer everywhere (table, its list, the ready list): it is being freed or
 * closed. */
void sn_udp_hub_forget(sn_udp_hub *hub, sn_udp_peer *p);
void sn_udp_hub_count_send(sn_udp_hub *hub, size_t bytes, sn_err result);

/* udp_peer.c: one datagram out of fd, with the one retry after ECONNREFUSED (that error reports
 * an earlier datagram's ICMP answer and clears it; this one was not sent yet), counted on p's
 * icmp_refused (p may be NULL). Returns 0 or the errno. Used by direct and queued sends alike. */
int sn_udp_send_datagram(sn_udp_peer *p, int fd, const void *buf, size_t len,
                         const struct sockaddr *to, socklen_t to_len);
/* A send refused for a full buffer: lost as the network may lose it (counted send_busy). */
static inline bool sn_udp_send_busy(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
}

/* ---- the send queue (udp_sendq.c) ------------------------------------------------------ */

/* Datagrams per sendmmsg, and the payload bytes a queue holds before it is flushed. */
#define SN_UDP_SENDQ_MAX   64
#define SN_UDP_SENDQ_BYTES (64u * 1024u)

/* Queues a copy of one datagram of peer p for `to` (flushing first when the queue is full).
 * False when it cannot be queued (no memory, or longer than the queue holds): send it now. */
bool sn_udp_sendq_push(sn_udp_hub *hub, sn_udp_peer *p, const void *buf, size_t len,
                       const sn_addr *to);
/* Sends what is queued (sendmmsg; sendto for a single datagram). Each datagram's result is
 * counted on its peer and the server; one that failed for good (not a full buffer) is kept as
 * the peer's send_err and the peer joins the ready list, so its consumer hears of it at its
 * next poll (sn_udp_peer_take_send_error). */
void sn_udp_sendq_flush(sn_udp_hub *hub);
size_t sn_udp_sendq_count(const sn_udp_hub *hub);
/* p is going away: its queued datagrams still leave, but their results concern nobody. */
void sn_udp_sendq_forget(sn_udp_hub *hub, const sn_udp_peer *p);
void sn_udp_sendq_free(sn_udp_hub *hub);

/* udp_server.c: test hook, the peer registered for an address (NULL when none). */
sn_udp_peer *sn_udp_server_lookup(const sn_udp_server *s, const struct sockaddr *sa);
/* udp_peer.c: a new server-owned peer for `from` (NULL when out of memory). */
sn_udp_peer *sn_udp_peer_new_owned(sn_udp_hub *hub, const sn_udp_sockaddr *from, socklen_t fromlen,
                                   size_t max_packets, size_t max_bytes);
/* udp_peer.c: the server is going away; keep the queue, forget the server. */
void sn_udp_peer_detach(sn_udp_peer *p);
/* udp_peer.c: frees a pending peer (the server owns it). */
void sn_udp_peer_free_pending(sn_udp_peer *p);

#endif
