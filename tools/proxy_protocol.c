/* PROXY protocol v2 encoder (see proxy_protocol.h). */
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

const uint8_t pp2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum { PP2_VER_CMD_PROXY = 0x21, PP2_FAM_UDP4 = 0x12, PP2_FAM_UDP6 = 0x22 };

typedef struct pp2_ip {
    bool v6;
    uint8_t b[16]; /* IPv4 in b[0..3] */
} pp2_ip;

static bool parse_ip(const char *s, pp2_ip *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return false;
    if (inet_pton(AF_INET, s, out->b) == 1) return true;
    if (inet_pton(AF_INET6, s, out->b) != 1) return false;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(out->b, mapped, 12) == 0) {
        /* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket: say so. */
        memmove(out->b, out->b + 12, 4);
        memset(out->b + 4, 0, 12);
        return true;
    }
    out->v6 = true;
    return true;
}

/* A (non-mapped) IPv6 destination in a header about an IPv4 source: the proxy listens on a
 * dual-stack wildcard and cannot narrow it down, so "unspecified" (0.0.0.0). */
static void to_v4(pp2_ip *a)
{
    if (!a->v6) return;
    a->v6 = false;
    memset(a->b, 0, sizeof a->b);
}

static void to_v6(pp2_ip *a)
{
    if (a->v6) return;
    uint8_t v4[4];
    memcpy(v4, a->b, 4);
    memset(a->b, 0, 10);
    a->b[10] = a->b[11] = 0xff;
    memcpy(a->b + 12, v4, 4);
    a->v6 = true;
}

size_t pp2_encode_dgram(const char *src_ip, int src_port, const char *dst_ip, int dst_port,
                        uint8_t out[PP2_MAX_HEADER])
{
    pp2_ip src, dst;
    if (!parse_ip(src_ip, &src) || !parse_ip(dst_ip, &dst)) return 0;
    if (src_port < 0 || src_port > 65535 || dst_port < 0 || dst_port > 65535) return 0;
    if (src.v6)
        to_v6(&dst);
    else
        to_v4(&dst);
    size_t alen = src.v6 ? 16 : 4;
    uint16_t body = (uint16_t)(2 * alen + 4);
    memcpy(out, pp2_signature, sizeof pp2_signature);
    out[12] = PP2_VER_CMD_PROXY;
    out[13] = src.v6 ? PP2_FAM_UDP6 : PP2_FAM_UDP4;
    out[14] = (uint8_t)(body >> 8);
    out[15] = (uint8_t)body;
    uint8_t *p = out + 16;
    memcpy(p, src.b, alen);
    memcpy(p + alen, dst.b, alen);
    p += 2 * alen;
    p[0] = (uint8_t)(src_port >> 8);
    p[1] = (uint8_t)src_port;
    p[2] = (uint8_t)(dst_port >> 8);
    p[3] = (uint8_t)dst_port;
    return 16 + (size_t)body;
}
