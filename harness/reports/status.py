"""The reproduction status: what each results bundle shows, beside the paper's numbers, as markdown.

A bundle is a results folder holding a ``bundle.toml`` that says what it is and which sections it
backs::

    title = "The paper's CIFAR-10 experiments at CPU scale"
    machine = "2-core CPU (AMD EPYC, AVX2), 24 GB, no GPU"
    made_by = "scripts/reproduce-cpu.sh"
    sweeps = ["sweeps/table1-cpu.toml", "sweeps/fig1a-cpu.toml"]   # optional: the specs it holds the runs of
    sections = ["table1", "fig1a", "fig1bc", "fig2b", "table3"]

Paths of ``sweeps`` are relative to the bundles root's parent (the repository).

Every folder under the bundles root with such a file is one bundle (``reproduction/h200``,
``reproduction/cpu-2core/fig1bc-larger``, ...). The text is a function of the stored tables
only, so the documentation's copy (``docs/reproduction.md``) can be checked against the bundles.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.examples import auroc
from harness.reports import figure_data, memorization, table1, table2, table3, theory
from harness.reports.store import average, load_runs, settings
from harness.results import completed_rows, read_table
from harness.sweep import load_sweep

BUNDLE_FILE = "bundle.toml"
SECTION_NAME = "reproduction-status"
"""The markers of the generated section: ``<!-- reproduction-status:start -->`` ... ``<!-- reproduction-status:end -->``."""


@dataclass(frozen=True)
class Bundle:
    """A results folder shipped with the code, and what it backs."""

    path: Path
    name: str  # as shown and as passed to ``--results-dir``, e.g. reproduction/cpu-2core
    title: str
    machine: str
    made_by: str
    sections: tuple[str, ...]
    sweeps: tuple[str, ...] = ()
    section_options: dict = field(default_factory=dict)
    """Per section, the keyword options of its function (a ``[table2]`` table: ``plugin``, ``dataset``)."""


def find_bundles(root: Path) -> list[Bundle]:
    """Every bundle under ``root`` (itself included), in path order."""
    root = Path(root)
    bundles = []
    for manifest in sorted(root.rglob(BUNDLE_FILE)):
        try:
            spec = tomllib.loads(manifest.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{manifest} is not valid TOML: {error}") from None
        unknown = [s for s in spec.get("sections", []) if s not in SECTIONS]
        missing = [key for key in ("title", "machine", "made_by", "sections") if key not in spec]
        if unknown or missing:
            raise ConfigError(
                f"{manifest}: "
                + (
                    f"unknown sections {unknown} (known: {', '.join(SECTIONS)})"
                    if unknown
                    else f"missing keys {missing}"
                )
            )
        folder = manifest.parent
        name = (Path(root.name) / folder.relative_to(root)).as_posix()
        bundles.append(
            Bundle(
                folder,
                name,
                spec["title"],
                spec["machine"],
                spec["made_by"],
                tuple(spec["sections"]),
                tuple(spec.get("sweeps", ())),
                {name: spec[name] for name in spec["sections"] if isinstance(spec.get(name), dict)},
            )
        )
    return bundles


def render(root: Path) -> str:
    """The markdown of every bundle under ``root``: a heading, its machine and how it was made, its sections."""
    bundles = find_bundles(root)
    if not bundles:
        raise ConfigError(f"no bundle under {root}: a bundle is a results folder with a {BUNDLE_FILE}")
    parts = []
    for bundle in bundles:
        lines = [
            f"#### `{bundle.name}`: {bundle.title}",
            "",
            f"{bundle.machine}; made by `{bundle.made_by}`."
            + "".join(f" {sweep_progress(spec, root.parent, bundle.path)}" for spec in bundle.sweeps),
            "",
        ]
        for name in bundle.sections:
            lines += SECTIONS[name](bundle, **bundle.section_options.get(name, {})) + [""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def sweep_progress(spec: str, repository: Path, results_dir: Path) -> str:
    """``sweeps/x.toml: 12 of 19 runs completed.`` (``spec`` relative to ``repository``)"""
    configs = load_sweep(repository / spec).configs
    done = completed_rows(results_dir, "runs", (config.run_id for config in configs))
    return f"`{spec}`: {len(done)} of {len(configs)} runs completed."


def number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def section(title: str, header: list[str], rows: list[list[str]], notes: tuple[str, ...] = ()) -> list[str]:
    """A section's title line, then its markdown table and notes (or that nothing is stored)."""
    if not rows:
        return [title, "", "Nothing stored yet."]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [
        title,
        "",
        line(header),
        "|" + "---|" * len(header),
        *map(line, rows),
        *(text for note in notes for text in ("", note)),
    ]


