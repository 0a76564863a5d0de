/* mbed TLS backend: keys, certificate chains, generation, random bytes, HMAC.
 *
 * PEM input is scanned by sealnet's backend-neutral reader (crypto/pem.h) so errors name blocks
 * and lines, exactly as on the OpenSSL backend; only the chosen block reaches mbed TLS. Output
 * follows the OpenSSL backend byte for byte: private keys as PKCS#8 ("PRIVATE KEY", which mbed
 * TLS 2.28 cannot write itself, so the wrapper is built here), public keys as SubjectPublicKeyInfo,
 * certificates as 64-column PEM. */
#include "mbedtls_backend.h"

#include "crypto_util.h"
#include "pem.h"

#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Large enough for the DER of a 16384-bit RSA private key. */
#define KEY_DER_MAX 12000

/* A NUL-terminated copy of a PEM block: mbed TLS's PEM readers need the terminator. */
static char *block_copy(const sn_pem_block *b, size_t *len)
{
    size_t n = (size_t)(b->end - b->begin);
    char *s = sn_malloc(n + 1);
    if (!s) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(s, b->begin, n);
    s[n] = '\0';
    *len = n;
    return s;
}

/* DER -> PEM with the given label, sn_malloc'd and NUL-terminated. */
static char *pem_encode(const char *label, const unsigned char *der, size_t der_len)
{
    char header[64], footer[64];
    snprintf(header, sizeof header, "-----BEGIN %s-----\n", label);
    snprintf(footer, sizeof footer, "-----END %s-----\n", label);
    /* base64 is 4/3 of the input, plus a newline every 64 characters. */
    size_t cap = der_len * 4 / 3 + der_len / 48 + 200, olen = 0;
    unsigned char *out = sn_malloc(cap);
    if (!out) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    int rc = mbedtls_pem_write_buffer(header, footer, der, der_len, out, cap, &olen);
    if (rc != 0) {
        sn_free(out);
        return sn_fail_null(SN_FAILED, "cannot encode %s: %s", label, sn_mbed_error_string(rc));
    }
    return (char *)out;
}

/* ---------------------------------------------------------------------------------------- */
/* Keys                                                                                     */

static sn_tls_key *key_new(void)
{
    sn_tls_key *k = sn_calloc(1, sizeof *k);
    if (!k) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    mbedtls_pk_init(&k->pk);
    atomic_init(&k->refs, 1);
    return k;
}

static void key_free(sn_tls_key *k)
{
    mbedtls_pk_free(&k->pk);
    sn_free(k);
}

/* A public key's SubjectPublicKeyInfo DER at the end of buf; its length, or a negative error. */
static int public_der(const mbedtls_pk_context *pk, unsigned char *buf, size_t cap)
{
    return mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)pk, buf, cap);
}

sn_err sn_mbed_key_load_pem(const char *pem, size_t len, bool public_only, sn_tls_key **out)
{
    if (!pem || !out) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    sn_pem_block block;
    bool is_private = false;
    sn_err e = sn_pem_find_key(pem, len, public_only, &block, &is_private);
    if (e != SN_OK) return e;
    size_t n = 0;
    char *text = block_copy(&block, &n);
    if (!text) return SN_ERR_OUT_OF_MEMORY;
    sn_tls_key *k = key_new();
    if (!k) {
        sn_free(text);
        return SN_ERR_OUT_OF_MEMORY;
    }
    int rc = is_private ? mbedtls_pk_parse_key(&k->pk, (const unsigned char *)text, n + 1, NULL, 0)
                        : mbedtls_pk_parse_public_key(&k->pk, (const unsigned char *)text, n + 1);
    mbedtls_platform_zeroize(text, n);
    sn_free(text);
    if (rc != 0) {
        key_free(k);
        return sn_fail(SN_ERR_FILE_CORRUPT,
                       "PEM parse error at line %d: the '%.*s' block is not a valid key (%s)",
                       block.line, block.label_len, block.label, sn_mbed_error_string(rc));
    }
    if (public_only && is_private) {
        /* Keep the public half only: a SubjectPublicKeyInfo round trip. */
        unsigned char der[4096];
        int dn = public_der(&k->pk, der, sizeof der);
        mbedtls_pk_context pub;
        mbedtls_pk_init(&pub);
        rc = dn > 0 ? mbedtls_pk_parse_public_key(&pub, der + sizeof der - dn, (size_t)dn) : dn;
        if (rc != 0) {
            mbedtls_pk_free(&pub);
            key_free(k);
            return sn_fail(SN_ERR_FILE_CORRUPT, "cannot extract the public key: %s",
                           sn_mbed_error_string(rc));
        }
        mbedtls_pk_free(&k->pk);
        k->pk = pub;
    }
    k->public_only = public_only;
    *out = k;
    return SN_OK;
}

