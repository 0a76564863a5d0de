/* The in-memory datagram network (test_net.h). Destinations live in a small open-addressing
 * table; each holds a FIFO of datagrams. A socket's addresses are read with getsockname and
 * getpeername once and cached until sealnet says the socket was bound, connected or closed
 * (the transport's forget), so a descriptor number reused by a new socket never inherits the
 * old one's address. */
#include "test_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { TABLE = 1024 };

typedef struct dgram {
    struct dgram *next;
    sn_test_addr from;
    size_t len;
    uint8_t data[];
} dgram;

typedef struct bucket {
    bool used;
    sn_test_addr to;
    dgram *head, *tail;
    size_t count;
    uint64_t dropped; /* its queue was full (what the socket bound here reports as drops) */
} bucket;

/* Datagrams up to SMALL bytes travel in recycled blocks: a fuzz target sends and reads
 * thousands a second, and malloc/free per datagram was a visible part of its time. */
enum { SMALL = 2048, SPARE_MAX = 512 };
static dgram *spare;
static size_t nspare;

static dgram *dgram_alloc(size_t len)
{
    if (len <= SMALL && spare) {
        dgram *d = spare;
        spare = d->next;
        nspare--;
        return d;
    }
    return malloc(sizeof(dgram) + (len <= SMALL ? SMALL : len));
}

static void dgram_free(dgram *d)
{
    if (d->len <= SMALL && nspare < SPARE_MAX) {
        d->next = spare;
        spare = d;
        nspare++;
        return;
    }
    free(d);
}

static bucket table[TABLE];
static uint16_t used[TABLE]; /* indices of the buckets in use, so a reset touches only those */
static size_t total_queued, used_buckets;
static size_t limit_per_dest = 256, limit_total = 8192;
static int fail_errno;
static sn_test_net_stats stats;

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool from_sockaddr(const struct sockaddr *sa, sn_test_addr *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(out->ip, v4_prefix, 12);
        memcpy(out->ip + 12, &in->sin_addr, 4);
        out->port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(out->ip, &in6->sin6_addr, 16);
        out->port = ntohs(in6->sin6_port);
        return true;
    }
    return false;
}

/* Word compares, not memcmp: libFuzzer intercepts memcmp and records every call's operands. */
static inline uint64_t ip_hi(const sn_test_addr *a)
{
    uint64_t w;
    memcpy(&w, a->ip, 8);
    return w;
}

static inline uint64_t ip_lo(const sn_test_addr *a)
{
    uint64_t w;
    memcpy(&w, a->ip + 8, 8);
    return w;
}

static bool is_v4(const sn_test_addr *a)
{
    return ip_hi(a) == 0 && a->ip[8] == 0 && a->ip[9] == 0 && a->ip[10] == 0xff &&
           a->ip[11] == 0xff;
}

static bool is_any(const sn_test_addr *a)
{
    uint32_t w;
    memcpy(&w, a->ip + 12, 4);
    return (ip_hi(a) == 0 && ip_lo(a) == 0) || (is_v4(a) && w == 0);
}

/* Writes a as a sockaddr of `family` (a v4 address seen by an IPv6 socket is v4-mapped);
 * returns the length, 0 when it cannot be expressed (IPv6 source, IPv4 socket). */
static unsigned to_sockaddr(const sn_test_addr *a, int family, struct sockaddr *out, unsigned cap)
{
    if (family == AF_INET) {
        if (!is_v4(a) || cap < sizeof(struct sockaddr_in)) return 0;
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(a->port)};
        memcpy(&in.sin_addr, a->ip + 12, 4);
        memcpy(out, &in, sizeof in);
        return sizeof in;
    }
    if (cap < sizeof(struct sockaddr_in6)) return 0;
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(a->port)};
    memcpy(&in6.sin6_addr, a->ip, 16);
    memcpy(out, &in6, sizeof in6);
    return sizeof in6;
}

bool sn_test_addr_equal(const sn_test_addr *a, const sn_test_addr *b)
{
    return a->port == b->port && ip_hi(a) == ip_hi(b) && ip_lo(a) == ip_lo(b);
}

