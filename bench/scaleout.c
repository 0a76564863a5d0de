/* Benchmark: scale-out (docs/scaling.md). Three tables, each measured side by side in one run,
 * repeated --runs times (min / median / max):
 *
 *  1. resume: full vs resumed DTLS 1.2 handshakes from the same client against one worker with
 *     ticket keys. A "full" handshake is forced by a host name never used before (the client's
 *     session cache is keyed by name:port; the client does not verify, so any name does);
 *     "resumed" reuses one name. Handshakes are sequential (connect, finish, close_notify).
 *     Reported: handshakes/s (client wall clock) and server CPU per handshake (the worker
 *     thread's CPU time, CLOCK_THREAD_CPUTIME_ID).
 *  2. workers: the same server on 1 and on 2 workers, loaded by --threads client threads (each
 *     with its own peers): aggregate full handshakes/s and echoed packets/s (closed loop, 16 in
 *     flight per peer, 64-byte packets), and server CPU per handshake / per echoed packet summed
 *     over the workers. The load generator shares the machine's cores with the workers: on a
 *     2-core machine the aggregate rates cannot double; the CPU-per-operation figures are the
 *     ones that carry to a larger machine (no contention: they should stay flat).
 *  3. broadcast: one worker with --peers connected peers; sn_workers_broadcast of a 100-byte
 *     packet, server CPU per broadcast and per peer. Sends are one sendto per peer (sendmmsg
 *     batching is not implemented: see docs/scaling.md).
 *
 *   build/bench/scaleout [--runs N (3)] [--handshakes N (200)] [--seconds S (2)]
 *                        [--threads T (2)] [--peers P (1000)] [--part 1|2|3 (all)]
 */
#include <sealnet/sealnet.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int runs = 3, handshakes = 200, seconds = 2, threads = 2, npeers = 1000, part = 0;
static sn_crypto_key *key;
static sn_x509_cert *cert;
static sn_tls_options *client_opts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_event(sn_workers *w, int worker, sn_host *host, const sn_host_event *ev, void *user)
{
    (void)w, (void)worker, (void)host, (void)user;
    if (ev->type == SN_HOST_EVENT_RECEIVE) sn_host_peer_send(ev->peer, ev->data, ev->len);
}

static sn_workers *start(int n, bool tickets)
{
    static uint8_t keys[SN_TICKET_KEY_SIZE];
    for (size_t i = 0; i < sizeof keys; i++)
        keys[i] = (uint8_t)(i * 131 + 7);
    sn_workers_config cfg;
    sn_workers_default_config(&cfg);
    cfg.workers = n;
    cfg.host.bind_address = "127.0.0.1";
    cfg.host.keepalive_interval_ms = 0;
    cfg.host.max_peers = 20000;
    cfg.host.max_half_open = 4096;
    cfg.key = key;
    cfg.cert = cert;
    if (tickets) {
        cfg.ticket_keys = keys;
        cfg.ticket_keys_len = sizeof keys;
    }
    cfg.on_event = on_event;
    sn_workers *w = sn_workers_start(&cfg);
    if (!w) {
        fprintf(stderr, "workers: %s\n", sn_last_error_message());
        exit(1);
    }
    return w;
}

/* Server CPU so far (ns), after letting every worker publish (they do every 100 ms). */
static uint64_t server_cpu_ns(sn_workers *w)
{
    usleep(250000);
    uint64_t sum = 0;
    for (int i = 0; i < sn_workers_count(w); i++) {
        sn_workers_stats st;
        sn_workers_get_stats(w, i, &st);
        sum += st.cpu_ns;
    }
    return sum;
}

