"""Packed training: K runs of one model trained together as one vectorized model (``torch.func``).

Every run of a pack is a whole :class:`~harness.training.Training` of its own: its model
(initialized from its seed), optimizer (its learning rate, momentum, weight decay), batch order,
data (its corruption, subset and holdout), augmentation draws and example records. Only the
training step is shared: the runs' parameters and buffers are stacked and the model is applied
to the K batches at once with ``vmap(functional_call(...))``; the loss is the sum of the runs'
losses, so each run's gradient is its own, and each run's optimizer steps its own parameters.
BatchNorm running statistics are updated per run. ``nn.Dropout`` layers draw each run's masks
from that run's own generator, continuing the global generator of the run trained alone, so on
the CPU a run draws the same masks packed as alone. Evaluation is per run, as alone.

A run that stops (100 % training accuracy, early stopping, its epoch limit) is stored at once,
through the same functions as a run trained alone, and leaves the pack; the others go on. Each
run checkpoints as itself, so an interrupted pack resumes packed or one run at a time.

A model ``torch.func`` cannot vectorize (data-dependent control flow, in-place tricks on
buffers) falls back to one run at a time with a :class:`PackingWarning`. The runs of a pack share
their precision and ``torch.compile`` (of the vectorized step, unless the model has dropout, and of
each run's evaluation); channels-last layout applies to their evaluation only.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from harness import checkpoint, distributed
from harness.compute import compiled, computing_in
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.regularizers import build_regularizers
from harness.results import check_writable
from harness.runner import RunOutcome, StartedRun, check_run, completed_run, execute, finish_run, start_run
from harness.training import RunProgress, Training, model_options, train


class PackingWarning(UserWarning):
    """A pack cannot be trained as one vectorized model; its runs train one at a time."""


@dataclass(frozen=True, kw_only=True)
class PackKey:
    """What the runs of one pack share: the model and its options, the data's shapes, the schedule's
    length, the precision and whether the step is compiled."""

    model: str
    model_options: tuple
    dataset: str
    train_size: int | None
    test_size: int | None
    batch_size: int
    max_epochs: int
    holdout_fraction: float
    subset_fraction: float | None
    precision: str
    compile: bool


def pack_key(config: RunConfig) -> PackKey:
    """The key of a resolved configuration: runs with equal keys can train in one pack."""
    regularizers = build_regularizers(config.regularizers)
    return PackKey(
        model=config.model,
        model_options=tuple(sorted(model_options(config, regularizers).items())),
        dataset=config.dataset,
        train_size=config.train_size,
        test_size=config.test_size,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs,
        holdout_fraction=max((r.holdout_fraction for r in regularizers), default=0.0),
        subset_fraction=config.subset_fraction,
        precision=config.precision,
        compile=config.compile,
    )


def group_packs(configs: list[RunConfig], size: int) -> list[list[RunConfig]]:
    """Resolved configurations in packs of at most ``size`` runs that share a :class:`PackKey`,
    in the order of each pack's first run."""
    if size < 1:
        raise ValueError(f"a pack holds at least one run, got {size}")
    if size == 1:
        return [[config] for config in configs]
    groups: dict[PackKey | str, list[RunConfig]] = {}
    for config in configs:
        try:
            key = pack_key(config)
        except ConfigError:  # it cannot run: alone, where its run records the error
            key = config.run_id
        groups.setdefault(key, []).append(config)
    packs = [group[start : start + size] for group in groups.values() for start in range(0, len(group), size)]
    order = {config.run_id: position for position, config in enumerate(configs)}
    return sorted(packs, key=lambda pack: order[pack[0].run_id])


class DropoutMasks(torch.autograd.Function):
    """Scaled dropout masks, ``bernoulli(1 - p) / (1 - p)`` shaped like the input; under ``vmap`` the
    mask of run k is drawn from ``generators[k]``, exactly as ``torch.dropout`` draws on the CPU."""

    @staticmethod
    def forward(x: torch.Tensor, p: float, generators: list[torch.Generator]) -> torch.Tensor:
        return (
            torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p, generator=generators[0]).div_(1 - p)
        )

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.mark_non_differentiable(output)

    @staticmethod
    def vmap(info, in_dims, x, p, generators):
        x = x.movedim(in_dims[0], 0)
        masks = [
            torch.empty(x.shape[1:], dtype=x.dtype, device=x.device).bernoulli_(1 - p, generator=g).div_(1 - p)
            for g in generators
        ]
        return torch.stack(masks), 0


