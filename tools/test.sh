#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test.
#   tools/test.sh            release build (RelWithDebInfo) in build/
#   KV_SANITIZE=address tools/test.sh   ASan+UBSan build in build-address/
#   KV_SANITIZE=thread tools/test.sh    TSan build in build-thread/, without the tests labelled
#                                       single_threaded (the simulations: no threads to race)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
SAN="${KV_SANITIZE:-}"
BUILD="build${SAN:+-$SAN}"
cmake -S . -B "$BUILD" -G Ninja -DKV_WERROR=ON -DKV_SANITIZE="$SAN" >/dev/null
ninja -C "$BUILD"
SKIP=()
[[ $SAN == thread ]] && SKIP=(-LE single_threaded)
ctest --test-dir "$BUILD" --output-on-failure -j2 "${SKIP[@]}"
