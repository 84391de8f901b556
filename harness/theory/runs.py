"""The ``harness theory`` commands as library calls: options in, numbers computed and stored, rows out.

Each function checks its options (a bad one raises :class:`~harness.errors.ConfigError`), computes
its numbers, writes them under the results folder as the Parquet tables of
:mod:`harness.theory.store`, and returns a :class:`TheoryOutcome` for the caller to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.results import check_writable, write_table
from harness.theory import expressivity, min_norm, store
from harness.theory.samples import gaussian_sample, image_sample, random_labels

LABELS = ("random", "dataset")
"""Labels of an expressivity sample: uniform random classes as reals, or the data set's own."""

NETWORK_DTYPES = ("float64", "float32")
"""Precisions the constructed network can be evaluated in (the construction runs in float64)."""


@dataclass(frozen=True)
class TheoryOutcome:
    """What a theory command computed and where it stored it.

    Attributes
    ----------
    run_id : str
        Hash of the command's options (:func:`harness.theory.store.run_id`).
    rows : list of dict
        The rows stored in the command's main table: one per run, or one per setting of a sweep.
    paths : list of Path
        The files written: the Parquet tables, then the plot when one was drawn.
    """

    run_id: str
    rows: list[dict]
    paths: list[Path]


def _check_gap_fractions(gap_fractions: Sequence[float]) -> None:
    """Raise ConfigError unless every bias spacing δ lies in (0, 1)."""
    outside = [value for value in gap_fractions if not 0 < value < 1]
    if outside:
        raise ConfigError(f"--gap-fraction must lie in (0, 1), got {outside[0]}")


def _check_dimension(*, d: int | None, dataset: str | None, points: str) -> None:
    """Raise ConfigError when both a dimension and a data set are given (a data set fixes the
    dimension); ``points`` names what ``d`` is the dimension of."""
    if dataset and d is not None:
        raise ConfigError(f"--d sets the dimension of {points}; with --dataset it is the image size")


def run_expressivity(
    results_dir: Path,
    *,
    n: int = 1000,
    d: int | None = None,
    seed: int = 0,
    labels: str = "random",
    dataset: str | None = None,
    data_root: Path | None = None,
    dtype: str = "float64",
    gap_fraction: float = 0.5,
) -> TheoryOutcome:
    """Build Theorem 1's depth-2 ReLU network that fits n labelled points, check it, and store one row.

    Parameters
    ----------
    results_dir : Path
        Results folder; the row goes to its ``theory_expressivity`` table.
    n : int
        Sample size.
    d : int or None
        Dimension of the Gaussian points (None: 20); not with ``dataset``.
    seed : int
        Seed of every random draw.
    labels : {"random", "dataset"}
        Uniform random classes as reals, or the data set's own labels (needs ``dataset``).
    dataset : str or None
        Use the first ``n`` training images of this data set (pixels in [0, 1], flattened) instead of
        Gaussian points.
    data_root : Path or None
        Where the data sets are (None: the default data folder).
    dtype : {"float64", "float32"}
        Precision the network is evaluated in.
    gap_fraction : float
        Bias spacing δ in (0, 1): b_i = x_i − δ (x_i − x_{i−1}).

    Returns
    -------
    TheoryOutcome
        The stored row and its file.
    """
    _check_dimension(d=d, dataset=dataset, points="Gaussian points")
    if labels not in LABELS:
        raise ConfigError(f"unknown labels '{labels}'; known: {', '.join(LABELS)}")
    if labels == "dataset" and not dataset:
        raise ConfigError("--labels dataset needs --dataset")
    if dtype not in NETWORK_DTYPES:
        raise ConfigError(f"unknown network dtype '{dtype}'; known: {', '.join(NETWORK_DTYPES)}")
    _check_gap_fractions([gap_fraction])
    results_dir = Path(results_dir)
    check_writable(results_dir)
    if not dataset:
        d = d or 20
    options = {
        "n": n,
        "d": d,
        "seed": seed,
        "labels": labels,
        "dataset": dataset,
        "dtype": dtype,
        "gap_fraction": gap_fraction,
    }
    rng = np.random.default_rng(seed)
    if dataset:
        z, y, num_classes = image_sample(dataset, n, data_root)
        if labels == "random":
            y = random_labels(n, rng, num_classes)
    else:
        z, y = gaussian_sample(n, d, rng)
    construction = expressivity.construct(z, y, rng, gap_fraction)
    run_id = store.run_id("expressivity", options)
    row = {"run_id": run_id, **options, **expressivity.summarize(construction, z, y, dtype)}
    path = write_table(results_dir, "theory_expressivity", run_id, [row], store.EXPRESSIVITY)
    return TheoryOutcome(run_id, [row], [path])


