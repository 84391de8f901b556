"""The lifecycle of a training run: its configuration checked, skipped when already completed, started
(data, :class:`~harness.training.Training`, loggers, checkpoint), trained, and stored as one ``runs``
row, one ``epochs`` row per epoch and one ``examples`` row per training example."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import torch

from harness import __version__, checkpoint, distributed
from harness.config import PRECISIONS, RunConfig
from harness.data import CORRUPTION_SCHEME, prepare_data_of
from harness.distributed import ALONE, World
from harness.errors import ConfigError
from harness.loggers import RunLoggers, check_loggers
from harness.registry import get_registry
from harness.regularizers import build_regularizers
from harness.results import check_writable, completed_row, interrupts_deferred, read_row, table_path, write_table
from harness.schema import EPOCHS_SCHEMA, EXAMPLES_SCHEMA, RUNS_SCHEMA
from harness.training import RunProgress, Training, model_options, train_alone


@dataclass
class RunOutcome:
    row: dict
    path: Path
    skipped: bool = False


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(device)


def resolve_config(config: RunConfig) -> RunConfig:
    """The config with the model's default learning rate filled in; checks every name and range."""
    registry = get_registry()
    model = registry.get("models", config.model)
    registry.get("datasets", config.dataset)
    registry.get("corruptions", config.corruption)
    if not 0.0 <= config.corrupt_prob <= 1.0:
        raise ConfigError(f"--corrupt-prob must be in [0, 1], got {config.corrupt_prob}")
    for name, value in (("max-epochs", config.max_epochs), ("batch-size", config.batch_size)):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    lr = config.lr if config.lr is not None else model.info.get("default_lr", 0.01)
    if lr <= 0:
        raise ConfigError(f"--lr must be positive, got {lr}")
    fraction, subset_seed = config.subset_fraction, config.subset_seed
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"the subset fraction must be in (0, 1), got {fraction}")
        fraction, subset_seed = float(fraction), int(subset_seed or 0)
    if config.precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{config.precision}'")
    return replace(
        config,
        model=model.name,
        lr=lr,
        regularizers=tuple(config.regularizers),
        subset_fraction=fraction,
        subset_seed=None if fraction is None else subset_seed,
    )


def check_run(config: RunConfig, device: str) -> tuple[RunConfig, torch.device]:
    """``config`` resolved and checked (names, ranges, regularizers and the model options they ask
    for), and the torch device."""
    config = resolve_config(config)
    model_options(config, build_regularizers(config.regularizers))
    torch_device = resolve_device(device)
    if config.sync_bn and torch_device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA: SyncBatchNorm does not run on the CPU")
    return config, torch_device


@dataclass
class StartedRun:
    """A run being trained: its configuration, training state, ``runs`` row so far and loggers."""

    config: RunConfig
    training: Training
    row: dict
    results_dir: Path
    loggers: RunLoggers
    sweep: str | None = None
    announced: bool = False
    """Whether the loggers have heard that it started."""

    @property
    def run_id(self) -> str:
        return self.config.run_id

    def announce(self) -> None:
        """Tell the loggers that the run started (once)."""
        if not self.announced:
            self.announced = True
            self.loggers.run_started(self.config, self.results_dir, self.row["resumed_from_epoch"], self.sweep)


def completed_run(config: RunConfig, results_dir: Path) -> RunOutcome | None:
    """The stored outcome of ``config`` (a resolved configuration) when it already completed, else None."""
    row = completed_row(results_dir, "runs", config.run_id)
    return None if row is None else RunOutcome(row, table_path(results_dir, "runs", config.run_id), skipped=True)


def start_run(
    config: RunConfig,
    results_dir: Path,
    data_root: Path | None,
    device: torch.device,
    *,
    resume: bool = True,
    pack_size: int = 1,
    log: tuple[str, ...] = (),
    sweep: str | None = None,
    announce: bool = True,
    world: World = ALONE,
) -> StartedRun:
    """Load the data and build the training of ``config`` (a resolved configuration), continued from its
    checkpoint unless ``resume`` is false; its ``runs`` row says ``interrupted`` until it is finished.
    A run of a pack (``pack_size`` > 1) draws its model's random numbers from a generator of its own.
    The loggers of ``log`` (``NAME[=URI]``, :mod:`harness.loggers`) hear that it started, with the name
    of its ``sweep`` (at once, or with ``announce`` false when :meth:`StartedRun.announce` says so),
    and then of each epoch and of its end. In a data-parallel run (``world``) every process trains,
    and only rank 0 tells the loggers and stores the run."""
    regularizers = build_regularizers(config.regularizers)
    data = prepare_data_of(config, data_root)
    saved = checkpoint.checkpoint_path(results_dir, config.run_id)
    if not resume and world.is_main:
        saved.unlink(missing_ok=True)
    loggers = RunLoggers(log if world.is_main else (), config.run_id)
    training = Training(
        config,
        data,
        regularizers,
        device,
        observers=[loggers],
        checkpoint_path=saved,
        own_generator=pack_size > 1,
        world=world,
    )
    model_entry = get_registry().get("models", config.model)
    row = {
        **config.to_row(),
        "corruption_scheme": CORRUPTION_SCHEME,
        "train_size": len(data.y_train),
        "test_size": len(data.y_test),
        "param_count": training.param_count,
        "started_at": datetime.now(UTC),
        "device": str(device),
        "harness_version": __version__,
        "torch_version": torch.__version__,
        "model_library": model_entry.info.get("library"),
        "model_library_version": model_entry.info.get("library_version"),
        "resumed_from_epoch": training.resume() if resume else 0,
        "pack_size": pack_size,
        "world_size": world.size,
        "status": "interrupted",
    }
    run = StartedRun(config, training, row, Path(results_dir), loggers, sweep)
    if announce:
        run.announce()
    return run


