# The `sealnet` command and the demo, run as processes. The binaries' paths come in as argv[1].
function(sealnet_cli_test name target)
  add_executable(${name} ${name}.c)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_compile_options(${name} PRIVATE ${SN_WARNINGS})
  target_link_libraries(${name} PRIVATE sn_testsupport)
  add_dependencies(${name} ${target})
  add_test(NAME ${name} COMMAND ${name} $<TARGET_FILE:${target}>)
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${SN_TEST_ENV}" TIMEOUT 300)
endfunction()

if(TARGET sealnet)
  sealnet_cli_test(test_cli sealnet)
endif()
if(TARGET demo)
  # Also checks the README's code: examples/readme_{server,host_server,client}.c, built and run.
  sealnet_cli_test(test_cli_demo demo)
  add_dependencies(test_cli_demo readme_server readme_host_server readme_client)
endif()
