/* Helpers shared by keys, certificates and generation (implemented in crypto.c). Not installed.
 * They hold the library's policy (file size cap, issuer-name syntax, date format) so that every
 * TLS backend applies the same rules. */
#ifndef SN_CRYPTO_UTIL_H
#define SN_CRYPTO_UTIL_H

#include "core.h"

#include <time.h>

/* Key and certificate files larger than this are refused before parsing: a PEM chain of a few
 * dozen certificates is well under 100 KiB, so anything this big is a mistake or an attack. */
#define SN_CRYPTO_FILE_MAX ((size_t)4 * 1024 * 1024)

/* Reads a whole key/certificate file (NUL-terminated, sn_malloc'd into *data).
 * Errors: SN_ERR_FILE_NOT_FOUND, SN_ERR_CANT_OPEN (permissions, a directory), SN_ERR_FILE_CORRUPT
 * (empty, over SN_CRYPTO_FILE_MAX), SN_ERR_OUT_OF_MEMORY; messages name the path. */
sn_err sn_crypto_read_file(const char *path, char **data, size_t *len);
/* Writes data to path (created or truncated); `secret` creates it readable by the owner only.
 * SN_ERR_CANT_CREATE with the path and the system's reason. */
sn_err sn_crypto_write_file(const char *path, const char *data, size_t len, bool secret);

/* A distinguished name parsed from "CN=..,O=..,C=..", in the order written. */
#define SN_DN_MAX_ENTRIES 16
typedef struct sn_dn {
    size_t count;
    struct {
        const char *key;   /* "CN", "O", "OU", "C", "ST" or "L" (static) */
        const char *value; /* unescaped, trimmed, non-empty UTF-8 (points into buf) */
    } entry[SN_DN_MAX_ENTRIES];
    const char *cn; /* the CN value (always present after a successful parse) */
    char *buf;
} sn_dn;

/* Parses an issuer/subject string strictly: comma-separated KEY=VALUE, keys among CN, O, OU, C,
 * ST, L; CN required, at most one CN and one C, C exactly two letters, no empty values, `\,`
 * `\=` and `\\` escape. SN_ERR_INVALID_PARAMETER with a message naming the fault. Release with
 * sn_dn_clear (also after a failure). */
sn_err sn_dn_parse(const char *text, sn_dn *dn);
void sn_dn_clear(sn_dn *dn);

/* Parses "YYYYMMDDhhmmss" (UTC, years 1970..9999, valid calendar values) into seconds since the
 * epoch. `what` names the argument in the message ("not_before"). SN_ERR_INVALID_PARAMETER. */
sn_err sn_time_parse(const char *text, const char *what, int64_t *out);

/* A DNS name as a subjectAltName accepts it: letters, digits, '-', '_', dots, an optional
 * leading "*." wildcard, no empty labels. Used to decide whether a CN becomes a DNS SAN. */
bool sn_dns_name_plausible(const char *s);

/* Formats a 32-byte SHA-256 digest as "AB:CD:..." (95 characters + NUL), the fingerprint form
 * every backend returns. */
void sn_fingerprint_format(const uint8_t md[32], char out[96]);

/* What every backend's self-signed certificate is made from, parsed and checked once: the issuer
 * (NULL: "CN=myserver,O=myorganisation,C=IT", Godot's default) into *dn, and the validity
 * (not_before NULL: now; not_after NULL: a year after not_before) into *not_before_s and
 * *not_after_s, seconds since the epoch. SN_ERR_INVALID_PARAMETER naming the fault (a bad name,
 * a bad date, not_after not later than not_before). On success release *dn with sn_dn_clear;
 * a failure leaves nothing to release. */
sn_err sn_cert_template_parse(const char *issuer, const char *not_before, const char *not_after,
                              sn_dn *dn, int64_t *not_before_s, int64_t *not_after_s);

#endif
