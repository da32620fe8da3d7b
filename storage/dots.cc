#include "storage/dots.h"

#include <string>

namespace kv::storage {

DotIssuer::DotIssuer(NodeId actor) : actor_(actor) { KV_CHECK(actor_ != 0); }

Result<Dot> DotIssuer::Next(const CausalContext& stored, const CausalContext& seen) {
  const std::uint64_t mine = stored.MaxCounter(actor_);
  const std::uint64_t theirs = seen.MaxCounter(actor_);
  std::uint64_t high = high_.load();
  if (mine > high || theirs > high) {
    return Status::InvalidArgument("the context names write " +
                                   std::to_string(mine > theirs ? mine : theirs) +
                                   " of this node's current actor, which it never made");
  }
  // The stored record holds every dot this life issued on the key unless it was purged (then
  // it holds none of them): continue from its highest. A writer that saw more than the record
  // holds points at a purge in between: start above everything instead.
  if (mine != 0 && theirs <= mine) {
    const std::uint64_t next = mine + 1;
    while (next > high && !high_.compare_exchange_weak(high, next)) {
    }
    return Dot{actor_, next};
  }
  const std::uint64_t next = high_.fetch_add(1) + 1;
  KV_CHECK(next < UINT64_MAX);
  return Dot{actor_, next};
}

}  // namespace kv::storage
