import os
from pathlib import Path

import pytest


@pytest.fixture
def data_root() -> Path:
    """The real data folder (HARNESS_DATA_ROOT); skips the test when it is absent."""
    root = os.environ.get("HARNESS_DATA_ROOT")
    if not root or not Path(root).is_dir():
        pytest.skip("real data not available: set HARNESS_DATA_ROOT to a folder with MNIST/raw and cifar10/*.npz")
    return Path(root)


@pytest.fixture
def cifar_root(data_root) -> Path:
    if not (data_root / "cifar10" / "train.npz").exists() and not (data_root / "cifar-10-batches-py").exists():
        pytest.skip(f"CIFAR-10 not found under {data_root}")
    return data_root


@pytest.fixture
def mnist_root(data_root) -> Path:
    if not (data_root / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST not found under {data_root}/MNIST/raw")
    return data_root
