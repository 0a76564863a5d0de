/* Shared helpers for the libFuzzer targets: the socket-free platform (in-memory network,
 * manual clock, counting allocator), a reader for the input format, and a check that aborts (so
 * libFuzzer records a crash) when an invariant of the library does not hold.
 *
 * Input format used by the network targets: one control byte, then datagrams, each as a 2-byte
 * big-endian length followed by that many bytes (a short last one takes what is left). */
#ifndef SN_FUZZ_COMMON_H
#define SN_FUZZ_COMMON_H

#include <sealnet/sealnet.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- the platform every target runs on ------------------------------------------------------
 *
 * No kernel UDP: datagrams travel through the in-memory network of tests/support/test_net.h
 * (installed as sealnet's transport), time is the manual clock of test_hooks.h, and every
 * allocation (sealnet's, and OpenSSL's when the backend allows it) goes through a counting
 * allocator so harnesses can bound memory. fuzz_platform_init must run before any sealnet or
 * TLS-library object exists (LLVMFuzzerInitialize, or the first line of a setup). */
#include "test_hooks.h"
#include "test_net.h"

typedef struct fuzz_mem {
    size_t live, peak, blocks;
} fuzz_mem;
static fuzz_mem fuzz_mem_stats;

enum { FUZZ_MEM_HDR = 16 }; /* keeps the caller's block 16-byte aligned */

static inline void *fuzz_mem_malloc(size_t n, void *user)
{
    (void)user;
    uint8_t *p = malloc(n + FUZZ_MEM_HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    fuzz_mem_stats.live += n;
    fuzz_mem_stats.blocks++;
    if (fuzz_mem_stats.live > fuzz_mem_stats.peak) fuzz_mem_stats.peak = fuzz_mem_stats.live;
    return p + FUZZ_MEM_HDR;
}

static inline void fuzz_mem_free(void *ptr, void *user)
{
    (void)user;
    if (!ptr) return;
    uint8_t *p = (uint8_t *)ptr - FUZZ_MEM_HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    fuzz_mem_stats.live -= n;
    fuzz_mem_stats.blocks--;
    free(p);
}

static inline void *fuzz_mem_realloc(void *ptr, size_t n, void *user)
{
    if (!ptr) return fuzz_mem_malloc(n, user);
    uint8_t *p = (uint8_t *)ptr - FUZZ_MEM_HDR;
    size_t old;
    memcpy(&old, p, sizeof old);
    uint8_t *q = realloc(p, n + FUZZ_MEM_HDR);
    if (!q) return NULL;
    memcpy(q, &n, sizeof n);
    fuzz_mem_stats.live = fuzz_mem_stats.live - old + n;
    if (fuzz_mem_stats.live > fuzz_mem_stats.peak) fuzz_mem_stats.peak = fuzz_mem_stats.live;
    return q + FUZZ_MEM_HDR;
}

/* Bytes held right now by sealnet and (when covered) the TLS library. */
static inline size_t fuzz_mem_live(void)
{
    return fuzz_mem_stats.live;
}

static inline void fuzz_platform_init(void)
{
    static bool done;
    if (done) return;
    done = true;
    static const sn_allocator a = {fuzz_mem_malloc, fuzz_mem_realloc, fuzz_mem_free, NULL};
    FUZZ_CHECK(sn_set_allocator(&a) == SN_OK);
    sn_test_clock_install(1000000);
    sn_test_net_install();
}

/* A fake endpoint on the network: 127.0.0.x:port (no socket behind it). */
static inline sn_test_addr fuzz_addr(int x, int port)
{
    return sn_test_addr_v4(127, 0, 0, (uint8_t)x, (uint16_t)port);
}

/* Server options on a fresh P-256 key and self-signed "CN=localhost" certificate (the options
 * keep their own references to both). Aborts when they cannot be made. */
static inline sn_tls_options *fuzz_server_options(void)
{
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert =
        key ? sn_crypto_generate_self_signed_certificate(key, "CN=localhost", NULL, NULL) : NULL;
    sn_tls_options *opts = cert ? sn_tls_options_server(key, cert) : NULL;
    FUZZ_CHECK(opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    return opts;
}

/* Fixed ticket keys on server options, the same in every process, so a harness's real client
 * resumes and a single input replays the same way. False when the backend has no session
 * tickets (mbed TLS refuses them: full handshakes there). */
static inline bool fuzz_fixed_ticket_keys(sn_tls_options *server_opts)
{
    uint8_t keys[80];
    for (size_t i = 0; i < sizeof keys; i++)
        keys[i] = (uint8_t)(i * 37 + 11);
    sn_err e = sn_tls_options_set_ticket_keys(server_opts, keys, sizeof keys);
    FUZZ_CHECK(e == SN_OK || e == SN_ERR_UNAVAILABLE);
    return e == SN_OK;
}

/* The DTLS wire helpers live in tests/support (test_net.h), shared with the tests. */
#define fuzz_splice_cookie sn_test_dtls_splice_cookie
#define fuzz_hvr_cookie    sn_test_dtls_hvr_cookie

#endif
