/* Test support for the DTLS tests: see dtls_fixture.h. */
#include "dtls_fixture.h"
#include "test_dtls_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- PRNG ----------------------------------------------------------------------------------- */

void fx_rng_seed(fx_rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t fx_rng_next(fx_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

uint32_t fx_rng_below(fx_rng *r, uint32_t n)
{
    return n ? (uint32_t)((fx_rng_next(r) >> 32) % n) : 0;
}

void fx_rng_fill(fx_rng *r, void *buf, size_t len)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(fx_rng_next(r) >> 56);
}

/* --- certificates --------------------------------------------------------------------------- */

bool fx_make_cert(const char *dir, const char *kind, char **key_path, char **cert_path)
{
    char kname[64], cname[64];
    snprintf(kname, sizeof kname, "%s.key", kind);
    snprintf(cname, sizeof cname, "%s.crt", kind);
    *key_path = sn_test_path(dir, kname);
    *cert_path = sn_test_path(dir, cname);
    const char *alg = strcmp(kind, "rsa") == 0 ? "-newkey rsa:2048"
                                               : "-newkey ec -pkeyopt ec_paramgen_curve:P-256";
    int rc = sn_test_sh("openssl req -x509 %s -nodes -keyout '%s' -out '%s' -days 3 "
                        "-subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null",
                        alg, *key_path, *cert_path);
    if (rc != 0) fprintf(stderr, "openssl req for %s failed (%d)\n", kind, rc);
    return rc == 0;
}

sn_tls_options *fx_server_options(const char *key_path, const char *cert_path)
{
    sn_crypto_key *key = sn_crypto_key_new();
    sn_x509_cert *cert = sn_x509_cert_new();
    sn_tls_options *o = NULL;
    if (sn_crypto_key_load(key, key_path, false) == SN_OK &&
        sn_x509_cert_load(cert, cert_path) == SN_OK)
        o = sn_tls_options_server(key, cert);
    if (!o) fprintf(stderr, "server options: %s\n", sn_last_error_message());
    sn_crypto_key_free(key);
    sn_x509_cert_free(cert);
    return o;
}

sn_x509_cert *fx_load_cert(const char *cert_path)
{
    sn_x509_cert *c = sn_x509_cert_new();
    if (sn_x509_cert_load(c, cert_path) != SN_OK) {
        fprintf(stderr, "load %s: %s\n", cert_path, sn_last_error_message());
        sn_x509_cert_free(c);
        return NULL;
    }
    return c;
}

/* --- server --------------------------------------------------------------------------------- */

bool fx_server_start(fx_server *s, const sn_tls_options *opts, const sn_dtls_settings *settings)
{
    memset(s, 0, sizeof *s);
    s->udp = sn_udp_server_new();
    s->dtls = sn_dtls_server_new();
    if (!s->udp || !s->dtls || sn_udp_server_listen(s->udp, 0, "127.0.0.1") != SN_OK ||
        sn_dtls_server_setup(s->dtls, opts) != SN_OK ||
        (settings && sn_dtls_server_set_settings(s->dtls, settings) != SN_OK)) {
        fprintf(stderr, "server start: %s\n", sn_last_error_message());
        return false;
    }
    s->port = sn_udp_server_get_local_port(s->udp);
    return s->port > 0;
}

static void fx_dropped(sn_dtls_peer *p, void *user)
{
    fx_server *s = user;
    if (sn_dtls_peer_get_status(p) != SN_DTLS_STATUS_HANDSHAKING) {
        s->not_handshaking++;
        snprintf(s->last_refused, sizeof s->last_refused, "%s", sn_dtls_peer_get_error_message(p));
    } else {
        s->overflow++;
    }
}

void fx_server_step(fx_server *s)
{
    sn_test_dtls_server_step(s->udp, s->dtls, s->peers, &s->npeers, FX_MAX_PEERS, fx_dropped, s);
}

void fx_server_stop(fx_server *s)
{
    for (int i = 0; i < s->npeers; i++)
        sn_dtls_peer_free(s->peers[i]);
    s->npeers = 0;
    sn_dtls_server_free(s->dtls);
    sn_udp_server_free(s->udp);
    s->dtls = NULL;
    s->udp = NULL;
}

sn_dtls_peer *fx_server_last_peer(const fx_server *s)
{
    return s->npeers ? s->peers[s->npeers - 1] : NULL;
}

sn_dtls_peer *fx_client_connect(int port, const char *hostname, const sn_tls_options *opts,
                                const sn_dtls_settings *settings)
{
    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *p = sn_dtls_peer_new();
    if (!udp || !p || sn_udp_peer_connect_to_host(udp, "127.0.0.1", port) != SN_OK) {
        fprintf(stderr, "client udp: %s\n", sn_last_error_message());
        sn_udp_peer_free(udp);
        sn_dtls_peer_free(p);
        return NULL;
    }
    if (settings && sn_dtls_peer_set_settings(p, settings) != SN_OK) {
        fprintf(stderr, "client settings: %s\n", sn_last_error_message());
        sn_udp_peer_free(udp);
        sn_dtls_peer_free(p);
        return NULL;
    }
    /* connect_to_peer owns udp from here on, also when it fails. */
    if (sn_dtls_peer_connect_to_peer(p, udp, hostname, opts) != SN_OK) {
        fprintf(stderr, "client connect: %s\n", sn_last_error_message());
        sn_dtls_peer_free(p);
        return NULL;
    }
    return p;
}

/* --- relay ---------------------------------------------------------------------------------- */

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    /* Room for bursts: the relay is stepped from the same loop as everything else. */
    int sz = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) return -1;
    return ntohs(a.sin_port);
}

