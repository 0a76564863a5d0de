sealnet_unit_test(test_host test_host.c)
