#!/usr/bin/env bash
# Table 2 at CPU size on a folder tree (sweeps/table2-cpu.toml): write the first 5,000 / 1,000 CIFAR-10
# images as a PNG tree under TREE_ROOT (once), train the seven rows on it into RESULTS, and show them
# beside the paper's numbers. The tree fits in memory, so each run reads it once; with
# HARNESS_MEMORY_BUDGET_GB=0 the runs stream it from disk every epoch instead (same numbers, slower).
#
#   HARNESS_DATA_ROOT=/path/with/cifar10 scripts/table2-cpu.sh [RESULTS] [TREE_ROOT]
#
# Runs resume from their checkpoints when the script runs again.
set -euo pipefail
results=${1:-results/table2-cpu}
tree_root=${2:-$results/data}
harness=${HARNESS:-harness}
if [ ! -f "$tree_root/cifar10-png/manifest.txt" ]; then
    $harness data export --layout folder --dataset cifar10 --train-size 5000 --test-size 1000 --out "$tree_root/cifar10-png"
fi
$harness sweep sweeps/table2-cpu.toml --results-dir "$results" --data-root "$tree_root"
$harness report table2 --results-dir "$results" --plugin mlp_1x512 --dataset "folder:cifar10-png,size=32,crop=28"