bool fx_relay_start(fx_relay *r, int server_port, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->pass_limit[0] = r->pass_limit[1] = -1;
    fx_rng_seed(&r->rng, seed);
    r->front_fd = udp_socket();
    r->back_fd = udp_socket();
    if (r->front_fd < 0 || r->back_fd < 0) return false;
    struct sockaddr_in srv = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons((uint16_t)server_port)};
    if (connect(r->back_fd, (struct sockaddr *)&srv, sizeof srv) != 0) return false;
    r->port = local_port(r->front_fd);
    return r->port > 0;
}

static bool send_dir(fx_relay *r, int dir, const void *data, size_t len)
{
    ssize_t n;
    if (dir == FX_C2S) {
        n = send(r->back_fd, data, len, 0);
    } else {
        if (!r->have_client) return false;
        n = sendto(r->front_fd, data, len, 0, (struct sockaddr *)r->client_addr,
                   (socklen_t)r->client_len);
    }
    return n == (ssize_t)len;
}

static void capture(fx_relay *r, int dir, const uint8_t *d, size_t len)
{
    if (r->ncaps == r->capcap) {
        r->capcap = r->capcap ? r->capcap * 2 : 64;
        r->caps = realloc(r->caps, r->capcap * sizeof *r->caps);
    }
    fx_dgram *g = &r->caps[r->ncaps++];
    g->dir = dir;
    g->len = len;
    g->data = malloc(len ? len : 1);
    memcpy(g->data, d, len);
}

static void release_held(fx_relay *r, int dir)
{
    if (!r->held[dir]) return;
    send_dir(r, dir, r->held[dir], r->held_len[dir]);
    r->forwarded[dir]++;
    free(r->held[dir]);
    r->held[dir] = NULL;
}

/* True when one of the datagram's records is of an epoch above 0. */
static bool carries_protected_record(const uint8_t *d, size_t len)
{
    for (size_t off = 0; off + 13 <= len; off += 13 + ((size_t)d[off + 11] << 8 | d[off + 12]))
        if (d[off + 3] != 0 || d[off + 4] != 0) return true;
    return false;
}

static void handle(fx_relay *r, int dir, const uint8_t *d, size_t len)
{
    bool protected_record = carries_protected_record(d, len);
    r->seen[dir]++;
    r->protected_seen[dir] += protected_record;
    if (len > r->max_len[dir]) r->max_len[dir] = len;
    if (r->capture) capture(r, dir, d, len);
    if (r->blackhole ||
        (r->pass_limit[dir] >= 0 && (long)r->forwarded[dir] >= r->pass_limit[dir]) ||
        (r->drop_pct[dir] && (int)fx_rng_below(&r->rng, 100) < r->drop_pct[dir]) ||
        (r->filter && r->filter(dir, d, len))) {
        r->dropped[dir]++;
        r->protected_dropped[dir] += protected_record;
        return;
    }
    if (!r->held[dir] && r->reorder_pct[dir] &&
        (int)fx_rng_below(&r->rng, 100) < r->reorder_pct[dir]) {
        r->held[dir] = malloc(len ? len : 1);
        memcpy(r->held[dir], d, len);
        r->held_len[dir] = len;
        r->held_ms[dir] = sn_test_now_ms();
        r->reordered[dir]++;
        return;
    }
    send_dir(r, dir, d, len);
    r->forwarded[dir]++;
    if (len > 0 && d[0] == 23 && r->dup_app[dir] > 0) {
        r->dup_app[dir]--;
        send_dir(r, dir, d, len);
        r->duplicated[dir]++;
    }
    /* The held one goes out after the one that overtook it. */
    release_held(r, dir);
}

