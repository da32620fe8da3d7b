# Deterministic simulation of the membership core (tests/sim/): the kv::sim library, the
# simulation tests, and the dissemination benchmark.
add_library(kv_sim sim/simulator.cc)
add_library(kv::sim ALIAS kv_sim)
target_link_libraries(kv_sim PUBLIC kv::membership PRIVATE PkgConfig::XXHASH)

add_executable(sim_tests sim/sim_test.cc)
target_link_libraries(sim_tests PRIVATE kv::sim GTest::gtest_main)
# The longest simulations take about 45 s in a release build and ten times that under TSan.
# They run on one thread (the simulator drives every node), so tools/test.sh leaves the
# label single_threaded out of the TSan run, where they would cost the most and find nothing.
# ENVIRONMENT comes last: KV_TEST_ENV is empty outside TSan, and an empty value anywhere else
# swallows the next property's name (TIMEOUT was lost that way).
gtest_discover_tests(sim_tests DISCOVERY_TIMEOUT 60
                     PROPERTIES TIMEOUT 1800 LABELS single_threaded ENVIRONMENT "${KV_TEST_ENV}")

# Benchmark (not a test): rounds to spread a join and a crash, traffic, false suspicions.
add_executable(sim_bench sim/sim_bench.cc)
target_link_libraries(sim_bench PRIVATE kv::sim CLI11::CLI11)
