#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, from the distribution's packages (Debian 12:
# slurmctld, slurmd, slurm-client, munge; SLURM 22.05; with ACCOUNTING=1 also slurmdbd and mariadb-server), to
# run the SLURM profile for real. As root:
#
#   cluster/slurm/local-cluster.sh start          # install what is missing, write a one-node slurm.conf, start
#                                                 # munged, (mariadbd, slurmdbd,) slurmctld and slurmd (pid files
#                                                 # under $STATE)
#   cluster/slurm/local-cluster.sh run [TARGET]   # PROFILE's TARGET (default: smoke's all) through
#                                                 # cluster/slurm/config.yaml as shipped, in a fresh clone of HEAD,
#                                                 # with only slurm_account and slurm_partition set there
#   cluster/slurm/local-cluster.sh stop           # stop the daemons started by `start` (by pid)
#
# Settings (environment): CPUS, the node's CPUs (default 2; smoke jobs take 1 each), MEM_MB (default 8000),
# ACCOUNTING (0: accounting_storage/none, sacct has nothing to report; 1: slurmdbd on a mariadb of its own under
# $STATE, as most real clusters), PROFILE (for `run`: a profile name or a .yaml path; default smoke), STATE
# (default /tmp/poolnas-slurm: config, spool, logs, database, the clone), VENV (default: this checkout's .venv,
# whose editable poolnas is this checkout's code: run from a clean checkout so that it equals HEAD).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${STATE:-/tmp/poolnas-slurm}
CPUS=${CPUS:-2}
MEM_MB=${MEM_MB:-8000}
ACCOUNTING=${ACCOUNTING:-0}
PROFILE=${PROFILE:-smoke}
VENV=${VENV:-$here/.venv}
PARTITION=debug
ACCOUNT=local
node=$(hostname -s)
# SLURM's commands inside a job (srun, run by the plugin's job step) read the default path, not $SLURM_CONF:
# the config lives there while the cluster runs (start refuses to replace a slurm.conf it did not write).
conf=/etc/slurm/slurm.conf
dbdconf=/etc/slurm/slurmdbd.conf

die() { echo "local-cluster: $*" >&2; exit 1; }

install_packages() {
  local missing=()
  local packages=(slurmctld slurmd slurm-client munge)
  for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  if [ "$ACCOUNTING" = 1 ]; then
    packages+=(slurmdbd slurm-wlm-mysql-plugin mariadb-server)
    for cmd in slurmdbd mariadbd; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  fi
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "needs root to install ${packages[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
}

write_config() {
  mkdir -p "$STATE"/{spool/ctld,spool/d,log,run} /etc/slurm
  if [ -e "$conf" ] && ! grep -q "^# Written by cluster/slurm/local-cluster.sh" "$conf"; then
    die "$conf exists and was not written by this script: not replacing it"
  fi
  local storage=accounting_storage/none
  [ "$ACCOUNTING" = 1 ] && storage="accounting_storage/slurmdbd
AccountingStorageHost=$node"
  cat > "$conf" <<EOF
# Written by cluster/slurm/local-cluster.sh: one node, ACCOUNTING=$ACCOUNTING, no cgroups.
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
AccountingStorageType=$storage
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=300
NodeName=$node CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

# Accounting as a real cluster keeps it: slurmdbd (port 6819) on a mariadb of its own (datadir $STATE/mysql,
# 127.0.0.1:3306 and a socket under $STATE/run), with the cluster, account and user registered by sacctmgr.
start_accounting() {
  if [ -e "$dbdconf" ] && ! grep -q "^# Written by cluster/slurm/local-cluster.sh" "$dbdconf"; then
    die "$dbdconf exists and was not written by this script: not replacing it"
  fi
  local sock=$STATE/run/mysqld.sock
  mkdir -p "$STATE/mysql" && chown mysql:mysql "$STATE/mysql" "$STATE/run"
  [ -d "$STATE/mysql/mysql" ] || mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql" \
    --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log"
  touch "$STATE/log/mariadb.log" && chown mysql:mysql "$STATE/log/mariadb.log"
  setsid runuser -u mysql -- mariadbd --no-defaults --datadir="$STATE/mysql" --socket="$sock" \
    --pid-file="$STATE/run/mysqld.pid" --bind-address=127.0.0.1 --port=3306 --log-error="$STATE/log/mariadb.log" </dev/null &>/dev/null &
  for _ in $(seq 30); do mariadb --no-defaults --socket="$sock" -e 'select 1' >/dev/null 2>&1 && break; sleep 1; done
  mariadb --no-defaults --socket="$sock" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'poolnas-local';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "mariadb did not start (see $STATE/log/mariadb.log)"
  cat > "$dbdconf" <<EOF
# Written by cluster/slurm/local-cluster.sh: the one-node cluster's accounting.
AuthType=auth/munge
DbdHost=$node
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=poolnas-local
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$dbdconf"
  slurmdbd
  for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
  sacctmgr -i add cluster poolnas-local >/dev/null || true  # exists already on a second start
  sacctmgr -i add account "$ACCOUNT" cluster=poolnas-local >/dev/null || true
  sacctmgr -i add user root account="$ACCOUNT" cluster=poolnas-local >/dev/null || true
  sacctmgr -n list association format=cluster,account,user
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
  if [ "$ACCOUNTING" = 1 ]; then start_accounting; fi
  slurmctld -f "$conf"
  slurmd -f "$conf"
  for _ in $(seq 30); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    sleep 1
  done
  sinfo
  sinfo -h -o %T | grep -qx idle || die "the node is not idle after 30 s (see $STATE/log/)"
  # The profile's status command, squeue, needs MinJobAge >= 120 s (cluster/slurm/config.yaml).
  scontrol show config | grep -E '^(AccountingStorageType|MinJobAge) '
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
  local cmd=("$VENV/bin/snakemake" "$target" --workflow-profile cluster/slurm --config profile="$PROFILE")
  echo "+ ${cmd[*]}"
  "${cmd[@]}"
}

stop() {
  for daemon in slurmd slurmctld slurmdbd mysqld munge/munged; do
    pidfile=$STATE/run/$daemon.pid
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && echo "stopped $daemon (pid $pid)" || true
    rm -f "$pidfile"
  done
  for file in "$conf" "$dbdconf"; do
    if [ -e "$file" ] && grep -q "^# Written by cluster/slurm/local-cluster.sh" "$file"; then rm -f "$file"; fi
  done
}

case "${1:-}" in
  start) start ;;
  run) shift; run "$@" ;;
  stop) stop ;;
  *) die "usage: $0 start | run [TARGET] | stop" ;;
esac