void fx_relay_step(fx_relay *r)
{
    static uint8_t buf[65536];
    for (int round = 0; round < 256; round++) {
        bool any = false;
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(r->front_fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (n >= 0) {
            memcpy(r->client_addr, &from, flen);
            r->client_len = (unsigned)flen;
            r->have_client = true;
            handle(r, FX_C2S, buf, (size_t)n);
            any = true;
        }
        n = recv(r->back_fd, buf, sizeof buf, 0);
        if (n >= 0) {
            handle(r, FX_S2C, buf, (size_t)n);
            any = true;
        }
        if (!any) break;
    }
    uint64_t now = sn_test_now_ms();
    for (int dir = 0; dir < 2; dir++)
        if (r->held[dir] && now - r->held_ms[dir] >= 150) release_held(r, dir);
}

bool fx_relay_inject(fx_relay *r, int dir, const void *data, size_t len)
{
    r->injected[dir]++;
    return send_dir(r, dir, data, len);
}

const fx_dgram *fx_relay_last_capture(const fx_relay *r, int dir, uint8_t type)
{
    for (size_t i = r->ncaps; i-- > 0;)
        if (r->caps[i].dir == dir && r->caps[i].len > 0 && r->caps[i].data[0] == type)
            return &r->caps[i];
    return NULL;
}

void fx_relay_clear_captures(fx_relay *r)
{
    for (size_t i = 0; i < r->ncaps; i++)
        free(r->caps[i].data);
    r->ncaps = 0;
}

void fx_relay_stop(fx_relay *r)
{
    fx_relay_clear_captures(r);
    free(r->caps);
    r->caps = NULL;
    r->capcap = 0;
    for (int dir = 0; dir < 2; dir++) {
        free(r->held[dir]);
        r->held[dir] = NULL;
    }
    if (r->front_fd >= 0) close(r->front_fd);
    if (r->back_fd >= 0) close(r->back_fd);
    r->front_fd = r->back_fd = -1;
}

/* --- world ---------------------------------------------------------------------------------- */

void fx_world_init(fx_world *w, fx_server *server, fx_relay *relay)
{
    memset(w, 0, sizeof *w);
    w->server = server;
    w->relay = relay;
    for (int i = 0; i < 4; i++)
        w->extra_fds[i] = -1;
}

void fx_world_add_client(fx_world *w, sn_dtls_peer *client)
{
    if (w->nclients < FX_MAX_CLIENTS) w->clients[w->nclients++] = client;
}

static int min_timeout(int a, int b)
{
    if (b < 0) return a;
    return b < a ? b : a;
}

void fx_world_step(fx_world *w, int max_wait_ms)
{
    struct pollfd fds[4 + 2 * (1 + FX_MAX_CLIENTS) + FX_MAX_CLIENTS + FX_MAX_PEERS + 1];
    nfds_t n = 0;
    int wait = max_wait_ms;
    for (int i = 0; i < 4; i++)
        if (w->extra_fds[i] >= 0) fds[n++] = (struct pollfd){w->extra_fds[i], POLLIN, 0};
    for (int r = -1; r < w->nmore_relays; r++) {
        fx_relay *relay = r < 0 ? w->relay : w->more_relays[r];
        if (!relay) continue;
        fds[n++] = (struct pollfd){relay->front_fd, POLLIN, 0};
        fds[n++] = (struct pollfd){relay->back_fd, POLLIN, 0};
        for (int dir = 0; dir < 2; dir++)
            if (relay->held[dir]) wait = min_timeout(wait, 20);
    }
    if (w->server && w->server->udp) {
        int fd = sn_udp_server_get_fd(w->server->udp);
        if (fd >= 0) fds[n++] = (struct pollfd){fd, POLLIN, 0};
        wait = min_timeout(wait, sn_udp_server_next_timeout_ms(w->server->udp));
        for (int i = 0; i < w->server->npeers; i++)
            wait = min_timeout(wait, sn_dtls_peer_next_timeout_ms(w->server->peers[i]));
    }
    for (int i = 0; i < w->nclients; i++) {
        if (!w->clients[i]) continue;
        int fd = sn_dtls_peer_get_fd(w->clients[i]);
        if (fd >= 0) fds[n++] = (struct pollfd){fd, POLLIN, 0};
        wait = min_timeout(wait, sn_dtls_peer_next_timeout_ms(w->clients[i]));
    }
    if (wait < 0) wait = 0;
    poll(fds, n, wait);
    if (w->relay) fx_relay_step(w->relay);
    for (int r = 0; r < w->nmore_relays; r++)
        fx_relay_step(w->more_relays[r]);
    if (w->server && w->server->udp) fx_server_step(w->server);
    for (int i = 0; i < w->nclients; i++)
        if (w->clients[i]) sn_dtls_peer_poll(w->clients[i]);
    /* What the peers just sent may be waiting in the relay already. */
    if (w->relay) fx_relay_step(w->relay);
    for (int r = 0; r < w->nmore_relays; r++)
        fx_relay_step(w->more_relays[r]);
}

void fx_world_run_for(fx_world *w, int ms)
{
    uint64_t end = sn_test_now_ms() + (uint64_t)ms;
    while (sn_test_now_ms() < end)
        fx_world_step(w, 5);
}

/* --- packets -------------------------------------------------------------------------------- */

static uint32_t fnv1a(const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t fx_packet_make(uint32_t seq, fx_rng *rng, size_t len, uint8_t *out)
{
    if (len < 12) len = 12;
    put32(out, seq);
    put32(out + 4, (uint32_t)len);
    fx_rng_fill(rng, out + 8, len - 12);
    put32(out + len - 4, fnv1a(out, len - 4));
    return len;
}

bool fx_packet_check(const uint8_t *p, size_t len, uint32_t *seq)
{
    if (len < 12 || get32(p + 4) != len) return false;
    if (get32(p + len - 4) != fnv1a(p, len - 4)) return false;
    *seq = get32(p);
    return true;
}

long fx_kernel_udp_drops(int port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f) return -1;
    char line[512], want[32];
    snprintf(want, sizeof want, "0100007F:%04X", (unsigned)port);
    long drops = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, want)) continue;
        /* The last field of the line is the drop count. */
        char *last = NULL, *save = NULL;
        for (char *t = strtok_r(line, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
            last = t;
        if (last) drops = strtol(last, NULL, 10);
        break;
    }
    fclose(f);
    return drops;
}

