"""How long listing, reporting and resuming take on a results folder of thousands of runs.

For each size N (``--runs``), a results folder holds the N runs of a sweep spec (mlp_1x512 on
CIFAR-10, random labels, seeds 0 to N-1), all completed, stored through the real writer
(:func:`harness.runner.store`: one ``runs`` row, ``--epochs`` rows of ``epochs`` and ``--examples``
rows of ``examples`` per run). The folder is a bundle (it has a ``bundle.toml`` backing the
sections of ``reproduction/cpu-2core``), so that ``harness report status`` reads it. Each
measurement runs in a fresh process and takes its wall time:

- ``harness results``: lists every stored run (a rich table, written to a pipe), and the same
  with ``--format csv`` (no table to lay out);
- ``harness report status``: the bundle's sections and how many runs of its sweep are completed;
- ``harness sweep SPEC``: finds every run completed and submits nothing (the whole command);
- scan: ``run_sweep``'s check of which runs are already completed, alone (after the spec is loaded).

This checkout is timed twice: on the first read (its table index removed before, so it reads
every file and writes the index) and then (the fastest of ``--repeats``, from the index). A fresh
process's start-up (imports) is part of every command: ``harness results`` on an empty folder
gives it. The folders are made once under ``--store`` and reused by later calls; the smaller ones
are hard links to the first runs of the largest. ``--baseline REF`` also times the harness of git
revision REF (its ``harness`` package exported with ``git archive`` and put first on
``PYTHONPATH``) on the same folders, right before this checkout, and gives the ratios baseline /
this checkout (then).

    python benchmarks/results_store_scale.py [--runs 100 1000 10000] [--store /tmp/harness-store-scale]
        [--examples 1000] [--epochs 20] [--repeats 3] [--baseline REF]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from harness.results import INDEX_FOLDER
from harness.runner import RunConfig, store
from harness.schema import EPOCHS_SCHEMA, EXAMPLES_SCHEMA
from harness.sweep import load_sweep

BUNDLE = "reproduction/scale"
SPEC = "sweeps/scale.toml"
HARNESS = [str(Path(sys.executable).with_name("harness"))]
SCAN = """
import json, sys, time
from harness.sweep import load_sweep, run_sweep
configs = load_sweep(sys.argv[1]).configs
start = time.perf_counter()
summary = run_sweep(configs, sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start, "skipped": summary.count("skipped")}))
"""


def spec_text(runs: int, examples: int, epochs: int) -> str:
    seeds = ", ".join(map(str, range(runs)))
    return (
        f'[grid]\nseed = [{seeds}]\n\n[overrides]\nplugin = "mlp_1x512"\ndataset = "cifar10"\n'
        f'corruption = "random_labels"\ntrain_size = {examples}\ntest_size = 1000\nepochs = {epochs}\n'
    )


BUNDLE_TOML = """title = "results store at scale"
machine = "benchmark"
made_by = "benchmarks/results_store_scale.py"
sweeps = ["sweeps/scale.toml"]
sections = ["table1", "fig1a", "fig1bc", "fig2b", "table3"]
"""


def store_run(results_dir: Path, config: RunConfig, examples: int, rng: np.random.Generator) -> None:
    """Store ``config`` as a completed run through :func:`harness.runner.store`, with random metrics."""
    epochs = config.epochs
    test_acc = rng.uniform(0.08, 0.12, epochs)
    train_acc = np.minimum(1.0, np.linspace(0.1, 1.05, epochs) + rng.normal(0, 0.01, epochs))
    steps = -(-examples // config.batch_size) * np.arange(1, epochs + 1)
    history = pa.Table.from_arrays(
        [
            pa.array([config.run_id] * epochs),
            pa.array(np.arange(1, epochs + 1)),
            pa.array(steps),
            pa.array(config.lr * config.lr_decay ** np.arange(epochs)),
            pa.array(rng.uniform(0, 2.3, epochs)),
            pa.array(train_acc),
            pa.array(rng.uniform(2.3, 3.0, epochs)),
            pa.array(test_acc),
            pa.nulls(epochs, pa.float64()),
            pa.nulls(epochs, pa.float64()),
            pa.array(np.cumsum(rng.uniform(0.5, 1.0, epochs))),
        ],
        schema=EPOCHS_SCHEMA,
    )
    labels = rng.integers(0, 10, examples)
    true_labels = np.where(rng.random(examples) < 0.9, rng.integers(0, 10, examples), labels)
    learned = rng.integers(1, epochs + 1, examples)
    examples_table = pa.Table.from_arrays(
        [
            pa.array([config.run_id] * examples),
            pa.array(np.arange(examples)),
            pa.array(labels),
            pa.array(true_labels),
            pa.array(labels != true_labels),
            pa.array(np.ones(examples, bool)),
            pa.array(np.ones(examples, bool)),
            pa.array(np.maximum(1, learned - rng.integers(0, 3, examples))),
            pa.array(learned),
            pa.array(rng.integers(0, 4, examples)),
            pa.array(rng.normal(2, 1, examples)),
            pa.array(rng.exponential(0.05, examples)),
        ],
        schema=EXAMPLES_SCHEMA,
    )
    fitted = int(np.argmax(train_acc == 1.0)) + 1 if (train_acc == 1.0).any() else None
    row = {
        "run_id": config.run_id,
        "status": "completed",
        **{k: getattr(config, k) for k in ("model", "dataset", "corruption", "corrupt_prob", "seed", "batch_size")},
        **{k: getattr(config, k) for k in ("lr", "lr_decay", "momentum", "precision", "channels_last", "compile")},
        "regularizers": list(config.regularizers),
        "train_size": examples,
        "test_size": config.test_size,
        "epochs": epochs,
        "max_epochs": epochs,
        "steps": int(steps[-1]),
        "param_count": 1_209_866,
        "train_acc": float(train_acc[-1]),
        "test_acc": float(test_acc[-1]),
        "train_loss": float(history["train_loss"][-1].as_py()),
        "test_loss": float(history["test_loss"][-1].as_py()),
        "fit_epoch": fitted,
        "fit_step": int(steps[fitted - 1]) if fitted else None,
        "best_test_acc": float(test_acc.max()),
        "stopped_early": False,
        "wall_seconds": float(history["wall_seconds"][-1].as_py()),
        "started_at": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=config.seed),
        "device": "cpu",
        "harness_version": "0.1.0",
        "torch_version": "2.9.1",
        "resumed_from_epoch": 0,
        "logger_errors": 0,
        "pack_size": 1,
    }
    store(results_dir, row, history, examples_table)


def make_store(folder: Path, runs: int, *, examples: int, epochs: int, source: Path | None) -> float:
    """Fill ``folder`` (a repository root: the spec and the bundle) with ``runs`` completed runs, unless
    it holds them already; with ``source`` (a larger such folder), as hard links to its files. The
    seconds it took."""
    start = time.perf_counter()
    results_dir = folder / BUNDLE
    if (results_dir / "runs").is_dir() and len(list((results_dir / "runs").iterdir())) == runs:
        return 0.0
    (folder / "sweeps").mkdir(parents=True, exist_ok=True)
    (folder / SPEC).write_text(spec_text(runs, examples, epochs))
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "bundle.toml").write_text(BUNDLE_TOML)
    rng = np.random.default_rng(0)
    for config in load_sweep(folder / SPEC).configs:
        if source is None:
            store_run(results_dir, config, examples, rng)
            continue
        for table in ("runs", "epochs", "examples"):
            (results_dir / table).mkdir(exist_ok=True)
            target = results_dir / table / f"{config.run_id}.parquet"
            if not target.exists():
                os.link(source / BUNDLE / table / target.name, target)
    return time.perf_counter() - start


def timed(command: list[str], env: dict) -> tuple[str, float]:
    """The standard output of ``command`` run in a fresh process, and its wall seconds.

    A command that exits with an error is reported and timed all the same: the measurement's check
    of its output decides. (pyarrow may abort at the interpreter's exit after reads through Python
    file objects, apache/arrow#34314, as the results store reads.)
    """
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(f"exit code {done.returncode} from {' '.join(command)[:200]}: {done.stderr.strip()[-300:]}", flush=True)
    return done.stdout, seconds


def measurements(folder: Path, runs: int) -> dict[str, tuple[list[str], Callable[[str, float], float]]]:
    """Each measurement's command, and what its seconds are given its output and wall time (a check
    of the output first)."""
    results_dir = str(folder / BUNDLE)

    def printing(text: str) -> Callable[[str, float], float]:
        def seconds(output: str, wall: float) -> float:
            assert text in output, f"no '{text}' in the output:\n{output[-2000:]}"
            return wall

        return seconds

    def scan_seconds(output: str, wall: float) -> float:
        scan = json.loads(output)
        assert scan["skipped"] == runs, f"the scan found {scan['skipped']} of {runs} runs completed"
        return scan["seconds"]

    return {
        "harness results": ([*HARNESS, "results", "--results-dir", results_dir], printing(f"{runs} runs in")),
        "harness results --format csv": (
            [*HARNESS, "results", "--results-dir", results_dir, "--format", "csv"],
            printing("run_id,status"),
        ),
        "harness report status": (
            [*HARNESS, "report", "status", "--bundles", str(folder / "reproduction")],
            printing(f"{runs} of {runs} runs completed"),
        ),
        "harness sweep (all done)": (
            [*HARNESS, "sweep", str(folder / SPEC), "--results-dir", results_dir],
            printing(f"{runs} skipped, 0 failed, 0 interrupted of {runs} runs"),
        ),
        "scan (run_sweep alone)": (  # -P: the harness of PYTHONPATH, not one in the working folder
            [sys.executable, "-P", "-c", SCAN, str(folder / SPEC), results_dir],
            scan_seconds,
        ),
    }


def fastest(command: list[str], seconds: Callable[[str, float], float], env: dict, repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``command``, each timed by ``seconds(output, wall)``."""
    return min(seconds(*timed(command, env)) for _ in range(repeats))


