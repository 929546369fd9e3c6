#!/bin/sh
# Run once on the 4th, after the 72-hour grace window: every active agent's tick, and an RCA
# alert for each one missing, critical or offline. notify sends them to every configured
# sink; the Gitea sink turns each into an issue (a comment if the issue is already open).
set -eu
tickmon check | notify
