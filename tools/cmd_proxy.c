/* sealnet proxy: DTLS termination in front of a plain UDP server, and the reverse (plain UDP in,
 * DTLS out). Built on the host API: the host owns the DTLS side (handshakes, cookies, the
 * half-open cap, timers), this file owns the plain side and the sessions.
 *
 * Forward (--listen ... --to HOST:PORT): every DTLS session that completes its handshake gets
 * its own UDP socket connected to the backend, so the backend sees one source port per client
 * and answers there. One epoll set holds the host's descriptor (itself an epoll set), every
 * backend socket and the metrics endpoint; replies are encrypted back with sn_host_peer_send.
 *
 * Reverse (--listen-plain ... --connect HOST:PORT): one plain UDP socket; every new source
 * address gets an outgoing DTLS session (sn_host_connect), and its datagrams wait in a bounded
 * queue until the handshake is done.
 *
 * Sessions end on close_notify (either side), --idle without a datagram in either direction,
 * an ICMP port unreachable from the backend (the client then gets close_notify), or a failed
 * handshake. Idle sessions are found in O(1) per datagram: sessions sit in a list ordered by
 * their last datagram (moved to the tail on each), so expiry only looks at the head. */
#include "cli.h"
#include "metrics.h"
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_DEFAULT_IDLE_S       60
#define PROXY_DEFAULT_MAX_SESSIONS 1024
#define PROXY_DEFAULT_QUEUE        256
/* Plain datagrams read per wake-up of the reverse listener, so DTLS events are not starved. */
#define PLAIN_READ_BUDGET 256
/* Host events handled per loop turn before the plain sockets get a look again. */
#define EVENT_BUDGET 4096
#define BUF_CAP      (65536 + PP2_MAX_HEADER)

typedef enum close_reason {
    CLOSE_PEER,        /* close_notify from the DTLS side */
    CLOSE_IDLE,        /* --idle */
    CLOSE_UNREACHABLE, /* backend ICMP port unreachable; reverse: server refused */
    CLOSE_HANDSHAKE,   /* reverse: the outgoing handshake failed */
    CLOSE_ERROR,       /* fatal alert, send error, no socket */
    CLOSE_COUNT
} close_reason;
static const char *const close_label[CLOSE_COUNT] = {
    "reason=\"close_notify\"", "reason=\"idle\"", "reason=\"unreachable\"",
    "reason=\"handshake_failed\"", "reason=\"error\""};

typedef enum drop_reason {
    DROP_OVERSIZE,      /* larger than the session's maximum payload */
    DROP_QUEUE_FULL,    /* a per-session queue bound */
    DROP_SEND_BUSY,     /* socket buffer full */
    DROP_SEND_ERROR,    /* other send failures */
    DROP_SESSIONS_FULL, /* reverse: a new source while --max-sessions are open */
    DROP_CLOSED,        /* reverse: still waiting for the handshake when the session ended */
    DROP_COUNT
} drop_reason;
static const char *const drop_label[DROP_COUNT] = {"reason=\"oversize\"", "reason=\"queue_full\"",
                                                   "reason=\"send_busy\"", "reason=\"send_error\"",
                                                   "reason=\"sessions_full\""};

typedef struct qdgram {
    struct qdgram *next;
    size_t len;
    uint8_t data[];
} qdgram;

/* An address as a hash key: family, port, 16 address bytes (IPv4 in the first 4). */
typedef struct addr_key {
    uint16_t family, port;
    uint8_t addr[16];
} addr_key;

typedef struct session session;
struct session {
    sn_host_peer *peer;
    session *prev, *next; /* idle order, oldest first; only while open */
    uint64_t last_ms;
    uint64_t up, down; /* datagrams each way, for the log line */
    bool connected;    /* CONNECT delivered */
    bool closing;      /* disconnected by us: waiting for the host's DISCONNECT */
    close_reason why;
    char who[64];
    /* forward */
    sn_udp_peer *backend;
    bool pp_sent;
    size_t pp_len;
    uint8_t pp[PP2_MAX_HEADER];
    /* reverse */
    addr_key key;
    struct sockaddr_storage from;
    socklen_t from_len;
    session *hnext;
    qdgram *qhead, *qtail;
    size_t qn;
};

typedef struct proxy {
    bool reverse;
    sn_host *host;
    int ep;
    long idle_s, max_sessions, queue;
    bool pp, pp_every;
    /* forward: the backend as an IP literal; the listening address for PROXY headers */
    char backend_ip[INET6_ADDRSTRLEN];
    int backend_port;
    char listen_ip[INET6_ADDRSTRLEN];
    int listen_port;
    /* reverse */
    int plain_fd;
    char server_ip[INET6_ADDRSTRLEN];
    int server_port;
    const char *server_name;
    sn_tls_options *copts;
    session **buckets;
    size_t nbuckets; /* power of two */
    /* sessions */
    session *head, *tail;
    size_t open_now; /* not closing */
    uint64_t now;
    /* counters */
    uint64_t opened, closed[CLOSE_COUNT], dropped[DROP_COUNT];
    uint64_t up_pkts, up_bytes, down_pkts, down_bytes, pp_headers;
    uint64_t gone_backend_queue_drops, gone_backend_oversize; /* from closed backend sockets */
    uint8_t buf[BUF_CAP];
} proxy;

/* epoll tags for the descriptors that are no session */
static char tag_host, tag_metrics, tag_plain;

/* ---- help and arguments --------------------------------------------------------------- */

