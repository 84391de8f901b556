#!/usr/bin/env bash
# The paper at full scale on one CUDA GPU, into reproduction/h200 (or the folder given first),
# in the order that matters most: Table 1, Figure 2b, Figures 1b/c, Figure 1a, then Table 3.
# Every step skips what is already stored, so the work accumulates over several sittings:
# run it again (or any one line of it) and it adds only the runs that are missing.
set -euo pipefail
bundle=${1:-reproduction/h200}
runs_per_gpu=${RUNS_PER_GPU:-1}

for spec in table1 fig2b fig1bc fig1a; do
    harness sweep "sweeps/$spec.toml" --results-dir "$bundle" --device cuda --runs-per-gpu "$runs_per_gpu"
done
# Table 3: all of MNIST (pixels, random labels, Gabor), then CIFAR-10 on all 50,000 training images.
benchmarks/table3_mnist_gpu.sh "$bundle"
benchmarks/table3_cifar_gpu.sh "$bundle" 50000 10000