def title(name: str, report: str, bundle: Bundle, runs: list[dict] | None = None) -> str:
    """``**NAME** (`harness report REPORT --results-dir BUNDLE`; the runs' settings):``"""
    where = f"`harness report {report} --results-dir {bundle.name}`"
    return f"**{name}** ({where}" + (f"; {settings(runs)}" if runs else "") + "):"


def table1_section(bundle: Bundle) -> list[str]:
    runs = load_runs(bundle.path, "cifar10")
    held = {paper.model for paper in table1.PAPER_TABLE1 if table1.paper_runs(runs, paper)}
    papers = [paper for paper in table1.PAPER_TABLE1 if paper.model in held]  # other models' rows: other bundles
    built, missing = table1.build(runs, papers=papers)
    rows = [
        [
            row["model"],
            f"{row['params']:,}",
            row["random crop"],
            row["weight decay"],
            row["labels"],
            f"{number(row['train %'], 2)} ({row['paper train %']:.2f})",
            f"{number(row['test %'])} ({row['paper test %']:.2f})",
            number(row["fit epoch"], 0),
        ]
        for row in built
        if row["seeds"]
    ]
    behind = [run for paper in papers for run in table1.paper_runs(runs, paper)]
    return section(
        title("Table 1", "table1", bundle, behind),
        [
            "model",
            "parameters",
            "random crop",
            "weight decay",
            "labels",
            "train % (paper)",
            "test % (paper)",
            "fit epoch",
        ],
        rows,
        (f"Not run: {'; '.join(missing.runs)}.",) if missing.runs else (),
    )


def table2_section(bundle: Bundle, plugin: str = table2.PLUGIN, dataset: str = table2.DATASET) -> list[str]:
    runs = load_runs(bundle.path, dataset)
    built, missing = table2.build(runs, plugin=plugin)
    rows = [list(table2.shown(row).values()) for row in built if row["seeds"]]
    behind = [run for paper in table2.PAPER_TABLE2 for run in table2.paper_runs(runs, paper, plugin=plugin)]
    notes = ("Ours: final (best test over the epochs).",)
    if missing.runs:
        notes += (f"Not run: {'; '.join(missing.runs)}.",)
    return section(title(f"Table 2, {plugin} on {dataset}", "table2", bundle, behind), list(table2.SHOWN), rows, notes)


def fig1a_section(bundle: Bundle, model: str = "inception") -> list[str]:
    runs = load_runs(bundle.path, "cifar10")
    curves, _ = figure_data.loss_curves(runs, bundle.path, model)
    by_fit_step = sorted(curves.items(), key=lambda item: item[1][0]["fit_step"] or float("inf"))
    rows = [
        [
            figure_data.CORRUPTIONS[corruption],
            str(run["fit_step"]) if run["fit_step"] else "not fitted",
            number(history[0]["train_loss"], 3) if history else "–",
            number(100 * run["train_acc"]),
            number(100 * run["test_acc"]),
        ]
        for corruption, (run, history) in by_fit_step
    ]
    return section(
        title(f"Figure 1a, {figure_data.FIG1_MODELS[model]}", "fig1", bundle, [run for run, _ in curves.values()]),
        ["inputs / labels", "steps to fit", "loss after epoch 1", "train %", "test %"],
        rows,
    )


