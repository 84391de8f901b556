"""Old option spellings, kept for one release: each is rewritten to its new spelling with a warning.

Every renamed option is listed in :data:`DEPRECATED_OPTIONS`, and nowhere else: the commands
declare only the new names, and :class:`AliasedGroup` (the root command group) rewrites the
command line before the commands parse it.
"""

from __future__ import annotations

from typer.core import TyperGroup

DEPRECATED_OPTIONS: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {
    ("memorization",): {"--models": ("--num-models",), "--epochs": ("--max-epochs",)},
    ("run",): {"--epochs": ("--max-epochs",)},
    ("rademacher",): {"--json": ("--format", "json"), "--epochs": ("--max-epochs",)},
    ("results",): {"--model": ("--plugin",)},
    ("report", "fig1"): {"--model": ("--plugin",)},
    ("report", "html"): {"--model": ("--plugin",)},
    ("plugins",): {"--json": ("--format", "json")},
    ("theory", "expressivity"): {"--json": ("--format", "json")},
    ("theory", "expressivity-sweep"): {"--json": ("--format", "json")},
    ("theory", "min-norm"): {"--json": ("--format", "json")},
    ("schema",): {"--readme": ("--write",)},
    ("report", "status"): {"--readme": ("--write",)},
}
"""Per command path, each old option and the tokens that replace it (a flag may become an option
with a value: ``--json`` is ``--format json``)."""


def command_path(args: list[str]) -> tuple[str, ...]:
    """The sub-command names at the start of a command line (up to its first option)."""
    path = []
    for arg in args:
        if arg.startswith("-"):
            break
        path.append(arg)
    return tuple(path)


def rewrite(args: list[str], warn) -> list[str]:
    """``args`` with every deprecated option of its command replaced by its new spelling; ``warn``
    gets one line per replaced option."""
    path = command_path(args)
    renames = next((renames for prefix, renames in DEPRECATED_OPTIONS.items() if path[: len(prefix)] == prefix), {})
    rewritten = []
    for arg in args:
        name, equals, value = arg.partition("=")
        new = renames.get(name)
        if new is None:
            rewritten.append(arg)
            continue
        spelled = " ".join(new)
        warn(f"{name} is deprecated and will be removed in the next release; use {spelled}")
        rewritten.extend([*new, value] if equals else new)
    return rewritten


class AliasedGroup(TyperGroup):
    """The root command group: rewrites deprecated option spellings before parsing."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        from harness.cli.common import warn

        return super().parse_args(ctx, rewrite(list(args), warn))
