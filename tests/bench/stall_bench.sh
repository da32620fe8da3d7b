#!/usr/bin/env bash
# Stall benchmark (issue 14's figures; a benchmark, not a test). A 3-node cluster on
# 127.0.0.1..3 (gossip on, --hinted-handoff off, background repair off, data under a temp dir)
# holding KEYS keys of 100-byte values, loaded through node 1. It measures:
#   - startup of node 2 holding the data: seconds from its launch to its ready line
#     ("kvd: node ... listening on") and to the first `kvtool get` through it that answers
#     (found or not found, at quorum), after a SIGTERM and after a SIGKILL (and, apart, the
#     first restart after the load, which also replays the load's write-ahead log);
#   - p50/p99/p99.9 of gets and puts at quorum through node 1, open loop
#     (`kvtool bench --workload 50/50 --rate RATE --concurrency C --duration D`), in four phases:
#       repair:  while `kvtool repair` on node 3 runs, node 3 having missed every write (it was
#                stopped with SIGTERM, keeping its ranges, during the load, and hinted handoff is
#                off), so the repair compares and moves everything;
#       quiet:   no repair, no rebuild;
#       rebuild: node 2 restarted with --tree-rebuild-interval-s 3, each rebuild scanning all its
#                data, repeatedly during the bench (a replica's stall: quorum through node 1
#                can do without node 2, so this mostly shows what leaks through);
#       rebuild_coord: the same on node 1 alone (node 2 back without it): the coordinator's
#                stall, which every request through node 1 meets.
#     Each "during" phase is reported against quiet from the same run ("during / quiet").
# Phase order, and why: load (node 3 down) -> repair -> quiet -> startups -> rebuild ->
# rebuild_coord.
#   The repair phase must come right after the load: only then has node 3 missed every key.
#   Quiet comes after the repair has finished, so that it runs on the same cluster as the
#   rebuild phase (all three replicas hold all K keys; a quiet phase before the repair would read
#   from a node 3 that holds nothing and answers at once). The startups restart node 2 (clean and
#   crashed) on that full data set, and the last of those restarts brings it up with the rebuild
#   interval, so the rebuild phases, the only ones that change a node's flags, come last.
# Only flags that the builds before and after issue 14 both have are used (kvd: --data-dir,
# --listen, --gossip, --seeds, --hinted-handoff, --repair-interval-s, --tree-rebuild-interval-s
# and the gossip timings; kvtool bench: --workload --rate --concurrency --duration --ops --keys
# --value-size --consistency --no-preload --seed --distribution).
# The bench measures each request from its send; CONCURRENCY (1024) must exceed RATE times the
# longest stall for a stall not to hold back sends (coordinated omission): 1024 at 800 ops/s covers
# 1.28 s. Every process it starts is killed on exit; every wait has a deadline.
# Output: OUT/results.jsonl (one JSON line per phase and per startup), a table on stdout, and
# each phase's bench JSON and progress lines, repair output and node logs under OUT.
#
#   tests/bench/stall_bench.sh [--kvd PATH] [--kvtool PATH] [--keys 1000000] [--rate 800]
#       [--duration 20] [--concurrency 1024] [--out DIR] [--label NAME] [--port 17701]
#       [--gossip-port 17946] [--repair-timeout 1800] [--repair-only]
# --repair-only stops after the quiet phase (load, repair, quiet: the repair's figure alone).
set -u
cd "$(dirname "$0")/../.."
KVD=build/tools/kvd
KVTOOL=build/tools/kvtool
KEYS=1000000
RATE=800
DURATION=20
CONC=1024
OUT=
LABEL=
PORT=17701
GPORT=17946
REPAIR_TIMEOUT=1800
REPAIR_ONLY=0
usage() { sed -n '/^#   tests/,/^#       \[--gossip/p' "$0" | sed 's/^# *//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --kvd) KVD=$2; shift 2 ;;
    --kvtool) KVTOOL=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --label) LABEL=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --gossip-port) GPORT=$2; shift 2 ;;
    --repair-timeout) REPAIR_TIMEOUT=$2; shift 2 ;;
    --repair-only) REPAIR_ONLY=1; shift ;;
    -h | --help) usage ;;
    *) echo "stall_bench: unknown argument $1" >&2; usage ;;
  esac
