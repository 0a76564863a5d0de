/* sn_tls_options (Godot: TLSOptions): what a TLS/DTLS connection verifies or presents.
 *
 * The options hold their own references to the backend key and chains, so the caller may free
 * the sn_crypto_key / sn_x509_cert right after. The backend's shared context is built lazily,
 * once per kind (stream, datagram), on first use: connections on several threads may share one
 * options object, so the build is guarded by a mutex and published with release/acquire. */
#include "keys_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sn_tls_options {
    bool server;
    bool unsafe;
    sn_tls_key *key;            /* server */
    sn_tls_chain *chain;        /* server */
    sn_tls_chain *trusted;      /* client; NULL: the system store */
    char *common_name_override; /* "" when none */
    pthread_mutex_t lock;
    _Atomic(sn_tls_config *) config[2]; /* [0] stream, [1] datagram */
    sn_tls_ticket_keys *tickets;        /* server: NULL until ticket keys are set */
};

static sn_tls_options *options_new(void)
{
    sn_tls_options *o = sn_calloc(1, sizeof *o);
    if (!o) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    if (pthread_mutex_init(&o->lock, NULL) != 0) {
        sn_free(o);
        return sn_fail_null(SN_FAILED, "cannot create a mutex");
    }
    atomic_init(&o->config[0], NULL);
    atomic_init(&o->config[1], NULL);
    return o;
}

void sn_tls_options_free(sn_tls_options *opts)
{
    if (!opts) return;
    const sn_tls_backend *be = sn_tls_backend_get();
    for (int i = 0; i < 2; i++) {
        sn_tls_config *c = atomic_load_explicit(&opts->config[i], memory_order_acquire);
        if (c) be->config_unref(c);
    }
    if (opts->key) be->key_unref(opts->key);
    if (opts->chain) be->chain_unref(opts->chain);
    if (opts->trusted) be->chain_unref(opts->trusted);
    sn_tls_ticket_keys_unref(opts->tickets);
    sn_free(opts->common_name_override);
    pthread_mutex_destroy(&opts->lock);
    sn_free(opts);
}

static sn_tls_options *client(const sn_x509_cert *trusted_chain, const char *override, bool unsafe,
                              const char *fn)
{
    sn_tls_chain *trusted = NULL;
    if (trusted_chain) {
        trusted = sn_x509_cert_handle(trusted_chain);
        /* An empty certificate object is a mistake, not "use the system store" (nor, for an
         * unsafe client, "verify nothing"). */
        if (!trusted)
            return sn_fail_null(SN_ERR_UNCONFIGURED,
                                "%s: the trusted certificate chain is empty (pass NULL for %s)", fn,
                                unsafe ? "no verification" : "the system CAs");
    }
    sn_tls_options *o = options_new();
    if (!o) return NULL;
    o->unsafe = unsafe;
    o->common_name_override = sn_strdup(override ? override : "");
    if (!o->common_name_override) {
        sn_tls_options_free(o);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (trusted) o->trusted = sn_tls_backend_get()->chain_ref(trusted);
    return o;
}

sn_tls_options *sn_tls_options_client(const sn_x509_cert *trusted_chain,
                                      const char *common_name_override)
{
    return client(trusted_chain, common_name_override, false, "sn_tls_options_client");
}

sn_tls_options *sn_tls_options_client_unsafe(const sn_x509_cert *trusted_chain)
{
    return client(trusted_chain, NULL, true, "sn_tls_options_client_unsafe");
}

sn_tls_options *sn_tls_options_server(const sn_crypto_key *key, const sn_x509_cert *certificate)
{
    if (!key || !certificate)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER, "sn_tls_options_server: NULL %s",
                            key ? "certificate" : "key");
    sn_tls_key *k = sn_crypto_key_handle(key);
    sn_tls_chain *c = sn_x509_cert_handle(certificate);
    if (!k) return sn_fail_null(SN_ERR_UNCONFIGURED, "sn_tls_options_server: the key is empty");
    if (!c)
        return sn_fail_null(SN_ERR_UNCONFIGURED, "sn_tls_options_server: the certificate is empty");
    const sn_tls_backend *be = sn_tls_backend_get();
    if (be->key_is_public_only(k))
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "sn_tls_options_server: the key is public only; a server needs the "
                            "private key");
    if (!be->key_matches_chain(k, c))
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "sn_tls_options_server: the private key does not match the "
                            "certificate (the first certificate of the chain must be the one "
                            "issued for this key)");
    sn_tls_options *o = options_new();
    if (!o) return NULL;
    o->server = true;
    o->common_name_override = sn_strdup("");
    if (!o->common_name_override) {
        sn_tls_options_free(o);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    o->key = be->key_ref(k);
    o->chain = be->chain_ref(c);
    return o;
}

