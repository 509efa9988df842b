"""tools/release.py: bump, check and table on a synthetic workspace; build and install-check on this one."""

import email
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import release
from monorepo import CORE, ROOT, load_packages, releases, tomllib

PACKAGES = list(load_packages())
INSTALL_CHECKED = [CORE, "ot-cells"]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


# ---- check ----


def test_check_accepts_the_synthetic_workspace(mini):
    assert release.check(mini, "ot-core") == []
    assert release.check(mini, "ot-cells") == []


def test_check_rejects_a_changelog_that_disagrees_with_pyproject(mini):
    edit(mini / "packages/ot-cells/CHANGELOG.md", "## 0.1.0 (unreleased)", "## 0.0.9 (unreleased)")
    assert release.check(mini, "ot-cells") == [
        "ot-cells: pyproject version 0.1.0 but the top CHANGELOG heading is 0.0.9"
    ]


@pytest.mark.parametrize(
    "heading", ["## Unreleased", "## 0.1.0", "## [0.1.0] - 2026-01-15", "## 0.1.0 (soon)"]
)
def test_check_rejects_headings_off_the_convention(mini, heading):
    edit(mini / "packages/ot-cells/CHANGELOG.md", "## 0.1.0 (unreleased)", heading)
    (error,) = release.check(mini, "ot-cells")
    assert "is not '## X.Y.Z (unreleased)' or '## X.Y.Z (YYYY-MM-DD)'" in error


def test_check_rejects_a_missing_changelog_heading(mini):
    (mini / "packages/ot-cells/CHANGELOG.md").write_text("# Changelog\n")
    assert release.check(mini, "ot-cells") == [
        "ot-cells: CHANGELOG.md has no '## 0.1.0 (unreleased)' heading"
    ]


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("ot-core>=0.3", "ot-cells: ot-core>=0.3 excludes the workspace ot-core 0.2.0"),
        ("ot-core<0.2", "ot-cells: needs a dependency 'ot-core>=X.Y.Z'"),
        ("ot-core", "ot-cells: needs a dependency 'ot-core>=X.Y.Z'"),
    ],
)
def test_check_rejects_an_unsatisfiable_or_missing_core_floor(mini, requirement, message):
    edit(mini / "packages/ot-cells/pyproject.toml", '"ot-core>=0.1.0"', f'"{requirement}"')
    assert release.check(mini, "ot-cells") == [message]


def test_check_rejects_readmes_that_do_not_render_on_pypi(mini):
    readme = mini / "packages/ot-cells/README.md"
    readme.write_text("# ot-cells\n\nSee [the workspace](../../README.md) and ![plot](docs/plot.png).\n")
    assert release.check(mini, "ot-cells") == [
        "ot-cells: relative links break on PyPI, use absolute URLs: ../../README.md, docs/plot.png"
    ]
    readme.write_text("")
    assert release.check(mini, "ot-cells") == ["ot-cells: README.md does not render"]


def test_check_for_a_tag_needs_a_dated_heading_and_a_released_core(mini):
    tag = "ot-cells/v0.1.0"
    assert release.check(mini, "ot-cells", tag) == [
        "ot-cells: CHANGELOG heading 0.1.0 is unreleased; date it (YYYY-MM-DD) before tagging"
    ]
    edit(mini / "packages/ot-cells/CHANGELOG.md", "(unreleased)", "(2026-02-01)")
    assert release.check(mini, "ot-cells", tag) == []
    assert release.check(mini, "ot-cells", "ot-cells/v0.1.1") == [
        "tag 'ot-cells/v0.1.1' does not match ot-cells/v0.1.0"
    ]
    assert release.check(mini, "ot-cells", "ot-core/v0.1.0") == [
        "tag 'ot-core/v0.1.0' does not match ot-cells/v0.1.0"
    ]
    edit(mini / "packages/ot-cells/pyproject.toml", '"ot-core>=0.1.0"', '"ot-core>=0.2.0"')
    assert release.check(mini, "ot-cells", tag) == [
        "ot-cells: no released ot-core (dated CHANGELOG heading) satisfies ot-core>=0.2.0; release it first"
    ]


