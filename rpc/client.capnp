@0xc884a5b7abb33751;
# The client API: what kvtool and applications speak to any kvd.
#
# Keys and values are bytes. A get returns every sibling and an opaque causal context; a put or
# delete that passes that context back supersedes exactly what the get saw. Failures that a
# client should act on come back as a Status in the results; a kj exception means the
# request never completed (transport failure, or a message the server refused to parse).

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::rpc::wire");

using import "common.capnp".Status;
using import "common.capnp".Consistency;
using import "common.capnp".KeyringOp;
using import "replica.capnp".KvReplica;
using import "replica.capnp".MovementInfo;

struct Sibling {
  value @0 :Data;
}

# One member of the cluster as the answering node sees it (`kvtool status`).
struct Member {
  id @0 :UInt64;
  rpc @1 :Text;          # client API address
  gossip @2 :Text;       # gossip address
  status @3 :Text;       # UP, SUSPECT, DOWN, LEFT, REMOVED
  state @4 :Text;        # joining, normal, leaving, left
  generation @5 :UInt64;
  incarnation @6 :UInt64;
  phi @7 :Float64;
  tokens @8 :UInt32;     # number of ring tokens (virtual nodes)
  owns @9 :Float64;      # share of the token space it owns as first replica, 0..1
  load @10 :UInt64;      # approximate bytes stored
  rack @11 :Text;
  hints @12 :UInt64;     # hints the answering node holds for this member
  lastRepair @13 :Float64;   # when the member last completed a repair, seconds since the epoch;
                             # 0 if none since it started, or it did not answer in time
  repairKeysMoved @14 :UInt64;  # keys that repair moved
}

# A slice of the token ring, [begin, end), and the nodes that replicate it, first replica first.
struct RingRange {
  begin @0 :UInt64;
  end @1 :UInt64;        # 0 means the top of the token space
  replicas @2 :List(UInt64);
}

# Traffic and drops of this node's gossip endpoint (`kvtool stats`).
struct GossipCounters {
  datagramsIn @0 :UInt64;
  datagramsOut @1 :UInt64;
  streamsIn @2 :UInt64;
  streamsOut @3 :UInt64;
  bytesIn @4 :UInt64;
  bytesOut @5 :UInt64;
  droppedMalformed @6 :UInt64;
  droppedOversize @7 :UInt64;
  droppedVersion @8 :UInt64;
  droppedCluster @9 :UInt64;
  droppedRemoved @10 :UInt64;
}

# One of a node's own counters (`kvtool stats`): what it did and which bounds it hit.
struct NamedCount {
  name @0 :Text;
  value @1 :UInt64;
}

# What one repair run did (`kvtool repair`).
struct RepairSummary {
  status @0 :Status;          # ok when every range was compared; unavailable names the skipped
  dryRun @1 :Bool;
  rangesTotal @2 :UInt64;
  rangesCompared @3 :UInt64;
  skipped @4 :List(Text);     # "[begin, end) with PEER: why"
  nodesExchanged @5 :UInt64;  # hash tree nodes compared
  leavesDiffering @6 :UInt64;
  keysDiffering @7 :UInt64;
  bytesOnWire @8 :UInt64;
  elapsed @9 :Float64;        # seconds
  peers @10 :List(PeerTraffic);
  tombstonesPurged @11 :UInt64;  # on the node that ran it (each peer purged the same keys)

  struct PeerTraffic {
    id @0 :UInt64;
    keysSent @1 :UInt64;
    keysReceived @2 :UInt64;
    bytesSent @3 :UInt64;
    bytesReceived @4 :UInt64;
  }
}

# A repair run in progress.
# One member's answer to a keyring request (`kvtool keyring`).
struct KeyringNode {
  id @0 :UInt64;
  address @1 :Text;       # its client API address
  status @2 :Status;      # ok: applied (and saved); else why not, or that it was not reached
  keys @3 :List(Text);    # its keyring after the request, as fingerprints, the primary first
}

