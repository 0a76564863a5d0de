# DTLS: the stateless hello/cookie code, and client/server behaviour on loopback.
sealnet_unit_test(test_dtls_hello test_dtls_hello.c)
sealnet_unit_test(test_dtls test_dtls.c)
