#!/bin/sh
# Start the example site on 127.0.0.1:18080 (a static server for examples/site), detached.
# Used by the demo and as the example's restart_command.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
log_dir="${AGENT_OPS_HOME:-${TMPDIR:-/tmp}}"
mkdir -p "$log_dir"
log="$log_dir/example-site.log"
nohup python3 -m http.server 18080 --bind 127.0.0.1 --directory "$here/examples/site" >"$log" 2>&1 </dev/null &
# Wait until it answers, at most 5 seconds.
i=0
while [ $i -lt 50 ]; do
    if python3 -c 'import socket; socket.create_connection(("127.0.0.1", 18080), 0.2).close()' 2>/dev/null; then
        exit 0
    fi
    sleep 0.1
    i=$((i + 1))
done
echo "example site did not start" >&2
exit 1
