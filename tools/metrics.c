/* Prometheus text exposition of the commands' counters: HTTP via libmicrohttpd, SIGUSR1 via a
 * flag read by metrics_poll (see metrics.h).
 *
 * Why libmicrohttpd rather than a hand-written responder: the endpoint faces whatever can reach
 * the port, and an HTTP request parser is exactly the kind of code that should not be written
 * again for one route. libmicrohttpd is a GNU project packaged by Debian (libmicrohttpd-dev),
 * small (one shared library, no dependencies we do not already have), maintained, fuzzed
 * upstream, LGPL-2.1+ (fine to link from an MIT program), and it runs inside a caller's event
 * loop without threads: MHD_USE_EPOLL gives one descriptor to poll and MHD_run does the work,
 * so the render callback reads the loop's counters without locks. */
#include "metrics.h"

#include "cli.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifdef SN_HAVE_MHD
#include <microhttpd.h>
#endif

struct metrics {
    metrics_render_fn render;
    void *ctx;
    int port;
#ifdef SN_HAVE_MHD
    struct MHD_Daemon *d;
#endif
};

static volatile sig_atomic_t usr1_flag;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_flag = 1;
}

/* ---- text ----------------------------------------------------------------------------- */

static void text_printf(metrics_text *t, const char *fmt, ...) CLI_PRINTF(2, 3);
static void text_printf(metrics_text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->data ? t->data + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t ncap = t->cap ? t->cap * 2 : 4096;
        while (ncap - t->len <= (size_t)n)
            ncap *= 2;
        char *nd = realloc(t->data, ncap);
        if (!nd) {
            t->failed = true;
            return;
        }
        t->data = nd;
        t->cap = ncap;
    }
}

void metrics_family(metrics_text *t, const char *name, const char *type, const char *help)
{
    text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(metrics_text *t, const char *name, const char *labels, uint64_t value)
{
    if (labels)
        text_printf(t, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        text_printf(t, "%s %llu\n", name, (unsigned long long)value);
}

void metrics_counter(metrics_text *t, const char *name, const char *help, uint64_t value)
{
    metrics_family(t, name, "counter", help);
    metrics_sample(t, name, NULL, value);
}

void metrics_gauge(metrics_text *t, const char *name, const char *help, uint64_t value)
{
    metrics_family(t, name, "gauge", help);
    metrics_sample(t, name, NULL, value);
}

void metrics_host_stats(metrics_text *t, const sn_host_stats *s)
{
    metrics_gauge(t, "sealnet_host_peers_connected", "DTLS peers connected now.",
                  s->peers_connected_now);
    metrics_gauge(t, "sealnet_host_peers_handshaking", "DTLS peers handshaking now.",
                  s->peers_handshaking_now);
    metrics_gauge(t, "sealnet_host_incoming_half_open", "Incoming handshakes in progress now.",
                  s->incoming_half_open_now);
    metrics_counter(t, "sealnet_host_handshakes_started_total", "DTLS handshakes started.",
                    s->handshakes_started);
    metrics_counter(t, "sealnet_host_handshakes_completed_total", "DTLS handshakes completed.",
                    s->handshakes_completed);
    metrics_counter(t, "sealnet_host_handshakes_failed_total", "DTLS handshakes failed.",
                    s->handshakes_failed);
    metrics_counter(t, "sealnet_host_cookies_sent_total",
                    "HelloVerifyRequests sent (stateless cookies).", s->cookies_sent);
    metrics_counter(t, "sealnet_host_refused_full_total",
                    "Incoming clients refused because max peers was reached.", s->refused_full);
    metrics_counter(t, "sealnet_host_dropped_half_open_total",
                    "ClientHellos with a cookie dropped because the half-open cap was reached.",
                    s->dropped_half_open);
    metrics_counter(t, "sealnet_host_idle_timeouts_total", "Peers timed out by the host.",
                    s->idle_timeouts);
    metrics_counter(t, "sealnet_host_disconnects_total", "DISCONNECT events delivered.",
                    s->disconnects);
    metrics_counter(t, "sealnet_host_packets_received_total",
                    "Application packets received (decrypted).", s->packets_received);
    metrics_counter(t, "sealnet_host_bytes_received_total", "Application bytes received.",
                    s->bytes_received);
    metrics_counter(t, "sealnet_host_packets_sent_total", "Application packets sent (encrypted).",
                    s->packets_sent);
    metrics_counter(t, "sealnet_host_bytes_sent_total", "Application bytes sent.", s->bytes_sent);
    metrics_counter(t, "sealnet_host_keepalives_sent_total", "Keepalive pings and pongs sent.",
                    s->keepalives_sent);
    metrics_counter(t, "sealnet_host_keepalives_received_total",
                    "Keepalive pings and pongs received.", s->keepalives_received);
    metrics_counter(t, "sealnet_host_dropped_send_busy_total",
                    "Sends refused because the socket buffer was full.", s->dropped_send_busy);
    metrics_counter(t, "sealnet_host_dropped_queue_full_total",
                    "Datagrams dropped because a UDP or DTLS receive queue was full.",
                    s->dropped_queue_full);
    metrics_counter(t, "sealnet_host_dropped_malformed_total",
                    "First datagrams that were no ClientHello, and oversize datagrams.",
                    s->dropped_malformed);
    metrics_counter(t, "sealnet_host_dropped_pending_full_total",
                    "Datagrams from new addresses dropped while the pending table was full.",
                    s->dropped_pending_full);
    metrics_counter(t, "sealnet_host_service_calls_total", "sn_host_service calls.",
                    s->service_calls);
}

/* ---- addresses ------------------------------------------------------------------------ */

bool addr_port_split(const char *s, bool allow_bare, char *host, size_t cap, long *port)
{
    if (!s || !*s || cap == 0) return false;
    const char *colon;
    size_t hlen;
    const char *hstart = s;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') return false;
        hstart = s + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            if (!allow_bare || !cli_parse_int(s, 0, 65535, port)) return false;
            host[0] = '\0';
            return true;
        }
        /* Two colons without brackets: an IPv6 address without a port is ambiguous. */
        if (memchr(s, ':', (size_t)(colon - s))) return false;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= cap) return false;
    if (!cli_parse_int(colon + 1, 0, 65535, port)) return false;
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    return true;
}