interface RepairJob {
  progress @0 () -> (rangesTotal :UInt64, rangesDone :UInt64, keysMoved :UInt64,
                     bytesMoved :UInt64, elapsed :Float64, done :Bool);
  # Resolves when the run ends.
  wait @1 () -> (summary :RepairSummary);
}

interface KvClient {
  # Returns the live siblings of `key` (tombstones are left out) and the causal context of
  # everything the node has seen for it. notFound when no live value remains; the context is
  # still returned then.
  #
  # The node coordinates: it asks the key's replicas and answers once `consistency` of them
  # have (unavailable or timeout otherwise), merging what they hold; stale replicas are repaired
  # afterwards. With `local`, it answers from its own store alone, for diagnosis.
  get @0 (key :Data, consistency :Consistency, local :Bool)
      -> (status :Status, siblings :List(Sibling), context :Data);

  # Writes `value`. With an empty `context` nothing is superseded: on an existing key the value
  # becomes one more sibling. Returns the context after the write. Succeeds once `consistency`
  # replicas (or stand-ins holding hints) acknowledged it; otherwise unavailable or timeout,
  # and the write may or may not have reached some replicas.
  put @1 (key :Data, value :Data, context :Data, consistency :Consistency)
      -> (status :Status, context :Data);

  # Writes a tombstone that supersedes `context`; with an empty context, everything the node
  # holds for the key. notFound when there was no live value to delete (the tombstone is still
  # written).
  delete @2 (key :Data, context :Data, consistency :Consistency)
      -> (status :Status, context :Data);

  # Every member this node knows of, itself included, sorted by id, and the ring movement under
  # way (with its progress, asked of its driver).
  status @3 () -> (status :Status, members :List(Member), movement :MovementInfo);

  # The token ranges of the ring built from the members' tokens, with `replicas` replicas each
  # (0: as many as this node keeps of each key, its N).
  ring @4 (replicas :UInt32) -> (status :Status, ranges :List(RingRange), members :List(Member));

  # Removes a dead member for good: it never comes back through gossip, and if its process
  # returns it is refused. Its ranges are first copied to their new replicas from the surviving
  # ones (a movement driven by this node: it answers once the movement started; `status` shows
  # its progress). invalidArgument for self, unknown ids and members that are UP; unavailable
  # naming the movement in progress if there is one.
  removeNode @5 (id :UInt64) -> (status :Status);

  # This node's own counters: its gossip endpoint's (`gossip` is false when it runs without
  # membership), and the rest of the node's by name (`node`: requests, connections, bounds hit).
  stats @6 () -> (status :Status, gossip :Bool, counters :GossipCounters, node :List(NamedCount));

  # The internode interface, for other nodes of the cluster.
  replica @7 () -> (replica :KvReplica);

  # Starts anti-entropy of every range this node replicates against their other replicas (with
  # `dryRun`, only finds what differs). overloaded if one is running already.
  repair @8 (dryRun :Bool) -> (status :Status, job :RepairJob);

  # Starts this node's decommission: its ranges are copied to their new replicas, then it
  # leaves (LEFT) and its process exits. Answers once started; `status` shows the progress.
  # unavailable naming the movement in progress if there is one.
  decommission @9 () -> (status :Status);

  # Deletes the data of the ranges this node no longer replicates. unavailable while any
  # movement is pending.
  cleanup @10 () -> (status :Status, keysDeleted :UInt64, bytesFreed :UInt64);

  # Applies `op` with `key` (32 bytes; empty for list) to the gossip keyring of this node and
  # of every other live member (UP or SUSPECT), asked at once; members that are DOWN are listed
  # as not reached. One entry per member, this node first. `status` is ok only if every member
  # that is not gone applied it. invalidArgument for a key that is not 32 bytes (or one given
  # to list); unavailable when gossip encryption is off on this node.
  keyring @11 (op :KeyringOp, key :Data) -> (status :Status, nodes :List(KeyringNode));
}
