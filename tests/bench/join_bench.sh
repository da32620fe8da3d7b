#!/usr/bin/env bash
# Movement benchmark (not a test; root, for the iptables byte counters). MODE=join: a 3-node
# cluster on 127.0.0.1-3 holding KEYS keys of 100-byte values, then a 4th node joins.
# MODE=decommission: a 4-node cluster holding them, then node 4 decommissions.
# Prints the movement's time, and the bytes into the nodes that receive ranges (the joiner; the
# three that stay) against the bytes of the records copied (key and record, from the driver's
# completion line). With LOAD=1, a 50/50 bench through node 2 runs before and during the
# movement: throughput and p99, each "during" against its "before" (the byte ratio then also
# counts the writes the clients send, so take it from a run without LOAD). The load is as fast as
# replies come (it saturates a small machine), or RATE operations per second.
#   KEYS=1000000 MODE=join [LOAD=1 [RATE=4000]] tests/bench/join_bench.sh
set -u
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-100000}
MODE=${MODE:-join}
D=${DIR:-/tmp/join-bench}
K=build/tools/kvtool
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
bench() { $K --host 127.0.0.2:7701 bench --workload 50/50 --keys "$KEYS" --duration 8 \
  --concurrency 32 --value-size 100 --no-preload --rate "${RATE:-0}"; }
[[ -n ${LOAD:-} ]] && bench >"$D/before.txt" 2>&1
if [[ $MODE == join ]]; then receivers=(127.0.0.4); log=$D/n4.log; else receivers=(127.0.0.1 127.0.0.2 127.0.0.3); log=$D/n4.log; fi
for r in "${receivers[@]}"; do iptables -I INPUT -d "$r" -j ACCEPT; done
ts=$(date +%s.%N)
if [[ $MODE == join ]]; then
  build/tools/kvd --data-dir "$D/n4" --listen 127.0.0.4:7701 --gossip 127.0.0.4:7946 \
    --seeds 127.0.0.1:7946 $F >"$D/n4.out" 2>"$D/n4.log" &
  echo $! >"$D/n4.pid"
fi
bp=""
[[ -n ${LOAD:-} ]] && { bench >"$D/during.txt" 2>&1 & bp=$!; }
[[ $MODE == decommission ]] && $K --host 127.0.0.4:7701 --timeout-ms 5000 decommission >"$D/decommission.txt" 2>&1
# Polling the node's log for its completion line, with a deadline (10 minutes).
for _ in $(seq 6000); do grep -q "$MODE of .* complete" "$log" && break; sleep 0.1; done
te=$(date +%s.%N)
[[ -n $bp ]] && wait "$bp"
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
  echo "before:"; grep -E "put|get|ops/s" "$D/before.txt"
  echo "during:"; grep -E "put|get|ops/s" "$D/during.txt"
fi
tools/cluster.sh stop "$D" >/dev/null
[[ $MODE == join && -f $D/n4.pid ]] && kill "$(cat "$D/n4.pid")" 2>/dev/null
exit 0
