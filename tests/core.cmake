# Error model and basics.
sealnet_unit_test(test_error test_error.c)
sealnet_unit_test(test_api_contract test_api_contract.c)
