"""Building blocks for the ``ot-<package> demo | fit | evaluate | predict`` command lines of every ot-* package.

Each package's ``cli.py`` declares its subcommands with :func:`build_parser` and calls :func:`run`::

    def main(argv=None):
        parser = build_parser("ot-cells", __doc__, {"demo": (add_demo_args, run_demo), "fit": (...)})
        return run(parser, argv)

Common options on every subcommand: ``--config`` (JSON or TOML file of config fields), ``--out`` (output folder),
``--device`` (auto | cpu | cuda | cuda:N), ``--seed``, ``--overwrite`` and ``--resume``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import torch

from .training import atomic_write_json

__all__ = ["build_parser", "run", "resolve_device", "prepare_out_dir", "load_config", "write_metrics", "UserError"]

T = TypeVar("T")
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Any]]


class UserError(Exception):
    """An error caused by the user's input: the CLI prints the message (no traceback) and exits with status 2."""


def build_parser(prog: str, description: str | None, commands: Mapping[str, Command],
                 default_out: str = "runs") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}")
    for name, (add_args, handler) in commands.items():
        doc = (handler.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--config", type=Path, help="JSON or TOML file with config fields (overridden by flags)")
        p.add_argument("--out", type=Path, default=Path(default_out) / name, help="output folder (default: %(default)s)")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
        p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out folder")
        p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
        add_args(p)
        p.set_defaults(handler=handler)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse, call the subcommand's handler, turn :class:`UserError` and input errors into a message + exit 2."""
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except (UserError, ValueError, TypeError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{parser.prog} {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA name without CUDA is a :class:`UserError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for CUDA, but torch sees no GPU here; use --device cpu")
    return dev


def prepare_out_dir(path: Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create the output folder; refuse a non-empty one unless ``overwrite`` or ``resume`` (nothing of the
    user's is silently replaced)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; pass a folder")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or resume):
        raise UserError(f"--out {path} is not empty; pass --resume to continue that run, --overwrite to write "
                        "into it, or choose another folder")
    if resume and not path.is_dir():
        raise UserError(f"--resume: {path} does not exist; nothing to resume")
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_config(cls: type[T], path: Path | None = None, overrides: Mapping[str, Any] | None = None,
                base: T | None = None) -> T:
    """A dataclass config from ``base`` (or ``cls()``), updated by the file at ``path`` (JSON or TOML), then by
    ``overrides`` (e.g. CLI flags that were given). Unknown keys are an error naming the valid ones."""
    cfg = base if base is not None else cls()
    updates: dict[str, Any] = {}
    if path is not None:
        updates.update(_read_config_file(Path(path)))
    updates.update({k: v for k, v in (overrides or {}).items() if v is not None})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(updates) - names)
    if unknown:
        raise UserError(f"unknown config field(s) {unknown}; valid fields: {sorted(names)}")
    return dataclasses.replace(cfg, **updates)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"--config {path} does not exist")
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise UserError("TOML configs need Python >= 3.11; use a .json config") from None
        return tomllib.loads(path.read_text())
    raise UserError(f"--config {path}: use a .json or .toml file")


def write_metrics(out_dir: Path, metrics: Mapping[str, Any], name: str = "metrics.json") -> Path:
    """Write metrics atomically as sorted, indented JSON (tensors and numpy values converted)."""
    return atomic_write_json(dict(metrics), Path(out_dir) / name)