static void help(void)
{
    sn_host_config host_defaults;
    sn_host_default_config(&host_defaults);
    printf(
        "usage: sealnet proxy --listen [ADDR:]PORT --to HOST:PORT [--key FILE --cert FILE]\n"
        "                     [--save-cert FILE] [--proxy-protocol v2 [--proxy-protocol-every]]\n"
        "       sealnet proxy --listen-plain [ADDR:]PORT --connect HOST:PORT\n"
        "                     [--ca FILE | --insecure] [--name HOST]\n"
        "       common: [--idle SEC] [--max-sessions N] [--max-half-open N] [--queue N]\n"
        "               [--metrics ADDR:PORT] [--seconds N]\n"
        "\n"
        "DTLS termination for plain UDP servers (Godot PacketPeerDTLS clients in front of a\n"
        "server that speaks plain UDP), and the reverse: plain UDP clients to a DTLS server.\n"
        "\n"
        "  --listen [ADDR:]PORT   accept DTLS 1.2 here (ADDR default '*': dual-stack)\n"
        "  --to HOST:PORT         the plain UDP backend; each DTLS session gets its own UDP\n"
        "                         socket towards it (the backend sees one source port per\n"
        "                         client)\n"
        "  --key FILE --cert FILE the server's PEM key and certificate (default: generated,\n"
        "                         self-signed for CN=localhost, fingerprint printed)\n"
        "  --save-cert FILE       write the server's certificate (PEM), for clients' --ca\n"
        "  --proxy-protocol v2    prefix the first datagram of each session towards the\n"
        "                         backend with a PROXY protocol v2 header (DGRAM) carrying the\n"
        "                         client's address and port\n"
        "  --proxy-protocol-every prefix every datagram, not only the first (for backends\n"
        "                         that must not keep per-source state, or lose datagrams)\n"
        "  --listen-plain [ADDR:]PORT  accept plain UDP here (reverse mode)\n"
        "  --connect HOST:PORT    the DTLS server; one DTLS session per plain source address\n"
        "  --ca FILE              trust the certificate(s) in FILE instead of the system CAs\n"
        "  --insecure             do not verify the server's certificate\n"
        "  --name HOST            name the server's certificate must carry (default: HOST)\n"
        "  --idle SEC             end a session without a datagram either way for SEC seconds\n"
        "                         (default %d; 0: never)\n"
        "  --max-sessions N       sessions (handshaking or open) at most (default %d)\n"
        "  --max-half-open N      incoming handshakes in progress at most (default: the\n"
        "                         host's, %d)\n"
        "  --queue N              datagrams queued per session at most: a backend socket's\n"
        "                         receive queue, or a reverse session's datagrams waiting for\n"
        "                         the handshake (default %d); beyond it they are dropped and\n"
        "                         counted\n"
        "  --metrics ADDR:PORT    serve Prometheus metrics at http://ADDR:PORT/metrics\n"
        "                         (kill -USR1 prints them on stdout in any case)\n"
        "  --seconds N            stop after N seconds (default 0: until SIGINT/SIGTERM)\n"
        "\n"
        "Datagrams larger than a session's maximum DTLS payload are refused and counted, never\n"
        "truncated. Prints \"listening on udp port N\", then one line per session opened and\n"
        "closed (with the reason). See docs/proxy.md.\n",
        PROXY_DEFAULT_IDLE_S, PROXY_DEFAULT_MAX_SESSIONS, host_defaults.max_half_open,
        PROXY_DEFAULT_QUEUE);
}

typedef struct proxy_args {
    const char *listen, *to, *listen_plain, *connect, *key, *cert, *save_cert, *ca, *pin, *name,
        *metrics;
    long idle, max_sessions, max_half_open, queue, seconds;
    bool insecure, pp, pp_every;
} proxy_args;

