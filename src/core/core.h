/* The core layer: errors, logging, the clock and the allocator, shared by every layer above.
 * Not installed. */
#ifndef SN_CORE_H
#define SN_CORE_H

#include <sealnet/sealnet.h>

#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SN_PRINTF(a, b)
#endif

/* Records `code` and a formatted message as this thread's last error; returns code so that
 * callers can write `return sn_fail(SN_ERR_X, "...")`. */
sn_err sn_fail(sn_err code, const char *fmt, ...) SN_PRINTF(2, 3);
/* Same, for the functions that return a pointer: records and returns NULL. */
void *sn_fail_null(sn_err code, const char *fmt, ...) SN_PRINTF(2, 3);
/* Formats into an object's own message buffer and also records it as the thread's last error. */
void sn_format_message(char *dst, size_t cap, const char *fmt, ...) SN_PRINTF(3, 4);

/* Log through the handler installed with sn_set_log_handler(); a no-op when none is set. */
void sn_log(int level, const char *fmt, ...) SN_PRINTF(2, 3);
bool sn_log_enabled(void);

/* Monotonic milliseconds on the library's clock (sn_set_clock; CLOCK_MONOTONIC by default). */
uint64_t sn_now_ms(void);

/* Allocation goes through the program's allocator (sn_set_allocator); release with sn_free. */
void *sn_malloc(size_t n);
void *sn_calloc(size_t count, size_t n);
void *sn_realloc(void *p, size_t n);
char *sn_strdup(const char *s);
/* alloc.c: installs `a` (NULL: libc) for sealnet's own allocations; the public sn_set_allocator
 * (backend layer) also routes the TLS library's. */
sn_err sn_core_set_allocator(const sn_allocator *a);
const sn_allocator *sn_core_allocator(void);

#define SN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SN_UNUSED(x)    ((void)(x))

#endif
