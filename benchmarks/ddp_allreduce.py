"""The cost of data-parallel training steps: one process against N processes (gloo on the CPU, nccl on
CUDA) at the same per-process batch, through harness's own training step.

For each model: milliseconds per step of one process alone (no process group), of each of N processes
in DistributedDataParallel (each on a batch of the same size, so a global batch N times larger), and of
one all-reduce of a tensor as large as the model's gradient (what DDP adds to a step, unless it overlaps
the backward pass). Synthetic CIFAR-shaped data (28x28x3 inputs), random labels; the median step after
``--warmup`` counts. Run it alone and under torchrun:

    OMP_NUM_THREADS=1 python benchmarks/ddp_allreduce.py [--models mlp_1x512 alexnet] [--batch 128]
    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 benchmarks/ddp_allreduce.py [...]

(on a GPU: ``--device cuda``; torchrun with ``--nproc-per-node 1`` measures DDP's overhead on one GPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist

from harness import distributed
from harness.config import RunConfig
from harness.data import ImageDataset
from harness.distributed import ALONE
from harness.training import Training


def synthetic(count: int) -> ImageDataset:
    rng = np.random.default_rng(0)
    x = rng.random((count, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, count).astype(np.int64)
    return ImageDataset("synthetic", x, y, x[:0], y[:0], num_classes=10, crop=28, standardize=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_ms(training: Training, steps: int, warmup: int) -> float:
    """The median milliseconds of a training step, each on the next batch of the epoch's order."""
    _, _, batches = training.start_epoch()
    times = []
    for number in range(warmup + steps):
        synchronize(training.device)
        start = time.perf_counter()
        training.step(batches[number % len(batches)])
        synchronize(training.device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[warmup:])


def all_reduce_ms(count: int, device: torch.device, repeats: int) -> float:
    """The median milliseconds of one all-reduce of ``count`` float32 values."""
    tensor = torch.ones(count, device=device)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        dist.all_reduce(tensor)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mlp_1x512", "alexnet"])
    parser.add_argument("--batch", type=int, default=128, help="examples per process and step")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    world, device = ALONE, torch.device(args.device)
    if distributed.launched():
        world, device = distributed.join(device)
    data = synthetic(args.batch * world.size * (args.steps + args.warmup))
    for model in args.models:
        config = RunConfig(model=model, dataset="synthetic", batch_size=args.batch * world.size, lr=0.01)
        training = Training(config, data, [], device, world=world)
        step = step_ms(training, args.steps, args.warmup)
        reduce = all_reduce_ms(training.param_count, device, args.steps) if world.parallel else 0.0
        if world.is_main:
            print(
                f"{model}: world {world.size}, {args.batch} examples per process, {training.param_count:,} parameters: "
                f"{step:.1f} ms per step; all-reduce of the gradient alone {reduce:.1f} ms",
                flush=True,
            )
    distributed.leave()


if __name__ == "__main__":
    main()
