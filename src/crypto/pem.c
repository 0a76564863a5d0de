/* A line-based PEM reader of sealnet's own, shared by every backend: it finds blocks, their labels
 * and line numbers, so that errors say "the PRIVATE KEY block at line 1 has no END line" or
 * "holds a certificate, not a private key" instead of a TLS library's "no start line". */
#include "pem.h"

#include <stdio.h>
#include <string.h>

/* Next line of the input (without its newline or trailing CR/spaces). false at the end. */
static bool next_line(sn_pem_reader *r, const char **start, size_t *n)
{
    /* A UTF-8 byte order mark (some Windows editors write one) is not part of the first line. */
    if (r->pos == 0 && r->len >= 3 && memcmp(r->data, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;
    if (r->pos >= r->len) return false;
    const char *s = r->data + r->pos;
    const char *nl = memchr(s, '\n', r->len - r->pos);
    size_t l = nl ? (size_t)(nl - s) : r->len - r->pos;
    r->pos += l + (nl ? 1 : 0);
    r->line++;
    while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
        l--;
    *start = s;
    *n = l;
    return true;
}

/* When the line is "-----<kw> LABEL-----", the label. */
static bool boundary(const char *s, size_t n, const char *kw, const char **label, int *label_len)
{
    size_t kl = strlen(kw);
    if (n < 5 + kl + 5 || memcmp(s, "-----", 5) != 0 || memcmp(s + 5, kw, kl) != 0 ||
        memcmp(s + n - 5, "-----", 5) != 0)
        return false;
    *label = s + 5 + kl;
    *label_len = (int)(n - 10 - kl);
    return true;
}

static bool is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=' || c == ' ' || c == '\t' || c == '\r';
}

/* Finds the next block. 1: found; 0: no more blocks; -1: malformed (message recorded). */
int sn_pem_next(sn_pem_reader *r, sn_pem_block *b)
{
    const char *s;
    size_t n;
    for (;;) {
        size_t line_pos = r->pos;
        if (!next_line(r, &s, &n)) return 0;
        if (!boundary(s, n, "BEGIN ", &b->label, &b->label_len)) continue;
        b->begin = r->data + line_pos;
        b->line = r->line;
        b->encrypted = false;
        break;
    }
    bool data_seen = false;
    for (;;) {
        if (!next_line(r, &s, &n)) {
            sn_fail(SN_ERR_FILE_CORRUPT,
                    "truncated PEM: the '%.*s' block that begins at line %d has no END line",
                    b->label_len, b->label, b->line);
            return -1;
        }
        const char *label;
        int label_len;
        if (boundary(s, n, "END ", &label, &label_len)) {
            if (label_len != b->label_len || memcmp(label, b->label, (size_t)label_len) != 0) {
                sn_fail(SN_ERR_FILE_CORRUPT,
                        "PEM parse error at line %d: 'END %.*s' closes the '%.*s' block that "
                        "begins at line %d",
                        r->line, label_len, label, b->label_len, b->label, b->line);
                return -1;
            }
            if (!data_seen) {
                sn_fail(SN_ERR_FILE_CORRUPT,
                        "PEM parse error at line %d: the '%.*s' block holds no data", r->line,
                        b->label_len, b->label);
                return -1;
            }
            b->end = r->data + r->pos;
            return 1;
        }
        if (boundary(s, n, "BEGIN ", &label, &label_len)) {
            sn_fail(SN_ERR_FILE_CORRUPT,
                    "truncated PEM: the '%.*s' block that begins at line %d has no END line "
                    "(another block begins at line %d)",
                    b->label_len, b->label, b->line, r->line);
            return -1;
        }
        /* RFC 1421 headers ("Proc-Type: 4,ENCRYPTED", "DEK-Info: ...") precede the data. */
        const char *colon = memchr(s, ':', n);
        if (!data_seen && colon) {
            if (n >= 10 && memcmp(s, "Proc-Type:", 10) == 0 && memmem(s, n, "ENCRYPTED", 9))
                b->encrypted = true;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (!is_b64((unsigned char)s[i])) {
                sn_fail(SN_ERR_FILE_CORRUPT,
                        "PEM parse error at line %d: unexpected byte 0x%02x in the base64 data of "
                        "the '%.*s' block",
                        r->line, (unsigned char)s[i], b->label_len, b->label);
                return -1;
            }
        }
        if (n > 0) data_seen = true;
    }
}

bool sn_pem_label_is(const sn_pem_block *b, const char *label)
{
    return (size_t)b->label_len == strlen(label) && memcmp(b->label, label, strlen(label)) == 0;
}

bool sn_pem_label_ends(const sn_pem_block *b, const char *suffix)
{
    size_t sl = strlen(suffix);
    return (size_t)b->label_len >= sl && memcmp(b->label + b->label_len - (int)sl, suffix, sl) == 0;
}

bool sn_pem_is_cert_block(const sn_pem_block *b)
{
    return sn_pem_label_is(b, "CERTIFICATE") || sn_pem_label_is(b, "X509 CERTIFICATE") ||
           sn_pem_label_is(b, "TRUSTED CERTIFICATE");
}

/* "a certificate", "a private key", ... for "holds X, not Y" messages. */
static const char *block_kind(const sn_pem_block *b, char *buf, size_t cap)
{
    if (sn_pem_is_cert_block(b)) return "a certificate";
    if (sn_pem_label_ends(b, "PRIVATE KEY")) return "a private key";
    if (sn_pem_label_ends(b, "PUBLIC KEY")) return "a public key";
    if (sn_pem_label_is(b, "CERTIFICATE REQUEST") || sn_pem_label_is(b, "NEW CERTIFICATE REQUEST"))
        return "a certificate request";
    snprintf(buf, cap, "a '%.*s' block", b->label_len, b->label);
    return buf;
}

/* The message when the input has no block of the wanted kind. */
sn_err sn_pem_no_block(const char *data, size_t len, int blocks, const sn_pem_block *first,
                       const char *wanted, const char *begin_line)
{
    if (blocks > 0) {
        char buf[96];
        return sn_fail(SN_ERR_FILE_CORRUPT, "holds %s, not %s (first PEM block at line %d)",
                       block_kind(first, buf, sizeof buf), wanted, first->line);
    }
    if (len == 0) return sn_fail(SN_ERR_FILE_CORRUPT, "no data (empty input)");
    if ((unsigned char)data[0] == 0x30)
        return sn_fail(SN_ERR_FILE_CORRUPT,
                       "no PEM data found: this looks like binary DER; only PEM (text beginning "
                       "'%s') is supported",
                       begin_line);
    return sn_fail(SN_ERR_FILE_CORRUPT, "no PEM data found (expected a line '%s')", begin_line);
}

sn_err sn_pem_find_key(const char *pem, size_t len, bool public_only, sn_pem_block *key,
                       bool *is_private)
{
    sn_pem_reader r = {pem, len, 0, 0};
    sn_pem_block b, first = {0}, public_seen = {0};
    int blocks = 0, rc;
    bool found = false, have_public = false;
    while ((rc = sn_pem_next(&r, &b)) == 1) {
        if (blocks++ == 0) first = b;
        if (sn_pem_label_ends(&b, "PRIVATE KEY") ||
            (public_only && sn_pem_label_ends(&b, "PUBLIC KEY"))) {
            *key = b;
            found = true;
            break;
        }
        if (!have_public && sn_pem_label_ends(&b, "PUBLIC KEY")) {
            public_seen = b;
            have_public = true;
        }
    }
    if (rc < 0) return SN_ERR_FILE_CORRUPT;
    if (!found && have_public) {
        *key = public_seen;
        found = true;
    }
    if (!found)
        return sn_pem_no_block(pem, len, blocks, &first, public_only ? "a key" : "a private key",
                               public_only ? "-----BEGIN PUBLIC KEY-----"
                                           : "-----BEGIN PRIVATE KEY-----");
    *is_private = sn_pem_label_ends(key, "PRIVATE KEY");
    if (*is_private && (key->encrypted || sn_pem_label_is(key, "ENCRYPTED PRIVATE KEY")))
        return sn_fail(SN_ERR_FILE_CORRUPT,
                       "the private key at line %d is encrypted; passphrase-protected keys are "
                       "not supported yet (decrypt it first: openssl pkey -in in.pem -out out.pem)",
                       key->line);
    if (!*is_private && !public_only)
        return sn_fail(SN_ERR_FILE_CORRUPT,
                       "holds a public key (line %d), not a private key; load it as public only",
                       key->line);
    return SN_OK;
}
