"""``harness report table1|table2|fig1|fig2|table3|html|memorization|status``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from harness.cli.common import (
    ReportsFolderOption,
    ResultsDirOption,
    command,
    console,
    err_console,
    fail,
    guarded,
    wide_console,
    write_section,
)
from harness.cli.memorization import report_memorization_command
from harness.reports import table1, table2, table3
from harness.reports.store import Missing, load_runs

report_app = typer.Typer(
    help="Rebuild the paper's Tables 1, 2 and 3, Figure 1 and Figure 2b from stored runs.", no_args_is_help=True
)

Dataset = typer.Option("cifar10", "--dataset", help="Data set whose runs are reported.")

SHORT = {
    "model": "model",
    "random crop": "crop",
    "weight decay": "wd",
    "labels": "labels",
    "train %": "train",
    "paper train %": "paper",
    "Δ train": "Δ",
    "test %": "test",
    "paper test %": "paper",
    "Δ test": "Δ",
    "fit epoch": "fit ep.",
}
"""Columns of the terminal Table 1 (settings are listed below it), with short headers."""


def table1_view(table: list[dict], title: str) -> Table:
    view = Table(*SHORT.values(), title=title, caption="settings: " + "; ".join(sorted({r["settings"] for r in table})))
    for row in table:
        view.add_row(*(table1.format_cell(c, row[c]) for c in SHORT))
    return view


def table2_view(table: list[dict], title: str) -> Table:
    caption = "ours: final (best test over the epochs); settings: " + "; ".join(sorted({r["settings"] for r in table}))
    view = Table(*(name.removesuffix(" %") for name in table2.SHOWN), title=title, caption=caption)
    for row in table:
        view.add_row(*table2.shown(row).values())
    return view


def table3_view(lines: list[dict], title: str) -> Table:
    table = Table(*table3.COLUMNS, title=title)
    for line in lines:
        table.add_row(*(table3.cell(line, c) for c in table3.COLUMNS))
    return table


def warn_missing(missing: list[Missing]) -> None:
    for entry in missing:
        err_console.print(f"[yellow]missing:[/] {entry.message()}", highlight=False, soft_wrap=True)


def show_written(paths: list[Path]) -> None:
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


@command(report_app, "table1")
def table1_command(results_dir: Path = ResultsDirOption, out: Path = ReportsFolderOption, dataset: str = Dataset):
    """Table 1: train / test accuracy per model, random crop and weight decay, beside the paper's."""
    console = wide_console()
    rows, missing = table1.build(load_runs(results_dir, dataset))
    console.print(table1_view(rows, f"Table 1 ({dataset}, {results_dir}): ours vs. paper (accuracy %)"))
    show_written(table1.write(rows, out))
    warn_missing([missing] if missing.runs else [])


@command(report_app, "table2")
def table2_command(
    results_dir: Path = ResultsDirOption,
    out: Path = ReportsFolderOption,
    plugin: str = typer.Option(table2.PLUGIN, "--plugin", help="Model plugin whose runs are reported."),
    dataset: str = typer.Option(table2.DATASET, "--dataset", help="Data set whose runs are reported."),
):
    """Table 2: top-1 and top-5 train / test accuracy (best test in parentheses) per labels, augmentation,
    dropout and weight decay, beside the paper's (Inception V3 on ImageNet)."""
    rows, missing = table2.build(load_runs(results_dir, dataset), plugin=plugin)
    title = f"Table 2 ({plugin} on {dataset}, {results_dir}): ours vs. paper (accuracy %)"
    wide_console().print(table2_view(rows, title))
    show_written(table2.write(rows, out, title=f"Table 2 ({plugin} on {dataset}): ours vs. the paper"))
    warn_missing([missing] if missing.runs else [])


