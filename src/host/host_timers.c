/* The host's containers: growable arrays, the timer min-heap keyed by each peer's next wake-up,
 * and the id table (open addressing, backward-shift deletion). */
#include "host_internal.h"

/* ---- containers ------------------------------------------------------------------------ */

bool sn_host_grow(void **arr, size_t *cap, size_t need, size_t elem)
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

void sn_host_heap_remove(sn_host *h, sn_host_peer *p)
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
bool sn_host_heap_set(sn_host *h, sn_host_peer *p, uint64_t when)
{
    if (p->heap_idx == NO_HEAP) {
        if (!sn_host_grow((void **)&h->heap, &h->cap_heap, h->nheap + 1, sizeof *h->heap))
            return false;
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
void sn_host_heap_earlier(sn_host *h, sn_host_peer *p, uint64_t when)
{
    if (p->heap_idx == NO_HEAP || when < p->wake_ms) sn_host_heap_set(h, p, when);
}

size_t sn_host_id_slot(uint32_t id, size_t cap)
{
    return (size_t)((id * 2654435761u) & (cap - 1));
}

bool sn_host_ids_insert(sn_host *h, sn_host_peer *p)
{
    if ((h->nids + 1) * 2 > h->cap_ids) {
        size_t ncap = h->cap_ids ? h->cap_ids * 2 : 64;
        sn_host_peer **n = sn_calloc(ncap, sizeof *n);
        if (!n) return false;
        for (size_t i = 0; i < h->cap_ids; i++) {
            sn_host_peer *q = h->ids[i];
            if (!q) continue;
            size_t j = sn_host_id_slot(q->id, ncap);
            while (n[j])
                j = (j + 1) & (ncap - 1);
            n[j] = q;
        }
        sn_free(h->ids);
        h->ids = n;
        h->cap_ids = ncap;
    }
    size_t j = sn_host_id_slot(p->id, h->cap_ids);
    while (h->ids[j])
        j = (j + 1) & (h->cap_ids - 1);
    h->ids[j] = p;
    h->nids++;
    return true;
}

void sn_host_ids_remove(sn_host *h, const sn_host_peer *p)
{
    if (!h->cap_ids) return;
    size_t mask = h->cap_ids - 1, i = sn_host_id_slot(p->id, h->cap_ids);
    while (h->ids[i] && h->ids[i] != p)
        i = (i + 1) & mask;
    if (!h->ids[i]) return;
    h->ids[i] = NULL;
    h->nids--;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    for (size_t j = (i + 1) & mask; h->ids[j]; j = (j + 1) & mask) {
        size_t home = sn_host_id_slot(h->ids[j]->id, h->cap_ids);
        bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            h->ids[i] = h->ids[j];
            h->ids[j] = NULL;
            i = j;
        }
    }
}
