"""Parquet schemas of the ``runs``, ``epochs``, ``examples`` and ``memorization`` tables, with a
description per column, and the schema history of every results table.

Every file a table writes records its table's schema version (:data:`SCHEMA_VERSION_KEY` in its
metadata). :data:`SCHEMA_HISTORY` says, per table, which columns each version added and what
``harness results --upgrade`` writes into those columns of files from before them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION_KEY = "harness.schema_version"
"""Key of a table file's schema metadata (and so of its Parquet key-value metadata) that holds its
schema version, as decimal text. Files written before versions were recorded have none."""


def column(name: str, type_: pa.DataType, description: str) -> pa.Field:
    return pa.field(name, type_, metadata={"description": description})


def schema(*fields: pa.Field | tuple[str, pa.DataType, str]) -> pa.Schema:
    """A schema of fields, given as fields or as (name, type, description) tuples."""
    return pa.schema([f if isinstance(f, pa.Field) else column(*f) for f in fields])


# Parts of the column descriptions: what the training accuracies are measured on, and top-5.
TRAIN_SET = (
    "the whole (corrupted) training set trained on (less any early-stopping holdout or left-out subset), "
    "in eval mode, without augmentation"
)
TOP5 = "the label among the 5 largest logits; 1.0 with fewer than 5 classes"

RUNS_SCHEMA = schema(
    column("run_id", pa.string(), "16-hex-digit hash of the canonical run configuration (same config, same id)"),
    column("status", pa.string(), "completed, interrupted (Ctrl-C or SIGTERM) or failed"),
    column("error", pa.string(), "error message when status is failed, else null"),
    column("model", pa.string(), "model plugin name"),
    column("dataset", pa.string(), "dataset plugin name"),
    column("corruption", pa.string(), "corruption plugin name (none = true labels)"),
    column("corrupt_prob", pa.float64(), "corruption probability p (used by random_labels)"),
    column(
        "corruption_scheme",
        pa.int64(),
        "version of how the built-in corruptions draw: 1 = random_pixels and gaussian drawn over a whole split "
        "at once; 2 = drawn per example from (seed, split, example index), identical for in-memory and streamed "
        "data sets; random_labels and shuffled_pixels draw the same under both",
    ),
    column("regularizers", pa.list_(pa.string()), "regularizer specs NAME[=VALUE], in the order given"),
    column("seed", pa.int64(), "seed of the corruption, model initialisation and batch order"),
    column("train_size", pa.int64(), "training examples used (before any early-stopping holdout)"),
    column("test_size", pa.int64(), "test examples used"),
    column(
        "subset_fraction", pa.float64(), "fraction of the training examples trained on (a random subset), null: all"
    ),
    column("subset_seed", pa.int64(), "seed of the random training subset, null without one"),
    column("epochs", pa.int64(), "epochs completed"),
    column("max_epochs", pa.int64(), "epoch limit asked for"),
    column("steps", pa.int64(), "SGD steps completed"),
    column("batch_size", pa.int64(), "mini-batch size"),
    column("lr", pa.float64(), "initial learning rate"),
    column("lr_decay", pa.float64(), "learning-rate factor applied after every epoch"),
    column("momentum", pa.float64(), "SGD momentum"),
    column("param_count", pa.int64(), "number of trainable parameters"),
    column("train_acc", pa.float64(), f"final accuracy on {TRAIN_SET}, fraction in [0, 1]"),
    column("test_acc", pa.float64(), "final test accuracy, fraction in [0, 1]"),
    column("train_top5", pa.float64(), f"final top-5 accuracy on {TRAIN_SET} ({TOP5})"),
    column("test_top5", pa.float64(), f"final test top-5 accuracy ({TOP5})"),
    column("train_loss", pa.float64(), "final mean cross-entropy on the training set"),
    column("test_loss", pa.float64(), "final mean cross-entropy on the test set"),
    column("fit_epoch", pa.int64(), "first epoch with 100 % training accuracy, null if never"),
    column("fit_step", pa.int64(), "SGD steps done by the end of fit_epoch, null if never"),
    column("best_test_acc", pa.float64(), "best test accuracy over all epochs"),
    column("best_test_top5", pa.float64(), "best test top-5 accuracy over all epochs"),
    column("stopped_early", pa.bool_(), "true when a regularizer (early_stopping) ended training"),
    column(
        "wall_seconds",
        pa.float64(),
        "seconds of training and evaluation, summed over every session that trained the run (the last epoch's "
        "epochs.wall_seconds)",
    ),
    column(
        "started_at",
        pa.timestamp("us", tz="UTC"),
        "start time (UTC) of the session that stored this row: a resumed run (resumed_from_epoch > 0) began "
        "earlier, in a session that wall_seconds also counts",
    ),
    column("device", pa.string(), "torch device the run used"),
    column("harness_version", pa.string(), "harness version"),
    column("torch_version", pa.string(), "torch version"),
    column("model_library", pa.string(), "library that built the model (torchvision, timm), null for a model plugin"),
    column("model_library_version", pa.string(), "version of that library, null for a model plugin"),
    column(
        "resumed_from_epoch", pa.int64(), "epochs restored from a checkpoint when the run started (0: from scratch)"
    ),
    column(
        "logger_errors",
        pa.int64(),
        "errors raised by the run's loggers (--log); each logger that raised was named in "
        "a warning and left out for the rest of the run, which went on",
    ),
    column("pack_size", pa.int64(), "runs trained together as one vectorized model when this run started (1: alone)"),
    column(
        "precision", pa.string(), "fp32, tf32 or bf16 (autocast: bfloat16 products, float32 weights, BatchNorm, loss)"
    ),
    column("channels_last", pa.bool_(), "channels-last memory layout of the model and its inputs"),
    column("compile", pa.bool_(), "the model was compiled with torch.compile"),
    column(
        "world_size",
        pa.int64(),
        "processes that trained the run data-parallel (torch.distributed; 1: one process). Not in run_id: "
        "each step trains on the same examples with the same mean gradient, so the result is the same up to "
        "float rounding, except with BatchNorm without sync_bn (statistics of each process's shard)",
    ),
    column(
        "sync_bn",
        pa.bool_(),
        "BatchNorm statistics synchronized over the processes (SyncBatchNorm) in a data-parallel run",
    ),
)

EPOCHS_SCHEMA = schema(
    column("run_id", pa.string(), "the run (joins runs.run_id)"),
    column("epoch", pa.int64(), "epoch number, from 1"),
    column("step", pa.int64(), "SGD steps done by the end of this epoch"),
    column("lr", pa.float64(), "learning rate used during this epoch"),
    column("train_loss", pa.float64(), f"mean cross-entropy on {TRAIN_SET}"),
    column("train_acc", pa.float64(), f"accuracy on {TRAIN_SET}"),
    column("train_top5", pa.float64(), f"top-5 accuracy on {TRAIN_SET} ({TOP5})"),
    column("test_loss", pa.float64(), "mean cross-entropy on the test set"),
    column("test_acc", pa.float64(), "test accuracy"),
    column("test_top5", pa.float64(), "test top-5 accuracy"),
    column("holdout_loss", pa.float64(), "cross-entropy on the early-stopping holdout, null without one"),
    column("holdout_acc", pa.float64(), "accuracy on the early-stopping holdout, null without one"),
    column("holdout_top5", pa.float64(), "top-5 accuracy on the early-stopping holdout, null without one"),
    column(
        "wall_seconds",
        pa.float64(),
        "seconds of training and evaluation since the run started, at the end of this epoch's evaluation "
        "(a resumed run continues the clock of its restored epochs)",
    ),
)

EXAMPLES_SCHEMA = schema(
    column("run_id", pa.string(), "the run (joins runs.run_id)"),
    column("index", pa.int64(), "position of the example in the run's training set (before any subset or holdout)"),
    column("label", pa.int64(), "label as trained (after the corruption)"),
    column("true_label", pa.int64(), "label before the corruption"),
    column("corrupted", pa.bool_(), "the corruption changed this example's label or input"),
    column("redrawn", pa.bool_(), "random_labels drew this label anew (changed or not); null for other corruptions"),
    column("trained", pa.bool_(), "trained on; false for early-stopping holdout and left-out subset examples"),
    column("first_fit_epoch", pa.int64(), "first epoch after which it was classified as its label, null if never"),
    column(
        "learned_epoch",
        pa.int64(),
        "epoch from which it stayed classified as its label to the end, null if not at the end",
    ),
    column("forgetting_events", pa.int64(), "times it was classified as its label at one epoch and not at the next"),
    column("final_margin", pa.float64(), "label logit minus the largest other logit at the last epoch"),
    column("final_loss", pa.float64(), "cross-entropy at the last epoch"),
)

MEMORIZATION_SCHEMA = schema(
    column("run_id", pa.string(), "16-hex-digit hash of the estimate's configuration"),
    column("index", pa.int64(), "position of the example in the training set"),
    column("label", pa.int64(), "label as trained (after the corruption)"),
    column("true_label", pa.int64(), "label before the corruption"),
    column("corrupted", pa.bool_(), "the corruption changed this example's label or input"),
    column(
        "score",
        pa.float64(),
        "P(classified as its label | trained on) - P(... | left out), over the models; null unless both occur",
    ),
    column("score_stderr", pa.float64(), "binomial standard error of the score"),
    column("models_in", pa.int64(), "models whose training subset held the example"),
    column("models_out", pa.int64(), "models that left it out"),
    column("models_fitted", pa.int64(), "models that reached 100 % accuracy on their training subset"),
    column("mean_train_acc", pa.float64(), "mean final accuracy of the models on their training subsets"),
    column(
        "fit_warning",
        pa.string(),
        "one line when some models did not fit their subsets (their scores say little), else null",
    ),
)


def fp32_unless_on_cuda(rows: pa.Table) -> pa.Array:
    """``"fp32"``, null on CUDA (or an unknown device).

    Before ``--precision``, runs computed in float32, except that on CUDA cuDNN's default let
    convolutions use TF32: the precision of such a run is not known.
    """
    on_cuda = pc.starts_with(rows.column("device"), "cuda")
    return pc.if_else(on_cuda, pa.scalar(None, pa.string()), "fp32")


@dataclass(frozen=True, kw_only=True)
class SchemaChange:
    """One version of a table's schema after the first: the columns it added.

    Attributes
    ----------
    version : int
        The version this change made; a table's first schema is version 1.
    added : dict[str, object]
        Each new column, with its value in the rows of files written before this version, as
        ``harness results --upgrade`` writes it: a constant (None: null), or a function of such a
        file's table that returns one value per row (its docstring's first line says which).
    why : str
        What came with the new columns, and why older rows get those values.
    """

    version: int
    added: dict[str, object | Callable[[pa.Table], pa.Array]]
    why: str


SCHEMA_HISTORY: dict[str, tuple[SchemaChange, ...]] = {
    "runs": (
        SchemaChange(
            version=2,
            added={"resumed_from_epoch": 0},
            why="checkpoints and resume; a run before them always started from scratch",
        ),
        SchemaChange(
            version=3,
            added={"subset_fraction": None, "subset_seed": None},
            why="random training subsets; a run before them trained on all its examples (null: no subset)",
        ),
        SchemaChange(
            version=4,
            added={"logger_errors": 0},
            why="`--log` loggers; a run before them had none",
        ),
        SchemaChange(
            version=5,
            added={"pack_size": 1, "precision": fp32_unless_on_cuda, "channels_last": False, "compile": False},
            why="packed training, `--precision`, `--channels-last` and `--compile`; a run before them trained "
            "alone, in the default layout, not compiled, in float32 (on CUDA, cuDNN's default let convolutions "
            "use TF32: not known)",
        ),
        SchemaChange(
            version=6,
            added={"model_library": None, "model_library_version": None},
            why="models from torchvision and timm by name; a run before them used a model plugin (null)",
        ),
        SchemaChange(
            version=7,
            added={"corruption_scheme": 1, "train_top5": None, "test_top5": None, "best_test_top5": None},
            why="per-example draws of random_pixels and gaussian (corruption scheme 2), and top-5 accuracy; a run "
            "before them drew those corruptions over a whole split at once (scheme 1) and measured no top-5 (null)",
        ),
        SchemaChange(
            version=8,
            added={"world_size": 1, "sync_bn": False},
            why="data-parallel runs on torch.distributed; a run before them was trained by one process",
        ),
    ),
    "epochs": (
        SchemaChange(
            version=2,
            added={"train_top5": None, "test_top5": None, "holdout_top5": None},
            why="top-5 accuracy; not measured before (null)",
        ),
    ),
    "examples": (),
    "memorization": (
        SchemaChange(
            version=2,
            added={"models_fitted": None, "mean_train_acc": None, "fit_warning": None},
            why="whether the models fitted their subsets; not recorded before (null)",
        ),
    ),
    "kernel_runs": (
        SchemaChange(
            version=2,
            added={"feature_options": None},
            why="options of the feature map; not recorded before (null)",
        ),
    ),
    "rademacher": (),
    "rademacher_trials": (),
    "theory_expressivity": (),
    "theory_expressivity_sweep": (),
    "theory_min_norm": (),
    "theory_min_norm_curves": (),
}
"""Per results table, its schema changes in order of version. A table with none is at version 1.
Files from development branches may lack another mix of the added columns; an upgrade fills
whichever are missing."""


def schema_version(table: str) -> int:
    """The version of ``table``'s schema that this harness writes."""
    return max((change.version for change in SCHEMA_HISTORY[table]), default=1)


def values_for_older_rows(table: str) -> dict[str, object | Callable[[pa.Table], pa.Array]]:
    """Every column that ``table`` gained after its first version, with its value in older rows."""
    return {name: value for change in SCHEMA_HISTORY[table] for name, value in change.added.items()}
