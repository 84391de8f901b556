"""``harness plugins``, ``harness results`` and ``harness schema``: what is installed and what is stored
(``harness results --upgrade`` brings older files to today's schema)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from harness.cli.common import (
    FormatOption,
    OutputFormat,
    ResultsDirOption,
    console,
    emit,
    format_cell,
    warn,
    wide_console,
    write_section,
)
from harness.errors import ConfigError
from harness.registry import KINDS, get_registry
from harness.results import read_table
from harness.upgrade import Outcome, upgrade_results

RESULT_COLUMNS = (
    "run_id",
    "status",
    "model",
    "dataset",
    "corruption",
    "corrupt_prob",
    "regularizers",
    "seed",
    "train_size",
    "epochs",
    "train_acc",
    "test_acc",
    "test_top5",
    "fit_epoch",
    "fit_step",
    "wall_seconds",
)


def plugins_command(
    output_format: OutputFormat = FormatOption,
    search: str | None = typer.Option(
        None,
        "--search",
        help="List the model libraries' architectures whose name contains this text, with their parameter counts, "
        "and the data sets whose name contains it (torchvision's by class name).",
    ),
    input_shape: str = typer.Option(
        "3x28x28", help="CxHxW input of the parameter counts of --search (CIFAR-10's crop)."
    ),
    num_classes: int = typer.Option(10, help="Classes of the parameter counts of --search."),
):
    """List every registered model, model library, dataset, corruption, regularizer, feature map,
    sweep executor and logger; with --search, the model libraries' architectures and the data sets
    matching a text.

    json: an object of lists by kind; csv: one line per plugin (kind, name, source, info as JSON)."""
    if search is not None:
        return search_architectures(search, parse_shape(input_shape), num_classes, output_format)
    registry = get_registry()
    listing = {
        kind: [
            {"name": e.name, "source": e.source, **({"info": info(e)} if info(e) else {})}
            for e in registry.entries(kind)
        ]
        for kind in KINDS
    }
    rows = [
        {"kind": kind, "name": e["name"], "source": e["source"], "info": json.dumps(e.get("info", {}))}
        for kind, entries in listing.items()
        for e in entries
    ]

    def show_table():
        table = Table("kind", "name", "from", "info")
        for kind, entries in listing.items():
            for entry in entries:
                info = ", ".join(f"{k}={v}" for k, v in entry.get("info", {}).items())
                table.add_row(kind, entry["name"], entry["source"], info)
        console.print(table)

    emit(output_format, rows, show_table, as_json=listing)


def info(entry) -> dict:
    """What ``harness plugins`` says of an entry: its info, and for a model library its version and usage."""
    if entry.kind != "model_libraries":
        return entry.info
    library = entry.obj
    if not library.available():
        return {"installed": False, "install": f"pip install 'harness[{library.extra}]'"}
    return {"version": library.version(), "models": len(library.names()), "usage": f"--plugin {library.name}:ARCH"}


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"3x28x28"`` -> ``(3, 28, 28)``."""
    try:
        shape = tuple(int(side) for side in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"--input-shape must be CxHxW with positive sides (e.g. 3x28x28), got '{text}'")
    return shape


def search_architectures(
    term: str, input_shape: tuple[int, int, int], num_classes: int, output_format: OutputFormat
) -> None:
    """Every model library's architectures whose name contains ``term``, with parameter counts."""
    from harness.architectures import search

    rows = []
    for entry in get_registry().entries("model_libraries"):
        if entry.obj.available():
            rows += [{"kind": "model", **row} for row in search(entry.obj, term, input_shape, num_classes)]
        else:
            warn(
                f"model library {entry.name} is not installed (pip install 'harness[{entry.obj.extra}]'); not searched"
            )
    rows += [{"kind": "dataset", "name": name, "params": None, "error": None} for name in search_datasets(term)]
    shape = "x".join(map(str, input_shape))

    def show_table():
        table = Table(
            "name",
            "parameters",
            "note",
            title=f"{len(rows)} models and data sets matching '{term}' (parameters on {shape} input, {num_classes} classes)",
        )
        for row in rows:
            table.add_row(
                row["name"],
                f"{row['params']:,}" if row["params"] is not None else "-",
                "data set"
                if row["kind"] == "dataset"
                else f"cannot take {shape} input: {row['error'][:120]}"
                if row["error"]
                else "",
            )
        wide_console().print(table)

    emit(output_format, rows, show_table, columns=("kind", "name", "params", "error"))


