"""Image data sets read from disk: images decoded on demand by ``DataLoader`` workers, never held whole.

An :class:`ImageFiles` stands where an in-memory data set has its (N, H, W, C) image array: it slices
and indexes like one (a slice is another :class:`ImageFiles`), and reads batches of images, decoded,
resized and passed through the per-example corruption (:data:`ExampleTransform`) that
the data set carries. Every image is a function of its file and its example index alone, so a batch
is the same whatever process or worker reads it, and in every epoch.

A data set whose images fit the memory budget (:func:`memory_budget`) is read once, into memory, and
trained on like CIFAR-10; a larger one streams: :class:`StreamedBatches` reads each epoch's batches
in the background, :func:`read_batches` the evaluation batches.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.errors import DataError

PIXEL_SCALE = np.float32(1 / 255)
"""The factor that turns uint8 pixels into float32 values in [0, 1]."""

ExampleTransform = Callable[[np.ndarray, str, np.ndarray], np.ndarray]
"""A corruption of images defined per example: ``transform(images, split, indices)`` returns the
(B, H, W, C) float32 ``images`` of ``split`` ("train" or "test"), whose example indices in that split
are ``indices``, corrupted. Each image's result depends on that image and its index alone."""

WORKERS_ENV = "HARNESS_DATA_WORKERS"
MEMORY_BUDGET_ENV = "HARNESS_MEMORY_BUDGET_GB"


@dataclass(frozen=True, eq=False)
class ImageFiles:
    """Images of one split, read from files: (N, size, size, 3) float32 in [0, 1] once read.

    ``names`` are the files' paths relative to ``root`` (bytes, one per example, in the data set's
    order), ``indices`` each one's example index within its split (what per-example corruptions
    draw from), ``transform`` the per-example corruption applied on reading (None: none).
    """

    root: str
    names: np.ndarray
    indices: np.ndarray
    size: int
    split: str
    transform: ExampleTransform | None = None

    @classmethod
    def of(cls, root: Path, names: Sequence[str], size: int, split: str) -> ImageFiles:
        encoded = np.array([name.encode() for name in names], dtype=bytes)
        return cls(str(root), encoded, np.arange(len(names)), size, split)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.size, self.size, 3)

    @property
    def nbytes(self) -> int:
        """Bytes of these images in memory as float32."""
        return int(np.prod(self.shape)) * 4

    def __getitem__(self, key) -> ImageFiles:
        if isinstance(key, (int, np.integer)):
            raise TypeError("ImageFiles are read by batches (ImageFiles.read), not one by one")
        return dataclasses.replace(self, names=self.names[key], indices=self.indices[key])

    def with_transform(self, transform: ExampleTransform) -> ImageFiles:
        if self.transform is not None:
            raise DataError(f"images of {self.root} are corrupted twice")
        return dataclasses.replace(self, transform=transform)

    def path(self, position: int) -> Path:
        return Path(self.root) / self.names[position].decode()

    def read(self, positions: np.ndarray | None = None) -> np.ndarray:
        """The images at ``positions`` (all when None) as float32 (B, size, size, 3) in [0, 1], corrupted;
        uint8 in [0, 255] when no corruption is applied (scale them with :data:`PIXEL_SCALE`)."""
        from harness.images import decode_image

        positions = np.arange(len(self)) if positions is None else np.asarray(positions)
        images = np.empty((len(positions), self.size, self.size, 3), dtype=np.uint8)
        for row, position in enumerate(positions):
            images[row] = decode_image(self.path(position), self.size)
        if self.transform is None:
            return images
        return self.transform(images.astype(np.float32) * PIXEL_SCALE, self.split, self.indices[positions])


class _BatchReader(torch.utils.data.Dataset):
    """The ``DataLoader`` view of :class:`ImageFiles`: item ``positions`` is that batch, as a tensor; an
    unreadable image comes back as its error's message (raised in the main process, in one line)."""

    def __init__(self, files: ImageFiles):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, positions):
        try:
            return torch.from_numpy(self.files.read(positions))
        except DataError as error:
            return str(error)


def data_workers() -> int:
    """Processes that read images: ``$HARNESS_DATA_WORKERS`` if set (0: the main process), else the
    CPU count, at most 8."""
    value = os.environ.get(WORKERS_ENV)
    if value is None:
        return min(8, os.cpu_count() or 1)
    if not value.isdigit():
        raise DataError(f"{WORKERS_ENV} must be a whole number, got {value!r}")
    return int(value)


def memory_budget() -> int:
    """Bytes a data set's float32 images may take in memory: ``$HARNESS_MEMORY_BUDGET_GB`` if set, else a
    quarter of the physical memory. A larger data set streams from disk."""
    value = os.environ.get(MEMORY_BUDGET_ENV)
    if value is not None:
        try:
            return int(float(value) * 2**30)
        except ValueError:
            raise DataError(f"{MEMORY_BUDGET_ENV} must be a number of GiB, got {value!r}") from None
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def read_batches(
    files: ImageFiles, batches: Sequence[np.ndarray], *, pin_memory: bool = False
) -> Iterator[torch.Tensor]:
    """The batches of ``files`` at each array of positions of ``batches``, in order, read ahead by
    :func:`data_workers` processes (uint8 or float32, (B, H, W, C), as :meth:`ImageFiles.read`)."""
    workers = data_workers()
    loader = torch.utils.data.DataLoader(
        _BatchReader(files),
        batch_size=None,
        sampler=batches,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
    )
    for batch in loader:
        if isinstance(batch, str):
            raise DataError(batch)
        yield batch


def in_order(count: int, batch: int) -> list[np.ndarray]:
    """Positions 0..count-1 in batches of ``batch``."""
    return [np.arange(start, min(start + batch, count)) for start in range(0, count, batch)]


def as_float(batch: torch.Tensor) -> torch.Tensor:
    """A batch read as uint8 scaled to [0, 1] exactly as :func:`harness.data.to_float` scales arrays."""
    return batch.float() * torch.tensor(PIXEL_SCALE) if batch.dtype == torch.uint8 else batch


class StreamedBatches:
    """Training batches read from disk: :meth:`start_epoch` gets the epoch's batches of positions, which
    the data workers then read ahead; each call returns the next of them (the positions it is given
    must be those, in order)."""

    def __init__(self, files: ImageFiles, device: torch.device):
        self.files, self.device = files, device
        self.pending: Iterator[torch.Tensor] | None = None

    def start_epoch(self, batches: list[torch.Tensor]) -> None:
        positions = [batch.cpu().numpy() for batch in batches]
        self.pending = zip(positions, read_batches(self.files, positions, pin_memory=self.device.type == "cuda"))

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        positions, images = next(self.pending)
        if len(positions) != len(index):  # the shapes only: no wait for a device on every step
            raise RuntimeError("a streamed batch was asked for out of its epoch's order")
        return as_float(images.to(self.device, non_blocking=True))
