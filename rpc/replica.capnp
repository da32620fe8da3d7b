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

struct TokenRange {
  begin @0 :UInt64;
  end @1 :UInt64;   # 0: the top of the token space (begin = end = 0: the whole ring)
}

struct KeyDigest {
  key @0 :Data;
  digest @1 :UInt64;
}

struct LeafEntries {
  entries @0 :List(KeyDigest);
}

struct KeyRecord {
  key @0 :Data;
  record @1 :Data;
}

# One anti-entropy exchange of one token range, answered by the replica that was asked
# (repair/exchange.h: this is the Responder's side). Every request is bounded in size; the
# session keeps the range's hash tree between requests.
interface RepairSession {
  # Hashes of these nodes of `level` of the range's tree (level 0: the leaves).
  nodes @0 (level :UInt32, nodes :List(UInt64))
      -> (status :Status, hashes :List(UInt64), depth :UInt32);
  # Every (key, version digest) in each of these sub-ranges of the range.
  entries @1 (ranges :List(TokenRange)) -> (status :Status, leaves :List(LeafEntries));
  # The stored record of each key (empty Data when absent).
  records @2 (keys :List(Data)) -> (status :Status, records :List(Data));
  # Records to join into the stored ones.
  push @3 (records :List(KeyRecord)) -> (status :Status);
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

  # Opens an anti-entropy session for `range`. `treeBits` is the asker's hash tree size; the
  # two must agree (invalidArgument otherwise).
  repair @3 (range :TokenRange, treeBits :UInt8) -> (status :Status, session :RepairSession);
}
