/* PROXY protocol version 2 headers (the HAProxy specification, "2.2. Binary header format"),
 * DGRAM form, for `sealnet proxy --proxy-protocol v2`. Kept apart from the proxy so that a unit
 * test can check the bytes. Not installed. */
#ifndef SN_PROXY_PROTOCOL_H
#define SN_PROXY_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

/* 16-byte fixed part + 36 bytes of IPv6 addresses and ports: the longest header we write. */
#define PP2_MAX_HEADER  52
#define PP2_IPV4_HEADER 28

/* The 12-byte signature that starts every v2 header. */
extern const uint8_t pp2_signature[12];

/* Writes a PROXY v2 header (version 2, command PROXY, transport DGRAM) saying that a datagram
 * came from src_ip:src_port to dst_ip:dst_port. IP literals; an IPv4 source with an IPv6
 * destination (a dual-stack listener) is written as IPv4 (fam 0x12) with the destination's
 * IPv4 form (0.0.0.0 for "::"), an IPv6 source with an IPv4 destination as IPv6 (fam 0x22)
 * with the destination IPv4-mapped. Returns the header length (28 for IPv4, 52 for IPv6), or
 * 0 when an address is no IP literal or a port is outside 0..65535. out needs PP2_MAX_HEADER
 * bytes. */
size_t pp2_encode_dgram(const char *src_ip, int src_port, const char *dst_ip, int dst_port,
                        uint8_t out[PP2_MAX_HEADER]);

#endif
