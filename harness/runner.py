"""The training run of a randomization test: SGD on a (corrupted) data set, evaluated
every epoch, stored as one ``runs`` row, one ``epochs`` row per epoch and one ``examples``
row per training example."""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from harness import __version__, checkpoint
from harness.data import ImageDataset, center_crop, prepare_data_of, standardize_per_image, to_model_input
from harness.errors import ConfigError
from harness.examples import ExampleRecorder, examples_table
from harness.loggers import RunLoggers, check_loggers
from harness.registry import get_registry
from harness.regularizers import Regularizer, RegularizerError, build_regularizers
from harness.results import check_writable, config_id, read_row, write_table
from harness.schema import EPOCHS_SCHEMA, EXAMPLES_SCHEMA, RUNS_SCHEMA

EVAL_BATCH = 1024


PRECISIONS = ("fp32", "tf32", "bf16")
"""fp32: float32 throughout (on CUDA too, where PyTorch lets cuDNN use TensorFloat-32 by default);
tf32: TensorFloat-32 matrix products and convolutions (CUDA; the CPU computes in float32); bf16:
autocast to bfloat16 matrix products and convolutions, with float32 weights, BatchNorm and loss."""

EXECUTION_OPTIONS = ("channels_last", "compile")
"""Fields of :class:`RunConfig` that say how a run computes, not what: recorded in ``runs``, not hashed."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run's result; its hash is the ``run_id`` (the execution options
    ``channels_last`` and ``compile`` are recorded, not hashed)."""

    model: str
    corruption: str = "none"
    dataset: str = "cifar10"
    corrupt_prob: float = 1.0
    regularizers: tuple[str, ...] = ()
    seed: int = 0
    train_size: int | None = None
    test_size: int | None = None
    epochs: int = 100
    batch_size: int = 128
    lr: float | None = None
    lr_decay: float = 0.95
    momentum: float = 0.9
    subset: tuple[float, int] | None = None
    """(fraction, seed): train on a random fraction of the training examples; the others are
    evaluated too (for memorization estimates)."""
    precision: str = "fp32"
    """One of :data:`PRECISIONS`."""
    channels_last: bool = False
    """Channels-last memory layout of the model and its inputs (faster convolutions)."""
    compile: bool = False
    """``torch.compile`` the model for training and evaluation."""

    @property
    def run_id(self) -> str:
        fields = asdict(self)
        for name in EXECUTION_OPTIONS:
            del fields[name]
        if self.subset is None:  # runs on the whole training set keep the ids they had before subsets
            del fields["subset"]
        if self.precision == "fp32":  # float32 runs keep the ids they had before precisions
            del fields["precision"]
        return config_id(fields)


class RunProgress:
    """Receives a run's progress; the CLI shows it, the default ignores it."""

    def start(self, config: RunConfig, batches_per_epoch: int) -> None: ...

    def batch(self, epoch: int, batch: int, loss: float) -> None: ...

    def epoch(self, row: dict) -> None: ...


@dataclass
class RunOutcome:
    row: dict
    path: Path
    skipped: bool = False


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(device)


def resolve_config(config: RunConfig) -> RunConfig:
    """The config with the model's default learning rate filled in; checks every name."""
    registry = get_registry()
    model = registry.get("models", config.model)
    registry.get("datasets", config.dataset)
    registry.get("corruptions", config.corruption)
    if not 0.0 <= config.corrupt_prob <= 1.0:
        raise ConfigError(f"--corrupt-prob must be in [0, 1], got {config.corrupt_prob}")
    for name, value in (("epochs", config.epochs), ("batch-size", config.batch_size)):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    lr = config.lr if config.lr is not None else model.info.get("default_lr", 0.01)
    if lr <= 0:
        raise ConfigError(f"--lr must be positive, got {lr}")
    if config.subset is not None and not 0.0 < config.subset[0] < 1.0:
        raise ConfigError(f"the subset fraction must be in (0, 1), got {config.subset[0]}")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{config.precision}'")
    subset = None if config.subset is None else (float(config.subset[0]), int(config.subset[1]))
    return replace(config, model=model.name, lr=lr, regularizers=tuple(config.regularizers), subset=subset)


