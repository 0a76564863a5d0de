/* Error codes and the thread-local last error. */
#include "core.h"

#include <stdio.h>
#include <string.h>

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
