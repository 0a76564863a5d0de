/* The OpenSSL backend's function table. Keys and chains: openssl_crypto.c; contexts and
 * sessions: openssl_session.c. */
#include "openssl.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

static const char *library_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

const char *sn_ossl_error_string(const char *fallback)
{
    static _Thread_local char buf[384];
    unsigned long code = ERR_get_error();
    if (!code) {
        snprintf(buf, sizeof buf, "%s", fallback);
        return buf;
    }
    /* The first error is usually the root cause; later ones are the call stack's echoes. */
    const char *reason = ERR_reason_error_string(code);
    if (reason)
        snprintf(buf, sizeof buf, "%s", reason);
    else
        ERR_error_string_n(code, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

/* OpenSSL's allocation hooks take no user pointer: they read the allocator bound here, once,
 * and never another (blocks OpenSSL holds must go back to the allocator that made them). */
static const sn_allocator *ossl_allocator;

static void *ossl_malloc(size_t n, const char *file, int line)
{
    SN_UNUSED(file);
    SN_UNUSED(line);
    return ossl_allocator->malloc_fn(n ? n : 1, ossl_allocator->user);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    SN_UNUSED(file);
    SN_UNUSED(line);
    return ossl_allocator->realloc_fn(p, n ? n : 1, ossl_allocator->user);
}

static void ossl_free(void *p, const char *file, int line)
{
    SN_UNUSED(file);
    SN_UNUSED(line);
    if (p) ossl_allocator->free_fn(p, ossl_allocator->user);
}

static bool route_allocator(const sn_allocator *a)
{
    static sn_allocator bound;
    if (ossl_allocator) return false; /* bound once already */
    bound = *a;
    ossl_allocator = &bound;
    /* Fails once OpenSSL has allocated anything: then it keeps libc. */
    if (CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) return true;
    ossl_allocator = NULL;
    return false;
}

static const sn_tls_backend openssl_backend = {
    .name = "OpenSSL",
    .library_version = library_version,
    .caps = SN_TLS_CAP_TLS13 | SN_TLS_CAP_KEYLOG | SN_TLS_CAP_ALLOCATOR | SN_TLS_CAP_TICKETS,
    .route_allocator = route_allocator,
    .key_load_pem = sn_ossl_key_load_pem,
    .key_save_pem = sn_ossl_key_save_pem,
    .key_is_public_only = sn_ossl_key_is_public_only,
    .key_generate_rsa = sn_ossl_key_generate_rsa,
    .key_generate_ec = sn_ossl_key_generate_ec,
    .key_ref = sn_ossl_key_ref,
    .key_unref = sn_ossl_key_unref,
    .chain_load_pem = sn_ossl_chain_load_pem,
    .chain_save_pem = sn_ossl_chain_save_pem,
    .chain_self_signed = sn_ossl_chain_self_signed,
    .key_matches_chain = sn_ossl_key_matches_chain,
    .chain_fingerprint = sn_ossl_chain_fingerprint,
    .chain_count = sn_ossl_chain_count,
    .chain_ref = sn_ossl_chain_ref,
    .chain_unref = sn_ossl_chain_unref,
    .random_bytes = sn_ossl_random_bytes,
    .hmac_sha256 = sn_ossl_hmac_sha256,
    .config_new = sn_ossl_config_new,
    .config_ref = sn_ossl_config_ref,
    .config_unref = sn_ossl_config_unref,
    .session_new = sn_ossl_session_new,
    .session_free = sn_ossl_session_free,
    .handshake = sn_ossl_handshake,
    .read = sn_ossl_read,
    .write = sn_ossl_write,
    .close = sn_ossl_close,
    .failure = sn_ossl_failure,
    .pending = sn_ossl_pending,
    .has_buffered_input = sn_ossl_has_buffered_input,
    .next_timeout_ms = sn_ossl_next_timeout_ms,
    .handle_timeout = sn_ossl_handle_timeout,
    .max_payload = sn_ossl_max_payload,
    .record_overhead = sn_ossl_record_overhead,
    .record_overhead_max = 24, /* AES-GCM: 8-byte explicit nonce + 16-byte tag */
    .describe = sn_ossl_describe,
    .peer_fingerprint = sn_ossl_peer_fingerprint,
    .session_resumed = sn_ossl_session_resumed,
    .peer_chain = sn_ossl_peer_chain,
    .chain_info = sn_ossl_chain_info,
    .peer_next_epoch_possible = sn_ossl_peer_next_epoch_possible,
};

const sn_tls_backend *sn_tls_backend_get(void)
{
    return &openssl_backend;
}
