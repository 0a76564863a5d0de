/* sealnet DTLS benchmark (issue 4): every sealnet figure next to a baseline measured in the same
 * run on the same machine, printed as a markdown table with ratios.
 *
 *   dtls [--seconds N] [--only NAME[,NAME...]] [--repeat N] [--concurrency N] [--peers N]
 *        [--markdown]
 *
 * NAME: handshake, pingpong, oneway, memory, hvr. Every measurement runs a server process and a
 * client process (fork); sealnet and its baseline run back to back, `--repeat` times (default 3),
 * and the table shows the medians and the median of the per-pair ratios.
 *
 *  handshake  full DTLS 1.2 handshakes/s (ECDHE-ECDSA-AES128-GCM-SHA256, X25519, P-256
 *             certificate verified by the client, cookie exchange, MTU 1200) through the sealnet
 *             API (Godot-style server loop) vs a bare OpenSSL loop (DTLSv1_listen on
 *             BIO_s_datagram, one connected socket per accepted client), sequential and
 *             `--concurrency` clients in flight.
 *  pingpong   64-byte round trips/s over one DTLS connection vs raw UDP and vs a bare OpenSSL
 *             DTLS loop (BIO_s_datagram on connected sockets, echo in a second process), one
 *             record in flight (blocking poll waits).
 *  oneway     one-way records/s counted by the receiver (64 bytes and the largest payload that
 *             fits the 1200-byte MTU) vs raw UDP datagrams of the same payload size.
 *  memory     RSS and malloc'd bytes per connected idle server-side peer with `--peers` peers.
 *  hvr        HelloVerifyRequests answered per second to cookie-less ClientHellos blasted from
 *             1024 source ports, vs OpenSSL's DTLSv1_listen.
 */
#include <sealnet/sealnet.h>

#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CIPHER       "ECDHE-ECDSA-AES128-GCM-SHA256"
#define GROUPS       "X25519:P-256"
#define MTU          1200
#define HOST         "localhost"
#define BLAST_SOCKS  1024
#define WARMUP_CONNS 16

static double g_seconds = 3.0;
static int g_repeat = 3, g_concurrency = 4, g_peers = 1000;
static char *g_key_pem, *g_cert_pem;

/* ---- time, memory ------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rss_bytes(void)
{
    long total = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &total, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double heap_bytes(void)
{
    struct mallinfo2 m = mallinfo2();
    return (double)(m.uordblks + m.hblkhd);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- child processes ---------------------------------------------------------------------- */

/* What a child reports: v[0] < 0 means it failed (and said why on stderr). */
typedef struct res {
    double v[10];
} res;

typedef struct child {
    pid_t pid;
    int res_fd, ctl_fd;
} child;

/* A child runs fn; it stops when ctl_fd reports EOF (the parent closed its end). */
typedef void (*child_fn)(const void *arg, int res_fd, int ctl_fd);

static child spawn(child_fn fn, const void *arg)
{
    int rp[2], cp[2];
    if (pipe(rp) || pipe(cp)) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(rp[0]);
        close(cp[1]);
        /* Drop what the parent holds for other children (their control pipes above all):
         * a child must not keep another one alive. */
        for (int fd = 3; fd < 256; fd++)
            if (fd != rp[1] && fd != cp[0]) close(fd);
        signal(SIGPIPE, SIG_IGN);
        fn(arg, rp[1], cp[0]);
        _exit(0);
    }
    close(rp[1]);
    close(cp[0]);
    return (child){pid, rp[0], cp[1]};
}

static void put_res(int fd, const res *r)
{
    ssize_t n = write(fd, r, sizeof *r);
    (void)n;
}

static void put_fail(int fd)
{
    res r = {{-1}};
    put_res(fd, &r);
}

static bool get_res(child *c, res *r, double timeout)
{
    double end = now_s() + timeout;
    size_t got = 0;
    memset(r, 0, sizeof *r);
    while (got < sizeof *r) {
        int ms = (int)((end - now_s()) * 1000);
        if (ms <= 0) return false;
        struct pollfd p = {c->res_fd, POLLIN, 0};
        if (poll(&p, 1, ms) <= 0) continue;
        ssize_t n = read(c->res_fd, (char *)r + got, sizeof *r - got);
        if (n <= 0) return false;
        got += (size_t)n;
    }
    return r->v[0] >= 0;
}

/* Tells the child to stop (it may still write a final result). */
static void stop(child *c)
{
    if (c->ctl_fd >= 0) close(c->ctl_fd);
    c->ctl_fd = -1;
}

/* Waits for the child at most 10 s, then kills it. */
static void reap(child *c)
{
    if (c->pid <= 0) return;
    stop(c);
    double end = now_s() + 10;
    int st;
    pid_t w;
    while ((w = waitpid(c->pid, &st, WNOHANG)) == 0) {
        if (now_s() > end) {
            fprintf(stderr, "child %d did not stop: killed\n", (int)c->pid);
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            break;
        }
        usleep(2000);
    }
    if (w > 0 && WIFSIGNALED(st))
        fprintf(stderr, "child %d died of signal %d\n", (int)c->pid, WTERMSIG(st));
    close(c->res_fd);
    c->pid = -1;
}