def search_datasets(term: str) -> list[str]:
    """The data sets whose name contains ``term``: registered names, and the names a family can take
    (``torchvision:CIFAR100``) when it can list them."""
    found = []
    for entry in get_registry().entries("datasets"):
        names = [f"{entry.name}:{name}" for name in entry.obj.names()] if hasattr(entry.obj, "names") else [entry.name]
        found += [name for name in names if term.lower() in name.lower()]
    return found


def results_command(
    results_dir: Path = ResultsDirOption,
    plugin: str | None = typer.Option(None, "--plugin", help="Only runs of this model plugin."),
    corruption: str | None = typer.Option(None, help="Only this corruption."),
    output_format: OutputFormat = FormatOption,
    upgrade: bool = typer.Option(
        False,
        "--upgrade",
        help="Instead of showing runs, rewrite the folder's files of older schema versions to today's columns "
        "(atomically; current files stay as they are) and say what was done to each table's files.",
    ),
):
    """Show stored runs; with --upgrade, bring the folder's older files to today's schema.

    json: the upgrade's files as a list (table, file, outcome, reason); csv: one line per file."""
    if upgrade:
        if plugin is not None or corruption is not None:
            raise ConfigError("--plugin and --corruption choose runs to show; --upgrade rewrites the whole folder")
        return show_upgrade(results_dir, output_format)
    table = read_table(results_dir, "runs")
    rows = table.to_pylist() if table is not None else []
    rows = [
        r
        for r in rows
        if (plugin is None or r["model"] == plugin) and (corruption is None or r["corruption"] == corruption)
    ]
    rows.sort(key=lambda r: (r["started_at"] is not None, r["started_at"] or 0))  # runs that failed to start first

    def show_table():
        view = Table(*RESULT_COLUMNS, title=f"{len(rows)} runs in {results_dir}")
        for r in rows:
            view.add_row(*(format_cell(r[c]) for c in RESULT_COLUMNS))
        wide_console().print(view)

    emit(output_format, rows, show_table, columns=RESULT_COLUMNS)


def show_upgrade(results_dir: Path, output_format: OutputFormat) -> None:
    """Upgrade ``results_dir`` and print, per table, how many files were upgraded, already current or
    unreadable, with a warning line for each file left untouched."""
    files = upgrade_results(results_dir)
    for file in files:
        if file.outcome is Outcome.UNREADABLE:
            warn(f"left {file.path} untouched: {file.reason}")
    rows = [
        {"table": file.table, "file": str(file.path), "outcome": file.outcome.value, "reason": file.reason}
        for file in files
    ]

    def show_table():
        view = Table("table", *(outcome.value for outcome in Outcome), title=f"{len(files)} files in {results_dir}")
        for table in dict.fromkeys(file.table for file in files):
            outcomes = [file.outcome for file in files if file.table == table]
            view.add_row(table, *(str(outcomes.count(outcome)) for outcome in Outcome))
        console.print(view)

    emit(output_format, rows, show_table, columns=("table", "file", "outcome", "reason"))


def schema_command(
    write: Path | None = typer.Option(
        None,
        "--write",
        help="A file: write it between the file's <!-- schema:start/end --> markers instead of printing "
        "(`harness docs` does so for the documentation site).",
    ),
):
    """Print every results table's columns (name, type, meaning) as markdown."""
    from harness.tables import markdown

    if write is None:
        print(markdown())
    else:
        write_section(write, "schema", markdown())
