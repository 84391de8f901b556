"""Executors: what runs the configurations of a sweep (worker processes, Slurm, Ray, ...).

An executor is registered through the ``register_executors`` hook as
``register(name, factory, engine=MODULE, extra=EXTRA)``; ``factory(settings, **options)``
returns an object with the methods of :class:`Executor`. ``engine`` names the Python
package the executor drives (checked before the factory is called, so that a missing
engine is a one-line error naming the extra to install).

Every task runs one :class:`Pack` of configurations (one run, or several trained together as
one vectorized model, :mod:`harness.packing`) with :class:`RunTask`; every run writes its own
files into the results folder, so that folder must be visible to every worker. A task first claims
its runs there (:mod:`harness.claims`), so that two drivers of one sweep never train a run twice.
With ``nproc_per_node`` N, a task's run is data-parallel: the task claims it and then trains it on N
processes of its node (:func:`harness.distributed.launch_function`), which claim nothing. A task that
is itself one process of a data-parallel run (the tasks of one Slurm job) runs :func:`run_pack_as_rank`.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from harness import distributed, runner
from harness.checkpoint import sigterm_as_interrupt
from harness.claims import claimed, configured_timeout
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.options import parse_key_value
from harness.packing import execute_pack
from harness.registry import get_registry, missing_engine


class ExecutorError(ConfigError):
    """An executor cannot be made: unknown name or option, or its engine is not installed."""


@dataclass
class Result:
    """What became of one run of a sweep."""

    config: RunConfig
    status: str  # completed, skipped, failed, interrupted, or claimed (left to another driver training it)
    row: dict | None = None
    error: str | None = None


@dataclass(frozen=True)
class Pack:
    """The runs of one task: trained together as one vectorized model, or alone when it holds one."""

    configs: tuple[RunConfig, ...]

    def __len__(self) -> int:
        return len(self.configs)


@dataclass(frozen=True, kw_only=True)
class ExecutorSettings:
    """What every executor is told, besides its own options: where results and data are, and how the
    runs of a sweep are trained."""

    results_dir: Path
    data_root: Path | None = None
    device: str = "auto"
    jobs: int = 1
    runs_per_gpu: int = 1
    resume: bool = True
    log: tuple[str, ...] = ()
    """``NAME[=URI]`` of the loggers every run reports to (``--log``; :func:`harness.sweep.run_sweep`
    sets the sweep's)."""
    sweep: str | None = None
    """The sweep's name, told to the loggers (:func:`harness.sweep.run_sweep` sets it)."""
    nproc_per_node: int | None = None
    """Processes that train each run, data-parallel (``--nproc-per-node``; None: one, alone)."""
    claim_timeout: float = field(default_factory=configured_timeout)
    """Seconds after which a claim without a heartbeat is stale (:func:`harness.claims.configured_timeout`,
    read where the settings are made: the driver)."""

    @property
    def log_dir(self) -> Path:
        """Where engines write job logs: beside the results, where every node can read them back."""
        return Path(self.results_dir) / "logs"


class Executor(Protocol):
    """Runs configurations and hands back each one's :class:`Result` as it lands."""

    def submit(self, packs: list[Pack]) -> None:
        """Start (or queue) one task per pack."""

    def wait(self, timeout: float) -> list[Result]:
        """The results of the runs that landed since the last call, waiting up to ``timeout`` seconds for one."""

    def counts(self) -> dict[str, int]:
        """How many runs of the submitted tasks are ``queued`` and ``running`` (as far as the engine can say)."""

    def cancel(self) -> int:
        """Cancel every unfinished task; the number of runs cancelled."""


@dataclass
class RunTask:
    """One pack's task, run wherever the executor puts it: :func:`run_pack` with fixed ``settings``.

    ``threads`` sets torch's CPU threads to the CPUs the task was given (None: torch's default). A task
    that a launcher started as one process of several (:func:`harness.distributed.launched`) runs
    :func:`run_pack_as_rank`.
    """

    settings: ExecutorSettings
    threads: int | None = None

    def __call__(self, pack: Pack) -> list[Result]:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        return (run_pack_as_rank if distributed.launched() else run_pack)(pack, self.settings)


def run_pack(pack: Pack, settings: ExecutorSettings) -> list[Result]:
    """Run the configurations of ``pack`` that this task can claim (:func:`harness.claims.claimed`,
    with ``settings.claim_timeout``), one Result each; a run that another driver claimed is left to it
    (``claimed``). The claims are held until the task ends, and released on Ctrl-C or SIGTERM too.
    Otherwise as :func:`run_claimed`."""
    with sigterm_as_interrupt(), ExitStack() as claims:  # SIGTERM, like Ctrl-C, releases the claims
        try:
            held = [
                config
                for config in pack.configs
                if claims.enter_context(claimed(settings.results_dir, config.run_id, timeout=settings.claim_timeout))
            ]
        except KeyboardInterrupt:
            return [Result(config, "interrupted") for config in pack.configs]
        landed = run_claimed(Pack(tuple(held)), settings)
    mine = {result.config.run_id: result for result in landed}
    return [mine.get(config.run_id) or Result(config, "claimed") for config in pack.configs]


def run_pack_as_rank(pack: Pack, settings: ExecutorSettings) -> list[Result]:
    """The task of one process of a data-parallel run that a launcher started (Slurm's tasks of one job):
    the processes join, rank 0 claims the run and tells the others whether they train it. Rank 0's
    Result is the run's; the other processes claim and store nothing, and raise what their training
    raises."""
    import torch

    (config,) = pack.configs  # packs and data-parallel runs are exclusive
    world, device = distributed.join(runner.resolve_device(settings.device))
    try:
        with sigterm_as_interrupt(), ExitStack() as claims:
            held = world.is_main and claims.enter_context(
                claimed(settings.results_dir, config.run_id, timeout=settings.claim_timeout)
            )
            told = torch.tensor([bool(held)], device=device)
            world.broadcast_from_main(told)
            if not told.item():
                return [Result(config, "claimed")]
            if world.is_main:
                return run_claimed(pack, settings)
            outcome = execute_rank(config, settings)
            return [Result(config, "skipped" if outcome.skipped else "completed", outcome.row)]
    finally:
        distributed.leave()


def run_claimed(pack: Pack, settings: ExecutorSettings) -> list[Result]:
    """Run the configurations of ``pack`` (claimed by this task) as ``settings`` say, one Result each; a
    failure is stored as ``failed`` runs and returned, not raised (runs of the pack stored before it
    keep their results). With ``settings.nproc_per_node``, the pack's one run is data-parallel
    (:func:`train_data_parallel`)."""
    if settings.nproc_per_node:
        (config,) = pack.configs  # packs and data-parallel runs are exclusive (harness.sweep.run_sweep)
        return [train_data_parallel(config, settings)]
    landed: dict[str, Result] = {}

    def land(config: RunConfig, outcome) -> None:
        landed[config.run_id] = Result(config, "skipped" if outcome.skipped else "completed", outcome.row)

    try:
        execute_pack(
            list(pack.configs),
            settings.results_dir,
            settings.data_root,
            settings.device,
            resume=settings.resume,
            on_outcome=land,
            log=settings.log,
            sweep=settings.sweep,
        )
    except KeyboardInterrupt:
        return [landed.get(config.run_id) or Result(config, "interrupted") for config in pack.configs]
    except Exception as error:  # noqa: BLE001 -- a failed run is recorded and the sweep goes on
        return record_failures(settings.results_dir, pack, f"{type(error).__name__}: {error}", landed)
    return [landed[config.run_id] for config in pack.configs]


def train_data_parallel(config: RunConfig, settings: ExecutorSettings) -> Result:
    """Train ``config`` on ``settings.nproc_per_node`` processes of this node, which share this process's
    torch threads; a process that failed is named in the run's error, as ``harness run --nproc-per-node``
    names it."""
    import torch

    nproc = settings.nproc_per_node
    threads = max(1, torch.get_num_threads() // nproc)
    try:
        outcome = distributed.launch_function(execute_rank, (config, settings, threads), nproc)
    except distributed.LaunchInterrupted:
        return Result(config, "interrupted")
    except distributed.RankFailed as error:
        row = runner.record_failure(settings.results_dir, config, f"{error} of {nproc} processes", naming=True)
        return Result(config, "failed", error=row["error"])
    return Result(config, "skipped" if outcome.skipped else "completed", outcome.row)


def execute_rank(config: RunConfig, settings: ExecutorSettings, threads: int | None = None) -> runner.RunOutcome:
    """One process of a data-parallel run, on ``threads`` torch threads (None: as they are)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return runner.execute(
        config,
        settings.results_dir,
        data_root=settings.data_root,
        device=settings.device,
        resume=settings.resume,
        log=settings.log,
        sweep=settings.sweep,
    )


def record_failures(
    results_dir: Path, pack: Pack, message: str, landed: dict[str, Result] | None = None
) -> list[Result]:
    """The runs of ``pack`` not in ``landed`` (by run id) recorded as failed (:func:`record_failure`);
    one Result per run."""
    landed = landed or {}
    return [landed.get(config.run_id) or record_failure(results_dir, config, message) for config in pack.configs]


def record_failure(results_dir: Path, config: RunConfig, message: str) -> Result:
    """Store the run as ``failed`` unless the runner already did, or the run completed (in another
    driver's task, say): :func:`harness.runner.record_failure`; the failed Result."""
    runner.record_failure(results_dir, config, message)
    return Result(config, "failed", error=message)


def task_for(settings: ExecutorSettings, threads: int | None = None) -> RunTask:
    """The task of every run of a sweep, with absolute paths (a worker may start elsewhere)."""
    absolute = replace(
        settings,
        results_dir=Path(settings.results_dir).absolute(),
        data_root=None if settings.data_root is None else Path(settings.data_root).absolute(),
    )
    return RunTask(absolute, threads)


def parse_option(text: str) -> tuple[str, object]:
    """An executor option ``KEY=VALUE``, read by :func:`harness.options.parse_key_value`; ExecutorError
    when it is not one."""
    return parse_key_value(text, expected="executor option KEY=VALUE", error=ExecutorError)


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


def gpu_groups(gpus: list[str], size: int) -> list[str]:
    """``gpus`` in consecutive groups of ``size`` (the GPUs of a data-parallel run), each as
    CUDA_VISIBLE_DEVICES lists them; those left over are not used."""
    if len(gpus) < size:
        raise ExecutorError(f"--nproc-per-node {size} needs {size} GPUs, {len(gpus)} visible")
    return [",".join(gpus[start : start + size]) for start in range(0, len(gpus) - size + 1, size)]