/* Appends (backwards, mbed TLS style) TLV elements of the DER SEQUENCE at der..der+len, leaving
 * out those with tag `skip`. Returns the bytes written before *p, or a negative error. */
static int write_seq_without(unsigned char **p, unsigned char *start, const unsigned char *der,
                             size_t len, int skip)
{
    unsigned char *q = (unsigned char *)der, *end = q + len;
    size_t body = 0;
    if (mbedtls_asn1_get_tag(&q, end, &body, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
        return MBEDTLS_ERR_ASN1_INVALID_DATA;
    /* Collect element boundaries first: writing goes backwards. */
    const unsigned char *el[8];
    size_t el_len[8];
    int count = 0;
    while (q < end && count < 8) {
        unsigned char *e0 = q;
        int tag = *q++;
        size_t l = 0;
        if (mbedtls_asn1_get_len(&q, end, &l)) return MBEDTLS_ERR_ASN1_INVALID_DATA;
        q += l;
        if (tag == skip) continue;
        el[count] = e0;
        el_len[count++] = (size_t)(q - e0);
    }
    int total = 0, rc;
    for (int i = count - 1; i >= 0; i--) {
        if ((rc = mbedtls_asn1_write_raw_buffer(p, start, el[i], el_len[i])) < 0) return rc;
        total += rc;
    }
    if ((rc = mbedtls_asn1_write_len(p, start, (size_t)total)) < 0) return rc;
    total += rc;
    if ((rc = mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) <
        0)
        return rc;
    return total + rc;
}

/* PKCS#8 PrivateKeyInfo of an RSA or EC key, the form OpenSSL 3 writes (EC: the inner
 * ECPrivateKey without its [0] parameters, which the AlgorithmIdentifier already names). */
static int pkcs8_der(const mbedtls_pk_context *pk, unsigned char *buf, size_t cap)
{
    unsigned char *inner = sn_malloc(KEY_DER_MAX);
    if (!inner) return MBEDTLS_ERR_ASN1_ALLOC_FAILED;
    int rc = mbedtls_pk_write_key_der((mbedtls_pk_context *)pk, inner, KEY_DER_MAX);
    int total = 0;
    unsigned char *p = buf + cap;
    if (rc <= 0) goto done;
    size_t inner_len = (size_t)rc;
    const unsigned char *inner_der = inner + KEY_DER_MAX - inner_len;
    mbedtls_pk_type_t type = mbedtls_pk_get_type(pk);
    int n;
    if (type == MBEDTLS_PK_ECKEY) {
        if ((rc = write_seq_without(&p, buf, inner_der, inner_len,
                                    MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0)) <
            0)
            goto done;
    } else if (type == MBEDTLS_PK_RSA) {
        if ((rc = mbedtls_asn1_write_raw_buffer(&p, buf, inner_der, inner_len)) < 0) goto done;
    } else {
        rc = MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE;
        goto done;
    }
    total = rc;
    if ((rc = mbedtls_asn1_write_len(&p, buf, (size_t)total)) < 0) goto done;
    total += rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_OCTET_STRING)) < 0) goto done;
    total += rc;
    /* AlgorithmIdentifier: rsaEncryption + NULL, or id-ecPublicKey + the named curve. */
    int params = 0;
    const char *alg_oid;
    size_t alg_len;
    if (type == MBEDTLS_PK_ECKEY) {
        const char *curve;
        size_t curve_len;
        if ((rc = mbedtls_oid_get_oid_by_ec_grp(mbedtls_pk_ec(*pk)->grp.id, &curve, &curve_len)))
            goto done;
        if ((rc = mbedtls_asn1_write_oid(&p, buf, curve, curve_len)) < 0) goto done;
        params = rc;
        alg_oid = MBEDTLS_OID_EC_ALG_UNRESTRICTED;
        alg_len = MBEDTLS_OID_SIZE(MBEDTLS_OID_EC_ALG_UNRESTRICTED);
    } else {
        if ((rc = mbedtls_asn1_write_null(&p, buf)) < 0) goto done;
        params = rc;
        alg_oid = MBEDTLS_OID_PKCS1_RSA;
        alg_len = MBEDTLS_OID_SIZE(MBEDTLS_OID_PKCS1_RSA);
    }
    if ((rc = mbedtls_asn1_write_algorithm_identifier(&p, buf, alg_oid, alg_len, (size_t)params)) <
        0)
        goto done;
    total += rc; /* includes the parameters */
    if ((rc = mbedtls_asn1_write_int(&p, buf, 0)) < 0) goto done;
    total += rc;
    if ((n = mbedtls_asn1_write_len(&p, buf, (size_t)total)) < 0) {
        rc = n;
        goto done;
    }
    total += n;
    if ((n = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) <
        0) {
        rc = n;
        goto done;
    }
    total += n;
    rc = total;