static bool ctl_says_stop(int ctl)
{
    struct pollfd p = {ctl, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

/* Hard bound for any child loop. */
static double child_deadline(void)
{
    return now_s() + g_seconds * 4 + 60;
}

/* ---- credentials -------------------------------------------------------------------------- */

static sn_tls_options *sn_server_options(void)
{
    sn_crypto_key *key = sn_crypto_key_new();
    sn_x509_cert *cert = sn_x509_cert_new();
    sn_tls_options *o = NULL;
    if (key && cert && sn_crypto_key_load_from_string(key, g_key_pem, false) == SN_OK &&
        sn_x509_cert_load_from_string(cert, g_cert_pem) == SN_OK)
        o = sn_tls_options_server(key, cert);
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    return o;
}

static sn_tls_options *sn_client_options(void)
{
    sn_x509_cert *cert = sn_x509_cert_new();
    sn_tls_options *o = NULL;
    if (cert && sn_x509_cert_load_from_string(cert, g_cert_pem) == SN_OK)
        o = sn_tls_options_client(cert, NULL);
    sn_x509_cert_free(cert);
    return o;
}

/* ---- sockets ------------------------------------------------------------------------------ */

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* A UDP socket bound to 127.0.0.1:port (0: ephemeral), non-blocking; port read back. */
static int udp_bound(int *port, bool reuse)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(*port);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    nonblock(fd);
    return fd;
}

static int udp_connected(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = loopback(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    nonblock(fd);
    return fd;
}

/* ---- sealnet server: the Godot loop ------------------------------------------------------- */

enum mode { M_HANDSHAKE, M_ECHO, M_SINK, M_HOLD, M_HVR };

typedef struct srv_arg {
    enum mode mode;
    int hold; /* M_HOLD: peers to hold */
} srv_arg;

typedef struct live {
    sn_dtls_peer *p;
    bool connected;
    double last;
} live;

/* Final result of every server: v1 count, v2 active wall window (first..last event), v3 CPU
 * seconds in that window, v4.. mode-specific. M_HOLD also reports, once, v1 RSS bytes per peer,
 * v2 malloc'd bytes per peer, v3 peers, v4 RSS before, v5 RSS after. */
static void sn_server(const void *argp, int out, int ctl)
{
    const srv_arg *a = argp;
    raise_fd_limit();
    sn_tls_options *opts = sn_server_options();
    sn_udp_server *udp = sn_udp_server_new();
    sn_dtls_server *dtls = sn_dtls_server_new();
    if (!opts || !udp || !dtls || sn_udp_server_listen(udp, 0, "127.0.0.1") != SN_OK ||
        sn_dtls_server_setup(dtls, opts) != SN_OK) {
        fprintf(stderr, "sealnet server: %s\n", sn_last_error_message());
        put_fail(out);
        return;
    }
    /* Raised from 16: the HVR flood comes from 1024 addresses, the memory test opens 64 at once. */
    sn_udp_server_set_max_pending_connections(udp, a->mode == M_HVR ? 4096 : 256);
    /* Default queue limits everywhere: any datagram sealnet drops itself shows in the stats
     * (reported under the table). */
    res r = {{0}};
    r.v[0] = sn_udp_server_get_local_port(udp);
    put_res(out, &r);

    size_t cap = 64, n = 0;
    live *peers = calloc(cap, sizeof *peers);
    double count = 0, t_first = 0, t_last = 0, c_first = 0, errors = 0;
    double base_rss = 0, base_heap = 0, settle = 0, connected_total = 0;
    bool have_base = false, reported = false;
    static uint8_t buf[65536];
    double hard = child_deadline();
    while (peers && now_s() < hard) {
        int wait = 100;
        for (size_t i = 0; i < n; i++)
            if (!peers[i].connected) {
                int t = sn_dtls_peer_next_timeout_ms(peers[i].p);
                if (t >= 0 && t < wait) wait = t;
            }
        struct pollfd pf[2] = {{sn_udp_server_get_fd(udp), POLLIN, 0}, {ctl, POLLIN, 0}};
        poll(pf, 2, wait);
        if (pf[1].revents) break;
        double t = now_s();
        if ((pf[0].revents & POLLIN) && t_first == 0 && a->mode != M_SINK) {
            t_first = t;
            c_first = cpu_s();
        }
        sn_udp_server_poll(udp);
        while (sn_udp_server_is_connection_available(udp)) {
            sn_dtls_peer *p =
                sn_dtls_server_take_connection(dtls, sn_udp_server_take_connection(udp));
            if (sn_dtls_peer_get_status(p) != SN_DTLS_STATUS_HANDSHAKING) {
                sn_dtls_peer_free(p); /* the cookie round trip: normal */
                if (a->mode == M_HVR) t_last = t;
                continue;
            }
            if (n == cap) {
                live *m = realloc(peers, 2 * cap * sizeof *peers);
                if (!m) {
                    sn_dtls_peer_free(p);
                    continue;
                }
                peers = m, cap *= 2;
            }
            peers[n++] = (live){p, false, t};
        }
        for (size_t i = 0; i < n; i++) {
            live *l = &peers[i];
            sn_dtls_peer_poll(l->p);
            sn_dtls_status st = sn_dtls_peer_get_status(l->p);
            if (st == SN_DTLS_STATUS_CONNECTED) {
                if (!l->connected) {
                    l->connected = true;
                    l->last = t;
                    connected_total++;
                    if (a->mode == M_HANDSHAKE) count++, t_last = t;
                }
                size_t len;
                while (sn_dtls_peer_get_packet(l->p, buf, sizeof buf, &len) == SN_OK) {
                    l->last = t;
                    if (a->mode == M_ECHO) {
                        sn_dtls_peer_put_packet(l->p, buf, len);
                        count++;
                    } else if (a->mode == M_SINK) {
                        if (t_first == 0) t_first = t, c_first = cpu_s();
                        count++, t_last = t;
                    }
                }
                /* A close_notify lost on the way: do not keep a handshake-test peer forever. */
                if (a->mode == M_HANDSHAKE && t - l->last > 2.0) {
                    sn_dtls_peer_free(l->p);
                    peers[i--] = peers[--n];
                }
            } else if (st != SN_DTLS_STATUS_HANDSHAKING) {
                if (st != SN_DTLS_STATUS_DISCONNECTED) {
                    if (errors == 0)
                        fprintf(stderr, "sealnet server: peer failed: %s\n",
                                sn_dtls_peer_get_error_message(l->p));
                    errors++;
                }
                sn_dtls_peer_free(l->p);
                peers[i--] = peers[--n];
            }
        }
        if (a->mode == M_HOLD) {
            /* Baseline once the warm-up connections are gone (one-time allocations done). */
            if (!have_base && n == 0 && connected_total >= WARMUP_CONNS) {
                malloc_trim(0);
                base_rss = rss_bytes(), base_heap = heap_bytes();
                have_base = true;
            }
            size_t live_connected = 0;
            for (size_t i = 0; i < n; i++)
                live_connected += peers[i].connected;
            if (have_base && !reported && live_connected >= (size_t)a->hold) {
                if (settle == 0) {
                    settle = t + 0.5; /* idle a little: let any late work finish */
                } else if (t >= settle) {
                    malloc_trim(0);
                    double rss = rss_bytes(), heap = heap_bytes();
                    res m = {{1, (rss - base_rss) / (double)live_connected,
                              (heap - base_heap) / (double)live_connected, (double)live_connected,
                              base_rss, rss}};
                    put_res(out, &m);
                    reported = true;
                }
            }
        }
    }
    double c_end = cpu_s();
    sn_dtls_server_stats ds;
    sn_dtls_server_get_stats(dtls, &ds);
    sn_udp_server_stats us;
    sn_udp_server_get_stats(udp, &us);
    if (a->mode == M_HVR) count = (double)ds.cookies_sent;
    res f = {{1, count, t_last > t_first ? t_last - t_first : 0, t_first ? c_end - c_first : 0,
              (double)ds.hellos_received, (double)us.datagrams_received,
              (double)(us.dropped_queue_full + us.dropped_pending_full), errors}};
    for (size_t i = 0; i < n; i++)
        sn_dtls_peer_free(peers[i].p);
    free(peers);
    sn_dtls_server_free(dtls);
    sn_udp_server_free(udp);
    sn_tls_options_free(opts);
    put_res(out, &f);
}

/* ---- sealnet clients ---------------------------------------------------------------------- */

typedef struct cli_arg {
    enum mode mode;
    int port;
    int conc;    /* handshakes in flight */
    int payload; /* -1: the largest that fits */
    int hold;
} cli_arg;

static sn_dtls_peer *sn_start(int port, const sn_tls_options *opts)
{
    sn_udp_peer *u = sn_udp_peer_new();
    sn_dtls_peer *p = sn_dtls_peer_new();
    if (!u || !p || sn_udp_peer_connect_to_host(u, "127.0.0.1", port) != SN_OK) {
        fprintf(stderr, "sealnet client: %s\n", sn_last_error_message());
        sn_udp_peer_free(u);
        sn_dtls_peer_free(p);
        return NULL;
    }
    sn_dtls_peer_connect_to_peer(p, u, HOST, opts); /* failure shows as status ERROR */
    return p;
}

/* Sleeps until one of the peers' sockets is readable, a timer is due or max_ms passed. */
static void sn_wait(sn_dtls_peer **ps, size_t n, int ctl, int max_ms)
{
    static struct pollfd *pf;
    static size_t pcap;
    if (n + 1 > pcap) {
        free(pf);
        pcap = n + 1;
        pf = calloc(pcap, sizeof *pf);
        if (!pf) return;
    }
    int wait = max_ms;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ps[i]) continue;
        int t = sn_dtls_peer_next_timeout_ms(ps[i]);
        if (t >= 0 && t < wait) wait = t;
        int fd = sn_dtls_peer_get_fd(ps[i]);
        if (fd >= 0) pf[k++] = (struct pollfd){fd, POLLIN, 0};
    }
    pf[k++] = (struct pollfd){ctl, POLLIN, 0};
    poll(pf, (nfds_t)k, wait);
}

/* Connects one peer and waits until it is CONNECTED (5 s at most). */
static sn_dtls_peer *sn_connect_one(int port, const sn_tls_options *opts, int ctl)
{
    sn_dtls_peer *p = sn_start(port, opts);
    double end = now_s() + 5;
    while (p && now_s() < end) {
        sn_dtls_peer_poll(p);
        sn_dtls_status st = sn_dtls_peer_get_status(p);
        if (st == SN_DTLS_STATUS_CONNECTED) return p;
        if (st != SN_DTLS_STATUS_HANDSHAKING) break;
        sn_wait(&p, 1, ctl, 100);
    }
    fprintf(stderr, "sealnet client: cannot connect: %s\n",
            p ? sn_dtls_peer_get_error_message(p) : "no peer");
    sn_dtls_peer_free(p);
    return NULL;
}

/* Handshake loop: v1 handshakes, v2 seconds, v3 failures. */
static void sn_client_handshakes(const cli_arg *a, int out, int ctl)
{
    sn_tls_options *opts = sn_client_options();
    sn_dtls_peer **s = calloc((size_t)a->conc, sizeof *s);
    if (!opts || !s) {
        put_fail(out);
        return;
    }
    for (int i = 0; i < a->conc; i++)
        s[i] = sn_start(a->port, opts);
    double done = 0, errors = 0, t0 = now_s(), end = t0 + g_seconds, c0 = cpu_s();
    while (now_s() < end && !ctl_says_stop(ctl)) {
        sn_wait(s, (size_t)a->conc, ctl, 100);
        for (int i = 0; i < a->conc; i++) {
            if (!s[i]) s[i] = sn_start(a->port, opts);
            if (!s[i]) continue;
            sn_dtls_peer_poll(s[i]);
            /* On a loaded machine a whole handshake can finish inside one call (the server
             * runs while we are preempted): check again right after starting, never wait. */
            while (s[i] && now_s() < end) {
                sn_dtls_status st = sn_dtls_peer_get_status(s[i]);
                if (st == SN_DTLS_STATUS_HANDSHAKING) break;
                if (st == SN_DTLS_STATUS_CONNECTED) {
                    done++;
                } else {
                    if (errors == 0)
                        fprintf(stderr, "sealnet client: handshake failed: %s\n",
                                sn_dtls_peer_get_error_message(s[i]));
                    errors++;
                }
                sn_dtls_peer_free(s[i]); /* close_notify when connected */
                s[i] = sn_start(a->port, opts);
            }
        }
    }
    res r = {{1, done, now_s() - t0, errors, cpu_s() - c0}};
    for (int i = 0; i < a->conc; i++)
        sn_dtls_peer_free(s[i]);
    free(s);
    sn_tls_options_free(opts);
    put_res(out, &r);
}

