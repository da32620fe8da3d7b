// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME/), valid inputs of each
// decoder made by the encoders: records with siblings, tombstones and contexts; repair batches;
// gossip datagrams and push-pull messages from real cores; sealed messages under the gossip
// target's key; saved peers, a checkpoint and a table. Not a test; run once after a format
// changes, and commit what it writes:
//   build/tests/fuzz_make_seeds tests/fuzz/corpus
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "membership/gossip_seal.h"
#include "membership/membership.h"
#include "membership/movement_driver.h"
#include "membership/saved_peers.h"
#include "repair/iblt.h"
#include "rpc/repair_batch.h"
#include "storage/codec.h"

namespace {

using namespace kv;

void Write(const std::filesystem::path& dir, const std::string& name, int i,
           const std::string& bytes) {
  std::filesystem::create_directories(dir / name);
  std::ofstream(dir / name / ("seed" + std::to_string(i)), std::ios::binary) << bytes;
}

std::vector<storage::Record> Records() {
  std::vector<storage::Record> out;
  storage::Record r;
  r.Write(1, {}, false, "a value");
  out.push_back(r);
  r.Write(2, {}, false, "a sibling");  // concurrent: two siblings
  out.push_back(r);
  r.Write(1, r.context(), true, "", 1700000000);  // a tombstone over both
  out.push_back(r);
  storage::Record big;
  for (int i = 0; i < 20; ++i) big.Write(static_cast<storage::NodeId>(i + 1), {}, false, std::string(i * 10, 'x'));
  out.push_back(big);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir(argv[1]);
  const std::vector<storage::Record> records = Records();
  int i = 0;
  for (const auto& r : records) {
    Write(dir, "record", i++, storage::EncodeRecord(r));
    Write(dir, "record", i++, storage::EncodeHint(1700000000, r));
    Write(dir, "record", i++, storage::EncodeContext(r.context()));
  }

  rpc::KeyRecords batch;
  std::vector<std::string> keys;
  std::vector<storage::CausalContext> contexts;
  std::vector<repair::OfferAnswer> answers;
  for (std::size_t k = 0; k < records.size(); ++k) {
    batch.emplace_back("key" + std::to_string(k), records[k]);
    keys.push_back("key" + std::to_string(k));
    contexts.push_back(records[k].context());
    repair::OfferAnswer a;
    a.need = k % 2 == 0;
    a.entry = k + 1;
    if (k % 3 != 0) a.record = records[k];
    answers.push_back(a);
  }
  Write(dir, "repair_batch", 0, std::string(1, '\0') + rpc::EncodeRecords(batch));
  Write(dir, "repair_batch", 1, std::string(1, '\1') + rpc::EncodeOffers(keys, contexts));
  Write(dir, "repair_batch", 2, std::string(1, '\2') + rpc::EncodeAnswers(answers));
  Write(dir, "repair_batch", 3, std::string(1, '\3') + rpc::EncodeNodes({1, 5, 9, 1000, 1u << 30}));

  // Gossip: what two real cores send each other while one joins through the other, and later.
  using membership::Endpoint;
  using membership::Membership;
  membership::AppState app;
  app.state = membership::NodeState::kNormal;
  app.tokens = {10, 20, 30};
  app.rpc_address = "127.0.0.1:7701";
  membership::Time now{1'000'000};
  const Endpoint e1{0x7f000001, 7946}, e2{0x7f000002, 7946};
  Membership a(membership::Config{}, 1, e1, 1, app, 1, now), b(membership::Config{}, 2, e2, 1, app, 2, now);
  b.Join({e1}, now);
  std::vector<std::pair<bool, std::string>> seen;
  for (int round = 0; round < 30; ++round) {
    struct Link {
      Membership* from;
      Membership* to;
      Endpoint from_endpoint;
    };
    for (const Link& l : {Link{&a, &b, e1}, Link{&b, &a, e2}}) {
      for (auto& o : l.from->TakeOutgoing()) {
        if (seen.size() < 24) seen.emplace_back(o.stream, o.bytes);
        l.to->Receive(l.from_endpoint, o.bytes, o.stream, now);
      }
    }
    now += std::chrono::milliseconds(300);
    a.Tick(now);
    b.Tick(now);
  }
  i = 0;
  for (const auto& [stream, bytes] : seen) {
    Write(dir, "gossip", i++, std::string(1, stream ? '\1' : '\0') + bytes);
  }

  membership::GossipKey key;
  for (std::size_t k = 0; k < key.size(); ++k) key[k] = static_cast<std::uint8_t>(k * 7 + 1);
  const membership::Keyring ring(key);
  i = 0;
  for (const auto& [stream, bytes] : seen) {
    if (i >= 6) break;
    Write(dir, "gossip_sealed", i, membership::Seal(ring, "kv", {2, 1, static_cast<std::uint64_t>(i) + 1}, bytes));
    ++i;
  }
  Write(dir, "gossip_sealed", i++, membership::GossipKeyToText(key) + "\n");

  const membership::ClusterView view = a.View(now);
  Write(dir, "peers_and_checkpoints", 0, std::string(1, '\0') + membership::EncodeSavedPeers(view, "kv"));
  membership::MovementCheckpoint c;
  c.kind = membership::MovementKind::kDecommission;
  c.subject = 7;
  c.done = {{0, 100, 3}, {100, 0, 4}};
  Write(dir, "peers_and_checkpoints", 1, std::string(1, '\1') + membership::EncodeCheckpoint(c));
  repair::Iblt t(64, 5);
  for (std::uint32_t k = 1; k < 20; ++k) t.Add(k, k * 1000 + 1);
  Write(dir, "peers_and_checkpoints", 2, std::string(1, '\2') + t.Encode());
  std::printf("seeds written under %s\n", dir.c_str());
  return 0;
}
