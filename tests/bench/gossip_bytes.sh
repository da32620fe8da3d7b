#!/usr/bin/env bash
# What sealing costs gossip: bytes each node sends per second in an idle cluster of N nodes
# (default 20, tools/cluster.sh, default timing), plain and then with a gossip key, measured
# from `kvtool stats` over SECS once every node sees every other UP.
#   tests/bench/gossip_bytes.sh [BUILD_DIR]   (N=20 SECS=30)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
N="${N:-20}"
SECS="${SECS:-30}"
WORK=$(mktemp -d)
K="$BUILD/tools/kvtool"
cleanup() {
  KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh stop "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
(umask 077 && "$K" keygen >"$WORK/gossip.key")

out_bytes() {  # the sum over every node of gossip bytes sent so far
  local sum=0
  for i in $(seq "$N"); do
    local b
    b=$("$K" --host "127.0.0.$i:7701" --json stats | python3 -c "import json,sys;print(json.load(sys.stdin)['gossip']['bytes_out'])")
    sum=$((sum + b))
  done
  echo "$sum"
}

for mode in plain sealed; do
  rm -rf "$WORK/cluster"
  flags=()
  [[ $mode == sealed ]] && flags=(--gossip-key-file "$WORK/gossip.key")
  WAIT_S=600 KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh start "$N" "$WORK/cluster" -- "${flags[@]}" >/dev/null
  b0=$(out_bytes)
  t0=$(date +%s.%N)
  sleep "$SECS"  # the measured interval itself, not a wait for an event
  b1=$(out_bytes)
  t1=$(date +%s.%N)
  KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh stop "$WORK/cluster" >/dev/null
  rate=$(python3 -c "print(f'{($b1-$b0)/($t1-$t0)/$N:.0f}')")
  echo "$mode: $rate gossip bytes per node per second ($N nodes, ${SECS} s)"
  echo "$rate" >"$WORK/$mode"
done
python3 -c "p=float(open('$WORK/plain').read());s=float(open('$WORK/sealed').read());print(f'sealed / plain: {s/p:.3f}')"
