"""One self-contained HTML report: every table and figure beside the paper's numbers, the runs behind each
cell, what is missing and how to make it, and the runs table itself, sortable and filterable.

The page needs no server and no network: plotly.js, the figures' data, the styles and the small table script
are all inline.
"""

from __future__ import annotations

import os
from datetime import datetime
from html import escape
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from harness import __version__
from harness.config import CONFIG_COLUMNS
from harness.reports import figure_data, table1, table2, table3
from harness.reports.figure_data import CORRUPTIONS, FIG1_MODELS, FIG2_MODELS
from harness.reports.store import Missing, completed, settings
from harness.reports.theory import THEORY, column_values
from harness.results import read_table, write_atomically

SECTIONS = {
    "table1": "Table 1",
    "table2": "Table 2",
    "fig1": "Figure 1",
    "fig2": "Figure 2b",
    "table3": "Table 3",
    "theory": "Theory",
    "runs": "Runs",
}
"""Section ids and titles, in page order."""

FIG1A_PAPER_ORDER = ("none", "shuffled_pixels", "gaussian", "random_pixels", "random_labels")
"""Figure 1a's settings by time to fit, as reproductions of the paper report them."""

MODEL_COLORS = {"inception": "#636efa", "alexnet": "#ef553b", "mlp_1x512": "#00a07a", "inception_nobn": "#ab63fa"}
"""One color per model across the figures, its paper marks included."""

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def write(
    results_dir: Path,
    out: Path,
    dataset: str = "cifar10",
    fig1a_model: str = "inception",
    *,
    table2_plugin: str = table2.PLUGIN,
    table2_dataset: str = table2.DATASET,
) -> tuple[Path, list[str]]:
    """Write the report to ``out`` (temp file + rename); return its path and one line per missing piece.
    The options are those of :func:`build`."""
    page, missing = build(results_dir, dataset, fig1a_model, table2_plugin=table2_plugin, table2_dataset=table2_dataset)

    def write_page(tmp: str) -> None:
        Path(tmp).write_text(page, encoding="utf-8")
        os.chmod(tmp, 0o644)  # a page to share: readable like any other written file, not only by its owner

    return write_atomically(out, write_page), missing


def build(
    results_dir: Path,
    dataset: str = "cifar10",
    fig1a_model: str = "inception",
    *,
    table2_plugin: str = table2.PLUGIN,
    table2_dataset: str = table2.DATASET,
) -> tuple[str, list[str]]:
    """The page's HTML, and one line per missing piece (the page shows them too).

    The tables and figures show the runs of ``dataset`` (Figure 1a those of the model ``fig1a_model``),
    but Table 2, which shows those of ``table2_plugin`` on ``table2_dataset``.
    """
    all_runs = rows_of(results_dir, "runs")
    runs = completed(all_runs, dataset)
    missing: list[str] = []
    body = [
        header(results_dir, dataset, all_runs),
        table1_section(runs, missing),
        table2_section(completed(all_runs, table2_dataset), table2_plugin, table2_dataset, missing),
        fig1_section(runs, results_dir, fig1a_model, missing),
        fig2_section(runs, results_dir, missing),
        table3_section(results_dir, missing),
        theory_section(results_dir, missing),
        runs_section(all_runs),
    ]
    title = f"harness report: {results_dir} ({dataset})"
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n<script>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
    return page, missing


def rows_of(results_dir: Path, table: str) -> list[dict]:
    found = read_table(results_dir, table)
    return found.to_pylist() if found is not None else []


# ---------------------------------------------------------------- pieces of HTML