class PackedDropout(nn.Module):
    """``nn.Dropout`` drawing each run's masks from the run's own generator (``generators``, shared
    with the pack and holding the generators of its runs still training, in order)."""

    def __init__(self, p: float, generators: list[torch.Generator]):
        super().__init__()
        self.p, self.generators = p, generators

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * DropoutMasks.apply(x.detach(), self.p, self.generators)


def packed_template(model: nn.Module, generators: list[torch.Generator]) -> nn.Module:
    """A copy of ``model`` (used only for its structure) with every ``nn.Dropout`` a :class:`PackedDropout`."""
    template = copy.deepcopy(model).train()
    for parent in list(template.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, PackedDropout(child.p, generators))
    return template


class PackedStep:
    """One SGD step of every run still training in a pack, as one vectorized forward and backward.

    ``on_first_step()`` is called once the first step has succeeded; a failure of that step raises
    :class:`CannotPack` (the model cannot be vectorized).
    """

    def __init__(self, trainings: list[Training], *, on_first_step: Callable[[], None] = lambda: None):
        self.generators: list[torch.Generator] = []
        self.template = packed_template(trainings[0].model, self.generators)
        self.vectorized = vmap(
            lambda p, b, x: functional_call(self.template, (p, b), (x,)),
            randomness="different",
        )
        """The model applied to every active run's parameters, buffers and batch at once."""
        draws_masks = any(isinstance(m, PackedDropout) and m.p > 0 for m in self.template.modules())
        if trainings[0].config.compile and not draws_masks:  # torch.compile cannot trace per-run generators
            self.vectorized = compiled(self.vectorized, trainings[0].device)
        self.active: list[Training] = []
        self.on_first_step: Callable[[], None] | None = on_first_step

    def set_active(self, trainings: list[Training]) -> None:
        """The runs that the next forward pass computes, in order."""
        self.active = list(trainings)
        self.generators[:] = [training.model_generator for training in self.active]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, classes) of the active runs on their batches ``inputs`` (K, B, ...), in train
        mode; each run's BatchNorm statistics are updated."""
        params = {name: torch.stack(tensors) for name, tensors in self.stacked("named_parameters").items()}
        buffers = {name: torch.stack(tensors) for name, tensors in self.stacked("named_buffers").items()}
        logits = self.vectorized(params, buffers, inputs)
        with torch.no_grad():
            for name, tensors in self.stacked("named_buffers").items():
                for own, updated in zip(tensors, buffers[name]):
                    own.copy_(updated)
        return logits

    def stacked(self, members: str) -> dict[str, list[torch.Tensor]]:
        """Each parameter (or buffer) name of the model, with the active runs' tensors of that name."""
        named = [dict(getattr(t.model, members)()) for t in self.active]
        return {name: [own[name] for own in named] for name in named[0]}

    def __call__(self, batches: list[tuple[Training, torch.Tensor]]) -> torch.Tensor:
        """Train each run of ``batches`` one step on its batch (training-set positions); the summed loss."""
        if self.on_first_step is None:
            return self.step(batches)
        try:
            loss = self.step(batches)
        except Exception as error:  # noqa: BLE001 -- any failure of vmap/functional_call: train one at a time
            message = str(error).strip().splitlines()
            raise CannotPack(f"{type(error).__name__}: {message[0] if message else ''}") from error
        announce, self.on_first_step = self.on_first_step, None
        announce()
        return loss

    def step(self, batches: list[tuple[Training, torch.Tensor]]) -> torch.Tensor:
        """One step of every run of ``batches``, as :meth:`harness.training.Training.step` is for one run."""
        self.set_active([training for training, _ in batches])
        inputs = torch.stack([t.batches(index) for t, index in batches])
        labels = torch.stack([t.batches.labels[index] for t, index in batches])
        first = self.active[0]
        with computing_in(first.config.precision, first.device):
            logits = self.forward(inputs).float()
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
        loss = losses.mean(1).sum()
        loss.backward()
        for training in self.active:
            training.apply_gradients()
        return loss.detach()


class CannotPack(Exception):
    """The model cannot be vectorized; the reason is the message."""


