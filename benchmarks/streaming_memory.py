"""Peak memory of a run on an image folder, streamed from disk against held in memory, at two sizes.

Writes JPEG trees of N training images (crops of real photographs, :mod:`harness.sample_images`, small
so that 100,000 of them are written in a few minutes), then trains MLP 1x512 for one epoch on each,
once streamed (``HARNESS_MEMORY_BUDGET_GB=0``) and once held in memory, each in a fresh process, and
prints that process's peak resident memory (``ru_maxrss``; the data workers are processes of their
own, of constant size). A streamed run's peak should not grow with N; a run in memory grows by the
images' float32 bytes.

    python benchmarks/streaming_memory.py [--sizes 10000,100000] [--side 32] [--workers 2] [--folder PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.sample_images import write_jpeg_tree

CLASSES = 10
RUN = """
import resource, sys
from harness.config import RunConfig
from harness.runner import execute
config = RunConfig(model="mlp_1x512", dataset=sys.argv[1], max_epochs=1)
row = execute(config, sys.argv[2], device="cpu", force=True).row
print(row["train_size"], row["wall_seconds"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def peak(dataset: str, results: Path, budget_gb: str, workers: int) -> tuple[int, float, float]:
    """(training images, seconds, peak GiB) of one run in a fresh process."""
    env = {**os.environ, "HARNESS_MEMORY_BUDGET_GB": budget_gb, "HARNESS_DATA_WORKERS": str(workers)}
    out = subprocess.run(
        [sys.executable, "-c", RUN, dataset, str(results)], env=env, check=True, capture_output=True, text=True
    )
    images, seconds, gib = out.stdout.split()[-3:]
    return int(images), float(seconds), float(gib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="Training images of each tree.")
    parser.add_argument(
        "--side", type=int, default=32, help="Pixels of the images' shorter side, and of the model input."
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, help="Where the trees go (kept); default a temporary folder.")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        for size in (int(text) for text in args.sizes.split(",")):
            tree = folder / f"tree-{size}"
            if not (tree / "val").is_dir():
                write_jpeg_tree(
                    tree,
                    classes=CLASSES,
                    per_class={"train": size // CLASSES, "val": 10},
                    short_side=(args.side, args.side + 8),
                )
            dataset = f"folder:{tree},size={args.side}"
            for way, budget in (("streamed", "0"), ("in memory", "1000")):
                images, seconds, gib = peak(dataset, Path(scratch) / "results", budget, args.workers)
                print(f"{images:>7,} images, {way:>9}: peak {gib:5.2f} GiB, {seconds:6.1f} s for one epoch", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def cpu_model() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown")


if __name__ == "__main__":
    main()
