#include "storage/local_store.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <shared_mutex>
#include <unordered_map>

#include "ring/token.h"
#include "storage/codec.h"

namespace kv::storage {

Status CheckKey(std::string_view key, const Limits& limits) {
  if (key.empty()) return Status::InvalidArgument("key is empty");
  if (key.size() > limits.max_key_bytes) {
    return Status::InvalidArgument("key is " + std::to_string(key.size()) +
                                   " bytes, the limit is " + std::to_string(limits.max_key_bytes));
  }
  return Status::Ok();
}

Status CheckValue(std::string_view value, const Limits& limits) {
  if (value.size() > limits.max_value_bytes) {
    return Status::InvalidArgument("value is " + std::to_string(value.size()) +
                                   " bytes, the limit is " +
                                   std::to_string(limits.max_value_bytes));
  }
  return Status::Ok();
}

Result<NodeId> LoadOrCreateNodeId(Engine& engine) {
  std::string stored;
  Status s = engine.GetMeta("node_id", &stored);
  if (s.ok()) {
    if (stored.size() != 8) return Status::Corruption("node id in metadata is not 8 bytes");
    NodeId id = 0;
    for (char c : stored) id = (id << 8) | static_cast<std::uint8_t>(c);
    if (id == 0) return Status::Corruption("node id in metadata is zero");
    return id;
  }
  if (!s.IsNotFound()) return s;
  std::random_device rd;
  NodeId id = 0;
  while (id == 0) id = (NodeId{rd()} << 32) | rd();
  std::string bytes;
  AppendTokenPrefix(id, &bytes);  // big-endian 8 bytes
  s = engine.PutMeta("node_id", bytes);
  if (!s.ok()) return s;
  return id;
}

LocalStore::LocalStore(Engine* engine, NodeId self, Limits limits)
    : engine_(engine), self_(self), limits_(limits), clock_([] {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
      }) {
  KV_CHECK(engine_ != nullptr);
  KV_CHECK(self_ != 0);
  dots_ = std::make_unique<DotIssuer>([] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) | rd();
  });
  // An unreadable hint key is left uncounted; the scan that delivers hints reports it.
  (void)engine_->ScanHints(0, [this](NodeId target, std::string_view, std::string_view) {
    ++hint_counts_[target];
    return true;
  });
}

std::size_t LocalStore::StripeOf(std::string_view key) {
  // By the token's top bits: a stripe is a slice of the ring, so a batch of keys of one token
  // range (a copy's or a repair's page, a range drop) locks one or two stripes, not nearly all
  // of them as a hash spread would, and client writes to the rest of the ring go on meanwhile.
  static_assert(kStripes == 32);
  return static_cast<std::size_t>(ring::TokenOf(key) >> 59);
}

std::mutex& LocalStore::LockFor(std::string_view key) { return stripes_[StripeOf(key)]; }

Result<Record> LocalStore::ReadLocked(std::string_view key) {
  std::string bytes;
  Status s = engine_->Get(key, &bytes);
  if (s.IsNotFound()) return Record();
  if (!s.ok()) return s;
  return DecodeRecord(bytes);
}

std::optional<std::uint64_t> LocalStore::DigestOf(const Record& r) {
  if (r.empty()) return std::nullopt;
  return VersionDigest(EncodeRecord(r));
}

Status LocalStore::Store(std::string_view key, const Record& before, const Record& record) {
  const std::string encoded = EncodeRecord(record);
  if (Status s = engine_->Put(key, encoded); !s.ok()) return s;
  if (listener_ != nullptr) listener_->OnChange(key, DigestOf(before), VersionDigest(encoded));
  return Status::Ok();
}

Result<Record> LocalStore::Read(std::string_view key) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  return ReadLocked(key);
}

namespace {

// About what a record holds in memory and on the wire: values, per-sibling and context overhead.
}  // namespace

std::size_t ApproxBytes(const Record& r) {
  std::size_t n = 16 * (r.context().vv().size() + r.context().cloud().size());
  for (const Sibling& s : r.siblings()) n += s.value.size() + 40;
  return n;
}

