/* mbed TLS backend: what a session shows of itself. The peer's certificate chain and each
 * certificate's text (names read through crypto/cert_text.h, so they are spelled as on OpenSSL),
 * verification messages worded as on OpenSSL where both libraries know the cause, NSS key log
 * lines (mbedtls_ssl_conf_export_keys_ext_cb) and the handshake trace.
 *
 * mbed TLS 2.28 has no message callback, so the trace reads the records the session moves
 * through its transport: plaintext handshake messages and ChangeCipherSpec are visible there,
 * and the one encrypted handshake message of TLS 1.2 is Finished. Alert contents are encrypted
 * once keys are in force, so alerts come from mbed TLS's debug lines instead (MBEDTLS_DEBUG_C,
 * "got an alert message" / "send alert"), routed only for sessions of a config with a trace. */
#include "mbedtls_backend.h"

#include "cert_text.h"

#include <mbedtls/debug.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if !defined(MBEDTLS_SSL_EXPORT_KEYS) || !defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
#error "the mbed TLS backend needs MBEDTLS_SSL_EXPORT_KEYS and MBEDTLS_SSL_KEEP_PEER_CERTIFICATE"
#endif

/* --- certificates ----------------------------------------------------------------------------- */

static void name_text(const mbedtls_x509_name *n, char *out, size_t cap)
{
    sn_dn_text t;
    sn_dn_text_init(&t, out, cap);
    bool merged = false; /* the previous attribute continues into this one (same RDN) */
    for (; n; n = n->next) {
        if (!n->oid.p) continue; /* an empty name is one blank node */
        sn_dn_text_add(&t, n->oid.p, n->oid.len, merged, n->val.tag, n->val.p, n->val.len);
        merged = n->next_merged != 0;
    }
}

static void time_text(const mbedtls_x509_time *t, char *out, size_t cap)
{
    sn_cert_time_text(t->year, t->mon, t->day, t->hour, t->min, t->sec, out, cap);
}

void sn_mbed_cert_names(const mbedtls_x509_crt *crt, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (const mbedtls_x509_sequence *san = &crt->subject_alt_names; san && san->buf.p;
         san = san->next) {
        const char *kind;
        switch (san->buf.tag) {
        case MBEDTLS_ASN1_CONTEXT_SPECIFIC | 1:
            kind = "email";
            break;
        case MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2:
            kind = "DNS";
            break;
        case MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6:
            kind = "URI";
            break;
        case MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7:
            kind = "IP";
            break;
        default:
            continue; /* otherName, directoryName, ...: not shown on OpenSSL either */
        }
        sn_cert_names_add(out, cap, &used, kind, san->buf.p, san->buf.len);
    }
}

void sn_mbed_cert_info(const mbedtls_x509_crt *crt, sn_x509_info *out)
{
    memset(out, 0, sizeof *out);
    name_text(&crt->subject, out->subject, sizeof out->subject);
    name_text(&crt->issuer, out->issuer, sizeof out->issuer);
    sn_mbed_cert_names(crt, out->names, sizeof out->names);
    time_text(&crt->valid_from, out->not_before, sizeof out->not_before);
    time_text(&crt->valid_to, out->not_after, sizeof out->not_after);
    if (sn_mbed_cert_fingerprint(crt, out->fingerprint_sha256) != SN_OK)
        out->fingerprint_sha256[0] = '\0';
}

sn_err sn_mbed_chain_info(const sn_tls_chain *chain, int index, sn_x509_info *out)
{
    const mbedtls_x509_crt *crt = chain && chain->count > 0 ? &chain->crt : NULL;
    for (int i = 0; crt && i < index; i++)
        crt = crt->next;
    if (!crt || index < 0 || index >= chain->count || !crt->raw.p)
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "no certificate %d in the chain", index);
    sn_mbed_cert_info(crt, out);
    return SN_OK;
}

