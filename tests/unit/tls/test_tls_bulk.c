/* Data integrity through sn_tls_stream: 64 MiB each way at the same time (about 1.5 s under
 * ASan; SN_LONG_TESTS raises it to 512 MiB), client and server polled in turn in one thread
 * with partial reads and writes of varying sizes and reading pauses that make writers stall,
 * SHA-256 of what was sent and what arrived compared on each side (OpenSSL's EVP directly, in the
 * test only). Runs over TLS 1.3 (our default); TLS 1.2 bulk is covered by the interop test against
 * openssl s_server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>

#include "core.h"
#include "test_tls_util.h"

/* One direction's bookkeeping: a generator of the bytes to send and two running hashes. */
typedef struct flow {
    sn_tls_stream *from, *to;
    size_t total, sent, received;
    uint64_t gen;       /* xorshift state of the sender */
    uint8_t out[70000]; /* generated but not yet accepted by the stream */
    size_t out_pos, out_len;
    EVP_MD_CTX *sent_md, *recv_md;
    size_t write_calls, zero_writes;
} flow;

static void flow_init(flow *f, sn_tls_stream *from, sn_tls_stream *to, size_t total, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->from = from;
    f->to = to;
    f->total = total;
    f->gen = seed;
    f->sent_md = EVP_MD_CTX_new();
    f->recv_md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(f->sent_md, EVP_sha256(), NULL);
    EVP_DigestInit_ex(f->recv_md, EVP_sha256(), NULL);
}

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Writes one piece of varying size (1 byte .. 64 KiB). */
static void flow_write(flow *f)
{
    if (f->out_pos == f->out_len && f->sent < f->total) {
        size_t len = (size_t)(next(&f->gen) % 65536) + 1;
        if (len > f->total - f->sent) len = f->total - f->sent;
        for (size_t i = 0; i < len; i += 8) {
            uint64_t v = next(&f->gen);
            memcpy(f->out + i, &v, len - i < 8 ? len - i : 8);
        }
        f->out_pos = 0;
        f->out_len = len;
    }
    if (f->out_pos == f->out_len) return;
    size_t n = 0;
    assert_int_equal(
        sn_tls_stream_put_partial_data(f->from, f->out + f->out_pos, f->out_len - f->out_pos, &n),
        SN_OK);
    f->write_calls++;
    if (!n) f->zero_writes++;
    EVP_DigestUpdate(f->sent_md, f->out + f->out_pos, n);
    f->out_pos += n;
    f->sent += n;
}

static void flow_read(flow *f, size_t cap)
{
    static uint8_t buf[100000];
    size_t n = 0;
    assert_int_equal(sn_tls_stream_get_partial_data(f->to, buf, cap, &n), SN_OK);
    EVP_DigestUpdate(f->recv_md, buf, n);
    f->received += n;
}

static void flow_check(flow *f)
{
    uint8_t a[32], b[32];
    unsigned int la = 0, lb = 0;
    EVP_DigestFinal_ex(f->sent_md, a, &la);
    EVP_DigestFinal_ex(f->recv_md, b, &lb);
    assert_int_equal(f->sent, f->total);
    assert_int_equal(f->received, f->total);
    assert_memory_equal(a, b, 32);
    EVP_MD_CTX_free(f->sent_md);
    EVP_MD_CTX_free(f->recv_md);
}

static void both_ways(void **state)
{
    (void)state;
    size_t mib = getenv("SN_LONG_TESTS") ? 512 : 64;
    size_t total = mib << 20;
    tls_pair p;
    tls_pair_open_with(&p, certs, "localhost", certs->client);
    assert_int_equal(sn_tls_stream_get_status(p.client), SN_TLS_STATUS_CONNECTED);
    assert_int_equal(sn_tls_stream_get_status(p.server), SN_TLS_STATUS_CONNECTED);
    flow up, down;
    flow_init(&up, p.client, p.server, total, 0x9E3779B97F4A7C15ull);
    flow_init(&down, p.server, p.client, total, 0xD1B54A32D192ED03ull);
    uint64_t t0 = sn_test_now_ms(), end = t0 + 120000;
    uint64_t rng = 12345;
    for (unsigned round = 0;
         (up.received < total || down.received < total) && sn_test_now_ms() < end; round++) {
        sn_tls_stream_poll(p.client);
        sn_tls_stream_poll(p.server);
        flow_write(&up);
        flow_write(&down);
        /* Read caps from 1 byte to 100 kB so record boundaries fall everywhere. */
        size_t cap = next(&rng) % 8 == 0 ? (size_t)(next(&rng) % 64) + 1 : 100000;
        /* Every 256 rounds, 160 without reading: the writers fill the socket buffers and stall. */
        if (round % 256 >= 160) {
            flow_read(&up, cap);
            flow_read(&down, cap);
        }
        assert_int_equal(sn_tls_stream_get_status(p.client), SN_TLS_STATUS_CONNECTED);
        assert_int_equal(sn_tls_stream_get_status(p.server), SN_TLS_STATUS_CONNECTED);
    }
    uint64_t ms = sn_test_now_ms() - t0;
    print_message("%zu MiB each way in %llu ms (%zu/%zu zero-byte writes up, %zu/%zu down)\n", mib,
                  (unsigned long long)ms, up.zero_writes, up.write_calls, down.zero_writes,
                  down.write_calls);
    /* The pauses did stall the writers (so the stash path ran), and the hashes still match. */
    assert_true(up.zero_writes > 0 && down.zero_writes > 0);
    flow_check(&up);
    flow_check(&down);
    /* A clean end on both sides after all that. */
    sn_tls_stream_disconnect_from_stream(p.client);
    uint64_t until = sn_test_now_ms() + 3000;
    while (sn_tls_stream_get_status(p.server) == SN_TLS_STATUS_CONNECTED &&
           sn_test_now_ms() < until)
        sn_tls_stream_poll(p.server);
    assert_int_equal(sn_tls_stream_get_status(p.server), SN_TLS_STATUS_DISCONNECTED);
    assert_string_equal(sn_tls_stream_get_error_message(p.server), "");
    tls_pair_close(&p);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(both_ways),
    };
    if (!sn_test_have("openssl")) {
        fprintf(stderr, "SKIP: the openssl command is needed to make test certificates\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
