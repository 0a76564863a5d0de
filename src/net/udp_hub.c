/* The part of a UDP server that the peers taken from it share: the socket, the address table,
 * the pending / taken lists, the ready list and the counters. It is embedded in the server;
 * udp_server.c fills it and udp_peer.c reads and unregisters through it, so neither file calls
 * the other. The table hashes with SipHash-1-3 under a per-server random key, so remote senders
 * cannot choose addresses that collide. */
#include "udp_internal.h"

#include <string.h>

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
uint64_t sn_udp_hub_hash(const sn_udp_hub *s, const sn_udp_key *key)
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

/* Keys are three words: compared as such (no memcmp call per probe). */
static inline bool key_equal(const sn_udp_key *a, const sn_udp_key *b)
{
    uint64_t x[3], y[3];
    memcpy(x, a, sizeof x);
    memcpy(y, b, sizeof y);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2])) == 0;
}

sn_udp_peer *sn_udp_hub_find(const sn_udp_hub *s, const sn_udp_key *key, uint64_t h)
{
    if (!s->tcap) return NULL;
    size_t mask = s->tcap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const sn_udp_slot *t = &s->table[i];
        if (!t->p) return NULL;
        if (t->hash == h && key_equal(&t->p->key, key)) return t->p;
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

bool sn_udp_hub_insert(sn_udp_hub *s, sn_udp_peer *p)
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

static void table_remove(sn_udp_hub *s, const sn_udp_peer *p)
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

/* ---- lists ---------------------------------------------------------------------------- */

void sn_udp_hub_pending_append(sn_udp_hub *s, sn_udp_peer *p)
{
    p->pending = true;
    p->next = NULL;
    p->prev = s->pend_tail;
    if (s->pend_tail)
        s->pend_tail->next = p;
    else
        s->pend_head = p;
    s->pend_tail = p;
    s->pend_count++;
}

void sn_udp_hub_pending_unlink(sn_udp_hub *s, sn_udp_peer *p)
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

void sn_udp_hub_taken_push(sn_udp_hub *s, sn_udp_peer *p)
{
    p->pending = false;
    p->prev = NULL;
    p->next = s->taken_head;
    if (s->taken_head) s->taken_head->prev = p;
    s->taken_head = p;
    s->taken_count++;
}

static void taken_unlink(sn_udp_hub *s, sn_udp_peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        s->taken_head = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
    s->taken_count--;
}

/* ---- the ready list ------------------------------------------------------------------- */

void sn_udp_hub_ready_push(sn_udp_hub *s, sn_udp_peer *p)
{
    if (p->in_ready) return;
    p->in_ready = true;
    p->rnext = NULL;
    p->rprev = s->ready_tail;
    if (s->ready_tail)
        s->ready_tail->rnext = p;
    else
        s->ready_head = p;
    s->ready_tail = p;
    s->ready_count++;
}

static void ready_unlink(sn_udp_hub *s, sn_udp_peer *p)
{
    if (!p->in_ready) return;
    if (p->rprev)
        p->rprev->rnext = p->rnext;
    else
        s->ready_head = p->rnext;
    if (p->rnext)
        p->rnext->rprev = p->rprev;
    else
        s->ready_tail = p->rprev;
    p->rprev = p->rnext = NULL;
    p->in_ready = false;
    s->ready_count--;
}

sn_udp_peer *sn_udp_hub_ready_pop(sn_udp_hub *s)
{
    sn_udp_peer *p = s->ready_head;
    if (p) ready_unlink(s, p);
    return p;
}

/* ---- what peers do through the hub ---------------------------------------------------- */

void sn_udp_hub_forget(sn_udp_hub *s, sn_udp_peer *p)
{
    table_remove(s, p);
    ready_unlink(s, p);
    sn_udp_sendq_forget(s, p);
    if (p->pending)
        sn_udp_hub_pending_unlink(s, p);
    else
        taken_unlink(s, p);
}

void sn_udp_hub_count_send(sn_udp_hub *s, size_t bytes, sn_err result)
{
    if (result == SN_OK) {
        s->st.datagrams_sent++;
        s->st.bytes_sent += bytes;
    } else if (result == SN_ERR_BUSY) {
        s->st.send_busy++;
    } else {
        s->st.send_errors++;
    }
}
