#!/usr/bin/env bash
# Stop the daemons tests/slurm/up.sh started, by their recorded PIDs (never by name), in reverse order.
# Safe to run when nothing is up. Cancels queued/running test jobs first so no job outlives the cluster.
set -uo pipefail

SCRATCH=${MULTIRATER_SLURM_DIR:-/tmp/multirater-slurm}
PIDS=$SCRATCH/pids

stop() { # stop NAME: SIGTERM, wait up to 15 s, then SIGKILL
    local f=$PIDS/$1.pid pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "slurm down: $1 ($pid) ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$f"
}

if [ -s "$PIDS/slurmctld.pid" ] && kill -0 "$(cat "$PIDS/slurmctld.pid")" 2>/dev/null; then
    scancel --full --state=RUNNING --quiet --user=root 2>/dev/null
    scancel --quiet --user=root 2>/dev/null
fi
for name in slurmd-gpu slurmd slurmctld slurmdbd mariadbd munged; do
    stop "$name"
done
echo "slurm down: stopped" >&2
