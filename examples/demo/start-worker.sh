#!/bin/sh
# Start the example worker: a long sleep whose process name pitcrew's process check finds.
set -eu
nohup bash -c 'exec -a pitcrew-example-worker sleep 86400' >/dev/null 2>&1 </dev/null &
