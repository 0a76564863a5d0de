# Robustness: floods, half-open handshakes, restarts, resource exhaustion and allocation-failure
# sweeps (tests/test_robust_*.c; helpers in tests/test_robust_util.h).
sealnet_unit_test(test_robust_flood test_robust_flood.c)
# Memory growth is asserted on the live heap (ASan's allocator counts it exactly) and on RSS;
# ASan's quarantine keeps freed blocks out of reuse and would make RSS grow with churn alone,
# so this one test runs with a small quarantine. Everything else keeps the defaults.
set_tests_properties(test_robust_flood PROPERTIES ENVIRONMENT
  "${SN_TEST_ENV};ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:quarantine_size_mb=0")
sealnet_unit_test(test_robust_restart test_robust_restart.c)
sealnet_unit_test(test_robust_faults test_robust_faults.c)
sealnet_unit_test(test_robust_inputs test_robust_inputs.c)
