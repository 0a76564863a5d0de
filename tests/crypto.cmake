# Keys, certificates, generation and TLS options (src/crypto*.c, x509_cert.c, tls_options.c,
# src/tls/openssl_crypto.c). The fixtures are made with the `openssl` command.
sealnet_unit_test(test_crypto_keys test_crypto_keys.c)