@command(report_app, "fig1")
def fig1_command(
    results_dir: Path = ResultsDirOption,
    out: Path = ReportsFolderOption,
    dataset: str = Dataset,
    plugin: str = typer.Option("inception", "--plugin", help="Model plugin of panel (a)."),
):
    """Figure 1: (a) loss vs step per corruption, (b) time to fit and (c) test error vs label corruption."""
    from harness.reports import figures  # matplotlib loads only for figures

    paths, missing = figures.fig1(load_runs(results_dir, dataset), results_dir, out, plugin)
    show_written(paths)
    warn_missing(missing)
    if not paths:
        raise typer.Exit(1)


@command(report_app, "fig2")
def fig2_command(results_dir: Path = ResultsDirOption, out: Path = ReportsFolderOption, dataset: str = Dataset):
    """Figure 2b: Inception with and without BatchNorm, test accuracy per epoch, cumulative best shaded."""
    from harness.reports import figure_data, figures

    console = wide_console()
    runs = load_runs(results_dir, dataset)
    paths, missing = figures.fig2(runs, results_dir, out)
    summary = Table("model", "final test %", "best test %", "paper test %", title="Figure 2b runs")
    for label, final, best, paper in figure_data.fig2_summary(runs):
        summary.add_row(label, f"{final:.2f}", f"{best:.2f}", f"{paper:.2f}")
    console.print(summary)
    show_written(paths)
    warn_missing(missing)
    if not paths:
        raise typer.Exit(1)


@command(report_app, "table3")
def table3_command(results_dir: Path = ResultsDirOption, out: Path = ReportsFolderOption):
    """Table 3: kernel regression test error and norm per data set and features, beside the paper's."""
    lines, missing = table3.build(table3.load_kernel_runs(results_dir))
    wide_console().print(table3_view(lines, f"Table 3 ({results_dir}): exact kernel interpolation, ours vs. paper"))
    show_written(table3.write(lines, out))
    for label in missing:
        err_console.print(
            f"[yellow]missing:[/] no kernel run for '{label}' (make one with `harness kernel`)", highlight=False
        )


@command(report_app, "html")
def html_command(
    results_dir: Path = ResultsDirOption,
    dataset: str = Dataset,
    out: Path = typer.Option(Path("report.html"), "--out", help="A file: the HTML page to write."),
    plugin: str = typer.Option("inception", "--plugin", help="Model plugin of Figure 1a."),
    table2_plugin: str = typer.Option(table2.PLUGIN, "--table2-plugin", help="Model plugin of Table 2."),
    table2_dataset: str = typer.Option(table2.DATASET, "--table2-dataset", help="Data set of Table 2."),
):
    """One self-contained HTML page (opens offline): every table and figure beside the paper's, the runs behind
    them, what is missing, and the runs table, sortable and filterable."""
    from harness.reports import html  # plotly loads only for this report

    if not results_dir.is_dir():
        fail(f"results folder {results_dir} does not exist: make runs with `harness run` or `harness sweep`")
    path, missing = html.write(
        results_dir, out, dataset, plugin, table2_plugin=table2_plugin, table2_dataset=table2_dataset
    )
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
    for line in missing:
        err_console.print(f"[yellow]missing:[/] {line}", highlight=False, soft_wrap=True)


@command(report_app, "status")
def status_command(
    bundles: Path = typer.Option(
        Path("reproduction"),
        "--bundles",
        help="Folder whose bundles (results folders with a bundle.toml) are reported.",
    ),
    write: Path | None = typer.Option(
        None,
        "--write",
        help="A file: write it between the file's <!-- reproduction-status:start/end --> markers instead of "
        "printing (`harness docs` does so for the documentation site).",
    ),
):
    """The reproduction status: each bundle's tables beside the paper's numbers, as markdown."""
    from harness.reports import status

    text = status.render(bundles)
    if write is None:
        print(text, end="")
    else:
        write_section(write, status.SECTION_NAME, text)


report_app.command("memorization")(guarded(report_memorization_command))