def test_check_names_the_packages_when_one_is_unknown(mini):
    with pytest.raises(
        release.ReleaseError, match="unknown package 'ot-foo'; the workspace has ot-core, ot-cells"
    ):
        release.check(mini, "ot-foo")


def test_cli_check_exit_status(mini, capsys):
    assert release.main(["--root", str(mini), "check", "ot-cells"]) == 0
    edit(mini / "packages/ot-cells/pyproject.toml", 'version = "0.1.0"', 'version = "0.1.1"')
    assert release.main(["--root", str(mini), "check", "ot-cells"]) == 1
    assert "pyproject version 0.1.1 but the top CHANGELOG heading is 0.1.0" in capsys.readouterr().out


# ---- bump ----


@pytest.mark.parametrize(
    ("version", "part", "expected"),
    [
        ("0.1.0", "patch", "0.1.1"),
        ("0.1.3", "minor", "0.2.0"),
        ("0.9.2", "major", "1.0.0"),
        ("1.2", "patch", "1.2.1"),
    ],
)
def test_bumped(version, part, expected):
    assert release.bumped(version, part) == expected


def test_bump_retitles_an_unreleased_heading_and_keeps_check_green(mini):
    report = release.bump(mini, "ot-cells", "minor", lock=False)
    assert report == [
        "ot-cells: 0.1.0 -> 0.2.0; edit the '## 0.2.0 (unreleased)' entries in CHANGELOG.md",
        "refresh the root README's package table: uv run tools/release.py table",
    ]
    cells = load_packages(mini)["ot-cells"]
    assert cells.version == "0.2.0"
    assert [(r.version, r.date) for r in releases(cells.changelog.read_text())] == [("0.2.0", None)]
    assert release.check(mini, "ot-cells") == []


def test_bump_updates_the_lock(mini):
    subprocess.run(["uv", "lock", "--offline", "--quiet"], cwd=mini, check=True)
    assert release.bump(mini, "ot-cells", "patch")[-1] == "uv.lock updated"
    lock = tomllib.loads((mini / "uv.lock").read_text())
    assert [p["version"] for p in lock["package"] if p["name"] == "ot-cells"] == ["0.1.1"]


def test_bump_opens_a_heading_above_a_released_one(mini):
    edit(mini / "packages/ot-cells/CHANGELOG.md", "(unreleased)", "(2026-02-01)")
    release.bump(mini, "ot-cells", "patch", lock=False)
    changelog = (mini / "packages/ot-cells/CHANGELOG.md").read_text()
    assert [(r.version, r.date) for r in releases(changelog)] == [("0.1.1", None), ("0.1.0", "2026-02-01")]
    assert "- First." in changelog


def test_bump_of_core_reports_lagging_floors_without_editing_them(mini):
    cells_pyproject = (mini / "packages/ot-cells/pyproject.toml").read_text()
    report = release.bump(mini, "ot-core", "major", lock=False)
    assert report[2:] == [
        "ot-cells requires ot-core>=0.1.0; raise the floor if it needs ot-core 1.0.0",
    ]
    assert (mini / "packages/ot-cells/pyproject.toml").read_text() == cells_pyproject
    assert load_packages(mini)[CORE].version == "1.0.0"


def test_bump_of_core_reports_floors_that_exclude_it(mini):
    edit(mini / "packages/ot-cells/pyproject.toml", '"ot-core>=0.1.0"', '"ot-core>=0.1.0,<0.3"')
    report = release.bump(mini, "ot-core", "minor", lock=False)
    assert "ot-cells requires ot-core<0.3,>=0.1.0, which excludes ot-core 0.3.0: fix it" in report


