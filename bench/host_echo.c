/* Benchmark: an sn_host echo server against a raw UDP echo server, same clients, same run.
 *
 * Every server runs in a forked child process (so its CPU time and memory are its own) and this
 * process drives the clients:
 *   host: the child owns one server sn_host and echoes every RECEIVE to its sender; the
 *         clients are one client-only sn_host holding every connection (DTLS 1.2,
 *         ECDHE-ECDSA-AES128-GCM; keepalives at the default 1 s stay on, as in real use).
 *   raw:  the child echoes with recvmmsg (64 per call) and one sendto per datagram, the same
 *         system calls the host makes (or, "rawmm", one sendmmsg per received batch); the
 *         clients are plain connected UDP sockets.
 * Connecting is paced: at most --connect-window (default 256) handshakes are in flight, and a
 * client whose handshake fails is connected again (counted), so 10,000 clients connect from one
 * process; the table gives the seconds it took.
 *
 * Closed loop (default): for each client count (--clients, default 10,1000; 10000 works but
 * takes minutes to connect) --flight packets (default 256) are in flight in all, each in a
 * numbered slot carried in the payload; an echo frees its slot and the next client in turn
 * (round-robin over all of them) sends the next packet, so the offered load is the same at 10
 * and at 10,000 clients; a slot with nothing back for 500 ms is sent again. After --warmup
 * (0.5 s), echoes are counted for --seconds; the server's window is closed before the clients
 * are torn down. Each count runs host and raw --repeat times (default 3; the first of a pair
 * alternates) and the table gives min / median / max of each figure and of the ratios.
 *
 * Open loop (--rate R): the client process offers R 64-byte packets/s in total, paced by a 1 ms
 * timerfd (R/1000 per tick, spread round-robin over the sending clients), so the server sees
 * the same batching whatever the number of peers. --open lists the rows, each
 *   host:P/A     host server, P connected host clients of which the first A send
 *   host1:P/A    the same with the host's recvmmsg depth at 1 (sn_udp_server_set_poll_limits)
 *   hostsendto:P/A  the same with send batching off: one sendto per reply, as before sendmmsg
 *   raw:A        raw server (recvmmsg 64, sendto per datagram), A client sockets
 *   raw1:A       raw server with recvmmsg depth 1
 *   rawmm:A      raw server answering each received batch with one sendmmsg
 * (default host:10/10,host:10000/10,host:2000/2000). Server CPU per packet of every row is
 * compared with the first row of the same repetition.
 *
 *   build-rel/bench/host_echo [--seconds S] [--repeat N] [--clients a,b,c] [--idle N]
 *                             [--connect-window N] [--rate R [--open spec,spec]]
 * --idle N adds N host clients that connect and then stay silent (keepalives only).
 * HOST_ECHO_WRAP="valgrind --tool=callgrind ..." runs every host server child under that
 * command (re-executing this program), with instrumentation switched on only for the measured
 * window when the wrapper is callgrind with --instr-atstart=no.
 *
 * Server CPU is CLOCK_PROCESS_CPUTIME_ID (user + system) of the child over the window; client
 * CPU is this process's. Both compete for the same cores with whatever else runs, so pkt/s is
 * a figure for this machine at this load; CPU per packet, and echoes per CPU-second of server +
 * client together ("CPU-normalised"), are the steadier comparisons. /proc/loadavg is printed
 * before and after. HOST_ECHO_DEBUG=1 makes the host child print its packet and service counts.
 */
#include <sealnet/sealnet.h>
#include <sealnet/host.h>

#include "host_internal.h" /* white-box: the host's UDP server, for its recvmmsg depth */

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#define PKT         64
#define LOSS_MS     500
#define RAW_BATCH   64
#define MAX_CLIENTS 20000
#define MAX_REP     15
#define MAX_ROWS    16

/* --keepalive / --idle-timeout for both the server and the client hosts (-1: the defaults). */
static int g_keepalive_ms = -1, g_idle_timeout_ms = -1;
/* --warmup: seconds between the last connect and the measured window (default 0.5). */
static double g_warmup_s = 0.5;

typedef enum kind { K_HOST, K_RAW } kind;

/* What a server child runs. */
typedef struct server_spec {
    kind k;
    int clients; /* host: peers to admit */
    int batch;   /* recvmmsg depth (0: default) */
    bool mmsg;   /* raw: sendmmsg replies; host: replies NOT batched (one sendto each) */
} server_spec;

typedef struct result {
    double cpu_s;    /* server CPU in the window */
    double user_s;   /* of which in user space */
    uint64_t echoed; /* by the server in the window */
    long rss0_kib, rss1_kib;
    size_t heap0, heap1; /* malloc'd bytes in use (mallinfo2) */
    uint64_t dropped;    /* host: peers the server disconnected in the window */
} result;

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double user_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void loadavg(char *out, size_t cap)
{
    FILE *f = fopen("/proc/loadavg", "r");
    out[0] = 0;
    if (f) {
        if (!fgets(out, (int)cap, f)) out[0] = 0;
        fclose(f);
    }
    out[strcspn(out, "\n")] = 0;
}