/* One sequential handshake as `name`; true when it connected. */
static bool handshake(int port, const char *name)
{
    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *p = sn_dtls_peer_new();
    bool ok = false;
    if (sn_udp_peer_connect_to_host(udp, "127.0.0.1", port) == SN_OK &&
        sn_dtls_peer_connect_to_peer(p, udp, name, client_opts) == SN_OK) {
        while (sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_HANDSHAKING) {
            struct pollfd pfd = {sn_dtls_peer_get_fd(p), POLLIN, 0};
            int t = sn_dtls_peer_next_timeout_ms(p);
            poll(&pfd, 1, t >= 0 && t < 100 ? t : 100);
            sn_dtls_peer_poll(p);
        }
        ok = sn_dtls_peer_get_status(p) == SN_DTLS_STATUS_CONNECTED;
    } else {
        sn_udp_peer_free(udp);
    }
    sn_dtls_peer_free(p);
    return ok;
}

static atomic_uint name_seq;

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void row(const char *what, double *v, int n, const char *unit)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    printf("| %-44s | %10.1f | %10.1f | %10.1f | %-2s |\n", what, v[0], v[n / 2], v[n - 1], unit);
}

/* ---- 1. full vs resumed ------------------------------------------------------------------ */

static void bench_resume(void)
{
    sn_workers *w = start(1, true);
    int port = sn_workers_get_port(w);
    double rate[2][16], cpu[2][16], ratio_rate[16], ratio_cpu[16];
    handshake(port, "resume.example"); /* the session to resume */
    for (int r = 0; r < runs; r++) {
        for (int mode = 0; mode < 2; mode++) { /* 0 full, 1 resumed */
            uint64_t c0 = server_cpu_ns(w);
            double t0 = now_s();
            for (int i = 0; i < handshakes; i++) {
                char name[64];
                if (mode == 0)
                    snprintf(name, sizeof name, "h%u.example", atomic_fetch_add(&name_seq, 1));
                else
                    snprintf(name, sizeof name, "resume.example");
                if (!handshake(port, name)) fprintf(stderr, "handshake failed\n");
            }
            double dt = now_s() - t0;
            uint64_t c1 = server_cpu_ns(w);
            rate[mode][r] = handshakes / dt;
            cpu[mode][r] = (double)(c1 - c0) / 1000.0 / handshakes;
        }
        ratio_rate[r] = rate[1][r] / rate[0][r];
        ratio_cpu[r] = cpu[0][r] / cpu[1][r];
    }
    sn_tls_ticket_stats ts;
    sn_workers_get_ticket_stats(w, &ts);
    printf("\n1. full vs resumed DTLS 1.2 handshakes, same client, one worker (%d x %d)\n", runs,
           handshakes);
    printf("\n| %-44s | %10s | %10s | %10s | %-2s |\n", "measure", "min", "median", "max", "");
    printf("|%s|-----------:|-----------:|-----------:|----|\n",
           "----------------------------------------------");
    row("full handshakes/s", rate[0], runs, "");
    row("resumed handshakes/s", rate[1], runs, "");
    row("ratio resumed/full (handshakes/s)", ratio_rate, runs, "x");
    row("server CPU per full handshake", cpu[0], runs, "us");
    row("server CPU per resumed handshake", cpu[1], runs, "us");
    row("ratio full/resumed (server CPU)", ratio_cpu, runs, "x");
    printf("  (server counted %llu resumed of %llu tickets issued)\n",
           (unsigned long long)ts.resumed, (unsigned long long)ts.issued);
    sn_workers_free(w);
}

/* ---- 2. one vs two workers ----------------------------------------------------------------- */

typedef struct load {
    int port;
    int kind; /* 0 handshakes, 1 echo */
    double until;
    uint64_t done;
} load;

#define PEERS_PER_THREAD 8
#define WINDOW           16

