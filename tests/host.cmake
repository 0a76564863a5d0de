sealnet_unit_test(test_host test_host.c)
sealnet_unit_test(test_host_chat test_host_chat.c)
