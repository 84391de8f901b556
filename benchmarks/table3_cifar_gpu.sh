#!/usr/bin/env bash
# Table 3's CIFAR-10 rows on a CUDA GPU: Gaussian kernel, no ridge, on pixels/255 and on random
# conv-net features (1,000 / 4,000 / 32,000 filters), γ from the median distance.
# Usage: table3_cifar_gpu.sh RESULTS_DIR [TRAIN_SIZE] [TEST_SIZE]
set -u
failed=0  # every row is tried; the exit status says whether any failed
results=${1:-results}
sizes=(--train-size "${2:-50000}" --test-size "${3:-10000}")
harness kernel --dataset cifar10 --features none --bandwidth median --device cuda --results-dir "$results" "${sizes[@]}" || failed=1
for filters in 1000 4000 32000; do
  harness kernel --dataset cifar10 --features random_conv --feature-option num_filters=$filters --bandwidth median \
    --device cuda --results-dir "$results" "${sizes[@]}" || failed=1
done
harness report table3 --results-dir "$results" --out reports
exit $failed
