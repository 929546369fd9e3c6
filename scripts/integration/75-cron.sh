# shellcheck shell=bash disable=SC2154,SC2015
# (SC2015: every "A && B || fail" here means it, fail exits.)
# Sourced by scripts/integration.sh: the shipped crontab under Debian's cron, for an account
# made for the test with nothing in its home. scripts/install.sh installs into its ~/.local;
# the crontab goes in as shipped but for the orchestrator's schedule (every minute); cron runs
# the first run. Then the lines of the report and tick jobs run as cron runs a line: /bin/sh -c
# with cron's environment and nothing else. Needs root (useradd, crontab -u, cron).

# cron_line FILE PATTERN NAME: run the command of FILE's schedule line that contains PATTERN
# as cron runs it, as the test's account, from its home, with cron's environment: HOME,
# LOGNAME, SHELL=/bin/sh, PATH=/usr/bin:/bin, then the file's NAME=value lines above the
# line, as written. What the command prints (cron would mail it) goes to $cron_dir/NAME.out;
# its exit status to cron_status.
cron_line() {
    local file=$1 pattern=$2 name=$3 line var value cmd="" _m _h _dom _mon _dow
    local -a envs=(HOME="$cron_home" LOGNAME="$cron_user" SHELL=/bin/sh PATH=/usr/bin:/bin)
    while IFS= read -r line; do
        line="${line#"${line%%[![:space:]]*}"}"
        case "$line" in '' | '#'*) continue ;; esac
        if [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
            var="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
            # cron drops matching quotes around a value, and nothing else.
            if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
            envs+=("$var=$value")
            continue
        fi
        read -r _m _h _dom _mon _dow cmd <<< "$line"
        [[ "$cmd" == *"$pattern"* ]] && break
        cmd=""
    done < "$file"
    [ -n "$cmd" ] || fail "no schedule line of $file runs $pattern"
    case "$cmd" in *%*) fail "cron would turn the % of this line into a newline: $cmd" ;; esac
    cron_status=0
    (cd "$cron_home" && runuser -u "$cron_user" -- env -i "${envs[@]}" /bin/sh -c "$cmd") \
        > "$cron_dir/$name.out" 2>&1 < /dev/null || cron_status=$?
}

# as_user COMMAND...: the test's setup, done as the account would do it.
as_user() {
    (cd "$cron_home" && runuser -u "$cron_user" -- env -i HOME="$cron_home" LOGNAME="$cron_user" PATH=/usr/bin:/bin "$@")
}

cron_pid=""
cron_user=""
cron_cleanup() {
    if [ -n "$cron_pid" ]; then
        kill "$cron_pid" 2>/dev/null || true
        wait "$cron_pid" 2>/dev/null || true
        cron_pid=""
    fi
    if [ -n "$cron_user" ] && id "$cron_user" >/dev/null 2>&1; then
        crontab -u "$cron_user" -r 2>/dev/null || true
        userdel --remove "$cron_user" 2>/dev/null || true
    fi
}

section "the shipped crontab runs under cron for a new account, and so do its job lines"
if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: creating an account and running cron needs root"
else
    on_exit+=(cron_cleanup)
    cron_dir="$work/cron"
    mkdir -p "$cron_dir"
    ! id "pitcrew-cron-$$" > /dev/null 2>&1 || fail "an account pitcrew-cron-$$ exists already"
    useradd --create-home --user-group --shell /bin/sh "pitcrew-cron-$$" || fail "useradd pitcrew-cron-$$"
    cron_user="pitcrew-cron-$$"
    cron_home=$(getent passwd "$cron_user" | cut -d: -f6)
    [ -d "$cron_home" ] && [ ! -e "$cron_home/.agent-ops" ] && [ ! -e "$cron_home/.local" ] \
        || fail "$cron_home is not a new home"

    # scripts/install.sh with its default prefix, ~/.local of the account (cargo keeps its own
    # home), the files then the account's.
    cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
    HOME="$cron_home" CARGO_HOME="$cargo_home" RUSTUP_HOME="$rustup_home" PITCREW_PROFILE=debug \
        scripts/install.sh > /dev/null || fail "install.sh for $cron_user"
    chown -R "$cron_user:" "$cron_home/.local"
    [ -x "$cron_home/.local/bin/pitcrew-orchestrator" ] || fail "install.sh did not install into ~/.local"

    # What the account adds by hand, as examples/cron/crontab says: a services.json (a site
    # that is up, a port that is closed, a webhook) and the jobs.
    python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$root/examples/site" > "$cron_dir/site.log" 2>&1 &
    pids+=($!)
    python3 -u "$root/scripts/integration/webhook-receiver.py" "$cron_dir/received" > "$cron_dir/hook-port" &
    pids+=($!)
    site_port=""
    for _ in $(seq 1 50); do
        site_port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$cron_dir/site.log" | head -1)
        [ -n "$site_port" ] && [ -s "$cron_dir/hook-port" ] && break
        sleep 0.1
    done
    [ -n "$site_port" ] && [ -s "$cron_dir/hook-port" ] || fail "the site or the webhook receiver did not start"
    cat > "$cron_dir/services.json" <<JSON
{"disk_check": false,
 "services": [
  {"name": "site", "type": "url", "target": "http://127.0.0.1:$site_port/health.json", "expected_status": 200,
   "json_field": "status", "json_equals": "ok"},
  {"name": "closed", "type": "port", "host": "127.0.0.1", "port": 1, "timeout_seconds": 2}
 ],
 "alerting": {"webhook_url": "http://127.0.0.1:$(cat "$cron_dir/hook-port")/hook"}}
