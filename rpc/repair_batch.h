// Batches of the repair exchange's per-key items (repair/exchange.h), each batch carried in one
// Data field of rpc/replica.capnp: a varint count, then each item's fields, byte strings with a
// varint length. As lists of structs, each field of each item cost a pointer and padding to a
// word: a fifth of all bytes of a 0.1%-differing repair went to that.
//
//   records := n { klen key rlen record }*                 (record: storage/codec.h)
//   offers  := n { klen key clen context }*                (context: storage/codec.h)
//   answers := n { flags:u8 [entry:u64 LE] [rlen record] }* (flags: 1 need, 2 entry, 4 record)
//   nodes   := n { delta }*   (tree nodes in ascending order, each the difference from the last)
//
// Decoders treat the bytes as hostile: counts are bounded by the caller, every length by what is
// left, records and contexts go through the storage decoders, and trailing bytes are refused
// (InvalidArgument). Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "repair/exchange.h"
#include "storage/causal.h"
#include "storage/record.h"
#include "storage/status.h"

namespace kv::rpc {

using KeyRecords = std::vector<std::pair<std::string, storage::Record>>;

std::string EncodeRecords(const KeyRecords& records);
Result<KeyRecords> DecodeRecords(std::string_view bytes, std::size_t max_count);

std::string EncodeOffers(const std::vector<std::string>& keys,
                         const std::vector<storage::CausalContext>& contexts);
// Fills `keys` and `contexts` (parallel).
Status DecodeOffers(std::string_view bytes, std::size_t max_count, std::vector<std::string>* keys,
                    std::vector<storage::CausalContext>* contexts);

std::string EncodeAnswers(const std::vector<repair::OfferAnswer>& answers);
Result<std::vector<repair::OfferAnswer>> DecodeAnswers(std::string_view bytes,
                                                       std::size_t max_count);

// REQUIRES: `nodes` strictly ascending.
std::string EncodeNodes(const std::vector<std::uint64_t>& nodes);
Result<std::vector<std::uint64_t>> DecodeNodes(std::string_view bytes, std::size_t max_count);

}  // namespace kv::rpc
