"""The configuration of a training run: everything that defines its result, its id, and the ``runs``
columns it sets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from harness.results import config_id
from harness.schema import RUNS_SCHEMA

PRECISIONS = ("fp32", "tf32", "bf16")
"""fp32: float32 throughout (on CUDA too, where PyTorch lets cuDNN use TensorFloat-32 by default);
tf32: TensorFloat-32 matrix products and convolutions (CUDA; the CPU computes in float32); bf16:
autocast to bfloat16 matrix products and convolutions, with float32 weights, BatchNorm and loss."""

EXECUTION_OPTIONS = ("channels_last", "compile", "sync_bn")
"""Fields of :class:`RunConfig` that say how a run computes, not what: recorded in ``runs``, not hashed."""

REDRAWN_CORRUPTIONS = ("random_pixels", "gaussian")
"""Built-in corruptions whose draws changed with corruption scheme 2 (per example; ``runs.corruption_scheme``):
the ids of their runs hash the scheme, so that a stored run of the old draws is never taken for a new one.
Every other run keeps its id."""

DATA_LIMITS = ("train_size", "test_size")
"""Fields of :class:`RunConfig` that limit the data to its first examples; the ``runs`` columns of the
same names count the examples a run used."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything that defines a run's result; its hash is the ``run_id`` (the execution options
    ``channels_last``, ``compile`` and ``sync_bn`` are recorded, not hashed).

    Every field named like a ``runs`` column is stored in that column (:meth:`to_row`), but the data
    limits :data:`DATA_LIMITS`, whose columns count the examples used.
    """

    model: str
    corruption: str = "none"
    dataset: str = "cifar10"
    corrupt_prob: float = 1.0
    regularizers: tuple[str, ...] = ()
    seed: int = 0
    train_size: int | None = None
    """Train on the first ``train_size`` training examples (None: all)."""
    test_size: int | None = None
    """Evaluate on the first ``test_size`` test examples (None: all)."""
    max_epochs: int = 100
    """The epoch limit; training stops earlier at 100 % training accuracy or when a regularizer says so."""
    batch_size: int = 128
    lr: float | None = None
    lr_decay: float = 0.95
    momentum: float = 0.9
    subset_fraction: float | None = None
    """Train on a random fraction of the (first ``train_size``) training examples, drawn with
    ``subset_seed``; the others are evaluated too (for memorization estimates). None: all of them."""
    subset_seed: int | None = None
    precision: str = "fp32"
    """One of :data:`PRECISIONS`."""
    channels_last: bool = False
    """Channels-last memory layout of the model and its inputs (faster convolutions)."""
    compile: bool = False
    """``torch.compile`` the model for training and evaluation."""
    sync_bn: bool = False
    """BatchNorm statistics over the whole batch in a data-parallel run (SyncBatchNorm, CUDA only), as
    in one process; without it each process normalizes by the statistics of its shard."""

    @property
    def run_id(self) -> str:
        """16 hex digits of the hash of the fields that define the result, under the names and in the
        form that the first stored runs had, so that ids never change."""
        hashed = {name: value for name, value in asdict(self).items() if name not in EXECUTION_OPTIONS}
        hashed["epochs"] = hashed.pop("max_epochs")
        fraction, subset_seed = hashed.pop("subset_fraction"), hashed.pop("subset_seed")
        if fraction is not None:  # runs on the whole training set keep the ids they had before subsets
            hashed["subset"] = [fraction, subset_seed]
        if self.precision == "fp32":  # float32 runs keep the ids they had before precisions
            del hashed["precision"]
        if self.corruption in REDRAWN_CORRUPTIONS:
            hashed["corruption_scheme"] = 2
        return config_id(hashed)

    def to_row(self) -> dict:
        """The ``runs`` columns this configuration sets: ``run_id`` and every field named like a column."""
        row = {name: getattr(self, name) for name in CONFIG_COLUMNS}
        row["regularizers"] = list(self.regularizers)
        return {"run_id": self.run_id, **row}


CONFIG_COLUMNS = tuple(f.name for f in fields(RunConfig) if f.name in RUNS_SCHEMA.names and f.name not in DATA_LIMITS)
"""The ``runs`` columns a :class:`RunConfig` sets, in its fields' order."""
