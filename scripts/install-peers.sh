#!/usr/bin/env bash
# Install the real programs the integration tests run against, from Debian's packages:
# jq, shellcheck, monitoring-plugins, Prometheus' promtool, Alertmanager, headless Chromium,
# systemd-analyze, git, Debian's cron (the example crontab runs under it), tzdata (the time zones
# of maintenance windows), and hyperfine and wrk for the benchmarks. Idempotent; needs root or sudo.
set -euo pipefail

packages=(
    jq shellcheck git curl python3 procps
    monitoring-plugins-basic monitoring-plugins-standard
    prometheus prometheus-alertmanager
    chromium
    systemd
    cron
    tzdata
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
