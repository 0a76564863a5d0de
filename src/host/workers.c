/* sn_workers: N hosts on one UDP port, one thread each (include/sealnet/workers.h).
 *
 * Built on the public host API only: each worker owns an sn_host whose socket joins an
 * SO_REUSEPORT group, and waits on the host's epoll descriptor and its own eventfd. Other
 * threads reach a worker only through its inbox (a mutex-protected list of broadcasts, taken
 * whole once per turn) and the eventfd that wakes it, so the packet path takes no lock. */
#include "keys_internal.h"

#include <sealnet/workers.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* How often a worker publishes its counters for other threads. */
#define STATS_EVERY_MS 100
/* Longest sleep: bounds how stale a published snapshot can be. */
#define MAX_SLEEP_MS 100
/* How long a worker that just handled events waits for more inside the host. */
#define BUSY_WAIT_MS 1

typedef struct message {
    struct message *next;
    size_t len;
    uint8_t data[];
} message;

typedef struct worker {
    sn_workers *owner;
    int index;
    sn_host *host;
    sn_tls_options *options;
    int wake_fd;
    pthread_t thread;
    bool started;
    atomic_bool done;
    pthread_mutex_t lock; /* inbox and the published stats */
    message *inbox_head, *inbox_tail;
    sn_workers_stats published;
    sn_workers_stats live; /* worker thread only */
} worker;

struct sn_workers {
    int n, port;
    worker *w;
    atomic_bool stopping;
    atomic_int running;
    bool has_tickets;
    sn_workers_event_fn on_event;
    void *user;
    pthread_mutex_t done_lock;
    pthread_cond_t done_cond;
    char error[320]; /* under done_lock */
};

void sn_workers_default_config(sn_workers_config *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    out->workers = 1;
    sn_host_default_config(&out->host);
}

static void wake(worker *k)
{
    uint64_t one = 1;
    /* A full counter (never in practice) still leaves the fd readable: the wake is not lost. */
    if (write(k->wake_fd, &one, sizeof one) < 0) return;
}

