# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: needs $work, $bin, pids, fail, section.

section "notify posts to a real Alertmanager, which lists the alert, then resolves it"
am_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/am/data" "$work/am-home/config"
cat > "$work/am/alertmanager.yml" <<YAML
route:
  receiver: nobody
  group_by: [alertname]
receivers:
  - name: nobody
YAML
prometheus-alertmanager --config.file="$work/am/alertmanager.yml" --storage.path="$work/am/data" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address="" >"$work/am/log" 2>&1 &
pids+=($!)
am="http://127.0.0.1:$am_port"
for _ in $(seq 1 100); do
    curl -fsS "$am/-/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$am/-/ready" >/dev/null || fail "alertmanager did not start: $(cat "$work/am/log")"

cat > "$work/am-home/config/services.json" <<JSON
{"alerting": {"alertmanager_url": "$am", "host": "integration"}}
JSON
am_notify() { AGENT_OPS_HOME="$work/am-home" "$bin/notify"; }

echo '{"kind":"check","name":"api","status":"down","detail":"HTTP 500"}' | am_notify > "$work/am/run1.ndjson" \
    || fail "notify could not post to alertmanager: $(cat "$work/am/run1.ndjson")"
jq -e -s 'length == 1 and .[0].sinks == [{"sink":"alertmanager","delivered":true}]' "$work/am/run1.ndjson" >/dev/null \
    || fail "notify's alert record: $(cat "$work/am/run1.ndjson")"
curl -fsS "$am/api/v2/alerts" > "$work/am/alerts1.json"
jq -e 'length == 1 and (.[0] | .labels.alertname == "ServiceFailing" and .labels.subject == "check:api"
        and .labels.severity == "error" and .labels.host == "integration" and .status.state == "active"
        and .annotations.summary == "api is failing" and .annotations.description == "down: HTTP 500")' \
    "$work/am/alerts1.json" >/dev/null || fail "alertmanager's view: $(cat "$work/am/alerts1.json")"

# Still down: nothing new to tell people, but the alert is posted again so it stays active.
ends1=$(jq -r '.[0].endsAt' "$work/am/alerts1.json")
sleep 1.1
echo '{"kind":"check","name":"api","status":"down","detail":"HTTP 500"}' | am_notify > "$work/am/run2.ndjson"
[ ! -s "$work/am/run2.ndjson" ] || fail "a second alert for the same incident: $(cat "$work/am/run2.ndjson")"
ends2=$(curl -fsS "$am/api/v2/alerts" | jq -r '.[0].endsAt')
[ "$ends2" != "$ends1" ] || fail "the still-firing alert was not refreshed ($ends1)"

echo '{"kind":"check","name":"api","status":"up","detail":"HTTP 200"}' | am_notify > "$work/am/run3.ndjson" \
    || fail "notify could not resolve: $(cat "$work/am/run3.ndjson")"
jq -e -s '.[0].status == "resolved" and .[0].sinks[0].delivered' "$work/am/run3.ndjson" >/dev/null \
    || fail "the recovery record: $(cat "$work/am/run3.ndjson")"
curl -fsS "$am/api/v2/alerts?active=true" > "$work/am/alerts3.json"
jq -e 'length == 0' "$work/am/alerts3.json" >/dev/null || fail "still active after resolving: $(cat "$work/am/alerts3.json")"
