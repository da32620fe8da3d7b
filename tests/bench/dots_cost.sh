#!/usr/bin/env bash
# What the never-reissued dots (storage/dots.h) cost against the dots they replaced, measured in
# one run on this machine: the old code is built from OLD_COMMIT in a worktree beside this one.
#   1. put throughput of the storage path (store_bench: LocalStore writes, each passing the
#      key's previous context, on RocksDB, no RPC), old and new, alternated ROUNDS (5) times;
#   2. put throughput of one kvd through `kvtool bench` (write-only, 8 in flight), the same way;
#   3. bytes per record and the time to make a write's record (dots_bench: old and new dots on
#      the same histories, with 0 to 19 crashes of each coordinator in a key's life).
# Prints medians and new/old ratios. Not a test.
#   tests/bench/dots_cost.sh [OLD_COMMIT]   (default f728032, the last commit before the new dots)
#   OPS=200000 KEYS=100000 by default.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OLD=${1:-f728032}
OPS=${OPS:-200000}
KEYS=${KEYS:-100000}
ROUNDS=${ROUNDS:-5}
NEW_BUILD=$ROOT/build
OLD_TREE=$ROOT/build/dots-old-src
OLD_BUILD=$ROOT/build/dots-old
WORK=$(mktemp -d)
KVD=
trap '[[ -n $KVD ]] && kill $KVD 2>/dev/null; rm -rf "$WORK"' EXIT

if [[ ! -d $OLD_TREE ]]; then
  git -C "$ROOT" worktree add --detach "$OLD_TREE" "$OLD" >/dev/null
fi
cmake -S "$OLD_TREE" -B "$OLD_BUILD" -G Ninja >/dev/null
ninja -C "$OLD_BUILD" store_bench kvd kvtool >/dev/null
ninja -C "$NEW_BUILD" store_bench dots_bench kvd kvtool >/dev/null

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

store_ops() {  # store_ops BUILD: put ops/s of store_bench
  "$1/tests/store_bench" --ops "$OPS" --keys "$KEYS" --json |
    jq -r '.operations[] | select(.op == "put") | .ops_per_s'
}

kvd_ops() {  # kvd_ops BUILD [KVD_FLAGS...]: put ops/s of one kvd through kvtool bench
  local build=$1 dir=$WORK/kvd-$RANDOM
  shift
  "$build/tools/kvd" --data-dir "$dir" --listen 127.0.0.1:7790 "$@" >"$WORK/kvd.log" 2>&1 &
  KVD=$!
  for _ in $(seq 100); do
    "$build/tools/kvtool" --host 127.0.0.1:7790 --timeout-ms 200 status >/dev/null 2>&1 && break
    sleep 0.1  # polling for the node to listen
  done
  "$build/tools/kvtool" --host 127.0.0.1:7790 --json bench --concurrency 8 --ops "$OPS" \
    --workload write-only --keys "$KEYS" --value-size 100 2>/dev/null | jq -r '.ops_per_s'
  kill "$KVD"
  wait "$KVD" 2>/dev/null || true
  KVD=
  rm -rf "$dir"
}

echo "== store_bench puts/s (old $OLD, new $(git -C "$ROOT" rev-parse --short HEAD)), alternated"
for round in $(seq "$ROUNDS"); do
  o=$(store_ops "$OLD_BUILD"); n=$(store_ops "$NEW_BUILD")
  echo "round $round: old $o new $n"
  echo "$o" >>"$WORK/store_old"; echo "$n" >>"$WORK/store_new"
done
so=$(median <"$WORK/store_old"); sn=$(median <"$WORK/store_new")
echo "store_bench median: old $so new $sn ratio $(awk -v a="$sn" -v b="$so" 'BEGIN {printf "%.3f", a/b}')"

# The new kvd also fsyncs its log every second (--wal-sync-interval-ms, not about dots): it
# runs both ways, so that the dots' own cost shows apart.
echo "== one kvd, kvtool bench write-only, 8 in flight, alternated (new: with and without the periodic log sync)"
for round in $(seq "$ROUNDS"); do
  o=$(kvd_ops "$OLD_BUILD"); n=$(kvd_ops "$NEW_BUILD"); u=$(kvd_ops "$NEW_BUILD" --wal-sync-interval-ms 0)
  echo "round $round: old $o new $n new-without-log-sync $u"
  echo "$o" >>"$WORK/kvd_old"; echo "$n" >>"$WORK/kvd_new"; echo "$u" >>"$WORK/kvd_nosync"
done
ko=$(median <"$WORK/kvd_old"); kn=$(median <"$WORK/kvd_new"); ku=$(median <"$WORK/kvd_nosync")
echo "kvd median: old $ko new $kn ratio $(awk -v a="$kn" -v b="$ko" 'BEGIN {printf "%.3f", a/b}');" \
  "new without the log sync $ku ratio $(awk -v a="$ku" -v b="$ko" 'BEGIN {printf "%.3f", a/b}')"

echo "== dots_bench: bytes per record and ns per write, old dots against new (same histories)"
"$NEW_BUILD/tests/dots_bench" --keys 20000 --writes 20 --coordinators 3
