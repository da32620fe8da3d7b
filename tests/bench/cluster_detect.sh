#!/usr/bin/env bash
# Failure detection on a real 5-node cluster (127.0.0.1 .. 127.0.0.5) with DEFAULT membership
# settings: time from SIGKILL of one node until every other node shows it DOWN, over RUNS runs
# (default 7), and the median. Each run restarts the victim and waits until it is UP everywhere.
#   tests/bench/cluster_detect.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
RUNS="${RUNS:-7}"
WORK=$(mktemp -d)
declare -a PIDS RPC
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

start() {  # start N SEED
  local i=$1 seed=$2 extra=()
  [[ -n $seed ]] && extra=(--seeds "$seed")
  "$BUILD/tools/kvd" --data-dir "$WORK/n$i" --listen "127.0.0.$i:0" --gossip "127.0.0.$i:0" \
    "${extra[@]}" >"$WORK/n$i.out" 2>>"$WORK/n$i.err" &
  PIDS[$i]=$!
  for _ in $(seq 200); do grep -q listening "$WORK/n$i.out" && break; sleep 0.05; done
  RPC[$i]=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$WORK/n$i.out")
}

# count_status NODE STATUS: how many members node NODE sees with STATUS.
count_status() {
  "$BUILD/tools/kvtool" --host "${RPC[$1]}" --json --timeout-ms 2000 status 2>/dev/null |
    grep -o "\"status\":\"$2\"" | wc -l
}

wait_all_up() {
  for _ in $(seq 1200); do
    local ok=1
    for i in 1 2 3 4 5; do [[ $(count_status "$i" UP) -eq 5 ]] || ok=0; done
    ((ok)) && return 0
    sleep 0.05
  done
  echo "cluster did not converge" >&2
  return 1
}

start 1 ""
SEED=$(sed -n 's/.*gossip on \([0-9.:]*\).*/\1/p' "$WORK/n1.out")
for i in 2 3 4 5; do start "$i" "$SEED"; done
wait_all_up

TIMES=()
for run in $(seq "$RUNS"); do
  victim=$((2 + (run - 1) % 4))
  t0=$(date +%s.%N)
  kill -9 "${PIDS[$victim]}"
  wait "${PIDS[$victim]}" 2>/dev/null || true
  while :; do
    all=1
    for i in 1 2 3 4 5; do
      [[ $i -eq $victim ]] && continue
      [[ $(count_status "$i" DOWN) -ge 1 ]] || all=0
    done
    ((all)) && break
    if (($(echo "$(date +%s.%N) - $t0 > 120" | bc))); then echo "not detected" >&2; exit 1; fi
    sleep 0.02
  done
  t=$(echo "$(date +%s.%N) - $t0" | bc)
  TIMES+=("$t")
  printf "run %d: node %d DOWN everywhere after %.2f s\n" "$run" "$victim" "$t"
  start "$victim" "$SEED"
  wait_all_up
done
printf "%s\n" "${TIMES[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.2f s over %d runs (min %.2f, max %.2f); defaults: probe interval 1 s, probe timeout 500 ms, k=3, suspicion mult 4\n", a[int((NR+1)/2)], NR, a[1], a[NR]}'
