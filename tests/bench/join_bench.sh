#!/usr/bin/env bash
# Join benchmark (not a test; root, for the iptables byte counter): a 3-node cluster on
# 127.0.0.1-3 holding KEYS keys of 100-byte values, then a 4th node joins. Prints the join's
# time, the bytes into the joiner (every packet to 127.0.0.4) against the record bytes it copied
# (kvd's completion line), and with LOAD=1 a 50/50 bench through node 2 before and during it.
#   KEYS=100000 [LOAD=1] tests/bench/join_bench.sh
set -u
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-100000}
D=${DIR:-/tmp/join-bench}
K=build/tools/kvtool
F="--probe-interval-ms 200 --probe-timeout-ms 100 --gossip-interval-ms 50 --push-pull-interval-ms 2000 --repair-interval-s 0"
[[ $(id -u) -eq 0 ]] || { echo "join_bench: needs root (iptables counter)" >&2; exit 77; }
tools/cluster.sh stop "$D" >/dev/null 2>&1
[[ -f $D/n4.pid ]] && kill "$(cat "$D/n4.pid")" 2>/dev/null
rm -rf "$D"
tools/cluster.sh start 3 "$D" -- $F >/dev/null || exit 1
$K --host 127.0.0.1:7701 bench --workload read-only --keys "$KEYS" --ops 2000 --concurrency 32 \
  --value-size 100 >"$D/load.txt" 2>&1 || { cat "$D/load.txt"; exit 1; }
bench() { $K --host 127.0.0.2:7701 bench --workload 50/50 --keys "$KEYS" --duration 8 \
  --concurrency 32 --value-size 100 --no-preload; }
[[ -n ${LOAD:-} ]] && bench >"$D/before.txt" 2>&1
iptables -I INPUT -d 127.0.0.4 -j ACCEPT
build/tools/kvd --data-dir "$D/n4" --listen 127.0.0.4:7701 --gossip 127.0.0.4:7946 \
  --seeds 127.0.0.1:7946 $F >"$D/n4.out" 2>"$D/n4.log" &
echo $! >"$D/n4.pid"
ts=$(date +%s.%N)
bp=""
[[ -n ${LOAD:-} ]] && { bench >"$D/during.txt" 2>&1 & bp=$!; }
for _ in $(seq 6000); do grep -q "join of .* complete" "$D/n4.log" && break; sleep 0.1; done
te=$(date +%s.%N)
[[ -n $bp ]] && wait "$bp"
bytes_in=$(iptables -L INPUT -v -x -n | awk '$9 == "127.0.0.4" {print $2; exit}')
iptables -D INPUT -d 127.0.0.4 -j ACCEPT
copied=$(grep -o "[0-9]* bytes of records copied" "$D/n4.log" | awk '{print $1}')
echo "join of a 4th node, $KEYS keys: $(echo "$te - $ts" | bc) s, $bytes_in bytes in," \
  "$copied record bytes copied, ratio $(echo "scale=3; $bytes_in / $copied" | bc)"
if [[ -n ${LOAD:-} ]]; then
  echo "before:"; grep -E "put|get" "$D/before.txt"
  echo "during:"; grep -E "put|get" "$D/during.txt"
fi
tools/cluster.sh stop "$D" >/dev/null
