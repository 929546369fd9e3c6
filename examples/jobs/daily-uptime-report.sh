#!/bin/sh
# The daily uptime report: yesterday and today, in the kit's text form, to every sink.
set -eu
rollup --days 1 --format text | notify send - --level info --topic daily-uptime