/* Warm-up, then `hold` idle connections kept until told to stop: v1 connected, v2 seconds. */
static void sn_client_hold(const cli_arg *a, int out, int ctl)
{
    raise_fd_limit();
    sn_tls_options *opts = sn_client_options();
    sn_dtls_peer **s = calloc((size_t)a->hold, sizeof *s);
    if (!opts || !s) {
        put_fail(out);
        return;
    }
    for (int i = 0; i < WARMUP_CONNS; i++)
        sn_dtls_peer_free(sn_connect_one(a->port, opts, ctl));
    usleep(500000);
    /* s[0..connected) are connected, s[connected..started) handshaking. */
    int started = 0, connected = 0;
    double t0 = now_s(), end = t0 + 60;
    while (connected < a->hold && now_s() < end && !ctl_says_stop(ctl)) {
        /* Keep `conc` handshakes in flight among the peers not connected yet. */
        int in_flight = started - connected;
        while (in_flight < a->conc && started < a->hold) {
            s[started++] = sn_start(a->port, opts);
            in_flight++;
        }
        for (int i = 0; i < started; i++) {
            if (!s[i]) continue;
            if (sn_dtls_peer_get_status(s[i]) == SN_DTLS_STATUS_CONNECTED) continue;
            sn_dtls_peer_poll(s[i]);
            sn_dtls_status st = sn_dtls_peer_get_status(s[i]);
            if (st == SN_DTLS_STATUS_CONNECTED) {
                /* keep the array ordered: connected ones first */
                sn_dtls_peer *tmp = s[connected];
                s[connected] = s[i], s[i] = tmp;
                connected++;
            } else if (st != SN_DTLS_STATUS_HANDSHAKING) {
                /* Failed: drop it; the start loop opens another. */
                sn_dtls_peer_free(s[i]);
                s[i] = s[--started];
                s[started] = NULL;
                i--;
            }
        }
        sn_wait(s + connected, (size_t)(started - connected), ctl, 100);
    }
    res r = {{1, connected, now_s() - t0}};
    put_res(out, &r);
    double hard = child_deadline();
    while (!ctl_says_stop(ctl) && now_s() < hard) {
        struct pollfd p = {ctl, POLLIN, 0};
        poll(&p, 1, 200);
    }
    for (int i = 0; i < a->hold; i++)
        sn_dtls_peer_free(s[i]);
    free(s);
    sn_tls_options_free(opts);
}

/* Ping-pong: v1 round trips, v2 seconds, v3 timeouts. One-way: v1 sent, v2 seconds, v3 busy,
 * v4 payload bytes. Both: v5 CPU seconds. */
static void sn_client_data(const cli_arg *a, int out, int ctl)
{
    sn_tls_options *opts = sn_client_options();
    sn_dtls_peer *p = opts ? sn_connect_one(a->port, opts, ctl) : NULL;
    if (!p) {
        put_fail(out);
        sn_tls_options_free(opts);
        return;
    }
    int payload = a->payload < 0 ? sn_dtls_peer_get_max_packet_size(p) : a->payload;
    static uint8_t msg[65536], back[65536];
    memset(msg, 0x5a, sizeof msg);
    int fd = sn_dtls_peer_get_fd(p);
    double count = 0, extra = 0, t0 = now_s(), end = t0 + g_seconds, t = t0, c0 = cpu_s();
    if (a->mode == M_ECHO) {
        while ((t = now_s()) < end) {
            memcpy(msg, &count, sizeof count);
            sn_dtls_peer_put_packet(p, msg, (size_t)payload);
            for (;;) {
                size_t len;
                sn_dtls_peer_poll(p);
                if (sn_dtls_peer_get_packet(p, back, sizeof back, &len) == SN_OK) {
                    if (!memcmp(back, &count, sizeof count)) break; /* ours */
                    continue;                                       /* a stale echo */
                }
                struct pollfd pf = {fd, POLLIN, 0};
                if (poll(&pf, 1, 200) == 0) {
                    extra++; /* lost: send the next one */
                    count--;
                    break;
                }
            }
            count++;
        }
    } else {
        for (;;) {
            for (int i = 0; i < 64; i++) {
                sn_err e = sn_dtls_peer_put_packet(p, msg, (size_t)payload);
                if (e == SN_OK) {
                    count++;
                } else if (e == SN_ERR_BUSY) {
                    extra++;
                    struct pollfd pf = {fd, POLLOUT, 0};
                    poll(&pf, 1, 1);
                } else {
                    fprintf(stderr, "sealnet sender: %s\n", sn_last_error_message());
                    goto done;
                }
            }
            if ((t = now_s()) >= end) break;
        }
    }
done:
    t = now_s();
    res r = {{1, count, t - t0, extra, payload, cpu_s() - c0}};
    sn_dtls_peer_free(p);
    sn_tls_options_free(opts);
    put_res(out, &r);
}

static void sn_client(const void *argp, int out, int ctl)
{
    const cli_arg *a = argp;
    if (a->mode == M_HANDSHAKE)
        sn_client_handshakes(a, out, ctl);
    else if (a->mode == M_HOLD)
        sn_client_hold(a, out, ctl);
    else
        sn_client_data(a, out, ctl);
}

/* ---- raw UDP ------------------------------------------------------------------------------ */

/* Echo or sink server with recvmmsg batches of 64 (sealnet's server batch). Final result as
 * sn_server: v1 count, v2 window, v3 CPU. */
static void raw_server(const void *argp, int out, int ctl)
{
    const srv_arg *a = argp;
    int port = 0, fd = udp_bound(&port, false);
    if (fd < 0) {
        perror("raw server");
        put_fail(out);
        return;
    }
    res r = {{port}};
    put_res(out, &r);
    enum { B = 64, SZ = 2048 };
    static uint8_t bufs[B][SZ];
    static struct sockaddr_in from[B];
    static struct iovec iov[B];
    static struct mmsghdr m[B];
    double count = 0, t_first = 0, t_last = 0, c_first = 0, hard = child_deadline();
    while (now_s() < hard) {
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {ctl, POLLIN, 0}};
        poll(pf, 2, 100);
        if (pf[1].revents) break;
        for (;;) {
            for (int i = 0; i < B; i++) {
                iov[i] = (struct iovec){bufs[i], SZ};
                m[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                               .msg_namelen = sizeof from[i],
                                               .msg_iov = &iov[i],
                                               .msg_iovlen = 1};
            }
            int k = recvmmsg(fd, m, B, MSG_DONTWAIT, NULL);
            if (k <= 0) break;
            double t = now_s();
            if (t_first == 0) t_first = t, c_first = cpu_s();
            for (int i = 0; i < k; i++) {
                if (a->mode == M_ECHO)
                    sendto(fd, bufs[i], m[i].msg_len, 0, (struct sockaddr *)&from[i],
                           m[i].msg_hdr.msg_namelen);
                count++;
            }
            t_last = t;
            if (k < B || t >= hard) break;
        }
    }
    res f = {{1, count, t_last - t_first, t_first ? cpu_s() - c_first : 0}};
    close(fd);
    put_res(out, &f);
}

