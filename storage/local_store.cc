#include "storage/local_store.h"

#include <random>

#include "ring/token.h"
#include "storage/codec.h"

namespace kv::storage {

Status CheckKey(std::string_view key, const Limits& limits) {
  if (key.empty()) return Status::InvalidArgument("key is empty");
  if (key.size() > limits.max_key_bytes) {
    return Status::InvalidArgument("key is " + std::to_string(key.size()) +
                                   " bytes, the limit is " +
                                   std::to_string(limits.max_key_bytes));
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

Result<Record> LocalStore::Write(std::string_view key, const CausalContext& seen,
                                 bool tombstone, std::string value) {
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
