/* Benchmark: sn_udp_server receive-and-route cost per datagram against a bare recvmmsg loop.
 *
 * For each peer count (10, 100, 1,000, 10,000 by default) it opens that many client sockets,
 * lets the server take one connection per client, then runs rounds. In each round the clients
 * (round-robin, so consecutive datagrams come from different peers: worst case for caches) send
 * a burst into the server's socket and the same burst into a plain socket; then, on this thread
 * with nothing else running, the server's poll() drains its socket and the bare loop drains the
 * other (recvmmsg, 64 per call, into fixed buffers). Only the draining is timed, with
 * CLOCK_THREAD_CPUTIME_ID. Sends happen before the timed part, so the two sides see exactly the
 * same queued traffic. The taken peers' queues are emptied (sn_udp_peer_drop) between rounds,
 * timed separately and reported as its own column.
 *
 *   build/bench/udp_server [--datagrams N] [--seconds S] [--size BYTES] [--peers a,b,c]
 */
#include <sealnet/sealnet.h>

#include "keys_internal.h"
#include "udp_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ROUND  1024
#define BATCH  64
#define WARMUP 32

static double thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_client(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int sz = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    return fd;
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* Sends `n` datagrams round-robin from the clients starting at *next. */
static int send_burst(const int *cl, int ncl, int *next, const struct sockaddr_in *dst,
                      const char *payload, size_t size, int n)
{
    int sent = 0;
    for (int i = 0; i < n; i++) {
        int k = (*next + i) % ncl;
        if (sendto(cl[k], payload, size, 0, (const struct sockaddr *)dst, sizeof *dst) ==
            (ssize_t)size)
            sent++;
    }
    *next = (*next + n) % ncl;
    return sent;
}

typedef struct result {
    int peers;
    double server_ns, bare_ns, drop_ns, copy_ns;
    unsigned long long copy_dgrams;
    unsigned long long server_dgrams, bare_dgrams, lost, server_faults;
} result;

static int g_max_dgram = 0;

static int run(int npeers, unsigned long long target, double seconds, size_t size, result *out)
{
    memset(out, 0, sizeof *out);
    out->peers = npeers;
    int *cl = calloc((size_t)npeers, sizeof *cl);
    sn_udp_peer **by_port = calloc(65536, sizeof *by_port);
    char *payload = calloc(1, size ? size : 1);
    if (!cl || !by_port || !payload) return -1;
    for (int i = 0; i < npeers; i++)
        if ((cl[i] = open_client()) < 0) {
            fprintf(stderr, "cannot open client socket %d: %s\n", i, strerror(errno));
            return -1;
        }

    sn_udp_server *s = sn_udp_server_new();
    sn_udp_server_set_recv_buffer_size(s, 8 << 20);
    sn_udp_server_set_max_pending_connections(s, npeers);
    sn_udp_server_set_pending_timeout_ms(s, 0);
    if (g_max_dgram) sn_udp_server_set_max_datagram_size(s, g_max_dgram);
    if (sn_udp_server_listen(s, 0, "127.0.0.1") != SN_OK) {
        fprintf(stderr, "listen: %s\n", sn_last_error_message());
        return -1;
    }
    struct sockaddr_in sdst = loopback(sn_udp_server_get_local_port(s));

    /* The bare socket: same family, same buffer size. */
    int bare = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in ba = loopback(0);
    bind(bare, (struct sockaddr *)&ba, sizeof ba);
    int rb = 8 << 20;
    setsockopt(bare, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb);
    setsockopt(bare, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
    struct sockaddr_in bdst = loopback(local_port(bare));

    /* Every client becomes a taken peer. */
    int next = 0, taken = 0, rounds = 0;
    while (taken < npeers) {
        int n = npeers - taken < ROUND ? npeers - taken : ROUND;
        send_burst(cl, npeers, &next, &sdst, payload, size, n);
        sn_udp_server_poll(s);
        sn_udp_peer *p;
        while ((p = sn_udp_server_take_connection(s))) {
            sn_addr r;
            sn_udp_peer_remote(p, &r);
            int port = ntohs(((struct sockaddr_in *)&r.ss)->sin_port);
            by_port[port] = p;
            while (sn_udp_peer_peek(p, NULL))
                sn_udp_peer_drop(p);
            taken++;
        }
        if (++rounds > 1000) break;
    }
    if (taken != npeers) {
        fprintf(stderr, "only %d of %d peers taken\n", taken, npeers);
        return -1;
    }
    sn_udp_peer **peer_of = calloc((size_t)npeers, sizeof *peer_of);
    for (int i = 0; i < npeers; i++)
        if (!(peer_of[i] = by_port[local_port(cl[i])])) {
            fprintf(stderr, "client %d has no peer\n", i);
            return -1;
        }

    /* Buffers for the bare loop, like the server's: 64 slots of 64 KiB. */
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage from[BATCH];
    char *bufs = malloc((size_t)BATCH * 65535);
    char *kept[2 * ROUND];
    unsigned long long sink = 0;

    sn_udp_server_stats st0, st1;
    sn_udp_server_get_stats(s, &st0);
    double t_start = wall_s();
    unsigned long long sent_total = 0;
    /* The first rounds warm the heap and caches and are not counted. */
    for (int round = -WARMUP;; round++) {
        if (round == 0) {
            memset(out, 0, sizeof *out);
            out->peers = npeers;
            sent_total = 0;
            sn_udp_server_get_stats(s, &st0);
            t_start = wall_s();
        }
        if (round >= 0 && (seconds > 0 ? wall_s() - t_start >= seconds : sent_total >= target))
            break;
        /* Server side. */
        int first = next;
        int sent = send_burst(cl, npeers, &next, &sdst, payload, size, ROUND);
        sent_total += (unsigned long long)sent;
        struct rusage ru0, ru1;
        getrusage(RUSAGE_THREAD, &ru0);
        double t0 = thread_ns();
        unsigned long long before = 0, after;
        sn_udp_server_stats st;
        sn_udp_server_get_stats(s, &st);
        before = st.datagrams_received;
        for (;;) {
            sn_udp_server_poll(s);
            sn_udp_server_get_stats(s, &st);
            after = st.datagrams_received;
            if (after == before) break;
            before = after;
        }
        out->server_ns += thread_ns() - t0;
        getrusage(RUSAGE_THREAD, &ru1);
        out->server_faults += (unsigned long long)(ru1.ru_minflt - ru0.ru_minflt);
        /* Empty the queues of the peers that just received (not part of routing). */
        double d0 = thread_ns();
        for (int i = 0; i < ROUND; i++) {
            sn_udp_peer *p = peer_of[(first + i) % npeers];
            while (sn_udp_peer_peek(p, NULL))
                sn_udp_peer_drop(p);
        }
        out->drop_ns += thread_ns() - d0;

        /* Bare loop on the same traffic. */
        send_burst(cl, npeers, &first, &bdst, payload, size, ROUND);
        t0 = thread_ns();
        for (;;) {
            for (int i = 0; i < BATCH; i++) {
                iov[i].iov_base = bufs + (size_t)i * 65535;
                iov[i].iov_len = 65535;
                msgs[i].msg_hdr.msg_name = &from[i];
                msgs[i].msg_hdr.msg_namelen = sizeof from[i];
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_control = NULL;
                msgs[i].msg_hdr.msg_controllen = 0;
                msgs[i].msg_hdr.msg_flags = 0;
            }
            int r = recvmmsg(bare, msgs, BATCH, MSG_DONTWAIT, NULL);
            if (r <= 0) break;
            for (int i = 0; i < r; i++)
                sink += msgs[i].msg_len;
            out->bare_dgrams += (unsigned long long)r;
        }
        out->bare_ns += thread_ns() - t0;

        /* Reference: the same loop plus a copy of each datagram into an exact-size block (what a
         * design with one more copy would pay for queueing); freeing is not timed. */
        send_burst(cl, npeers, &first, &bdst, payload, size, ROUND);
        size_t nkept = 0;
        t0 = thread_ns();
        for (;;) {
            for (int i = 0; i < BATCH; i++) {
                iov[i].iov_base = bufs + (size_t)i * 65535;
                iov[i].iov_len = 65535;
                msgs[i].msg_hdr.msg_name = &from[i];
                msgs[i].msg_hdr.msg_namelen = sizeof from[i];
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_control = NULL;
                msgs[i].msg_hdr.msg_controllen = 0;
                msgs[i].msg_hdr.msg_flags = 0;
            }
            int r = recvmmsg(bare, msgs, BATCH, MSG_DONTWAIT, NULL);
            if (r <= 0) break;
            for (int i = 0; i < r && nkept < 2 * ROUND; i++) {
                char *node = malloc(48 + msgs[i].msg_len);
                memcpy(node, &from[i], 32);
                memcpy(node + 48, iov[i].iov_base, msgs[i].msg_len);
                kept[nkept++] = node;
            }
            out->copy_dgrams += (unsigned long long)r;
        }
        out->copy_ns += thread_ns() - t0;
        for (size_t i = 0; i < nkept; i++)
            free(kept[i]);
    }
    sn_udp_server_get_stats(s, &st1);
    out->server_dgrams = st1.datagrams_routed - st0.datagrams_routed;
    out->lost = sent_total - out->server_dgrams;
    if (sink == 0 && size > 0) fprintf(stderr, "bare loop read nothing\n");

    for (int port = 0; port < 65536; port++)
        sn_udp_peer_free(by_port[port]);
    sn_udp_server_free(s);
    close(bare);
    for (int i = 0; i < npeers; i++)
        close(cl[i]);
    free(bufs);
    free(peer_of);
    free(cl);
    free(by_port);
    free(payload);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long long target = 300000;
    double seconds = 0;
    size_t size = 64;
    int peers[16] = {10, 100, 1000, 10000}, npc = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--datagrams") && i + 1 < argc)
            target = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-datagram") && i + 1 < argc)
            g_max_dgram = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--peers") && i + 1 < argc) {
            npc = 0;
            for (char *t = strtok(argv[++i], ","); t && npc < 16; t = strtok(NULL, ","))
                peers[npc++] = atoi(t);
        } else {
            fprintf(stderr,
                    "usage: %s [--datagrams N per peer count] [--seconds S per peer count] "
                    "[--size BYTES] [--max-datagram BYTES] [--peers 10,100,...]\n",
                    argv[0]);
            return 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    printf("sealnet %s, UDP server receive+route vs bare recvmmsg, payload %zu bytes, "
           "bursts of %d, CPU time of the polling thread\n\n",
           sn_version(), size, ROUND);
    printf("| peers | datagrams | server ns/dgram | bare ns/dgram | server/bare | "
           "vs 10 peers | drop ns/dgram | page faults/dgram | lost | bare+copy ns/dgram |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double base = 0;
    for (int i = 0; i < npc; i++) {
        result r;
        if (run(peers[i], target, seconds, size, &r) != 0) return 1;
        double sn = r.server_dgrams ? r.server_ns / (double)r.server_dgrams : 0;
        double bn = r.bare_dgrams ? r.bare_ns / (double)r.bare_dgrams : 0;
        double dn = r.server_dgrams ? r.drop_ns / (double)r.server_dgrams : 0;
        if (i == 0) base = sn;
        double cn = r.copy_dgrams ? r.copy_ns / (double)r.copy_dgrams : 0;
        printf("| %d | %llu | %.0f | %.0f | %.2fx | %.2fx | %.0f | %.3f | %llu | %.0f |\n", r.peers,
               r.server_dgrams, sn, bn, bn > 0 ? sn / bn : 0, base > 0 ? sn / base : 0, dn,
               r.server_dgrams ? (double)r.server_faults / (double)r.server_dgrams : 0, r.lost, cn);
        fflush(stdout);
    }
    return 0;
}
