"""Figure 1 (randomization tests) and Figure 2b (BatchNorm) as PNGs, with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from harness.reports.store import Missing, average, load_epochs, select, settings

CORRUPTIONS = {"none": "true labels", "random_labels": "random labels", "shuffled_pixels": "shuffled pixels",
               "random_pixels": "random pixels", "gaussian": "gaussian"}
FIG1_MODELS = {"inception": "Inception", "alexnet": "AlexNet", "mlp_1x512": "MLP 1x512"}
FIG2_MODELS = {"inception": "Inception", "inception_nobn": "Inception w/o BatchNorm"}


def save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


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


def fig1(runs: list[dict], results_dir: Path, out: Path, loss_model: str = "inception") -> tuple[list[Path], list[Missing]]:
    """fig1a.png (loss vs step per corruption), fig1b.png (time to fit vs p), fig1c.png (test error vs p)."""
    paths = []
    missing_a, missing_bc = Missing("fig1a"), Missing("fig1bc")
    by_corruption = corruption_runs(runs, loss_model, missing_a)
    if by_corruption:
        first = {c: rs[0] for c, rs in by_corruption.items()}
        epochs = load_epochs(results_dir, [r["run_id"] for r in first.values()])
        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        for corruption, run in first.items():
            history = epochs[run["run_id"]]
            axes.plot([h["step"] for h in history], [h["train_loss"] for h in history], label=CORRUPTIONS[corruption])
        axes.set_yscale("log")  # a diverging early epoch (e.g. gaussian inputs at lr 0.1) would flatten the rest
        axes.set(xlabel="training step", ylabel="average training loss (log scale)",
                 title=f"(a) {FIG1_MODELS.get(loss_model, loss_model)}: learning curves\n{settings(list(first.values()))}")
        axes.title.set_fontsize(9)
        axes.legend()
        paths.append(save(figure, out / "fig1a.png"))

    by_model = {model: level_runs(runs, model, missing_bc) for model in FIG1_MODELS}
    by_model = {model: levels for model, levels in by_model.items() if levels}
    if by_model:
        subtitle = settings([r for levels in by_model.values() for rs in levels.values() for r in rs])
        sizes = {model: next(iter(levels.values()))[0]["train_size"] for model, levels in by_model.items()}
        label = {model: FIG1_MODELS[model] + (f" ({sizes[model]:,} images)" if len(set(sizes.values())) > 1 else "")
                 for model in by_model}
        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        for model, levels in by_model.items():
            base = average(levels.get(0.0, []), "fit_step")
            fitted = {p: rs for p, rs in levels.items() if all(r["fit_step"] for r in rs)}  # unfitted runs have no time
            points = [(p, average(rs, "fit_step") / base) for p, rs in fitted.items()] if base else []
            if points:
                axes.plot(*zip(*points), marker="o", label=label[model])
        axes.set(xlabel="label corruption p", ylabel="time to fit (steps) relative to p = 0",
                 title=f"(b) Convergence slowdown\n{subtitle}")
        axes.title.set_fontsize(9)
        axes.legend()
        paths.append(save(figure, out / "fig1b.png"))

        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        for model, levels in by_model.items():
            axes.plot(list(levels), [100 * (1 - average(rs, "test_acc")) for rs in levels.values()],
                      marker="o", label=label[model])
        axes.axhline(90, color="gray", linestyle=":", label="chance (90 %)")
        axes.set(xlabel="label corruption p", ylabel="test error (%)", title=f"(c) Generalization error growth\n{subtitle}",
                 ylim=(0, 100))
        axes.title.set_fontsize(9)
        axes.legend()
        paths.append(save(figure, out / "fig1c.png"))
    return paths, [m for m in (missing_a, missing_bc) if m.runs]


def fig2(runs: list[dict], results_dir: Path, out: Path) -> tuple[list[Path], list[Missing]]:
    """fig2b.png: test accuracy per epoch of Inception with and without BatchNorm, the
    cumulative best test accuracy shaded (the potential gain of early stopping)."""
    missing = Missing("fig2b")
    found = {}
    for model in FIG2_MODELS:
        matches = select(runs, model, "none")
        if matches:
            found[model] = matches[0]
        else:
            missing.add(f"{model} true labels, no regularizers")
    if not found:
        return [], [missing]
    epochs = load_epochs(results_dir, [r["run_id"] for r in found.values()])
    figure, axes = plt.subplots(figsize=(8.4, 4.4))  # room for the legend beside the axes
    for model, run in found.items():
        history = epochs[run["run_id"]]
        x = [h["epoch"] for h in history]
        test = [100 * h["test_acc"] for h in history]
        best = [max(test[: i + 1]) for i in range(len(test))]
        line, = axes.plot(x, test, label=f"{FIG2_MODELS[model]} (test)")
        axes.fill_between(x, test, best, color=line.get_color(), alpha=0.25)
        axes.plot(x, [100 * h["train_acc"] for h in history], color=line.get_color(), linestyle="--",
                  linewidth=1, label=f"{FIG2_MODELS[model]} (train)")
    axes.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 101),
             title=f"(b) Inception ± BatchNorm on {run['dataset']} (shaded: cumulative best test)\n"
                   f"{settings(list(found.values()))}")
    axes.title.set_fontsize(9)
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return [save(figure, out / "fig2b.png")], [missing] if missing.runs else []


def fig2_summary(runs: list[dict]) -> list[tuple[str, float, float, float]]:
    """(model, final test %, best test %, paper test %) of the Figure 2b runs."""
    paper = {"inception": 85.75, "inception_nobn": 82.00}
    rows = []
    for model, label in FIG2_MODELS.items():
        matches = select(runs, model, "none")
        if matches:
            rows.append((label, 100 * average(matches, "test_acc"), 100 * average(matches, "best_test_acc"), paper[model]))
    return rows
