"""Third-party plugin packages for tests: real distributions with a ``harness`` entry point, pip-installed
into a folder that a test puts on the path."""

import subprocess
import sys
import textwrap
from pathlib import Path


def build_package(root: Path, dist: str, module: str, source: str) -> Path:
    """A source folder of the distribution ``dist`` (version 1.2.3) whose module ``module`` is its entry point."""
    folder = root / dist
    folder.mkdir()
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "1.2.3"

            [project.entry-points.harness]
            {module} = "{module}"
            """
        )
    )
    return folder


def install_packages(root: Path, packages: dict[str, tuple[str, str]]) -> Path:
    """Build ``packages`` (dist -> (module, source)) under ``root`` and pip-install them into ``root/site``, offline."""
    sources = [build_package(root, dist, module, code) for dist, (module, code) in packages.items()]
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *map(str, sources),
        ],
        check=True,
        capture_output=True,
    )
    return target
