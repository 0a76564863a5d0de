/* Raw datagrams on loopback and the few DTLS wire facts tests need to play an attacker: a
 * socket of their own, a captured ClientHello, the cookie of a HelloVerifyRequest and the hello
 * re-sent with it. Every failure of the socket calls fails the test (cmocka). */
#ifndef SN_TEST_DTLS_WIRE_H
#define SN_TEST_DTLS_WIRE_H

#include <sealnet/sealnet.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A non-blocking UDP socket bound to ip:0 (ip: a 127.x.y.z address; NULL: 127.0.0.1). */
int sn_test_udp_socket_on(const char *ip);
/* Sends len bytes from fd to 127.0.0.1:port; a short or failed send fails the test. */
void sn_test_udp_send_to(int fd, int port, const void *data, size_t len);

/* True when buf is a HelloVerifyRequest in one DTLS record; *cookie (into buf) and *cookie_len
 * say where its cookie is (either may be NULL). sealnet's are 60 bytes with a 32-byte cookie. */
bool sn_test_hello_verify_cookie(const uint8_t *buf, size_t len, const uint8_t **cookie,
                                 size_t *cookie_len);

/* A HelloVerifyRequest exactly as sealnet sends it: 60 bytes, a 32-byte cookie (never larger
 * than the hello it answers). */
bool sn_test_is_sealnet_hvr(const uint8_t *buf, size_t len);

/* The first datagram a sealnet DTLS client with client_opts sends to a socket of the test's
 * own: a cookie-less ClientHello (checked to be one). Returns its length (≤ cap). */
size_t sn_test_capture_client_hello(const sn_tls_options *client_opts, uint8_t *out, size_t cap);

/* hello (a one-record, unfragmented ClientHello) with its cookie field replaced by cookie: the
 * record, message and fragment lengths rewritten. Returns the new length, 0 when it would not
 * fit in cap or hello is not shaped like one. */
size_t sn_test_hello_with_cookie(const uint8_t *hello, size_t len, const uint8_t *cookie,
                                 size_t cookie_len, uint8_t *out, size_t cap);

#endif
