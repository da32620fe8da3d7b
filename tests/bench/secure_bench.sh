#!/usr/bin/env bash
# What security costs: put throughput and latency of a local 3-node cluster (N=3, W=2,
# tools/cluster.sh) with gossip sealed and TLS required (tools/certs.sh, kvtool keygen), against
# the same cluster plain, alternating ROUNDS times in this run, 100-byte values over KEYS keys,
# CONC requests in flight for SECS each. Prints each run and the ratios secure / plain of the
# medians (tests/bench/gossip_bytes.sh measures what sealing costs gossip).
#   tests/bench/secure_bench.sh [BUILD_DIR]   (ROUNDS=3 SECS=10 CONC=32 KEYS=100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
ROUNDS="${ROUNDS:-3}"
SECS="${SECS:-10}"
CONC="${CONC:-32}"
KEYS="${KEYS:-100000}"
OPS_CAP=2000000  # every run is bounded by SECS and by this count
WORK=$(mktemp -d)
K="$BUILD/tools/kvtool"
cleanup() {
  KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh stop "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
tools/certs.sh "$WORK/certs" node >/dev/null
(umask 077 && "$K" keygen >"$WORK/gossip.key")
C="$WORK/certs"
SECURE_KVD=(--gossip-key-file "$WORK/gossip.key" --tls-cert "$C/node.pem" --tls-key "$C/node-key.pem"
            --tls-ca "$C/ca.pem")
SECURE_KVTOOL="--tls-cert $C/client.pem --tls-key $C/client-key.pem --tls-ca $C/ca.pem"

for round in $(seq "$ROUNDS"); do
  for mode in plain secure; do
    rm -rf "$WORK/cluster"
    if [[ $mode == secure ]]; then
      flags=("${SECURE_KVD[@]}")
      kflags=$SECURE_KVTOOL
    else
      flags=()
      kflags=
    fi
    KVD="$BUILD/tools/kvd" KVTOOL="$K" KVTOOL_FLAGS="$kflags" \
      tools/cluster.sh start 3 "$WORK/cluster" -- "${flags[@]}" >/dev/null
    # shellcheck disable=SC2086
    "$K" $kflags --host 127.0.0.1:7701 --json bench --workload write-only --concurrency "$CONC" \
      --keys "$KEYS" --value-size 100 --duration "$SECS" --ops "$OPS_CAP" \
      >"$WORK/$mode-$round.json" 2>/dev/null || true
    KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh stop "$WORK/cluster" >/dev/null
    echo "round $round $mode: $(python3 -c "import json;j=json.load(open('$WORK/$mode-$round.json'));o=j['operations'][0];print(f\"{j['ops_per_s']:.0f} ops/s, p50 {o['p50_us']/1000:.2f} ms, p99 {o['p99_us']/1000:.2f} ms, errors {o.get('errors',0)}\")")"
  done
done

python3 - "$WORK" "$ROUNDS" "$SECS" <<'PY'
import json, statistics, sys
work, rounds, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def runs(mode):
    out = []
    for r in range(1, rounds + 1):
        j = json.load(open(f"{work}/{mode}-{r}.json"))
        o = j["operations"][0]
        out.append((j["ops_per_s"], o["p99_us"] / 1000))
    return out
p, s = runs("plain"), runs("secure")
med = lambda xs, i: statistics.median(x[i] for x in xs)
print()
print("| cluster | ops/s (median) | p99 ms (median) |")
print("|---|---|---|")
for name, xs in (("plain", p), ("gossip sealed + TLS", s)):
    print(f"| {name} | {med(xs,0):.0f} | {med(xs,1):.2f} |")
print(f"\nthroughput secure / plain: {med(s,0)/med(p,0):.3f}; p99 secure / plain: {med(s,1)/med(p,1):.3f}"
      f" ({rounds} alternating rounds of {secs:.0f} s)")
PY
