"""The ``tensorboard`` logger: one TensorBoard event folder per run, ``RESULTS/tensorboard/<run_id>``
(``DIR/<run_id>`` with ``--log tensorboard=DIR``).

Every epoch writes the scalars ``train/loss``, ``train/acc``, ``test/loss``, ``test/acc``,
``holdout/loss``, ``holdout/acc`` (with an early-stopping holdout) and ``lr``, at the epoch number as
the step; the end of the run writes its configuration as hyperparameters with its final metrics
(``final/*``). ``tensorboard --logdir RESULTS/tensorboard`` shows a sweep's runs side by side. A run
resumed from a checkpoint purges what the interrupted one wrote after that checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from harness import hookimpl
from harness.config import CONFIG_COLUMNS

EPOCH_SCALARS = {
    "train_loss": "train/loss",
    "train_acc": "train/acc",
    "train_top5": "train/top5",
    "test_loss": "test/loss",
    "test_acc": "test/acc",
    "test_top5": "test/top5",
    "holdout_loss": "holdout/loss",
    "holdout_acc": "holdout/acc",
    "holdout_top5": "holdout/top5",
    "lr": "lr",
}
"""``epochs`` column -> scalar tag."""
HPARAMS = (*CONFIG_COLUMNS, "train_size", "test_size", "status")
"""``runs`` columns written as hyperparameters."""
FINAL_METRICS = (
    "train_acc",
    "test_acc",
    "train_top5",
    "test_top5",
    "train_loss",
    "test_loss",
    "best_test_acc",
    "best_test_top5",
    "fit_epoch",
    "epochs",
)
"""``runs`` columns written as ``final/<column>``, the hyperparameters' metrics."""


class TensorBoardLogger:
    """Writes one run's events; ``folder`` holds one event folder per run (None: ``RESULTS/tensorboard``)."""

    def __init__(self, folder: str | None):
        self.folder = None if folder is None else Path(folder)
        self.writer: SummaryWriter | None = None

    @hookimpl
    def run_started(self, run_id: str, results_dir: Path, resumed_from_epoch: int) -> None:
        folder = (self.folder or results_dir / "tensorboard") / run_id
        # Steps from the first one not restored on are dropped: what an interrupted (or forced) earlier run wrote.
        self.writer = SummaryWriter(str(folder), purge_step=resumed_from_epoch + 1)

    @hookimpl
    def epoch_finished(self, row: dict) -> None:
        for column, tag in EPOCH_SCALARS.items():
            if row[column] is not None:
                self.writer.add_scalar(tag, row[column], row["epoch"])
        self.writer.flush()

    @hookimpl
    def run_finished(self, row: dict) -> None:
        metrics = {f"final/{column}": row[column] for column in FINAL_METRICS if row[column] is not None}
        params = {column: hparam(row[column]) for column in HPARAMS}
        for summary in hparams(params, metrics):
            self.writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, row["epochs"])
        self.writer.close()


def hparam(value):
    """A hyperparameter value TensorBoard takes: lists as comma-separated text (``none`` when empty)."""
    if isinstance(value, list | tuple):
        return ",".join(value) or "none"
    return value
