// Repair batches (rpc/repair_batch.h): records, offers, answers and node lists as one replica
// sends them to another during anti-entropy and ring movements. The first byte picks the
// decoder; the bounds are the ones the node uses.
#include "repair/exchange.h"
#include "rpc/repair_batch.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kv;
  if (size == 0) return 0;
  const std::string_view in = Bytes(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      if (auto r = rpc::DecodeRecords(in, repair::kMaxKeysPerRequest); r.ok()) {
        auto back = rpc::DecodeRecords(rpc::EncodeRecords(r.value()), repair::kMaxKeysPerRequest);
        FUZZ_CHECK(back.ok() && back.value() == r.value());
      }
      break;
    case 1: {
      std::vector<std::string> keys;
      std::vector<storage::CausalContext> contexts;
      if (rpc::DecodeOffers(in, repair::kMaxKeysPerRequest, &keys, &contexts).ok()) {
        FUZZ_CHECK(keys.size() == contexts.size());
        std::vector<std::string> k2;
        std::vector<storage::CausalContext> c2;
        FUZZ_CHECK(rpc::DecodeOffers(rpc::EncodeOffers(keys, contexts),
                                     repair::kMaxKeysPerRequest, &k2, &c2)
                       .ok() &&
                   k2 == keys && c2 == contexts);
      }
      break;
    }
    case 2:
      if (auto a = rpc::DecodeAnswers(in, repair::kMaxKeysPerRequest); a.ok()) {
        auto back = rpc::DecodeAnswers(rpc::EncodeAnswers(a.value()), repair::kMaxKeysPerRequest);
        FUZZ_CHECK(back.ok() && back->size() == a->size());
        for (std::size_t i = 0; i < a->size(); ++i) {
          FUZZ_CHECK((*back)[i].need == (*a)[i].need && (*back)[i].entry == (*a)[i].entry &&
                     (*back)[i].record == (*a)[i].record);
        }
      }
      break;
    case 3:
      if (auto n = rpc::DecodeNodes(in, repair::kMaxSketchNodes); n.ok()) {
        auto back = rpc::DecodeNodes(rpc::EncodeNodes(n.value()), repair::kMaxSketchNodes);
        FUZZ_CHECK(back.ok() && back.value() == n.value());
      }
      break;
  }
  return 0;
}
