// Saved peers: the members a node knew, kept across its restarts (as Cassandra keeps
// system.peers), so that a restarted node knows the whole ring from its first request.
//
// Without it a restarted node knows only itself (and whoever it meets first) until gossip
// catches up, and would coordinate writes on a ring of one or two nodes: acknowledged, yet
// stored on nodes that are not the key's replicas, where no read or repair finds them again.
//
// The bytes are a gossip full-state message (membership/wire.h), so a saved file is decoded
// with the same limits and checks as a datagram from the network. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "membership/membership.h"

namespace kv::membership {

// The members of `view` worth keeping: every one but self and those that left or were removed,
// with their application state (tokens, address, rack).
std::string EncodeSavedPeers(const ClusterView& view, const std::string& cluster_name);

// What to change in the saved peers to notice that they must be saved again: membership,
// addresses, generations, or the application state a restart needs (state, tokens, rack,
// address, movement fields). Not liveness, nor load, which change all the time: each save is
// an fsync, and the peers saved keep the load they had, which gossip corrects.
std::uint64_t SavedPeersSignature(const ClusterView& view);

// The members in `bytes`, each as UP at its saved incarnation, ready for
// Membership::RestoreMembers (probing then finds out which are really up). False, with
// `*error` set, if the bytes do not decode, name another cluster, or are not a saved view.
bool DecodeSavedPeers(std::string_view bytes, const std::string& cluster_name,
                      std::vector<MemberView>* out, std::string* error);

}  // namespace kv::membership
