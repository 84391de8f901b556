"""Which examples a network fits, and when: clean vs corrupted training examples of runs with
partial label corruption (Arpit et al. 2017; forgetting events, Toneva et al. 2019).

Per model, one PNG of the fraction of clean and of corrupted training examples fitted (first
classified as their label) by each epoch, one of the distribution of forgetting events, and
a table: per run, the epoch by which half of each group was fitted, and how well
``learned_epoch``, ``forgetting_events`` and ``final_margin`` separate corrupted from clean
examples (AUROC).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.examples import auroc
from harness.results import read_parquet, read_table, table_path, write_atomically

MAX_EVENTS = 5
"""Forgetting-event counts from this one up are shown as one bar."""


@dataclass
class RunExamples:
    """A run's trained examples as arrays."""

    run: dict
    corrupted: np.ndarray
    first_fit: np.ndarray  # epoch, inf when never fitted
    learned: np.ndarray  # epoch, inf when not learned at the end
    forgetting: np.ndarray
    margin: np.ndarray

    def fitted_by(self, group: np.ndarray) -> np.ndarray:
        """Fraction of the ``group`` examples first fitted by epoch 1, 2, ..., the run's last."""
        epochs = np.arange(1, self.run["epochs"] + 1)
        return (self.first_fit[group][None, :] <= epochs[:, None]).mean(axis=1)

    def half_fitted_epoch(self, group: np.ndarray) -> int | None:
        """The first epoch by which half of the ``group`` examples were fitted, None if none."""
        reached = np.flatnonzero(self.fitted_by(group) >= 0.5)
        return int(reached[0]) + 1 if len(reached) else None


def partial_corruption_runs(results_dir: Path, dataset: str | None = None) -> list[dict]:
    """Completed runs on the whole training set with random labels at 0 < p < 1, by model, p, seed."""
    table = read_table(results_dir, "runs")
    runs = [
        r
        for r in (table.to_pylist() if table is not None else [])
        if r["status"] == "completed"
        and r["corruption"] == "random_labels"
        and 0 < r["corrupt_prob"] < 1
        and r.get("subset_fraction") is None
        and (dataset is None or r["dataset"] == dataset)
        and table_path(results_dir, "examples", r["run_id"]).exists()
    ]
    return sorted(runs, key=lambda r: (r["model"], r["dataset"], r["corrupt_prob"], r["seed"]))


def load_examples(results_dir: Path, run: dict) -> RunExamples | None:
    """The trained examples of ``run`` (None when its examples file is missing or unreadable)."""
    table = read_parquet(table_path(results_dir, "examples", run["run_id"]))
    if table is None:
        return None
    trained = table.column("trained").to_numpy(zero_copy_only=False).astype(bool)

    def values(name, missing=np.inf):
        return table.column(name).cast(pa.float64()).fill_null(missing).to_numpy()[trained]

    return RunExamples(
        run,
        values("corrupted", 0).astype(bool),
        values("first_fit_epoch"),
        values("learned_epoch"),
        values("forgetting_events"),
        values("final_margin", np.nan),
    )


def summary_row(examples: RunExamples) -> dict:
    """The report's table row for one run."""
    run, corrupted = examples.run, examples.corrupted
    clean = ~corrupted
    return {
        "run_id": run["run_id"],
        "model": run["model"],
        "dataset": run["dataset"],
        "p": run["corrupt_prob"],
        "seed": run["seed"],
        "train_size": run["train_size"],
        "epochs": run["epochs"],
        "clean": int(clean.sum()),
        "corrupted": int(corrupted.sum()),
        "clean_half_fit_epoch": examples.half_fitted_epoch(clean),
        "corrupted_half_fit_epoch": examples.half_fitted_epoch(corrupted),
        "clean_mean_forgetting": float(examples.forgetting[clean].mean()) if clean.any() else None,
        "corrupted_mean_forgetting": float(examples.forgetting[corrupted].mean()) if corrupted.any() else None,
        "auroc_learned_epoch": auroc(np.minimum(examples.learned, run["epochs"] + 1), corrupted),
        "auroc_forgetting_events": auroc(examples.forgetting, corrupted),
        "auroc_final_margin": auroc(-np.nan_to_num(examples.margin, nan=0.0), corrupted),
    }


