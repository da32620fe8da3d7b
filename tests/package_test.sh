#!/usr/bin/env bash
# The .deb: built by CPack from BUILD_DIR, it holds kvd, kvtool, the default config (a conffile)
# and the systemd unit, depends on the libraries the binaries link; its unit, run by hand from
# the unpacked package (as systemd would, with a NOTIFY_SOCKET), brings a node up that serves a
# put and a get and stops cleanly on SIGTERM. With --install (root, a machine it may change:
# CI's fresh one), the package is also installed with apt-get, which makes the kv user, and
# purged again.
#   tests/package_test.sh BUILD_DIR [--install]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:?build dir}")
INSTALL=${2:-}
WORK=$(mktemp -d)
PID=""
cleanup() {
  [[ -n $PID ]] && kill -9 "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "package_test: $*" >&2; exit 1; }

(cd "$WORK" && cpack --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1) ||
  { cat "$WORK/cpack.log"; fail "cpack failed"; }
DEB=$(ls "$WORK"/out/kv_*.deb)
info=$(dpkg-deb -I "$DEB")
for dep in adduser librocksdb libcapnp libssl libtomlplusplus libspdlog libsystemd; do
  grep -q "Depends:.*$dep" <<<"$info" || fail "Depends lacks $dep: $(grep Depends <<<"$info")"
done
grep -q "/etc/kv/kvd.toml" < <(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles) ||
  fail "the config is not a conffile"
contents=$(dpkg-deb -c "$DEB")
for f in ./usr/bin/kvd ./usr/bin/kvtool ./etc/kv/kvd.toml ./usr/lib/systemd/system/kvd.service; do
  grep -q " $f\$" <<<"$contents" || fail "$f is not in the package"
done

# The unit, run by hand from the unpacked package: its ExecStart, with the package's paths.
ROOT="$WORK/root"
dpkg-deb -x "$DEB" "$ROOT"
unit="$ROOT/usr/lib/systemd/system/kvd.service"
grep -q '^Type=notify$' "$unit" || fail "the unit is not Type=notify"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ $exec_start == "/usr/bin/kvd --config /etc/kv/kvd.toml" ]] || fail "ExecStart: $exec_start"
"$ROOT/usr/bin/kvd" --config "$ROOT/etc/kv/kvd.toml" --print-config >"$WORK/effective.toml" ||
  fail "the default config is refused"
grep -q '^data-dir = "/var/lib/kv/data"$' "$WORK/effective.toml" || fail "default data-dir"
# systemd's readiness protocol: a datagram socket named by NOTIFY_SOCKET gets READY=1 once the
# node serves.
python3 - "$WORK/notify" >"$WORK/notified" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
while True:
    msg = s.recv(4096).decode()
    print(msg, flush=True)
    if "READY=1" in msg:
        break
PY
LISTENER=$!
for _ in $(seq 100); do [[ -S $WORK/notify ]] && break; sleep 0.05; done
NOTIFY_SOCKET="$WORK/notify" "$ROOT/usr/bin/kvd" --config "$ROOT/etc/kv/kvd.toml" \
  --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/kvd.out" 2>"$WORK/kvd.log" &
PID=$!
wait "$LISTENER" || fail "no READY=1 from kvd: $(cat "$WORK/kvd.log")"
grep -q "READY=1" "$WORK/notified" || fail "no READY=1"
addr=$(sed -n 's/.* listening on \([0-9.:]*\).*/\1/p' "$WORK/kvd.out")
[[ -n $addr ]] || fail "no ready line: $(cat "$WORK/kvd.out")"
"$ROOT/usr/bin/kvtool" --host "$addr" put pkg:1 installed >/dev/null || fail "put failed"
[[ $("$ROOT/usr/bin/kvtool" --host "$addr" get pkg:1 | head -1) == installed ]] || fail "get failed"
kill -TERM "$PID"
wait "$PID" || fail "kvd did not stop cleanly: $(tail -3 "$WORK/kvd.log")"
PID=""
echo "package_test: $(basename "$DEB") holds kvd, kvtool, the config and the unit; its unit's command served"

if [[ $INSTALL == --install ]]; then
  [[ $(id -u) -eq 0 ]] || fail "--install needs root"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >"$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log"; fail "apt-get install failed"; }
  id kv >/dev/null || fail "no kv user after install"
  [[ $(stat -c %U /var/lib/kv) == kv ]] || fail "/var/lib/kv is not owned by kv"
  /usr/bin/kvd --config /etc/kv/kvd.toml --print-config >/dev/null || fail "installed kvd"
  command -v systemd-analyze >/dev/null && { systemd-analyze verify /usr/lib/systemd/system/kvd.service ||
    fail "systemd-analyze verify"; }
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq kv >/dev/null 2>&1 || fail "purge failed"
  echo "package_test: installed with apt-get (kv user, /var/lib/kv) and purged"
fi
