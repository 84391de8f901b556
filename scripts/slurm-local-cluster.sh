#!/usr/bin/env bash
# A single-node Slurm cluster on this machine (slurmctld + slurmd on localhost, munge for auth),
# for trying `harness sweep --executor submitit` without a real cluster.
#
#   scripts/slurm-local-cluster.sh start    # then: export SLURM_CONF=<dir>/slurm.conf (printed)
#   scripts/slurm-local-cluster.sh status
#   scripts/slurm-local-cluster.sh stop
#
# Needs the Debian packages slurm-wlm and munge, and root (slurmd runs jobs as their user).
# Everything (config, munge key and socket, spool, logs) lives in HARNESS_SLURM_DIR
# (default /var/tmp/harness-slurm); nothing under /etc is touched. There is no accounting
# database (slurmdbd), so `sacct` does not answer: submitit then sees job states as UNKNOWN.
set -euo pipefail
DIR="${HARNESS_SLURM_DIR:-/var/tmp/harness-slurm}"
CONF="$DIR/slurm.conf"
NODE="$(hostname)"

write_config() {
  mkdir -p "$DIR"/{ctld,slurmd,log}
  local cpus mem
  cpus="$(nproc)"
  mem="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))"
  cat > "$CONF" <<CONF
ClusterName=harness
SlurmctldHost=$NODE
SlurmctldPort=${HARNESS_SLURMCTLD_PORT:-6917}
SlurmdPort=${HARNESS_SLURMD_PORT:-6918}
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=300
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  command -v slurmctld >/dev/null || { echo "slurmctld not found: apt-get install slurm-wlm munge" >&2; exit 1; }
  write_config
  if [ ! -f "$DIR/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
    chmod 600 "$DIR/munge.key"
  fi
  munged --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" --pid-file="$DIR/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munged.seed"
  export SLURM_CONF="$CONF"
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "Slurm is up: node $NODE, partition local. Use it with:"
      echo "export SLURM_CONF=$CONF"
      return
    fi
    sleep 1
  done
  echo "Slurm did not come up; see $DIR/log/" >&2
  exit 1
}

stop() {
  for daemon in slurmd slurmctld munged; do
    if [ -f "$DIR/$daemon.pid" ]; then
      kill "$(cat "$DIR/$daemon.pid")" 2>/dev/null || true
      rm -f "$DIR/$daemon.pid"
    fi
  done
  echo "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$CONF" sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
