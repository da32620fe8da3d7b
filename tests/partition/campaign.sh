#!/usr/bin/env bash
# A campaign of partition-suite runs, one seed after another, and the sums the closing notes
# quote over every run: acknowledged writes lost, acknowledged removals undone and divergent keys
# (goal 0, 0 and 0), tombstones purged during the runs, and stale quorum reads by nemesis.
#
#   tests/partition/campaign.sh --runs 10 --first-seed 1 -- --nodes 5 --time 120 \
#       --nemesis halves,isolate,bridge,random,loss,kill,pause,join,decommission,replace
#
# Everything after -- goes to tests/partition/run (not --seed or --report: the campaign sets
# them). Reports go under REPORTS (default: build/partition-campaign/seedS). Needs root, as the
# suite does. Exits 0 when every run passed. Not part of CI: about 2.5 minutes a run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=10
FIRST=1
REPORTS=$ROOT/build/partition-campaign
while (($#)); do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --first-seed) FIRST=$2; shift 2 ;;
    --reports) REPORTS=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "campaign: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 && $RUNS -le 1000 ]] || { echo "campaign: --runs must be 1..1000" >&2; exit 2; }
[[ $FIRST =~ ^[0-9]+$ && $FIRST -ge 1 ]] || { echo "campaign: --first-seed must be a positive integer" >&2; exit 2; }

field() {  # field NAME FILE: the number after "NAME " in findings.txt
  grep -oE "$1 [0-9]+" "$2" | head -1 | awk '{print $NF}'
}
total_lost=0 total_divergent=0 total_acked=0 passed=0 failed=0 movements=0 movements_failed=0
total_undone=0 total_purged=0 total_removals=0
declare -A stale_reads stale_count
mkdir -p "$REPORTS"
printf '%-6s %-7s %8s %6s %7s %10s %8s %10s\n' seed verdict acked lost undone divergent purged movements
for ((seed = FIRST; seed < FIRST + RUNS; seed++)); do
  report=$REPORTS/seed$seed
  set +e
  "$ROOT/tests/partition/run" "$@" --seed "$seed" --report "$report" >"$REPORTS/seed$seed.log" 2>&1
  rc=$?
  set -e
  f=$report/findings.txt
  if [[ $rc -eq 77 ]]; then
    echo "campaign: the suite was skipped: $(tail -1 "$REPORTS/seed$seed.log")"
    exit 77
  fi
  if [[ ! -f $f ]]; then
    echo "seed $seed: no findings (exit $rc); see $REPORTS/seed$seed.log"
    failed=$((failed + 1))
    continue
  fi
  acked=$(grep -oE '[0-9]+ acknowledged' "$f" | head -1 | awk '{print $1}')
  removals=$(grep -oE '\(([0-9]+) acknowledged\)' "$f" | head -1 | tr -dc '0-9')
  lost=$(field lost "$f")
  undone=$(grep -oE 'undone removals [0-9]+' "$f" | awk '{print $NF}')
  purged=$(grep -oE '[0-9]+ tombstones purged' "$f" | head -1 | awk '{print $1}')
  while read -r name reads stale; do
    stale_reads[$name]=$(( ${stale_reads[$name]:-0} + reads ))
    stale_count[$name]=$(( ${stale_count[$name]:-0} + stale ))
  done < <(awk '/^stale quorum reads by nemesis:/{on=1; next} on && /^  /{print $1, $2, $4; next} {on=0}' "$f")
  divergent=$(grep -oE 'divergent keys [0-9]+' "$f" | awk '{print $NF}')
  moves=$(grep -c '^movement at' "$f" || true)
  bad_moves=$(grep -c '^movement at.*FAILED' "$f" || true)
  verdict=$(grep -oE 'verdict: [a-zA-Z]+' "$f" | awk '{print $2}')
  printf '%-6s %-7s %8s %6s %7s %10s %8s %10s\n' "$seed" "$verdict" "$acked" "$lost" "${undone:-0}" \
    "$divergent" "${purged:-0}" "$moves"
  total_acked=$((total_acked + acked))
  total_undone=$((total_undone + ${undone:-0}))
  total_purged=$((total_purged + ${purged:-0}))
  total_removals=$((total_removals + ${removals:-0}))
  total_lost=$((total_lost + lost))
  total_divergent=$((total_divergent + divergent))
  movements=$((movements + moves))
  movements_failed=$((movements_failed + bad_moves))
  if [[ $rc -eq 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "campaign: $RUNS runs, $passed passed, $failed failed; $total_acked acknowledged writes," \
  "$total_lost lost; $total_removals acknowledged removals, $total_undone undone;" \
  "$total_divergent divergent keys; $total_purged tombstones purged in the runs;" \
  "$movements movements, $movements_failed failed"
echo "stale quorum reads by nemesis (reads that missed an acknowledged write):"
for name in "${!stale_reads[@]}"; do
  printf '  %-12s %7s reads %5s stale\n' "$name" "${stale_reads[$name]}" "${stale_count[$name]}"
done | sort
[[ $failed -eq 0 ]]
