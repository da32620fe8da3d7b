// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME/), valid inputs of each
// decoder made by the encoders: records with siblings, tombstones and contexts; repair batches;
// gossip datagrams and push-pull messages from real cores; sealed messages under the gossip
// target's key; saved peers, a checkpoint and a table. Not a test; run once after a format
// changes, and commit what it writes:
//   build/tests/fuzz_make_seeds tests/fuzz/corpus
#include <capnp/rpc.capnp.h>
#include <capnp/serialize.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "membership/gossip_seal.h"
#include "membership/membership.h"
#include "membership/movement_driver.h"
#include "membership/saved_peers.h"
#include "repair/iblt.h"
#include "rpc/client.capnp.h"
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

// One Cap'n Proto RPC message as it goes on the wire (unpacked, framed).
std::string Framed(capnp::MessageBuilder& m) {
  auto words = capnp::messageToFlatArray(m);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::string Bootstrap(std::uint32_t question) {
  capnp::MallocMessageBuilder b;
  b.initRoot<capnp::rpc::Message>().initBootstrap().setQuestionId(question);
  return Framed(b);
}

// A call on the answer to `on` (its capability, or the pointer field `field` of its results
// when field >= 0), with parameters filled by `fill`.
template <typename Params, typename Fill>
std::string Call(std::uint32_t question, std::uint32_t on, int field, std::uint64_t interface,
                 std::uint16_t method, Fill fill) {
  capnp::MallocMessageBuilder b;
  auto call = b.initRoot<capnp::rpc::Message>().initCall();
  call.setQuestionId(question);
  auto target = call.initTarget().initPromisedAnswer();
  target.setQuestionId(on);
  if (field >= 0) {
    target.initTransform(1)[0].setGetPointerField(static_cast<std::uint16_t>(field));
  }
  call.setInterfaceId(interface);
  call.setMethodId(method);
  fill(call.initParams().getContent().initAs<Params>());
  return Framed(b);
}

// Sessions a client or a peer opens: bootstrap, then calls on the client interface, and on the
// internode interface it hands out.
std::vector<std::string> RpcSessions(const std::vector<storage::Record>& records) {
  using rpc::wire::KvClient;
  using rpc::wire::KvReplica;
  const std::uint64_t client = capnp::typeId<KvClient>();
  const std::uint64_t replica = capnp::typeId<KvReplica>();
  auto data = [](const std::string& s) {
    return capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(s.data()), s.size());
  };
  std::vector<std::string> out;
  std::string s = Bootstrap(0);
  s += Call<KvClient::GetParams>(1, 0, -1, client, 0, [&](auto p) { p.setKey(data("k")); });
  out.push_back(s);
  const std::string context = storage::EncodeContext(records.back().context());
  s = Bootstrap(0);
  s += Call<KvClient::PutParams>(1, 0, -1, client, 1, [&](auto p) {
    p.setKey(data("key"));
    p.setValue(data("value"));
    p.setContext(data(context));
  });
  s += Call<KvClient::DeleteParams>(2, 0, -1, client, 2, [&](auto p) {
    p.setKey(data("key"));
    p.setContext(data(context));
  });
  s += Call<KvClient::StatusParams>(3, 0, -1, client, 3, [](auto) {});
  out.push_back(s);
  s = Bootstrap(0);
  s += Call<KvClient::ReplicaParams>(1, 0, -1, client, 7, [](auto) {});
  const std::string record = storage::EncodeRecord(records.front());
  s += Call<KvReplica::WriteParams>(2, 1, 0, replica, 1, [&](auto p) {
    p.setKey(data("key"));
    p.setRecord(data(record));
  });
  s += Call<KvReplica::CoordinateParams>(3, 1, 0, replica, 2, [&](auto p) {
    p.setKey(data("key"));
    p.setValue(data("v"));
    p.setContext(data(context));
  });
  s += Call<KvReplica::KeyringParams>(4, 1, 0, replica, 7, [&](auto p) {
    p.setOp(rpc::wire::KeyringOp::INSTALL);
    p.setKey(data(std::string(32, 'k')));
  });
  out.push_back(s);
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
  {
    int n = 0;
    for (const auto& session : RpcSessions(Records())) Write(dir, "rpc_messages", n++, session);
  }
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
