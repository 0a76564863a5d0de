# UDP: sn_udp_peer and sn_udp_server.
sealnet_unit_test(test_udp_peer test_udp_peer.c)
sealnet_unit_test(test_udp_server test_udp_server.c)