def model_options(config: RunConfig, regularizers: list[Regularizer]) -> dict:
    """The options regularizers pass to the model factory; refuses options it does not take."""
    factory = get_registry().get("models", config.model).obj
    options = {}
    for regularizer in regularizers:
        options.update(regularizer.model_options())
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for option in options:
        if option not in accepted and not takes_any:
            raise RegularizerError(f"model {config.model} does not support '{option}' (it takes no {option} option)")
    return options


def build_model(config: RunConfig, input_shape, num_classes: int, regularizers: list[Regularizer]) -> torch.nn.Module:
    """The model, with the options regularizers ask for."""
    factory = get_registry().get("models", config.model).obj
    return factory(input_shape=input_shape, num_classes=num_classes, **model_options(config, regularizers))


@contextlib.contextmanager
def computing_in(precision: str, device: torch.device):
    """Within the block, models compute in ``precision`` (one of :data:`PRECISIONS`)."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"  # fp32 is fp32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def compiled(function: Callable, device: torch.device) -> Callable:
    """``torch.compile(function)``; on CUDA with CUDA graphs (mode "reduce-overhead": one graph per input
    shape, so the last partial batch and each evaluation chunk get their own). Each call starts a new
    step of the graphs: the outputs of the call before (read by then) may be overwritten."""
    graphed = torch.compile(function, mode="reduce-overhead" if device.type == "cuda" else None)

    def step(*args):
        torch.compiler.cudagraph_mark_step_begin()
        return graphed(*args)

    return step


def float32_batch_norm(model: torch.nn.Module) -> None:
    """Make every BatchNorm of ``model`` normalize float32 input (under bfloat16 autocast too)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(lambda module, args: (args[0].float(), *args[1:]))


def split_holdout(data: ImageDataset, fraction: float) -> tuple[ImageDataset, ImageDataset | None]:
    """Keep the last ``fraction`` of the training examples apart (for early stopping)."""
    if fraction <= 0:
        return data, None
    keep = len(data.y_train) - max(1, int(round(fraction * len(data.y_train))))
    holdout = data.replace(x_test=data.x_train[keep:], y_test=data.y_train[keep:])
    return data.replace(x_train=data.x_train[:keep], y_train=data.y_train[:keep]), holdout