done:
    mbedtls_platform_zeroize(inner, KEY_DER_MAX);
    sn_free(inner);
    return rc;
}

char *sn_mbed_key_save_pem(const sn_tls_key *key, bool public_only)
{
    if (!key) return sn_fail_null(SN_ERR_INVALID_PARAMETER, "NULL key");
    if (!public_only && key->public_only)
        return sn_fail_null(SN_ERR_UNCONFIGURED,
                            "the key is public only: there is no private key to save");
    size_t cap = KEY_DER_MAX + 64;
    unsigned char *der = sn_malloc(cap);
    if (!der) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    int n = public_only ? public_der(&key->pk, der, cap) : pkcs8_der(&key->pk, der, cap);
    char *s = NULL;
    if (n > 0)
        s = pem_encode(public_only ? "PUBLIC KEY" : "PRIVATE KEY", der + cap - (size_t)n,
                       (size_t)n);
    else
        sn_fail(SN_FAILED, "cannot encode the key: %s", sn_mbed_error_string(n));
    mbedtls_platform_zeroize(der, cap);
    sn_free(der);
    return s;
}

bool sn_mbed_key_is_public_only(const sn_tls_key *key)
{
    return !key || key->public_only;
}

sn_tls_key *sn_mbed_key_generate_rsa(int bits)
{
    if (bits < 512 || bits > 16384)
        return sn_fail_null(SN_ERR_PARAMETER_RANGE_ERROR, "RSA key size %d out of range", bits);
    if (bits > MBEDTLS_MPI_MAX_BITS)
        return sn_fail_null(SN_ERR_UNAVAILABLE,
                            "the mbed TLS backend does not support RSA keys over %d bits",
                            MBEDTLS_MPI_MAX_BITS);
    mbedtls_ctr_drbg_context *rng = sn_mbed_drbg();
    if (!rng) return NULL;
    sn_tls_key *k = key_new();
    if (!k) return NULL;
    int rc = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
    if (rc == 0)
        rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(k->pk), sn_mbed_rng, rng, (unsigned)bits, 65537);
    if (rc != 0) {
        key_free(k);
        return sn_fail_null(SN_FAILED, "RSA key generation failed: %s", sn_mbed_error_string(rc));
    }
    return k;
}