done
int_in() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }
int_in "$KEYS" 1000 100000000 || { echo "stall_bench: --keys must be 1000..1e8" >&2; exit 2; }
int_in "$RATE" 1 100000 || { echo "stall_bench: --rate must be 1..100000" >&2; exit 2; }
int_in "$DURATION" 1 600 || { echo "stall_bench: --duration must be 1..600 s" >&2; exit 2; }
int_in "$CONC" 1 4096 || { echo "stall_bench: --concurrency must be 1..4096" >&2; exit 2; }
int_in "$PORT" 1024 65535 && int_in "$GPORT" 1024 65535 || { echo "stall_bench: bad port" >&2; exit 2; }
int_in "$REPAIR_TIMEOUT" 10 3600 || { echo "stall_bench: --repair-timeout must be 10..3600 s" >&2; exit 2; }
[[ -x $KVD && -x $KVTOOL ]] || { echo "stall_bench: no kvd/kvtool at $KVD, $KVTOOL" >&2; exit 2; }
KVD=$(realpath "$KVD")
KVTOOL=$(realpath "$KVTOOL")
[[ -n $LABEL ]] || LABEL=$(basename "$(dirname "$KVD")")
[[ -n $OUT ]] || OUT=/tmp/stall-bench-$LABEL
mkdir -p "$OUT" || exit 2
OUT=$(realpath "$OUT")
: >"$OUT/results.jsonl"
WORK=$(mktemp -d /tmp/stall-bench-data.XXXXXX)
# Gossip timings of the other cluster benchmarks (a stopped node is DOWN within about 2 s).
FLAGS=(--hinted-handoff off --repair-interval-s 0 --probe-interval-ms 200 --probe-timeout-ms 100
  --gossip-interval-ms 50 --push-pull-interval-ms 2000)
declare -A PID=()   # node -> kvd pid
BG=()               # other background pids (the repair's subshell; its children go first)
FG=                 # the long command being waited for (run_fg)
LAUNCH=(0 0 0 0)    # launches per node, to name their output files

cleanup() {
  trap - EXIT INT TERM
  local p
  [[ -n $FG ]] && BG+=("$FG")
  for p in "${BG[@]}"; do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    local alive=0
    for p in "${PID[@]}" "${BG[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${PID[@]}" "${BG[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  for p in "$WORK"/n?/LOG; do [[ -f $p ]] && cp "$p" "$OUT/rocksdb-$(basename "$(dirname "$p")").LOG"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "stall_bench: interrupted" >&2; exit 130' INT TERM

run_fg() {  # run_fg CMD...: CMD in the background, waited for, so that a signal is handled at once
  "$@" &
  FG=$!
  wait "$FG"
  local rc=$?
  FG=
  return $rc
}
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "stall_bench: $*"; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }
host() { echo "127.0.0.$1:$PORT"; }
kt() { timeout 30 "$KVTOOL" --host "$(host "$1")" --timeout-ms 2000 "${@:2}"; }

start_node() {  # start_node I [EXTRA FLAGS...]: launch; sets LAST_OUT, LAST_LOG
  local i=$1 seeds=()
  shift
  ((i != 1)) && seeds=(--seeds "127.0.0.1:$GPORT")
  ((i == 1 && LAUNCH[1] > 0)) && seeds=(--seeds "127.0.0.2:$GPORT")  # node 1 restarted
  LAUNCH[$i]=$((LAUNCH[i] + 1))
  LAST_OUT=$OUT/n$i.${LAUNCH[$i]}.out
  LAST_LOG=$OUT/n$i.${LAUNCH[$i]}.log
  "$KVD" --data-dir "$WORK/n$i" --listen "$(host "$i")" --gossip "127.0.0.$i:$GPORT" \
    "${seeds[@]}" "${FLAGS[@]}" "$@" >"$LAST_OUT" 2>"$LAST_LOG" &
  PID[$i]=$!
}

stop_node() {  # stop_node I SIGNAL: signal it and wait (60 s) for it to exit
  local i=$1 sig=$2 p=${PID[$1]}
  kill -"$sig" "$p" 2>/dev/null
  for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && die "node $i did not exit within 60 s of SIG$sig"
  wait "$p" 2>/dev/null
  unset "PID[$i]"
}

member_status() {  # member_status VIEWER I: node I's status in VIEWER's table (or "none")
  kt "$1" --json status 2>/dev/null | python3 -c '
import json, sys
try:
    nodes = json.load(sys.stdin)["nodes"]
except Exception:
    print("none"); sys.exit()
for n in nodes:
    if n.get("rpc") == sys.argv[1]:
        print(n["status"] + "/" + str(n.get("state", ""))); sys.exit()
print("none")' "$(host "$2")"
}

