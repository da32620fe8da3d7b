#!/usr/bin/env bash
# A test CA and certificates for kvd's mutual TLS (rpc/tls.h), made with openssl:
#
#   tools/certs.sh [--identity NAME] [--days N] DIR NODE...
#
# writes into DIR (created if missing; keys mode 600):
#   ca.pem, ca-key.pem          the cluster CA (EC P-256), the only one the nodes trust; one
#                               already in DIR is kept and signs the new certificates (to add
#                               nodes later)
#   NODE.pem, NODE-key.pem      for each NODE: a node certificate, common name node:NAME and
#                               NAME as its DNS name (NAME: --identity, default "kv")
#   client.pem, client-key.pem  a client certificate (common name client:client)
#   admin.pem, admin-key.pem    an admin certificate (common name admin)
#   other-ca.pem, stranger.pem, stranger-key.pem
#                               a second CA and a client certificate it signed: one the cluster
#                               must refuse (for tests)
# For a real cluster, keep ca-key.pem off the nodes. Never sign wildcard names with the CA.
set -euo pipefail

identity=kv
days=825
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --identity) identity=${2:?--identity needs a NAME}; shift 2 ;;
    --days) days=${2:?--days needs N}; shift 2 ;;
    *) echo "certs.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
if [[ $# -lt 2 ]]; then
  echo "usage: tools/certs.sh [--identity NAME] [--days N] DIR NODE..." >&2
  exit 2
fi
if ! [[ $identity =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
  echo "certs.sh: --identity must be a DNS name (letters, digits, dots, hyphens)" >&2
  exit 2
fi
dir=$1
shift
mkdir -p "$dir"
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {  # NAME CN
  newkey "$dir/$1-key.pem"
  openssl req -x509 -new -key "$dir/$1-key.pem" -subj "/CN=$2" -days "$days" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/$1.pem" 2>/dev/null
}

leaf() {  # CA NAME CN [DNS]
  local ca=$1 name=$2 cn=$3 dns=${4:-}
  newkey "$dir/$name-key.pem"
  local ext="$dir/.$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n $dns ]]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=DNS:$dns"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl req -new -key "$dir/$name-key.pem" -subj "/CN=$cn" -out "$dir/.$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/.$name.csr" -CA "$dir/$ca.pem" -CAkey "$dir/$ca-key.pem" \
    -CAcreateserial -days "$days" -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$ext" "$dir/.$name.csr"
}

if [[ -f $dir/ca.pem && -f $dir/ca-key.pem ]]; then
  echo "certs.sh: signing with the CA already in $dir"
else
  ca ca "kv cluster CA"
fi
for node in "$@"; do
  if ! [[ $node =~ ^[A-Za-z0-9_.-]+$ ]]; then
    echo "certs.sh: node name '$node': letters, digits, '.', '_' and '-' only" >&2
    exit 2
  fi
  leaf ca "$node" "node:$identity" "$identity"
done
leaf ca client "client:client"
leaf ca admin admin
ca other-ca "another CA"
leaf other-ca stranger "client:stranger"
rm -f "$dir"/*.srl
chmod 644 "$dir"/*.pem
chmod 600 "$dir"/*-key.pem
echo "certs.sh: CA, $# node certificate(s) (identity $identity), client, admin and a stranger in $dir"
