#!/usr/bin/env bash
# A real Prometheus (Debian's) scraping a local 3-node cluster's /metrics every second while a
# put load runs for SECS (60) seconds, then asked for the cluster's p99 put latency over the
# last 30 s, next to what the load generator measured itself. Bounded: the load stops at SECS,
# Prometheus is stopped at the end; everything stays on loopback.
#   tests/bench/prometheus_scrape.sh [BUILD_DIR]   (SECS=60 RATE=2000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
SECS="${SECS:-60}"
RATE="${RATE:-2000}"
command -v prometheus >/dev/null || { echo "prometheus_scrape: needs Debian's prometheus" >&2; exit 77; }
WORK=$(mktemp -d)
K="$BUILD/tools/kvtool"
PROM_PID=""
cleanup() {
  [[ -n $PROM_PID ]] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
  KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh stop "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
KVD="$BUILD/tools/kvd" KVTOOL="$K" tools/cluster.sh start 3 "$WORK/cluster" -- \
  --metrics "127.0.0.{i}:9091" >/dev/null
cat >"$WORK/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kv
    static_configs:
      - targets: ['127.0.0.1:9091', '127.0.0.2:9091', '127.0.0.3:9091']
YML
promtool check config "$WORK/prometheus.yml" >/dev/null
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address=127.0.0.1:9099 >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
query() {  # query PROMQL: the first result's value, or "none"
  curl -s -G --data-urlencode "query=$1" http://127.0.0.1:9099/api/v1/query |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:9099/-/ready && break; sleep 0.1; done
"$K" --host 127.0.0.1:7701 --json bench --workload write-only --concurrency 64 --rate "$RATE" \
  --keys 100000 --value-size 100 --duration "$SECS" >"$WORK/bench.json" 2>/dev/null || true
sleep 2  # one more scrape after the load (Prometheus scrapes every second)
echo "targets up: $(query 'sum(up{job="kv"})') of 3"
echo "puts counted by Prometheus: $(query 'sum(kv_client_requests_total{op="put",outcome="ok"})')"
echo "p99 put latency, cluster, last 30 s (Prometheus): $(query 'histogram_quantile(0.99, sum by (le) (rate(kv_coordinator_request_duration_seconds_bucket{op="put"}[30s])))') s"
python3 -c "import json;j=json.load(open('$WORK/bench.json'));o=j['operations'][0];print(f\"load generator: {o['ops']} puts, {j['ops_per_s']:.0f}/s, p99 {o['p99_us']/1e6:.4f} s over the whole run\")"
