#!/usr/bin/env bash
# Every test: unit and integration tests of the workspace (real binaries, real peers on
# loopback; tests/fuzz_corpus.rs replays the committed fuzz corpus, without cargo-fuzz), then
# scripts/integration.sh against the real programs from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
cargo test --workspace --doc --quiet
scripts/integration.sh
