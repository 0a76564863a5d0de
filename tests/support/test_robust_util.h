/* Helpers shared by the robustness tests (tests/system/test_robust_*.c): raw loopback sockets that
 * play hostile or scripted remotes, a captured real ClientHello, cookie splicing, a DTLS server
 * environment driven like the Godot seed server. Header-only (static functions). */
#ifndef SN_TEST_ROBUST_UTIL_H
#define SN_TEST_ROBUST_UTIL_H

#include <sealnet/sealnet.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* A non-blocking UDP socket bound to ip:port (0: ephemeral); -1 on failure. */
static inline int rb_socket(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int rb_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &l) != 0) return 0;
    return ntohs(a.sin_port);
}

static inline bool rb_send(int fd, int port, const void *d, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sendto(fd, d, len, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)len;
}

/* One datagram (and its source port in *from_port when not NULL); -1 when none waiting. */
static inline ssize_t rb_recv(int fd, void *buf, size_t cap, int *from_port)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    ssize_t n = recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&a, &l);
    if (n >= 0 && from_port) *from_port = ntohs(a.sin_port);
    return n;
}

static inline void rb_drain(int fd)
{
    uint8_t buf[2048];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC) >= 0) {
    }
}

static inline bool rb_wait(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

/* Raises the soft fd limit to the hard limit (or want, when lower); returns the new soft limit. */
static inline long rb_raise_nofile(long want)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return -1;
    rlim_t target = (rlim_t)want < r.rlim_max ? (rlim_t)want : r.rlim_max;
    if (r.rlim_cur < target) {
        r.rlim_cur = target;
        setrlimit(RLIMIT_NOFILE, &r);
        getrlimit(RLIMIT_NOFILE, &r);
    }
    return (long)r.rlim_cur;
}

/* The ClientHello with the cookie replaced (lengths rewritten); 0 when ch is not one. */
static inline size_t rb_splice_cookie(const uint8_t *ch, size_t len, const uint8_t *cookie,
                                      size_t cookie_len, uint8_t *out, size_t cap)
{
    if (len < 13 + 12 + 2 + 32 + 1 || ch[0] != 22 || ch[13] != 1) return 0;
    size_t record_len = (size_t)ch[11] << 8 | ch[12];
    if (13 + record_len > len) return 0;
    size_t at = 13 + 12 + 2 + 32, sid = ch[at];
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
    out[22] = (uint8_t)(body >> 16), out[23] = (uint8_t)(body >> 8), out[24] = (uint8_t)body;
    return n;
}

/* The cookie inside a HelloVerifyRequest; false when d is not one. */
static inline bool rb_hvr_cookie(const uint8_t *d, size_t len, const uint8_t **cookie,
                                 size_t *cookie_len)
{
    if (len < 13 + 12 + 3 || d[0] != 22 || d[13] != 3) return false;
    size_t n = d[13 + 12 + 2];
    if (13 + 12 + 3 + n > len) return false;
    *cookie = d + 13 + 12 + 3;
    *cookie_len = n;
    return true;
}

/* Captures the cookie-less ClientHello a real sn_dtls_peer client sends. Returns its length. */
static inline size_t rb_capture_client_hello(uint8_t *out, size_t cap)
{
    int fd = rb_socket("127.0.0.1", 0);
    if (fd < 0) return 0;
    sn_udp_peer *u = sn_udp_peer_new();
    sn_dtls_peer *c = sn_dtls_peer_new();
    sn_tls_options *o = sn_tls_options_client_unsafe(NULL);
    size_t n = 0;
    if (sn_udp_peer_connect_to_host(u, "127.0.0.1", rb_port(fd)) != SN_OK) {
        sn_udp_peer_free(u); /* not handed over */
    } else if (sn_dtls_peer_connect_to_peer(c, u, "localhost", o) == SN_OK && rb_wait(fd, 2000)) {
        ssize_t r = rb_recv(fd, out, cap, NULL);
        n = r > 0 ? (size_t)r : 0;
    }
    sn_dtls_peer_free(c);
    sn_tls_options_free(o);
    close(fd);
    return n;
}

/* What the robustness test programs share: a P-256 key with its self-signed certificate, and a
 * real ClientHello captured from a sealnet client (to replay or mutate). */
typedef struct rb_fixture {
    sn_crypto_key *key;
    sn_x509_cert *cert;
    uint8_t hello[2048];
    size_t hello_len;
} rb_fixture;

/* 0 on success, -1 when anything is missing: the shape a cmocka group setup returns. */
static inline int rb_fixture_setup(rb_fixture *f, const char *issuer)
{
    f->key = sn_crypto_generate_ec("P-256");
    f->cert =
        f->key ? sn_crypto_generate_self_signed_certificate(f->key, issuer, NULL, NULL) : NULL;
    f->hello_len = rb_capture_client_hello(f->hello, sizeof f->hello);
    return f->cert && f->hello_len > 60 ? 0 : -1;
}

static inline void rb_fixture_teardown(rb_fixture *f)
{
    sn_crypto_key_free(f->key);
    sn_x509_cert_free(f->cert);
}

/* Live heap bytes when built with AddressSanitizer (its allocator knows them exactly, unlike RSS
 * which its quarantine inflates); -1 otherwise. */
#if defined(__SANITIZE_ADDRESS__)
#define RB_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RB_HAVE_ASAN 1
#endif
#endif
#ifdef RB_HAVE_ASAN
/* From <sanitizer/allocator_interface.h>, which GCC does not install. */
size_t __sanitizer_get_current_allocated_bytes(void);
static inline long rb_heap_bytes(void)
{
    return (long)__sanitizer_get_current_allocated_bytes();
}
#else
static inline long rb_heap_bytes(void)
{
    return -1;
}
#endif

#endif