bool sn_tls_options_is_server(const sn_tls_options *opts)
{
    return opts && opts->server;
}

bool sn_tls_options_is_unsafe_client(const sn_tls_options *opts)
{
    return opts && !opts->server && opts->unsafe;
}

const char *sn_tls_options_get_common_name_override(const sn_tls_options *opts)
{
    return opts && opts->common_name_override ? opts->common_name_override : "";
}

sn_tls_config *sn_tls_options_get_config(const sn_tls_options *opts, bool datagram)
{
    if (!opts) return sn_fail_null(SN_ERR_INVALID_PARAMETER, "NULL TLS options");
    /* The cache is not part of the options' value: building it lazily on a const object is
     * fine, every object is allocated writable by options_new. */
    sn_tls_options *o = (sn_tls_options *)(uintptr_t)opts;
    int i = datagram ? 1 : 0;
    sn_tls_config *c = atomic_load_explicit(&o->config[i], memory_order_acquire);
    if (c) return c;
    pthread_mutex_lock(&o->lock);
    c = atomic_load_explicit(&o->config[i], memory_order_relaxed);
    if (!c) {
        sn_tls_config_params p;
        memset(&p, 0, sizeof p);
        p.server = o->server;
        p.datagram = datagram;
        if (o->server) {
            p.key = o->key;
            p.chain = o->chain;
            p.tickets = o->tickets;
        } else {
            p.trusted = o->trusted;
            p.verify_chain = !(o->unsafe && o->trusted == NULL);
            p.verify_name = !o->unsafe;
        }
        c = sn_tls_backend_get()->config_new(&p);
        if (c) atomic_store_explicit(&o->config[i], c, memory_order_release);
    }
    pthread_mutex_unlock(&o->lock);
    return c;
}

/* --- session tickets ------------------------------------ */

sn_err sn_tls_options_set_ticket_keys(sn_tls_options *opts, const uint8_t *keys, size_t len)
{
    if (!opts || !keys) return sn_fail(SN_ERR_INVALID_PARAMETER, "set_ticket_keys: NULL argument");
    if (!opts->server)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "ticket keys belong on server options");
    if (len == 0 || len % SN_TICKET_KEY_LEN || len / SN_TICKET_KEY_LEN > SN_TICKET_KEYS_MAX)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "ticket keys: %zu bytes; 1 or 2 keys of %d bytes each (current first)", len,
                       SN_TICKET_KEY_LEN);
    sn_err e = sn_tls_require(SN_TLS_CAP_TICKETS, "session tickets");
    if (e != SN_OK) return e;
    pthread_mutex_lock(&opts->lock);
    if (!opts->tickets) {
        /* Contexts built without keys issue no tickets and cannot start to: refuse rather than
         * silently not resume. */
        if (atomic_load(&opts->config[0]) || atomic_load(&opts->config[1])) {
            pthread_mutex_unlock(&opts->lock);
            return sn_fail(SN_ERR_ALREADY_IN_USE,
                           "ticket keys must be set before the options' first connection (later "
                           "calls rotate them)");
        }
        opts->tickets = sn_tls_ticket_keys_new();
    }
    e = opts->tickets ? sn_tls_ticket_keys_set(opts->tickets, keys, len / SN_TICKET_KEY_LEN)
                      : SN_ERR_OUT_OF_MEMORY;
    pthread_mutex_unlock(&opts->lock);
    return e;
}

sn_err sn_tls_options_load_ticket_key_file(sn_tls_options *opts, const char *path)
{
    if (!opts) return sn_fail(SN_ERR_INVALID_PARAMETER, "load_ticket_key_file: NULL options");
    uint8_t keys[SN_TICKET_KEYS_MAX * SN_TICKET_KEY_LEN];
    size_t n = 0;
    sn_err e = sn_secret_file_load(path, "ticket keys", SN_TICKET_KEY_LEN, SN_TICKET_KEYS_MAX, true,
                                   keys, &n);
    if (e == SN_OK) e = sn_tls_options_set_ticket_keys(opts, keys, n * SN_TICKET_KEY_LEN);
    memset(keys, 0, sizeof keys);
    return e;
}

void sn_tls_options_get_ticket_stats(const sn_tls_options *opts, sn_tls_ticket_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!opts || !opts->tickets) return;
    sn_tls_ticket_counters c;
    sn_tls_ticket_keys_counters(opts->tickets, &c);
    out->issued = c.issued;
    out->resumed = c.resumed;
    out->unknown_key = c.unknown_key;
    out->rejected = c.rejected;
}
