# TCP and TLS streams (sn_tcp_peer, sn_tcp_server, sn_tls_stream).
sealnet_unit_test(test_tcp_peer test_tcp_peer.c)
sealnet_unit_test(test_tls_stream test_tls_stream.c)
sealnet_unit_test(test_tls_bulk test_tls_bulk.c)
sealnet_unit_test(test_tls_hostile test_tls_hostile.c)
# Interop with openssl s_server/s_client and Node.js; exits 77 (skipped) when neither exists.
sealnet_unit_test(test_tls_interop test_tls_interop.c)
set_tests_properties(test_tls_interop PROPERTIES SKIP_RETURN_CODE 77)
