"""`landcover` console script: one subcommand per stage (BRIEF section 4b).

Each subcommand reads params.yaml for its defaults and calls the same stage function the DVC
stage and the Prefect flow call. Failures end with a one-line reason on stderr and a non-zero
exit; set LANDCOVER_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from landcover.config import Params, load_params, stage_packages
from landcover.errors import LandcoverError

Handler = Callable[[argparse.Namespace, Params], int]


def _parse_set(values: Sequence[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise LandcoverError(f"--set expects KEY=VALUE (for example train.epochs=2), got {item!r}")
        overrides[key.strip()] = yaml.safe_load(raw)
    return overrides


class StageNotImportable(RuntimeError):
    """A stage params.yaml names whose command module does not import: a packaging error."""


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per stage of the registry (`config.stage_packages`: each stage's params section
    names its package); a stage whose `command` module does not import stops the CLI, naming it."""
    import importlib

    parser = argparse.ArgumentParser(prog="landcover", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params value, for example --set train.epochs=2")
    sub = parser.add_subparsers(dest="command", required=True)
    for section, package in stage_packages().items():
        try:
            module = importlib.import_module(f"{package}.command")
        except ImportError as exc:
            raise StageNotImportable(f"stage {section}: {package}.command does not import: {exc}") from exc
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        params_path = args.params
        if not params_path.exists() and params_path == Path("params.yaml"):
            params_path = Path(__file__).with_name("default_params.yaml")
        params = load_params(params_path, _parse_set(args.set))
        return int(args.handler(args, params) or 0)
    except KeyboardInterrupt:
        print(f"landcover {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one-line reason for any failure (BRIEF 4b)
        if os.environ.get("LANDCOVER_DEBUG"):
            traceback.print_exc()
        kind = "" if isinstance(exc, LandcoverError) else f"{type(exc).__name__}: "
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"landcover {args.command}: error: {kind}{message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
