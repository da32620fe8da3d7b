#!/usr/bin/env bash
# A local cluster on loopback: node i listens on 127.0.0.i:7701 (client API) and
# 127.0.0.i:7946 (gossip), keeps its data under DIR/ni, and logs to DIR/ni.log.
#
#   tools/cluster.sh start [N] [DIR] [-- KVD_FLAGS...]   start N nodes (default 3, ./data/cluster)
#                                                        and wait until every one is UP and normal;
#                                                        {i} in KVD_FLAGS is each node's number
#   tools/cluster.sh stop [DIR]                          SIGTERM every node, wait for each to exit
#   tools/cluster.sh kill I [DIR] | restart I [DIR]      SIGKILL node I / start it again
#
# Uses build/tools/kvd and kvtool (KVD and KVTOOL override; KVTOOL_FLAGS, such as TLS flags,
# go to every kvtool call; WAIT_S, default 60, bounds the wait for a start). Nodes join through
# node 1, one at a time (each join is a ring movement).
set -euo pipefail
cd "$(dirname "$0")/.."
KVD=${KVD:-build/tools/kvd}
KVTOOL=${KVTOOL:-build/tools/kvtool}
read -r -a KVTOOL_FLAGS <<<"${KVTOOL_FLAGS:-}"
cmd=${1:-}
shift || true

start_node() {  # start_node I N DIR FLAGS...
  local i=$1 n=$2 dir=$3
  shift 3
  local seeds=()
  [[ $i -ne 1 ]] && seeds=(--seeds 127.0.0.1:7946)
  local flags=("${@//\{i\}/$i}")  # {i} in a flag is the node's number
  "$KVD" --data-dir "$dir/n$i" --listen "127.0.0.$i:7701" --gossip "127.0.0.$i:7946" \
    "${seeds[@]}" "${flags[@]}" >"$dir/n$i.out" 2>"$dir/n$i.log" &
  echo $! >"$dir/n$i.pid"
  echo "$@" >"$dir/flags"
  echo "$n" >"$dir/size"
}

wait_up() {  # wait_up N: every node sees N members UP and normal and serves, within WAIT_S (60) s
  local n=$1 deadline=$((SECONDS + ${WAIT_S:-60}))
  while ((SECONDS < deadline)); do
    local ok=1
    for i in $(seq "$n"); do
      local up
      up=$("$KVTOOL" "${KVTOOL_FLAGS[@]}" --host "127.0.0.$i:7701" --timeout-ms 1000 status 2>/dev/null |
        awk '$1 == "UP" && $5 == "normal"' | wc -l) || up=0
      [[ $up -eq $n ]] || ok=0
      # And it serves: a restarted node shows UP at once but refuses requests ("restarting")
      # until a peer has sent it the cluster's state. A read of a key nobody writes answers
      # found (0) or not found (1) once it serves.
      if ((ok)); then
        local rc=0
        "$KVTOOL" "${KVTOOL_FLAGS[@]}" --host "127.0.0.$i:7701" --timeout-ms 1000 \
          get cluster.sh:probe >/dev/null 2>&1 || rc=$?
        [[ $rc -le 1 ]] || ok=0
      fi
    done
    ((ok)) && return 0
    sleep 0.2
  done
  echo "cluster.sh: not every node is UP after ${WAIT_S:-60} s; logs in $DIR" >&2
  return 1
}

case $cmd in
  start)
    N=3
    DIR=data/cluster
    [[ $# -gt 0 && $1 != -- ]] && { N=$1; shift; }
    [[ $# -gt 0 && $1 != -- ]] && { DIR=$1; shift; }
    [[ $# -gt 0 && $1 == -- ]] && shift
    [[ $N =~ ^[0-9]+$ && $N -ge 1 && $N -le 254 ]] || { echo "cluster.sh: N must be 1..254" >&2; exit 2; }
    mkdir -p "$DIR"
    for i in $(seq "$N"); do
      if [[ -f $DIR/n$i.pid ]] && kill -0 "$(cat "$DIR/n$i.pid")" 2>/dev/null; then
        echo "node $i already running (pid $(cat "$DIR/n$i.pid"))"
        continue
      fi
      start_node "$i" "$N" "$DIR" "$@"
    done
    wait_up "$N"
    echo "cluster of $N up: 127.0.0.1:7701 .. 127.0.0.$N:7701, data under $DIR"
    ;;
  stop)
    DIR=${1:-data/cluster}
    for pidfile in "$DIR"/n*.pid; do
      [[ -f $pidfile ]] || continue
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$pidfile"
    done
    echo "cluster under $DIR stopped"
    ;;
  kill | restart)
    I=${1:?node number}
    DIR=${2:-data/cluster}
    if [[ $cmd == kill ]]; then
      kill -9 "$(cat "$DIR/n$I.pid")"
      rm -f "$DIR/n$I.pid"
    else
      read -r -a flags <"$DIR/flags" || flags=()
      start_node "$I" "$(cat "$DIR/size")" "$DIR" "${flags[@]}"
      wait_up "$(cat "$DIR/size")"
    fi
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
