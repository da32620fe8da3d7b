#include "storage/causal.h"

#include "storage/status.h"

namespace kv::storage {

bool CausalContext::Contains(const Dot& dot) const {
  auto it = vv_.find(dot.node);
  if (it != vv_.end() && dot.counter <= it->second) return true;
  return cloud_.count(dot) != 0;
}

void CausalContext::Add(const Dot& dot) {
  KV_CHECK(dot.counter != 0);
  if (Contains(dot)) return;
  cloud_.insert(dot);
  Compact(dot.node);
}

void CausalContext::CoverUpTo(const Dot& dot) {
  KV_CHECK(dot.counter != 0);
  auto& n = vv_[dot.node];
  if (dot.counter > n) n = dot.counter;
  Compact(dot.node);
}

void CausalContext::Join(const CausalContext& other) {
  for (const auto& [node, n] : other.vv_) {
    auto& mine = vv_[node];
    if (n > mine) mine = n;
  }
  for (const Dot& d : other.cloud_) cloud_.insert(d);
  // Re-establish invariant 2 for every node the join touched.
  for (const auto& [node, n] : other.vv_) Compact(node);
  for (const Dot& d : other.cloud_) Compact(d.node);
}

std::uint64_t CausalContext::MaxCounter(NodeId node) const {
  std::uint64_t max = 0;
  auto it = vv_.find(node);
  if (it != vv_.end()) max = it->second;
  // The cloud is ordered by (node, counter): the last dot of `node` is its highest.
  auto next = cloud_.lower_bound(Dot{node + 1, 0});
  if (node == UINT64_MAX) next = cloud_.end();
  if (next != cloud_.begin()) {
    auto prev = std::prev(next);
    if (prev->node == node && prev->counter > max) max = prev->counter;
  }
  return max;
}

void CausalContext::Compact(NodeId node) {
  auto vit = vv_.find(node);
  std::uint64_t n = vit == vv_.end() ? 0 : vit->second;
  auto it = cloud_.lower_bound(Dot{node, 0});
  while (it != cloud_.end() && it->node == node && it->counter <= n + 1) {
    if (it->counter == n + 1) ++n;
    it = cloud_.erase(it);
  }
  if (n != 0) vv_[node] = n;
}

bool CausalContext::FromParts(std::map<NodeId, std::uint64_t> vv, std::set<Dot> cloud,
                              CausalContext* out) {
  for (const auto& [node, n] : vv) {
    if (n == 0) return false;
  }
  for (const Dot& d : cloud) {
    if (d.counter == 0) return false;
    auto it = vv.find(d.node);
    std::uint64_t n = it == vv.end() ? 0 : it->second;
    if (d.counter <= n + 1) return false;
  }
  out->vv_ = std::move(vv);
  out->cloud_ = std::move(cloud);
  return true;
}

std::uint64_t CausalContext::MaxContiguous(NodeId node) const {
  auto it = vv_.find(node);
  return it == vv_.end() ? 0 : it->second;
}

bool CausalContext::Includes(const CausalContext& other) const {
  for (const auto& [node, n] : other.vv_) {
    // Dots (node, 1..n): by invariant 2 no cloud dot sits right above vv_[node], so the run
    // from 1 is covered only as far as vv_[node].
    if (MaxContiguous(node) < n) return false;
  }
  for (const Dot& d : other.cloud_) {
    if (!Contains(d)) return false;
  }
  return true;
}

}  // namespace kv::storage
