"""The documentation site: its generated pages are current, every command and option is in the
reference, the README stays short and true, and the built site loads nothing from the network."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from harness.cli import create_app
from harness.cli.docs import COMMANDS_PAGE, SCHEMA_PAGE, command_reference, walk
from harness.readme import section
from harness.tables import markdown

REPOSITORY = Path(__file__).parent.parent
DOCS = REPOSITORY / "docs"


def test_command_reference_is_current():
    committed = (DOCS / COMMANDS_PAGE).read_text()
    assert committed == command_reference(typer.main.get_command(create_app())), (
        "docs/reference/commands.md is stale: run `harness docs`"
    )


def test_every_command_and_option_is_in_the_reference():
    reference = (DOCS / COMMANDS_PAGE).read_text()
    commands = list(walk(typer.main.get_command(create_app())))
    assert len(commands) > 20
    for path, command in commands:
        assert f"## `harness {' '.join(path)}`" in reference
        for param in command.params:
            for option in (*param.opts, *param.secondary_opts):
                assert f"`{option}" in reference or param.param_type_name == "argument", (path, option)


def test_schema_page_is_the_schema_the_code_writes():
    page = (DOCS / SCHEMA_PAGE).read_text()
    assert section(page, "schema") == markdown(), "docs/reference/schema.md is stale: run `harness docs`"


def test_docs_command_writes_the_generated_pages(tmp_path):
    from typer.testing import CliRunner

    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    (docs / COMMANDS_PAGE).unlink()
    result = CliRunner().invoke(
        create_app(), ["docs", "--docs", str(docs), "--bundles", str(REPOSITORY / "reproduction")]
    )
    assert result.exit_code == 0, result.output
    said = "".join(result.stdout.split())  # long paths wrap
    assert "commands.md:rewritten" in said and "schema.md:sectionschemaalreadyuptodate" in said
    assert (docs / COMMANDS_PAGE).read_text() == (DOCS / COMMANDS_PAGE).read_text()


def test_readme_is_short_and_its_commands_are_those_of_ci():
    readme = (REPOSITORY / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    commands = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert commands[1] == ".venv/bin/python -m pytest -q"
    assert commands[1] in (REPOSITORY / ".ci" / "run").read_text()
    assert commands[0].startswith("python3 -m venv .venv && .venv/bin/pip install ")
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPOSITORY / link).is_file(), link


def test_every_page_is_in_the_navigation():
    nav = (REPOSITORY / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == set(re.findall(r":\s*(\S+\.md)$", nav, flags=re.M))


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="mkdocs not installed: pip install -e '.[docs]'")  # fmt: skip
def test_the_built_site_loads_nothing_from_the_network(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path)], cwd=REPOSITORY, check=True,
                   capture_output=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)})  # fmt: skip
    pages = list(tmp_path.rglob("*.html"))
    assert len(pages) >= 15
    external = re.compile(r'<(?:link|script|img|iframe)\b[^>]*\b(?:href|src)="(?:https?:)?//', re.I)
    loaded = {str(page.relative_to(tmp_path)) for page in pages if external.search(page.read_text())}
    assert not loaded, f"pages that load something from the network: {sorted(loaded)}"
    assert "register_models" in (tmp_path / "plugins" / "index.html").read_text()  # the hooks, from mkdocstrings