sn_tls_key *sn_mbed_key_generate_ec(const char *curve)
{
    mbedtls_ecp_group_id group;
    if (!curve || strcmp(curve, "P-256") == 0)
        group = MBEDTLS_ECP_DP_SECP256R1;
    else if (strcmp(curve, "P-384") == 0)
        group = MBEDTLS_ECP_DP_SECP384R1;
    else
        return sn_fail_null(SN_ERR_INVALID_PARAMETER, "unsupported EC curve '%s'", curve);
    mbedtls_ctr_drbg_context *rng = sn_mbed_drbg();
    if (!rng) return NULL;
    sn_tls_key *k = key_new();
    if (!k) return NULL;
    int rc = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0) rc = mbedtls_ecp_gen_key(group, mbedtls_pk_ec(k->pk), sn_mbed_rng, rng);
    if (rc != 0) {
        key_free(k);
        return sn_fail_null(SN_FAILED, "EC key generation failed: %s", sn_mbed_error_string(rc));
    }
    return k;
}

sn_tls_key *sn_mbed_key_ref(sn_tls_key *key)
{
    if (key) atomic_fetch_add_explicit(&key->refs, 1, memory_order_relaxed);
    return key;
}

void sn_mbed_key_unref(sn_tls_key *key)
{
    if (!key || atomic_fetch_sub_explicit(&key->refs, 1, memory_order_acq_rel) != 1) return;
    key_free(key);
}

/* ---------------------------------------------------------------------------------------- */
/* Certificate chains                                                                       */

static sn_tls_chain *chain_new(void)
{
    sn_tls_chain *c = sn_calloc(1, sizeof *c);
    if (!c) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    mbedtls_x509_crt_init(&c->crt);
    atomic_init(&c->refs, 1);
    return c;
}

static void chain_free(sn_tls_chain *c)
{
    mbedtls_x509_crt_free(&c->crt);
    sn_free(c);
}

/* Decodes one certificate block (any of the labels sn_pem_is_cert_block accepts) and appends
 * it. An OpenSSL "TRUSTED CERTIFICATE" is the certificate's DER followed by trust settings,
 * which mbed TLS ignores. */
static int append_cert_block(sn_tls_chain *c, const sn_pem_block *b)
{
    size_t n = 0;
    char *text = block_copy(b, &n);
    if (!text) return MBEDTLS_ERR_X509_ALLOC_FAILED;
    char header[64], footer[64];
    snprintf(header, sizeof header, "-----BEGIN %.*s-----", b->label_len, b->label);
    snprintf(footer, sizeof footer, "-----END %.*s-----", b->label_len, b->label);
    mbedtls_pem_context pem;
    mbedtls_pem_init(&pem);
    size_t used = 0;
    int rc =
        mbedtls_pem_read_buffer(&pem, header, footer, (const unsigned char *)text, NULL, 0, &used);
    if (rc == 0) rc = mbedtls_x509_crt_parse_der(&c->crt, pem.buf, pem.buflen);
    mbedtls_pem_free(&pem);
    sn_free(text);
    return rc;
}

sn_err sn_mbed_chain_load_pem(const char *pem, size_t len, sn_tls_chain **out)
{
    if (!pem || !out) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    sn_tls_chain *c = chain_new();
    if (!c) return SN_ERR_OUT_OF_MEMORY;
    sn_pem_reader r = {pem, len, 0, 0};
    sn_pem_block b, first = {0};
    int blocks = 0, rc;
    sn_err err = SN_OK;
    /* Blocks of other kinds (a private key in a combined file) are skipped: the chain is the
     * certificates, in file order. */
    while ((rc = sn_pem_next(&r, &b)) == 1) {
        if (blocks++ == 0) first = b;
        if (!sn_pem_is_cert_block(&b)) continue;
        int prc = append_cert_block(c, &b);
        if (prc != 0) {
            err = sn_fail(SN_ERR_FILE_CORRUPT,
                          "PEM parse error at line %d: certificate %d is not a valid X.509 "
                          "certificate (%s)",
                          b.line, c->count + 1, sn_mbed_error_string(prc));
            break;
        }
        c->count++;
    }
    if (err == SN_OK && rc < 0) err = SN_ERR_FILE_CORRUPT;
    if (err == SN_OK && c->count == 0)
        err = sn_pem_no_block(pem, len, blocks, &first, "a certificate",
                              "-----BEGIN CERTIFICATE-----");
    if (err != SN_OK) {
        chain_free(c);
        return err;
    }
    *out = c;
    return SN_OK;
}

