# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: the install, the man pages and completions it writes,
# and the example service units, plist and cron lines.

section "install.sh puts binaries, man pages and completions in place"
prefix="$work/prefix"
PREFIX="$prefix" PITCREW_PROFILE=debug scripts/install.sh >/dev/null
for t in "${tools[@]}"; do
    [ -x "$prefix/bin/$t" ] || fail "$t not installed"
    man -l "$prefix/share/man/man1/$t.1" 2>/dev/null | grep -q -- "--home" || fail "man page of $t"
    bash -c ". '$prefix/share/bash-completion/completions/$t' && complete -p $t" >/dev/null || fail "bash completion of $t"
    grep -q "compdef\|#compdef" "$prefix/share/zsh/site-functions/_$t" || fail "zsh completion of $t"
    grep -q "complete -c $t" "$prefix/share/fish/vendor_completions.d/$t.fish" || fail "fish completion of $t"
done
[ -x "$prefix/bin/pitcrew-orchestrator" ] || fail "orchestrator not installed"
[ -x "$prefix/bin/pitcrew-watch" ] || fail "pitcrew-watch not installed"
watch_help=$("$prefix/bin/pitcrew-watch" --help)
grep -q "probe --watch | recover --follow | notify --follow" <<< "$watch_help" || fail "pitcrew-watch --help"

section "systemd-analyze verify accepts the example units"
units="$work/units"
mkdir -p "$units"
for u in examples/systemd/*; do
    sed "s#/usr/local/bin/#$prefix/bin/#g" "$u" > "$units/$(basename "$u")"
done
MANPATH="$prefix/share/man:" systemd-analyze verify "$units"/* || fail "systemd-analyze verify"
# An Environment= value is set as written: systemd expands no $VAR or ~ there.
if grep -n '^Environment=.*[$~]' examples/systemd/*; then fail "an Environment= line counts on an expansion"; fi
# The resident unit is restarted whatever ends it, and has room for descriptors.
grep -qx 'Restart=always' examples/systemd/pitcrew-watch.service || fail "pitcrew-watch.service: Restart=always"
grep -q '^LimitNOFILE=' examples/systemd/pitcrew-watch.service || fail "pitcrew-watch.service: LimitNOFILE"

section "the launchd plist names only absolute paths, and install.sh for its prefix puts them in place"
# launchd expands nothing: a $VAR or ~ in ProgramArguments or EnvironmentVariables reaches the
# program as written. The plist is for PREFIX=/usr/local; a staged install for that prefix must
# hold the program it runs and the tools next to it, on the PATH it gives.
stage="$work/stage"
DESTDIR="$stage" PREFIX=/usr/local PITCREW_PROFILE=debug scripts/install.sh > /dev/null
cat > "$work/check_plist.py" <<'PY'
import os, plistlib, sys
path, stage = sys.argv[1], sys.argv[2]
p = plistlib.load(open(path, "rb"))
if "KeepAlive" in p:
    # Resident: kept alive, never started by the clock.
    assert p["KeepAlive"] is True and "StartInterval" not in p, f"{path}: KeepAlive"
else:
    assert p["StartInterval"] == 300, "StartInterval"
args, env = p["ProgramArguments"], p.get("EnvironmentVariables", {})
logs = [p[k] for k in ("StandardOutPath", "StandardErrorPath", "WorkingDirectory") if k in p]
for s in list(args) + list(env) + list(env.values()) + logs:
    assert "$" not in s and "~" not in s, f"{path}: launchd does not expand {s!r}"
program = args[0]
assert os.path.isabs(program) and os.access(stage + program, os.X_OK), f"{path}: {program} is not installed"
bindir = os.path.dirname(program)
path_dirs = env.get("PATH", "/usr/bin:/bin:/usr/sbin:/sbin").split(":")
assert all(os.path.isabs(d) for d in path_dirs), f"{path}: PATH {path_dirs}"
assert bindir in path_dirs, f"{path}: the tools in {bindir} are not on PATH {path_dirs}"
for t in os.environ["PITCREW_TOOLS"].split():
    assert os.access(os.path.join(stage + bindir, t), os.X_OK), f"{t} is not installed in {bindir}"
for f in logs:
    assert os.path.isabs(f) and os.path.isdir(os.path.dirname(f)), f"{path}: {f}"
PY
for plist in examples/launchd/*.plist; do
    PITCREW_TOOLS="${tools[*]}" python3 "$work/check_plist.py" "$plist" "$stage" || fail "launchd plist $plist"
done
# The check fails the plist a user would write with the path of the default install.
sed 's#<string>/usr/local/bin/pitcrew-orchestrator#<string>~/.local/bin/pitcrew-orchestrator#' \
    examples/launchd/com.pitcrew.orchestrator.plist > "$work/tilde.plist"
if PITCREW_TOOLS="${tools[*]}" python3 "$work/check_plist.py" "$work/tilde.plist" "$stage" 2> "$work/tilde.err"; then
    fail "the plist check passed a ~ in ProgramArguments"
fi
grep -q "launchd does not expand '~/.local/bin/pitcrew-orchestrator'" "$work/tilde.err" || fail "$(cat "$work/tilde.err")"

section "the cron lines are well formed (scripts/integration/75-cron.sh runs them)"
# Every schedule line has five time fields of cron's syntax and a command with no % (cron
# makes it a newline); no NAME=value line counts on cron to expand a $VAR or ~ (it does not).
python3 - examples/cron/crontab <<'PY' || fail "crontab"
import re, sys
field = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    var = re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=\s*(.*)$", line)
    if var:
        assert "$" not in var[1] and "~" not in var[1], f"line {n}: cron does not expand {var[1]!r}"
        continue
    parts = line.split(None, 5)
    assert len(parts) == 6 and all(re.fullmatch(field, p) for p in parts[:5]), f"line {n}: {line}"
    assert "%" not in parts[5], f"line {n}: cron turns % into a newline"
PY
