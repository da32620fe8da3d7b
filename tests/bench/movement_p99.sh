#!/usr/bin/env bash
# Client p99 during ring movements against quiet windows of the same run (a benchmark, not a
# test). A 3-node cluster on 127.0.0.1-3 holds KEYS keys of 100-byte values; a 50/50 load at
# quorum (or CONSISTENCY) goes through node 2 at RATE operations per second, open loop (1024 in flight, so that a
# stall does not hold back sends). Then ROUNDS times: a quiet window (QUIET_S seconds), a fresh
# 4th node joins (a "join" window, from its start to its completion line), a quiet window, and
# that node decommissions (a "decommission" window, to its completion line). A last quiet window
# closes the run. The first window, straight after the load, warms up and is not counted.
#
# Prints each window's p99 for gets and puts, then the median of the movement windows against
# the median of the quiet ones: alternating them in one run keeps a noisy, shared machine from
# deciding the ratio.
#   KEYS=1000000 ROUNDS=3 RATE=800 [KVD=path/to/kvd] [KVD_FLAGS="..."] tests/bench/movement_p99.sh
set -u
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-800}
QUIET_S=${QUIET_S:-10}
D=${DIR:-/tmp/movement-p99}
K=build/tools/kvtool
export KVD=${KVD:-build/tools/kvd}
F="--probe-interval-ms 200 --probe-timeout-ms 100 --gossip-interval-ms 50 --push-pull-interval-ms 2000 --repair-interval-s 0 ${KVD_FLAGS:-}"
[[ $KEYS =~ ^[0-9]+$ && $KEYS -ge 1000 && $KEYS -le 100000000 ]] || { echo "movement_p99: KEYS must be 1000..1e8" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "movement_p99: ROUNDS must be 1..20" >&2; exit 2; }
[[ $RATE =~ ^[0-9]+$ && $RATE -ge 1 && $RATE -le 100000 ]] || { echo "movement_p99: RATE must be 1..100000" >&2; exit 2; }
[[ -z ${CONSISTENCY:-} || $CONSISTENCY =~ ^(one|quorum|all)$ ]] || { echo "movement_p99: CONSISTENCY is one, quorum or all" >&2; exit 2; }
[[ $QUIET_S =~ ^[0-9]+$ && $QUIET_S -ge 2 && $QUIET_S -le 600 ]] || { echo "movement_p99: QUIET_S must be 2..600" >&2; exit 2; }
stop_all() {
  tools/cluster.sh stop "$D" >/dev/null 2>&1
  for p in "$D"/x*.pid; do [[ -f $p ]] && kill "$(cat "$p")" 2>/dev/null; done
}
stop_all
rm -rf "$D"
tools/cluster.sh start 3 "$D" -- $F >/dev/null || exit 1
trap stop_all EXIT
$K --host 127.0.0.1:7701 bench --workload read-only --keys "$KEYS" --ops 2000 --concurrency 32 \
  --value-size 100 >"$D/load.txt" 2>&1 || { cat "$D/load.txt"; exit 1; }
bench() {  # bench NAME SECONDS [more kvtool bench flags]: one window's load, as NAME.json
  local name=$1 secs=$2; shift 2
  $K --host 127.0.0.2:7701 --json bench --workload 50/50 --keys "$KEYS" --duration "$secs" \
    --ops 100000000 --concurrency 1024 ${CONSISTENCY:+--consistency $CONSISTENCY} --value-size 100 --no-preload --rate "$RATE" \
    --trace-file "$D/$name.trace" "$@" >"$D/$name.json" 2>"$D/$name.txt"
}
wait_line() {  # wait_line FILE PATTERN: poll FILE for PATTERN, for at most 10 minutes
  for _ in $(seq 6000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "movement_p99: no \"$2\" in $1 after 10 minutes" >&2
  return 1
}
movement() {  # movement NAME: one window's load while the movement started before it runs
  local name=$1 log=$2 pattern=$3
  rm -f "$D/moved"
  bench "$name" 1200 --until-file "$D/moved" &
  local bp=$!
  wait_line "$log" "$pattern"
  local rc=$?
  touch "$D/moved"
  wait "$bp"
  return $rc
}
windows=(warmup)
bench warmup "$QUIET_S" || exit 1
for r in $(seq "$ROUNDS"); do
  bench "quiet$r" "$QUIET_S" || exit 1
  windows+=("quiet$r")
  "$KVD" --data-dir "$D/x$r" --listen 127.0.0.4:7701 --gossip 127.0.0.4:7946 \
    --seeds 127.0.0.1:7946 $F >"$D/x$r.out" 2>"$D/x$r.log" &
  echo $! >"$D/x$r.pid"
  movement "join$r" "$D/x$r.log" "join of .* complete" || exit 1
  windows+=("join$r")
  bench "settled$r" "$QUIET_S" || exit 1
  windows+=("settled$r")
  $K --host 127.0.0.4:7701 --timeout-ms 5000 decommission >"$D/decommission$r.txt" 2>&1 &
  movement "decommission$r" "$D/x$r.log" "decommission of .* complete" || exit 1
  windows+=("decommission$r")
  # The decommissioned node exits by itself; the next round's node takes its addresses.
  for _ in $(seq 600); do kill -0 "$(cat "$D/x$r.pid")" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$(cat "$D/x$r.pid")" 2>/dev/null && { echo "movement_p99: node $r did not exit" >&2; exit 1; }
done
bench final "$QUIET_S" || exit 1
windows+=(final)
python3 - "$D" "${windows[@]}" <<'PY'
import json, statistics, sys
d, names = sys.argv[1], sys.argv[2:]
rows = {}
print(f"{'window':16} {'secs':>5} {'ops/s':>6} {'get p99':>8} {'put p99':>8} {'put p99.9':>9} {'errors':>6}")
for n in names:
    j = json.load(open(f"{d}/{n}.json"))
    ops = {o["op"]: o for o in j["operations"]}
    rows[n] = {op: ops[op]["p99_us"] / 1e3 for op in ("get", "put")}
    total = sum(o["ops_per_s"] for o in ops.values())
    errors = sum(o["errors"] for o in ops.values())
    print(f"{n:16} {j['seconds']:5.1f} {total:6.0f} {rows[n]['get']:8.2f} {rows[n]['put']:8.2f} "
          f"{ops['put']['p999_us'] / 1e3:9.2f} {errors:6}")
quiet = [n for n in names if n.startswith(("quiet", "settled", "final"))]
for kind in ("join", "decommission"):
    moving = [n for n in names if n.startswith(kind)]
    for op in ("get", "put"):
        m = statistics.median(rows[n][op] for n in moving)
        q = statistics.median(rows[n][op] for n in quiet)
        print(f"{kind} {op} p99: median {m:.2f} ms during ({len(moving)} windows) / median "
              f"{q:.2f} ms quiet ({len(quiet)} windows) = {m / q:.2f}")
PY
