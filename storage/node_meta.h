// Node metadata kept in the engine's "meta" keyspace: who this node is across restarts.
//
//   node_id        8 bytes   LoadOrCreateNodeId (local_store.h)
//   generation     8 bytes   bumped at every start: a restarted node is a new life of its id
//   tokens         8*n bytes ring tokens chosen at first start and kept
//   removed_ids    8*n bytes ids removed from the cluster (tombstones this node must keep)
//   removed_self   1 byte    present once the cluster told this node it was removed
//   peers          bytes     the members this node knew (membership/saved_peers.h)
// Integers are big-endian. Malformed metadata is Corruption, never guessed at.
//
// Thread-safety: as Engine.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "storage/engine.h"

namespace kv::storage {

// Reads the stored generation (0 if none), stores and returns it plus one.
Result<std::uint64_t> BumpGeneration(Engine& engine);

// The stored list under `name`; empty if absent.
Result<std::vector<std::uint64_t>> LoadU64List(Engine& engine, std::string_view name);
Status StoreU64List(Engine& engine, std::string_view name, const std::vector<std::uint64_t>& v);

// The stored tokens, or `choose()`'s, stored first, if there are none yet.
Result<std::vector<std::uint64_t>> LoadOrCreateTokens(
    Engine& engine, const std::function<std::vector<std::uint64_t>()>& choose);

Result<bool> LoadFlag(Engine& engine, std::string_view name);
Status StoreFlag(Engine& engine, std::string_view name);

}  // namespace kv::storage
