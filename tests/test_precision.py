"""The fast path of one run: --precision, --channels-last, --compile."""

import math
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from harness.cli import create_app
from harness.config import RunConfig
from harness.data import prepare_data
from harness.regularizers import build_regularizers
from harness.runner import check_run, execute, resolve_config

SMALL = dict(model="alexnet", dataset="digits", train_size=256, test_size=100, max_epochs=2, corruption="random_labels")


def test_fp32_keeps_its_run_id_and_execution_options_are_not_hashed():
    fp32 = RunConfig(**SMALL)
    assert fp32.run_id == RunConfig(**SMALL, precision="fp32", channels_last=True, compile=True).run_id
    assert (
        len({fp32.run_id, RunConfig(**SMALL, precision="bf16").run_id, RunConfig(**SMALL, precision="tf32").run_id})
        == 3
    )


def test_bf16_and_channels_last_train_close_to_fp32_and_are_recorded(tmp_path):
    """bfloat16 keeps 8 bits of mantissa: after 2 epochs the losses agree to a few percent, not bit for bit."""
    rows = {}
    for precision, channels_last in (("fp32", False), ("bf16", True), ("fp32", True)):
        config = RunConfig(**SMALL, precision=precision, channels_last=channels_last)
        rows[precision, channels_last] = execute(config, tmp_path / f"{precision}{channels_last}", device="cpu").row
    reference = rows["fp32", False]
    bf16 = rows["bf16", True]
    assert (bf16["precision"], bf16["channels_last"], bf16["compile"]) == ("bf16", True, False)
    assert bf16["train_loss"] != reference["train_loss"]
    assert math.isclose(bf16["train_loss"], reference["train_loss"], rel_tol=0.05)
    assert math.isclose(rows["fp32", True]["train_loss"], reference["train_loss"], rel_tol=1e-4)


def test_bf16_keeps_batch_norm_and_the_loss_in_float32(tmp_path):
    from harness.compute import computing_in
    from harness.training import Training

    config = resolve_config(RunConfig(model="inception", dataset="digits", train_size=64, precision="bf16"))
    training = Training(
        config, prepare_data("digits", train_size=64, test_size=10), build_regularizers(()), torch.device("cpu")
    )
    seen = []
    norms = [m for m in training.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    norms[0].register_forward_hook(lambda module, args, output: seen.append((args[0].dtype, output.dtype)))
    with computing_in("bf16", training.device):
        logits = training.forward(training.batches(torch.arange(8)))
    assert logits.dtype == torch.bfloat16 and seen == [(torch.float32, torch.float32)]
    assert all(p.dtype == torch.float32 for p in training.model.parameters())


def test_a_bad_precision_is_one_line_with_the_valid_values(tmp_path):
    result = CliRunner().invoke(
        create_app(),
        ["run", "--plugin", "mlp_1x512", "--dataset", "digits", "--precision", "fp8", "--results-dir", str(tmp_path)],
    )
    assert result.exit_code == 2 and "--precision must be one of fp32, tf32, bf16, got 'fp8'" in result.stderr


@pytest.mark.slow
def test_a_compiled_run_trains_as_the_eager_one(tmp_path):
    """torch.compile fuses operations (float32 rounding differs slightly): losses within 1e-4."""
    eager = execute(RunConfig(**SMALL), tmp_path / "eager", device="cpu").row
    compiled = execute(RunConfig(**SMALL, compile=True), tmp_path / "compiled", device="cpu").row
    assert compiled["compile"] and compiled["run_id"] == eager["run_id"]
    assert math.isclose(compiled["train_loss"], eager["train_loss"], rel_tol=1e-4)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_a_compiled_run_on_cuda_records_cuda_graphs_and_trains_as_the_eager_one(tmp_path):
    """300 training images: a last batch of 44 and evaluation chunks of 300 and 100, each its own graph."""
    from torch._dynamo.utils import counters
    from torch._inductor import cudagraph_trees

    counters.clear()
    small = {**SMALL, "model": "mlp_1x512", "train_size": 300}  # MLP: it compiles in seconds
    eager = execute(RunConfig(**small), tmp_path / "eager", device="cuda").row
    compiled = execute(RunConfig(**small, compile=True), tmp_path / "compiled", device="cuda").row
    assert counters["inductor"]["cudagraph_skips"] == 0
    assert cudagraph_trees.get_manager(create_if_none_exists=False).roots
    assert math.isclose(compiled["train_loss"], eager["train_loss"], rel_tol=1e-3)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("compile", [False, True])
def test_the_step_loop_on_cuda_never_waits_for_the_device(tmp_path, monkeypatch, compile):
    """Only the end of an epoch (evaluation totals, the epoch's row) reads from the device."""
    from rich.progress import Progress

    from harness.cli.run import RichRunProgress
    from harness.training import Training, train_alone

    end_epoch = Training.end_epoch

    def end_epoch_may_wait(self, *args, **kwargs):
        torch.cuda.set_sync_debug_mode("default")
        try:
            return end_epoch(self, *args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(Training, "end_epoch", end_epoch_may_wait)
    progress = RichRunProgress(Progress(disable=True))
    config, device = check_run(RunConfig(**{**SMALL, "model": "mlp_1x512"}, compile=compile), "cuda")
    training = Training(
        config, prepare_data("digits", "random_labels", train_size=256, test_size=100), build_regularizers(()), device
    )
    train_alone(training, progress)  # warm-up: compiles, records its graphs
    training.finished, training.config = False, replace(config, max_epochs=4)
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_alone(training, progress)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(training.history) == 4
