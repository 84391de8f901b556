"""An empirical Rademacher-complexity estimate of a model family on a sample.

For each of T trials, draw signs σ ∈ {±1}ⁿ (a binary random-label corruption), train
the model to fit them with the run loop, and take the correlation (1/n) Σ σᵢ h(xᵢ) of
its ±1 predictions h with σ, i.e. 2·(training accuracy) − 1. The mean over trials is
the estimate: about 1 when the family can fit any labeling of the sample.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness import __version__
from harness.config import RunConfig
from harness.data import ImageDataset, prepare_data
from harness.results import check_writable, config_id, write_table
from harness.runner import resolve_config, resolve_device
from harness.schema import column, schema
from harness.training import RunProgress, Training, train_alone

RADEMACHER_SCHEMA = schema(
    column("run_id", pa.string(), "hash of the command's options"),
    column("model", pa.string(), "model plugin name"),
    column("dataset", pa.string(), "dataset plugin name"),
    column("n", pa.int64(), "sample size (the first n training examples)"),
    column("trials", pa.int64(), "number of sign vectors drawn"),
    column("estimate", pa.float64(), "mean over trials of (1/n) Σ σ_i h(x_i)"),
    column("estimate_std", pa.float64(), "standard deviation of the per-trial correlations"),
    column("fitted_trials", pa.int64(), "trials whose signs were fitted exactly"),
    column("epochs", pa.int64(), "epoch limit per trial"),
    column("batch_size", pa.int64(), "mini-batch size"),
    column("lr", pa.float64(), "initial learning rate"),
    column("lr_decay", pa.float64(), "learning-rate factor per epoch"),
    column("seed", pa.int64(), "seed of the sign vectors and the training"),
    column("wall_seconds", pa.float64(), "seconds for all trials"),
    column("started_at", pa.timestamp("us", tz="UTC"), "start time (UTC)"),
    column("device", pa.string(), "torch device"),
    column("harness_version", pa.string(), "harness version"),
)

TRIALS_SCHEMA = schema(
    column("run_id", pa.string(), "the estimate (joins rademacher.run_id)"),
    column("trial", pa.int64(), "trial number, from 0"),
    column("correlation", pa.float64(), "(1/n) Σ σ_i h(x_i) for this trial's signs"),
    column("train_acc", pa.float64(), "fraction of signs fitted"),
    column("epochs", pa.int64(), "epochs trained"),
    column("fit_epoch", pa.int64(), "first epoch fitting every sign, null if never"),
)


@dataclass(frozen=True, kw_only=True)
class RademacherConfig:
    """Everything that defines a Rademacher estimate; its hash is the ``run_id``.

    Attributes
    ----------
    model : str
        Model plugin name.
    dataset : str
        Dataset plugin name.
    n : int
        Sample size: the first n training examples.
    trials : int
        Number of sign vectors drawn.
    max_epochs : int
        Epoch limit per trial (the ``epochs`` column of ``rademacher``).
    batch_size : int
        Mini-batch size.
    lr : float or None
        Initial learning rate (None: the model's).
    lr_decay : float
        Learning-rate factor per epoch.
    seed : int
        Seed of the sign vectors and the training.
    """

    model: str
    dataset: str = "cifar10"
    n: int = 1000
    trials: int = 5
    max_epochs: int = 100
    batch_size: int = 128
    lr: float | None = None
    lr_decay: float = 0.95
    seed: int = 0

    @property
    def run_id(self) -> str:
        fields = asdict(self)
        fields["epochs"] = fields.pop("max_epochs")  # the key the stored estimates were hashed with
        return config_id(fields)


def signs(n: int, seed: int, trial: int) -> np.ndarray:
    """The trial's σ ∈ {±1}ⁿ."""
    return np.random.default_rng([seed, trial]).choice(np.array([-1, 1]), size=n)


def with_sign_labels(data: ImageDataset, sigma: np.ndarray) -> ImageDataset:
    """The sample relabelled with classes 0/1 for σ = -1/+1, and no test split."""
    return data.replace(
        y_train=(sigma > 0).astype(np.int64), num_classes=2, x_test=data.x_test[:0], y_test=data.y_test[:0]
    )


def estimate(
    config: RademacherConfig,
    results_dir: Path,
    *,
    data_root: Path | None = None,
    device: str = "auto",
    progress: RunProgress | None = None,
) -> tuple[dict, list[dict]]:
    """Run every trial, store the estimate and the trials, return both as rows."""
    run_config = resolve_config(
        RunConfig(
            model=config.model,
            dataset=config.dataset,
            train_size=config.n,
            max_epochs=config.max_epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            lr_decay=config.lr_decay,
            seed=config.seed,
        )
    )
    torch_device = resolve_device(device)
    check_writable(Path(results_dir))
    data = prepare_data(
        config.dataset, seed=config.seed, train_size=config.n, test_size=1, root=data_root, streaming=False
    )
    started_at, start = datetime.now(UTC), time.perf_counter()
    trials = []
    for trial in range(config.trials):
        sigma = signs(config.n, config.seed, trial)
        training = Training(run_config, with_sign_labels(data, sigma), [], torch_device)
        train_alone(training, progress or RunProgress())
        last = training.history[-1]
        fitted = next((h["epoch"] for h in training.history if h["train_acc"] == 1.0), None)
        trials.append(
            {
                "run_id": config.run_id,
                "trial": trial,
                "correlation": 2 * last["train_acc"] - 1,
                "train_acc": last["train_acc"],
                "epochs": last["epoch"],
                "fit_epoch": fitted,
            }
        )
    correlations = np.array([t["correlation"] for t in trials])
    summary = {
        **{k: getattr(config, k) for k in ("model", "dataset", "n", "trials", "batch_size", "lr_decay", "seed")},
        "epochs": config.max_epochs,
        "run_id": config.run_id,
        "lr": run_config.lr,
        "estimate": float(correlations.mean()),
        "estimate_std": float(correlations.std()),
        "fitted_trials": sum(t["fit_epoch"] is not None for t in trials),
        "wall_seconds": time.perf_counter() - start,
        "started_at": started_at,
        "device": str(torch_device),
        "harness_version": __version__,
    }
    write_table(results_dir, "rademacher_trials", config.run_id, trials, TRIALS_SCHEMA)
    write_table(results_dir, "rademacher", config.run_id, [summary], RADEMACHER_SCHEMA)
    return summary, trials