sn_test_addr sn_test_addr_v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    sn_test_addr r;
    memset(&r, 0, sizeof r);
    memcpy(r.ip, v4_prefix, 12);
    r.ip[12] = a, r.ip[13] = b, r.ip[14] = c, r.ip[15] = d;
    r.port = port;
    return r;
}

bool sn_test_addr_ip(const char *ip, uint16_t port, sn_test_addr *out)
{
    memset(out, 0, sizeof *out);
    out->port = port;
    if (inet_pton(AF_INET, ip, out->ip + 12) == 1) {
        memcpy(out->ip, v4_prefix, 12);
        return true;
    }
    return inet_pton(AF_INET6, ip, out->ip) == 1;
}

/* A multiply-xorshift of the address's two words and port: a few instructions, where a
 * byte-wise FNV over 18 bytes was a visible part of every read in the fuzz targets. */
static size_t hash(const sn_test_addr *a)
{
    uint64_t x = (ip_hi(a) * 0x9e3779b97f4a7c15ull) ^ ip_lo(a) ^ a->port;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
    return (size_t)(x % TABLE);
}

/* The bucket of `to`; created when `create` (NULL when the table is full). */
static bucket *find(const sn_test_addr *to, bool create)
{
    size_t i = hash(to);
    for (size_t n = 0; n < TABLE; n++, i = (i + 1) % TABLE) {
        bucket *b = &table[i];
        if (!b->used) {
            if (!create || used_buckets >= TABLE * 3 / 4) return NULL;
            b->used = true;
            b->to = *to;
            used[used_buckets++] = (uint16_t)i;
            return b;
        }
        if (sn_test_addr_equal(&b->to, to)) return b;
    }
    return NULL;
}

static bool enqueue(const sn_test_addr *from, const sn_test_addr *to, const void *data, size_t len)
{
    bucket *b = find(to, true);
    if (!b || total_queued >= limit_total || b->count >= limit_per_dest) {
        stats.dropped_full++;
        if (b) b->dropped++;
        return false;
    }
    dgram *d = dgram_alloc(len);
    if (!d) {
        stats.dropped_full++;
        b->dropped++;
        return false;
    }
    d->next = NULL;
    d->from = *from;
    d->len = len;
    if (len) memcpy(d->data, data, len);
    if (b->tail)
        b->tail->next = d;
    else
        b->head = d;
    b->tail = d;
    b->count++;
    total_queued++;
    stats.sent++;
    return true;
}

static dgram *dequeue(bucket *b)
{
    dgram *d = b->head;
    if (!d) return NULL;
    b->head = d->next;
    if (!b->head) b->tail = NULL;
    b->count--;
    total_queued--;
    return d;
}

/* Cache of socket names: fd -> local and peer address. sealnet tells the transport when one of
 * its sockets is bound, connected or about to close (sn_udp_transport.forget), and the entry goes
 * then, so a descriptor number reused by a new socket never inherits the old one's names. On by
 * default; sn_test_net_cache_names(false) asks the kernel at every datagram instead. */
enum { NAME_CACHE = 64 };
typedef struct name_entry {
    int fd; /* -1: free */
    bool have_self, have_peer;
    int family;
    sn_test_addr self, peer;
} name_entry;
static bool cache_names = true;
static name_entry names[NAME_CACHE];
static int nnames;

static name_entry *cached(int fd)
{
    if (!cache_names) return NULL;
    for (int i = 0; i < nnames; i++)
        if (names[i].fd == fd) return &names[i];
    if (nnames == NAME_CACHE) return NULL;
    name_entry *e = &names[nnames++];
    memset(e, 0, sizeof *e);
    e->fd = fd;
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &l) == 0) {
        e->family = ss.ss_family;
        e->have_self = from_sockaddr((struct sockaddr *)&ss, &e->self);
    }
    l = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &l) == 0)
        e->have_peer = from_sockaddr((struct sockaddr *)&ss, &e->peer);
    return e;
}

static bool sock_name(int fd, sn_test_addr *out, int *family)
{
    name_entry *e = cached(fd);
    if (e) {
        *out = e->self;
        *family = e->family;
        return e->have_self;
    }
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &l) != 0) return false;
    *family = ss.ss_family;
    return from_sockaddr((struct sockaddr *)&ss, out);
}

