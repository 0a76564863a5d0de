/* The mbed TLS backend's function table (mbed TLS 2.28, Debian's libmbedtls-dev). Keys and
 * chains: mbedtls_crypto.c; contexts and sessions: mbedtls_session.c. What it cannot do is in
 * its capability bits and in docs/backends.md. */
#include "mbedtls_backend.h"

#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/version.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const char *library_version(void)
{
    static char v[32];
    if (!v[0]) {
        char num[18];
        mbedtls_version_get_string(num);
        snprintf(v, sizeof v, "mbed TLS %s", num);
    }
    return v;
}

const char *sn_mbed_error_string(int code)
{
    static _Thread_local char buf[200];
    mbedtls_strerror(code, buf, sizeof buf);
    return buf;
}

/* One DRBG for the process: seeding reads the system's entropy, too slow to do per key or per
 * session. mbed TLS locks it internally (MBEDTLS_THREADING_PTHREAD in Debian's build). */
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static pthread_once_t drbg_once = PTHREAD_ONCE_INIT;
static int drbg_status = -1;

static void drbg_setup(void)
{
    static const unsigned char personal[] = "sealnet";
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    drbg_status =
        mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, personal, sizeof personal - 1);
}

mbedtls_ctr_drbg_context *sn_mbed_drbg(void)
{
    pthread_once(&drbg_once, drbg_setup);
    if (drbg_status != 0)
        return sn_fail_null(SN_FAILED, "cannot seed the random generator: %s",
                            sn_mbed_error_string(drbg_status));
    return &drbg;
}

int sn_mbed_rng(void *ctx, unsigned char *buf, size_t len)
{
    /* mbed TLS caps one request at MBEDTLS_CTR_DRBG_MAX_REQUEST bytes. */
    while (len > 0) {
        size_t chunk = len > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : len;
        int rc = mbedtls_ctr_drbg_random(ctx, buf, chunk);
        if (rc != 0) return rc;
        buf += chunk;
        len -= chunk;
    }
    return 0;
}

/* No SN_TLS_CAP_TLS13 (2.28 has no TLS 1.3 on streams), no SN_TLS_CAP_ALLOCATOR (Debian builds
 * it without MBEDTLS_PLATFORM_MEMORY, so its calloc/free are libc's) and no
 * SN_TLS_CAP_PKCS1_WRITE (keys are written as PKCS#8, like the OpenSSL backend). Key logging
 * needs MBEDTLS_SSL_EXPORT_KEYS, the peer's chain MBEDTLS_SSL_KEEP_PEER_CERTIFICATE and the
 * trace's alerts MBEDTLS_DEBUG_C, all in Debian's build. */
static const sn_tls_backend mbedtls_backend = {
    .name = "mbed TLS",
    .library_version = library_version,
    .caps = SN_TLS_CAP_TICKETS | SN_TLS_CAP_KEYLOG,
    .route_allocator = NULL,
    .key_load_pem = sn_mbed_key_load_pem,
    .key_save_pem = sn_mbed_key_save_pem,
    .key_is_public_only = sn_mbed_key_is_public_only,
    .key_generate_rsa = sn_mbed_key_generate_rsa,
    .key_generate_ec = sn_mbed_key_generate_ec,
    .key_ref = sn_mbed_key_ref,
    .key_unref = sn_mbed_key_unref,
    .chain_load_pem = sn_mbed_chain_load_pem,
    .chain_save_pem = sn_mbed_chain_save_pem,
    .chain_self_signed = sn_mbed_chain_self_signed,
    .key_matches_chain = sn_mbed_key_matches_chain,
    .chain_fingerprint = sn_mbed_chain_fingerprint,
    .chain_count = sn_mbed_chain_count,
    .chain_ref = sn_mbed_chain_ref,
    .chain_unref = sn_mbed_chain_unref,
    .random_bytes = sn_mbed_random_bytes,
    .hmac_sha256 = sn_mbed_hmac_sha256,
    .config_new = sn_mbed_config_new,
    .config_ref = sn_mbed_config_ref,
    .config_unref = sn_mbed_config_unref,
    .session_new = sn_mbed_session_new,
    .session_free = sn_mbed_session_free,
    .handshake = sn_mbed_handshake,
    .read = sn_mbed_read,
    .write = sn_mbed_write,
    .close = sn_mbed_close,
    .failure = sn_mbed_failure,
    .pending = sn_mbed_pending,
    .has_buffered_input = sn_mbed_has_buffered_input,
    .next_timeout_ms = sn_mbed_next_timeout_ms,
    .handle_timeout = sn_mbed_handle_timeout,
    .max_payload = sn_mbed_max_payload,
    .record_overhead = sn_mbed_record_overhead,
    .record_overhead_max = 24, /* AES-GCM: 8-byte explicit nonce + 16-byte tag */
    .describe = sn_mbed_describe,
    .peer_fingerprint = sn_mbed_peer_fingerprint,
    .session_resumed = sn_mbed_session_resumed,
    .peer_chain = sn_mbed_peer_chain,
    .chain_info = sn_mbed_chain_info,
};

const sn_tls_backend *sn_tls_backend_get(void)
{
    return &mbedtls_backend;
}
