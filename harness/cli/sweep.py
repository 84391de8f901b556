"""``harness sweep``: run a sweep spec with one progress display and one line per finished run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.cli.common import DataRootOption, DeviceOption, ResultsDirOption, console, err_console, fail
from harness.sweep import Result, describe, load_spec, run_sweep


def sweep_command(
    spec: Path = typer.Argument(..., help="Sweep spec (TOML): [grid] lists and [overrides]."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Runs at once, each in a worker process."),
    results_dir: Path = ResultsDirOption,
    data_root: Path | None = DataRootOption,
    device: str = DeviceOption,
):
    """Run every configuration of a sweep spec; completed runs are skipped, so it resumes."""
    configs = load_spec(spec)
    console.print(f"sweep {spec}: {len(configs)} runs, {jobs} at a time -> {results_dir}", highlight=False)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stats]}"))
    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("runs", total=len(configs), stats="")
        counts = {"completed": 0, "skipped": 0, "failed": 0}

        def on_result(result: Result) -> None:
            if result.status in counts:
                counts[result.status] += 1
            stats = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
            progress.update(task, advance=result.status in counts, stats=stats)
            progress.console.print(format_result(result), highlight=False, soft_wrap=True)

        summary = run_sweep(configs, results_dir, data_root, device, jobs, on_result)
    for result in summary.failed:
        err_console.print(f"[red]failed:[/] {describe(result.config)} ({result.config.run_id}): {result.error}",
                          highlight=False, soft_wrap=True)
    totals = f"{summary.count('completed')} completed, {summary.count('skipped')} skipped, {len(summary.failed)} failed"
    if summary.interrupted:
        fail(f"interrupted after {totals}; run the same command again to resume", code=130)
    console.print(f"sweep done: {totals} of {len(configs)} runs", highlight=False)
    if summary.failed:
        raise typer.Exit(1)


def format_result(result: Result) -> str:
    """One line per finished run."""
    label = describe(result.config)
    if result.status == "failed":
        return f"[red]✗[/] {label}: {result.error}"
    if result.status == "interrupted":
        return f"[yellow]![/] {label}: interrupted"
    row = result.row
    fit = f"fit at epoch {row['fit_epoch']}" if row["fit_epoch"] else f"not fitted in {row['epochs']} epochs"
    verb = "already done" if result.status == "skipped" else f"{row['wall_seconds']:.0f} s"
    return f"[green]✓[/] {label}: train {row['train_acc']:.1%}, test {row['test_acc']:.1%}, {fit} ({verb})"
