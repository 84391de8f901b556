"""Reading stored runs for reports: selection, seed averages and missing-run notes."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from harness.regularizers import parse_spec
from harness.results import read_parquet, read_table, table_path


def load_runs(results_dir: Path, dataset: str) -> list[dict]:
    """Completed runs of ``dataset`` in the results folder."""
    table = read_table(results_dir, "runs")
    return completed(table.to_pylist() if table is not None else [], dataset)


def completed(runs: list[dict], dataset: str) -> list[dict]:
    """The completed runs of ``dataset`` among ``runs``."""
    return [r for r in runs if r["status"] == "completed" and r["dataset"] == dataset]


def load_epochs(results_dir: Path, run_ids: list[str]) -> dict[str, list[dict]]:
    """The epoch rows of each run, in epoch order (only these runs' files are read)."""
    by_run = {}
    for run_id in run_ids:
        stored = read_parquet(table_path(results_dir, "epochs", run_id))
        rows = stored.to_pylist() if stored is not None else []
        by_run[run_id] = sorted(rows, key=lambda r: r["epoch"])
    return by_run


def regularizer_names(run: dict) -> frozenset[str]:
    return frozenset(parse_spec(spec)[0] for spec in run["regularizers"])


def select(
    runs: list[dict],
    model: str,
    corruption: str,
    corrupt_prob: float | None = None,
    regularizers: frozenset[str] = frozenset(),
) -> list[dict]:
    """Matching runs (any seed) of the largest training size among the matches."""
    return largest(
        [
            r
            for r in runs
            if r["model"] == model
            and r["corruption"] == corruption
            and regularizer_names(r) == regularizers
            and (corrupt_prob is None or abs(r["corrupt_prob"] - corrupt_prob) < 1e-9)
        ]
    )


def largest(runs: list[dict]) -> list[dict]:
    """The runs of the largest training size among ``runs``."""
    size = max((r["train_size"] for r in runs), default=None)
    return [r for r in runs if r["train_size"] == size]


def average(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return mean(values) if values else None


def percent(value: float | None) -> float | None:
    """A fraction in %; None stays None."""
    return None if value is None else 100 * value


def settings(runs: list[dict]) -> str:
    """The settings the runs were made with, e.g. ``train 500, test 1000, ≤200 epochs, batch 32, lr decay 1.0,
    seed 0/1, cpu`` (several values are joined by ``/``; results are means over seeds)."""

    def values(key):
        return "/".join(str(v) for v in sorted({r[key] for r in runs}))

    return (
        f"train {values('train_size')}, test {values('test_size')}, ≤{values('max_epochs')} epochs, "
        f"batch {values('batch_size')}, lr decay {values('lr_decay')}, seed {values('seed')}, {values('device')}"
    )


def write_markdown_and_csv(
    out: Path, name: str, title: str, header: list[str], lines: list[list[str]], rows: list[dict]
) -> list[Path]:
    """``NAME.md`` (a ``# title``, then a table of ``header`` and the text ``lines``) and ``NAME.csv``
    (``rows``, values as they are) under ``out``, created when missing."""
    out.mkdir(parents=True, exist_ok=True)
    markdown, comma = out / f"{name}.md", out / f"{name}.csv"
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(line) + " |" for line in lines]
    markdown.write_text(f"# {title}\n\n" + "\n".join(table) + "\n")
    with comma.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else header)
        writer.writeheader()
        writer.writerows(rows)
    return [markdown, comma]


@dataclass
class Missing:
    """Runs a report needed but did not find, and the sweep that makes them."""

    sweep: str
    runs: list[str] = field(default_factory=list)

    def add(self, description: str) -> None:
        self.runs.append(description)

    def message(self) -> str:
        listing = "; ".join(self.runs)
        return (
            f"{len(self.runs)} run(s) missing: {listing}. "
            f"Make them with `harness sweep sweeps/{self.sweep}.toml` (or sweeps/{self.sweep}-cpu.toml)."
        )
