// NodeServices: the parts of one node that its RPC servers use, wired once in kvd.
// Every pointer must outlive the servers; all live on the RPC thread (the store and the tree are
// thread-safe).
#pragma once

#include "repair/exchange.h"
#include "rpc/cluster_control.h"
#include "rpc/coordinator.h"
#include "rpc/repair_runner.h"
#include "rpc/write_batcher.h"
#include "storage/local_store.h"

namespace kv::rpc {

struct NodeServices {
  storage::LocalStore* store = nullptr;
  ClusterControl* cluster = nullptr;
  WriteBatcher* batcher = nullptr;
  Coordinator* coordinator = nullptr;
  repair::RangeReader* repair_reader = nullptr;  // this node's data, for anti-entropy
  RepairRunner* repair = nullptr;
  PeerPool* peers = nullptr;  // to ask the other nodes (status)
  int tree_bits = 16;
};

}  // namespace kv::rpc
