/* Error codes, the thread-local last error, logging, version and the allocator hooks. */
#include "internal.h"
#include "tls/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[512];

const char *sn_err_string(sn_err e)
{
    switch (e) {
#define SN_CASE(x)                                                                                 \
    case x:                                                                                        \
        return #x;
        SN_CASE(SN_OK)
        SN_CASE(SN_FAILED)
        SN_CASE(SN_ERR_UNAVAILABLE)
        SN_CASE(SN_ERR_UNCONFIGURED)
        SN_CASE(SN_ERR_PARAMETER_RANGE_ERROR)
        SN_CASE(SN_ERR_OUT_OF_MEMORY)
        SN_CASE(SN_ERR_FILE_NOT_FOUND)
        SN_CASE(SN_ERR_FILE_CORRUPT)
        SN_CASE(SN_ERR_FILE_EOF)
        SN_CASE(SN_ERR_CANT_OPEN)
        SN_CASE(SN_ERR_CANT_CREATE)
        SN_CASE(SN_ERR_ALREADY_IN_USE)
        SN_CASE(SN_ERR_LOCKED)
        SN_CASE(SN_ERR_TIMEOUT)
        SN_CASE(SN_ERR_CANT_CONNECT)
        SN_CASE(SN_ERR_CANT_RESOLVE)
        SN_CASE(SN_ERR_CONNECTION_ERROR)
        SN_CASE(SN_ERR_INVALID_DATA)
        SN_CASE(SN_ERR_INVALID_PARAMETER)
        SN_CASE(SN_ERR_ALREADY_EXISTS)
        SN_CASE(SN_ERR_DOES_NOT_EXIST)
        SN_CASE(SN_ERR_BUSY)
        SN_CASE(SN_ERR_BUG)
#undef SN_CASE
    }
    return "SN_ERR_UNKNOWN";
}

const char *sn_last_error_message(void)
{
    return last_error;
}

static void record(const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    sn_log(SN_LOG_DEBUG, "%s", last_error);
}

sn_err sn_fail(sn_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(fmt, ap);
    va_end(ap);
    return code;
}

void *sn_fail_null(sn_err code, const char *fmt, ...)
{
    SN_UNUSED(code);
    va_list ap;
    va_start(ap, fmt);
    record(fmt, ap);
    va_end(ap);
    return NULL;
}

void sn_format_message(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    if (dst != last_error) snprintf(last_error, sizeof last_error, "%s", dst);
}

void sn_free(void *p)
{
    free(p);
}

const char *sn_version(void)
{
    static char version[160];
    if (!version[0])
        snprintf(version, sizeof version, "%s (%s)", SN_VERSION_STRING,
                 sn_tls_backend_get()->library_version());
    return version;
}

/* The handler is process-wide and set rarely; reads are racy only against a concurrent set. */
static void (*log_fn)(int, const char *, void *);
static void *log_user;

void sn_set_log_handler(void (*fn)(int level, const char *msg, void *user), void *user)
{
    log_user = user;
    log_fn = fn;
}

bool sn_log_enabled(void)
{
    return log_fn != NULL;
}

void sn_log(int level, const char *fmt, ...)
{
    if (!log_fn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}

uint64_t sn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Allocation-failure injection for tests: a countdown shared by every thread. */
static long alloc_countdown = -1;
static bool alloc_sticky;

void sn_test_fail_alloc_after(long n, bool sticky)
{
    alloc_countdown = n;
    alloc_sticky = sticky;
}

static bool alloc_should_fail(void)
{
    if (alloc_countdown < 0) return false;
    if (alloc_countdown == 0) {
        if (!alloc_sticky) alloc_countdown = -1;
        return true;
    }
    alloc_countdown--;
    return false;
}

void *sn_malloc(size_t n)
{
    return alloc_should_fail() ? NULL : malloc(n ? n : 1);
}
void *sn_calloc(size_t count, size_t n)
{
    return alloc_should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}
void *sn_realloc(void *p, size_t n)
{
    return alloc_should_fail() ? NULL : realloc(p, n ? n : 1);
}
char *sn_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sn_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