static void raw_client(const void *argp, int out, int ctl)
{
    const cli_arg *a = argp;
    (void)ctl;
    int fd = udp_connected(a->port);
    if (fd < 0) {
        put_fail(out);
        return;
    }
    static uint8_t msg[65536], back[65536];
    memset(msg, 0x5a, sizeof msg);
    size_t payload = (size_t)a->payload;
    double count = 0, extra = 0, t0 = now_s(), end = t0 + g_seconds, c0 = cpu_s();
    if (a->mode == M_ECHO) {
        while (now_s() < end) {
            memcpy(msg, &count, sizeof count);
            if (send(fd, msg, payload, 0) < 0) extra++;
            for (;;) {
                ssize_t n = recv(fd, back, sizeof back, 0);
                if (n >= 8 && !memcmp(back, &count, sizeof count)) break;
                if (n >= 0) continue;
                struct pollfd pf = {fd, POLLIN, 0};
                if (poll(&pf, 1, 200) == 0) {
                    extra++;
                    count--;
                    break;
                }
            }
            count++;
        }
    } else {
        for (;;) {
            for (int i = 0; i < 64; i++) {
                if (send(fd, msg, payload, 0) >= 0) {
                    count++;
                } else {
                    extra++;
                    struct pollfd pf = {fd, POLLOUT, 0};
                    poll(&pf, 1, 1);
                }
            }
            if (now_s() >= end) break;
        }
    }
    res r = {{1, count, now_s() - t0, extra, (double)payload, cpu_s() - c0}};
    close(fd);
    put_res(out, &r);
}

/* ---- bare OpenSSL ------------------------------------------------------------------------- */

static unsigned char g_cookie_secret[32];
static unsigned long g_cookies_made;

static bool peer_bytes(SSL *ssl, unsigned char out[18])
{
    BIO_ADDR *peer = BIO_ADDR_new();
    bool ok = peer && BIO_dgram_get_peer(SSL_get_rbio(ssl), peer) > 0;
    size_t len = 0;
    memset(out, 0, 18);
    if (ok && BIO_ADDR_rawaddress(peer, out, &len) && len <= 16) {
        unsigned short port = BIO_ADDR_rawport(peer);
        memcpy(out + 16, &port, 2);
    } else {
        ok = false;
    }
    BIO_ADDR_free(peer);
    return ok;
}

/* The cookie of OpenSSL's own demos: HMAC-SHA256(secret, peer address and port). */
static int bare_cookie_make(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    unsigned char msg[18];
    if (!peer_bytes(ssl, msg)) return 0;
    g_cookies_made++;
    return HMAC(EVP_sha256(), g_cookie_secret, sizeof g_cookie_secret, msg, sizeof msg, cookie,
                len) != NULL;
}

static int bare_cookie_check(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    unsigned char msg[18], mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    if (!peer_bytes(ssl, msg) ||
        !HMAC(EVP_sha256(), g_cookie_secret, sizeof g_cookie_secret, msg, sizeof msg, mac, &mlen))
        return 0;
    return mlen == len && CRYPTO_memcmp(mac, cookie, len) == 0;
}

static SSL_CTX *bare_ctx(bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? DTLS_server_method() : DTLS_client_method());
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, CIPHER);
    SSL_CTX_set1_groups_list(ctx, GROUPS);
    /* The same protocol work as sealnet: no tickets or session cache, a fixed 1200-byte MTU. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    BIO *kb = BIO_new_mem_buf(g_key_pem, -1), *cb = BIO_new_mem_buf(g_cert_pem, -1);
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    BIO_free(kb);
    BIO_free(cb);
    bool ok = key && cert;
    if (ok && server) {
        ok = SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
        SSL_CTX_set_options(ctx, SSL_OP_COOKIE_EXCHANGE);
        SSL_CTX_set_cookie_generate_cb(ctx, bare_cookie_make);
        SSL_CTX_set_cookie_verify_cb(ctx, bare_cookie_check);
    } else if (ok) {
        ok = X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), cert) == 1;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    if (!ok) {
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    RAND_bytes(g_cookie_secret, sizeof g_cookie_secret);
    return ctx;
}

static SSL *bare_listener(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    BIO *bio = BIO_new_dgram(fd, BIO_NOCLOSE);
    SSL_set_bio(ssl, bio, bio);
    SSL_set_mtu(ssl, MTU);
    return ssl;
}

typedef struct bconn {
    SSL *ssl;
    int fd;
    bool connected;
    double last;
} bconn;

static void bare_conn_free(bconn *c)
{
    SSL_free(c->ssl);
    close(c->fd);
}

/* Bare OpenSSL DTLS server, the pattern of OpenSSL's demos made non-blocking: DTLSv1_listen
 * on the listening socket; a ClientHello with a valid cookie gets its own socket bound to the
 * same port and connected to the client, and the handshake goes on there. Results as
 * sn_server (M_HANDSHAKE, M_HOLD) or, for M_HVR, v1 HelloVerifyRequests sent. */
static void bare_server(const void *argp, int out, int ctl)
{
    const srv_arg *a = argp;
    raise_fd_limit();
    SSL_CTX *ctx = bare_ctx(true);
    int port = 0, lfd = ctx ? udp_bound(&port, true) : -1;
    if (lfd < 0) {
        put_fail(out);
        return;
    }
    SSL *listener = bare_listener(ctx, lfd);
    BIO_ADDR *client = BIO_ADDR_new();
    res r = {{port}};
    put_res(out, &r);
    size_t cap = 64, n = 0;
    bconn *cs = calloc(cap, sizeof *cs);
    struct pollfd *pf = calloc(cap + 2, sizeof *pf);
    double count = 0, t_first = 0, t_last = 0, c_first = 0, errors = 0, connected_total = 0;
    double base_rss = 0, base_heap = 0, settle = 0;
    bool have_base = false, reported = false;
    double hard = child_deadline();
    char buf[2048];
    while (cs && pf && now_s() < hard) {
        int wait = 100;
        pf[0] = (struct pollfd){lfd, POLLIN, 0};
        pf[1] = (struct pollfd){ctl, POLLIN, 0};
        for (size_t i = 0; i < n; i++) {
            pf[i + 2] = (struct pollfd){cs[i].fd, POLLIN, 0};
            struct timeval tv;
            if (!cs[i].connected && DTLSv1_get_timeout(cs[i].ssl, &tv) == 1) {
                int t = (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
                if (t < wait) wait = t;
            }
        }
        poll(pf, (nfds_t)(n + 2), wait);
        if (pf[1].revents) break;
        double t = now_s();
        if ((pf[0].revents & POLLIN) && t_first == 0) t_first = t, c_first = cpu_s();
        /* Check the existing connections first: pf[] indexes them as they are now. */
        for (size_t i = 0; i < n; i++) {
            bconn *c = &cs[i];
            bool drop = false;
            if (!c->connected) {
                struct timeval tv;
                if (!(pf[i + 2].revents & POLLIN)) {
                    if (DTLSv1_get_timeout(c->ssl, &tv) == 1 && tv.tv_sec == 0 && tv.tv_usec == 0)
                        DTLSv1_handle_timeout(c->ssl);
                    continue;
                }
                int rc = SSL_do_handshake(c->ssl);
                if (rc == 1) {
                    c->connected = true;
                    c->last = t;
                    connected_total++;
                    if (a->mode == M_HANDSHAKE) count++, t_last = t;
                } else if (SSL_get_error(c->ssl, rc) != SSL_ERROR_WANT_READ) {
                    if (errors == 0) {
                        fprintf(stderr, "bare server: handshake failed (SSL error %d)\n",
                                SSL_get_error(c->ssl, rc));
                        ERR_print_errors_fp(stderr);
                    }
                    errors++;
                    drop = true;
                }
                ERR_clear_error();
            } else if ((pf[i + 2].revents & POLLIN) && a->mode == M_ECHO) {
                /* Ping-pong: every record read is written back at once. */
                int rc;
                while ((rc = SSL_read(c->ssl, buf, sizeof buf)) > 0) {
                    c->last = t;
                    if (SSL_write(c->ssl, buf, rc) == rc) count++;
                }
                drop = SSL_get_error(c->ssl, rc) != SSL_ERROR_WANT_READ;
                ERR_clear_error();
            } else if (pf[i + 2].revents & POLLIN) {
                int rc = SSL_read(c->ssl, buf, sizeof buf);
                if (rc > 0) {
                    c->last = t;
                } else {
                    int e = SSL_get_error(c->ssl, rc);
                    drop = e != SSL_ERROR_WANT_READ; /* close_notify or an error */
                }
                ERR_clear_error();
            } else if (a->mode == M_HANDSHAKE && t - c->last > 2.0) {
                drop = true;
            }
            if (drop) {
                bare_conn_free(c);
                cs[i] = cs[--n];
                pf[i + 2] = pf[n + 2];
                i--;
            }
        }
        if (pf[0].revents & POLLIN) {
            for (;;) {
                unsigned long before = g_cookies_made;
                int rc = DTLSv1_listen(listener, client);
                if (g_cookies_made != before && a->mode == M_HVR) t_last = now_s();
                if (rc <= 0) {
                    ERR_clear_error();
                    break;
                }
                /* A valid cookie: this client gets its own connected socket. */
                int cport = port, cfd = udp_bound(&cport, true);
                struct sockaddr_in sa = loopback(0);
                size_t alen = sizeof sa.sin_addr;
                BIO_ADDR_rawaddress(client, &sa.sin_addr, &alen);
                sa.sin_port = BIO_ADDR_rawport(client);
                if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof sa)) {
                    if (cfd >= 0) close(cfd);
                    SSL_free(listener);
                    listener = bare_listener(ctx, lfd);
                    continue;
                }
                BIO *b = SSL_get_rbio(listener);
                BIO_set_fd(b, cfd, BIO_NOCLOSE);
                BIO_ctrl(b, BIO_CTRL_DGRAM_SET_CONNECTED, 0, client);
                if (n == cap) {
                    bconn *m = realloc(cs, 2 * cap * sizeof *cs);
                    struct pollfd *mp = m ? realloc(pf, (2 * cap + 2) * sizeof *pf) : NULL;
                    if (m) cs = m;
                    if (mp) pf = mp, cap *= 2;
                    if (!m || !mp) {
                        SSL_free(listener);
                        close(cfd);
                        listener = bare_listener(ctx, lfd);
                        continue;
                    }
                }
                cs[n] = (bconn){listener, cfd, false, t};
                pf[n + 2] = (struct pollfd){cfd, POLLIN, 0};
                n++;
                int hrc = SSL_accept(listener);
                if (hrc == 1) {
                    /* The whole handshake can finish here when the client runs while we are
                     * preempted (a loaded machine): count it now. */
                    cs[n - 1].connected = true;
                    connected_total++;
                    if (a->mode == M_HANDSHAKE) count++, t_last = t;
                } else if (SSL_get_error(listener, hrc) != SSL_ERROR_WANT_READ) {
                    errors++;
                    bare_conn_free(&cs[--n]);
                }
                ERR_clear_error();
                listener = bare_listener(ctx, lfd);
            }
        }
        if (a->mode == M_HOLD) {
            if (!have_base && n == 0 && connected_total >= WARMUP_CONNS) {
                malloc_trim(0);
                base_rss = rss_bytes(), base_heap = heap_bytes();
                have_base = true;
            }
            size_t live_connected = 0;
            for (size_t i = 0; i < n; i++)
                live_connected += cs[i].connected;
            if (have_base && !reported && live_connected >= (size_t)a->hold) {
                if (settle == 0) {
                    settle = t + 0.5;
                } else if (t >= settle) {
                    malloc_trim(0);
                    double rss = rss_bytes(), heap = heap_bytes();
                    res m = {{1, (rss - base_rss) / (double)live_connected,
                              (heap - base_heap) / (double)live_connected, (double)live_connected,
                              base_rss, rss}};
                    put_res(out, &m);
                    reported = true;
                }
            }
        }
    }
    double c_end = cpu_s();
    if (a->mode == M_HVR) count = (double)g_cookies_made;
    res f = {{1, count, t_last > t_first ? t_last - t_first : 0, t_first ? c_end - c_first : 0, 0,
              0, 0, errors}};
    for (size_t i = 0; i < n; i++)
        bare_conn_free(&cs[i]);
    free(cs);
    free(pf);
    SSL_free(listener);
    BIO_ADDR_free(client);
    close(lfd);
    SSL_CTX_free(ctx);
    put_res(out, &f);
}

