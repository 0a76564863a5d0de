/* Benchmark: an sn_host echo server against a raw UDP echo server, same clients, same run.
 *
 * For each client count (1, 10, 100, 1,000 by default) the server runs in a forked child
 * process (so its CPU time and memory are its own) and this process drives the clients:
 *   host: the child owns one server sn_host and echoes every RECEIVE to its sender; the
 *         clients are one client-only sn_host holding every connection (DTLS 1.2,
 *         ECDHE-ECDSA-AES128-GCM; keepalives at the default 1 s stay on, as in real use).
 *   raw:  the child echoes with recvmmsg (64 per call) and one sendto per datagram, the same
 *         system calls the host makes; the clients are plain connected UDP sockets.
 * Clients run closed-loop: each keeps W 64-byte packets in flight (W = ceil(64 / clients), so
 * at least 64 packets are always in flight) and sends the next one when an echo comes back; a
 * client with nothing back for 500 ms starts over (loss). After connecting and a 0.5 s warm-up,
 * echoes are counted for --seconds. The child reports its CPU time (CLOCK_PROCESS_CPUTIME_ID:
 * user + system) over the same window and its resident memory before the clients connected and
 * after, from which "KiB per peer" = RSS delta / clients.
 *
 *   build/bench/host_echo [--seconds S (default 3)] [--clients a,b,c (default 1,10,100,1000)]
 *                         [--idle N]
 * --idle N adds N host clients that connect and then stay silent (keepalives only): the cost
 * of a packet with many peers connected but few active.
 *
 * Both the server child and the clients compete for the same cores, so pkt/s is a figure for
 * this machine; per-packet server CPU is the steadier comparison. "(user)" is the part of the
 * server's CPU spent in user space (host, DTLS, libcrypto); the rest is the kernel's UDP path.
 * HOST_ECHO_DEBUG=1 makes the host child print its packet, scan-step and service-call counts.
 */
#include <sealnet/sealnet.h>
#include <sealnet/host.h>

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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PKT         64
#define MIN_FLIGHT  64
#define LOSS_MS     500
#define RAW_BATCH   64
#define MAX_CLIENTS 20000

typedef struct result {
    double cpu_s;    /* server CPU in the window */
    double user_s;   /* of which in user space */
    uint64_t echoed; /* by the server in the window */
    long rss0_kib, rss1_kib;
    size_t heap0, heap1; /* malloc'd bytes in use (mallinfo2) */
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

static void die(const char *what)
{
    fprintf(stderr, "host_echo: %s: %s\n", what, sn_last_error_message());
    exit(1);
}

/* ---- server children --------------------------------------------------------------------- */

/* Control: the parent writes 'M' (start of the window), 'E' (end: reply with a result), 'Q'. */
typedef struct server_ctx {
    int ctl, res;
    uint64_t echoed;
    double cpu0, user0;
    uint64_t echoed0;
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
        c->cpu0 = cpu_s();
        c->user0 = user_s();
        c->echoed0 = c->echoed;
    } else if (cmd == 'E') {
        result r = {cpu_s() - c->cpu0,
                    user_s() - c->user0,
                    c->echoed - c->echoed0,
                    c->rss0,
                    c->rss1,
                    c->heap0,
                    c->heap1};
        if (write(c->res, &r, sizeof r) != (ssize_t)sizeof r) c->quit = true;
    } else {
        c->quit = true;
    }
}

static void host_server(server_ctx *c, int clients)
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
    cfg.max_half_open = clients + 16; /* let every client in at once */
    cfg.max_peers = clients + 16;
    sn_host *h = sn_host_create(&cfg);
    sn_tls_options_free(opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    if (!h) die("host");
    c->rss0 = rss_kib();
    c->heap0 = mallinfo2().uordblks;
    int port = sn_host_get_port(h);
    if (write(c->res, &port, sizeof port) != (ssize_t)sizeof port) exit(1);
    /* The host's epoll descriptor in our own poll loop, next to the control pipe. */
    struct pollfd pf[2] = {{.fd = sn_host_get_fd(h), .events = POLLIN},
                           {.fd = c->ctl, .events = POLLIN}};
    while (!c->quit) {
        int t = sn_host_next_timeout_ms(h);
        if (t < 0 || t > 100) t = 100;
        poll(pf, 2, t);
        if (pf[1].revents) on_control(c);
        sn_host_event ev;
        int r;
        while ((r = sn_host_service(h, &ev, 0)) > 0)
            if (ev.type == SN_HOST_EVENT_RECEIVE &&
                sn_host_peer_send(ev.peer, ev.data, ev.len) == SN_OK)
                c->echoed++;
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

static void raw_server(server_ctx *c)
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
    static uint8_t bufs[RAW_BATCH][2048];
    struct sockaddr_in from[RAW_BATCH];
    struct iovec iov[RAW_BATCH];
    struct mmsghdr m[RAW_BATCH];
    struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = c->ctl, .events = POLLIN}};
    while (!c->quit) {
        poll(pf, 2, 100);
        if (pf[1].revents) on_control(c);
        for (int round = 0; round < 16; round++) {
            for (int i = 0; i < RAW_BATCH; i++) {
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = sizeof bufs[i];
                memset(&m[i].msg_hdr, 0, sizeof m[i].msg_hdr);
                m[i].msg_hdr.msg_iov = &iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
                m[i].msg_hdr.msg_name = &from[i];
                m[i].msg_hdr.msg_namelen = sizeof from[i];
            }
            int n = recvmmsg(fd, m, RAW_BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0) break;
            for (int i = 0; i < n; i++)
                if (sendto(fd, bufs[i], m[i].msg_len, 0, (struct sockaddr *)&from[i],
                           m[i].msg_hdr.msg_namelen) >= 0)
                    c->echoed++;
            if (n < RAW_BATCH) break;
        }
    }
    close(fd);
}

