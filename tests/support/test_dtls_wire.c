#include "test_dtls_wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* DTLS record header (13) + handshake header (12). */
enum { RECORD_HDR = 13, HS_HDR = 12, CAPTURE_WAIT_MS = 5000 };

int sn_test_udp_socket_on(const char *ip)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, ip ? ip : "127.0.0.1", &a.sin_addr), 1);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("bind %s: %s", ip ? ip : "127.0.0.1", strerror(errno));
    return fd;
}

void sn_test_udp_send_to(int fd, int port, const void *data, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    ssize_t n = sendto(fd, data, len, 0, (struct sockaddr *)&a, sizeof a);
    if (n != (ssize_t)len) fail_msg("sendto %zu bytes: %s", len, strerror(errno));
}

bool sn_test_hello_verify_cookie(const uint8_t *buf, size_t len, const uint8_t **cookie,
                                 size_t *cookie_len)
{
    /* handshake record, HelloVerifyRequest, then server_version(2) and the cookie vector */
    const size_t at = RECORD_HDR + HS_HDR + 2;
    if (len <= at || buf[0] != 22 || buf[RECORD_HDR] != 3) return false;
    size_t n = buf[at];
    if (len < at + 1 + n) return false;
    if (cookie) *cookie = buf + at + 1;
    if (cookie_len) *cookie_len = n;
    return true;
}

bool sn_test_is_sealnet_hvr(const uint8_t *buf, size_t len)
{
    size_t n;
    return len == RECORD_HDR + HS_HDR + 3 + 32 && sn_test_hello_verify_cookie(buf, len, NULL, &n) &&
           n == 32;
}

size_t sn_test_capture_client_hello(const sn_tls_options *client_opts, uint8_t *out, size_t cap)
{
    int fd = sn_test_udp_socket_on(NULL);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    sn_udp_peer *udp = sn_udp_peer_new();
    sn_dtls_peer *cl = sn_dtls_peer_new();
    assert_int_equal(sn_udp_peer_connect_to_host(udp, "127.0.0.1", ntohs(a.sin_port)), SN_OK);
    assert_int_equal(sn_dtls_peer_connect_to_peer(cl, udp, "localhost", client_opts), SN_OK);
    struct pollfd pfd = {fd, POLLIN, 0};
    ssize_t n = -1;
    uint64_t end = sn_test_now_ms() + CAPTURE_WAIT_MS;
    while (n < 0 && sn_test_now_ms() < end) {
        poll(&pfd, 1, 50);
        sn_dtls_peer_poll(cl);
        n = recv(fd, out, cap, 0);
    }
    sn_dtls_peer_free(cl);
    close(fd);
    assert_true(n > 60);
    assert_int_equal(out[0], 22);         /* handshake */
    assert_int_equal(out[RECORD_HDR], 1); /* ClientHello */
    return (size_t)n;
}

size_t sn_test_hello_with_cookie(const uint8_t *hello, size_t len, const uint8_t *cookie,
                                 size_t cookie_len, uint8_t *out, size_t cap)
{
    /* client_version(2) + random(32), then the session id and cookie vectors */
    size_t off = RECORD_HDR + HS_HDR + 2 + 32;
    if (len <= off || cookie_len > 255) return 0;
    off += 1 + hello[off];
    if (len <= off || len < off + 1 + hello[off]) return 0;
    size_t old = hello[off];
    size_t total = len - old + cookie_len;
    if (total > cap) return 0;
    memcpy(out, hello, off);
    out[off] = (uint8_t)cookie_len;
    memcpy(out + off + 1, cookie, cookie_len);
    memcpy(out + off + 1 + cookie_len, hello + off + 1 + old, len - off - 1 - old);
    size_t rec = (size_t)(out[11] << 8 | out[12]) - old + cookie_len;
    out[11] = (uint8_t)(rec >> 8), out[12] = (uint8_t)rec;
    size_t body = ((size_t)out[14] << 16 | (size_t)out[15] << 8 | out[16]) - old + cookie_len;
    out[14] = (uint8_t)(body >> 16), out[15] = (uint8_t)(body >> 8), out[16] = (uint8_t)body;
    out[22] = out[14], out[23] = out[15], out[24] = out[16]; /* fragment length = body */
    return total;
}
