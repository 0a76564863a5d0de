/* Certificate fields as text, the same on every TLS backend (see cert_text.h). The name form is
 * what OpenSSL's X509_NAME_print_ex writes with XN_FLAG_ONELINE minus ESC_MSB and SPC_EQ plus
 * UTF8_CONVERT, which the OpenSSL backend uses; the mbed TLS backend feeds the same pieces here,
 * so tests and users see one spelling. */
#include "cert_text.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static void put(sn_dn_text *t, const char *s, size_t n)
{
    if (t->used + 1 >= t->cap) return;
    size_t room = t->cap - 1 - t->used;
    if (n > room) n = room;
    memcpy(t->out + t->used, s, n);
    t->used += n;
    t->out[t->used] = '\0';
}

void sn_dn_text_init(sn_dn_text *t, char *out, size_t cap)
{
    t->out = out;
    t->cap = cap;
    t->used = 0;
    t->any = false;
    if (cap) out[0] = '\0';
}

/* Attribute OIDs (DER content bytes) and the short names OpenSSL prints for them. */
static const struct {
    const char *name;
    uint8_t len;
    uint8_t oid[11];
} known_oids[] = {
    {"CN", 3, {0x55, 0x04, 3}},
    {"SN", 3, {0x55, 0x04, 4}},
    {"serialNumber", 3, {0x55, 0x04, 5}},
    {"C", 3, {0x55, 0x04, 6}},
    {"L", 3, {0x55, 0x04, 7}},
    {"ST", 3, {0x55, 0x04, 8}},
    {"street", 3, {0x55, 0x04, 9}},
    {"O", 3, {0x55, 0x04, 10}},
    {"OU", 3, {0x55, 0x04, 11}},
    {"title", 3, {0x55, 0x04, 12}},
    {"description", 3, {0x55, 0x04, 13}},
    {"businessCategory", 3, {0x55, 0x04, 15}},
    {"postalCode", 3, {0x55, 0x04, 17}},
    {"name", 3, {0x55, 0x04, 41}},
    {"GN", 3, {0x55, 0x04, 42}},
    {"initials", 3, {0x55, 0x04, 43}},
    {"generationQualifier", 3, {0x55, 0x04, 44}},
    {"dnQualifier", 3, {0x55, 0x04, 46}},
    {"pseudonym", 3, {0x55, 0x04, 65}},
    {"organizationIdentifier", 3, {0x55, 0x04, 97}},
    {"emailAddress", 9, {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01}},
    {"DC", 10, {0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19}},
    {"UID", 10, {0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01}},
    {"jurisdictionL", 11, {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 0x01}},
    {"jurisdictionST", 11, {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 0x02}},
    {"jurisdictionC", 11, {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 0x03}},
};

void sn_oid_text(const uint8_t *oid, size_t len, char *out, size_t cap)
{
    if (!cap) return;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof known_oids / sizeof *known_oids; i++)
        if (known_oids[i].len == len && memcmp(known_oids[i].oid, oid, len) == 0) {
            snprintf(out, cap, "%s", known_oids[i].name);
            return;
        }
    /* Dotted: the first byte holds the first two arcs, the rest base-128 with a continuation
     * bit. An arc too large for 64 bits or a dangling byte ends the text with "?". */
    size_t used = 0;
    uint64_t arc = 0;
    bool first = true, pending = false;
    for (size_t i = 0; i < len && used + 1 < cap; i++) {
        if (arc >> 57) {
            snprintf(out + used, cap - used, "?");
            return;
        }
        arc = arc << 7 | (oid[i] & 0x7f);
        pending = true;
        if (oid[i] & 0x80) continue;
        int n;
        if (first) {
            uint64_t a = arc < 40 ? 0 : arc < 80 ? 1 : 2;
            n = snprintf(out + used, cap - used, "%llu.%llu", (unsigned long long)a,
                         (unsigned long long)(arc - a * 40));
            first = false;
        } else {
            n = snprintf(out + used, cap - used, ".%llu", (unsigned long long)arc);
        }
        if (n < 0 || (size_t)n >= cap - used) return;
        used += (size_t)n;
        arc = 0;
        pending = false;
    }
    if (pending && used + 1 < cap) snprintf(out + used, cap - used, "?");
}

