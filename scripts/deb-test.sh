#!/usr/bin/env bash
# The Debian package on this machine: build it (scripts/deb.sh, sharing the release build of
# scripts/demo.sh), check what it holds, install it with dpkg, run the orchestrator of the
# installed package on the installed example (/usr/bin, /usr/share/doc/pitcrew/examples):
# healthy, then the example site killed and restarted by recover through the example's own
# restart script, then healthy again; and remove the package. Needs root or sudo, cargo-deb,
# and the example site's port (127.0.0.1:18080) free. KEEP=1 keeps the work directory.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"  # sets tools

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
fail() { printf 'deb-test: FAILED: %s\n' "$*" >&2; exit 1; }
section() { printf '== %s\n' "$*"; }
port_open() { python3 -c 'import socket; socket.create_connection(("127.0.0.1", 18080), 0.2).close()' 2>/dev/null; }

if dpkg -s pitcrew >/dev/null 2>&1; then
    fail "a pitcrew package is installed already; remove it first (dpkg -r pitcrew)"
fi
if port_open; then
    fail "127.0.0.1:18080, the example site's port, is taken"
fi
pitcrew_workdir deb

section "the package holds the tools, their man pages and completions, the units and the examples"
t0=$(date +%s)
deb=$(scripts/deb.sh)
echo "$deb: $(stat -c %s "$deb") bytes, made in $(($(date +%s) - t0)) s"
dpkg-deb --info "$deb" > "$work/info"
grep -q '^ Package: pitcrew$' "$work/info" || fail "package name"
dpkg-deb -c "$deb" > "$work/contents"
mode_of() { awk -v p="./$1" '$6 == p { print $1 }' "$work/contents"; }
for t in "${tools[@]}" pitcrew-orchestrator pitcrew-watch; do
    [ "$(mode_of "usr/bin/$t")" = "-rwxr-xr-x" ] || fail "usr/bin/$t: $(mode_of "usr/bin/$t")"
done
for t in "${tools[@]}"; do
    for f in "usr/share/man/man1/$t.1.gz" "usr/share/bash-completion/completions/$t" \
        "usr/share/zsh/vendor-completions/_$t" "usr/share/fish/vendor_completions.d/$t.fish"; do
        [ "$(mode_of "$f")" = "-rw-r--r--" ] || fail "$f missing"
    done