def finish_run(run: StartedRun, status: str, error: BaseException | None = None) -> Path:
    """Store ``run`` as ``status`` (completed, interrupted or failed with ``error``) with its epochs and
    examples so far; a completed run's checkpoint is removed. The path of its ``runs`` file (where rank 0
    stores it, in a data-parallel run)."""
    row, training = run.row, run.training
    if not training.world.is_main:
        return table_path(run.results_dir, "runs", run.run_id)
    row["status"] = status
    if error is not None:
        row["error"] = f"{type(error).__name__}: {error}"
    row.update(summarize(training.history, training.steps), stopped_early=training.stopped_early)
    row["wall_seconds"] = training.wall_seconds
    try:
        run.announce()  # (a pack's run that stops before its first packed step)
        run.loggers.run_finished(row)
    finally:  # a Ctrl-C while the loggers finish loses nothing
        with interrupts_deferred():  # nor one between storing a completed run and removing its checkpoint
            path = store(run.results_dir, row, training.history, training.examples_table())
            if row["status"] == "completed":
                training.checkpoint_path.unlink(missing_ok=True)
    return path


def execute(
    config: RunConfig,
    results_dir: Path,
    *,
    data_root: Path | None = None,
    device: str = "auto",
    force: bool = False,
    progress: RunProgress | None = None,
    resume: bool = True,
    log: tuple[str, ...] = (),
    sweep: str | None = None,
) -> RunOutcome:
    """Run (or skip, when already completed) one configuration and store it.

    Ctrl-C or SIGTERM stores the run as ``interrupted`` with the epochs it finished, an error
    as ``failed``; both re-raise. Every epoch is checkpointed, and an interrupted run resumes
    from its checkpoint (``resume=False`` starts over); the checkpoint is removed when the
    run completes. Files are written atomically, nothing partial is left.

    ``log`` holds the ``NAME[=URI]`` of the loggers that receive the run's events
    (:mod:`harness.loggers`), ``sweep`` the name of the sweep the run belongs to (told to them).

    In a process started by a launcher (torchrun, ``harness run --nproc-per-node``, Slurm), the run
    is data-parallel: this process joins the others (:func:`harness.distributed.join`) and trains its
    shard of every batch; rank 0 stores the run.
    """
    config, torch_device = check_run(config, device)
    check_loggers(log)
    results_dir = Path(results_dir)
    check_writable(results_dir)
    done = None if force else completed_run(config, results_dir)
    if done is not None:
        return done
    world = ALONE
    if distributed.launched():
        world, torch_device = distributed.join(torch_device)
    try:
        run = start_run(config, results_dir, data_root, torch_device, resume=resume, log=log, sweep=sweep, world=world)
        status, failure = "interrupted", None  # until it completes or fails: Ctrl-C, SIGTERM, a requeue's exit
        try:
            with checkpoint.sigterm_as_interrupt():
                train_alone(run.training, progress or RunProgress())
            status = "completed"
        except Exception as error:
            status, failure = "failed", error
            raise
        finally:
            path = finish_run(run, status, failure)
    finally:
        if world.parallel:
            distributed.leave()
    return RunOutcome(run.row, path)


def record_failure(results_dir: Path, config: RunConfig, message: str, *, naming: bool = False) -> dict:
    """Store ``config`` (a resolved configuration) as a ``failed`` run with the error ``message``, unless it
    completed: over its stored row (its epochs kept), else as a row of its configuration alone. A row
    already ``failed`` is kept as it is, or with ``naming`` its error is prefixed by ``message`` (which
    names the process of a data-parallel run that failed). The row as stored."""
    row = read_row(results_dir, "runs", config.run_id)
    if row is not None and (row["status"] == "completed" or (row["status"] == "failed" and not naming)):
        return row
    if row is not None and row["status"] == "failed":
        message = f"{message}: {row['error']}"
    row = {**(row or config.to_row()), "corruption_scheme": CORRUPTION_SCHEME, "status": "failed", "error": message}
    write_table(results_dir, "runs", config.run_id, [row], RUNS_SCHEMA)
    return row


def summarize(history: list[dict], steps: int) -> dict:
    """Final metrics, first fit and best test accuracy (top-1 and top-5) of a run's epochs."""
    last = history[-1] if history else {}
    fitted = next((h for h in history if h["train_acc"] == 1.0), None)

    def best(key: str) -> float | None:  # epochs restored from a checkpoint of before top-5 lack it
        return max((h[key] for h in history if h.get(key) is not None), default=None)

    return {
        "epochs": len(history),
        "steps": steps,
        **{k: last.get(k) for k in ("train_acc", "test_acc", "train_top5", "test_top5", "train_loss", "test_loss")},
        "fit_epoch": fitted["epoch"] if fitted else None,
        "fit_step": fitted["step"] if fitted else None,
        "best_test_acc": best("test_acc"),
        "best_test_top5": best("test_top5"),
    }


def store(results_dir: Path, row: dict, history: list[dict], examples: pa.Table) -> Path:
    """Write the examples and epochs, then the run row (so a run row implies the others are there)."""
    write_table(results_dir, "examples", row["run_id"], examples, EXAMPLES_SCHEMA)
    write_table(results_dir, "epochs", row["run_id"], history, EPOCHS_SCHEMA)
    return write_table(results_dir, "runs", row["run_id"], [row], RUNS_SCHEMA)
