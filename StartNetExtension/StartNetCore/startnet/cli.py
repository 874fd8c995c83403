"""The ``startnet`` command line.

Each command is one module (``startnet.commands.*`` for the cycle's commands, ``<package>.cli``
beside the code it drives otherwise) that never imports another command's module. It exposes
``register(subparsers)``, which adds its sub-parser and sets ``handler`` (a function taking the
parsed namespace and returning an exit code). This module only assembles them and turns user-caused errors into one-line
messages with a non-zero exit code: a user never sees a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from startnet import __version__
from startnet.errors import StartNetError

# Modules providing ``register(subparsers)``; order is the order shown in ``--help``.
COMMAND_MODULES = [
    "startnet.commands.run",
    "startnet.commands.demo",
    "startnet.commands.accumulate",
    "startnet.batch.cli",
    "startnet.phantom.cli",
    "startnet.dicomio.cli",
    "startnet.segmentation.cli",
    "startnet.trial.cli",
    "startnet.calibration.cli",
]

INTERNAL_ERROR_EXIT = 70


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="startnet",
        description="START-NET 177Lu-DOTATOC SPECT/CT dosimetry and trial tracking.",
    )
    parser.add_argument("--version", action="version", version=f"startnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # command not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except StartNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last-resort guard: never a traceback to the user
        if args.debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc} (this is a bug; rerun with --debug and report it)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