Status LocalStore::CheckCaps(const Record& before, const Record& after) {
  const std::size_t n = after.siblings().size();
  if (n > limits_.max_siblings && n > before.siblings().size()) {
    refused_siblings_.fetch_add(1);
    return Status::InvalidArgument(
        "too many siblings: the key holds " + std::to_string(before.siblings().size()) +
        " concurrent values (limit " + std::to_string(limits_.max_siblings) +
        "); read it and write with its context to resolve them");
  }
  const std::size_t bytes = ApproxBytes(after);
  if (bytes > limits_.max_record_bytes && bytes > ApproxBytes(before)) {
    refused_size_.fetch_add(1);
    return Status::InvalidArgument(
        "record too large: the key's values would take about " + std::to_string(bytes >> 10) +
        " KiB (limit " + std::to_string(limits_.max_record_bytes >> 10) +
        " KiB); read it and write with its context to replace its siblings");
  }
  return Status::Ok();
}

Result<Record> LocalStore::Write(std::string_view key, const CausalContext& seen, bool tombstone,
                                 std::string value) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  if (Status s = CheckValue(value, limits_); !s.ok()) return s;
  if (tombstone && !value.empty()) return Status::InvalidArgument("a tombstone has no value");
  std::shared_lock<std::shared_mutex> running(pause_mu_);
  std::lock_guard<std::mutex> lock(LockFor(key));
  Result<Record> current = ReadLocked(key);
  if (!current.ok()) return current.status();
  Record record = current.value();
  Result<Dot> dot = dots_->Next(record.context(), seen);
  if (!dot.ok()) return dot.status();
  record.WriteAs(dot.value(), seen, tombstone, std::move(value), clock_());
  if (Status s = CheckCaps(current.value(), record); !s.ok()) return s;
  if (Status s = Store(key, current.value(), record); !s.ok()) return s;
  return record;
}

Result<Record> LocalStore::DeleteSeen(std::string_view key, bool* had_value) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  std::shared_lock<std::shared_mutex> running(pause_mu_);
  std::lock_guard<std::mutex> lock(LockFor(key));
  Result<Record> current = ReadLocked(key);
  if (!current.ok()) return current.status();
  Record record = current.value();
  *had_value = record.HasLiveValue();
  const CausalContext seen = record.context();
  Result<Dot> dot = dots_->Next(record.context(), seen);
  if (!dot.ok()) return dot.status();
  record.WriteAs(dot.value(), seen, /*tombstone=*/true, std::string(), clock_());
  if (Status s = Store(key, current.value(), record); !s.ok()) return s;
  return record;
}

