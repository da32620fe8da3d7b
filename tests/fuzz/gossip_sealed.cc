// Sealed gossip (membership/gossip_seal.h) under a fixed keyring: opening never trusts what it
// cannot authenticate, and the replay window takes a header once. Inputs that open are rare
// (they need the key); the seed corpus holds some, whose mutations exercise the rest.
#include "membership/gossip_seal.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kv::membership;
  static const Keyring ring([] {
    GossipKey k;
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return k;
  }());
  SealHeader h;
  std::string payload;
  const OpenResult r = Open(ring, "kv", Bytes(data, size), &h, &payload);
  if (r == OpenResult::kOk) {
    FUZZ_CHECK(payload.size() + kSealOverhead == size);
    ReplayWindow w;
    FUZZ_CHECK(w.Accept(h));
    FUZZ_CHECK(!w.Accept(h));
    SealHeader h2;
    std::string p2;
    FUZZ_CHECK(Open(ring, "kv", Seal(ring, "kv", h, payload), &h2, &p2) == OpenResult::kOk &&
               p2 == payload && h2.sender == h.sender && h2.seq == h.seq);
  }
  GossipKey key;
  std::string error;
  if (GossipKeyFromText(Bytes(data, size), &key, &error)) {
    GossipKey back;
    FUZZ_CHECK(GossipKeyFromText(GossipKeyToText(key), &back, &error) && back == key);
  }
  return 0;
}
