@0xf5c713738dddbb46;
# The internode interface: what a coordinating node asks of the replicas of a key, and how
# hints are handed off. Records travel in the storage encoding (storage/codec.h) and are
# decoded as hostile input.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::rpc::wire");

using import "common.capnp".Status;
using import "common.capnp".Consistency;

enum WriteKind {
  put @0;         # a value superseding the context
  delete @1;      # a tombstone superseding the context
  deleteSeen @2;  # a tombstone superseding everything the node holds
}

interface KvReplica {
  # This node's record for `key` (empty Data if it holds none). With `hintFor` != 0, joined
  # with the hint it holds for that node.
  read @0 (key :Data, hintFor :UInt64) -> (status :Status, record :Data);

  # Joins `record` into this node's record for `key`; with `hintFor` != 0, into the hint it
  # keeps for that node instead. Acknowledged once durable in the node's configured sense.
  write @1 (key :Data, record :Data, hintFor :UInt64) -> (status :Status);

  # A client write forwarded by a node that does not replicate the key: this node makes the new
  # version and coordinates the write. Returns what the client's put or delete would.
  coordinate @2 (kind :WriteKind, key :Data, value :Data, context :Data,
                 consistency :Consistency) -> (status :Status, context :Data);
}
