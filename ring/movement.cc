#include "ring/movement.h"

#include <algorithm>

namespace kv::ring {
namespace {

// The end of a range as a 65-bit position: end 0 means 2^64.
unsigned __int128 EndOf(const TokenRange& r) {
  return r.end == 0 ? (static_cast<unsigned __int128>(1) << 64) : r.end;
}

}  // namespace

std::vector<RangeMove> PlanMoves(const Ring& before, const Ring& after, std::size_t n) {
  std::vector<RangeMove> out;
  const std::vector<Ring::Range> a = after.Ranges(n);
  if (a.empty()) return out;
  const std::vector<Ring::Range> b = before.Ranges(n);
  // Both lists cover the token space in order: walk them together, one piece per overlap.
  std::size_t i = 0, j = 0;
  unsigned __int128 at = 0;
  const unsigned __int128 top = static_cast<unsigned __int128>(1) << 64;
  while (at < top) {
    while (i < a.size() && EndOf(a[i].range) <= at) ++i;
    while (j < b.size() && EndOf(b[j].range) <= at) ++j;
    unsigned __int128 end = i < a.size() ? EndOf(a[i].range) : top;
    if (j < b.size()) end = std::min(end, EndOf(b[j].range));
    static const std::vector<NodeId> kNone;
    const std::vector<NodeId>& now = i < a.size() ? a[i].replicas : kNone;
    const std::vector<NodeId>& was = j < b.size() ? b[j].replicas : kNone;
    std::vector<NodeId> targets;
    for (NodeId id : now) {
      if (std::find(was.begin(), was.end(), id) == was.end()) targets.push_back(id);
    }
    std::sort(targets.begin(), targets.end());
    if (!targets.empty()) {
      const TokenRange piece{static_cast<Token>(at),
                             end == top ? Token{0} : static_cast<Token>(end)};
      if (!out.empty() && out.back().range.end == piece.begin && out.back().range.end != 0 &&
          out.back().targets == targets && out.back().sources == was) {
        out.back().range.end = piece.end;
      } else {
        out.push_back(RangeMove{piece, std::move(targets), was});
      }
    }
    at = end;
  }
  return out;
}

std::vector<TokenRange> RangesOf(const Ring& ring, NodeId node, std::size_t n) {
  std::vector<TokenRange> out;
  for (const Ring::Range& r : ring.Ranges(n)) {
    if (std::find(r.replicas.begin(), r.replicas.end(), node) == r.replicas.end()) continue;
    if (!out.empty() && out.back().end == r.range.begin && out.back().end != 0) {
      out.back().end = r.range.end;
    } else {
      out.push_back(r.range);
    }
  }
  return out;
}

}  // namespace kv::ring