static bool peer_name(int fd, sn_test_addr *out)
{
    name_entry *e = cached(fd);
    if (e) {
        *out = e->peer;
        return e->have_peer;
    }
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &l) != 0) return false;
    return from_sockaddr((struct sockaddr *)&ss, out);
}

void sn_test_net_cache_names(bool on)
{
    cache_names = on;
    nnames = 0;
}

static void net_forget(void *user, int fd)
{
    (void)user;
    for (int i = 0; i < nnames; i++)
        if (names[i].fd == fd) {
            names[i] = names[--nnames];
            return;
        }
}

static long net_send(void *user, int fd, const void *buf, size_t len, const struct sockaddr *to,
                     unsigned to_len)
{
    (void)user;
    (void)to_len;
    if (fail_errno) {
        stats.send_failures++;
        errno = fail_errno;
        return -1;
    }
    sn_test_addr src, dst;
    int family;
    if (!sock_name(fd, &src, &family)) {
        errno = EBADF;
        return -1;
    }
    if (to) {
        if (!from_sockaddr(to, &dst)) {
            errno = EAFNOSUPPORT;
            return -1;
        }
    } else if (!peer_name(fd, &dst)) {
        errno = EDESTADDRREQ;
        return -1;
    }
    if (is_any(&src)) { /* the kernel would pick the route's source: loopback here */
        uint16_t port = src.port;
        if (is_v4(&dst))
            src = sn_test_addr_v4(127, 0, 0, 1, port);
        else
            sn_test_addr_ip("::1", port, &src);
    }
    enqueue(&src, &dst, buf, len); /* a full queue loses it silently, like the kernel */
    return (long)len;
}

static long net_recv(void *user, int fd, void *buf, size_t cap, struct sockaddr *from,
                     unsigned *from_len)
{
    (void)user;
    if (total_queued == 0) {
        errno = EAGAIN;
        return -1;
    }
    sn_test_addr self, peer;
    int family;
    if (!sock_name(fd, &self, &family)) {
        errno = EBADF;
        return -1;
    }
    bool connected = peer_name(fd, &peer);
    for (;;) {
        bucket *b = NULL;
        if (is_any(&self)) {
            for (size_t k = 0; k < used_buckets && !b; k++) {
                bucket *c = &table[used[k]];
                if (c->head && c->to.port == self.port && (family == AF_INET6 || is_v4(&c->to)))
                    b = c;
            }
        } else {
            b = find(&self, false);
        }
        dgram *d = b ? dequeue(b) : NULL;
        if (!d) {
            errno = EAGAIN;
            return -1;
        }
        if (connected && !sn_test_addr_equal(&d->from, &peer)) {
            stats.dropped_filter++;
            dgram_free(d);
            continue;
        }
        unsigned n = to_sockaddr(&d->from, family, from, *from_len);
        if (n == 0) {
            stats.dropped_filter++;
            dgram_free(d);
            continue;
        }
        *from_len = n;
        memcpy(buf, d->data, d->len < cap ? d->len : cap);
        long len = (long)d->len;
        if (d->len > cap) stats.dropped_trunc++;
        stats.delivered++;
        dgram_free(d);
        return len;
    }
}

void sn_test_net_reset(void)
{
    for (size_t k = 0; k < used_buckets; k++) {
        bucket *b = &table[used[k]];
        dgram *d;
        while ((d = dequeue(b)))
            dgram_free(d);
        memset(b, 0, sizeof *b);
    }
    used_buckets = 0;
    total_queued = 0;
    fail_errno = 0;
    memset(&stats, 0, sizeof stats);
}

/* What dropped_kernel reports for socket fd: the drops of its address's queue (summed over
 * the port's addresses for a wildcard-bound socket). No lookup at all while nothing was
 * dropped, the usual case: statistics cost no system call. */
static uint64_t net_drops(void *user, int fd)
{
    (void)user;
    if (stats.dropped_full == 0) return 0;
    sn_test_addr self;
    int family;
    if (!sock_name(fd, &self, &family)) return 0;
    if (!is_any(&self)) {
        bucket *b = find(&self, false);
        return b ? b->dropped : 0;
    }
    uint64_t n = 0;
    for (size_t k = 0; k < used_buckets; k++) {
        bucket *c = &table[used[k]];
        if (c->to.port == self.port && (family == AF_INET6 || is_v4(&c->to))) n += c->dropped;
    }
    return n;
}

