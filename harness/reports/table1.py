"""Table 1: train / test accuracy of the CIFAR-10 models, next to the paper's numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.reports.store import Missing, average, percent, select, settings, write_markdown_and_csv

CROP, WD = "random_crop", "weight_decay"


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1 (accuracies in %)."""

    model: str
    label: str
    random_crop: bool
    weight_decay: bool
    random_labels: bool
    train: float
    test: float

    @property
    def regularizers(self) -> frozenset[str]:
        return frozenset(name for name, on in ((CROP, self.random_crop), (WD, self.weight_decay)) if on)

    def describe(self) -> str:
        regs = "+".join(sorted(self.regularizers)) or "no reg."
        return f"{self.model} {'random labels' if self.random_labels else 'true labels'} {regs}"


def rows(model, label, cells):
    return [PaperRow(model, label, *cell) for cell in cells]


PAPER_TABLE1 = (
    rows(
        "inception",
        "Inception",
        [
            (True, True, False, 100.0, 89.05),
            (True, False, False, 100.0, 89.31),
            (False, True, False, 100.0, 86.03),
            (False, False, False, 100.0, 85.75),
            (False, False, True, 100.0, 9.78),
        ],
    )
    + rows(
        "inception_nobn",
        "Inception w/o BatchNorm",
        [(False, True, False, 100.0, 83.00), (False, False, False, 100.0, 82.00), (False, False, True, 100.0, 10.12)],
    )
    + rows(
        "alexnet",
        "AlexNet",
        [
            (True, True, False, 99.90, 81.22),
            (True, False, False, 99.82, 79.66),
            (False, True, False, 100.0, 77.36),
            (False, False, False, 100.0, 76.07),
            (False, False, True, 99.82, 9.86),
        ],
    )
    + rows(
        "mlp_3x512",
        "MLP 3x512",
        [(False, True, False, 100.0, 53.35), (False, False, False, 100.0, 52.39), (False, False, True, 100.0, 10.48)],
    )
    + rows(
        "mlp_1x512",
        "MLP 1x512",
        [(False, True, False, 99.80, 50.39), (False, False, False, 100.0, 50.51), (False, False, True, 99.34, 10.61)],
    )
)
"""The paper's Table 1 (spec section 5.1); random-labels rows have random_labels=True."""

COLUMNS = (
    "model",
    "params",
    "random crop",
    "weight decay",
    "labels",
    "train %",
    "paper train %",
    "Δ train",
    "test %",
    "paper test %",
    "Δ test",
    "seeds",
    "fit epoch",
    "settings",
)


def paper_runs(runs: list[dict], paper: PaperRow) -> list[dict]:
    """The runs behind one row of the table: its model, labels and regularizers, any seed, largest size."""
    corruption = "random_labels" if paper.random_labels else "none"
    return select(runs, paper.model, corruption, 1.0 if paper.random_labels else None, paper.regularizers)


def build(runs: list[dict], *, papers: Sequence[PaperRow] = PAPER_TABLE1) -> tuple[list[dict], Missing]:
    """One output row per paper row of ``papers`` (all of Table 1 by default): our seed-averaged accuracies
    beside the paper's; the rows without a run are missing."""
    missing = Missing("table1")
    table = []
    for paper in papers:
        matches = paper_runs(runs, paper)
        if not matches:
            missing.add(paper.describe())
        train, test = percent(average(matches, "train_acc")), percent(average(matches, "test_acc"))
        table.append(
            {
                "model": paper.label,
                "params": matches[0]["param_count"] if matches else None,
                "random crop": "yes" if paper.random_crop else "no",
                "weight decay": "yes" if paper.weight_decay else "no",
                "labels": "random" if paper.random_labels else "true",
                "train %": train,
                "paper train %": paper.train,
                "Δ train": None if train is None else train - paper.train,
                "test %": test,
                "paper test %": paper.test,
                "Δ test": None if test is None else test - paper.test,
                "seeds": len(matches),
                "fit epoch": average(matches, "fit_epoch"),
                "settings": settings(matches) if matches else "not run",
            }
        )
    return table, missing


def format_cell(column: str, value) -> str:
    if value is None:
        return "–"
    if column.startswith("Δ"):
        return f"{value:+.2f}"
    if column == "fit epoch":
        return f"{value:.0f}"
    if column == "params":
        return f"{value:,}"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write(table: list[dict], out: Path) -> list[Path]:
    """``table1.md`` and ``table1.csv`` under ``out``."""
    lines = [[format_cell(c, row[c]) for c in COLUMNS] for row in table]
    return write_markdown_and_csv(out, "table1", "Table 1 (CIFAR-10): ours vs. the paper", list(COLUMNS), lines, table)
