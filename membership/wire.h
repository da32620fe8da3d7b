// Wire: the membership messages as plain structs, and their Cap'n Proto encoding.
//
// membership/gossip.capnp is the schema. Encode writes a packed message; Decode reads one from
// untrusted bytes with tight limits, catches whatever the Cap'n Proto reader throws, and checks
// what the schema cannot (enum ranges, sorted tokens) so that the state machine only ever sees
// well-formed values. Keeping Cap'n Proto behind this header also keeps its headers out of
// membership.cc. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "membership/membership.h"

namespace kv::membership::wire {

// Bumped on any change of meaning. A message with another version is dropped.
inline constexpr std::uint16_t kProtocolVersion = 1;

// A stream message larger than this is dropped (a datagram is bounded by
// Config::max_datagram_bytes).
inline constexpr std::size_t kMaxStreamBytes = 64u << 20;

enum class Kind : std::uint8_t {
  kPing,
  kAck,
  kNack,
  kPingReq,
  kGossip,
  kSyn,
  kSynAck,
  kAck2,
  kRemovedNotice,
};
const char* Name(Kind k);

// One member as a sender believes it. Liveness is never kRemoved on the wire.
struct Update {
  NodeId id = 0;
  Endpoint endpoint;
  std::uint64_t generation = 0;
  std::uint64_t incarnation = 0;
  Liveness liveness = Liveness::kUp;
  NodeId from = 0;  // accuser of a suspect / down claim
  std::uint64_t app_version = 0;
  bool has_app = false;  // false: `app` is absent (did not fit, or not known)
  AppState app;
  bool operator==(const Update&) const = default;
};

struct Digest {
  NodeId id = 0;
  std::uint64_t generation = 0;
  std::uint64_t incarnation = 0;
  Liveness liveness = Liveness::kUp;
  std::uint64_t app_version = 0;
  bool operator==(const Digest&) const = default;
};

struct Message {
  std::uint16_t version = kProtocolVersion;
  std::string cluster;
  NodeId sender = 0;
  std::uint64_t generation = 0;
  std::uint64_t incarnation = 0;
  Endpoint endpoint;              // the sender's gossip endpoint; replies go there
  std::uint64_t app_version = 0;  // of the sender's own application state

  Kind kind = Kind::kGossip;
  std::uint64_t seq_no = 0;     // ping, ack, nack, ping-req
  NodeId target = 0;            // ping, ping-req; the removed id of a removed notice
  bool any_target = false;      // ping from a joining node
  Endpoint target_endpoint;     // ping-req
  std::vector<Digest> digests;  // SYN: the sender's digests; ACK: the requests
  std::vector<Update> states;   // ACK, ACK2: full states

  std::vector<Update> updates;   // piggybacked
  std::vector<NodeId> removals;  // tombstones
  // Each tombstone's age at the sender in seconds, parallel to removals; or empty (all 0).
  std::vector<std::uint32_t> removal_ages_s;
  bool operator==(const Message&) const = default;
};

// The packed encoding of `m`. Updates are written with their app state only if has_app.
std::string Encode(const Message& m);

enum class DecodeResult : std::uint8_t {
  kOk,
  kMalformed,  // did not decode, or decoded to values out of range
  kVersion,    // decoded, but another protocol version (nothing else was read)
};

// Reads one packed message that must span all of `bytes`. `traversal_limit_words` bounds the
// work and memory an input can cause (each word is 8 bytes of unpacked message).
DecodeResult Decode(std::string_view bytes, std::size_t traversal_limit_words, Message* out);

// Traversal limits: a datagram cannot legitimately unpack to more than a few times its size;
// a stream carries at most the full state of a large cluster.
std::size_t DatagramTraversalWords(std::size_t max_datagram_bytes);
inline constexpr std::size_t kStreamTraversalWords = 8u << 20;

}  // namespace kv::membership::wire
