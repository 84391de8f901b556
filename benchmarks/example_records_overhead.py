"""What the per-example records (``examples`` table) add to a run's time.

Runs the same configuration with the records and without them (the evaluation as it was
before: summed loss, no per-example bookkeeping, no ``examples`` file), alternating, and
reports the median of the per-pair time ratios (wall clock and process CPU time) and the
load average before and after. On a shared machine these whole-run ratios are noisy, so it
also measures the records' own cost precisely: the fastest of many alternating evaluations
of the training set with and without recording (plus ``end_epoch``), and the writing of the
``examples`` file, each as a share of one epoch's CPU time. Goal: under 3 %.

    python benchmarks/example_records_overhead.py [--dataset digits] [--train-size N] [--epochs 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from unittest import mock

import torch
import torch.nn.functional as F

from harness import training as loop
from harness.config import RunConfig
from harness.data import prepare_data_of
from harness.examples import ExampleRecorder
from harness.results import write_table
from harness.runner import execute, resolve_config
from harness.schema import EXAMPLES_SCHEMA


@torch.no_grad()
def evaluate_without_records(model, batches, labels, record=None, *, forward=None):
    """The evaluation without per-example bookkeeping: summed loss, top-1 and top-5 only."""
    model.eval()
    forward = forward or model
    loss_sum = torch.zeros((), device=labels.device, dtype=torch.float64)
    correct = torch.zeros((), device=labels.device, dtype=torch.int64)
    correct_top5 = torch.zeros((), device=labels.device, dtype=torch.int64)
    start = 0
    for inputs in batches:
        logits = forward(inputs).float()
        target = labels[start : start + len(inputs)]
        loss_sum += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(1) == target).sum()
        correct_top5 += (logits.topk(min(5, logits.shape[1]), dim=1).indices == target[:, None]).any(1).sum()
        start += len(inputs)
    return loss_sum.item() / len(labels), correct.item() / len(labels), correct_top5.item() / len(labels)


def timed_run(config: RunConfig, records: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one run from scratch, with or without the per-example records."""
    with ExitStack() as stack, tempfile.TemporaryDirectory() as results:
        if not records:
            stack.enter_context(mock.patch.object(loop, "evaluate", evaluate_without_records))
            stack.enter_context(mock.patch.object(ExampleRecorder, "end_epoch", lambda self, epoch: None))
            stack.enter_context(
                mock.patch.object(loop.Training, "examples_table", lambda self: EXAMPLES_SCHEMA.empty_table())
            )
        wall, cpu = time.perf_counter(), time.process_time()
        execute(config, results, device="cpu")
        return time.perf_counter() - wall, time.process_time() - cpu


def fastest(step, repeats: int) -> float:
    """The fastest CPU time of ``step()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return min(times)


def record_costs(config: RunConfig, repeats: int) -> tuple[float, float, float]:
    """CPU seconds of one training-set evaluation with and without the records, and of writing
    the ``examples`` file."""
    config = resolve_config(config)
    data = prepare_data_of(config)
    training = loop.Training(config, data, [], torch.device("cpu"))
    inputs, labels = training.evaluations["train"]

    def with_records():
        loop.evaluate(training.model, training.evaluation_batches(inputs), labels, training.examples.observer(0))
        training.examples.end_epoch(training.examples.epochs + 1)

    def without_records():
        evaluate_without_records(training.model, training.evaluation_batches(inputs), labels)

    with_records()  # warm-up
    pairs = [(fastest(with_records, 3), fastest(without_records, 3)) for _ in range(repeats)]
    with tempfile.TemporaryDirectory() as results:
        write = fastest(lambda: write_table(results, "examples", "x", training.examples_table(), EXAMPLES_SCHEMA), 3)
    return min(p[0] for p in pairs), min(p[1] for p in pairs), write


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--plugin", default="mlp_1x512")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # lr 0 keeps every epoch's work identical (no early stop at 100 % training accuracy).
    config = RunConfig(
        model=args.plugin,
        corruption="random_labels",
        dataset=args.dataset,
        corrupt_prob=0.2,
        train_size=args.train_size,
        test_size=args.test_size,
        max_epochs=args.epochs,
        lr=1e-9,
        lr_decay=1.0,
    )
    print(f"load before: {uptime()}", flush=True)
    timed_run(config, True)  # warm-up: imports, data loading, caches
    pairs = []
    for repeat in range(args.repeats):
        order = (True, False) if repeat % 2 == 0 else (False, True)
        times = {records: timed_run(config, records) for records in order}
        pairs.append(times)
        print(
            f"repeat {repeat + 1}: with {times[True][0]:.2f} s wall / {times[True][1]:.2f} s CPU, "
            f"without {times[False][0]:.2f} s / {times[False][1]:.2f} s",
            flush=True,
        )
    print(f"load after: {uptime()}")
    for kind, i in (("wall", 0), ("CPU", 1)):
        ratios = [p[True][i] / p[False][i] for p in pairs]
        print(
            f"{kind} time with / without records: median {statistics.median(ratios):.3f} "
            f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)})"
        )
    print(
        f"{args.plugin} on {args.dataset} (train {args.train_size or 'all'}, test {args.test_size or 'all'}), "
        f"{args.epochs} epochs, {args.threads} thread(s)"
    )
    epoch_cpu = statistics.median(p[False][1] for p in pairs) / args.epochs
    with_records, without, write = record_costs(config, 10)
    added = with_records - without
    print(
        f"training-set evaluation (fastest of 30): {with_records * 1e3:.1f} ms with records, {without * 1e3:.1f} ms "
        f"without: +{added * 1e3:.2f} ms per epoch = {added / epoch_cpu:.2%} of an epoch's CPU time "
        f"({epoch_cpu:.2f} s, median run without records)"
    )
    print(f"writing the examples file once: {write * 1e3:.1f} ms = {write / (epoch_cpu * args.epochs):.2%} of the run")


if __name__ == "__main__":
    main()
