#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, only those missing (prometheus: promtool
# checks the /metrics output in the tests; python3 and curl: the package, hosts and bench
# scripts).
set -euo pipefail
PKGS=(cmake ninja-build g++ pkg-config librocksdb-dev libxxhash-dev libboost-dev capnproto
      libcapnp-dev libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev
      libssl-dev openssl iproute2 iptables libtomlplusplus-dev
      libspdlog-dev libsystemd-dev prometheus dpkg-dev python3 curl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
