"""The README's schema section is the schema the code writes."""

from pathlib import Path

from harness.tables import markdown


def test_readme_documents_every_results_column():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- schema:start -->\n") + len("<!-- schema:start -->\n")
    end = readme.index("<!-- schema:end -->")
    assert readme[start:end] == markdown(), "regenerate the README's schema section from `harness schema`"