def text(value, digits: int = 4) -> str:
    """A stored value as table text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "–"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def sort_key(value) -> str:
    """The ``data-sort`` value of a cell: numbers as numbers, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def table(headers: list[str], rows: list[list], table_id: str | None = None) -> str:
    """A sortable table; a cell is plain text, or ``(html, sort value)`` for marked-up cells."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = []
        for cell in row:
            markup, key = cell if isinstance(cell, tuple) else (escape(cell), cell)
            cells.append(f'<td data-sort="{escape(sort_key(key))}">{markup}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return (
        f'<div class="scroll"><table class="sortable"{ident}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table></div>"
    )


def run_links(runs: list[dict]) -> tuple[str, str]:
    """The runs behind a cell: their ids (links into the runs table), sizes, seeds and device."""
    if not runs:
        return '<span class="none">no run</span>', ""
    ids = " ".join(f'<a href="#run-{escape(r["run_id"])}"><code>{escape(r["run_id"])}</code></a>' for r in runs)
    return f'{ids}<div class="settings">{escape(settings(runs))}</div>', " ".join(r["run_id"] for r in runs)


def missing_note(missing: Missing) -> str:
    """The runs a piece of the report lacks and the sweep that makes them."""
    if not missing.runs:
        return ""
    items = "".join(f"<li>{escape(run)}</li>" for run in missing.runs)
    return (
        f'<div class="missing"><b>Missing {len(missing.runs)} run(s):</b><ul>{items}</ul>Make them with '
        f"<code>harness sweep sweeps/{missing.sweep}.toml</code> (GPU scale) or "
        f"<code>harness sweep sweeps/{missing.sweep}-cpu.toml</code> (2-core CPU scale).</div>"
    )


def command_note(what: str, command: str) -> str:
    return f'<div class="missing"><b>Missing:</b> {escape(what)}. Make it with <code>{escape(command)}</code>.</div>'


def section(ident: str, intro: str, *parts: str) -> str:
    return (
        f'<section id="{ident}"><h2>{SECTIONS[ident]}</h2><p class="intro">{intro}</p>' + "".join(parts) + "</section>"
    )


def figure(ident: str, traces: list, layout: dict, caption: str) -> str:
    """An interactive plotly figure, or a note where it has no data."""
    if not traces:
        return f'<figure id="{ident}" class="empty"><p>No runs for this figure.</p><figcaption>{caption}</figcaption></figure>'
    chart = go.Figure(
        traces,
        {
            "template": "plotly_white",
            "height": 430,
            "hovermode": "closest",
            "margin": {"l": 70, "r": 20, "t": 70, "b": 55},
            **layout,
        },
    )
    plot = chart.to_html(
        full_html=False, include_plotlyjs=False, div_id=ident, config=PLOT_CONFIG, default_height="430px"
    )
    return f"<figure>{plot}<figcaption>{caption}</figcaption></figure>"


def plot_title(title: str, runs: list[dict]) -> dict:
    subtitle = escape(settings(runs)) if runs else ""
    return {"text": f"{escape(title)}<br><sup>{subtitle}</sup>", "font": {"size": 15}}


# ---------------------------------------------------------------- sections


def header(results_dir: Path, dataset: str, all_runs: list[dict]) -> str:
    statuses = {}
    for run in all_runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "none"
    nav = " · ".join(f'<a href="#{ident}">{title}</a>' for ident, title in SECTIONS.items())
    return (
        f"<header><h1>Understanding deep learning requires rethinking generalization: ours vs. the paper</h1>"
        f"<p>Results folder <code>{escape(str(results_dir))}</code>; training runs of <b>{escape(dataset)}</b> "
        f"in the tables and figures (runs in the folder: {escape(counts)}). harness {escape(__version__)}.</p>"
        f"<nav>{nav}</nav></header>"
    )


def table1_section(runs: list[dict], missing: list[str]) -> str:
    built, absent = table1.build(runs)
    headers = [column for column in table1.COLUMNS if column not in ("params", "settings")]
    rows = []
    for paper, row in zip(table1.PAPER_TABLE1, built):
        cells = [(escape(table1.format_cell(c, row[c])), row[c]) for c in headers]
        rows.append(cells + [run_links(table1.paper_runs(runs, paper))])
    if absent.runs:
        missing.append("Table 1: " + absent.message())
    return section(
        "table1",
        "Train and test accuracy (%) per model, with and without random crop and weight "
        "decay, and with random labels; seeds averaged at the largest training size run.",
        table(headers + ["runs"], rows),
        missing_note(absent),
    )


def table2_section(runs: list[dict], plugin: str, dataset: str, missing: list[str]) -> str:
    built, absent = table2.build(runs, plugin=plugin)
    rows = []
    for paper, row in zip(table2.PAPER_TABLE2, built):
        cells = [(escape(text), row[column]) for column, text in table2.shown(row).items()]
        rows.append(cells + [run_links(table2.paper_runs(runs, paper, plugin=plugin))])
    if absent.runs:
        missing.append("Table 2: " + absent.message())
    return section(
        "table2",
        f"Top-1 and top-5 train and test accuracy (%) of <code>{escape(plugin)}</code> on <b>{escape(dataset)}</b> "
        "with true or random labels, with and without augmentation, dropout and weight decay, beside the paper's "
        "Inception V3 on ImageNet. In parentheses: the best test accuracy over the epochs (the paper's: the "
        "potential gain of early stopping). Seeds averaged at the largest training size run.",
        table(list(table2.SHOWN) + ["runs"], rows),
        missing_note(absent),
    )


def fig1_section(runs: list[dict], results_dir: Path, model: str, missing: list[str]) -> str:
    curves, absent_a = figure_data.loss_curves(runs, results_dir, model)
    by_model, absent_bc = figure_data.corruption_levels(runs)
    missing += [f"Figure 1: {m.message()}" for m in (absent_a, absent_bc) if m.runs]
    return section(
        "fig1",
        "The randomization tests: (a) learning curves per corruption, (b) time to fit and "
        "(c) test error against the label corruption level p. Hover a point for its run.",
        fig1a(curves, model),
        missing_note(absent_a),
        fig1bc(by_model),
        missing_note(absent_bc),
    )


def fig1a(curves: dict[str, tuple[dict, list[dict]]], model: str) -> str:
    traces = [
        go.Scatter(
            x=[h["step"] for h in history],
            y=[h["train_loss"] for h in history],
            mode="lines+markers",
            name=CORRUPTIONS[corruption],
            marker={"size": 4},
            customdata=[[run["run_id"], h["epoch"]] for h in history],
            hovertemplate="run %{customdata[0]}<br>epoch %{customdata[1]}, step %{x}<br>train loss %{y:.4g}",
        )
        for corruption, (run, history) in curves.items()
    ]
    runs = [run for run, _ in curves.values()]
    layout = {
        "title": plot_title(f"(a) {FIG1_MODELS.get(model, model)}: learning curves", runs),
        "xaxis": {"title": {"text": "training step"}},
        "yaxis": {"title": {"text": "average training loss (log scale)"}, "type": "log"},
    }
    fitted = sorted((run["fit_step"], c) for c, (run, _) in curves.items() if run["fit_step"])
    ours = {c: str(rank) for rank, (_, c) in enumerate(fitted, 1)}
    rows = [
        [
            CORRUPTIONS[c],
            run_links([run]),
            (text(run["fit_step"]), run["fit_step"]),
            ours.get(c, "not fitted"),
            str(FIG1A_PAPER_ORDER.index(c) + 1),
        ]
        for c, (run, _) in curves.items()
    ]
    table_ = (
        table(["corruption", "plotted run", "fit step", "our order", "order in reproductions"], rows) if rows else ""
    )
    caption = (
        "Paper: with random labels the loss stays on a plateau, then falls fast to a perfect fit; random "
        "pixels and gaussian inputs start converging earlier than random labels. Reproductions order the "
        "settings by time to fit: true &lt; shuffled pixels &lt; gaussian &lt; random pixels &lt; random "
        "labels (the table's last column; ours by fit step beside it)."
    )
    return figure("fig1a", traces, layout, caption) + table_


def fig1bc(by_model: dict[str, dict[float, list[dict]]]) -> str:
    labels = figure_data.model_labels(by_model)
    all_runs = [r for levels in by_model.values() for rs in levels.values() for r in rs]
    hover = "%{fullData.name}<br>p = %{x}<br>%{customdata[1]}<br>runs %{customdata[0]}"

    def traces(points_of, value_text):
        found = []
        for model, levels in by_model.items():
            points = points_of(levels)
            if points:
                found.append(
                    go.Scatter(
                        x=[p for p, _, _ in points],
                        y=[y for _, y, _ in points],
                        mode="lines+markers",
                        name=labels[model],
                        line={"color": MODEL_COLORS[model]},
                        customdata=[[" ".join(r["run_id"] for r in rs), value_text(y, rs)] for _, y, rs in points],
                        hovertemplate=hover,
                    )
                )
        return found

    slowdown = traces(
        figure_data.slowdown_points,
        lambda y, rs: f"time to fit ×{y:.2f} (fit epoch {'/'.join(str(r['fit_epoch']) for r in rs)})",
    )
    if slowdown:
        slowdown.append(
            go.Scatter(
                x=[1.0],
                y=[2.75],
                mode="markers",
                name="paper (plot reading): 1.5–4× at p = 1",
                marker={"symbol": "diamond", "size": 10, "color": "black"},
                error_y={"type": "constant", "value": 1.25},
                hoverinfo="name",
            )
        )
    errors = traces(figure_data.error_points, lambda y, rs: f"test error {y:.2f} % (mean of {len(rs)} run(s))")
    if errors:
        errors += paper_errors(by_model)
        errors.append(
            go.Scatter(
                x=[0, 1],
                y=[90, 90],
                mode="lines",
                name="chance (90 %)",
                line={"dash": "dot", "color": "gray"},
                hoverinfo="name",
            )
        )
    b = figure(
        "fig1b",
        slowdown,
        {
            "title": plot_title("(b) Convergence slowdown", all_runs),
            "xaxis": {"title": {"text": "label corruption p"}},
            "yaxis": {"title": {"text": "time to fit (steps) relative to p = 0"}},
        },
        "Paper: time to fit slows down steadily as p rises, by a small constant factor (readings of its plot: "
        "1.5–4× at p = 1). Points only where every run fitted.",
    )
    c = figure(
        "fig1c",
        errors,
        {
            "title": plot_title("(c) Generalization error growth", all_runs),
            "xaxis": {"title": {"text": "label corruption p"}},
            "yaxis": {"title": {"text": "test error (%)"}, "range": [0, 100]},
        },
        "Paper: test error rises steadily with p and approaches chance (90 %) as p → 1; the diamonds are the "
        "paper's Table 1 ends (p = 0: true labels, p = 1: random labels).",
    )
    return b + c


def paper_errors(by_model: dict) -> list:
    """The paper's test error (%) at p = 0 and p = 1 of each Figure 1c model, from its Table 1."""
    traces = []
    for model in by_model:
        ends = {
            1.0 if row.random_labels else 0.0: 100 - row.test
            for row in table1.PAPER_TABLE1
            if row.model == model and not row.regularizers
        }
        traces.append(
            go.Scatter(
                x=list(ends),
                y=list(ends.values()),
                mode="markers",
                name=f"paper {FIG1_MODELS[model]}",
                marker={"symbol": "diamond-open", "size": 11, "color": MODEL_COLORS[model]},
                hovertemplate="%{fullData.name}: %{y:.2f} % at p = %{x}<extra></extra>",
            )
        )
    return traces


