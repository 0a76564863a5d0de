/* Private to the host (the files of src/host): the host and peer structures and what the files call
 * in each other. Not installed.
 *
 * host.c       create, free, service (I/O and timers), incoming connections, public host calls
 * host_peer.c  a peer's states and transitions, polling, timers, public peer calls
 * host_events.c  the deliver list and events
 * host_keepalive.c  pings, pongs, RTT
 * host_timers.c  arrays, the timer heap, the id table
 */
#ifndef SN_HOST_INTERNAL_H
#define SN_HOST_INTERNAL_H

#include "dtls_internal.h"

#include <sealnet/host.h>

#include <sys/epoll.h>

/* ---- keepalive wire format ------------------------------------------------------------- */

#define KA_LEN  13
#define KA_PING 0x01
#define KA_PONG 0x02
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
    sn_dtls_peer *dtls;      /* owned */
    int fd;                  /* outgoing: the socket registered in epoll; -1 otherwise */
    void *user;
    int keepalive_ms;
    uint64_t last_send_ms, last_ping_ms;
    double srtt_ms, rttvar_ms; /* < 0: no sample */
    uint64_t wake_ms;
    size_t heap_idx;
    size_t index; /* in host->peers */
    /* The DTLS peer's drop counters when last added to the host's running sums. */
    uint64_t seen_queue_full, seen_oversize;
    sn_host_peer *dprev, *dnext;
    bool in_deliver;
    sn_host_peer *next_dead;
    sn_host_disconnect_reason reason;
    char ip[SN_IP_STRLEN];
    int port;
    char message[256];
    /* Incoming and half-open: in the host's half-open list (oldest first) and in its source
     * bucket (the /32 or /64 it came from; see host_halfopen.c). */
    sn_host_peer *half_prev, *half_next;
    sn_host_peer *src_prev, *src_next;
    bool in_half;
    uint8_t src[9]; /* family tag + the /32 or /64 prefix */
    uint64_t started_ms;
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

    bool more_work;    /* budget ran out with work left: service again without sleeping */
    size_t n_outgoing; /* outgoing peers not yet freed: their sockets are in the epoll set */

    size_t n_handshaking, n_connected, n_half_open;
    sn_host_peer *half_head, *half_tail; /* incoming half-open peers, oldest first */
    sn_host_peer **src_buckets;          /* half-open peers by source prefix, chained */
    size_t src_mask;
    uint64_t src_seed;
    sn_host_stats st; /* running sums, so sn_host_get_stats is O(1) */

    struct epoll_event evs[MAX_EPOLL_EVENTS];
    uint8_t rx[RX_CAP];
};

/* host_timers.c */
bool sn_host_grow(void **arr, size_t *cap, size_t need, size_t elem);
/* Sets the peer's wake-up to `when`, inserting it when needed; false only when out of memory
 * (the peer then has no timer but is still serviced on I/O). */
bool sn_host_heap_set(sn_host *h, sn_host_peer *p, uint64_t when);
/* Only ever brings a wake-up forward: cheap enough to call after every packet. */
void sn_host_heap_earlier(sn_host *h, sn_host_peer *p, uint64_t when);
void sn_host_heap_remove(sn_host *h, sn_host_peer *p);
size_t sn_host_id_slot(uint32_t id, size_t cap);
bool sn_host_ids_insert(sn_host *h, sn_host_peer *p);
void sn_host_ids_remove(sn_host *h, const sn_host_peer *p);

/* host_events.c */
void sn_host_deliver_push(sn_host *h, sn_host_peer *p);
void sn_host_deliver_unlink(sn_host *h, sn_host_peer *p);
/* Fills *ev with the next event; false when none is queued. */
bool sn_host_deliver(sn_host *h, sn_host_event *ev);

/* host_keepalive.c */
uint64_t sn_host_connected_wake(const sn_host *h, sn_host_peer *p, uint64_t now);
void sn_host_send_ping(sn_host *h, sn_host_peer *p, uint64_t now);
void sn_host_on_keepalive(sn_host *h, sn_host_peer *p, const uint8_t *b);
bool sn_host_is_keepalive(const uint8_t *b, size_t len);

/* host_halfopen.c: the half-open table's limits (docs/host.md, "Half-open handshakes") */
/* Sizes the source table; false when out of memory. */
bool sn_host_halfopen_init(sn_host *h);
void sn_host_halfopen_free(sn_host *h);
/* The DTLS server's admit hook (sn_dtls_admit_fn): makes room for one more half-open
 * handshake from addr, evicting when a limit is reached. */
bool sn_host_halfopen_admit(void *host, const sn_addr *addr);
/* A new incoming half-open peer from addr (p->started_ms set) joins the table. */
void sn_host_halfopen_add(sn_host *h, sn_host_peer *p, const sn_addr *addr);
/* After n_half_open grew by one: when that began pressure, the shorter deadline applies to
 * the handshakes already in the table too. */
void sn_host_halfopen_added(sn_host *h);
/* p leaves the table (connected, failed, evicted); nothing when it is not in it. */
void sn_host_halfopen_remove(sn_host *h, sn_host_peer *p);
/* The handshake deadline of an incoming half-open peer: shorter while the table is under
 * pressure. */
uint64_t sn_host_halfopen_deadline(const sn_host *h, const sn_host_peer *p);

/* host_peer.c */
uint64_t sn_host_min_u64(uint64_t a, uint64_t b);
void sn_host_count_leave(sn_host *h, sn_host_peer *p);
/* Nothing left to deliver: freed at the next service call. */
void sn_host_mark_dead(sn_host *h, sn_host_peer *p);
/* The transport is gone (or going): remaining packets, then one DISCONNECT. */
void sn_host_to_zombie(sn_host *h, sn_host_peer *p, sn_host_disconnect_reason reason,
                       const char *message);
void sn_host_handshake_failed(sn_host *h, sn_host_peer *p, sn_host_disconnect_reason reason,
                              const char *message);
void sn_host_send_failed(sn_host *h, sn_host_peer *p);
void sn_host_became_connected(sn_host *h, sn_host_peer *p, uint64_t now);
void sn_host_after_poll(sn_host *h, sn_host_peer *p, uint64_t now);
void sn_host_count_drops(sn_host *h, sn_host_peer *p);
void sn_host_poll_peer(sn_host *h, sn_host_peer *p, uint64_t now);
void sn_host_on_timer(sn_host *h, sn_host_peer *p, uint64_t now);
sn_host_peer *sn_host_new_peer(sn_host *h, bool outgoing);
void sn_host_release_peer(sn_host *h, sn_host_peer *p);
void sn_host_free_dead(sn_host *h);

#endif