static int parse_args(int argc, char **argv, proxy_args *a)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"to", required_argument, NULL, 't'},
                                         {"listen-plain", required_argument, NULL, 'L'},
                                         {"connect", required_argument, NULL, 'C'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"cert", required_argument, NULL, 'c'},
                                         {"save-cert", required_argument, NULL, 'S'},
                                         {"ca", required_argument, NULL, 'a'},
                                         {"pin", required_argument, NULL, 'P'},
                                         {"insecure", no_argument, NULL, 'K'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {"max-sessions", required_argument, NULL, 'm'},
                                         {"max-half-open", required_argument, NULL, 'H'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"proxy-protocol", required_argument, NULL, 'p'},
                                         {"proxy-protocol-every", no_argument, NULL, 'E'},
                                         {"metrics", required_argument, NULL, 'M'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->idle = PROXY_DEFAULT_IDLE_S;
    a->max_sessions = PROXY_DEFAULT_MAX_SESSIONS;
    a->queue = PROXY_DEFAULT_QUEUE;
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (c) {
        case 'l':
            a->listen = optarg;
            break;
        case 't':
            a->to = optarg;
            break;
        case 'L':
            a->listen_plain = optarg;
            break;
        case 'C':
            a->connect = optarg;
            break;
        case 'k':
            a->key = optarg;
            break;
        case 'c':
            a->cert = optarg;
            break;
        case 'S':
            a->save_cert = optarg;
            break;
        case 'a':
            a->ca = optarg;
            break;
        case 'P':
            a->pin = optarg;
            break;
        case 'K':
            a->insecure = true;
            break;
        case 'n':
            a->name = optarg;
            break;
        case 'i':
            if (!cli_parse_int(optarg, 0, 1000000, &a->idle))
                return cli_usage_error("--idle wants a number of seconds, not '%s'", optarg);
            break;
        case 'm':
            if (!cli_parse_int(optarg, 1, 1000000, &a->max_sessions))
                return cli_usage_error("--max-sessions wants 1..1000000, not '%s'", optarg);
            break;
        case 'H':
            if (!cli_parse_int(optarg, 1, 1000000, &a->max_half_open))
                return cli_usage_error("--max-half-open wants 1..1000000, not '%s'", optarg);
            break;
        case 'q':
            if (!cli_parse_int(optarg, 1, 1000000, &a->queue))
                return cli_usage_error("--queue wants 1..1000000 datagrams, not '%s'", optarg);
            break;
        case 'p':
            if (strcmp(optarg, "v2") != 0)
                return cli_usage_error("--proxy-protocol supports 'v2' only, not '%s'", optarg);
            a->pp = true;
            break;
        case 'E':
            a->pp_every = true;
            break;
        case 'M':
            a->metrics = optarg;
            break;
        case 's':
            if (!cli_parse_int(optarg, 0, 1000000, &a->seconds))
                return cli_usage_error("--seconds wants a number of seconds, not '%s'", optarg);
            break;
        case 'h':
            help();
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!a->listen == !a->listen_plain)
        return cli_usage_error("give either --listen (DTLS in) or --listen-plain (plain UDP in)");
    if (a->listen) {
        if (!a->to) return cli_usage_error("--listen needs --to HOST:PORT (the UDP backend)");
        if (a->connect || a->ca || a->pin || a->insecure || a->name)
            return cli_usage_error("--connect, --ca, --pin, --insecure and --name belong to "
                                   "--listen-plain");
        if ((a->key == NULL) != (a->cert == NULL))
            return cli_usage_error("--key and --cert go together");
        if (a->pp_every && !a->pp)
            return cli_usage_error("--proxy-protocol-every needs --proxy-protocol v2");
    } else {
        if (!a->connect)
            return cli_usage_error("--listen-plain needs --connect HOST:PORT (the DTLS server)");
        if (a->to || a->key || a->cert || a->save_cert || a->pp || a->pp_every)
            return cli_usage_error("--to, --key, --cert, --save-cert and --proxy-protocol "
                                   "belong to --listen");
        if (a->ca && a->insecure) return cli_usage_error("--ca and --insecure exclude each other");
        if (a->pin)
            /* The host API does not expose the server certificate's fingerprint yet (see
             * docs/proxy.md); a pin that is not checked must not be accepted. */
            return cli_usage_error("--pin is not available in the reverse mode yet: give the "
                                   "server's certificate with --ca FILE instead");
    }
    return CLI_CONTINUE;
}

/* ---- addresses ------------------------------------------------------------------------ */

/* HOST:PORT (or [ADDR:]PORT with allow_bare) resolved to a numeric address; "" / "*" becomes
 * the dual-stack wildcard "::" when wildcard is allowed. */
static bool resolve(const char *what, const char *s, bool allow_bare, char *ip, size_t cap,
                    int *port, bool *wildcard)
{
    char host[256];
    long p;
    if (!addr_port_split(s, allow_bare, host, sizeof host, &p)) {
        cli_usage_error("%s wants %s, not '%s'", what,
                        allow_bare ? "[ADDR:]PORT" : "HOST:PORT (IPv6 as [ADDR]:PORT)", s);
        return false;
    }
    *port = (int)p;
    if (wildcard) *wildcard = false;
    if (!*host || strcmp(host, "*") == 0) {
        if (!wildcard) {
            cli_usage_error("%s needs a host", what);
            return false;
        }
        *wildcard = true;
        snprintf(ip, cap, "::");
        return true;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_DGRAM;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0 || !res) {
        cli_fail("%s: cannot resolve '%s': %s", what, host, gai_strerror(gai));
        return false;
    }
    int ok =
        getnameinfo(res->ai_addr, res->ai_addrlen, ip, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (ok != 0) {
        cli_fail("%s: cannot use the address of '%s'", what, host);
        return false;
    }
    return true;
}

static void key_of(const struct sockaddr_storage *ss, addr_key *k)
{
    memset(k, 0, sizeof *k);
    k->family = ss->ss_family;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        k->port = a->sin_port;
        memcpy(k->addr, &a->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        k->port = a->sin6_port;
        memcpy(k->addr, &a->sin6_addr, 16);
    }
}

static size_t key_hash(const addr_key *k)
{
    /* FNV-1a: addresses are not chosen by an attacker freely enough (they must be able to
     * receive the replies) for a keyed hash to be worth it here. */
    const uint8_t *b = (const uint8_t *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *k; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return (size_t)(h ^ (h >> 29));
}

static void format_sockaddr(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN], port[8];
    if (getnameinfo((const struct sockaddr *)ss, len, ip, sizeof ip, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, cap, "?");
        return;
    }
    if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.'))
        memmove(ip, ip + 7, strlen(ip + 7) + 1);
    cli_format_addr(ip, atoi(port), out, cap);
}

/* ---- sessions ------------------------------------------------------------------------- */

static void lru_unlink(proxy *px, session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (px->head == s)
        px->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else if (px->tail == s)
        px->tail = s->prev;
    s->prev = s->next = NULL;
}

static void lru_append(proxy *px, session *s)
{
    s->prev = px->tail;
    s->next = NULL;
    if (px->tail)
        px->tail->next = s;
    else
        px->head = s;
    px->tail = s;
}

/* A datagram went through: the session is the most recently active. */
static void touch(proxy *px, session *s)
{
    s->last_ms = px->now;
    if (px->tail != s) {
        lru_unlink(px, s);
        lru_append(px, s);
    }
}

static void backend_close(proxy *px, session *s)
{
    if (!s->backend) return;
    sn_udp_peer_stats st;
    sn_udp_peer_get_stats(s->backend, &st);
    px->gone_backend_queue_drops += st.dropped_queue_full;
    px->gone_backend_oversize += st.dropped_oversize;
    int fd = sn_udp_peer_get_fd(s->backend);
    if (fd >= 0) epoll_ctl(px->ep, EPOLL_CTL_DEL, fd, NULL);
    sn_udp_peer_free(s->backend);
    s->backend = NULL;
}

static void hash_remove(proxy *px, session *s)
{
    if (!px->buckets) return;
    session **pp = &px->buckets[key_hash(&s->key) & (px->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            return;
        }
}

/* Drops what a reverse session still holds for the server; counted when it was data. */
static void queue_clear(session *s, uint64_t *dropped)
{
    if (dropped) *dropped += s->qn;
    while (s->qhead) {
        qdgram *q = s->qhead;
        s->qhead = q->next;
        free(q);
    }
    s->qtail = NULL;
    s->qn = 0;
}

/* Ends a session from our side: the DTLS peer gets close_notify, the backend socket closes at
 * once, and the session is freed at the host's DISCONNECT event. */
static void session_close(proxy *px, session *s, close_reason why)
{
    if (s->closing) return;
    s->closing = true;
    s->why = why;
    lru_unlink(px, s);
    px->open_now--;
    backend_close(px, s);
    queue_clear(s, &px->dropped[DROP_CLOSED]);
    /* A datagram from the same source from now on opens a new session. */
    hash_remove(px, s);
    sn_host_peer_disconnect(s->peer);
}

static const char *close_text(close_reason r, bool reverse)
{
    switch (r) {
    case CLOSE_PEER:
        return reverse ? "closed by the server (close_notify)"
                       : "closed by the client (close_notify)";
    case CLOSE_IDLE:
        return "idle (--idle)";
    case CLOSE_UNREACHABLE:
        return reverse ? "server unreachable" : "backend unreachable (ICMP port unreachable)";
    case CLOSE_HANDSHAKE:
        return "handshake failed";
    default:
        return "error";
    }
}

/* The host's DISCONNECT for a peer that has a session: count, log and free it. */
static void session_gone(proxy *px, session *s, const sn_host_event *ev)
{
    close_reason why = s->why;
    if (!s->closing) {
        switch (ev->reason) {
        case SN_HOST_DISCONNECT_CLOSED:
            why = CLOSE_PEER;
            break;
        case SN_HOST_DISCONNECT_TIMEOUT:
            why = CLOSE_IDLE;
            break;
        case SN_HOST_DISCONNECT_HANDSHAKE_FAILED:
            why = CLOSE_HANDSHAKE;
            break;
        case SN_HOST_DISCONNECT_REFUSED:
            why = CLOSE_UNREACHABLE;
            break;
        default:
            why = CLOSE_ERROR;
            break;
        }
        lru_unlink(px, s);
        px->open_now--;
        backend_close(px, s);
    }
    px->closed[why]++;
    if (why == CLOSE_HANDSHAKE || why == CLOSE_ERROR || (why == CLOSE_UNREACHABLE && px->reverse))
        cli_log("%s closed: %s%s%s", s->who, close_text(why, px->reverse), *ev->message ? ": " : "",
                ev->message);
    else
        cli_log("%s closed: %s (%llu datagrams up, %llu down)", s->who,
                close_text(why, px->reverse), (unsigned long long)s->up,
                (unsigned long long)s->down);
    hash_remove(px, s);
    queue_clear(s, &px->dropped[DROP_CLOSED]);
    free(s);
}

/* Reads what the backend socket holds and encrypts it back to the client. The counters are
 * looked at only when the socket reported an error or had nothing to read: reading them costs
 * a system call (the kernel's drop count), and an ICMP port unreachable always shows as one of
 * those two. */
static void backend_ready(proxy *px, session *s, uint32_t events)
{
    if (s->closing || !s->backend) return;
    int n = sn_udp_peer_get_available_packet_count(s->backend);
    if ((events & EPOLLERR) || n <= 0) {
        sn_udp_peer_stats st;
        sn_udp_peer_get_stats(s->backend, &st);
        if (st.icmp_refused) {
            session_close(px, s, CLOSE_UNREACHABLE);
            return;
        }
    }
    if (n <= 0) return;
    int maxp = sn_host_peer_get_max_packet_size(s->peer);
    touch(px, s);
    for (; n > 0; n--) {
        size_t len;
        if (sn_udp_peer_get_packet(s->backend, px->buf, sizeof px->buf, &len) != SN_OK) break;
        if (maxp > 0 && len > (size_t)maxp) {
            px->dropped[DROP_OVERSIZE]++;
            continue;
        }
        sn_err e = sn_host_peer_send(s->peer, px->buf, len);
        if (e == SN_OK) {
            px->down_pkts++;
            px->down_bytes += len;
            s->down++;
        } else {
            px->dropped[e == SN_ERR_BUSY ? DROP_SEND_BUSY : DROP_SEND_ERROR]++;
        }
    }
}

/* forward: the handshake is done; open the backend socket. */
static void forward_open(proxy *px, sn_host_peer *peer)
{
    session *s = calloc(1, sizeof *s);
    char who[64];
    cli_format_addr(sn_host_peer_get_address(peer), sn_host_peer_get_port(peer), who, sizeof who);
    if (!s) {
        cli_log("%s refused: out of memory", who);
        px->closed[CLOSE_ERROR]++;
        sn_host_peer_disconnect(peer);
        return;
    }
    snprintf(s->who, sizeof s->who, "%s", who);
    s->peer = peer;
    s->backend = sn_udp_peer_new();
    int fd = -1;
    if (!s->backend ||
        sn_udp_peer_connect_to_host(s->backend, px->backend_ip, px->backend_port) != SN_OK ||
        sn_udp_peer_set_queue_limits(s->backend, (size_t)px->queue, (size_t)px->queue * 2048u) !=
            SN_OK ||
        (fd = sn_udp_peer_get_fd(s->backend)) < 0) {
        cli_log("%s refused: no socket towards the backend: %s", who, sn_last_error_message());
        sn_udp_peer_free(s->backend);
        free(s);
        px->closed[CLOSE_ERROR]++;
        sn_host_peer_disconnect(peer);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(px->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        cli_log("%s refused: epoll: %s", who, strerror(errno));
        sn_udp_peer_free(s->backend);
        free(s);
        px->closed[CLOSE_ERROR]++;
        sn_host_peer_disconnect(peer);
        return;
    }
    if (px->pp)
        s->pp_len = pp2_encode_dgram(sn_host_peer_get_address(peer), sn_host_peer_get_port(peer),
                                     px->listen_ip, px->listen_port, s->pp);
    sn_host_peer_set_user_data(peer, s);
    s->connected = true;
    px->opened++;
    px->open_now++;
    s->last_ms = px->now;
    lru_append(px, s);
    cli_log("%s connected (%s), backend sees udp port %d", who, sn_host_peer_get_cipher(peer),
            sn_udp_peer_get_local_port(s->backend));
}

/* forward: one decrypted datagram from the client to the backend. */
static void forward_up(proxy *px, session *s, const uint8_t *data, size_t len)
{
    if (s->closing || !s->backend) return;
    touch(px, s);
    const uint8_t *out = data;
    size_t olen = len;
    bool with_pp = px->pp && s->pp_len && (!s->pp_sent || px->pp_every);
    if (with_pp) {
        memcpy(px->buf, s->pp, s->pp_len);
        memcpy(px->buf + s->pp_len, data, len);
        out = px->buf;
        olen = s->pp_len + len;
    }
    /* An ICMP port unreachable shows here as a send error, or else as an error on the socket
     * (EPOLLERR: backend_ready). */
    sn_err e = sn_udp_peer_put_packet(s->backend, out, olen);
    if (e == SN_ERR_CONNECTION_ERROR) {
        px->dropped[DROP_SEND_ERROR]++;
        session_close(px, s, CLOSE_UNREACHABLE);
        return;
    }
    if (e != SN_OK) {
        px->dropped[e == SN_ERR_BUSY ? DROP_SEND_BUSY : DROP_SEND_ERROR]++;
        return;
    }
    if (with_pp) {
        s->pp_sent = true;
        px->pp_headers++;
    }
    px->up_pkts++;
    px->up_bytes += len;
    s->up++;
}

/* reverse: a datagram for the DTLS server. */
static void reverse_send_up(proxy *px, session *s, const uint8_t *data, size_t len)
{
    int maxp = sn_host_peer_get_max_packet_size(s->peer);
    if (maxp > 0 && len > (size_t)maxp) {
        px->dropped[DROP_OVERSIZE]++;
        return;
    }
    sn_err e = sn_host_peer_send(s->peer, data, len);
    if (e != SN_OK) {
        px->dropped[e == SN_ERR_BUSY ? DROP_SEND_BUSY : DROP_SEND_ERROR]++;
        return;
    }
    px->up_pkts++;
    px->up_bytes += len;
    s->up++;
}

static session *reverse_open(proxy *px, const struct sockaddr_storage *from, socklen_t flen,
                             const addr_key *k)
{
    session *s = calloc(1, sizeof *s);
    if (!s) {
        px->dropped[DROP_SEND_ERROR]++;
        return NULL;
    }
    format_sockaddr(from, flen, s->who, sizeof s->who);
    s->peer = sn_host_connect(px->host, px->server_ip, px->server_port, px->server_name, px->copts);
    if (!s->peer) {
        cli_log("%s: cannot start a DTLS session: %s", s->who, sn_last_error_message());
        px->closed[CLOSE_ERROR]++;
        free(s);
        return NULL;
    }
    sn_host_peer_set_user_data(s->peer, s);
    s->key = *k;
    memcpy(&s->from, from, flen);
    s->from_len = flen;
    size_t b = key_hash(k) & (px->nbuckets - 1);
    s->hnext = px->buckets[b];
    px->buckets[b] = s;
    px->opened++;
    px->open_now++;
    s->last_ms = px->now;
    lru_append(px, s);
    return s;
}

static void plain_ready(proxy *px)
{
    for (int i = 0; i < PLAIN_READ_BUDGET; i++) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t r = recvfrom(px->plain_fd, px->buf, sizeof px->buf, MSG_TRUNC,
                             (struct sockaddr *)&from, &flen);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            /* ICMP about an earlier reply, and the like: not about the next datagram. */
            continue;
        }
        addr_key k;
        key_of(&from, &k);
        session *s = px->buckets[key_hash(&k) & (px->nbuckets - 1)];
        while (s && memcmp(&s->key, &k, sizeof k) != 0)
            s = s->hnext;
        if (!s) {
            if (px->open_now >= (size_t)px->max_sessions) {
                px->dropped[DROP_SESSIONS_FULL]++;
                continue;
            }
            if (!(s = reverse_open(px, &from, flen, &k))) continue;
        }
        touch(px, s);
        size_t len = (size_t)r;
        if (len > sizeof px->buf - PP2_MAX_HEADER) {
            px->dropped[DROP_OVERSIZE]++;
            continue;
        }
        if (s->connected) {
            reverse_send_up(px, s, px->buf, len);
            continue;
        }
        if (s->qn >= (size_t)px->queue) {
            px->dropped[DROP_QUEUE_FULL]++;
            continue;
        }
        qdgram *q = malloc(sizeof *q + len);
        if (!q) {
            px->dropped[DROP_QUEUE_FULL]++;
            continue;
        }
        q->next = NULL;
        q->len = len;
        memcpy(q->data, px->buf, len);
        if (s->qtail)
            s->qtail->next = q;
        else
            s->qhead = q;
        s->qtail = q;
        s->qn++;
    }
}

static void reverse_down(proxy *px, session *s, const uint8_t *data, size_t len)
{
    if (s->closing) return;
    touch(px, s);
    ssize_t r;
    do
        r = sendto(px->plain_fd, data, len, 0, (const struct sockaddr *)&s->from, s->from_len);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        px->dropped[errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS
                        ? DROP_SEND_BUSY
                        : DROP_SEND_ERROR]++;
        return;
    }
    px->down_pkts++;
    px->down_bytes += len;
    s->down++;
}

static void handle_event(proxy *px, const sn_host_event *ev)
{
    session *s = ev->user_data;
    switch (ev->type) {
    case SN_HOST_EVENT_CONNECT:
        if (!px->reverse) {
            forward_open(px, ev->peer);
        } else if (s) {
            s->connected = true;
            cli_log("%s connected to the server (%s)", s->who, sn_host_peer_get_cipher(ev->peer));
            while (s->qhead && !s->closing) {
                qdgram *q = s->qhead;
                s->qhead = q->next;
                s->qn--;
                reverse_send_up(px, s, q->data, q->len);
                free(q);
            }
            if (!s->qhead) s->qtail = NULL;
        }
        break;
    case SN_HOST_EVENT_RECEIVE:
        if (!s) break;
        if (px->reverse)
            reverse_down(px, s, ev->data, ev->len);
        else
            forward_up(px, s, ev->data, ev->len);
        break;
    case SN_HOST_EVENT_DISCONNECT:
        if (s) session_gone(px, s, ev);
        break;
    default:
        break;
    }
}

/* ---- metrics -------------------------------------------------------------------------- */

static void render(metrics_text *t, void *ctx)
{
    proxy *px = ctx;
    sn_host_stats hs;
    sn_host_get_stats(px->host, &hs);
    metrics_host_stats(t, &hs);
    uint64_t queue_drops = px->gone_backend_queue_drops, oversize = px->gone_backend_oversize;
    for (session *s = px->head; s; s = s->next) {
        if (!s->backend) continue;
        sn_udp_peer_stats st;
        sn_udp_peer_get_stats(s->backend, &st);
        queue_drops += st.dropped_queue_full;
        oversize += st.dropped_oversize;
    }
    metrics_gauge(t, "sealnet_proxy_sessions", "Proxy sessions open now.", px->open_now);
    metrics_counter(t, "sealnet_proxy_sessions_opened_total", "Proxy sessions opened.", px->opened);
    metrics_family(t, "sealnet_proxy_sessions_closed_total", "counter",
                   "Proxy sessions closed, by reason.");
    for (int i = 0; i < CLOSE_COUNT; i++)
        metrics_sample(t, "sealnet_proxy_sessions_closed_total", close_label[i], px->closed[i]);
    metrics_counter(t, "sealnet_proxy_upstream_datagrams_total",
                    px->reverse ? "Datagrams from plain clients sent to the DTLS server."
                                : "Datagrams from DTLS clients sent to the backend.",
                    px->up_pkts);
    metrics_counter(t, "sealnet_proxy_upstream_bytes_total",
                    "Payload bytes sent upstream (without PROXY headers).", px->up_bytes);
    metrics_counter(t, "sealnet_proxy_downstream_datagrams_total",
                    px->reverse ? "Datagrams from the DTLS server sent to plain clients."
                                : "Datagrams from the backend sent to DTLS clients.",
                    px->down_pkts);
    metrics_counter(t, "sealnet_proxy_downstream_bytes_total", "Payload bytes sent downstream.",
                    px->down_bytes);
    metrics_family(t, "sealnet_proxy_dropped_total", "counter",
                   "Datagrams the proxy dropped, by reason.");
    uint64_t d[DROP_COUNT];
    memcpy(d, px->dropped, sizeof d);
    d[DROP_QUEUE_FULL] += queue_drops;
    d[DROP_OVERSIZE] += oversize;
    for (int i = 0; i < DROP_COUNT; i++)
        metrics_sample(t, "sealnet_proxy_dropped_total", drop_label[i], d[i]);
    metrics_counter(t, "sealnet_proxy_proxy_protocol_headers_total",
                    "PROXY protocol v2 headers sent to the backend.", px->pp_headers);
}

/* ---- setup and loop ------------------------------------------------------------------- */

static int plain_socket(const char *ip, bool wildcard, int port, int *bound_port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    int fam = AF_INET6;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    if (!wildcard && inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        fam = AF_INET;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
    } else {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (!wildcard && inet_pton(AF_INET6, ip, &a6->sin6_addr) != 1) {
            errno = EINVAL;
            return -1;
        }
        len = sizeof *a6;
    }
    int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && wildcard) {
        /* No IPv6 on this machine: IPv4 only. */
        memset(&ss, 0, sizeof ss);
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) return -1;
    if (ss.ss_family == AF_INET6 && wildcard) {
        int off = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t glen = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &glen);
    *bound_port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                 : ((struct sockaddr_in6 *)&got)->sin6_port);
    return fd;
}