done
[ "$(mode_of usr/share/doc/pitcrew/examples/demo/start-site.sh)" = "-rwxr-xr-x" ] || fail "start-site.sh lost its exec bit"
[ "$(mode_of usr/share/doc/pitcrew/examples/checks/check_load)" = "-rwxr-xr-x" ] || fail "check_load lost its exec bit"
[ "$(mode_of usr/share/doc/pitcrew/examples/services.json)" = "-rw-r--r--" ] || fail "services.json"
for u in examples/systemd/*; do
    [ -n "$(mode_of "usr/lib/systemd/system/$(basename "$u")")" ] || fail "unit $(basename "$u") missing"
done
# Every file under examples/ is in the package (binaries and generated files aside).
want=$(git ls-files examples | wc -l)
have=$(grep -c '\./usr/share/doc/pitcrew/examples/.*[^/]$' "$work/contents")
[ "$want" -eq "$have" ] || fail "$have example files packaged, $want in examples/"

section "dpkg -i installs it"
on_exit+=(remove_package)
remove_package() { $sudo dpkg -r pitcrew >/dev/null 2>&1 || true; }
$sudo dpkg -i "$deb" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
echo "$(dpkg -L pitcrew | wc -l) paths installed"
for t in "${tools[@]}"; do
    [ "$(/usr/bin/"$t" --version)" = "$t $(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)" ] \
        || fail "/usr/bin/$t --version"
    [ "$(man -w "$t" 2>/dev/null)" = "/usr/share/man/man1/$t.1.gz" ] || fail "man -w $t: $(man -w "$t" 2>&1)"
    bash -c ". /usr/share/bash-completion/completions/$t && complete -p $t" >/dev/null || fail "bash completion of $t"
done
if grep -q '/usr/local/bin' /usr/lib/systemd/system/pitcrew*.service; then fail "a unit names /usr/local/bin"; fi
systemd-analyze verify /usr/lib/systemd/system/pitcrew.service /usr/lib/systemd/system/pitcrew.timer \
    /usr/lib/systemd/system/pitcrew-watch.service /usr/lib/systemd/system/pitcrew-heartbeat.service \
    || fail "systemd-analyze verify of the installed units"

section "the installed orchestrator on the installed example"
examples=/usr/share/doc/pitcrew/examples
run_home="$work/run"
# The package alone: no build directory on PATH, nothing from the source tree.
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
export AGENT_OPS_HOME="$run_home/home" HOME="$run_home/user" AGENT_OPS_MISSIONS="$run_home/home/missions"
mkdir -p "$HOME"
unset PITCREW_BIN
# The example services, stopped at exit by their process ids: the site (its directory is the
# installed example's) and the workers that were not running before.
site_pid() { pgrep -f -- "--directory $examples/site" || true; }
workers_before=$(pgrep -f pitcrew-example-worker || true)
stop_examples() {
    local p
    for p in $(site_pid) $(pgrep -f pitcrew-example-worker || true); do
        if ! grep -qx "$p" <<< "$workers_before"; then kill "$p" 2>/dev/null || true; fi
    done
}
on_exit=(stop_examples "${on_exit[@]}")
(cd / && "$examples/demo/start-site.sh" && "$examples/demo/start-worker.sh")
(cd / && "$examples/demo/setup-home.sh") > "$work/setup.log" || { cat "$work/setup.log" >&2; fail "setup-home.sh"; }
grep -q "\"$examples/demo/start-site.sh\"" "$AGENT_OPS_HOME/config/services.json" || fail "services.json names the installed example"
orchestrate() { (cd / && pitcrew-orchestrator) || echo "orchestrator exit status $?"; }
orchestrate
# The example's services (the load and disk checks judge this machine, which may be busy).
healthy='map(select(.kind == "check" and (.name | startswith("Example ")))) | length == 3 and all(.[]; .status == "up")'
jq -e -s "$healthy" "$AGENT_OPS_HOME/logs/last-probe.ndjson" > /dev/null \
    || fail "run 1: $(cat "$AGENT_OPS_HOME/logs/last-probe.ndjson")"
echo "run 1: the example site and worker are up"
pid=$(site_pid)
[ -n "$pid" ] || fail "no example site running"
kill "$pid"
for _ in $(seq 50); do port_open || break; sleep 0.1; done
orchestrate
jq -e -s 'map(select(.kind == "recovery" and .name == "Example Site Port"))[0] | .outcome == "recovered" and .verified' \
    "$AGENT_OPS_HOME/logs/last-recover.ndjson" > /dev/null || fail "run 2: $(cat "$AGENT_OPS_HOME/logs/last-recover.ndjson")"
echo "run 2: the site was down; recover restarted it with $examples/demo/start-site.sh"
orchestrate
jq -e -s "$healthy" "$AGENT_OPS_HOME/logs/last-probe.ndjson" > /dev/null \
    || fail "run 3: $(cat "$AGENT_OPS_HOME/logs/last-probe.ndjson")"
echo "run 3: healthy again"
rollup --days 1 --format html --output "$run_home/www/index.html"
jq -e 'any(.services[]; .name == "Example Site" and .state == "up")' "$run_home/www/status.json" > /dev/null || fail "status.json of the installed rollup"

section "dpkg -r removes it"
stop_examples
$sudo dpkg -r pitcrew > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r"; }
for t in "${tools[@]}" pitcrew-orchestrator pitcrew-watch; do
    [ ! -e "/usr/bin/$t" ] || fail "/usr/bin/$t is left"
done
echo "deb-test: all passed"