static void publish(worker *k)
{
    sn_host_get_stats(k->host, &k->live.host);
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
        k->live.cpu_ns = (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec;
    pthread_mutex_lock(&k->lock);
    k->published = k->live;
    pthread_mutex_unlock(&k->lock);
}

static void deliver_inbox(worker *k)
{
    pthread_mutex_lock(&k->lock);
    message *m = k->inbox_head;
    k->inbox_head = k->inbox_tail = NULL;
    pthread_mutex_unlock(&k->lock);
    while (m) {
        message *next = m->next;
        int sent = sn_host_broadcast(k->host, m->data, m->len, NULL);
        k->live.broadcasts++;
        if (sent > 0) k->live.broadcast_sends += (uint64_t)sent;
        sn_free(m);
        m = next;
    }
}

static void fail_all(sn_workers *w, int index, const char *why)
{
    pthread_mutex_lock(&w->done_lock);
    if (!w->error[0] && !atomic_load(&w->stopping))
        snprintf(w->error, sizeof w->error, "worker %d: %s", index, why);
    pthread_mutex_unlock(&w->done_lock);
    sn_workers_stop(w);
}

static void *worker_main(void *arg)
{
    worker *k = arg;
    sn_workers *w = k->owner;
    uint64_t next_publish = 0;
    char name[16];
    snprintf(name, sizeof name, "sn-worker-%d", k->index % 10000);
    pthread_setname_np(pthread_self(), name); /* for top -H, perf, gdb */
    bool busy = false;
    while (!atomic_load_explicit(&w->stopping, memory_order_acquire)) {
        deliver_inbox(k);
        sn_host_event ev;
        int r = 0, budget = 1024; /* events per turn, so the inbox and stop are seen promptly */
        /* A busy worker waits for its next datagram inside the host (its own epoll_wait, up to
         * BUSY_WAIT_MS) rather than in a separate poll() that also watches the inbox: one wait
         * per batch instead of two. The inbox is then seen at most BUSY_WAIT_MS late. */
        int wait = busy ? BUSY_WAIT_MS : 0;
        while (budget-- > 0 && (r = sn_host_service(k->host, &ev, wait)) > 0) {
            if (w->on_event) w->on_event(w, k->index, k->host, &ev, w->user);
            wait = 0;
        }
        busy = budget < 1023;
        if (budget >= 0 && r < 0) {
            fail_all(w, k->index, sn_last_error_message());
            break;
        }
        uint64_t now = sn_now_ms();
        if (now >= next_publish) {
            publish(k);
            next_publish = now + STATS_EVERY_MS;
        }
        if (budget < 0) continue; /* more events waiting: no sleep */
        int t = sn_host_next_timeout_ms(k->host);
        if (t < 0 || t > MAX_SLEEP_MS) t = MAX_SLEEP_MS;
        struct pollfd pfd[2] = {{sn_host_get_fd(k->host), POLLIN, 0}, {k->wake_fd, POLLIN, 0}};
        if (t > 0) {
            k->live.wakeups++;
            if (poll(pfd, 2, t) < 0 && errno != EINTR) {
                fail_all(w, k->index, strerror(errno));
                break;
            }
        }
        if (pfd[1].revents & POLLIN) {
            uint64_t v;
            if (read(k->wake_fd, &v, sizeof v) < 0) { /* EAGAIN: someone else drained it */
            }
        }
    }
    /* close_notify to every peer; the host is freed here, on its own thread. */
    publish(k);
    sn_host_free(k->host);
    k->host = NULL;
    atomic_store(&k->done, true);
    pthread_mutex_lock(&w->done_lock);
    atomic_fetch_sub(&w->running, 1);
    pthread_cond_broadcast(&w->done_cond);
    pthread_mutex_unlock(&w->done_lock);
    return NULL;
}

static void destroy(sn_workers *w)
{
    for (int i = 0; i < w->n; i++) {
        worker *k = &w->w[i];
        if (k->started) pthread_join(k->thread, NULL);
        sn_host_free(k->host);
        sn_tls_options_free(k->options);
        if (k->wake_fd >= 0) close(k->wake_fd);
        for (message *m = k->inbox_head, *next; m; m = next) {
            next = m->next;
            sn_free(m);
        }
        pthread_mutex_destroy(&k->lock);
    }
    pthread_mutex_destroy(&w->done_lock);
    pthread_cond_destroy(&w->done_cond);
    sn_free(w->w);
    sn_free(w);
}

/* The secrets every worker shares, from the config (bytes, else a file, else fresh). */
static sn_err shared_secrets(const sn_workers_config *c, uint8_t cookie[32],
                             uint8_t tickets[SN_TICKET_KEYS_MAX * SN_TICKET_KEY_LEN],
                             size_t *tickets_len)
{
    size_t n = 0;
    sn_err e;
    if (c->cookie_secret)
        memcpy(cookie, c->cookie_secret, 32);
    else if (c->cookie_secret_file) {
        if ((e = sn_secret_file_load(c->cookie_secret_file, "cookie secret", 32, 1, true, cookie,
                                     &n)) != SN_OK)
            return e;
    } else if ((e = sn_tls_backend_get()->random_bytes(cookie, 32)) != SN_OK)
        return e;
    *tickets_len = 0;
    if (c->ticket_keys) {
        if (c->ticket_keys_len == 0 || c->ticket_keys_len > SN_TICKET_KEYS_MAX * SN_TICKET_KEY_LEN)
            return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                           "ticket_keys_len %zu: 80 or 160 bytes expected", c->ticket_keys_len);
        memcpy(tickets, c->ticket_keys, c->ticket_keys_len);
        *tickets_len = c->ticket_keys_len;
    } else if (c->ticket_key_file) {
        if ((e = sn_secret_file_load(c->ticket_key_file, "ticket keys", SN_TICKET_KEY_LEN,
                                     SN_TICKET_KEYS_MAX, true, tickets, &n)) != SN_OK)
            return e;
        *tickets_len = n * SN_TICKET_KEY_LEN;
    }
    return SN_OK;
}

sn_workers *sn_workers_start(const sn_workers_config *c)
{
    if (!c || !c->key || !c->cert)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER, "sn_workers_start: %s",
                            c ? "a server key and certificate are needed" : "NULL config");
    int n = c->workers;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    if (n < 1 || n > 1024)
        return sn_fail_null(SN_ERR_PARAMETER_RANGE_ERROR, "workers %d out of range 0..1024",
                            c->workers);
    uint8_t cookie[32], tickets[SN_TICKET_KEYS_MAX * SN_TICKET_KEY_LEN];
    size_t tickets_len = 0;
    if (shared_secrets(c, cookie, tickets, &tickets_len) != SN_OK) return NULL;

    sn_workers *w = sn_calloc(1, sizeof *w);
    worker *ks = w ? sn_calloc((size_t)n, sizeof *ks) : NULL;
    if (!ks) {
        sn_free(w);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    w->w = ks;
    w->n = n;
    w->on_event = c->on_event;
    w->user = c->user;
    w->has_tickets = tickets_len > 0;
    atomic_init(&w->stopping, false);
    atomic_init(&w->running, 0);
    pthread_mutex_init(&w->done_lock, NULL);
    pthread_cond_init(&w->done_cond, NULL);
    for (int i = 0; i < n; i++) {
        ks[i].wake_fd = -1;
        pthread_mutex_init(&ks[i].lock, NULL);
    }

    sn_host_config hc = c->host;
    hc.reuse_port = true;
    hc.cookie_secret = cookie;
    char why[300] = "";
    for (int i = 0; i < n && !why[0]; i++) {
        worker *k = &ks[i];
        k->owner = w;
        k->index = i;
        atomic_init(&k->done, false);
        /* Own context per worker: no lock shared between handshakes on different cores. */
        k->options = sn_tls_options_server(c->key, c->cert);
        if (!k->options || (tickets_len && sn_tls_options_set_ticket_keys(k->options, tickets,
                                                                          tickets_len) != SN_OK)) {
            snprintf(why, sizeof why, "worker %d: %s", i, sn_last_error_message());
            break;
        }
        hc.server_options = k->options;
        /* The first worker picks the port when asked for 0; the others join its group. */
        if (i > 0) hc.port = w->port;
        k->host = sn_host_create(&hc);
        k->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (!k->host || k->wake_fd < 0) {
            snprintf(why, sizeof why, "worker %d: %s", i,
                     k->host ? strerror(errno) : sn_last_error_message());
            break;
        }
        if (i == 0) w->port = sn_host_get_port(k->host);
    }
    memset(cookie, 0, sizeof cookie);
    memset(tickets, 0, sizeof tickets);
    for (int i = 0; i < n && !why[0]; i++) {
        atomic_fetch_add(&w->running, 1);
        if (pthread_create(&ks[i].thread, NULL, worker_main, &ks[i]) != 0) {
            atomic_fetch_sub(&w->running, 1);
            snprintf(why, sizeof why, "worker %d: cannot start a thread: %s", i, strerror(errno));
            break;
        }
        ks[i].started = true;
    }
    if (why[0]) {
        sn_workers_stop(w);
        destroy(w);
        return sn_fail_null(SN_ERR_CANT_CREATE, "%s", why);
    }
    return w;
}

