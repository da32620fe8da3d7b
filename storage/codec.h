// Byte encodings of records, causal contexts and storage keys.
//
// Records are stored in RocksDB in this encoding; contexts travel to clients in it as opaque
// bytes. Every decoder treats its input as hostile: it checks bounds, counts, canonical order
// and the invariants of causal.h and record.h, and returns Corruption (stored data) or
// InvalidArgument (client input) instead of trusting anything. Pure functions; thread-safe.
//
// Layout (all integers LEB128 varints unless noted):
//   context := 'C' 0x01 body
//   record  := 'R' 0x01 body nsib { node counter flags:u8 [deleted_at] len bytes[len] }*
//              (flags: 1 tombstone, 2 deleted_at follows; only a tombstone has one)
//   body    := nvv { node counter }* ncloud { node counter }*
// Nodes in the vv and dots in the cloud and the siblings are strictly increasing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ring/token.h"
#include "storage/causal.h"
#include "storage/record.h"
#include "storage/status.h"

namespace kv::storage {

// Counters above this are refused in client contexts, so a forged context cannot push a node's
// counter to overflow (Record::Write's REQUIRES). 2^48 writes per key per node is plenty.
inline constexpr std::uint64_t kMaxClientCounter = std::uint64_t{1} << 48;
// Bound on the number of dots a decoded context may hold.
inline constexpr std::size_t kMaxContextDots = 4096;

std::string EncodeContext(const CausalContext& context);
Result<CausalContext> DecodeContext(std::string_view bytes);  // InvalidArgument on bad input

std::string EncodeRecord(const Record& record);
// The digest of one stored version: XXH3-64 of its encoding. The encoding is canonical (the
// decoder refuses anything else), so equal records have equal digests on every node.
std::uint64_t VersionDigest(std::string_view encoded_record);
// The number of dots in an encoded record's causal context, read without decoding the rest (a
// record whose context includes another's has strictly more). 0 for bytes that do not start
// like a record; saturates at UINT64_MAX.
std::uint64_t ContextDots(std::string_view encoded_record);
Result<Record> DecodeRecord(std::string_view bytes);  // Corruption on bad input

// Hints are stored as  hint := 'H' 0x01 created_s record : the record held for another node,
// and when (Unix seconds) the first write in it was kept. A value that is a bare record (hints
// written before hints had an age) decodes with created_s 0: age unknown.
struct StoredHint {
  std::uint64_t created_s = 0;
  Record record;
};
std::string EncodeHint(std::uint64_t created_s, const Record& record);
Result<StoredHint> DecodeHint(std::string_view bytes);  // Corruption on bad input

// Storage keys: be64(token) ‖ key, so RocksDB's byte order is token order and a token range is
// one contiguous scan.
std::string EncodeStorageKey(std::string_view key);
void AppendTokenPrefix(ring::Token token, std::string* out);
struct DecodedKey {
  ring::Token token;
  std::string_view key;
};
// False if `storage_key` is shorter than a token.
bool DecodeStorageKey(std::string_view storage_key, DecodedKey* out);

}  // namespace kv::storage
