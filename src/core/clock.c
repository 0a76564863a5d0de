/* The one clock every sealnet timer reads; a program or a test may replace it. */
#include "core.h"

#include <stdatomic.h>
#include <time.h>

static uint64_t monotonic_us(void *user)
{
    SN_UNUSED(user);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Read on every timer check from any thread; set rarely. The pair is swapped as one pointer so
 * a reader never sees one hook's function with another's user data. */
typedef struct clock_hook {
    sn_clock_fn fn;
    void *user;
} clock_hook;

static const clock_hook default_hook = {monotonic_us, NULL};
static clock_hook hooks[2];
static _Atomic(const clock_hook *) current = &default_hook;
static int next_slot;

void sn_set_clock(sn_clock_fn now_us, void *user)
{
    if (!now_us) {
        atomic_store(&current, &default_hook);
        return;
    }
    /* Two slots: the one not in use is written, then published. */
    clock_hook *h = &hooks[next_slot];
    next_slot ^= 1;
    h->fn = now_us;
    h->user = user;
    atomic_store(&current, h);
}

uint64_t sn_clock_now_us(void)
{
    const clock_hook *h = atomic_load_explicit(&current, memory_order_acquire);
    return h->fn(h->user);
}

uint64_t sn_clock_now_ms(void)
{
    return sn_clock_now_us() / 1000u;
}

uint64_t sn_now_ms(void)
{
    return sn_clock_now_ms();
}
