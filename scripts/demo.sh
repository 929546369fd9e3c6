#!/usr/bin/env bash
# Run pitcrew's main job on the shipped example: start the example services on loopback,
# then check them with the example config. Everything it writes goes to a private home.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins
bin="$PWD/target/release"
home=$(mktemp -d "${TMPDIR:-/tmp}/pitcrew-demo.XXXXXX")
export AGENT_OPS_HOME="$home"
cleanup() {
    pkill -f 'http.server 18080 --bind 127.0.0.1' 2>/dev/null || true
    pkill -f 'pitcrew-example-worker' 2>/dev/null || true
    rm -rf "$home"
}
trap cleanup EXIT
examples/demo/start-site.sh
examples/demo/start-worker.sh
status=0
"$bin/probe" --config examples/services.json --format text || status=$?
echo
echo "metrics written: $(wc -l < "$home"/metrics/*.jsonl) line(s) in $(basename "$home"/metrics/*.jsonl)"
exit "$status"
