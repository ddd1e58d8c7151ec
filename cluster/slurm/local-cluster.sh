#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, from the distribution's packages (Debian 12:
# slurmctld, slurmd, slurm-client, munge; SLURM 22.05; no accounting database), to run the SLURM profile for
# real. As root:
#
#   cluster/slurm/local-cluster.sh start          # install what is missing, write a one-node slurm.conf, start
#                                                 # munged, slurmctld and slurmd (pid files under $STATE)
#   cluster/slurm/local-cluster.sh run [TARGET]   # the smoke profile's TARGET (default: all) through
#                                                 # cluster/slurm/config.yaml, in a fresh clone of HEAD, with only
#                                                 # slurm_account and slurm_partition set there
#   cluster/slurm/local-cluster.sh stop           # stop the three daemons started by `start` (by pid)
#
# Settings (environment): CPUS, the node's CPUs (default 2; smoke jobs take 1 each), MEM_MB (default 8000),
# STATE (default /tmp/poolnas-slurm: config, spool, logs, the clone), VENV (default: this checkout's .venv,
# whose editable poolnas is this checkout's code: run from a clean checkout so that it equals HEAD).
# Without slurmdbd, `sacct` has nothing to report, so `run` passes the documented choice for such clusters,
# --slurm-status-command squeue (cluster/slurm/config.yaml).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${STATE:-/tmp/poolnas-slurm}
CPUS=${CPUS:-2}
MEM_MB=${MEM_MB:-8000}
VENV=${VENV:-$here/.venv}
PARTITION=debug
ACCOUNT=local
node=$(hostname -s)
# SLURM's commands inside a job (srun, run by the plugin's job step) read the default path, not $SLURM_CONF:
# the config lives there while the cluster runs (start refuses to replace a slurm.conf it did not write).
conf=/etc/slurm/slurm.conf

die() { echo "local-cluster: $*" >&2; exit 1; }

install_packages() {
  local missing=()
  for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "needs root to install slurmctld slurmd slurm-client munge"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
}

write_config() {
  mkdir -p "$STATE"/{spool/ctld,spool/d,log,run} /etc/slurm
  if [ -e "$conf" ] && ! grep -q "^# Written by cluster/slurm/local-cluster.sh" "$conf"; then
    die "$conf exists and was not written by this script: not replacing it"
  fi
  cat > "$conf" <<EOF
# Written by cluster/slurm/local-cluster.sh: one node, no accounting, no cgroups.
ClusterName=poolnas-local
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=300
NodeName=$node CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  install_packages
  write_config
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge "$STATE/run/munge" && chown munge:munge /run/munge "$STATE/run/munge"
  runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/run/munge/munged.pid" 2>/dev/null || true  # 1: running
  munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
  slurmctld -f "$conf"
  slurmd -f "$conf"
  for _ in $(seq 30); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    sleep 1
  done
  sinfo
  sinfo -h -o %T | grep -qx idle || die "the node is not idle after 30 s (see $STATE/log/)"
}

run() {
  local target=${1:-all}
  test -x "$VENV/bin/snakemake" || die "no $VENV/bin/snakemake: run 'make install' first"
  [ -z "$(git -C "$here" status --porcelain --untracked-files=no)" ] ||
    echo "local-cluster: warning: uncommitted changes; the jobs import this checkout's code, the clone has HEAD" >&2
  rm -rf "$STATE/repo"
  git clone -q "$here" "$STATE/repo"
  cd "$STATE/repo"
  # The only two settings a user makes (README, "On a SLURM cluster").
  sed -i -e "s/^  slurm_account: \"\"/  slurm_account: \"$ACCOUNT\"/" \
         -e "s/^  slurm_partition: \"\"/  slurm_partition: \"$PARTITION\"/" cluster/slurm/config.yaml
  git diff --stat
  local cmd=("$VENV/bin/snakemake" "$target" --workflow-profile cluster/slurm --slurm-status-command squeue
             --config profile=smoke)
  echo "+ ${cmd[*]}"
  "${cmd[@]}"
}

stop() {
  for daemon in slurmd slurmctld munge/munged; do
    pidfile=$STATE/run/$daemon.pid
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && echo "stopped $daemon (pid $pid)" || true
    rm -f "$pidfile"
  done
  if [ -e "$conf" ] && grep -q "^# Written by cluster/slurm/local-cluster.sh" "$conf"; then rm -f "$conf"; fi
}

case "${1:-}" in
  start) start ;;
  run) shift; run "$@" ;;
  stop) stop ;;
  *) die "usage: $0 start | run [TARGET] | stop" ;;
esac
