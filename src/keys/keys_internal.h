/* What the layers above keys/ (dtls, tls, host) may use of keys, certificates and TLS options:
 * the backend handles behind them. Not installed. */
#ifndef SN_KEYS_INTERNAL_H
#define SN_KEYS_INTERNAL_H

#include "backend.h"

/* crypto_key.c / x509_cert.c: the backend handle behind a key or certificate (borrowed; NULL
 * when the object is empty). */
sn_tls_key *sn_crypto_key_handle(const sn_crypto_key *key);
sn_tls_chain *sn_x509_cert_handle(const sn_x509_cert *cert);
/* Wraps a backend handle in a new public object; takes ownership of the handle, also on
 * failure. */
sn_crypto_key *sn_crypto_key_wrap(sn_tls_key *handle);
sn_x509_cert *sn_x509_cert_wrap(sn_tls_chain *handle);

/* tls_options.c: the shared context for stream (TLS) or datagram (DTLS) connections made with
 * these options. Borrowed: a session takes its own reference. Never NULL for valid options. */
sn_tls_config *sn_tls_options_get_config(const sn_tls_options *opts, bool datagram);

/* secret_file.c: loads up to max_count secrets of secret_len bytes (one hex line each, '#'
 * comments) from path into out (max_count * secret_len bytes), creating the file with one fresh
 * random secret (mode 0600) when missing and `create`. `kind` names it in messages ("ticket
 * keys"). Errors name the file and the fault: SN_ERR_FILE_NOT_FOUND, SN_ERR_FILE_CORRUPT
 * (a short, long or non-hex line, too many lines, no secret), SN_ERR_CANT_CREATE. */
#define SN_SECRET_FILE_MAX_LEN 128
sn_err sn_secret_file_load(const char *path, const char *kind, size_t secret_len, size_t max_count,
                           bool create, uint8_t *out, size_t *count);

#endif
