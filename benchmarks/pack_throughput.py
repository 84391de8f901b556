"""Training throughput of packed runs and of the fast path of one run, through harness's own runner.

Two tables (packing first: on a GPU it is what matters most), both measured in this one process (ratios are side by side, so the machine's load
affects both sides alike):

- fast path: seconds per epoch of one run (its training steps and the evaluation of the training
  and test sets) in fp32, and with each option on: ``--precision bf16``, ``--precision bf16
  --channels-last``, ``--compile`` (``--options``; tf32 only on CUDA), as the ratio fp32 / option.
  The fastest epoch after the first counts (the first carries warm-up and compilation).
- packing: K runs (seeds 0..K-1) trained one after another and as one pack (``--packs``; both with
  the fast-path option ``--pack-option``), images per second per run and in total (training and
  evaluation; loading the data is not counted), and whether every packed run matched its lone twin
  (losses within 1e-4 relative, 1e-3 for Inception, accuracies within one example, epoch by epoch).
  ``--alone-runs N`` trains only N of the K runs alone and counts their mean time K times (for
  K = 64 on a GPU).

Data: the real CIFAR-10 (``--dataset cifar10``) or synthetic CIFAR-shaped tensors (``--dataset
synthetic``, the default: 32x32x3 random images cropped to 28x28, random labels), so that the
script runs on a GPU machine without data. Random labels throughout, so no run stops early.

    python benchmarks/pack_throughput.py [--models mlp_1x512 alexnet inception] [--train-size 2000]
        [--epochs 3] [--packs 1 2 4 8 16] [--options bf16 bf16+channels_last compile] [--device cpu|cuda]
        [--pack-option compile] [--alone-runs 4]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harness.config import RunConfig
from harness.data import ImageDataset
from harness.packing import execute_pack
from harness.registry import get_registry
from harness.results import read_table
from harness.runner import execute, resolve_config

OPTIONS = {
    "bf16": {"precision": "bf16"},
    "tf32": {"precision": "tf32"},
    "channels_last": {"channels_last": True},
    "bf16+channels_last": {"precision": "bf16", "channels_last": True},
    "compile": {"compile": True},
}


def synthetic_cifar(root: Path, download: bool) -> ImageDataset:
    """50,000 + 10,000 random 32x32x3 uint8 images with random labels, preprocessed as CIFAR-10."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60_000, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 60_000).astype(np.int64)
    return ImageDataset(
        "synthetic", x[:50_000], y[:50_000], x[50_000:], y[50_000:], num_classes=10, crop=28, standardize=True
    )


def epoch_rows(results_dir: Path, run_id: str) -> list[dict]:
    return sorted(
        (r for r in read_table(results_dir, "epochs").to_pylist() if r["run_id"] == run_id), key=lambda r: r["epoch"]
    )


def epoch_seconds(results_dir: Path, run_id: str) -> float:
    """The fastest epoch after the first (evaluation included) of a stored run."""
    times = np.diff([0.0] + [r["wall_seconds"] for r in epoch_rows(results_dir, run_id)])
    return float(times[1:].min() if len(times) > 1 else times[0])


def same_training(packed: list[dict], alone: list[dict], examples: int, tolerance: float) -> tuple[bool, float]:
    """Whether the epochs agree (losses within ``tolerance`` relative, accuracies within one example),
    and the largest relative loss difference."""
    worst, same = 0.0, len(packed) == len(alone)
    for p, a in zip(packed, alone):
        for name in ("train_loss", "test_loss"):
            worst = max(worst, abs(p[name] - a[name]) / abs(a[name]))
        same &= abs(p["train_acc"] - a["train_acc"]) * examples <= 1 + 1e-9
    return same and worst <= tolerance, worst


def add_row(table: Table, *cells: str) -> None:
    """Add a row, and print it at once: a run stopped at its time limit still reports what it measured."""
    table.add_row(*cells)
    print(f"{table.title}: " + " | ".join(cells), flush=True)


def fast_path(config: RunConfig, options: list[str], device: str, table: Table) -> None:
    seconds = {}
    for name in ["fp32", *options]:
        with tempfile.TemporaryDirectory() as results:
            variant = resolve_config(RunConfig(**{**vars(config), **OPTIONS.get(name, {})}))
            execute(variant, Path(results), device=device)
            seconds[name] = epoch_seconds(Path(results), variant.run_id)
    cells = [f"{seconds['fp32']:.2f} s"] + [f"{seconds['fp32'] / seconds[name]:.2f}x" for name in options]
    add_row(table, config.model, *cells)


