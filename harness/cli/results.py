"""``harness plugins``, ``harness results`` and ``harness schema``: what is installed and what is stored."""

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
    wide_console,
    write_section,
)
from harness.registry import KINDS, get_registry
from harness.results import read_table

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
    "fit_epoch",
    "fit_step",
    "wall_seconds",
)


def plugins_command(output_format: OutputFormat = FormatOption):
    """List every registered model, dataset, corruption, regularizer, feature map and sweep executor.

    json: an object of lists by kind; csv: one line per plugin (kind, name, source, info as JSON)."""
    registry = get_registry()
    listing = {
        kind: [
            {"name": e.name, "source": e.source, **({"info": e.info} if e.info else {})} for e in registry.entries(kind)
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


def results_command(
    results_dir: Path = ResultsDirOption,
    plugin: str | None = typer.Option(None, "--plugin", help="Only runs of this model plugin."),
    corruption: str | None = typer.Option(None, help="Only this corruption."),
    output_format: OutputFormat = FormatOption,
):
    """Show stored runs."""
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
