# Keys, certificates, generation and TLS options (src/crypto*.c, x509_cert.c, tls_options.c,
# src/tls/openssl_crypto.c). The fixtures are made with the `openssl` command.
sealnet_unit_test(test_crypto_keys test_crypto_keys.c)
sealnet_unit_test(test_crypto_certs test_crypto_certs.c)
sealnet_unit_test(test_crypto_generate test_crypto_generate.c)
sealnet_unit_test(test_crypto_options test_crypto_options.c)
# The example program must run to completion (generate, save, reload, compare).
if(TARGET keys_demo)
  add_test(NAME test_crypto_keys_demo COMMAND keys_demo)
  set_tests_properties(test_crypto_keys_demo PROPERTIES ENVIRONMENT "${SN_TEST_ENV}" TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "key and certificate identical")
endif()