static void die(const char *what)
{
    fprintf(stderr, "host_echo: %s: %s\n", what, sn_last_error_message());
    exit(1);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- server children --------------------------------------------------------------------- */

/* Control: the parent writes 'M' (start of the window), 'E' (end: reply with a result), 'Q'. */
typedef struct server_ctx {
    int ctl, res;
    uint64_t echoed;
    double cpu0, user0;
    uint64_t echoed0;
    uint64_t dropped, dropped0;
    long rss0, rss1;
    size_t heap0, heap1;
    bool quit;
} server_ctx;

static void on_control(server_ctx *c)
{
    char cmd;
    if (read(c->ctl, &cmd, 1) != 1) {
        c->quit = true;
        return;
    }
    if (cmd == 'M') {
        c->rss1 = rss_kib();
        c->heap1 = mallinfo2().uordblks;
        CALLGRIND_START_INSTRUMENTATION; /* no-op unless under callgrind */
        CALLGRIND_ZERO_STATS;
        c->cpu0 = cpu_s();
        c->user0 = user_s();
        c->echoed0 = c->echoed;
        c->dropped0 = c->dropped;
    } else if (cmd == 'E') {
        result r = {cpu_s() - c->cpu0,
                    user_s() - c->user0,
                    c->echoed - c->echoed0,
                    c->rss0,
                    c->rss1,
                    c->heap0,
                    c->heap1,
                    c->dropped - c->dropped0};
        CALLGRIND_DUMP_STATS;
        CALLGRIND_STOP_INSTRUMENTATION;
        /* For instructions per packet: the dump above divided by this count. */
        if (getenv("HOST_ECHO_DEBUG"))
            fprintf(stderr, "host_echo: window echoed %llu pid %d\n", (unsigned long long)r.echoed,
                    (int)getpid());
        if (write(c->res, &r, sizeof r) != (ssize_t)sizeof r) c->quit = true;
    } else {
        c->quit = true;
    }
}

static void apply_timers(sn_host_config *cfg);

static void host_server(server_ctx *c, const server_spec *sp)
{
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    sn_tls_options *opts = cert ? sn_tls_options_server(key, cert) : NULL;
    if (!opts) die("server credentials");
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    cfg.server_options = opts;
    cfg.bind_address = "127.0.0.1";
    cfg.max_half_open = 1024; /* the clients pace themselves (--connect-window) */
    cfg.max_peers = sp->clients + 16;
    apply_timers(&cfg);
    sn_host *h = sn_host_create(&cfg);
    sn_tls_options_free(opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    if (!h) die("host");
    if (sp->batch > 0 && sn_udp_server_set_poll_limits(h->udp, sp->batch, 1024) != SN_OK)
        die("poll limits");
    if (sp->mmsg) sn_udp_server_set_send_batching(h->udp, false);
    c->rss0 = rss_kib();
    c->heap0 = mallinfo2().uordblks;
    int port = sn_host_get_port(h);
    if (write(c->res, &port, sizeof port) != (ssize_t)sizeof port) exit(1);
    /* The host's epoll descriptor in our own poll loop, next to the control pipe. */
    struct pollfd pf[2] = {{.fd = sn_host_get_fd(h), .events = POLLIN},
                           {.fd = c->ctl, .events = POLLIN}};
    bool busy = false;
    while (!c->quit) {
        int t = sn_host_next_timeout_ms(h);
        if (t < 0 || t > 100) t = 100;
        if (busy) t = 0;
        poll(pf, 2, t);
        if (pf[1].revents) on_control(c);
        sn_host_event ev;
        int r = 0, k = 0;
        /* Bounded, so an overloaded server still sees 'M' and 'E' on time. */
        while (k++ < 1024 && (r = sn_host_service(h, &ev, 0)) > 0) {
            if (ev.type == SN_HOST_EVENT_RECEIVE &&
                sn_host_peer_send(ev.peer, ev.data, ev.len) == SN_OK)
                c->echoed++;
            if (ev.type == SN_HOST_EVENT_DISCONNECT && c->dropped++ < 3)
                fprintf(stderr, "host_echo: server dropped peer %u: %s\n", ev.peer_id, ev.message);
        }
        busy = k > 1024; /* more work waiting: poll the control pipe without sleeping */
        if (r < 0) die("service");
    }
    if (getenv("HOST_ECHO_DEBUG")) {
        sn_host_stats st;
        sn_host_get_stats(h, &st);
        fprintf(stderr, "server: %llu packets, %llu service calls, %llu waits\n",
                (unsigned long long)st.packets_received, (unsigned long long)st.service_calls,
                (unsigned long long)st.waits);
    }
    sn_host_free(h);
}

static void raw_server(server_ctx *c, const server_spec *sp)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sz = 4 << 20; /* as the host's default recv_buffer_size */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("raw server");
        exit(1);
    }
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    c->rss0 = rss_kib();
    if (write(c->res, &port, sizeof port) != (ssize_t)sizeof port) exit(1);
    int batch = sp->batch > 0 && sp->batch <= RAW_BATCH ? sp->batch : RAW_BATCH;
    static uint8_t bufs[RAW_BATCH][2048];
    struct sockaddr_in from[RAW_BATCH];
    struct iovec iov[RAW_BATCH];
    struct mmsghdr m[RAW_BATCH], out[RAW_BATCH];
    struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = c->ctl, .events = POLLIN}};
    while (!c->quit) {
        poll(pf, 2, 100);
        if (pf[1].revents) on_control(c);
        for (int round = 0; round < 1024 / batch; round++) {
            for (int i = 0; i < batch; i++) {
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = sizeof bufs[i];
                memset(&m[i].msg_hdr, 0, sizeof m[i].msg_hdr);
                m[i].msg_hdr.msg_iov = &iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
                m[i].msg_hdr.msg_name = &from[i];
                m[i].msg_hdr.msg_namelen = sizeof from[i];
            }
            int n = recvmmsg(fd, m, (unsigned)batch, MSG_DONTWAIT, NULL);
            if (n <= 0) break;
            if (sp->mmsg) {
                for (int i = 0; i < n; i++) {
                    iov[i].iov_len = m[i].msg_len;
                    out[i].msg_hdr = m[i].msg_hdr;
                    out[i].msg_len = 0;
                }
                int k = 0;
                while (k < n) {
                    int s = sendmmsg(fd, out + k, (unsigned)(n - k), MSG_DONTWAIT);
                    if (s <= 0) break;
                    k += s;
                }
                c->echoed += (uint64_t)k;
            } else {
                for (int i = 0; i < n; i++)
                    if (sendto(fd, bufs[i], m[i].msg_len, 0, (struct sockaddr *)&from[i],
                               m[i].msg_hdr.msg_namelen) >= 0)
                        c->echoed++;
            }
            if (n < batch) break;
        }
    }
    close(fd);
}

