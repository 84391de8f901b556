"""Table 2: top-1 and top-5 train / test accuracy of Inception V3 on ImageNet, next to the paper's numbers.

A stored run stands beside a row of the paper's table by its labels (corruption ``none``: true;
``random_labels`` with p = 1: random) and by which of the table's regularizers it used, whatever
their values: ``augment`` or ``random_crop`` is augmentation, ``dropout`` dropout and
``weight_decay`` weight decay. A run with any other regularizer stands beside no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.reports.store import (
    Missing,
    average,
    largest,
    percent,
    regularizer_names,
    settings,
    write_markdown_and_csv,
)

PLUGIN, DATASET = "inception_v3", "imagenet"
"""The model and data set of the paper's Table 2: the report's defaults."""

AUG, DROPOUT, WD = "aug", "dropout", "wd"

KIND_OF = {"augment": AUG, "random_crop": AUG, "dropout": DROPOUT, "weight_decay": WD}
"""The column of the table that each regularizer counts for."""


@dataclass(frozen=True)
class Measure:
    """One accuracy of the table: its name, the ``runs`` column of its final value, and that of its best
    value over the epochs (None: the table shows no best value)."""

    name: str
    final: str
    best: str | None = None


MEASURES = (
    Measure("top-1 train", "train_acc"),
    Measure("top-5 train", "train_top5"),
    Measure("top-1 test", "test_acc", "best_test_acc"),
    Measure("top-5 test", "test_top5", "best_test_top5"),
)


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 2: labels, regularizers, and accuracies in % (top-1 train, top-5
    train, top-1 test, top-5 test), with the best test accuracies seen during training (top-1, top-5)
    where the paper gives them in parentheses."""

    random_labels: bool
    aug: bool
    dropout: bool
    wd: bool
    accuracy: tuple[float, float, float, float]
    best_test: tuple[float, float] | None = None

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(kind for kind, on in ((AUG, self.aug), (DROPOUT, self.dropout), (WD, self.wd)) if on)

    def percent(self) -> dict[str, float]:
        """The paper's numbers by the ``runs`` column each stands beside."""
        values = dict(zip((measure.final for measure in MEASURES), self.accuracy))
        values.update(zip(("best_test_acc", "best_test_top5"), self.best_test or ()))
        return values

    def describe(self) -> str:
        regularizers = f"with {'+'.join(sorted(self.kinds))}" if self.kinds else "without regularizers"
        return f"{'random labels' if self.random_labels else 'true labels'} {regularizers}"


# Typed from paper_spec.md section 5.2 (the paper's Table 2): the numbers in parentheses there are
# best_test here.
PAPER_TABLE2 = (
    PaperRow(False, True, True, True, (92.18, 99.21, 77.84, 93.92)),
    PaperRow(False, True, False, False, (92.33, 99.17, 72.95, 90.43)),
    PaperRow(False, False, False, True, (90.60, 100.0, 67.18, 86.44), (72.57, 90.48)),
    PaperRow(False, False, False, False, (99.53, 100.0, 59.80, 80.38), (63.16, 84.49)),
    PaperRow(True, False, True, True, (91.18, 97.95, 0.09, 0.49)),
    PaperRow(True, False, False, True, (87.81, 96.15, 0.12, 0.50)),
    PaperRow(True, False, False, False, (95.20, 99.14, 0.11, 0.56)),
)
"""The paper's Table 2 (Inception V3 on ImageNet), in its order."""

SETTINGS = ("labels", AUG, DROPOUT, WD)

SHOWN = (*SETTINGS, *(f"{source}{measure.name} %" for measure in MEASURES for source in ("", "paper ")))
"""The columns of :func:`shown`: the settings, then ours and the paper's value of each measure."""


def kinds(run: dict) -> frozenset[str] | None:
    """The table's regularizer columns a run counts for; None when it used another regularizer."""
    names = regularizer_names(run)
    return frozenset(KIND_OF[name] for name in names) if names <= KIND_OF.keys() else None


def paper_runs(runs: list[dict], paper: PaperRow, *, plugin: str = PLUGIN) -> list[dict]:
    """The runs of ``plugin`` behind one row of the table: its labels and regularizers, any seed, largest size."""
    corruption = "random_labels" if paper.random_labels else "none"
    return largest(
        [
            r
            for r in runs
            if r["model"] == plugin
            and r["corruption"] == corruption
            and (not paper.random_labels or abs(r["corrupt_prob"] - 1.0) < 1e-9)
            and kinds(r) == paper.kinds
        ]
    )


def build(runs: list[dict], *, plugin: str = PLUGIN) -> tuple[list[dict], Missing]:
    """One row per paper row: the seed-averaged accuracies (%) of ``plugin``'s matching runs beside the
    paper's; ``runs`` are the completed runs of one data set."""
    missing = Missing("table2")
    table = []
    for paper in PAPER_TABLE2:
        matches = paper_runs(runs, paper, plugin=plugin)
        if not matches:
            missing.add(f"{plugin} {paper.describe()}")
        paper_percent = paper.percent()
        row = {"labels": "random" if paper.random_labels else "true"}
        row.update((kind, "yes" if kind in paper.kinds else "no") for kind in (AUG, DROPOUT, WD))
        for measure in MEASURES:
            row[f"{measure.name} %"] = percent(average(matches, measure.final))
            if measure.best:
                row[f"best {measure.name} %"] = percent(average(matches, measure.best))
            row[f"paper {measure.name} %"] = paper_percent[measure.final]
            if measure.best:
                row[f"paper best {measure.name} %"] = paper_percent.get(measure.best)
        row["seeds"] = len(matches)
        row["settings"] = settings(matches) if matches else "not run"
        table.append(row)
    return table, missing


def final_and_best(final: float | None, best: float | None) -> str:
    """``59.80 (63.16)``: a final accuracy and, in parentheses, the best one when there is one."""
    if final is None:
        return "–"
    return f"{final:.2f}" + ("" if best is None else f" ({best:.2f})")


def shown(row: dict) -> dict[str, str]:
    """A built row as text: its settings, then ours and the paper's value of every measure, each with
    its best test accuracy in parentheses."""
    cells = {name: row[name] for name in SETTINGS}
    for measure in MEASURES:
        for source in ("", "paper "):
            best = row.get(f"{source}best {measure.name} %")
            cells[f"{source}{measure.name} %"] = final_and_best(row[f"{source}{measure.name} %"], best)
    return cells


def write(table: list[dict], out: Path, *, title: str) -> list[Path]:
    """``table2.md`` (as :func:`shown`, headed ``title``) and ``table2.csv`` (every column) under ``out``."""
    lines = [list(shown(row).values()) for row in table]
    return write_markdown_and_csv(out, "table2", title, list(SHOWN), lines, table)
