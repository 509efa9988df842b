#!/usr/bin/env python3
"""Per-package releases of the ot-* workspace.

    uv run tools/release.py bump ot-cells minor          # pyproject version, new CHANGELOG heading, uv lock
    uv run tools/release.py check ot-cells [--tag ot-cells/v0.2.0]
    uv run tools/release.py build ot-cells               # -> dist/ot-cells/{wheel,sdist}
    uv run tools/release.py install-check ot-cells       # clean venv: wheel + local ot-core wheel, import, demo
    uv run tools/release.py table                        # Markdown package table for the root README

CHANGELOG convention: level-2 headings ``## X.Y.Z (unreleased)`` or ``## X.Y.Z (YYYY-MM-DD)``, newest first;
the top heading names the pyproject version. A release tag ``<package>/vX.Y.Z`` needs that heading dated.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import readme_renderer.markdown
from monorepo import (
    CORE,
    ROOT,
    Package,
    changelog_headings,
    floor,
    load_packages,
    parse_release,
    readme_status,
)
from monorepo import releases as changelog_releases
from packaging.version import InvalidVersion, Version

PARTS = ("major", "minor", "patch")
DEMO_TIMEOUT_S = 600
EXPORT = ["uv", "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes", "--no-header"]
PIP_INSTALL = ["uv", "pip", "install", "--quiet"]
TAG = re.compile(r"^(?P<package>[a-z0-9-]+)/v(?P<version>.+)$")


class ReleaseError(RuntimeError):
    """A release step failed; the message says what to fix."""


def run(
    cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float | None = None
) -> str:
    """Run a command; return stdout, or raise ReleaseError with its output."""
    try:
        proc = subprocess.run(
            cmd, check=False, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True
        )
    except subprocess.TimeoutExpired as exc:
        raise ReleaseError(f"`{' '.join(cmd)}` timed out after {timeout:.0f} s") from exc
    if proc.returncode:
        raise ReleaseError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def package(root: Path, name: str) -> tuple[dict[str, Package], Package]:
    packages = load_packages(root)
    if name not in packages:
        raise ReleaseError(f"unknown package {name!r}; the workspace has {', '.join(packages)}")
    return packages, packages[name]


# ---- bump ----


def bumped(version: str, part: str) -> str:
    major, minor, patch = (Version(version).release + (0, 0))[:3]
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def with_version(pyproject: str, version: str) -> str:
    """The pyproject text with the static ``version = "..."`` of its [project] table replaced."""
    table = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", pyproject, re.MULTILINE | re.DOTALL)
    if table is None:
        raise ReleaseError("pyproject.toml has no [project] table")
    body, count = re.subn(r'^(version\s*=\s*")[^"]*(")', rf"\g<1>{version}\g<2>", table[1], 1, re.MULTILINE)
    if count != 1:
        raise ReleaseError('[project] has no static version = "..." line')
    return pyproject[: table.start(1)] + body + pyproject[table.end(1) :]


def with_heading(changelog: str, version: str) -> str:
    """The CHANGELOG with ``## <version> (unreleased)`` on top; an unreleased top heading is retitled."""
    lines = changelog.splitlines()
    heading = f"## {version} (unreleased)"
    top = changelog_headings(changelog)[:1]
    if not top:
        lines += ["", heading]
    elif (release := parse_release(top[0][1])) is not None and release.date is None:
        lines[top[0][0]] = heading
    else:
        lines[top[0][0] : top[0][0]] = [heading, ""]
    return "\n".join(lines) + "\n"


def lagging_floors(packages: dict[str, Package], core_version: str) -> list[str]:
    """Domain packages whose ot-core floor is below ``core_version``, as report lines."""
    lines = []
    for pkg in packages.values():
        requirement = pkg.requirement(CORE)
        if requirement is None or pkg.name == CORE:
            continue
        low = floor(requirement)
        if low is None or low < Version(core_version):
            lines.append(
                f"{pkg.name} requires {requirement}; raise the floor if it needs {CORE} {core_version}"
            )
        if not requirement.specifier.contains(core_version, prereleases=True):
            lines.append(f"{pkg.name} requires {requirement}, which excludes {CORE} {core_version}: fix it")
    return lines


def bump(root: Path, name: str, part: str, *, lock: bool = True) -> list[str]:
    """Raise a package's version and open its CHANGELOG heading; return report lines."""
    packages, pkg = package(root, name)
    new = bumped(pkg.version, part)
    pyproject = pkg.path / "pyproject.toml"
    pyproject.write_text(with_version(pyproject.read_text(), new))
    pkg.changelog.write_text(with_heading(pkg.changelog.read_text(), new))
    report = [
        f"{name}: {pkg.version} -> {new}; edit the '## {new} (unreleased)' entries in {pkg.changelog.name}",
        "refresh the root README's package table: uv run tools/release.py table",
    ]
    if name == CORE:
        report += lagging_floors(packages, new)
    if lock:
        run(["uv", "lock"], cwd=root)
        report.append("uv.lock updated")
    return report


