/* Backend-neutral helpers for keys and certificates: bounded file I/O, the strict issuer-name
 * parser and the date parser. */
#include "crypto_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                    */

sn_err sn_crypto_read_file(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return sn_fail(SN_ERR_FILE_NOT_FOUND, "file '%s' not found", path);
        return sn_fail(SN_ERR_CANT_OPEN, "cannot open '%s': %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sn_fail(SN_ERR_CANT_OPEN, "cannot open '%s': %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sn_fail(SN_ERR_CANT_OPEN, "cannot open '%s': it is a directory", path);
    }
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > SN_CRYPTO_FILE_MAX) {
        close(fd);
        return sn_fail(SN_ERR_FILE_CORRUPT,
                       "'%s' is %jd bytes; key and certificate files are limited to %zu bytes "
                       "(4 MiB)",
                       path, (intmax_t)st.st_size, SN_CRYPTO_FILE_MAX);
    }
    /* Read up to one byte past the cap so that a pipe or a file growing meanwhile is caught. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 64 * 1024;
    size_t n = 0;
    char *buf = sn_malloc(cap + 1);
    if (!buf) {
        close(fd);
        return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap > SN_CRYPTO_FILE_MAX) break;
            size_t ncap = cap * 2 > SN_CRYPTO_FILE_MAX + 1 ? SN_CRYPTO_FILE_MAX + 1 : cap * 2;
            char *nb = sn_realloc(buf, ncap + 1);
            if (!nb) {
                sn_free(buf);
                close(fd);
                return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            sn_free(buf);
            close(fd);
            return sn_fail(SN_ERR_CANT_OPEN, "cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (n > SN_CRYPTO_FILE_MAX) {
        sn_free(buf);
        return sn_fail(SN_ERR_FILE_CORRUPT,
                       "'%s' is larger than %zu bytes, the limit for key and certificate files",
                       path, SN_CRYPTO_FILE_MAX);
    }
    if (n == 0) {
        sn_free(buf);
        return sn_fail(SN_ERR_FILE_CORRUPT, "'%s' is empty", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return SN_OK;
}

sn_err sn_crypto_write_file(const char *path, const char *data, size_t len, bool secret)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, secret ? 0600 : 0644);
    if (fd < 0) return sn_fail(SN_ERR_CANT_CREATE, "cannot create '%s': %s", path, strerror(errno));
    /* Overwriting an existing, wider-open file must not leave a private key readable by others.
     * Best effort: a file system without permissions (vfat) refuses, and that is fine. */
    if (secret) (void)fchmod(fd, 0600);
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            return sn_fail(SN_ERR_CANT_CREATE, "cannot write '%s': %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (close(fd) != 0)
        return sn_fail(SN_ERR_CANT_CREATE, "cannot write '%s': %s", path, strerror(errno));
    return SN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Issuer names                                                                             */

static const struct {
    const char *key;
    size_t max_chars; /* RFC 5280 upper bounds */
} dn_keys[] = {{"CN", 64}, {"O", 64}, {"OU", 64}, {"C", 2}, {"ST", 128}, {"L", 128}};

void sn_dn_clear(sn_dn *dn)
{
    sn_free(dn->buf);
    memset(dn, 0, sizeof *dn);
}

/* Number of UTF-8 characters, or -1 when s is not valid UTF-8 or holds a control character. */
static long utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        unsigned char c = *p;
        int extra;
        if (c < 0x20 || c == 0x7f) return -1;
        if (c < 0x80)
            extra = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            extra = 1;
        else if (c >= 0xe0 && c <= 0xef)
            extra = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            extra = 3;
        else
            return -1;
        p++;
        for (int i = 0; i < extra; i++, p++)
            if ((*p & 0xc0) != 0x80) return -1;
        n++;
    }
    return n;
}

#define DN_FAIL(...)                                                                               \
    do {                                                                                           \
        char why_[256];                                                                            \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                                  \
        return sn_fail(SN_ERR_INVALID_PARAMETER, "invalid issuer name '%.120s': %s", text, why_);  \
    } while (0)