def run_expressivity_sweep(
    results_dir: Path,
    *,
    ns: Sequence[int] = (100, 300, 1000, 3000, 10000),
    d: int = 20,
    gap_fractions: Sequence[float] = (0.25, 0.5, 0.75),
    seed: int = 0,
) -> TheoryOutcome:
    """Fit error and ‖w‖ of Theorem 1's construction against n, in float32 and float64; one stored row per setting.

    Parameters
    ----------
    results_dir : Path
        Results folder; the rows go to its ``theory_expressivity_sweep`` table.
    ns : sequence of int
        Sample sizes.
    d : int
        Dimension of the Gaussian points.
    gap_fractions : sequence of float
        Bias spacings δ, each in (0, 1).
    seed : int
        Seed of every random draw.

    Returns
    -------
    TheoryOutcome
        The stored rows, one per (n, gap fraction, precision), and their file.
    """
    _check_gap_fractions(gap_fractions)
    results_dir = Path(results_dir)
    check_writable(results_dir)
    options = {"ns": list(ns), "d": d, "gap_fractions": list(gap_fractions), "seed": seed}
    run_id = store.run_id("expressivity-sweep", options)
    rows = [
        {"run_id": run_id, "seed": seed, **row}
        for row in expressivity.sweep(list(ns), d, list(gap_fractions), ("float32", "float64"), seed)
    ]
    path = write_table(results_dir, "theory_expressivity_sweep", run_id, rows, store.EXPRESSIVITY_SWEEP)
    return TheoryOutcome(run_id, rows, [path])


def run_min_norm(
    results_dir: Path,
    *,
    n: int = 50,
    d: int | None = None,
    dataset: str | None = None,
    data_root: Path | None = None,
    steps: int = 200_000,
    lr: float | None = None,
    seed: int = 0,
    plot: Path | None = None,
) -> TheoryOutcome:
    """SGD on underdetermined least squares from w₀ = 0 and from a random w₀; store the summary and the curves.

    Parameters
    ----------
    results_dir : Path
        Results folder; the summary goes to its ``theory_min_norm`` table, the curves to
        ``theory_min_norm_curves``.
    n : int
        Number of examples.
    d : int or None
        Dimension of the Gaussian data (None: 1000); not with ``dataset``.
    dataset : str or None
        Use the first ``n`` training images of this data set instead of Gaussian data.
    data_root : Path or None
        Where the data sets are (None: the default data folder).
    steps : int
        SGD steps, one example each.
    lr : float or None
        Constant step size η (None: 1 / (2 max_i ‖x_i‖²)).
    seed : int
        Seed of every random draw.
    plot : Path or None
        Where to write the PNG plot of the curves (None: no plot).

    Returns
    -------
    TheoryOutcome
        The stored summary row, and the files written: both tables, then the plot.
    """
    _check_dimension(d=d, dataset=dataset, points="Gaussian data")
    results_dir = Path(results_dir)
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
        raise ConfigError(f"least squares is not underdetermined: d = {x.shape[1]} <= n = {n}")
    try:
        summary, curves = min_norm.run(x, y, steps, rng, lr)
    except np.linalg.LinAlgError as error:
        raise ConfigError(f"X Xᵀ is singular (repeated examples?): {error}") from None
    run_id = store.run_id("min-norm", options)
    if plot:
        source = dataset or "Gaussian data"
        title = f"SGD on least squares, {source}: n = {n}, d = {x.shape[1]}, η = {summary['lr']:.3g}"
        min_norm.plot(summary, curves, plot, title)
    row = {"run_id": run_id, "dataset": dataset, "seed": seed, **summary, "plot": str(plot) if plot else None}
    curve_rows = [{"run_id": run_id, **curve} for curve in curves]
    paths = [
        write_table(results_dir, "theory_min_norm", run_id, [row], store.MIN_NORM),
        write_table(results_dir, "theory_min_norm_curves", run_id, curve_rows, store.MIN_NORM_CURVES),
    ]
    return TheoryOutcome(run_id, [row], paths + ([plot] if plot else []))
