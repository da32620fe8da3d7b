#!/usr/bin/env bash
# Replicated throughput and latency: `kvtool bench` against a local 3-node cluster (N=3, R=W=2,
# tools/cluster.sh) beside one kvd alone and raw RocksDB (db_bench), all in this run on this
# machine, with 100-byte values over KEYS keys. Write-only and read-only at 1, 16 and 64
# requests in flight, then the cluster at half its peak rate (64 in flight) for p99 there.
# Prints a table of ops/s, p50/p99/p99.9 and ratios.
#   tests/bench/cluster_bench.sh [BUILD_DIR]   (KEYS=100000 SECS=8 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
KEYS="${KEYS:-100000}"
SECS="${SECS:-8}"
OPS_CAP=2000000  # every run is bounded by SECS and by this count
command -v db_bench >/dev/null || { apt-get install -y -qq rocksdb-tools >/dev/null; }
WORK=$(mktemp -d)
KVD=
cleanup() {
  [[ -n $KVD ]] && kill "$KVD" 2>/dev/null || true
  KVD="$BUILD/tools/kvd" KVTOOL="$BUILD/tools/kvtool" tools/cluster.sh stop "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
K="$BUILD/tools/kvtool"

echo "== db_bench (16-byte keys, 100-byte values, 1 thread, WAL without fsync)"
db_bench --benchmarks=fillrandom,readrandom --num="$KEYS" --value_size=100 --key_size=16 \
  --db="$WORK/dbb" --disable_wal=false --sync=false --threads=1 2>/dev/null |
  grep -E "^(fillrandom|readrandom)" | tee "$WORK/dbb.txt"

run() {  # run NAME HOST WORKLOAD CONCURRENCY [EXTRA...]
  local name=$1 host=$2 w=$3 c=$4
  shift 4
  "$K" --host "$host" --json bench --workload "$w" --concurrency "$c" --keys "$KEYS" \
    --value-size 100 --duration "$SECS" --ops "$OPS_CAP" "$@" 2>/dev/null >"$WORK/$name.json" || true
}

echo "== one kvd alone"
"$BUILD/tools/kvd" --data-dir "$WORK/single" --listen 127.0.0.1:0 >"$WORK/single.out" 2>"$WORK/single.err" &
KVD=$!
for _ in $(seq 100); do grep -q listening "$WORK/single.out" && break; sleep 0.1; done
HOST=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$WORK/single.out")
for c in 1 16 64; do
  run "single_write_$c" "$HOST" write-only $c
  run "single_read_$c" "$HOST" read-only $c
done
kill $KVD
wait $KVD 2>/dev/null || true
KVD=

echo "== 3-node cluster (N=3, R=W=2), client through 127.0.0.1:7701"
KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh start 3 "$WORK/cluster"
KVD=
for c in 1 16 64; do
  run "cluster_write_$c" 127.0.0.1:7701 write-only $c
  run "cluster_read_$c" 127.0.0.1:7701 read-only $c
done
PEAK_W=$(python3 -c "import json;print(json.load(open('$WORK/cluster_write_64.json'))['ops_per_s'])")
PEAK_R=$(python3 -c "import json;print(json.load(open('$WORK/cluster_read_64.json'))['ops_per_s'])")
run cluster_write_half 127.0.0.1:7701 write-only 64 --rate "$(python3 -c "print($PEAK_W/2)")"
run cluster_read_half 127.0.0.1:7701 read-only 64 --rate "$(python3 -c "print($PEAK_R/2)")"

python3 - "$WORK" <<'PY'
import json, re, sys
work = sys.argv[1]
dbb = {}
for line in open(f"{work}/dbb.txt"):
    m = re.match(r"^(\w+)\s*:\s*([\d.]+) micros/op (\d+) ops/sec", line)
    if m: dbb[m.group(1)] = float(m.group(3))
def load(name):
    try:
        j = json.load(open(f"{work}/{name}.json"))
    except Exception:
        return None
    ops = j["operations"][0] if j["operations"] else {}
    return j, ops
print()
print("| run | in flight | ops/s | p50 ms | p99 ms | p99.9 ms | errors | / one node | / db_bench |")
print("|---|---|---|---|---|---|---|---|---|")
for kind, base in (("write", "fillrandom"), ("read", "readrandom")):
    for c in ("1", "16", "64", "half"):
        for setup in ("single", "cluster"):
            r = load(f"{setup}_{kind}_{c}")
            if r is None: continue
            j, o = r
            single = load(f"single_{kind}_{c}")
            ratio = j["ops_per_s"] / single[0]["ops_per_s"] if single and setup == "cluster" else None
            label = c if c != "half" else f"64, at {j['rate_limit']:.0f}/s (half peak)"
            print(f"| {setup} {kind} | {label} | {j['ops_per_s']:.0f} | {o.get('p50_us',0)/1000:.2f} | "
                  f"{o.get('p99_us',0)/1000:.2f} | {o.get('p999_us',0)/1000:.2f} | {o.get('errors',0)} | "
                  f"{'%.2f' % ratio if ratio else ''} | {j['ops_per_s']/dbb.get(base,1):.2f} |")
print(f"\ndb_bench fillrandom {dbb.get('fillrandom',0):.0f} ops/s, readrandom {dbb.get('readrandom',0):.0f} ops/s")
PY
