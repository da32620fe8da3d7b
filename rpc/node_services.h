// NodeServices: the parts of one node that its RPC servers use, wired once in kvd.
// Every pointer must outlive the servers; all live on the RPC thread (the store and the tree are
// thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "repair/exchange.h"
#include "rpc/cluster_control.h"
#include "rpc/coordinator.h"
#include "rpc/keyring_op.h"
#include "rpc/metrics.h"
#include "rpc/movement_runner.h"
#include "rpc/repair_runner.h"
#include "rpc/storage_pool.h"
#include "rpc/write_batcher.h"
#include "storage/local_store.h"

namespace kv::rpc {

struct NodeServices {
  storage::LocalStore* store = nullptr;
  StoragePool* pool = nullptr;        // client and replica reads run here, off the RPC thread
  StoragePool* background = nullptr;  // repair, movement, cleanup and hint storage work
  ClusterControl* cluster = nullptr;
  WriteBatcher* batcher = nullptr;
  Coordinator* coordinator = nullptr;
  repair::RangeReader* repair_reader = nullptr;  // this node's data, for anti-entropy
  RepairRunner* repair = nullptr;
  PeerPool* peers = nullptr;  // to ask the other nodes (status)
  MovementRunner* movement = nullptr;  // ring movements (null: none on this node)
  // Starts a movement this node drives (decommission, removenode); kvd decides what happens
  // when it ends. Null: movements are not available (a node without membership).
  std::function<Status(membership::MovementKind kind, membership::NodeId subject)>
      start_movement;
  // True once this node may coordinate client requests: it has joined and holds the
  // cluster's state (null: always).
  std::function<Status()> serving;
  int tree_bits = 16;
  // Applies a keyring request to this node's gossip keyring (`key` is 32 bytes, unused by
  // kList) and returns the keyring after it as fingerprints, the primary first. Blocking (it
  // rewrites the key file): the services run it on `background`. Null: gossip is plain.
  std::function<Result<std::vector<std::string>>(KeyringOp op, const std::string& key)> keyring;
  // What the request paths record for /metrics (null: nothing).
  RequestMetrics* metrics = nullptr;
  // The node's own counters by name, for `kvtool stats` (null: none).
  std::function<std::vector<std::pair<std::string, std::uint64_t>>()> counters;
};

}  // namespace kv::rpc