wait_status() {  # wait_status WANT I VIEWERS...: every viewer sees node I as WANT (60 s)
  local want=$1 i=$2 deadline=$((SECONDS + 60))
  shift 2
  while ((SECONDS < deadline)); do
    local ok=1 v
    for v in "$@"; do [[ $(member_status "$v" "$i") == "$want"* ]] || { ok=0; break; }; done
    ((ok)) && return 0
    sleep 0.3
  done
  die "node $i not $want in the view of nodes $* after 60 s (logs in $OUT)"
}

wait_all_up() {  # every running node sees every node UP and normal; a get through each answers
  local i v
  for i in 1 2 3; do wait_status UP/normal "$i" "${!PID[@]}"; done
  for v in "${!PID[@]}"; do wait_get "$v" 60 >/dev/null || die "no get through node $v answers"; done
}

wait_get() {  # wait_get I SECONDS: poll `get` through node I until it answers (0 found, 1 not)
  local deadline=$((SECONDS + $2)) rc
  while ((SECONDS < deadline)); do
    timeout 5 "$KVTOOL" --host "$(host "$1")" --timeout-ms 1000 get bench:0 >/dev/null 2>&1
    rc=$?
    ((rc == 0 || rc == 1)) && return 0
    sleep 0.05
  done
  return 1
}