typedef struct child {
    pid_t pid;
    int ctl, res, port;
    bool ended; /* the window is closed and r holds the server's result */
    result r;
} child;

static const char *g_self; /* argv[0], for HOST_ECHO_WRAP */

static void run_server(int ctl, int res, const server_spec *sp)
{
    server_ctx c = {.ctl = ctl, .res = res};
    if (sp->k == K_HOST)
        host_server(&c, sp);
    else
        raw_server(&c, sp);
}

static child spawn_server(server_spec sp)
{
    int ctl[2], res[2];
    if (pipe(ctl) || pipe(res)) exit(1);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(ctl[1]);
        close(res[0]);
        const char *wrap = getenv("HOST_ECHO_WRAP");
        if (wrap && *wrap && sp.k == K_HOST) {
            char cmd[4096];
            snprintf(cmd, sizeof cmd, "exec %s %s --child %d %d %d %d %d %d %d %d", wrap, g_self,
                     (int)sp.k, sp.clients, sp.batch, (int)sp.mmsg, ctl[0], res[1], g_keepalive_ms,
                     g_idle_timeout_ms);
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        run_server(ctl[0], res[1], &sp);
        _exit(0);
    }
    close(ctl[0]);
    close(res[1]);
    child ch = {.pid = pid, .ctl = ctl[1], .res = res[0]};
    if (read(ch.res, &ch.port, sizeof ch.port) != (ssize_t)sizeof ch.port) {
        fprintf(stderr, "host_echo: server child failed\n");
        exit(1);
    }
    return ch;
}

static void command(child *ch, char cmd)
{
    if (write(ch->ctl, &cmd, 1) != 1) exit(1);
}

/* Closes the measured window. Called as soon as the clients stop sending, before they are torn
 * down, so the server's handling of their close_notify alerts is not counted. */
static void end_window(child *ch)
{
    if (ch->ended) return;
    command(ch, 'E');
    if (read(ch->res, &ch->r, sizeof ch->r) != (ssize_t)sizeof ch->r)
        memset(&ch->r, 0, sizeof ch->r);
    ch->ended = true;
}

static result finish(child *ch)
{
    end_window(ch);
    result r = ch->r;
    command(ch, 'Q');
    int status = 0;
    waitpid(ch->pid, &status, 0);
    if (WIFSIGNALED(status))
        fprintf(stderr, "host_echo: server child killed by signal %d\n", WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "host_echo: server child exited with %d\n", WEXITSTATUS(status));
    close(ch->ctl);
    close(ch->res);
    return r;
}

/* ---- clients ------------------------------------------------------------------------------ */

typedef struct client {
    int in_flight;
    double last_rx;
    sn_host_peer *peer; /* host clients */
    int fd;             /* raw clients */
    bool connected;
} client;

