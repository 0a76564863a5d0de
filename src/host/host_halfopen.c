/* The half-open table: incoming handshakes that proved a cookie but have not finished.
 *
 * A cookie only proves the client can receive at its address; it costs an attacker one round
 * trip, so anyone can fill the table with silent handshakes. Defence in depth, all applied at
 * the one point where a session is about to be created (the DTLS server's admit hook, after
 * the cookie check), whatever else the address queued:
 * - per source: at most max_half_open_per_source from one IPv4 /32 or IPv6 /64; one more from
 *   there is dropped unanswered, so a flooding address only competes with itself;
 * - the whole table: at max_half_open, the oldest half-open handshake (anyone's) is evicted for
 *   the new one (and told so with a fatal alert, so a real client evicted fails fast and can
 *   retry rather than wait for its handshake timeout), so a legitimate client gets in and finishes
 * long before a flood at the table's rate can push it out;
 * - nothing younger than EVICT_MIN_AGE_MS is evicted for age: when the whole table is that
 *   young (a flood of more than max_half_open cookie-proven handshakes per second), the source
 *   holding the most slots gives one up if it holds more than the newcomer's (fairness,
 *   crowding_source), else the newcomer is dropped unanswered and retransmits;
 * - under pressure (the table at least half full), a half-open handshake gets only
 *   pressure_handshake_timeout_ms instead of handshake_timeout_ms.
 * Sources sit in a hash table of chains (seeded hash, so an attacker cannot aim collisions);
 * a source's chain walk is bounded by its own limit plus collisions.
 */
#include "host_internal.h"

#include <string.h>

/* Nothing younger than this is evicted (a client a round trip away finishes within it). */
#define EVICT_MIN_AGE_MS SN_DTLS_EVICT_MIN_AGE_MS

static void source_key(const sn_addr *addr, uint8_t out[9])
{
    sn_dtls_half_key(addr, out); /* the same sources as a classic server's */
}

static size_t source_slot(const sn_host *h, const uint8_t key[9])
{
    uint64_t x = h->src_seed;
    for (int i = 0; i < 9; i++) {
        x ^= key[i];
        x *= 0x100000001b3ULL;
        x ^= x >> 29;
    }
    return (size_t)x & h->src_mask;
}

bool sn_host_halfopen_init(sn_host *h)
{
    size_t n = 16;
    size_t want = (size_t)h->cfg.max_half_open;
    while (n < want && n < ((size_t)1 << 16))
        n *= 2;
    h->src_buckets = sn_calloc(n, sizeof *h->src_buckets);
    if (!h->src_buckets) return false;
    h->src_mask = n - 1;
    if (sn_tls_backend_get()->random_bytes(&h->src_seed, sizeof h->src_seed) != SN_OK)
        h->src_seed = (uint64_t)(uintptr_t)h ^ sn_now_ms();
    return true;
}

void sn_host_halfopen_free(sn_host *h)
{
    sn_free(h->src_buckets);
    h->src_buckets = NULL;
}

void sn_host_halfopen_add(sn_host *h, sn_host_peer *p, const sn_addr *addr)
{
    source_key(addr, p->src);
    p->in_half = true;
    p->half_prev = h->half_tail;
    p->half_next = NULL;
    if (h->half_tail)
        h->half_tail->half_next = p;
    else
        h->half_head = p;
    h->half_tail = p;
    /* Appended, so each source's peers stay oldest first along the chain. */
    sn_host_peer **slot = &h->src_buckets[source_slot(h, p->src)];
    p->src_next = NULL;
    p->src_prev = NULL;
    if (!*slot) {
        *slot = p;
    } else {
        sn_host_peer *t = *slot;
        while (t->src_next)
            t = t->src_next;
        t->src_next = p;
        p->src_prev = t;
    }
    if (h->n_half_open + 1 > h->st.incoming_half_open_peak)
        h->st.incoming_half_open_peak = h->n_half_open + 1;
}

void sn_host_halfopen_remove(sn_host *h, sn_host_peer *p)
{
    if (!p->in_half) return;
    p->in_half = false;
    if (p->half_prev)
        p->half_prev->half_next = p->half_next;
    else
        h->half_head = p->half_next;
    if (p->half_next)
        p->half_next->half_prev = p->half_prev;
    else
        h->half_tail = p->half_prev;
    if (p->src_prev)
        p->src_prev->src_next = p->src_next;
    else
        h->src_buckets[source_slot(h, p->src)] = p->src_next;
    if (p->src_next) p->src_next->src_prev = p->src_prev;
    p->half_prev = p->half_next = p->src_prev = p->src_next = NULL;
}

