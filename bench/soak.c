/* soak: thousands of DTLS clients churning against one host server on loopback, for minutes,
 * while the server's resident memory, descriptors and CPU per packet are sampled. It fails when
 * memory or descriptors keep growing after the warm-up.
 *
 *   build/bench/soak [--seconds S (600)] [--clients N (2000)] [--procs P (4)]
 *                    [--interval S (10)] [--warmup S (60)] [--trim S (5; 0: never)]
 *
 * Processes (so each side's CPU and memory are its own, and a client can really vanish):
 *   server   one sn_host with server options on 127.0.0.1, echoing every RECEIVE, idle timeout
 *            10 s, keepalive 1 s; it copies its sn_host_stats into shared memory as it runs,
 *            and gives free heap pages back every --trim seconds (malloc_trim(0), as a
 *            long-running server may): without it RSS tracks glibc's high-water mark and
 *            fragmentation, which kept growing for minutes under this churn while the heap in
 *            use stayed flat (the heap column shows it either way).
 *   clients  P processes, each one client-only sn_host holding N/P connections. Every client
 *            loops: connect (staggered), exchange (a 64-byte packet every 100-1000 ms, echoes
 *            counted) for 2-10 s, idle (keepalives only) for 5-20 s, then disconnects cleanly
 *            (close_notify) and reconnects 0-2 s later, or goes back to exchanging.
 *   this     every 15-25 s SIGKILLs one client process (its clients vanish without a word: the
 *            server must time them out) and starts a new one in its place; every interval it
 *            samples the server: VmRSS from /proc, open descriptors (/proc/PID/fd), CPU
 *            (utime + stime) over the packets it handled (application packets and keepalives,
 *            both directions; handshakes cost CPU too but are not packets here) and prints a
 *            row. The server also reports its malloc'd bytes in use (heap, mallinfo2: sealnet
 *            and OpenSSL), which tells a leak from allocator fragmentation when RSS moves.
 *
 * Verdict: the peer count swings with the churn (a killed process leaves its sessions until
 * the server's idle timeout, while its replacement connects anew), and memory with it. So the
 * baseline is the largest of the first BASE_SAMPLES samples after the warm-up (about one kill
 * cycle); every later sample must stay within RSS_TOLERANCE (15 % + 4 MiB) of its RSS and within
 * FD_TOLERANCE (8) of its descriptors, and so must the mean of the last third of the samples (a
 * slow leak shows there even when no single sample crosses). Exit 0 when flat, 1 when not, 2 on
 * a setup failure.
 */
#include <sealnet/host.h>
#include <sealnet/sealnet.h>

#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS     64
#define PKT           64
#define RSS_TOLERANCE 0.15
#define RSS_SLACK_KIB 4096
#define FD_TOLERANCE  8
#define BASE_SAMPLES  3

typedef struct shared {
    volatile sn_host_stats server;
    volatile int server_port;
    volatile unsigned long long heap_bytes;        /* server: malloc'd bytes in use (mallinfo2) */
    volatile unsigned long long echoes[MAX_PROCS]; /* echoes received, per client slot */
    volatile unsigned long long connects[MAX_PROCS];
} shared;

static shared *sh;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned rnd(unsigned *seed, unsigned lo, unsigned hi)
{
    *seed = *seed * 1103515245u + 12345u;
    return lo + (*seed >> 8) % (hi - lo + 1);
}

/* ---- server -------------------------------------------------------------------------------- */

static double trim_every = 5; /* seconds between malloc_trim(0) in the server; 0: never */