typedef struct bcli {
    SSL *ssl;
    int fd;
} bcli;

static bool bare_start(SSL_CTX *ctx, int port, bcli *c)
{
    c->fd = udp_connected(port);
    c->ssl = c->fd >= 0 ? SSL_new(ctx) : NULL;
    if (!c->ssl) {
        if (c->fd >= 0) close(c->fd);
        c->fd = -1;
        return false;
    }
    BIO *bio = BIO_new_dgram(c->fd, BIO_CLOSE);
    struct sockaddr_in sa = loopback(port);
    BIO_ADDR *peer = BIO_ADDR_new();
    BIO_ADDR_rawmake(peer, AF_INET, &sa.sin_addr, sizeof sa.sin_addr, sa.sin_port);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, peer);
    BIO_ADDR_free(peer);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_mtu(c->ssl, MTU);
    SSL_set_tlsext_host_name(c->ssl, HOST);
    SSL_set1_host(c->ssl, HOST);
    SSL_set_connect_state(c->ssl);
    return true;
}

static void bare_stop(bcli *c, bool connected)
{
    if (!c->ssl) return;
    if (connected) SSL_shutdown(c->ssl); /* close_notify, as sn_dtls_peer_free does */
    SSL_free(c->ssl);                    /* closes the socket (BIO_CLOSE) */
    ERR_clear_error();
    c->ssl = NULL;
    c->fd = -1;
}

/* 1: connected, 0: in progress, -1: failed. */
static int bare_step(bcli *c)
{
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) return 1;
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        struct timeval tv;
        if (DTLSv1_get_timeout(c->ssl, &tv) == 1 && tv.tv_sec == 0 && tv.tv_usec == 0)
            DTLSv1_handle_timeout(c->ssl);
        return 0;
    }
    ERR_print_errors_fp(stderr);
    return -1;
}

static void bare_wait(bcli *cs, size_t n, int ctl)
{
    static struct pollfd *pf;
    static size_t pcap;
    if (n + 1 > pcap) {
        free(pf);
        pcap = n + 1;
        pf = calloc(pcap, sizeof *pf);
        if (!pf) return;
    }
    int wait = 100;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cs[i].ssl) continue;
        struct timeval tv;
        if (DTLSv1_get_timeout(cs[i].ssl, &tv) == 1) {
            int t = (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
            if (t < wait) wait = t;
        }
        pf[k++] = (struct pollfd){cs[i].fd, POLLIN, 0};
    }
    pf[k++] = (struct pollfd){ctl, POLLIN, 0};
    poll(pf, (nfds_t)k, wait);
}

/* Bare OpenSSL ping-pong, as sn_client_data for M_ECHO: one connection on a connected UDP
 * socket (BIO_s_datagram), one 64-byte record in flight, SSL_write then SSL_read / poll. */
static void bare_client_echo(const cli_arg *a, int out, int ctl)
{
    SSL_CTX *ctx = bare_ctx(false);
    bcli c = {0};
    if (!ctx || !bare_start(ctx, a->port, &c)) {
        put_fail(out);
        SSL_CTX_free(ctx);
        return;
    }
    int st = bare_step(&c);
    double wend = now_s() + 10;
    while (st == 0 && now_s() < wend) {
        bare_wait(&c, 1, ctl);
        st = bare_step(&c);
    }
    if (st != 1) {
        bare_stop(&c, false);
        SSL_CTX_free(ctx);
        put_fail(out);
        return;
    }
    static uint8_t msg[2048], back[2048];
    memset(msg, 0x5a, sizeof msg);
    int payload = a->payload;
    double count = 0, extra = 0, t0 = now_s(), end = t0 + g_seconds, c0 = cpu_s();
    bool failed = false;
    while (!failed && now_s() < end) {
        memcpy(msg, &count, sizeof count);
        if (SSL_write(c.ssl, msg, payload) != payload) {
            ERR_print_errors_fp(stderr);
            failed = true;
            break;
        }
        for (;;) {
            int n = SSL_read(c.ssl, back, sizeof back);
            if (n >= 8 && !memcmp(back, &count, sizeof count)) break; /* ours */
            if (n > 0) continue;                                      /* a stale echo */
            if (SSL_get_error(c.ssl, n) != SSL_ERROR_WANT_READ) {
                ERR_print_errors_fp(stderr);
                failed = true;
                break;
            }
            struct pollfd pf = {c.fd, POLLIN, 0};
            if (poll(&pf, 1, 200) == 0) {
                extra++; /* lost: send the next one */
                count--;
                break;
            }
        }
        count++;
    }
    res r = {{failed ? 0 : 1, count, now_s() - t0, extra, payload, cpu_s() - c0}};
    bare_stop(&c, true);
    SSL_CTX_free(ctx);
    if (failed)
        put_fail(out);
    else
        put_res(out, &r);
}

