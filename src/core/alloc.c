/* Every allocation sealnet makes goes through here, so a program can supply its allocator. */
#include "core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t n, void *user)
{
    SN_UNUSED(user);
    return malloc(n);
}
static void *libc_realloc(void *p, size_t n, void *user)
{
    SN_UNUSED(user);
    return realloc(p, n);
}
static void libc_free(void *p, void *user)
{
    SN_UNUSED(user);
    free(p);
}

static const sn_allocator libc_allocator = {libc_malloc, libc_realloc, libc_free, NULL};
static sn_allocator current = {libc_malloc, libc_realloc, libc_free, NULL};
/* Blocks handed out and not yet freed: a new allocator may only take over at zero, or the old
 * blocks would be released through the wrong one. */
static atomic_size_t live;

sn_err sn_core_set_allocator(const sn_allocator *a)
{
    if (a && (!a->malloc_fn || !a->realloc_fn || !a->free_fn))
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "sn_set_allocator: malloc_fn, realloc_fn and free_fn are all required");
    size_t n = atomic_load(&live);
    if (n > 0)
        return sn_fail(SN_ERR_LOCKED,
                       "sn_set_allocator: %zu blocks from the current allocator are still in use "
                       "(free every sealnet object first, or set the allocator at start-up)",
                       n);
    current = a ? *a : libc_allocator;
    return SN_OK;
}

const sn_allocator *sn_core_allocator(void)
{
    return &current;
}

size_t sn_allocations_live(void)
{
    return atomic_load(&live);
}

void *sn_malloc(size_t n)
{
    void *p = current.malloc_fn(n ? n : 1, current.user);
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *sn_calloc(size_t count, size_t n)
{
    if (!count) count = 1;
    if (!n) n = 1;
    if (n > SIZE_MAX / count) return NULL;
    void *p = sn_malloc(count * n);
    if (p) memset(p, 0, count * n);
    return p;
}

void *sn_realloc(void *p, size_t n)
{
    void *q = current.realloc_fn(p, n ? n : 1, current.user);
    if (q && !p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return q;
}

void sn_free(void *p)
{
    if (!p) return;
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    current.free_fn(p, current.user);
}

char *sn_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sn_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
