/* The stateless half of the DTLS server: ClientHello parsing, cookies, HelloVerifyRequest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "dtls_internal.h"

/* A minimal DTLS 1.2 ClientHello: record header, handshake header, version, random,
 * session id, cookie, one cipher suite, null compression. */
static size_t make_hello(uint8_t *out, const uint8_t *cookie, uint8_t cookie_len)
{
    uint8_t body[128];
    size_t b = 0;
    body[b++] = 0xfe, body[b++] = 0xfd;
    memset(body + b, 0xab, 32), b += 32;
    body[b++] = 0; /* session id */
    body[b++] = cookie_len;
    if (cookie_len) memcpy(body + b, cookie, cookie_len);
    b += cookie_len;
    body[b++] = 0, body[b++] = 2, body[b++] = 0xc0, body[b++] = 0x2b;
    body[b++] = 1, body[b++] = 0;
    size_t n = 0;
    out[n++] = 22, out[n++] = 0xfe, out[n++] = 0xff;
    out[n++] = 0, out[n++] = 0;                             /* epoch */
    memcpy(out + n, "\x00\x00\x00\x00\x00\x07", 6), n += 6; /* record seq 7 */
    size_t rec = 12 + b;
    out[n++] = (uint8_t)(rec >> 8), out[n++] = (uint8_t)rec;
    out[n++] = 1;
    out[n++] = 0, out[n++] = (uint8_t)(b >> 8), out[n++] = (uint8_t)b;
    out[n++] = 0, out[n++] = 1; /* message seq 1 */
    out[n++] = 0, out[n++] = 0, out[n++] = 0;
    out[n++] = 0, out[n++] = (uint8_t)(b >> 8), out[n++] = (uint8_t)b;
    memcpy(out + n, body, b), n += b;
    return n;
}

static void parses_hello_with_and_without_cookie(void **state)
{
    (void)state;
    uint8_t d[256], cookie[32];
    memset(cookie, 0x5a, sizeof cookie);
    sn_dtls_hello h;
    size_t n = make_hello(d, NULL, 0);
    assert_true(sn_dtls_parse_client_hello(d, n, &h));
    assert_int_equal(h.cookie_len, 0);
    assert_int_equal(h.message_seq, 1);
    assert_memory_equal(h.record_seq, "\x00\x00\x00\x00\x00\x07", 6);

    n = make_hello(d, cookie, 32);
    assert_true(sn_dtls_parse_client_hello(d, n, &h));
    assert_int_equal(h.cookie_len, 32);
    assert_memory_equal(h.cookie, cookie, 32);
}

static void rejects_every_truncation_and_corruption(void **state)
{
    (void)state;
    uint8_t d[256], cookie[32] = {1};
    sn_dtls_hello h;
    size_t n = make_hello(d, cookie, 32);
    for (size_t cut = 0; cut < n; cut++) {
        /* The record length still claims the full size, so every cut must be refused. */
        assert_false(sn_dtls_parse_client_hello(d, cut, &h));
    }
    uint8_t bad[256];
    const size_t fields[] = {0, 1, 3, 13, 22 /* fragment offset */};
    for (size_t i = 0; i < SN_ARRAY_LEN(fields); i++) {
        memcpy(bad, d, n);
        bad[fields[i]] ^= 0x40;
        assert_false(sn_dtls_parse_client_hello(bad, n, &h));
    }
    /* A cookie length running past the end of the body. */
    memcpy(bad, d, n);
    bad[13 + 12 + 2 + 32 + 1] = 200;
    assert_false(sn_dtls_parse_client_hello(bad, n, &h));
    assert_false(sn_dtls_parse_client_hello(NULL, 0, &h));
}

static sn_addr v4(const char *ip, int port)
{
    sn_addr a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &s->sin_addr);
    a.len = sizeof *s;
    return a;
}

