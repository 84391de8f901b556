"""Executors: what runs the configurations of a sweep (worker processes, Slurm, Ray, ...).

An executor is registered through the ``register_executors`` hook as
``register(name, factory, engine=MODULE, extra=EXTRA)``; ``factory(settings, **options)``
returns an object with the methods of :class:`Executor`. ``engine`` names the Python
package the executor drives (checked before the factory is called, so that a missing
engine is a one-line error naming the extra to install).

Every task runs one configuration with :class:`RunTask` and writes its own files into the
results folder, so that folder must be visible to every worker.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.errors import ConfigError
from harness.registry import get_registry, missing_engine
from harness.results import read_row, write_table
from harness.runner import RunConfig, execute
from harness.schema import RUNS_SCHEMA


class ExecutorError(ConfigError):
    """An executor cannot be made: unknown name or option, or its engine is not installed."""


@dataclass
class Result:
    """What became of one run of a sweep."""

    config: RunConfig
    status: str  # completed, skipped, failed or interrupted
    row: dict | None = None
    error: str | None = None


@dataclass(frozen=True)
class ExecutorSettings:
    """What every executor is told, besides its own options."""

    results_dir: Path
    data_root: Path | None = None
    device: str = "auto"
    jobs: int = 1
    runs_per_gpu: int = 1
    resume: bool = True
    log: tuple[str, ...] = ()
    """``NAME[=URI]`` of the loggers every run reports to (``--log``)."""
    sweep: str | None = None
    """The sweep's name, told to the loggers."""

    @property
    def log_dir(self) -> Path:
        """Where engines write job logs: beside the results, where every node can read them back."""
        return Path(self.results_dir) / "logs"


class Executor(Protocol):
    """Runs configurations and hands back each one's :class:`Result` as it lands."""

    def submit(self, configs: list[RunConfig]) -> None:
        """Start (or queue) one task per configuration."""

    def wait(self, timeout: float) -> list[Result]:
        """The results that landed since the last call, waiting up to ``timeout`` seconds for one."""

    def counts(self) -> dict[str, int]:
        """How many submitted tasks are ``queued`` and ``running`` (as far as the engine can say)."""

    def cancel(self) -> int:
        """Cancel every unfinished task; the number cancelled."""


@dataclass
class RunTask:
    """One configuration's task, run wherever the executor puts it: :func:`run_one` with fixed settings.

    ``threads`` sets torch's CPU threads to the CPUs the task was given (None: torch's default);
    ``log`` and ``sweep`` are the run's loggers and sweep name (:class:`ExecutorSettings`).
    """

    results_dir: Path
    data_root: Path | None
    device: str
    resume: bool = True
    threads: int | None = None
    log: tuple[str, ...] = ()
    sweep: str | None = None

    def __call__(self, config: RunConfig) -> Result:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        return run_one(
            config, self.results_dir, self.data_root, self.device, self.resume, log=self.log, sweep=self.sweep
        )


def run_one(
    config: RunConfig,
    results_dir: Path,
    data_root: Path | None,
    device: str,
    resume: bool = True,
    *,
    log: tuple[str, ...] = (),
    sweep: str | None = None,
) -> Result:
    """Run one configuration; a failure is stored as a ``failed`` run and returned, not raised."""
    try:
        outcome = execute(config, results_dir, data_root=data_root, device=device, resume=resume, log=log, sweep=sweep)
    except KeyboardInterrupt:
        return Result(config, "interrupted")
    except Exception as error:  # noqa: BLE001 -- a failed run is recorded and the sweep goes on
        return record_failure(results_dir, config, f"{type(error).__name__}: {error}")
    return Result(config, "skipped" if outcome.skipped else "completed", outcome.row)


def record_failure(results_dir: Path, config: RunConfig, message: str) -> Result:
    """Store a ``failed`` runs row unless the runner already stored one; the failed Result."""
    existing = read_row(results_dir, "runs", config.run_id)
    if existing is None or existing["status"] != "failed":
        row = {
            "run_id": config.run_id,
            "status": "failed",
            "error": message,
            "max_epochs": config.epochs,
            "regularizers": list(config.regularizers),
            **{
                k: getattr(config, k)
                for k in ("model", "dataset", "corruption", "corrupt_prob", "seed", "batch_size", "lr")
            },
        }
        write_table(results_dir, "runs", config.run_id, [row], RUNS_SCHEMA)
    return Result(config, "failed", error=message)


def task_for(settings: ExecutorSettings, threads: int | None = None) -> RunTask:
    """The task of every run of a sweep, with absolute paths (a worker may start elsewhere)."""
    return RunTask(
        Path(settings.results_dir).absolute(),
        None if settings.data_root is None else Path(settings.data_root).absolute(),
        settings.device,
        settings.resume,
        threads,
        settings.log,
        settings.sweep,
    )


def parse_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as a TOML value when it is one (60, true, {a = "b"}), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ExecutorError(f"executor option must be KEY=VALUE, got '{text}'")
    try:
        parsed = tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def check_options(executor: str, options: dict, known) -> None:
    """Raise ExecutorError for an option not in ``known``, listing the known ones."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ExecutorError(
            f"unknown option(s) {', '.join(unknown)} for executor '{executor}'; known: {', '.join(sorted(known))}"
        )


def make_executor(name: str, settings: ExecutorSettings, options: dict | None = None) -> Executor:
    """The registered executor ``name`` with ``options``; a clear error when it cannot be made."""
    registry = get_registry()
    try:
        entry = registry.get("executors", name)
    except LookupError as error:
        raise ExecutorError(str(error)) from None
    missing = missing_engine(entry)
    if missing:
        raise ExecutorError(missing)
    return entry.obj(settings, **(options or {}))


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (else by index)."""
    import torch

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()][: torch.cuda.device_count()]
    return [str(index) for index in range(torch.cuda.device_count())]


def gpu_slots(gpus: list[str], runs_per_gpu: int) -> list[str]:
    """One entry per worker: every GPU ``runs_per_gpu`` times, spread so the first workers use different GPUs."""
    if runs_per_gpu < 1:
        raise ExecutorError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}")
    return [gpu for _ in range(runs_per_gpu) for gpu in gpus]
