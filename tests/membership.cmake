# Tests of the membership module; owned by whoever works on membership.
# In-process clusters of Membership cores over a hand-rolled router and a manual clock: no
# sockets, no sleeps, no threads.
add_executable(membership_tests
  unit/membership_lifeguard_test.cc
  unit/membership_wire_test.cc
  unit/membership_cluster_test.cc
  unit/membership_sorted_blocks_test.cc
  unit/saved_peers_test.cc
  unit/movement_test.cc
)
target_link_libraries(membership_tests PRIVATE kv::membership GTest::gtest_main)
gtest_discover_tests(membership_tests DISCOVERY_TIMEOUT 60 PROPERTIES ENVIRONMENT "${KV_TEST_ENV}")

# The gossip transport over real loopback sockets (127.0.0.1): its bounds on push-pull streams.
add_executable(membership_transport_tests unit/membership_transport_test.cc)
target_link_libraries(membership_transport_tests PRIVATE kv::membership_asio GTest::gtest_main)
gtest_discover_tests(membership_transport_tests DISCOVERY_TIMEOUT 60
                     PROPERTIES ENVIRONMENT "${KV_TEST_ENV}")

# Gossip sealing and its replay window (membership/gossip_seal.h), and the key file kvd keeps
# its keyring in (tools/gossip_key_file.h).
add_executable(gossip_seal_tests unit/gossip_seal_test.cc unit/gossip_key_file_test.cc)
target_link_libraries(gossip_seal_tests PRIVATE kv::gossip_seal kv::gossip_key_file
                                                GTest::gtest_main)
gtest_discover_tests(gossip_seal_tests DISCOVERY_TIMEOUT 60 PROPERTIES ENVIRONMENT "${KV_TEST_ENV}")
