"""Fixtures of the cross-package tests: ``tools/`` on the import path, and a small synthetic workspace."""

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

ROOT_PYPROJECT = """\
[tool.uv.workspace]
members = ["packages/*"]

[tool.uv.sources]
ot-core = { workspace = true }
ot-cells = { workspace = true }
"""

MEMBER_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "{version}"
description = "A synthetic workspace member."
readme = "README.md"
requires-python = ">=3.10"
license = "MIT"
dependencies = [{dependencies}]
{scripts}
[tool.uv.sources]
ot-core = {{ workspace = true }}

[tool.hatch.build.targets.wheel]
packages = ["src/{module}"]
"""

CLI = """\
import argparse


def main():
    parser = argparse.ArgumentParser(prog="ot-core")
    demo = parser.add_subparsers(dest="command", required=True).add_parser("demo")
    demo.add_argument("--quick", action="store_true")
    parser.parse_args()
    print("demo ran")
"""


def write_member(
    root: Path, name: str, version: str, changelog: str, dependencies: str = "", cli: bool = False
):
    """Write ``packages/<name>`` with pyproject, README, CHANGELOG and a module that sets ``__version__``."""
    module = name.replace("-", "_")
    path = root / "packages" / name
    (path / "src" / module).mkdir(parents=True)
    scripts = f'\n[project.scripts]\n{name} = "{module}.cli:main"\n' if cli else ""
    (path / "pyproject.toml").write_text(
        MEMBER_PYPROJECT.format(
            name=name, version=version, dependencies=dependencies, scripts=scripts, module=module
        )
    )
    (path / "README.md").write_text(f"# {name}\n\n**Status: alpha ({version}).** Works.\n")
    (path / "CHANGELOG.md").write_text("# Changelog\n\n" + textwrap.dedent(changelog))
    (path / "src" / module / "__init__.py").write_text(f'__version__ = "{version}"\n')
    if cli:
        (path / "src" / module / "cli.py").write_text(CLI)


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A two-member workspace: ot-core 0.2.0 (unreleased; 0.1.0 released), ot-cells 0.1.0 needing ot-core>=0.1.0."""
    (tmp_path / "pyproject.toml").write_text(ROOT_PYPROJECT)
    core_log = "## 0.2.0 (unreleased)\n- Faster.\n\n## 0.1.0 (2026-01-15)\n- First release.\n"
    write_member(tmp_path, "ot-core", "0.2.0", core_log, cli=True)
    write_member(
        tmp_path, "ot-cells", "0.1.0", "## 0.1.0 (unreleased)\n- First.\n", dependencies='"ot-core>=0.1.0"'
    )
    return tmp_path
