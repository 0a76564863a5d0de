/* OpenSSL backend: keys, certificate chains, generation, random bytes, HMAC.
 *
 * PEM input is first scanned by sealnet's backend-neutral reader (crypto/pem.h), so errors name
 * blocks and lines; only the chosen block is then handed to OpenSSL's decoder. Every failure clears
 * OpenSSL's error queue (sn_ossl_error_string does) so that a stale error never leaks into a later
 * call. */

/* The low-level SHA-256 API is deprecated in OpenSSL 3 but several times faster than the
 * provider-based HMAC for the tiny inputs DTLS cookies hash; see sn_ossl_hmac_sha256. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "openssl.h"

#include "cert_text.h"
#include "crypto_util.h"
#include "pem.h"

#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <limits.h>
#include <string.h>

static BIO *block_bio(const sn_pem_block *b)
{
    return BIO_new_mem_buf(b->begin, (int)(b->end - b->begin));
}

/* Never prompt on a terminal for a passphrase: OpenSSL's default callback would. */
static int no_password(char *buf, int size, int rwflag, void *user)
{
    (void)buf, (void)size, (void)rwflag, (void)user;
    return -1;
}

static char *bio_to_string(BIO *bio)
{
    char *mem = NULL;
    long n = BIO_get_mem_data(bio, &mem);
    if (n < 0 || !mem) return sn_fail_null(SN_ERR_BUG, "PEM encoding produced no data");
    char *out = sn_malloc((size_t)n + 1);
    if (!out) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(out, mem, (size_t)n);
    out[n] = '\0';
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Keys                                                                                     */

static sn_tls_key *key_wrap(EVP_PKEY *pkey, bool public_only)
{
    sn_tls_key *k = sn_calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pkey);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    k->pkey = pkey;
    k->public_only = public_only;
    atomic_init(&k->refs, 1);
    return k;
}

/* A copy of pkey's public half only (SubjectPublicKeyInfo round trip). */
static EVP_PKEY *public_part(EVP_PKEY *pkey)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0) return NULL;
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, n);
    OPENSSL_free(der);
    return pub;
}

sn_err sn_ossl_key_load_pem(const char *pem, size_t len, bool public_only, sn_tls_key **out)
{
    if (!pem || !out) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    sn_pem_block key;
    bool is_private = false;
    sn_err e = sn_pem_find_key(pem, len, public_only, &key, &is_private);
    if (e != SN_OK) return e;

    BIO *bio = block_bio(&key);
    if (!bio) return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory");
    EVP_PKEY *pkey = NULL;
    if (is_private) {
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    } else if (sn_pem_label_is(&key, "PUBLIC KEY")) {
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
    } else { /* "RSA PUBLIC KEY" (PKCS#1) and other type-specific public keys */
        OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
                                                               EVP_PKEY_PUBLIC_KEY, NULL, NULL);
        if (dctx && !OSSL_DECODER_from_bio(dctx, bio)) pkey = NULL;
        OSSL_DECODER_CTX_free(dctx);
    }
    BIO_free(bio);
    if (!pkey)
        return sn_fail(SN_ERR_FILE_CORRUPT,
                       "PEM parse error at line %d: the '%.*s' block is not "
                       "a valid key (%s)",
                       key.line, key.label_len, key.label, sn_ossl_error_string("undecodable"));
    if (public_only && is_private) {
        EVP_PKEY *pub = public_part(pkey);
        EVP_PKEY_free(pkey);
        if (!pub)
            return sn_fail(SN_ERR_FILE_CORRUPT, "cannot extract the public key: %s",
                           sn_ossl_error_string("unsupported key type"));
        pkey = pub;
    }
    ERR_clear_error();
    sn_tls_key *k = key_wrap(pkey, public_only);
    if (!k) return SN_ERR_OUT_OF_MEMORY;
    *out = k;
    return SN_OK;
}

