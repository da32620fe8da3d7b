#include "membership/wire.h"

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <algorithm>

#include "membership/gossip.capnp.h"

namespace kv::membership::wire {
namespace {

// Deep enough for Message -> list -> Update -> AppState -> tokens, with room to spare; a
// hostile message cannot make the reader recurse further.
constexpr int kNestingLimit = 8;

constexpr std::uint16_t kMaxLiveness = static_cast<std::uint16_t>(schema::Liveness::LEFT);
constexpr std::uint16_t kMaxNodeState = static_cast<std::uint16_t>(schema::NodeState::LEFT);

schema::Liveness ToWire(Liveness l) {
  switch (l) {
    case Liveness::kUp:
      return schema::Liveness::UP;
    case Liveness::kSuspect:
      return schema::Liveness::SUSPECT;
    case Liveness::kDown:
      return schema::Liveness::DOWN;
    case Liveness::kLeft:
    case Liveness::kRemoved:  // never put on the wire as a liveness (see gossip.capnp)
      return schema::Liveness::LEFT;
  }
  return schema::Liveness::UP;
}

Liveness FromWire(schema::Liveness l) {
  switch (l) {
    case schema::Liveness::UP:
      return Liveness::kUp;
    case schema::Liveness::SUSPECT:
      return Liveness::kSuspect;
    case schema::Liveness::DOWN:
      return Liveness::kDown;
    case schema::Liveness::LEFT:
      return Liveness::kLeft;
  }
  return Liveness::kUp;  // unreachable: callers check the range first
}

schema::NodeState ToWire(NodeState s) {
  switch (s) {
    case NodeState::kJoining:
      return schema::NodeState::JOINING;
    case NodeState::kNormal:
      return schema::NodeState::NORMAL;
    case NodeState::kLeaving:
      return schema::NodeState::LEAVING;
    case NodeState::kLeft:
      return schema::NodeState::LEFT;
  }
  return schema::NodeState::JOINING;
}

NodeState FromWire(schema::NodeState s) {
  switch (s) {
    case schema::NodeState::JOINING:
      return NodeState::kJoining;
    case schema::NodeState::NORMAL:
      return NodeState::kNormal;
    case schema::NodeState::LEAVING:
      return NodeState::kLeaving;
    case schema::NodeState::LEFT:
      return NodeState::kLeft;
  }
  return NodeState::kJoining;
}

void Fill(const Update& u, schema::Update::Builder b) {
  b.setId(u.id);
  b.setIp(u.endpoint.ip);
  b.setPort(u.endpoint.port);
  b.setGeneration(u.generation);
  b.setIncarnation(u.incarnation);
  b.setLiveness(ToWire(u.liveness));
  b.setFrom(u.from);
  b.setAppVersion(u.app_version);
  if (!u.has_app) return;
  auto app = b.initApp();
  auto tokens = app.initTokens(static_cast<unsigned>(u.app.tokens.size()));
  for (unsigned i = 0; i < u.app.tokens.size(); ++i) tokens.set(i, u.app.tokens[i]);
  app.setState(ToWire(u.app.state));
  app.setRack(u.app.rack);
  app.setRpcAddress(u.app.rpc_address);
  app.setLoadBytes(u.app.load_bytes);
  app.setReplaces(u.app.replaces);
  app.setRemoving(u.app.removing);
  app.setReadsNew(u.app.reads_new);
  app.setDotsLife(u.app.dots_life);
}

void Fill(const Digest& d, schema::Digest::Builder b) {
  b.setId(d.id);
  b.setGeneration(d.generation);
  b.setIncarnation(d.incarnation);
  b.setLiveness(ToWire(d.liveness));
  b.setAppVersion(d.app_version);
}

template <typename T, typename ListBuilder>
void FillList(const std::vector<T>& from, ListBuilder list) {
  for (unsigned i = 0; i < from.size(); ++i) Fill(from[i], list[i]);
}

bool Read(schema::Update::Reader r, Update* u) {
  u->id = r.getId();
  if (u->id == 0) return false;  // no member has id 0 (see ReadList)
  u->endpoint = Endpoint{r.getIp(), r.getPort()};
  u->generation = r.getGeneration();
  u->incarnation = r.getIncarnation();
  if (static_cast<std::uint16_t>(r.getLiveness()) > kMaxLiveness) return false;
  u->liveness = FromWire(r.getLiveness());
  u->from = r.getFrom();
  u->app_version = r.getAppVersion();
  u->has_app = r.hasApp();
  u->app = AppState{};
  if (!u->has_app) return true;
  auto app = r.getApp();
  auto tokens = app.getTokens();
  u->app.tokens.reserve(tokens.size());
  for (auto t : tokens) {
    if (!u->app.tokens.empty() && t < u->app.tokens.back()) return false;  // must be sorted
    u->app.tokens.push_back(t);
  }
  if (static_cast<std::uint16_t>(app.getState()) > kMaxNodeState) return false;
  u->app.state = FromWire(app.getState());
  u->app.rack = app.getRack();
  u->app.rpc_address = app.getRpcAddress();
  u->app.load_bytes = app.getLoadBytes();
  u->app.replaces = app.getReplaces();
  u->app.removing = app.getRemoving();
  u->app.reads_new = app.getReadsNew();
  u->app.dots_life = app.getDotsLife();
  return true;
}

bool Read(schema::Digest::Reader r, Digest* d) {
  d->id = r.getId();
  if (d->id == 0) return false;
  d->generation = r.getGeneration();
  d->incarnation = r.getIncarnation();
  if (static_cast<std::uint16_t>(r.getLiveness()) > kMaxLiveness) return false;
  d->liveness = FromWire(r.getLiveness());
  d->app_version = r.getAppVersion();
  return true;
}

// Element by element, never sized up front from the count a message claims: a list of empty
// structs costs Cap'n Proto's traversal limit next to nothing per element, so 150 bytes could
// claim a million members and have the decoder build them all (found by fuzzing: seconds of
// work and hundreds of MB for one datagram). An element that is not a member's (id 0, as an
// empty struct reads) fails the message at once.
template <typename T, typename ListReader>
bool ReadList(ListReader list, std::vector<T>* out) {
  out->clear();
  out->reserve(std::min<std::size_t>(list.size(), 1024));
  for (unsigned i = 0; i < list.size(); ++i) {
    T item;
    if (!Read(list[i], &item)) return false;
    out->push_back(std::move(item));
  }
  return true;
}

// Everything after the version check. Returns false on values out of range; the Cap'n Proto
// reader throws on structural damage, which the caller catches.
bool ReadBody(schema::Message::Reader r, Message* m) {
  m->cluster = r.getCluster();
  m->sender = r.getSenderId();
  m->generation = r.getSenderGeneration();
  m->incarnation = r.getSenderIncarnation();
  m->endpoint = Endpoint{r.getSenderIp(), r.getSenderPort()};
  m->app_version = r.getSenderAppVersion();
  auto body = r.getBody();
  switch (body.which()) {
    case schema::Message::Body::PING: {
      auto p = body.getPing();
      m->kind = Kind::kPing;
      m->seq_no = p.getSeqNo();
      m->target = p.getTarget();
      m->any_target = p.getAnyTarget();
      break;
    }
    case schema::Message::Body::ACK:
      m->kind = Kind::kAck;
      m->seq_no = body.getAck().getSeqNo();
      break;
    case schema::Message::Body::NACK:
      m->kind = Kind::kNack;
      m->seq_no = body.getNack().getSeqNo();
      break;
    case schema::Message::Body::PING_REQ: {
      auto p = body.getPingReq();
      m->kind = Kind::kPingReq;
      m->seq_no = p.getSeqNo();
      m->target = p.getTarget();
      m->target_endpoint = Endpoint{p.getTargetIp(), p.getTargetPort()};
      break;
    }
    case schema::Message::Body::GOSSIP:
      m->kind = Kind::kGossip;
      break;
    case schema::Message::Body::PUSH_PULL_SYN:
      m->kind = Kind::kSyn;
      if (!ReadList(body.getPushPullSyn().getDigests(), &m->digests)) return false;
      break;
    case schema::Message::Body::PUSH_PULL_ACK: {
      auto a = body.getPushPullAck();
      m->kind = Kind::kSynAck;
      if (!ReadList(a.getRequests(), &m->digests)) return false;
      if (!ReadList(a.getStates(), &m->states)) return false;
      break;
    }
    case schema::Message::Body::PUSH_PULL_ACK2:
      m->kind = Kind::kAck2;
      if (!ReadList(body.getPushPullAck2().getStates(), &m->states)) return false;
      break;
    case schema::Message::Body::REMOVED_NOTICE:
      m->kind = Kind::kRemovedNotice;
      m->target = body.getRemovedNotice().getId();
      break;
    default:
      return false;  // a union member this version does not know
  }
  if (!ReadList(r.getUpdates(), &m->updates)) return false;
  auto removals = r.getRemovals();
  m->removals.clear();
  m->removals.reserve(removals.size());
  for (auto id : removals) m->removals.push_back(id);
  auto ages = r.getRemovalAgesS();
  if (ages.size() != 0 && ages.size() != removals.size()) return false;
  m->removal_ages_s.clear();
  m->removal_ages_s.reserve(ages.size());
  for (auto age : ages) m->removal_ages_s.push_back(age);
  return true;
}

}  // namespace

const char* Name(Kind k) {
  switch (k) {
    case Kind::kPing:
      return "ping";
    case Kind::kAck:
      return "ack";
    case Kind::kNack:
      return "nack";
    case Kind::kPingReq:
      return "ping-req";
    case Kind::kGossip:
      return "gossip";
    case Kind::kSyn:
      return "push-pull syn";
    case Kind::kSynAck:
      return "push-pull ack";
    case Kind::kAck2:
      return "push-pull ack2";
    case Kind::kRemovedNotice:
      return "removed notice";
  }
  return "?";
}

std::string Encode(const Message& m) {
  capnp::MallocMessageBuilder builder;
  auto r = builder.initRoot<schema::Message>();
  r.setVersion(m.version);
  r.setCluster(m.cluster);
  r.setSenderId(m.sender);
  r.setSenderGeneration(m.generation);
  r.setSenderIncarnation(m.incarnation);
  r.setSenderIp(m.endpoint.ip);
  r.setSenderPort(m.endpoint.port);
  r.setSenderAppVersion(m.app_version);
  auto body = r.initBody();
  switch (m.kind) {
    case Kind::kPing: {
      auto p = body.initPing();
      p.setSeqNo(m.seq_no);
      p.setTarget(m.target);
      p.setAnyTarget(m.any_target);
      break;
    }
    case Kind::kAck:
      body.initAck().setSeqNo(m.seq_no);
      break;
    case Kind::kNack:
      body.initNack().setSeqNo(m.seq_no);
      break;
    case Kind::kPingReq: {
      auto p = body.initPingReq();
      p.setSeqNo(m.seq_no);
      p.setTarget(m.target);
      p.setTargetIp(m.target_endpoint.ip);
      p.setTargetPort(m.target_endpoint.port);
      break;
    }
    case Kind::kGossip:
      body.setGossip();
      break;
    case Kind::kSyn: {
      auto s = body.initPushPullSyn();
      FillList(m.digests, s.initDigests(static_cast<unsigned>(m.digests.size())));
      break;
    }
    case Kind::kSynAck: {
      auto a = body.initPushPullAck();
      FillList(m.digests, a.initRequests(static_cast<unsigned>(m.digests.size())));
      FillList(m.states, a.initStates(static_cast<unsigned>(m.states.size())));
      break;
    }
    case Kind::kAck2: {
      auto a = body.initPushPullAck2();
      FillList(m.states, a.initStates(static_cast<unsigned>(m.states.size())));
      break;
    }
    case Kind::kRemovedNotice:
      body.initRemovedNotice().setId(m.target);
      break;
  }
  if (!m.updates.empty()) {
    FillList(m.updates, r.initUpdates(static_cast<unsigned>(m.updates.size())));
  }
  if (!m.removals.empty()) {
    auto removals = r.initRemovals(static_cast<unsigned>(m.removals.size()));
    for (unsigned i = 0; i < m.removals.size(); ++i) removals.set(i, m.removals[i]);
  }
  if (!m.removal_ages_s.empty()) {
    auto ages = r.initRemovalAgesS(static_cast<unsigned>(m.removal_ages_s.size()));
    for (unsigned i = 0; i < m.removal_ages_s.size(); ++i) ages.set(i, m.removal_ages_s[i]);
  }
  kj::VectorOutputStream out(512);
  capnp::writePackedMessage(out, builder);
  auto bytes = out.getArray();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

DecodeResult Decode(std::string_view bytes, std::size_t traversal_limit_words, Message* out) {
  DecodeResult result = DecodeResult::kMalformed;
  Message m;
  auto exception = kj::runCatchingExceptions([&]() {
    kj::ArrayInputStream in(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size()));
    capnp::ReaderOptions options;
    options.traversalLimitInWords = traversal_limit_words;
    options.nestingLimit = kNestingLimit;
    {
      capnp::PackedMessageReader reader(in, options);
      auto root = reader.getRoot<schema::Message>();
      m.version = root.getVersion();
      if (m.version != kProtocolVersion) {
        result = DecodeResult::kVersion;
        return;
      }
      if (!ReadBody(root, &m)) return;
      // The reader reads segments after the first lazily, and skips to the end of the message
      // when destroyed (throwing if it is truncated): only then is the input fully consumed.
    }
    // One message per datagram or stream message: trailing bytes mean it was not ours.
    if (in.tryGetReadBuffer().size() == 0) result = DecodeResult::kOk;
  });
  if (exception != nullptr) return DecodeResult::kMalformed;
  if (result == DecodeResult::kOk) *out = std::move(m);
  return result;
}

std::size_t DatagramTraversalWords(std::size_t max_datagram_bytes) {
  // Packing squeezes mostly-zero words to two or three bytes, so a well-formed datagram unpacks
  // to a few times its size. Allow eight times (one word per packed byte), with a floor for very
  // small limits; a run-length bomb of zero words still stops here.
  return std::max<std::size_t>(max_datagram_bytes, 4096);
}

}  // namespace kv::membership::wire
