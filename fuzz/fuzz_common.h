/* Shared helpers for the libFuzzer targets: plain loopback sockets that play the remote side,
 * a reader for the input format, and a check that aborts (so libFuzzer records a crash) when an
 * invariant of the library does not hold.
 *
 * Input format used by the network targets: one control byte, then datagrams, each as a 2-byte
 * big-endian length followed by that many bytes (a short last one takes what is left). */
#ifndef SN_FUZZ_COMMON_H
#define SN_FUZZ_COMMON_H

#include <sealnet/sealnet.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* An invariant that must hold whatever the input: abort with a message so the fuzzer stops. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fuzz_reader {
    const uint8_t *p, *end;
} fuzz_reader;

static inline bool fuzz_u8(fuzz_reader *r, uint8_t *out)
{
    if (r->p >= r->end) return false;
    *out = *r->p++;
    return true;
}

/* The next datagram; false when the input is used up. */
static inline bool fuzz_datagram(fuzz_reader *r, const uint8_t **d, size_t *len)
{
    if (r->end - r->p < 2) return false;
    size_t n = (size_t)r->p[0] << 8 | r->p[1];
    r->p += 2;
    if (n > (size_t)(r->end - r->p)) n = (size_t)(r->end - r->p);
    *d = r->p;
    *len = n;
    r->p += n;
    return true;
}

/* A non-blocking UDP socket bound to ip:port (port 0: ephemeral); -1 when it cannot be made. */
static inline int fuzz_udp_socket(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int fuzz_local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &l) != 0) return 0;
    return ntohs(a.sin_port);
}

/* Sends one datagram to 127.0.0.1:port; true when the kernel took it. */
static inline bool fuzz_send_to(int fd, int port, const void *d, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sendto(fd, d, len, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)len;
}

/* Reads one datagram if one is waiting; its length, or -1 when none. */
static inline ssize_t fuzz_recv(int fd, void *buf, size_t cap)
{
    return recv(fd, buf, cap, MSG_DONTWAIT);
}

/* Reads and forgets everything waiting on fd. */
static inline void fuzz_drain(int fd)
{
    uint8_t buf[2048];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC) >= 0) {
    }
}

/* Waits up to ms for fd to become readable. */
static inline bool fuzz_wait(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

/* A DTLS ClientHello with the cookie replaced by `cookie`: record, handshake and fragment lengths
 * rewritten. Returns the new length, 0 when `ch` is not a single-fragment ClientHello. */
static inline size_t fuzz_splice_cookie(const uint8_t *ch, size_t len, const uint8_t *cookie,
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
static inline bool fuzz_hvr_cookie(const uint8_t *d, size_t len, const uint8_t **cookie,
                                   size_t *cookie_len)
{
    if (len < 13 + 12 + 3 || d[0] != 22 || d[13] != 3) return false;
    size_t n = d[13 + 12 + 2];
    if (13 + 12 + 3 + n > len) return false;
    *cookie = d + 13 + 12 + 3;
    *cookie_len = n;
    return true;
}

#endif
