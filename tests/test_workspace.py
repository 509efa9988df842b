"""Workspace consistency: members, release files, the ot-core dependency rule, README contract, root table."""

import pytest
import release
from monorepo import CORE, ROOT, headings, load_packages, quick_start, readme_status, tomllib
from packaging.requirements import Requirement

PACKAGES = load_packages()
DOMAIN = [name for name in PACKAGES if name != CORE]
README_SECTIONS = ("Quick start", "API", "CLI", "Citation")
# The issue asks for a 10-line quick start; this counts code lines (no blanks, no comments) with some slack.
QUICK_START_MAX_LINES = 15


def test_members_are_the_packages_folders():
    folders = {p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()}
    assert folders == set(PACKAGES)
    assert all(pkg.path.name == name for name, pkg in PACKAGES.items())


@pytest.mark.parametrize("name", PACKAGES)
def test_member_has_release_files(name):
    pkg = PACKAGES[name]
    assert pkg.readme and pkg.readme.is_file()
    assert pkg.changelog.is_file()
    assert pkg.project["license"] == "MIT"
    assert "MIT License" in (pkg.path / "LICENSE").read_text()


@pytest.fixture(scope="module")
def lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


@pytest.mark.parametrize("name", PACKAGES)
def test_lock_records_the_pyproject_version(name, lock):
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == name]
    assert locked == PACKAGES[name].version, "run `uv lock` after changing a version"


@pytest.mark.parametrize("name", DOMAIN)
def test_domain_package_depends_on_core_only(name):
    pkg = PACKAGES[name]
    requirement = pkg.requirement(CORE)
    assert requirement is not None and requirement.specifier.contains(PACKAGES[CORE].version)
    assert pkg.uv_sources.get(CORE) == {"workspace": True}
    optional = [
        Requirement(r) for extra in pkg.project.get("optional-dependencies", {}).values() for r in extra
    ]
    names = {r.name for r in pkg.requirements + optional}
    assert not names & (set(DOMAIN) - {name}), f"{name} depends on another domain package"


@pytest.mark.parametrize("name", PACKAGES)
def test_release_check_passes(name):
    assert release.check(ROOT, name) == []


@pytest.mark.parametrize("name", PACKAGES)
def test_readme_has_install_line_status_and_sections(name):
    text = PACKAGES[name].readme.read_text()
    assert f"pip install {name}" in text
    assert readme_status(text), "README needs a '**Status: <status> (<version>).**' line"
    titles = [t.lower() for t in headings(text)]
    missing = [s for s in README_SECTIONS if not any(s.lower() in t for t in titles)]
    assert not missing, f"{name} README lacks headings containing {missing}"


@pytest.mark.parametrize("name", PACKAGES)
def test_quick_start_is_short(name):
    code = quick_start(PACKAGES[name].readme.read_text())
    assert code, f"{name} README has no ```python block under a 'Quick start' heading"
    lines = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) <= QUICK_START_MAX_LINES, f"{name} quick start has {len(lines)} code lines; aim for 10"


def test_root_readme_lists_the_packages():
    readme = ROOT / "README.md"
    assert readme.is_file(), "the root README.md is missing"
    assert release.table(ROOT) in readme.read_text(), "paste the output of `uv run tools/release.py table`"