# ---- check ----


def changelog_errors(pkg: Package, release: bool) -> list[str]:
    """The top CHANGELOG heading names the pyproject version (and, for a release, is dated)."""
    if not pkg.changelog.is_file():
        return [f"{pkg.name}: no CHANGELOG.md"]
    top = changelog_headings(pkg.changelog.read_text())[:1]
    if not top:
        return [f"{pkg.name}: CHANGELOG.md has no '## {pkg.version} (unreleased)' heading"]
    heading = parse_release(top[0][1])
    if heading is None:
        return [
            f"{pkg.name}: CHANGELOG heading {top[0][1]!r} is not '## X.Y.Z (unreleased)' or '## X.Y.Z (YYYY-MM-DD)'"
        ]
    if heading.version != pkg.version:
        return [
            f"{pkg.name}: pyproject version {pkg.version} but the top CHANGELOG heading is {heading.version}"
        ]
    if release and heading.date is None:
        return [
            f"{pkg.name}: CHANGELOG heading {heading.version} is unreleased; date it (YYYY-MM-DD) before tagging"
        ]
    return []


def core_floor_errors(packages: dict[str, Package], pkg: Package, released_only: bool) -> list[str]:
    """The ot-core requirement has a floor that the workspace ot-core (or, for a release, a released one) meets."""
    if pkg.name == CORE:
        return []
    requirement = pkg.requirement(CORE)
    if requirement is None or floor(requirement) is None:
        return [f"{pkg.name}: needs a dependency '{CORE}>=X.Y.Z'"]
    core = packages[CORE]
    if not requirement.specifier.contains(core.version, prereleases=True):
        return [f"{pkg.name}: {requirement} excludes the workspace {CORE} {core.version}"]
    if released_only:
        released = [r.version for r in changelog_releases(core.changelog.read_text()) if r.date]
        if not any(requirement.specifier.contains(v, prereleases=True) for v in released):
            return [
                f"{pkg.name}: no released {CORE} (dated CHANGELOG heading) satisfies {requirement}; release it first"
            ]
    return []


def readme_errors(pkg: Package) -> list[str]:
    """The README renders as PyPI renders it, and has no relative links (they break on PyPI)."""
    if pkg.readme is None or not pkg.readme.is_file():
        return [f"{pkg.name}: pyproject 'readme' does not name an existing file"]
    html = readme_renderer.markdown.render(pkg.readme.read_text())
    if not html:
        return [f"{pkg.name}: {pkg.readme.name} does not render"]
    relative = [
        u for u in re.findall(r'(?:href|src)="([^"]*)"', html) if not re.match(r"[a-z][a-z0-9+.-]*:|#", u)
    ]
    if relative:
        return [f"{pkg.name}: relative links break on PyPI, use absolute URLs: {', '.join(relative)}"]
    return []


def tag_errors(pkg: Package, tag: str) -> list[str]:
    match = TAG.match(tag)
    if not match or match["package"] != pkg.name or match["version"] != pkg.version:
        return [f"tag {tag!r} does not match {pkg.name}/v{pkg.version}"]
    return []


def check(root: Path, name: str, tag: str | None = None) -> list[str]:
    """Everything wrong with releasing ``name`` (with ``tag``, as a release); empty when ready."""
    packages, pkg = package(root, name)
    try:
        Version(pkg.version)
    except InvalidVersion:
        return [f"{name}: version {pkg.version!r} is not PEP 440"]
    errors = changelog_errors(pkg, release=tag is not None)
    errors += core_floor_errors(packages, pkg, released_only=tag is not None)
    errors += readme_errors(pkg)
    return errors + (tag_errors(pkg, tag) if tag else [])


# ---- build and install-check ----


def artifacts(pkg: Package, dist: Path) -> tuple[Path, Path] | None:
    """The wheel and sdist of the package's current version in ``dist/<package>``, if both exist."""
    wheels = sorted((dist / pkg.name).glob(f"{pkg.dist_name}-{pkg.version}-*.whl"))
    sdist = dist / pkg.name / f"{pkg.dist_name}-{pkg.version}.tar.gz"
    return (wheels[0], sdist) if wheels and sdist.is_file() else None


def build(root: Path, name: str, dist: Path) -> tuple[Path, Path]:
    """``uv build`` the sdist, and the wheel from it, into a fresh ``dist/<package>``."""
    _, pkg = package(root, name)
    shutil.rmtree(dist / name, ignore_errors=True)
    run(["uv", "build", "--package", name, "--no-sources", "--out-dir", str(dist / name)], cwd=root)
    built = artifacts(pkg, dist)
    if built is None:
        raise ReleaseError(f"uv build left no {pkg.dist_name}-{pkg.version} wheel and sdist in {dist / name}")
    return built


