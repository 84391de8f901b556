"""``harness sweep``: run a sweep spec on an executor with one progress display and one line per
finished run, or show its status."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import Progress

from harness.cli.common import (
    ChannelsLastOption,
    CompileOption,
    DataRootOption,
    DeviceOption,
    LogOption,
    NprocPerNodeOption,
    PackOption,
    PrecisionOption,
    ResultsDirOption,
    console,
    err_console,
    fail,
    note_packing_on_cpu,
)
from harness.cli.progress import RunsLeft, progress_columns
from harness.executors import ExecutorSettings
from harness.sweep import Result, RunState, describe, load_sweep, run_sweep, sweep_status


def sweep_command(
    spec: Path = typer.Argument(..., help="Sweep spec (TOML): \\[grid] lists, \\[overrides], optional \\[executor]."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Runs at once (local executor, submitit's local cluster)."),
    results_dir: Path = ResultsDirOption,
    data_root: Path | None = DataRootOption,
    device: str = DeviceOption,
    executor: str | None = typer.Option(
        None, "--executor", help="local, submitit, ray, ... (default: the spec's, else local)."
    ),
    executor_option: list[str] = typer.Option([], "--executor-option", help="KEY=VALUE for the executor, repeatable."),
    status: bool = typer.Option(
        False, "--status", help="Show what is completed, started, failed and missing; run nothing."
    ),
    no_resume: bool = typer.Option(
        False, "--no-resume", help="Start interrupted runs over, not from their checkpoints."
    ),
    runs_per_gpu: int = typer.Option(
        1, "--runs-per-gpu", min=1, help="Runs at once on each GPU (local executor, --device cuda)."
    ),
    log: list[str] = LogOption,
    pack: int | None = PackOption,
    precision: str | None = PrecisionOption,
    channels_last: bool | None = ChannelsLastOption,
    compile: bool | None = CompileOption,
    nproc_per_node: int | None = NprocPerNodeOption,
):
    """Run every configuration of a sweep spec not yet completed; Ctrl-C cancels, running it again resumes.

    With --nproc-per-node N every run is data-parallel on N processes (N GPUs on CUDA): --jobs J
    trains J runs at once on the CPU, J × N processes in all."""
    sweep = (
        load_sweep(spec)
        .with_command_line(executor, executor_option, log, pack)
        .with_run_options(precision=precision, channels_last=channels_last, compile=compile)
    )
    if status:
        for line in format_status(sweep_status(sweep.configs, results_dir)):
            console.print(line, highlight=False, soft_wrap=True)
        return
    note_packing_on_cpu(sweep.pack, device)
    packed = f" in packs of {sweep.pack}" if sweep.pack > 1 else ""
    packed += f" of {nproc_per_node} processes each" if nproc_per_node else ""
    console.print(
        f"sweep {spec}: {len(sweep.configs)} runs{packed} on {sweep.executor} -> {results_dir}", highlight=False
    )
    with Progress(*progress_columns(), console=err_console) as progress:
        task = progress.add_task("runs", total=len(sweep.configs), stats="")
        left = RunsLeft(len(sweep.configs))

        def on_result(result: Result) -> None:
            left.finished(result.status)
            progress.update(task, advance=1)
            progress.console.print(format_result(result), highlight=False, soft_wrap=True)

        def on_progress(counts: dict) -> None:
            states = ", ".join(f"{counts[k]} {k}" for k in ("queued", "running", "done"))
            progress.update(task, stats=" · ".join(filter(None, (states, left.text()))))

        settings = ExecutorSettings(
            results_dir=results_dir,
            data_root=data_root,
            device=device,
            jobs=jobs,
            runs_per_gpu=runs_per_gpu,
            resume=not no_resume,
            nproc_per_node=nproc_per_node,
        )
        summary = run_sweep(sweep, settings, on_result=on_result, on_progress=on_progress)
    for result in summary.failed:
        err_console.print(
            f"[red]failed:[/] {describe(result.config)} ({result.config.run_id}): {escape(result.error)}",
            highlight=False,
            soft_wrap=True,
        )
    totals = ", ".join(f"{summary.count(s)} {s}" for s in ("completed", "skipped", "failed", "interrupted"))
    if summary.count("claimed"):
        console.print(
            f"left {summary.count('claimed')} runs to another driver that claimed them (--status shows which);"
            " run the same command again once it is done to take up any it did not complete",
            highlight=False,
            soft_wrap=True,
        )
    if summary.interrupted:
        err_console.print(f"cancelled {summary.cancelled} submitted runs", highlight=False)
        fail(f"interrupted after {totals}; run the same command again to resume", code=130)
    console.print(f"sweep done: {totals} of {len(sweep.configs)} runs", highlight=False)
    if summary.failed or summary.count("interrupted"):
        raise typer.Exit(1)


def format_status(states: list[RunState]) -> list[str]:
    """One line per run that is not completed, then the counts."""
    lines = [
        f"{state.state:<11} {describe(state.config)} ({state.config.run_id})"
        + (f": {state.detail}" if state.detail else "")
        for state in states
        if state.state != "completed"
    ]
    counts = {
        name: sum(s.state == name for s in states)
        for name in ("completed", "started", "interrupted", "failed", "missing")
    }
    return [*lines, f"{len(states)} runs: " + ", ".join(f"{n} {name}" for name, n in counts.items())]


def format_result(result: Result) -> str:
    """One line per finished run."""
    label = describe(result.config)
    if result.status == "failed":
        return f"[red]✗[/] {label}: {escape(result.error)}"
    if result.status == "interrupted":
        return f"[yellow]![/] {label}: interrupted"
    if result.status == "claimed":
        return f"[cyan]→[/] {label}: left to another driver that claimed it"
    row = result.row
    fit = f"fit at epoch {row['fit_epoch']}" if row["fit_epoch"] else f"not fitted in {row['epochs']} epochs"
    verb = "already done" if result.status == "skipped" else f"{row['wall_seconds']:.0f} s"
    return f"[green]✓[/] {label}: train {row['train_acc']:.1%}, test {row['test_acc']:.1%}, {fit} ({verb})"