def subset_indices(n: int, subset: tuple[float, int] | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(trained, left out): training-set positions, in order, of a random ``subset`` = (fraction, seed)."""
    if subset is None:
        return np.arange(n), np.arange(0)
    fraction, subset_seed = subset
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng([seed, subset_seed]).permutation(n)[: max(1, round(fraction * n))]] = True
    return np.flatnonzero(chosen), np.flatnonzero(~chosen)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, record=None, *, forward: Callable | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, in eval mode, by batches; ``record(start, logits, labels,
    losses, correct)`` receives every batch (per-example records). ``forward`` is how the model is
    called (compiled, say); the model itself by default."""
    model.eval()
    forward = forward or model
    loss_sum = torch.zeros((), device=inputs.device, dtype=torch.float64)
    correct = torch.zeros((), device=inputs.device, dtype=torch.int64)
    for start in range(0, len(labels), EVAL_BATCH):
        logits = forward(inputs[start : start + EVAL_BATCH]).float()
        target = labels[start : start + EVAL_BATCH]
        losses = F.cross_entropy(logits, target, reduction="none")
        hits = logits.argmax(1) == target
        loss_sum += losses.sum().double()
        correct += hits.sum()
        if record is not None:
            record(start, logits, target, losses, hits)
    return loss_sum.item() / len(labels), correct.item() / len(labels)


class BatchSource:
    """Training batches: precomputed model inputs, or raw images sent through the
    regularizers' transforms, then center crop and standardization."""

    def __init__(
        self,
        data: ImageDataset,
        regularizers: list[Regularizer],
        device: torch.device,
        seed: int,
        channels_last: bool = False,
    ):
        self.data, self.channels_last = data, channels_last
        self.transforms = [r for r in regularizers if r.transforms_batches]
        self.labels = torch.as_tensor(data.y_train, device=device)
        self.inputs = to_model_input(data.x_train, data).to(device)
        self.raw = (
            torch.as_tensor(data.x_train).permute(0, 3, 1, 2).contiguous().to(device) if self.transforms else None
        )
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        return layout(self.batch(index), self.channels_last)

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """The training batch at positions ``index``, in the default memory layout."""
        if not self.transforms:
            return self.inputs[index]
        images = self.raw[index]
        for regularizer in self.transforms:
            images = regularizer.transform_batch(images, self.data.crop, self.generator)
        if self.data.crop and images.shape[-1] != self.data.crop:
            images = center_crop(images, self.data.crop)
        return standardize_per_image(images) if self.data.standardize else images


def layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``images`` (N, C, H, W) in channels-last memory layout when asked, else as they are."""
    return images.contiguous(memory_format=torch.channels_last) if channels_last and images.dim() == 4 else images


class Training:
    """A model trained by SGD on one data set, evaluated every epoch.

    Its ``history`` (rows of the ``epochs`` table), ``steps`` and ``examples`` (per-example
    records of every training example) survive an interrupt. A data set without test
    examples is evaluated on its training set only.
    """

    def __init__(self, config: RunConfig, data: ImageDataset, regularizers: list[Regularizer], device: torch.device):
        self.config, self.regularizers = config, regularizers
        holdout_fraction = max((r.holdout_fraction for r in regularizers), default=0.0)
        chosen, left_out = subset_indices(len(data.y_train), config.subset, config.seed)
        in_subset = (
            data if config.subset is None else data.replace(x_train=data.x_train[chosen], y_train=data.y_train[chosen])
        )
        train, holdout = split_holdout(in_subset, holdout_fraction)
        torch.manual_seed(config.seed)
        self.model = build_model(config, data.input_shape, data.num_classes, regularizers).to(device)
        if config.precision == "bf16":
            float32_batch_norm(self.model)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = compiled(self.model, device) if config.compile else self.model
        """The model as it is called (compiled or not); ``model`` is what checkpoints save."""
        optimizer_options = {}
        for regularizer in regularizers:
            optimizer_options.update(regularizer.optimizer_options())
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum, **optimizer_options
        )
        self.batches = BatchSource(train, regularizers, device, config.seed, config.channels_last)
        self.evaluations = {"train": (self.batches.inputs, self.batches.labels)}
        for name, split in (("test", data), ("holdout", holdout)):
            if split is not None and len(split.y_test):
                labels = torch.as_tensor(split.y_test, device=device)
                self.evaluations[name] = (to_model_input(split.x_test, data).to(device), labels)
        if len(left_out):
            labels = torch.as_tensor(data.y_train[left_out], device=device)
            self.evaluations["left_out"] = (to_model_input(data.x_train[left_out], data).to(device), labels)
        self.examples = ExampleRecorder(len(data.y_train), device)
        self.example_index = np.concatenate([chosen, left_out])
        self.example_offsets = {"train": 0, "holdout": len(train.y_train), "left_out": len(chosen)}
        self.example_labels = (data.y_train, data.y_train_true, data.corrupted, data.redrawn)
        self.order_generator = torch.Generator().manual_seed(config.seed)
        self.model_generator: torch.Generator | None = None
        """The generator of random draws inside the model (dropout) when the run trains in a pack;
        None: the global one, as for a run trained alone. Checkpoints store it in the global one's place."""
        self.device = device
        self.history: list[dict] = []
        self.steps = 0
        self.stopped_early = False
        self.finished = False
        self.loggers: RunLoggers | None = None
        """Told of every epoch's row as it is recorded."""
        """No epoch left: the epoch limit is reached, or training stopped (100 % training accuracy, a regularizer)."""
        self.clock_start = 0.0
        self.stateful: dict[str, checkpoint.Stateful] = {
            "model": self.model,
            "optimizer": self.optimizer,
            "order_generator": checkpoint.GeneratorState(self.order_generator),
            "batch_generator": checkpoint.GeneratorState(self.batches.generator),
            "examples": self.examples,
        }
        """Everything a checkpoint saves by name; more per-run state can be added here."""

    def save_checkpoint(self, path: Path) -> None:
        states = checkpoint.random_states()
        if self.model_generator is not None:
            checkpoint.set_device_state(states, self.model_generator.device, self.model_generator.get_state())
        checkpoint.save(path, self.stateful, {"history": self.history, "steps": self.steps}, states)

    def resume(self, path: Path) -> int:
        """Continue from the checkpoint at ``path`` when there is one; the number of epochs restored."""
        values = checkpoint.load(path, self.stateful)
        if values is not None:
            self.history, self.steps = values["history"], values["steps"]
        self.finished = len(self.history) >= self.config.epochs
        return len(self.history)

    def evaluate(self, split: str) -> tuple[float | None, float | None]:
        """Loss and accuracy on ``split`` (None, None without it), updating its examples' records."""
        if split not in self.evaluations:
            return None, None
        offset = self.example_offsets.get(split)
        inputs, labels = self.evaluations[split]
        with computing_in(self.config.precision, self.device):
            return evaluate(
                self.model,
                layout(inputs, self.config.channels_last),
                labels,
                None if offset is None else self.examples.observer(offset),
                forward=self.forward,
            )

    def examples_table(self, run_id: str) -> pa.Table:
        """The ``examples`` rows of the epochs finished so far."""
        trained = np.arange(len(self.example_index)) < len(self.batches.labels)
        return examples_table(run_id, self.examples, self.example_index, *self.example_labels, trained)

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.batches.labels) // self.config.batch_size)

    def begin(self, progress: RunProgress) -> None:
        """Start (or continue) the clock and tell ``progress``; before the first epoch trained here."""
        self.clock_start = time.perf_counter() - (self.history[-1]["wall_seconds"] if self.history else 0.0)
        progress.start(self.config, self.batches_per_epoch)

    def start_epoch(self) -> tuple[int, float, list[torch.Tensor]]:
        """The next epoch's number, learning rate and batches (training-set positions), in train mode."""
        self.model.train()
        order = torch.randperm(len(self.batches.labels), generator=self.order_generator)
        order = order.to(self.device, non_blocking=True)  # staged from pageable memory: nothing waits
        return len(self.history) + 1, self.optimizer.param_groups[0]["lr"], list(order.split(self.config.batch_size))

    def end_epoch(
        self, epoch: int, lr: float, progress: RunProgress, run_id: str = "", checkpoint_path: Path | None = None
    ) -> dict:
        """After the epoch's steps: decay the learning rate, evaluate, record the epoch's row (returned),
        decide whether training goes on (``finished``) and, when it does, checkpoint to ``checkpoint_path``."""
        for group in self.optimizer.param_groups:
            group["lr"] *= self.config.lr_decay
        row = dict(run_id=run_id, epoch=epoch, step=self.steps, lr=lr)
        for name in ("train", "test", "holdout"):
            row[f"{name}_loss"], row[f"{name}_acc"] = self.evaluate(name)
        self.evaluate("left_out")
        self.examples.end_epoch(epoch)
        row["wall_seconds"] = time.perf_counter() - self.clock_start
        self.history.append(row)
        if self.loggers is not None:
            self.loggers.epoch_finished(row)
        progress.epoch(row)
        self.stopped_early = row["train_acc"] != 1.0 and any(r.should_stop(self.history) for r in self.regularizers)
        self.finished = row["train_acc"] == 1.0 or self.stopped_early or epoch >= self.config.epochs
        if checkpoint_path is not None and row["train_acc"] != 1.0 and not self.stopped_early:
            self.save_checkpoint(checkpoint_path)
        return row

    def run(self, progress: RunProgress, run_id: str = "", checkpoint_path: Path | None = None) -> None:
        """Train until ``config.epochs``, 100 % training accuracy, or a regularizer stops it.

        Continues after the epochs already in ``history``; with ``checkpoint_path``, saves a
        checkpoint there after every epoch that training goes on from; ``loggers`` receive every
        epoch's row as it is recorded.
        """
        self.begin(progress)
        while not self.finished:
            epoch, lr, batches = self.start_epoch()
            for b, index in enumerate(batches):
                with computing_in(self.config.precision, self.device):
                    logits = self.forward(self.batches(index))
                loss = F.cross_entropy(logits.float(), self.batches.labels[index])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.steps += 1
                progress.batch(epoch, b + 1, loss)
            self.end_epoch(epoch, lr, progress, run_id, checkpoint_path)


