#!/bin/sh
# Run once on the 4th, after the 72-hour grace window: every active agent's tick, with an
# RCA issue in Gitea for each one missing, critical or offline.
set -eu
tickmon check --rca | notify --sink gitea --sink telegram
