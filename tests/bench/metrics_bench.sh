#!/usr/bin/env bash
# What metrics cost: put throughput and latency of a local 3-node cluster serving /metrics
# (--metrics on 127.0.0.N:9091) and scraped by curl every SCRAPE_S seconds (1), against the same
# cluster without metrics (tests/bench/ab_cluster.sh).
#   tests/bench/metrics_bench.sh [BUILD_DIR]   (ROUNDS=3 SECS=10 CONC=32 KEYS=100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
SCRAPE_S="${SCRAPE_S:-1}"
# cluster.sh puts node i on 127.0.0.i ({i}): each node's metrics on its own address.
LIMIT=$((3600 / SCRAPE_S))  # the scrape loop is bounded too
A_NAME="metrics off" A_KVD="" A_KVTOOL="" B_NAME="metrics on, scraped every ${SCRAPE_S} s" \
  B_KVD="--metrics 127.0.0.{i}:9091" B_KVTOOL="" \
  B_DURING="for _ in \$(seq $LIMIT); do for i in 1 2 3; do curl -s -o /dev/null http://127.0.0.\$i:9091/metrics; done; sleep $SCRAPE_S; done" \
  tests/bench/ab_cluster.sh "$BUILD"
