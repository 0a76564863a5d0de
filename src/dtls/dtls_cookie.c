/* Stateless cookies (RFC 6347 4.2.1): making and checking them, and the rotating secret ("jar")
 * a server shares with its peers. */
#include "dtls_internal.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* Address bytes hashed into a cookie: 16-byte IPv6 form (IPv4 mapped) + port. */
static void address_bytes(const sn_addr *addr, uint8_t out[18])
{
    memset(out, 0, 18);
    if (addr->ss.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&addr->ss;
        out[10] = 0xff, out[11] = 0xff;
        memcpy(out + 12, &v4->sin_addr, 4);
        memcpy(out + 16, &v4->sin_port, 2);
    } else if (addr->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&addr->ss;
        memcpy(out, &v6->sin6_addr, 16);
        memcpy(out + 16, &v6->sin6_port, 2);
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint32_t sn_dtls_cookie_time(const uint8_t *cookie)
{
    return get32(cookie);
}

void sn_dtls_make_cookie(const uint8_t secret[SN_DTLS_SECRET_LEN], uint32_t time_s, uint32_t nonce,
                         const sn_addr *addr, uint8_t out[SN_DTLS_COOKIE_LEN])
{
    uint8_t msg[8 + 18], mac[32];
    put32(msg, time_s);
    put32(msg + 4, nonce);
    address_bytes(addr, msg + 8);
    sn_tls_backend_get()->hmac_sha256(secret, SN_DTLS_SECRET_LEN, msg, sizeof msg, mac);
    memcpy(out, msg, 8);
    memcpy(out + 8, mac, SN_DTLS_COOKIE_LEN - 8);
}

bool sn_dtls_check_cookie(const uint8_t secret[SN_DTLS_SECRET_LEN], uint32_t now_s,
                          uint32_t lifetime_s, const sn_addr *addr, const uint8_t *cookie,
                          size_t len)
{
    if (!cookie || len != SN_DTLS_COOKIE_LEN) return false;
    uint32_t t = get32(cookie);
    if (t > now_s || now_s - t > lifetime_s) return false;
    uint8_t expect[SN_DTLS_COOKIE_LEN];
    sn_dtls_make_cookie(secret, t, get32(cookie + 4), addr, expect);
    /* Constant time: a forger learns nothing from how fast a guess is refused. */
    uint8_t diff = 0;
    for (size_t i = 0; i < SN_DTLS_COOKIE_LEN; i++)
        diff |= (uint8_t)(expect[i] ^ cookie[i]);
    return diff == 0;
}

struct sn_dtls_cookie_jar {
    atomic_int refs;
    pthread_mutex_t lock;
    uint8_t secret[SN_DTLS_SECRET_LEN], previous[SN_DTLS_SECRET_LEN];
    bool has_previous;
    uint64_t born_ms, rotations;
    uint32_t nonce;
    int lifetime_ms;
    bool shared; /* secret set by the program (shared by workers/machines): no rotation */
};

sn_dtls_cookie_jar *sn_dtls_jar_new(int lifetime_ms)
{
    sn_dtls_cookie_jar *j = sn_calloc(1, sizeof *j);
    if (!j) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    if (sn_tls_backend_get()->random_bytes(j->secret, sizeof j->secret) != SN_OK) {
        sn_free(j);
        return NULL;
    }
    atomic_init(&j->refs, 1);
    pthread_mutex_init(&j->lock, NULL);
    j->lifetime_ms = lifetime_ms;
    j->born_ms = sn_now_ms();
    return j;
}

sn_dtls_cookie_jar *sn_dtls_jar_ref(sn_dtls_cookie_jar *jar)
{
    if (jar) atomic_fetch_add(&jar->refs, 1);
    return jar;
}

void sn_dtls_jar_unref(sn_dtls_cookie_jar *jar)
{
    if (!jar || atomic_fetch_sub(&jar->refs, 1) != 1) return;
    pthread_mutex_destroy(&jar->lock);
    /* The secret is what makes cookies unforgeable: do not leave it in freed memory. */
    memset(jar, 0, sizeof *jar);
    sn_free(jar);
}

void sn_dtls_jar_set_lifetime(sn_dtls_cookie_jar *jar, int lifetime_ms)
{
    pthread_mutex_lock(&jar->lock);
    jar->lifetime_ms = lifetime_ms;
    pthread_mutex_unlock(&jar->lock);
}

void sn_dtls_jar_set_secret(sn_dtls_cookie_jar *j, const uint8_t secret[SN_DTLS_SECRET_LEN])
{
    pthread_mutex_lock(&j->lock);
    memcpy(j->secret, secret, SN_DTLS_SECRET_LEN);
    memset(j->previous, 0, sizeof j->previous);
    j->has_previous = false;
    j->shared = true;
    pthread_mutex_unlock(&j->lock);
}

/* A shared secret is checked by other processes and machines, whose monotonic clocks mean
 * nothing here: their cookies carry wall-clock time (the lifetime still bounds them, as the
 * time is under the MAC). Our own secret stays on the monotonic clock, immune to clock steps. */
static uint64_t jar_now_ms(const sn_dtls_cookie_jar *j)
{
    if (!j->shared) return sn_now_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t sn_dtls_jar_now_s(sn_dtls_cookie_jar *j)
{
    pthread_mutex_lock(&j->lock);
    uint32_t now = (uint32_t)(jar_now_ms(j) / 1000);
    pthread_mutex_unlock(&j->lock);
    return now;
}

/* Secrets rotate every cookie lifetime; a cookie made under the previous one still passes, so
 * no client loses its handshake to a rotation. Called with the lock held. */
static void maybe_rotate(sn_dtls_cookie_jar *j, uint64_t now)
{
    if (j->shared) return; /* the program owns it: rotating would break the other holders */
    if (now - j->born_ms < (uint64_t)j->lifetime_ms) return;
    uint8_t fresh[SN_DTLS_SECRET_LEN];
    if (sn_tls_backend_get()->random_bytes(fresh, sizeof fresh) != SN_OK) return;
    memcpy(j->previous, j->secret, sizeof j->secret);
    memcpy(j->secret, fresh, sizeof fresh);
    j->has_previous = true;
    j->born_ms = now;
    j->rotations++;
}

void sn_dtls_jar_make(sn_dtls_cookie_jar *j, const sn_addr *addr, uint8_t out[SN_DTLS_COOKIE_LEN])
{
    pthread_mutex_lock(&j->lock);
    uint64_t now = jar_now_ms(j);
    maybe_rotate(j, now);
    sn_dtls_make_cookie(j->secret, (uint32_t)(now / 1000), j->nonce++, addr, out);
    pthread_mutex_unlock(&j->lock);
}

bool sn_dtls_jar_check(sn_dtls_cookie_jar *j, const sn_addr *addr, const uint8_t *cookie,
                       size_t len)
{
    pthread_mutex_lock(&j->lock);
    uint64_t now = jar_now_ms(j);
    maybe_rotate(j, now);
    uint32_t now_s = (uint32_t)(now / 1000), life = (uint32_t)((j->lifetime_ms + 999) / 1000);
    bool ok =
        sn_dtls_check_cookie(j->secret, now_s, life, addr, cookie, len) ||
        (j->has_previous && sn_dtls_check_cookie(j->previous, now_s, life, addr, cookie, len));
    pthread_mutex_unlock(&j->lock);
    return ok;
}

uint64_t sn_dtls_jar_rotations(sn_dtls_cookie_jar *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t n = j->rotations;
    pthread_mutex_unlock(&j->lock);
    return n;
}

bool sn_dtls_send_hello_verify(sn_dtls_cookie_jar *jar, sn_udp_peer *udp, const sn_addr *addr,
                               const sn_dtls_hello *hello)
{
    uint8_t cookie[SN_DTLS_COOKIE_LEN], hvr[SN_DTLS_HVR_MAX];
    sn_dtls_jar_make(jar, addr, cookie);
    size_t n = sn_dtls_build_hello_verify(hello, cookie, sizeof cookie, hvr);
    return sn_udp_peer_put_packet(udp, hvr, n) == SN_OK;
}
