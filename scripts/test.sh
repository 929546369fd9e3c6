#!/usr/bin/env bash
# Every test, both tiers: unit and integration tests of the workspace (real binaries, real
# peers on loopback; tests/fuzz_corpus.rs replays the committed fuzz corpus, without
# cargo-fuzz), then scripts/integration.sh against the real programs from Debian's packages.
#
# A plain `cargo test` or `cargo nextest run` is the fast tier, about a minute. The slow tier
# (kill loops, load runs, long waits) is marked #[ignore = "slow: ..."]; it runs here and in
# CI, or alone with `cargo nextest run --run-ignored only`. PITCREW_TEST_SLOWDOWN=N stretches
# every wall-clock limit of the tests N times, for a slow or loaded machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --run-ignored all
else
    cargo test --workspace --no-fail-fast -- --include-ignored
fi
cargo test --workspace --doc --quiet
scripts/integration.sh
