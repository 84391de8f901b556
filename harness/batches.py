"""The training examples of a run: the random subset it trains on, the early-stopping holdout, and its
batches (precomputed inputs, or raw images through the regularizers' transforms; read from disk for a
data set that streams)."""

from __future__ import annotations

import numpy as np
import torch

from harness.compute import layout
from harness.data import ImageDataset, center_crop, standardize_per_image, to_model_input
from harness.distributed import ALONE, World
from harness.regularizers import Regularizer
from harness.streaming import ImageFiles, StreamedBatches


def split_holdout(data: ImageDataset, fraction: float) -> tuple[ImageDataset, ImageDataset | None]:
    """Keep the last ``fraction`` of the training examples apart (for early stopping)."""
    if fraction <= 0:
        return data, None
    keep = len(data.y_train) - max(1, int(round(fraction * len(data.y_train))))
    holdout = data.replace(x_test=data.x_train[keep:], y_test=data.y_train[keep:])
    return data.replace(x_train=data.x_train[:keep], y_train=data.y_train[:keep]), holdout


def random_subset(n: int, fraction: float | None, subset_seed: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(trained, left out): training-set positions, in order, of a random ``fraction`` of ``n`` examples
    drawn with ``(seed, subset_seed)``; all of them when ``fraction`` is None."""
    if fraction is None:
        return np.arange(n), np.arange(0)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng([seed, subset_seed]).permutation(n)[: max(1, round(fraction * n))]] = True
    return np.flatnonzero(chosen), np.flatnonzero(~chosen)


class BatchSource:
    """Training batches: precomputed model inputs, or raw images sent through the
    regularizers' transforms, then center crop and standardization. Images read from disk
    (:class:`~harness.streaming.ImageFiles`) take the second way, batch by batch: the
    epoch's batches must be announced (:meth:`start_epoch`) and then asked for in order.

    A process of a data-parallel run (``world``) gets the inputs of its shard of each batch
    (:meth:`~harness.distributed.World.bounds`) and reads only those. The transforms draw for the
    whole batch, in its rows (zeros in the rows of the other shards of a streamed batch), so that
    every process draws what one process would, whatever the number of processes.
    """

    def __init__(
        self,
        data: ImageDataset,
        regularizers: list[Regularizer],
        device: torch.device,
        seed: int,
        *,
        channels_last: bool = False,
        world: World = ALONE,
    ):
        self.data, self.channels_last, self.world = data, channels_last, world
        self.transforms = [r for r in regularizers if r.transforms_batches]
        self.labels = torch.as_tensor(data.y_train, device=device)
        self.streamed = StreamedBatches(data.x_train, device) if isinstance(data.x_train, ImageFiles) else None
        self.inputs = self.raw = None
        if self.streamed is None:
            self.inputs = to_model_input(data.x_train, data).to(device)
        if self.streamed is None and self.transforms:
            self.raw = torch.as_tensor(data.x_train).permute(0, 3, 1, 2).contiguous().to(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        return layout(self.batch(index), self.channels_last)

    def start_epoch(self, batches: list[torch.Tensor]) -> None:
        """The positions of the coming epoch's batches, in order (this process's shards read ahead when
        streamed)."""
        if self.streamed is not None:
            self.streamed.start_epoch([batch[self.world.bounds(len(batch))] for batch in batches])

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """This process's shard of the training batch at positions ``index`` (all of it when alone), in the
        default memory layout."""
        part = self.world.bounds(len(index))
        if self.streamed is None and not self.transforms:
            return self.inputs[index[part]]
        if self.streamed is None:
            images = self.raw[index]
        else:
            images = self.streamed(index[part]).permute(0, 3, 1, 2)
            if self.transforms:
                whole = images.new_zeros((len(index), *images.shape[1:]))
                whole[part] = images
                images = whole
        for regularizer in self.transforms:
            images = regularizer.transform_batch(images, self.data.crop, self.generator)
        if self.transforms:
            images = images[part]
        if self.data.crop and images.shape[-1] != self.data.crop:
            images = center_crop(images, self.data.crop)
        return standardize_per_image(images) if self.data.standardize else images
