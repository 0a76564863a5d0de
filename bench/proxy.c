/* Benchmark: a plain UDP echo server reached through `sealnet proxy` (DTLS 1.2 in front) against
 * the same echo server reached directly over plain UDP, same clients, same load.
 *
 * The echo server is a forked child (recvmmsg/sendmmsg, 64 per call). The proxy is the real
 * `sealnet proxy --listen 127.0.0.1:0 --to 127.0.0.1:ECHO --idle 0` process. This process drives
 * the clients from one loop: plain connected UDP sockets (direct) or sn_dtls_peer clients
 * (through the proxy, ECDHE-ECDSA-AES128-GCM-SHA256).
 *   latency:    one client, one 64-byte packet in flight, for half of --seconds: the median
 *               round trip; "added" = proxy median - direct median.
 *   throughput: --clients clients (default 8) keeping 64 packets in flight in all, closed loop
 *               (the next packet leaves when an echo comes back; a client with nothing back for
 *               500 ms starts over); echoes/s over --seconds after a 0.3 s warm-up.
 *   server CPU: CPU time (/proc/PID/schedstat: on-CPU ns) of the proxy process, and of the echo
 *               server, in the throughput window, per echoed packet (one datagram in and one out
 *               each way through the proxy).
 * Each of --runs runs (default 3) measures both paths; the table shows the median of the runs,
 * then min/median/max of each figure. Everything shares this machine's cores, so packets/s is a
 * figure for this machine under its current load; the ratio and the per-packet CPU are the
 * steadier comparison.
 *
 *   build/bench/proxy [--seconds S (3)] [--runs N (3)] [--clients C (8)] [--sealnet PATH]
 * PATH defaults to $SEALNET_BIN, then ../tools/sealnet beside this program (the build tree),
 * then ../../bin/sealnet (installed in libexec/sealnet), then `sealnet` in PATH. */
#include <sealnet/sealnet.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PKT        64
#define IN_FLIGHT  64
#define LOSS_NS    500000000ull
#define MAX_CLIENT 64
#define MAX_RUNS   15
#define MAX_RTT    400000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* On-CPU nanoseconds of a process's main thread (single-threaded programs here). */
static double cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long ns = 0;
    if (fscanf(f, "%llu", &ns) != 1) ns = 0;
    fclose(f);
    return (double)ns / 1e9;
}

/* ---- the echo server ------------------------------------------------------------------- */

static pid_t start_echo(int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int big = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid != 0) {
        close(fd);
        return pid;
    }
    enum { B = 64 };
    static uint8_t bufs[B][2048];
    struct mmsghdr m[B];
    struct iovec iov[B];
    struct sockaddr_in from[B];
    for (;;) {
        for (int i = 0; i < B; i++) {
            iov[i] = (struct iovec){bufs[i], sizeof bufs[i]};
            m[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                           .msg_namelen = sizeof from[i],
                                           .msg_iov = &iov[i],
                                           .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, m, B, MSG_WAITFORONE, NULL);
        if (n <= 0) continue;
        for (int i = 0; i < n; i++)
            iov[i].iov_len = m[i].msg_len;
        sendmmsg(fd, m, (unsigned)n, 0);
    }
}

/* ---- the proxy process ----------------------------------------------------------------- */

