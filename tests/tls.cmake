# TCP and TLS streams (sn_tcp_peer, sn_tcp_server, sn_tls_stream).
sealnet_unit_test(test_tcp_peer test_tcp_peer.c)
sealnet_unit_test(test_tls_stream test_tls_stream.c)
sealnet_unit_test(test_tls_bulk test_tls_bulk.c)
sealnet_unit_test(test_tls_hostile test_tls_hostile.c)