char *sn_mbed_chain_save_pem(const sn_tls_chain *chain)
{
    if (!chain || chain->count == 0)
        return sn_fail_null(SN_ERR_UNCONFIGURED, "the certificate chain is empty");
    char *s = NULL;
    size_t used = 0;
    for (const mbedtls_x509_crt *crt = &chain->crt; crt && crt->raw.p; crt = crt->next) {
        char *one = pem_encode("CERTIFICATE", crt->raw.p, crt->raw.len);
        size_t l = one ? strlen(one) : 0;
        char *grown = one ? sn_realloc(s, used + l + 1) : NULL;
        if (!grown) {
            if (one) sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory");
            sn_free(one);
            sn_free(s);
            return NULL;
        }
        s = grown;
        memcpy(s + used, one, l + 1);
        used += l;
        sn_free(one);
    }
    return s;
}

/* The subjectAltName extension's value for the CN: an iPAddress when it is one, a dNSName
 * when it looks like one; 0 (none) otherwise. Written backwards into buf; returns its length. */
static int san_value(const char *cn, unsigned char *buf, size_t cap, unsigned char **start)
{
    unsigned char addr[16], *p = buf + cap;
    size_t alen = 0;
    int tag, rc, len;
    if (inet_pton(AF_INET, cn, addr) == 1) {
        alen = 4;
        tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7;
    } else if (inet_pton(AF_INET6, cn, addr) == 1) {
        alen = 16;
        tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7;
    } else if (sn_dns_name_plausible(cn)) {
        tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2;
    } else {
        return 0;
    }
    if (alen)
        rc = mbedtls_asn1_write_raw_buffer(&p, buf, addr, alen);
    else
        rc = mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)cn, strlen(cn));
    if (rc < 0) return rc;
    len = rc;
    if ((rc = mbedtls_asn1_write_len(&p, buf, (size_t)len)) < 0) return rc;
    len += rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, (unsigned char)tag)) < 0) return rc;
    len += rc;
    if ((rc = mbedtls_asn1_write_len(&p, buf, (size_t)len)) < 0) return rc;
    len += rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) <
        0)
        return rc;
    len += rc;
    *start = p;
    return len;
}

static const char *dn_oid(const char *key, size_t *len)
{
    static const struct {
        const char *key, *oid;
    } map[] = {{"CN", MBEDTLS_OID_AT_CN},       {"O", MBEDTLS_OID_AT_ORGANIZATION},
               {"OU", MBEDTLS_OID_AT_ORG_UNIT}, {"C", MBEDTLS_OID_AT_COUNTRY},
               {"ST", MBEDTLS_OID_AT_STATE},    {"L", MBEDTLS_OID_AT_LOCALITY}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i].key, key) == 0) {
            *len = 3; /* every id-at-* OID here is 2.5.4.x: three bytes */
            return map[i].oid;
        }
    return NULL;
}

/* "YYYYMMDDhhmmss" as mbed TLS's validity setter wants it (sn_time_parse bounds the year). */
static void utc_string(int64_t t, char out[16])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