cpu_s() {  # cpu_s PID: user+system CPU seconds of a process so far
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

CPU0=()
cpu_mark() { local i; for i in 1 2 3; do CPU0[$i]=$(cpu_s "${PID[$i]}"); done; }
cpu_delta() {  # CPU seconds each node used since cpu_mark, as JSON
  local i sep="" j="{"
  for i in 1 2 3; do
    j+=$(awk -v s="$sep" -v i="$i" -v a="${CPU0[$i]}" -v b="$(cpu_s "${PID[$i]}")" 'BEGIN { printf "%s\"n%d\":%.2f", s, i, b - a }')
    sep=,
  done
  echo "$j}"
}

emit() {  # emit JSON: append a result line
  echo "$1" >>"$OUT/results.jsonl"
  echo "$1"
}

startup() {  # startup KIND SIGNAL [EXTRA FLAGS...]: stop node 2 with SIGNAL, restart it, time it
  local kind=$1 sig=$2
  shift 2
  log "startup after SIG$sig: stopping node 2"
  stop_node 2 "$sig"
  wait_status DOWN 2 1 3
  local t0 ready get
  t0=$(now)
  start_node 2 "$@"
  local deadline=$((SECONDS + 600))
  while ! grep -q 'listening on' "$LAST_OUT" 2>/dev/null; do
    kill -0 "${PID[2]}" 2>/dev/null || die "node 2 exited during startup (see $LAST_LOG)"
    ((SECONDS < deadline)) || die "node 2 not ready 600 s after launch"
    sleep 0.01
  done
  ready=$(since "$t0")
  wait_get 2 600 || die "no get through node 2 answered within 600 s of its launch"
  get=$(since "$t0")
  local tree
  tree=$(grep -m1 'hash tree' "$LAST_LOG" | sed 's/"/'"'"'/g')
  log "startup after SIG$sig: ready in $ready s, first get in $get s ($tree)"
  emit "{\"build\":\"$LABEL\",\"phase\":\"$kind\",\"keys\":$KEYS,\"ready_s\":$ready,\"first_get_s\":$get,\"tree_log\":\"$tree\"}"
}

bench() {  # bench PHASE SEED: the phase's load through node 1 -> OUT/PHASE.json, .err; BENCH_RC
  local phase=$1
  run_fg timeout $((DURATION + 120)) "$KVTOOL" --host "$(host 1)" --json --timeout-ms 10000 bench \
    --workload 50/50 --rate "$RATE" --concurrency "$CONC" --duration "$DURATION" \
    --ops $((RATE * DURATION * 2 + 1000)) --keys "$KEYS" --value-size 100 --consistency quorum \
    --no-preload --seed "$2" >"$OUT/$phase.json" 2>"$OUT/$phase.err"
  BENCH_RC=$?
}

phase_line() {  # phase_line PHASE RC EXTRA_JSON: the phase's JSON line from its bench output
  python3 - "$OUT/$1.json" "$LABEL" "$1" "$2" "$3" <<'PY'
import json, sys
path, label, phase, rc, extra = sys.argv[1:]
out = {"build": label, "phase": phase, "bench_rc": int(rc)}
try:
    j = json.load(open(path))
    out.update({k: j[k] for k in ("keys", "rate_limit", "concurrency", "seconds", "ops_per_s")})
    for op in j["operations"]:
        out[op["op"] if "op" in op else op.get("name", "?")] = {
            "n": op.get("count", op.get("ops")), "p50_ms": op["p50_us"] / 1000,
            "p99_ms": op["p99_us"] / 1000, "p999_ms": op["p999_us"] / 1000,
            "max_ms": op["max_us"] / 1000, "errors": op["errors"], "not_found": op.get("not_found", 0),
            "errors_by_kind": op.get("errors_by_kind", {})}
except Exception as e:
    out["error"] = f"no bench result: {e}"
out.update(json.loads(extra))
print(json.dumps(out, separators=(",", ":")))
PY
}

log "stall_bench: $LABEL, $KEYS keys, rate $RATE/s, concurrency $CONC, $DURATION s per phase; output in $OUT"
echo "kvd=$KVD kvtool=$KVTOOL keys=$KEYS rate=$RATE duration=$DURATION concurrency=$CONC" >"$OUT/params.txt"

# 1. The cluster, then node 3 stopped (it keeps its ranges), then the load through node 1.
for i in 1 2 3; do start_node "$i"; done
wait_all_up
log "cluster up; stopping node 3 (SIGTERM) for the load"
stop_node 3 TERM
wait_status DOWN 3 1 2
t0=$(now)
run_fg timeout 3600 "$KVTOOL" --host "$(host 1)" --json --timeout-ms 10000 bench --workload write-only \
  --distribution sequential --keys "$KEYS" --ops "$KEYS" --duration 3500 --concurrency 64 \
  --value-size 100 --consistency quorum >"$OUT/load.json" 2>"$OUT/load.err" ||
  die "the load failed: $(tail -2 "$OUT/load.err")"
load_s=$(since "$t0")
log "loaded $KEYS keys in $load_s s with node 3 down"
emit "{\"build\":\"$LABEL\",\"phase\":\"load\",\"keys\":$KEYS,\"seconds\":$load_s}"

# 2. Node 3 back (it holds none of the keys), then its repair against the bench.
start_node 3
wait_all_up
sleep 2
log "phase repair: kvtool repair on node 3, with the bench through node 1"
rt0=$(now)
# The repair in a subshell that notes its exit status and end time.
(
  timeout "$REPAIR_TIMEOUT" "$KVTOOL" --host "$(host 3)" --json \
    --timeout-ms $((REPAIR_TIMEOUT * 1000)) repair >"$OUT/repair_cmd.out" 2>"$OUT/repair_cmd.err"
  echo "$? $(now)" >"$OUT/repair_cmd.end"
) &
RP=$!
BG+=("$RP")
cpu_mark
bench repair 11
rc=$BENCH_RC
bench_s=$(since "$rt0")
repair_running_at_end=false
kill -0 "$RP" 2>/dev/null && repair_running_at_end=true
cpu=$(cpu_delta)
wait "$RP"
BG=()
read -r repair_rc rt1 <"$OUT/repair_cmd.end"
repair_s=$(python3 -c "print(f'{$rt1 - $rt0:.3f}')")
log "repair: exit $repair_rc after $repair_s s (still running when the bench ended: $repair_running_at_end)"
overlap=$(python3 -c "print(round(min(1.0, $repair_s / $bench_s), 3))")
repair_json=$(python3 -c '
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    print(json.dumps({k: j.get(k) for k in ("elapsed_s", "keys_moved", "keys_differing", "bytes_on_wire", "consistent")}))
except Exception:
    print("null")' "$OUT/repair_cmd.out")
phase_line repair "$rc" "{\"repair_s\":$repair_s,\"repair_rc\":$repair_rc,\"repair_finished\":$([[ $repair_rc == 0 ]] && echo true || echo false),\"repair_running_at_bench_end\":$repair_running_at_end,\"overlap\":$overlap,\"repair_reply\":$repair_json,\"cpu_s\":$cpu}" |
  tee -a "$OUT/results.jsonl"
[[ $repair_rc == 0 ]] || log "WARNING: the repair did not finish cleanly (exit $repair_rc): $(tail -2 "$OUT/repair_cmd.err")"

# 3. Quiet: every replica holds every key; no repair, no rebuild.
sleep 5
log "phase quiet"
cpu_mark
bench quiet 12
rc=$BENCH_RC
cpu=$(cpu_delta)
phase_line quiet "$rc" "{\"cpu_s\":$cpu}" | tee -a "$OUT/results.jsonl"

if ((!REPAIR_ONLY)); then
# 4. Startups of node 2 holding the data. The first restart after the load also replays the
#    load's write-ahead log (RocksDB recovers what was not flushed yet: seconds at 1,000,000
#    keys), so it is reported apart, and the two compared restarts, after SIGTERM and after
#    SIGKILL, both start from a short log (a phase's writes). Then a clean restart with the
#    rebuild interval, for the last phase.
startup startup_first_after_load TERM
wait_all_up
sleep 3
startup startup_after_sigterm TERM
wait_all_up
sleep 3
startup startup_after_sigkill KILL
wait_all_up
sleep 3
startup startup_rebuild_node TERM --tree-rebuild-interval-s 3
wait_all_up

# 5. Rebuilds: node 2 rebuilds its hash tree from all its data every 3 s (after each rebuild).
sleep 4
log "phase rebuild (node 2 rebuilds its tree every 3 s)"
cpu_mark
bench rebuild 13
rc=$BENCH_RC
cpu=$(cpu_delta)
phase_line rebuild "$rc" "{\"cpu_s\":$cpu}" | tee -a "$OUT/results.jsonl"

# 6. Rebuilds on the coordinator: node 2 back without the interval, node 1 restarted with it.
#    (A stall on node 2 alone is hidden from quorum requests through node 1: node 1 and node 3
#    are a quorum without it. On node 1, every request it coordinates goes through it.)
restart() {  # restart I [EXTRA FLAGS...]: SIGTERM node I, start it again, wait until all serve
  local i=$1 others=()
  shift
  stop_node "$i" TERM
  for v in 1 2 3; do ((v != i)) && others+=("$v"); done
  wait_status DOWN "$i" "${others[@]}"
  start_node "$i" "$@"
  wait_all_up
}
log "restarting node 2 without the rebuild interval, node 1 with it"
restart 2
restart 1 --tree-rebuild-interval-s 3
sleep 4
log "phase rebuild_coord (node 1, the coordinator, rebuilds its tree every 3 s)"
cpu_mark
bench rebuild_coord 14
rc=$BENCH_RC
cpu=$(cpu_delta)
phase_line rebuild_coord "$rc" "{\"cpu_s\":$cpu}" | tee -a "$OUT/results.jsonl"
fi

# 7. The table.
python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {r["phase"]: r for r in rows}
print()
print(f"build {rows[0]['build']}, {rows[0]['keys']} keys")
for k in ("startup_first_after_load", "startup_after_sigterm", "startup_after_sigkill"):
    if k in by:
        print(f"  {k}: ready {by[k]['ready_s']:.2f} s, first get {by[k]['first_get_s']:.2f} s  ({by[k]['tree_log']})")
if "load" in by:
    print(f"  load: {by['load']['seconds']:.1f} s")
if "repair" in by:
    r = by["repair"]
    print(f"  repair: {r['repair_s']:.1f} s, exit {r['repair_rc']}, running when the bench ended: "
          f"{r['repair_running_at_bench_end']}, overlap {r['overlap']:.0%}, reply {r.get('repair_reply')}")
print()
print("| phase | op | n | errors | p50 ms | p99 ms | p99.9 ms | max ms | p99 / quiet | p99.9 / quiet | node CPU s (n1 n2 n3) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
q = by.get("quiet", {})
for ph in ("quiet", "repair", "rebuild", "rebuild_coord"):
    r = by.get(ph)
    if not r:
        continue
    for op in ("get", "put"):
        o = r.get(op)
        if not o:
            print(f"| {ph} | {op} | - | - | - | - | - | - | - | - | - |")
            continue
        qo = q.get(op, {})
        ratio = lambda key: f"{o[key] / qo[key]:.2f}" if qo.get(key) else "-"
        cpu = r.get("cpu_s", {})
        print(f"| {ph} | {op} | {o['n']} | {o['errors']} | {o['p50_ms']:.2f} | {o['p99_ms']:.2f} | "
              f"{o['p999_ms']:.2f} | {o['max_ms']:.2f} | {ratio('p99_ms')} | {ratio('p999_ms')} | "
              f"{cpu.get('n1', 0):.1f} {cpu.get('n2', 0):.1f} {cpu.get('n3', 0):.1f} |")
PY
exit 0
