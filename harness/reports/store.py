"""Reading stored runs for reports: selection, seed averages and missing-run notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from harness.regularizers import parse_spec
from harness.results import read_table


def load_runs(results_dir: Path, dataset: str) -> list[dict]:
    """Completed runs of ``dataset`` in the results folder."""
    table = read_table(results_dir, "runs")
    rows = table.to_pylist() if table is not None else []
    return [r for r in rows if r["status"] == "completed" and r["dataset"] == dataset]


def load_epochs(results_dir: Path, run_ids: list[str]) -> dict[str, list[dict]]:
    """The epoch rows of each run, in epoch order."""
    table = read_table(results_dir, "epochs")
    wanted = set(run_ids)
    by_run: dict[str, list[dict]] = {run_id: [] for run_id in run_ids}
    for row in table.to_pylist() if table is not None else []:
        if row["run_id"] in wanted:
            by_run[row["run_id"]].append(row)
    return {run_id: sorted(rows, key=lambda r: r["epoch"]) for run_id, rows in by_run.items()}


def regularizer_names(run: dict) -> frozenset[str]:
    return frozenset(parse_spec(spec)[0] for spec in run["regularizers"])


def select(runs: list[dict], model: str, corruption: str, corrupt_prob: float | None = None,
           regularizers: frozenset[str] = frozenset()) -> list[dict]:
    """Matching runs (any seed) of the largest training size among the matches."""
    matches = [
        r for r in runs
        if r["model"] == model and r["corruption"] == corruption and regularizer_names(r) == regularizers
        and (corrupt_prob is None or abs(r["corrupt_prob"] - corrupt_prob) < 1e-9)
    ]
    largest = max((r["train_size"] for r in matches), default=None)
    return [r for r in matches if r["train_size"] == largest]


def average(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return mean(values) if values else None


def settings(runs: list[dict]) -> str:
    """The settings the runs were made with, e.g. ``train 500, test 1000, ≤200 epochs, batch 32, lr decay 1.0,
    seed 0/1, cpu`` (several values are joined by ``/``; results are means over seeds)."""
    def values(key):
        return "/".join(str(v) for v in sorted({r[key] for r in runs}))

    return (f"train {values('train_size')}, test {values('test_size')}, ≤{values('max_epochs')} epochs, "
            f"batch {values('batch_size')}, lr decay {values('lr_decay')}, seed {values('seed')}, {values('device')}")


@dataclass
class Missing:
    """Runs a report needed but did not find, and the sweep that makes them."""

    sweep: str
    runs: list[str] = field(default_factory=list)

    def add(self, description: str) -> None:
        self.runs.append(description)

    def message(self) -> str:
        listing = "; ".join(self.runs)
        return (f"{len(self.runs)} run(s) missing: {listing}. "
                f"Make them with `harness sweep sweeps/{self.sweep}.toml` (or sweeps/{self.sweep}-cpu.toml).")
