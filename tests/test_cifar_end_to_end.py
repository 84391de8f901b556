"""The randomization test on real CIFAR-10: an MLP memorizes random labels."""

import pytest

from harness.config import RunConfig
from harness.runner import execute

pytestmark = pytest.mark.data


def run(results, root, corruption):
    config = RunConfig(model="mlp_1x512", corruption=corruption, train_size=1000, test_size=2000, max_epochs=150)
    return execute(config, results, data_root=root, device="cpu").row


def test_mlp_fits_random_labels_and_generalizes_only_on_true_ones(tmp_path, cifar_root):
    random = run(tmp_path, cifar_root, "random_labels")
    assert random["status"] == "completed"
    assert random["train_acc"] == 1.0 and random["fit_epoch"] is not None
    assert abs(random["test_acc"] - 0.10) < 0.03  # chance

    true = run(tmp_path, cifar_root, "none")
    assert true["train_acc"] == 1.0
    assert true["test_acc"] > random["test_acc"] + 0.15
    # Random labels are fitted, yet more slowly than true ones per unit of signal: both fit in finite steps.
    assert random["param_count"] == true["param_count"] == 1_209_866
