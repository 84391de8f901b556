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
    max_epochs = 60

Keys: :data:`OPTION_TO_FIELD`, exactly ``harness run``'s options but those of
:data:`MACHINE_OPTIONS` (``harness sweep`` has its own), with ``--regularizer`` as the list
``regularizers``; the old names of :data:`OLD_KEYS` are still read. A key may appear in the grid
or in the overrides, not both.

To sweep a union of grids (e.g. Table 1, where only some models take random crops),
write several ``[[grid]]`` tables instead of one ``[grid]``: each is expanded on its
own and the runs of all of them are taken together (duplicates once).

    # Optional: train runs that share model, data sizes and schedule K at a time as one
    # vectorized model (the command line's --pack wins; see harness.packing).
    pack = 4

    # Optional: where the runs go (the command line's --executor/--executor-option win).
    [executor]
    name = "submitit"
    timeout_min = 120
    slurm_partition = "gpu"

    # Optional, at the top (before any table): the loggers every run reports to, as
    # `--log NAME[=URI]` (the command line's --log, when given, replaces these). Logging
    # does not change a run's results, so it is no part of the run id.
    log = ["tensorboard", "mlflow=file:./mlruns"]

Runs already completed in the results folder are never submitted, so a sweep resumes
after a crash or Ctrl-C: interrupted runs continue from their last checkpoint, completed
ones are not redone. Every run writes its own files, so executors run them anywhere the
results folder is shared (``harness.executors``). Two drivers of one sweep on one results
folder never train a run twice: each run is claimed before it trains (``harness.claims``), and
a run that the other driver claimed is left to it (``claimed``).
"""

from __future__ import annotations

import itertools
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.checkpoint import checkpoint_path, saved_epochs, sigterm_as_interrupt
from harness.claims import holder
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.executors import ExecutorSettings, Pack, Result, make_executor, parse_option
from harness.loggers import check_loggers
from harness.packing import group_packs
from harness.regularizers import build_regularizers
from harness.results import check_writable, completed_rows, read_row, table_path
from harness.runner import resolve_config

OPTION_TO_FIELD = {  # `harness run`'s options (snake_case), with --regularizer as the list `regularizers`
    "plugin": "model",
    "corruption": "corruption",
    "corrupt_prob": "corrupt_prob",
    "dataset": "dataset",
    "regularizers": "regularizers",
    "seed": "seed",
    "train_size": "train_size",
    "test_size": "test_size",
    "max_epochs": "max_epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "lr_decay": "lr_decay",
    "momentum": "momentum",
    "precision": "precision",
    "channels_last": "channels_last",
    "compile": "compile",
    "sync_bn": "sync_bn",
}
"""Every sweep key and the :class:`~harness.config.RunConfig` field it sets."""

OLD_KEYS = {"epochs": "max_epochs"}
"""Old names of sweep keys, still read (as the command line's old option spellings are)."""

MACHINE_OPTIONS = ("device", "data_root", "results_dir", "force", "log", "nproc_per_node")
"""``harness run``'s options that say where and how to run rather than what: not sweep keys."""


class SweepSpecError(ConfigError):
    """A sweep spec is malformed."""


def check_keys(keys, where: str) -> None:
    unknown = sorted(set(keys) - set(OPTION_TO_FIELD) - set(OLD_KEYS))
    if unknown:
        raise SweepSpecError(f"unknown key(s) {', '.join(unknown)} in {where}; known: {', '.join(OPTION_TO_FIELD)}")


def to_config(options: dict) -> RunConfig:
    """A RunConfig from snake_case ``harness run`` options."""
    for old, new in OLD_KEYS.items():
        if old in options:
            if new in options:
                raise SweepSpecError(f"{old} and {new} name one option (its old name and its name): give {new}")
            options = {(new if key == old else key): value for key, value in options.items()}
    fields = {OPTION_TO_FIELD[key]: value for key, value in options.items()}
    if "regularizers" in fields:
        fields["regularizers"] = tuple(fields["regularizers"])
    if "model" not in fields:
        raise SweepSpecError("every run needs a plugin: set `plugin` in [grid] or [overrides]")
    return RunConfig(**fields)


def expand(spec: dict) -> list[RunConfig]:
    """The runs of a parsed spec: every grid combination with the overrides, in order, once each."""
    check_keys(
        set(spec) - {"grid", "overrides", "executor", "log", "pack"},
        "the top level (only log, pack, [grid], [overrides] and [executor] are allowed)",
    )
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


@dataclass(kw_only=True)
class Sweep:
    """Runs to train: their configurations, the executor that runs them (and its options), the
    loggers every run reports to, the sweep's name (told to them) and the pack size (``pack`` K > 1:
    runs that share model, data sizes and schedule train K at a time as one vectorized model)."""

    configs: list[RunConfig]
    executor: str = "local"
    executor_options: dict = field(default_factory=dict)
    log: tuple[str, ...] = ()
    name: str | None = None
    pack: int = 1

    def with_command_line(
        self, executor: str | None, options: list[str], log: list[str] | None = None, pack: int | None = None
    ) -> Sweep:
        """The command line's executor, ``KEY=VALUE`` options and pack size win over the spec's, and
        its loggers (``--log``), when it names any, replace the spec's.

        Another executor than the spec's starts from no options; the same one adds to them.
        """
        name = executor or self.executor
        merged = dict(self.executor_options) if name == self.executor else {}
        merged.update(parse_option(option) for option in options)
        return replace(
            self,
            executor=name,
            executor_options=merged,
            log=tuple(log) if log else self.log,
            pack=self.pack if pack is None else pack,
        )

    def with_run_options(self, **options) -> Sweep:
        """Every run with ``options`` (RunConfig fields; None: as the spec says), checked again."""
        changes = {name: value for name, value in options.items() if value is not None}
        configs = [resolve_config(replace(config, **changes)) for config in self.configs] if changes else self.configs
        return replace(self, configs=configs)


def spec_log(spec: dict) -> tuple[str, ...]:
    """The spec's ``log = ["NAME[=URI]", ...]``, checked."""
    log = spec.get("log", [])
    if not isinstance(log, list) or not all(isinstance(text, str) for text in log):
        raise SweepSpecError(f'log must be a list of "NAME[=URI]" strings, got {log!r}')
    check_loggers(log)
    return tuple(log)


def load_sweep(path: Path) -> Sweep:
    """The runs of a TOML spec file, each checked (names, ranges) before anything runs, its executor
    and its loggers; the sweep is named after the file."""
    try:
        with open(path, "rb") as file:
            spec = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SweepSpecError(f"cannot read sweep spec {path}: {error}") from None
    configs = [resolve_config(config) for config in expand(spec)]
    for config in configs:
        build_regularizers(config.regularizers)
    options = dict(spec.get("executor", {}))
    pack = spec.get("pack", 1)
    if not isinstance(pack, int) or isinstance(pack, bool) or pack < 1:
        raise SweepSpecError(f"pack must be a whole number of runs, at least 1, got {pack!r}")
    return Sweep(
        configs=configs,
        executor=options.pop("name", "local"),
        executor_options=options,
        log=spec_log(spec),
        name=Path(path).stem,
        pack=pack,
    )


@dataclass
class SweepSummary:
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False
    cancelled: int = 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]


