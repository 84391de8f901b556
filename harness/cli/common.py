"""What every command shares: the consoles, the option declarations, and how errors end a command.

An error the user can fix (:class:`harness.errors.HarnessError`) is one red line and exit code 2.
Anything else is a bug: its traceback is printed, with the plugin it came from when the
traceback passes through one, and the exit code is 1.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
import traceback
import warnings
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from harness.errors import HarnessError
from harness.registry import get_registry

console = Console()
err_console = Console(stderr=True)

DataRootOption = typer.Option(
    None, "--data-root", help="Data folder (default: $HARNESS_DATA_ROOT or a user cache folder)."
)
ResultsDirOption = typer.Option(Path("results"), "--results-dir", help="Results folder.")
DeviceOption = typer.Option("auto", "--device", help="auto, cpu or cuda.")
LogOption = typer.Option(
    [], "--log", help="NAME[=URI]: report every epoch to a logger (tensorboard, mlflow, ...); repeatable."
)
ReportsFolderOption = typer.Option(
    Path("reports"), "--out", help="A folder: the tables and figures are written into it (created when missing)."
)


class OutputFormat(str, Enum):
    """How a command prints its result: ``table`` for reading, ``csv`` and ``json`` for programs."""

    table = "table"
    csv = "csv"
    json = "json"


FormatOption = typer.Option(
    OutputFormat.table, "--format", help="table (for reading), csv (a header, then one line per row) or json."
)


def emit(
    output_format: OutputFormat, rows: list[dict], show_table: Callable[[], None], *, as_json=None, columns=()
) -> None:
    """Print ``rows`` in ``output_format``: ``table`` calls ``show_table``; ``csv`` writes a header (the
    rows' keys, or ``columns`` when there are no rows) and one line per row; ``json`` prints ``as_json``
    (default: the rows) as one JSON document."""
    if output_format is OutputFormat.json:
        print(json.dumps(rows if as_json is None else as_json, default=str, indent=2))
    elif output_format is OutputFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else list(columns))
        writer.writeheader()
        writer.writerows(rows)
    else:
        show_table()


def wide_console() -> Console:
    """The terminal's width, or 240 columns when output is not a terminal (tables stay readable in logs)."""
    return console if console.is_terminal else Console(width=240)


def fail(message: str, code: int = 2):
    """Print one error line (``message`` as plain text: its brackets are no markup) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print one warning line."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: one line per warning, no source excerpt."""
    warn(str(message))


def crashed_plugin(error: BaseException) -> str | None:
    """The source of the innermost plugin module the traceback of ``error`` passes through."""
    registry = get_registry()
    modules = {
        getattr(plugin, "__name__", None): registry.sources.get(name)
        for name, plugin in registry.plugin_manager.list_name_plugin()
    }
    for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))):
        module = frame.f_globals.get("__name__", "")
        for plugin_module, source in modules.items():
            if plugin_module and (module == plugin_module or module.startswith(plugin_module + ".")):
                return f"{plugin_module} ({source})"
    return None


def guarded(command):
    """Wrap a command: user errors become one line and exit 2, bugs a traceback and exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            try:
                return command(*args, **kwargs)
            except HarnessError as error:
                fail(str(error))
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception as error:
                traceback.print_exception(error)
                plugin = crashed_plugin(error)
                where = f" in plugin {plugin}" if plugin else ""
                fail(f"{type(error).__name__}{where}: {error} (a bug; the traceback is above)", code=1)

    return wrapper


def command(app: typer.Typer, name: str | None = None):
    """``@app.command(name)`` with the error handling of :func:`guarded`."""

    def register(function):
        app.command(name)(guarded(function))
        return function

    return register


def format_cell(value) -> str:
    """A table cell: floats to 4 significant digits, lists space-separated, None as '-'."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return " ".join(value) or "-"
    return "-" if value is None else str(value)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the generated section ``name`` of the file at ``path`` and say whether it changed."""
    from harness.readme import replace_section

    changed = replace_section(path, name, body)
    console.print(f"{path}: section {name} " + ("rewritten" if changed else "already up to date"), highlight=False)


PackOption = typer.Option(
    None,
    "--pack",
    min=1,
    help="Train runs that share model, data sizes and schedule K at a time as one vectorized model (for GPUs).",
)


def note_packing_on_cpu(pack: int, device: str) -> None:
    """One line when packing is asked for where it is slower: on the CPU."""
    from harness.runner import resolve_device

    if pack > 1 and resolve_device(device).type == "cpu":
        warn(f"--pack {pack} on the CPU: packed runs train slower there than one after another (packing is for GPUs)")


PrecisionOption = typer.Option(
    None, "--precision", help="fp32 (default), tf32 (CUDA) or bf16 (autocast; float32 weights, BatchNorm and loss)."
)
ChannelsLastOption = typer.Option(None, "--channels-last", help="Channels-last layout of models and inputs.")
CompileOption = typer.Option(None, "--compile", help="torch.compile the model for training and evaluation.")
SyncBnOption = typer.Option(
    None, "--sync-bn", help="SyncBatchNorm in data-parallel runs: BatchNorm over the whole batch (CUDA only)."
)
NprocPerNodeOption = typer.Option(
    None,
    "--nproc-per-node",
    min=1,
    help="Train each run data-parallel on N processes of this node (torch's launcher; one GPU each on CUDA).",
)
