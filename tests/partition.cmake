# The Jepsen-style partition suite (tests/partition/): the pure history checker, nemesis planner
# and timeline in kv_partition; the driver that tests/partition/run starts inside a network
# namespace; and the short run that CI makes (skipped, with its reason, where namespaces cannot
# be made).
add_library(kv_partition partition/history.cc partition/nemesis.cc partition/timeline.cc)
target_include_directories(kv_partition PUBLIC ${CMAKE_SOURCE_DIR})

add_executable(partition_driver partition/driver.cc)
target_link_libraries(partition_driver PRIVATE kv_partition kv::rpc kv::ring CLI11::CLI11
                                               nlohmann_json::nlohmann_json Threads::Threads)

add_executable(partition_tests unit/partition_test.cc)
target_link_libraries(partition_tests PRIVATE kv_partition GTest::gtest_main)
gtest_discover_tests(partition_tests DISCOVERY_TIMEOUT 60 PROPERTIES ENVIRONMENT "${KV_TEST_ENV}")

# About three minutes: 130 s of workload with short faults, so that the twelve nemeses (crash,
# skew and the ring movements among them) come up about once, with sets, blind puts and deletes
# (tombstones purged during the run), then heal, repair and check. Secure: gossip sealed and TLS
# required everywhere, as a careful operator runs it (the heal scenario below runs plain).
add_test(NAME partition_suite_short
         COMMAND ${CMAKE_SOURCE_DIR}/tests/partition/run --build-dir ${CMAKE_BINARY_DIR} --secure
                 --nodes 5 --time 130 --quiet 3 --fault-min 6 --fault-max 8
                 --nemesis halves,isolate,bridge,random,loss,kill,pause,join,decommission,replace,crash,skew
                 --workload set,put,delete --seed 1 --report ${CMAKE_BINARY_DIR}/partition-ci)
set_tests_properties(partition_suite_short PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900 RESOURCE_LOCK partition
                     ENVIRONMENT "${KV_TEST_ENV}")

# About 40 s: nodes 1 and 2 cut apart for 15 s under load, then healed; writes at ALL through
# each must succeed again soon. The figure is printed (0.6 s on a quiet machine; 13.6 s before
# suspect peer connections were replaced); the bound here is loose for the sanitizer builds.
add_test(NAME partition_heal
         COMMAND ${CMAKE_SOURCE_DIR}/tests/partition/run --build-dir ${CMAKE_BINARY_DIR}
                 --scenario heal --nodes 3 --rate 60 --partition-s 15 --heal-bound-s 5
                 --report ${CMAKE_BINARY_DIR}/partition-heal)
set_tests_properties(partition_heal PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 RESOURCE_LOCK partition
                     ENVIRONMENT "${KV_TEST_ENV}")