static int run_server(int port_pipe)
{
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    sn_tls_options *opts = cert ? sn_tls_options_server(key, cert) : NULL;
    sn_host_config c;
    sn_host_default_config(&c);
    c.server_options = opts;
    c.bind_address = "127.0.0.1";
    c.idle_timeout_ms = 10000;
    c.max_peers = 20000;
    c.max_half_open = 1024;
    sn_host *h = opts ? sn_host_create(&c) : NULL;
    if (!h) {
        fprintf(stderr, "soak server: %s\n", sn_last_error_message());
        return 2;
    }
    sn_tls_options_free(opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    int port = sn_host_get_port(h);
    if (write(port_pipe, &port, sizeof port) != sizeof port) return 2;
    close(port_pipe);
    sn_host_event ev;
    double last_copy = 0, last_trim = now_s();
    while (!stop) {
        int r = sn_host_service(h, &ev, 50);
        if (r < 0) break;
        if (r > 0 && ev.type == SN_HOST_EVENT_RECEIVE) sn_host_peer_send(ev.peer, ev.data, ev.len);
        double t = now_s();
        if (trim_every > 0 && t - last_trim > trim_every) {
            /* A long-running server gives free heap pages back; without this, RSS shows glibc's
             * high-water mark and fragmentation rather than what is allocated. */
            malloc_trim(0);
            last_trim = t;
        }
        if (t - last_copy > 0.2) {
            sn_host_stats st;
            sn_host_get_stats(h, &st);
            memcpy((void *)&sh->server, &st, sizeof st);
            sh->heap_bytes = mallinfo2().uordblks;
            last_copy = t;
        }
    }
    sn_host_free(h);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------------- */

enum { C_DOWN, C_CONNECTING, C_EXCHANGE, C_IDLE };

typedef struct client {
    int state;
    uint32_t id;
    double until, next_send;
} client;

static int run_clients(int slot, int n, int port, unsigned seed)
{
    sn_host_config c;
    sn_host_default_config(&c);
    c.max_peers = n + 16;
    c.idle_timeout_ms = 10000;
    sn_host *h = sn_host_create(&c);
    sn_tls_options *copts = sn_tls_options_client_unsafe(NULL);
    client *cl = calloc((size_t)n, sizeof *cl);
    if (!h || !copts || !cl) {
        fprintf(stderr, "soak clients: %s\n", sn_last_error_message());
        return 2;
    }
    double t0 = now_s();
    for (int i = 0; i < n; i++) /* staggered: about 200 handshakes per second per process */
        cl[i].until = t0 + (double)i / 200.0 + (double)rnd(&seed, 0, 1000) / 1000.0;
    uint8_t pkt[PKT];
    memset(pkt, 0x5a, sizeof pkt);
    sn_host_event ev;
    while (!stop) {
        while (sn_host_service(h, &ev, 10) > 0) {
            client *k = ev.peer ? sn_host_peer_get_user_data(ev.peer) : NULL;
            if (!k) continue;
            if (ev.type == SN_HOST_EVENT_CONNECT) {
                k->state = C_EXCHANGE;
                k->until = now_s() + rnd(&seed, 2000, 10000) / 1000.0;
                k->next_send = now_s();
                sh->connects[slot]++;
            } else if (ev.type == SN_HOST_EVENT_RECEIVE) {
                sh->echoes[slot]++;
            } else if (ev.type == SN_HOST_EVENT_DISCONNECT) {
                k->state = C_DOWN;
                k->until = now_s() + rnd(&seed, 0, 2000) / 1000.0;
            }
        }
        double t = now_s();
        for (int i = 0; i < n; i++) {
            client *k = &cl[i];
            sn_host_peer *p = k->state != C_DOWN ? sn_host_find_peer(h, k->id) : NULL;
            switch (k->state) {
            case C_DOWN:
                if (t < k->until) break;
                p = sn_host_connect(h, "127.0.0.1", port, "localhost", copts);
                if (!p) {
                    k->until = t + 1;
                    break;
                }
                sn_host_peer_set_user_data(p, k);
                k->id = sn_host_peer_get_id(p);
                k->state = C_CONNECTING;
                break;
            case C_EXCHANGE:
                if (!p) break;
                if (t >= k->next_send) {
                    sn_host_peer_send(p, pkt, sizeof pkt);
                    k->next_send = t + rnd(&seed, 100, 1000) / 1000.0;
                }
                if (t >= k->until) {
                    k->state = C_IDLE;
                    k->until = t + rnd(&seed, 5000, 20000) / 1000.0;
                }
                break;
            case C_IDLE:
                if (!p || t < k->until) break;
                if (rnd(&seed, 0, 1)) {
                    sn_host_peer_disconnect(p); /* DISCONNECT KICKED follows: then reconnect */
                } else {
                    k->state = C_EXCHANGE;
                    k->until = t + rnd(&seed, 2000, 10000) / 1000.0;
                }
                break;
            default:
                break;
            }
        }
    }
    sn_host_free(h);
    sn_tls_options_free(copts);
    free(cl);
    return 0;
}

/* ---- sampling ------------------------------------------------------------------------------ */

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static pid_t spawn_clients(int slot, int n, int port, unsigned seed)
{
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, on_term);
        _exit(run_clients(slot, n, port, seed));
    }
    return pid;
}