/* --- foreign peers ------------------------------------------------------------------------- */

int fx_free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int port = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 ? local_port(fd) : -1;
    close(fd);
    return port;
}

sn_test_proc *fx_start_gnutls_server(const char *crt, const char *key, int mtu, int timeout_ms,
                                     int *port)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        *port = fx_free_udp_port();
        if (*port <= 0) return NULL;
        char ps[16], ms[32];
        snprintf(ps, sizeof ps, "%d", *port);
        snprintf(ms, sizeof ms, "--mtu=%d", mtu);
        const char *argv[] = {"gnutls-serv",
                              "--udp",
                              "--echo",
                              "-p",
                              ps,
                              "--x509certfile",
                              crt,
                              "--x509keyfile",
                              key,
                              mtu > 0 ? ms : NULL,
                              NULL};
        sn_test_proc *p = sn_test_spawn(argv);
        if (!p) return NULL;
        uint64_t end = sn_test_now_ms() + (uint64_t)timeout_ms;
        while (sn_test_now_ms() < end) {
            sn_test_proc_wait_for(p, "IPv4", 100);
            /* "listening on IPv4 0.0.0.0 port N...done" on one line; a failed IPv4 bind
             * followed by a good IPv6 one must not count (the client connects over IPv4). */
            const char *v4 = strstr(sn_test_proc_output(p), "IPv4");
            const char *nl = v4 ? strchr(v4, '\n') : NULL;
            const char *done = v4 ? strstr(v4, "done") : NULL;
            if (v4 && strstr(v4, "failed") && (!nl || strstr(v4, "failed") < nl)) break;
            if (done && nl && done < nl) return p;
            if (sn_test_proc_wait_exit(p, 0) >= 0) break; /* bind failed: another port */
        }
        fprintf(stderr, "gnutls-serv on port %d did not start:\n%s\n", *port,
                sn_test_proc_output(p));
        sn_test_proc_stop(p);
    }
    return NULL;
}