sn_tls_chain *sn_mbed_chain_copy(const mbedtls_x509_crt *list)
{
    if (!list || !list->raw.p) return NULL;
    sn_tls_chain *c = sn_calloc(1, sizeof *c);
    if (!c) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    mbedtls_x509_crt_init(&c->crt);
    atomic_init(&c->refs, 1);
    for (const mbedtls_x509_crt *crt = list; crt && crt->raw.p; crt = crt->next) {
        int rc = mbedtls_x509_crt_parse_der(&c->crt, crt->raw.p, crt->raw.len);
        if (rc != 0) {
            /* mbed TLS parsed it once already: only memory can fail here. */
            sn_mbed_chain_unref(c);
            return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "cannot copy the peer's certificate: %s",
                                sn_mbed_error_string(rc));
        }
        c->count++;
    }
    return c;
}

/* --- verification messages -------------------------------------------------------------------- */

void sn_mbed_verify_note(sn_mbed_verify *v, const mbedtls_x509_crt *crt, int depth, uint32_t flags)
{
    v->flags_seen |= flags;
    if (depth == 0) {
        /* For a hostname mismatch: the names the certificate does carry. */
        char names[300];
        sn_mbed_cert_names(crt, names, sizeof names);
        if (names[0]) {
            snprintf(v->names, sizeof v->names, "it names %.300s", names);
        } else {
            char subject[256];
            name_text(&crt->subject, subject, sizeof subject);
            snprintf(v->names, sizeof v->names, "it has no subjectAltName, only the subject %.200s",
                     subject);
        }
    }
    /* OpenSSL's order: a chain that reaches no trust anchor is reported before validity. */
    int rank = 0;
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        rank = 3;
    else if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
        rank = 2;
    if (rank <= v->rank) return; /* the first problem of the worst kind, top of the chain first */
    char subject[256], issuer[256], when[32];
    name_text(&crt->subject, subject, sizeof subject);
    name_text(&crt->issuer, issuer, sizeof issuer);
    v->rank = rank;
    if (rank == 3) {
        /* Empty names have NULL pointers: memcmp must not see them (found by fuzz_dtls_client). */
        bool self = crt->subject_raw.len == crt->issuer_raw.len &&
                    (crt->issuer_raw.len == 0 ||
                     memcmp(crt->subject_raw.p, crt->issuer_raw.p, crt->issuer_raw.len) == 0);
        snprintf(v->reason, sizeof v->reason, "%s",
                 !self        ? "unable to get local issuer certificate"
                 : depth == 0 ? "self-signed certificate"
                              : "self-signed certificate in certificate chain");
        snprintf(v->detail, sizeof v->detail, "%.150s, issued by %.150s", subject, issuer);
    } else if (flags & MBEDTLS_X509_BADCERT_EXPIRED) {
        time_text(&crt->valid_to, when, sizeof when);
        snprintf(v->reason, sizeof v->reason, "certificate has expired");
        snprintf(v->detail, sizeof v->detail, "%.150s expired on %s", subject, when);
    } else {
        time_text(&crt->valid_from, when, sizeof when);
        snprintf(v->reason, sizeof v->reason, "certificate is not yet valid");
        snprintf(v->detail, sizeof v->detail, "%.150s is not valid before %s", subject, when);
    }
}

void sn_mbed_verify_text(const sn_mbed_verify *v, uint32_t flags, char *out, size_t cap)
{
    if (v->rank > 0) {
        snprintf(out, cap, "%s (%.300s)", v->reason, v->detail);
        return;
    }
    char buf[512];
    if (mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags) <= 0) {
        snprintf(out, cap, "flags 0x%x", (unsigned)flags);
        return;
    }
    char *nl = strchr(buf, '\n');
    if (nl) *nl = '\0';
    snprintf(out, cap, "%.200s", buf); /* one line of mbed TLS's text; a longer one is cut */
}

/* --- key log ---------------------------------------------------------------------------------- */

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
}

/* Called once per handshake (full or resumed) when the keys are derived: ms is the 48-byte
 * master secret. Lower-case hex, as OpenSSL writes it. */
static int export_keys(void *ctx, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                       size_t keylen, size_t ivlen, const unsigned char client_random[32],
                       const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    SN_UNUSED(kb), SN_UNUSED(maclen), SN_UNUSED(keylen), SN_UNUSED(ivlen);
    SN_UNUSED(server_random), SN_UNUSED(prf);
    const sn_mbed_observer *o = ctx;
    if (!o || !o->keylog) return 0;
    char line[14 + 64 + 1 + 96 + 1];
    memcpy(line, "CLIENT_RANDOM ", 14);
    hex(client_random, 32, line + 14);
    line[14 + 64] = ' ';
    hex(ms, 48, line + 14 + 64 + 1);
    line[sizeof line - 1] = '\0';
    o->keylog(o->keylog_user, line);
    mbedtls_platform_zeroize(line, sizeof line);
    return 0;
}

