"""Table 3: exact kernel regression without regularization, next to the paper's numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.reports.store import write_markdown_and_csv
from harness.results import read_table


@dataclass(frozen=True)
class PaperKernelRow:
    """One row of the paper's Table 3 (Section 5): test error in %, and the norm where stated."""

    dataset: str
    features: str
    label: str
    test_error: float
    norm: float | None


PAPER_TABLE3 = (
    PaperKernelRow("mnist", "none", "MNIST, no preprocessing", 1.2, 220.0),
    PaperKernelRow("mnist", "gabor", "MNIST, Gabor wavelet transform", 0.6, 390.0),
    PaperKernelRow("cifar10", "none", "CIFAR-10, Gaussian kernel on pixels", 46.0, None),
    PaperKernelRow("cifar10", "random_conv", "CIFAR-10, random conv-net (32,000 filters)", 17.0, None),
)

COLUMNS = (
    "paper row",
    "kernel",
    "n train",
    "n test",
    "feature options",
    "test err %",
    "paper err %",
    "Δ err",
    "norm",
    "paper norm",
    "γ",
    "dtype",
    "device",
    "seconds",
    "run id",
)


def load_kernel_runs(results_dir: Path) -> list[dict]:
    """Completed kernel runs with true labels and no ridge (the paper's setting)."""
    table = read_table(results_dir, "kernel_runs")
    rows = table.to_pylist() if table is not None else []
    return [r for r in rows if r["status"] == "completed" and r["corruption"] == "none" and r["ridge"] == 0]


def build(runs: list[dict]) -> tuple[list[dict], list[str]]:
    """One line per stored run matching a paper row (largest n first), and the paper rows with no run."""
    lines, missing = [], []
    for paper in PAPER_TABLE3:
        matches = [r for r in runs if r["dataset"] == paper.dataset and r["features"] == paper.features]
        if not matches:
            missing.append(paper.label)
        for run in sorted(
            matches, key=lambda r: (-r["train_size"], sorted(json.loads(r["feature_options"] or "{}").items()))
        ):
            ours = 100 * run["test_error"]
            lines.append(
                {
                    "paper row": paper.label,
                    "kernel": run["kernel"],
                    "n train": run["train_size"],
                    "n test": run["test_size"],
                    "feature options": run["feature_options"] or "{}",
                    "test err %": ours,
                    "paper err %": paper.test_error,
                    "Δ err": ours - paper.test_error,
                    "norm": run["rkhs_norm"],
                    "paper norm": paper.norm,
                    "γ": run["bandwidth"],
                    "dtype": run["dtype"],
                    "device": run["device"],
                    "seconds": run["wall_seconds"],
                    "run id": run["run_id"],
                }
            )
    return lines, missing


def cell(line: dict, column: str) -> str:
    value = line[column]
    if value is None:
        return "-"
    if column == "Δ err":
        return f"{value:+.2f}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write(lines: list[dict], out: Path) -> list[Path]:
    """table3.md and table3.csv under ``out``."""
    text = [[cell(line, c) for c in COLUMNS] for line in lines]
    title = "Table 3 (exact kernel regression): ours vs. the paper"
    return write_markdown_and_csv(out, "table3", title, list(COLUMNS), text, lines)
