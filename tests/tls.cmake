# TCP and TLS streams (sn_tcp_peer, sn_tcp_server, sn_tls_stream).
sealnet_unit_test(test_tcp_peer test_tcp_peer.c)
# The TLS tests make their certificates with the openssl command and exit 77 (skipped) without
# it; the interop test also skips the Node.js cases when node is missing.
sealnet_unit_test(test_tls_stream test_tls_stream.c)
sealnet_unit_test(test_tls_bulk test_tls_bulk.c)
sealnet_unit_test(test_tls_hostile test_tls_hostile.c)
sealnet_unit_test(test_tls_interop test_tls_interop.c)
set_tests_properties(test_tls_stream test_tls_bulk test_tls_hostile test_tls_interop
                     PROPERTIES SKIP_RETURN_CODE 77)