def export(revision: str, folder: Path) -> None:
    """The ``harness`` package of git ``revision`` into ``folder``."""
    repository = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(repository), "archive", revision, "harness"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{model}, {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "harness-store-scale")
    parser.add_argument("--examples", type=int, default=1000, help="examples rows per run (its training set)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs rows per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision to time too, e.g. the one before a change")
    args = parser.parse_args()

    console = Console(width=120)
    console.print(f"before: {machine()}")
    sizes = sorted(args.runs, reverse=True)
    for size in sizes:
        source = args.store / str(sizes[0]) if size != sizes[0] else None
        seconds = make_store(args.store / str(size), size, examples=args.examples, epochs=args.epochs, source=source)
        if seconds:
            console.print(f"stored {size:,} runs in {args.store / str(size)} in {seconds:.1f} s")

    checkout = dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        baseline = None
        if args.baseline:
            export(args.baseline, Path(scratch))
            baseline = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, (scratch, checkout.get("PYTHONPATH")))),
            }
        empty = [*HARNESS, "results", "--results-dir", str(Path(scratch) / "empty")]
        versions = {args.baseline: baseline, "this checkout": checkout} if baseline else {"this checkout": checkout}
        start_up = {
            name: fastest(empty, lambda output, wall: wall, env, args.repeats) for name, env in versions.items()
        }
        table = Table(
            "runs",
            "measurement",
            *(
                [f"{args.baseline}, s", "first read, s", "then, s", "ratio"]
                if baseline
                else ["first read, s", "then, s"]
            ),
            title=f"wall seconds, fastest of {args.repeats}; start-up (harness results on an empty folder): "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in start_up.items()),
        )
        for size in sorted(args.runs):
            folder = args.store / str(size)
            for label, (command, seconds) in measurements(folder, size).items():
                before = [fastest(command, seconds, baseline, args.repeats)] if baseline else []
                shutil.rmtree(folder / BUNDLE / INDEX_FOLDER, ignore_errors=True)
                first = seconds(*timed(command, checkout))
                then = fastest(command, seconds, checkout, args.repeats)
                ratio = [f"{before[0] / then:.1f}×"] if baseline else []
                cells = [f"{t:.2f}" for t in (*before, first, then)]
                table.add_row(f"{size:,}", label, *cells, *ratio)
                console.print(f"{size:,} runs, {label}: {' / '.join(cells)} s", highlight=False)
    console.print(table)
    console.print(f"after: {machine()}")


if __name__ == "__main__":
    main()