@dataclass
class StartedRun:
    """A run being trained: its configuration, training state, ``runs`` row so far and checkpoint file."""

    config: RunConfig
    training: Training
    row: dict
    checkpoint: Path
    results_dir: Path
    clock_start: float
    loggers: RunLoggers
    sweep: str | None = None
    announced: bool = False
    """Whether the loggers have heard that it started."""

    @property
    def run_id(self) -> str:
        return self.config.run_id

    def announce(self) -> None:
        """Tell the loggers that the run started (once)."""
        if not self.announced:
            self.announced = True
            self.loggers.run_started(self.config, self.results_dir, self.row["resumed_from_epoch"], self.sweep)


def completed_run(config: RunConfig, results_dir: Path) -> RunOutcome | None:
    """The stored outcome of ``config`` (a resolved configuration) when it already completed, else None."""
    existing = read_row(results_dir, "runs", config.run_id)
    if existing is not None and existing["status"] == "completed":
        return RunOutcome(existing, results_dir / "runs" / f"{config.run_id}.parquet", skipped=True)
    return None


def start_run(
    config: RunConfig,
    results_dir: Path,
    data_root: Path | None,
    device: torch.device,
    *,
    resume: bool = True,
    pack_size: int = 1,
    log: tuple[str, ...] = (),
    sweep: str | None = None,
    announce: bool = True,
) -> StartedRun:
    """Load the data and build the training of ``config`` (a resolved configuration), continued from its
    checkpoint unless ``resume`` is false; its ``runs`` row says ``interrupted`` until it is finished.
    The loggers of ``log`` (``NAME[=URI]``, :mod:`harness.loggers`) hear that it started, with the name
    of its ``sweep`` (at once, or with ``announce`` false when :meth:`StartedRun.announce` says so),
    and then of each epoch and of its end."""
    regularizers = build_regularizers(config.regularizers)
    data = prepare_data_of(config, data_root)
    training = Training(config, data, regularizers, device)
    model_entry = get_registry().get("models", config.model)
    saved = checkpoint.checkpoint_path(results_dir, config.run_id)
    if not resume:
        saved.unlink(missing_ok=True)
    resumed_from_epoch = training.resume(saved)
    row = {
        **{
            k: getattr(config, k)
            for k in ("model", "dataset", "corruption", "corrupt_prob", "seed", "batch_size", "lr")
        },
        "run_id": config.run_id,
        "regularizers": list(config.regularizers),
        "train_size": len(data.y_train),
        "test_size": len(data.y_test),
        "subset_fraction": config.subset[0] if config.subset else None,
        "subset_seed": config.subset[1] if config.subset else None,
        "max_epochs": config.epochs,
        "lr_decay": config.lr_decay,
        "momentum": config.momentum,
        "param_count": training.param_count,
        "started_at": datetime.now(UTC),
        "device": str(device),
        "harness_version": __version__,
        "torch_version": torch.__version__,
        "model_library": model_entry.info.get("library"),
        "model_library_version": model_entry.info.get("library_version"),
        "resumed_from_epoch": resumed_from_epoch,
        "pack_size": pack_size,
        **{k: getattr(config, k) for k in ("precision", "channels_last", "compile")},
        "status": "interrupted",
    }
    loggers = RunLoggers(log, config.run_id)
    training.loggers = loggers
    run = StartedRun(config, training, row, saved, Path(results_dir), time.perf_counter(), loggers, sweep)
    if announce:
        run.announce()
    return run