sn_err sn_dn_parse(const char *text, sn_dn *dn)
{
    memset(dn, 0, sizeof *dn);
    if (!text) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL issuer name");
    if (!*text) DN_FAIL("it is empty (expected e.g. \"CN=myserver,O=myorganisation,C=IT\")");
    dn->buf = sn_malloc(strlen(text) + 1);
    if (!dn->buf) return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory");
    char *out = dn->buf;
    const char *p = text;
    for (size_t index = 1;; index++) {
        while (*p == ' ')
            p++;
        const char *ks = p;
        while (*p && *p != '=' && *p != ',')
            p++;
        const char *ke = p;
        while (ke > ks && ke[-1] == ' ')
            ke--;
        if (*p != '=') {
            if (ke == ks) DN_FAIL("component %zu is empty", index);
            DN_FAIL("component %zu ('%.*s') has no '='", index, (int)(ke - ks), ks);
        }
        if (ke == ks) DN_FAIL("component %zu has no attribute name before '='", index);
        size_t k;
        for (k = 0; k < SN_ARRAY_LEN(dn_keys); k++)
            if (strlen(dn_keys[k].key) == (size_t)(ke - ks) &&
                strncasecmp(dn_keys[k].key, ks, (size_t)(ke - ks)) == 0)
                break;
        if (k == SN_ARRAY_LEN(dn_keys))
            DN_FAIL("unknown attribute '%.*s' (allowed: CN, O, OU, C, ST, L)", (int)(ke - ks), ks);
        const char *key = dn_keys[k].key;
        p++; /* '=' */
        while (*p == ' ')
            p++;
        char *value = out;
        char *last_kept = out; /* one past the last character that trailing trimming must keep */
        while (*p && *p != ',') {
            if (*p == '\\') {
                if (p[1] != ',' && p[1] != '\\' && p[1] != '=') {
                    if (!p[1]) DN_FAIL("the value of %s ends with a lone backslash", key);
                    DN_FAIL("invalid escape '\\%c' in the value of %s (only \\, \\= and \\\\)",
                            p[1], key);
                }
                *out++ = p[1];
                last_kept = out;
                p += 2;
                continue;
            }
            if (*p == '=')
                DN_FAIL("unexpected '=' in the value of %s (escape it as \\=, or a ',' is missing)",
                        key);
            *out++ = *p++;
            if (out[-1] != ' ') last_kept = out;
        }
        out = last_kept;
        *out++ = '\0';
        if (!*value) DN_FAIL("the value of %s is empty", key);
        long chars = utf8_chars(value);
        if (chars < 0)
            DN_FAIL("the value of %s is not valid UTF-8 text (or holds a control character)", key);
        if (strcmp(key, "C") == 0) {
            if (chars != 2 || !((value[0] | 0x20) >= 'a' && (value[0] | 0x20) <= 'z') ||
                !((value[1] | 0x20) >= 'a' && (value[1] | 0x20) <= 'z'))
                DN_FAIL("C must be a two-letter country code such as IT, not '%s'", value);
            value[0] = (char)(value[0] & ~0x20);
            value[1] = (char)(value[1] & ~0x20);
        } else if ((size_t)chars > dn_keys[k].max_chars) {
            DN_FAIL("the value of %s is %ld characters long; at most %zu are allowed", key, chars,
                    dn_keys[k].max_chars);
        }
        if (strcmp(key, "CN") == 0 || strcmp(key, "C") == 0) {
            for (size_t i = 0; i < dn->count; i++)
                if (strcmp(dn->entry[i].key, key) == 0) DN_FAIL("%s appears twice", key);
        }
        if (dn->count == SN_DN_MAX_ENTRIES) DN_FAIL("more than %d components", SN_DN_MAX_ENTRIES);
        dn->entry[dn->count].key = key;
        dn->entry[dn->count].value = value;
        dn->count++;
        if (strcmp(key, "CN") == 0) dn->cn = value;
        if (!*p) break;
        p++; /* ',' */
        const char *rest = p;
        while (*rest == ' ')
            rest++;
        if (!*rest) DN_FAIL("it ends with a comma");
    }
    if (!dn->cn) DN_FAIL("it has no CN (common name), e.g. \"CN=myserver\"");
    return SN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Dates                                                                                    */

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without the C library's time zone. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

sn_err sn_time_parse(const char *text, const char *what, int64_t *out)
{
    if (!text) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL %s", what);
    size_t n = strlen(text);
    bool digits = n == 14;
    for (size_t i = 0; digits && i < n; i++)
        digits = text[i] >= '0' && text[i] <= '9';
    if (!digits)
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "invalid %s '%.40s': expected 14 digits YYYYMMDDhhmmss (UTC)", what, text);
    int v[6];
    static const int width[6] = {4, 2, 2, 2, 2, 2};
    const char *p = text;
    for (int i = 0; i < 6; i++) {
        v[i] = 0;
        for (int j = 0; j < width[i]; j++)
            v[i] = v[i] * 10 + (*p++ - '0');
    }
    const char *bad = NULL;
    if (v[0] < 1970)
        bad = "the year must be 1970 or later";
    else if (v[1] < 1 || v[1] > 12)
        bad = "the month must be 01..12";
    else if (v[2] < 1 || v[2] > days_in_month(v[0], v[1]))
        bad = "no such day in that month";
    else if (v[3] > 23)
        bad = "the hour must be 00..23";
    else if (v[4] > 59)
        bad = "the minute must be 00..59";
    else if (v[5] > 59)
        bad = "the second must be 00..59";
    if (bad) return sn_fail(SN_ERR_INVALID_PARAMETER, "invalid %s '%s': %s", what, text, bad);
    *out = days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
    return SN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Names and fingerprints                                                                   */

bool sn_dns_name_plausible(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253) return false;
    if (s[0] == '*' && s[1] == '.') s += 2;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
        if (++label > 63) return false;
    }
    return label > 0;
}

void sn_fingerprint_format(const uint8_t md[32], char out[96])
{
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned int i = 0; i < 32; i++) {
        out[i * 3] = hex[md[i] >> 4];
        out[i * 3 + 1] = hex[md[i] & 15];
        out[i * 3 + 2] = i == 31 ? '\0' : ':';
    }
}

sn_err sn_cert_template_parse(const char *issuer, const char *not_before, const char *not_after,
                              sn_dn *dn, int64_t *nb, int64_t *na)
{
    memset(dn, 0, sizeof *dn);
    if (not_before) {
        if (sn_time_parse(not_before, "not_before", nb) != SN_OK) return SN_ERR_INVALID_PARAMETER;
    } else {
        *nb = (int64_t)time(NULL);
    }
    if (not_after) {
        if (sn_time_parse(not_after, "not_after", na) != SN_OK) return SN_ERR_INVALID_PARAMETER;
    } else {
        *na = *nb + 365 * 24 * 3600;
    }
    if (*na <= *nb)
        return sn_fail(SN_ERR_INVALID_PARAMETER,
                       "not_after (%s) must be later than not_before (%s)",
                       not_after ? not_after : "now + 1 year", not_before ? not_before : "now");
    sn_err e = sn_dn_parse(issuer ? issuer : "CN=myserver,O=myorganisation,C=IT", dn);
    if (e != SN_OK) sn_dn_clear(dn);
    return e;
}