/* As sn_client for M_HANDSHAKE, M_HOLD and M_ECHO. */
static void bare_client(const void *argp, int out, int ctl)
{
    const cli_arg *a = argp;
    raise_fd_limit();
    if (a->mode == M_ECHO) {
        bare_client_echo(a, out, ctl);
        return;
    }
    SSL_CTX *ctx = bare_ctx(false);
    int slots = a->mode == M_HOLD ? a->hold : a->conc;
    bcli *cs = calloc((size_t)slots, sizeof *cs);
    if (!ctx || !cs) {
        put_fail(out);
        return;
    }
    double done = 0, errors = 0, t0, end;
    if (a->mode == M_HANDSHAKE) {
        for (int i = 0; i < a->conc; i++)
            if (bare_start(ctx, a->port, &cs[i])) bare_step(&cs[i]);
        t0 = now_s(), end = t0 + g_seconds;
        double c0 = cpu_s();
        while (now_s() < end && !ctl_says_stop(ctl)) {
            bare_wait(cs, (size_t)a->conc, ctl);
            for (int i = 0; i < a->conc; i++) {
                if (!cs[i].ssl && !bare_start(ctx, a->port, &cs[i])) continue;
                int st = bare_step(&cs[i]);
                /* As in the sealnet client: a new handshake is stepped at once. */
                while (st != 0 && now_s() < end) {
                    if (st > 0)
                        done++;
                    else
                        errors++;
                    bare_stop(&cs[i], st > 0);
                    if (!bare_start(ctx, a->port, &cs[i])) break;
                    st = bare_step(&cs[i]);
                }
            }
        }
        res r = {{1, done, now_s() - t0, errors, cpu_s() - c0}};
        for (int i = 0; i < a->conc; i++)
            bare_stop(&cs[i], false);
        put_res(out, &r);
    } else {
        for (int w = 0; w < WARMUP_CONNS; w++) {
            bcli c;
            if (!bare_start(ctx, a->port, &c)) continue;
            int st = bare_step(&c);
            double wend = now_s() + 5;
            while (st == 0 && now_s() < wend) {
                bare_wait(&c, 1, ctl);
                st = bare_step(&c);
            }
            bare_stop(&c, st > 0);
        }
        usleep(500000);
        int started = 0, connected = 0;
        t0 = now_s(), end = t0 + 60;
        while (connected < a->hold && now_s() < end && !ctl_says_stop(ctl)) {
            while (started - connected < a->conc && started < a->hold)
                if (!bare_start(ctx, a->port, &cs[started++])) started--;
            for (int i = connected; i < started; i++) {
                int st = bare_step(&cs[i]);
                if (st > 0) {
                    bcli tmp = cs[connected];
                    cs[connected++] = cs[i], cs[i] = tmp;
                } else if (st < 0) {
                    bare_stop(&cs[i], false);
                    cs[i] = cs[--started];
                    cs[started].ssl = NULL;
                    i--;
                }
            }
            bare_wait(cs + connected, (size_t)(started - connected), ctl);
        }
        res r = {{1, connected, now_s() - t0}};
        put_res(out, &r);
        double hard = child_deadline();
        while (!ctl_says_stop(ctl) && now_s() < hard) {
            struct pollfd p = {ctl, POLLIN, 0};
            poll(&p, 1, 200);
        }
        for (int i = 0; i < started; i++)
            bare_stop(&cs[i], true);
    }
    free(cs);
    SSL_CTX_free(ctx);
}

/* ---- ClientHello blaster ------------------------------------------------------------------ */

/* Sends one real cookie-less DTLS 1.2 ClientHello (made by OpenSSL with our client settings)
 * from BLAST_SOCKS source ports in turn, as fast as it can: v1 sent, v2 seconds. */
static void blaster(const void *argp, int out, int ctl)
{
    const cli_arg *a = argp;
    (void)ctl;
    raise_fd_limit();
    SSL_CTX *ctx = bare_ctx(false);
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!ssl || !rb || !wb) {
        put_fail(out);
        return;
    }
    SSL_set_bio(ssl, rb, wb);
    SSL_set_mtu(ssl, MTU);
    SSL_set_tlsext_host_name(ssl, HOST);
    SSL_set_connect_state(ssl);
    SSL_do_handshake(ssl);
    char *hello = NULL;
    long hlen = BIO_get_mem_data(wb, &hello);
    static int fds[BLAST_SOCKS];
    for (int i = 0; i < BLAST_SOCKS; i++) {
        fds[i] = udp_connected(a->port);
        int small = 4096;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        if (fds[i] < 0) {
            perror("blaster socket");
            put_fail(out);
            return;
        }
    }
    double sent = 0, t0 = now_s(), end = t0 + g_seconds;
    for (unsigned i = 0;; i++) {
        if (send(fds[i % BLAST_SOCKS], hello, (size_t)hlen, 0) >= 0) sent++;
        if ((i & 255) == 0 && now_s() >= end) break;
    }
    res r = {{1, sent, now_s() - t0, (double)hlen}};
    for (int i = 0; i < BLAST_SOCKS; i++)
        close(fds[i]);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    put_res(out, &r);
}

/* ---- runs: one server, one client, results ------------------------------------------------ */

typedef struct run {
    bool ok;
    res srv, cli, mem; /* server final, client, server memory report (M_HOLD) */
} run;

static run run_pair(child_fn server, const srv_arg *sa, child_fn client, cli_arg ca)
{
    run r = {0};
    child s = spawn(server, sa);
    res ready;
    if (!get_res(&s, &ready, 10)) {
        fprintf(stderr, "server did not start\n");
        reap(&s);
        return r;
    }
    ca.port = (int)ready.v[0];
    child c = spawn(client, &ca);
    double limit = g_seconds + 30;
    if (sa->mode == M_HOLD) limit = 90;
    bool cli_ok = get_res(&c, &r.cli, limit);
    bool mem_ok = true;
    if (sa->mode == M_HOLD && cli_ok)
        mem_ok = get_res(&s, &r.mem, 20);
    else if (sa->mode == M_SINK || sa->mode == M_HVR)
        usleep(300000); /* let the receiver drain what is in flight */
    stop(&c);
    if (sa->mode == M_HANDSHAKE || sa->mode == M_HOLD) reap(&c);
    stop(&s);
    bool srv_ok = get_res(&s, &r.srv, 15);
    reap(&c);
    reap(&s);
    r.ok = cli_ok && srv_ok && mem_ok;
    if (!r.ok)
        fprintf(stderr,
                "a run failed (client %d: %.0f in %.1f s, server %d: %.0f, memory report %d)\n",
                cli_ok, r.cli.v[1], r.cli.v[2], srv_ok, r.srv.v[1], mem_ok);
    return r;
}

/* Runs sealnet and its baseline back to back; on every other pair the baseline goes first, so a
 * drift in the machine's load does not always favour the same side. */
static void run_both(int i, run *s, child_fn sn_srv, child_fn sn_cli, cli_arg sc, run *b,
                     child_fn b_srv, child_fn b_cli, cli_arg bc, const srv_arg *sa)
{
    if (i % 2) {
        *b = run_pair(b_srv, sa, b_cli, bc);
        *s = run_pair(sn_srv, sa, sn_cli, sc);
    } else {
        *s = run_pair(sn_srv, sa, sn_cli, sc);
        *b = run_pair(b_srv, sa, b_cli, bc);
    }
}

/* ---- the table ---------------------------------------------------------------------------- */

#define MAX_REP 15

/* One line of the table: a sealnet figure, its baseline, their ratio, per repetition. */
typedef struct row {
    char name[96], unit[24], baseline[48], target[40];
    double sn[MAX_REP], base[MAX_REP];
    int n;
    double goal;   /* ratio goal (or absolute goal when `absolute`) */
    bool lower;    /* lower is better */
    bool absolute; /* the goal applies to the sealnet figure itself */
    bool info;     /* no target: information only */
} row;

static row g_rows[32];
static int g_nrows;
static char g_notes[8192];
static size_t g_notes_len;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(g_notes + g_notes_len, sizeof g_notes - g_notes_len, fmt, ap);
    va_end(ap);
    if (k > 0) g_notes_len += (size_t)k;
    if (g_notes_len >= sizeof g_notes) g_notes_len = sizeof g_notes - 1;
}

