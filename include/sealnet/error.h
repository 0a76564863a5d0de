/* sealnet — errors, version, logging and memory shared by every area.
 *
 * Every call that fails returns a value other than SN_OK (or NULL) and records a message naming
 * the cause, readable with sn_last_error_message() on the same thread.
 */
#ifndef SEALNET_ERROR_H
#define SEALNET_ERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(SN_BUILDING_LIBRARY) && defined(__GNUC__)
#define SN_API __attribute__((visibility("default")))
#else
#define SN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes, numbered like Godot's Error enum so they can be compared with its docs. */
typedef enum sn_err {
    SN_OK = 0,
    SN_FAILED = 1,
    SN_ERR_UNAVAILABLE = 2,
    SN_ERR_UNCONFIGURED = 3,
    SN_ERR_PARAMETER_RANGE_ERROR = 5,
    SN_ERR_OUT_OF_MEMORY = 6,
    SN_ERR_FILE_NOT_FOUND = 7,
    SN_ERR_FILE_CORRUPT = 16,
    SN_ERR_FILE_EOF = 18,
    SN_ERR_CANT_OPEN = 19,
    SN_ERR_CANT_CREATE = 20,
    SN_ERR_ALREADY_IN_USE = 22,
    SN_ERR_LOCKED = 23,
    SN_ERR_TIMEOUT = 24,
    SN_ERR_CANT_CONNECT = 25,
    SN_ERR_CANT_RESOLVE = 26,
    SN_ERR_CONNECTION_ERROR = 27,
    SN_ERR_INVALID_DATA = 30,
    SN_ERR_INVALID_PARAMETER = 31,
    SN_ERR_ALREADY_EXISTS = 32,
    SN_ERR_DOES_NOT_EXIST = 33,
    SN_ERR_BUSY = 44,
    SN_ERR_BUG = 47
} sn_err;

/* The enum's name, e.g. "SN_ERR_BUSY"; "SN_ERR_UNKNOWN" for a value not in the enum. Static. */
SN_API const char *sn_err_string(sn_err e);

/* The reason of this thread's most recent failure ("port 4242 already in use"). Valid until the
 * next failing call on this thread; "" when nothing has failed yet. */
SN_API const char *sn_last_error_message(void);

/* Releases memory the library handed out as `char *` (PEM strings and the like). NULL is fine. */
SN_API void sn_free(void *p);

/* Library version and TLS backend, e.g. "0.1.0 (OpenSSL 3.0.19 27 Jan 2026)". Static. */
SN_API const char *sn_version(void);

/* Log levels passed to the log handler. */
enum { SN_LOG_ERROR = 0, SN_LOG_WARNING = 1, SN_LOG_INFO = 2, SN_LOG_DEBUG = 3 };

/* Installs a process-wide log handler (NULL: silent, the default). `msg` is valid only for the
 * duration of the call. The handler may be called from any thread that uses the library. */
SN_API void sn_set_log_handler(void (*fn)(int level, const char *msg, void *user), void *user);

#ifdef __cplusplus
}
#endif
#endif