def fig1bc_section(bundle: Bundle) -> list[str]:
    by_model, _ = figure_data.corruption_levels(load_runs(bundle.path, "cifar10"))
    levels = sorted({p for model_levels in by_model.values() for p in model_levels})
    rows = []
    for model, model_levels in by_model.items():
        slowdown = {p: ratio for p, ratio, _ in figure_data.slowdown_points(model_levels)}
        error = {p: value for p, value, _ in figure_data.error_points(model_levels)}
        first = next(iter(model_levels.values()))
        label = f"{figure_data.FIG1_MODELS[model]} ({first[0]['train_size']:,} images, {len(first)} seed(s))"
        rows.append([label, "time to fit, × p = 0"] + [number(slowdown.get(p), 2) for p in levels])
        rows.append([label, "test error %"] + [number(error.get(p)) for p in levels])
    behind = [run for model_levels in by_model.values() for runs in model_levels.values() for run in runs]
    return section(
        title("Figures 1b and 1c", "fig1", bundle, behind), ["model", "measure"] + [f"p = {p:g}" for p in levels], rows
    )


def fig2b_section(bundle: Bundle) -> list[str]:
    runs = load_runs(bundle.path, "cifar10")
    histories, _ = figure_data.bn_histories(runs, bundle.path)
    rows = [
        [label, number(final), number(best), f"{paper:.2f}"]
        for label, final, best, paper in figure_data.fig2_summary(runs)
    ]
    return section(
        title("Figure 2b", "fig2", bundle, [run for run, _ in histories.values()]),
        ["model", "final test %", "best test %", "paper test %"],
        rows,
    )


def table3_section(bundle: Bundle) -> list[str]:
    lines, _ = table3.build(table3.load_kernel_runs(bundle.path))
    rows = [
        [
            line["paper row"] + ("" if line["feature options"] == "{}" else f"; ours: {line['feature options']}"),
            f"{line['n train']:,} / {line['n test']:,}",
            line["kernel"],
            f"{line['test err %']:.2f} ({line['paper err %']:g})",
            f"{line['norm']:.1f}" + (f" ({line['paper norm']:g})" if line["paper norm"] else ""),
            line["dtype"],
            line["device"],
            f"{line['seconds']:.0f}",
        ]
        for line in lines
    ]
    stored = read_table(bundle.path, "kernel_runs")
    corrupted = [
        r
        for r in (stored.to_pylist() if stored is not None else [])
        if r["status"] == "completed" and r["corruption"] != "none" and r["ridge"] == 0
    ]
    rows += [
        [
            f"{r['dataset']}, {r['features']}, {r['corruption']} p = {r['corrupt_prob']:g} "
            f"(train error {100 * r['train_error']:.2f} %)",
            f"{r['train_size']:,} / {r['test_size']:,}",
            r["kernel"],
            f"{100 * r['test_error']:.2f}",
            f"{r['rkhs_norm']:.1f}",
            r["dtype"],
            r["device"],
            f"{r['wall_seconds']:.0f}",
        ]
        for r in corrupted
    ]
    return section(
        title("Table 3", "table3", bundle),
        ["paper row", "train / test", "kernel", "test error % (paper)", "norm (paper)", "dtype", "device", "seconds"],
        rows,
    )


def memorization_section(bundle: Bundle) -> list[str]:
    rows = []
    for examples in memorization.examples_by_model(bundle.path).values():
        for run_examples in examples:
            row, run = memorization.summary_row(run_examples), run_examples.run
            aurocs = (row["auroc_learned_epoch"], row["auroc_forgetting_events"], row["auroc_final_margin"])
            rows.append(
                [
                    f"{run['model']}, {run['dataset']} ({run['train_size']:,} images)",
                    f"{row['p']:g}",
                    number(100 * run["train_acc"]),
                    number(100 * run["test_acc"]),
                    f"{row['clean_half_fit_epoch'] or '–'} / {row['corrupted_half_fit_epoch'] or '–'}",
                    f"{number(row['clean_mean_forgetting'], 2)} / {number(row['corrupted_mean_forgetting'], 2)}",
                    " / ".join(number(value, 3) for value in aurocs),
                ]
            )
    return section(
        title("Which examples are fitted when, clean / corrupted", "memorization", bundle),
        [
            "model, data",
            "p",
            "train %",
            "test %",
            "half fitted by epoch",
            "mean forgetting events",
            "AUROC for corrupted: learned epoch / forgetting / −margin",
        ],
        rows,
    )


