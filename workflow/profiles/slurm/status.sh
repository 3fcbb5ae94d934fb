#!/bin/sh
# Status of a SLURM job for Snakemake's generic cluster executor: success, running or failed.
# scontrol knows a job until MinJobAge after it ends; sacct (where the cluster keeps accounting) after that.
state=$(scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1)
if [ -z "$state" ] && command -v sacct >/dev/null 2>&1; then
  state=$(sacct -j "$1" -X -n -o State 2>/dev/null | awk 'NR == 1 {print $1}')
fi
case "$state" in
  COMPLETED) echo success ;;
  PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|STAGE_OUT|SIGNALING) echo running ;;
  *) echo failed ;;
esac
