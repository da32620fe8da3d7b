// Gossip messages (membership/wire.h) as a node's membership core receives them from the
// network: the first byte picks datagram or push-pull stream, the rest is the message. The
// core must drop what it cannot use and stay consistent (its own checks abort otherwise); what
// decodes must encode and decode to the same message.
#include "membership/membership.h"
#include "membership/wire.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kv::membership;
  if (size == 0) return 0;
  const bool stream = data[0] & 1;
  const std::string_view in = Bytes(data + 1, size - 1);
  wire::Message m;
  if (wire::Decode(in, stream ? wire::kStreamTraversalWords : wire::DatagramTraversalWords(1400),
                   &m) == wire::DecodeResult::kOk) {
    wire::Message again;
    FUZZ_CHECK(wire::Decode(wire::Encode(m), wire::kStreamTraversalWords, &again) ==
               wire::DecodeResult::kOk);
    FUZZ_CHECK(wire::Encode(again) == wire::Encode(m));
  }
  static const Endpoint self{0x7f000001, 7946}, peer{0x7f000002, 7946};
  AppState app;
  app.state = NodeState::kNormal;
  app.tokens = {1, 2, 3};
  Time now{1'000'000};
  Membership core(Config{}, 1, self, 1, app, 7, now);
  core.Receive(peer, in, stream, now);
  now += std::chrono::seconds(1);
  core.Tick(now);
  (void)core.View(now);
  (void)core.TakeOutgoing();
  return 0;
}
