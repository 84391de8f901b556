"""Old option spellings keep working for one release, each with one deprecation line; one name per idea."""

import json

import pytest
import typer
from typer.testing import CliRunner

from harness.cli import create_app
from harness.cli.aliases import DEPRECATED_OPTIONS, rewrite
from harness.cli.common import OutputFormat


def invoke(*args):
    return CliRunner().invoke(create_app(), [str(a) for a in args])


def deprecation_lines(result):
    return [line for line in result.stderr.splitlines() if "deprecated" in line]


def test_rewrite_replaces_only_the_commands_own_old_spellings():
    warnings = []
    assert rewrite(["memorization", "--models", "4", "--plugin", "m"], warnings.append) == [
        "memorization", "--num-models", "4", "--plugin", "m"
    ]  # fmt: skip
    assert rewrite(["memorization", "--models=4"], warnings.append) == ["memorization", "--num-models", "4"]
    assert rewrite(["plugins", "--json"], warnings.append) == ["plugins", "--format", "json"]
    assert rewrite(["run", "--models", "4"], warnings.append) == ["run", "--models", "4"]  # not an alias of run
    assert warnings == [
        "--models is deprecated and will be removed in the next release; use --num-models",
        "--models is deprecated and will be removed in the next release; use --num-models",
        "--json is deprecated and will be removed in the next release; use --format json",
    ]


def test_plugins_json_still_works_with_one_warning():
    old, new = invoke("plugins", "--json"), invoke("plugins", "--format", "json")
    assert old.exit_code == new.exit_code == 0
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert deprecation_lines(old) == [
        "warning: --json is deprecated and will be removed in the next release; use --format json"
    ]
    assert not deprecation_lines(new)


def test_results_model_is_plugin(tmp_path):
    from harness.config import RunConfig
    from harness.runner import execute

    execute(
        RunConfig(model="mlp_1x512", dataset="digits", train_size=100, test_size=50, max_epochs=1),
        tmp_path,
        device="cpu",
    )
    old = invoke("results", "--results-dir", tmp_path, "--format", "json", "--model", "mlp_3x512")
    assert old.exit_code == 0 and json.loads(old.stdout) == [] and len(deprecation_lines(old)) == 1
    new = invoke("results", "--results-dir", tmp_path, "--format", "json", "--plugin", "mlp_1x512")
    assert [r["model"] for r in json.loads(new.stdout)] == ["mlp_1x512"]


def test_every_old_spelling_is_gone_from_its_command_and_its_new_one_exists():
    root = typer.main.get_command(create_app())
    for path, renames in DEPRECATED_OPTIONS.items():
        command = root
        for name in path:
            command = command.commands[name]
        options = {opt for param in command.params for opt in param.opts}
        for old, new in renames.items():
            assert old not in options and new[0] in options, (path, old)


def test_one_name_per_idea_across_commands():
    """The model is --plugin, machine-readable output --format, and a count is never --models."""
    root = typer.main.get_command(create_app())

    def commands(group, path=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from commands(command, (*path, name))
            else:
                yield (*path, name), command

    with_format = set()
    for path, command in commands(root):
        options = {opt for param in command.params for opt in param.opts}
        assert not options & {"--model", "--models", "--json"}, path
        formats = [param for param in command.params if "--format" in param.opts]
        assert all(param.default is OutputFormat.table for param in formats), path  # the one table|csv|json option
        with_format.update([path] if formats else [])
    assert {
        ("plugins",),
        ("results",),
        ("rademacher",),
        ("theory", "expressivity"),
        ("theory", "min-norm"),
    } <= with_format


@pytest.mark.parametrize("out_help", ["report table1", "report html", "data preview", "theory min-norm"])
def test_out_says_whether_it_is_a_file_or_a_folder(out_help):
    root = typer.main.get_command(create_app())
    command = root
    for name in out_help.split():
        command = command.commands[name]
    (out,) = [param for param in command.params if "--out" in param.opts]
    assert out.help.startswith(("A file", "A folder"))
