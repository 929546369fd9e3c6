#!/bin/sh
# The weekly SLA digest: seven days against a 99.9% objective, and the week's incidents
# (how long until someone knew, reacted, and it was back; who fixed it); breaches also
# become board tasks (once) so someone owns them.
set -eu
{
    rollup --days 7 --sla 99.9 --format text || [ $? -eq 1 ]
    echo
    rollup incidents --days 7 --format text
} | notify send - --level info --topic weekly-digest
rollup --days 7 --sla 99.9 | board ingest > /dev/null
