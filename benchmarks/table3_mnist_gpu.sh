#!/usr/bin/env bash
# Table 3's MNIST rows at full scale (60,000 train / 10,000 test) on a CUDA GPU: Gaussian kernel,
# no ridge, on raw pixels/255 (γ = 0.02) and on Gabor features (γ from the median distance),
# plus the same kernel machine interpolating random labels. Usage: table3_mnist_gpu.sh RESULTS_DIR
set -u
failed=0  # every row is tried; the exit status says whether any failed
results=${1:-results}
harness kernel --dataset mnist --features none --bandwidth 0.02 --device cuda --results-dir "$results" || failed=1
harness kernel --dataset mnist --features none --bandwidth 0.02 --device cuda --results-dir "$results" --corruption random_labels || failed=1
harness kernel --dataset mnist --features gabor --bandwidth median --device cuda --results-dir "$results" || failed=1
harness report table3 --results-dir "$results" --out reports
exit $failed
