"""Memorization scores (Feldman & Zhang 2020): how much training on an example raises the
chance that the model classifies it as its (possibly corrupted) label.

K models are trained on random subsets of the training set, each a run of the sweep
machinery (so an estimate resumes like a sweep, and ``jobs`` runs train at once); every run
records all training examples, trained on or left out (``examples`` table). The score of
example i is P(classified as its label | i trained on) - P(classified as its label | i left out).

A score says something only when the models memorize their training subsets, so the defaults
train each model until it fits its subset (at most ``max_epochs`` epochs, at a constant learning
rate that fits the built-in data sets), and an estimate whose models did not all fit says so
in one line (``Estimate.fit_warning``, stored with the scores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness.config import RunConfig
from harness.data import prepare_data_of
from harness.errors import HarnessError
from harness.examples import auroc
from harness.executors import ExecutorSettings
from harness.results import completed_rows, config_id, read_parquet, read_row, table_path, write_table
from harness.runner import resolve_config
from harness.schema import MEMORIZATION_SCHEMA
from harness.sweep import Sweep, SweepSummary, run_sweep


class MemorizationError(HarnessError):
    """An estimate cannot be made (bad settings, or some of its runs failed)."""


@dataclass(frozen=True, kw_only=True)
class MemorizationConfig:
    """Everything that defines an estimate; its hash is the estimate's ``run_id``.

    The training defaults (batch 64, learning rate 0.05 held constant, up to 100 epochs, each
    model stopping once it fits its subset) fit the built-in data sets' subsets with MLP 1x512;
    the ``harness run`` defaults (batch 128, the model's rate, decay 0.95) often do not.
    """

    model: str
    dataset: str = "cifar10"
    corruption: str = "none"
    corrupt_prob: float = 1.0
    seed: int = 0
    train_size: int | None = None
    test_size: int | None = None
    num_models: int = 100
    subset_fraction: float = 0.7
    max_epochs: int = 100
    batch_size: int = 64
    lr: float | None = 0.05
    lr_decay: float = 1.0

    @property
    def run_id(self) -> str:
        fields = asdict(self)
        fields["models"] = fields.pop("num_models")  # the keys the stored estimates were hashed with
        fields["epochs"] = fields.pop("max_epochs")
        return config_id(fields)

    def run_configs(self) -> list[RunConfig]:
        """The K runs: same data, corruption and seed; subset k of the training set for model k."""
        if self.num_models < 2:
            raise MemorizationError(f"--num-models must be at least 2, got {self.num_models}")
        if not 0.0 < self.subset_fraction < 1.0:
            raise MemorizationError(f"--subset-fraction must be in (0, 1), got {self.subset_fraction}")
        shared = {k: v for k, v in asdict(self).items() if k not in ("num_models", "subset_fraction")}
        return [
            resolve_config(RunConfig(**shared, subset_fraction=self.subset_fraction, subset_seed=k))
            for k in range(self.num_models)
        ]


@dataclass
class Estimate:
    """A finished estimate: its table, where it is stored, and how good it is."""

    run_id: str
    table: pa.Table
    path: Path
    seconds_per_model: float
    corrupted_auroc: float | None
    split_half_spearman: float | None
    models_fitted: int
    mean_train_acc: float
    fit_warning: str | None


def scores(trained: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """Per example, from (models, examples) bool arrays: ``score``, ``score_stderr`` (NaN unless the
    example was both trained on and left out), ``models_in`` and ``models_out``."""
    models_in, models_out = trained.sum(0), (~trained).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in = (correct & trained).sum(0) / models_in
        p_out = (correct & ~trained).sum(0) / models_out
        stderr = np.sqrt(p_in * (1 - p_in) / models_in + p_out * (1 - p_out) / models_out)
    return {"score": p_in - p_out, "score_stderr": stderr, "models_in": models_in, "models_out": models_out}


def split_half_spearman(trained: np.ndarray, correct: np.ndarray) -> float | None:
    """Spearman correlation of the scores from the even-numbered and the odd-numbered models."""
    from scipy.stats import spearmanr

    halves = [scores(trained[part::2], correct[part::2])["score"] for part in (0, 1)]
    both = np.isfinite(halves[0]) & np.isfinite(halves[1])
    if both.sum() < 3:
        return None
    return float(spearmanr(halves[0][both], halves[1][both]).statistic)


def load_outcomes(results_dir: Path, run_ids: list[str]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The first run's examples (by index), and (models, examples) arrays: trained on, and
    classified as its label at the end (final margin > 0)."""
    trained, correct, first = [], [], None
    for run_id in run_ids:
        path = table_path(results_dir, "examples", run_id)
        table = read_parquet(path)
        if table is None:
            raise MemorizationError(
                f"the examples of model run {run_id} are missing or unreadable ({path}): "
                "delete its runs file and run the estimate again"
            )
        table = table.sort_by("index")
        first = first if first is not None else table
        trained.append(table.column("trained").to_numpy(zero_copy_only=False))
        margin = table.column("final_margin").to_numpy(zero_copy_only=False)
        correct.append(np.nan_to_num(margin, nan=-np.inf) > 0)
    return first, np.array(trained, dtype=bool), np.array(correct, dtype=bool)


def fit_warning(config: MemorizationConfig, train_accs: list[float]) -> str | None:
    """One line when some of the models did not fit their training subsets, saying what to raise."""
    unfitted = sum(acc < 1.0 for acc in train_accs)
    if not unfitted:
        return None
    lr = "the model's" if config.lr is None else f"{config.lr:g}"
    return (
        f"{unfitted} of {len(train_accs)} models did not fit their training subsets (mean training accuracy "
        f"{100 * np.mean(train_accs):.1f} %), so the scores say little: raise --max-epochs (now {config.max_epochs}) "
        f"or --lr (now {lr})"
    )


def estimate(
    config: MemorizationConfig,
    settings: ExecutorSettings,
    *,
    executor: str = "local",
    executor_options: dict | None = None,
    pack: int = 1,
    on_result=lambda result: None,
) -> Estimate:
    """Train the K models (completed ones are reused) as a sweep on ``executor`` (local worker
    processes, submitit or Ray, made with ``settings``; ``pack`` models at a time as one vectorized
    model), score every training example and store the ``memorization`` table. Raises
    KeyboardInterrupt when the runs were interrupted (run again to resume) and MemorizationError when
    some failed. The data are loaded once first, so that missing data is one error rather than one
    per model."""
    results_dir = settings.results_dir
    configs = config.run_configs()
    if len(completed_rows(results_dir, "runs", [c.run_id for c in configs])) < len(configs):
        prepare_data_of(config, settings.data_root)
    sweep = Sweep(configs=configs, executor=executor, executor_options=executor_options or {}, pack=pack)
    summary: SweepSummary = run_sweep(sweep, settings, on_result=on_result)
    if summary.interrupted:
        raise KeyboardInterrupt
    if summary.failed:
        first = summary.failed[0]
        raise MemorizationError(
            f"{len(summary.failed)} of {len(configs)} runs failed, e.g. {first.config.run_id}: {first.error}"
        )
    examples, trained, correct = load_outcomes(results_dir, [c.run_id for c in configs])
    score = scores(trained, correct)
    train_accs = [read_row(results_dir, "runs", c.run_id)["train_acc"] for c in configs]
    fit = {
        "models_fitted": sum(acc == 1.0 for acc in train_accs),
        "mean_train_acc": float(np.mean(train_accs)),
        "fit_warning": fit_warning(config, train_accs),
    }
    run_id = config.run_id
    columns = {
        "run_id": [run_id] * examples.num_rows,
        **score,
        **{name: [value] * examples.num_rows for name, value in fit.items()},
        **{name: examples.column(name).to_pylist() for name in ("index", "label", "true_label", "corrupted")},
    }
    arrays = [
        pa.array(columns[field.name], field.type, from_pandas=True) for field in MEMORIZATION_SCHEMA
    ]  # NaN -> null
    table = pa.Table.from_arrays(arrays, schema=MEMORIZATION_SCHEMA)
    path = write_table(results_dir, "memorization", run_id, table, MEMORIZATION_SCHEMA)
    corrupted = examples.column("corrupted").to_numpy(zero_copy_only=False)
    defined = np.isfinite(score["score"])
    seconds = [r.row["wall_seconds"] for r in summary.results if r.row and r.row.get("wall_seconds") is not None]
    return Estimate(
        run_id,
        table,
        path,
        seconds_per_model=float(np.mean(seconds)) if seconds else float("nan"),
        corrupted_auroc=auroc(score["score"][defined], corrupted[defined].astype(bool)),
        split_half_spearman=split_half_spearman(trained, correct),
        **fit,
    )
