"""The runs and points behind Figure 1 and Figure 2b, shared by the PNG figures and the HTML report."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path

from harness.reports.store import Missing, average, load_epochs, select

CORRUPTIONS = {
    "none": "true labels",
    "random_labels": "random labels",
    "shuffled_pixels": "shuffled pixels",
    "random_pixels": "random pixels",
    "gaussian": "gaussian",
}
FIG1_MODELS = {"inception": "Inception", "alexnet": "AlexNet", "mlp_1x512": "MLP 1x512"}
FIG2_MODELS = {"inception": "Inception", "inception_nobn": "Inception w/o BatchNorm"}
FIG2_PAPER_TEST = {"inception": 85.75, "inception_nobn": 82.00}
"""Test accuracy (%) of the Figure 2b models in the paper (Table 1, no regularizers)."""


def corruption_runs(runs: list[dict], model: str, missing: Missing) -> dict[str, list[dict]]:
    """Per corruption, the runs of ``model`` without regularizers (random labels: p = 1)."""
    found = {}
    for corruption in CORRUPTIONS:
        matches = select(runs, model, corruption, 1.0 if corruption == "random_labels" else None)
        if matches:
            found[corruption] = matches
        else:
            missing.add(f"{model} {corruption}")
    return found


def level_runs(runs: list[dict], model: str, missing: Missing) -> dict[float, list[dict]]:
    """Per label-corruption level p, the runs of ``model`` at one training size, its largest with label
    corruption (p = 0 may also be a true-labels run)."""
    corrupted = [r for r in runs if r["model"] == model and r["corruption"] == "random_labels"]
    size = max((r["train_size"] for r in corrupted), default=None)
    same_size = [r for r in runs if r["train_size"] == size]
    levels = sorted({r["corrupt_prob"] for r in corrupted if r["train_size"] == size})
    found = {p: select(same_size, model, "random_labels", p) for p in levels}
    if 0.0 not in levels and select(same_size, model, "none"):
        found[0.0] = select(same_size, model, "none")
    if not found:
        missing.add(f"{model} random_labels at p = 0, 0.2, ..., 1")
    return dict(sorted(found.items()))


def loss_curves(runs: list[dict], results_dir: Path, model: str) -> tuple[dict[str, tuple[dict, list[dict]]], Missing]:
    """Figure 1a: per corruption, the first run of ``model`` and its epoch rows; and the runs not found."""
    missing = Missing("fig1a")
    first = {corruption: matches[0] for corruption, matches in corruption_runs(runs, model, missing).items()}
    epochs = load_epochs(results_dir, [run["run_id"] for run in first.values()])
    return {corruption: (run, epochs[run["run_id"]]) for corruption, run in first.items()}, missing


def corruption_levels(runs: list[dict]) -> tuple[dict[str, dict[float, list[dict]]], Missing]:
    """Figure 1b/c: per model with label-corruption runs, its runs per level p; and the runs not found."""
    missing = Missing("fig1bc")
    by_model = {model: level_runs(runs, model, missing) for model in FIG1_MODELS}
    return {model: levels for model, levels in by_model.items() if levels}, missing


def model_labels(by_model: dict[str, dict[float, list[dict]]]) -> dict[str, str]:
    """Legend labels of the Figure 1b/c models, with the training size when the models differ in it."""
    sizes = {model: next(iter(levels.values()))[0]["train_size"] for model, levels in by_model.items()}
    return {
        model: FIG1_MODELS[model] + (f" ({sizes[model]:,} images)" if len(set(sizes.values())) > 1 else "")
        for model in by_model
    }


def slowdown_points(levels: dict[float, list[dict]]) -> list[tuple[float, float, list[dict]]]:
    """Figure 1b: (p, mean fit step relative to p = 0, runs) at the levels where every run fitted."""
    base = average(levels.get(0.0, []), "fit_step")
    if not base:
        return []
    return [(p, average(rs, "fit_step") / base, rs) for p, rs in levels.items() if all(r["fit_step"] for r in rs)]


def error_points(levels: dict[float, list[dict]]) -> list[tuple[float, float, list[dict]]]:
    """Figure 1c: (p, mean test error in %, runs) per level."""
    return [(p, 100 * (1 - average(rs, "test_acc")), rs) for p, rs in levels.items()]


def bn_histories(runs: list[dict], results_dir: Path) -> tuple[dict[str, tuple[dict, list[dict]]], Missing]:
    """Figure 2b: per model with and without BatchNorm, its first run with true labels and no regularizers
    and that run's epoch rows; and the runs not found."""
    missing = Missing("fig2b")
    found = {}
    for model in FIG2_MODELS:
        matches = select(runs, model, "none")
        if matches:
            found[model] = matches[0]
        else:
            missing.add(f"{model} true labels, no regularizers")
    epochs = load_epochs(results_dir, [run["run_id"] for run in found.values()])
    return {model: (run, epochs[run["run_id"]]) for model, run in found.items()}, missing


def cumulative_best(values: list[float]) -> list[float]:
    """The best value so far at each position."""
    return list(accumulate(values, max))


def fig2_summary(runs: list[dict]) -> list[tuple[str, float, float, float]]:
    """(model, final test %, best test %, paper test %) of the Figure 2b runs."""
    rows = []
    for model, label in FIG2_MODELS.items():
        matches = select(runs, model, "none")
        if matches:
            rows.append(
                (
                    label,
                    100 * average(matches, "test_acc"),
                    100 * average(matches, "best_test_acc"),
                    FIG2_PAPER_TEST[model],
                )
            )
    return rows