void sn_test_net_install(void)
{
    static const sn_udp_transport t = {
        .send = net_send, .recv = net_recv, .drops = net_drops, .forget = net_forget};
    sn_test_net_reset();
    sn_set_udp_transport(&t);
}

void sn_test_net_remove(void)
{
    sn_set_udp_transport(NULL);
    sn_test_net_reset();
    while (spare) {
        dgram *d = spare;
        spare = d->next;
        free(d);
    }
    nspare = 0;
    nnames = 0;
}

bool sn_test_net_inject(const sn_test_addr *from, const sn_test_addr *to, const void *data,
                        size_t len)
{
    return enqueue(from, to, data, len);
}

long sn_test_net_take(const sn_test_addr *to, void *buf, size_t cap, sn_test_addr *from)
{
    bucket *b = find(to, false);
    dgram *d = b ? dequeue(b) : NULL;
    if (!d) return -1;
    if (from) *from = d->from;
    memcpy(buf, d->data, d->len < cap ? d->len : cap);
    long len = (long)d->len;
    stats.delivered++;
    dgram_free(d);
    return len;
}

size_t sn_test_net_queued_to(const sn_test_addr *to)
{
    bucket *b = find(to, false);
    return b ? b->count : 0;
}

size_t sn_test_net_queued(void)
{
    return total_queued;
}

void sn_test_net_set_limits(size_t per_destination, size_t total)
{
    limit_per_dest = per_destination;
    limit_total = total;
}

void sn_test_net_fail_sends(int err)
{
    fail_errno = err;
}

void sn_test_net_get_stats(sn_test_net_stats *out)
{
    *out = stats;
}

/* ---- DTLS wire helpers ---- */

/* A DTLS ClientHello with the cookie replaced by `cookie`: record, handshake and fragment lengths
 * rewritten. Returns the new length, 0 when `ch` is not a single-fragment ClientHello. */
size_t sn_test_dtls_splice_cookie(const uint8_t *ch, size_t len, const uint8_t *cookie,
                                  size_t cookie_len, uint8_t *out, size_t cap)
{
    if (len < 13 + 12 + 2 + 32 + 1 || ch[0] != 22 || ch[13] != 1) return 0;
    size_t record_len = (size_t)ch[11] << 8 | ch[12];
    if (13 + record_len > len) record_len = len - 13;
    size_t at = 13 + 12 + 2 + 32;
    size_t sid = ch[at];
    if (sid > 32 || at + 1 + sid + 1 > 13 + record_len) return 0;
    size_t cookie_at = at + 1 + sid, old = ch[cookie_at];
    if (cookie_at + 1 + old > 13 + record_len) return 0;
    size_t tail = 13 + record_len - (cookie_at + 1 + old);
    size_t n = cookie_at + 1 + cookie_len + tail;
    if (n > cap || cookie_len > 255) return 0;
    memcpy(out, ch, cookie_at);
    out[cookie_at] = (uint8_t)cookie_len;
    memcpy(out + cookie_at + 1, cookie, cookie_len);
    memcpy(out + cookie_at + 1 + cookie_len, ch + cookie_at + 1 + old, tail);
    size_t rec = n - 13, body = rec - 12;
    out[11] = (uint8_t)(rec >> 8), out[12] = (uint8_t)rec;
    out[14] = (uint8_t)(body >> 16), out[15] = (uint8_t)(body >> 8), out[16] = (uint8_t)body;
    out[19] = out[20] = out[21] = 0; /* fragment offset */
    out[22] = (uint8_t)(body >> 16), out[23] = (uint8_t)(body >> 8), out[24] = (uint8_t)body;
    return n;
}

/* The cookie of a HelloVerifyRequest datagram; false when d is not one. */
bool sn_test_dtls_hvr_cookie(const uint8_t *d, size_t len, const uint8_t **cookie,
                             size_t *cookie_len)
{
    if (len < 13 + 12 + 3 || d[0] != 22 || d[13] != 3) return false;
    size_t n = d[13 + 12 + 2];
    if (13 + 12 + 3 + n > len) return false;
    *cookie = d + 13 + 12 + 3;
    *cookie_len = n;
    return true;
}