def clean_env() -> dict[str, str]:
    """The environment minus the workspace's venv, with a headless matplotlib."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    return env | {"MPLBACKEND": "Agg"}


def has_quick_demo(script: str, cwd: Path) -> bool:
    """Whether ``script demo --help`` succeeds and lists ``--quick``."""
    proc = subprocess.run(
        [script, "demo", "--help"], check=False, cwd=cwd, env=clean_env(), capture_output=True, text=True
    )
    return proc.returncode == 0 and "--quick" in proc.stdout


def install_pinned(root: Path, name: str, venv: Path, wheels: list[Path]) -> None:
    """Install ``wheels`` into ``venv``, their dependencies pinned as ``uv.lock`` pins them for ``name``."""
    constraints = venv / "constraints.txt"
    run([*EXPORT, "--package", name, "--output-file", str(constraints)], cwd=root)
    run(
        [
            *PIP_INSTALL,
            "--python",
            str(venv / "bin" / "python"),
            "--constraints",
            str(constraints),
            *map(str, wheels),
        ]
    )


def install_check(root: Path, name: str, dist: Path) -> list[str]:
    """Install the wheel (plus the local ot-core wheel) in a fresh venv, pinned by uv.lock; import and run it.

    Builds missing wheels first. Returns what was run; raises ReleaseError on the first failure.
    """
    packages, pkg = package(root, name)
    needed = [pkg] if name == CORE else [pkg, packages[CORE]]
    wheels = [(artifacts(p, dist) or build(root, p.name, dist))[0] for p in needed]
    done = []
    with tempfile.TemporaryDirectory(prefix=f"install-check-{name}-") as tmp:
        tmp = Path(tmp)
        venv, bindir = tmp / "venv", tmp / "venv" / "bin"
        run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)])
        install_pinned(root, name, venv, wheels)
        done.append(f"installed {' '.join(w.name for w in wheels)} in a fresh venv (pins from uv.lock)")
        code = f"import {pkg.import_name} as m; print(m.__version__)"
        version = run([str(bindir / "python"), "-c", code], cwd=tmp, env=clean_env()).strip()
        if version != pkg.version:
            raise ReleaseError(f"{pkg.import_name}.__version__ is {version!r}, expected {pkg.version!r}")
        done.append(f"import {pkg.import_name}: __version__ {version}")
        for script in pkg.scripts:
            exe = str(bindir / script)
            if has_quick_demo(exe, tmp):
                run([exe, "demo", "--quick"], cwd=tmp, env=clean_env(), timeout=DEMO_TIMEOUT_S)
                done.append(f"{script} demo --quick")
            else:
                run([exe, "--help"], cwd=tmp, env=clean_env())
                done.append(f"{script} --help (it has no `demo --quick`)")
    return done


# ---- table ----


def table(root: Path) -> str:
    """The Markdown table of packages, versions and README status for the root README."""
    rows = ["| Package | Version | Status | Description |", "| --- | --- | --- | --- |"]
    for pkg in load_packages(root).values():
        status = readme_status(pkg.readme.read_text()) if pkg.readme and pkg.readme.is_file() else None
        link = f"[{pkg.name}]({pkg.path.relative_to(root).as_posix()})"
        rows.append(
            f"| {link} | {pkg.version} | {status or 'unknown'} | {pkg.project.get('description', '')} |"
        )
    return "\n".join(rows) + "\n"


# ---- command line ----


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="release.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    cli.add_argument("--root", type=Path, default=ROOT, help="workspace root (default: this checkout)")
    commands = cli.add_subparsers(dest="command", required=True)
    bump_cmd = commands.add_parser("bump", help="raise the version, open a CHANGELOG heading, uv lock")
    bump_cmd.add_argument("package")
    bump_cmd.add_argument("part", choices=PARTS)
    bump_cmd.add_argument("--no-lock", action="store_true", help="do not run `uv lock` afterwards")
    check_cmd = commands.add_parser(
        "check", help="version/CHANGELOG agree, ot-core floor satisfiable, README renders"
    )
    check_cmd.add_argument("package")
    check_cmd.add_argument(
        "--tag", help="release tag <package>/v<version>: also needs a dated CHANGELOG heading"
    )
    for command, text in (
        ("build", "uv build sdist and wheel"),
        ("install-check", "install and run in a clean venv"),
    ):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("package")
        sub.add_argument(
            "--dist", type=Path, help="dist folder (default: <root>/dist); files go to <dist>/<package>"
        )
    commands.add_parser("table", help="print the root README's package table")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root = args.root.resolve()
    dist = getattr(args, "dist", None) or root / "dist"
    try:
        if args.command == "bump":
            print("\n".join(bump(root, args.package, args.part, lock=not args.no_lock)))
        elif args.command == "check":
            errors = check(root, args.package, args.tag)
            print("\n".join(errors) or f"{args.package}: ok")
            return 1 if errors else 0
        elif args.command == "build":
            print("\n".join(str(p) for p in build(root, args.package, dist)))
        elif args.command == "install-check":
            print("\n".join(install_check(root, args.package, dist)))
        else:
            print(table(root), end="")
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
