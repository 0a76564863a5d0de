/* sn_x509_cert (Godot: X509Certificate): a certificate chain, leaf first, in load order. */
#include "crypto_util.h"
#include "keys_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sn_x509_cert {
    sn_tls_chain *handle; /* NULL while empty */
};

static sn_err with_context(sn_err err, const char *where)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sn_last_error_message());
    return sn_fail(err, "%s: %s", where, msg);
}

sn_x509_cert *sn_x509_cert_new(void)
{
    sn_x509_cert *cert = sn_calloc(1, sizeof *cert);
    if (!cert) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    return cert;
}

void sn_x509_cert_free(sn_x509_cert *cert)
{
    if (!cert) return;
    if (cert->handle) sn_tls_backend_get()->chain_unref(cert->handle);
    sn_free(cert);
}

sn_tls_chain *sn_x509_cert_handle(const sn_x509_cert *cert)
{
    return cert ? cert->handle : NULL;
}

sn_x509_cert *sn_x509_cert_wrap(sn_tls_chain *handle)
{
    sn_x509_cert *cert = sn_x509_cert_new();
    if (!cert) {
        sn_tls_backend_get()->chain_unref(handle);
        return NULL;
    }
    cert->handle = handle;
    return cert;
}

/* Replaces the chain only once the new one has parsed: a failed load changes nothing. */
static sn_err load(sn_x509_cert *cert, const char *pem, size_t len)
{
    sn_tls_chain *h = NULL;
    sn_err err = sn_tls_backend_get()->chain_load_pem(pem, len, &h);
    if (err != SN_OK) return err;
    if (cert->handle) sn_tls_backend_get()->chain_unref(cert->handle);
    cert->handle = h;
    return SN_OK;
}

sn_err sn_x509_cert_load(sn_x509_cert *cert, const char *path)
{
    if (!cert || !path)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_x509_cert_load: NULL %s",
                       cert ? "path" : "certificate");
    char *data = NULL;
    size_t len = 0;
    sn_err err = sn_crypto_read_file(path, &data, &len);
    if (err != SN_OK) return err;
    err = load(cert, data, len);
    sn_free(data);
    return err == SN_OK ? SN_OK : with_context(err, path);
}

sn_err sn_x509_cert_load_from_string(sn_x509_cert *cert, const char *pem)
{
    if (!cert || !pem)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_x509_cert_load_from_string: NULL %s",
                       cert ? "PEM string" : "certificate");
    sn_err err = load(cert, pem, strlen(pem));
    return err == SN_OK ? SN_OK : with_context(err, "PEM string");
}

char *sn_x509_cert_save_to_string(const sn_x509_cert *cert)
{
    if (!cert)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "sn_x509_cert_save_to_string: NULL certificate");
    if (!cert->handle)
        return sn_fail_null(SN_ERR_UNCONFIGURED,
                            "the certificate is empty: load or generate one first");
    return sn_tls_backend_get()->chain_save_pem(cert->handle);
}

sn_err sn_x509_cert_save(const sn_x509_cert *cert, const char *path)
{
    if (!cert || !path)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_x509_cert_save: NULL %s",
                       cert ? "path" : "certificate");
    if (!cert->handle)
        return sn_fail(SN_ERR_UNCONFIGURED, "cannot save to '%s': the certificate is empty", path);
    char *pem = sn_tls_backend_get()->chain_save_pem(cert->handle);
    if (!pem) return with_context(SN_FAILED, path);
    sn_err err = sn_crypto_write_file(path, pem, strlen(pem), false);
    sn_free(pem);
    return err;
}

int sn_x509_cert_get_count(const sn_x509_cert *cert)
{
    if (!cert || !cert->handle) return 0;
    return sn_tls_backend_get()->chain_count(cert->handle);
}

char *sn_x509_cert_get_fingerprint_sha256(const sn_x509_cert *cert)
{
    if (!cert)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "sn_x509_cert_get_fingerprint_sha256: NULL certificate");
    if (!cert->handle) return sn_fail_null(SN_ERR_UNCONFIGURED, "the certificate is empty");
    char fp[96];
    if (sn_tls_backend_get()->chain_fingerprint(cert->handle, fp) != SN_OK) return NULL;
    char *out = sn_strdup(fp);
    if (!out) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    return out;
}

bool sn_x509_cert_matches_key(const sn_x509_cert *cert, const sn_crypto_key *key)
{
    sn_tls_chain *c = sn_x509_cert_handle(cert);
    sn_tls_key *k = sn_crypto_key_handle(key);
    return c && k && sn_tls_backend_get()->key_matches_chain(k, c);
}

sn_err sn_x509_cert_get_info(const sn_x509_cert *cert, int index, sn_x509_info *out)
{
    if (!cert || !out)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "sn_x509_cert_get_info: NULL %s",
                       cert ? "output" : "certificate");
    if (!cert->handle) return sn_fail(SN_ERR_UNCONFIGURED, "the certificate is empty");
    int n = sn_tls_backend_get()->chain_count(cert->handle);
    if (index < 0 || index >= n)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR,
                       "sn_x509_cert_get_info: no certificate %d (the chain has %d)", index, n);
    const sn_tls_backend *b = sn_tls_backend_get();
    if (!b->chain_info)
        return sn_fail(SN_ERR_UNAVAILABLE, "%s cannot describe certificates", b->name);
    return b->chain_info(cert->handle, index, out);
}