static void cookies_bind_address_port_secret_and_time(void **state)
{
    (void)state;
    uint8_t secret[32], other[32], c[SN_DTLS_COOKIE_LEN];
    memset(secret, 1, sizeof secret);
    memset(other, 2, sizeof other);
    sn_addr a = v4("127.0.0.1", 5000), b = v4("127.0.0.1", 5001), c2 = v4("127.0.0.2", 5000);
    sn_dtls_make_cookie(secret, 1000, 7, &a, c);
    assert_true(sn_dtls_check_cookie(secret, 1000, 60, &a, c, sizeof c));
    assert_true(sn_dtls_check_cookie(secret, 1060, 60, &a, c, sizeof c));
    assert_false(sn_dtls_check_cookie(secret, 1061, 60, &a, c, sizeof c));  /* expired */
    assert_false(sn_dtls_check_cookie(secret, 999, 60, &a, c, sizeof c));   /* from the future */
    assert_false(sn_dtls_check_cookie(secret, 1000, 60, &b, c, sizeof c));  /* other port */
    assert_false(sn_dtls_check_cookie(secret, 1000, 60, &c2, c, sizeof c)); /* other address */
    assert_false(sn_dtls_check_cookie(other, 1000, 60, &a, c, sizeof c));   /* other secret */
    assert_false(sn_dtls_check_cookie(secret, 1000, 60, &a, c, sizeof c - 1));
    for (size_t i = 0; i < sizeof c; i++) {
        c[i] ^= 1;
        assert_false(sn_dtls_check_cookie(secret, 1000, 60, &a, c, sizeof c));
        c[i] ^= 1;
    }
    /* Every cookie is unique (the nonce), and each one checks. */
    uint8_t c2b[SN_DTLS_COOKIE_LEN];
    sn_dtls_make_cookie(secret, 1000, 8, &a, c2b);
    assert_memory_not_equal(c, c2b, sizeof c);
    assert_true(sn_dtls_check_cookie(secret, 1000, 60, &a, c2b, sizeof c2b));
    assert_int_equal(sn_dtls_cookie_time(c2b), 1000);
    /* The same IPv4 client seen through a dual-stack socket gets the same cookie. */
    sn_addr mapped = a;
    sn_net_match_family(&mapped, AF_INET6);
    assert_true(sn_dtls_check_cookie(secret, 1000, 60, &mapped, c, sizeof c));
}

static void hello_verify_request_echoes_sequence_numbers(void **state)
{
    (void)state;
    uint8_t d[256], hvr[SN_DTLS_HVR_MAX], cookie[SN_DTLS_COOKIE_LEN];
    memset(cookie, 0x77, sizeof cookie);
    sn_dtls_hello h;
    assert_true(sn_dtls_parse_client_hello(d, make_hello(d, NULL, 0), &h));
    size_t n = sn_dtls_build_hello_verify(&h, cookie, sizeof cookie, hvr);
    assert_int_equal(n, 13 + 12 + 3 + 32);
    assert_int_equal(hvr[0], 22);                       /* handshake record */
    assert_memory_equal(hvr + 5, h.record_seq, 6);      /* record sequence echoed */
    assert_int_equal((hvr[11] << 8) | hvr[12], n - 13); /* record length */
    assert_int_equal(hvr[13], 3);                       /* hello_verify_request */
    assert_int_equal((hvr[17] << 8) | hvr[18], 1);      /* message sequence echoed */
    assert_int_equal(hvr[13 + 12 + 2], 32);             /* cookie length */
    assert_memory_equal(hvr + 13 + 12 + 3, cookie, 32);

    uint8_t alert[15];
    assert_int_equal(sn_dtls_build_alert(&h, 40, alert), 15);
    assert_int_equal(alert[0], 21);
    assert_int_equal(alert[13], 2);
    assert_int_equal(alert[14], 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_hello_with_and_without_cookie),
        cmocka_unit_test(rejects_every_truncation_and_corruption),
        cmocka_unit_test(cookies_bind_address_port_secret_and_time),
        cmocka_unit_test(hello_verify_request_echoes_sequence_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
