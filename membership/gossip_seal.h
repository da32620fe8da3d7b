// Gossip sealing: every gossip message (datagram or push-pull stream message) encrypted and
// authenticated with AES-256-GCM under a keyring, and a replay window that refuses a sealed
// message it has let through before. The gossip transport (asio_transport.h) seals what the
// membership core sends and opens what arrives before the core sees it; the core stays plain.
//
// A sealed message:
//     "kvG1" | nonce (12 random bytes) | AES-256-GCM(header | payload) | tag (16)
// with the magic and the cluster name as authenticated data, so a message of another cluster
// or another format never opens. The header (24 bytes, inside the encryption) names the
// sender's id, its generation and a sequence number the sender raises with each message.
//
// Keyring (memberlist's, and Serf's keyring commands): one primary key seals; every installed
// key is tried to open, so a live cluster changes keys without a pause: install the new key
// everywhere, use it everywhere, then remove the old one. The primary cannot be removed.
//
// Replay window (memberlist has none): per sender, the highest generation seen and, within it,
// the highest sequence number with a bitmap of the kReplayWindow before it, as IPsec does. A
// message of an older generation (a past life of the node), one further back than the window,
// or one already let through is refused. No clock is involved, so skewed clocks cannot stop
// gossip; a sender restarted with a higher generation starts its numbers again. Only a holder of
// a key can make a header, so only members can create senders' state; it is still bounded
// (kMaxReplaySenders, the least recently heard forgotten first).
//
// Pure apart from the nonces, which come from OpenSSL's RAND_bytes. Thread-compatible: the
// transport uses each object from its own thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kv::membership {

using GossipKey = std::array<std::uint8_t, 32>;

// A new random key (OpenSSL's RAND_bytes).
GossipKey NewGossipKey();
// The key as base64 text (44 characters), and back. False, with `*error` set, for anything but
// the base64 of exactly 32 bytes (surrounding white space is ignored).
std::string GossipKeyToText(const GossipKey& key);
bool GossipKeyFromText(std::string_view text, GossipKey* key, std::string* error);
// A key's fingerprint: the first 8 bytes of its SHA-256, as 16 hex digits. What `kvtool keyring
// list` shows, so that keys are told apart without their bytes leaving the nodes.
std::string KeyFingerprint(const GossipKey& key);

class Keyring {
 public:
  static constexpr std::size_t kMaxKeys = 16;

  explicit Keyring(const GossipKey& primary) : keys_{primary} {}

  // Adds a key that opens messages. False, with `*error` set, if it is installed already or
  // the ring is full.
  bool Install(const GossipKey& key, std::string* error);
  // Makes an installed key the primary (the one that seals). False, with `*error`, if it is not
  // installed.
  bool Use(const GossipKey& key, std::string* error);
  // Removes an installed key. False, with `*error`, for the primary or a key not installed.
  bool Remove(const GossipKey& key, std::string* error);

  const GossipKey& primary() const { return keys_.front(); }
  // Every installed key, the primary first.
  const std::vector<GossipKey>& keys() const { return keys_; }

 private:
  std::vector<GossipKey> keys_;  // never empty; keys_[0] is the primary
};

// What a sealed message says of its sender (inside the encryption).
struct SealHeader {
  std::uint64_t sender = 0;
  std::uint64_t generation = 0;
  std::uint64_t seq = 0;
};

inline constexpr std::size_t kSealOverhead = 4 + 12 + 24 + 16;  // magic, nonce, header, tag

// True if `bytes` starts as a sealed message does (the transitional mode tells sealed from
// plain messages this way; a plain message is a packed Cap'n Proto message).
bool LooksSealed(std::string_view bytes);

std::string Seal(const Keyring& ring, std::string_view cluster, const SealHeader& header,
                 std::string_view payload);

enum class OpenResult {
  kOk,
  kNotSealed,  // does not start as a sealed message
  kMalformed,  // too short to be one
  kNoKey,      // no installed key opens it: another key, another cluster, or altered bytes
};
OpenResult Open(const Keyring& ring, std::string_view cluster, std::string_view sealed,
                SealHeader* header, std::string* payload);

class ReplayWindow {
 public:
  static constexpr std::uint64_t kReplayWindow = 1024;
  static constexpr std::size_t kMaxReplaySenders = 65536;

  explicit ReplayWindow(std::size_t max_senders = kMaxReplaySenders) : max_senders_(max_senders) {}

  // True, and remembered, if the message named by `h` may be taken: not of an older generation
  // of its sender, not further back than the window, and not taken before.
  bool Accept(const SealHeader& h);

  std::size_t senders() const { return senders_.size(); }

 private:
  struct Sender {
    std::uint64_t generation = 0;
    std::uint64_t highest = 0;  // highest seq taken in this generation
    std::array<std::uint64_t, kReplayWindow / 64> seen{};  // bit i: highest - i was taken
    std::list<std::uint64_t>::iterator lru;
  };
  static bool Test(const Sender& s, std::uint64_t back);
  static void Set(Sender* s, std::uint64_t back);
  static void Shift(Sender* s, std::uint64_t by);

  std::size_t max_senders_;
  std::unordered_map<std::uint64_t, Sender> senders_;
  std::list<std::uint64_t> lru_;  // sender ids, most recently heard first
};

}  // namespace kv::membership
