#!/usr/bin/env bash
# Bring up a real SLURM cluster on this host (Debian 12, as root, no systemd) for the SLURM tests:
# MariaDB + slurmdbd (accounting: the snakemake executor plugin polls `sacct` and hangs without it),
# munged, slurmctld and two slurmd, each started by hand with its PID recorded so down.sh stops exactly these.
# Two nodes on this one host, as most HPC centres lay them out: node <host> (no GPU) in partitions `debug`
# (the default, which the older tests use) and `cpu`; node <host>-gpu in partition `gpu` (a 60 min limit),
# with two fake GPUs (GRES whose device files alias /dev/null: slurmd drops a GPU without a File, and
# nothing here runs CUDA; sbatch --gpus=1 is scheduled, counted and accounted like a real one).
# Idempotent: when the cluster recorded in the scratch folder is already up and its nodes idle, it does nothing.
#
# Settings (environment): MULTIRATER_SLURM_DIR (scratch folder, default /tmp/multirater-slurm),
# MULTIRATER_SLURM_CPUS (CPUs the node advertises, default: this host's), MULTIRATER_SLURM_MEM_MB.
set -euo pipefail

SCRATCH=${MULTIRATER_SLURM_DIR:-/tmp/multirater-slurm}
CLUSTER=multirater
PARTITION=debug
HOST=$(hostname -s)
GPU_NODE=$HOST-gpu
GPU_PARTITION_MAX_TIME=60  # minutes: the two-partition tests check retries against it
PIDS=$SCRATCH/pids

log() { echo "slurm up: $*" >&2; }
die() { # report, stop whatever this run started, fail
    echo "slurm up: error: $*" >&2
    [ -d "${PIDS:-}" ] && "$(dirname "$0")/down.sh" 2>/dev/null
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts the daemons)"

