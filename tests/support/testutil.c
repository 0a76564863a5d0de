/* Test support: child processes with captured output, temp dirs, small file helpers. */
#include "testutil.h"

#include "backend.h"
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct sn_test_proc {
    pid_t pid;
    int in_fd;  /* child's stdin, write end */
    int out_fd; /* child's stdout+stderr, read end */
    char *out;
    size_t len, cap;
    bool exited;
    int status;
};

uint64_t sn_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sn_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

sn_test_proc *sn_test_spawn(const char *const argv[])
{
    /* Writing to a child that exited must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return NULL;
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]), close(in[1]);
        return NULL;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]), close(out[0]);
        return NULL;
    }
    sn_test_proc *p = calloc(1, sizeof *p);
    p->pid = pid;
    p->in_fd = in[1];
    p->out_fd = out[0];
    fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
    p->cap = 4096;
    p->out = calloc(1, p->cap);
    return p;
}

pid_t sn_test_proc_pid(const sn_test_proc *p)
{
    return p->pid;
}

static bool read_some(sn_test_proc *p)
{
    if (p->out_fd < 0) return false;
    char buf[4096];
    ssize_t n = read(p->out_fd, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0) {
            close(p->out_fd);
            p->out_fd = -1;
        }
        return false;
    }
    if (p->len + (size_t)n + 1 > p->cap) {
        while (p->len + (size_t)n + 1 > p->cap)
            p->cap *= 2;
        p->out = realloc(p->out, p->cap);
    }
    memcpy(p->out + p->len, buf, (size_t)n);
    p->len += (size_t)n;
    p->out[p->len] = '\0';
    return true;
}

void sn_test_proc_drain(sn_test_proc *p)
{
    while (read_some(p)) {
    }
}

const char *sn_test_proc_output(sn_test_proc *p)
{
    sn_test_proc_drain(p);
    return p->out;
}

bool sn_test_proc_wait_for(sn_test_proc *p, const char *needle, int timeout_ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        sn_test_proc_drain(p);
        if (strstr(p->out, needle)) return true;
        uint64_t now = sn_test_now_ms();
        if (now >= end || p->out_fd < 0) return strstr(p->out, needle) != NULL;
        struct pollfd pfd = {p->out_fd, POLLIN, 0};
        poll(&pfd, 1, (int)(end - now > 50 ? 50 : end - now));
    }
}

bool sn_test_proc_write(sn_test_proc *p, const void *data, size_t len)
{
    const char *d = data;
    while (len > 0 && p->in_fd >= 0) {
        ssize_t n = write(p->in_fd, d, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        d += n;
        len -= (size_t)n;
    }
    return len == 0;
}

void sn_test_proc_close_stdin(sn_test_proc *p)
{
    if (p->in_fd >= 0) close(p->in_fd);
    p->in_fd = -1;
}

static int decode_status(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

int sn_test_proc_wait_exit(sn_test_proc *p, int timeout_ms)
{
    if (p->exited) return decode_status(p->status);
    uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        sn_test_proc_drain(p);
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            p->exited = true;
            sn_test_proc_drain(p);
            return decode_status(p->status);
        }
        if (sn_test_now_ms() >= end) return -1;
        sn_test_sleep_ms(10);
    }
}

int sn_test_proc_stop(sn_test_proc *p)
{
    if (!p) return -1;
    int rc = -1;
    if (!p->exited) {
        kill(p->pid, SIGTERM);
        rc = sn_test_proc_wait_exit(p, 2000);
        if (rc < 0) {
            kill(p->pid, SIGKILL);
            rc = sn_test_proc_wait_exit(p, 5000);
        }
    } else {
        rc = decode_status(p->status);
    }
    if (p->in_fd >= 0) close(p->in_fd);
    if (p->out_fd >= 0) close(p->out_fd);
    free(p->out);
    free(p);
    return rc;
}

bool sn_test_have(const char *program)
{
    const char *path = getenv("PATH");
    if (!path) return false;
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, program);
        found = access(full, X_OK) == 0;
    }
    free(copy);
    return found;
}

char *sn_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/sealnet-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) return NULL;
    return strdup(tmpl);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void sn_test_rmtree(const char *dir)
{
    if (dir) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *sn_test_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

bool sn_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

char *sn_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

int sn_test_sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    free(cmd);
    if (rc == -1) return -1;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

char *sn_test_sh_output(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = vformat(fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    free(cmd);
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    if (pclose(f) == -1) {
        free(buf);
        return NULL;
    }
    return buf;
}

long sn_test_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

const char *sn_test_source_dir(void)
{
    const char *d = getenv("SN_SOURCE_DIR");
    return d && *d ? d : ".";
}

const char *sn_test_build_dir(void)
{
    const char *d = getenv("SN_BUILD_DIR");
    return d && *d ? d : ".";
}

/* ---- allocation-failure injection ------------------------------------------------------ */

static long alloc_countdown = -1;
static bool alloc_sticky;

static bool alloc_should_fail(void)
{
    long n = __atomic_load_n(&alloc_countdown, __ATOMIC_RELAXED);
    if (n < 0) return false;
    if (n == 0) {
        if (!alloc_sticky) __atomic_store_n(&alloc_countdown, -1, __ATOMIC_RELAXED);
        return true;
    }
    __atomic_store_n(&alloc_countdown, n - 1, __ATOMIC_RELAXED);
    return false;
}

static void *test_malloc(size_t n, void *user)
{
    (void)user;
    return alloc_should_fail() ? NULL : malloc(n);
}

static void *test_realloc(void *p, size_t n, void *user)
{
    (void)user;
    return alloc_should_fail() ? NULL : realloc(p, n);
}

static void test_free(void *p, void *user)
{
    (void)user;
    free(p);
}

/* Only sealnet's own allocations (sn_core_set_allocator, not the public hook): the TLS library
 * keeps libc, so a countdown means the same thing it always did. */
__attribute__((constructor)) static void install_test_allocator(void)
{
    static const sn_allocator a = {test_malloc, test_realloc, test_free, NULL};
    sn_core_set_allocator(&a);
}

void sn_test_fail_alloc_after(long n, bool sticky)
{
    alloc_sticky = sticky;
    __atomic_store_n(&alloc_countdown, n, __ATOMIC_RELAXED);
}

bool sn_test_backend_lacks(const char *what)
{
    const sn_tls_backend *be = sn_tls_backend_get();
    bool has = true;
    if (!strcmp(what, "tickets"))
        has = (be->caps & SN_TLS_CAP_TICKETS) != 0;
    else if (!strcmp(what, "keylog"))
        has = (be->caps & SN_TLS_CAP_KEYLOG) != 0;
    else if (!strcmp(what, "allocator"))
        has = (be->caps & SN_TLS_CAP_ALLOCATOR) != 0;
    else if (!strcmp(what, "peer chain"))
        has = be->peer_chain && be->chain_info;
    if (!has) printf("skipped: the %s backend has no %s (docs/backends.md)\n", be->name, what);
    return !has;
}