def plot_fitted(model: str, runs: list[RunExamples], path: Path) -> Path:
    """Fraction of clean (solid) and corrupted (dashed) training examples fitted by each epoch, per p."""
    from harness.reports.figures import plt, save  # matplotlib with the Agg backend

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    colors = plt.get_cmap("viridis")
    levels = sorted({r.run["corrupt_prob"] for r in runs})
    for examples in runs:
        p = examples.run["corrupt_prob"]
        color = colors(levels.index(p) / max(1, len(levels) - 1) * 0.85)
        epochs = np.arange(1, examples.run["epochs"] + 1)
        seed = f", seed {examples.run['seed']}"
        axes.plot(epochs, examples.fitted_by(~examples.corrupted), color=color, label=f"p={p:g} clean{seed}")
        axes.plot(
            epochs,
            examples.fitted_by(examples.corrupted),
            color=color,
            linestyle="--",
            label=f"p={p:g} corrupted{seed}",
        )
    axes.set(
        xlabel="epoch",
        ylabel="fraction fitted (classified as its label at least once)",
        ylim=(0, 1.02),
        title=f"{model}: clean (solid) vs corrupted (dashed) examples",
    )
    axes.legend(fontsize=7, loc="lower right")
    return save(figure, path)


def plot_forgetting(model: str, runs: list[RunExamples], path: Path) -> Path:
    """Distribution of forgetting events of clean vs corrupted examples, one panel per run."""
    from harness.reports.figures import plt, save  # matplotlib with the Agg backend

    figure, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), squeeze=False, sharey=True)
    bins = np.arange(MAX_EVENTS + 1)
    for ax, examples in zip(axes[0], runs):
        for offset, (name, group) in enumerate((("clean", ~examples.corrupted), ("corrupted", examples.corrupted))):
            counts = np.minimum(examples.forgetting[group], MAX_EVENTS).astype(int)
            share = np.bincount(counts, minlength=MAX_EVENTS + 1) / max(1, len(counts))
            ax.bar(bins + (offset - 0.5) * 0.4, share, width=0.4, label=name)
        ax.set_xticks(bins, [str(b) for b in bins[:-1]] + [f"≥{MAX_EVENTS}"])
        ax.set(xlabel="forgetting events", title=f"p={examples.run['corrupt_prob']:g}, seed {examples.run['seed']}")
    axes[0][0].set_ylabel("fraction of examples")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(f"{model}: forgetting events")
    return save(figure, path)


def write_csv(rows: list[dict], path: Path) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    return write_atomically(path, write)


def examples_by_model(results_dir: Path, dataset: str | None = None) -> dict[str, list[RunExamples]]:
    """The partial-corruption runs' examples, per ``MODEL-DATASET``."""
    by_model: dict[str, list[RunExamples]] = {}
    for run in partial_corruption_runs(results_dir, dataset):
        examples = load_examples(results_dir, run)
        if examples is not None:
            by_model.setdefault(f"{run['model']}-{run['dataset']}", []).append(examples)
    return by_model


def build(results_dir: Path, out: Path, dataset: str | None = None) -> tuple[list[dict], list[Path]]:
    """The table rows and the files written (two PNGs per model and memorization.csv)."""
    rows, paths = [], []
    for model, examples in examples_by_model(results_dir, dataset).items():
        rows += [summary_row(e) for e in examples]
        paths.append(plot_fitted(model, examples, out / f"memorization-fitted-{model}.png"))
        paths.append(plot_forgetting(model, examples, out / f"memorization-forgetting-{model}.png"))
    if rows:
        paths.append(write_csv(rows, out / "memorization.csv"))
    return rows, paths
