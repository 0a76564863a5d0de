# DTLS interoperability with openssl s_server/s_client and gnutls-serv/gnutls-cli, and the
# certificate verification matrix (tests/test_dtls_interop.c).
sealnet_unit_test(test_dtls_interop test_dtls_interop.c support/dtls_fixture.c)