def packing(config: RunConfig, sizes: list[int], device: str, table: Table, alone_runs: int | None) -> None:
    tolerance = 1e-3 if config.model == "inception" else 1e-4
    images = config.train_size * config.max_epochs
    for k in sizes:
        runs = [resolve_config(RunConfig(**{**vars(config), "seed": seed})) for seed in range(k)]
        timed = runs[: alone_runs or k]  # the runs also trained alone, timed and checked
        with tempfile.TemporaryDirectory() as alone_dir, tempfile.TemporaryDirectory() as packed_dir:
            for run in timed:
                execute(run, Path(alone_dir), device=device)
            execute_pack(runs, Path(packed_dir), device=device)
            alone = [epoch_rows(Path(alone_dir), r.run_id) for r in timed]
            together = [epoch_rows(Path(packed_dir), r.run_id) for r in runs]
        # training and evaluation, not data loading; K runs one after another, from the timed ones
        sequential = sum(rows[-1]["wall_seconds"] for rows in alone) / len(timed) * k
        packed = max(rows[-1]["wall_seconds"] for rows in together)
        checks = [same_training(p, a, config.train_size, tolerance) for p, a in zip(together, alone)]
        worst = max(w for _, w in checks)
        add_row(
            table,
            config.model,
            str(k),
            f"{images / sequential * k:,.0f}",
            f"{images / packed * k:,.0f}",
            f"{images / packed:,.0f}",
            f"{sequential / packed:.2f}x",
            f"{'yes' if all(s for s, _ in checks) else 'NO'} ({worst:.1e}, {len(timed)} of {k})",
        )


def machine() -> str:
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1]
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}; load average {load.strip()}"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    bf16 = "with" if "avx512_bf16" in flags else "without"
    name = next(
        (line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return f"{name} ({bf16} AVX512-BF16), {torch.get_num_threads()} torch threads; load average {load.strip()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp_1x512", "alexnet", "inception"])
    parser.add_argument("--dataset", default="synthetic", help="synthetic (CIFAR-shaped random tensors) or cifar10")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--packs", nargs="*", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument(
        "--options", nargs="*", default=["bf16", "bf16+channels_last", "compile"], choices=list(OPTIONS)
    )
    parser.add_argument(
        "--pack-option", choices=list(OPTIONS), default=None, help="a fast-path option for the packing table's runs"
    )
    parser.add_argument(
        "--alone-runs", type=int, default=None, help="of K runs, how many also train alone, timed and checked (all)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dataset == "synthetic" and "synthetic" not in get_registry().names("datasets"):
        get_registry().add("datasets", "synthetic", synthetic_cifar, "benchmarks/pack_throughput.py")
    console = Console()
    console.print(
        f"{machine()}; torch {torch.__version__}; {args.dataset}, {args.train_size} training and "
        f"{args.test_size} test images, {args.epochs} epochs, batch {args.batch_size}"
    )
    configs = [
        resolve_config(
            RunConfig(
                model=model,
                dataset=args.dataset,
                corruption="random_labels",
                train_size=args.train_size,
                test_size=args.test_size,
                max_epochs=args.epochs,
                batch_size=args.batch_size,
            )
        )
        for model in args.models
    ]
    if args.packs:
        packed_configs = [
            resolve_config(RunConfig(**{**vars(config), **OPTIONS.get(args.pack_option, {})})) for config in configs
        ]
        table = Table(
            "model",
            "K",
            "one after another img/s",
            "packed img/s",
            "packed img/s per run",
            "speed-up",
            "packed = alone (worst rel. loss diff., runs checked)",
            title=f"K runs packed against one after another on {args.device}"
            + (f", {args.pack_option}" if args.pack_option else ""),
        )
        for config in packed_configs:
            packing(config, args.packs, args.device, table, args.alone_runs)
        console.print(table)
    if args.options:
        table = Table(
            "model",
            "fp32 epoch",
            *(f"{name} speed-up" for name in args.options),
            title=f"Fast path of one run on {args.device} (fp32 seconds per epoch / option's)",
        )
        for config in configs:
            fast_path(config, args.options, args.device, table)
        console.print(table)
    console.print(f"after: {machine()}")


if __name__ == "__main__":
    main()
