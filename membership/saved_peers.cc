#include "membership/saved_peers.h"

#include <functional>
#include <string>

#include "membership/wire.h"

namespace kv::membership {
namespace {

bool Kept(const ClusterView& view, const MemberView& m) {
  return m.id != view.self && m.liveness != Liveness::kLeft && m.liveness != Liveness::kRemoved;
}

std::uint64_t Mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

}  // namespace

std::string EncodeSavedPeers(const ClusterView& view, const std::string& cluster_name) {
  wire::Message m;
  m.cluster = cluster_name;
  m.sender = view.self;
  m.kind = wire::Kind::kAck2;
  for (const MemberView& v : view.members) {
    if (!Kept(view, v)) continue;
    wire::Update u;
    u.id = v.id;
    u.endpoint = v.gossip;
    u.generation = v.generation;
    u.incarnation = v.incarnation;
    u.liveness = Liveness::kUp;
    u.app_version = v.app_version;
    u.has_app = true;
    u.app = v.app;
    m.states.push_back(std::move(u));
  }
  return wire::Encode(m);
}

std::uint64_t SavedPeersSignature(const ClusterView& view) {
  std::uint64_t h = view.self;
  for (const MemberView& v : view.members) {
    if (!Kept(view, v)) continue;
    h = Mix(h, v.id);
    h = Mix(h, v.generation);
    h = Mix(h, (static_cast<std::uint64_t>(v.gossip.ip) << 16) | v.gossip.port);
    // The application state a restart needs, not its version: a member's load changes its
    // version several times a second while data moves to it, and each save is an fsync that
    // every write on this node waits behind.
    const AppState& a = v.app;
    h = Mix(h, static_cast<std::uint64_t>(a.state));
    h = Mix(h, a.tokens.size());
    for (std::uint64_t t : a.tokens) h = Mix(h, t);
    h = Mix(h, std::hash<std::string>{}(a.rack));
    h = Mix(h, std::hash<std::string>{}(a.rpc_address));
    h = Mix(h, a.replaces);
    h = Mix(h, a.removing);
    h = Mix(h, a.reads_new ? 1 : 0);
    h = Mix(h, a.dots_life);
  }
  return h;
}

bool DecodeSavedPeers(std::string_view bytes, const std::string& cluster_name,
                      std::vector<MemberView>* out, std::string* error) {
  if (bytes.size() > wire::kMaxStreamBytes) {
    *error = "is larger than a full-state message may be";
    return false;
  }
  wire::Message m;
  const auto r = wire::Decode(bytes, wire::kStreamTraversalWords, &m);
  if (r != wire::DecodeResult::kOk) {
    *error = r == wire::DecodeResult::kVersion ? "saved by another protocol version"
                                               : "does not decode";
    return false;
  }
  if (m.kind != wire::Kind::kAck2) {
    *error = "is not a saved view";
    return false;
  }
  if (m.cluster != cluster_name) {
    *error = "belongs to cluster '" + m.cluster + "', not '" + cluster_name + "'";
    return false;
  }
  out->clear();
  for (const wire::Update& u : m.states) {
    if (!u.has_app || u.id == m.sender) continue;
    MemberView v;
    v.id = u.id;
    v.gossip = u.endpoint;
    v.generation = u.generation;
    v.incarnation = u.incarnation;
    v.liveness = Liveness::kUp;
    v.app = u.app;
    v.app_version = u.app_version;
    out->push_back(std::move(v));
  }
  return true;
}

}  // namespace kv::membership