char *sn_ossl_key_save_pem(const sn_tls_key *key, bool public_only)
{
    if (!key) return sn_fail_null(SN_ERR_INVALID_PARAMETER, "NULL key");
    if (!public_only && key->public_only)
        return sn_fail_null(SN_ERR_UNCONFIGURED,
                            "the key is public only: there is no private key to save");
    /* A secure-memory BIO: the private key's PEM is wiped when the BIO is freed. */
    BIO *bio = BIO_new(public_only ? BIO_s_mem() : BIO_s_secmem());
    if (!bio) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    /* PEM_write_bio_PrivateKey writes PKCS#8 ("PRIVATE KEY") in OpenSSL 3. */
    int ok = public_only ? PEM_write_bio_PUBKEY(bio, key->pkey)
                         : PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL);
    char *s = NULL;
    if (ok)
        s = bio_to_string(bio);
    else
        sn_fail(SN_FAILED, "cannot encode the key: %s", sn_ossl_error_string("encoder failed"));
    BIO_free(bio);
    return s;
}

bool sn_ossl_key_is_public_only(const sn_tls_key *key)
{
    return !key || key->public_only;
}

sn_tls_key *sn_ossl_key_generate_rsa(int bits)
{
    if (bits < 512 || bits > 16384)
        return sn_fail_null(SN_ERR_PARAMETER_RANGE_ERROR, "RSA key size %d out of range", bits);
    /* EVP_PKEY_Q_keygen uses e = 65537. */
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (!pkey)
        return sn_fail_null(SN_FAILED, "RSA key generation failed: %s",
                            sn_ossl_error_string("unknown error"));
    return key_wrap(pkey, false);
}

sn_tls_key *sn_ossl_key_generate_ec(const char *curve)
{
    const char *group = NULL;
    if (!curve || strcmp(curve, "P-256") == 0)
        group = "P-256";
    else if (strcmp(curve, "P-384") == 0)
        group = "P-384";
    else
        return sn_fail_null(SN_ERR_INVALID_PARAMETER, "unsupported EC curve '%s'", curve);
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    if (!pkey)
        return sn_fail_null(SN_FAILED, "EC key generation failed: %s",
                            sn_ossl_error_string("unknown error"));
    return key_wrap(pkey, false);
}

sn_tls_key *sn_ossl_key_ref(sn_tls_key *key)
{
    if (key) atomic_fetch_add_explicit(&key->refs, 1, memory_order_relaxed);
    return key;
}

void sn_ossl_key_unref(sn_tls_key *key)
{
    if (!key || atomic_fetch_sub_explicit(&key->refs, 1, memory_order_acq_rel) != 1) return;
    EVP_PKEY_free(key->pkey);
    sn_free(key);
}

/* ---------------------------------------------------------------------------------------- */
/* Certificate chains                                                                       */

static sn_tls_chain *chain_wrap(STACK_OF(X509) * certs)
{
    sn_tls_chain *c = sn_calloc(1, sizeof *c);
    if (!c) {
        sk_X509_pop_free(certs, X509_free);
        return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    }
    c->certs = certs;
    atomic_init(&c->refs, 1);
    return c;
}