static uint8_t payload[PKT];
static int extra_idle;             /* --idle */
static int g_connect_window = 256; /* handshakes in flight while connecting */

static void apply_timers(sn_host_config *cfg)
{
    if (g_keepalive_ms >= 0) cfg->keepalive_interval_ms = g_keepalive_ms;
    if (g_idle_timeout_ms >= 0) cfg->idle_timeout_ms = g_idle_timeout_ms;
}

/* What one client run measured. */
typedef struct crun {
    uint64_t echoes;  /* received by the clients in the window */
    uint64_t sent;    /* open loop: offered in the window */
    double cpu_s;     /* this process's CPU in the window */
    double connect_s; /* host: connecting every client */
    int retries;      /* host: handshakes that failed and were started again */
} crun;

/* Connects `total` host clients, at most g_connect_window handshakes at a time. */
static sn_host *connect_host_clients(child *ch, client *cl, int total, sn_tls_options *opts,
                                     crun *out)
{
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    cfg.max_peers = total + 16;
    apply_timers(&cfg);
    sn_host *h = sn_host_create(&cfg);
    if (!h) die("client host");
    int started = 0, connected = 0;
    int *todo = malloc(sizeof(int) * (size_t)total), ntodo = 0; /* failed, to start again */
    double t0 = wall_s();
    sn_host_event ev;
    while (connected < total && wall_s() - t0 < 600) {
        while ((started < total || ntodo > 0) && started - connected - ntodo < g_connect_window) {
            int i = ntodo > 0 ? todo[--ntodo] : started++;
            cl[i].peer = sn_host_connect(h, "127.0.0.1", ch->port, "localhost", opts);
            if (!cl[i].peer) die("connect");
            sn_host_peer_set_user_data(cl[i].peer, &cl[i]);
        }
        if (sn_host_service(h, &ev, 50) <= 0) continue;
        client *c = ev.user_data;
        if (ev.type == SN_HOST_EVENT_CONNECT && c && !c->connected) {
            c->connected = true;
            connected++;
        } else if (ev.type == SN_HOST_EVENT_DISCONNECT && c) {
            if (c->connected) {
                fprintf(stderr, "host_echo: client %u dropped while connecting: %s\n", ev.peer_id,
                        ev.message);
                exit(1);
            }
            if (out->retries++ < 3)
                fprintf(stderr, "host_echo: handshake of client %u failed (%s): again\n",
                        ev.peer_id, ev.message);
            c->peer = NULL;
            todo[ntodo++] = (int)(c - cl);
        }
    }
    free(todo);
    if (connected < total) {
        fprintf(stderr, "host_echo: only %d of %d clients connected\n", connected, total);
        exit(1);
    }
    out->connect_s = wall_s() - t0;
    return h;
}

