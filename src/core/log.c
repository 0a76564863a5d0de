/* Logging through the program's handler (silent by default). */
#include "core.h"

#include <stdio.h>

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
