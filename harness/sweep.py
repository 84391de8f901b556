"""Sweeps: a TOML grid of ``harness run`` configurations, run (or resumed) as one job.

Spec format::

    # Every combination of the [grid] lists is one run. Keys are `harness run`
    # options in snake_case; every value is a list of choices.
    [grid]
    plugin = ["mlp_1x512", "alexnet"]
    corruption = ["none", "random_labels"]
    corrupt_prob = [1.0]
    regularizers = [[], ["weight_decay=5e-4", "random_crop"]]   # a list of regularizer lists
    seed = [0, 1]

    # Applied to every run (single values, not lists).
    [overrides]
    dataset = "cifar10"
    train_size = 2000
    epochs = 60

Keys: plugin, corruption, corrupt_prob, dataset, regularizers, seed, train_size,
test_size, epochs, batch_size, lr, lr_decay, momentum. A key may appear in the grid
or in the overrides, not both.

To sweep a union of grids (e.g. Table 1, where only some models take random crops),
write several ``[[grid]]`` tables instead of one ``[grid]``: each is expanded on its
own and the runs of all of them are taken together (duplicates once).

Runs already completed in the results folder are skipped, so a sweep resumes after a
crash or Ctrl-C: interrupted runs are redone, completed ones never. Every run writes
its own files, so ``--jobs N`` runs N at once in worker processes.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import tomllib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.regularizers import build_regularizers
from harness.results import read_row, write_table
from harness.runner import RunConfig, execute, resolve_config
from harness.schema import RUNS_SCHEMA

OPTION_TO_FIELD = {
    "plugin": "model",
    "corruption": "corruption",
    "corrupt_prob": "corrupt_prob",
    "dataset": "dataset",
    "regularizers": "regularizers",
    "seed": "seed",
    "train_size": "train_size",
    "test_size": "test_size",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "lr_decay": "lr_decay",
    "momentum": "momentum",
}


class SweepSpecError(ConfigError):
    """A sweep spec is malformed."""


def check_keys(keys, where: str) -> None:
    unknown = sorted(set(keys) - set(OPTION_TO_FIELD))
    if unknown:
        raise SweepSpecError(f"unknown key(s) {', '.join(unknown)} in {where}; known: {', '.join(OPTION_TO_FIELD)}")


def to_config(options: dict) -> RunConfig:
    """A RunConfig from snake_case ``harness run`` options."""
    fields = {OPTION_TO_FIELD[key]: value for key, value in options.items()}
    if "regularizers" in fields:
        fields["regularizers"] = tuple(fields["regularizers"])
    if "model" not in fields:
        raise SweepSpecError("every run needs a plugin: set `plugin` in [grid] or [overrides]")
    return RunConfig(**fields)


def expand(spec: dict) -> list[RunConfig]:
    """The runs of a parsed spec: every grid combination with the overrides, in order, once each."""
    check_keys(set(spec) - {"grid", "overrides"}, "the top level (only [grid] and [overrides] are allowed)")
    overrides = spec.get("overrides", {})
    check_keys(overrides, "[overrides]")
    grids = spec.get("grid", [{}])
    grids = [grids] if isinstance(grids, dict) else grids
    configs: dict[str, RunConfig] = {}
    for grid in grids:
        check_keys(grid, "[grid]")
        both = sorted(set(grid) & set(overrides))
        if both:
            raise SweepSpecError(f"{', '.join(both)} set in both [grid] and [overrides]")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SweepSpecError(f"[grid] {key} must be a non-empty list of choices, got {values!r}")
        for combination in itertools.product(*grid.values()):
            config = to_config({**overrides, **dict(zip(grid, combination))})
            configs.setdefault(config.run_id, config)
    return list(configs.values())


def load_spec(path: Path) -> list[RunConfig]:
    """The runs of a TOML spec file, each checked (names, ranges) before anything runs."""
    try:
        with open(path, "rb") as file:
            spec = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SweepSpecError(f"cannot read sweep spec {path}: {error}") from None
    configs = [resolve_config(config) for config in expand(spec)]
    for config in configs:
        build_regularizers(config.regularizers)
    return configs


@dataclass
class Result:
    """What became of one run of a sweep."""

    config: RunConfig
    status: str  # completed, skipped, failed or interrupted
    row: dict | None = None
    error: str | None = None


def run_one(config: RunConfig, results_dir: Path, data_root: Path | None, device: str) -> Result:
    """Run one configuration; a failure is stored as a ``failed`` run and returned, not raised."""
    try:
        outcome = execute(config, results_dir, data_root, device)
    except KeyboardInterrupt:
        return Result(config, "interrupted")
    except Exception as error:  # noqa: BLE001 -- a failed run is recorded and the sweep goes on
        message = f"{type(error).__name__}: {error}"
        record_failure(results_dir, config, message)
        return Result(config, "failed", error=message)
    return Result(config, "skipped" if outcome.skipped else "completed", outcome.row)


def record_failure(results_dir: Path, config: RunConfig, message: str) -> None:
    """Store a ``failed`` runs row unless the runner already stored one (errors before training)."""
    existing = read_row(results_dir, "runs", config.run_id)
    if existing is not None and existing["status"] == "failed":
        return
    row = {"run_id": config.run_id, "status": "failed", "error": message, "max_epochs": config.epochs,
           "regularizers": list(config.regularizers),
           **{k: getattr(config, k) for k in ("model", "dataset", "corruption", "corrupt_prob", "seed", "batch_size", "lr")}}
    write_table(results_dir, "runs", config.run_id, [row], RUNS_SCHEMA)


worker_interrupted = False
"""Set in a worker process once Ctrl-C reached it, so it starts none of its queued runs."""


def init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_in_worker(config: RunConfig, results_dir: Path, data_root: Path | None, device: str) -> Result:
    """:func:`run_one` in a worker process of the pool."""
    global worker_interrupted
    if worker_interrupted:
        return Result(config, "interrupted")
    result = run_one(config, results_dir, data_root, device)
    worker_interrupted = result.status == "interrupted"
    return result


@dataclass
class SweepSummary:
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]


def run_sweep(
    configs: list[RunConfig],
    results_dir: Path,
    data_root: Path | None = None,
    device: str = "auto",
    jobs: int = 1,
    on_result=lambda result: None,
) -> SweepSummary:
    """Run every configuration (``jobs`` at a time), calling ``on_result`` as each ends.

    On Ctrl-C (SIGINT to the whole process group, as a terminal sends it) the runs in
    progress are stored as interrupted, the rest are not started, and the summary says
    ``interrupted``; running the sweep again resumes it.
    """
    summary = SweepSummary()

    def finish(result: Result) -> None:
        summary.results.append(result)
        summary.interrupted |= result.status == "interrupted"
        on_result(result)

    if jobs == 1:
        for config in configs:
            finish(run_one(config, results_dir, data_root, device))
            if summary.interrupted:
                break
        return summary
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=init_worker, initargs=(threads,)) as pool:
        pending = {pool.submit(run_in_worker, c, results_dir, data_root, device): c for c in configs}
        try:
            while pending and not summary.interrupted:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finish(collect(future, pending.pop(future), results_dir))
        except KeyboardInterrupt:
            summary.interrupted = True
        for future in pending:
            future.cancel()
    return summary


def collect(future, config: RunConfig, results_dir: Path) -> Result:
    """A worker's result; a worker that died (e.g. killed for memory) counts as a failed run."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 -- e.g. BrokenProcessPool: recorded as a failed run
        message = f"worker process failed: {type(error).__name__}: {error}"
        record_failure(results_dir, config, message)
        return Result(config, "failed", error=message)


def describe(config: RunConfig) -> str:
    """A short label of a run: model, corruption (p), regularizers, seed."""
    corruption = config.corruption + (f" p={config.corrupt_prob:g}" if config.corruption == "random_labels" else "")
    regularizers = "+".join(config.regularizers) or "no reg."
    return f"{config.model} · {corruption} · {regularizers} · seed {config.seed}"
