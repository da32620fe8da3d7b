#!/usr/bin/env bash
# A campaign of partition-suite runs, one seed after another, and the sums the closing notes
# quote: acknowledged writes lost and divergent keys over every run (goal 0 and 0).
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
mkdir -p "$REPORTS"
printf '%-6s %-7s %8s %6s %10s %10s\n' seed verdict acked lost divergent movements
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
  acked=$(grep -oE '[0-9]+ acknowledged' "$f" | awk '{print $1}')
  lost=$(field lost "$f")
  divergent=$(grep -oE 'divergent keys [0-9]+' "$f" | awk '{print $NF}')
  moves=$(grep -c '^movement at' "$f" || true)
  bad_moves=$(grep -c '^movement at.*FAILED' "$f" || true)
  verdict=$(grep -oE 'verdict: [a-zA-Z]+' "$f" | awk '{print $2}')
  printf '%-6s %-7s %8s %6s %10s %10s\n' "$seed" "$verdict" "$acked" "$lost" "$divergent" "$moves"
  total_acked=$((total_acked + acked))
  total_lost=$((total_lost + lost))
  total_divergent=$((total_divergent + divergent))
  movements=$((movements + moves))
  movements_failed=$((movements_failed + bad_moves))
  if [[ $rc -eq 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "campaign: $RUNS runs, $passed passed, $failed failed; $total_acked acknowledged writes," \
  "$total_lost lost, $total_divergent divergent keys; $movements movements, $movements_failed failed"
[[ $failed -eq 0 ]]
