@0xe090ea5ebb7b03de;
# The membership wire format: every gossip datagram (UDP) and push-pull stream message (TCP).
#
# One top-level Message per datagram or stream message, written PACKED. The receiver reads
# `version` and `cluster` before anything else and drops what is not for it; everything else is
# untrusted input (membership/wire.cc validates it). Fields are only ever added, never renumbered,
# and a change in meaning takes a new `version`.
#
# Endpoints are inlined as (ip, port) pairs: IPv4 in host byte order, as membership.h has them.
# Liveness of a member is ordered within one generation by (incarnation, liveness) with
# up < suspect < down < left: a claim replaces what a node believes only if it is higher.

$import "/capnp/c++.capnp".namespace("kv::membership::schema");

enum Liveness {
  up @0;
  suspect @1;
  down @2;
  left @3;
  # Removal is not a liveness claim: it travels as a tombstone (Message.removals) and wins over
  # anything else.
}

enum NodeState {
  joining @0;
  normal @1;
  leaving @2;
  left @3;
}

# What a member says about itself. Versioned as a whole by Update.appVersion.
struct AppState {
  tokens @0 :List(UInt64);  # sorted ascending
  state @1 :NodeState;
  rack @2 :Text;
  rpcAddress @3 :Text;      # "HOST:PORT" of the client API
  loadBytes @4 :UInt64;
  # Ring movements the member drives (membership/topology.h). Older nodes skip these fields.
  replaces @5 :UInt64;      # joining in place of this dead member
  removing @6 :UInt64;      # re-replicating this dead member's ranges, then removing it
  readsNew @7 :Bool;        # its movement copied every range: reads use the new replicas
  dotsLife @8 :UInt64;      # the life of the dots its store issues (storage/dots.h); 0: unknown
}

# Everything a node believes about one member: piggybacked on datagrams, and the full state sent
# in push-pull.
struct Update {
  id @0 :UInt64;
  ip @1 :UInt32;
  port @2 :UInt16;
  generation @3 :UInt64;
  incarnation @4 :UInt64;
  liveness @5 :Liveness;
  # For suspect and down: the member that accuses (Lifeguard counts distinct accusers).
  from @6 :UInt64;
  # The version of the member's application state this update refers to. `app` is null when the
  # state did not fit the datagram: a receiver that holds an older version pulls it (push-pull).
  appVersion @7 :UInt64;
  app @8 :AppState;
}

# Push-pull digest: what a node holds about one member, as the numbers that order it. Liveness
# (incarnation, liveness) and application state (appVersion) advance independently, so both are
# here rather than one folded version: either can be newer on either side.
struct Digest {
  id @0 :UInt64;
  generation @1 :UInt64;
  incarnation @2 :UInt64;
  liveness @3 :Liveness;
  appVersion @4 :UInt64;
}

struct Message {
  version @0 :UInt16;   # kProtocolVersion in membership/wire.h
  cluster @1 :Text;     # Config.cluster_name: another cluster's traffic is dropped

  # The sender, which also claims to be alive at this (generation, incarnation). Replies go to
  # this endpoint (a stream arrives from an ephemeral port).
  senderId @2 :UInt64;
  senderGeneration @3 :UInt64;
  senderIncarnation @4 :UInt64;
  senderIp @5 :UInt32;
  senderPort @6 :UInt16;

  body :union {
    # SWIM probe. `anyTarget` is set by a joining node that knows only the seed's endpoint;
    # otherwise a node whose id is not `target` ignores the ping (the address was reused).
    ping :group {
      seqNo @7 :UInt64;
      target @8 :UInt64;
      anyTarget @9 :Bool;
    }
    ack :group {
      seqNo @10 :UInt64;
    }
    # From a ping-req intermediary: "I am alive, and the target did not answer me in time".
    nack :group {
      seqNo @11 :UInt64;
    }
    # Asks the receiver to probe `target` and relay its ack under `seqNo`.
    pingReq :group {
      seqNo @12 :UInt64;
      target @13 :UInt64;
      targetIp @14 :UInt32;
      targetPort @15 :UInt16;
    }
    # A gossip round: only the piggybacked updates and removals.
    gossip @16 :Void;

    # Push-pull (stream messages), Cassandra's SYN / ACK / ACK2.
    pushPullSyn :group {
      digests @17 :List(Digest);          # everything the sender knows of
    }
    pushPullAck :group {
      requests @18 :List(Digest);         # members the SYN's sender knows better
      states @19 :List(Update);           # members the SYN's sender lacks or holds older
    }
    pushPullAck2 :group {
      states @20 :List(Update);           # what the ACK requested
    }

    # "Your id was removed from this cluster": sent in reply to anything from a tombstoned id.
    removedNotice :group {
      id @21 :UInt64;
    }
  }

  # Piggybacked on datagrams (bounded by the datagram size).
  updates @22 :List(Update);
  # Tombstones: removed ids. Piggybacked on datagrams; the full set in push-pull messages.
  removals @23 :List(UInt64);

  # The version of the sender's own application state. Whoever hears from a member directly
  # learns that it holds an older state and pulls it, even if the gossip of the change missed it.
  senderAppVersion @24 :UInt64;

  # How old each of `removals` is at the sender, in seconds (same length as `removals`, or
  # empty: all new). Every node expires a tombstone at the same age (Config::removed_ttl), and
  # takes the oldest age it hears, so an expired tombstone is not brought back by a node that
  # learnt it later.
  removalAgesS @25 :List(UInt32);
}
