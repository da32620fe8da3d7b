#!/usr/bin/env bash
# What security costs: put throughput and latency of a local 3-node cluster with gossip sealed
# and TLS required (tools/certs.sh, kvtool keygen), against the same cluster plain
# (tests/bench/ab_cluster.sh; tests/bench/gossip_bytes.sh measures what sealing costs gossip).
#   tests/bench/secure_bench.sh [BUILD_DIR]   (ROUNDS=3 SECS=10 CONC=32 KEYS=100000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
tools/certs.sh "$WORK/certs" node >/dev/null
(umask 077 && "$BUILD/tools/kvtool" keygen >"$WORK/gossip.key")
C="$WORK/certs"
AB_WORK="$WORK" A_NAME=plain A_KVD="" A_KVTOOL="" B_NAME="gossip sealed + TLS" \
  B_KVD="--gossip-key-file $WORK/gossip.key --tls-cert $C/node.pem --tls-key $C/node-key.pem --tls-ca $C/ca.pem" \
  B_KVTOOL="--tls-cert $C/client.pem --tls-key $C/client-key.pem --tls-ca $C/ca.pem" \
  tests/bench/ab_cluster.sh "$BUILD"