def test_bump_only_touches_the_project_version():
    text = '[project]\nname = "x"\nversion = "0.1.0"\n\n[tool.other]\nversion = "9"\n'
    assert release.with_version(text, "0.2.0") == text.replace('"0.1.0"', '"0.2.0"')
    with pytest.raises(release.ReleaseError, match="no static version"):
        release.with_version('[project]\nname = "x"\ndynamic = ["version"]\n', "0.2.0")


# ---- table ----


def test_table_lists_versions_and_status(mini):
    assert release.table(mini).splitlines() == [
        "| Package | Version | Status | Description |",
        "| --- | --- | --- | --- |",
        "| [ot-core](packages/ot-core) | 0.2.0 | alpha | A synthetic workspace member. |",
        "| [ot-cells](packages/ot-cells) | 0.1.0 | alpha | A synthetic workspace member. |",
    ]


# ---- install-check on the synthetic workspace (fast: no third-party dependencies) ----


def test_install_check_runs_the_quick_demo_and_catches_failures(mini, tmp_path_factory):
    subprocess.run(["uv", "lock", "--offline", "--quiet"], cwd=mini, check=True)
    dist = tmp_path_factory.mktemp("mini-dist")
    assert release.install_check(mini, "ot-cells", dist)[1:] == ["import ot_cells: __version__ 0.1.0"]
    assert release.install_check(mini, "ot-core", dist)[1:] == [
        "import ot_core: __version__ 0.2.0",
        "ot-core demo --quick",
    ]

    edit(mini / "packages/ot-core/src/ot_core/cli.py", 'print("demo ran")', "raise SystemExit(3)")
    release.build(mini, "ot-core", dist)
    with pytest.raises(release.ReleaseError, match="demo --quick` exited 3"):
        release.install_check(mini, "ot-core", dist)

    edit(mini / "packages/ot-core/src/ot_core/__init__.py", '"0.2.0"', '"0.0.0"')
    release.build(mini, "ot-core", dist)
    with pytest.raises(release.ReleaseError, match="ot_core.__version__ is '0.0.0', expected '0.2.0'"):
        release.install_check(mini, "ot-core", dist)


# ---- build every package of this workspace; install-check ot-core and ot-cells ----


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Wheel and sdist of every workspace package, built once per module into a temporary folder."""
    dist = tmp_path_factory.mktemp("dist")
    return {name: release.build(ROOT, name, dist) for name in PACKAGES}


@pytest.mark.parametrize("name", PACKAGES)
def test_wheel_metadata(dists, name):
    pkg = load_packages()[name]
    wheel, _ = dists[name]
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        info = f"{pkg.dist_name}-{pkg.version}.dist-info"
        metadata = email.message_from_string(archive.read(f"{info}/METADATA").decode("utf-8"))  # METADATA is UTF-8
    assert f"{pkg.import_name}/__init__.py" in files
    assert f"{info}/licenses/LICENSE" in files
    assert (metadata["Name"], metadata["Version"], metadata["License-Expression"]) == (
        name,
        pkg.version,
        "MIT",
    )
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().strip() == pkg.readme.read_text().strip()
    requires = metadata.get_all("Requires-Dist") or []
    if name != CORE:
        assert str(pkg.requirement(CORE)) in requires


@pytest.mark.parametrize("name", PACKAGES)
def test_sdist_contents(dists, name):
    pkg = load_packages()[name]
    _, sdist = dists[name]
    prefix = f"{pkg.dist_name}-{pkg.version}"
    with tarfile.open(sdist) as archive:
        files = set(archive.getnames())
    expected = [
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        f"src/{pkg.import_name}/__init__.py",
    ]
    assert {f"{prefix}/{f}" for f in expected} <= files


@pytest.mark.parametrize("name", INSTALL_CHECKED)
def test_install_check(dists, name):
    dist = dists[CORE][0].parents[1]
    steps = release.install_check(ROOT, name, dist)
    assert steps[1] == f"import {name.replace('-', '_')}: __version__ {load_packages()[name].version}"
