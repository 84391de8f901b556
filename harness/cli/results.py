"""``harness plugins``, ``harness results`` and ``harness schema``: what is installed and what is stored."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from harness.cli.common import ResultsDirOption, console, fail, format_cell, warn, wide_console, write_section
from harness.errors import ConfigError
from harness.registry import KINDS, get_registry
from harness.results import read_table

RESULT_COLUMNS = ("run_id", "status", "model", "dataset", "corruption", "corrupt_prob", "regularizers", "seed",
                  "train_size", "epochs", "train_acc", "test_acc", "fit_epoch", "fit_step", "wall_seconds")


def plugins_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    search: str | None = typer.Option(None, "--search", help="List the model libraries' architectures whose name "
                                      "contains this text, with their parameter counts."),
    input_shape: str = typer.Option("3x28x28", help="CxHxW input of the parameter counts of --search (CIFAR-10's crop)."),
    num_classes: int = typer.Option(10, help="Classes of the parameter counts of --search."),
):
    """List every registered model, model library, dataset, corruption, regularizer and feature map."""
    if search is not None:
        return search_architectures(search, parse_shape(input_shape), num_classes, as_json)
    registry = get_registry()
    listing = {
        kind: [{"name": e.name, "source": e.source, **({"info": info(e)} if info(e) else {})} for e in registry.entries(kind)]
        for kind in KINDS
    }
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    table = Table("kind", "name", "from", "info")
    for kind, entries in listing.items():
        for entry in entries:
            details = ", ".join(f"{k}={v}" for k, v in entry.get("info", {}).items())
            table.add_row(kind, entry["name"], entry["source"], details)
    console.print(table)


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


def search_architectures(term: str, input_shape: tuple[int, int, int], num_classes: int, as_json: bool) -> None:
    """Every model library's architectures whose name contains ``term``, with parameter counts."""
    from harness.architectures import search

    rows = []
    for entry in get_registry().entries("model_libraries"):
        if entry.obj.available():
            rows += search(entry.obj, term, input_shape, num_classes)
        else:
            warn(f"model library {entry.name} is not installed (pip install 'harness[{entry.obj.extra}]'); not searched")
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    shape = "x".join(map(str, input_shape))
    table = Table("model", "parameters", "note", title=f"{len(rows)} models matching '{term}' on {shape} input, {num_classes} classes")
    for row in rows:
        table.add_row(row["name"], f"{row['params']:,}" if row["params"] is not None else "-",
                      f"cannot take {shape} input: {row['error'][:120]}" if row["error"] else "")
    wide_console().print(table)


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
    rows = [r for r in rows if (model is None or r["model"] == model) and (corruption is None or r["corruption"] == corruption)]
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


def schema_command(readme: Path | None = typer.Option(
        None, "--readme", help="Write it between the file's <!-- schema:start/end --> markers instead of printing.")):
    """Print every results table's columns (name, type, meaning) as markdown."""
    from harness.tables import markdown

    if readme is None:
        print(markdown())
    else:
        write_section(readme, "schema", markdown())

