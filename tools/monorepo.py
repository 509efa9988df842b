"""Read the ot-* workspace: member packages, their CHANGELOG headings and README sections.

Shared by ``tools/release.py`` and the root tests. Standard library plus ``packaging``.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CORE = "ot-core"


@dataclass(frozen=True)
class Package:
    """One workspace member, as declared by its ``pyproject.toml``."""

    path: Path
    pyproject: dict

    @property
    def project(self) -> dict:
        return self.pyproject["project"]

    @property
    def name(self) -> str:
        return self.project["name"]

    @property
    def version(self) -> str:
        return self.project["version"]

    @property
    def import_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def dist_name(self) -> str:
        """The name as it appears in wheel and sdist file names."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    @property
    def requirements(self) -> list[Requirement]:
        return [Requirement(r) for r in self.project.get("dependencies", [])]

    def requirement(self, name: str) -> Requirement | None:
        return next((r for r in self.requirements if r.name == name), None)

    @property
    def scripts(self) -> dict[str, str]:
        return self.project.get("scripts", {})

    @property
    def uv_sources(self) -> dict:
        return self.pyproject.get("tool", {}).get("uv", {}).get("sources", {})

    @property
    def readme(self) -> Path | None:
        readme = self.project.get("readme")
        file = readme.get("file") if isinstance(readme, dict) else readme
        return self.path / file if file else None

    @property
    def changelog(self) -> Path:
        return self.path / "CHANGELOG.md"


def load_package(path: Path) -> Package:
    return Package(path, tomllib.loads((path / "pyproject.toml").read_text()))


def load_packages(root: Path = ROOT) -> dict[str, Package]:
    """The workspace members by name: ot-core first, then alphabetical."""
    workspace = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    paths = {
        p for pattern in workspace["members"] for p in root.glob(pattern) if (p / "pyproject.toml").is_file()
    }
    packages = [load_package(p) for p in paths]
    packages.sort(key=lambda p: (p.name != CORE, p.name))
    return {p.name: p for p in packages}


def floor(requirement: Requirement) -> Version | None:
    """The lowest version a requirement allows, if it sets one (``>=``, ``>``, ``==``, ``~=``)."""
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", ">", "==", "~=")]
    return max(bounds, default=None)


# ---- CHANGELOG: "## X.Y.Z (unreleased)" or "## X.Y.Z (YYYY-MM-DD)", newest first ----

CHANGELOG_HEADING = re.compile(r"^##\s+(?P<version>\S+)\s+\((?P<date>unreleased|\d{4}-\d{2}-\d{2})\)\s*$")


@dataclass(frozen=True)
class Release:
    """One CHANGELOG heading; ``date`` is None while unreleased."""

    version: str
    date: str | None


def changelog_headings(text: str) -> list[tuple[int, str]]:
    """Every level-2 heading as (line index, text), top first."""
    return [(i, line.rstrip()) for i, line in enumerate(text.splitlines()) if line.startswith("## ")]


def parse_release(line: str) -> Release | None:
    match = CHANGELOG_HEADING.match(line)
    if not match:
        return None
    date = None if match["date"] == "unreleased" else match["date"]
    return Release(match["version"], date)


def releases(text: str) -> list[Release]:
    """The well-formed release headings of a CHANGELOG, top first."""
    parsed = (parse_release(line) for _, line in changelog_headings(text))
    return [r for r in parsed if r is not None]


# ---- README: ATX headings and fenced code blocks, outside code ----

HEADING = re.compile(r"^ {0,3}(?P<hashes>#{1,6})\s+(?P<title>.*?)\s*#*\s*$")
FENCE_OPEN = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
QUICK_START = re.compile(r"quick[\s_-]*start", re.IGNORECASE)
PYTHON_INFO = {"python", "py", "python3"}
STATUS = re.compile(r"^\*\*Status:\s*(?P<status>.+?)\*\*", re.MULTILINE)


def markdown_events(text: str):
    """Yield ("heading", level, title) and ("code", info, code) in document order."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE_OPEN.match(lines[i])
        if opening:
            fence = opening["fence"]
            closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            body = []
            i += 1
            while i < len(lines) and not closing.match(lines[i]):
                body.append(lines[i])
                i += 1
            yield "code", opening["info"].strip(), textwrap.dedent("\n".join(body)) + "\n"
        elif heading := HEADING.match(lines[i]):
            yield "heading", len(heading["hashes"]), heading["title"]
        i += 1


def headings(text: str) -> list[str]:
    return [title for kind, _, title in markdown_events(text) if kind == "heading"]


def quick_start(text: str) -> str | None:
    """The first ```python block under a heading containing "Quick start" (before the section ends)."""
    level = None
    for kind, first, second in markdown_events(text):
        if kind == "heading":
            if level is not None and first <= level:
                level = None
            if level is None and QUICK_START.search(second):
                level = first
        elif level is not None and first.lower().strip("{}. ").split(" ")[0] in PYTHON_INFO:
            return second
    return None


def readme_status(text: str) -> str | None:
    """The status word of a ``**Status: alpha (0.1.0).**`` line, without the version."""
    match = STATUS.search(text)
    if not match:
        return None
    status = re.sub(r"\s*\([^)]*\)\s*$", "", match["status"].strip().rstrip(".:").strip())
    return status or None
