# Deterministic simulation of the membership core (tests/sim/): the kv::sim library, the
# simulation tests, and the dissemination benchmark.
add_library(kv_sim sim/simulator.cc)
add_library(kv::sim ALIAS kv_sim)
target_link_libraries(kv_sim PUBLIC kv::membership PRIVATE PkgConfig::XXHASH)

add_executable(sim_tests sim/sim_test.cc)
target_link_libraries(sim_tests PRIVATE kv::sim GTest::gtest_main)
# The longest simulations take about 45 s in a release build and ten times that under TSan.
gtest_discover_tests(sim_tests DISCOVERY_TIMEOUT 60
                     PROPERTIES ENVIRONMENT "${KV_TEST_ENV}" TIMEOUT 1800)

# Benchmark (not a test): rounds to spread a join and a crash, traffic, false suspicions.
add_executable(sim_bench sim/sim_bench.cc)
target_link_libraries(sim_bench PRIVATE kv::sim CLI11::CLI11)
