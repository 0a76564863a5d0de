# Error model and basics.
sealnet_unit_test(test_error test_error.c)
