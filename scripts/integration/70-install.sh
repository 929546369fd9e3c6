# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: the install, the man pages and completions it writes,
# and the example service units, plist and cron lines.

section "install.sh puts binaries, man pages and completions in place"
prefix="$work/prefix"
PREFIX="$prefix" PITCREW_PROFILE=debug scripts/install.sh >/dev/null
for t in probe recover notify rollup board tickmon cellscan; do
    [ -x "$prefix/bin/$t" ] || fail "$t not installed"
    man -l "$prefix/share/man/man1/$t.1" 2>/dev/null | grep -q -- "--home" || fail "man page of $t"
    bash -c ". '$prefix/share/bash-completion/completions/$t' && complete -p $t" >/dev/null || fail "bash completion of $t"
    grep -q "compdef\|#compdef" "$prefix/share/zsh/site-functions/_$t" || fail "zsh completion of $t"
    grep -q "complete -c $t" "$prefix/share/fish/vendor_completions.d/$t.fish" || fail "fish completion of $t"
done
[ -x "$prefix/bin/pitcrew-orchestrator" ] || fail "orchestrator not installed"

section "systemd-analyze verify accepts the example units"
units="$work/units"
mkdir -p "$units"
for u in examples/systemd/*; do
    sed "s#/usr/local/bin/#$prefix/bin/#g" "$u" > "$units/$(basename "$u")"
done
MANPATH="$prefix/share/man:" systemd-analyze verify "$units"/* || fail "systemd-analyze verify"

section "the launchd plist and the cron lines are well formed"
python3 -c 'import plistlib, sys; p = plistlib.load(open(sys.argv[1], "rb")); assert p["StartInterval"] == 300' \
    examples/launchd/com.pitcrew.orchestrator.plist || fail "launchd plist"
# Every schedule line has five time fields of cron's syntax and a command.
python3 - examples/cron/crontab <<'PY' || fail "crontab"
import re, sys
field = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.strip()
    if not line or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
        continue
    parts = line.split(None, 5)
    assert len(parts) == 6 and all(re.fullmatch(field, p) for p in parts[:5]), f"line {n}: {line}"
PY