/* Each forward session holds one descriptor (its backend socket): raise the soft limit towards
 * the hard one so that --max-sessions is not cut short by the usual 1024. */
static void raise_fd_limit(long sessions)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    rlim_t want = (rlim_t)sessions + 64;
    if (r.rlim_max != RLIM_INFINITY && want > r.rlim_max) want = r.rlim_max;
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < want) {
        r.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static int epoll_add(int ep, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int run(proxy *px, metrics *m, long seconds)
{
    int rc = CLI_OK;
    uint64_t deadline = seconds ? cli_now_ms() + (uint64_t)seconds * 1000u : 0;
    const uint64_t idle_ms = (uint64_t)px->idle_s * 1000u;
    struct epoll_event evs[64];
    px->now = cli_now_ms();
    while (!cli_stopping() && (!deadline || px->now < deadline)) {
        int wait = 250;
        int t = sn_host_next_timeout_ms(px->host);
        if (t >= 0 && t < wait) wait = t;
        if (idle_ms && px->head) {
            uint64_t due = px->head->last_ms + idle_ms;
            int left = due <= px->now ? 0 : (int)(due - px->now);
            if (left < wait) wait = left;
        }
        t = metrics_timeout_ms(m);
        if (t >= 0 && t < wait) wait = t;
        int n = epoll_wait(px->ep, evs, 64, wait);
        if (n < 0 && errno != EINTR) {
            rc = cli_fail("epoll_wait: %s", strerror(errno));
            break;
        }
        px->now = cli_now_ms();
        bool plain = false, host_ready = false;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &tag_host)
                host_ready = true;
            else if (tag == &tag_plain)
                plain = true;
            else if (tag != &tag_metrics)
                backend_ready(px, tag, evs[i].events);
        }
        if (plain) plain_ready(px);
        sn_host_event ev;
        int r = 0;
        /* The host needs a service call when its sockets have data, a timer is due, or events
         * wait (e.g. the DISCONNECT of a session closed above): next_timeout says 0 then. Not
         * after every backend datagram, which saves a system call per datagram. */
        bool service = host_ready || sn_host_next_timeout_ms(px->host) == 0;
        for (int k = 0; service && k < EVENT_BUDGET; k++) {
            r = sn_host_service(px->host, &ev, 0);
            if (r <= 0) break;
            handle_event(px, &ev);
        }
        if (r < 0) {
            rc = cli_fail("host failed: %s", sn_last_error_message());
            break;
        }
        if (idle_ms)
            while (px->head && px->now - px->head->last_ms >= idle_ms)
                session_close(px, px->head, CLOSE_IDLE);
        metrics_poll(m);
    }
    return rc;
}

