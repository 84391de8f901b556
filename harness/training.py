"""The training loop of a randomization test: SGD on a (corrupted) data set, evaluated every epoch.

:func:`train` is the one loop: epochs of steps, each followed by an evaluation, until every training
is finished. A :class:`Training` is one run's state (model, optimizer, batches, records) and its own
step; a pack of runs (:mod:`harness.packing`) goes through the same loop with a vectorized step.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from harness import checkpoint
from harness.batches import BatchSource, random_subset, split_holdout
from harness.compute import compiled, computing_in, float32_batch_norm, layout
from harness.config import RunConfig
from harness.data import ImageDataset, to_model_input
from harness.distributed import ALONE, World
from harness.examples import ExampleRecorder, examples_table
from harness.registry import get_registry
from harness.regularizers import Regularizer, RegularizerError
from harness.streaming import ImageFiles, as_float, in_order, read_batches

EVAL_BATCH = 1024


class RunProgress:
    """Receives a run's progress; the CLI shows it, the default ignores it."""

    def start(self, config: RunConfig, batches_per_epoch: int) -> None: ...

    def batch(self, epoch: int, batch: int, loss: torch.Tensor) -> None:
        """Batch ``batch`` of ``epoch`` is done; ``loss`` is a scalar tensor, still on the device."""

    def epoch(self, row: dict) -> None: ...


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


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    labels: torch.Tensor,
    record=None,
    *,
    forward: Callable | None = None,
) -> tuple[float, float, float]:
    """Mean cross-entropy, accuracy and top-5 accuracy, in eval mode, over ``batches`` of inputs that
    hold the examples of ``labels`` in order.

    An example counts for top-5 when its label is among the 5 largest logits (torch.topk breaks ties
    at the fifth place; a top-1 hit always counts); with fewer than 5 classes every class is among
    them, and top-5 accuracy is 1.0. ``record(start, logits, labels, losses, correct)`` receives
    every batch (per-example records, top-1). ``forward`` is how the model is called (compiled, say);
    the model itself by default.
    """
    loss_sum, correct, correct_top5 = evaluation_sums(model, batches, labels, record, forward=forward).tolist()
    return loss_sum / len(labels), correct / len(labels), correct_top5 / len(labels)


@torch.no_grad()
def evaluation_sums(
    model: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    labels: torch.Tensor,
    record=None,
    *,
    forward: Callable | None = None,
) -> torch.Tensor:
    """The sums of :func:`evaluate` (cross-entropy, top-1 hits, top-5 hits) as one float64 tensor on
    the device, which the processes of a data-parallel run add up."""
    model.eval()
    forward = forward or model
    sums = torch.zeros(3, device=labels.device, dtype=torch.float64)
    start = 0
    for inputs in batches:
        logits = forward(inputs).float()
        target = labels[start : start + len(inputs)]
        losses = F.cross_entropy(logits, target, reduction="none")
        hits = logits.argmax(1) == target
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices == target[:, None]
        sums += torch.stack([losses.sum(), hits.sum(), (hits | top5.any(1)).sum()]).double()
        if record is not None:
            record(start, logits, target, losses, hits)
        start += len(inputs)
    if start != len(labels):
        raise RuntimeError(f"evaluated {start} inputs for {len(labels)} labels")
    return sums