def train_pack(runs: list[StartedRun], on_finished: Callable[[StartedRun], None]) -> None:
    """Train the runs together until each stops; ``on_finished(run)`` as each one does. Raises
    :class:`CannotPack` when the first vectorized step fails; until it has succeeded, the loggers of
    the runs still to train have not heard of them (their runs start again one at a time)."""
    by_training = {id(run.training): run for run in runs}
    trainings = [run.training for run in runs]

    def announce() -> None:
        for run in runs:
            run.announce()

    step = PackedStep(trainings, on_first_step=announce)
    train(trainings, step, RunProgress(), on_finished=lambda training: on_finished(by_training[id(training)]))


def execute_pack(
    configs: list[RunConfig],
    results_dir: Path,
    data_root: Path | None = None,
    device: str = "auto",
    *,
    force: bool = False,
    resume: bool = True,
    on_outcome: Callable[[RunConfig, RunOutcome], None] = lambda config, outcome: None,
    log: tuple[str, ...] = (),
    sweep: str | None = None,
) -> list[RunOutcome]:
    """Train ``configs`` (runs that share a :class:`PackKey`) as one pack and store each run as it stops.

    Completed runs are skipped (unless ``force``) and the others start from their checkpoints
    (unless ``resume`` is false). ``on_outcome`` hears of each run as it is stored. Ctrl-C or
    SIGTERM stores the runs still training as ``interrupted``, an error as ``failed``; both
    re-raise. A model that cannot be vectorized trains its runs one at a time (with a
    :class:`PackingWarning`). Each run reports to the loggers ``log``, told the ``sweep``'s name.
    """
    if len(configs) > 1 and distributed.launched():
        raise ConfigError(
            "packs and data-parallel runs are exclusive: a pack trains in one process "
            "(train its runs as separate tasks, or leave out --pack)"
        )
    checked = [check_run(config, device) for config in configs]
    keys = {pack_key(config) for config, _ in checked}
    if len(keys) > 1:
        raise ValueError(f"runs of one pack must share their model, data shapes and schedule: {sorted(map(str, keys))}")
    results_dir = Path(results_dir)
    check_writable(results_dir)
    outcomes: dict[str, RunOutcome] = {}

    def land(config: RunConfig, outcome: RunOutcome) -> None:
        outcomes[config.run_id] = outcome
        on_outcome(config, outcome)

    def alone(config: RunConfig) -> RunOutcome:
        return execute(
            config, results_dir, data_root=data_root, device=device, force=force, resume=resume, log=log, sweep=sweep
        )

    todo = []
    for config, torch_device in checked:
        done = None if force else completed_run(config, results_dir)
        if done is not None:
            land(config, done)
        else:
            todo.append((config, torch_device))
    if len(todo) == 1:
        land(todo[0][0], alone(todo[0][0]))
    elif todo:
        try:
            train_started(todo, results_dir, data_root, resume, land, log=log, sweep=sweep)
        except CannotPack as reason:
            warnings.warn(
                f"model {todo[0][0].model} cannot be trained in a pack ({reason}); "
                f"its {len(todo)} runs train one at a time",
                PackingWarning,
                stacklevel=2,
            )
            for config, _ in todo:
                land(config, alone(config))
    return [outcomes[config.run_id] for config, _ in checked]


def train_started(
    todo: list[tuple[RunConfig, torch.device]],
    results_dir: Path,
    data_root: Path | None,
    resume: bool,
    land: Callable[[RunConfig, RunOutcome], None],
    *,
    log: tuple[str, ...] = (),
    sweep: str | None = None,
) -> None:
    """Start the runs of ``todo``, train them as one pack, store each as it stops, the rest on the way out."""
    runs = [
        start_run(
            config,
            results_dir,
            data_root,
            torch_device,
            resume=resume,
            pack_size=len(todo),
            log=log,
            sweep=sweep,
            announce=False,  # once the first packed step has shown that the model vectorizes
        )
        for config, torch_device in todo
    ]
    stored: set[str] = set()

    def finished(run: StartedRun) -> None:
        land(run.config, RunOutcome(run.row, finish_run(run, "completed")))
        stored.add(run.run_id)

    status, failure = "interrupted", None
    try:
        with checkpoint.sigterm_as_interrupt():
            train_pack(runs, finished)
    except CannotPack:
        status = None
        raise
    except Exception as error:
        status, failure = "failed", error
        raise
    finally:
        if status is not None:
            for run in runs:
                if run.run_id not in stored:
                    finish_run(run, status, failure)
