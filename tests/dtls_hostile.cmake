# DTLS under hostile and lossy conditions: garbage, truncated, oversize, replayed and
# wrong-epoch records, a ClientHello flood, vanishing clients (test_dtls_hostile.c), and a lossy
# reordering relay with a small MTU (test_dtls_lossy.c). The relay and the in-process server
# live in support/dtls_fixture.c.
sealnet_unit_test(test_dtls_lossy test_dtls_lossy.c support/dtls_fixture.c)
sealnet_unit_test(test_dtls_hostile test_dtls_hostile.c support/dtls_fixture.c)
