# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh.

section "shellcheck passes every script"
mapfile -t scripts < <(git ls-files '*.sh' 'examples/checks/*' .ci/run | sort -u)
shellcheck -x "${scripts[@]}"
