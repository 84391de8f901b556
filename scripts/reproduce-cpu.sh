#!/usr/bin/env bash
# The CPU-scale results the README quotes, into reproduction/cpu-2core (2 cores: about 5 hours).
# Every step skips what is already stored, so running this again resumes; pass another
# folder as the first argument to make a bundle of your own machine.
set -euo pipefail
bundle=${1:-reproduction/cpu-2core}
jobs=${JOBS:-2}

# Table 1, Figures 1a-c and 2b at 256 images (the four specs share their runs).
for spec in table1 fig2b fig1a fig1bc; do
    harness sweep "sweeps/$spec-cpu.toml" --jobs "$jobs" --results-dir "$bundle" --device cpu
done
# Figures 1b/c on more data; its own folder, so its runs do not replace the 256-image ones in the reports.
harness sweep sweeps/fig1bc-cpu-larger.toml --jobs "$jobs" --results-dir "$bundle/fig1bc-larger" --device cpu
# Which examples are memorized, and when.
harness sweep sweeps/memorization-cpu.toml --jobs "$jobs" --results-dir "$bundle/memorization-digits" --device cpu
harness sweep sweeps/memorization-mnist-cpu.toml --jobs "$jobs" --results-dir "$bundle/memorization-mnist" --device cpu
python benchmarks/memorization_scores.py --dataset mnist --train-size 2000 --num-models 32 --epochs 40 --jobs "$jobs" \
    --results-dir "$bundle/memorization-scores"
# The theory: Theorem 1, SGD's minimum-norm solution, the Rademacher complexity of a network.
harness theory expressivity --n 1000 --d 20 --results-dir "$bundle/theory"
harness theory expressivity-sweep --results-dir "$bundle/theory"
harness theory min-norm --results-dir "$bundle/theory"
harness rademacher --plugin mlp_1x512 --train-size 500 --trials 5 --device cpu --results-dir "$bundle/theory"
# Table 3: Gaussian kernel on raw pixels of all 60,000 MNIST images (about 15 minutes, 8 GB).
harness kernel --dataset mnist --features none --kernel gaussian --bandwidth 0.02 --ridge 0 \
    --device cpu --results-dir "$bundle"