int main(int argc, char **argv)
{
    int seconds = 600, clients = 2000, procs = 4, interval = 10, warmup = 60;
    const char *env = getenv("SOAK_SECONDS");
    if (env) seconds = atoi(env);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients"))
            clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--procs"))
            procs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval"))
            interval = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--trim"))
            trim_every = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: soak [--seconds S] [--clients N] [--procs P] [--interval S] "
                            "[--warmup S] [--trim S]\n");
            return 2;
        }
    }
    if (procs < 1 || procs > MAX_PROCS || clients < procs || interval < 1 || seconds < 1) {
        fprintf(stderr, "soak: bad arguments\n");
        return 2;
    }
    if (warmup >= seconds) warmup = seconds / 3;
    /* Each client process holds one socket per connection. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return 2;
    memset(sh, 0, sizeof *sh);
    signal(SIGPIPE, SIG_IGN);

    int pp[2];
    if (pipe(pp) != 0) return 2;
    pid_t server = fork();
    if (server == 0) {
        close(pp[0]);
        signal(SIGTERM, on_term);
        _exit(run_server(pp[1]));
    }
    close(pp[1]);
    int port = 0;
    if (read(pp[0], &port, sizeof port) != sizeof port || port <= 0) {
        fprintf(stderr, "soak: the server did not start\n");
        return 2;
    }
    close(pp[0]);

    int per = clients / procs;
    pid_t kids[MAX_PROCS];
    unsigned seed = 12345;
    for (int i = 0; i < procs; i++)
        kids[i] = spawn_clients(i, per, port, seed + (unsigned)i * 7919u);

    printf("soak: %d clients in %d processes against a host server on 127.0.0.1:%d for %d s "
           "(warm-up %d s, sample every %d s)\n",
           per * procs, procs, port, seconds, warmup, interval);
    printf("%6s %9s %9s %4s %6s %5s %7s %7s %8s %8s %8s %8s\n", "t(s)", "RSS(KiB)", "heap(KiB)",
           "fds", "peers", "half", "pkts/s", "us/pkt", "hs_done", "timeouts", "vanished",
           "echoes/s");

    double start = now_s(), next_sample = start + interval;
    double next_kill = start + warmup / 2.0 + rnd(&seed, 15, 25);
    double last_cpu = cpu_seconds(server);
    unsigned long long last_pkts = 0, last_echoes = 0, vanished = 0;
    long base_rss = -1;
    int base_fds = -1, nsamples = 0, failed = 0;
    long rss_s[1024];
    int fds_s[1024];
    while (now_s() - start < seconds) {
        usleep(100000);
        double t = now_s();
        if (t >= next_kill) {
            int v = (int)rnd(&seed, 0, (unsigned)procs - 1);
            kill(kids[v], SIGKILL);
            waitpid(kids[v], NULL, 0);
            vanished += (unsigned long long)per;
            kids[v] = spawn_clients(v, per, port, seed);
            next_kill = t + rnd(&seed, 15, 25);
        }
        if (t < next_sample) continue;
        next_sample += interval;
        sn_host_stats st;
        memcpy(&st, (const void *)&sh->server, sizeof st);
        unsigned long long pkts =
            st.packets_received + st.packets_sent + st.keepalives_sent + st.keepalives_received;
        unsigned long long echoes = 0;
        for (int i = 0; i < procs; i++)
            echoes += sh->echoes[i];
        double cpu = cpu_seconds(server);
        long rss = rss_kib(server);
        int fds = fd_count(server);
        double dp = (double)(pkts - last_pkts);
        printf("%6.0f %9ld %9llu %4d %6llu %5llu %7.0f %7.1f %8llu %8llu %8llu %8.0f\n", t - start,
               rss, sh->heap_bytes / 1024, fds,
               (unsigned long long)(st.peers_connected_now + st.peers_handshaking_now),
               (unsigned long long)st.incoming_half_open_now, dp / interval,
               dp > 0 ? (cpu - last_cpu) * 1e6 / dp : 0.0,
               (unsigned long long)st.handshakes_completed, (unsigned long long)st.idle_timeouts,
               vanished, (double)(echoes - last_echoes) / interval);
        fflush(stdout);
        last_cpu = cpu;
        last_pkts = pkts;
        last_echoes = echoes;
        if (t - start < warmup) continue;
        if (nsamples < 1024) {
            rss_s[nsamples] = rss;
            fds_s[nsamples] = fds;
            nsamples++;
        }
        if (nsamples <= BASE_SAMPLES) {
            if (rss > base_rss) base_rss = rss;
            if (fds > base_fds) base_fds = fds;
            continue;
        }
        long rss_cap = base_rss + (long)((double)base_rss * RSS_TOLERANCE) + RSS_SLACK_KIB;
        if (rss > rss_cap || fds > base_fds + FD_TOLERANCE) {
            printf("soak: over tolerance at %.0f s: RSS %ld KiB (cap %ld), fds %d (cap %d)\n",
                   t - start, rss, rss_cap, fds, base_fds + FD_TOLERANCE);
            failed = 1;
        }
    }
    for (int i = 0; i < procs; i++) {
        kill(kids[i], SIGTERM);
        waitpid(kids[i], NULL, 0);
    }
    kill(server, SIGTERM);
    int status = 0;
    waitpid(server, &status, 0);

    if (nsamples > BASE_SAMPLES) {
        int from = nsamples - (nsamples - BASE_SAMPLES + 2) / 3;
        double mr = 0, mf = 0;
        for (int i = from; i < nsamples; i++) {
            mr += (double)rss_s[i];
            mf += fds_s[i];
        }
        mr /= nsamples - from;
        mf /= nsamples - from;
        long rss_cap = base_rss + (long)((double)base_rss * RSS_TOLERANCE) + RSS_SLACK_KIB;
        printf("soak: after warm-up: RSS baseline %ld KiB, mean of the last third %.0f KiB "
               "(cap %ld); fds %d, then %.1f (cap %d)\n",
               base_rss, mr, rss_cap, base_fds, mf, base_fds + FD_TOLERANCE);
        if (mr > (double)rss_cap || mf > base_fds + FD_TOLERANCE) failed = 1;
    } else {
        printf("soak: too short to judge (%d samples after the warm-up, %d make the baseline)\n",
               nsamples, BASE_SAMPLES);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("soak: the server process ended badly (status %d)\n", status);
        failed = 1;
    }
    printf("soak: %s\n", failed ? "FAILED" : "flat");
    return failed;
}