alive() { # alive NAME: the recorded daemon is running
    local f=$PIDS/$1.pid
    [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s
    local limit=$1 what=$2; shift 2
    local tries=$((limit * 5))
    for ((i = 0; i < tries; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "$what not ready after ${limit}s (logs in $SCRATCH/log)"
}

node_idle() { # both nodes idle (sinfo lists a node once per partition)
    local states
    states=$(sinfo -h -N -n "$HOST,$GPU_NODE" -o '%N %T' 2>/dev/null | sort -u)
    [ "$(grep -c ' idle$' <<<"$states")" = 2 ] && [ "$(wc -l <<<"$states")" = 2 ]
}

# Already up? (all six daemons alive and both nodes idle)
if alive munged && alive mariadbd && alive slurmdbd && alive slurmctld && alive slurmd && alive slurmd-gpu \
    && node_idle; then
    log "already up (nodes $HOST, $GPU_NODE idle)"
    exit 0
fi
if [ -d "$PIDS" ] && ls "$PIDS"/*.pid >/dev/null 2>&1; then
    log "a previous cluster is partly up: stopping it first"
    "$(dirname "$0")/down.sh"
fi

# --- packages (policy-rc.d keeps Debian from starting them; we start each by hand) ---------------------
PKGS="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    log "installing $PKGS"
    export DEBIAN_FRONTEND=noninteractive
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    fi
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $PKGS >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $PKGS >/dev/null; } \
        || die "apt-get install $PKGS failed"
fi

mkdir -p "$SCRATCH"/{log,state,spool,dev} "$PIDS"
rm -f "$PIDS"/*.pid

start() { # start NAME COMMAND...: run in the foreground of its own session, record its PID
    local name=$1; shift
    setsid "$@" </dev/null >>"$SCRATCH/log/$name.out" 2>&1 &
    echo $! >"$PIDS/$name.pid"
}

# --- munge ------------------------------------------------------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
start munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
wait_for 10 munged bash -c 'munge -n | unmunge'

# --- MariaDB (Unix socket only) -------------------------------------------------------------------------
DATADIR=$SCRATCH/mysql
install -d -o mysql -g mysql -m 0755 /run/mysqld "$SCRATCH/mysql-run"
if [ ! -d "$DATADIR/mysql" ]; then
    install -d -o mysql -g mysql -m 0750 "$DATADIR"
    mariadb-install-db --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=socket \
        --skip-test-db >"$SCRATCH/log/mariadb-install.out" 2>&1 || die "mariadb-install-db failed"
fi
start mariadbd mariadbd --no-defaults --user=mysql --datadir="$DATADIR" --skip-networking \
    --socket=/run/mysqld/mysqld.sock --pid-file="$SCRATCH/mysql-run/mariadbd.pid" \
    --innodb-buffer-pool-size=64M
wait_for 30 mariadbd mariadb-admin --socket=/run/mysqld/mysqld.sock ping
mariadb --socket=/run/mysqld/mysqld.sock -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "could not create the accounting database"

# --- SLURM configuration (in the scratch folder; /etc/slurm links to it so plain sinfo/sbatch find it) -------
# more CPUs than the box has (config_overrides) so sleeping or small jobs can run side by side
CPUS=${MULTIRATER_SLURM_CPUS:-$(( $(nproc) > 4 ? $(nproc) : 4 ))}
MEM_MB=${MULTIRATER_SLURM_MEM_MB:-$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)}
cat >"$SCRATCH/slurm.conf" <<CONF
# One-node test cluster written by tests/slurm/up.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SCRATCH/state
SlurmctldPidFile=$SCRATCH/slurmctld.pid
SlurmctldLogFile=$SCRATCH/log/slurmctld.log
# two slurmd on this host (slurmd -N NODE): each its own spool, pid and log file (%n: the node's name)
SlurmdSpoolDir=$SCRATCH/spool/%n
SlurmdPidFile=$SCRATCH/slurmd-%n.pid
SlurmdLogFile=$SCRATCH/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
# let the node advertise what it is told to (no drain when RealMemory is not exactly the hardware's)
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
# sacct's AllocTRES/ReqTRES then show gres/gpu=N
AccountingStorageTRES=gres/gpu
# keep the job comment (the executor plugin writes rule_<rule>_wildcards_<...> there) so sacct can show it
AccountingStoreFlags=job_comment
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
MinJobAge=300
KillWait=10
InactiveLimit=0
GresTypes=gpu
NodeName=$HOST NodeHostname=$HOST NodeAddr=127.0.0.1 Port=6818 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
NodeName=$GPU_NODE NodeHostname=$HOST NodeAddr=127.0.0.1 Port=6828 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=$HOST MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$GPU_NODE MaxTime=$GPU_PARTITION_MAX_TIME State=UP
CONF
# the fake GPUs: character devices aliasing /dev/null (slurmd needs a File for a GPU, and a character or block
# device there); where mknod is not allowed, /dev/null and /dev/zero themselves
GPU_FILES=$SCRATCH/dev/gpu[0-1]
for i in 0 1; do
    [ -c "$SCRATCH/dev/gpu$i" ] || mknod "$SCRATCH/dev/gpu$i" c 1 3 2>/dev/null || GPU_FILES=/dev/null,/dev/zero
done
{
    echo "AutoDetect=off"
    for file in ${GPU_FILES//,/ }; do echo "NodeName=$GPU_NODE Name=gpu File=$file"; done
} >"$SCRATCH/gres.conf"
mkdir -p "$SCRATCH/spool/$HOST" "$SCRATCH/spool/$GPU_NODE"
cat >"$SCRATCH/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$SCRATCH/slurmdbd.pid
LogFile=$SCRATCH/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm
CONF
chmod 600 "$SCRATCH/slurmdbd.conf"
mkdir -p /etc/slurm
for f in slurm.conf slurmdbd.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ] && [ ! -L "/etc/slurm/$f" ]; then
        die "/etc/slurm/$f exists and is not ours: refusing to replace it"
    fi
    ln -sfn "$SCRATCH/$f" "/etc/slurm/$f"
done

# --- slurmdbd, then the cluster's registration, then slurmctld and slurmd ----------------------------
start slurmdbd slurmdbd -D
wait_for 30 slurmdbd sacctmgr -n show cluster
if [ -z "$(sacctmgr -n -P show cluster "$CLUSTER" format=cluster)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "could not register cluster $CLUSTER"
fi
start slurmctld slurmctld -D -i
wait_for 30 slurmctld scontrol ping
start slurmd slurmd -D -N "$HOST"
start slurmd-gpu slurmd -D -N "$GPU_NODE"
wait_for 60 "nodes $HOST, $GPU_NODE" node_idle
log "up: cluster $CLUSTER, node $HOST idle in partitions $PARTITION (default) and cpu, node $GPU_NODE idle in" \
    "partition gpu (2 fake GPUs, $GPU_PARTITION_MAX_TIME min limit); each $CPUS CPUs, $MEM_MB MB; scratch $SCRATCH"