void sn_workers_stop(sn_workers *w)
{
    if (!w) return;
    atomic_store_explicit(&w->stopping, true, memory_order_release);
    for (int i = 0; i < w->n; i++)
        if (w->w[i].wake_fd >= 0) wake(&w->w[i]);
}

bool sn_workers_stopped(const sn_workers *w)
{
    return !w || atomic_load(&((sn_workers *)(uintptr_t)w)->running) == 0;
}

bool sn_workers_wait(sn_workers *w, int timeout_ms)
{
    if (!w) return true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->done_lock);
    while (atomic_load(&w->running) > 0 && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&w->done_cond, &w->done_lock);
        else if (pthread_cond_timedwait(&w->done_cond, &w->done_lock, &until) != 0)
            break;
    }
    bool done = atomic_load(&w->running) == 0;
    pthread_mutex_unlock(&w->done_lock);
    return done;
}

void sn_workers_free(sn_workers *w)
{
    if (!w) return;
    sn_workers_stop(w);
    destroy(w);
}

sn_err sn_workers_broadcast(sn_workers *w, const void *data, size_t len)
{
    if (!w || (!data && len))
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_workers_broadcast: NULL argument");
    if (atomic_load(&w->stopping))
        return sn_fail(SN_ERR_UNCONFIGURED, "sn_workers_broadcast: the workers are stopping");
    for (int i = 0; i < w->n; i++) {
        message *m = sn_malloc(sizeof *m + len);
        if (!m) return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory");
        m->next = NULL;
        m->len = len;
        if (len) memcpy(m->data, data, len);
        worker *k = &w->w[i];
        pthread_mutex_lock(&k->lock);
        if (k->inbox_tail)
            k->inbox_tail->next = m;
        else
            k->inbox_head = m;
        k->inbox_tail = m;
        pthread_mutex_unlock(&k->lock);
        wake(k);
    }
    return SN_OK;
}

sn_err sn_workers_set_ticket_keys(sn_workers *w, const uint8_t *keys, size_t len)
{
    if (!w) return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_workers_set_ticket_keys: NULL workers");
    if (!w->has_tickets)
        return sn_fail(SN_ERR_UNCONFIGURED,
                       "sn_workers_set_ticket_keys: the workers were started without ticket keys");
    for (int i = 0; i < w->n; i++) {
        sn_err e = sn_tls_options_set_ticket_keys(w->w[i].options, keys, len);
        if (e != SN_OK) return e;
    }
    return SN_OK;
}

int sn_workers_count(const sn_workers *w)
{
    return w ? w->n : 0;
}

int sn_workers_get_port(const sn_workers *w)
{
    return w ? w->port : 0;
}

void sn_workers_get_stats(const sn_workers *w, int i, sn_workers_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!w || i < 0 || i >= w->n) return;
    worker *k = &w->w[i];
    pthread_mutex_lock(&k->lock);
    *out = k->published;
    pthread_mutex_unlock(&k->lock);
}

void sn_workers_get_ticket_stats(const sn_workers *w, sn_tls_ticket_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        sn_tls_ticket_stats t;
        sn_tls_options_get_ticket_stats(w->w[i].options, &t);
        out->issued += t.issued;
        out->resumed += t.resumed;
        out->unknown_key += t.unknown_key;
        out->rejected += t.rejected;
    }
}

const char *sn_workers_get_error(const sn_workers *w)
{
    if (!w) return "";
    /* Written once (the first failure), under the lock; a copy read under it is stable. */
    sn_workers *m = (sn_workers *)(uintptr_t)w;
    pthread_mutex_lock(&m->done_lock);
    const char *e = m->error;
    pthread_mutex_unlock(&m->done_lock);
    return e;
}
