#!/bin/sh
# sbatch of one workflow job: submit.sh <gpus> <threads> <mem_mb> <minutes> <log folder> <jobscript>
# Prints the SLURM job id (what the status command is given).
gpus=$1 threads=$2 mem=$3 minutes=$4 logs=$5; shift 5
mkdir -p "$logs"
set -- --parsable --cpus-per-task="$threads" --mem="$mem" --time="$minutes" --output="$logs/%j.log" "$@"
[ -n "$ASC_SLURM_PARTITION" ] && set -- --partition="$ASC_SLURM_PARTITION" "$@"
[ -n "$ASC_SLURM_ACCOUNT" ] && set -- --account="$ASC_SLURM_ACCOUNT" "$@"
[ "$gpus" -gt 0 ] 2>/dev/null && [ "${ASC_SLURM_GPUS:-1}" != 0 ] && set -- --gpus="$gpus" "$@"
exec sbatch "$@"
