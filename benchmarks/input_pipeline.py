"""Images per second per CPU core of decoding a JPEG folder: harness.images.decode_image against
torchvision's ImageFolder transforms, through a DataLoader and alone.

- baseline: torchvision's ``ImageFolder`` with ``Compose([Resize(size), CenterCrop(size),
  ToTensor()])`` (Pillow), float32 CHW tensors;
- ours: a ``Dataset`` of the same files whose items are ``torch.from_numpy(decode_image(path,
  size))``, uint8 HWC tensors (the conversion to float happens later, on batches);
- streamed run: the same files read as a run streams a ``folder:`` data set, batches of positions
  through ``harness.streaming.read_batches`` (each worker decodes whole batches; the workers start
  anew every pass, as every epoch), against the baseline's loader.

Both go through ``DataLoader(batch_size=64, num_workers=W, persistent_workers=True)``; per core is
images/second divided by W (the workers decode; with W = 0 the main process, one core, does).
"Alone" is each decoder called in a loop in this process, one torch thread, no DataLoader: the
decoding without the loader's overhead. Every measurement is one pass over all the images, after
a warm-up pass; the two alternate for ``--rounds`` rounds and the median counts. Reported: images/s
per core of each and the ratio ours / baseline (goal: at least 2). ``--levers`` adds
the alternatives that ``decode_image``'s docstring weighs, alone. ``--device cuda`` adds
``torchvision.io.decode_jpeg`` on the GPU (nvJPEG), batches of 64 files already in memory, resized
and cropped there.

    python benchmarks/input_pipeline.py [--images 1000] [--workers 2] [--sizes 299,224] [--tree PATH]
        [--rounds 3] [--levers] [--device cuda]

The images are a tree written by harness.sample_images.write_jpeg_tree (photograph crops, shorter
side 400 to 500 pixels, JPEG quality 90): ``--images`` of them in 10 classes, in a temporary
folder, or in ``--tree PATH`` where it is missing; a tree already at PATH is used whole.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import pil_loader
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as F

from harness import images
from harness.images import decode_image, resize_geometry
from harness.sample_images import write_jpeg_tree
from harness.streaming import WORKERS_ENV, ImageFiles, in_order, read_batches

BATCH_SIZE = 64
CLASSES = 10


def baseline_transform(size: int) -> transforms.Compose:
    return transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])


def baseline(path: str, size: int) -> torch.Tensor:
    """ImageFolder's loader and the baseline's transforms."""
    return baseline_transform(size)(pil_loader(path))


def ours(path: str, size: int) -> torch.Tensor:
    return torch.from_numpy(decode_image(path, size))


class DecodedImageFolder(Dataset):
    """The files of an ImageFolder, as (uint8 (size, size, 3) tensor, class) through decode_image."""

    def __init__(self, samples: list[tuple[str, int]], size: int):
        self.samples = samples
        self.size = size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, target = self.samples[index]
        return ours(path, self.size), target


def cpu_model() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def rates(measures: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Median images/second of each measure (it returns the images it went through), after a
    warm-up call of each; the measures alternate, in reverse order every other round."""
    for measure in measures.values():
        measure()
    seen = {name: [] for name in measures}
    for round_ in range(rounds):
        for name in list(measures)[:: 1 if round_ % 2 == 0 else -1]:
            start = time.perf_counter()
            count = measures[name]()
            seen[name].append(count / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in seen.items()}


def loader_pass(loader: DataLoader) -> Callable[[], int]:
    def run() -> int:
        return sum(len(targets) for _, targets in loader)

    return run


def streamed_pass(files: ImageFiles) -> Callable[[], int]:
    """An epoch's reading as a streamed run does it: batches of positions through read_batches (its
    workers start anew every pass, as every epoch)."""

    def run() -> int:
        return sum(len(batch) for batch in read_batches(files, in_order(len(files), BATCH_SIZE)))

    return run


def alone_pass(paths: list[str], decode: Callable[[str, int], object], size: int) -> Callable[[], int]:
    def run() -> int:
        for path in paths:
            decode(path, size)
        return len(paths)

    return run


def torchvision_transforms(path: str, size: int) -> np.ndarray:
    """ImageFolder's loader, Resize and CenterCrop (Pillow's resize); no ToTensor."""
    transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])
    return np.asarray(transform(pil_loader(path)))


def pillow_box_resize(path: str, size: int) -> np.ndarray:
    """Pillow throughout: the reduced JPEG decode of decode_image, then Pillow's resize of the
    box that survives the center crop."""
    with Image.open(path) as image:
        width, height = image.size
        drafted = image.draft(None, (images.DRAFT_MARGIN * size,) * 2)
        reduction = 1 if drafted is None else width / drafted[1][2]
        image.load()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
    new_width, new_height, left, top = resize_geometry(width, height, size)
    x, y = width / new_width / reduction, height / new_height / reduction
    box = (left * x, top * y, (left + size) * x, (top + size) * y)
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR, box=box))


def torchvision_io(path: str, size: int) -> torch.Tensor:
    """torchvision.io.decode_jpeg, then torchvision's resize and center crop of uint8 tensors."""
    image = decode_jpeg(read_file(path), mode=ImageReadMode.RGB)
    return F.center_crop(F.resize(image, size, antialias=True), size)


