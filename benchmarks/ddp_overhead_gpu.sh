#!/usr/bin/env bash
# What a data-parallel run of world size 1 (nccl, under torchrun) costs on one GPU against a plain run
# of the same configuration: benchmarks/ddp_allreduce.py both ways, then each model's overhead per
# training step (goal: at most 3 %). Usage: ddp_overhead_gpu.sh [PYTHON [ddp_allreduce.py's options]]
set -euo pipefail
py=${1:-python3}
shift || true
args=(--device cuda "$@")
ms_per_step() { sed -nE 's/^([^:]+):.* ([0-9.]+) ms per step.*/\1 \2/p'; } # "MODEL MS" of each model
plain=$("$py" benchmarks/ddp_allreduce.py "${args[@]}" | tee /dev/stderr | ms_per_step)
ddp=$("$py" -m torch.distributed.run --standalone --nproc-per-node 1 benchmarks/ddp_allreduce.py "${args[@]}" |
    tee /dev/stderr | ms_per_step)
join <(sort <<<"$plain") <(sort <<<"$ddp") | awk '
    NF == 3 { overhead = 100 * ($3 / $2 - 1)
      printf "%s: plain %.2f ms, data-parallel (world 1, nccl) %.2f ms per step: overhead %+.1f %% (goal <= 3 %%)%s\n",
          $1, $2, $3, overhead, (overhead > 3 ? ": above the goal" : "") }'