static int raw_sockets(child *ch, client *cl, int n)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ch->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        cl[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (cl[i].fd < 0 || connect(cl[i].fd, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("raw client");
            exit(1);
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &cl[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &e);
    }
    return ep;
}

/* Closed loop: g_flight packets in flight in all, each in a slot whose number and send count
 * travel in the payload. An echo frees its slot and the next client in turn (round-robin over
 * all n) sends the next packet in it, so every client sends whatever n is, the offered load
 * stays at g_flight packets in flight, and a slot without its echo for LOSS_MS is sent again
 * (a late echo of the old send is then ignored). */
typedef struct slot {
    uint32_t seq;
    double sent_at;
} slot;

static int g_flight = 256;

static crun run_closed_clients(child *ch, kind k, int n, double seconds)
{
    crun out = {0};
    sn_tls_options *opts = NULL;
    sn_host *h = NULL;
    int ep = -1, total = k == K_HOST ? n + extra_idle : n;
    client *cl = calloc((size_t)total, sizeof *cl);
    if (k == K_HOST) {
        opts = sn_tls_options_client_unsafe(NULL);
        if (!opts) die("client options");
        h = connect_host_clients(ch, cl, total, opts, &out);
    } else {
        ep = raw_sockets(ch, cl, n);
    }
    slot *sl = calloc((size_t)g_flight, sizeof *sl);
    int next = 0;
    uint64_t count = 0, resent = 0;
    bool measuring = false;
    double start = wall_s(), mark = 0, last_check = start, c0 = 0;
    uint8_t msg[PKT], buf[2048];
    memcpy(msg, payload, PKT);
#define SEND_SLOT(i, now)                                                                          \
    do {                                                                                           \
        uint32_t idx_ = (uint32_t)(i), seq_ = ++sl[i].seq;                                         \
        sl[i].sent_at = (now);                                                                     \
        memcpy(msg, &idx_, 4);                                                                     \
        memcpy(msg + 4, &seq_, 4);                                                                 \
        client *c_ = &cl[next];                                                                    \
        next = (next + 1) % n;                                                                     \
        if (h)                                                                                     \
            sn_host_peer_send(c_->peer, msg, PKT);                                                 \
        else                                                                                       \
            (void)!send(c_->fd, msg, PKT, 0);                                                      \
    } while (0)
    for (int i = 0; i < g_flight; i++)
        SEND_SLOT(i, start);
    struct epoll_event evs[256];
    for (;;) {
        double now = wall_s();
        if (!measuring && now - start >= g_warmup_s) {
            command(ch, 'M');
            measuring = true;
            mark = now;
            count = 0;
            c0 = cpu_s();
        }
        if (measuring && now - mark >= seconds) break;
        if (now - last_check >= 0.1) {
            last_check = now;
            for (int i = 0; i < g_flight; i++)
                if ((now - sl[i].sent_at) * 1000 >= LOSS_MS) {
                    SEND_SLOT(i, now);
                    resent++;
                }
        }
        if (h) {
            sn_host_event ev;
            int r = sn_host_service(h, &ev, 10);
            if (r < 0) die("client service");
            if (r == 0) continue;
            if (ev.type == SN_HOST_EVENT_DISCONNECT) {
                fprintf(stderr, "host_echo: client %u dropped: %s\n", ev.peer_id, ev.message);
                exit(1);
            }
            if (ev.type != SN_HOST_EVENT_RECEIVE || ev.len < 8) continue;
            uint32_t idx, seq;
            memcpy(&idx, ev.data, 4);
            memcpy(&seq, (const uint8_t *)ev.data + 4, 4);
            if (idx < (uint32_t)g_flight && sl[idx].seq == seq) {
                count++;
                SEND_SLOT(idx, now);
            }
        } else {
            int nk = epoll_wait(ep, evs, 256, 10);
            for (int e = 0; e < nk; e++) {
                client *c = evs[e].data.ptr;
                ssize_t r;
                for (int j = 0; j < 64 && (r = recv(c->fd, buf, sizeof buf, 0)) >= 8; j++) {
                    uint32_t idx, seq;
                    memcpy(&idx, buf, 4);
                    memcpy(&seq, buf + 4, 4);
                    if (idx < (uint32_t)g_flight && sl[idx].seq == seq) {
                        count++;
                        SEND_SLOT(idx, now);
                    }
                }
            }
        }
    }
#undef SEND_SLOT
    end_window(ch);
    out.cpu_s = cpu_s() - c0;
    out.echoes = count;
    out.sent = resent; /* closed loop: slots sent again after LOSS_MS */
    if (h) sn_host_free(h);
    sn_tls_options_free(opts);
    if (ep >= 0) {
        for (int i = 0; i < n; i++)
            close(cl[i].fd);
        close(ep);
    }
    free(sl);
    free(cl);
    return out;
}

/* ---- open loop ---------------------------------------------------------------------------- */

/* One open-loop row: a server and its clients. */
typedef struct orow {
    char label[32];
    server_spec sp;
    int peers, active;
} orow;

/* Offers `rate` packets/s for the window, R/1000 per 1 ms tick, round-robin over the active
 * clients; echoes are read and counted. */
static crun run_open(const orow *o, double rate, double seconds, result *srv)
{
    crun out = {0};
    child ch = spawn_server(o->sp);
    client *cl = calloc((size_t)o->peers, sizeof *cl);
    sn_tls_options *opts = NULL;
    sn_host *h = NULL;
    int ep = -1;
    if (o->sp.k == K_HOST) {
        opts = sn_tls_options_client_unsafe(NULL);
        if (!opts) die("client options");
        h = connect_host_clients(&ch, cl, o->peers, opts, &out);
    } else {
        ep = raw_sockets(&ch, cl, o->active);
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{0, 1000000}, {0, 1000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct pollfd pf[2] = {{.fd = h ? sn_host_get_fd(h) : ep, .events = POLLIN},
                           {.fd = tfd, .events = POLLIN}};
    double start = wall_s(), mark = 0, c0 = 0, budget = 0, per_tick = rate / 1000.0;
    bool measuring = false;
    uint64_t sent = 0, echoes = 0;
    int next = 0;
    uint8_t buf[2048];
    struct epoll_event evs[256];
    for (;;) {
        double now = wall_s();
        if (!measuring && now - start >= g_warmup_s) {
            command(&ch, 'M');
            measuring = true;
            mark = now;
            sent = echoes = 0;
            c0 = cpu_s();
        }
        if (measuring && now - mark >= seconds) break;
        int t = h ? sn_host_next_timeout_ms(h) : 10;
        if (t < 0 || t > 10) t = 10;
        poll(pf, 2, t);
        uint64_t ticks = 0;
        if (read(tfd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks && ticks > 0) {
            if (ticks > 100) ticks = 100; /* after a long stall do not flood */
            budget += per_tick * (double)ticks;
            while (budget >= 1) {
                client *c = &cl[next];
                next = (next + 1) % o->active;
                budget -= 1;
                bool ok = h ? sn_host_peer_send(c->peer, payload, PKT) == SN_OK
                            : send(c->fd, payload, PKT, 0) == PKT;
                sent += ok;
            }
        }
        if (h) {
            sn_host_event ev;
            int r;
            while ((r = sn_host_service(h, &ev, 0)) > 0) {
                if (ev.type == SN_HOST_EVENT_RECEIVE) echoes++;
                if (ev.type == SN_HOST_EVENT_DISCONNECT) {
                    fprintf(stderr, "host_echo: client %u dropped: %s\n", ev.peer_id, ev.message);
                    exit(1);
                }
            }
            if (r < 0) die("client service");
        } else {
            int k = epoll_wait(ep, evs, 256, 0);
            for (int i = 0; i < k; i++) {
                client *c = evs[i].data.ptr;
                for (int j = 0; j < 64 && recv(c->fd, buf, sizeof buf, 0) > 0; j++)
                    echoes++;
            }
        }
    }
    out.cpu_s = cpu_s() - c0;
    end_window(&ch);
    out.sent = sent;
    out.echoes = echoes;
    close(tfd);
    if (h) sn_host_free(h);
    sn_tls_options_free(opts);
    if (ep >= 0) {
        for (int i = 0; i < o->active; i++)
            close(cl[i].fd);
        close(ep);
    }
    free(cl);
    *srv = finish(&ch);
    return out;
}

/* ---- statistics and tables ---------------------------------------------------------------- */

typedef struct series {
    double v[MAX_REP];
    int n;
} series;

static void put(series *s, double v)
{
    if (s->n < MAX_REP) s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* "min / median / max" with `prec` decimals. */
static const char *mmm(const series *s, int prec, char *out, size_t cap)
{
    if (s->n == 0) {
        snprintf(out, cap, "–");
        return out;
    }
    double t[MAX_REP];
    memcpy(t, s->v, (size_t)s->n * sizeof *t);
    qsort(t, (size_t)s->n, sizeof *t, cmp_double);
    double med = s->n % 2 ? t[s->n / 2] : (t[s->n / 2 - 1] + t[s->n / 2]) / 2;
    snprintf(out, cap, "%.*f / %.*f / %.*f", prec, t[0], prec, med, prec, t[s->n - 1]);
    return out;
}

static double smin(const series *s)
{
    double m = s->n ? s->v[0] : 0;
    for (int i = 1; i < s->n; i++)
        if (s->v[i] < m) m = s->v[i];
    return m;
}

static double smax(const series *s)
{
    double m = s->n ? s->v[0] : 0;
    for (int i = 1; i < s->n; i++)
        if (s->v[i] > m) m = s->v[i];
    return m;
}

static void print_load(const char *when)
{
    char la[128];
    loadavg(la, sizeof la);
    printf("load (/proc/loadavg) %s: %s\n", when, la);
}

static void closed_loop(const int *counts, int ncounts, double seconds, int repeat)
{
    printf("Closed loop, %d packets in flight in all (round-robin over the clients), %g s per "
           "run, %d run(s) per count (host and raw back to back, first of a pair alternating), "
           "%d idle host peers besides, connect window %d. Cells: min / median / max over the "
           "runs.\n\n",
           g_flight, seconds, repeat, extra_idle, g_connect_window);
    printf("| clients | host echo pkt/s | raw UDP echo pkt/s | host/raw pkt/s | host/raw "
           "CPU-normalised | "
           "host server µs/pkt (user) | raw server µs/pkt | host RSS KiB/peer | connect s | "
           ">= 0.6x every run |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int c = 0; c < ncounts; c++) {
        int n = counts[c];
        if (n < 1 || n + extra_idle > MAX_CLIENTS) continue;
        series hp = {0}, rp = {0}, ratio = {0}, norm = {0}, hc = {0}, hu = {0}, rc = {0}, rss = {0},
               con = {0};
        int retries = 0;
        for (int rep = 0; rep < repeat; rep++) {
            crun hcr = {0}, rcr = {0};
            result hr = {0}, rr = {0};
            for (int side = 0; side < 2; side++) {
                bool host = (side == 0) == (rep % 2 == 0);
                if (host) {
                    child hs = spawn_server((server_spec){K_HOST, n + extra_idle, 0, false});
                    hcr = run_closed_clients(&hs, K_HOST, n, seconds);
                    hr = finish(&hs);
                } else {
                    child rs = spawn_server((server_spec){K_RAW, n, 0, false});
                    rcr = run_closed_clients(&rs, K_RAW, n, seconds);
                    rr = finish(&rs);
                }
            }
            double hpps = (double)hcr.echoes / seconds, rpps = (double)rcr.echoes / seconds;
            double hn = (double)hcr.echoes / (hr.cpu_s + hcr.cpu_s);
            double rn = (double)rcr.echoes / (rr.cpu_s + rcr.cpu_s);
            put(&hp, hpps);
            put(&rp, rpps);
            put(&ratio, rpps > 0 ? hpps / rpps : 0);
            put(&norm, rn > 0 ? hn / rn : 0);
            put(&hc, hr.echoed ? hr.cpu_s * 1e6 / (double)hr.echoed : 0);
            put(&hu, hr.echoed ? hr.user_s * 1e6 / (double)hr.echoed : 0);
            put(&rc, rr.echoed ? rr.cpu_s * 1e6 / (double)rr.echoed : 0);
            put(&rss, (double)(hr.rss1_kib - hr.rss0_kib) / (n + extra_idle));
            put(&con, hcr.connect_s);
            retries += hcr.retries;
            fprintf(stderr,
                    "closed %d clients run %d: host %.0f/s raw %.0f/s (%.2f), CPU-normalised "
                    "%.2f, connect %.1f s, resent after loss host %llu raw %llu\n",
                    n, rep + 1, hpps, rpps, rpps > 0 ? hpps / rpps : 0, rn > 0 ? hn / rn : 0,
                    hcr.connect_s, (unsigned long long)hcr.sent, (unsigned long long)rcr.sent);
        }
        char a[64], b[64], d[64], e[64], f[64], g[64], i[64], j[64], k[64];
        printf("| %d | %s | %s | %s | %s | %s (%s) | %s | %s | %s%s | %s |\n", n,
               mmm(&hp, 0, a, sizeof a), mmm(&rp, 0, b, sizeof b), mmm(&ratio, 2, d, sizeof d),
               mmm(&norm, 2, e, sizeof e), mmm(&hc, 2, f, sizeof f), mmm(&hu, 2, g, sizeof g),
               mmm(&rc, 2, i, sizeof i), mmm(&rss, 1, j, sizeof j), mmm(&con, 1, k, sizeof k),
               retries ? " (handshakes retried)" : "",
               smin(&ratio) >= 0.6 ? "yes"
                                   : (smin(&norm) >= 0.6 ? "pkt/s no, CPU-norm yes" : "**no**"));
        fflush(stdout);
    }
}

/* "host:P/A", "host1:P/A", "hostsendto:P/A", "raw:A", "raw1:A", "rawmm:A". */
static bool parse_orow(const char *s, orow *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->label, sizeof o->label, "%s", s);
    int p = 0, a = 0;
    if (sscanf(s, "host1:%d/%d", &p, &a) == 2) {
        o->sp = (server_spec){K_HOST, p, 1, false};
    } else if (sscanf(s, "hostsendto:%d/%d", &p, &a) == 2) {
        o->sp = (server_spec){K_HOST, p, 0, true};
    } else if (sscanf(s, "host:%d/%d", &p, &a) == 2) {
        o->sp = (server_spec){K_HOST, p, 0, false};
    } else if (sscanf(s, "rawmm:%d", &a) == 1) {
        o->sp = (server_spec){K_RAW, a, 0, true}, p = a;
    } else if (sscanf(s, "raw1:%d", &a) == 1) {
        o->sp = (server_spec){K_RAW, a, 1, false}, p = a;
    } else if (sscanf(s, "raw:%d", &a) == 1) {
        o->sp = (server_spec){K_RAW, a, 0, false}, p = a;
    } else {
        return false;
    }
    o->peers = p, o->active = a;
    return p >= 1 && a >= 1 && a <= p && p <= MAX_CLIENTS;
}

static void open_loop(const orow *rows, int nrows, double rate, double seconds, int repeat)
{
    printf("Open loop at %.0f packets/s offered in total (64 B, 1 ms timerfd ticks, round-robin "
           "over the sending clients), %g s per run, %d run(s). Ratio: server CPU per packet "
           "against row 1 (%s) of the same run. Cells: min / median / max.\n\n",
           rate, seconds, repeat, rows[0].label);
    series cpu[MAX_ROWS] = {0}, user[MAX_ROWS] = {0}, ratio[MAX_ROWS] = {0}, got[MAX_ROWS] = {0},
           loss[MAX_ROWS] = {0}, con[MAX_ROWS] = {0}, off[MAX_ROWS] = {0};
    for (int rep = 0; rep < repeat; rep++) {
        double base = 0;
        for (int i = 0; i < nrows; i++) {
            result r;
            crun c = run_open(&rows[i], rate, seconds, &r);
            double us = r.echoed ? r.cpu_s * 1e6 / (double)r.echoed : 0;
            if (i == 0) base = us;
            put(&cpu[i], us);
            put(&user[i], r.echoed ? r.user_s * 1e6 / (double)r.echoed : 0);
            put(&ratio[i], base > 0 ? us / base : 0);
            put(&got[i], (double)r.echoed / seconds);
            put(&loss[i], c.sent ? 100.0 * (1.0 - (double)c.echoes / (double)c.sent) : 0);
            put(&con[i], c.connect_s);
            put(&off[i], (double)c.sent / seconds);
            if (r.dropped)
                fprintf(stderr,
                        "open %s run %d: the server disconnected %llu peers in the window\n",
                        rows[i].label, rep + 1, (unsigned long long)r.dropped);
            fprintf(stderr,
                    "open %s run %d: server %.2f us/pkt (%.2fx), %.0f echoed/s, sent %.0f/s\n",
                    rows[i].label, rep + 1, us, base > 0 ? us / base : 0,
                    (double)r.echoed / seconds, (double)c.sent / seconds);
        }
    }
    printf("| row | peers | sending | offered pkt/s (achieved) | server echoed pkt/s | server CPU "
           "µs/pkt | of which user µs/pkt "
           "| / row 1 | echo loss %% | connect s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < nrows; i++) {
        char a[64], b[64], d[64], e[64], f[64], g[64], h[64];
        printf("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", rows[i].label,
               rows[i].peers, rows[i].active, mmm(&off[i], 0, h, sizeof h),
               mmm(&got[i], 0, a, sizeof a), mmm(&cpu[i], 2, b, sizeof b),
               mmm(&user[i], 2, d, sizeof d), mmm(&ratio[i], 2, e, sizeof e),
               mmm(&loss[i], 2, f, sizeof f), mmm(&con[i], 1, g, sizeof g));
    }
    printf("\nworst run per row (/ row 1):");
    for (int i = 1; i < nrows; i++)
        printf(" %s %.2f (best %.2f);", rows[i].label, smax(&ratio[i]), smin(&ratio[i]));
    printf("\n");
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--seconds S] [--repeat N] [--clients a,b,c] [--idle N] "
            "[--connect-window N] [--warmup S] [--flight F] [--keepalive MS] [--idle-timeout MS] "
            "[--rate R [--open "
            "host:P/A,host1:P/A,hostsendto:P/A,raw:A,raw1:A,rawmm:A]]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    g_self = argv[0];
    if (argc == 10 && !strcmp(argv[1], "--child")) {
        /* HOST_ECHO_WRAP re-executes a server child: kind clients batch mmsg ctl res
         * keepalive idle-timeout. */
        g_keepalive_ms = atoi(argv[8]);
        g_idle_timeout_ms = atoi(argv[9]);
        server_spec sp = {(kind)atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]) != 0};
        raise_fd_limit();
        signal(SIGPIPE, SIG_IGN);
        run_server(atoi(argv[6]), atoi(argv[7]), &sp);
        return 0;
    }
    double seconds = 3, rate = 0;
    int repeat = 3;
    int counts[16] = {10, 1000}, ncounts = 2;
    orow rows[MAX_ROWS];
    int nrows = 0;
    const char *open_spec = "host:10/10,host:10000/10,host:2000/2000";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
            rate = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--open") && i + 1 < argc) {
            open_spec = argv[++i];
        } else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            g_warmup_s = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--flight") && i + 1 < argc) {
            g_flight = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--keepalive") && i + 1 < argc) {
            g_keepalive_ms = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--idle-timeout") && i + 1 < argc) {
            g_idle_timeout_ms = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--connect-window") && i + 1 < argc) {
            g_connect_window = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--idle") && i + 1 < argc) {
            extra_idle = atoi(argv[++i]);
            if (extra_idle < 0 || extra_idle > MAX_CLIENTS) extra_idle = 0;
        } else if (!strcmp(argv[i], "--clients") && i + 1 < argc) {
            ncounts = 0;
            for (char *s = strtok(argv[++i], ","); s && ncounts < 16; s = strtok(NULL, ","))
                counts[ncounts++] = atoi(s);
        } else {
            return usage(argv[0]);
        }
    }
    if (seconds <= 0) seconds = 3;
    if (repeat < 1 || repeat > MAX_REP || g_connect_window < 1 || g_flight < 1 || g_flight > 65536)
        return usage(argv[0]);
    if (rate > 0) {
        static char spec[1024];
        snprintf(spec, sizeof spec, "%s", open_spec);
        for (char *s = strtok(spec, ","); s && nrows < MAX_ROWS; s = strtok(NULL, ","))
            if (!parse_orow(s, &rows[nrows++])) {
                fprintf(stderr, "host_echo: bad --open row '%s'\n", s);
                return usage(argv[0]);
            }
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    memset(payload, 'x', sizeof payload);
    char argv_keep[16], argv_idle[16];
    snprintf(argv_keep, sizeof argv_keep, "%d", g_keepalive_ms);
    snprintf(argv_idle, sizeof argv_idle, "%d", g_idle_timeout_ms);

    printf("host_echo, %s, %ld CPUs, keepalive %s ms, idle timeout %s ms\n", sn_version(),
           sysconf(_SC_NPROCESSORS_ONLN), g_keepalive_ms >= 0 ? argv_keep : "default",
           g_idle_timeout_ms >= 0 ? argv_idle : "default");
    print_load("before");
    double t0 = wall_s();
    if (rate > 0)
        open_loop(rows, nrows, rate, seconds, repeat);
    else
        closed_loop(counts, ncounts, seconds, repeat);
    printf("\n");
    print_load("after");
    printf("%.0f s in all\n", wall_s() - t0);
    return 0;
}
