/* keys_demo: make an EC key and a self-signed certificate, show them, save both to a temporary
 * directory, load them back and check they are the same. Exits 0 on success.
 *
 *   build/examples/keys_demo [common-name]
 */
#include <sealnet/sealnet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "keys_demo: %s: %s\n", what, sn_last_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    char subject[128];
    snprintf(subject, sizeof subject, "CN=%s,O=sealnet demo,C=IT",
             argc > 1 ? argv[1] : "localhost");

    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    if (!key) return fail("generate key");
    sn_x509_cert *cert = sn_crypto_generate_self_signed_certificate(key, subject, NULL, NULL);
    if (!cert) return fail("generate certificate");

    char *pem = sn_x509_cert_save_to_string(cert);
    char *fp = sn_x509_cert_get_fingerprint_sha256(cert);
    if (!pem || !fp) return fail("describe certificate");
    printf("%s", pem);
    printf("subject:     %s\n", subject);
    printf("SHA-256:     %s\n", fp);

    char dir[] = "/tmp/sealnet-keys-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char key_path[64], cert_path[64];
    snprintf(key_path, sizeof key_path, "%s/server.key", dir);
    snprintf(cert_path, sizeof cert_path, "%s/server.crt", dir);
    int rc = 1;
    sn_crypto_key *key2 = sn_crypto_key_new();
    sn_x509_cert *cert2 = sn_x509_cert_new();
    char *key_pem = NULL, *key_pem2 = NULL, *pem2 = NULL, *fp2 = NULL;
    if (sn_crypto_key_save(key, key_path, false) != SN_OK) {
        fail("save key");
        goto out;
    }
    if (sn_x509_cert_save(cert, cert_path) != SN_OK) {
        fail("save certificate");
        goto out;
    }
    printf("saved:       %s, %s\n", key_path, cert_path);
    if (sn_crypto_key_load(key2, key_path, false) != SN_OK) {
        fail("reload key");
        goto out;
    }
    if (sn_x509_cert_load(cert2, cert_path) != SN_OK) {
        fail("reload certificate");
        goto out;
    }
    key_pem = sn_crypto_key_save_to_string(key, false);
    key_pem2 = sn_crypto_key_save_to_string(key2, false);
    pem2 = sn_x509_cert_save_to_string(cert2);
    fp2 = sn_x509_cert_get_fingerprint_sha256(cert2);
    if (!key_pem || !key_pem2 || !pem2 || !fp2 || strcmp(key_pem, key_pem2) != 0 ||
        strcmp(pem, pem2) != 0 || strcmp(fp, fp2) != 0) {
        fprintf(stderr, "keys_demo: the reloaded key or certificate differs\n");
        goto out;
    }
    /* The pair is fit for a server. */
    sn_tls_options *opts = sn_tls_options_server(key2, cert2);
    if (!opts) {
        fail("server options");
        goto out;
    }
    sn_tls_options_free(opts);
    printf("reloaded:    key and certificate identical, key matches certificate\n");
    rc = 0;
out:
    unlink(key_path);
    unlink(cert_path);
    rmdir(dir);
    sn_free(key_pem), sn_free(key_pem2), sn_free(pem2), sn_free(fp2), sn_free(pem), sn_free(fp);
    sn_crypto_key_free(key2), sn_x509_cert_free(cert2);
    sn_x509_cert_free(cert), sn_crypto_key_free(key);
    return rc;
}
