#!/usr/bin/env bash
# Table 3's CIFAR-10 rows on the CPU, on all 50,000 training and 10,000 test images: the Gaussian
# kernel without ridge on pixels/255 and on random conv-net features, γ from the median distance
# (the rule fixed before any test error is seen), into a bundle.
#
# Usage: scripts/table3-cifar10-cpu.sh [BUNDLE] [FILTERS...]
#   BUNDLE   the results folder (default reproduction/cpu-2core/table3-cifar10)
#   FILTERS  numbers of random conv-net filters, one row each (default: 1000; the paper's 32000 takes
#            about 1.5 hours on 2 cores)
# Every row already stored is skipped, so running it again adds only the missing rows. Each row's
# time and peak memory are stored with it (kernel_runs.wall_seconds, peak_memory_bytes).
set -u
bundle=${1:-reproduction/cpu-2core/table3-cifar10}
shift || true
filters=("${@:-1000}")
failed=0 # every row is tried; the exit status says whether any failed
harness kernel --dataset cifar10 --features none --bandwidth median --device cpu --results-dir "$bundle" || failed=1
for count in "${filters[@]}"; do
    harness kernel --dataset cifar10 --features random_conv --feature-option "num_filters=$count" \
        --bandwidth median --device cpu --results-dir "$bundle" || failed=1
done
exit $failed