def fig2_section(runs: list[dict], results_dir: Path, missing: list[str]) -> str:
    histories, absent = figure_data.bn_histories(runs, results_dir)
    if absent.runs:
        missing.append("Figure 2b: " + absent.message())
    traces = []
    for model, (run, history) in histories.items():
        if not history:  # a run whose epoch rows are gone has nothing to draw
            continue
        epochs = [h["epoch"] for h in history]
        test = [100 * h["test_acc"] for h in history]
        data = [[run["run_id"], h["epoch"]] for h in history]
        hover = "%{fullData.name}<br>run %{customdata[0]}<br>epoch %{customdata[1]}: %{y:.2f} %<extra></extra>"
        name, color = FIG2_MODELS[model], MODEL_COLORS[model]
        paper = figure_data.FIG2_PAPER_TEST[model]
        traces += [
            go.Scatter(
                x=epochs,
                y=test,
                mode="lines",
                name=f"{name} (test)",
                legendgroup=model,
                customdata=data,
                line={"color": color},
                hovertemplate=hover,
            ),
            go.Scatter(
                x=epochs,
                y=figure_data.cumulative_best(test),
                mode="lines",
                fill="tonexty",
                opacity=0.35,
                line={"width": 0, "color": color},
                name=f"{name} (cumulative best test)",
                legendgroup=model,
                customdata=data,
                hovertemplate=hover,
            ),
            go.Scatter(
                x=epochs,
                y=[100 * h["train_acc"] for h in history],
                mode="lines",
                name=f"{name} (train)",
                line={"dash": "dash", "width": 1, "color": color},
                legendgroup=model,
                customdata=data,
                hovertemplate=hover,
            ),
            go.Scatter(
                x=[epochs[0], epochs[-1]],
                y=[paper, paper],
                mode="lines",
                name=f"paper: {name} test {paper:.2f} %",
                line={"dash": "dot", "width": 1.5, "color": color},
                legendgroup=model,
                hoverinfo="name",
            ),
        ]
    runs_behind = {FIG2_MODELS[model]: run for model, (run, _) in histories.items()}
    plot = figure(
        "fig2b",
        traces,
        {
            "title": plot_title(
                "(b) Inception ± BatchNorm, no regularizers (shaded: cumulative best test)", list(runs_behind.values())
            ),
            "xaxis": {"title": {"text": "epoch"}},
            "yaxis": {"title": {"text": "accuracy (%)"}, "range": [0, 101]},
            "legend": {"traceorder": "grouped"},
        },
        "Paper: early stopping does not necessarily help on CIFAR-10; BatchNorm improves generalization by 3–4 "
        "points (85.75 % vs 82.00 % test).",
    )
    rows = [
        [
            label,
            (f"{final:.2f}", final),
            (f"{best:.2f}", best),
            (f"{paper:.2f}", paper),
            run_links([runs_behind[label]]) if label in runs_behind else "",
        ]
        for label, final, best, paper in figure_data.fig2_summary(runs)
    ]
    summary = table(["model", "final test %", "best test %", "paper test %", "plotted run"], rows) if rows else ""
    return section(
        "fig2",
        "Test accuracy per epoch of Inception with and without BatchNorm; hover a point for its run and epoch.",
        plot,
        summary,
        missing_note(absent),
    )


