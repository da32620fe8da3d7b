// Node metadata kept in the engine's "meta" keyspace: who this node is across restarts.
//
//   node_id        8 bytes   LoadOrCreateNodeId (local_store.h)
//   generation     8 bytes   bumped at every start: a restarted node is a new life of its id
//   tokens         8*n bytes ring tokens chosen at first start and kept
//   removed_ids    8*n bytes ids removed from the cluster (tombstones this node must keep)
//   removed_at_ms  8*n bytes when each was removed, wall-clock milliseconds (parallel; a list
//                  of another length, as a crash between the two writes can leave, is ignored)
//   removed_self   1 byte    present once the cluster told this node it was removed
//   peers          bytes     the members this node knew (membership/saved_peers.h)
//   dots_life      24 bytes  the dots' life, its last epoch and the node's generation, saved at a
//                  clean stop (storage/dots.h); empty once the next start took it
// Integers are big-endian. Malformed metadata is Corruption, never guessed at.
//
// Thread-safety: as Engine.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "storage/dots.h"
#include "storage/engine.h"

namespace kv::storage {

// Reads the stored generation (0 if none), stores and returns it plus one.
Result<std::uint64_t> BumpGeneration(Engine& engine);

// The stored list under `name`; empty if absent.
Result<std::vector<std::uint64_t>> LoadU64List(Engine& engine, std::string_view name);
Status StoreU64List(Engine& engine, std::string_view name, const std::vector<std::uint64_t>& v);
// The bytes StoreU64List stores (for a MetaWriter).
std::string EncodeU64List(const std::vector<std::uint64_t>& v);

// The stored tokens, or `choose()`'s, stored first, if there are none yet.
Result<std::vector<std::uint64_t>> LoadOrCreateTokens(
    Engine& engine, const std::function<std::vector<std::uint64_t>()>& choose);

struct SavedLife {
  DotIssuer::Saved dots;        // life 0: none saved
  std::uint64_t generation = 0;  // the node's generation when it was saved
};
// The dots' life a clean stop saved, consumed: the stored copy is emptied (synced) before this
// returns it, so it is offered to one start only.
Result<SavedLife> TakeSavedLife(Engine& engine);
// Saves the dots' life at a clean stop, after the last write was made durable.
Status SaveLife(Engine& engine, const SavedLife& saved);

Result<bool> LoadFlag(Engine& engine, std::string_view name);
Status StoreFlag(Engine& engine, std::string_view name);

}  // namespace kv::storage