static row *new_row(const char *name, const char *unit, const char *baseline, const char *target,
                    double goal, bool lower, bool absolute)
{
    row *r = &g_rows[g_nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    snprintf(r->baseline, sizeof r->baseline, "%s", baseline);
    snprintf(r->target, sizeof r->target, "%s", target);
    r->goal = goal;
    r->lower = lower;
    r->absolute = absolute;
    r->info = !target[0];
    return r;
}

static void add(row *r, double sn, double base)
{
    if (r->n < MAX_REP) r->sn[r->n] = sn, r->base[r->n] = base, r->n++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double t[MAX_REP];
    if (n <= 0) return 0;
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void fmt_num(char *out, size_t cap, double v, const char *unit)
{
    if (!strcmp(unit, "KiB"))
        snprintf(out, cap, "%.1f KiB", v / 1024);
    else if (!strcmp(unit, "us"))
        snprintf(out, cap, "%.1f µs", v);
    else if (!strcmp(unit, "%"))
        snprintf(out, cap, "%.1f %%", v);
    else if (v >= 1e6)
        snprintf(out, cap, "%.2f M%s", v / 1e6, unit);
    else if (v >= 1e4)
        snprintf(out, cap, "%.1f k%s", v / 1e3, unit);
    else
        snprintf(out, cap, "%.0f %s", v, unit);
}

static void print_table(void)
{
    printf("| Measurement | sealnet | baseline | ratio | target | met |\n");
    printf("|---|---:|---|---:|---|---|\n");
    for (int i = 0; i < g_nrows; i++) {
        row *r = &g_rows[i];
        if (r->n == 0) {
            printf("| %s | – | %s: – | – | %s | **no data: every run failed (see stderr)** |\n",
                   r->name, r->baseline, r->target[0] ? r->target : "–");
            continue;
        }
        double ratios[MAX_REP];
        int nr = 0;
        for (int k = 0; k < r->n; k++)
            if (r->base[k] > 0) ratios[nr++] = r->sn[k] / r->base[k];
        double s = median(r->sn, r->n), b = median(r->base, r->n), q = median(ratios, nr);
        char sv[48], bv[48], qv[24] = "–";
        fmt_num(sv, sizeof sv, s, r->unit);
        fmt_num(bv, sizeof bv, b, r->unit);
        if (nr) snprintf(qv, sizeof qv, "%.2f×", q);
        const char *met = "–";
        if (!r->info) {
            double x = r->absolute ? s : q;
            bool ok = r->lower ? x <= r->goal : x >= r->goal;
            met = ok ? "yes" : "**no**";
        }
        printf("| %s | %s | %s: %s | %s | %s | %s |\n", r->name, sv, r->baseline, bv, qv,
               r->target[0] ? r->target : "–", met);
    }
    if (g_notes_len) printf("\n%s", g_notes);
}

/* ---- the measurements --------------------------------------------------------------------- */

static double rate(double count, double secs)
{
    return secs > 0 ? count / secs : 0;
}

static void bench_handshake(int conc)
{
    char name[96];
    snprintf(name, sizeof name, "Full handshakes/s, %d in flight", conc);
    row *r = new_row(name, "/s", "bare OpenSSL", "≥ 0.9× bare", 0.9, false, false);
    snprintf(name, sizeof name, "Server CPU per handshake, %d in flight", conc);
    row *c = new_row(name, "us", "bare OpenSSL", "", 0, true, false);
    snprintf(name, sizeof name, "Client CPU per handshake, %d in flight", conc);
    row *cc = new_row(name, "us", "bare OpenSSL", "", 0, true, false);
    srv_arg sa = {M_HANDSHAKE, 0};
    cli_arg ca = {M_HANDSHAKE, 0, conc, 0, 0};
    for (int i = 0; i < g_repeat; i++) {
        run s, b;
        run_both(i, &s, sn_server, sn_client, ca, &b, bare_server, bare_client, ca, &sa);
        if (!s.ok || !b.ok) continue;
        add(r, rate(s.cli.v[1], s.cli.v[2]), rate(b.cli.v[1], b.cli.v[2]));
        add(c, s.srv.v[1] > 0 ? s.srv.v[3] / s.srv.v[1] * 1e6 : 0,
            b.srv.v[1] > 0 ? b.srv.v[3] / b.srv.v[1] * 1e6 : 0);
        add(cc, s.cli.v[1] > 0 ? s.cli.v[4] / s.cli.v[1] * 1e6 : 0,
            b.cli.v[1] > 0 ? b.cli.v[4] / b.cli.v[1] * 1e6 : 0);
        if (s.cli.v[3] > 0 || b.cli.v[3] > 0 || s.srv.v[7] > 0 || b.srv.v[7] > 0)
            note("- handshake (%d in flight), pair %d: failures sealnet client %.0f server %.0f, "
                 "bare client %.0f server %.0f.\n",
                 conc, i + 1, s.cli.v[3], s.srv.v[7], b.cli.v[3], b.srv.v[7]);
        fprintf(stderr, "handshake x%d pair %d: sealnet %.0f/s, bare %.0f/s\n", conc, i + 1,
                rate(s.cli.v[1], s.cli.v[2]), rate(b.cli.v[1], b.cli.v[2]));
    }
}

/* Three loops back to back (sealnet, raw UDP, bare OpenSSL DTLS; the order rotates with the
 * pair), each echoing 64-byte payloads with one in flight. CPU is server + client. */
static void bench_pingpong(void)
{
    row *r =
        new_row("Ping-pong round trips/s, 64 B", "/s", "raw UDP", "≥ 0.8× raw", 0.8, false, false);
    row *c =
        new_row("CPU per round trip (server + client), 64 B", "us", "raw UDP", "", 0, true, false);
    row *rb =
        new_row("Ping-pong round trips/s, 64 B", "/s", "bare OpenSSL DTLS", "", 0, false, false);
    row *cb = new_row("CPU per round trip (server + client), 64 B", "us", "bare OpenSSL DTLS",
                      "≤ 1.1× bare", 1.1, true, false);
    row *br = new_row("Bare OpenSSL DTLS: round trips/s against raw UDP, 64 B", "/s", "raw UDP", "",
                      0, false, false);
    row *bc = new_row("Bare OpenSSL DTLS: CPU per round trip against raw UDP, 64 B", "us",
                      "raw UDP", "", 0, true, false);
    srv_arg sa = {M_ECHO, 0};
    cli_arg ca = {M_ECHO, 0, 1, 64, 0};
    for (int i = 0; i < g_repeat; i++) {
        run s = {0}, b = {0}, o = {0};
        for (int k = 0; k < 3; k++) {
            switch ((i + k) % 3) {
            case 0:
                s = run_pair(sn_server, &sa, sn_client, ca);
                break;
            case 1:
                b = run_pair(raw_server, &sa, raw_client, ca);
                break;
            default:
                o = run_pair(bare_server, &sa, bare_client, ca);
                break;
            }
        }
        if (!s.ok || !b.ok || !o.ok) continue;
        double sr = rate(s.cli.v[1], s.cli.v[2]), br_ = rate(b.cli.v[1], b.cli.v[2]),
               or_ = rate(o.cli.v[1], o.cli.v[2]);
        double sc = s.cli.v[1] > 0 ? (s.srv.v[3] + s.cli.v[5]) / s.cli.v[1] * 1e6 : 0;
        double bc_ = b.cli.v[1] > 0 ? (b.srv.v[3] + b.cli.v[5]) / b.cli.v[1] * 1e6 : 0;
        double oc = o.cli.v[1] > 0 ? (o.srv.v[3] + o.cli.v[5]) / o.cli.v[1] * 1e6 : 0;
        add(r, sr, br_);
        add(c, sc, bc_);
        add(rb, sr, or_);
        add(cb, sc, oc);
        add(br, or_, br_);
        add(bc, oc, bc_);
        if (s.cli.v[3] > 0 || b.cli.v[3] > 0 || o.cli.v[3] > 0)
            note("- ping-pong pair %d: %.0f sealnet, %.0f raw and %.0f bare OpenSSL round trips "
                 "timed out (200 ms) and were resent.\n",
                 i + 1, s.cli.v[3], b.cli.v[3], o.cli.v[3]);
        note("- ping-pong run %d: CPU per round trip sealnet %.1f µs, bare OpenSSL %.1f µs "
             "(%.2f×), raw UDP %.1f µs; round trips/s %.0f, %.0f, %.0f.\n",
             i + 1, sc, oc, oc > 0 ? sc / oc : 0, bc_, sr, or_, br_);
        fprintf(stderr,
                "pingpong run %d: sealnet %.0f/s %.1f us, bare %.0f/s %.1f us, raw %.0f/s "
                "%.1f us\n",
                i + 1, sr, sc, or_, oc, br_, bc_);
    }
}

static void bench_oneway(int payload)
{
    char name[96];
    srv_arg sa = {M_SINK, 0};
    cli_arg ca = {M_SINK, 0, 1, payload, 0};
    /* The raw side sends sealnet's payload size. For "the largest that fits", a peer's estimate
     * before the handshake (MTU minus the AES-GCM overhead) equals the exact figure once
     * connected with AES-128-GCM; a note says so if a run disagrees. */
    cli_arg cb = ca;
    if (payload < 0) {
        sn_dtls_peer *probe = sn_dtls_peer_new();
        cb.payload = sn_dtls_peer_get_max_packet_size(probe);
        sn_dtls_peer_free(probe);
    }
    snprintf(name, sizeof name, "One-way records/s received, %d B payload%s", cb.payload,
             payload < 0 ? " (max at MTU 1200)" : "");
    row *r = new_row(name, "/s", "raw UDP", "≥ 0.6× raw", 0.6, false, false);
    snprintf(name, sizeof name, "One-way sender rate, %d B", cb.payload);
    row *tx = new_row(name, "/s", "raw UDP", "", 0, false, false);
    snprintf(name, sizeof name, "One-way loss (sent but not received), %d B", cb.payload);
    row *loss = new_row(name, "%", "raw UDP", "", 0, true, false);
    snprintf(name, sizeof name, "Receiver CPU per record, %d B", cb.payload);
    row *cpu = new_row(name, "us", "raw UDP", "", 0, true, false);
    for (int i = 0; i < g_repeat; i++) {
        run s, b;
        run_both(i, &s, sn_server, sn_client, ca, &b, raw_server, raw_client, cb, &sa);
        if (!s.ok || !b.ok) continue;
        if ((int)s.cli.v[4] != cb.payload)
            note("- one-way pair %d: sealnet sent %d-byte payloads, raw UDP %d.\n", i + 1,
                 (int)s.cli.v[4], cb.payload);
        double srx = rate(s.srv.v[1], s.srv.v[2]), brx = rate(b.srv.v[1], b.srv.v[2]);
        add(r, srx, brx);
        add(tx, rate(s.cli.v[1], s.cli.v[2]), rate(b.cli.v[1], b.cli.v[2]));
        add(loss, s.cli.v[1] > 0 ? 100 * (1 - s.srv.v[1] / s.cli.v[1]) : 0,
            b.cli.v[1] > 0 ? 100 * (1 - b.srv.v[1] / b.cli.v[1]) : 0);
        add(cpu, s.srv.v[1] > 0 ? s.srv.v[3] / s.srv.v[1] * 1e6 : 0,
            b.srv.v[1] > 0 ? b.srv.v[3] / b.srv.v[1] * 1e6 : 0);
        if (s.srv.v[6] > 0)
            note("- one-way %d B pair %d: sealnet's server dropped %.0f datagrams itself "
                 "(queue or pending limits); the rest of the loss is the kernel's receive "
                 "buffer.\n",
                 cb.payload, i + 1, s.srv.v[6]);
        fprintf(stderr,
                "oneway %d B pair %d: sealnet rx %.0f/s (sent %.0f/s), raw rx %.0f/s "
                "(sent %.0f/s)\n",
                cb.payload, i + 1, srx, rate(s.cli.v[1], s.cli.v[2]), brx,
                rate(b.cli.v[1], b.cli.v[2]));
    }
}

static void bench_memory(void)
{
    char name[96];
    snprintf(name, sizeof name, "RSS per connected idle peer (%d peers)", g_peers);
    row *r = new_row(name, "KiB", "bare OpenSSL", "≤ 64 KiB", 64 * 1024, true, true);
    snprintf(name, sizeof name, "malloc'd bytes per connected idle peer (%d peers)", g_peers);
    row *h = new_row(name, "KiB", "bare OpenSSL", "", 0, true, false);
    srv_arg sa = {M_HOLD, g_peers};
    cli_arg ca = {M_HOLD, 0, 32, 0, g_peers};
    for (int i = 0; i < g_repeat; i++) {
        run s, b;
        run_both(i, &s, sn_server, sn_client, ca, &b, bare_server, bare_client, ca, &sa);
        if (!s.ok || !b.ok) {
            fprintf(stderr, "memory pair %d: sealnet %s, bare %s\n", i + 1, s.ok ? "ok" : "failed",
                    b.ok ? "ok" : "failed");
            continue;
        }
        add(r, s.mem.v[1], b.mem.v[1]);
        add(h, s.mem.v[2], b.mem.v[2]);
        fprintf(stderr,
                "memory pair %d: sealnet %.0f B/peer RSS %.0f B/peer heap (%.0f peers), "
                "bare %.0f / %.0f (%.0f peers)\n",
                i + 1, s.mem.v[1], s.mem.v[2], s.mem.v[3], b.mem.v[1], b.mem.v[2], b.mem.v[3]);
    }
}

static void bench_hvr(void)
{
    row *w = new_row("HelloVerifyRequests/s (wall)", "/s", "DTLSv1_listen", "≥ 100,000/s", 1e5,
                     false, true);
    row *c = new_row("HelloVerifyRequests per server CPU second", "/s", "DTLSv1_listen",
                     "≥ 100,000/s", 1e5, false, true);
    srv_arg sa = {M_HVR, 0};
    cli_arg ca = {M_HVR, 0, 1, 0, 0};
    for (int i = 0; i < g_repeat; i++) {
        run s, b;
        run_both(i, &s, sn_server, blaster, ca, &b, bare_server, blaster, ca, &sa);
        if (!s.ok || !b.ok) continue;
        add(w, rate(s.srv.v[1], s.srv.v[2]), rate(b.srv.v[1], b.srv.v[2]));
        add(c, rate(s.srv.v[1], s.srv.v[3]), rate(b.srv.v[1], b.srv.v[3]));
        note("- hvr pair %d: sealnet answered %.0f of %.0f ClientHellos it read (%.0f datagrams "
             "dropped at its pending limit or queues) while the blaster sent %.0f at %.0f/s; "
             "DTLSv1_listen answered %.0f of %.0f sent.\n",
             i + 1, s.srv.v[1], s.srv.v[4], s.srv.v[6], s.cli.v[1], rate(s.cli.v[1], s.cli.v[2]),
             b.srv.v[1], b.cli.v[1]);
        fprintf(stderr, "hvr pair %d: sealnet %.0f/s wall %.0f/cpu-s, listen %.0f/s %.0f/cpu-s\n",
                i + 1, rate(s.srv.v[1], s.srv.v[2]), rate(s.srv.v[1], s.srv.v[3]),
                rate(b.srv.v[1], b.srv.v[2]), rate(b.srv.v[1], b.srv.v[3]));
    }
}

/* ---- main --------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: dtls [--seconds N] [--only handshake,pingpong,oneway,memory,hvr] "
                    "[--repeat N] [--concurrency N] [--peers N] [--markdown]\n");
    return 2;
}

static bool wanted(const char *only, const char *name)
{
    if (!only) return true;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return true;
    return false;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            g_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            g_repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--concurrency") && i + 1 < argc)
            g_concurrency = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--peers") && i + 1 < argc)
            g_peers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--markdown"))
            ; /* the only output format */
        else
            return usage();
    }
    static const char *const names[] = {"handshake", "pingpong", "oneway", "memory", "hvr"};
    for (const char *p = only; p && *p;) {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (size_t k = 0; k < sizeof names / sizeof *names; k++)
            known |= strlen(names[k]) == n && !strncmp(p, names[k], n);
        if (!known) {
            fprintf(stderr, "dtls: unknown measurement '%.*s'\n", (int)n, p);
            return usage();
        }
        p += n + (p[n] == ',');
    }
    if (g_seconds <= 0 || g_seconds > 600 || g_repeat < 1 || g_repeat > MAX_REP ||
        g_concurrency < 1 || g_concurrency > 256 || g_peers < 1 || g_peers > 10000)
        return usage();
    signal(SIGPIPE, SIG_IGN);

    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert = key ? sn_crypto_generate_self_signed_certificate(
                                   key, "CN=" HOST ",O=sealnet,C=IT", NULL, NULL)
                             : NULL;
    g_key_pem = key ? sn_crypto_key_save_to_string(key, false) : NULL;
    g_cert_pem = cert ? sn_x509_cert_save_to_string(cert) : NULL;
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    if (!g_key_pem || !g_cert_pem) {
        fprintf(stderr, "dtls bench: %s\n", sn_last_error_message());
        return 1;
    }

    double t0 = now_s();
    if (wanted(only, "handshake")) {
        bench_handshake(1);
        if (g_concurrency != 1) bench_handshake(g_concurrency);
    }
    if (wanted(only, "pingpong")) bench_pingpong();
    if (wanted(only, "oneway")) {
        bench_oneway(64);
        bench_oneway(-1);
    }
    if (wanted(only, "memory")) bench_memory();
    if (wanted(only, "hvr")) bench_hvr();

    printf("sealnet %s, %d pair(s) per line, %.3g s per measurement, %ld CPUs, %.0f s in all. "
           "Medians; the ratio is the median of the per-pair ratios sealnet/baseline.\n\n",
           sn_version(), g_repeat, g_seconds, sysconf(_SC_NPROCESSORS_ONLN), now_s() - t0);
    print_table();
    sn_free(g_key_pem);
    sn_free(g_cert_pem);
    return 0;
}