def table3_section(results_dir: Path, missing: list[str]) -> str:
    lines, absent = table3.build(table3.load_kernel_runs(results_dir))
    rows = [[(escape(table3.cell(line, c)), line[c]) for c in table3.COLUMNS] for line in lines]
    notes = []
    for paper in table3.PAPER_TABLE3:
        if paper.label in absent:
            command = (
                f"harness kernel --dataset {paper.dataset} --features {paper.features} --kernel gaussian "
                "--bandwidth median"
            )
            notes.append(command_note(f"a kernel run for '{paper.label}'", command))
            missing.append(f"Table 3: no kernel run for '{paper.label}' (make one with `{command}`)")
    return section(
        "table3",
        "Exact kernel regression without regularization (true labels, ridge 0): test error "
        "and solution norm per data set and features, one line per stored run, largest n first. At the paper's "
        "scale on a GPU: <code>benchmarks/table3_mnist_gpu.sh RESULTS</code> and "
        "<code>benchmarks/table3_cifar_gpu.sh RESULTS</code>.",
        table(list(table3.COLUMNS), rows) if rows else "",
        *notes,
    )


def theory_section(results_dir: Path, missing: list[str]) -> str:
    parts = []
    for name, heading, command, claim, columns in THEORY:
        stored = rows_of(results_dir, name)
        parts.append(f"<h3>{escape(heading)}</h3><p>{escape(claim)}</p>")
        if not stored:
            parts.append(command_note("no stored run", command))
            missing.append(f"Theory: no {name} rows (make them with `{command}`)")
            continue
        values = [column_values(row, columns) for row in stored]
        rows = [
            [(f"<code>{escape(row['run_id'])}</code>", row["run_id"])] + [(escape(text(v)), v) for v in line]
            for row, line in zip(stored, values)
        ]
        parts.append(table(["run"] + [header for header, _ in columns], rows))
        if name == "theory_min_norm":
            parts.append(min_norm_curves(results_dir))
    return section(
        "theory",
        "Sections 4 and 5 of the paper: finite-sample expressivity and implicit "
        "regularization in linear models, and the Rademacher complexity of Section 2.",
        *parts,
    )


