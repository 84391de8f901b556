"""Generated sections of a markdown file, between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError
from harness.results import write_atomically


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"


def section(text: str, name: str) -> str:
    """The text between the ``name`` markers."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise ConfigError(f"no generated section '{name}': the file needs the lines {start.strip()} and {end}")
    return text[text.index(start) + len(start) : text.index(end)]


def replace_section(path: Path, name: str, body: str) -> bool:
    """Put ``body`` between the ``name`` markers of the file at ``path``; True when that changed it."""
    text = Path(path).read_text()
    old = section(text, name)
    if old == body:
        return False
    start, _ = markers(name)
    begin = text.index(start) + len(start)
    updated = text[:begin] + body + text[begin + len(old) :]
    write_atomically(Path(path), lambda tmp: Path(tmp).write_text(updated))
    return True
