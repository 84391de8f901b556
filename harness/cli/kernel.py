"""``harness kernel``: exact kernel regression (Section 5 of the paper) on a (corrupted) data set."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.cli.common import DataRootOption, DeviceOption, ResultsDirOption, console, err_console, fail
from harness.errors import ConfigError
from harness.options import parse_key_value


def parse_bandwidth(value: str | None) -> float | str | None:
    """A positive number, "median", or None."""
    if value is None or value == "median":
        return value
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"--bandwidth must be a number or 'median', got '{value}'") from None


class StageBars:
    """One rich progress bar per solver stage."""

    def __init__(self, progress: Progress):
        self.progress, self.tasks = progress, {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def kernel_command(
    dataset: str = typer.Option("cifar10", help="Dataset plugin (the paper's Table 3 also uses mnist)."),
    features: str = typer.Option("none", help="Feature map plugin: none, gabor, random_conv, ..."),
    feature_option: list[str] = typer.Option(
        [], "--feature-option", help="NAME=VALUE passed to the feature map, repeatable."
    ),
    kernel: str = typer.Option("gaussian", help="linear, gaussian (exp(-γ‖x-y‖²)) or laplacian (exp(-γ‖x-y‖))."),
    bandwidth: str | None = typer.Option(
        None,
        help="γ of the gaussian/laplacian kernel (paper's MNIST: 0.02 on pixels/255), or 'median' for 1/median distance.",
    ),
    ridge: float = typer.Option(0.0, help="λ in (K + λI) α = Y; 0 interpolates, as in the paper."),
    train_size: int | None = typer.Option(None, help="Use the first N training examples."),
    test_size: int | None = typer.Option(None, help="Use the first N test examples."),
    corruption: str = typer.Option("none", help="Corruption plugin, as for `harness run`."),
    corrupt_prob: float = typer.Option(1.0),
    seed: int = typer.Option(0, help="Seed of the corruption and of random feature maps."),
    dtype: str = typer.Option("auto", help="Kernel storage: float64, float32 (with float64 refinement) or auto."),
    memory_budget: str | None = typer.Option(None, help="e.g. 20GB (default: a safe share of available RAM)."),
    strict: bool = typer.Option(
        False, help="Stop when K is not numerically positive definite instead of adding jitter."
    ),
    device: str = DeviceOption,
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
    force: bool = typer.Option(False, help="Run again even if this configuration already completed."),
):
    """Solve (K + λI) α = Y exactly on a data set's features and store the run in RESULTS/kernel_runs."""
    from harness.kernel_runner import KernelConfig, execute

    config = KernelConfig(
        dataset=dataset,
        features=features,
        feature_options=dict(parse_key_value(pair, expected="--feature-option NAME=VALUE") for pair in feature_option),
        kernel=kernel,
        bandwidth=parse_bandwidth(bandwidth),
        ridge=ridge,
        train_size=train_size,
        test_size=test_size,
        corruption=corruption,
        corrupt_prob=corrupt_prob,
        seed=seed,
        dtype=dtype,
    )
    columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console) as progress:
            outcome = execute(
                config,
                results_dir,
                data_root=data_root,
                device=device,
                force=force,
                memory_budget=memory_budget,
                strict=strict,
                progress=StageBars(progress),
            )
    except KeyboardInterrupt:
        fail("interrupted; temporary files were removed", code=130)
    row = outcome.row
    if outcome.skipped:
        console.print(f"already completed: kernel run {row['run_id']} in {outcome.path} (use --force to run again)")
        return
    console.print(
        f"kernel run {row['run_id']}: {dataset}/{features}/{kernel} n={row['train_size']}: train error {row['train_error']:.2%}, "
        f"test error {row['test_error']:.2%}, norm {row['rkhs_norm']:.1f}, {row['dtype']}, residual "
        f"{row['relative_residual']:.1e}, jitter {row['jitter']:g}, {row['wall_seconds']:.1f} s -> {outcome.path}",
        highlight=False,
    )