JSON
    install -d -o "$cron_user" -g "$cron_user" "$cron_home/.agent-ops" "$cron_home/.agent-ops/config" \
        "$cron_home/.agent-ops/jobs"
    install -o "$cron_user" -g "$cron_user" -m 0644 "$cron_dir/services.json" "$cron_home/.agent-ops/config/"
    install -o "$cron_user" -g "$cron_user" -m 0755 examples/jobs/*.sh "$cron_home/.agent-ops/jobs/"

    # The crontab as shipped, the orchestrator's five time fields made "* * * * *".
    sed -E '/^[^#]*pitcrew-orchestrator/ s/^[[:space:]]*([^[:space:]]+[[:space:]]+){5}/* * * * *  /' \
        examples/cron/crontab > "$cron_dir/crontab"
    [ "$(diff examples/cron/crontab "$cron_dir/crontab" | grep -c '^>')" -eq 1 ] \
        && grep -q '^\* \* \* \* \*  .*pitcrew-orchestrator' "$cron_dir/crontab" \
        || fail "the orchestrator's schedule was not the one line rewritten: $(diff examples/cron/crontab "$cron_dir/crontab")"
    crontab -u "$cron_user" "$cron_dir/crontab" || fail "crontab -u $cron_user"

    # Debian's cron, unless one runs already (it holds /run/crond.pid; a second would not start).
    running=$(cat /run/crond.pid 2>/dev/null || true)
    cron_started=$SECONDS
    if [ -n "$running" ] && [ "$(cat "/proc/$running/comm" 2>/dev/null)" = cron ]; then
        echo "the cron already running ($running) runs the crontab"
    else
        cron -f > "$cron_dir/cron.out" 2>&1 < /dev/null &
        cron_pid=$!
        for _ in $(seq 1 100); do
            [ "$(cat /run/crond.pid 2>/dev/null)" = "$cron_pid" ] && break
            kill -0 "$cron_pid" 2>/dev/null || break
            sleep 0.05
        done
        [ "$(cat /run/crond.pid 2>/dev/null)" = "$cron_pid" ] || fail "cron did not start: $(cat "$cron_dir/cron.out")"
    fi

    # cron starts the line at the next minute; a run takes a few seconds.
    ops="$cron_home/.agent-ops"
    until grep -q '=== run complete' "$ops/logs/orchestrator.log" 2>/dev/null; do
        if [ $((SECONDS - cron_started)) -ge 75 ]; then
            # What cron saw and discarded (it mails a job's output, and there is no mail here):
            # the same line, run as cron runs it.
            cron_line "$cron_dir/crontab" pitcrew-orchestrator orchestrator-by-hand
            fail "no orchestrator run under cron in 75 s; run by hand, the line exited $cron_status:" \
                "$(cat "$cron_dir/orchestrator-by-hand.out"); in the home: $(cd "$cron_home" && find . -newer "$cron_dir/crontab" | head -20 | tr '\n' ' ')"
        fi
        sleep 0.5
    done
    echo "the first run ended $((SECONDS - cron_started)) s after cron started"
    # Stop it before the job lines: a second run would alert on the ticks they set up.
    crontab -u "$cron_user" -r
    if [ -n "$cron_pid" ]; then
        kill "$cron_pid"
        wait "$cron_pid" 2>/dev/null || true
        cron_pid=""
    fi

    # The run had the account's home: its log, metrics and state under ~/.agent-ops.
    grep -qF "=== run starting (home $ops) ===" "$ops/logs/orchestrator.log" \
        || fail "the run's home: $(cat "$ops/logs/orchestrator.log")"
    grep -qF '=== run complete: exit 1 ===' "$ops/logs/orchestrator.log" \
        || fail "closed is down, so the run exits 1: $(cat "$ops/logs/orchestrator.log")"
    [ -f "$ops/logs/cron.log" ] && [ ! -s "$ops/logs/cron.log" ] \
        || fail "the run prints nothing into cron.log: $(cat "$ops/logs/cron.log" 2>&1)"
    cat "$ops"/metrics/*.jsonl 2>/dev/null | jq -e -s \
        'any(.[]; .name == "site" and .status == "up") and any(.[]; .name == "closed" and .status == "down")' \
        > /dev/null || fail "metrics under $ops/metrics: $(ls -la "$ops" "$ops/metrics" 2>&1)"
    [ -f "$ops/state/orchestrator.lock" ] && [ -f "$ops/state/notify.json" ] \
        || fail "state under $ops/state: $(ls -la "$ops/state" 2>&1)"
    rec "$ops/logs/last-probe.ndjson" site '.status == "up"' || fail "last-probe.ndjson: site is up"
    grep -q 'closed is failing' "$cron_dir/received" || fail "the alert for closed reached the webhook"
    [ -z "$(find "$ops" ! -user "$cron_user")" ] || fail "files the account does not own: $(find "$ops" ! -user "$cron_user")"

    section "the crontab's report and tick job lines run as cron runs them"
    # Two agents: atlas on this host (its gateway is the site), beacon elsewhere.
    cat > "$cron_dir/agent-registry.json" <<JSON
{"agents": [
  {"id": "atlas", "name": "Atlas", "active": true, "home_dir": "~/agents/atlas",
   "config_path": "~/agents/atlas/config.json", "gateway": "127.0.0.1:$site_port"},
  {"id": "beacon", "name": "Beacon", "active": true, "gateway": "127.0.0.1:1"}
]}
JSON
    install -o "$cron_user" -g "$cron_user" -m 0644 "$cron_dir/agent-registry.json" "$ops/config/"
    as_user mkdir -p "$cron_home/agents/atlas"
    # shellcheck disable=SC2016 # the account's sh expands it
    as_user sh -c 'echo "{\"agent\": \"atlas\"}" > "$HOME/agents/atlas/config.json"'
    as_user git init -q --bare "$cron_home/ticks.git"
    as_user git clone -q "$cron_home/ticks.git" "$ops/ticks" 2> /dev/null

    cron_line "$cron_dir/crontab" daily-uptime-report.sh daily
    [ "$cron_status" -eq 0 ] && [ ! -s "$cron_dir/daily.out" ] \
        || fail "the daily line exited $cron_status: $(cat "$cron_dir/daily.out")"
    grep -q "Uptime Report (last 1 days)" "$cron_dir/received" || fail "the daily report reached the webhook"
    grep -q '"topic":"daily-uptime"' "$ops/logs/cron.log" || fail "the daily report's record in cron.log"

    cron_line "$cron_dir/crontab" weekly-sla-digest.sh weekly
    [ "$cron_status" -eq 0 ] && [ ! -s "$cron_dir/weekly.out" ] \
        || fail "the weekly line exited $cron_status: $(cat "$cron_dir/weekly.out")"
    grep -q "Uptime Report (last 7 days)" "$cron_dir/received" || fail "the weekly digest reached the webhook"
    jq -e '[.tasks[] | select(.subject == "uptime:closed")] | length == 1' "$ops/state/board.json" > /dev/null \
        || fail "the SLA breach of closed became one board task: $(cat "$ops/state/board.json" 2>&1)"

    # As shipped, the submit line has no agent id: it says so and does nothing. With the line
    # the crontab says to uncomment, it commits and pushes the tick.
    cron_line "$cron_dir/crontab" monthly-tick-submit.sh submit-unset
    [ "$cron_status" -eq 2 ] && grep -q 'set PITCREW_AGENT to the agent id of this host' "$ops/logs/cron.log" \
        || fail "the submit line without PITCREW_AGENT exited $cron_status: $(tail -3 "$ops/logs/cron.log")"
    sed 's/^#PITCREW_AGENT=.*/PITCREW_AGENT=atlas/' "$cron_dir/crontab" > "$cron_dir/crontab-atlas"
    cron_line "$cron_dir/crontab-atlas" monthly-tick-submit.sh submit
    [ "$cron_status" -eq 0 ] && [ ! -s "$cron_dir/submit.out" ] \
        || fail "the submit line exited $cron_status: $(cat "$cron_dir/submit.out"; tail -3 "$ops/logs/cron.log")"
    as_user git --git-dir="$cron_home/ticks.git" log --oneline | grep -q "tick: atlas" \
        || fail "the tick was pushed to the shared repository"

    # beacon has no tick: its RCA alert reaches the webhook.
    cron_line "$cron_dir/crontab" monthly-tick-check.sh check
    [ "$cron_status" -eq 0 ] && [ ! -s "$cron_dir/check.out" ] \
        || fail "the check line exited $cron_status: $(cat "$cron_dir/check.out"; tail -3 "$ops/logs/cron.log")"
    grep -q "RCA-AGENT: beacon" "$cron_dir/received" || fail "the RCA alert reached the webhook"

    # Nothing went anywhere but ~/.agent-ops: no directory named "$HOME" (an AGENT_OPS_HOME
    # that nothing expanded) or a second .agent-ops, in the home or where the account can write.
    mapfile -t cron_places < <(find /tmp /var/tmp /dev/shm -maxdepth 1 -mindepth 1 -user "$cron_user" 2>/dev/null)
    # shellcheck disable=SC2016 # a name, not an expansion
    strays=$(find "$cron_home" "${cron_places[@]}" \( -name '$HOME' -o -name '.agent-ops' \) ! -path "$ops" 2>/dev/null)
    [ -z "$strays" ] || fail "files outside ~/.agent-ops: $strays"

    cron_cleanup
    id "$cron_user" >/dev/null 2>&1 && fail "the account $cron_user is still there"
    [ ! -e "$cron_home" ] || fail "$cron_home is still there"
    echo "cron and the job lines: $((SECONDS - cron_started)) s"
fi
