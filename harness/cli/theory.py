"""``harness theory``: Theorem 1's construction and SGD's minimum-norm solution, from the command line.

Each command prints a summary table (or, with ``--format json``, exactly one JSON
object on stdout; ``--format csv``, its rows) and stores its numbers under the results folder; see
:mod:`harness.theory.store` for the tables.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from harness.cli.common import DataRootOption, FormatOption, OutputFormat, ResultsDirOption, command, emit, fail
from harness.results import check_writable, write_table
from harness.theory import expressivity as expressivity_lib
from harness.theory import min_norm as min_norm_lib
from harness.theory import store
from harness.theory.samples import gaussian_sample, image_sample, random_labels

theory_app = typer.Typer(
    help="Sections 4-5 of the paper: Theorem 1's depth-2 ReLU network that fits any sample, "
    "and SGD's convergence to the minimum-norm solution of least squares.",
    no_args_is_help=True,
)


class Labels(str, Enum):
    random = "random"
    dataset = "dataset"


class DType(str, Enum):
    float64 = "float64"
    float32 = "float32"


SEED = typer.Option(0, "--seed", help="Seed of every random draw.")
DATASET = typer.Option(
    None, "--dataset", help="Use the first N training images of this data set (pixels in [0, 1], flattened)."
)


def _check_gap_fractions(values: list[float]) -> None:
    bad = [value for value in values if not 0 < value < 1]
    if bad:
        fail(f"--gap-fraction must lie in (0, 1), got {bad[0]}")


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
    if dataset and d is not None:
        fail("--d sets the dimension of Gaussian points; with --dataset it is the image size")
    if labels is Labels.dataset and not dataset:
        fail("--labels dataset needs --dataset")
    _check_gap_fractions([gap_fraction])
    check_writable(results_dir)
    if not dataset:
        d = d or 20
    options = {
        "n": n,
        "d": d,
        "seed": seed,
        "labels": labels.value,
        "dataset": dataset,
        "dtype": dtype.value,
        "gap_fraction": gap_fraction,
    }
    rng = np.random.default_rng(seed)
    if dataset:
        z, y, num_classes = image_sample(dataset, n, data_root)
        if labels is Labels.random:
            y = random_labels(n, rng, num_classes)
    else:
        z, y = gaussian_sample(n, d, rng)
    construction = expressivity_lib.construct(z, y, rng, gap_fraction)
    run_id = store.run_id("expressivity", options)
    row = {"run_id": run_id, **options, **expressivity_lib.summarize(construction, z, y, dtype.value)}
    path = write_table(results_dir, "theory_expressivity", run_id, [row], store.EXPRESSIVITY)
    emit(
        output_format,
        [_finite(row)],
        lambda: _print_summary("Theorem 1: depth-2 ReLU network fitting the sample", row, [path]),
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
    _check_gap_fractions(gap_fractions)
    check_writable(results_dir)
    options = {"ns": ns, "d": d, "gap_fractions": gap_fractions, "seed": seed}
    run_id = store.run_id("expressivity-sweep", options)
    rows = [
        {"run_id": run_id, "seed": seed, **row}
        for row in expressivity_lib.sweep(ns, d, gap_fractions, ("float32", "float64"), seed)
    ]
    path = write_table(results_dir, "theory_expressivity_sweep", run_id, rows, store.EXPRESSIVITY_SWEEP)
    finite = [_finite(row) for row in rows]

    def show_table():
        headers = {"n": "n", "gap_fraction": "δ", "dtype": "network", "max_abs_error": "max |c(z)−y|"}
        headers |= {"w_norm": "‖w‖", "min_gap": "min gap", "condition_number": "cond(A)"}
        table = Table(title=f"Theorem 1's construction on Gaussian samples, d = {d}")
        for header in headers.values():
            table.add_column(header, justify="right")
        for row in rows:
            table.add_row(*(_text(row[key], digits=3) for key in headers))
        console = Console()
        console.print(table)
        console.print(f"stored {path}")

    emit(output_format, finite, show_table, as_json={"run_id": run_id, "rows": finite})


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
    if dataset and d is not None:
        fail("--d sets the dimension of Gaussian data; with --dataset it is the image size")
    check_writable(results_dir)
    if not dataset:
        d = d or 1000
    options = {"n": n, "d": d, "dataset": dataset, "steps": steps, "lr": lr, "seed": seed}
    rng = np.random.default_rng(seed)
    if dataset:
        x, y, _ = image_sample(dataset, n, data_root)
    else:
        x, y = gaussian_sample(n, d, rng)
    if x.shape[1] <= n:
        fail(f"least squares is not underdetermined: d = {x.shape[1]} <= n = {n}")
    try:
        summary, curves = min_norm_lib.run(x, y, steps, rng, lr)
    except np.linalg.LinAlgError as error:
        fail(f"X Xᵀ is singular (repeated examples?): {error}")
    run_id = store.run_id("min-norm", options)
    if out:
        source = dataset or "Gaussian data"
        title = f"SGD on least squares, {source}: n = {n}, d = {x.shape[1]}, η = {summary['lr']:.3g}"
        min_norm_lib.plot(summary, curves, out, title)
    row = {"run_id": run_id, "dataset": dataset, "seed": seed, **summary, "plot": str(out) if out else None}
    curve_rows = [{"run_id": run_id, **curve} for curve in curves]
    stored = [
        write_table(results_dir, "theory_min_norm", run_id, [row], store.MIN_NORM),
        write_table(results_dir, "theory_min_norm_curves", run_id, curve_rows, store.MIN_NORM_CURVES),
    ]
    emit(
        output_format,
        [_finite(row)],
        lambda: _print_summary("SGD on underdetermined least squares", row, stored + ([out] if out else [])),
        as_json=_finite(row),
    )
