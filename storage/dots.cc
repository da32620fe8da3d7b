#include "storage/dots.h"

#include <algorithm>
#include <string>

namespace kv::storage {
namespace {

constexpr std::uint64_t kEpochMask = (std::uint64_t{1} << DotIssuer::kEpochBits) - 1;

// The highest-epoch actor of `life` in `c`, and its highest counter; {0, 0} if none.
Dot LatestOfLife(const CausalContext& c, std::uint64_t life) {
  const NodeId lo = life << DotIssuer::kEpochBits;
  const NodeId hi = lo | kEpochMask;
  Dot best;
  for (auto it = c.vv().lower_bound(lo); it != c.vv().end() && it->first <= hi; ++it) {
    best = Dot{it->first, it->second};  // ascending: the last is the latest epoch
  }
  for (auto it = c.cloud().lower_bound(Dot{lo, 0}); it != c.cloud().end() && it->node <= hi;
       ++it) {
    if (it->node >= best.node) best = Dot{it->node, std::max(it->counter, c.MaxCounter(it->node))};
  }
  return best;
}

}  // namespace

DotIssuer::DotIssuer(std::function<std::uint64_t()> random) : random_(std::move(random)) {
  while (life_ == 0) life_ = random_() >> DotIssuer::kEpochBits;
}

std::uint64_t DotIssuer::life() const {
  std::lock_guard<std::mutex> lock(mu_);
  return life_;
}

NodeId DotIssuer::NewEpochLocked() {
  if (epoch_ == kEpochMask) {  // this life's epochs are spent: another life
    const std::uint64_t old = life_;
    while (life_ == 0 || life_ == old) life_ = random_() >> kEpochBits;
    epoch_ = 0;
  }
  ++epoch_;
  return life_ << kEpochBits | epoch_;
}

DotIssuer::Saved DotIssuer::State() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Saved{life_, epoch_};
}

void DotIssuer::OfferResume(Saved saved) {
  std::lock_guard<std::mutex> lock(mu_);
  if (saved.life == 0 || saved.life >> (64 - kEpochBits) != 0 || saved.epoch > kEpochMask) return;
  offered_ = saved;
}

bool DotIssuer::ConfirmResume() {
  std::lock_guard<std::mutex> lock(mu_);
  if (offered_.life == 0 || issued_) return false;
  life_ = offered_.life;
  epoch_ = offered_.epoch;
  offered_ = Saved{};
  return true;
}

Result<Dot> DotIssuer::Next(const CausalContext& stored, const CausalContext& seen) {
  std::lock_guard<std::mutex> lock(mu_);
  issued_ = true;
  const Dot theirs = LatestOfLife(seen, life_);
  if (theirs.node != 0 && (theirs.node & kEpochMask) > epoch_) {
    return Status::InvalidArgument("the context names actor " + std::to_string(theirs.node) +
                                   " of this node's current life, which it never used");
  }
  const Dot mine = LatestOfLife(stored, life_);
  // (An epoch above the last issued came from a context forged elsewhere: not continued.)
  if (mine.node != 0 && (mine.node & kEpochMask) <= epoch_ &&
      seen.MaxCounter(mine.node) <= mine.counter) {
    KV_CHECK(mine.counter < UINT64_MAX);
    return Dot{mine.node, mine.counter + 1};
  }
  return Dot{NewEpochLocked(), 1};
}

}  // namespace kv::storage
