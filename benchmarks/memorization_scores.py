"""Memorization scores at CPU scale: do mislabeled examples get high scores, how many models
make the ranking stable, and which clean examples are memorized most.

Trains K models on random subsets (``harness memorization``), then reports the seconds per
model, the AUROC of the score for "corrupted", the Spearman correlation of the scores of two
independent halves of the models for growing K, and saves a PNG grid of the top-scored clean
training examples (and, for contrast, the lowest-scored ones) with their labels.

    python benchmarks/memorization_scores.py [--dataset digits] [--train-size N] [--num-models 32] [--epochs 20] [--jobs 2]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np

from harness.data import prepare_data
from harness.executors import ExecutorSettings
from harness.memorization import MemorizationConfig, estimate, load_outcomes, split_half_spearman


def save_grid(data, table, out: Path, count: int = 16) -> Path:
    """Top-``count`` scored clean examples (first row group) and the lowest-scored ones (second)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = table.column("score").to_numpy(zero_copy_only=False)
    clean = ~table.column("corrupted").to_numpy(zero_copy_only=False).astype(bool) & np.isfinite(score)
    index = table.column("index").to_numpy()
    order = np.argsort(-np.where(clean, score, -np.inf))
    top, bottom = order[:count], np.argsort(np.where(clean, score, np.inf))[:count]
    columns = 8
    rows = 2 * (-(-count // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.55 * rows))
    for ax, position in zip(axes.flat, [*top, *bottom]):
        image = data.x_train[index[position]]
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        ax.set_title(f"y={data.y_train[index[position]]} s={score[position]:.2f}", fontsize=8)
        ax.axis("off")
    figure.suptitle(
        f"clean {data.name} examples: {count} highest memorization scores (top), {count} lowest (bottom)", fontsize=9
    )
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=50)
    parser.add_argument("--plugin", default="mlp_1x512")
    parser.add_argument("--corrupt-prob", type=float, default=0.2)
    parser.add_argument("--num-models", type=int, default=32)
    parser.add_argument("--subset-fraction", type=float, default=0.7)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, default=Path("results/memorization-benchmark"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()

    config = MemorizationConfig(
        model=args.plugin,
        dataset=args.dataset,
        corruption="random_labels",
        corrupt_prob=args.corrupt_prob,
        train_size=args.train_size,
        test_size=args.test_size,
        num_models=args.num_models,
        subset_fraction=args.subset_fraction,
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_decay=1.0,
    )
    print(f"load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}", flush=True)
    result = estimate(
        config,
        ExecutorSettings(results_dir=args.results_dir, device="cpu", jobs=args.jobs),
        on_result=lambda r: print(f"  model {r.config.subset_seed}: {r.status}", flush=True),
    )
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    table = result.table
    score = table.column("score").to_numpy(zero_copy_only=False)
    corrupted = table.column("corrupted").to_numpy(zero_copy_only=False).astype(bool)
    print(
        f"{args.plugin} on {table.num_rows} {args.dataset} training images, p = {args.corrupt_prob}, "
        f"{args.num_models} models on {args.subset_fraction:.0%} subsets, ≤{args.epochs} epochs"
    )
    print(f"seconds per model (wall, under the load above): {result.seconds_per_model:.1f}")
    print(
        f"AUROC of the score for corrupted: {result.corrupted_auroc:.3f} "
        f"({corrupted.sum()} corrupted, {(~corrupted).sum()} clean)"
    )
    print(f"mean score: corrupted {np.nanmean(score[corrupted]):.3f}, clean {np.nanmean(score[~corrupted]):.3f}")
    _, trained, correct = load_outcomes(args.results_dir, [c.run_id for c in config.run_configs()])
    for half in (2, 4, 8, 16, 32, 64):
        if 2 * half <= args.num_models:
            rho = split_half_spearman(trained[: 2 * half], correct[: 2 * half])
            print(f"split-half Spearman, {half} vs {half} models: {rho:.3f}")
    data = prepare_data(args.dataset, "random_labels", args.corrupt_prob, 0, args.train_size, args.test_size)
    print(f"wrote {save_grid(data, table, args.out / f'memorization-top-clean-{args.dataset}.png')}")


if __name__ == "__main__":
    main()
