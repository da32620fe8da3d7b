// StoreReader: a RangeReader (exchange.h) over this node's LocalStore, its Engine and its live
// hash tree. Leaves of whole segments come from the live tree; the two edge segments of a range
// are hashed from a scan of the range's part of them.
//
// Thread-safety: as LocalStore and LiveTree; one exchange uses it from one thread.
#pragma once

#include "repair/exchange.h"
#include "repair/hash_tree.h"
#include "storage/engine.h"
#include "storage/local_store.h"

namespace kv::repair {

class StoreReader final : public RangeReader {
 public:
  // Every pointer must outlive the reader.
  StoreReader(storage::LocalStore* store, storage::Engine* engine, const LiveTree* tree)
      : store_(store), engine_(engine), tree_(tree) {}

  Result<std::vector<std::uint64_t>> Leaves(const ring::TokenRange& range) override;
  Result<std::vector<KeyDigest>> Entries(const ring::TokenRange& range) override;
  Result<storage::Record> Get(const std::string& key) override;
  Result<storage::Record> Merge(const std::string& key, const storage::Record& record) override;
  Status MergeAll(const std::vector<std::pair<std::string, storage::Record>>& records) override;
  Result<std::vector<KeyDigest>> PurgeCandidates(const ring::TokenRange& range,
                                                 std::uint64_t cutoff_s) override;
  Result<bool> PurgeIfUnchanged(const std::string& key, std::uint64_t digest) override;
  Result<std::uint64_t> DropRange(const ring::TokenRange& range) override;
  Status Scan(const ring::TokenRange& range,
              const std::function<bool(ring::Token, std::string_view, std::string_view)>& fn)
      override;

  // Records per store batch in MergeAll.
  static constexpr std::size_t kMergeBatch = 128;

 private:
  storage::LocalStore* const store_;
  storage::Engine* const engine_;
  const LiveTree* const tree_;
};

}  // namespace kv::repair