def with_margin(margin: int) -> Callable[[str, int], np.ndarray]:
    """decode_image with another limit on the reduced JPEG decode (a huge margin: none)."""

    def decode(path: str, size: int) -> np.ndarray:
        saved, images.DRAFT_MARGIN = images.DRAFT_MARGIN, margin
        try:
            return decode_image(path, size)
        finally:
            images.DRAFT_MARGIN = saved

    return decode


def gpu_rate(paths: list[str], size: int, rounds: int) -> float:
    """Images/second of nvJPEG decoding, resizing and cropping batches of files already in memory."""
    data = [read_file(path) for path in paths]

    def run() -> int:
        for first in range(0, len(data), BATCH_SIZE):
            decoded = decode_jpeg(data[first : first + BATCH_SIZE], mode=ImageReadMode.RGB, device="cuda")
            torch.stack([F.center_crop(F.resize(image, size, antialias=True), size) for image in decoded])
        torch.cuda.synchronize()
        return len(data)

    return rates({"gpu": run}, rounds)["gpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images of a tree written here")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: the main process)")
    parser.add_argument("--sizes", default="299,224", help="output sides, comma-separated")
    parser.add_argument("--tree", type=Path, help="an ImageFolder tree to use, or where to write one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levers", action="store_true", help="time decode_image's alternatives too")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)

    console = Console(width=120)
    cores = max(args.workers, 1)
    console.print(
        f"{cpu_model()}; torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}; "
        f"{cores} core{'s' * (cores > 1)} ({args.workers} workers); load average before {load_average()}",
        highlight=False,
    )
    with tempfile.TemporaryDirectory() as scratch:
        tree = args.tree or Path(scratch)
        if not (tree / "train").is_dir():
            start = time.perf_counter()
            write_jpeg_tree(tree, classes=CLASSES, per_class={"train": args.images // CLASSES})
            console.print(f"wrote {tree / 'train'} in {time.perf_counter() - start:.1f} s")
        samples = ImageFolder(str(tree / "train")).samples
        paths = [path for path, _ in samples]
        os.environ[WORKERS_ENV] = str(args.workers)
        table = Table(
            "size",
            "measure",
            "baseline",
            "ours",
            "ours / baseline",
            title=f"images/s per core (DataLoader: images/s ÷ {cores}; alone: one thread), median of {args.rounds} "
            f"rounds, {len(paths)} JPEGs in {tree / 'train'}",
        )
        for size in sizes:
            loaders = {
                name: DataLoader(
                    dataset, batch_size=BATCH_SIZE, num_workers=args.workers, persistent_workers=args.workers > 0
                )
                for name, dataset in {
                    "baseline": ImageFolder(str(tree / "train"), transform=baseline_transform(size)),
                    "ours": DecodedImageFolder(samples, size),
                }.items()
            }
            files = ImageFiles.of(tree, [os.path.relpath(path, tree) for path in paths], size, "train")
            passes = {name: loader_pass(loader) for name, loader in loaders.items()}
            loaded = rates({**passes, "streamed": streamed_pass(files)}, args.rounds)
            del loaders  # their workers exit
            alone = rates(
                {"baseline": alone_pass(paths, baseline, size), "ours": alone_pass(paths, ours, size)}, args.rounds
            )
            streamed = {"baseline": loaded["baseline"], "ours": loaded["streamed"]}
            for measure, rate, per in (
                ("DataLoader", loaded, cores),
                ("streamed run", streamed, cores),
                ("alone", alone, 1),
            ):
                table.add_row(
                    str(size),
                    measure,
                    f"{rate['baseline'] / per:.0f}",
                    f"{rate['ours'] / per:.0f}",
                    f"{rate['ours'] / rate['baseline']:.2f}",
                )
            console.print(f"{size} px done; load average {load_average()}", highlight=False)
        console.print(table)

        if args.levers:
            levers = Table(
                "size", "decoder, alone", "images/s", "/ torchvision transforms", title="decode_image's alternatives"
            )
            for size in sizes:
                decoders = {
                    "torchvision transforms (Pillow resize)": torchvision_transforms,
                    "Pillow resize of the crop box": pillow_box_resize,
                    "decode_image": decode_image,
                    "decode_image, no reduced decode": with_margin(10**6),
                    "decode_image, reduced decode to size": with_margin(1),
                    "torchvision.io.decode_jpeg + resize": torchvision_io,
                }
                rate = rates({name: alone_pass(paths, decode, size) for name, decode in decoders.items()}, args.rounds)
                reference = rate["torchvision transforms (Pillow resize)"]
                for name, value in rate.items():
                    levers.add_row(str(size), name, f"{value:.0f}", f"{value / reference:.2f}")
            console.print(levers)

        if args.device == "cuda":
            if torch.cuda.is_available():
                for size in sizes:
                    console.print(
                        f"{size} px, nvJPEG on {torch.cuda.get_device_name()}: "
                        f"{gpu_rate(paths, size, args.rounds):.0f} images/s (batches of {BATCH_SIZE}, files in memory)",
                        highlight=False,
                    )
            else:
                console.print("--device cuda: no CUDA device here, skipped")
    console.print(f"load average after {load_average()}", highlight=False)


if __name__ == "__main__":
    main()
