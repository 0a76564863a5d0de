/* Shared secrets in files: session-ticket keys and DTLS cookie secrets, so that every worker and
 * every machine of one service can load the same ones (docs/scaling.md).
 *
 * Format (text, so an operator can read, diff and rotate it with an editor):
 *     # comment lines and blank lines are ignored
 *     <hex digits: one secret per line, exactly 2 * secret_len of them>
 * A missing file is created (mode 0600, O_EXCL so that workers racing to create it end up with
 * one) holding one fresh random secret. */
#include "keys_internal.h"

#include "crypto_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static sn_err create_file(const char *path, const char *kind, size_t secret_len)
{
    uint8_t secret[SN_SECRET_FILE_MAX_LEN];
    if (secret_len > sizeof secret)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: secret too long", kind);
    if (sn_tls_backend_get()->random_bytes(secret, secret_len) != SN_OK) return SN_FAILED;
    char text[2 * SN_SECRET_FILE_MAX_LEN + 160];
    int n = snprintf(text, sizeof text, "# sealnet %s: one per line, hex, current first\n", kind);
    for (size_t i = 0; i < secret_len; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%02x", secret[i]);
    n += snprintf(text + n, sizeof text - (size_t)n, "\n");
    memset(secret, 0, sizeof secret);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        memset(text, 0, sizeof text);
        if (errno == EEXIST) return SN_OK; /* another worker made it first: read theirs */
        return sn_fail(SN_ERR_CANT_CREATE, "cannot create %s file '%s': %s", kind, path,
                       strerror(errno));
    }
    bool ok = write(fd, text, (size_t)n) == n;
    ok = close(fd) == 0 && ok;
    memset(text, 0, sizeof text);
    if (!ok) {
        unlink(path);
        return sn_fail(SN_ERR_CANT_CREATE, "cannot write %s file '%s': %s", kind, path,
                       strerror(errno));
    }
    sn_log(SN_LOG_INFO, "created %s file '%s' with a fresh random secret", kind, path);
    return SN_OK;
}

sn_err sn_secret_file_load(const char *path, const char *kind, size_t secret_len, size_t max_count,
                           bool create, uint8_t *out, size_t *count)
{
    *count = 0;
    if (!path || !*path) return sn_fail(SN_ERR_INVALID_PARAMETER, "%s file: no path", kind);
    if (secret_len == 0 || secret_len > SN_SECRET_FILE_MAX_LEN)
        return sn_fail(SN_ERR_INVALID_PARAMETER, "%s: bad secret length", kind);
    if (create && access(path, F_OK) != 0 && errno == ENOENT) {
        sn_err e = create_file(path, kind, secret_len);
        if (e != SN_OK) return e;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        sn_log(SN_LOG_WARNING,
               "%s file '%s' is readable or writable by others (mode %03o): whoever reads it can "
               "forge what it protects; chmod 600 it",
               kind, path, (unsigned)(st.st_mode & 0777));
    char *data = NULL;
    size_t len = 0;
    sn_err e = sn_crypto_read_file(path, &data, &len);
    if (e != SN_OK) return e;
    size_t line_no = 0, found = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        while (*line == ' ' || *line == '\t')
            line++, n--;
        if (n == 0 || line[0] == '#') continue;
        if (found == max_count) {
            e = sn_fail(SN_ERR_FILE_CORRUPT, "%s file '%s': line %zu: more than %zu %s", kind, path,
                        line_no, max_count, max_count == 1 ? "secret" : "secrets");
            break;
        }
        if (n != 2 * secret_len) {
            e = sn_fail(SN_ERR_FILE_CORRUPT,
                        "%s file '%s': line %zu: %zu characters; a secret is exactly %zu hex "
                        "digits (%zu bytes)",
                        kind, path, line_no, n, 2 * secret_len, secret_len);
            break;
        }
        for (size_t i = 0; i < secret_len && e == SN_OK; i++) {
            int hi = hex_value(line[2 * i]), lo = hex_value(line[2 * i + 1]);
            if (hi < 0 || lo < 0)
                e = sn_fail(SN_ERR_FILE_CORRUPT,
                            "%s file '%s': line %zu: '%c' at column %zu is not a hex digit", kind,
                            path, line_no, hi < 0 ? line[2 * i] : line[2 * i + 1],
                            hi < 0 ? 2 * i + 1 : 2 * i + 2);
            else
                out[found * secret_len + i] = (uint8_t)(hi << 4 | lo);
        }
        if (e != SN_OK) break;
        found++;
    }
    memset(data, 0, len);
    sn_free(data);
    if (e == SN_OK && found == 0)
        e = sn_fail(SN_ERR_FILE_CORRUPT,
                    "%s file '%s' holds no secret (expected a line of %zu hex "
                    "digits)",
                    kind, path, 2 * secret_len);
    if (e != SN_OK) {
        memset(out, 0, max_count * secret_len);
        return e;
    }
    *count = found;
    return SN_OK;
}
