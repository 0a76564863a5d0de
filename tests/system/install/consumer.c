/* A program outside the tree: it sees only the installed headers and library. */
#include <sealnet/sealnet.h>
#include <stdio.h>

int main(void)
{
    sn_crypto_key *key = sn_crypto_generate_ec("P-256");
    sn_x509_cert *cert = sn_crypto_generate_self_signed_certificate(key, NULL, NULL, NULL);
    sn_tls_options *opts = sn_tls_options_server(key, cert);
    printf("%s %s\n", sn_version(), opts ? "ok" : sn_last_error_message());
    sn_tls_options_free(opts);
    sn_x509_cert_free(cert);
    sn_crypto_key_free(key);
    return opts ? 0 : 1;
}
