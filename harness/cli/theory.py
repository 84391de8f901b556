"""``harness theory``: Theorem 1's construction and SGD's minimum-norm solution, from the command line.

Each command prints a summary table (or, with ``--format json``, exactly one JSON
object on stdout; ``--format csv``, its rows); :mod:`harness.theory.runs` computes and
stores its numbers under the results folder (see :mod:`harness.theory.store` for the tables).
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from harness.cli.common import DataRootOption, FormatOption, OutputFormat, ResultsDirOption, command, emit
from harness.theory import runs

theory_app = typer.Typer(
    help="Sections 4-5 of the paper: Theorem 1's depth-2 ReLU network that fits any sample, "
    "and SGD's convergence to the minimum-norm solution of least squares.",
    no_args_is_help=True,
)

Labels = Enum("Labels", [(name, name) for name in runs.LABELS], type=str)
DType = Enum("DType", [(name, name) for name in runs.NETWORK_DTYPES], type=str)

SEED = typer.Option(0, "--seed", help="Seed of every random draw.")
DATASET = typer.Option(
    None, "--dataset", help="Use the first N training images of this data set (pixels in [0, 1], flattened)."
)


def _finite(row: dict) -> dict:
    """``row`` with non-finite floats as None: strict JSON has no NaN or infinity."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in row.items()}


def _text(value, digits: int = 6) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _print_summary(title: str, summary: dict, stored: list[Path]) -> None:
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, _text(value))
    console = Console()
    console.print(table)
    for path in stored:
        console.print(f"stored {path}")


@command(theory_app, "expressivity")
def expressivity(
    n: int = typer.Option(1000, "--n", min=1, help="Sample size."),
    d: int | None = typer.Option(
        None, "--d", min=1, help="Dimension of the Gaussian points \\[default: 20]; not with --dataset."
    ),
    seed: int = SEED,
    labels: Labels = typer.Option(
        Labels.random, "--labels", help="random: uniform classes as reals; dataset: the real labels."
    ),
    dataset: str | None = DATASET,
    data_root: Path | None = DataRootOption,
    dtype: DType = typer.Option(
        DType.float64, "--dtype", help="Precision the network is evaluated in (the construction runs in float64)."
    ),
    gap_fraction: float = typer.Option(
        0.5, "--gap-fraction", help="δ in (0, 1): b_i = x_i − δ (x_i − x_{i−1}); 0.5 = midpoints."
    ),
    results_dir: Path = ResultsDirOption,
    output_format: OutputFormat = FormatOption,
) -> None:
    """Build Theorem 1's depth-2 ReLU network (2n + d weights) that fits n labelled points, and check it."""
    outcome = runs.run_expressivity(
        results_dir,
        n=n,
        d=d,
        seed=seed,
        labels=labels.value,
        dataset=dataset,
        data_root=data_root,
        dtype=dtype.value,
        gap_fraction=gap_fraction,
    )
    (row,) = outcome.rows
    emit(
        output_format,
        [_finite(row)],
        lambda: _print_summary("Theorem 1: depth-2 ReLU network fitting the sample", row, outcome.paths),
        as_json=_finite(row),
    )


@command(theory_app, "expressivity-sweep")
def expressivity_sweep(
    ns: list[int] = typer.Option([100, 300, 1000, 3000, 10000], "--n", min=1, help="Sample sizes (repeat the option)."),
    d: int = typer.Option(20, "--d", min=1, help="Dimension of the Gaussian points."),
    gap_fractions: list[float] = typer.Option(
        [0.25, 0.5, 0.75], "--gap-fraction", help="Bias spacings δ (repeat the option)."
    ),
    seed: int = SEED,
    results_dir: Path = ResultsDirOption,
    output_format: OutputFormat = FormatOption,
) -> None:
    """Fit error and ‖w‖ of Theorem 1's construction against n, in float32 and float64."""
    outcome = runs.run_expressivity_sweep(results_dir, ns=ns, d=d, gap_fractions=gap_fractions, seed=seed)
    finite = [_finite(row) for row in outcome.rows]

    def show_table():
        headers = {"n": "n", "gap_fraction": "δ", "dtype": "network", "max_abs_error": "max |c(z)−y|"}
        headers |= {"w_norm": "‖w‖", "min_gap": "min gap", "condition_number": "cond(A)"}
        table = Table(title=f"Theorem 1's construction on Gaussian samples, d = {d}")
        for header in headers.values():
            table.add_column(header, justify="right")
        for row in outcome.rows:
            table.add_row(*(_text(row[key], digits=3) for key in headers))
        console = Console()
        console.print(table)
        for path in outcome.paths:
            console.print(f"stored {path}")

    emit(output_format, finite, show_table, as_json={"run_id": outcome.run_id, "rows": finite})


@command(theory_app, "min-norm")
def min_norm(
    n: int = typer.Option(50, "--n", min=1, help="Number of examples."),
    d: int | None = typer.Option(
        None, "--d", min=1, help="Dimension of the Gaussian data \\[default: 1000]; not with --dataset."
    ),
    dataset: str | None = DATASET,
    data_root: Path | None = DataRootOption,
    steps: int = typer.Option(200_000, "--steps", min=1, help="SGD steps, one example each."),
    lr: float | None = typer.Option(None, "--lr", help="Constant step size η \\[default: 1 / (2 max_i ‖x_i‖²)]."),
    seed: int = SEED,
    out: Path | None = typer.Option(None, "--out", help="A file: the PNG plot of the curves to write (default: none)."),
    results_dir: Path = ResultsDirOption,
    output_format: OutputFormat = FormatOption,
) -> None:
    """SGD on underdetermined least squares reaches the minimum-norm solution from w₀ = 0, not from a random w₀."""
    outcome = runs.run_min_norm(
        results_dir, n=n, d=d, dataset=dataset, data_root=data_root, steps=steps, lr=lr, seed=seed, plot=out
    )
    (row,) = outcome.rows
    emit(
        output_format,
        [_finite(row)],
        lambda: _print_summary("SGD on underdetermined least squares", row, outcome.paths),
        as_json=_finite(row),
    )
