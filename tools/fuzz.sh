#!/usr/bin/env bash
# Fuzzing: builds the fuzz targets (tests/fuzz/) as libFuzzer binaries with clang-14, ASan and
# UBSan in build-fuzz/, and runs each for a bounded time from its seed corpus. Inputs found
# interesting go to build-fuzz/corpus/NAME (the repository's corpus is only read); a crash
# leaves its input in build-fuzz/crashes/ and fails the run.
#   tools/fuzz.sh                     every target for 60 s
#   tools/fuzz.sh --seconds 10        CI's short run
#   tools/fuzz.sh --seconds 3600 gossip repair_batch     a long run of some targets
#   tools/fuzz.sh --runs 10000000 --seconds 3600         10^7 inputs each (or an hour)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=60
RUNS=-1
TARGETS=()
while (($#)); do
  case $1 in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[[ $SECONDS_EACH =~ ^[0-9]+$ && $SECONDS_EACH -ge 1 && $SECONDS_EACH -le 86400 ]] ||
  { echo "fuzz.sh: --seconds must be 1..86400" >&2; exit 2; }
[[ $RUNS =~ ^-?[0-9]+$ ]] || { echo "fuzz.sh: --runs must be a count" >&2; exit 2; }
ALL=(record repair_batch gossip gossip_sealed peers_and_checkpoints rpc_messages config)
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target $t (${ALL[*]})" >&2; exit 2; }
done

tools/install-deps.sh
missing=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

FLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -g -O1"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKV_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
ninja -C build-fuzz "${TARGETS[@]/#/fuzz_}"

mkdir -p build-fuzz/crashes
failed=0
for t in "${TARGETS[@]}"; do
  work=build-fuzz/corpus/$t
  mkdir -p "$work"
  echo "fuzz: $t for ${SECONDS_EACH} s$( ((RUNS >= 0)) && echo " or $RUNS inputs")"
  if ! build-fuzz/tests/fuzz_$t -max_total_time="$SECONDS_EACH" -runs="$RUNS" -max_len=65536 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/"$t"- \
      "$work" tests/fuzz/corpus/"$t" >build-fuzz/"$t".log 2>&1; then
    echo "fuzz: $t FAILED; see build-fuzz/$t.log and build-fuzz/crashes/"
    grep -E "ERROR|fuzz check failed|SUMMARY" build-fuzz/"$t".log | head -5
    failed=1
  else
    grep -E "stat::number_of_executed_units|cov:" build-fuzz/"$t".log | tail -2 | tr '\n' ' '
    echo "corpus $(find "$work" -type f | wc -l) files"
  fi
done
exit $failed