static void free_sessions(proxy *px)
{
    size_t n = sn_host_get_peers(px->host, NULL, 0);
    sn_host_peer **all = n ? calloc(n, sizeof *all) : NULL;
    if (!all) return;
    n = sn_host_get_peers(px->host, all, n);
    for (size_t i = 0; i < n; i++) {
        session *s = sn_host_peer_get_user_data(all[i]);
        if (!s) continue;
        sn_host_peer_set_user_data(all[i], NULL);
        if (s->backend) {
            int fd = sn_udp_peer_get_fd(s->backend);
            if (fd >= 0) epoll_ctl(px->ep, EPOLL_CTL_DEL, fd, NULL);
            sn_udp_peer_free(s->backend);
        }
        queue_clear(s, NULL); /* shutting down */
        free(s);
    }
    free(all);
}

int cmd_proxy(int argc, char **argv)
{
    proxy_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;

    proxy *px = calloc(1, sizeof *px);
    if (!px) return cli_fail("out of memory");
    px->reverse = a.listen_plain != NULL;
    px->idle_s = a.idle;
    px->max_sessions = a.max_sessions;
    px->queue = a.queue;
    px->pp = a.pp;
    px->pp_every = a.pp_every;
    px->plain_fd = -1;
    px->ep = -1;
    raise_fd_limit(a.max_sessions);
    sn_tls_options *sopts = NULL;
    metrics *m = NULL;
    rc = CLI_FAIL;

    bool wildcard = false;
    sn_host_config cfg;
    sn_host_default_config(&cfg);
    cfg.max_peers = (int)a.max_sessions;
    if (a.max_half_open) cfg.max_half_open = (int)a.max_half_open;
    /* The proxy's --idle counts datagrams both ways; the host's own timer only counts what the
     * DTLS side sends, which would cut a client that only listens. */
    cfg.idle_timeout_ms = 0;
    /* The DTLS side is a plain DTLS peer (Godot, openssl): no keepalive records, which it would
     * take for application data. */
    cfg.keepalive_interval_ms = 0;

    if (!px->reverse) {
        if (!resolve("--listen", a.listen, true, px->listen_ip, sizeof px->listen_ip,
                     &px->listen_port, &wildcard) ||
            !resolve("--to", a.to, false, px->backend_ip, sizeof px->backend_ip, &px->backend_port,
                     NULL)) {
            rc = CLI_USAGE;
            goto out;
        }
        if (px->backend_port == 0) {
            rc = cli_usage_error("--to needs a port from 1 to 65535");
            goto out;
        }
        sn_crypto_key *key;
        sn_x509_cert *cert;
        if (cli_server_credentials(a.key, a.cert, a.save_cert, &key, &cert) != CLI_OK) goto out;
        sopts = sn_tls_options_server(key, cert);
        sn_crypto_key_free(key);
        sn_x509_cert_free(cert);
        if (!sopts) {
            cli_fail("key and certificate unusable: %s", sn_last_error_message());
            goto out;
        }
        cfg.server_options = sopts;
        cfg.bind_address = wildcard ? "*" : px->listen_ip;
        cfg.port = px->listen_port;
    } else {
        char ip[INET6_ADDRSTRLEN];
        int port;
        char name[256];
        long cport;
        if (!resolve("--listen-plain", a.listen_plain, true, ip, sizeof ip, &port, &wildcard) ||
            !resolve("--connect", a.connect, false, px->server_ip, sizeof px->server_ip,
                     &px->server_port, NULL)) {
            rc = CLI_USAGE;
            goto out;
        }
        if (px->server_port == 0) {
            rc = cli_usage_error("--connect needs a port from 1 to 65535");
            goto out;
        }
        addr_port_split(a.connect, false, name, sizeof name, &cport);
        px->server_name = strdup(a.name ? a.name : name);
        cli_client trust; /* the clients' trust options: --ca, --insecure, --name */
        memset(&trust, 0, sizeof trust);
        trust.datagram = true;
        trust.a.ca = a.ca;
        trust.a.insecure = a.insecure;
        trust.a.name = a.name;
        px->copts = cli_client_options(&trust);
        if (!px->server_name || !px->copts) goto out;
        int bound;
        px->plain_fd = plain_socket(ip, wildcard, port, &bound);
        if (px->plain_fd < 0) {
            cli_fail("cannot listen on udp %s: %s", a.listen_plain, strerror(errno));
            goto out;
        }
        px->listen_port = bound;
        size_t nb = 64;
        while (nb < (size_t)a.max_sessions * 2 && nb < ((size_t)1 << 22))
            nb *= 2;
        px->buckets = calloc(nb, sizeof *px->buckets);
        if (!px->buckets) {
            cli_fail("out of memory");
            goto out;
        }
        px->nbuckets = nb;
    }

    px->host = sn_host_create(&cfg);
    if (!px->host) {
        cli_fail("cannot listen on udp %s: %s", a.listen ? a.listen : "(client)",
                 sn_last_error_message());
        goto out;
    }
    px->ep = epoll_create1(EPOLL_CLOEXEC);
    if (px->ep < 0 || epoll_add(px->ep, sn_host_get_fd(px->host), &tag_host) != 0 ||
        (px->plain_fd >= 0 && epoll_add(px->ep, px->plain_fd, &tag_plain) != 0)) {
        cli_fail("epoll: %s", strerror(errno));
        goto out;
    }
    cli_install_signals();
    if (!px->reverse) {
        px->listen_port = sn_host_get_port(px->host);
        printf("listening on udp port %d (DTLS)\n", px->listen_port);
        char to[80];
        cli_format_addr(px->backend_ip, px->backend_port, to, sizeof to);
        printf("forwarding to %s (plain UDP, one source port per session)\n", to);
    } else {
        printf("listening on udp port %d (plain UDP)\n", px->listen_port);
        char to[80];
        cli_format_addr(px->server_ip, px->server_port, to, sizeof to);
        printf("connecting to %s as %s (DTLS, %s)\n", to, px->server_name,
               a.insecure ? "certificate not verified"
               : a.ca     ? "verified against --ca"
                          : "system CAs");
    }
    fflush(stdout);
    m = metrics_start(a.metrics, render, px);
    if (!m) goto out;
    if (metrics_fd(m) >= 0 && epoll_add(px->ep, metrics_fd(m), &tag_metrics) != 0) {
        cli_fail("epoll: %s", strerror(errno));
        goto out;
    }
    char idle[32];
    if (a.idle)
        snprintf(idle, sizeof idle, "%ld s", a.idle);
    else
        snprintf(idle, sizeof idle, "never");
    printf("mode: %s, idle %s, at most %ld sessions, queue %ld%s\n",
           px->reverse ? "plain UDP -> DTLS" : "DTLS -> plain UDP", idle, a.max_sessions, a.queue,
           !px->pp        ? ""
           : px->pp_every ? ", PROXY v2 on every datagram"
                          : ", PROXY v2 on the first datagram");
    fflush(stdout);

    rc = run(px, m, a.seconds);
    cli_log("stopping: %llu sessions, %llu datagrams up, %llu down", (unsigned long long)px->opened,
            (unsigned long long)px->up_pkts, (unsigned long long)px->down_pkts);
out:
    if (px->host) free_sessions(px);
    metrics_stop(m);
    sn_host_free(px->host); /* close_notify to every connected peer */
    if (px->ep >= 0) close(px->ep);
    if (px->plain_fd >= 0) close(px->plain_fd);
    free(px->buckets);
    sn_tls_options_free(px->copts);
    sn_tls_options_free(sopts);
    free((char *)px->server_name);
    free(px);
    return rc;
}
