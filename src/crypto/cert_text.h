/* Certificate fields and TLS message names as text, the same on every TLS backend (cert_text.c).
 * Not installed. A backend walks its own parsed certificate and hands the raw pieces (OIDs, ASN.1
 * string tags and bytes) to these helpers, so a name reads the same whichever library parsed it:
 * the form is OpenSSL's one-line form as sealnet prints it ("CN=localhost, O=sealnet"). */
#ifndef SN_CERT_TEXT_H
#define SN_CERT_TEXT_H

#include "core.h"

/* A distinguished name being written: attributes in certificate order, ", " between RDNs,
 * " + " inside a multi-valued RDN. Values are UTF-8; a value holding , + ; < > or starting with
 * '#' or a space or ending with a space is quoted; '"' and '\' are backslash-escaped, control
 * characters written as \XX; a value that is not a string type is "#" and its DER in hex. The
 * text is cut (never overrun) when it does not fit. */
typedef struct sn_dn_text {
    char *out;
    size_t cap, used;
    bool any;
} sn_dn_text;

/* Starts writing into out[cap] (cap > 0; out becomes ""). */
void sn_dn_text_init(sn_dn_text *t, char *out, size_t cap);
/* Appends one attribute: its OID (DER content bytes), whether it continues the previous RDN,
 * the value's ASN.1 tag and its content bytes. */
void sn_dn_text_add(sn_dn_text *t, const uint8_t *oid, size_t oid_len, bool same_rdn, int tag,
                    const uint8_t *value, size_t value_len);

/* The short name of an attribute OID ("CN", "emailAddress", ...) or, when unknown, its dotted
 * form ("1.2.3.4") into out. */
void sn_oid_text(const uint8_t *oid, size_t len, char *out, size_t cap);

/* Validity dates as every backend prints them: "2026-12-02 00:48:43 UTC". */
void sn_cert_time_text(int year, int mon, int day, int hour, int min, int sec, char *out,
                       size_t cap);

/* Appends one subjectAltName entry ("DNS:", "email:", "URI:" with text, or "IP:" with a 4- or
 * 16-byte address) to the ", "-separated list in out (used: its current length). */
void sn_cert_names_add(char *out, size_t cap, size_t *used, const char *kind, const uint8_t *value,
                       size_t len);

/* What a remote that does not speak TLS sent instead, for a message: "\"HTTP/1.1 400 B\"..." for
 * text, "bytes 16 03 01 .." in hex otherwise. */
void sn_quote_bytes(const unsigned char *b, size_t n, char *out, size_t cap);
/* The name of a TLS/DTLS handshake message type (RFC 5246, 6347, 8446) as both backends' traces
 * print it ("ClientHello"); "unknown handshake message" for any other value. Static string. */
const char *sn_tls_handshake_name(int type);

#endif
