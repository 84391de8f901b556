"""The ``harness`` command line: one module per command group, the engines stay in the core.

The core (runner, sweeps, kernel runs, reports, theory) never imports this package; the commands
here parse options, call the engine, and show its progress and results.
"""

from __future__ import annotations

import sys

import typer

from harness import __version__
from harness.cli.aliases import AliasedGroup
from harness.cli.common import err_console, guarded, warn
from harness.registry import PluginError, get_registry


def add_plugin_commands(app: typer.Typer) -> None:
    """Let plugins add sub-commands; a broken one is reported, not fatal (unless strict)."""
    registry = get_registry()
    for impl in registry.plugin_manager.hook.register_commands.get_hookimpls():
        try:
            impl.function(app=app)
        except Exception as error:
            source = registry.sources[impl.plugin_name]
            if registry.strict:
                raise PluginError(f"plugin {source} failed to add commands: {error}") from error
            warn(f"plugin {source} failed to add commands: {error}")


def create_app() -> typer.Typer:
    """The ``harness`` app with its built-in and plugin commands."""
    from harness.cli.data import data_app
    from harness.cli.docs import docs_command
    from harness.cli.kernel import kernel_command
    from harness.cli.memorization import memorization_command
    from harness.cli.report import report_app
    from harness.cli.results import plugins_command, results_command, schema_command
    from harness.cli.run import rademacher_command, run_command
    from harness.cli.sweep import sweep_command
    from harness.cli.theory import theory_app

    app = typer.Typer(
        cls=AliasedGroup,
        help=f"harness {__version__}: randomization tests for neural networks and kernel machines.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for name, command in (
        ("run", run_command),
        ("plugins", plugins_command),
        ("results", results_command),
        ("schema", schema_command),
        ("sweep", sweep_command),
        ("rademacher", rademacher_command),
        ("kernel", kernel_command),
        ("memorization", memorization_command),
        ("docs", docs_command),
    ):
        app.command(name)(guarded(command))
    app.add_typer(data_app, name="data")
    app.add_typer(report_app, name="report")
    app.add_typer(theory_app, name="theory")
    add_plugin_commands(app)
    return app


def main() -> None:
    """The console script: load the plugins, report broken ones, run the command."""
    try:
        registry = get_registry()
        app = create_app()
    except PluginError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    for message in registry.warnings:
        warn(message)
    app()
