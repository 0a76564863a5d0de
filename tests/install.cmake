# The installed package works for a program outside the tree (pkg-config and find_package).
add_test(NAME install_consumer
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install/install_test.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(install_consumer PROPERTIES TIMEOUT 300 ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0"
                     PASS_REGULAR_EXPRESSION "install test passed")