/* mbed TLS's debug threshold is process-wide; lines reach only configs with a debug callback
 * (those with a trace), so raising it once costs the others nothing. Level 3 carries the
 * "send alert" line. */
static pthread_once_t debug_once = PTHREAD_ONCE_INIT;
static void debug_setup(void)
{
    mbedtls_debug_set_threshold(3);
}

void sn_mbed_observe_config(mbedtls_ssl_config *conf, sn_mbed_observer *obs,
                            const sn_tls_config_params *p)
{
    obs->keylog = p->keylog;
    obs->keylog_user = p->keylog_user;
    obs->trace = p->trace;
    obs->trace_user = p->trace_user;
    if (obs->keylog) mbedtls_ssl_conf_export_keys_ext_cb(conf, export_keys, obs);
    if (obs->trace) pthread_once(&debug_once, debug_setup);
}

/* --- trace ------------------------------------------------------------------------------------ */

static void emit(const sn_mbed_trace *t, bool sent, bool again, const char *content,
                 const char *message, size_t length)
{
    sn_tls_trace_event ev = {sent, again && sent, content, message, length, t->session};
    t->obs->trace(t->obs->trace_user, &ev);
}

/* The debug lines that carry alerts (the rest is ignored). */
static void debug_line(void *ctx, int level, const char *file, int line, const char *str)
{
    SN_UNUSED(level), SN_UNUSED(file), SN_UNUSED(line);
    const sn_mbed_trace *t = ctx;
    unsigned alert_level, desc;
    bool sent;
    /* With MBEDTLS_THREADING_C each line starts with the context's address: search. */
    const char *got = strstr(str, "got an alert message, type: [");
    const char *send = got ? NULL : strstr(str, "send alert level=");
    if (got && sscanf(got, "got an alert message, type: [%u:%u]", &alert_level, &desc) == 2)
        sent = false;
    else if (send && sscanf(send, "send alert level=%u message=%u", &alert_level, &desc) == 2)
        sent = true;
    else
        return;
    char text[96];
    snprintf(text, sizeof text, "%s (%s)", sn_mbed_alert_name((int)desc),
             alert_level == MBEDTLS_SSL_ALERT_LEVEL_FATAL ? "fatal" : "warning");
    emit(t, sent, false, "alert", text, 2);
}

bool sn_mbed_trace_start(sn_mbed_trace *t, const sn_mbed_observer *obs, const void *session,
                         bool datagram, mbedtls_ssl_config *conf)
{
    memset(t, 0, sizeof *t);
    if (!obs || !obs->trace) return false;
    t->obs = obs;
    t->session = session;
    t->datagram = datagram;
    t->max_sent_seq = -1;
    mbedtls_ssl_conf_dbg(conf, debug_line, t);
    return true;
}

static void changed_cipher(sn_mbed_trace *t, bool sent)
{
    if (sent)
        emit(t, true, t->ccs_sent++ > 0, "change_cipher_spec", "ChangeCipherSpec", 1);
    else if (!t->ccs_recv) {
        t->ccs_recv = true;
        emit(t, false, false, "change_cipher_spec", "ChangeCipherSpec", 1);
    }
}

/* The encrypted handshake message: Finished (12 bytes of verify_data after the header). */
static void finished(sn_mbed_trace *t, bool sent, size_t header)
{
    if (sent)
        emit(t, true, t->fin_sent++ > 0, "handshake", "Finished", header + 12);
    else if (!t->fin_recv) {
        t->fin_recv = true;
        emit(t, false, false, "handshake", "Finished", header + 12);
    }
}

/* DTLS: one datagram of whole records, each handshake record one or more fragments. Sent
 * messages are reported at their first fragment; one whose message_seq was sent before is a
 * retransmission. Received ones are reported once per message_seq (the peer's retransmissions
 * and later fragments are not news). */
