"""Per-example records of a run: when each training example was first fitted, when it was
learned for good, how often it was forgotten, and its final margin and loss.

The records are updated from the whole-training-set evaluation every epoch already does
(no extra forward pass) and take O(n) memory; they become the ``examples`` table.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from harness.schema import EXAMPLES_SCHEMA


class ExampleRecorder:
    """The history of ``n`` examples over a run's evaluations.

    Each epoch, every evaluated batch goes through :meth:`observe` (positions ``start`` on),
    then :meth:`end_epoch` folds the epoch into the history. An epoch whose evaluation was
    cut short changes nothing, so an interrupted run keeps the records of its finished epochs.
    """

    def __init__(self, n: int, device: torch.device | str = "cpu"):
        def zeros(dtype):
            return torch.zeros(n, dtype=dtype, device=device)

        self.epochs = 0
        self.correct = zeros(torch.bool)  # classified as its label at the last finished epoch
        self.first_fit = zeros(torch.int32)  # first epoch classified as its label, 0 = never
        self.streak_start = zeros(torch.int32)  # epoch since which it is classified as its label, 0 = not now
        self.forgetting = zeros(torch.int32)  # correct at one epoch, wrong at the next
        self.margin = zeros(torch.float32)
        self.loss = zeros(torch.float32)
        self._now = {"correct": zeros(torch.bool), "margin": zeros(torch.float32), "loss": zeros(torch.float32)}

    def __len__(self) -> int:
        return len(self.correct)

    def observe(
        self, start: int, logits: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor, correct: torch.Tensor
    ) -> None:
        """One evaluated batch: examples ``start`` to ``start + len(labels)``, their logits, labels,
        per-example cross-entropy and whether the prediction is the label."""
        end = start + len(labels)
        label_logit = logits.gather(1, labels[:, None]).squeeze(1)
        best_other = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
        self._now["margin"][start:end] = label_logit - best_other
        self._now["loss"][start:end] = losses
        self._now["correct"][start:end] = correct

    def observer(self, offset: int):
        """:meth:`observe` for a split whose examples sit at positions ``offset`` on."""
        return lambda start, *batch: self.observe(offset + start, *batch)

    def gather(self, observed: torch.Tensor, all_sum) -> None:
        """The epoch's observations of every process of a data-parallel run, each of which observed the
        examples where its ``observed`` mask is true: ``all_sum(tensor)`` adds up, over the processes,
        each one's observations with zeros elsewhere (exact)."""
        for name, now in self._now.items():
            mine = torch.where(observed, now, torch.zeros_like(now))
            now.copy_(all_sum(mine.to(torch.uint8) if name == "correct" else mine))

    def end_epoch(self, epoch: int) -> None:
        """Fold the epoch's evaluation (every example observed) into the history."""
        now = self._now["correct"]
        self.forgetting += (self.correct & ~now).int()
        self.first_fit[(self.first_fit == 0) & now] = epoch
        self.streak_start[now & ~self.correct] = epoch
        self.streak_start[~now] = 0
        self.correct.copy_(now)
        self.margin.copy_(self._now["margin"])
        self.loss.copy_(self._now["loss"])
        self.epochs = epoch

    def state_dict(self) -> dict:
        """The history as plain CPU tensors (for a checkpoint)."""
        state = {
            name: getattr(self, name).cpu().clone()
            for name in ("correct", "first_fit", "streak_start", "forgetting", "margin", "loss")
        }
        return {**state, "epochs": torch.tensor(self.epochs)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a history saved by :meth:`state_dict`."""
        if len(state["correct"]) != len(self):
            raise ValueError(f"example records of {len(state['correct'])} examples cannot restore a run of {len(self)}")
        for name in ("correct", "first_fit", "streak_start", "forgetting", "margin", "loss"):
            getattr(self, name).copy_(state[name])
        self.epochs = int(state["epochs"])

    def columns(self) -> dict[str, np.ndarray]:
        """first_fit_epoch, learned_epoch, forgetting_events, final_margin, final_loss as arrays
        (NaN / -1 where there is nothing yet: no epoch finished, or never fitted)."""
        finished = self.epochs > 0
        learned = torch.where(self.correct, self.streak_start, torch.zeros_like(self.streak_start))
        return {
            "first_fit_epoch": self.first_fit.cpu().numpy().astype(np.int64),
            "learned_epoch": learned.cpu().numpy().astype(np.int64),
            "forgetting_events": self.forgetting.cpu().numpy().astype(np.int64),
            "final_margin": self.margin.cpu().double().numpy() if finished else np.full(len(self), np.nan),
            "final_loss": self.loss.cpu().double().numpy() if finished else np.full(len(self), np.nan),
        }


def examples_table(
    run_id: str,
    recorder: ExampleRecorder,
    index: np.ndarray,
    labels: np.ndarray,
    true_labels: np.ndarray | None,
    corrupted: np.ndarray | None,
    redrawn: np.ndarray | None,
    trained: np.ndarray,
) -> pa.Table:
    """The ``examples`` rows of a run: recorder position ``i`` is training example ``index[i]``
    (labels and masks are indexed by training example; a None mask is stored as null)."""

    def by_example(values):
        return None if values is None else np.asarray(values)[index]

    history = recorder.columns()
    columns = {
        "run_id": np.full(len(index), run_id, dtype=object),
        "index": index,
        "label": by_example(labels),
        "true_label": by_example(true_labels),
        "corrupted": by_example(corrupted),
        "redrawn": by_example(redrawn),
        "trained": trained,
        **history,
    }
    unset = {"first_fit_epoch": history["first_fit_epoch"] == 0, "learned_epoch": history["learned_epoch"] == 0}
    arrays = [
        pa.nulls(len(index), field.type)
        if columns[field.name] is None
        else pa.array(columns[field.name], field.type, mask=unset.get(field.name), from_pandas=True)  # NaN -> null
        for field in EXAMPLES_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=EXAMPLES_SCHEMA)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for ``positive`` (ties count half); None without
    both classes. 1: every positive scores above every negative; 0.5: no separation."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
