/* Test support: child processes with captured output, temp dirs, small file helpers.
 * Used by every test program; every wait here is bounded by a timeout. */
#ifndef SN_TESTUTIL_H
#define SN_TESTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sn_test_proc sn_test_proc;

/* Starts argv[0] (searched in PATH) with stdin a pipe and stdout+stderr captured together.
 * NULL when it cannot be started. */
sn_test_proc *sn_test_spawn(const char *const argv[]);
/* Waits until the captured output contains needle or timeout_ms passes; true when found. */
bool sn_test_proc_wait_for(sn_test_proc *p, const char *needle, int timeout_ms);
/* Reads whatever output is available without waiting. */
void sn_test_proc_drain(sn_test_proc *p);
/* Everything captured so far (NUL-terminated, owned by p). */
const char *sn_test_proc_output(sn_test_proc *p);
/* Writes to the child's stdin; false on error. */
bool sn_test_proc_write(sn_test_proc *p, const void *data, size_t len);
/* Closes the child's stdin. */
void sn_test_proc_close_stdin(sn_test_proc *p);
/* Waits up to timeout_ms for the child to exit on its own; its exit code, or -1 if it did not
 * exit (it keeps running), 128+signal when killed by a signal. */
int sn_test_proc_wait_exit(sn_test_proc *p, int timeout_ms);
/* SIGTERM, then SIGKILL after 2 s; reaps the child and frees p. Returns the exit status as
 * sn_test_proc_wait_exit. NULL is fine (returns -1). */
int sn_test_proc_stop(sn_test_proc *p);
pid_t sn_test_proc_pid(const sn_test_proc *p);

/* True when program is found in PATH. */
bool sn_test_have(const char *program);
/* A fresh directory under $TMPDIR (or /tmp); caller frees the string and removes it with
 * sn_test_rmtree. */
char *sn_test_tmpdir(void);
void sn_test_rmtree(const char *dir);
/* Joins dir and name into a malloc'd path. */
char *sn_test_path(const char *dir, const char *name);
/* Writes / reads a whole file; read returns malloc'd data (NUL-terminated) and *len. */
bool sn_test_write_file(const char *path, const void *data, size_t len);
char *sn_test_read_file(const char *path, size_t *len);
/* Runs a shell command, output discarded unless verbose; its exit status (-1 on failure). */
int sn_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command and returns its stdout (malloc'd, NUL-terminated), NULL on failure. */
char *sn_test_sh_output(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Monotonic milliseconds. */
uint64_t sn_test_now_ms(void);
/* Sleeps for ms milliseconds. */
void sn_test_sleep_ms(int ms);
/* Current resident set size of this process in KiB (from /proc/self/statm). */
long sn_test_rss_kib(void);
/* The source tree root (SN_SOURCE_DIR from CTest, or "." ). */
const char *sn_test_source_dir(void);
/* The build tree root (SN_BUILD_DIR from CTest, or "."). */
const char *sn_test_build_dir(void);

/* Allocation-failure injection through the library's allocator hook: the test support library
 * installs a counting allocator for sealnet's own allocations before main. The n-th allocation
 * from now fails (and every one after it while `sticky`); n < 0 switches injection off. */
void sn_test_fail_alloc_after(long n, bool sticky);

/* The TLS backend this build uses lacks `what` (one of "tickets", "keylog", "allocator",
 * "peer chain"): prints one line naming it and returns true, so a test can skip() what the
 * backend cannot do (docs/backends.md). */
bool sn_test_backend_lacks(const char *what);

#endif
