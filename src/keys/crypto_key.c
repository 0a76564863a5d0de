/* sn_crypto_key (Godot: CryptoKey): a PEM private or public key, behind a backend handle. */
#include "crypto_util.h"
#include "keys_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sn_crypto_key {
    sn_tls_key *handle; /* NULL while empty */
};

/* Prefixes the backend's message with where the PEM came from. */
static sn_err with_context(sn_err err, const char *path)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sn_last_error_message());
    return sn_fail(err, "%s: %s", path, msg);
}

sn_crypto_key *sn_crypto_key_new(void)
{
    sn_crypto_key *key = sn_calloc(1, sizeof *key);
    if (!key) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    return key;
}

void sn_crypto_key_free(sn_crypto_key *key)
{
    if (!key) return;
    if (key->handle) sn_tls_backend_get()->key_unref(key->handle);
    sn_free(key);
}

sn_tls_key *sn_crypto_key_handle(const sn_crypto_key *key)
{
    return key ? key->handle : NULL;
}

sn_crypto_key *sn_crypto_key_wrap(sn_tls_key *handle)
{
    sn_crypto_key *key = sn_crypto_key_new();
    if (!key) {
        sn_tls_backend_get()->key_unref(handle);
        return NULL;
    }
    key->handle = handle;
    return key;
}

static sn_err load(sn_crypto_key *key, const char *pem, size_t len, bool public_only)
{
    sn_tls_key *h = NULL;
    sn_err err = sn_tls_backend_get()->key_load_pem(pem, len, public_only, &h);
    if (err != SN_OK) return err;
    if (key->handle) sn_tls_backend_get()->key_unref(key->handle);
    key->handle = h;
    return SN_OK;
}

sn_err sn_crypto_key_load(sn_crypto_key *key, const char *path, bool public_only)
{
    if (!key || !path)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_crypto_key_load: NULL %s",
                       key ? "path" : "key");
    char *data = NULL;
    size_t len = 0;
    sn_err err = sn_crypto_read_file(path, &data, &len);
    if (err != SN_OK) return err;
    err = load(key, data, len, public_only);
    explicit_bzero(data, len); /* it held a private key */
    sn_free(data);
    return err == SN_OK ? SN_OK : with_context(err, path);
}

sn_err sn_crypto_key_load_from_string(sn_crypto_key *key, const char *pem, bool public_only)
{
    if (!key || !pem)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_crypto_key_load_from_string: NULL %s",
                       key ? "PEM string" : "key");
    sn_err err = load(key, pem, strlen(pem), public_only);
    return err == SN_OK ? SN_OK : with_context(err, "PEM string");
}

char *sn_crypto_key_save_to_string(const sn_crypto_key *key, bool public_only)
{
    if (!key)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER, "sn_crypto_key_save_to_string: NULL key");
    if (!key->handle)
        return sn_fail_null(SN_ERR_UNCONFIGURED, "the key is empty: load or generate one first");
    return sn_tls_backend_get()->key_save_pem(key->handle, public_only);
}

sn_err sn_crypto_key_save(const sn_crypto_key *key, const char *path, bool public_only)
{
    if (!key || !path)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_crypto_key_save: NULL %s",
                       key ? "path" : "key");
    if (!key->handle)
        return sn_fail(SN_ERR_UNCONFIGURED, "cannot save to '%s': the key is empty", path);
    if (!public_only && sn_tls_backend_get()->key_is_public_only(key->handle))
        return sn_fail(SN_ERR_UNCONFIGURED,
                       "cannot save a private key to '%s': the key is public only", path);
    char *pem = sn_tls_backend_get()->key_save_pem(key->handle, public_only);
    if (!pem) return with_context(SN_FAILED, path);
    /* A private key file is created readable by its owner only. */
    sn_err err = sn_crypto_write_file(path, pem, strlen(pem), !public_only);
    explicit_bzero(pem, strlen(pem));
    sn_free(pem);
    return err;
}

bool sn_crypto_key_is_public_only(const sn_crypto_key *key)
{
    return !key || !key->handle || sn_tls_backend_get()->key_is_public_only(key->handle);
}