def run_sweep(
    sweep: Sweep,
    settings: ExecutorSettings,
    *,
    on_result=lambda result: None,
    on_progress=lambda counts: None,
    poll_seconds: float = 1.0,
) -> SweepSummary:
    """Run every configuration of ``sweep`` not yet completed on its executor, made with ``settings``
    (whose loggers and sweep name are the sweep's), calling ``on_result`` as each lands.

    With ``sweep.pack`` K > 1, one task per pack (:mod:`harness.packing`); its runs' results land
    when the task ends (their files as each run stops). Completed runs are reported as ``skipped``
    and never submitted. ``on_progress`` gets the counts of ``queued``, ``running`` and ``done``
    runs every ``poll_seconds``. On Ctrl-C the submitted tasks are cancelled (``summary.cancelled``
    of them) and the summary says ``interrupted``; running the sweep again resumes it (interrupted
    runs from their checkpoints).
    A run that another driver claimed (:mod:`harness.claims`) is reported as ``claimed``, left to it.
    With ``settings.nproc_per_node`` N, every task trains its run data-parallel on N processes (no packs).
    """
    check_loggers(sweep.log)
    if sweep.pack > 1 and settings.nproc_per_node:
        raise ConfigError(
            "packs and data-parallel runs are exclusive: a pack trains in one process (leave out --pack "
            "or --nproc-per-node)"
        )
    settings = replace(settings, log=tuple(sweep.log), sweep=sweep.name)
    summary = SweepSummary()

    def finish(result: Result) -> None:
        summary.results.append(result)
        on_result(result)

    run_ids = [config.run_id for config in sweep.configs]
    done = completed_rows(settings.results_dir, "runs", run_ids)
    todo = []
    for config, run_id in zip(sweep.configs, run_ids):
        row = done.get(run_id)
        if row is None:
            todo.append(config)
        else:
            finish(Result(config, "skipped", row))
    if not todo:
        return summary
    check_writable(Path(settings.results_dir))
    engine = make_executor(sweep.executor, settings, sweep.executor_options)
    with sigterm_as_interrupt():  # a scheduler's stop: cancel and shut the workers down, as on Ctrl-C
        try:
            engine.submit([Pack(tuple(runs)) for runs in group_packs(todo, sweep.pack)])
            while len(summary.results) < len(sweep.configs):
                for result in engine.wait(poll_seconds):
                    finish(result)
                on_progress({**engine.counts(), "done": len(summary.results)})
        except KeyboardInterrupt:
            summary.interrupted = True
            summary.cancelled = engine.cancel()
        finally:
            engine.close()
    return summary


