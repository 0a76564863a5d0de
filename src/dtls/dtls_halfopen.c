/* The classic DTLS server's half-open table (sn_dtls_settings max_half_open,
 * max_half_open_per_source): the server peers taken from one sn_dtls_server whose handshake is
 * still in progress, oldest first. The same policy as the host's (docs/host.md, "Half-open
 * handshakes"), for programs that run Godot's loop themselves:
 * - checked when a cookie-proven ClientHello would get a session, whatever else was queued;
 * - per source (/32, /64): at the limit the newcomer is dropped (the source only competes with
 *   itself); the whole table: the oldest is evicted (told with an alert); nothing younger than
 * SN_DTLS_EVICT_MIN_AGE_MS is evicted for age: then the source holding the most slots gives one up
 * if it holds more than the newcomer's (crowding_locked), else the newcomer is dropped unanswered
 * (it retransmits);
 * - under pressure (at least half full) handshakes get SN_DTLS_PRESSURE_TIMEOUT_MS at most.
 * The program owns its peers and may poll them on other threads: eviction only raises a flag
 * that the peer acts on at its next poll (ERROR "evicted ..."), and a peer leaves the table
 * under the table's mutex before it is freed, so the table never points at freed memory.
 * The table is refcounted: peers may outlive their server. */
#include "dtls_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

struct sn_dtls_half_table {
    pthread_mutex_t mu;
    atomic_int refs;
    atomic_int max, per_source; /* read by peers' polls, maybe on other threads */
    sn_dtls_half_entry *head, *tail;
    atomic_size_t n;
    atomic_uint_fast64_t evicted, dropped, pressure_timeouts;
};

void sn_dtls_half_key(const sn_addr *addr, uint8_t out[9])
{
    memset(out, 0, 9);
    if (addr->ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&addr->ss;
        out[0] = 4;
        memcpy(out + 1, &a->sin_addr, 4);
        return;
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&addr->ss;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
        out[0] = 4;
        memcpy(out + 1, a->sin6_addr.s6_addr + 12, 4);
        return;
    }
    out[0] = 6;
    memcpy(out + 1, a->sin6_addr.s6_addr, 8);
}

sn_dtls_half_table *sn_dtls_half_new(void)
{
    sn_dtls_half_table *t = sn_calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->refs, 1);
    return t;
}

sn_dtls_half_table *sn_dtls_half_ref(sn_dtls_half_table *t)
{
    if (t) atomic_fetch_add(&t->refs, 1);
    return t;
}

void sn_dtls_half_unref(sn_dtls_half_table *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    pthread_mutex_destroy(&t->mu);
    sn_free(t);
}

void sn_dtls_half_set_limits(sn_dtls_half_table *t, int max, int per_source)
{
    atomic_store(&t->max, max);
    atomic_store(&t->per_source, per_source);
}

static void unlink_locked(sn_dtls_half_table *t, sn_dtls_half_entry *e)
{
    if (!e->linked) return;
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
    e->linked = false;
    atomic_fetch_sub(&t->n, 1);
}

static void evict_locked(sn_dtls_half_table *t, sn_dtls_half_entry *e)
{
    atomic_store(&e->evicted, true);
    unlink_locked(t, e);
    atomic_fetch_add(&t->evicted, 1);
}

/* The table is full of handshakes too young to evict: among the sources of the oldest
 * CROWDING_SAMPLE entries, the one holding the most slots gives up its oldest when it holds
 * more than the newcomer's source would (mine + 1), as in the host (host_halfopen.c). */
#define CROWDING_SAMPLE 16
static sn_dtls_half_entry *crowding_locked(sn_dtls_half_table *t, size_t mine)
{
    sn_dtls_half_entry *victim = NULL;
    size_t best = mine + 1;
    int k = 0;
    for (sn_dtls_half_entry *s = t->head; s && k < CROWDING_SAMPLE; s = s->next, k++) {
        size_t c = 0;
        sn_dtls_half_entry *first = NULL;
        for (sn_dtls_half_entry *e = t->head; e; e = e->next) {
            if (memcmp(e->key, s->key, sizeof e->key) != 0) continue;
            if (!first) first = e;
            c++;
        }
        if (c > best) {
            best = c;
            victim = first;
        }
    }
    return victim;
}

bool sn_dtls_half_admit(sn_dtls_half_table *t, const sn_addr *addr, uint64_t now)
{
    pthread_mutex_lock(&t->mu);
    bool ok = true;
    int max = atomic_load(&t->max), per_source = atomic_load(&t->per_source);
    if (max > 0 || per_source > 0) {
        uint8_t key[9];
        sn_dtls_half_key(addr, key);
        size_t from_source = 0;
        for (sn_dtls_half_entry *e = t->head; e; e = e->next)
            if (memcmp(e->key, key, sizeof key) == 0) from_source++;
        if (per_source > 0 && from_source >= (size_t)per_source) ok = false;
        if (ok && max > 0 && atomic_load(&t->n) >= (size_t)max) {
            sn_dtls_half_entry *victim = NULL;
            if (t->head && t->head->started_ms + SN_DTLS_EVICT_MIN_AGE_MS <= now)
                victim = t->head;
            else
                victim = crowding_locked(t, from_source);
            if (victim)
                evict_locked(t, victim);
            else
                ok = false;
        }
        if (!ok) atomic_fetch_add(&t->dropped, 1);
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void sn_dtls_half_add(sn_dtls_half_table *t, sn_dtls_half_entry *e, const sn_addr *addr,
                      uint64_t now)
{
    pthread_mutex_lock(&t->mu);
    sn_dtls_half_key(addr, e->key);
    e->started_ms = now;
    e->prev = t->tail;
    e->next = NULL;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    e->linked = true;
    atomic_fetch_add(&t->n, 1);
    pthread_mutex_unlock(&t->mu);
}

void sn_dtls_half_remove(sn_dtls_half_table *t, sn_dtls_half_entry *e)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    unlink_locked(t, e);
    pthread_mutex_unlock(&t->mu);
}

bool sn_dtls_half_under_pressure(const sn_dtls_half_table *t)
{
    if (!t) return false;
    int max = atomic_load(&t->max);
    return max > 0 && atomic_load(&t->n) * 2 >= (size_t)max;
}

void sn_dtls_half_count_pressure_timeout(sn_dtls_half_table *t)
{
    if (t) atomic_fetch_add(&t->pressure_timeouts, 1);
}

void sn_dtls_half_stats(const sn_dtls_half_table *t, sn_dtls_server_stats *out)
{
    if (!t) return;
    out->half_open_now = atomic_load(&t->n);
    out->half_open_evicted = atomic_load(&t->evicted);
    out->half_open_dropped = atomic_load(&t->dropped);
    out->half_open_pressure_timeouts = atomic_load(&t->pressure_timeouts);
}