def min_norm_curves(results_dir: Path) -> str:
    curves = rows_of(results_dir, "theory_min_norm_curves")
    traces = []
    for run_id in sorted({row["run_id"] for row in curves}):
        for init in ("zero", "random"):
            points = sorted((r for r in curves if r["run_id"] == run_id and r["init"] == init), key=lambda r: r["step"])
            if points:
                traces.append(
                    go.Scatter(
                        x=[r["step"] for r in points],
                        y=[r["rel_dist"] for r in points],
                        mode="lines",
                        name=f"{run_id[:8]} from w₀ = {'0' if init == 'zero' else 'random'}",
                        customdata=[run_id] * len(points),
                        hovertemplate="run %{customdata}<br>step %{x}: ‖w − w_min‖ / ‖w_min‖ = %{y:.3g}<extra></extra>",
                    )
                )
    return figure(
        "min-norm-curves",
        traces,
        {
            "title": {"text": "SGD on least squares: distance to the minimum-norm solution", "font": {"size": 15}},
            "xaxis": {"title": {"text": "SGD step"}},
            "yaxis": {"title": {"text": "‖w_t − w_min‖ / ‖w_min‖ (log scale)"}, "type": "log"},
        },
        "From w₀ = 0 the distance falls towards 0; from a random w₀ it levels off at the predicted plateau.",
    )


