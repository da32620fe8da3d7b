// ring_balance: how evenly random tokens (ChooseTokens) spread ownership, by node count and
// vnodes per node, and what building and querying a ring costs. kDefaultVnodes in ring/ring.h is
// chosen from its output.
//
//   ring_balance [seeds]      (default 20 rings per cell)
//
// For each cell it builds `seeds` rings whose node i gets ChooseTokens(vnodes, seed of (ring,
// i)) and reports, averaged over the rings:
//   max/mean  largest primary ownership share divided by the mean share 1/N;
//   worst     the largest max/mean seen in any of the rings;
//   sd/mean   standard deviation of the shares divided by the mean share;
//   rf3       largest replica load divided by the mean, with 3 replicas (a node's replica load
//             is the fraction of tokens it holds a copy of, from Ranges(3));
//   build_us  time of Ring::Build; pl_ns time of one PreferenceList(key, 3).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ring/ring.h"

namespace {

using Clock = std::chrono::steady_clock;
using kv::ring::NodeId;
using kv::ring::Ring;
using kv::ring::RingNode;

constexpr double kTokenSpace = 18446744073709551616.0;  // 2^64

// A per-(ring, node) seed, spread so neighbouring seeds share nothing.
std::uint64_t Mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

double Size(const kv::ring::TokenRange& r) {
  if (r.begin == 0 && r.end == 0) return kTokenSpace;
  return static_cast<double>(r.end - r.begin);  // end 0 is the top: the subtraction wraps right
}

struct Cell {
  double max_over_mean = 0, worst = 0, sd_over_mean = 0, rf3 = 0, build_us = 0, pl_ns = 0;
};

Cell Measure(std::size_t node_count, std::size_t vnodes, int seeds) {
  Cell cell;
  const double mean = 1.0 / node_count;
  volatile std::size_t sink = 0;
  for (int s = 0; s < seeds; ++s) {
    std::vector<RingNode> nodes;
    for (std::size_t i = 0; i < node_count; ++i) {
      const NodeId id = i + 1;
      nodes.push_back(RingNode{
          id, kv::ring::ChooseTokens(vnodes, Mix((static_cast<std::uint64_t>(s) << 32) | id)), ""});
    }
    const auto begin = Clock::now();
    auto ring = Ring::Build(std::move(nodes));
    cell.build_us += std::chrono::duration<double, std::micro>(Clock::now() - begin).count();

    double max_share = 0, sq = 0;
    for (const RingNode& n : ring->nodes()) {
      const double share = ring->OwnershipShare(n.id);
      max_share = std::max(max_share, share);
      sq += (share - mean) * (share - mean);
    }
    cell.max_over_mean += max_share / mean;
    cell.worst = std::max(cell.worst, max_share / mean);
    cell.sd_over_mean += std::sqrt(sq / node_count) / mean;

    std::vector<double> load(node_count + 1);
    for (const Ring::Range& r : ring->Ranges(3)) {
      for (NodeId id : r.replicas) load[id] += Size(r.range) / kTokenSpace;
    }
    const double replicas = static_cast<double>(std::min<std::size_t>(3, node_count));
    cell.rf3 += *std::max_element(load.begin(), load.end()) / (replicas / node_count);

    constexpr int kLookups = 20000;
    std::vector<std::string> keys;
    for (int k = 0; k < kLookups; ++k) keys.push_back("key" + std::to_string(k));
    const auto pl_begin = Clock::now();
    for (const std::string& k : keys) sink = sink + ring->PreferenceList(k, 3).front();
    cell.pl_ns +=
        std::chrono::duration<double, std::nano>(Clock::now() - pl_begin).count() / kLookups;
  }
  cell.max_over_mean /= seeds;
  cell.sd_over_mean /= seeds;
  cell.rf3 /= seeds;
  cell.build_us /= seeds;
  cell.pl_ns /= seeds;
  return cell;
}

}  // namespace

int main(int argc, char** argv) {
  const int seeds = argc > 1 ? std::atoi(argv[1]) : 20;
  if (seeds < 1) {
    std::fprintf(stderr, "usage: ring_balance [seeds >= 1]\n");
    return 2;
  }
  const std::size_t node_counts[] = {3, 5, 10, 20, 50, 100};
  const std::size_t vnode_counts[] = {1, 4, 8, 16, 32, 64, 128, 256};

  std::vector<std::vector<Cell>> cells;
  std::printf("%5s %6s %9s %7s %8s %6s %9s %7s\n", "nodes", "vnodes", "max/mean", "worst",
              "sd/mean", "rf3", "build_us", "pl_ns");
  for (std::size_t n : node_counts) {
    cells.emplace_back();
    for (std::size_t v : vnode_counts) {
      const Cell c = Measure(n, v, seeds);
      cells.back().push_back(c);
      std::printf("%5zu %6zu %9.3f %7.3f %8.3f %6.3f %9.1f %7.1f\n", n, v, c.max_over_mean, c.worst,
                  c.sd_over_mean, c.rf3, c.build_us, c.pl_ns);
    }
  }

  std::printf("\nmax/mean share (mean of %d rings), vnodes by nodes:\n%6s", seeds, "vnodes");
  for (std::size_t n : node_counts) std::printf(" %6zu", n);
  std::printf("\n");
  for (std::size_t j = 0; j < std::size(vnode_counts); ++j) {
    std::printf("%6zu", vnode_counts[j]);
    for (std::size_t i = 0; i < std::size(node_counts); ++i) {
      std::printf(" %6.3f", cells[i][j].max_over_mean);
    }
    std::printf("\n");
  }
  return 0;
}
