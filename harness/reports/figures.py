"""Figure 1 (randomization tests) and Figure 2b (BatchNorm) as PNGs, with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from harness.reports.figure_data import (
    CORRUPTIONS,
    FIG1_MODELS,
    FIG2_MODELS,
    bn_histories,
    corruption_levels,
    cumulative_best,
    error_points,
    loss_curves,
    model_labels,
    slowdown_points,
)
from harness.reports.store import Missing, settings


def save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def fig1(
    runs: list[dict], results_dir: Path, out: Path, loss_model: str = "inception"
) -> tuple[list[Path], list[Missing]]:
    """fig1a.png (loss vs step per corruption), fig1b.png (time to fit vs p), fig1c.png (test error vs p)."""
    paths = []
    curves, missing_a = loss_curves(runs, results_dir, loss_model)
    if curves:
        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        for corruption, (_, history) in curves.items():
            axes.plot([h["step"] for h in history], [h["train_loss"] for h in history], label=CORRUPTIONS[corruption])
        axes.set_yscale("log")  # a diverging early epoch (e.g. gaussian inputs at lr 0.1) would flatten the rest
        axes.set(
            xlabel="training step",
            ylabel="average training loss (log scale)",
            title=f"(a) {FIG1_MODELS.get(loss_model, loss_model)}: learning curves\n"
            f"{settings([run for run, _ in curves.values()])}",
        )
        axes.title.set_fontsize(9)
        axes.legend()
        paths.append(save(figure, out / "fig1a.png"))

    by_model, missing_bc = corruption_levels(runs)
    if by_model:
        subtitle = settings([r for levels in by_model.values() for rs in levels.values() for r in rs])
        label = model_labels(by_model)
        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        for model, levels in by_model.items():
            points = slowdown_points(levels)
            if points:
                axes.plot([p for p, _, _ in points], [ratio for _, ratio, _ in points], marker="o", label=label[model])
        axes.set(
            xlabel="label corruption p",
            ylabel="time to fit (steps) relative to p = 0",
            title=f"(b) Convergence slowdown\n{subtitle}",
        )
        axes.title.set_fontsize(9)
        axes.legend()
        paths.append(save(figure, out / "fig1b.png"))

        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        for model, levels in by_model.items():
            points = error_points(levels)
            axes.plot([p for p, _, _ in points], [error for _, error, _ in points], marker="o", label=label[model])
        axes.axhline(90, color="gray", linestyle=":", label="chance (90 %)")
        axes.set(
            xlabel="label corruption p",
            ylabel="test error (%)",
            title=f"(c) Generalization error growth\n{subtitle}",
            ylim=(0, 100),
        )
        axes.title.set_fontsize(9)
        axes.legend()
        paths.append(save(figure, out / "fig1c.png"))
    return paths, [m for m in (missing_a, missing_bc) if m.runs]


def fig2(runs: list[dict], results_dir: Path, out: Path) -> tuple[list[Path], list[Missing]]:
    """fig2b.png: test accuracy per epoch of Inception with and without BatchNorm, the
    cumulative best test accuracy shaded (the potential gain of early stopping)."""
    histories, missing = bn_histories(runs, results_dir)
    if not histories:
        return [], [missing]
    plotted = [run for run, _ in histories.values()]
    figure, axes = plt.subplots(figsize=(8.4, 4.4))  # room for the legend beside the axes
    for model, (_, history) in histories.items():
        x = [h["epoch"] for h in history]
        test = [100 * h["test_acc"] for h in history]
        (line,) = axes.plot(x, test, label=f"{FIG2_MODELS[model]} (test)")
        axes.fill_between(x, test, cumulative_best(test), color=line.get_color(), alpha=0.25)
        axes.plot(
            x,
            [100 * h["train_acc"] for h in history],
            color=line.get_color(),
            linestyle="--",
            linewidth=1,
            label=f"{FIG2_MODELS[model]} (train)",
        )
    axes.set(
        xlabel="epoch",
        ylabel="accuracy (%)",
        ylim=(0, 101),
        title=f"(b) Inception ± BatchNorm on {plotted[0]['dataset']} (shaded: cumulative best test)\n"
        f"{settings(plotted)}",
    )
    axes.title.set_fontsize(9)
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return [save(figure, out / "fig2b.png")], [missing] if missing.runs else []
