"""``harness plugins``, ``harness results`` and ``harness schema``: what is installed and what is stored."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from harness.cli.common import ResultsDirOption, console, fail, format_cell, wide_console, write_section
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


def plugins_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """List every registered model, dataset, corruption, regularizer and feature map."""
    registry = get_registry()
    listing = {
        kind: [
            {"name": e.name, "source": e.source, **({"info": e.info} if e.info else {})} for e in registry.entries(kind)
        ]
        for kind in KINDS
    }
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    table = Table("kind", "name", "from", "info")
    for kind, entries in listing.items():
        for entry in entries:
            info = ", ".join(f"{k}={v}" for k, v in entry.get("info", {}).items())
            table.add_row(kind, entry["name"], entry["source"], info)
    console.print(table)


def results_command(
    results_dir: Path = ResultsDirOption,
    model: str | None = typer.Option(None, help="Only this model."),
    corruption: str | None = typer.Option(None, help="Only this corruption."),
    output_format: str = typer.Option("table", "--format", help="table, csv or json."),
):
    """Show stored runs."""
    if output_format not in ("table", "csv", "json"):
        fail(f"unknown format '{output_format}'; known: table, csv, json")
    table = read_table(results_dir, "runs")
    rows = table.to_pylist() if table is not None else []
    rows = [
        r
        for r in rows
        if (model is None or r["model"] == model) and (corruption is None or r["corruption"] == corruption)
    ]
    rows.sort(key=lambda r: (r["started_at"] is not None, r["started_at"] or 0))  # runs that failed to start first
    if output_format == "json":
        print(json.dumps(rows, default=str, indent=2))
    elif output_format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else list(RESULT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    else:
        view = Table(*RESULT_COLUMNS, title=f"{len(rows)} runs in {results_dir}")
        for r in rows:
            view.add_row(*(format_cell(r[c]) for c in RESULT_COLUMNS))
        wide_console().print(view)


def schema_command(
    readme: Path | None = typer.Option(
        None, "--readme", help="Write it between the file's <!-- schema:start/end --> markers instead of printing."
    ),
):
    """Print every results table's columns (name, type, meaning) as markdown."""
    from harness.tables import markdown

    if readme is None:
        print(markdown())
    else:
        write_section(readme, "schema", markdown())
