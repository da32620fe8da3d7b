// ClusterControl: what the RPC layer may ask of this node's membership, without knowing how it
// runs (GossipAgent on its own thread in kvd; a fixed single-node view without --gossip).
//
// Thread-safety: implementations must allow calls from the RPC thread while membership runs on
// another thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "membership/membership.h"
#include "ring/ring.h"

namespace kv::rpc {

class ClusterControl {
 public:
  virtual ~ClusterControl() = default;
  // The latest view; never null.
  virtual std::shared_ptr<const membership::ClusterView> View() = 0;
  // Gossip traffic and drops; nullopt when membership does not run.
  virtual std::optional<membership::Counters> GossipCounters() = 0;
  // The membership tables' sizes (members, tombstones, ghosts); nullopt as above.
  virtual std::optional<membership::TableStats> GossipTables() = 0;
  // Removes a member for good; `done(removed)` may run on any thread.
  virtual void Remove(membership::NodeId id, std::function<void(bool removed)> done) = 0;
  // Changes this node's gossiped application state; `done` may run on any thread, once View()
  // shows the change.
  virtual void MutateApp(std::function<void(membership::AppState&)> change,
                         std::function<void()> done) = 0;
};

// The ring reads use (membership/topology.h): members that are not gone nor joining, as the
// movement under way, if any, has them. DOWN members keep their ranges (their data is still
// theirs; hints and repair cover the gap), as in Cassandra.
std::shared_ptr<const ring::Ring> RingFromView(const membership::ClusterView& view);

}  // namespace kv::rpc