static void *load_thread(void *arg)
{
    load *l = arg;
    if (l->kind == 0) {
        while (now_s() < l->until) {
            char name[64];
            snprintf(name, sizeof name, "h%u.example", atomic_fetch_add(&name_seq, 1));
            if (handshake(l->port, name)) l->done++;
        }
        return NULL;
    }
    /* echo: a client host with PEERS_PER_THREAD peers, WINDOW packets in flight each */
    sn_host_config hc;
    sn_host_default_config(&hc);
    hc.keepalive_interval_ms = 0;
    sn_host *h = sn_host_create(&hc);
    for (int i = 0; i < PEERS_PER_THREAD; i++) {
        char name[64];
        snprintf(name, sizeof name, "e%u.example", atomic_fetch_add(&name_seq, 1));
        sn_host_connect(h, "127.0.0.1", l->port, name, client_opts);
    }
    uint8_t pkt[64];
    memset(pkt, 'x', sizeof pkt);
    int connected = 0;
    sn_host_event ev;
    double start = 0;
    while (now_s() < l->until) {
        if (sn_host_service(h, &ev, 10) <= 0) continue;
        if (ev.type == SN_HOST_EVENT_CONNECT) {
            for (int k = 0; k < WINDOW; k++)
                sn_host_peer_send(ev.peer, pkt, sizeof pkt);
            if (++connected == PEERS_PER_THREAD) start = now_s();
        } else if (ev.type == SN_HOST_EVENT_RECEIVE) {
            if (start > 0) l->done++;
            sn_host_peer_send(ev.peer, pkt, sizeof pkt);
        }
    }
    sn_host_free(h);
    return NULL;
}

static void run_load(sn_workers *w, int kind, double *rate, double *cpu_us)
{
    pthread_t t[64];
    load l[64];
    uint64_t c0 = server_cpu_ns(w);
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        l[i] = (load){sn_workers_get_port(w), kind, t0 + seconds, 0};
        pthread_create(&t[i], NULL, load_thread, &l[i]);
    }
    uint64_t done = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        done += l[i].done;
    }
    double dt = now_s() - t0;
    uint64_t c1 = server_cpu_ns(w);
    *rate = (double)done / dt;
    *cpu_us = done ? (double)(c1 - c0) / 1000.0 / (double)done : 0;
}

static void bench_workers(void)
{
    double hs[2][16], hs_cpu[2][16], pk[2][16], pk_cpu[2][16], r_hs[16], r_pk[16];
    for (int r = 0; r < runs; r++) {
        for (int n = 1; n <= 2; n++) {
            sn_workers *w = start(n, true);
            run_load(w, 0, &hs[n - 1][r], &hs_cpu[n - 1][r]);
            run_load(w, 1, &pk[n - 1][r], &pk_cpu[n - 1][r]);
            sn_workers_free(w);
        }
        r_hs[r] = hs_cpu[1][r] / hs_cpu[0][r];
        r_pk[r] = pk_cpu[1][r] / pk_cpu[0][r];
    }
    printf("\n2. one vs two workers; load: %d client threads in this process, on the same %ld "
           "cores (%d runs x %d s)\n",
           threads, sysconf(_SC_NPROCESSORS_ONLN), runs, seconds);
    printf("\n| %-44s | %10s | %10s | %10s | %-2s |\n", "measure", "min", "median", "max", "");
    printf("|%s|-----------:|-----------:|-----------:|----|\n",
           "----------------------------------------------");
    row("1 worker: full handshakes/s", hs[0], runs, "");
    row("2 workers: full handshakes/s", hs[1], runs, "");
    row("1 worker: server CPU per handshake", hs_cpu[0], runs, "us");
    row("2 workers: server CPU per handshake", hs_cpu[1], runs, "us");
    row("ratio 2/1 (CPU per handshake)", r_hs, runs, "x");
    row("1 worker: echoed packets/s", pk[0], runs, "");
    row("2 workers: echoed packets/s", pk[1], runs, "");
    row("1 worker: server CPU per echoed packet", pk_cpu[0], runs, "us");
    row("2 workers: server CPU per echoed packet", pk_cpu[1], runs, "us");
    row("ratio 2/1 (CPU per packet)", r_pk, runs, "x");
}

/* ---- 3. broadcast ----------------------------------------------------------------------- */

