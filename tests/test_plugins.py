"""Third-party plugins: a real package with an entry point, installed into a temp folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_packages import install_packages

PACKAGES = {
    "harness-tinynet": (
        "harness_tinynet",
        """
        from torch import nn
        from harness import hookimpl

        def tinynet(input_shape, num_classes):
            c, h, w = input_shape
            return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))

        def everything_is_zero(data, p, rng):
            return data.replace(y_train=data.y_train * 0)

        @hookimpl
        def register_models(register):
            register("tinynet", tinynet, default_lr=0.05)

        @hookimpl
        def register_corruptions(register):
            register("all_zero", everything_is_zero)

        @hookimpl
        def register_commands(app):
            @app.command("hello")
            def hello():
                print("hello from tinynet")
        """,
    ),
    "harness-broken": ("harness_broken", "raise ImportError('this plugin is broken on purpose')\n"),
    "harness-crashy": (
        "harness_crashy",
        """
        from torch import nn
        from harness import hookimpl

        class Crashy(nn.Module):
            def __init__(self, num_classes):
                super().__init__()
                self.fc = nn.Linear(3, num_classes)

            def forward(self, x):
                return self.fc(x.flatten(1))  # a bug: the input has more than 3 features

        @hookimpl
        def register_models(register):
            register("crashy", lambda input_shape, num_classes: Crashy(num_classes))
        """,
    ),
    "harness-typo": (
        "harness_typo",
        """
        from harness import hookimpl

        @hookimpl
        def register_model(register):  # a typo: the hook is register_models
            register("never_seen", object)
        """,
    ),
    "harness-clash": (
        "harness_clash",
        """
        from harness import hookimpl

        @hookimpl
        def register_models(register):
            register("mlp_1x512", object)
        """,
    ),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder with the plugin packages pip-installed into it."""
    return install_packages(tmp_path_factory.mktemp("plugins"), PACKAGES)


def harness_cli(site: Path, *args, strict=False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "HARNESS_STRICT_PLUGINS": "1" if strict else "0"}
    return subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_third_party_model_corruption_and_command(site, tmp_path):
    listing = harness_cli(site, "plugins", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    models = {e["name"]: e for e in json.loads(listing.stdout)["models"]}
    assert models["tinynet"]["source"] == "harness-tinynet 1.2.3"
    assert models["tinynet"]["info"] == {"default_lr": 0.05}
    assert "built-in" in models["mlp_1x512"]["source"]  # the clash did not override it
    # The broken plugin and the clash are one warning line each; the CLI keeps working.
    warnings = [line for line in listing.stderr.splitlines() if line.startswith("warning:")]
    assert any("harness-broken 1.2.3 failed to load" in w for w in warnings)
    assert any("'mlp_1x512' is registered twice" in w and "harness-clash 1.2.3" in w for w in warnings)
    assert "Traceback" not in listing.stderr
    # A hook that does not exist is reported like a plugin that fails to load, not ignored.
    typo = [w for w in warnings if "harness-typo 1.2.3" in w]
    assert len(typo) == 1 and "failed to load" in typo[0] and "unknown hook(s) register_model;" in typo[0]
    assert "never_seen" not in models

    run = harness_cli(
        site,
        "run",
        "--plugin",
        "tinynet",
        "--dataset",
        "digits",
        "--corruption",
        "all_zero",
        "--max-epochs",
        "3",
        "--results-dir",
        tmp_path,
        "--device",
        "cpu",
    )
    assert run.returncode == 0, run.stderr
    assert "train acc 100.00%" in run.stdout  # every label is 0: trivially fitted
    assert harness_cli(site, "hello").stdout.strip() == "hello from tinynet"


def test_strict_mode_turns_a_broken_plugin_into_an_error(site):
    result = harness_cli(site, "plugins", strict=True)
    assert result.returncode == 2
    assert "harness-broken 1.2.3 failed to load" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bug_in_a_model_plugin_is_a_traceback_naming_the_plugin(site, tmp_path):
    result = harness_cli(
        site,
        "run",
        "--plugin",
        "crashy",
        "--dataset",
        "digits",
        "--max-epochs",
        "1",
        "--results-dir",
        tmp_path,
        "--device",
        "cpu",
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "self.fc(x.flatten(1))" in result.stderr
    last = " ".join(result.stderr.strip().splitlines()[-2:])
    assert "RuntimeError in plugin harness_crashy (harness-crashy 1.2.3)" in last
    listing = harness_cli(site, "results", "--results-dir", tmp_path, "--format", "json")
    assert [row["status"] for row in json.loads(listing.stdout)] == ["failed"]
