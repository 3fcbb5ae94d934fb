#!/bin/bash
# make test-slurm: a one-node SLURM cluster on this machine (Debian's slurmctld + slurmd with munge, no
# accounting database) runs the smoke plan through the workflow's SLURM profile; tests/test_slurm.py checks
# that every job went through sbatch and that the results equal a local run's. Installs the packages when
# absent (needs root), stops the daemons it started at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
begun=$(date +%s)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  echo "installing SLURM and munge (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
fi
WORK=$(mktemp -d /tmp/asc-slurm-XXXXXX)
export SLURM_CONF=$WORK/slurm.conf
started_munge=""
cleanup() {
  scontrol shutdown >/dev/null 2>&1 || true
  sleep 2
  pkill -f "slurmd -f $SLURM_CONF" >/dev/null 2>&1 || true
  pkill -f "slurmctld -f $SLURM_CONF" >/dev/null 2>&1 || true
  [ -n "$started_munge" ] && pkill -x munged >/dev/null 2>&1 || true
  echo "SLURM stopped; its files are in $WORK"
}
trap cleanup EXIT

if ! pgrep -x munged >/dev/null; then
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  started_munge=1
fi

HOST=$(hostname -s)
CPUS=$(nproc)
mkdir -p "$WORK/state" "$WORK/spool"
cat > "$SLURM_CONF" <<CONF
ClusterName=asc-selftest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MinJobAge=3600
ReturnToService=2
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=500000 State=UNKNOWN
PartitionName=study Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qx idle && break
  sleep 1
done
sinfo -h -o %T | grep -qx idle || { echo "the one-node cluster did not come up:"; tail -20 "$WORK"/slurm*.log; exit 1; }
echo "one-node SLURM cluster up ($HOST, $CPUS CPUs, partition study) in $(( $(date +%s) - begun )) s"

ASC_SLURM_SELFTEST=$WORK "$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/test_slurm.py" -p no:cacheprovider -v
echo "make test-slurm passed in $(( $(date +%s) - begun )) s"