sn_err sn_ossl_chain_load_pem(const char *pem, size_t len, sn_tls_chain **out)
{
    if (!pem || !out) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL argument");
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (!certs) return sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory");
    sn_pem_reader r = {pem, len, 0, 0};
    sn_pem_block b, first = {0};
    int blocks = 0, rc;
    sn_err err = SN_OK;
    /* Blocks of other kinds (a private key in a combined file) are skipped: the chain is the
     * certificates, in file order. */
    while ((rc = sn_pem_next(&r, &b)) == 1) {
        if (blocks++ == 0) first = b;
        if (!sn_pem_is_cert_block(&b)) continue;
        BIO *bio = block_bio(&b);
        if (!bio) {
            err = sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory");
            break;
        }
        X509 *x = sn_pem_label_is(&b, "TRUSTED CERTIFICATE")
                      ? PEM_read_bio_X509_AUX(bio, NULL, no_password, NULL)
                      : PEM_read_bio_X509(bio, NULL, no_password, NULL);
        BIO_free(bio);
        if (!x) {
            err = sn_fail(SN_ERR_FILE_CORRUPT,
                          "PEM parse error at line %d: certificate %d is not a valid X.509 "
                          "certificate (%s)",
                          b.line, sk_X509_num(certs) + 1, sn_ossl_error_string("undecodable"));
            break;
        }
        if (!sk_X509_push(certs, x)) {
            X509_free(x);
            err = sn_fail(SN_ERR_OUT_OF_MEMORY, "out of memory");
            break;
        }
    }
    if (err == SN_OK && rc < 0) err = SN_ERR_FILE_CORRUPT;
    if (err == SN_OK && sk_X509_num(certs) == 0)
        err = sn_pem_no_block(pem, len, blocks, &first, "a certificate",
                              "-----BEGIN CERTIFICATE-----");
    if (err != SN_OK) {
        sk_X509_pop_free(certs, X509_free);
        ERR_clear_error();
        return err;
    }
    ERR_clear_error(); /* decoders may leave notes on the queue even when they succeed */
    sn_tls_chain *c = chain_wrap(certs);
    if (!c) return SN_ERR_OUT_OF_MEMORY;
    *out = c;
    return SN_OK;
}

char *sn_ossl_chain_save_pem(const sn_tls_chain *chain)
{
    if (!chain || sk_X509_num(chain->certs) == 0)
        return sn_fail_null(SN_ERR_UNCONFIGURED, "the certificate chain is empty");
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) return sn_fail_null(SN_ERR_OUT_OF_MEMORY, "out of memory");
    char *s = NULL;
    int i, n = sk_X509_num(chain->certs);
    for (i = 0; i < n; i++)
        if (!PEM_write_bio_X509(bio, sk_X509_value(chain->certs, i))) break;
    if (i == n)
        s = bio_to_string(bio);
    else
        sn_fail(SN_FAILED, "cannot encode certificate %d: %s", i + 1,
                sn_ossl_error_string("encoder failed"));
    BIO_free(bio);
    return s;
}

static bool add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext) return false;
    bool ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* The subject alternative name for the CN: an IP address when it is one, else a DNS name when
 * it looks like one, else none (a CN such as "My Server" names no host). */
static bool add_san(X509 *x, X509V3_CTX *ctx, const char *cn)
{
    unsigned char addr[16];
    char value[300];
    if (inet_pton(AF_INET, cn, addr) == 1 || inet_pton(AF_INET6, cn, addr) == 1)
        snprintf(value, sizeof value, "IP:%s", cn);
    else if (sn_dns_name_plausible(cn))
        snprintf(value, sizeof value, "DNS:%s", cn);
    else
        return true;
    return add_ext(x, ctx, NID_subject_alt_name, value);
}

static bool set_random_serial(X509 *x)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return false;
    raw[0] &= 0x7f; /* positive as a DER INTEGER, at most 16 bytes */
    bool zero = true;
    for (size_t i = 0; i < sizeof raw; i++)
        zero = zero && raw[i] == 0;
    if (zero) raw[sizeof raw - 1] = 1;
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (!bn) return false;
    bool ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

