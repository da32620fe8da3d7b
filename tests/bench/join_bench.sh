#!/usr/bin/env bash
# Movement benchmark (not a test; root, for the iptables byte counters). MODE=join: a 3-node
# cluster on 127.0.0.1-3 holding KEYS keys of 100-byte values, then a 4th node joins.
# MODE=decommission: a 4-node cluster holding them, then node 4 decommissions.
# Prints the movement's time, and the bytes into the nodes that receive ranges (the joiner; the
# three that stay) against the bytes of the records copied (key and record, from the driver's
# completion line). With LOAD=1, a 50/50 bench through node 2 runs before and during the
# movement: throughput and p99, each "during" against "before" (10 s, after the load) and "after"
# (10 s, once the movement is complete). The "during" load spans the whole movement: it starts
# with it and ends when the completion line appears (kvtool bench --until-file). The byte ratio
# then also counts the writes the clients send, so take it from a run without LOAD. The load is
# as fast as replies come (32 in flight; it saturates a small machine), or RATE operations per
# second open loop, with 1024 in flight so that a stall does not hold back sends.
#   KEYS=1000000 MODE=join [LOAD=1 [RATE=800]] [KVD=path/to/kvd] tests/bench/join_bench.sh
# KVD (default build/tools/kvd) compares builds: the client is always build/tools/kvtool.
set -u
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-100000}
MODE=${MODE:-join}
D=${DIR:-/tmp/join-bench}
K=build/tools/kvtool
export KVD=${KVD:-build/tools/kvd}
F="--probe-interval-ms 200 --probe-timeout-ms 100 --gossip-interval-ms 50 --push-pull-interval-ms 2000 --repair-interval-s 0 ${KVD_FLAGS:-}"
[[ $(id -u) -eq 0 ]] || { echo "join_bench: needs root (iptables counter)" >&2; exit 77; }
[[ $MODE == join || $MODE == decommission ]] || { echo "join_bench: MODE is join or decommission" >&2; exit 2; }
[[ $KEYS =~ ^[0-9]+$ && $KEYS -ge 1000 && $KEYS -le 100000000 ]] || { echo "join_bench: KEYS must be 1000..1e8" >&2; exit 2; }
tools/cluster.sh stop "$D" >/dev/null 2>&1
[[ -f $D/n4.pid ]] && kill "$(cat "$D/n4.pid")" 2>/dev/null
rm -rf "$D"
start=3
[[ $MODE == decommission ]] && start=4
tools/cluster.sh start $start "$D" -- $F >/dev/null || exit 1
$K --host 127.0.0.1:7701 bench --workload read-only --keys "$KEYS" --ops 2000 --concurrency 32 \
  --value-size 100 >"$D/load.txt" 2>&1 || { cat "$D/load.txt"; exit 1; }
conc=32
[[ ${RATE:-0} != 0 ]] && conc=1024
bench() {  # bench SECONDS [more kvtool bench flags]
  local secs=$1; shift
  $K --host 127.0.0.2:7701 --json bench --workload 50/50 --keys "$KEYS" --duration "$secs" \
    --concurrency $conc --value-size 100 --no-preload --rate "${RATE:-0}" "$@"
}
[[ -n ${LOAD:-} ]] && bench 10 >"$D/before.json" 2>"$D/before.txt"
if [[ $MODE == join ]]; then receivers=(127.0.0.4); log=$D/n4.log; else receivers=(127.0.0.1 127.0.0.2 127.0.0.3); log=$D/n4.log; fi
for r in "${receivers[@]}"; do iptables -I INPUT -d "$r" -j ACCEPT; done
ts=$(date +%s.%N)
if [[ $MODE == join ]]; then
  "$KVD" --data-dir "$D/n4" --listen 127.0.0.4:7701 --gossip 127.0.0.4:7946 \
    --seeds 127.0.0.1:7946 $F >"$D/n4.out" 2>"$D/n4.log" &
  echo $! >"$D/n4.pid"
fi
bp=""
rm -f "$D/moved"
[[ -n ${LOAD:-} ]] && { bench 1200 --until-file "$D/moved" >"$D/during.json" 2>"$D/during.txt" & bp=$!; }
[[ $MODE == decommission ]] && $K --host 127.0.0.4:7701 --timeout-ms 5000 decommission >"$D/decommission.txt" 2>&1
# Polling the node's log for its completion line, with a deadline (10 minutes).
for _ in $(seq 6000); do grep -q "$MODE of .* complete" "$log" && break; sleep 0.1; done
te=$(date +%s.%N)
touch "$D/moved"
[[ -n $bp ]] && wait "$bp"
[[ -n ${LOAD:-} ]] && bench 10 >"$D/after.json" 2>"$D/after.txt"
bytes_in=0
for r in "${receivers[@]}"; do
  b=$(iptables -L INPUT -v -x -n | awk -v r="$r" '$9 == r {print $2; exit}')
  bytes_in=$((bytes_in + b))
  iptables -D INPUT -d "$r" -j ACCEPT
done
copied=$(grep "$MODE of .* complete" "$log" | tail -1 | grep -o "[0-9]* bytes of records copied" | awk '{print $1}')
[[ -n $copied ]] || { echo "join_bench: no completion line in $log" >&2; tail -5 "$log" >&2; exit 1; }
echo "$MODE, $KEYS keys: $(echo "$te - $ts" | bc) s, $bytes_in bytes into ${receivers[*]}," \
  "$copied record bytes copied, ratio $(echo "scale=3; $bytes_in / $copied" | bc)"
if [[ -n ${LOAD:-} ]]; then
  python3 - "$D" <<'PY'
import json, sys
d = sys.argv[1]
phase = {p: json.load(open(f"{d}/{p}.json")) for p in ("before", "during", "after")}
def ops(p):
    return {o["op"]: o for o in phase[p]["operations"]}
print(f"{'phase':8} {'op':4} {'secs':>6} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7}")
for p in phase:
    for name, o in sorted(ops(p).items()):
        print(f"{p:8} {name:4} {phase[p]['seconds']:6.1f} {o['ops_per_s']:8.0f} {o['p50_us'] / 1e3:8.2f} "
              f"{o['p99_us'] / 1e3:8.2f} {o['p999_us'] / 1e3:9.2f} {o['errors']:7}")
for name in sorted(ops("during")):
    dur = ops("during")[name]["p99_us"]
    print(f"{name} p99 during / before {dur / ops('before')[name]['p99_us']:.2f}, "
          f"during / after {dur / ops('after')[name]['p99_us']:.2f}")
PY
fi
tools/cluster.sh stop "$D" >/dev/null
[[ $MODE == join && -f $D/n4.pid ]] && kill "$(cat "$D/n4.pid")" 2>/dev/null
exit 0
