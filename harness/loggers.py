"""Loggers: observers of a run's events (:class:`harness.hookspecs.RunEvents`), chosen per run with
``--log NAME[=URI]``.

A run's :class:`RunLoggers` makes one logger per ``--log`` value and delivers the run's events to
them: the run started, an epoch finished (its ``epochs`` row), the run finished (its ``runs`` row).
Loggers receive copies of the rows, so they cannot change what is stored. A logger that raises is
named in one warning line and not called again for that run; the run goes on and the error is
counted in ``runs.logger_errors``. Logging never changes a run's results, so ``--log`` is not part
of the run id.
"""

from __future__ import annotations

import copy
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from harness import hookspecs
from harness.errors import ConfigError
from harness.registry import UnknownNameError, get_registry, missing_engine
from harness.schema import RUNS_SCHEMA

if TYPE_CHECKING:
    from harness.config import RunConfig


class LoggerError(ConfigError):
    """A ``--log`` value names no registered logger, or the package its logger needs is not installed."""


class LoggerWarning(UserWarning):
    """A logger raised an error; it is off for the rest of the run, which goes on."""


def parse_log(text: str) -> tuple[str, str | None]:
    """``NAME[=URI]`` as (name, uri); uri is None without ``=``."""
    name, sep, uri = text.partition("=")
    if not name.strip() or (sep and not uri.strip()):
        raise LoggerError(f"--log must be NAME or NAME=URI, got '{text}'")
    return name.strip(), uri.strip() if sep else None


def check_loggers(log: Sequence[str]) -> None:
    """Raise :class:`LoggerError` unless every ``NAME[=URI]`` names a registered logger that can run here."""
    registry = get_registry()
    for text in log:
        name, _ = parse_log(text)
        try:
            entry = registry.get("loggers", name)
        except UnknownNameError as error:
            raise LoggerError(str(error)) from None
        missing = missing_engine(entry)
        if missing:
            raise LoggerError(missing)


def failure_message(label: str, event: str, error: Exception) -> str:
    """One line: which logger failed, where, and why (a message of several lines is joined)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    why = " ".join(str(error).split())
    return f"{label} failed in {event}: {type(error).__name__}: {why}{where}; it is off for the rest of this run, which goes on"


class RunLoggers:
    """The loggers of one run (one per ``--log NAME[=URI]``, in order) and the delivery of its events.

    Parameters
    ----------
    log : sequence of str
        ``NAME[=URI]`` values; an unknown name is a :class:`LoggerError` listing the known ones.
    run_id : str
        The run whose events these loggers receive.
    """

    def __init__(self, log: Sequence[str], run_id: str):
        check_loggers(log)
        self.log = tuple(log)
        self.run_id = run_id
        self.errors = 0
        self.manager = pluggy.PluginManager("harness")
        self.manager.add_hookspecs(hookspecs.RunEvents)
        self.labels: dict[str, str] = {}

    def start_loggers(self) -> None:
        """Make every logger with its factory; one that cannot be made (or marks a method
        ``@hookimpl`` that is no run event) is turned off."""
        registry = get_registry()
        for position, text in enumerate(self.log):
            name, uri = parse_log(text)
            entry = registry.get("loggers", name)
            key = f"{position}:{text}"
            self.labels[key] = f"logger {name} ({entry.source})"
            try:
                self.manager.register(entry.obj(uri), name=key)
                self.manager.check_pending()  # a method marked @hookimpl that is no run event
            except Exception as error:  # noqa: BLE001 -- a logger that cannot start never stops the run
                self.turn_off(key, "starting", error)

    def turn_off(self, key: str, event: str, error: Exception) -> None:
        """Count the error, warn in one line, and call this logger no more."""
        self.errors += 1
        warnings.warn(failure_message(self.labels[key], event, error), LoggerWarning, stacklevel=3)
        if self.manager.get_plugin(key) is not None:
            self.manager.unregister(name=key)

    def deliver(self, event: str, **arguments) -> None:
        """Call every logger's ``event`` hook with the arguments it takes; turn off one that raises."""
        for impl in getattr(self.manager.hook, event).get_hookimpls():
            try:
                impl.function(*(copy.deepcopy(arguments[name]) for name in impl.argnames))
            except Exception as error:  # noqa: BLE001 -- a logger's error never fails the run
                self.turn_off(impl.plugin_name, event, error)

    def run_started(self, config: RunConfig, results_dir: Path, resumed_from_epoch: int, sweep: str | None) -> None:
        """Make the loggers; the run starts training, after ``resumed_from_epoch`` epochs restored from a checkpoint."""
        self.start_loggers()
        self.deliver(
            "run_started",
            run_id=self.run_id,
            config=config,
            results_dir=Path(results_dir),
            resumed_from_epoch=resumed_from_epoch,
            sweep=sweep,
        )

    def epoch_finished(self, row: dict) -> None:
        """An ``epochs`` row was recorded."""
        self.deliver("epoch_finished", run_id=self.run_id, row=row)

    def run_finished(self, row: dict) -> None:
        """The ``runs`` row is final but for ``logger_errors``, which this sets (before and after delivering)."""
        row["logger_errors"] = self.errors
        self.deliver("run_finished", run_id=self.run_id, row={column: row.get(column) for column in RUNS_SCHEMA.names})
        row["logger_errors"] = self.errors