static pid_t start_proxy(const char *bin, int echo_port, int *port, FILE **out)
{
    int p[2];
    if (pipe(p) != 0) return -1;
    char to[32];
    snprintf(to, sizeof to, "127.0.0.1:%d", echo_port);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(bin, "sealnet", "proxy", "--listen", "127.0.0.1:0", "--to", to, "--idle", "0",
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *out = fdopen(p[0], "r");
    char line[512];
    *port = 0;
    while (fgets(line, sizeof line, *out)) {
        if (strncmp(line, "listening on udp port ", 22) == 0) *port = atoi(line + 22);
        if (strncmp(line, "mode:", 5) == 0) break;
    }
    return *port ? pid : -1;
}

static void stop(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* ---- clients --------------------------------------------------------------------------- */

typedef struct client {
    int fd;             /* direct: connected UDP socket */
    sn_dtls_peer *dtls; /* proxy */
    int window, out;
    uint64_t last_ns, sent_ns;
} client;

static bool send_one(client *c, const uint8_t *pkt)
{
    if (c->dtls) return sn_dtls_peer_put_packet(c->dtls, pkt, PKT) == SN_OK;
    return send(c->fd, pkt, PKT, 0) == PKT;
}

/* Echoes waiting for c (reads them all). */
static int recv_all(client *c)
{
    uint8_t buf[2048];
    int n = 0;
    if (c->dtls) {
        sn_dtls_peer_poll(c->dtls);
        size_t len;
        while (sn_dtls_peer_get_packet(c->dtls, buf, sizeof buf, &len) == SN_OK)
            n++;
        return n;
    }
    while (recv(c->fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        n++;
    return n;
}

static int client_fd(const client *c)
{
    return c->dtls ? sn_dtls_peer_get_fd(c->dtls) : c->fd;
}

static bool open_clients(client *cl, int n, int port, bool dtls, sn_tls_options *o)
{
    for (int i = 0; i < n; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].fd = -1;
        if (!dtls) {
            cl[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (cl[i].fd < 0 || connect(cl[i].fd, (struct sockaddr *)&a, sizeof a) != 0)
                return false;
            continue;
        }
        sn_udp_peer *u = sn_udp_peer_new();
        cl[i].dtls = sn_dtls_peer_new();
        if (sn_udp_peer_connect_to_host(u, "127.0.0.1", port) != SN_OK ||
            sn_dtls_peer_connect_to_peer(cl[i].dtls, u, "localhost", o) != SN_OK)
            return false;
    }
    if (!dtls) return true;
    double end = now_s() + 20;
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; i++) {
            sn_dtls_peer_poll(cl[i].dtls);
            sn_dtls_status st = sn_dtls_peer_get_status(cl[i].dtls);
            if (st == SN_DTLS_STATUS_CONNECTED) done++;
            if (st != SN_DTLS_STATUS_CONNECTED && st != SN_DTLS_STATUS_HANDSHAKING) {
                fprintf(stderr, "handshake failed: %s\n",
                        sn_dtls_peer_get_error_message(cl[i].dtls));
                return false;
            }
        }
        if (done == n) return true;
        if (now_s() > end) return false;
        usleep(1000);
    }
}

static void close_clients(client *cl, int n)
{
    for (int i = 0; i < n; i++) {
        if (cl[i].dtls) sn_dtls_peer_free(cl[i].dtls);
        if (cl[i].fd >= 0) close(cl[i].fd);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Median round trip in µs of one client with one packet in flight, for secs seconds. */
static double latency_us(client *c, double secs)
{
    static uint64_t rtt[MAX_RTT];
    size_t n = 0;
    uint8_t pkt[PKT];
    memset(pkt, 'L', sizeof pkt);
    double end = now_s() + secs;
    while (now_s() < end && n < MAX_RTT) {
        uint64_t t0 = now_ns();
        if (!send_one(c, pkt)) continue;
        bool got = false;
        while (!got && now_ns() - t0 < LOSS_NS) {
            struct pollfd p = {client_fd(c), POLLIN, 0};
            poll(&p, 1, 50);
            got = recv_all(c) > 0;
        }
        if (got) rtt[n++] = now_ns() - t0;
    }
    if (n == 0) return -1;
    qsort(rtt, n, sizeof rtt[0], cmp_u64);
    return (double)rtt[n / 2] / 1000.0;
}

/* Echoes per second with IN_FLIGHT packets in flight over n clients, for secs seconds. */
static double throughput(client *cl, int n, double secs, uint64_t *echoes_out, pid_t server,
                         pid_t echo, double *server_cpu, double *echo_cpu)
{
    uint8_t pkt[PKT];
    memset(pkt, 'T', sizeof pkt);
    struct pollfd pf[MAX_CLIENT];
    int per = (IN_FLIGHT + n - 1) / n;
    for (int i = 0; i < n; i++) {
        cl[i].window = per;
        cl[i].out = 0;
        cl[i].last_ns = now_ns();
        pf[i] = (struct pollfd){client_fd(&cl[i]), POLLIN, 0};
    }
    double t_start = now_s(), t_measure = t_start + 0.3, t_end = t_measure + secs;
    bool measuring = false;
    uint64_t echoes = 0;
    double c0 = 0, e0 = 0;
    for (;;) {
        double t = now_s();
        if (!measuring && t >= t_measure) {
            measuring = true;
            echoes = 0;
            c0 = cpu_s(server);
            e0 = cpu_s(echo);
        }
        if (t >= t_end) break;
        uint64_t ns = now_ns();
        for (int i = 0; i < n; i++) {
            client *c = &cl[i];
            if (ns - c->last_ns > LOSS_NS) c->out = 0; /* lost: start over */
            while (c->out < c->window && send_one(c, pkt)) {
                c->out++;
                c->last_ns = ns;
            }
        }
        poll(pf, (nfds_t)n, 10);
        for (int i = 0; i < n; i++) {
            int got = recv_all(&cl[i]);
            if (got <= 0) continue;
            cl[i].out = cl[i].out > got ? cl[i].out - got : 0;
            cl[i].last_ns = now_ns();
            if (measuring) echoes += (uint64_t)got;
        }
    }
    *server_cpu = cpu_s(server) - c0;
    *echo_cpu = cpu_s(echo) - e0;
    *echoes_out = echoes;
    return (double)echoes / secs;
}

/* ---- main ------------------------------------------------------------------------------ */

static const char *find_sealnet(const char *given, char *buf, size_t cap)
{
    if (given) return given;
    const char *env = getenv("SEALNET_BIN");
    if (env && *env) return env;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *dir = dirname(self);
        static const char *const rel[] = {"../tools/sealnet", "../../bin/sealnet"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(buf, cap, "%s/%s", dir, rel[i]);
            if (access(buf, X_OK) == 0) return buf;
        }
    }
    return "sealnet";
}

enum {
    F_DIRECT_PPS,
    F_PROXY_PPS,
    F_RATIO,
    F_DIRECT_RTT,
    F_PROXY_RTT,
    F_ADDED,
    F_PROXY_CPU,
    F_ECHO_CPU,
    F_DIRECT_ECHO_CPU,
    F_COUNT
};
typedef struct run_result {
    double f[F_COUNT];
} run_result;

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats3(double *v, int n, double *mn, double *med, double *mx)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_d);
    *mn = v[0];
    *mx = v[n - 1];
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    double secs = 3;
    int runs = 3, nclients = 8;
    const char *given = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            secs = atof(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
            nclients = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sealnet") == 0 && i + 1 < argc)
            given = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--runs N] [--clients C] [--sealnet PATH]\n",
                    argv[0]);
            return 2;
        }
    }
    if (secs <= 0 || runs < 1 || runs > MAX_RUNS || nclients < 1 || nclients > MAX_CLIENT) {
        fprintf(stderr, "proxy bench: --seconds > 0, --runs 1..%d, --clients 1..%d\n", MAX_RUNS,
                MAX_CLIENT);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char binbuf[PATH_MAX];
    const char *bin = find_sealnet(given, binbuf, sizeof binbuf);
    sn_tls_options *o = sn_tls_options_client_unsafe(NULL);
    run_result r[MAX_RUNS];
    printf("# sealnet proxy vs direct plain UDP: %d clients, %d x %d-byte packets in flight, "
           "%.1f s per measure, %d runs (%s)\n",
           nclients, IN_FLIGHT, PKT, secs, runs, bin);
    for (int k = 0; k < runs; k++) {
        int eport, pport;
        pid_t echo = start_echo(&eport);
        FILE *pout = NULL;
        pid_t px = start_proxy(bin, eport, &pport, &pout);
        if (echo < 0 || px < 0) {
            fprintf(stderr, "proxy bench: cannot start the echo server or %s proxy\n", bin);
            stop(echo);
            stop(px);
            return 1;
        }
        client cl[MAX_CLIENT];
        uint64_t e;
        double scpu, ecpu, dummy;
        run_result *rr = &r[k];
        /* direct */
        if (!open_clients(cl, nclients, eport, false, NULL)) return 1;
        rr->f[F_DIRECT_RTT] = latency_us(&cl[0], secs / 2);
        rr->f[F_DIRECT_PPS] = throughput(cl, nclients, secs, &e, echo, echo, &ecpu, &dummy);
        rr->f[F_DIRECT_ECHO_CPU] = e ? ecpu * 1e6 / (double)e : 0;
        close_clients(cl, nclients);
        /* through the proxy */
        if (!open_clients(cl, nclients, pport, true, o)) {
            fprintf(stderr, "proxy bench: clients did not connect through the proxy\n");
            return 1;
        }
        rr->f[F_PROXY_RTT] = latency_us(&cl[0], secs / 2);
        rr->f[F_PROXY_PPS] = throughput(cl, nclients, secs, &e, px, echo, &scpu, &ecpu);
        rr->f[F_PROXY_CPU] = e ? scpu * 1e6 / (double)e : 0;
        rr->f[F_ECHO_CPU] = e ? ecpu * 1e6 / (double)e : 0;
        close_clients(cl, nclients);
        rr->f[F_RATIO] = rr->f[F_DIRECT_PPS] > 0 ? rr->f[F_PROXY_PPS] / rr->f[F_DIRECT_PPS] : 0;
        rr->f[F_ADDED] = rr->f[F_PROXY_RTT] - rr->f[F_DIRECT_RTT];
        stop(px);
        fclose(pout);
        stop(echo);
        printf("# run %d: direct %.0f pkt/s, RTT %.1f us; proxy %.0f pkt/s (%.2fx), RTT %.1f us "
               "(+%.1f us); proxy CPU %.2f us/pkt\n",
               k + 1, rr->f[F_DIRECT_PPS], rr->f[F_DIRECT_RTT], rr->f[F_PROXY_PPS], rr->f[F_RATIO],
               rr->f[F_PROXY_RTT], rr->f[F_ADDED], rr->f[F_PROXY_CPU]);
        fflush(stdout);
    }
    sn_tls_options_free(o);

    double v[MAX_RUNS], mn[F_COUNT], med[F_COUNT], mx[F_COUNT];
    for (int f = 0; f < F_COUNT; f++) {
        for (int k = 0; k < runs; k++)
            v[k] = r[k].f[f];
        stats3(v, runs, &mn[f], &med[f], &mx[f]);
    }
    printf("\n| case | echo pkt/s | RTT us (median) | server CPU us/pkt |\n|---|---|---|---|\n");
    printf("| plain UDP direct | %.0f | %.1f | %.2f |\n", med[F_DIRECT_PPS], med[F_DIRECT_RTT],
           med[F_DIRECT_ECHO_CPU]);
    printf("| sealnet proxy | %.0f | %.1f | %.2f |\n", med[F_PROXY_PPS], med[F_PROXY_RTT],
           med[F_PROXY_CPU]);
    printf("\n| measure (%d runs) | min | median | max |\n|---|---|---|---|\n", runs);
    static const char *const names[F_COUNT] = {"direct pkt/s",
                                               "proxy pkt/s",
                                               "proxy/direct pkt/s ratio",
                                               "direct RTT us",
                                               "proxy RTT us",
                                               "added RTT us",
                                               "proxy CPU us/pkt",
                                               "echo server CPU us/pkt (proxy path)",
                                               "echo server CPU us/pkt (direct)"};
    for (int f = 0; f < F_COUNT; f++)
        printf("| %s | %.2f | %.2f | %.2f |\n", names[f], mn[f], med[f], mx[f]);
    printf("\ngoal: ratio >= 0.5 (median %.2f: %s), added RTT <= 50 us (median %.1f: %s)\n",
           med[F_RATIO], med[F_RATIO] >= 0.5 ? "met" : "NOT met", med[F_ADDED],
           med[F_ADDED] <= 50 ? "met" : "NOT met");
    return 0;
}
