#!/usr/bin/env bash
# Installs what is missing, builds, starts one node on 127.0.0.1:7701 with its data under
# ./data/n1, and shows a put and a get.  `tools/demo.sh stop` stops the node.
set -euo pipefail
cd "$(dirname "$0")/.."
PIDFILE=data/n1.pid
if [[ "${1:-}" == "stop" ]]; then
  [[ -f $PIDFILE ]] && kill "$(cat $PIDFILE)" 2>/dev/null && echo "stopped node $(cat $PIDFILE)"
  rm -f $PIDFILE
  exit 0
fi
tools/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build kvd kvtool >/dev/null
mkdir -p data
if [[ -f $PIDFILE ]] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; then
  echo "node already running (pid $(cat $PIDFILE))"
else
  build/tools/kvd --data-dir data/n1 --listen 127.0.0.1:7701 >data/n1.out 2>data/n1.log &
  echo $! >$PIDFILE
  for _ in $(seq 100); do
    grep -q listening data/n1.out && break
    kill -0 "$(cat $PIDFILE)" 2>/dev/null || { cat data/n1.log; exit 1; }
    sleep 0.1
  done
  cat data/n1.out
fi
# Pass the context of what is there already (a rerun), so the put replaces it rather than adding
# a sibling.
CTX=$(build/tools/kvtool --host 127.0.0.1:7701 get user:42 2>/dev/null | sed -n 's/^context: //p')
echo "$ kvtool --host 127.0.0.1:7701 put user:42 '{\"name\":\"ada\"}'${CTX:+ --context $CTX}"
build/tools/kvtool --host 127.0.0.1:7701 put user:42 '{"name":"ada"}' ${CTX:+--context "$CTX"}
echo "$ kvtool --host 127.0.0.1:7701 get user:42"
build/tools/kvtool --host 127.0.0.1:7701 get user:42
echo "node running (pid $(cat $PIDFILE)); stop it with: tools/demo.sh stop"
