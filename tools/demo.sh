#!/usr/bin/env bash
# Installs what is missing, builds, starts a local 3-node cluster (127.0.0.1-3:7701, data under
# ./data/cluster, tools/cluster.sh), and shows a put through one node and a get through another.
# `tools/demo.sh stop` stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "stop" ]]; then
  exec tools/cluster.sh stop data/cluster
fi
tools/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build kvd kvtool >/dev/null
tools/cluster.sh start 3 data/cluster
K=build/tools/kvtool
# Pass the context of what is there already (a rerun), so the put replaces it rather than adding
# a sibling.
CTX=$({ $K --host 127.0.0.1:7701 get user:42 2>/dev/null || true; } | sed -n 's/^context: //p')
echo "$ kvtool --host 127.0.0.1:7701 put user:42 '{\"name\":\"ada\"}'${CTX:+ --context $CTX}"
$K --host 127.0.0.1:7701 put user:42 '{"name":"ada"}' ${CTX:+--context "$CTX"}
echo "$ kvtool --host 127.0.0.2:7701 get user:42"
$K --host 127.0.0.2:7701 get user:42
echo "$ kvtool --host 127.0.0.3:7701 status"
$K --host 127.0.0.3:7701 status
echo "cluster running; stop it with: tools/demo.sh stop"