def memorization_scores_section(bundle: Bundle) -> list[str]:
    scores = read_table(bundle.path, "memorization")
    stored = read_table(bundle.path, "runs")
    models = [
        r
        for r in (stored.to_pylist() if stored is not None else [])
        if r["status"] == "completed" and r["subset_fraction"] is not None
    ]
    estimates = sorted(set(scores.column("run_id").to_pylist())) if scores is not None else []
    described = models and len(estimates) == 1  # the model runs do not say which estimate they belong to
    rows = []
    for run_id in estimates:
        estimate = scores.filter(scores.column("run_id").to_numpy(zero_copy_only=False) == run_id)
        score = estimate.column("score").to_numpy(zero_copy_only=False).astype(float)
        corrupted = estimate.column("corrupted").to_numpy(zero_copy_only=False).astype(bool)
        defined = np.isfinite(score)
        count = int((estimate.column("models_in").to_numpy() + estimate.column("models_out").to_numpy()).max())
        rows.append(
            [
                f"{models[0]['model']}, {models[0]['dataset']} ({estimate.num_rows:,} images)" if described else run_id,
                f"{models[0]['corrupt_prob']:g}" if described else "–",
                str(count),
                number(auroc(score[defined], corrupted[defined]), 3),
                f"{number(score[defined & corrupted].mean(), 3)} / {number(score[defined & ~corrupted].mean(), 3)}",
                f"{int((score[corrupted] >= 0.5).sum())} of {int(corrupted.sum())}",
                str(int((score[~corrupted] == 1).sum())),
                number(average(models, "wall_seconds"), 0) if described else "–",
            ]
        )
    return section(
        "**Memorization scores** (the `memorization` table; running its command again reprints them):",
        [
            "model, data",
            "p",
            "models",
            "AUROC for corrupted",
            "mean score corrupted / clean",
            "corrupted scoring ≥ 0.5",
            "clean scoring 1",
            "seconds per model",
        ],
        rows,
    )


def theory_section(bundle: Bundle) -> list[str]:
    """The theory tables but the expressivity sweep (30 lines; `harness report html` shows it)."""
    lines = []
    for name, heading, command, claim, columns in theory.THEORY:
        if name == "theory_expressivity_sweep":
            continue
        stored = read_table(bundle.path, name)
        rows = [
            [value_text(v) for v in theory.column_values(row, columns)]
            for row in (stored.to_pylist() if stored else [])
        ]
        lines += section(f"**{heading}** (`{command}`). {claim}", [header for header, _ in columns], rows) + [""]
    return lines[:-1]


def precision_section(bundle: Bundle) -> list[str]:
    """Each configuration trained in fp32 and in another precision, the two side by side (their
    speed is the benchmarks' business: a sweep's wall times move with the machine's load)."""
    runs = load_runs(bundle.path, "cifar10")
    by_precision = {(r["model"], r["train_size"], r["seed"], r["precision"]): r for r in runs}
    rows, behind = [], []
    for (model, images, seed, precision), run in sorted(by_precision.items()):
        reference = by_precision.get((model, images, seed, "fp32"))
        if precision == "fp32" or reference is None:
            continue
        behind += [reference, run]
        rows.append(
            [
                f"{model}, {images:,} images, seed {seed}",
                precision,
                " / ".join(number(100 * r["train_acc"], 2) for r in (reference, run)),
                " / ".join(number(100 * r["test_acc"], 2) for r in (reference, run)),
                " / ".join(str(r["fit_epoch"] or "not fitted") for r in (reference, run)),
            ]
        )
    return section(
        f"**fp32 against another precision** ({settings(behind)}):"
        if behind
        else "**fp32 against another precision**:",
        ["run", "precision", "train % (fp32 / it)", "test % (fp32 / it)", "fit epoch (fp32 / it)"],
        rows,
    )


def value_text(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


SECTIONS = {
    "table1": table1_section,
    "table2": table2_section,
    "fig1a": fig1a_section,
    "fig1bc": fig1bc_section,
    "fig2b": fig2b_section,
    "table3": table3_section,
    "memorization": memorization_section,
    "memorization-scores": memorization_scores_section,
    "theory": theory_section,
    "precision": precision_section,
}
"""What a bundle's ``sections`` may name, and the function that writes each."""
