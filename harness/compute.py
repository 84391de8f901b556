"""How a model computes: its precision (fp32, tf32, bf16 autocast), ``torch.compile`` and memory layout."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch


@contextlib.contextmanager
def computing_in(precision: str, device: torch.device):
    """Within the block, models compute in ``precision`` (one of :data:`~harness.config.PRECISIONS`)."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"  # fp32 is fp32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def compiled(function: Callable, device: torch.device) -> Callable:
    """``torch.compile(function)``; on CUDA with CUDA graphs (mode "reduce-overhead": one graph per input
    shape, so the last partial batch and each evaluation chunk get their own). Each call starts a new
    step of the graphs: the outputs of the call before (read by then) may be overwritten."""
    graphed = torch.compile(function, mode="reduce-overhead" if device.type == "cuda" else None)

    def step(*args):
        torch.compiler.cudagraph_mark_step_begin()
        return graphed(*args)

    return step


def float32_batch_norm(model: torch.nn.Module) -> None:
    """Make every BatchNorm of ``model`` normalize float32 input (under bfloat16 autocast too)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(lambda module, args: (args[0].float(), *args[1:]))


def layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``images`` (N, C, H, W) in channels-last memory layout when asked, else as they are."""
    return images.contiguous(memory_format=torch.channels_last) if channels_last and images.dim() == 4 else images
