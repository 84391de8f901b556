"""The random_conv feature map against a plain float32 convolution of the same shapes, in the same run.

The plain convolution is ``torch.nn.functional.conv2d`` of the same images (N, 3, 32, 32), in the same
batches, with the same filter chunks (C x patch x patch), its output discarded, in the faster of the
two memory layouts: the arithmetic a feature map of these filters cannot avoid. The feature map's time is everything ``blocks`` does once
its filters are drawn (normalization, convolution, threshold, pooling, copies). Reported: seconds of
each, the ratio (goal: at most 2), and the feature map's GFLOP/s. Each is timed ``--repeats`` times,
alternating, and the fastest counts.

    python benchmarks/feature_maps.py [--images 6000] [--num-filters 1000] [--batch-sizes 8 16 64] [--repeats 2]

The images are the first CIFAR-10 training images under HARNESS_DATA_ROOT (uniform noise of the same
shape when CIFAR-10 is not there; the timing does not depend on the values).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from harness.data import DataError, load_dataset
from harness.plugins.feature_maps import RandomConvFeatures


def cifar_images(count: int) -> tuple[np.ndarray, str]:
    """(count, 32, 32, 3) float32 images in [0, 1], and where they came from."""
    try:
        x = load_dataset("cifar10", download=False).x_train[:count]
        return x.astype(np.float32) / np.float32(255), "CIFAR-10"
    except DataError:
        return np.random.default_rng(0).random((count, 32, 32, 3), dtype=np.float32), "uniform noise"


@torch.no_grad()
def plain_convolution(x: np.ndarray, feature_map: RandomConvFeatures, filters: torch.Tensor) -> float:
    """Seconds of conv2d alone over every filter chunk and image batch of ``feature_map``'s blocks, the
    faster of the images' two memory layouts (channels last, as they are stored, and channels first)."""
    step = feature_map._filters_per_block(x.shape[1:])
    seconds = []
    for layout in (torch.channels_last, torch.contiguous_format):
        images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=layout)
        start = time.perf_counter()
        for first in range(0, len(filters), step):
            weight = filters[first : first + step, :-1].reshape(-1, 3, feature_map.patch, feature_map.patch)
            for batch in range(0, len(x), feature_map.batch_size):
                F.conv2d(images[batch : batch + feature_map.batch_size], weight)
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def feature_time(x: np.ndarray, feature_map: RandomConvFeatures, filters: torch.Tensor) -> float:
    """Seconds of the feature map's blocks on ``x`` with its filters already drawn."""
    feature_map._filter_bank = lambda x_train: filters
    start = time.perf_counter()
    for _ in feature_map.blocks(x, x[:0]):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--num-filters", type=int, default=1000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 64])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    x, source = cifar_images(args.images)
    filters = RandomConvFeatures(num_filters=args.num_filters)._filter_bank(x)
    flops = 2 * args.images * args.num_filters * 27 * 27 * 3 * 6 * 6
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    table = Table(
        "batch",
        "conv2d s",
        "random_conv s",
        "ratio",
        "random_conv GFLOP/s",
        title=f"random_conv, {args.num_filters} filters on {args.images} {source} images; {torch.get_num_threads()} "
        f"threads; {cpu}; load before {os.getloadavg()[0]:.2f}",
    )
    for batch_size in args.batch_sizes:
        feature_map = RandomConvFeatures(num_filters=args.num_filters, batch_size=batch_size)
        conv, features = [], []
        for _ in range(args.repeats):
            conv.append(plain_convolution(x, feature_map, filters))
            features.append(feature_time(x, feature_map, filters))
        best_conv, best_features = min(conv), min(features)
        table.add_row(
            str(batch_size),
            f"{best_conv:.1f}",
            f"{best_features:.1f}",
            f"{best_features / best_conv:.2f}",
            f"{flops / best_features / 1e9:.0f}",
        )
    Console().print(table)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
