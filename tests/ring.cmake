# Tests of the ring module; owned by whoever works on ring.
add_executable(ring_tests unit/ring_test.cc)
target_link_libraries(ring_tests PRIVATE kv::ring GTest::gtest_main)
gtest_discover_tests(ring_tests DISCOVERY_TIMEOUT 60 PROPERTIES ENVIRONMENT "${KV_TEST_ENV}")

# Benchmark (not a test): ownership balance by node and vnode count; picks kDefaultVnodes.
add_executable(ring_balance bench/ring_balance.cc)
target_link_libraries(ring_balance PRIVATE kv::ring)