@dataclass
class RunState:
    """Where one run of a sweep stands in the results folder."""

    config: RunConfig
    state: str  # completed, failed, interrupted, started or missing
    detail: str = ""


def sweep_status(configs: list[RunConfig], results_dir: Path) -> list[RunState]:
    """The state of every run, from the results folder alone (nothing runs).

    ``started`` is a run not completed that a driver claimed (which one, and when its heartbeat
    last touched the claim) or with a checkpoint newer than its stored row: running now, or stopped
    without storing (a killed worker); either way the next sweep resumes it.
    """
    states = []
    for config in configs:
        row = read_row(results_dir, "runs", config.run_id)
        saved = saved_epochs(checkpoint_path(results_dir, config.run_id))
        checkpoint = f"checkpoint after epoch {saved[0]}, written {time.time() - saved[1]:.0f} s ago" if saved else ""
        stored_at = table_path(results_dir, "runs", config.run_id).stat().st_mtime if row else 0.0
        claim = holder(results_dir, config.run_id)
        if (saved and saved[1] > stored_at) or (claim and (row is None or row["status"] != "completed")):
            states.append(
                RunState(config, "started", ", ".join(filter(None, (str(claim) if claim else "", checkpoint))))
            )
        elif row is None:
            states.append(RunState(config, "missing"))
        elif row["status"] == "failed":
            states.append(RunState(config, "failed", row["error"] or ""))
        elif row["status"] == "interrupted":
            states.append(
                RunState(config, "interrupted", ", ".join(filter(None, (f"{row['epochs']} epochs stored", checkpoint))))
            )
        else:
            states.append(RunState(config, "completed", f"{row['epochs']} epochs"))
    return states


def describe(config: RunConfig) -> str:
    """A short label of a run: model, corruption (p), regularizers, seed."""
    corruption = config.corruption + (f" p={config.corrupt_prob:g}" if config.corruption == "random_labels" else "")
    regularizers = "+".join(config.regularizers) or "no reg."
    return f"{config.model} · {corruption} · {regularizers} · seed {config.seed}"
