// Tokens: where a key sits on the consistent-hash ring.
//
// A token is XXH3-64 of the key bytes. Every node computes the same token for the same key, so
// placement, storage order and repair ranges all agree. Pure and thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

namespace kv::ring {

using Token = std::uint64_t;

// The key's position on the ring.
Token TokenOf(std::string_view key);

// A half-open slice of the token space, [begin, end). `end == 0` with `begin != 0` means "to the
// top of the space", and begin == end == 0 means the whole ring; callers that need a wrapping
// range split it in two.
struct TokenRange {
  Token begin = 0;
  Token end = 0;

  bool Contains(Token t) const {
    if (begin == 0 && end == 0) return true;
    if (end == 0) return t >= begin;
    return t >= begin && t < end;
  }
};

}  // namespace kv::ring