sn_tls_chain *sn_mbed_chain_self_signed(const sn_tls_key *key, const char *issuer,
                                        const char *not_before, const char *not_after)
{
    if (!key) return sn_fail_null(SN_ERR_INVALID_PARAMETER, "NULL key");
    if (key->public_only)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "the key is public only; signing a certificate needs the private key");
    int64_t nb, na;
    sn_dn dn;
    if (sn_cert_template_parse(issuer, not_before, not_after, &dn, &nb, &na) != SN_OK) return NULL;
    mbedtls_ctr_drbg_context *rng = sn_mbed_drbg();
    if (!rng) {
        sn_dn_clear(&dn);
        return NULL;
    }

    /* The name as mbed TLS's list: it writes the list's head last, so link it in reverse. Our
     * nodes live on the stack and are unhooked before mbedtls_x509write_crt_free. */
    mbedtls_asn1_named_data names[SN_DN_MAX_ENTRIES];
    memset(names, 0, sizeof names);
    mbedtls_asn1_named_data *head = NULL;
    for (size_t i = 0; i < dn.count; i++) {
        size_t oid_len = 0;
        const char *oid = dn_oid(dn.entry[i].key, &oid_len);
        if (!oid) continue; /* sn_dn_parse admits only the keys mapped above */
        names[i].oid.tag = MBEDTLS_ASN1_OID;
        names[i].oid.p = (unsigned char *)oid;
        names[i].oid.len = oid_len;
        names[i].val.tag = strcmp(dn.entry[i].key, "C") == 0 ? MBEDTLS_ASN1_PRINTABLE_STRING
                                                             : MBEDTLS_ASN1_UTF8_STRING;
        names[i].val.p = (unsigned char *)dn.entry[i].value;
        names[i].val.len = strlen(dn.entry[i].value);
        names[i].next = head;
        head = &names[i];
    }

    mbedtls_x509write_cert w;
    mbedtls_x509write_crt_init(&w);
    mbedtls_mpi serial;
    mbedtls_mpi_init(&serial);
    unsigned char raw[16], san[400], *san_start = NULL;
    const size_t der_cap = 16384;
    unsigned char *der = sn_malloc(der_cap);
    sn_tls_chain *chain = NULL;
    const char *step = "out of memory";
    int rc = 0;
    if (!der) goto done;

    step = "cannot set the version, serial or validity";
    char from[16], to[16];
    utc_string(nb, from);
    utc_string(na, to);
    if ((rc = sn_mbed_rng(rng, raw, sizeof raw))) goto done;
    raw[0] &= 0x7f; /* positive as a DER INTEGER, at most 16 bytes */
    raw[sizeof raw - 1] |= raw[0] == 0 ? 1 : 0;
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, (mbedtls_pk_context *)&key->pk);
    mbedtls_x509write_crt_set_issuer_key(&w, (mbedtls_pk_context *)&key->pk);
    if ((rc = mbedtls_mpi_read_binary(&serial, raw, sizeof raw)) ||
        (rc = mbedtls_x509write_crt_set_serial(&w, &serial)) ||
        (rc = mbedtls_x509write_crt_set_validity(&w, from, to)))
        goto done;
    w.subject = head;
    w.issuer = head;

    /* basicConstraints CA:FALSE marked critical (mbed TLS's own setter marks it non-critical),
     * the key identifiers, and the CN as a subjectAltName. No keyUsage, as on OpenSSL. */
    step = "cannot add the certificate extensions";
    static const unsigned char not_ca[] = {MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE, 0};
    if ((rc = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_BASIC_CONSTRAINTS,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_BASIC_CONSTRAINTS),
                                                  1, not_ca, sizeof not_ca)) ||
        (rc = mbedtls_x509write_crt_set_subject_key_identifier(&w)) ||
        (rc = mbedtls_x509write_crt_set_authority_key_identifier(&w)))
        goto done;
    int san_len = san_value(dn.cn, san, sizeof san, &san_start);
    if (san_len < 0) {
        rc = san_len;
        goto done;
    }
    if (san_len > 0 &&
        (rc = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                                                  san_start, (size_t)san_len)))
        goto done;

    step = "cannot sign the certificate";
    int n = mbedtls_x509write_crt_der(&w, der, der_cap, sn_mbed_rng, rng);
    if (n < 0) {
        rc = n;
        goto done;
    }
    step = "cannot read the new certificate back";
    chain = chain_new();
    if (!chain) {
        step = NULL;
        goto done;
    }
    if ((rc = mbedtls_x509_crt_parse_der(&chain->crt, der + der_cap - n, (size_t)n))) {
        chain_free(chain);
        chain = NULL;
        goto done;
    }
    chain->count = 1;
    step = NULL;
