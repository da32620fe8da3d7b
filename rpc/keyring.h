// Keyring requests (`kvtool keyring list|install|use|remove`): the checks every node makes of
// one, this node's part of it, and the fan-out to every live member that the node a client
// asked performs. The keyring itself lives in the gossip transport (membership/gossip_seal.h)
// and on disk in the node's key file (tools/gossip_key_file.h), behind NodeServices::keyring.
//
// A change reaches each member over the internode interface (KvReplica.keyring), not through
// gossip, so that each answers for itself and the client sees a per-member result, as Serf's
// keyring commands report. Members that are DOWN are reported as not reached: an operator must
// bring them the key by hand (or rotate again once they are back), or they cannot rejoin once
// the old key is removed.
//
// Runs on the RPC thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <kj/async.h>

#include "rpc/client.capnp.h"
#include "rpc/node_services.h"
#include "rpc/wire_status.h"

namespace kv::rpc {

// This node's part: checks the request, then runs NodeServices::keyring on the background pool.
// invalidArgument for a key that is not 32 bytes (or any key with list); unavailable when gossip
// is plain on this node. The result is the keyring after it, as fingerprints.
kj::Promise<Result<std::vector<std::string>>> KeyringHere(const NodeServices& node, KeyringOp op,
                                                          std::string key);

// The whole request as KvClient.keyring answers it: this node, then every other member that is
// not gone, asked at once (DOWN ones listed as not reached), each with its own result.
struct KeyringAnswer {
  membership::NodeId id = 0;
  std::string address;
  Status status;
  std::vector<std::string> keys;
};
kj::Promise<std::vector<KeyringAnswer>> KeyringEverywhere(const NodeServices& node, KeyringOp op,
                                                          std::string key);

}  // namespace kv::rpc
