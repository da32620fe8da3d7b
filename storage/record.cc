#include "storage/record.h"

#include <algorithm>

#include "storage/status.h"

namespace kv::storage {

bool Record::HasLiveValue() const {
  return std::any_of(siblings_.begin(), siblings_.end(),
                     [](const Sibling& s) { return !s.tombstone; });
}

bool Record::OnlyTombstonesBefore(std::uint64_t cutoff_s) const {
  if (siblings_.empty()) return false;
  return std::all_of(siblings_.begin(), siblings_.end(), [cutoff_s](const Sibling& s) {
    return s.tombstone && s.deleted_at != 0 && s.deleted_at <= cutoff_s;
  });
}

Dot Record::Write(NodeId self, const CausalContext& seen, bool tombstone, std::string value,
                  std::uint64_t now_s) {
  KV_CHECK(self != 0);
  KV_CHECK(!tombstone || value.empty());
  std::erase_if(siblings_, [&](const Sibling& s) { return seen.Contains(s.dot); });
  context_.Join(seen);
  const std::uint64_t max = context_.MaxCounter(self);
  KV_CHECK(max < UINT64_MAX);
  const Dot dot{self, max + 1};
  context_.Add(dot);
  AddSibling(dot, tombstone, std::move(value), now_s);
  return dot;
}

void Record::WriteAs(const Dot& dot, const CausalContext& seen, bool tombstone, std::string value,
                     std::uint64_t now_s) {
  KV_CHECK(dot.node != 0 && dot.counter != 0);
  KV_CHECK(!tombstone || value.empty());
  std::erase_if(siblings_, [&](const Sibling& s) { return seen.Contains(s.dot); });
  context_.Join(seen);
  KV_CHECK(context_.MaxCounter(dot.node) < dot.counter);
  context_.CoverUpTo(dot);
  AddSibling(dot, tombstone, std::move(value), now_s);
}

void Record::AddSibling(const Dot& dot, bool tombstone, std::string value, std::uint64_t now_s) {
  // Siblings of other nodes may sort after the new dot: insert in order (invariant 2).
  Sibling s{dot, tombstone, std::move(value), tombstone ? now_s : 0};
  auto pos = std::upper_bound(siblings_.begin(), siblings_.end(), s,
                              [](const Sibling& a, const Sibling& b) { return a.dot < b.dot; });
  siblings_.insert(pos, std::move(s));
}

Record Record::Merge(const Record& a, const Record& b) {
  Record out;
  out.context_ = a.context_;
  out.context_.Join(b.context_);
  // Both sibling lists are sorted by dot: a linear merge.
  auto ia = a.siblings_.begin();
  auto ib = b.siblings_.begin();
  while (ia != a.siblings_.end() || ib != b.siblings_.end()) {
    if (ib == b.siblings_.end() || (ia != a.siblings_.end() && ia->dot < ib->dot)) {
      if (!b.context_.Contains(ia->dot)) out.siblings_.push_back(*ia);
      ++ia;
    } else if (ia == a.siblings_.end() || ib->dot < ia->dot) {
      if (!a.context_.Contains(ib->dot)) out.siblings_.push_back(*ib);
      ++ib;
    } else {
      // The same dot names the same write on both sides.
      out.siblings_.push_back(*ia);
      ++ia;
      ++ib;
    }
  }
  return out;
}

bool Record::FromParts(CausalContext context, std::vector<Sibling> siblings, Record* out) {
  for (std::size_t i = 0; i < siblings.size(); ++i) {
    const Sibling& s = siblings[i];
    if (!context.Contains(s.dot)) return false;
    if (s.tombstone && !s.value.empty()) return false;
    if (!s.tombstone && s.deleted_at != 0) return false;
    if (i > 0 && !(siblings[i - 1].dot < s.dot)) return false;
  }
  out->context_ = std::move(context);
  out->siblings_ = std::move(siblings);
  return true;
}

}  // namespace kv::storage
