// Saved peers: what a node keeps of its peers across restarts, read back as hostile input.
#include "membership/saved_peers.h"

#include <gtest/gtest.h>

#include "membership/wire.h"

namespace kv::membership {
namespace {

MemberView Member(NodeId id, Liveness l, std::uint64_t generation = 3) {
  MemberView m;
  m.id = id;
  m.gossip = Endpoint{0x7f000001u + static_cast<std::uint32_t>(id), 7946};
  m.generation = generation;
  m.incarnation = 5;
  m.liveness = l;
  m.app.tokens = {id * 100, id * 100 + 1};
  m.app.state = NodeState::kNormal;
  m.app.rack = "r1";
  m.app.rpc_address = "127.0.0." + std::to_string(id) + ":7701";
  m.app_version = 9;
  return m;
}

ClusterView View() {
  ClusterView v;
  v.self = 1;
  v.members = {Member(1, Liveness::kUp), Member(2, Liveness::kUp), Member(3, Liveness::kDown),
               Member(4, Liveness::kLeft), Member(5, Liveness::kSuspect)};
  return v;
}

TEST(SavedPeers, KeepsEveryPeerButSelfAndLeftOnesAsUp) {
  std::vector<MemberView> out;
  std::string error;
  ASSERT_TRUE(DecodeSavedPeers(EncodeSavedPeers(View(), "kv"), "kv", &out, &error)) << error;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].id, 2u);
  EXPECT_EQ(out[1].id, 3u);
  EXPECT_EQ(out[2].id, 5u);
  for (const auto& m : out) {
    EXPECT_EQ(m.liveness, Liveness::kUp) << "probing finds out who is really up";
    EXPECT_EQ(m.incarnation, 5u);
    EXPECT_EQ(m.app, Member(m.id, Liveness::kUp).app);
    EXPECT_EQ(m.gossip, Member(m.id, Liveness::kUp).gossip);
    EXPECT_EQ(m.generation, 3u);
  }
}

TEST(SavedPeers, RejectsOtherClustersAndMalformedBytes) {
  std::vector<MemberView> out;
  std::string error;
  EXPECT_FALSE(DecodeSavedPeers(EncodeSavedPeers(View(), "kv"), "other", &out, &error));
  EXPECT_NE(error.find("cluster 'kv'"), std::string::npos);
  EXPECT_FALSE(DecodeSavedPeers("not a message at all", "kv", &out, &error));
  std::string bytes = EncodeSavedPeers(View(), "kv");
  EXPECT_FALSE(DecodeSavedPeers(bytes.substr(0, bytes.size() / 2), "kv", &out, &error));
  // A gossip message of another kind is not a saved view.
  wire::Message ping;
  ping.cluster = "kv";
  ping.kind = wire::Kind::kPing;
  EXPECT_FALSE(DecodeSavedPeers(wire::Encode(ping), "kv", &out, &error));
  EXPECT_EQ(error, "is not a saved view");
}

TEST(SavedPeers, SignatureChangesWithWhoThePeersAreNotWithLiveness) {
  ClusterView v = View();
  const std::uint64_t base = SavedPeersSignature(v);
  ClusterView suspect = v;
  suspect.members[1].liveness = Liveness::kSuspect;
  EXPECT_EQ(SavedPeersSignature(suspect), base);
  ClusterView restarted = v;
  restarted.members[1].generation = 4;
  EXPECT_NE(SavedPeersSignature(restarted), base);
  ClusterView joined = v;
  joined.members.push_back(Member(6, Liveness::kUp));
  EXPECT_NE(SavedPeersSignature(joined), base);
  ClusterView left = v;
  left.members[1].liveness = Liveness::kLeft;
  EXPECT_NE(SavedPeersSignature(left), base);
  ClusterView moved = v;
  moved.members[1].gossip.port = 8000;
  EXPECT_NE(SavedPeersSignature(moved), base);
  // A member's load changes its application state's version all the time while data moves to
  // it: that alone is not worth an fsync on every node.
  ClusterView loaded = v;
  loaded.members[1].app.load_bytes += 5 << 20;
  loaded.members[1].app_version += 7;
  EXPECT_EQ(SavedPeersSignature(loaded), base);
  // What a restart needs of the ring is.
  ClusterView normal = v;
  normal.members[1].app.state = NodeState::kLeaving;
  EXPECT_NE(SavedPeersSignature(normal), base);
  ClusterView retokened = v;
  retokened.members[1].app.tokens.push_back(12345);
  EXPECT_NE(SavedPeersSignature(retokened), base);
  ClusterView reading_new = v;
  reading_new.members[1].app.reads_new = true;
  EXPECT_NE(SavedPeersSignature(reading_new), base);
}

}  // namespace
}  // namespace kv::membership