done:
    if (step) sn_fail(SN_FAILED, "%s: %s", step, rc ? sn_mbed_error_string(rc) : "failed");
    w.subject = NULL;
    w.issuer = NULL;
    mbedtls_x509write_crt_free(&w);
    mbedtls_mpi_free(&serial);
    sn_free(der);
    sn_dn_clear(&dn);
    return chain;
}

bool sn_mbed_key_matches_chain(const sn_tls_key *key, const sn_tls_chain *chain)
{
    if (!key || !chain || chain->count == 0) return false;
    unsigned char a[4096], b[4096];
    int na = public_der(&key->pk, a, sizeof a);
    int nb = public_der(&chain->crt.pk, b, sizeof b);
    return na > 0 && na == nb && memcmp(a + sizeof a - na, b + sizeof b - nb, (size_t)na) == 0;
}

sn_err sn_mbed_chain_fingerprint(const sn_tls_chain *chain, char out[96])
{
    if (!chain || chain->count == 0)
        return sn_fail(SN_ERR_UNCONFIGURED, "the certificate chain is empty");
    return sn_mbed_cert_fingerprint(&chain->crt, out);
}

sn_err sn_mbed_cert_fingerprint(const mbedtls_x509_crt *cert, char out[96])
{
    unsigned char md[32];
    int rc = mbedtls_sha256_ret(cert->raw.p, cert->raw.len, md, 0);
    if (rc != 0)
        return sn_fail(SN_FAILED, "cannot hash the certificate: %s", sn_mbed_error_string(rc));
    sn_fingerprint_format(md, out);
    return SN_OK;
}

sn_tls_chain *sn_mbed_chain_ref(sn_tls_chain *chain)
{
    if (chain) atomic_fetch_add_explicit(&chain->refs, 1, memory_order_relaxed);
    return chain;
}

void sn_mbed_chain_unref(sn_tls_chain *chain)
{
    if (!chain || atomic_fetch_sub_explicit(&chain->refs, 1, memory_order_acq_rel) != 1) return;
    chain_free(chain);
}

int sn_mbed_chain_count(const sn_tls_chain *chain)
{
    return chain ? chain->count : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Random bytes and HMAC                                                                    */

sn_err sn_mbed_random_bytes(void *buf, size_t len)
{
    if (!buf && len > 0) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL buffer");
    mbedtls_ctr_drbg_context *rng = sn_mbed_drbg();
    if (!rng) return SN_FAILED;
    int rc = sn_mbed_rng(rng, buf, len);
    if (rc != 0)
        return sn_fail(SN_FAILED, "the random generator failed: %s", sn_mbed_error_string(rc));
    return SN_OK;
}

/* RFC 2104 over mbed TLS's SHA-256 with the context on the stack: mbedtls_md_hmac allocates a
 * context per call, measurable at the rate DTLS cookies are made and checked. */
void sn_mbed_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                         uint8_t out[32])
{
    uint8_t pad[64], khash[32], inner[32];
    if (key_len > sizeof pad) {
        mbedtls_sha256_ret(key, key_len, khash, 0);
        key = khash;
        key_len = sizeof khash;
    }
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    mbedtls_sha256_starts_ret(&c, 0);
    mbedtls_sha256_update_ret(&c, pad, sizeof pad);
    mbedtls_sha256_update_ret(&c, data, len);
    mbedtls_sha256_finish_ret(&c, inner);
    memset(pad, 0x5c, sizeof pad);
    for (size_t i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    mbedtls_sha256_starts_ret(&c, 0);
    mbedtls_sha256_update_ret(&c, pad, sizeof pad);
    mbedtls_sha256_update_ret(&c, inner, sizeof inner);
    mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
    mbedtls_platform_zeroize(pad, sizeof pad);
    mbedtls_platform_zeroize(inner, sizeof inner);
    mbedtls_platform_zeroize(khash, sizeof khash);
}
