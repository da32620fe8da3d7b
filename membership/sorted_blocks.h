// SortedBlocks: an ordered set of small trivially copyable values, stored as a sorted run of
// sorted blocks of at most kMaxBlock values (a B-tree of height two).
//
// Why: the membership core keeps queues with up to one entry per member (news to piggyback,
// suspicion deadlines). A std::set node costs 32 bytes of links plus malloc's header and
// rounding, 64-80 bytes in all for a 16-byte value; in a simulated 10,000-node cluster, with
// 10^8 (node, member) pairs, that alone would be gigabytes. Here a value costs its size over the
// fill of its block (blocks are split in halves, grow by kGrowBy values and give back what they
// no longer use), and in-order walks touch contiguous memory.
//
// Cost: Insert and Erase are O(log(n / kMaxBlock) + kMaxBlock); iteration is in order.
//
// Invariants: every block is non-empty and sorted by Less; blocks are in order (the last value
// of a block is below the first of the next); values are distinct under Less; size_ is the
// total. Thread-compatible value type.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <vector>

#include "membership/check.h"

namespace kv::membership {

template <typename T, typename Less>
class SortedBlocks {
 public:
  static constexpr std::size_t kMaxBlock = 128;
  static constexpr std::size_t kGrowBy = 16;

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }

  // The smallest value. REQUIRES: !empty().
  const T& front() const { return blocks_.front().front(); }

  // Adds v. REQUIRES: no equal value is present.
  void Insert(const T& v) {
    ++size_;
    if (blocks_.empty()) {
      blocks_.push_back({v});
      return;
    }
    const std::size_t b = BlockFor(v);
    std::vector<T>& block = blocks_[b];
    auto pos = std::lower_bound(block.begin(), block.end(), v, Less{});
    KV_MEMBERSHIP_CHECK(pos == block.end() || Less{}(v, *pos));
    if (block.size() == block.capacity()) {
      // Grow by a few values rather than doubling, so blocks stay nearly full.
      const auto at = pos - block.begin();
      block.reserve(block.size() + kGrowBy);
      pos = block.begin() + at;
    }
    block.insert(pos, v);
    if (block.size() > kMaxBlock) {
      std::vector<T> tail(block.begin() + kMaxBlock / 2, block.end());
      block.resize(kMaxBlock / 2);
      block.shrink_to_fit();
      blocks_.insert(blocks_.begin() + static_cast<std::ptrdiff_t>(b) + 1, std::move(tail));
    }
  }

  // Removes the value equal to v. REQUIRES: present.
  void Erase(const T& v) {
    KV_MEMBERSHIP_CHECK(!blocks_.empty());
    const std::size_t b = BlockFor(v);
    std::vector<T>& block = blocks_[b];
    auto pos = std::lower_bound(block.begin(), block.end(), v, Less{});
    KV_MEMBERSHIP_CHECK(pos != block.end() && !Less{}(v, *pos));
    block.erase(pos);
    --size_;
    if (block.empty()) {
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(b));
    } else if (block.capacity() - block.size() > 2 * kGrowBy) {
      block.shrink_to_fit();
    }
  }

  // Calls f(value) in order while it returns true.
  template <typename F>
  void ForEach(F&& f) const {
    for (const std::vector<T>& block : blocks_) {
      for (const T& v : block) {
        if (!f(v)) return;
      }
    }
  }

 private:
  // The block that holds or should hold v: the first whose last value is not below it, else
  // the last block.
  std::size_t BlockFor(const T& v) const {
    auto it = std::lower_bound(
        blocks_.begin(), blocks_.end(), v,
        [](const std::vector<T>& block, const T& x) { return Less{}(block.back(), x); });
    return it == blocks_.end() ? blocks_.size() - 1
                               : static_cast<std::size_t>(it - blocks_.begin());
  }

  std::vector<std::vector<T>> blocks_;
  std::size_t size_ = 0;
};

}  // namespace kv::membership
