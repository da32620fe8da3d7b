#!/usr/bin/env bash
# Two settings of a local 3-node cluster (N=3, W=2, tools/cluster.sh) side by side: put
# throughput and latency with A's kvd flags against B's, alternating ROUNDS times in one run,
# 100-byte values over KEYS keys, CONC requests in flight for SECS each. Prints each run and the
# ratios B / A of the medians. Called by secure_bench.sh and metrics_bench.sh, which set:
#   A_NAME, A_KVD (kvd flags, one string), A_KVTOOL (kvtool flags), B_NAME, B_KVD, B_KVTOOL,
#   and optionally B_DURING: a command run in the background while B's load runs (stopped
#   after it).
#   tests/bench/ab_cluster.sh [BUILD_DIR]   (ROUNDS=3 SECS=10 CONC=32 KEYS=100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
ROUNDS="${ROUNDS:-3}"
SECS="${SECS:-10}"
CONC="${CONC:-32}"
KEYS="${KEYS:-100000}"
OPS_CAP=2000000  # every run is bounded by SECS and by this count
WORK=${AB_WORK:-$(mktemp -d)}
K="$BUILD/tools/kvtool"
cleanup() {
  KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh stop "$WORK/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

for round in $(seq "$ROUNDS"); do
  for side in A B; do
    name_var=${side}_NAME kvd_var=${side}_KVD tool_var=${side}_KVTOOL
    mode=${!name_var}
    rm -rf "$WORK/cluster"
    # shellcheck disable=SC2206
    flags=(${!kvd_var:-})
    kflags=${!tool_var:-}
    KVD="$BUILD/tools/kvd" KVTOOL="$K" KVTOOL_FLAGS="$kflags" \
      tools/cluster.sh start 3 "$WORK/cluster" -- "${flags[@]}" >/dev/null
    during=""
    if [[ $side == B && -n ${B_DURING:-} ]]; then
      bash -c "$B_DURING" >/dev/null 2>&1 &
      during=$!
    fi
    # shellcheck disable=SC2086
    "$K" $kflags --host 127.0.0.1:7701 --json bench --workload write-only --concurrency "$CONC" \
      --keys "$KEYS" --value-size 100 --duration "$SECS" --ops "$OPS_CAP" \
      >"$WORK/$side-$round.json" 2>/dev/null || true
    [[ -n $during ]] && { kill "$during" 2>/dev/null; wait "$during" 2>/dev/null || true; }
    KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh stop "$WORK/cluster" >/dev/null
    echo "round $round $mode: $(python3 -c "import json;j=json.load(open('$WORK/$side-$round.json'));o=j['operations'][0];print(f\"{j['ops_per_s']:.0f} ops/s, p50 {o['p50_us']/1000:.2f} ms, p99 {o['p99_us']/1000:.2f} ms, errors {o.get('errors',0)}\")")"
  done
done

python3 - "$WORK" "$ROUNDS" "$SECS" "$A_NAME" "$B_NAME" <<'PY'
import json, statistics, sys
work, rounds, secs, a_name, b_name = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
def runs(side):
    out = []
    for r in range(1, rounds + 1):
        j = json.load(open(f"{work}/{side}-{r}.json"))
        o = j["operations"][0]
        out.append((j["ops_per_s"], o["p99_us"] / 1000))
    return out
a, b = runs("A"), runs("B")
med = lambda xs, i: statistics.median(x[i] for x in xs)
print()
print("| cluster | ops/s (median) | p99 ms (median) |")
print("|---|---|---|")
for name, xs in ((a_name, a), (b_name, b)):
    print(f"| {name} | {med(xs,0):.0f} | {med(xs,1):.2f} |")
print(f"\nthroughput {b_name} / {a_name}: {med(b,0)/med(a,0):.3f}; p99 {b_name} / {a_name}: {med(b,1)/med(a,1):.3f}"
      f" ({rounds} alternating rounds of {secs:.0f} s)")
PY
