/* sealnet — what a program can inject: the clock and the allocator.
 *
 * Game engines own time and memory. Like ENet's enet_initialize_with_callbacks and netcode's
 * allocator and time arguments, sealnet lets a program replace both, process-wide. Set them
 * before creating any sealnet object: a hook changed while objects allocated under the old one
 * are alive is refused (SN_ERR_LOCKED). The UDP transport (who sends and receives datagrams) can
 * be replaced too: see sn_set_udp_transport in <sealnet/udp.h>.
 */
#ifndef SEALNET_PLATFORM_H
#define SEALNET_PLATFORM_H

#include <sealnet/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- clock ------------------------------------------------------------------------------- */

/* Monotonic microseconds since an arbitrary origin; never goes backwards. */
typedef uint64_t (*sn_clock_fn)(void *user);

/* Replaces the clock every sealnet timer reads (idle and handshake timeouts, keepalives, pending
 * expiry, cookie lifetimes, RTT). NULL: CLOCK_MONOTONIC. Process-wide; call it before the objects
 * whose timers it should drive. The TLS library keeps its own clock for DTLS retransmissions
 * inside a handshake (see docs/platform.md). */
SN_API void sn_set_clock(sn_clock_fn now_us, void *user);

/* The clock's current reading in milliseconds and in microseconds. */
SN_API uint64_t sn_clock_now_ms(void);
SN_API uint64_t sn_clock_now_us(void);

/* ---- allocator --------------------------------------------------------------------------- */

typedef struct sn_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *ptr, size_t size, void *user); /* ptr NULL: like malloc */
    void (*free_fn)(void *ptr, void *user);                  /* ptr NULL: nothing */
    void *user;
} sn_allocator;

/* Routes every allocation sealnet makes (and, where the TLS backend allows it, the backend's
 * own: OpenSSL's until its first allocation) through `a`; NULL restores libc. The struct is
 * copied. SN_ERR_INVALID_PARAMETER when a function is missing; SN_ERR_LOCKED while memory from
 * the previous allocator is still held by sealnet objects. Strings the library hands out
 * (sn_free) come from this allocator too. */
SN_API sn_err sn_set_allocator(const sn_allocator *a);

/* True when the TLS backend's allocations also go through the allocator set last. */
SN_API bool sn_allocator_covers_backend(void);

/* How many blocks sealnet itself holds right now (its own allocations, not the backend's);
 * for tests and leak checks. */
SN_API size_t sn_allocations_live(void);

#ifdef __cplusplus
}
#endif
#endif