RUN_COLUMNS = (
    "run_id",
    "status",
    *CONFIG_COLUMNS,
    "train_size",
    "test_size",
    "train_acc",
    "test_acc",
    "best_test_acc",
    "test_top5",
    "best_test_top5",
    "fit_epoch",
    "fit_step",
    "epochs",
    "steps",
    "wall_seconds",
    "device",
    "started_at",
    "error",
)


def runs_section(all_runs: list[dict]) -> str:
    ordered = sorted(all_runs, key=lambda r: (r["started_at"] is None, r["started_at"] or 0))
    rows = [
        [(f'<code id="run-{escape(r["run_id"])}">{escape(r["run_id"])}</code>', r["run_id"])]
        + [(escape(text(r.get(c))), r.get(c)) for c in RUN_COLUMNS[1:]]
        for r in ordered
    ]
    search = (
        f'<p><input type="search" class="filter" data-table="runs-table" placeholder="filter: words that must '
        f'all appear in a row, e.g. mlp random_labels completed" size="70"> <span class="count" '
        f'data-table="runs-table">{len(rows)} of {len(rows)} runs</span></p>'
    )
    return section(
        "runs",
        "Every training run in the results folder (all data sets and statuses); click a header "
        "to sort, type to filter. Accuracies are fractions in [0, 1].",
        search,
        table(list(RUN_COLUMNS), rows, table_id="runs-table") if rows else "<p>No runs.</p>",
    )


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 2rem 3rem; color: #222; max-width: 1500px; }
header { border-bottom: 1px solid #ccc; margin-bottom: 1rem; }
h1 { font-size: 1.45rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; } h3 { font-size: 1.05rem; }
nav a { margin: 0 .2rem; } .intro { color: #444; }
.scroll { overflow-x: auto; max-height: 75vh; overflow-y: auto; margin: .5rem 0; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f1f3f6; cursor: pointer; position: sticky; top: 0; white-space: nowrap; }
th[data-order="asc"]::after { content: " ▲"; } th[data-order="desc"]::after { content: " ▼"; }
tbody tr:nth-child(even) { background: #fafafa; } tbody tr:target, code:target { background: #fff3b0; }
code { font-size: 11.5px; } .settings { color: #666; font-size: 11px; } .none { color: #a00; }
.missing { background: #fff6e5; border-left: 4px solid #e6a23c; padding: .4rem .8rem; margin: .6rem 0; }
.missing ul { margin: .2rem 0; columns: 3 22rem; }
#runs-table td { white-space: nowrap; }
figure { margin: 1rem 0; max-width: 1000px; } figcaption { color: #444; font-size: 13px; }
figure.empty { border: 1px dashed #bbb; padding: .6rem; }
"""

SCRIPT = """
function sortValue(cell) {
  const raw = cell.dataset.sort;
  return raw === "" || isNaN(Number(raw)) ? raw : Number(raw);
}
for (const table of document.querySelectorAll("table.sortable")) {
  const headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach((th, column) => th.addEventListener("click", () => {
    const ascending = th.dataset.order !== "asc";
    headers.forEach(h => delete h.dataset.order);
    th.dataset.order = ascending ? "asc" : "desc";
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = sortValue(a.cells[column]), y = sortValue(b.cells[column]);
      if (x === "" || y === "") return (x === "") - (y === "");  // missing values last
      const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return ascending ? order : -order;
    });
    body.append(...rows);
  }));
}
for (const input of document.querySelectorAll("input.filter")) {
  const table = document.getElementById(input.dataset.table);
  const count = document.querySelector(`.count[data-table="${input.dataset.table}"]`);
  input.addEventListener("input", () => {
    const words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      const visible = words.every(word => row.textContent.toLowerCase().includes(word));
      row.hidden = !visible;
      shown += visible;
    }
    count.textContent = `${shown} of ${table.tBodies[0].rows.length} runs`;
  });
}
"""
