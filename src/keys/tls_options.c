/* sn_tls_options (Godot: TLSOptions): what a TLS/DTLS connection verifies or presents.
 *
 * The options hold their own references to the backend key and chains, so the caller may free
 * the sn_crypto_key / sn_x509_cert right after. The backend's shared context is built lazily,
 * once per kind (stream, datagram), on first use: connections on several threads may share one
 * options object, so the build is guarded by a mutex and published with release/acquire. */
#include "keys_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
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
    sn_tls_keylog_fn keylog;
    void *keylog_user;
    FILE *keylog_file; /* sn_tls_options_set_keylog_file; written under `lock` */
    sn_tls_trace_fn trace;
    void *trace_user;
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
    if (opts->keylog_file) fclose(opts->keylog_file);
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
        p.keylog = o->keylog;
        p.keylog_user = o->keylog_user;
        p.trace = o->trace;
        p.trace_user = o->trace_user;
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

/* Callbacks become part of the backend context, built on first use: later changes could not
 * reach it, so they are refused rather than ignored. */
static sn_err check_unused(sn_tls_options *o, const char *what)
{
    if (!o) return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: NULL options", what);
    if (atomic_load_explicit(&o->config[0], memory_order_acquire) ||
        atomic_load_explicit(&o->config[1], memory_order_acquire))
        return sn_fail(SN_ERR_LOCKED,
                       "%s: the options are already in use by a connection; set it before the "
                       "first connect or setup",
                       what);
    return SN_OK;
}

sn_err sn_tls_options_set_keylog_callback(sn_tls_options *opts, sn_tls_keylog_fn fn, void *user)
{
    sn_err e = check_unused(opts, "sn_tls_options_set_keylog_callback");
    if (e != SN_OK) return e;
    if (fn && (e = sn_tls_require(SN_TLS_CAP_KEYLOG, "key logging")) != SN_OK) return e;
    opts->keylog = fn;
    opts->keylog_user = user;
    return SN_OK;
}

static void keylog_to_file(void *user, const char *line)
{
    sn_tls_options *o = user;
    /* Sessions of one options object may run on several threads: one line at a time. */
    pthread_mutex_lock(&o->lock);
    if (o->keylog_file) {
        fputs(line, o->keylog_file);
        fputc('\n', o->keylog_file);
        fflush(o->keylog_file);
    }
    pthread_mutex_unlock(&o->lock);
}

sn_err sn_tls_options_set_keylog_file(sn_tls_options *opts, const char *path)
{
    sn_err e = check_unused(opts, "sn_tls_options_set_keylog_file");
    if (e != SN_OK) return e;
    if (path && (e = sn_tls_require(SN_TLS_CAP_KEYLOG, "key logging")) != SN_OK) return e;
    FILE *f = NULL;
    if (path) {
        /* Secrets: readable by the owner only, as a private key is. */
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 || !(f = fdopen(fd, "a"))) {
            int err = errno;
            if (fd >= 0) close(fd);
            return sn_fail(SN_ERR_CANT_CREATE, "cannot open key log file '%s': %s", path,
                           strerror(err));
        }
    }
    if (opts->keylog_file) fclose(opts->keylog_file);
    opts->keylog_file = f;
    opts->keylog = f ? keylog_to_file : NULL;
    opts->keylog_user = f ? opts : NULL;
    return SN_OK;
}

sn_err sn_tls_options_set_trace_callback(sn_tls_options *opts, sn_tls_trace_fn fn, void *user)
{
    sn_err e = check_unused(opts, "sn_tls_options_set_trace_callback");
    if (e != SN_OK) return e;
    opts->trace = fn;
    opts->trace_user = user;
    return SN_OK;
}
