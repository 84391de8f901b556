"""``harness memorization`` (memorization scores) and ``harness report memorization``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.progress import Progress
from rich.table import Table

from harness.cli.common import (
    DataRootOption,
    DeviceOption,
    PackOption,
    ReportsFolderOption,
    ResultsDirOption,
    console,
    err_console,
    fail,
    note_packing_on_cpu,
    warn,
    wide_console,
)
from harness.cli.progress import RunsLeft, progress_columns


def memorization_command(
    plugin: str = typer.Option(..., "--plugin", help="Model plugin (see `harness plugins`)."),
    dataset: str = typer.Option("cifar10", help="Dataset plugin."),
    train_size: int | None = typer.Option(None, help="Use the first N training examples."),
    test_size: int | None = typer.Option(None, help="Use the first N test examples (evaluated every epoch)."),
    corruption: str = typer.Option("none", help="Corruption plugin."),
    corrupt_prob: float = typer.Option(1.0, help="Probability p of replacing each training label (random_labels)."),
    num_models: int = typer.Option(100, help="Number K of models, each trained on its own random subset."),
    subset_fraction: float = typer.Option(0.7, help="Fraction of the training set each model trains on."),
    max_epochs: int = typer.Option(
        100, help="Epoch limit per model; each model stops once it fits its subset (100 % training accuracy)."
    ),
    batch_size: int = typer.Option(64, help="Mini-batch size."),
    lr: float = typer.Option(0.05, help="Initial learning rate (this default fits the built-in data sets)."),
    lr_decay: float = typer.Option(1.0, help="Learning-rate factor applied after every epoch (1: constant)."),
    seed: int = typer.Option(0, help="Seed of the corruption, the subsets and the models."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Models trained at once, each in a worker process."),
    executor: str | None = typer.Option(
        None, "--executor", help="Sweep executor that trains the models (default: local): local, submitit, ray, ..."
    ),
    executor_option: list[str] = typer.Option([], "--executor-option", help="KEY=VALUE for the executor, repeatable."),
    pack: int | None = PackOption,
    device: str = DeviceOption,
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
):
    """Memorization score of every training example (Feldman & Zhang 2020) from K models on random
    subsets; stored in RESULTS/memorization. The models are runs of a sweep: running again resumes.
    A score means something only when the models fit their subsets: one line says when some did not."""
    from harness.cli.sweep import format_result
    from harness.executors import ExecutorSettings, parse_option
    from harness.memorization import MemorizationConfig, estimate

    config = MemorizationConfig(
        model=plugin,
        dataset=dataset,
        corruption=corruption,
        corrupt_prob=corrupt_prob,
        seed=seed,
        train_size=train_size,
        test_size=test_size,
        num_models=num_models,
        subset_fraction=subset_fraction,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        lr_decay=lr_decay,
    )
    pack = pack or 1
    note_packing_on_cpu(pack, device)
    try:
        with Progress(*progress_columns("left"), console=err_console) as progress:
            task = progress.add_task("models", total=num_models, left="")
            left = RunsLeft(num_models)

            def on_result(result):
                left.finished(result.status)
                progress.update(task, advance=result.status in ("completed", "skipped"), left=left.text())
                if result.status != "skipped":
                    progress.console.print(format_result(result), highlight=False, soft_wrap=True)

            outcome = estimate(
                config,
                ExecutorSettings(results_dir=results_dir, data_root=data_root, device=device, jobs=jobs),
                executor=executor or "local",
                executor_options=dict(parse_option(option) for option in executor_option),
                pack=pack,
                on_result=on_result,
            )
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume (finished models are kept)", code=130)
    score = outcome.table.column("score").to_numpy(zero_copy_only=False)
    console.print(
        f"memorization {outcome.run_id}: {outcome.table.num_rows} examples, {num_models} models "
        f"({outcome.models_fitted} fitted their subsets, {outcome.seconds_per_model:.1f} s each), mean score {np.nanmean(score):.3f}, "
        f"split-half Spearman {_format(outcome.split_half_spearman)}, "
        f"AUROC of the score for corrupted {_format(outcome.corrupted_auroc)} -> {outcome.path}",
        highlight=False,
    )
    if outcome.fit_warning:
        warn(outcome.fit_warning)


def report_memorization_command(
    results_dir: Path = ResultsDirOption,
    out: Path = ReportsFolderOption,
    dataset: str | None = typer.Option(None, "--dataset", help="Only runs of this data set (default: all)."),
):
    """Clean vs corrupted examples of runs with random labels at 0 < p < 1: fraction fitted per epoch,
    forgetting events, and how well each per-example record separates corrupted examples (AUROC)."""
    from harness.reports import memorization

    rows, paths = memorization.build(results_dir, out, dataset)
    if not rows:
        err_console.print(
            "[yellow]missing:[/] no completed run with random_labels at 0 < p < 1 in "
            f"{results_dir}; make some with e.g. `harness run --corruption random_labels --corrupt-prob 0.4`",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    view = Table(
        "model",
        "data",
        "p",
        "seed",
        "clean",
        "corrupted",
        "½ clean fit",
        "½ corrupted fit",
        "forget clean",
        "forget corr.",
        "AUROC learned",
        "AUROC forgetting",
        "AUROC −margin",
        title=f"Clean vs corrupted examples ({results_dir})",
    )
    for r in rows:
        view.add_row(
            r["model"],
            r["dataset"],
            f"{r['p']:g}",
            str(r["seed"]),
            str(r["clean"]),
            str(r["corrupted"]),
            _format(r["clean_half_fit_epoch"]),
            _format(r["corrupted_half_fit_epoch"]),
            _format(r["clean_mean_forgetting"]),
            _format(r["corrupted_mean_forgetting"]),
            _format(r["auroc_learned_epoch"]),
            _format(r["auroc_forgetting_events"]),
            _format(r["auroc_final_margin"]),
        )
    wide_console().print(view)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
