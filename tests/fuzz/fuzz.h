// Fuzz targets (tests/fuzz.cmake): each file defines LLVMFuzzerTestOneInput over decoders of
// bytes that come from outside a node. A target must not crash, leak or trip a sanitizer on any
// input, and each checks what it can of its decoder's contract: what decodes, encodes again to
// something that decodes to the same value (FUZZ_CHECK aborts otherwise, so libFuzzer keeps
// the input). Built with libFuzzer by tools/fuzz.sh (clang); every other build links
// replay_main.cc and replays the seed corpus as a test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

inline std::string_view Bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}