static bool under_pressure(const sn_host *h)
{
    return h->n_half_open * 2 >= (size_t)h->cfg.max_half_open;
}

uint64_t sn_host_halfopen_deadline(const sn_host *h, const sn_host_peer *p)
{
    int t = under_pressure(h) ? h->cfg.pressure_handshake_timeout_ms : h->cfg.handshake_timeout_ms;
    if (t > h->cfg.handshake_timeout_ms) t = h->cfg.handshake_timeout_ms;
    return p->started_ms + (uint64_t)t;
}

/* Half-open handshakes from the source `key`; *oldest gets the first of them. The walk is
 * bounded by the source's own count plus hash collisions. */
static size_t source_count(const sn_host *h, const uint8_t key[9], sn_host_peer **oldest)
{
    size_t n = 0;
    *oldest = NULL;
    for (sn_host_peer *t = h->src_buckets[source_slot(h, key)]; t; t = t->src_next) {
        if (memcmp(t->src, key, 9) != 0) continue;
        if (!*oldest) *oldest = t;
        n++;
    }
    return n;
}

/* The table is full of handshakes too young to evict (a flood faster than max_half_open per
 * second). Fairness between sources decides instead: among the sources of the
 * CROWDING_SAMPLE oldest entries, the one holding the most slots gives up its oldest when it
 * holds more than the newcomer's source would after admission (mine + 1). A flood spread over
 * many addresses then still lets a client from an address of its own in; a burst from one
 * source only competes with itself. NULL: drop the newcomer. */
#define CROWDING_SAMPLE 16
static sn_host_peer *crowding_source(const sn_host *h, size_t mine)
{
    sn_host_peer *victim = NULL;
    size_t best = mine + 1;
    int k = 0;
    for (sn_host_peer *p = h->half_head; p && k < CROWDING_SAMPLE; p = p->half_next, k++) {
        sn_host_peer *first;
        size_t c = source_count(h, p->src, &first);
        if (c > best) {
            best = c;
            victim = first;
        }
    }
    return victim;
}

void sn_host_halfopen_added(sn_host *h)
{
    /* Only when this handshake tipped the table into pressure: the timers of those already in
     * it were set for the full timeout, so bring them forward once (O(half the table)). */
    if (!under_pressure(h) || (h->n_half_open - 1) * 2 >= (size_t)h->cfg.max_half_open) return;
    for (sn_host_peer *p = h->half_head; p; p = p->half_next)
        sn_host_heap_earlier(h, p, sn_host_halfopen_deadline(h, p));
}

static void evict(sn_host *h, sn_host_peer *victim, const char *why)
{
    sn_dtls_peer_abort_handshake(victim->dtls, why); /* alert; frees its session now */
    sn_host_handshake_failed(h, victim, SN_HOST_DISCONNECT_HANDSHAKE_FAILED, why);
}

bool sn_host_halfopen_admit(void *host, const sn_addr *addr)
{
    sn_host *h = host;
    uint64_t now = sn_now_ms();
    /* Under pressure, the oldest handshakes past the shortened deadline go first (their timers
     * may not have fired yet: the heap only ever brings wake-ups forward lazily). */
    for (int i = 0; i < 8 && h->half_head && under_pressure(h) &&
                    sn_host_halfopen_deadline(h, h->half_head) <= now;
         i++) {
        h->st.half_open_pressure_timeouts++;
        evict(h, h->half_head, "half-open handshake timed out (the server is under pressure)");
    }
    uint8_t key[9];
    source_key(addr, key);
    sn_host_peer *oldest = NULL;
    size_t from_source = source_count(h, key, &oldest);
    if (from_source >= (size_t)h->cfg.max_half_open_per_source) {
        /* Dropped, not evicting the source's own: a burst of real clients behind one address
         * (a NAT, a test) would otherwise evict each other mid-handshake. */
        h->st.dropped_half_open_source++;
        return false;
    }
    if (h->n_half_open >= (size_t)h->cfg.max_half_open) {
        sn_host_peer *victim = NULL;
        if (h->half_head && h->half_head->started_ms + EVICT_MIN_AGE_MS <= now)
            victim = h->half_head;
        else
            victim = crowding_source(h, from_source);
        if (!victim) {
            h->st.dropped_half_open++;
            return false;
        }
        h->st.evicted_half_open++;
        evict(h, victim, "evicted: a newer handshake needed the slot (half-open table full)");
    }
    return true;
}
