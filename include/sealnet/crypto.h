/* sealnet — keys and certificates (Godot: CryptoKey, X509Certificate, Crypto).
 *
 * Keys and certificates are PEM in and PEM out. Loading replaces what the object held; a load
 * that fails leaves the object as it was and names the cause in sn_last_error_message().
 */
#ifndef SEALNET_CRYPTO_H
#define SEALNET_CRYPTO_H

#include <sealnet/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sn_crypto_key sn_crypto_key;
typedef struct sn_x509_cert sn_x509_cert;

/* An empty key object; NULL only when out of memory. */
SN_API sn_crypto_key *sn_crypto_key_new(void);
/* Frees the key; NULL is fine. Options built from it keep their own reference. */
SN_API void sn_crypto_key_free(sn_crypto_key *key);
/* Loads a PEM private key from a file (PKCS#8, or traditional RSA/EC). With public_only, loads a
 * public key, or just the public half of a private key (as Godot does). Replaces what the
 * object held; on failure the object is unchanged. Files over 4 MiB are refused unparsed.
 * Passphrase-protected keys are not supported yet (refused with a message; never prompts).
 * Errors: SN_ERR_INVALID_PARAMETER (NULL), SN_ERR_FILE_NOT_FOUND, SN_ERR_CANT_OPEN (a directory,
 * no permission), SN_ERR_FILE_CORRUPT (empty, too big, not a key, truncated, encrypted, wrong
 * type); the message names the path and, where it can, the PEM line. */
SN_API sn_err sn_crypto_key_load(sn_crypto_key *key, const char *path, bool public_only);
/* Saves the key as PEM (PKCS#8 private key, created with mode 0600, or SubjectPublicKeyInfo when
 * public_only). Errors: SN_ERR_UNCONFIGURED (empty key, or a private key asked of a public-only
 * key), SN_ERR_CANT_CREATE, SN_ERR_INVALID_PARAMETER. */
SN_API sn_err sn_crypto_key_save(const sn_crypto_key *key, const char *path, bool public_only);
/* As sn_crypto_key_load, from a NUL-terminated PEM string (no size cap). */
SN_API sn_err sn_crypto_key_load_from_string(sn_crypto_key *key, const char *pem, bool public_only);
/* The key as a PEM string, released with sn_free(); NULL on failure (empty key, private key
 * asked of a public-only key). */
SN_API char *sn_crypto_key_save_to_string(const sn_crypto_key *key, bool public_only);
/* True when the object holds only a public key (or nothing). */
SN_API bool sn_crypto_key_is_public_only(const sn_crypto_key *key);

/* An empty certificate object; NULL only when out of memory. */
SN_API sn_x509_cert *sn_x509_cert_new(void);
/* Frees the certificate (chain); NULL is fine. */
SN_API void sn_x509_cert_free(sn_x509_cert *cert);
/* Loads one certificate or a chain (every certificate kept, in file order, leaf first) from a
 * PEM file; other PEM blocks (a key in a combined file) are skipped. Replaces what the object
 * held; on failure the object is unchanged. Files over 4 MiB are refused unparsed. Errors:
 * SN_ERR_INVALID_PARAMETER, SN_ERR_FILE_NOT_FOUND, SN_ERR_CANT_OPEN, SN_ERR_FILE_CORRUPT. */
SN_API sn_err sn_x509_cert_load(sn_x509_cert *cert, const char *path);
/* Writes the whole chain as loaded, each certificate once. SN_ERR_UNCONFIGURED when empty. */
SN_API sn_err sn_x509_cert_save(const sn_x509_cert *cert, const char *path);
/* As sn_x509_cert_load, from a NUL-terminated PEM string. */
SN_API sn_err sn_x509_cert_load_from_string(sn_x509_cert *cert, const char *pem);
/* The chain as PEM, released with sn_free(); NULL when empty. */
SN_API char *sn_x509_cert_save_to_string(const sn_x509_cert *cert);
/* Number of certificates in the chain (0 when empty or NULL). */
SN_API int sn_x509_cert_get_count(const sn_x509_cert *cert);
/* SHA-256 of the first (leaf) certificate's DER as "AB:CD:..." (95 characters), as
 * `openssl x509 -noout -fingerprint -sha256` prints it; released with sn_free(). NULL when empty.
 */
SN_API char *sn_x509_cert_get_fingerprint_sha256(const sn_x509_cert *cert);
/* What a certificate says, as text (every field NUL-terminated, truncated to fit). */
typedef struct sn_x509_info {
    char subject[256];           /* "CN=localhost, O=sealnet" */
    char issuer[256];            /* the same for the issuer; equal to subject when self-signed */
    char names[512];             /* subjectAltNames, "DNS:localhost, IP:127.0.0.1"; "" when none */
    char not_before[32];         /* "2026-12-02 00:48:43 UTC" */
    char not_after[32];          /* the same form */
    char fingerprint_sha256[96]; /* "AB:CD:..", as sn_x509_cert_get_fingerprint_sha256 */
} sn_x509_info;
/* Fills *out with what certificate `index` of the chain (0: the leaf) says. Errors:
 * SN_ERR_INVALID_PARAMETER (NULL), SN_ERR_UNCONFIGURED (empty), SN_ERR_PARAMETER_RANGE_ERROR
 * (index not in 0..count-1). */
SN_API sn_err sn_x509_cert_get_info(const sn_x509_cert *cert, int index, sn_x509_info *out);
/* True when key (private or public) is the key of the chain's first certificate. */
SN_API bool sn_x509_cert_matches_key(const sn_x509_cert *cert, const sn_crypto_key *key);

/* A new RSA key with e = 65537. Refuses bits < 2048 and > 16384 (NULL, message says why). */
SN_API sn_crypto_key *sn_crypto_generate_rsa(int bits);
/* A new EC signing key on "P-256" (also NULL) or "P-384". Refuses X25519 and unknown curves. */
SN_API sn_crypto_key *sn_crypto_generate_ec(const char *curve);
/* A self-signed certificate for `key` (borrowed), SHA-256, random positive serial, the CN also
 * as a DNS subjectAltName, basicConstraints CA:FALSE.
 * issuer_name: "CN=..,O=..,C=.." (NULL: "CN=myserver,O=myorganisation,C=IT"); parsed strictly.
 * not_before / not_after: "YYYYMMDDhhmmss" UTC (NULL: now / now + 1 year).
 * NULL on failure with the cause in sn_last_error_message(). */
SN_API sn_x509_cert *sn_crypto_generate_self_signed_certificate(const sn_crypto_key *key,
                                                                const char *issuer_name,
                                                                const char *not_before,
                                                                const char *not_after);
/* Fills buf with len bytes from the OS CSPRNG (through the TLS backend). SN_ERR_INVALID_PARAMETER
 * when buf is NULL and len > 0. */
SN_API sn_err sn_crypto_generate_random_bytes(void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