sn_tls_chain *sn_ossl_chain_self_signed(const sn_tls_key *key, const char *issuer,
                                        const char *not_before, const char *not_after)
{
    if (!key) return sn_fail_null(SN_ERR_INVALID_PARAMETER, "NULL key");
    if (key->public_only)
        return sn_fail_null(SN_ERR_INVALID_PARAMETER,
                            "the key is public only; signing a certificate needs the private key");
    int64_t nb, na;
    sn_dn dn;
    if (sn_cert_template_parse(issuer, not_before, not_after, &dn, &nb, &na) != SN_OK) return NULL;

    const char *step = "out of memory";
    sn_tls_chain *chain = NULL;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    STACK_OF(X509) *certs = NULL;
    if (!x || !name) goto done;
    step = "cannot set the version, serial or validity";
    if (!X509_set_version(x, X509_VERSION_3) || !set_random_serial(x) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na))
        goto done;
    step = "cannot build the issuer name";
    for (size_t i = 0; i < dn.count; i++)
        if (!X509_NAME_add_entry_by_txt(name, dn.entry[i].key, MBSTRING_UTF8,
                                        (const unsigned char *)dn.entry[i].value, -1, -1, 0))
            goto done;
    if (!X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
        !X509_set_pubkey(x, key->pkey))
        goto done;

    /* Conventional extensions only. No keyUsage: OpenSSL 3 considers a certificate self-issued
     * (and so a valid trust anchor for itself) only when a present keyUsage allows keyCertSign,
     * which RFC 5280 forbids together with CA:FALSE; leaving keyUsage out satisfies both. */
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    step = "cannot add the certificate extensions";
    if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
        !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") || !add_san(x, &ctx, dn.cn))
        goto done;

    /* SHA-256 for RSA and ECDSA; EdDSA keys sign without a separate digest. */
    int id = EVP_PKEY_get_base_id(key->pkey);
    const EVP_MD *md = (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? NULL : EVP_sha256();
    step = "cannot sign the certificate";
    if (X509_sign(x, key->pkey, md) <= 0) goto done;
    step = "out of memory";
    certs = sk_X509_new_null();
    if (!certs || !sk_X509_push(certs, x)) goto done;
    x = NULL;
    chain = chain_wrap(certs);
    certs = NULL;
    step = NULL;
done:
    if (step) sn_fail(SN_FAILED, "%s: %s", step, sn_ossl_error_string("failed"));
    sk_X509_pop_free(certs, X509_free);
    X509_free(x);
    X509_NAME_free(name);
    sn_dn_clear(&dn);
    return chain;
}

bool sn_ossl_key_matches_chain(const sn_tls_key *key, const sn_tls_chain *chain)
{
    if (!key || !chain || sk_X509_num(chain->certs) == 0) return false;
    EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(chain->certs, 0));
    bool ok = pub && EVP_PKEY_eq(pub, key->pkey) == 1;
    ERR_clear_error();
    return ok;
}

sn_err sn_ossl_chain_fingerprint(const sn_tls_chain *chain, char out[96])
{
    if (!chain || sk_X509_num(chain->certs) == 0)
        return sn_fail(SN_ERR_UNCONFIGURED, "the certificate chain is empty");
    return sn_ossl_cert_fingerprint(sk_X509_value(chain->certs, 0), out);
}

sn_err sn_ossl_cert_fingerprint(const X509 *cert, char out[96])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!X509_digest(cert, EVP_sha256(), md, &n) || n != 32)
        return sn_fail(SN_FAILED, "cannot hash the certificate: %s",
                       sn_ossl_error_string("digest failed"));
    sn_fingerprint_format(md, out);
    return SN_OK;
}

sn_tls_chain *sn_ossl_chain_ref(sn_tls_chain *chain)
{
    if (chain) atomic_fetch_add_explicit(&chain->refs, 1, memory_order_relaxed);
    return chain;
}

void sn_ossl_chain_unref(sn_tls_chain *chain)
{
    if (!chain || atomic_fetch_sub_explicit(&chain->refs, 1, memory_order_acq_rel) != 1) return;
    sk_X509_pop_free(chain->certs, X509_free);
    sn_free(chain);
}

/* ---------------------------------------------------------------------------------------- */
/* Random bytes and HMAC                                                                    */

sn_err sn_ossl_random_bytes(void *buf, size_t len)
{
    if (!buf && len > 0) return sn_fail(SN_ERR_INVALID_PARAMETER, "NULL buffer");
    unsigned char *p = buf;
    while (len > 0) {
        int chunk = len > (size_t)1 << 30 ? 1 << 30 : (int)len;
        if (RAND_bytes(p, chunk) != 1)
            return sn_fail(SN_FAILED, "the random generator failed: %s",
                           sn_ossl_error_string("RAND_bytes failed"));
        p += chunk;
        len -= (size_t)chunk;
    }
    return SN_OK;
}