class Training:
    """A model trained by SGD on one data set, evaluated every epoch.

    Its ``history`` (rows of the ``epochs`` table), ``steps`` and ``examples`` (per-example
    records of every training example) survive an interrupt: after every epoch that training
    goes on from, a checkpoint is saved to ``checkpoint_path`` (when given). A data set without
    test examples is evaluated on its training set only.

    Parameters
    ----------
    config : RunConfig
        A resolved configuration.
    data : ImageDataset
        The (corrupted) data set.
    regularizers : list of Regularizer
        The configuration's regularizers, built.
    device : torch.device
        Where the model trains.
    observers : sequence
        Objects told of every ``epochs`` row as it is recorded (``epoch_finished(row)``): the run's loggers.
    checkpoint_path : Path, optional
        Where checkpoints go; None: none are saved.
    own_generator : bool
        Draw the model's random numbers (dropout) from a generator of the run's own, continuing the
        global one after the model's initialization (a run trained in a pack); else from the global one.
    world : World
        The processes that train the run (:mod:`harness.distributed`). In a data-parallel run each one
        trains its shard of every batch, with the model in ``DistributedDataParallel``, and evaluates
        its shard of every split; only rank 0 saves checkpoints.
    """

    def __init__(
        self,
        config: RunConfig,
        data: ImageDataset,
        regularizers: list[Regularizer],
        device: torch.device,
        *,
        observers: Sequence = (),
        checkpoint_path: Path | None = None,
        own_generator: bool = False,
        world: World = ALONE,
    ):
        self.config, self.regularizers, self.device, self.world = config, regularizers, device, world
        self.observers, self.checkpoint_path = tuple(observers), checkpoint_path
        trained, left_out, holdout = self.split(data)
        self.build_model(data)
        self.model_generator = self.continued_global_generator() if own_generator else None
        """The generator of random draws inside the model (dropout) when the run trains in a pack;
        None: the global one, as for a run trained alone. Checkpoints store it in the global one's place."""
        self.build_optimizer()
        self.batches = BatchSource(
            trained, regularizers, device, config.seed, channels_last=config.channels_last, world=world
        )
        self.preprocessing = data
        """The data set whose crop and standardization make model inputs of images read from disk."""
        self.evaluations = self.evaluation_sets(data, trained, holdout, left_out)
        self.examples = ExampleRecorder(len(data.y_train), device)
        self.evaluated_here = self.own_examples()
        """The example records this process evaluates (all of them when alone)."""
        self.order_generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict] = []
        self.steps = 0
        self.stopped_early = False
        self.finished = False
        """No epoch left: the epoch limit is reached, or training stopped (100 % training accuracy, a regularizer)."""
        self.clock_start: float | None = None
        self.stateful: dict[str, checkpoint.Stateful] = {
            "model": self.model,
            "optimizer": self.optimizer,
            "order_generator": checkpoint.GeneratorState(self.order_generator),
            "batch_generator": checkpoint.GeneratorState(self.batches.generator),
            "examples": self.examples,
        }
        """Everything a checkpoint saves by name; more per-run state can be added here."""

    def split(self, data: ImageDataset) -> tuple[ImageDataset, np.ndarray, ImageDataset | None]:
        """The examples trained on, those of a random subset's complement, and the early-stopping holdout;
        sets ``example_index``, ``example_offsets`` and ``example_labels`` (the per-example records' rows)."""
        config = self.config
        chosen, left_out = random_subset(len(data.y_train), config.subset_fraction, config.subset_seed, config.seed)
        in_subset = (
            data if len(left_out) == 0 else data.replace(x_train=data.x_train[chosen], y_train=data.y_train[chosen])
        )
        holdout_fraction = max((r.holdout_fraction for r in self.regularizers), default=0.0)
        trained, holdout = split_holdout(in_subset, holdout_fraction)
        self.example_index = np.concatenate([chosen, left_out])
        self.example_offsets = {"train": 0, "holdout": len(trained.y_train), "left_out": len(chosen)}
        self.example_labels = (data.y_train, data.y_train_true, data.corrupted, data.redrawn)
        return trained, left_out, holdout

    def build_model(self, data: ImageDataset) -> None:
        """The model, initialized from the run's seed, in its precision and layout; ``forward`` calls it
        (compiled or not), ``train_forward`` too in training steps (in ``DistributedDataParallel``,
        with SyncBatchNorm when asked for, in a data-parallel run), ``model`` is what checkpoints save."""
        config = self.config
        torch.manual_seed(config.seed)
        self.model = build_model(config, data.input_shape, data.num_classes, self.regularizers).to(self.device)
        if config.precision == "bf16":
            float32_batch_norm(self.model)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = compiled(self.model, self.device) if config.compile else self.model
        self.train_forward = self.forward
        if self.world.parallel:
            if config.sync_bn:
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            on_cuda = self.device.type == "cuda"
            parallel = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device] if on_cuda else None, gradient_as_bucket_view=True
            )
            self.train_forward = compiled(parallel, self.device) if config.compile else parallel

    def continued_global_generator(self) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.set_state(checkpoint.device_state(self.device))
        return generator

    def build_optimizer(self) -> None:
        """SGD with the run's learning rate and momentum, and the regularizers' options (weight decay)."""
        options = {}
        for regularizer in self.regularizers:
            options.update(regularizer.optimizer_options())
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=self.config.lr, momentum=self.config.momentum, **options
        )

    def evaluation_sets(
        self, data: ImageDataset, trained: ImageDataset, holdout: ImageDataset | None, left_out: np.ndarray
    ) -> dict[str, tuple[torch.Tensor | ImageFiles, torch.Tensor]]:
        """(inputs, labels) of every split evaluated after each epoch: model inputs on the device, or
        the images read from disk for each evaluation; labels on the device."""
        device = self.device

        def inputs(images):
            return images if isinstance(images, ImageFiles) else to_model_input(images, data).to(device)

        train_inputs = self.batches.inputs if self.batches.inputs is not None else trained.x_train
        evaluations = {"train": (train_inputs, self.batches.labels)}
        for name, split in (("test", data), ("holdout", holdout)):
            if split is not None and len(split.y_test):
                evaluations[name] = (inputs(split.x_test), torch.as_tensor(split.y_test, device=device))
        if len(left_out):
            labels = torch.as_tensor(data.y_train[left_out], device=device)
            evaluations["left_out"] = (inputs(data.x_train[left_out]), labels)
        return evaluations

    def evaluation_batches(self, inputs: torch.Tensor | ImageFiles) -> Iterator[torch.Tensor]:
        """Model inputs of one evaluated split, in order and layout: by batches of :data:`EVAL_BATCH`, or of
        the training batch size when read from disk."""
        channels_last = self.config.channels_last
        if not isinstance(inputs, ImageFiles):
            for start in range(0, len(inputs), EVAL_BATCH):
                yield layout(inputs[start : start + EVAL_BATCH], channels_last)
            return
        batches = in_order(len(inputs), self.config.batch_size)  # read ahead by every worker: small batches
        for images in read_batches(inputs, batches, pin_memory=self.device.type == "cuda"):
            images = as_float(images.to(self.device, non_blocking=True))
            yield layout(to_model_input(images, self.preprocessing), channels_last)

    def save_checkpoint(self) -> None:
        states = checkpoint.random_states()
        if self.model_generator is not None:
            checkpoint.set_device_state(states, self.model_generator.device, self.model_generator.get_state())
        checkpoint.save(self.checkpoint_path, self.stateful, {"history": self.history, "steps": self.steps}, states)

    def resume(self) -> int:
        """Continue from the checkpoint at ``checkpoint_path`` when there is one; the number of epochs restored."""
        values = checkpoint.load(self.checkpoint_path, self.stateful)
        if values is not None:
            self.history, self.steps = values["history"], values["steps"]
            if self.model_generator is not None:
                self.model_generator = self.continued_global_generator()
        self.finished = len(self.history) >= self.config.max_epochs
        return len(self.history)

    def own_examples(self) -> torch.Tensor:
        """Which example records this process evaluates: its shard of each split that has records."""
        mine = torch.zeros(len(self.examples), dtype=torch.bool, device=self.device)
        for split, offset in self.example_offsets.items():
            if split in self.evaluations:
                part = self.world.bounds(len(self.evaluations[split][1]))
                mine[offset + part.start : offset + part.stop] = True
        return mine

    def evaluate(self, split: str) -> tuple[float | None, float | None, float | None]:
        """Loss, accuracy and top-5 accuracy on ``split`` (:func:`evaluate`; three None without it),
        updating its examples' records. In a data-parallel run each process evaluates its shard and
        the sums are added up: every example counts once."""
        if split not in self.evaluations:
            return None, None, None
        offset = self.example_offsets.get(split)
        inputs, labels = self.evaluations[split]
        part = self.world.bounds(len(labels))
        with computing_in(self.config.precision, self.device):
            sums = evaluation_sums(
                self.model,
                self.evaluation_batches(inputs[part]),
                labels[part],
                None if offset is None else self.examples.observer(offset + part.start),
                forward=self.forward,
            )
        loss_sum, correct, correct_top5 = self.world.all_sum(sums).tolist()
        return loss_sum / len(labels), correct / len(labels), correct_top5 / len(labels)

    def examples_table(self) -> pa.Table:
        """The ``examples`` rows of the epochs finished so far."""
        trained = np.arange(len(self.example_index)) < len(self.batches)
        return examples_table(self.config.run_id, self.examples, self.example_index, *self.example_labels, trained)

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.batches) // self.config.batch_size)

    @property
    def wall_seconds(self) -> float:
        """Seconds of training and evaluation, over every session that trained the run (a resumed run
        continues the clock of the epochs it restored)."""
        if self.clock_start is None:
            return self.history[-1]["wall_seconds"] if self.history else 0.0
        return time.perf_counter() - self.clock_start

    def begin(self, progress: RunProgress) -> None:
        """Start (or continue) the clock and tell ``progress``; before the first epoch trained here."""
        self.clock_start = time.perf_counter() - (self.history[-1]["wall_seconds"] if self.history else 0.0)
        progress.start(self.config, self.batches_per_epoch)

    def start_epoch(self) -> tuple[int, float, list[torch.Tensor]]:
        """The next epoch's number, learning rate and batches (training-set positions), in train mode."""
        self.model.train()
        order = torch.randperm(len(self.batches), generator=self.order_generator)
        order = order.to(self.device, non_blocking=True)  # staged from pageable memory: nothing waits
        batches = list(order.split(self.config.batch_size))
        self.batches.start_epoch(batches)
        return len(self.history) + 1, self.optimizer.param_groups[0]["lr"], batches

    def step(self, index: torch.Tensor) -> torch.Tensor:
        """One SGD step on the training batch at positions ``index``; its loss (on the device).

        In a data-parallel run this process's loss is the sum over its shard times the number of
        processes over the batch size, so that the gradient that DistributedDataParallel averages
        is the mean over the whole batch, as in one process, whatever the shards' sizes."""
        with computing_in(self.config.precision, self.device):
            logits = self.train_forward(self.batches(index))
        labels = self.batches.labels[index[self.world.bounds(len(index))]]
        if self.world.parallel:
            loss = F.cross_entropy(logits.float(), labels, reduction="sum") * (self.world.size / len(index))
        else:
            loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        self.apply_gradients()
        return loss.detach()

    def apply_gradients(self) -> None:
        """The optimizer's step with the gradients accumulated since the last one, which it then clears."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1

    def end_epoch(self, epoch: int, lr: float, progress: RunProgress) -> dict:
        """After the epoch's steps: decay the learning rate, evaluate, record the epoch's row (returned),
        decide whether training goes on (``finished``) and, when it does, save a checkpoint."""
        for group in self.optimizer.param_groups:
            group["lr"] *= self.config.lr_decay
        for buffer in self.model.buffers():  # BatchNorm's running statistics, as rank 0 updated them
            self.world.broadcast_from_main(buffer)
        row = dict(run_id=self.config.run_id, epoch=epoch, step=self.steps, lr=lr)
        for name in ("train", "test", "holdout"):
            row[f"{name}_loss"], row[f"{name}_acc"], row[f"{name}_top5"] = self.evaluate(name)
        self.evaluate("left_out")
        if self.world.parallel:
            self.examples.gather(self.evaluated_here, self.world.all_sum)
        self.examples.end_epoch(epoch)
        row["wall_seconds"] = self.wall_seconds
        self.history.append(row)
        for observer in self.observers:
            observer.epoch_finished(row)
        progress.epoch(row)
        fitted = row["train_acc"] == 1.0
        self.stopped_early = not fitted and any(r.should_stop(self.history) for r in self.regularizers)
        self.finished = fitted or self.stopped_early or epoch >= self.config.max_epochs
        if self.checkpoint_path is not None and self.world.is_main and not fitted and not self.stopped_early:
            self.save_checkpoint()
        return row


def train(
    trainings: list[Training],
    step: Callable[[list[tuple[Training, torch.Tensor]]], torch.Tensor],
    progress: RunProgress,
    *,
    on_finished: Callable[[Training], None] = lambda training: None,
) -> None:
    """Train until every one of ``trainings`` is finished: its epoch limit, 100 % training accuracy, or a
    regularizer stops it. Each epoch, the unfinished ones draw their batch orders; each batch,
    ``step([(training, positions), ...])`` trains each one step on its batch and returns the loss that
    ``progress`` is shown; then each evaluates and records its epoch. ``on_finished(training)`` as each
    one finishes (at once for one restored finished from its checkpoint)."""
    for training in trainings:
        training.begin(progress)
        if training.finished:
            on_finished(training)
    while active := [training for training in trainings if not training.finished]:
        epochs = [training.start_epoch() for training in active]
        epoch = epochs[0][0]
        for number, positions in enumerate(zip(*(batches for _, _, batches in epochs)), start=1):
            progress.batch(epoch, number, step(list(zip(active, positions))))
        for training, (epoch, lr, _) in zip(active, epochs):
            training.end_epoch(epoch, lr, progress)
            if training.finished:
                on_finished(training)


def train_alone(training: Training, progress: RunProgress) -> None:
    """:func:`train` one run with its own step."""
    train([training], lambda batches: training.step(batches[0][1]), progress)