static void datagram_io(sn_mbed_trace *t, bool sent, const unsigned char *d, size_t len)
{
    while (len >= 13) {
        unsigned type = d[0], epoch = (unsigned)d[3] << 8 | d[4];
        size_t rlen = (size_t)d[11] << 8 | d[12];
        if (rlen > len - 13) return; /* cut short: not a record */
        const unsigned char *body = d + 13;
        if (type == MBEDTLS_SSL_MSG_CHANGE_CIPHER_SPEC) {
            changed_cipher(t, sent);
        } else if (type == MBEDTLS_SSL_MSG_HANDSHAKE && epoch > 0) {
            finished(t, sent, 12);
        } else if (type == MBEDTLS_SSL_MSG_HANDSHAKE) {
            for (size_t off = 0; rlen - off >= 12;) {
                const unsigned char *f = body + off;
                size_t mlen = (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3];
                unsigned seq = (unsigned)f[4] << 8 | f[5];
                size_t foff = (size_t)f[6] << 16 | (size_t)f[7] << 8 | f[8];
                size_t flen = (size_t)f[9] << 16 | (size_t)f[10] << 8 | f[11];
                if (sent && foff == 0) {
                    bool again = (int)seq <= t->max_sent_seq;
                    if (!again) t->max_sent_seq = (int)seq;
                    emit(t, true, again, "handshake", sn_tls_handshake_name(f[0]), mlen + 12);
                } else if (!sent && (seq >= 64 ? foff == 0 : !(t->recv_seen >> seq & 1))) {
                    if (seq < 64) t->recv_seen |= (uint64_t)1 << seq;
                    emit(t, false, false, "handshake", sn_tls_handshake_name(f[0]), mlen + 12);
                }
                if (flen > rlen - off - 12) break;
                off += 12 + flen;
            }
        }
        d += 13 + rlen;
        len -= 13 + rlen;
    }
}

/* TLS: the byte stream of one direction, records and handshake messages split anywhere. */
static void stream_io(sn_mbed_trace *t, bool sent, const unsigned char *d, size_t len)
{
    sn_mbed_stream_parse *p = &t->dir[sent ? 1 : 0];
    while (len > 0) {
        if (p->hdr_len < 5) {
            size_t take = 5 - p->hdr_len < len ? 5 - p->hdr_len : len;
            memcpy(p->hdr + p->hdr_len, d, take);
            p->hdr_len += take;
            d += take;
            len -= take;
            if (p->hdr_len < 5) return;
            p->body_left = (size_t)p->hdr[3] << 8 | p->hdr[4];
            if (p->hdr[0] == MBEDTLS_SSL_MSG_CHANGE_CIPHER_SPEC) {
                changed_cipher(t, sent);
                p->encrypted = true;
            } else if (p->hdr[0] == MBEDTLS_SSL_MSG_HANDSHAKE && p->encrypted) {
                finished(t, sent, 4);
            }
            if (p->body_left == 0) p->hdr_len = 0;
            continue;
        }
        size_t take = p->body_left < len ? p->body_left : len;
        if (p->hdr[0] == MBEDTLS_SSL_MSG_HANDSHAKE && !p->encrypted) {
            for (size_t i = 0; i < take;) {
                if (p->hs_left == 0) {
                    p->hs[p->hs_len++] = d[i++];
                    if (p->hs_len < 4) continue;
                    size_t mlen = (size_t)p->hs[1] << 16 | (size_t)p->hs[2] << 8 | p->hs[3];
                    emit(t, sent, false, "handshake", sn_tls_handshake_name(p->hs[0]), mlen + 4);
                    p->hs_left = mlen;
                    p->hs_len = 0;
                } else {
                    size_t skip = p->hs_left < take - i ? p->hs_left : take - i;
                    p->hs_left -= skip;
                    i += skip;
                }
            }
        }
        p->body_left -= take;
        d += take;
        len -= take;
        if (p->body_left == 0) p->hdr_len = 0;
    }
}

void sn_mbed_trace_io(sn_mbed_trace *t, bool sent, const unsigned char *data, size_t len)
{
    if (!t->obs) return;
    if (t->datagram)
        datagram_io(t, sent, data, len);
    else
        stream_io(t, sent, data, len);
}
