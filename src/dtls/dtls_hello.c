/* DTLS wire format the stateless server needs: reading a ClientHello, writing a
 * HelloVerifyRequest or a plaintext alert. No allocation, no TLS library state. */
#include "dtls_internal.h"

#include <arpa/inet.h>
#include <string.h>

enum {
    RECORD_HEADER = 13,
    HANDSHAKE_HEADER = 12,
    CONTENT_HANDSHAKE = 22,
    HS_CLIENT_HELLO = 1,
    HS_HELLO_VERIFY_REQUEST = 3,
};

static uint32_t be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

bool sn_dtls_parse_client_hello(const uint8_t *d, size_t len, sn_dtls_hello *out)
{
    if (!d || len < RECORD_HEADER + HANDSHAKE_HEADER) return false;
    /* Record: type, version (DTLS 1.0 0xfeff or 1.2 0xfefd), epoch 0, seq, length. */
    if (d[0] != CONTENT_HANDSHAKE || d[1] != 0xfe || (d[2] != 0xff && d[2] != 0xfd)) return false;
    if (be16(d + 3) != 0) return false;
    size_t record_len = be16(d + 11);
    if (record_len < HANDSHAKE_HEADER || RECORD_HEADER + record_len > len) return false;
    const uint8_t *h = d + RECORD_HEADER;
    /* Handshake: a whole ClientHello in one fragment. */
    if (h[0] != HS_CLIENT_HELLO) return false;
    uint32_t body_len = be24(h + 1);
    uint32_t frag_off = be24(h + 6), frag_len = be24(h + 9);
    if (frag_off != 0 || frag_len != body_len || HANDSHAKE_HEADER + body_len > record_len)
        return false;
    const uint8_t *b = h + HANDSHAKE_HEADER, *end = b + body_len;
    /* client_version(2) random(32) session_id<0..32> cookie<0..255> */
    if (end - b < 2 + 32 + 1) return false;
    const uint8_t *random = b + 2;
    b += 2 + 32;
    size_t sid = *b++;
    if (sid > 32 || (size_t)(end - b) < sid + 1) return false;
    b += sid;
    size_t cookie_len = *b++;
    if ((size_t)(end - b) < cookie_len) return false;
    memcpy(out->record_seq, d + 5, 6);
    out->message_seq = be16(h + 4);
    out->random = random;
    out->cookie = cookie_len ? b : NULL;
    out->cookie_len = cookie_len;
    return true;
}

size_t sn_dtls_build_hello_verify(const sn_dtls_hello *hello, const uint8_t *cookie,
                                  size_t cookie_len, uint8_t out[SN_DTLS_HVR_MAX])
{
    size_t body = 3 + cookie_len, record = HANDSHAKE_HEADER + body;
    uint8_t *p = out;
    /* Record header: RFC 6347 4.2.1 says DTLS 1.0 in the HelloVerifyRequest, whatever comes. */
    *p++ = CONTENT_HANDSHAKE, *p++ = 0xfe, *p++ = 0xff;
    *p++ = 0, *p++ = 0; /* epoch */
    memcpy(p, hello->record_seq, 6), p += 6;
    *p++ = (uint8_t)(record >> 8), *p++ = (uint8_t)record;
    /* Handshake header */
    *p++ = HS_HELLO_VERIFY_REQUEST;
    *p++ = 0, *p++ = (uint8_t)(body >> 8), *p++ = (uint8_t)body;
    *p++ = (uint8_t)(hello->message_seq >> 8), *p++ = (uint8_t)hello->message_seq;
    *p++ = 0, *p++ = 0, *p++ = 0; /* fragment offset */
    *p++ = 0, *p++ = (uint8_t)(body >> 8), *p++ = (uint8_t)body;
    /* Body */
    *p++ = 0xfe, *p++ = 0xff;
    *p++ = (uint8_t)cookie_len;
    memcpy(p, cookie, cookie_len), p += cookie_len;
    return (size_t)(p - out);
}

size_t sn_dtls_build_alert(const sn_dtls_hello *hello, uint8_t description, uint8_t out[15])
{
    uint8_t *p = out;
    *p++ = 21, *p++ = 0xfe, *p++ = 0xfd; /* alert record, DTLS 1.2 */
    *p++ = 0, *p++ = 0;                  /* epoch 0: before any keys */
    memcpy(p, hello->record_seq, 6), p += 6;
    *p++ = 0, *p++ = 2;
    *p++ = 2; /* fatal */
    *p++ = description;
    return (size_t)(p - out);
}
