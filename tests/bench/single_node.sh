#!/usr/bin/env bash
# Single-node throughput and latency: kvd through `kvtool bench` at 1, 8 and 32 requests in
# flight, beside db_bench (Debian's rocksdb-tools) and store_bench (LocalStore without RPC),
# all in this run on this machine. Prints a table of ops/s, p50/p99 and ratios.
#   tests/bench/single_node.sh [BUILD_DIR]   (OPS=200000 KEYS=100000 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
OPS="${OPS:-200000}"
KEYS="${KEYS:-100000}"
command -v db_bench >/dev/null || { apt-get install -y -qq rocksdb-tools >/dev/null; }
WORK=$(mktemp -d)
trap 'kill $KVD 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "== db_bench (16-byte keys, 100-byte values, 1 thread, WAL without fsync)"
db_bench --benchmarks=fillrandom,readrandom --num="$OPS" --value_size=100 --key_size=16 \
  --db="$WORK/dbb" --disable_wal=false --sync=false --threads=1 2>/dev/null \
  | grep -E "^(fillrandom|readrandom)" | tee "$WORK/dbb.txt"
DBB_FILL=$(awk '/^fillrandom/ {for (i=1;i<=NF;i++) if ($i ~ /^ops\/sec/) print $(i-1)}' "$WORK/dbb.txt")
DBB_READ=$(awk '/^readrandom/ {for (i=1;i<=NF;i++) if ($i ~ /^ops\/sec/) print $(i-1)}' "$WORK/dbb.txt")

echo "== db_bench fillsync (fsync per write; db_bench runs num/1000 ops)"
db_bench --benchmarks=fillsync --num=$((OPS * 10)) --value_size=100 --key_size=16 \
  --db="$WORK/dbs" --threads=1 2>/dev/null | grep -E "^fillsync" | tee "$WORK/dbs.txt"
DBB_SYNC=$(awk '/^fillsync/ {for (i=1;i<=NF;i++) if ($i ~ /^ops\/sec/) print $(i-1)}' "$WORK/dbs.txt")

echo "== store_bench (LocalStore: record read-modify-write on RocksDB, no RPC)"
"$BUILD/tests/store_bench" --ops "$OPS" --keys "$KEYS" --json >"$WORK/store.json"
cat "$WORK/store.json"

echo "== kvd + kvtool bench over loopback"
"$BUILD/tools/kvd" --data-dir "$WORK/kvd" --listen 127.0.0.1:0 >"$WORK/kvd.out" 2>"$WORK/kvd.err" &
KVD=$!
for _ in $(seq 100); do grep -q listening "$WORK/kvd.out" && break; sleep 0.1; done
HOST=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$WORK/kvd.out")
for c in 1 8 32; do
  for w in write-only read-only; do
    "$BUILD/tools/kvtool" --host "$HOST" --json bench --workload $w --concurrency $c \
      --ops "$OPS" --keys "$KEYS" --duration 60 2>/dev/null >"$WORK/kv_${w}_$c.json"
  done
done

kill $KVD
wait $KVD 2>/dev/null || true
echo "== kvd --sync-writes (group commit) over loopback"
"$BUILD/tools/kvd" --data-dir "$WORK/kvds" --listen 127.0.0.1:0 --sync-writes >"$WORK/kvds.out" 2>"$WORK/kvds.err" &
KVD=$!
for _ in $(seq 100); do grep -q listening "$WORK/kvds.out" && break; sleep 0.1; done
HOST=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$WORK/kvds.out")
for c in 1 32; do
  "$BUILD/tools/kvtool" --host "$HOST" --json bench --workload write-only --concurrency $c \
    --ops $((OPS / 10)) --keys "$KEYS" --duration 60 2>/dev/null >"$WORK/kv_sync_$c.json"
done

python3 - "$WORK" "$DBB_FILL" "$DBB_READ" "$DBB_SYNC" <<'PY'
import json, sys
work, fill, read, fsync = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
store = {o["op"]: o for o in json.load(open(f"{work}/store.json"))["operations"]}
print()
print("| path | in flight | ops/s | p50 us | p99 us | / db_bench | / store_bench |")
print("|---|---|---|---|---|---|---|")
print(f"| db_bench fillrandom | 1 | {fill:.0f} | | | 1.00 | |")
print(f"| db_bench readrandom | 1 | {read:.0f} | | | 1.00 | |")
print(f"| db_bench fillsync | 1 | {fsync:.0f} | | | 1.00 | |")
for op, base in (("put", fill), ("get", read)):
    s = store[op]
    print(f"| store_bench {op} | 1 | {s['ops_per_s']:.0f} | {s['p50_us']} | {s['p99_us']} | {s['ops_per_s']/base:.2f} | 1.00 |")
for op, w, base in (("put", "write", fill), ("get", "read", read)):
    for c in (1, 8, 32):
        j = json.load(open(f"{work}/kv_{w}_{c}.json"))
        o = [x for x in j["operations"] if x["op"] == op][0]
        print(f"| kvd {op} | {c} | {o['ops_per_s']:.0f} | {o['p50_us']} | {o['p99_us']} | "
              f"{o['ops_per_s']/base:.2f} | {o['ops_per_s']/store[op]['ops_per_s']:.2f} |")
for c in (1, 32):
    o = json.load(open(f"{work}/kv_sync_{c}.json"))["operations"][0]
    print(f"| kvd --sync-writes put | {c} | {o['ops_per_s']:.0f} | {o['p50_us']} | {o['p99_us']} | "
          f"{o['ops_per_s']/fsync:.2f} (vs fillsync) | |")
PY
