#include "storage/local_store.h"

#include <algorithm>
#include <random>
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
    : engine_(engine), self_(self), limits_(limits) {
  KV_CHECK(engine_ != nullptr);
  KV_CHECK(self_ != 0);
}

std::mutex& LocalStore::LockFor(std::string_view key) {
  return stripes_[ring::TokenOf(key) % stripes_.size()];
}

Result<Record> LocalStore::ReadLocked(std::string_view key) {
  std::string bytes;
  Status s = engine_->Get(key, &bytes);
  if (s.IsNotFound()) return Record();
  if (!s.ok()) return s;
  return DecodeRecord(bytes);
}

Status LocalStore::Store(std::string_view key, const Record& record) {
  return engine_->Put(key, EncodeRecord(record));
}

Result<Record> LocalStore::Read(std::string_view key) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  return ReadLocked(key);
}

Result<Record> LocalStore::Write(std::string_view key, const CausalContext& seen, bool tombstone,
                                 std::string value) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  if (Status s = CheckValue(value, limits_); !s.ok()) return s;
  if (tombstone && !value.empty()) return Status::InvalidArgument("a tombstone has no value");
  std::lock_guard<std::mutex> lock(LockFor(key));
  Result<Record> current = ReadLocked(key);
  if (!current.ok()) return current.status();
  Record record = std::move(current.value());
  record.Write(self_, seen, tombstone, std::move(value));
  if (Status s = Store(key, record); !s.ok()) return s;
  return record;
}

Result<Record> LocalStore::DeleteSeen(std::string_view key, bool* had_value) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(LockFor(key));
  Result<Record> current = ReadLocked(key);
  if (!current.ok()) return current.status();
  Record record = std::move(current.value());
  *had_value = record.HasLiveValue();
  const CausalContext seen = record.context();
  record.Write(self_, seen, /*tombstone=*/true, std::string());
  if (Status s = Store(key, record); !s.ok()) return s;
  return record;
}

void LocalStore::ApplyBatch(std::vector<WriteOp*>& ops) {
  // Lock every stripe the batch touches, in index order so that batches never deadlock.
  std::vector<std::size_t> stripes;
  for (WriteOp* op : ops) stripes.push_back(ring::TokenOf(op->key) % stripes_.size());
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(stripes.size());
  for (std::size_t s : stripes) locks.emplace_back(stripes_[s]);

  // Records written earlier in this batch, which later ops on the same key must build on.
  std::unordered_map<std::string_view, Record*> latest;
  std::vector<WriteOp*> applied;
  for (WriteOp* op : ops) {
    op->status = CheckKey(op->key, limits_);
    if (op->status.ok()) op->status = CheckValue(op->value, limits_);
    if (op->status.ok() && op->kind != WriteOp::Kind::kPut && !op->value.empty()) {
      op->status = Status::InvalidArgument("a tombstone has no value");
    }
    if (!op->status.ok()) continue;
    auto it = latest.find(op->key);
    if (it != latest.end()) {
      op->record = *it->second;
    } else {
      Result<Record> current = ReadLocked(op->key);
      if (!current.ok()) {
        op->status = current.status();
        continue;
      }
      op->record = std::move(current.value());
    }
    op->had_value = op->record.HasLiveValue();
    const bool tombstone = op->kind != WriteOp::Kind::kPut;
    if (op->kind == WriteOp::Kind::kDeleteSeen) {
      const CausalContext all = op->record.context();
      op->record.Write(self_, all, true, std::string());
    } else {
      op->record.Write(self_, op->seen, tombstone,
                       tombstone ? std::string() : std::move(op->value));
    }
    latest[op->key] = &op->record;
    applied.push_back(op);
  }
  if (applied.empty()) return;
  // Only the last record of each key needs writing; earlier ones are folded into it.
  std::vector<std::string> encoded;
  std::vector<Engine::KeyValue> pairs;
  encoded.reserve(latest.size());
  pairs.reserve(latest.size());
  for (const auto& [key, record] : latest) {
    encoded.push_back(EncodeRecord(*record));
    pairs.push_back({key, encoded.back()});
  }
  Status s = engine_->PutBatch(pairs);
  if (!s.ok()) {
    for (WriteOp* op : applied) op->status = s;
  }
}

Result<Record> LocalStore::Merge(std::string_view key, const Record& remote) {
  if (Status s = CheckKey(key, limits_); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(LockFor(key));
  Result<Record> current = ReadLocked(key);
  if (!current.ok()) return current.status();
  Record merged = Record::Merge(current.value(), remote);
  if (merged == current.value()) return merged;
  if (Status s = Store(key, merged); !s.ok()) return s;
  return merged;
}

}  // namespace kv::storage
