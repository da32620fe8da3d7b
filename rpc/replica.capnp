@0xf5c713738dddbb46;
# The internode interface: what a coordinating node asks of the replicas of a key, and how
# hints are handed off. Records travel in the storage encoding (storage/codec.h) and are
# decoded as hostile input.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::rpc::wire");

using import "common.capnp".Status;
using import "common.capnp".Consistency;
using import "common.capnp".KeyringOp;

enum WriteKind {
  put @0;         # a value superseding the context
  delete @1;      # a tombstone superseding the context
  deleteSeen @2;  # a tombstone superseding everything the node holds
}

struct TokenRange {
  begin @0 :UInt64;
  end @1 :UInt64;   # 0: the top of the token space (begin = end = 0: the whole ring)
}

struct LeafHashes {
  hashes @0 :List(UInt64);   # sorted entry hashes of one leaf's part of the range
}

struct LeafWant {
  range @0 :TokenRange;
  hashes @1 :List(UInt64);   # the entry hashes wanted from it
}


# One anti-entropy exchange of one token range, answered by the replica that was asked
# (repair/exchange.h: this is the Responder's side). Every request is bounded in size; the
# session keeps the range's hash tree between requests.
interface RepairSession {
  root @0 () -> (status :Status, root :UInt64, depth :UInt32);
  # The hashes of the children (at level - 1) of these nodes of `level`, in order.
  children @1 (level :UInt32, nodes :List(UInt64)) -> (status :Status, hashes :List(UInt64));
  entries @2 (ranges :List(TokenRange)) -> (status :Status, leaves :List(LeafHashes));
  # Keys the asker holds in versions this replica may lack, with the asker's causal contexts.
  # `batch` and `answers` are batches of rpc/repair_batch.h (offers; answers, one per offer: need
  # = this replica lacks something of the offered record; its own record when it holds what the
  # offered context lacks; its entry hash for the key, when it holds one).
  offer @3 (batch :Data, dryRun :Bool) -> (status :Status, answers :Data);
  # The records whose entry hashes are wanted.
  # `records` (here and below) is a records batch of rpc/repair_batch.h.
  fetch @4 (leaves :List(LeafWant)) -> (status :Status, records :Data);
  # Records to join into the stored ones. `holdsMore`, per record: this replica's join holds
  # something the pushed record lacks (the asker may fetch it).
  push @5 (records :Data) -> (status :Status, holdsMore :List(Bool));
  # The XOR of the entry hashes in each of the 16 equal parts of each range, 16 per range.
  split @7 (ranges :List(TokenRange)) -> (status :Status, hashes :List(UInt64));
  # An invertible Bloom lookup table (repair/iblt.h) of `cells` cells under `salt`, of every
  # key below these nodes of `level` (its id and version value).
  # `nodes` (here and below): a nodes batch of rpc/repair_batch.h, ascending.
  # Its cells are placed under `cellSalt`; ids and version values follow `salt`.
  sketch @8 (level :UInt32, nodes :Data, salt :UInt64, cells :UInt32, cellSalt :UInt64)
      -> (status :Status, table :Data);
  # The records of the keys below these nodes of `level` whose table id (repair::Iblt::KeyOf)
  # under `salt` is one of `items`.
  # `truncated`: more keys matched than fit in one reply (repair::kMaxPushBytes); ask again.
  fetchItems @9 (level :UInt32, nodes :Data, salt :UInt64, items :List(UInt32))
      -> (status :Status, records :Data, truncated :Bool);
  # Tombstone GC once every replica of the range was confirmed to agree: removes each key whose
  # record still has the given version digest and holds only tombstones.
  purge @6 (keys :List(Data), digests :List(UInt64)) -> (status :Status, purged :UInt64);
  # A copy page (repair/exchange.h): every record of the range from token `from` on, in token
  # order, but those whose entry hash is in `except` (at most repair::kMaxCopyOwnKeys). At most
  # repair::kMaxCopyRecords records or kMaxCopyBytes of them; `more`: the range goes on, from
  # token `resume`.
  copy @10 (from :UInt64, except :List(UInt64))
      -> (status :Status, records :Data, more :Bool, resume :UInt64);
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

  # This node's last completed repair (for `kvtool status`): when it finished, in seconds since
  # the Unix epoch (0: none since start), and how many keys it moved.
  repairInfo @4 () -> (finishedAt :Float64, keysMoved :UInt64);

  # The ring movement this node sees in its view (membership/topology.h), for a movement
  # driver's barrier and for `kvtool status`; with the driver's progress when this node drives
  # it.
  movement @5 () -> (movement :MovementInfo);

  # Copies `range` (not wrapping) to this node from each of `sources`: an anti-entropy exchange
  # with each, initiated here. Asked by a movement's driver of a new replica of the range.
  pull @6 (range :TokenRange, sources :List(UInt64)) -> (status :Status, keys :UInt64,
                                                         bytes :UInt64);

  # Applies `op` with `key` (32 bytes; empty for list) to this node's gossip keyring and answers
  # with the keyring after it, as key fingerprints (KeyFingerprint), the primary first. The
  # change is in this node's key file before it answers ok. Asked by the node a `kvtool
  # keyring` went to, of every live member.
  keyring @7 (op :KeyringOp, key :Data) -> (status :Status, keys :List(Text));
}

# A ring movement as one node sees it.
struct MovementInfo {
  active @0 :Bool;          # false: no movement in this node's view (the rest is empty)
  kind @1 :Text;            # join, replace, decommission, removenode
  driver @2 :UInt64;
  subject @3 :UInt64;
  readsNew @4 :Bool;
  description @5 :Text;
  # Only from the driver itself:
  progress @6 :Bool;        # true: the fields below are filled
  phase @7 :Text;
  note @8 :Text;            # why it waits, or why it failed
  copiesDone @9 :UInt64;    # (range, new replica) copies complete
  copiesTotal @10 :UInt64;
  bytesCopied @11 :UInt64;
  # The last movement this node drove, once over: "done", or why it failed ("" if none).
  outcome @12 :Text;
}