def finish_run(run: StartedRun, status: str, error: BaseException | None = None) -> Path:
    """Store ``run`` as ``status`` (completed, interrupted or failed with ``error``) with its epochs and
    examples so far; a completed run's checkpoint is removed. The path of its ``runs`` file."""
    row, training = run.row, run.training
    row["status"] = status
    if error is not None:
        row["error"] = f"{type(error).__name__}: {error}"
    row.update(summarize(training.history, training.steps), stopped_early=training.stopped_early)
    row["wall_seconds"] = time.perf_counter() - run.clock_start
    try:
        run.announce()  # (a pack's run that stops before its first packed step)
        run.loggers.run_finished(row)
    finally:  # a Ctrl-C while the loggers finish loses nothing
        path = store(run.results_dir, row, training.history, training.examples_table(run.run_id))
    if row["status"] == "completed":
        run.checkpoint.unlink(missing_ok=True)
    return path


def check_run(config: RunConfig, device: str) -> tuple[RunConfig, torch.device]:
    """``config`` resolved and checked (names, ranges, regularizers and the model options they ask
    for), and the torch device."""
    config = resolve_config(config)
    model_options(config, build_regularizers(config.regularizers))
    return config, resolve_device(device)


def execute(
    config: RunConfig,
    results_dir: Path,
    *,
    data_root: Path | None = None,
    device: str = "auto",
    force: bool = False,
    progress: RunProgress | None = None,
    resume: bool = True,
    log: tuple[str, ...] = (),
    sweep: str | None = None,
) -> RunOutcome:
    """Run (or skip, when already completed) one configuration and store it.

    Ctrl-C or SIGTERM stores the run as ``interrupted`` with the epochs it finished, an error
    as ``failed``; both re-raise. Every epoch is checkpointed, and an interrupted run resumes
    from its checkpoint (``resume=False`` starts over); the checkpoint is removed when the
    run completes. Files are written atomically, nothing partial is left.

    ``log`` holds the ``NAME[=URI]`` of the loggers that receive the run's events
    (:mod:`harness.loggers`), ``sweep`` the name of the sweep the run belongs to (told to them).
    """
    config, torch_device = check_run(config, device)
    check_loggers(log)
    results_dir = Path(results_dir)
    check_writable(results_dir)
    done = None if force else completed_run(config, results_dir)
    if done is not None:
        return done
    run = start_run(config, results_dir, data_root, torch_device, resume=resume, log=log, sweep=sweep)
    status, failure = "interrupted", None  # until it completes or fails: Ctrl-C, SIGTERM, a requeue's exit
    try:
        with checkpoint.sigterm_as_interrupt():
            run.training.run(progress or RunProgress(), run.run_id, run.checkpoint)
        status = "completed"
    except Exception as error:
        status, failure = "failed", error
        raise
    finally:
        path = finish_run(run, status, failure)
    return RunOutcome(run.row, path)


def summarize(history: list[dict], steps: int) -> dict:
    """Final metrics, first fit and best test accuracy of a run's epochs."""
    last = history[-1] if history else {}
    fitted = next((h for h in history if h["train_acc"] == 1.0), None)
    return {
        "epochs": len(history),
        "steps": steps,
        **{k: last.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
        "fit_epoch": fitted["epoch"] if fitted else None,
        "fit_step": fitted["step"] if fitted else None,
        "best_test_acc": max((h["test_acc"] for h in history if h["test_acc"] is not None), default=None),
    }


def store(results_dir: Path, row: dict, history: list[dict], examples: pa.Table) -> Path:
    """Write the examples and epochs, then the run row (so a run row implies the others are there)."""
    write_table(results_dir, "examples", row["run_id"], examples, EXAMPLES_SCHEMA)
    write_table(results_dir, "epochs", row["run_id"], history, EPOCHS_SCHEMA)
    return write_table(results_dir, "runs", row["run_id"], [row], RUNS_SCHEMA)