/* RFC 2104 over the low-level SHA-256: for the 20..60-byte inputs of DTLS cookies this takes
 * ~150 ns where OpenSSL 3's HMAC() spends ~1 us fetching algorithms from the provider. */
void sn_ossl_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                         uint8_t out[32])
{
    uint8_t pad[64], khash[32], inner[32];
    if (key_len > sizeof pad) {
        SHA256(key, key_len, khash);
        key = khash;
        key_len = sizeof khash;
    }
    SHA256_CTX c;
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof pad);
    SHA256_Update(&c, data, len);
    SHA256_Final(inner, &c);
    memset(pad, 0x5c, sizeof pad);
    for (size_t i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof pad);
    SHA256_Update(&c, inner, sizeof inner);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    OPENSSL_cleanse(&c, sizeof c);
}

int sn_ossl_chain_count(const sn_tls_chain *chain)
{
    return chain && chain->certs ? sk_X509_num(chain->certs) : 0;
}

/* "CN=localhost, O=sealnet": the attributes in certificate order, written by the backend-neutral
 * crypto/cert_text.c so that every backend spells a name the same way (the form is what
 * `openssl x509 -nameopt oneline,-esc_msb,-space_eq,utf8` prints). */
static void name_text(const X509_NAME *name, char *out, size_t cap)
{
    sn_dn_text t;
    sn_dn_text_init(&t, out, cap);
    int prev_set = -1;
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
        const ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
        int set = X509_NAME_ENTRY_set(e);
        const unsigned char *oid = OBJ_get0_data(obj);
        if (!oid || !v) continue;
        sn_dn_text_add(&t, oid, OBJ_length(obj), i > 0 && set == prev_set, ASN1_STRING_type(v),
                       ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
        prev_set = set;
    }
}

static void time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    out[0] = '\0';
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        sn_cert_time_text(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, out, cap);
}

void sn_ossl_cert_names(const X509 *x, char *out, size_t cap)
{
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t used = 0;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        const ASN1_STRING *v;
        const char *kind;
        if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
            v = g->d.ia5;
            kind = g->type == GEN_DNS ? "DNS" : g->type == GEN_EMAIL ? "email" : "URI";
        } else if (g->type == GEN_IPADD) {
            v = g->d.ip;
            kind = "IP";
        } else {
            continue;
        }
        sn_cert_names_add(out, cap, &used, kind, ASN1_STRING_get0_data(v),
                          (size_t)ASN1_STRING_length(v));
    }
    GENERAL_NAMES_free(names);
}

void sn_ossl_cert_info(const X509 *x, sn_x509_info *out)
{
    memset(out, 0, sizeof *out);
    name_text(X509_get_subject_name(x), out->subject, sizeof out->subject);
    name_text(X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
    sn_ossl_cert_names(x, out->names, sizeof out->names);
    time_text(X509_get0_notBefore(x), out->not_before, sizeof out->not_before);
    time_text(X509_get0_notAfter(x), out->not_after, sizeof out->not_after);
    if (sn_ossl_cert_fingerprint(x, out->fingerprint_sha256) != SN_OK)
        out->fingerprint_sha256[0] = '\0';
}

sn_err sn_ossl_chain_info(const sn_tls_chain *chain, int index, sn_x509_info *out)
{
    if (!chain || index < 0 || index >= sk_X509_num(chain->certs))
        return sn_fail(SN_ERR_PARAMETER_RANGE_ERROR, "no certificate %d in the chain", index);
    sn_ossl_cert_info(sk_X509_value(chain->certs, index), out);
    return SN_OK;
}

sn_tls_chain *sn_ossl_chain_from_stack(STACK_OF(X509) * certs)
{
    if (!certs || sk_X509_num(certs) == 0) return NULL;
    STACK_OF(X509) *copy = X509_chain_up_ref(certs);
    if (!copy) return NULL;
    return chain_wrap(copy); /* frees copy when it fails */
}
