# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: the example cron jobs run as written, with a webhook
# receiver standing in for the sinks and a bare repository for the shared ticks.

section "the example jobs run: daily report, weekly digest, monthly tick submit and check"
jobs_base="$work/jobs"
mkdir -p "$jobs_base"
python3 -u "$root/scripts/integration/webhook-receiver.py" "$jobs_base/received" > "$jobs_base/port" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$jobs_base/port" ] && break; sleep 0.1; done
(
    export AGENT_OPS_HOME="$jobs_base/home"
    export HOME="$jobs_base/user"
    export PATH="$bin:$PATH"
    WEBHOOK_URL="http://127.0.0.1:$(cat "$jobs_base/port")/hook"
    export WEBHOOK_URL
    export GIT_CEILING_DIRECTORIES="$jobs_base"
    examples/demo/start-site.sh
    examples/demo/start-worker.sh
    examples/demo/setup-home.sh > /dev/null
    probe > /dev/null || true
    examples/jobs/daily-uptime-report.sh > "$jobs_base/daily.out" || fail "daily-uptime-report.sh"
    examples/jobs/weekly-sla-digest.sh > "$jobs_base/weekly.out" || fail "weekly-sla-digest.sh"
    grep -q "Uptime Report (last 1 days)" "$jobs_base/received" || fail "the daily report reached the webhook"
    grep -q "Uptime Report (last 7 days)" "$jobs_base/received" || fail "the weekly digest reached the webhook"
    # The ticks directory as a clone of a shared bare repository.
    git init -q --bare "$jobs_base/ticks.git"
    rm -rf "$AGENT_OPS_HOME/ticks"
    git clone -q "$jobs_base/ticks.git" "$AGENT_OPS_HOME/ticks" 2>/dev/null
    git -C "$AGENT_OPS_HOME/ticks" config user.email "ops@example.invalid"
    git -C "$AGENT_OPS_HOME/ticks" config user.name "pitcrew"
    PITCREW_AGENT=atlas examples/jobs/monthly-tick-submit.sh > /dev/null || fail "monthly-tick-submit.sh"
    git --git-dir="$jobs_base/ticks.git" log --oneline | grep -q "tick: atlas" || fail "the tick was pushed to the shared repository"
    status=0
    examples/jobs/monthly-tick-check.sh > "$jobs_base/check.out" 2>&1 || status=$?
    # beacon and cinder have no tick in the fresh repository: their RCA alerts reach the sink.
    [ "$status" -le 1 ] || { cat "$jobs_base/check.out" >&2; fail "monthly-tick-check.sh exited $status"; }
    grep -q "RCA-AGENT: beacon" "$jobs_base/received" || fail "the RCA alert reached the webhook"
    pkill -f 'http.server 18080 --bind 127.0.0.1' 2>/dev/null || true
    pkill -f 'pitcrew-example-worker' 2>/dev/null || true
)