typedef struct child {
    pid_t pid;
    int ctl, res, port;
} child;

static child spawn_server(bool host, int clients)
{
    int ctl[2], res[2];
    if (pipe(ctl) || pipe(res)) exit(1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(ctl[1]);
        close(res[0]);
        server_ctx c = {.ctl = ctl[0], .res = res[1]};
        if (host)
            host_server(&c, clients);
        else
            raw_server(&c);
        _exit(0);
    }
    close(ctl[0]);
    close(res[1]);
    child ch = {pid, ctl[1], res[0], 0};
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

static result finish(child *ch)
{
    result r;
    command(ch, 'E');
    if (read(ch->res, &r, sizeof r) != (ssize_t)sizeof r) memset(&r, 0, sizeof r);
    command(ch, 'Q');
    waitpid(ch->pid, NULL, 0);
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
} client;

static uint8_t payload[PKT];
/* --idle N: that many more host clients connect and stay silent (keepalives only). */
static int extra_idle;

static double run_host_clients(child *ch, int n, int window, double seconds, uint64_t *echoes)
{
    sn_tls_options *opts = sn_tls_options_client_unsafe(NULL);
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    int total = n + extra_idle;
    cfg.max_peers = total + 16;
    sn_host *h = sn_host_create(&cfg);
    if (!h || !opts) die("client host");
    client *cl = calloc((size_t)total, sizeof *cl);
    for (int i = 0; i < total; i++) {
        cl[i].peer = sn_host_connect(h, "127.0.0.1", ch->port, "localhost", opts);
        if (!cl[i].peer) die("connect");
        sn_host_peer_set_user_data(cl[i].peer, &cl[i]);
    }
    int connected = 0;
    double t0 = wall_s();
    sn_host_event ev;
    while (connected < total && wall_s() - t0 < 60) {
        if (sn_host_service(h, &ev, 50) <= 0) continue;
        if (ev.type == SN_HOST_EVENT_CONNECT) connected++;
        if (ev.type == SN_HOST_EVENT_DISCONNECT) {
            fprintf(stderr, "host_echo: client %u: %s\n", ev.peer_id, ev.message);
            exit(1);
        }
    }
    if (connected < total) {
        fprintf(stderr, "host_echo: only %d of %d clients connected\n", connected, total);
        exit(1);
    }
    double connect_s = wall_s() - t0;
    uint64_t count = 0;
    bool measuring = false;
    double start = wall_s(), mark = 0, last_check = start;
    for (int i = 0; i < n; i++)
        cl[i].last_rx = start;
    for (;;) {
        double now = wall_s();
        if (!measuring && now - start >= 0.5) {
            command(ch, 'M');
            measuring = true;
            mark = now;
            count = 0;
        }
        if (measuring && now - mark >= seconds) break;
        if (now - last_check >= 0.1) {
            last_check = now;
            for (int i = 0; i < n; i++) {
                client *c = &cl[i];
                if (c->in_flight > 0 && (now - c->last_rx) * 1000 < LOSS_MS) continue;
                c->in_flight = 0;
                c->last_rx = now;
                for (int k = 0; k < window; k++)
                    if (sn_host_peer_send(c->peer, payload, PKT) == SN_OK) c->in_flight++;
            }
        }
        int r = sn_host_service(h, &ev, 10);
        if (r < 0) die("client service");
        if (r == 0) continue;
        if (ev.type == SN_HOST_EVENT_RECEIVE) {
            client *c = ev.user_data;
            count++;
            c->last_rx = now;
            if (sn_host_peer_send(ev.peer, payload, PKT) != SN_OK) c->in_flight--;
        } else if (ev.type == SN_HOST_EVENT_DISCONNECT) {
            fprintf(stderr, "host_echo: client %u dropped: %s\n", ev.peer_id, ev.message);
            exit(1);
        }
    }
    *echoes = count;
    sn_host_free(h);
    sn_tls_options_free(opts);
    free(cl);
    return connect_s;
}

static void run_raw_clients(child *ch, int n, int window, double seconds, uint64_t *echoes)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    client *cl = calloc((size_t)n, sizeof *cl);
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
    uint64_t count = 0;
    bool measuring = false;
    double start = wall_s(), mark = 0, last_check = start - 1;
    for (int i = 0; i < n; i++)
        cl[i].last_rx = start;
    struct epoll_event evs[256];
    uint8_t buf[2048];
    for (;;) {
        double now = wall_s();
        if (!measuring && now - start >= 0.5) {
            command(ch, 'M');
            measuring = true;
            mark = now;
            count = 0;
        }
        if (measuring && now - mark >= seconds) break;
        if (now - last_check >= 0.1) {
            last_check = now;
            for (int i = 0; i < n; i++) {
                client *c = &cl[i];
                if (c->in_flight > 0 && (now - c->last_rx) * 1000 < LOSS_MS) continue;
                c->in_flight = 0;
                c->last_rx = now;
                for (int k = 0; k < window; k++)
                    if (send(c->fd, payload, PKT, 0) == PKT) c->in_flight++;
            }
        }
        int k = epoll_wait(ep, evs, 256, 10);
        for (int i = 0; i < k; i++) {
            client *c = evs[i].data.ptr;
            ssize_t r;
            /* Like the host's client peers: read what is there, answer each. */
            for (int j = 0; j < 64 && (r = recv(c->fd, buf, sizeof buf, 0)) > 0; j++) {
                count++;
                c->last_rx = now;
                if (send(c->fd, payload, PKT, 0) != PKT) c->in_flight--;
            }
        }
    }
    *echoes = count;
    for (int i = 0; i < n; i++)
        close(cl[i].fd);
    close(ep);
    free(cl);
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int counts[16] = {1, 10, 100, 1000}, ncounts = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--idle") && i + 1 < argc) {
            extra_idle = atoi(argv[++i]);
            if (extra_idle < 0 || extra_idle > MAX_CLIENTS) extra_idle = 0;
        } else if (!strcmp(argv[i], "--clients") && i + 1 < argc) {
            ncounts = 0;
            for (char *s = strtok(argv[++i], ","); s && ncounts < 16; s = strtok(NULL, ","))
                counts[ncounts++] = atoi(s);
        } else {
            fprintf(stderr, "usage: %s [--seconds S] [--clients a,b,c] [--idle N]\n", argv[0]);
            return 2;
        }
    }
    if (seconds <= 0) seconds = 3;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    memset(payload, 'x', sizeof payload);

    printf("host_echo: %g s per run, 64-byte packets, closed loop (W = ceil(64/clients) in "
           "flight per client), %d idle host peers besides, %s\n\n",
           seconds, extra_idle, sn_version());
    printf(
        "| clients | host echo pkt/s | raw UDP echo pkt/s | host / raw | host server CPU "
        "us/pkt (user) | raw server CPU us/pkt | host RSS per peer KiB | host heap per peer KiB | "
        "connect s |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double cpu_at[16] = {0};
    for (int c = 0; c < ncounts; c++) {
        int n = counts[c];
        if (n < 1 || n > MAX_CLIENTS) continue;
        int window = (MIN_FLIGHT + n - 1) / n;

        child hs = spawn_server(true, n + extra_idle);
        uint64_t host_echoes = 0;
        double connect_s = run_host_clients(&hs, n, window, seconds, &host_echoes);
        result hr = finish(&hs);

        child rs = spawn_server(false, n);
        uint64_t raw_echoes = 0;
        run_raw_clients(&rs, n, window, seconds, &raw_echoes);
        result rr = finish(&rs);

        double hpps = (double)host_echoes / seconds, rpps = (double)raw_echoes / seconds;
        double hcpu = hr.echoed ? hr.cpu_s * 1e6 / (double)hr.echoed : 0;
        double rcpu = rr.echoed ? rr.cpu_s * 1e6 / (double)rr.echoed : 0;
        cpu_at[c] = hcpu;
        double huser = hr.echoed ? hr.user_s * 1e6 / (double)hr.echoed : 0;
        printf("| %d | %.0f | %.0f | %.2f | %.2f (%.2f) | %.2f | %.1f | %.1f | %.2f |\n", n, hpps,
               rpps, rpps > 0 ? hpps / rpps : 0, hcpu, huser, rcpu,
               (double)(hr.rss1_kib - hr.rss0_kib) / (n + extra_idle),
               ((double)hr.heap1 - (double)hr.heap0) / 1024.0 / (n + extra_idle), connect_s);
        fflush(stdout);
    }
    /* The scaling check: per-packet server CPU at the largest count against 10 clients. */
    int i10 = -1, imax = -1;
    for (int c = 0; c < ncounts; c++) {
        if (counts[c] == 10) i10 = c;
        if (imax < 0 || counts[c] > counts[imax]) imax = c;
    }
    if (i10 >= 0 && imax >= 0 && counts[imax] > 10 && cpu_at[i10] > 0)
        printf("\nhost server CPU per packet at %d clients / at 10 clients: %.2f (target <= "
               "1.25)\n",
               counts[imax], cpu_at[imax] / cpu_at[i10]);
    return 0;
}