void LocalStore::ApplyBatch(std::vector<WriteOp*>& ops) {
  // Lock every stripe the batch touches, in index order so that batches never deadlock.
  std::vector<std::size_t> stripes;
  for (WriteOp* op : ops) stripes.push_back(StripeOf(op->key));
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  std::shared_lock<std::shared_mutex> running(pause_mu_);
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(stripes.size());
  for (std::size_t s : stripes) locks.emplace_back(stripes_[s]);

  // Records written earlier in this batch, which later ops on the same key (and for hints, the
  // same target) must build on. Target 0 is the data keyspace.
  struct Latest {
    Record* record;
    bool existed;                         // whether a record was stored before the batch
    std::optional<std::uint64_t> before;  // for data: its digest then
    std::uint64_t created_s = 0;          // for a hint: when its first write was kept
  };
  std::map<std::pair<NodeId, std::string_view>, Latest> latest;
  std::vector<WriteOp*> applied;
  const std::uint64_t now = clock_();
  for (WriteOp* op : ops) {
    const bool merge = op->kind == WriteOp::Kind::kMerge || op->kind == WriteOp::Kind::kHint;
    const NodeId space = op->kind == WriteOp::Kind::kHint ? op->hint_for : 0;
    op->status = CheckKey(op->key, limits_);
    if (op->status.ok()) op->status = CheckValue(op->value, limits_);
    if (op->status.ok() && op->kind != WriteOp::Kind::kPut && !op->value.empty()) {
      op->status = Status::InvalidArgument("only a put carries a value");
    }
    if (op->status.ok() && op->kind == WriteOp::Kind::kHint && op->hint_for == 0) {
      op->status = Status::InvalidArgument("a hint needs a target node");
    }
    if (!op->status.ok()) continue;
    const auto slot = std::make_pair(space, std::string_view(op->key));
    auto it = latest.find(slot);
    bool existed = true;
    std::optional<std::uint64_t> before;
    // A hint keeps the time of its first write however much is merged into it later: a hint
    // older than the tombstone grace period is never delivered (the coordinator's handoff), so
    // it cannot bring back a value whose tombstone was purged meanwhile.
    std::uint64_t created_s = std::max<std::uint64_t>(now, 1);
    if (it != latest.end()) {
      op->record = *it->second.record;
      existed = it->second.existed;
      before = it->second.before;
      created_s = it->second.created_s;
    } else if (space == 0) {
      Result<Record> current = ReadLocked(op->key);
      if (!current.ok()) {
        op->status = current.status();
        continue;
      }
      op->record = std::move(current.value());
      existed = !op->record.empty();
      if (listener_ != nullptr) before = DigestOf(op->record);
    } else {
      Result<StoredHint> current = ReadStoredHint(space, op->key);
      if (!current.ok()) {
        op->status = current.status();
        continue;
      }
      op->record = std::move(current->record);
      existed = !op->record.empty();
      // A hint stored before hints had an age is aged from now.
      if (existed && current->created_s != 0) created_s = current->created_s;
    }
    op->had_value = op->record.HasLiveValue();
    if (merge) {
      op->record = Record::Merge(op->record, op->remote);
    } else {
      const bool delete_seen = op->kind == WriteOp::Kind::kDeleteSeen;
      const CausalContext seen = delete_seen ? op->record.context() : op->seen;
      Result<Dot> dot = dots_->Next(op->record.context(), seen);
      if (!dot.ok()) {
        op->status = dot.status();
        continue;
      }
      const bool tombstone = op->kind != WriteOp::Kind::kPut;
      Record written = op->record;
      written.WriteAs(dot.value(), seen, tombstone,
                      tombstone ? std::string() : std::move(op->value), now);
      op->status = CheckCaps(op->record, written);
      if (!op->status.ok()) continue;
      op->record = std::move(written);
    }
    latest[slot] = Latest{&op->record, existed, before, created_s};
    applied.push_back(op);
  }
  if (applied.empty()) return;
  // Only the last record of each key needs writing; earlier ones are folded into it.
  std::vector<std::string> encoded;
  std::vector<Engine::KeyValue> pairs;
  std::map<NodeId, std::uint64_t> new_hints;
  encoded.reserve(latest.size());
  pairs.reserve(latest.size());
  for (const auto& [slot, last] : latest) {
    encoded.push_back(slot.first == 0 ? EncodeRecord(*last.record)
                                      : EncodeHint(last.created_s, *last.record));
    pairs.push_back({slot.second, encoded.back(), slot.first});
    if (slot.first != 0 && !last.existed) ++new_hints[slot.first];
  }
  Status s = engine_->PutBatch(pairs);
  if (!s.ok()) {
    for (WriteOp* op : applied) op->status = s;
    return;
  }
  if (!new_hints.empty()) {
    std::lock_guard<std::mutex> lock(counts_mu_);
    for (const auto& [target, n] : new_hints) hint_counts_[target] += n;
  }
  if (listener_ != nullptr) {
    std::size_t i = 0;
    for (const auto& [slot, last] : latest) {
      if (slot.first == 0) listener_->OnChange(slot.second, last.before, VersionDigest(encoded[i]));
      ++i;
    }
  }
}

void LocalStore::WithWritesPaused(const std::function<void()>& fn) {
  std::unique_lock<std::shared_mutex> paused(pause_mu_);
  fn();
}

