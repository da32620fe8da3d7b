@0xc884a5b7abb33751;
# The client API: what kvtool and applications speak to any kvd.
#
# Keys and values are bytes. A get returns every sibling and an opaque causal context; a put or
# delete that passes that context back supersedes exactly what the get saw. Failures that a
# client should act on come back as a Status in the results; a kj exception means the
# request never completed (transport failure, or a message the server refused to parse).

$import "/capnp/c++.capnp".namespace("kv::rpc::wire");

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

struct Sibling {
  value @0 :Data;
}

interface KvClient {
  # Returns the live siblings of `key` (tombstones are left out) and the causal context of
  # everything the node has seen for it. notFound when no live value remains; the context is
  # still returned then.
  get @0 (key :Data) -> (status :Status, siblings :List(Sibling), context :Data);

  # Writes `value`. With an empty `context` nothing is superseded: on an existing key the value
  # becomes one more sibling. Returns the context after the write.
  put @1 (key :Data, value :Data, context :Data) -> (status :Status, context :Data);

  # Writes a tombstone that supersedes `context`; with an empty context, everything the node
  # holds for the key. notFound when there was no live value to delete (the tombstone is still
  # written).
  delete @2 (key :Data, context :Data) -> (status :Status, context :Data);
}
