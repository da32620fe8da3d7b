@0xb6e83d76d3cd4395;
# Types shared by the client and replica interfaces.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kv::rpc::wire");

struct Status {
  code @0 :Code;
  message @1 :Text;

  enum Code {
    ok @0;
    notFound @1;
    invalidArgument @2;
    unavailable @3;
    timeout @4;
    overloaded @5;
    corruption @6;
    ioError @7;
  }
}

# How many replicas must answer a request. `default` is the node's setting (R or W).
enum Consistency {
  default @0;
  one @1;
  quorum @2;
  all @3;
}

# What `kvtool keyring` asks of the gossip keyring (membership/gossip_seal.h).
enum KeyringOp {
  list @0;     # report the keys, changing nothing
  install @1;  # add a key that opens messages
  use @2;      # make an installed key the primary, the one that seals
  remove @3;   # drop an installed key that is not the primary
}
