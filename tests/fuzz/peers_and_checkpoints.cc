// What a node reads back from its own metadata at start, which a damaged disk can corrupt:
// the saved peers (membership/saved_peers.h), a movement's checkpoint
// (membership/movement_driver.h) and a repair table (repair/iblt.h). The first byte picks one.
#include "membership/movement_driver.h"
#include "membership/saved_peers.h"
#include "repair/iblt.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kv;
  if (size == 0) return 0;
  const std::string_view in = Bytes(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      std::vector<membership::MemberView> members;
      std::string error;
      (void)membership::DecodeSavedPeers(in, "kv", &members, &error);
      break;
    }
    case 1: {
      membership::MovementCheckpoint c;
      if (membership::DecodeCheckpoint(in, &c)) {
        membership::MovementCheckpoint back;
        FUZZ_CHECK(membership::DecodeCheckpoint(membership::EncodeCheckpoint(c), &back) &&
                   back == c);
      }
      break;
    }
    case 2: {
      repair::Iblt t(64, 5);
      if (t.Decode(in)) FUZZ_CHECK(t.Encode() == in);
      break;
    }
  }
  return 0;
}