Result<bool> LocalStore::PurgeIfUnchanged(std::string_view key, std::uint64_t digest) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  std::shared_lock<std::shared_mutex> running(pause_mu_);
  std::lock_guard<std::mutex> lock(LockFor(key));
  std::string bytes;
  Status s = engine_->Get(key, &bytes);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return s;
  if (VersionDigest(bytes) != digest) return false;
  Result<Record> record = DecodeRecord(bytes);
  if (!record.ok()) return record.status();
  const std::uint64_t now = clock_();
  if (now <= limits_.tombstone_grace_s ||
      !record->OnlyTombstonesBefore(now - limits_.tombstone_grace_s)) {
    return false;
  }
  if (Status d = engine_->Delete(key); !d.ok()) return d;
  if (listener_ != nullptr) listener_->OnChange(key, digest, std::nullopt);
  return true;
}

Result<LocalStore::Dropped> LocalStore::DropRange(const ring::TokenRange& range) {
  // Keys first (a scan must not run into its own deletes), then each under its lock.
  std::vector<std::string> keys;
  Status s = engine_->Scan(range, [&](ring::Token, std::string_view key, std::string_view) {
    keys.emplace_back(key);
    return true;
  });
  if (!s.ok()) return s;
  Dropped out;
  for (const std::string& key : keys) {
    std::shared_lock<std::shared_mutex> running(pause_mu_);
    std::lock_guard<std::mutex> lock(LockFor(key));
    std::string bytes;
    Status g = engine_->Get(key, &bytes);
    if (g.IsNotFound()) continue;
    if (!g.ok()) return g;
    const std::uint64_t digest = VersionDigest(bytes);
    if (Status d = engine_->Delete(key); !d.ok()) return d;
    if (listener_ != nullptr) listener_->OnChange(key, digest, std::nullopt);
    ++out.keys;
    out.bytes += key.size() + bytes.size();
  }
  return out;
}

Result<StoredHint> LocalStore::ReadStoredHint(NodeId target, std::string_view key) {
  std::string bytes;
  Status s = engine_->GetHint(target, key, &bytes);
  if (s.IsNotFound()) return StoredHint();
  if (!s.ok()) return s;
  return DecodeHint(bytes);
}

Result<Record> LocalStore::ReadHint(NodeId target, std::string_view key) {
  Result<StoredHint> h = ReadStoredHint(target, key);
  if (!h.ok()) return h.status();
  return std::move(h->record);
}

Result<std::vector<Hint>> LocalStore::ScanHints(NodeId target, std::size_t limit) {
  std::vector<Hint> out;
  Status decode_error;
  Status s =
      engine_->ScanHints(target, [&](NodeId t, std::string_view key, std::string_view value) {
        if (out.size() >= limit) return false;
        Result<StoredHint> r = DecodeHint(value);
        if (!r.ok()) {
          decode_error = r.status();
          return false;
        }
        out.push_back(Hint{t, std::string(key), std::move(r->record), r->created_s});
        return true;
      });
  if (!s.ok()) return s;
  if (!decode_error.ok()) return decode_error;
  return out;
}

Result<bool> LocalStore::DeleteHintIfUnchanged(NodeId target, std::string_view key,
                                               const Record& delivered) {
  std::shared_lock<std::shared_mutex> running(pause_mu_);
  std::lock_guard<std::mutex> lock(LockFor(key));
  Result<Record> current = ReadHint(target, key);
  if (!current.ok()) return current.status();
  if (current->empty() || !(current.value() == delivered)) return false;
  if (Status s = engine_->DeleteHint(target, key); !s.ok()) return s;
  std::lock_guard<std::mutex> counts(counts_mu_);
  auto it = hint_counts_.find(target);
  if (it != hint_counts_.end() && --it->second == 0) hint_counts_.erase(it);
  return true;
}

std::map<NodeId, std::uint64_t> LocalStore::HintCounts() const {
  std::lock_guard<std::mutex> lock(counts_mu_);
  return hint_counts_;
}

Result<Record> LocalStore::Merge(std::string_view key, const Record& remote) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  std::shared_lock<std::shared_mutex> running(pause_mu_);
  std::lock_guard<std::mutex> lock(LockFor(key));
  Result<Record> current = ReadLocked(key);
  if (!current.ok()) return current.status();
  Record merged = Record::Merge(current.value(), remote);
  if (merged == current.value()) return merged;
  if (Status s = Store(key, current.value(), merged); !s.ok()) return s;
  return merged;
}

}  // namespace kv::storage