/* ---- HTTP ----------------------------------------------------------------------------- */

#ifdef SN_HAVE_MHD
static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *type,
                                    char *body, size_t len, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result res = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    metrics *m = cls;
    static char not_found[] = "not found: the metrics are at /metrics\n";
    static char not_allowed[] = "only GET and HEAD\n";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0;
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
                            sizeof not_allowed - 1, false);
    }
    if (strcmp(url, "/metrics") != 0)
        return respond_text(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found, sizeof not_found - 1,
                            false);
    metrics_text t = {0};
    m->render(&t, m->ctx);
    if (t.failed) {
        free(t.data);
        static char oom[] = "out of memory\n";
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", oom, sizeof oom - 1,
                            false);
    }
    return respond_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", t.data, t.len,
                        true);
}
#endif

metrics *metrics_start(const char *listen, metrics_render_fn render, void *ctx)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    metrics *m = calloc(1, sizeof *m);
    if (!m) {
        cli_fail("out of memory");
        return NULL;
    }
    m->render = render;
    m->ctx = ctx;
    if (!listen) return m;
#ifndef SN_HAVE_MHD
    cli_fail("--metrics: this sealnet was built without libmicrohttpd (install "
             "libmicrohttpd-dev and rebuild); SIGUSR1 still prints the metrics");
    free(m);
    return NULL;
#else
    char host[256];
    long port;
    if (!addr_port_split(listen, true, host, sizeof host, &port)) {
        cli_fail("--metrics wants ADDR:PORT, [IPV6]:PORT or PORT, not '%s'", listen);
        free(m);
        return NULL;
    }
    bool any = !*host || strcmp(host, "*") == 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%ld", port);
    int gai = getaddrinfo(any ? NULL : host, portstr, &hints, &res);
    if (gai != 0 || !res) {
        cli_fail("--metrics: cannot resolve '%s': %s", host, gai_strerror(gai));
        free(m);
        return NULL;
    }
    unsigned flags = MHD_USE_EPOLL;
    if (any)
        flags |= MHD_USE_DUAL_STACK;
    else if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, &on_request, m, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        any ? MHD_OPTION_END : MHD_OPTION_SOCK_ADDR, res->ai_addr, MHD_OPTION_END);
    freeaddrinfo(res);
    if (!m->d) {
        cli_fail("--metrics: cannot listen on %s (address in use or not local?)", listen);
        free(m);
        return NULL;
    }
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = pi ? pi->port : (int)port;
    char shown[300];
    if (any)
        snprintf(shown, sizeof shown, "0.0.0.0:%d", m->port);
    else
        cli_format_addr(host, m->port, shown, sizeof shown);
    printf("metrics on http://%s/metrics\n", shown);
    fflush(stdout);
    return m;
#endif
}

int metrics_fd(const metrics *m)
{
#ifdef SN_HAVE_MHD
    if (m && m->d) {
        const union MHD_DaemonInfo *i = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
        return i ? i->epoll_fd : -1;
    }
#else
    (void)m;
#endif
    return -1;
}

int metrics_timeout_ms(const metrics *m)
{
#ifdef SN_HAVE_MHD
    MHD_UNSIGNED_LONG_LONG t;
    if (m && m->d && MHD_get_timeout(m->d, &t) == MHD_YES) return t > 60000 ? 60000 : (int)t;
#else
    (void)m;
#endif
    return -1;
}

int metrics_port(const metrics *m)
{
    return m ? m->port : 0;
}

void metrics_poll(metrics *m)
{
    if (!m) return;
#ifdef SN_HAVE_MHD
    if (m->d) MHD_run(m->d);
#endif
    if (usr1_flag) {
        usr1_flag = 0;
        metrics_text t = {0};
        m->render(&t, m->ctx);
        fflush(stdout);
        if (t.failed)
            printf("# metrics: out of memory\n");
        else if (t.len)
            fwrite(t.data, 1, t.len, stdout);
        printf("# end of metrics\n");
        fflush(stdout);
        free(t.data);
    }
}

void metrics_stop(metrics *m)
{
    if (!m) return;
#ifdef SN_HAVE_MHD
    if (m->d) MHD_stop_daemon(m->d);
#endif
    free(m);
}
