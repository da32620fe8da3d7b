// What a `kvtool keyring` request does to the gossip keyring (membership/gossip_seal.h); shared
// by the client library (client_conn.h) and the node's services (node_services.h).
#pragma once

namespace kv::rpc {

enum class KeyringOp { kList, kInstall, kUse, kRemove };

}  // namespace kv::rpc
