"""``harness report table1|fig1|fig2``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from harness.cli import console, err_console, wide_console
from harness.memorization_cli import report_memorization_command
from harness.reports import table1, table3
from harness.reports.store import Missing, load_runs

report_app = typer.Typer(help="Rebuild the paper's Table 1, Figure 1, Figure 2b and Table 3 from stored runs.",
                         no_args_is_help=True)

ResultsDir = typer.Option(Path("results"), "--results-dir", help="Results folder to read.")
Out = typer.Option(Path("reports"), "--out", help="Folder for the tables and figures.")
Dataset = typer.Option("cifar10", "--dataset", help="Data set whose runs are reported.")


def warn_missing(missing: list[Missing]) -> None:
    for entry in missing:
        err_console.print(f"[yellow]missing:[/] {entry.message()}", highlight=False, soft_wrap=True)


def show_written(paths: list[Path]) -> None:
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


@report_app.command("table1")
def table1_command(results_dir: Path = ResultsDir, out: Path = Out, dataset: str = Dataset):
    """Table 1: train / test accuracy per model, random crop and weight decay, beside the paper's."""
    console = wide_console()
    rows, missing = table1.build(load_runs(results_dir, dataset))
    console.print(table1.rich_table(rows, f"Table 1 ({dataset}, {results_dir}): ours vs. paper (accuracy %)"))
    show_written(table1.write(rows, out))
    warn_missing([missing] if missing.runs else [])


@report_app.command("fig1")
def fig1_command(results_dir: Path = ResultsDir, out: Path = Out, dataset: str = Dataset,
                 model: str = typer.Option("inception", "--model", help="Model of panel (a).")):
    """Figure 1: (a) loss vs step per corruption, (b) time to fit and (c) test error vs label corruption."""
    from harness.reports import figures  # matplotlib loads only for figures

    paths, missing = figures.fig1(load_runs(results_dir, dataset), results_dir, out, model)
    show_written(paths)
    warn_missing(missing)
    if not paths:
        raise typer.Exit(1)


@report_app.command("fig2")
def fig2_command(results_dir: Path = ResultsDir, out: Path = Out, dataset: str = Dataset):
    """Figure 2b: Inception with and without BatchNorm, test accuracy per epoch, cumulative best shaded."""
    from harness.reports import figures

    console = wide_console()
    runs = load_runs(results_dir, dataset)
    paths, missing = figures.fig2(runs, results_dir, out)
    summary = Table("model", "final test %", "best test %", "paper test %", title="Figure 2b runs")
    for label, final, best, paper in figures.fig2_summary(runs):
        summary.add_row(label, f"{final:.2f}", f"{best:.2f}", f"{paper:.2f}")
    console.print(summary)
    show_written(paths)
    warn_missing(missing)
    if not paths:
        raise typer.Exit(1)


@report_app.command("table3")
def table3_command(results_dir: Path = ResultsDir, out: Path = Out):
    """Table 3: kernel regression test error and norm per data set and features, beside the paper's."""
    lines, missing = table3.build(table3.load_kernel_runs(results_dir))
    wide_console().print(table3.rich_table(lines, f"Table 3 ({results_dir}): exact kernel interpolation, ours vs. paper"))
    show_written(table3.write(lines, out))
    for label in missing:
        err_console.print(f"[yellow]missing:[/] no kernel run for '{label}' (make one with `harness kernel`)", highlight=False)


report_app.command("memorization")(report_memorization_command)