static void bench_broadcast(void)
{
    sn_workers *w = start(1, false);
    int port = sn_workers_get_port(w);
    sn_host_config hc;
    sn_host_default_config(&hc);
    hc.keepalive_interval_ms = 0;
    hc.max_peers = npeers + 10;
    hc.idle_timeout_ms = 0;
    sn_host *h = sn_host_create(&hc);
    int connected = 0;
    for (int i = 0; i < npeers; i++) {
        char name[64];
        snprintf(name, sizeof name, "b%u.example", atomic_fetch_add(&name_seq, 1));
        sn_host_connect(h, "127.0.0.1", port, name, client_opts);
    }
    sn_host_event ev;
    double end = now_s() + 120;
    while (connected < npeers && now_s() < end)
        if (sn_host_service(h, &ev, 10) > 0 && ev.type == SN_HOST_EVENT_CONNECT) connected++;
    uint8_t pkt[100];
    memset(pkt, 'b', sizeof pkt);
    double per_bc[16], per_peer[16];
    int rounds = 20;
    for (int r = 0; r < runs; r++) {
        uint64_t c0 = server_cpu_ns(w);
        uint64_t received = 0;
        for (int b = 0; b < rounds; b++) {
            sn_workers_broadcast(w, pkt, sizeof pkt);
            /* Drain what arrives so that no socket buffer overflows. */
            double until = now_s() + 0.05;
            while (now_s() < until)
                if (sn_host_service(h, &ev, 1) > 0 && ev.type == SN_HOST_EVENT_RECEIVE) received++;
        }
        double until = now_s() + 0.5;
        while (now_s() < until)
            if (sn_host_service(h, &ev, 1) > 0 && ev.type == SN_HOST_EVENT_RECEIVE) received++;
        uint64_t c1 = server_cpu_ns(w);
        /* The worker's CPU also covers its idle wakeups (small, 100 ms period) over the window. */
        per_bc[r] = (double)(c1 - c0) / 1000.0 / rounds;
        per_peer[r] = per_bc[r] * 1000.0 / connected;
        if (received < (uint64_t)rounds * (uint64_t)connected * 9 / 10)
            fprintf(stderr, "broadcast: only %llu of %llu packets arrived\n",
                    (unsigned long long)received,
                    (unsigned long long)rounds * (unsigned long long)connected);
    }
    printf("\n3. broadcast of 100 bytes to %d connected peers, one worker (%d runs x %d)\n",
           connected, runs, rounds);
    printf("\n| %-44s | %10s | %10s | %10s | %-2s |\n", "measure", "min", "median", "max", "");
    printf("|%s|-----------:|-----------:|-----------:|----|\n",
           "----------------------------------------------");
    row("server CPU per broadcast (sendto loop)", per_bc, runs, "us");
    row("server CPU per peer", per_peer, runs, "ns");
    printf("  sendmmsg batching: not implemented (no ratio)\n");
    sn_host_free(h);
    sn_workers_free(w);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--runs"))
            runs = v < 1 ? 1 : v > 15 ? 15 : v;
        else if (!strcmp(argv[i], "--handshakes"))
            handshakes = v;
        else if (!strcmp(argv[i], "--seconds"))
            seconds = v;
        else if (!strcmp(argv[i], "--threads"))
            threads = v < 1 ? 1 : v > 64 ? 64 : v;
        else if (!strcmp(argv[i], "--peers"))
            npeers = v;
        else if (!strcmp(argv[i], "--part"))
            part = v;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    key = sn_crypto_generate_ec("P-256");
    cert = sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL);
    client_opts = sn_tls_options_client_unsafe(NULL);
    printf("sealnet scale-out benchmark (%s)\n", sn_version());
    if (!part || part == 1) bench_resume();
    if (!part || part == 2) bench_workers();
    if ((!part || part == 3) && npeers > 0) bench_broadcast();
    sn_tls_options_free(client_opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    return 0;
}
