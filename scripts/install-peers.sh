#!/usr/bin/env bash
# Install the real programs the integration tests run against, from Debian's packages:
# jq, shellcheck, monitoring-plugins, Prometheus' promtool, Alertmanager, headless Chromium,
# systemd-analyze, git, Debian's cron (the example crontab runs under it), tzdata (the time zones
# of maintenance windows), hyperfine and wrk for the benchmarks, and aiosmtpd (the tests' SMTP
# server); then Apprise from PyPI in a venv of its own, linked as /usr/local/bin/apprise.
# Idempotent; needs root or sudo.
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