static size_t utf8_put(uint32_t c, char *b)
{
    if (c < 0x80) {
        b[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        b[0] = (char)(0xc0 | c >> 6);
        b[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        b[0] = (char)(0xe0 | c >> 12);
        b[1] = (char)(0x80 | (c >> 6 & 0x3f));
        b[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    if (c > 0x10ffff) c = 0xfffd;
    b[0] = (char)(0xf0 | c >> 18);
    b[1] = (char)(0x80 | (c >> 12 & 0x3f));
    b[2] = (char)(0x80 | (c >> 6 & 0x3f));
    b[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* Bytes per character of the string types OpenSSL prints as text (its tag2nbyte): 0 for
 * UTF8String, 1 for the one-byte (Latin-1) types, 2 for BMPString, 4 for UniversalString; -1
 * for any other tag, which is dumped as DER. */
static int char_width(int tag)
{
    switch (tag) {
    case 12:
        return 0;
    case 18: /* NumericString */
    case 19: /* PrintableString */
    case 20: /* T61String */
    case 22: /* IA5String */
    case 23: /* UTCTime */
    case 24: /* GeneralizedTime */
    case 26: /* VisibleString */
        return 1;
    case 28:
        return 4;
    case 30:
        return 2;
    default:
        return -1;
    }
}

void sn_dn_text_add(sn_dn_text *t, const uint8_t *oid, size_t oid_len, bool same_rdn, int tag,
                    const uint8_t *value, size_t value_len)
{
    if (t->any) put(t, same_rdn ? " + " : ", ", same_rdn ? 3 : 2);
    t->any = true;
    char name[96];
    sn_oid_text(oid, oid_len, name, sizeof name);
    put(t, name, strlen(name));
    put(t, "=", 1);

    int width = char_width(tag);
    if (width < 0 || (width > 1 && value_len % (size_t)width != 0)) {
        /* Not a string (or a broken one): "#" and the DER (tag, length, content) in hex. */
        char hex[8];
        put(t, "#", 1);
        uint8_t head[2 + sizeof(size_t)];
        size_t hl = 0;
        head[hl++] = (uint8_t)tag;
        if (value_len < 0x80) {
            head[hl++] = (uint8_t)value_len;
        } else {
            size_t n = value_len, bytes = 0;
            for (; n; n >>= 8)
                bytes++;
            head[hl++] = (uint8_t)(0x80 | bytes);
            for (size_t i = bytes; i > 0; i--)
                head[hl++] = (uint8_t)(value_len >> (8 * (i - 1)));
        }
        for (size_t i = 0; i < hl; i++) {
            snprintf(hex, sizeof hex, "%02X", head[i]);
            put(t, hex, 2);
        }
        for (size_t i = 0; i < value_len; i++) {
            snprintf(hex, sizeof hex, "%02X", value[i]);
            put(t, hex, 2);
        }
        return;
    }

    /* The value as UTF-8 first (escaping looks at first and last bytes and at the whole). */
    char buf[1024];
    size_t n = 0;
    for (size_t i = 0; i < value_len && n + 4 < sizeof buf;) {
        uint32_t c;
        if (width == 0 || width == 1) {
            c = value[i++];
            if (width == 0 || c < 0x80) {
                buf[n++] = (char)c;
                continue;
            }
        } else if (width == 2) {
            c = (uint32_t)value[i] << 8 | value[i + 1];
            i += 2;
        } else {
            c = (uint32_t)value[i] << 24 | (uint32_t)value[i + 1] << 16 |
                (uint32_t)value[i + 2] << 8 | value[i + 3];
            i += 4;
        }
        n += utf8_put(c, buf + n);
    }
    bool quote = n > 0 && (buf[0] == '#' || buf[0] == ' ' || buf[n - 1] == ' ');
    for (size_t i = 0; i < n && !quote; i++)
        quote = strchr(",+;<>", buf[i]) != NULL && buf[i] != '\0';
    if (quote) put(t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(t, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\%02X", c);
            put(t, esc, 3);
        } else {
            put(t, (const char *)&c, 1);
        }
    }
    if (quote) put(t, "\"", 1);
}

void sn_cert_time_text(int year, int mon, int day, int hour, int min, int sec, char *out,
                       size_t cap)
{
    snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d UTC", year, mon, day, hour, min, sec);
}

void sn_cert_names_add(char *out, size_t cap, size_t *used, const char *kind, const uint8_t *value,
                       size_t len)
{
    char one[300];
    if (strcmp(kind, "IP") == 0) {
        char ip[64] = "?";
        if (len == 4 || len == 16) inet_ntop(len == 4 ? AF_INET : AF_INET6, value, ip, sizeof ip);
        snprintf(one, sizeof one, "IP:%s", ip);
    } else {
        snprintf(one, sizeof one, "%s:%.*s", kind, (int)(len > 280 ? 280 : len),
                 (const char *)value);
    }
    if (*used >= cap) return;
    int n = snprintf(out + *used, cap - *used, "%s%s", *used ? ", " : "", one);
    if (n < 0 || (size_t)n >= cap - *used) {
        out[*used] = '\0'; /* a name that does not fit whole is left out */
        return;
    }
    *used += (size_t)n;
}

void sn_quote_bytes(const unsigned char *b, size_t n, char *out, size_t cap)
{
    bool text = true;
    for (size_t i = 0; i < n; i++)
        if (!(b[i] >= 0x20 && b[i] < 0x7f) && b[i] != '\r' && b[i] != '\n') text = false;
    size_t used = 0;
    out[0] = '\0';
    if (text) {
        used = (size_t)snprintf(out, cap, "\"");
        for (size_t i = 0; i < n && used + 4 < cap; i++) {
            if (b[i] == '\r' || b[i] == '\n') {
                out[used++] = '\\';
                out[used++] = b[i] == '\r' ? 'r' : 'n';
            } else {
                out[used++] = (char)b[i];
            }
        }
        snprintf(out + used, cap - used, "\"...");
        return;
    }
    for (size_t i = 0; i < n && used + 4 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%02x", i ? " " : "bytes ", b[i]);
}

const char *sn_tls_handshake_name(int type)
{
    switch (type) {
    case 0:
        return "HelloRequest";
    case 1:
        return "ClientHello";
    case 2:
        return "ServerHello";
    case 3:
        return "HelloVerifyRequest";
    case 4:
        return "NewSessionTicket";
    case 5:
        return "EndOfEarlyData";
    case 8:
        return "EncryptedExtensions";
    case 11:
        return "Certificate";
    case 12:
        return "ServerKeyExchange";
    case 13:
        return "CertificateRequest";
    case 14:
        return "ServerHelloDone";
    case 15:
        return "CertificateVerify";
    case 16:
        return "ClientKeyExchange";
    case 20:
        return "Finished";
    case 24:
        return "KeyUpdate";
    default:
        return "unknown handshake message";
    }
}
