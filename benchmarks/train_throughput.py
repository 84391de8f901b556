"""Training throughput of harness's run loop against a bare PyTorch loop doing the same work.

Both train the same model on the same tensors (batch 128, SGD with momentum, the model's
learning rate decayed per epoch) and evaluate the whole training and test sets after every
epoch. Each loop runs ``--repeats`` times, alternating, and the fastest counts. Reported:
images/second of each and the time ratio harness / bare (goal ≤ 1.05).

    python benchmarks/train_throughput.py [--train-size 1000] [--epochs 2] [--repeats 3] [--dataset cifar10] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from harness.config import RunConfig
from harness.data import prepare_data_of, to_model_input
from harness.runner import execute, resolve_config
from harness.training import build_model, evaluate


def bare_loop(config: RunConfig, device: torch.device, data_root: Path | None) -> float:
    """Seconds of a plain PyTorch training loop with per-epoch evaluation."""
    data = prepare_data_of(config, data_root)
    x_train, y_train = to_model_input(data.x_train, data).to(device), torch.as_tensor(data.y_train, device=device)
    x_test, y_test = to_model_input(data.x_test, data).to(device), torch.as_tensor(data.y_test, device=device)
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, data.num_classes, []).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    order_generator = torch.Generator().manual_seed(config.seed)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(config.max_epochs):
        model.train()
        for index in torch.randperm(len(y_train), generator=order_generator).to(device).split(config.batch_size):
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] *= config.lr_decay
        evaluate(model, x_train, y_train)
        evaluate(model, x_test, y_test)
    synchronize(device)
    return time.perf_counter() - start


def harness_loop(config: RunConfig, device: torch.device, data_root: Path | None) -> float:
    """Seconds of ``harness.runner.execute``'s training loop (its own wall clock, data loading excluded)."""
    with tempfile.TemporaryDirectory() as results:
        row = execute(config, Path(results), data_root=data_root, device=device.type, force=True).row
    assert row["epochs"] == config.max_epochs, "the run stopped early; use random labels so it runs every epoch"
    return row["wall_seconds"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", nargs="+", default=["mlp_1x512", "alexnet", "inception"], help="model plugins")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument(
        "--devices", nargs="+", default=["cpu", "cuda"], help="Devices to measure (cuda where available)."
    )
    args = parser.parse_args()
    devices = [torch.device(d) for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    table = Table(
        "device",
        "model",
        "harness img/s",
        "bare img/s",
        "time harness / bare",
        title=f"Training throughput ({args.dataset}, {args.train_size} images × {args.epochs} epochs, batch 128)",
    )
    for device in devices:
        for model in args.plugin:
            config = resolve_config(
                RunConfig(
                    model=model,
                    dataset=args.dataset,
                    corruption="random_labels",
                    train_size=args.train_size,
                    test_size=args.test_size,
                    max_epochs=args.epochs,
                )
            )
            bare_loop(replace(config, max_epochs=1), device, args.data_root)  # warm-up
            images = args.train_size * args.epochs
            seconds = {"harness": [], "bare": []}
            for _ in range(args.repeats):
                seconds["harness"].append(harness_loop(config, device, args.data_root))
                seconds["bare"].append(bare_loop(config, device, args.data_root))
            harness_ips, bare_ips = images / min(seconds["harness"]), images / min(seconds["bare"])
            table.add_row(
                device.type, model, f"{harness_ips:,.0f}", f"{bare_ips:,.0f}", f"{bare_ips / harness_ips:.3f}"
            )
    Console().print(table)


if __name__ == "__main__":
    main()
