# Fuzz targets (tests/fuzz/): one per decoder family of bytes that reach a node from outside.
# Every build replays each target's seed corpus (tests/fuzz/corpus/NAME) as the test
# fuzz_NAME_corpus, through replay_main.cc. With -DKV_FUZZ=ON and clang (tools/fuzz.sh) the
# targets are libFuzzer binaries instead, instrumented with ASan and UBSan, and only they are
# meant to be built in that tree.
option(KV_FUZZ "Build the fuzz targets as libFuzzer binaries (clang)" OFF)

function(kv_fuzz_target name)
  set(libs ${ARGN})
  if(KV_FUZZ)
    add_executable(fuzz_${name} fuzz/${name}.cc)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    set(replay -runs=0)
  else()
    add_executable(fuzz_${name} fuzz/${name}.cc fuzz/replay_main.cc)
    set(replay)
  endif()
  target_include_directories(fuzz_${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(fuzz_${name} PRIVATE ${libs})
  add_test(NAME fuzz_${name}_corpus
           COMMAND fuzz_${name} ${replay} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(fuzz_${name}_corpus PROPERTIES LABELS fuzz ENVIRONMENT "${KV_TEST_ENV}")
endfunction()

kv_fuzz_target(record kv::storage)
kv_fuzz_target(repair_batch kv::rpc kv::repair)
kv_fuzz_target(gossip kv::membership)
kv_fuzz_target(gossip_sealed kv::gossip_seal)
kv_fuzz_target(peers_and_checkpoints kv::membership kv::repair)
kv_fuzz_target(rpc_messages kv::rpc kv::storage)
kv_fuzz_target(config kv::config_file)

# Writes the seed corpora (not a test): build/tests/fuzz_make_seeds tests/fuzz/corpus
if(NOT KV_FUZZ)
  add_executable(fuzz_make_seeds fuzz/make_seeds.cc)
  target_include_directories(fuzz_make_seeds PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(fuzz_make_seeds PRIVATE kv::rpc kv::repair kv::membership kv::gossip_seal)
endif()
